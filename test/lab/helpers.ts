/** Shared helpers for the lab and boot tests: what the machine lacks, kernels, tiny initramfs. */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { which } from '../../src/images/builder/exec.js';
import { cpioBuffer } from '../../src/images/builder/cpio.js';

/** Why lab tests (namespaces, taps, qemu) cannot run here, or false. */
export function labSkipReason(...tools: string[]): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, bridges, tap devices)';
  const missing = ['ip', ...tools].filter((t) => !which(t) && !existsSync(`/usr/sbin/${t}`));
  if (missing.length) return `not installed: ${missing.join(', ')} (see scripts/packages/lab.txt)`;
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.status !== 0) return `network namespaces unavailable: ${r.stderr.trim()}`;
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun (tap devices)';
  return false;
}

/** Why network-boot tests (the lab plus dnsmasq and the iPXE binaries) cannot run here, or false. */
export function bootSkipReason(...tools: string[]): string | false {
  const lab = labSkipReason(...tools);
  if (lab) return lab;
  if (!existsSync('/usr/sbin/dnsmasq')) return 'not installed: dnsmasq (Debian dnsmasq-base, see scripts/packages/lab.txt)';
  if (!existsSync('/usr/lib/ipxe/undionly.kpxe')) return 'not installed: ipxe (see scripts/packages/lab.txt)';
  return false;
}

/**
 * A Debian kernel (vmlinuz): from the image builder's kernel cache when it has one, else
 * `apt-get download linux-image-6.1.0-*-amd64` + `dpkg -x` into ~/.cache/ooo/lab/kernel.
 */
export function findKernel(): string | undefined {
  const roots = [join(process.env.OOO_IMAGE_CACHE_DIR ?? join(homedir(), '.cache', 'ooo', 'images'), 'kernel', 'trees'), join(homedir(), '.cache', 'ooo', 'lab', 'kernel')];
  for (const root of roots) {
    if (!existsSync(root)) continue;
    for (const t of readdirSync(root).sort().reverse()) {
      const boot = join(root, t, 'boot');
      if (!existsSync(boot)) continue;
      const k = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
      if (k) return join(boot, k);
    }
  }
  const dest = join(homedir(), '.cache', 'ooo', 'lab', 'kernel');
  mkdirSync(dest, { recursive: true });
  const pol = spawnSync('apt-cache', ['search', '--names-only', '^linux-image-6\\.1\\.0-[0-9]+-amd64$'], { encoding: 'utf8' });
  const pkg = (pol.stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter(Boolean).sort((a, b) => Number(b.split('-')[3]) - Number(a.split('-')[3]))[0];
  if (!pkg) return undefined;
  const work = join(dest, `dl-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const dl = spawnSync('apt-get', ['download', pkg], { cwd: work, encoding: 'utf8' });
  const deb = existsSync(work) ? readdirSync(work).find((f) => f.endsWith('.deb')) : undefined;
  if (dl.status !== 0 || !deb) { rmSync(work, { recursive: true, force: true }); return undefined; }
  const tree = join(dest, deb.replace(/\.deb$/, ''));
  spawnSync('dpkg', ['-x', join(work, deb), `${tree}.tmp-${process.pid}`]);
  try { renameSync(`${tree}.tmp-${process.pid}`, tree); } catch { rmSync(`${tree}.tmp-${process.pid}`, { recursive: true, force: true }); }
  rmSync(work, { recursive: true, force: true });
  return findKernel();
}

/**
 * A tiny initramfs (busybox-static + /init) that prints `marker` (and the kernel command line's
 * ooo.* arguments) on the console, then powers off.
 */
export async function markerInitramfs(dir: string, marker: string): Promise<string> {
  const root = join(dir, 'initramfs-root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'proc'), { recursive: true });
  mkdirSync(join(root, 'dev'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  writeFileSync(join(root, 'init'), `#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\nfor a in $(/bin/busybox cat /proc/cmdline); do case $a in ooo.*) echo "arg $a";; esac; done\necho "${marker}"\n/bin/busybox poweroff -f\n`);
  chmodSync(join(root, 'init'), 0o755);
  const out = join(dir, 'marker.initramfs');
  writeFileSync(out, await cpioBuffer(root, { mtime: 1704067200 }));
  return out;
}

/**
 * An initramfs whose /init loads the ACPI power button (button.ko, evdev.ko from the kernel's
 * tree), prints `ready`, waits for any input event (the power button) and powers off: a guest
 * that honours a soft power off. With `ooo.reboot` on the command line it reboots itself instead.
 */
export async function acpiInitramfs(dir: string, kernel: string, ready: string): Promise<string | undefined> {
  const tree = join(kernel, '..', '..');
  const ver = kernel.split('/').pop()!.replace(/^vmlinuz-/, '');
  const mods = join(tree, 'lib', 'modules', ver, 'kernel', 'drivers');
  const button = join(mods, 'acpi', 'button.ko'), evdev = join(mods, 'input', 'evdev.ko');
  if (!existsSync(button) || !existsSync(evdev)) return undefined;
  const root = join(dir, 'acpi-root');
  for (const d of ['bin', 'proc', 'dev', 'tmp', 'mod']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  copyFileSync(button, join(root, 'mod', 'button.ko'));
  copyFileSync(evdev, join(root, 'mod', 'evdev.ko'));
  writeFileSync(join(root, 'init'), [
    '#!/bin/busybox sh',
    'B=/bin/busybox',
    '$B mount -t proc proc /proc',
    '$B mount -t devtmpfs dev /dev',
    '$B insmod /mod/evdev.ko',
    '$B insmod /mod/button.ko',
    '$B sleep 1',
    'for e in /dev/input/event*; do ( $B dd if=$e of=/dev/null bs=24 count=1 2>/dev/null; echo x > /tmp/pressed ) & done',
    `echo "${ready}"`,
    'case "$($B cat /proc/cmdline)" in *ooo.reboot*) $B sleep 1; echo "rebooting"; $B reboot -f;; esac',
    'while [ ! -e /tmp/pressed ]; do $B sleep 0.2; done',
    'echo "power button pressed: powering off"',
    '$B poweroff -f',
    '',
  ].join('\n'));
  chmodSync(join(root, 'init'), 0o755);
  const out = join(dir, 'acpi.initramfs');
  writeFileSync(out, await cpioBuffer(root, { mtime: 1704067200 }));
  return out;
}
