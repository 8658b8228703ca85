import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, HookError, BuildError, detectMirror } from '../../src/images/builder/build.js';
import { markerElement, missingTools, tmp, writeTree, bootUntil } from './helpers.js';

const BASE_TOOLS = ['busybox', 'mount', 'chroot'];
const KERNEL_TOOLS = [...BASE_TOOLS, 'dpkg-deb', 'depmod', 'apt-get'];
const DISK_TOOLS = [...KERNEL_TOOLS, 'sfdisk', 'mkfs.vfat', 'mcopy', 'mmd', 'syslinux', 'mke2fs', 'debugfs', 'dumpe2fs'];
const quiet = () => {};

test('a failing hook reports element, phase, hook and its last lines', { skip: missingTools(...BASE_TOOLS) }, async () => {
  const els = writeTree(tmp(), {
    'breaks/install.d/10-fine': '!#!/bin/sh\necho fine\n',
    'breaks/install.d/20-broken': '!#!/bin/sh\nfor i in 1 2 3 4 5; do echo "line $i"; done\necho "boom: disk on fire" >&2\nexit 3\n',
    'breaks/element-deps': 'busybox\n',
  });
  const out = tmp();
  await assert.rejects(
    buildImage({ elements: ['breaks'], types: ['tar'], output: join(out, 'x'), elementsPath: [els], useCache: false, cacheDir: tmp('ooo-cache-'), progress: quiet }),
    (e: Error) => {
      assert.ok(e instanceof HookError, String(e));
      assert.equal(e.element, 'breaks');
      assert.equal(e.phase, 'install');
      assert.equal(e.hook, '20-broken');
      assert.equal(e.exitCode, 3);
      assert.match(e.message, /element 'breaks', phase install, hook 20-broken failed \(exit 3\)/);
      assert.match(e.message, /line 5/);
      assert.match(e.message, /boom: disk on fire/);
      assert.doesNotMatch(e.message, /fine/); // an earlier hook's output is not this hook's
      return true;
    },
  );
});

test('packages on the busybox base are refused clearly', { skip: missingTools(...BASE_TOOLS) }, async () => {
  const els = writeTree(tmp(), { 'wantspkg/packages': 'curl\n', 'wantspkg/element-deps': 'busybox\n' });
  await assert.rejects(
    buildImage({ elements: ['wantspkg'], types: ['tar'], output: join(tmp(), 'x'), elementsPath: [els], useCache: false, cacheDir: tmp('ooo-cache-'), progress: quiet }),
    (e: Error) => e instanceof BuildError && /wantspkg want packages \(curl\) but the base 'busybox' has no package manager/.test(e.message),
  );
});

test('hooks see the environment, static files land, tar output and cache hits', { skip: missingTools(...BASE_TOOLS, 'tar') }, async () => {
  const els = writeTree(tmp(), {
    'probe/element-deps': 'busybox\n',
    'probe/environment.d/10-probe.bash': 'export PROBE_VALUE="from-env-${OOO_BASE}"\n',
    'probe/static/etc/probe-static': 'static\n',
    'probe/extra-data.d/10-host': '!#!/bin/sh\nset -e\necho "$PROBE_VALUE $OOO_ELEMENTS" > "$TARGET_ROOT/etc/probe-host"\n',
    'probe/install.d/10-chroot': '!#!/bin/sh\nset -e\n[ -f /etc/probe-static ]\necho "$PROBE_VALUE $ELEMENT_NAME $OOO_PHASE" > /etc/probe-chroot\n',
  });
  const cache = tmp('ooo-cache-');
  const out = join(tmp(), 'probe');
  const lines: string[] = [];
  const r1 = await buildImage({ elements: ['probe'], types: ['tar'], output: out, elementsPath: [els], cacheDir: cache, progress: (l) => lines.push(l) });
  assert.equal(r1.cacheHit, false);
  assert.ok(lines.includes('phase install'), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('install: probe/10-chroot')));
  const list = (await import('node:child_process')).spawnSync('tar', ['-xOf', `${out}.tar`, './etc/probe-host', './etc/probe-chroot', './etc/probe-static'], { encoding: 'utf8' });
  assert.equal(list.stdout, 'from-env-busybox probe install\nfrom-env-busybox busybox probe\nstatic\n'); // archive (sorted) order
  const m = JSON.parse(readFileSync(`${out}.manifest.json`, 'utf8'));
  assert.deepEqual(m.elements, ['busybox', 'probe']);
  assert.equal(m.artifacts[0].size, statSync(`${out}.tar`).size);
  assert.match(m.packages['busybox-static'], /1\.3/);
  const hits: string[] = [];
  const r2 = await buildImage({ elements: ['probe'], types: ['tar'], output: out + '-again', elementsPath: [els], cacheDir: cache, progress: (l) => hits.push(l) });
  assert.equal(r2.cacheHit, true);
  assert.ok(hits.some((l) => l.startsWith('cache hit')), hits.join('\n'));
  assert.equal(r2.manifest.artifacts[0]!.sha256, r1.manifest.artifacts[0]!.sha256);
  assert.ok(existsSync(`${out}-again.tar`));
});

test('busybox ramdisk: reproducible, and boots under qemu to a marker', { skip: missingTools(...KERNEL_TOOLS, 'qemu-system-x86_64') }, async (t) => {
  const els = markerElement(tmp(), 'OOO-RAMDISK-MARKER');
  const out = tmp();
  const build = (name: string) => buildImage({ elements: ['busybox', 'ramdisk', 'marker'], types: ['ramdisk'], output: join(out, name), elementsPath: [els], useCache: false, sourceDateEpoch: 1700000000, progress: quiet });
  const a = await build('a');
  const b = await build('b');
  t.diagnostic(`busybox ramdisk build: ${a.seconds.toFixed(1)}s, ${b.seconds.toFixed(1)}s`);
  assert.deepEqual(a.manifest.artifacts.map((x) => x.sha256), b.manifest.artifacts.map((x) => x.sha256), 'two builds are byte-identical');
  const boot = await bootUntil(['-kernel', join(out, 'a.kernel'), '-initrd', join(out, 'a.initramfs'), '-append', 'console=ttyS0 panic=-1'], 'OOO-RAMDISK-MARKER', 90_000, join(out, 'serial.log'));
  t.diagnostic(`ramdisk boot to marker: ${boot.seconds.toFixed(1)}s`);
  assert.ok(boot.found, `marker not seen; serial console:\n${boot.serial.slice(-3000)}`);
});

test('busybox vm: raw disk is reproducible and boots from disk (BIOS) to a marker', { skip: missingTools(...DISK_TOOLS, 'qemu-system-x86_64') }, async (t) => {
  const els = markerElement(tmp(), 'OOO-DISK-MARKER');
  const out = tmp();
  const build = (name: string) => buildImage({ elements: ['busybox', 'vm', 'marker'], types: ['raw'], output: join(out, name), elementsPath: [els], useCache: false, sourceDateEpoch: 1700000000, progress: quiet });
  const a = await build('disk');
  const b = await build('again');
  t.diagnostic(`busybox vm raw build: ${a.seconds.toFixed(1)}s, ${b.seconds.toFixed(1)}s; ${(a.manifest.artifacts[0]!.size / 2 ** 20).toFixed(0)} MiB`);
  assert.equal(a.manifest.artifacts[0]!.sha256, b.manifest.artifacts[0]!.sha256, 'two builds are byte-identical');
  assert.equal(a.manifest.boot?.bios, true);
  const boot = await bootUntil(['-drive', `file=${join(out, 'disk.raw')},format=raw,if=virtio,snapshot=on`], 'OOO-DISK-MARKER', 120_000, join(out, 'serial.log'));
  t.diagnostic(`disk boot to marker: ${boot.seconds.toFixed(1)}s`);
  assert.ok(boot.found, `marker not seen; serial console:\n${boot.serial.slice(-3000)}`);
});

test('busybox vm: qcow2 boots with UEFI (OVMF) to a marker', { skip: missingTools(...DISK_TOOLS, 'qemu-img', 'qemu-system-x86_64') ?? (existsSync('/usr/share/OVMF/OVMF_CODE_4M.fd') ? (existsSync('/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi') ? undefined : 'not installed: syslinux-efi') : 'not installed: ovmf') }, async (t) => {
  const els = markerElement(tmp(), 'OOO-UEFI-MARKER');
  const out = tmp();
  const r = await buildImage({ elements: ['busybox', 'vm', 'marker'], types: ['qcow2'], output: join(out, 'disk'), elementsPath: [els], useCache: false, progress: quiet });
  assert.equal(r.manifest.boot?.uefi, true);
  const vars = join(out, 'vars.fd');
  (await import('node:fs')).copyFileSync('/usr/share/OVMF/OVMF_VARS_4M.fd', vars);
  const boot = await bootUntil(['-machine', 'q35', '-drive', 'if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd', '-drive', `if=pflash,format=raw,file=${vars}`,
    '-drive', `file=${join(out, 'disk.qcow2')},format=qcow2,if=virtio,snapshot=on`], 'OOO-UEFI-MARKER', 180_000, join(out, 'serial.log'));
  t.diagnostic(`UEFI boot to marker: ${boot.seconds.toFixed(1)}s`);
  assert.ok(boot.found, `marker not seen; serial console:\n${boot.serial.slice(-3000)}`);
});

async function mirrorReachable(): Promise<string | undefined> {
  const mirror = process.env.OOO_DEBIAN_MIRROR ?? detectMirror('bookworm');
  try {
    const res = await fetch(`${mirror}/dists/bookworm/Release`, { method: 'HEAD', signal: AbortSignal.timeout(8000) });
    return res.ok ? undefined : `debootstrap cannot reach the mirror ${mirror} (HTTP ${res.status})`;
  } catch (e) {
    return `debootstrap cannot reach the mirror ${mirror}: ${(e as Error).message}`;
  }
}

test('debian vm: whole-disk image builds and boots (systemd) to a marker', { skip: missingTools(...DISK_TOOLS, 'debootstrap', 'qemu-system-x86_64') ?? (await mirrorReachable()), timeout: 15 * 60_000 }, async (t) => {
  const els = markerElement(tmp(), 'OOO-DEBIAN-MARKER');
  const out = tmp();
  const lines: string[] = [];
  const r = await buildImage({ elements: ['debian', 'vm', 'marker'], types: ['raw'], output: join(out, 'debian'), elementsPath: [els], useCache: false, progress: (l) => lines.push(l) });
  t.diagnostic(`debian vm raw build: ${r.seconds.toFixed(1)}s; ${(r.manifest.artifacts[0]!.size / 2 ** 20).toFixed(0)} MiB; phases ${r.phases.map((p) => `${p.phase} ${p.seconds.toFixed(1)}s`).join(', ')}`);
  assert.ok(r.manifest.packages['systemd-sysv'], 'systemd-sysv is installed');
  assert.ok(r.manifest.packages['base-files']?.startsWith('12'), 'a bookworm root');
  const again = await buildImage({ elements: ['debian', 'vm', 'marker'], types: ['raw'], output: join(out, 'again'), elementsPath: [els], useCache: false, progress: quiet });
  t.diagnostic(`debian vm rebuild: ${again.seconds.toFixed(1)}s`);
  assert.equal(again.manifest.artifacts[0]!.sha256, r.manifest.artifacts[0]!.sha256, 'two debian builds are byte-identical');
  rmSync(join(out, 'again.raw'));
  const boot = await bootUntil(['-drive', `file=${join(out, 'debian.raw')},format=raw,if=virtio,snapshot=on`], 'OOO-DEBIAN-MARKER', 300_000, join(out, 'serial.log'));
  t.diagnostic(`debian disk boot to marker: ${boot.seconds.toFixed(1)}s`);
  assert.ok(boot.found, `marker not seen; serial console:\n${boot.serial.slice(-4000)}`);
});
