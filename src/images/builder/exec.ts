/** Running external programs for the image builder: clear errors, the last lines of output kept. */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, createWriteStream, WriteStream } from 'node:fs';
import { delimiter, join } from 'node:path';

export class ToolMissingError extends Error {
  constructor(readonly tool: string, readonly pkg: string) {
    super(`'${tool}' is not installed (Debian package ${pkg}; see scripts/packages/images.txt)`);
  }
}

/** Tool name -> the Debian package providing it. */
export const TOOL_PACKAGES: Record<string, string> = {
  busybox: 'busybox-static', debootstrap: 'debootstrap', 'qemu-img': 'qemu-utils',
  'qemu-system-x86_64': 'qemu-system-x86', mcopy: 'mtools', mmd: 'mtools', 'mkfs.vfat': 'dosfstools',
  syslinux: 'syslinux', mke2fs: 'e2fsprogs', debugfs: 'e2fsprogs', dumpe2fs: 'e2fsprogs', sfdisk: 'fdisk',
  zstd: 'zstd', tar: 'tar', 'dpkg-deb': 'dpkg', depmod: 'kmod', chroot: 'coreutils', mount: 'mount',
};

export function which(tool: string, path = process.env.PATH ?? ''): string | undefined {
  for (const d of [...path.split(delimiter), '/usr/sbin', '/sbin']) {
    if (!d) continue;
    const p = join(d, tool);
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  return undefined;
}

export function requireTool(tool: string): string {
  const p = which(tool);
  if (!p) throw new ToolMissingError(tool, TOOL_PACKAGES[tool] ?? tool);
  return p;
}

export class CommandError extends Error {
  constructor(message: string, readonly code: number | null, readonly tail: string[]) { super(message); }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Each line of output (stdout and stderr interleaved). */
  onLine?: (line: string) => void;
  /** Append all output here too. */
  log?: WriteStream;
  /** How many trailing lines to keep for error reports. */
  keep?: number;
  input?: string;
}

/** Run a program; resolves with its exit code and the last lines it printed. */
export function runCapture(cmd: string, args: string[], opts: RunOptions = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; tail: string[] }> {
  const keep = opts.keep ?? 25;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const partial = { out: '', err: '' };
    const feed = (which: 'out' | 'err', chunk: Buffer) => {
      opts.log?.write(chunk);
      const text = partial[which] + chunk.toString('utf8');
      const lines = text.split('\n');
      partial[which] = lines.pop() ?? '';
      for (const l of lines) {
        tail.push(l);
        if (tail.length > keep) tail.shift();
        opts.onLine?.(l);
      }
    };
    child.stdout!.on('data', (c: Buffer) => feed('out', c));
    child.stderr!.on('data', (c: Buffer) => feed('err', c));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      for (const w of ['out', 'err'] as const) if (partial[w]) { tail.push(partial[w]); opts.onLine?.(partial[w]); }
      while (tail.length > keep) tail.shift();
      resolve({ code, signal, tail });
    });
  });
}

/** Run a program that must succeed; the error names the command and shows its last lines. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string[]> {
  const r = await runCapture(cmd, args, opts);
  if (r.code !== 0) {
    throw new CommandError(`${cmd} ${args.join(' ')} failed (${r.signal ? `signal ${r.signal}` : `exit ${r.code}`}):\n  ${r.tail.join('\n  ')}`, r.code, r.tail);
  }
  return r.tail;
}

/** Run and return stdout (small outputs only). */
export function output(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { env: env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new CommandError(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`, r.status, r.stderr.split('\n').slice(-25));
  return r.stdout;
}

export function logStream(path: string): WriteStream {
  return createWriteStream(path, { flags: 'a' });
}
