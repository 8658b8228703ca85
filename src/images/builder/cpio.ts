/**
 * cpio "newc" (SVR4, no CRC) archive writer, the format the Linux kernel unpacks as an initramfs.
 *
 * Streamed (file contents are never held whole in memory) and deterministic: entries are sorted
 * bytewise by path, inode numbers are assigned in that order, owners are 0:0 and every mtime is
 * the given fixed time (SOURCE_DATE_EPOCH). Hard links are stored as independent files.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { PassThrough, Readable, Writable } from 'node:stream';
import { createGzip, constants as zc } from 'node:zlib';

export interface CpioOptions {
  /** Fixed mtime for every entry (seconds since the epoch). */
  mtime: number;
  /** Paths (relative, no leading slash) to leave out; a directory excludes its whole subtree. */
  exclude?: (relPath: string) => boolean;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

function hex8(n: number): string {
  if (n < 0 || n > 0xffffffff) throw new RangeError(`cpio newc field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

export interface CpioEntry {
  name: string;
  mode: number;
  size: number;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
  mtime: number;
  ino: number;
}

export function newcHeader(e: CpioEntry): Buffer {
  const nameBytes = Buffer.from(e.name + '\0', 'utf8');
  const fields = [e.ino, e.mode, 0, 0, e.nlink, e.mtime, e.size, 0, 0, e.rdevMajor, e.rdevMinor, nameBytes.length, 0];
  const head = Buffer.from('070701' + fields.map(hex8).join(''), 'ascii');
  const total = head.length + nameBytes.length;
  const pad = (4 - (total % 4)) % 4;
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad)]);
}

function padFor(size: number): Buffer {
  return Buffer.alloc((4 - (size % 4)) % 4);
}

/** Yields the archive's bytes for the tree at `root`. */
export async function* cpioChunks(root: string, opts: CpioOptions): AsyncGenerator<Buffer> {
  let ino = 1;
  async function* walk(dir: string, rel: string): AsyncGenerator<Buffer> {
    const names = (await readdir(dir)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (opts.exclude?.(r)) continue;
      const p = join(dir, n);
      const st = await lstat(p);
      const type = st.mode & S_IFMT;
      const perm = st.mode & 0o7777;
      const base = { name: r, mtime: opts.mtime, ino: ino++, rdevMajor: 0, rdevMinor: 0 };
      if (type === S_IFDIR) {
        yield newcHeader({ ...base, mode: S_IFDIR | perm, size: 0, nlink: 2 });
        yield* walk(p, r);
      } else if (type === S_IFREG) {
        yield newcHeader({ ...base, mode: S_IFREG | perm, size: st.size, nlink: 1 });
        let seen = 0;
        for await (const chunk of createReadStream(p, { highWaterMark: 1 << 20 })) {
          seen += (chunk as Buffer).length;
          if (seen > st.size) throw new Error(`${p} grew while being archived`);
          yield chunk as Buffer;
        }
        if (seen !== st.size) throw new Error(`${p} changed size while being archived`);
        yield padFor(st.size);
      } else if (type === S_IFLNK) {
        const target = Buffer.from(await readlink(p), 'utf8');
        yield newcHeader({ ...base, mode: S_IFLNK | 0o777, size: target.length, nlink: 1 });
        yield Buffer.concat([target, padFor(target.length)]);
      } else if (type === S_IFCHR || type === S_IFBLK) {
        const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn & 0xffffffffn);
        const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn & 0xffffffffn);
        yield newcHeader({ ...base, mode: type | perm, size: 0, nlink: 1, rdevMajor: major, rdevMinor: minor });
      } else if (type === S_IFIFO || type === S_IFSOCK) {
        yield newcHeader({ ...base, mode: type | perm, size: 0, nlink: 1 });
      }
    }
  }
  yield* walk(root, '');
  yield newcHeader({ name: 'TRAILER!!!', mode: 0, size: 0, nlink: 1, rdevMajor: 0, rdevMinor: 0, mtime: 0, ino: 0 });
}

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * Write `root` as a (compressed) newc archive to `dest`. gzip uses node's zlib (its header
 * carries no timestamp or name, so output is deterministic); zstd runs the `zstd` program.
 */
export async function writeCpio(root: string, dest: string, opts: CpioOptions & { compression?: Compression; level?: number }): Promise<void> {
  const compression = opts.compression ?? 'gzip';
  const src = Readable.from(cpioChunks(root, opts), { objectMode: false });
  const out = createWriteStream(dest);
  if (compression === 'none') return pipeline(src, out);
  if (compression === 'gzip') return pipeline(src, createGzip({ level: opts.level ?? 6, memLevel: 9, strategy: zc.Z_DEFAULT_STRATEGY }), out);
  const child = spawn('zstd', ['-q', `-${opts.level ?? 3}`, '-T1', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise<void>((res, rej) => {
    child.on('error', (e) => rej(new Error(`cannot run zstd: ${e.message} (install the zstd package)`)));
    child.on('close', (code) => (code === 0 ? res() : rej(new Error(`zstd exited with ${code}: ${err.trim()}`))));
  });
  await Promise.all([pipeline(src, child.stdin as Writable), pipeline(child.stdout, out), exited]);
}

/** A PassThrough-based helper for tests: the whole archive as one buffer (small trees only). */
export async function cpioBuffer(root: string, opts: CpioOptions): Promise<Buffer> {
  const parts: Buffer[] = [];
  const pt = new PassThrough();
  pt.on('data', (c: Buffer) => parts.push(c));
  await pipeline(Readable.from(cpioChunks(root, opts)), pt);
  return Buffer.concat(parts);
}
