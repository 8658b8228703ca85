/**
 * /v1/ports and /v1/portgroups (and their per-node views).
 */
import type { Db } from '../../store/db.js';
import { ApiError, Request, Router, badRequest, forbidden, notFound } from '../http.js';
import { authOf } from '../auth.js';
import { findNode } from '../../store/nodes.js';
import { apiTime, canonicalUuid, isMac, isUuid, normalizeMac, now, uuid as newUuid } from '../../util/ids.js';
import { applyPatch, PatchError } from '../../util/jsonpatch.js';
import { BAREMETAL_PREFIX, baseOf, boolParam, checkKeys, checkName, checkType, fieldsParam, links, minorOf, nextLink, nodeLocked, objectBody, paging, requireMinor, uuidParam } from './common.js';

interface PortRow { id: number; uuid: string; name: string | null; address: string; node_id: number; portgroup_id: number | null; local_link_connection: string; pxe_enabled: number; physical_network: string | null; is_smartnic: number; extra: string; internal_info: string; created_at: string; updated_at: string | null; node_uuid: string; portgroup_uuid: string | null }
interface PortgroupRow { id: number; uuid: string; name: string | null; address: string | null; node_id: number; mode: string | null; properties: string; standalone_ports_supported: number; extra: string; internal_info: string; created_at: string; updated_at: string | null; node_uuid: string }

const PORT_FIELDS = ['uuid', 'address', 'node_uuid', 'portgroup_uuid', 'local_link_connection', 'pxe_enabled', 'physical_network', 'internal_info', 'extra', 'is_smartnic', 'created_at', 'updated_at'];
const PORT_SINCE: Record<string, number> = { internal_info: 18, local_link_connection: 19, pxe_enabled: 19, portgroup_uuid: 24, physical_network: 34, is_smartnic: 53 };
const PG_FIELDS = ['uuid', 'name', 'address', 'node_uuid', 'mode', 'properties', 'standalone_ports_supported', 'internal_info', 'extra', 'created_at', 'updated_at'];
const PORT_SELECT = 'SELECT p.*, n.uuid AS node_uuid, g.uuid AS portgroup_uuid FROM ports p JOIN nodes n ON n.id = p.node_id LEFT JOIN portgroups g ON g.id = p.portgroup_id';
const PG_SELECT = 'SELECT g.*, n.uuid AS node_uuid FROM portgroups g JOIN nodes n ON n.id = g.node_id';
const LLC_KEYS = ['switch_id', 'port_id', 'switch_info', 'network_type', 'hostname'];

export function portRoutes(router: Router, db: Db): void {
  const style = { style: 'ironic' as const };
  const V = `${BAREMETAL_PREFIX}/v1`;

  const renderPort = (req: Request, p: PortRow, fields?: string[]) => {
    const minor = minorOf(req);
    const all: Record<string, unknown> = {
      uuid: p.uuid, address: p.address, node_uuid: p.node_uuid, portgroup_uuid: p.portgroup_uuid, local_link_connection: JSON.parse(p.local_link_connection),
      pxe_enabled: !!p.pxe_enabled, physical_network: p.physical_network, internal_info: JSON.parse(p.internal_info), extra: JSON.parse(p.extra),
      is_smartnic: !!p.is_smartnic, created_at: apiTime(p.created_at), updated_at: apiTime(p.updated_at),
    };
    const out: Record<string, unknown> = {};
    for (const f of fields ?? PORT_FIELDS) if (!(PORT_SINCE[f] && minor < PORT_SINCE[f]!)) out[f] = all[f];
    out.links = links(baseOf(req), 'ports', p.uuid);
    return out;
  };
  const renderPg = (req: Request, g: PortgroupRow, fields?: string[]) => {
    const all: Record<string, unknown> = {
      uuid: g.uuid, name: g.name, address: g.address, node_uuid: g.node_uuid, mode: g.mode, properties: JSON.parse(g.properties),
      standalone_ports_supported: !!g.standalone_ports_supported, internal_info: JSON.parse(g.internal_info), extra: JSON.parse(g.extra),
      created_at: apiTime(g.created_at), updated_at: apiTime(g.updated_at),
    };
    const out: Record<string, unknown> = {};
    for (const f of fields ?? PG_FIELDS) out[f] = all[f];
    out.links = links(baseOf(req), 'portgroups', g.uuid);
    if (!fields) out.ports = links(baseOf(req), 'portgroups', `${g.uuid}/ports`);
    return out;
  };

  const visibleNodeIds = (req: Request): { where: string; params: unknown[] } | undefined => {
    const a = authOf(req);
    if (a.admin || (a.system && a.roles.has('reader'))) return undefined;
    if (!a.projectId) throw forbidden();
    return { where: '(n.owner = ? OR n.lessee = ?)', params: [a.projectId, a.projectId] };
  };
  const adminOnly = (req: Request) => { if (!authOf(req).admin) throw forbidden(); };

  const nodeFor = async (req: Request, ident: unknown, field = 'node_uuid') => {
    const id = typeof ident === 'string' ? ident : '';
    const n = await findNode(db, id);
    if (!n) throw badRequest(`Node ${String(ident)} could not be found (${field}).`);
    return n;
  };

  // ---- ports ----
  const listPorts = async (req: Request, detail: boolean, nodeIdent?: string) => {
    const q = req.query;
    let fields = fieldsParam(req, PORT_FIELDS, PORT_SINCE);
    if (!fields && !detail) fields = ['uuid', 'address'];
    const pg = paging(req, new Set(['id', 'uuid', 'address', 'created_at', 'updated_at', 'pxe_enabled', 'physical_network']));
    const where: string[] = [];
    const params: unknown[] = [];
    const node = nodeIdent ?? q.get('node') ?? q.get('node_uuid');
    if (node) {
      const n = await findNode(db, node);
      if (!n) { if (nodeIdent) throw notFound(`Node ${node} could not be found.`); return { body: { ports: [] } }; }
      where.push('p.node_id = ?'); params.push(n.id);
    }
    if (q.get('address')) { where.push('p.address = ?'); params.push(normalizeMac(q.get('address')!)); }
    if (q.get('portgroup')) { where.push('(g.uuid = ? OR g.name = ?)'); params.push(q.get('portgroup'), q.get('portgroup')); }
    const vis = visibleNodeIds(req);
    if (vis) { where.push(vis.where); params.push(...vis.params); }
    if (pg.marker) {
      const m = await db.get<PortRow>(`${PORT_SELECT} WHERE p.uuid = ?`, [pg.marker]);
      if (!m) throw badRequest(`Invalid marker: port ${pg.marker} could not be found.`);
      where.push(`(p.${pg.sortKey} ${pg.sortDir === 'asc' ? '>' : '<'} ? OR (p.${pg.sortKey} = ? AND p.id ${pg.sortDir === 'asc' ? '>' : '<'} ?))`);
      const mv = (m as unknown as Record<string, unknown>)[pg.sortKey];
      params.push(mv, mv, m.id);
    }
    const rows = await db.all<PortRow>(`${PORT_SELECT}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY p.${pg.sortKey} ${pg.sortDir}, p.id ${pg.sortDir} LIMIT ?`, [...params, pg.limit]);
    const body: Record<string, unknown> = { ports: rows.map((r) => renderPort(req, r, fields)) };
    const nxt = nextLink(req, nodeIdent ? `nodes/${nodeIdent}/ports` : 'ports', rows, pg.limit, q.has('limit'));
    if (nxt) body.next = nxt;
    return { body };
  };
  router.add(style, 'GET', `${V}/ports`, (req) => listPorts(req, boolParam(req, 'detail') ?? false));
  router.add(style, 'GET', `${V}/ports/detail`, (req) => listPorts(req, true));
  router.add(style, 'GET', `${V}/nodes/:node/ports`, (req) => listPorts(req, boolParam(req, 'detail') ?? false, req.params.node));
  router.add(style, 'GET', `${V}/nodes/:node/ports/detail`, (req) => listPorts(req, true, req.params.node));

  const getPort = async (req: Request) => {
    const id = req.params.port!;
    const row = isUuid(id) ? await db.get<PortRow>(`${PORT_SELECT} WHERE p.uuid = ?`, [canonicalUuid(id)]) : await db.get<PortRow>(`${PORT_SELECT} WHERE p.address = ?`, [normalizeMac(id)]);
    if (!row) throw notFound(`Port ${id} could not be found.`);
    const vis = visibleNodeIds(req);
    if (vis && !(await db.get(`SELECT n.id FROM nodes n WHERE n.id = ? AND ${vis.where}`, [row.node_id, ...vis.params]))) throw notFound(`Port ${id} could not be found.`);
    return row;
  };
  router.add(style, 'GET', `${V}/ports/:port`, async (req) => ({ body: renderPort(req, await getPort(req), fieldsParam(req, PORT_FIELDS, PORT_SINCE)) }));

  const checkPortFields = (req: Request, b: Record<string, unknown>) => {
    if (b.address !== undefined && (typeof b.address !== 'string' || !isMac(b.address))) throw badRequest(`Expected a MAC address but received ${JSON.stringify(b.address)}.`);
    for (const k of ['local_link_connection', 'extra']) checkType(b, k, 'object', 'port', false);
    checkType(b, 'pxe_enabled', 'boolean', 'port', false);
    checkType(b, 'is_smartnic', 'boolean', 'port', false);
    checkType(b, 'physical_network', 'string', 'port');
    if (b.local_link_connection) {
      const bad = Object.keys(b.local_link_connection as object).filter((k) => !LLC_KEYS.includes(k));
      if (bad.length) throw badRequest(`Invalid local_link_connection: unknown keys ${bad.join(', ')}; allowed: ${LLC_KEYS.join(', ')}.`);
    }
    const minor = minorOf(req);
    for (const f of Object.keys(b)) if (PORT_SINCE[f] && minor < PORT_SINCE[f]!) throw new ApiError(406, `Field ${f} requires API version 1.${PORT_SINCE[f]} or later.`);
  };
  const resolvePortgroup = async (ident: unknown, nodeId: number): Promise<number | null> => {
    if (ident === null || ident === undefined) return null;
    const g = await db.get<PortgroupRow>('SELECT * FROM portgroups WHERE uuid = ? OR name = ?', [ident, ident]);
    if (!g) throw badRequest(`Portgroup ${String(ident)} could not be found.`);
    if (Number(g.node_id) !== nodeId) throw badRequest(`Port can not be added to portgroup ${g.uuid}: it belongs to a different node.`);
    return Number(g.id);
  };

  router.add(style, 'POST', `${V}/ports`, async (req) => {
    adminOnly(req);
    const b = objectBody(req, 'port');
    checkKeys(b, ['uuid', 'address', 'node_uuid', 'portgroup_uuid', 'local_link_connection', 'pxe_enabled', 'physical_network', 'extra', 'is_smartnic'], 'port');
    if (b.address === undefined) throw badRequest("Schema error for port: 'address' is a required property");
    if (b.node_uuid === undefined) throw badRequest("Schema error for port: 'node_uuid' is a required property");
    checkPortFields(req, b);
    const node = await nodeFor(req, b.node_uuid);
    const address = normalizeMac(b.address as string);
    if (await db.get('SELECT id FROM ports WHERE address = ?', [address])) throw new ApiError(409, `A port with MAC address ${address} already exists.`);
    const id = b.uuid === undefined ? newUuid() : uuidParam(b.uuid, 'uuid');
    if (await db.get('SELECT id FROM ports WHERE uuid = ?', [id])) throw new ApiError(409, `A port with UUID ${id} already exists.`);
    const pgId = await resolvePortgroup(b.portgroup_uuid, node.id);
    await db.run('INSERT INTO ports (uuid, address, node_id, portgroup_id, local_link_connection, pxe_enabled, physical_network, is_smartnic, extra, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [id, address, node.id, pgId, JSON.stringify(b.local_link_connection ?? {}), b.pxe_enabled === false ? 0 : 1, b.physical_network ?? null, b.is_smartnic ? 1 : 0, JSON.stringify(b.extra ?? {}), now()]);
    const row = (await db.get<PortRow>(`${PORT_SELECT} WHERE p.uuid = ?`, [id]))!;
    return { status: 201, headers: { Location: `${baseOf(req)}/v1/ports/${id}` }, body: renderPort(req, row) };
  });

  router.add(style, 'PATCH', `${V}/ports/:port`, async (req) => {
    adminOnly(req);
    const p = await getPort(req);
    const doc: Record<string, unknown> = { address: p.address, node_uuid: p.node_uuid, portgroup_uuid: p.portgroup_uuid, local_link_connection: JSON.parse(p.local_link_connection), pxe_enabled: !!p.pxe_enabled, physical_network: p.physical_network, extra: JSON.parse(p.extra), is_smartnic: !!p.is_smartnic };
    for (const op of (Array.isArray(req.body) ? req.body : []) as { path?: string }[]) {
      const top = (op.path ?? '').split('/')[1] ?? '';
      if (!(top in doc)) throw badRequest(`'/${top}' is an internal attribute and can not be updated`);
    }
    let patched: Record<string, unknown>;
    try { patched = applyPatch(doc, req.body); } catch (e) { if (e instanceof PatchError) throw badRequest(e.message); throw e; }
    for (const k of Object.keys(doc)) if (!(k in patched)) patched[k] = k === 'extra' || k === 'local_link_connection' ? {} : k === 'pxe_enabled' ? true : null;
    const changed: Record<string, unknown> = {};
    for (const k of Object.keys(doc)) if (JSON.stringify(patched[k]) !== JSON.stringify(doc[k])) changed[k] = patched[k];
    checkPortFields(req, changed);
    const node = await nodeFor(req, patched.node_uuid);
    if (node.reservation) throw nodeLocked(node.uuid, node.reservation);
    const address = normalizeMac(patched.address as string);
    if (address !== p.address && (await db.get('SELECT id FROM ports WHERE address = ?', [address]))) throw new ApiError(409, `A port with MAC address ${address} already exists.`);
    const pgId = await resolvePortgroup(patched.portgroup_uuid, node.id);
    await db.run('UPDATE ports SET address = ?, node_id = ?, portgroup_id = ?, local_link_connection = ?, pxe_enabled = ?, physical_network = ?, is_smartnic = ?, extra = ?, updated_at = ? WHERE id = ?',
      [address, node.id, pgId, JSON.stringify(patched.local_link_connection ?? {}), patched.pxe_enabled === false ? 0 : 1, patched.physical_network ?? null, patched.is_smartnic ? 1 : 0, JSON.stringify(patched.extra ?? {}), now(), p.id]);
    return { body: renderPort(req, (await db.get<PortRow>(`${PORT_SELECT} WHERE p.id = ?`, [p.id]))!) };
  });

  router.add(style, 'DELETE', `${V}/ports/:port`, async (req) => {
    adminOnly(req);
    const p = await getPort(req);
    const n = await findNode(db, p.node_uuid);
    if (n?.reservation) throw nodeLocked(n.uuid, n.reservation);
    await db.run('DELETE FROM ports WHERE id = ?', [p.id]);
    return { status: 204 };
  });

  // ---- portgroups ----
  const listPgs = async (req: Request, detail: boolean, nodeIdent?: string) => {
    requireMinor(req, 23);
    let fields = fieldsParam(req, PG_FIELDS);
    if (!fields && !detail) fields = ['uuid', 'address', 'name'];
    const where: string[] = [];
    const params: unknown[] = [];
    const node = nodeIdent ?? req.query.get('node');
    if (node) {
      const n = await findNode(db, node);
      if (!n) { if (nodeIdent) throw notFound(`Node ${node} could not be found.`); return { body: { portgroups: [] } }; }
      where.push('g.node_id = ?'); params.push(n.id);
    }
    if (req.query.get('address')) { where.push('g.address = ?'); params.push(normalizeMac(req.query.get('address')!)); }
    const vis = visibleNodeIds(req);
    if (vis) { where.push(vis.where); params.push(...vis.params); }
    const rows = await db.all<PortgroupRow>(`${PG_SELECT}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY g.id LIMIT 1000`, params);
    return { body: { portgroups: rows.map((r) => renderPg(req, r, fields)) } };
  };
  router.add(style, 'GET', `${V}/portgroups`, (req) => listPgs(req, boolParam(req, 'detail') ?? false));
  router.add(style, 'GET', `${V}/portgroups/detail`, (req) => listPgs(req, true));
  router.add(style, 'GET', `${V}/nodes/:node/portgroups`, (req) => listPgs(req, boolParam(req, 'detail') ?? false, req.params.node));
  const getPg = async (req: Request) => {
    requireMinor(req, 23);
    const g = await db.get<PortgroupRow>(`${PG_SELECT} WHERE g.uuid = ? OR g.name = ?`, [req.params.pg, req.params.pg]);
    if (!g) throw notFound(`Portgroup ${req.params.pg} could not be found.`);
    return g;
  };
  router.add(style, 'GET', `${V}/portgroups/:pg`, async (req) => ({ body: renderPg(req, await getPg(req), fieldsParam(req, PG_FIELDS)) }));
  router.add(style, 'GET', `${V}/portgroups/:pg/ports`, async (req) => {
    const g = await getPg(req);
    const rows = await db.all<PortRow>(`${PORT_SELECT} WHERE p.portgroup_id = ? ORDER BY p.id`, [g.id]);
    return { body: { ports: rows.map((r) => renderPort(req, r, ['uuid', 'address'])) } };
  });
  router.add(style, 'POST', `${V}/portgroups`, async (req) => {
    requireMinor(req, 23);
    adminOnly(req);
    const b = objectBody(req, 'portgroup');
    checkKeys(b, ['uuid', 'name', 'address', 'node_uuid', 'mode', 'properties', 'standalone_ports_supported', 'extra'], 'portgroup');
    if (b.node_uuid === undefined) throw badRequest("Schema error for portgroup: 'node_uuid' is a required property");
    if (b.address !== undefined && b.address !== null && (typeof b.address !== 'string' || !isMac(b.address))) throw badRequest(`Expected a MAC address but received ${JSON.stringify(b.address)}.`);
    checkName(b.name, 'portgroup');
    for (const k of ['properties', 'extra']) checkType(b, k, 'object', 'portgroup', false);
    checkType(b, 'mode', 'string', 'portgroup');
    checkType(b, 'standalone_ports_supported', 'boolean', 'portgroup', false);
    const node = await nodeFor(req, b.node_uuid);
    const id = b.uuid === undefined ? newUuid() : uuidParam(b.uuid, 'uuid');
    const address = b.address ? normalizeMac(b.address as string) : null;
    if (address && (await db.get('SELECT id FROM portgroups WHERE address = ?', [address]))) throw new ApiError(409, `A portgroup with MAC address ${address} already exists.`);
    if (b.name && (await db.get('SELECT id FROM portgroups WHERE name = ?', [b.name]))) throw new ApiError(409, `A portgroup with name ${String(b.name)} already exists.`);
    await db.run('INSERT INTO portgroups (uuid, name, address, node_id, mode, properties, standalone_ports_supported, extra, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [id, b.name ?? null, address, node.id, b.mode ?? 'active-backup', JSON.stringify(b.properties ?? {}), b.standalone_ports_supported === false ? 0 : 1, JSON.stringify(b.extra ?? {}), now()]);
    return { status: 201, headers: { Location: `${baseOf(req)}/v1/portgroups/${id}` }, body: renderPg(req, (await db.get<PortgroupRow>(`${PG_SELECT} WHERE g.uuid = ?`, [id]))!) };
  });
  router.add(style, 'PATCH', `${V}/portgroups/:pg`, async (req) => {
    adminOnly(req);
    const g = await getPg(req);
    const doc: Record<string, unknown> = { name: g.name, address: g.address, mode: g.mode, properties: JSON.parse(g.properties), standalone_ports_supported: !!g.standalone_ports_supported, extra: JSON.parse(g.extra) };
    let patched: Record<string, unknown>;
    try { patched = applyPatch(doc, req.body); } catch (e) { if (e instanceof PatchError) throw badRequest(e.message); throw e; }
    checkKeys(patched, Object.keys(doc), 'portgroup');
    checkName(patched.name, 'portgroup');
    if (patched.address && (typeof patched.address !== 'string' || !isMac(patched.address))) throw badRequest(`Expected a MAC address but received ${JSON.stringify(patched.address)}.`);
    await db.run('UPDATE portgroups SET name = ?, address = ?, mode = ?, properties = ?, standalone_ports_supported = ?, extra = ?, updated_at = ? WHERE id = ?',
      [patched.name ?? null, patched.address ? normalizeMac(patched.address as string) : null, patched.mode ?? null, JSON.stringify(patched.properties ?? {}), patched.standalone_ports_supported === false ? 0 : 1, JSON.stringify(patched.extra ?? {}), now(), g.id]);
    return { body: renderPg(req, (await db.get<PortgroupRow>(`${PG_SELECT} WHERE g.id = ?`, [g.id]))!) };
  });
  router.add(style, 'DELETE', `${V}/portgroups/:pg`, async (req) => {
    adminOnly(req);
    const g = await getPg(req);
    if (await db.get('SELECT id FROM ports WHERE portgroup_id = ?', [g.id])) throw new ApiError(409, `Portgroup ${g.uuid} still has ports: remove them from it first.`);
    await db.run('DELETE FROM portgroups WHERE id = ?', [g.id]);
    return { status: 204 };
  });
}
