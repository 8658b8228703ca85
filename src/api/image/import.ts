/**
 * Glance's interoperable image import, for the two sources a seed has: `web-download` (an
 * http/https URL reachable from the seed) and `ooo-local` (a file on the seed, administrators
 * only). The call answers 202 at once; the image goes queued -> importing -> active, or back
 * to queued with the reason in the read-only property os_glance_import_error.
 */
import http from 'node:http';
import https from 'node:https';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { Readable } from 'node:stream';
import { ApiError, badRequest, conflict, forbidden } from '../http.js';
import type { AuthContext } from '../auth.js';
import { now } from '../../util/ids.js';
import { logger } from '../../util/log.js';
import type { Image } from './images.js';
import type { ImageContext } from './routes.js';
import { ingest, requireFormats, staleBefore, TAKEABLE } from './routes.js';

const log = logger('image');
export const IMPORT_METHODS = ['web-download', 'ooo-local'] as const;
export const IMPORT_ERROR = 'os_glance_import_error';

interface Source { open(): Promise<{ stream: Readable; size?: number }>; describe: string }

/** Validates an import request, marks the image importing and starts the transfer in the background. */
export async function startImport(ctx: ImageContext, img: Image, body: unknown, a: AuthContext): Promise<void> {
  requireFormats(img);
  const method = (body as { method?: { name?: unknown; uri?: unknown; path?: unknown } } | undefined)?.method;
  if (!method || typeof method !== 'object') throw badRequest("The import request needs a 'method' object, e.g. {\"method\": {\"name\": \"web-download\", \"uri\": \"http://...\"}}.");
  let source: Source;
  if (method.name === 'web-download') {
    if (typeof method.uri !== 'string' || !method.uri) throw badRequest("web-download needs 'uri': the http or https URL of the image data.");
    let u: URL;
    try { u = new URL(method.uri); } catch { throw badRequest(`web-download: '${method.uri}' is not a valid URL.`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badRequest(`web-download: only http and https URLs are accepted, got '${u.protocol}'.`);
    source = { describe: redactUrl(u), open: () => fetchUrl(u, 5) };
  } else if (method.name === 'ooo-local') {
    if (!a.admin) throw forbidden('ooo-local import reads a file on the seed: only an administrator may use it.');
    const p = method.path;
    if (typeof p !== 'string' || !p) throw badRequest("ooo-local needs 'path': the absolute path of a file on the seed.");
    if (p.includes('\u0000')) throw badRequest('ooo-local: the path contains a NUL character.');
    if (!isAbsolute(p)) throw badRequest(`ooo-local: the path must be absolute, got '${p}'.`);
    if (p.split('/').includes('..')) throw badRequest(`ooo-local: the path must not contain '..', got '${p}'.`);
    const st = await stat(p).catch((e: NodeJS.ErrnoException) => { throw badRequest(`ooo-local: cannot read '${p}': ${e.code === 'ENOENT' ? 'no such file' : e.message}.`); });
    if (!st.isFile()) throw badRequest(`ooo-local: '${p}' is not a regular file.`);
    source = { describe: p, open: async () => ({ stream: createReadStream(p, { highWaterMark: 1 << 20 }), size: st.size }) };
  } else if (method.name === 'glance-direct') {
    throw badRequest("Import method 'glance-direct' is not offered: upload the data with PUT /v2/images/{id}/file.");
  } else {
    throw badRequest(`Unknown import method ${JSON.stringify(method.name)}: available are ${IMPORT_METHODS.join(', ')}.`);
  }
  const props = { ...img.properties };
  delete props[IMPORT_ERROR];
  const r = await ctx.db.run(`UPDATE images SET status = 'importing', properties = ?, updated_at = ? WHERE id = ? AND ${TAKEABLE}`, [JSON.stringify(props), now(), img.id, staleBefore()]);
  if (r.changes === 0) throw conflict(`Image ${img.id} is ${img.status}: only a queued image (no data yet) can be imported into.`);
  const store = ctx.store();
  log.info('image import started', { id: img.id, method: method.name, source: source.describe });
  void (async () => {
    try {
      await ingest(ctx, img, 'importing', async () => {
        const { stream, size } = await source.open();
        return store.receive(stream, { size }, img.disk_format);
      });
      log.info('image import finished', { id: img.id });
    } catch (e) {
      const msg = `import from ${source.describe} failed: ${(e as Error).message}`;
      log.warn('image import failed', { id: img.id, error: msg });
      try {
        const cur = await ctx.db.get<{ properties: string }>('SELECT properties FROM images WHERE id = ?', [img.id]);
        if (cur) {
          const p = JSON.parse(cur.properties || '{}') as Record<string, string>;
          p[IMPORT_ERROR] = msg;
          await ctx.db.run('UPDATE images SET properties = ?, updated_at = ? WHERE id = ?', [JSON.stringify(p), now(), img.id]);
        }
      } catch { /* the store is closing */ }
    }
  })();
}

function redactUrl(u: URL): string {
  const c = new URL(u.toString());
  if (c.password) c.password = '***';
  c.search = c.search ? '?...' : '';
  return c.toString();
}

function fetchUrl(u: URL, redirects: number): Promise<{ stream: Readable; size?: number }> {
  return new Promise((resolve, reject) => {
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.get(u, { timeout: 60_000, headers: { 'User-Agent': 'ooo-image-import' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects <= 0) { reject(new ApiError(400, `too many redirects from ${redactUrl(u)}`)); return; }
        let next: URL;
        try { next = new URL(res.headers.location, u); } catch { reject(new ApiError(400, `bad redirect location '${res.headers.location}'`)); return; }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') { reject(new ApiError(400, `redirect to a ${next.protocol} URL refused`)); return; }
        fetchUrl(next, redirects - 1).then(resolve, reject);
        return;
      }
      if (status !== 200) { res.resume(); reject(new ApiError(400, `${redactUrl(u)} answered HTTP ${status}`)); return; }
      const len = res.headers['content-length'];
      const enc = res.headers['content-encoding'];
      resolve({ stream: res, size: len !== undefined && (!enc || enc === 'identity') ? Number(len) : undefined });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${redactUrl(u)} for 60 s`)));
    req.on('error', (e) => reject(new ApiError(400, `cannot fetch ${redactUrl(u)}: ${e.message}`)));
  });
}
