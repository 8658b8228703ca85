import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { commands } from '../../src/cli/image.js';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { EXIT } from '../../src/cli/output.js';
import { missingTools, tmp, writeTree } from './helpers.js';

const build = commands.find((c) => c.path.join(' ') === 'image build')!;
const cliModule = new URL('../../src/cli/image.js', import.meta.url).href;
const argsModule = new URL('../../src/cli/args.js', import.meta.url).href;

/** Run `ooo image build ARGV` in a child process, the way the ooo dispatcher does. */
async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  // Usage errors surface in-process (parseArgs and the validation at the top of run()).
  const parsed = parseArgs(build, argv);
  const script = `
    const { commands } = await import(${JSON.stringify(cliModule)});
    const { parseArgs } = await import(${JSON.stringify(argsModule)});
    const c = commands.find((c) => c.path.join(' ') === 'image build');
    try { process.exitCode = await c.run(parseArgs(c, JSON.parse(process.argv[1]))); }
    catch (e) { process.stderr.write('ERROR ' + e.constructor.name + ' ' + (e.exitCode ?? '') + ' ' + e.message + '\\n'); process.exitCode = 99; }`;
  void parsed;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(argv)], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('image build: usage errors name the problem', async () => {
  const run = (argv: string[]) => build.run(parseArgs(build, argv));
  await assert.rejects(run(['-t', 'raw', 'busybox']), (e: Error) => e instanceof UsageError && /--output\/-o PATH is required/.test(e.message));
  await assert.rejects(run(['-t', 'raw,iso', '-o', '/tmp/x', 'busybox']), /unknown output type 'iso'/);
  await assert.rejects(run(['-o', '/tmp/x']), /missing argument ELEMENT/);
  await assert.rejects(run(['-o', '/tmp/x', '--compression', 'xz', 'busybox']), /--compression must be gzip or zstd/);
  const missing = await runCli(['-o', join(tmp(), 'x'), 'no-such-element']);
  assert.equal(missing.code, 99);
  assert.match(missing.err, new RegExp(`ERROR CliError ${EXIT.usage} element 'no-such-element' was not found`));
});

test('image build: builds, prints the artifacts, reports a cache hit, writes the manifest', { skip: missingTools('busybox', 'mount', 'chroot', 'tar') }, async () => {
  const els = writeTree(tmp(), { 'hello/element-deps': 'busybox\n', 'hello/static/etc/motd': 'hello\n' });
  const cache = tmp('ooo-cache-');
  const out = join(tmp(), 'img');
  const args = ['-t', 'tar', '-o', out, '--elements-path', els, '--cache-dir', cache, 'hello'];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /img\.tar\s+\d+\s+[0-9a-f]{64}/);
  assert.match(first.out, /^built in/m);
  assert.match(first.err, /phase root/);
  assert.ok(existsSync(`${out}.manifest.json`));
  const second = await runCli([...args, '--json']);
  const m = JSON.parse(second.out);
  assert.equal(m.cacheHit, true);
  assert.match(second.err, /cache hit/);
  assert.deepEqual(m.elements, ['busybox', 'hello']);
  assert.equal(JSON.parse(readFileSync(`${out}.manifest.json`, 'utf8')).artifacts[0].sha256, m.artifacts[0].sha256);
});
