/** Shared helpers for the image builder tests: temp element trees, tool checks, qemu boots. */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { which } from '../../src/images/builder/exec.js';

const made: string[] = [];
/** A temporary directory, removed when the test process exits (OOO_TEST_KEEP=1 keeps them). */
export function tmp(prefix = 'ooo-img-'): string {
  const d = mkdtempSync(join(process.env.OOO_TEST_TMPDIR ?? tmpdir(), prefix));
  made.push(d);
  return d;
}
process.on('exit', () => {
  if (process.env.OOO_TEST_KEEP) return;
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** Write files: path -> content; a leading '!' in the content makes the file executable. */
export function writeTree(root: string, files: Record<string, string>): string {
  for (const [p, content] of Object.entries(files)) {
    const full = join(root, p);
    mkdirSync(dirname(full), { recursive: true });
    const exec = content.startsWith('!');
    writeFileSync(full, exec ? content.slice(1) : content);
    if (exec) chmodSync(full, 0o755);
  }
  return root;
}

/** Why a test cannot run here, or undefined if every tool is present. */
export function missingTools(...tools: string[]): string | undefined {
  const missing = tools.filter((t) => !which(t));
  if (missing.length) return `not installed: ${missing.join(', ')} (see scripts/packages/images.txt)`;
  if (tools.includes('busybox')) {
    const r = spawnSync('ldd', ['/bin/busybox'], { encoding: 'utf8' });
    if (r.status === 0) return 'the host busybox is not static (install busybox-static)';
  }
  if (tools.includes('mount') && process.getuid?.() !== 0) return 'needs root (chroot, mount, mknod)';
  return undefined;
}

/** A test element that prints a marker on the console and powers off (ramdisk and disk boots). */
export function markerElement(dir: string, marker: string, opts: { poweroff?: boolean } = {}): string {
  const script = `!#!/bin/sh\necho "${marker} $(uname -r)"\n${opts.poweroff === false ? '' : 'sync\npoweroff -f\n'}`;
  writeTree(join(dir, 'marker'), {
    'static/init.d/90-marker': script,
    'static/etc/rc.d/90-marker': script,
    // systemd-based images: a unit that prints the marker on the console.
    'static/etc/systemd/system/ooo-marker.service': `[Unit]\nDescription=boot marker\nAfter=multi-user.target\n[Service]\nType=oneshot\nStandardOutput=tty\nTTYPath=/dev/ttyS0\nExecStart=/bin/sh -c 'echo "${marker} $(uname -r)"'\nExecStartPost=/bin/systemctl poweroff --force\n[Install]\nWantedBy=multi-user.target\n`,
    'finalise.d/90-marker': '!#!/bin/sh\nset -e\nif [ -d "$TARGET_ROOT/etc/systemd/system" ] && [ -x "$TARGET_ROOT/bin/systemctl" ]; then\n  mkdir -p "$TARGET_ROOT/etc/systemd/system/multi-user.target.wants"\n  ln -sf ../ooo-marker.service "$TARGET_ROOT/etc/systemd/system/multi-user.target.wants/ooo-marker.service"\nelse\n  rm -rf "$TARGET_ROOT/etc/systemd/system/ooo-marker.service"\nfi\n',
  });
  return dir;
}

export interface BootResult { found: boolean; seconds: number; serial: string }

/** Boot qemu (TCG) and wait for `marker` on the serial console. */
export async function bootUntil(args: string[], marker: string, timeoutMs: number, serialFile: string): Promise<BootResult> {
  const t0 = Date.now();
  writeFileSync(serialFile, '');
  const child = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-m', '512', '-smp', '1', '-nographic', '-monitor', 'none', '-no-reboot', '-serial', `file:${serialFile}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  let exited = false;
  child.on('exit', () => { exited = true; });
  try {
    while (Date.now() - t0 < timeoutMs) {
      const serial = existsSync(serialFile) ? readFileSync(serialFile, 'latin1') : '';
      if (serial.includes(marker)) return { found: true, seconds: (Date.now() - t0) / 1000, serial };
      if (exited) return { found: false, seconds: (Date.now() - t0) / 1000, serial: serial + '\n[qemu exited] ' + stderr };
      await new Promise((r) => setTimeout(r, 250));
    }
    return { found: false, seconds: (Date.now() - t0) / 1000, serial: readFileSync(serialFile, 'latin1') + '\n[timeout] ' + stderr };
  } finally {
    if (!exited) child.kill('SIGKILL');
  }
}
