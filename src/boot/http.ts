/**
 * HTTP for network boot, as plain node:http request handlers that any server can mount:
 *  - GET /boot.ipxe            the chain script DHCP hands to iPXE
 *  - GET /boot/<mac>.ipxe      the node's script, from a provider callback (MAC as 52-54-00-..,
 *                              52:54:00:.. or 525400..; the provider gets 52:54:00:..)
 *  - GET /boot/files/<path>    static files (kernels, initramfs), streamed, with Range, HEAD,
 *                              ETag/Last-Modified
 * Each handler returns false when the request is not its own, so that handlers can be chained.
 * Scripts carry agent tokens: they are never logged or cached.
 */
import { createReadStream, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, sep } from 'node:path';
import { normaliseMac, renderChainScript } from './ipxe.js';

export type BootHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** The node's script for this MAC, or undefined when the MAC is unknown (404). */
export type ScriptProvider = (mac: string, req: IncomingMessage) => string | undefined | Promise<string | undefined>;

export interface BootHttpOptions {
  /** Base URL the machines reach this server at (used in boot.ipxe); a function gets it from the request (e.g. its Host). */
  baseUrl: string | ((req: IncomingMessage) => string);
  scriptFor: ScriptProvider;
  /** Directory served under /boot/files/ (omit for none). */
  filesDir?: string;
  /** Request log (method, path, status, bytes; never bodies). */
  log?: (line: string) => void;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

/** Serve iPXE scripts: /boot.ipxe and /boot/<mac>.ipxe. */
export function ipxeScriptHandler(o: BootHttpOptions): BootHandler {
  const fixed = typeof o.baseUrl === 'string' ? renderChainScript({ baseUrl: o.baseUrl }) : undefined;
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/boot.ipxe' && !/^\/boot\/[^/]+\.ipxe$/.test(path)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.setHeader('Allow', 'GET, HEAD'); send(res, 405, 'method not allowed\n'); return true; }
    if (path === '/boot.ipxe') { send(res, 200, fixed ?? renderChainScript({ baseUrl: (o.baseUrl as (r: IncomingMessage) => string)(req) })); o.log?.(`GET /boot.ipxe 200`); return true; }
    const raw = decodeURIComponent(path.slice('/boot/'.length, -'.ipxe'.length));
    const mac = normaliseMac(raw);
    if (!mac) { send(res, 400, `'${raw}' is not a MAC address\n`); o.log?.(`GET ${path} 400`); return true; }
    let script: string | undefined;
    try { script = await o.scriptFor(mac, req); } catch (e) {
      send(res, 500, `#!ipxe\necho ooo: the seed failed to make a boot script: ${(e as Error).message.replace(/[\r\n$]/g, ' ')}\n`);
      o.log?.(`GET /boot/${mac}.ipxe 500 ${(e as Error).message}`);
      return true;
    }
    if (script === undefined) { send(res, 404, `no boot script for ${mac}\n`); o.log?.(`GET /boot/${mac}.ipxe 404`); return true; }
    send(res, 200, req.method === 'HEAD' ? '' : script);
    o.log?.(`GET /boot/${mac}.ipxe 200`);
    return true;
  };
}

/** Parse a single-range Range header against `size`: [start, end] inclusive, 'bad' (unsatisfiable: 416) or undefined (whole). */
export function parseRange(h: string | undefined, size: number): [number, number] | 'bad' | undefined {
  if (!h) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  // Malformed or multi-range headers are ignored (the whole file is sent), as RFC 9110 allows.
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'bad';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return 'bad';
  return [start, end];
}

/** Serve files from `dir` under `prefix` (default /boot/files/): streamed, Range, HEAD, conditional GET. */
export function staticFileHandler(dir: string, prefix = '/boot/files/', log?: (line: string) => void): BootHandler {
  let root: string | undefined;
  return async (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (!url.startsWith(prefix)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.setHeader('Allow', 'GET, HEAD'); send(res, 405, 'method not allowed\n'); return true; }
    root ??= realpathSync(dir);
    let rel: string;
    try { rel = decodeURIComponent(url.slice(prefix.length)); } catch { send(res, 400, 'bad path\n'); return true; }
    if (!rel || rel.split('/').some((p) => p === '..' || p === '.' || p === '') || rel.includes('\0')) { send(res, 404, 'not found\n'); log?.(`${req.method} ${url} 404`); return true; }
    let file: string, st: ReturnType<typeof statSync>;
    try {
      file = realpathSync(join(root, rel));
      if (!file.startsWith(root + sep)) throw new Error('outside');
      st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
    } catch { send(res, 404, 'not found\n'); log?.(`${req.method} ${url} 404`); return true; }
    const size = st.size;
    const etag = `"${st.ino.toString(16)}-${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const lastModified = st.mtime.toUTCString();
    const headers: Record<string, string | number> = { 'Accept-Ranges': 'bytes', ETag: etag, 'Last-Modified': lastModified, 'Content-Type': 'application/octet-stream' };
    if (req.headers['if-none-match'] === etag) { res.writeHead(304, headers); res.end(); return true; }
    let range = parseRange(req.headers.range, size);
    const ifRange = req.headers['if-range'];
    if (range && ifRange && ifRange !== etag && ifRange !== lastModified) range = undefined;
    if (range === 'bad') {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 });
      res.end();
      log?.(`${req.method} ${url} 416`);
      return true;
    }
    const [start, end] = range ?? [0, size - 1];
    const length = size === 0 ? 0 : end - start + 1;
    if (range) res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': length });
    else res.writeHead(200, { ...headers, 'Content-Length': length });
    if (req.method === 'HEAD' || length === 0) { res.end(); return true; }
    const t0 = Date.now();
    const stream = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
    await new Promise<void>((resolve) => {
      const finish = () => resolve();
      stream.on('error', (e) => { log?.(`${req.method} ${url} read error: ${e.message}`); res.destroy(); finish(); });
      res.on('close', () => { stream.destroy(); finish(); });
      res.on('finish', finish);
      stream.pipe(res);
    });
    log?.(`${req.method} ${url} ${range ? 206 : 200} ${length} bytes ${Date.now() - t0} ms`);
    return true;
  };
}

/** Scripts and files together; returns false for requests that are not boot requests. */
export function bootHttpHandler(o: BootHttpOptions): BootHandler {
  const scripts = ipxeScriptHandler(o);
  const files = o.filesDir ? staticFileHandler(o.filesDir, '/boot/files/', o.log) : undefined;
  return async (req, res) => {
    if (await scripts(req, res)) return true;
    if (files && (await files(req, res))) return true;
    return false;
  };
}
