/**
 * The image API (a Glance v2 compatible subset) under /image: create, upload (streamed),
 * import (web-download from a URL, ooo-local from a path on the seed), download (streamed,
 * byte ranges), list with Glance's filters and pagination, show, JSON-Patch update, tags,
 * delete (refused while a node deploys or runs the image), schemas and import info.
 * Errors have Glance's body shape. Image data lives in the content-addressed ImageStore.
 */
import { join } from 'node:path';
import type { Db } from '../../store/db.js';
import { ApiError, Request, Response, Router, badRequest, conflict, forbidden, notFound } from '../http.js';
import { AuthContext, authOf, requireWriter } from '../auth.js';
import { canonicalUuid, isUuid, now, uuid } from '../../util/ids.js';
import { applyPatch, PatchError } from '../../util/jsonpatch.js';
import { logger } from '../../util/log.js';
import { CONTAINER_FORMATS, DISK_FORMATS, Expected, ImageDataError, ImageStore, Staged } from '../../images/store.js';
import {
  Image, READ_ONLY, VISIBILITIES, WRITABLE_CORE, dataReferenced, getImage, imageBody, insertImage, listImages, nodesUsing, parseSort, saveImage,
} from './images.js';
import { fileResponse } from './files.js';
import { startImport, IMPORT_METHODS } from './import.js';
import { serveRoutes } from './serve.js';
import { imageSchema, imagesSchema } from './schemas.js';

export const IMAGE_PREFIX = '/image';
const V2 = `${IMAGE_PREFIX}/v2`;
const log = logger('image');

const PATCH_TYPES = ['application/openstack-images-v2.1-json-patch', 'application/openstack-images-v2.0-json-patch'];

/** An upload or import whose process died shows no progress for this long; the image then takes new data. */
export const STALE_MS = 120_000;
export const staleBefore = (): string => new Date(Date.now() - STALE_MS).toISOString();
/** SQL: the image may receive data now (one parameter: staleBefore()). */
export const TAKEABLE = "(status = 'queued' OR (status IN ('saving', 'importing') AND updated_at < ?))";

export interface ImageContext {
  db: Db;
  store(): ImageStore;
}

/** Registers the image API (and the plain /images serving endpoints) on the router. */
export function imageRoutes(router: Router, db: Db, publicUrl: () => string, dataDir?: string): ImageContext {
  let store: ImageStore | undefined;
  const ctx: ImageContext = {
    db,
    store() {
      if (!dataDir) throw new ApiError(503, 'the image service has no data directory configured on this API server');
      store ??= new ImageStore(join(dataDir, 'images'));
      return store;
    },
  };
  const g = { style: 'glance' as const };
  const pub = { style: 'glance' as const, public: true };

  const versions = (req: Request) => ({
    versions: ['2.16', '2.15', '2.9', '2.0'].map((v, i) => ({
      id: `v${v}`, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href: `${publicUrl() || req.baseUrl}${IMAGE_PREFIX}/v2/` }],
    })),
  });
  router.add(pub, 'GET', IMAGE_PREFIX, (req) => ({ status: 300, body: versions(req) }));
  router.add(pub, 'GET', `${IMAGE_PREFIX}/versions`, (req) => ({ body: versions(req) }));
  router.add(pub, 'GET', V2, (req) => ({ status: 300, body: versions(req) }));

  router.add(g, 'GET', `${V2}/schemas/image`, () => ({ body: imageSchema() }));
  router.add(g, 'GET', `${V2}/schemas/images`, () => ({ body: imagesSchema() }));
  router.add(g, 'GET', `${V2}/info/import`, () => ({
    body: { 'import-methods': { description: 'Import methods available.', type: 'array', value: [...IMPORT_METHODS] } },
  }));

  router.add(g, 'GET', `${V2}/images`, async (req) => listRoute(db, req));
  router.add(g, 'POST', `${V2}/images`, async (req) => createRoute(db, req));
  router.add(g, 'GET', `${V2}/images/:id`, async (req) => ({ body: imageBody(await visible(db, req)) }));
  router.add(g, 'PATCH', `${V2}/images/:id`, async (req) => patchRoute(db, req));
  router.add(g, 'DELETE', `${V2}/images/:id`, async (req) => deleteRoute(ctx, req));
  router.add({ ...g, streamBody: true }, 'PUT', `${V2}/images/:id/file`, async (req) => uploadRoute(ctx, req));
  router.add(g, 'GET', `${V2}/images/:id/file`, async (req) => downloadRoute(ctx, req));
  router.add(g, 'PUT', `${V2}/images/:id/tags/:tag`, async (req) => tagRoute(db, req, true));
  router.add(g, 'DELETE', `${V2}/images/:id/tags/:tag`, async (req) => tagRoute(db, req, false));
  router.add(g, 'POST', `${V2}/images/:id/import`, async (req) => {
    const img = await writable(db, req);
    await startImport(ctx, img, req.body, authOf(req));
    return { status: 202 };
  });
  router.add(g, 'POST', `${V2}/images/:id/actions/deactivate`, async (req) => action(db, req, 'active', 'deactivated'));
  router.add(g, 'POST', `${V2}/images/:id/actions/reactivate`, async (req) => action(db, req, 'deactivated', 'active'));
  serveRoutes(router, ctx);
  return ctx;
}

// ---- access -------------------------------------------------------------------------------

function mayRead(a: AuthContext, img: Image): boolean {
  return a.admin || img.visibility === 'public' || img.visibility === 'community' || (!!a.projectId && img.owner === a.projectId);
}

function imageId(req: Request): string {
  const id = req.params.id!;
  if (!isUuid(id)) throw notFound(`No image found with ID ${id}`);
  return canonicalUuid(id);
}

async function visible(db: Db, req: Request): Promise<Image> {
  const id = imageId(req);
  const img = await getImage(db, id);
  if (!img || !mayRead(authOf(req), img)) throw notFound(`No image found with ID ${id}`);
  return img;
}

async function writable(db: Db, req: Request): Promise<Image> {
  const img = await visible(db, req);
  const a = requireWriter(req);
  if (!a.admin && img.owner !== a.projectId) throw forbidden(`You are not permitted to modify image ${img.id}: it belongs to another project.`);
  return img;
}

// ---- validation ---------------------------------------------------------------------------

function checkString(field: string, v: unknown, max = 255, nullable = false): string | null {
  if (v === null && nullable) return null;
  if (typeof v !== 'string') throw badRequest(`Invalid value for '${field}': it must be a string${nullable ? ' or null' : ''}, got ${JSON.stringify(v)}.`);
  if (v.includes('\u0000')) throw badRequest(`Invalid value for '${field}': it contains a NUL character.`);
  if (v.length > max) throw badRequest(`Invalid value for '${field}': it is longer than ${max} characters.`);
  return v;
}

function checkEnum(field: string, v: unknown, allowed: readonly string[]): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || !allowed.includes(v)) throw badRequest(`Invalid value ${JSON.stringify(v)} for '${field}': it must be one of ${allowed.join(', ')}.`);
  return v;
}

function checkInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) throw badRequest(`Invalid value for '${field}': it must be a non-negative integer, got ${JSON.stringify(v)}.`);
  return v;
}

function checkBool(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw badRequest(`Invalid value for '${field}': it must be true or false, got ${JSON.stringify(v)}.`);
  return v;
}

function checkTags(v: unknown): string[] {
  if (!Array.isArray(v)) throw badRequest(`Invalid value for 'tags': it must be a list of strings.`);
  if (v.length > 128) throw badRequest(`Invalid value for 'tags': at most 128 tags, got ${v.length}.`);
  return [...new Set(v.map((t, i) => checkString(`tags[${i}]`, t)!))];
}

function checkPropertyName(k: string): void {
  if (READ_ONLY.has(k)) throw forbidden(`Attribute '${k}' is read-only.`);
  if (k.startsWith('os_glance')) throw forbidden(`Attribute '${k}' is reserved.`);
  if (!k || k.length > 255 || k.includes('\u0000') || k.includes('/')) throw badRequest(`Invalid property name ${JSON.stringify(k)}: 1 to 255 characters, no '/' or NUL.`);
}

/** Sets one field (core or property) of an image from client input, checking it. */
function setField(img: Image, a: AuthContext, k: string, v: unknown): void {
  switch (k) {
    case 'name': img.name = checkString('name', v, 255, true); return;
    case 'disk_format': img.disk_format = checkEnum('disk_format', v, DISK_FORMATS); return;
    case 'container_format': img.container_format = checkEnum('container_format', v, CONTAINER_FORMATS); return;
    case 'visibility': {
      const vis = checkEnum('visibility', v, VISIBILITIES);
      if (vis === null) throw badRequest("Invalid value null for 'visibility'.");
      if (vis === 'public' && !a.admin) throw forbidden('Only an administrator may publicize an image (visibility public).');
      img.visibility = vis;
      return;
    }
    case 'protected': img.protected = checkBool('protected', v); return;
    case 'os_hidden': img.os_hidden = checkBool('os_hidden', v); return;
    case 'min_disk': img.min_disk = checkInt('min_disk', v); return;
    case 'min_ram': img.min_ram = checkInt('min_ram', v); return;
    case 'tags': img.tags = checkTags(v); return;
    case 'owner':
      if (!a.admin && v !== img.owner) throw forbidden('Only an administrator may change the owner of an image.');
      img.owner = checkString('owner', v, 255, true);
      return;
    default:
      checkPropertyName(k);
      if (v === null) { delete img.properties[k]; return; }
      img.properties[k] = checkString(k, v, 65535)!;
  }
}

// ---- handlers -----------------------------------------------------------------------------

async function createRoute(db: Db, req: Request): Promise<Response> {
  const a = requireWriter(req);
  const body = req.body;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('The request body must be a JSON object describing the image.');
  const b = body as Record<string, unknown>;
  let id = uuid();
  if (b.id !== undefined) {
    if (typeof b.id !== 'string' || !isUuid(b.id)) throw badRequest(`Invalid value for 'id': ${JSON.stringify(b.id)} is not a UUID.`);
    id = canonicalUuid(b.id);
  }
  const t = now();
  const img: Image = {
    id, name: null, status: 'queued', visibility: 'shared', protected: false, os_hidden: false, disk_format: null, container_format: null,
    size: null, virtual_size: null, checksum: null, os_hash_algo: null, os_hash_value: null, sha256: null, min_disk: 0, min_ram: 0,
    owner: a.projectId ?? null, properties: {}, tags: [], created_at: t, updated_at: t,
  };
  for (const [k, v] of Object.entries(b)) if (k !== 'id') setField(img, a, k, v);
  if (await getImage(db, id)) throw conflict(`Image with identifier ${id} already exists!`);
  try { await insertImage(db, img); } catch (e) {
    if (await getImage(db, id)) throw conflict(`Image with identifier ${id} already exists!`);
    throw e;
  }
  return { status: 201, body: imageBody(img), headers: { Location: `${req.baseUrl}${V2}/images/${id}`, 'OpenStack-image-import-methods': IMPORT_METHODS.join(',') } };
}

const LIST_PARAMS = new Set(['limit', 'marker', 'sort', 'sort_key', 'sort_dir', 'name', 'status', 'visibility', 'disk_format', 'container_format', 'tag', 'owner',
  'size_min', 'size_max', 'id', 'protected', 'os_hidden', 'member_status', 'created_at', 'updated_at']);

async function listRoute(db: Db, req: Request): Promise<Response> {
  const a = authOf(req);
  const q = req.query;
  for (const [k, v] of q) {
    if (!LIST_PARAMS.has(k)) throw badRequest(`Unknown filter or parameter '${k.replace(/\0/g, '\\0')}' (known: ${[...LIST_PARAMS].join(', ')}).`);
    if (v.includes('\u0000')) throw badRequest(`Invalid value for '${k}': it contains a NUL character.`);
  }
  const where: string[] = [];
  const params: unknown[] = [];
  const multi = (field: string, col: string, allowed?: readonly string[]) => {
    const v = q.get(field);
    if (v === null) return;
    const values = v.startsWith('in:') ? v.slice(3).split(',') : [v];
    if (allowed) for (const x of values) if (!allowed.includes(x)) throw badRequest(`Invalid value '${x}' for filter '${field}': it must be one of ${allowed.join(', ')}.`);
    where.push(`${col} IN (${values.map(() => '?').join(',')})`);
    params.push(...values);
  };
  multi('name', 'name');
  multi('status', 'status', ['queued', 'saving', 'importing', 'active', 'deactivated', 'killed', 'deleted', 'pending_delete', 'uploading']);
  multi('disk_format', 'disk_format', DISK_FORMATS);
  multi('container_format', 'container_format', CONTAINER_FORMATS);
  multi('owner', 'owner');
  multi('id', 'id');
  const vis = q.get('visibility');
  if (vis !== null && vis !== 'all') {
    if (!VISIBILITIES.includes(vis)) throw badRequest(`Invalid value '${vis}' for filter 'visibility': it must be one of ${VISIBILITIES.join(', ')}, all.`);
    where.push('visibility = ?');
    params.push(vis);
  }
  if (!a.admin) {
    // Glance lists community images only when asked for them.
    if (vis === 'community') where.push("(visibility = 'community' OR owner = ?)");
    else where.push("(visibility = 'public' OR owner = ?)");
    params.push(a.projectId ?? '');
  }
  for (const tag of q.getAll('tag')) {
    where.push('id IN (SELECT image_id FROM image_tags WHERE tag = ?)');
    params.push(tag);
  }
  for (const [k, op] of [['size_min', '>='], ['size_max', '<=']] as const) {
    const v = q.get(k);
    if (v === null) continue;
    if (!/^\d+$/.test(v)) throw badRequest(`Invalid value '${v}' for '${k}': it must be a non-negative integer.`);
    where.push(`size ${op} ?`);
    params.push(Number(v));
  }
  for (const k of ['protected', 'os_hidden'] as const) {
    const v = q.get(k);
    if (v === null) { if (k === 'os_hidden') where.push('os_hidden = 0'); continue; }
    if (v !== 'true' && v !== 'false') throw badRequest(`Invalid value '${v}' for '${k}': it must be true or false.`);
    where.push(`${k} = ?`);
    params.push(v === 'true' ? 1 : 0);
  }
  for (const k of ['created_at', 'updated_at'] as const) {
    const v = q.get(k);
    if (v === null) continue;
    const m = /^(gt|gte|lt|lte|eq|neq):(.+)$/.exec(v);
    if (!m || Number.isNaN(Date.parse(m[2]!))) throw badRequest(`Invalid value '${v}' for '${k}': use OPERATOR:TIME with gt, gte, lt, lte, eq or neq and an ISO 8601 time.`);
    const ops: Record<string, string> = { gt: '>', gte: '>=', lt: '<', lte: '<=', eq: '=', neq: '<>' };
    where.push(`${k} ${ops[m[1]!]} ?`);
    params.push(new Date(m[2]!).toISOString());
  }
  const member = q.get('member_status');
  if (member !== null && !['accepted', 'pending', 'rejected', 'all'].includes(member)) throw badRequest(`Invalid value '${member}' for 'member_status'.`);
  let limit = 25;
  const l = q.get('limit');
  if (l !== null) {
    if (!/^\d+$/.test(l)) throw badRequest(`Invalid value '${l}' for 'limit': it must be a non-negative integer.`);
    limit = Math.min(Number(l), 1000);
  }
  const sort = parseSort(q);
  const marker = q.get('marker') ?? undefined;
  if (marker !== undefined && !isUuid(marker)) throw badRequest(`marker not found: '${marker}' is not an image id.`);
  const images = await listImages(db, { where, params, sort, limit, marker: marker && canonicalUuid(marker) });
  const body: Record<string, unknown> = { images: images.map(imageBody), first: '/v2/images', schema: '/v2/schemas/images' };
  if (images.length === limit && limit > 0) {
    const next = new URLSearchParams(q);
    next.set('marker', images[images.length - 1]!.id);
    next.set('limit', String(limit));
    body.next = `/v2/images?${next.toString()}`;
  }
  return { body };
}

async function patchRoute(db: Db, req: Request): Promise<Response> {
  const ctype = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!PATCH_TYPES.includes(ctype)) throw new ApiError(415, `Unsupported Content-Type '${ctype}': use ${PATCH_TYPES[0]}.`);
  const a = authOf(req);
  const img = await writable(db, req);
  if (!Array.isArray(req.body)) throw badRequest('The request body must be a JSON list of patch operations.');
  // The patchable document: writable core fields and properties at the top level, as Glance shows them.
  const reserved = Object.fromEntries(Object.entries(img.properties).filter(([k]) => k.startsWith('os_glance')));
  const own = Object.fromEntries(Object.entries(img.properties).filter(([k]) => !k.startsWith('os_glance')));
  const doc: Record<string, unknown> = { ...own, name: img.name, visibility: img.visibility, protected: img.protected, os_hidden: img.os_hidden,
    disk_format: img.disk_format, container_format: img.container_format, min_disk: img.min_disk, min_ram: img.min_ram, tags: [...img.tags], owner: img.owner };
  for (const raw of req.body as unknown[]) {
    const op = raw as { op?: unknown; path?: unknown };
    if (!op || typeof op !== 'object' || typeof op.path !== 'string') throw badRequest('Each patch operation must be an object with an op and a path.');
    if (!['add', 'replace', 'remove'].includes(String(op.op))) throw badRequest(`Invalid operation '${String(op.op)}': the image API accepts add, replace and remove.`);
    const top = op.path.split('/')[1]?.replace(/~1/g, '/').replace(/~0/g, '~') ?? '';
    if (READ_ONLY.has(top)) throw forbidden(`Attribute '${top}' is read-only.`);
    if (top.startsWith('os_glance')) throw forbidden(`Attribute '${top}' is reserved.`);
    if ((top === 'disk_format' || top === 'container_format') && img.status !== 'queued') throw forbidden(`Attribute ${top} can be only replaced for a queued image.`);
    if (op.path.split('/').length > 2 && top !== 'tags') throw badRequest(`Invalid path '${op.path}': image fields and properties are not nested.`);
    if (op.op === 'remove' && WRITABLE_CORE.has(top) && top !== 'tags' && op.path.split('/').length === 2) throw forbidden(`Attribute '${top}' can not be removed.`);
  }
  let patched: Record<string, unknown>;
  try { patched = applyPatch(doc, req.body); } catch (e) {
    if (e instanceof PatchError) throw badRequest(e.message);
    throw e;
  }
  const next: Image = { ...img, properties: { ...reserved }, tags: [...img.tags], updated_at: now() };
  for (const [k, v] of Object.entries(patched)) {
    if (WRITABLE_CORE.has(k)) { if (JSON.stringify(v) !== JSON.stringify(doc[k])) setField(next, a, k, v); } else setField(next, a, k, v);
  }
  await saveImage(db, next);
  return { body: imageBody((await getImage(db, img.id))!) };
}

async function deleteRoute(ctx: ImageContext, req: Request): Promise<Response> {
  const { db } = ctx;
  const img = await writable(db, req);
  if (img.protected) throw forbidden(`Image ${img.id} is protected and cannot be deleted.`);
  const users = await nodesUsing(db, img);
  if (users.length) {
    const list = users.slice(0, 10).map((u) => `${u.name} (${u.state})`).join(', ');
    throw conflict(`Image ${img.id}${img.name ? ` (${img.name})` : ''} is in use by ${users.length === 1 ? 'node' : 'nodes'} ${list}${users.length > 10 ? ` and ${users.length - 10} more` : ''}; undeploy ${users.length === 1 ? 'it' : 'them'} or point ${users.length === 1 ? 'it' : 'them'} at another image first.`);
  }
  await db.run('DELETE FROM images WHERE id = ?', [img.id]);
  if (img.sha256) {
    const sha = img.sha256;
    await ctx.store().locked(sha, async () => { if (!(await dataReferenced(db, sha))) await ctx.store().remove(sha); });
  }
  log.info('image deleted', { id: img.id, name: img.name });
  return { status: 204 };
}

function hexOrBase64Md5(v: string): string | undefined {
  if (/^[0-9a-f]{32}$/i.test(v)) return v.toLowerCase();
  const b = Buffer.from(v, 'base64');
  return b.length === 16 ? b.toString('hex') : undefined;
}

/** Checksums the client stated for the data it sends: headers, or the openstack SDK's properties. */
function expectedOf(req: Request, img: Image): Expected {
  const h = (n: string) => { const v = req.headers[n]; return typeof v === 'string' && v.trim() ? v.trim().toLowerCase() : undefined; };
  const e: Expected = {};
  const cmd5 = req.headers['content-md5'];
  if (typeof cmd5 === 'string' && cmd5.trim()) {
    const md5 = hexOrBase64Md5(cmd5.trim());
    if (!md5) throw badRequest(`Content-MD5 '${cmd5}' is neither 32 hexadecimal digits nor a base64 MD5.`);
    e.md5 = md5;
  }
  e.md5 = h('x-image-meta-checksum') ?? e.md5 ?? (img.properties['owner_specified.openstack.md5'] || undefined)?.toLowerCase();
  e.sha256 = h('x-image-meta-sha256') ?? (img.properties['owner_specified.openstack.sha256'] || undefined)?.toLowerCase();
  e.sha512 = h('x-image-meta-sha512');
  const len = req.headers['content-length'];
  if (len !== undefined) e.size = Number(len);
  return e;
}

/** Receives data (from an upload or an import) into an image: saving/importing -> active, or back to queued. */
export async function ingest(ctx: ImageContext, img: Image, from: string, receive: () => Promise<Staged>): Promise<Image> {
  const { db } = ctx;
  let staged: Staged;
  // While data flows, updated_at moves: an image left saving/importing by a crashed process is
  // recognised by a stale updated_at and may be uploaded to again (see STALE_MS).
  const beat = setInterval(() => { db.run('UPDATE images SET updated_at = ? WHERE id = ? AND status = ?', [now(), img.id, from]).catch(() => undefined); }, STALE_MS / 4);
  try {
    staged = await receive();
  } catch (e) {
    await db.run("UPDATE images SET status = 'queued', updated_at = ? WHERE id = ? AND status = ?", [now(), img.id, from]);
    throw e;
  } finally {
    clearInterval(beat);
  }
  const store = ctx.store();
  const activated = await store.locked(staged.sha256, async () => {
    await staged.commit();
    const r = await db.run(`UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, os_hash_algo = 'sha512', os_hash_value = ?, sha256 = ?, updated_at = ?
      WHERE id = ? AND status = ?`, [staged.size, staged.virtualSize, staged.md5, staged.sha512, staged.sha256, now(), img.id, from]);
    if (r.changes === 0 && !(await dataReferenced(db, staged.sha256))) await store.remove(staged.sha256);
    return r.changes > 0;
  });
  if (!activated) throw conflict(`Image ${img.id} was deleted or changed while its data was received; the data was not kept.`);
  log.info('image data stored', { id: img.id, size: staged.size, sha256: staged.sha256 });
  return (await getImage(db, img.id))!;
}

/** Glance wants both formats before data arrives: they decide how the data is checked and served. */
export function requireFormats(img: Image): void {
  const missing = (['disk_format', 'container_format'] as const).filter((k) => !img[k]);
  if (missing.length) throw badRequest(`Properties ${missing.join(', ')} must be set prior to saving data.`);
}

async function uploadRoute(ctx: ImageContext, req: Request): Promise<Response> {
  const { db } = ctx;
  const img = await writable(db, req);
  const ctype = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (ctype !== 'application/octet-stream') throw new ApiError(415, `Unsupported Content-Type '${ctype}' for image data: use application/octet-stream.`);
  requireFormats(img);
  const expected = expectedOf(req, img);
  if (expected.size !== undefined && !(Number.isInteger(expected.size) && expected.size >= 0)) throw badRequest(`Invalid Content-Length '${req.headers['content-length']}'.`);
  if (expected.size === 0) throw badRequest('The image data is empty (0 bytes): an image needs data.');
  const store = ctx.store();
  const r = await db.run(`UPDATE images SET status = 'saving', updated_at = ? WHERE id = ? AND ${TAKEABLE}`, [now(), img.id, staleBefore()]);
  if (r.changes === 0) {
    const cur = await getImage(db, img.id);
    throw conflict(`Image status transition from ${cur?.status ?? 'deleted'} to saving is not allowed: image data can only be uploaded to a queued image.`);
  }
  try {
    await ingest(ctx, img, 'saving', () => store.receive(req.raw, expected, img.disk_format));
  } catch (e) {
    if (e instanceof ImageDataError) {
      log.warn('image upload refused', { id: img.id, error: e.message });
      throw new ApiError(e.status, e.message);
    }
    throw e;
  }
  return { status: 204 };
}

async function downloadRoute(ctx: ImageContext, req: Request): Promise<Response> {
  const img = await visible(ctx.db, req);
  const a = authOf(req);
  if (img.status === 'deactivated' && !a.admin) throw forbidden(`Image ${img.id} is deactivated: its data can not be downloaded.`);
  if (!img.sha256 || (img.status !== 'active' && img.status !== 'deactivated')) return { status: 204 };
  const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
  return fileResponse(ctx.store().blobPath(img.sha256), { method: req.method, range, md5: img.checksum, what: `image ${img.id}` });
}

async function tagRoute(db: Db, req: Request, add: boolean): Promise<Response> {
  const img = await writable(db, req);
  const tag = checkString('tag', req.params.tag)!;
  if (add) {
    if (!img.tags.includes(tag)) {
      if (img.tags.length >= 128) throw new ApiError(413, 'Maximum number of tags exceeded (128).');
      await db.run('INSERT INTO image_tags (image_id, tag) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM image_tags WHERE image_id = ? AND tag = ?)', [img.id, tag, img.id, tag]);
    }
  } else {
    const r = await db.run('DELETE FROM image_tags WHERE image_id = ? AND tag = ?', [img.id, tag]);
    if (r.changes === 0) throw notFound(`Tag ${tag} not found on image ${img.id}.`);
  }
  await db.run('UPDATE images SET updated_at = ? WHERE id = ?', [now(), img.id]);
  return { status: 204 };
}

async function action(db: Db, req: Request, from: string, to: string): Promise<Response> {
  const img = await visible(db, req);
  const a = requireWriter(req);
  if (!a.admin) throw forbidden(`Only an administrator may ${to === 'active' ? 'reactivate' : 'deactivate'} an image.`);
  if (img.status === to) return { status: 204 };
  const r = await db.run('UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?', [to, now(), img.id, from]);
  if (r.changes === 0) throw forbidden(`Image status transition from ${img.status} to ${to} is not allowed.`);
  return { status: 204 };
}
