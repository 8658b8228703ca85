/**
 * What every bare-metal route shares: microversions, Ironic-style errors, links, pagination
 * and field selection.
 */
import { ApiError, Request, badRequest } from '../http.js';
import { canonicalUuid, isUuid } from '../../util/ids.js';

export const MIN_MINOR = 1;
export const MAX_MINOR = 82;
export const MAX_LIMIT = 1000;

/** The microversion (minor) a request asked for. */
export function minorOf(req: Request): number {
  const cached = (req as Request & { _minor?: number })._minor;
  if (cached !== undefined) return cached;
  let raw = req.headers['x-openstack-ironic-api-version'] as string | undefined;
  if (!raw) {
    const generic = req.headers['openstack-api-version'] as string | undefined;
    const m = generic?.match(/baremetal\s+(\S+)/i);
    if (m) raw = m[1];
  }
  let minor = MIN_MINOR;
  if (raw) {
    if (raw.trim().toLowerCase() === 'latest') minor = MAX_MINOR;
    else {
      const m = raw.trim().match(/^(\d+)\.(\d+)$/);
      if (!m) throw badRequest(`Invalid value for X-OpenStack-Ironic-API-Version header: ${raw}`);
      const major = Number(m[1]);
      minor = Number(m[2]);
      if (major !== 1 || minor < MIN_MINOR || minor > MAX_MINOR) {
        throw new ApiError(406, `Version ${raw} was requested but the minor version is not supported by this service. The supported version range is: [1.${MIN_MINOR}, 1.${MAX_MINOR}].`);
      }
    }
  }
  (req as Request & { _minor?: number })._minor = minor;
  return minor;
}

export function requireMinor(req: Request, minor: number): void {
  if (minorOf(req) < minor) throw new ApiError(404, 'The resource could not be found.');
}

export function versionHeaders(req: Request, h: Record<string, string | number | string[]>): void {
  h['X-OpenStack-Ironic-API-Minimum-Version'] = `1.${MIN_MINOR}`;
  h['X-OpenStack-Ironic-API-Maximum-Version'] = `1.${MAX_MINOR}`;
  let minor = MIN_MINOR;
  try { minor = minorOf(req); } catch { /* reported by the route */ }
  h['X-OpenStack-Ironic-API-Version'] = `1.${minor}`;
  h['OpenStack-API-Version'] = `baremetal 1.${minor}`;
  h['Vary'] = 'X-OpenStack-Ironic-API-Version';
}

export function links(base: string, resource: string, id: string): { href: string; rel: string }[] {
  return [{ href: `${base}/v1/${resource}/${id}`, rel: 'self' }, { href: `${base}/${resource}/${id}`, rel: 'bookmark' }];
}

export interface Paging { limit: number; sortKey: string; sortDir: 'asc' | 'desc'; marker?: string }

export function paging(req: Request, sortable: Set<string>, defaultKey = 'id'): Paging {
  const q = req.query;
  let limit = MAX_LIMIT;
  if (q.has('limit')) {
    const n = Number(q.get('limit'));
    if (!Number.isInteger(n)) throw badRequest(`Invalid value for limit: ${q.get('limit')}`);
    if (n <= 0) throw badRequest('Limit must be positive');
    limit = Math.min(n, MAX_LIMIT);
  }
  const sortDir = (q.get('sort_dir') ?? 'asc') as 'asc' | 'desc';
  if (sortDir !== 'asc' && sortDir !== 'desc') throw badRequest(`Invalid sort direction: ${sortDir}. Acceptable values are 'asc' or 'desc'`);
  const sortKey = q.get('sort_key') ?? defaultKey;
  if (!sortable.has(sortKey)) throw badRequest(`The sort_key value "${sortKey}" is an invalid field for sorting`);
  const marker = q.get('marker') ?? undefined;
  return { limit, sortKey, sortDir, marker };
}

/** Ironic's "next" link: same query with limit and marker. */
export function nextLink(req: Request, resourcePath: string, items: { uuid: string }[], limit: number, requestedLimit: boolean): string | undefined {
  if (!items.length || (items.length < limit) || (!requestedLimit && items.length < MAX_LIMIT)) return undefined;
  const q = new URLSearchParams(req.query);
  q.delete('limit');
  q.delete('marker');
  const args = [...q.entries()].map(([k, v]) => `${k}=${v}&`).join('');
  return `${req.baseUrl}${BAREMETAL_PREFIX}/v1/${resourcePath}?${args}limit=${limit}&marker=${items[items.length - 1]!.uuid}`;
}

export let BAREMETAL_PREFIX = '/baremetal';
export function setBaremetalPrefix(p: string): void { BAREMETAL_PREFIX = p; }
export const baseOf = (req: Request): string => `${req.baseUrl}${BAREMETAL_PREFIX}`;

/** The fields= parameter, checked against the allowed names. */
export function fieldsParam(req: Request, allowed: readonly string[], since: Readonly<Record<string, number>> = {}): string[] | undefined {
  const raw = req.query.get('fields');
  if (!raw) return undefined;
  const minor = minorOf(req);
  if (minor < 8) throw new ApiError(406, 'The fields parameter requires API version 1.8 or later.');
  const fields = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of fields) {
    if (!allowed.includes(f)) throw badRequest(`Field ${f} is not a valid field.`);
    if (since[f] !== undefined && minor < since[f]!) throw new ApiError(406, `Field ${f} requires API version 1.${since[f]} or later.`);
  }
  return fields;
}

export function boolParam(req: Request, name: string): boolean | undefined {
  const v = req.query.get(name);
  if (v === null) return undefined;
  const l = v.toLowerCase();
  if (['true', '1', 'yes', 'on', 't', 'y'].includes(l)) return true;
  if (['false', '0', 'no', 'off', 'f', 'n'].includes(l)) return false;
  throw badRequest(`Invalid value for ${name}: '${v}' is not a boolean.`);
}

export function uuidParam(value: unknown, field: string): string {
  if (typeof value !== 'string' || !isUuid(value)) throw badRequest(`Expected a UUID for ${field} but received ${JSON.stringify(value)}.`);
  return canonicalUuid(value);
}

export function objectBody(req: Request, what: string): Record<string, unknown> {
  const b = req.body;
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw badRequest(`Invalid ${what}: the request body must be a JSON object.`);
  return b as Record<string, unknown>;
}

/** Rejects keys the schema does not know, in Ironic's words. */
export function checkKeys(body: Record<string, unknown>, allowed: Iterable<string>, what: string): void {
  const ok = new Set(allowed);
  const extra = Object.keys(body).filter((k) => !ok.has(k));
  if (extra.length) throw badRequest(`Schema error for ${what}: Additional properties are not allowed (${extra.map((e) => `'${e}'`).join(', ')} ${extra.length === 1 ? 'was' : 'were'} unexpected)`);
}

export function checkType(body: Record<string, unknown>, key: string, type: 'string' | 'object' | 'boolean' | 'array' | 'integer', what: string, nullable = true): void {
  const v = body[key];
  if (v === undefined || (v === null && nullable)) return;
  const ok = type === 'array' ? Array.isArray(v) : type === 'object' ? (typeof v === 'object' && v !== null && !Array.isArray(v)) : type === 'integer' ? Number.isInteger(v) : typeof v === type;
  if (!ok) throw badRequest(`Schema error for ${what}: ${key}: ${JSON.stringify(v)} is not of type '${type}'`);
}

const NAME_RE = /^[a-zA-Z0-9\-._~]+$/;
export function checkName(name: unknown, what: string): void {
  if (name === null || name === undefined) return;
  if (typeof name !== 'string' || !name.length || name.length > 255 || !NAME_RE.test(name) || isUuid(name)) {
    throw badRequest(`Cannot create ${what} with invalid name '${String(name)}': use letters, digits and - . _ ~ (not a UUID), up to 255 characters.`);
  }
}

/** Ironic's 409 for a node someone else is working on. */
export function nodeLocked(uuid: string, host: string): ApiError {
  return new ApiError(409, `Node ${uuid} is locked by host ${host}, please retry after the current operation is completed.`);
}
