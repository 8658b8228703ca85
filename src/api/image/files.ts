/**
 * Sending image data over HTTP: an open file streamed to the response (flat memory), with
 * single byte-range support (206 / 416) and HEAD.
 */
import type http from 'node:http';
import { read } from 'node:fs';
import { open } from 'node:fs/promises';
import { ApiError, Response } from '../http.js';

/** Parses a Range header against a size: undefined when absent; throws 416 when unusable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const unsatisfiable = (why: string) => new ApiError(416, `Requested range not satisfiable: ${why}.`, { 'Content-Range': `bytes */${size}` });
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) throw unsatisfiable(header.includes(',') ? `only one range may be requested, got '${header}'` : `'${header}' is not of the form bytes=START-END, bytes=START- or bytes=-LENGTH`);
  const [, a, b] = m;
  if (a === '' && b === '') throw unsatisfiable(`'${header}' names no bytes`);
  let start: number;
  let end: number;
  if (a === '') {
    const n = Number(b);
    if (n === 0) throw unsatisfiable('a suffix range of 0 bytes is empty');
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) throw unsatisfiable(`the range ends (${b}) before it starts (${a})`);
  }
  if (start >= size) throw unsatisfiable(`the range starts at ${start}, the image has ${size} bytes`);
  return { start, end };
}

const CHUNK = 2 << 20;

/**
 * Copies bytes [start, end] of a file to a response through two reused 2 MiB buffers: one is
 * read while the other is being written, and a buffer is refilled only once the socket has
 * taken it. No allocation per chunk, so serving does not churn the garbage collector, and at
 * most 4 MiB per download is in flight whatever the image size.
 */
async function copyRange(fd: number, start: number, end: number, res: http.ServerResponse): Promise<void> {
  let gone: ((e: Error) => void) | undefined;
  const closed = new Promise<never>((_, reject) => { gone = reject; });
  closed.catch(() => undefined);
  const onClose = () => { if (!res.writableFinished) gone!(Object.assign(new Error('client went away'), { code: 'ECONNRESET' })); };
  res.on('close', onClose);
  try {
    const bufs = [Buffer.allocUnsafeSlow(CHUNK), Buffer.allocUnsafeSlow(CHUNK)];
    const inFlight: (Promise<void> | undefined)[] = [undefined, undefined];
    let pos = start;
    let i = 0;
    while (pos <= end) {
      const buf = bufs[i]!;
      if (inFlight[i]) await Promise.race([inFlight[i], closed]);
      const want = Math.min(CHUNK, end - pos + 1);
      const n = await Promise.race([new Promise<number>((resolve, reject) => read(fd, buf, 0, want, pos, (e, got) => (e ? reject(e) : resolve(got)))), closed]);
      if (n === 0) throw new Error(`the image file ended at byte ${pos}, before ${end + 1}`);
      inFlight[i] = new Promise<void>((resolve, reject) => { res.write(buf.subarray(0, n), (e) => (e ? reject(e) : resolve())); });
      inFlight[i]!.catch(() => undefined);
      pos += n;
      i ^= 1;
    }
    await Promise.race([Promise.all(inFlight), closed]);
    await Promise.race([new Promise<void>((resolve) => res.end(resolve)), closed]);
  } finally {
    res.off('close', onClose);
  }
}

const GONE = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED']);

/**
 * A streamed file response. The file is opened before the status is sent, so a missing file
 * is a clean error; once open, its data stays readable even if the image is deleted meanwhile.
 */
export async function fileResponse(path: string, opts: { method: string; range?: string; headers?: Record<string, string | number>; what: string; md5?: string | null }): Promise<Response> {
  let fh;
  try { fh = await open(path, 'r'); } catch (e) {
    throw new ApiError(500, `the data of ${opts.what} is missing from the image store (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const size = (await fh.stat()).size;
    const range = parseRange(opts.range, size);
    const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', ...opts.headers };
    let status = 200;
    let start = 0;
    let end = size - 1;
    if (range) {
      ({ start, end } = range);
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    } else if (opts.md5) headers['Content-MD5'] = opts.md5;
    headers['Content-Length'] = end - start + 1;
    const handle = fh;
    return {
      status, headers,
      stream: async (res: http.ServerResponse) => {
        try {
          if (opts.method === 'HEAD' || size === 0) { res.end(); return; }
          await copyRange(handle.fd, start, end, res);
        } catch (e) {
          if (!GONE.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
        } finally {
          await handle.close().catch(() => undefined);
        }
      },
    };
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}
