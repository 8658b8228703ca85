/**
 * Image records in the store: the images table (core fields as columns, free-form properties
 * as JSON text) and image_tags; how a row looks on the wire (Glance v2's image entity); and
 * the listing query with Glance's filters, sorting and marker pagination.
 */
import type { Db } from '../../store/db.js';
import { ApiError, badRequest } from '../http.js';

export interface ImageRow {
  id: string;
  name: string | null;
  status: string;
  visibility: string;
  protected: number;
  os_hidden: number;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  sha256: string | null;
  min_disk: number;
  min_ram: number;
  owner: string | null;
  properties: string;
  created_at: string;
  updated_at: string;
}

export interface Image extends Omit<ImageRow, 'properties' | 'protected' | 'os_hidden'> {
  protected: boolean;
  os_hidden: boolean;
  properties: Record<string, string>;
  tags: string[];
}

/** Fields a client can never write (403 as Glance answers). */
export const READ_ONLY = new Set(['id', 'status', 'size', 'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value', 'created_at', 'updated_at',
  'self', 'file', 'schema', 'direct_url', 'locations', 'stores', 'sha256']);
/** Core fields a client may set. */
export const WRITABLE_CORE = new Set(['name', 'visibility', 'protected', 'os_hidden', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'tags', 'owner']);
export const VISIBILITIES = ['public', 'private', 'shared', 'community'];

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function fromRow(r: ImageRow, tags: string[]): Image {
  return {
    ...r,
    size: num(r.size), virtual_size: num(r.virtual_size), min_disk: Number(r.min_disk), min_ram: Number(r.min_ram),
    protected: !!Number(r.protected), os_hidden: !!Number(r.os_hidden),
    properties: JSON.parse(r.properties || '{}') as Record<string, string>,
    tags,
  };
}

/** Glance's time format: 2024-01-01T00:00:00Z. */
const glanceTime = (iso: string): string => iso.replace(/\.\d+Z$/, 'Z');

/** The image entity as Glance v2 shows it. */
export function imageBody(img: Image): Record<string, unknown> {
  return {
    ...img.properties,
    id: img.id, name: img.name, status: img.status, visibility: img.visibility, protected: img.protected, os_hidden: img.os_hidden,
    checksum: img.checksum, os_hash_algo: img.os_hash_algo, os_hash_value: img.os_hash_value, owner: img.owner,
    size: img.size, virtual_size: img.virtual_size, min_disk: img.min_disk, min_ram: img.min_ram,
    container_format: img.container_format, disk_format: img.disk_format,
    created_at: glanceTime(img.created_at), updated_at: glanceTime(img.updated_at), tags: [...img.tags].sort(),
    self: `/v2/images/${img.id}`, file: `/v2/images/${img.id}/file`, schema: '/v2/schemas/image',
  };
}

async function tagsOf(db: Db, ids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (let i = 0; i < ids.length; i += 500) {
    const part = ids.slice(i, i + 500);
    const rows = await db.all<{ image_id: string; tag: string }>(`SELECT image_id, tag FROM image_tags WHERE image_id IN (${part.map(() => '?').join(',')})`, part);
    for (const r of rows) out.get(r.image_id)?.push(r.tag);
  }
  return out;
}

export async function getImage(db: Db, id: string): Promise<Image | undefined> {
  const r = await db.get<ImageRow>('SELECT * FROM images WHERE id = ?', [id]);
  if (!r) return undefined;
  return fromRow(r, (await tagsOf(db, [id])).get(id) ?? []);
}

export async function insertImage(db: Db, img: Image): Promise<void> {
  await db.tx(async (t) => {
    await t.run(`INSERT INTO images (id, name, status, visibility, protected, os_hidden, disk_format, container_format, size, virtual_size, checksum,
      os_hash_algo, os_hash_value, sha256, min_disk, min_ram, owner, properties, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [img.id, img.name, img.status, img.visibility, img.protected, img.os_hidden, img.disk_format, img.container_format, img.size, img.virtual_size, img.checksum,
      img.os_hash_algo, img.os_hash_value, img.sha256, img.min_disk, img.min_ram, img.owner, JSON.stringify(img.properties), img.created_at, img.updated_at]);
    for (const tag of new Set(img.tags)) await t.run('INSERT INTO image_tags (image_id, tag) VALUES (?, ?)', [img.id, tag]);
  });
}

/** Writes the client-settable fields and tags of an image. */
export async function saveImage(db: Db, img: Image): Promise<void> {
  await db.tx(async (t) => {
    await t.run(`UPDATE images SET name = ?, visibility = ?, protected = ?, os_hidden = ?, disk_format = ?, container_format = ?, min_disk = ?, min_ram = ?,
      owner = ?, properties = ?, updated_at = ? WHERE id = ?`,
    [img.name, img.visibility, img.protected, img.os_hidden, img.disk_format, img.container_format, img.min_disk, img.min_ram, img.owner,
      JSON.stringify(img.properties), img.updated_at, img.id]);
    await t.run('DELETE FROM image_tags WHERE image_id = ?', [img.id]);
    for (const tag of new Set(img.tags)) await t.run('INSERT INTO image_tags (image_id, tag) VALUES (?, ?)', [img.id, tag]);
  });
}

const SORT_KEYS: Record<string, { expr: string }> = {
  name: { expr: "COALESCE(name, '')" }, status: { expr: 'status' }, container_format: { expr: "COALESCE(container_format, '')" },
  disk_format: { expr: "COALESCE(disk_format, '')" }, size: { expr: 'COALESCE(size, -1)' }, virtual_size: { expr: 'COALESCE(virtual_size, -1)' },
  id: { expr: 'id' }, created_at: { expr: 'created_at' }, updated_at: { expr: 'updated_at' }, visibility: { expr: 'visibility' },
  min_disk: { expr: 'min_disk' }, min_ram: { expr: 'min_ram' },
};
const SORT_VALUE: Record<string, (r: ImageRow) => unknown> = {
  name: (r) => r.name ?? '', container_format: (r) => r.container_format ?? '', disk_format: (r) => r.disk_format ?? '',
  size: (r) => (r.size === null ? -1 : Number(r.size)), virtual_size: (r) => (r.virtual_size === null ? -1 : Number(r.virtual_size)),
};

export interface ListQuery {
  where: string[];
  params: unknown[];
  sort: { key: string; dir: 'asc' | 'desc' }[];
  limit: number;
  marker?: string;
}

/** Parses Glance's `sort=k1:dir,k2` or sort_key/sort_dir (repeatable). */
export function parseSort(q: URLSearchParams): { key: string; dir: 'asc' | 'desc' }[] {
  const out: { key: string; dir: 'asc' | 'desc' }[] = [];
  const sort = q.get('sort');
  const keys = q.getAll('sort_key');
  const dirs = q.getAll('sort_dir');
  if (sort && (keys.length || dirs.length)) throw badRequest('The sort and sort_key/sort_dir parameters can not be used together.');
  const check = (key: string, dir: string) => {
    if (!SORT_KEYS[key]) throw badRequest(`Invalid sort key: '${key}'. It must be one of: ${Object.keys(SORT_KEYS).join(', ')}.`);
    if (dir !== 'asc' && dir !== 'desc') throw badRequest(`Invalid sort direction: '${dir}'. It must be 'asc' or 'desc'.`);
    out.push({ key, dir });
  };
  if (sort) {
    for (const part of sort.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [k, d] = part.split(':');
      check(k!, d ?? 'desc');
    }
  } else if (keys.length) {
    if (dirs.length > 1 && dirs.length !== keys.length) throw badRequest('Give one sort_dir, or one per sort_key.');
    keys.forEach((k, i) => check(k, dirs[dirs.length > 1 ? i : 0] ?? 'desc'));
  } else {
    if (dirs.length > 1) throw badRequest('sort_dir without sort_key may be given once.');
    out.push({ key: 'created_at', dir: (dirs[0] as 'asc' | 'desc') ?? 'desc' });
    if (dirs[0] && dirs[0] !== 'asc' && dirs[0] !== 'desc') throw badRequest(`Invalid sort direction: '${dirs[0]}'. It must be 'asc' or 'desc'.`);
  }
  if (new Set(out.map((s) => s.key)).size !== out.length) throw badRequest('A sort key may be given only once.');
  if (!out.some((s) => s.key === 'id')) out.push({ key: 'id', dir: out[out.length - 1]!.dir });
  return out;
}

/** Runs a listing: filters, then keyset pagination after the marker image. */
export async function listImages(db: Db, q: ListQuery): Promise<Image[]> {
  const where = [...q.where];
  const params = [...q.params];
  if (q.marker) {
    const m = await db.get<ImageRow>('SELECT * FROM images WHERE id = ?', [q.marker]);
    if (!m) throw new ApiError(400, `marker not found: no image with id ${q.marker}.`);
    const ors: string[] = [];
    for (let i = 0; i < q.sort.length; i++) {
      const ands: string[] = [];
      for (let j = 0; j < i; j++) { ands.push(`${SORT_KEYS[q.sort[j]!.key]!.expr} = ?`); params.push(valueOf(m, q.sort[j]!.key)); }
      ands.push(`${SORT_KEYS[q.sort[i]!.key]!.expr} ${q.sort[i]!.dir === 'asc' ? '>' : '<'} ?`);
      params.push(valueOf(m, q.sort[i]!.key));
      ors.push(`(${ands.join(' AND ')})`);
    }
    where.push(`(${ors.join(' OR ')})`);
  }
  const order = q.sort.map((s) => `${SORT_KEYS[s.key]!.expr} ${s.dir.toUpperCase()}`).join(', ');
  const rows = await db.all<ImageRow>(`SELECT * FROM images ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY ${order} LIMIT ${q.limit}`, params);
  const tags = await tagsOf(db, rows.map((r) => r.id));
  return rows.map((r) => fromRow(r, tags.get(r.id) ?? []));
}

function valueOf(r: ImageRow, key: string): unknown {
  const f = SORT_VALUE[key];
  if (f) return f(r);
  const v = (r as unknown as Record<string, unknown>)[key];
  return typeof v === 'bigint' ? Number(v) : v;
}

/** Nodes deploying or running an image: image_source is its id, its name, or a URL of it on this seed. */
export async function nodesUsing(db: Db, img: Image): Promise<{ name: string; state: string }[]> {
  const rows = await db.all<{ uuid: string; name: string | null; provision_state: string; instance_info: string }>(
    "SELECT uuid, name, provision_state, instance_info FROM nodes WHERE provision_state IN ('deploying', 'wait call-back', 'active')");
  const out: { name: string; state: string }[] = [];
  for (const r of rows) {
    let src: unknown;
    try { src = (JSON.parse(r.instance_info || '{}') as Record<string, unknown>).image_source; } catch { continue; }
    if (typeof src !== 'string' || !src) continue;
    let hit = src === img.id || (img.name !== null && src === img.name);
    if (!hit && /^https?:\/\//.test(src)) {
      const m = /\/images\/([^/?#]+)(?:\/raw)?(?:[?#].*)?$/.exec(src) ?? /\/v2\/images\/([^/?#]+)\/file(?:[?#].*)?$/.exec(src);
      if (m) { let ident = m[1]!; try { ident = decodeURIComponent(ident); } catch { /* as is */ } hit = ident === img.id || ident === img.name; }
    }
    if (hit) out.push({ name: r.name ?? r.uuid, state: r.provision_state });
  }
  return out;
}

/** Whether another image still refers to the same data. */
export async function dataReferenced(db: Db, sha256: string): Promise<boolean> {
  return !!(await db.get('SELECT id FROM images WHERE sha256 = ? LIMIT 1', [sha256]));
}
