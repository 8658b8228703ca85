import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { resolveElements, ElementError, readElement, elementSearchPath } from '../../src/images/builder/elements.js';
import { tmp, writeTree } from './helpers.js';

function tree(files: Record<string, string>): string {
  return writeTree(tmp(), files);
}

test('dependencies come before the elements that need them, deterministically', () => {
  const dir = tree({
    'base1/base': '', 'app/element-deps': 'lib-b\nlib-a\n# comment\n', 'lib-a/element-deps': 'base1\n', 'lib-b/element-deps': 'lib-a\n',
    'other/element-deps': 'base1\n',
  });
  const names = (req: string[]) => resolveElements(req, [dir]).map((e) => e.name);
  assert.deepEqual(names(['app']), ['base1', 'lib-a', 'lib-b', 'app']);
  assert.deepEqual(names(['other', 'app']), ['base1', 'other', 'lib-a', 'lib-b', 'app']);
  assert.deepEqual(names(['app', 'app', 'lib-a']), ['base1', 'lib-a', 'lib-b', 'app']);
  for (let i = 0; i < 3; i++) assert.deepEqual(names(['app']), ['base1', 'lib-a', 'lib-b', 'app']);
});

test('a dependency cycle is reported with the whole cycle', () => {
  const dir = tree({ 'b0/base': '', 'x/element-deps': 'y\nb0\n', 'y/element-deps': 'z\n', 'z/element-deps': 'x\n' });
  assert.throws(() => resolveElements(['x'], [dir]), (e: Error) => e instanceof ElementError && /cycle: x -> y -> z -> x/.test(e.message));
});

test('a missing element names the element that wants it', () => {
  const dir = tree({ 'b0/base': '', 'app/element-deps': 'b0\nnot-there\n' });
  assert.throws(() => resolveElements(['app'], [dir]), /element 'app' depends on 'not-there', which was not found in the element search path/);
  assert.throws(() => resolveElements(['nope'], [dir]), /element 'nope' was not found/);
});

test('exactly one base element', () => {
  const dir = tree({ 'b1/base': '', 'b2/base': '', 'app/element-deps': '' });
  assert.throws(() => resolveElements(['app'], [dir]), /no base element among app/);
  assert.throws(() => resolveElements(['b1', 'b2'], [dir]), /more than one base element: b1 and b2/);
});

test('earlier search path entries win', () => {
  const a = tree({ 'b0/base': '', 'el/packages': 'from-a\n' });
  const b = tree({ 'el/packages': 'from-b\n' });
  const els = resolveElements(['b0', 'el'], [a, b]);
  assert.deepEqual(els[1]!.packages.map((p) => p.name), ['from-a']);
});

test('element contents: hooks sorted, non-executable hooks rejected, package-installs parsed', () => {
  const dir = tree({
    'e/install.d/20-second': '!#!/bin/sh\n', 'e/install.d/10-first': '!#!/bin/sh\n', 'e/root.d/01-x': '!#!/bin/sh\n',
    'e/package-installs.yaml': 'curl:\nsystemd-sysv:\n  when: OOO_BASE=debian\nbuild-essential:\n  uninstall: true\n',
    'e/environment.d/10-a.bash': 'export A=1\n', 'e/static/etc/x': 'x',
  });
  const e = readElement('e', join(dir, 'e'));
  assert.deepEqual(e.hooks.install, ['10-first', '20-second']);
  assert.deepEqual(e.hooks.root, ['01-x']);
  assert.deepEqual(e.packages, [
    { name: 'curl', when: [], uninstall: false },
    { name: 'systemd-sysv', when: ['OOO_BASE=debian'], uninstall: false },
    { name: 'build-essential', when: [], uninstall: true },
  ]);
  assert.equal(e.hasStatic, true);
  assert.equal(e.envFiles.length, 1);
  const bad = tree({ 'f/install.d/10-noexec': '#!/bin/sh\n' });
  assert.throws(() => readElement('f', join(bad, 'f')), /hook install.d\/10-noexec is not an executable file/);
  const badYaml = tree({ 'g/package-installs.yaml': 'foo:\n  colour: red\n' });
  assert.throws(() => readElement('g', join(badYaml, 'g')), /unknown option 'colour'/);
});

test('the shipped elements resolve', () => {
  const names = resolveElements(['busybox', 'vm'], elementSearchPath()).map((e) => e.name);
  assert.deepEqual(names, ['busybox', 'kernel', 'vm']);
  assert.deepEqual(resolveElements(['busybox', 'ramdisk'], elementSearchPath()).map((e) => e.name), ['busybox', 'kernel', 'ramdisk']);
  assert.deepEqual(resolveElements(['debian', 'vm'], elementSearchPath()).map((e) => e.name), ['debian', 'kernel', 'vm']);
});
