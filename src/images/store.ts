/**
 * The image store: image data as content-addressed files under DATA_DIR/images, named by the
 * sha256 of their bytes, never by anything a client chose.
 *
 *   images/sha256/ab/abcdef...      image data (read-only once in place)
 *   images/raw/abcdef....raw        raw conversion of a qcow2/vdi/vhd(x) image, keyed by its source
 *   images/raw/abcdef....json       {size, sha256} of that conversion, written last
 *   images/tmp/                     uploads and conversions in progress (same file system: rename is atomic)
 *
 * An upload streams to a temporary file while md5 (Glance's `checksum`), sha256 (the address)
 * and sha512 (`os_hash_value`) are computed; only verified, complete data is renamed into place,
 * so a half-written image is never visible. Memory use does not depend on the image size.
 */
import { createHash, randomBytes, Hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { open, readFile, rename, rm, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A problem with the data a client sent: `status` is the HTTP status it deserves. */
export class ImageDataError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

export interface Digests { size: number; md5: string; sha256: string; sha512: string }

export interface Expected {
  /** Exact byte count (Content-Length, or a size from a manifest). */
  size?: number;
  md5?: string;
  sha256?: string;
  sha512?: string;
}

/** Data received and verified, not yet in place. */
export interface Staged extends Digests {
  virtualSize: number | null;
  /** Renames the data into place (idempotent for identical content). */
  commit(): Promise<void>;
  /** Drops the data (after a failed database update, say). */
  discard(): Promise<void>;
}

/** Formats qemu-img can describe, and the name qemu-img gives them. */
const QEMU_FORMAT: Record<string, string> = { qcow2: 'qcow2', vmdk: 'vmdk', vdi: 'vdi', vhd: 'vpc', vhdx: 'vhdx' };
/**
 * Formats that /raw converts. vmdk is served as uploaded: a vmdk descriptor may name extent
 * files on the host, which a conversion would read.
 */
const CONVERTIBLE = new Set(['qcow2', 'vdi', 'vhd', 'vhdx']);

class HashingCounter extends Transform {
  readonly md5: Hash = createHash('md5');
  readonly sha256: Hash = createHash('sha256');
  readonly sha512: Hash = createHash('sha512');
  size = 0;
  constructor(private readonly limit?: number) { super({ highWaterMark: 1 << 20 }); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.limit !== undefined && this.size > this.limit) {
      cb(new ImageDataError(400, `the image data is larger than the expected ${this.limit} bytes`));
      return;
    }
    this.md5.update(chunk);
    this.sha256.update(chunk);
    this.sha512.update(chunk);
    cb(null, chunk);
  }
}

const HEX = { md5: /^[0-9a-f]{32}$/, sha256: /^[0-9a-f]{64}$/, sha512: /^[0-9a-f]{128}$/ };

export class ImageStore {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly converting = new Map<string, Promise<RawImage>>();

  constructor(readonly root: string) {
    for (const d of ['sha256', 'raw', 'tmp']) mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
    this.sweepTmp();
  }

  /** Leftovers of a crash: temporary files nobody has written to for an hour. */
  private sweepTmp(): void {
    const dir = join(this.root, 'tmp');
    const cutoff = Date.now() - 3600_000;
    for (const f of readdirSync(dir)) {
      try { if (statSync(join(dir, f)).mtimeMs < cutoff) unlinkSync(join(dir, f)); } catch { /* gone already */ }
    }
  }

  blobPath(sha256: string): string {
    if (!HEX.sha256.test(sha256)) throw new Error(`not a sha256: '${sha256}'`);
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  private tmpPath(what: string): string {
    return join(this.root, 'tmp', `${what}-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /** Runs fn while no other upload, delete or conversion of the same content runs in this process. */
  async locked<T>(sha256: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(sha256) ?? Promise.resolve();
    const mine = prev.catch(() => undefined).then(fn);
    const tail = mine.catch(() => undefined);
    this.locks.set(sha256, tail);
    try { return await mine; } finally { if (this.locks.get(sha256) === tail) this.locks.delete(sha256); }
  }

  /**
   * Receives image data from a stream into a temporary file, verifying what the caller expects.
   * Nothing is kept when the stream fails, is shorter or longer than expected, is empty, or does
   * not match a given checksum. `diskFormat` is checked with qemu-img for the formats it knows.
   */
  async receive(input: Readable, expected: Expected = {}, diskFormat?: string | null): Promise<Staged> {
    for (const k of ['md5', 'sha256', 'sha512'] as const) {
      const v = expected[k];
      if (v !== undefined && !HEX[k].test(v)) throw new ImageDataError(400, `the expected ${k} '${v}' is not ${k === 'md5' ? 32 : k === 'sha256' ? 64 : 128} hexadecimal digits`);
    }
    if (expected.size !== undefined) {
      if (expected.size === 0) throw new ImageDataError(400, 'the image data is empty (0 bytes): an image needs data');
      const fs = await statfs(join(this.root, 'tmp')).catch(() => undefined);
      if (fs && fs.bavail * fs.bsize < expected.size) {
        throw new ImageDataError(413, `not enough space in the image store for ${expected.size} bytes (${fs.bavail * fs.bsize} free under ${this.root})`);
      }
    }
    const tmp = this.tmpPath('upload');
    const counter = new HashingCounter(expected.size);
    try {
      await pipeline(input, counter, createWriteStream(tmp, { flags: 'wx', mode: 0o640, highWaterMark: 1 << 20 }));
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      if (e instanceof ImageDataError) throw e;
      const got = counter.size;
      throw new ImageDataError(400, `the upload was interrupted after ${got} bytes${expected.size !== undefined ? ` of ${expected.size}` : ''} (${(e as Error).message}); no image data was kept`);
    }
    const d: Digests = { size: counter.size, md5: counter.md5.digest('hex'), sha256: counter.sha256.digest('hex'), sha512: counter.sha512.digest('hex') };
    const fail = async (status: number, msg: string): Promise<never> => {
      await unlink(tmp).catch(() => undefined);
      throw new ImageDataError(status, msg);
    };
    if (d.size === 0) await fail(400, 'the image data is empty (0 bytes): an image needs data');
    if (expected.size !== undefined && d.size !== expected.size) await fail(400, `the upload ended after ${d.size} of ${expected.size} bytes; no image data was kept`);
    for (const k of ['md5', 'sha256', 'sha512'] as const) {
      if (expected[k] && expected[k] !== d[k]) await fail(400, `${k} mismatch: the client gave ${expected[k]}, the data received has ${d[k]}; no image data was kept`);
    }
    let virtualSize: number | null = null;
    try {
      virtualSize = await this.inspect(tmp, diskFormat ?? undefined, d.size);
    } catch (e) {
      await fail(400, (e as Error).message);
    }
    // Durable before visible.
    const fh = await open(tmp, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
    const dest = this.blobPath(d.sha256);
    let done = false;
    return {
      ...d, virtualSize,
      commit: async () => {
        if (done) return;
        mkdirSync(join(dest, '..'), { recursive: true, mode: 0o700 });
        await rename(tmp, dest);
        done = true;
      },
      discard: async () => { if (!done) await unlink(tmp).catch(() => undefined); done = true; },
    };
  }

  /**
   * Checks data against its declared disk format and returns its virtual size: qemu-img for
   * the formats it knows (a qcow2 with a backing or external data file is refused: converting
   * it would read other files of this host), the byte size for raw and iso, null otherwise.
   */
  async inspect(path: string, diskFormat: string | undefined, size: number): Promise<number | null> {
    if (diskFormat === 'raw' || diskFormat === 'iso') return size;
    const fmt = diskFormat ? QEMU_FORMAT[diskFormat] : undefined;
    if (!fmt) return null;
    let info: Record<string, unknown>;
    try {
      const r = await run('qemu-img', ['info', '--output=json', '-f', fmt, path], { maxBuffer: 4 << 20, timeout: 60_000 });
      info = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === 'ENOENT') return null; // qemu-img is not installed: nothing to check with
      const why = (err.stderr ?? err.message).trim().split('\n').pop()?.replace(/^qemu-img: /, '').replace(path, 'the data') ?? '';
      throw new Error(`the data is not a valid ${diskFormat} image: ${why}`);
    }
    if (info['backing-filename'] || info['full-backing-filename']) throw new Error(`${diskFormat} images with a backing file are refused: upload a self-contained image (qemu-img convert -O ${diskFormat} ...)`);
    const specific = (info['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data;
    if (specific?.['data-file']) throw new Error(`${diskFormat} images with an external data file are refused`);
    const vs = Number(info['virtual-size']);
    return Number.isFinite(vs) ? vs : null;
  }

  /** Removes the data of an image (and its raw conversion). Call under locked(sha256). */
  async remove(sha256: string): Promise<void> {
    await rm(this.blobPath(sha256), { force: true });
    await rm(join(this.root, 'raw', `${sha256}.json`), { force: true });
    await rm(join(this.root, 'raw', `${sha256}.raw`), { force: true });
  }

  async has(sha256: string): Promise<boolean> {
    return stat(this.blobPath(sha256)).then(() => true, () => false);
  }

  /**
   * The raw form of an image: the data itself for raw and iso, else a conversion made once with
   * `qemu-img convert` and kept; concurrent callers share one conversion.
   */
  async raw(sha256: string, diskFormat: string, size: number): Promise<RawImage> {
    if (diskFormat === 'raw' || diskFormat === 'iso') return { path: this.blobPath(sha256), size, sha256 };
    if (!CONVERTIBLE.has(diskFormat)) {
      throw new ImageDataError(400, `images in disk_format '${diskFormat}' are not converted to raw (converted: ${[...CONVERTIBLE].join(', ')}; raw and iso are served as they are)`);
    }
    const cached = await this.cachedRaw(sha256);
    if (cached) return cached;
    let p = this.converting.get(sha256);
    if (!p) {
      p = this.convert(sha256, diskFormat).finally(() => this.converting.delete(sha256));
      this.converting.set(sha256, p);
    }
    return p;
  }

  private async cachedRaw(sha256: string): Promise<RawImage | undefined> {
    const meta = join(this.root, 'raw', `${sha256}.json`);
    try {
      const m = JSON.parse(await readFile(meta, 'utf8')) as { size: number; sha256: string };
      const path = join(this.root, 'raw', `${sha256}.raw`);
      await stat(path);
      return { path, size: m.size, sha256: m.sha256 };
    } catch { return undefined; }
  }

  private async convert(sha256: string, diskFormat: string): Promise<RawImage> {
    const src = this.blobPath(sha256);
    const tmp = this.tmpPath('raw');
    try {
      // The stored data passed inspect() at upload; check again in case it came from elsewhere.
      await this.inspect(src, diskFormat, 0).catch((e: Error) => { throw new ImageDataError(400, e.message); });
      try {
        await run('qemu-img', ['convert', '-f', QEMU_FORMAT[diskFormat]!, '-O', 'raw', src, tmp], { maxBuffer: 4 << 20 });
      } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: string };
        if (err.code === 'ENOENT') throw new ImageDataError(503, 'qemu-img is not installed on the seed (Debian package qemu-utils): images can not be converted to raw');
        throw new ImageDataError(500, `converting the ${diskFormat} image to raw failed: ${(err.stderr ?? err.message).trim().split('\n').pop()}`);
      }
      const h = createHash('sha256');
      let size = 0;
      await pipeline(createReadStream(tmp, { highWaterMark: 1 << 20 }), async function* (src: AsyncIterable<Buffer>) {
        for await (const c of src) { h.update(c); size += c.length; }
      });
      const out = { size, sha256: h.digest('hex') };
      const path = join(this.root, 'raw', `${sha256}.raw`);
      await rename(tmp, path);
      const metaTmp = this.tmpPath('rawmeta');
      await writeFile(metaTmp, JSON.stringify(out));
      await rename(metaTmp, join(this.root, 'raw', `${sha256}.json`));
      // The image went away while it was converted: keep no orphan (this download still has its data).
      if (!(await this.has(sha256))) await this.locked(sha256, async () => { if (!(await this.has(sha256))) await this.remove(sha256); });
      return { path, ...out };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }
}

export interface RawImage { path: string; size: number; sha256: string }

/** Formats the image API accepts. */
export const DISK_FORMATS = ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'] as const;
export const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'] as const;
