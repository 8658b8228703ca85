/**
 * /v1/nodes: the node resource, its states, management, traits, maintenance, history,
 * validation and inventory — Ironic's API, microversions and error shapes.
 */
import type { Db } from '../../store/db.js';
import { ApiError, Request, Response, Router, badRequest, forbidden, notFound } from '../http.js';
import { AuthContext, authOf } from '../auth.js';
import { API_FIELDS, FIELD_SINCE, INTERFACE_FIELDS, LIST_FIELDS, NodeRecord, fieldAllowed, maskSecrets } from '../../model/node.js';
import { addHistory, findNode, insertNode, listNodes, updateNode } from '../../store/nodes.js';
import { applyPatch, PatchError } from '../../util/jsonpatch.js';
import { apiTime, isUuid } from '../../util/ids.js';
import { defaultInterfaces, hardwareType } from '../../drivers/registry.js';
import { checkInterface } from '../../drivers/compose.js';
import { INTERFACE_KINDS, InterfaceKind } from '../../drivers/interfaces.js';
import { S, VERBS, WAIT_STATES } from '../../conductor/states.js';
import { ConductorRing, pickFrom } from '../../conductor/ring.js';
import { Dispatcher } from './dispatch.js';
import { BAREMETAL_PREFIX, baseOf, boolParam, checkKeys, checkName, checkType, fieldsParam, links, minorOf, nextLink, nodeLocked, objectBody, paging, requireMinor, uuidParam } from './common.js';

const SORTABLE = new Set(['id', 'uuid', 'name', 'created_at', 'updated_at', 'provision_state', 'power_state', 'driver', 'instance_uuid', 'maintenance', 'resource_class', 'conductor_group', 'owner', 'lessee', 'provision_updated_at', 'inspection_started_at', 'inspection_finished_at', 'description', 'retired', 'protected', 'fault', 'shard', 'target_provision_state', 'target_power_state', 'reservation', 'last_error', 'automated_clean', 'console_enabled', 'boot_mode', ...INTERFACE_FIELDS]);
const CREATE_FIELDS = ['uuid', 'name', 'driver', 'driver_info', 'properties', 'extra', 'instance_info', 'chassis_uuid', 'resource_class', 'conductor_group', 'automated_clean', 'owner', 'lessee', 'description', 'network_data', 'protected', 'protected_reason', 'retired', 'retired_reason', 'shard', 'instance_uuid', ...INTERFACE_FIELDS];
const PATCHABLE = new Set(['name', 'driver', 'driver_info', 'properties', 'extra', 'instance_info', 'instance_uuid', 'chassis_uuid', 'resource_class', 'conductor_group', 'automated_clean', 'protected', 'protected_reason', 'owner', 'lessee', 'description', 'retired', 'retired_reason', 'network_data', 'shard', 'maintenance', 'maintenance_reason', ...INTERFACE_FIELDS]);
const DELETE_STATES = new Set([S.MANAGEABLE, S.ENROLL, S.ADOPTFAIL, S.AVAILABLE]);
/** Operations refused while a node is in maintenance. */
const BLOCKED_IN_MAINTENANCE = new Set(['active', 'deploy', 'rebuild', 'provide', 'clean', 'inspect', 'adopt', 'rescue', 'unrescue']);
const TRAIT_RE = /^(CUSTOM_[A-Z0-9_]+|[A-Z][A-Z0-9_]*)$/;

export interface NodeViewContext { minor: number; base: string; conductorOf: (n: NodeRecord) => string | null; showSecrets: boolean }

/** A node as the API shows it at a microversion, with only `fields` when given. */
export function renderNode(n: NodeRecord, ctx: NodeViewContext, fields?: readonly string[]): Record<string, unknown> {
  const want = fields ?? API_FIELDS;
  const out: Record<string, unknown> = {};
  for (const f of want) {
    if (!fieldAllowed(f, ctx.minor)) continue;
    let v: unknown;
    switch (f) {
      case 'conductor': v = ctx.conductorOf(n); break;
      case 'chassis_uuid': v = n.chassis_uuid ?? null; break;
      case 'allocation_uuid': v = n.allocation_uuid ?? null; break;
      case 'driver_info': v = ctx.showSecrets ? n.driver_info : maskSecrets(n.driver_info); break;
      case 'instance_info': {
        const ii = ctx.showSecrets ? n.instance_info : (maskSecrets(n.instance_info) as Record<string, unknown>);
        if (!ctx.showSecrets && ii.configdrive) ii.configdrive = '******';
        v = ii;
        break;
      }
      case 'driver_internal_info': {
        const d = { ...n.driver_internal_info };
        if (d.agent_secret_token) d.agent_secret_token = '******';
        v = d;
        break;
      }
      case 'provision_updated_at': case 'created_at': case 'updated_at': case 'inspection_started_at': case 'inspection_finished_at':
        v = apiTime((n as unknown as Record<string, string | null>)[f]); break;
      default: v = (n as unknown as Record<string, unknown>)[f];
    }
    if (f === 'provision_state' && ctx.minor < 2 && v === S.AVAILABLE) v = null; // 1.1 shows "available" as None (NOSTATE)
    out[f] = v === undefined ? null : v;
  }
  if (!fields) {
    out.links = links(ctx.base, 'nodes', n.uuid);
    out.ports = links(ctx.base, 'nodes', `${n.uuid}/ports`);
    if (ctx.minor >= 14) out.states = links(ctx.base, 'nodes', `${n.uuid}/states`);
    if (ctx.minor >= 24) out.portgroups = links(ctx.base, 'nodes', `${n.uuid}/portgroups`);
    if (ctx.minor >= 32) out.volume = links(ctx.base, 'nodes', `${n.uuid}/volume`);
  }
  return out;
}

export function nodeRoutes(router: Router, db: Db, dispatcher: Dispatcher, ring: ConductorRing): void {
  const style = { style: 'ironic' as const };
  const P = `${BAREMETAL_PREFIX}/v1/nodes`;

  const viewCtx = async (req: Request): Promise<NodeViewContext> => {
    const live = await ring.live();
    return { minor: minorOf(req), base: baseOf(req), conductorOf: (n) => n.reservation ?? pickFrom(live, n) ?? null, showSecrets: false };
  };

  /** May the caller see this node? Admins and system readers see all; projects see what they own or lease. */
  const visible = (a: AuthContext, n: NodeRecord) => a.admin || (a.system && a.roles.has('reader')) || (!!a.projectId && (n.owner === a.projectId || n.lessee === a.projectId));
  const writer = (a: AuthContext, n?: NodeRecord) => {
    if (a.admin) return;
    if (!a.roles.has('member')) throw forbidden();
    if (n && !(a.projectId && (n.owner === a.projectId || n.lessee === a.projectId))) throw forbidden();
  };
  const adminOnly = (a: AuthContext) => { if (!a.admin) throw forbidden(); };

  const getNode = async (req: Request, ident = req.params.node!): Promise<NodeRecord> => {
    const n = await findNode(db, ident);
    const a = authOf(req);
    if (!n || !visible(a, n)) throw notFound(`Node ${ident} could not be found.`);
    return n;
  };

  /**
   * Serialized list answers, reused while the store reports no change at all (clients such as
   * a compute service poll the node list constantly). Keyed by everything the answer depends on.
   */
  const listCache = new Map<string, { version: string; body: Buffer }>();
  const list = async (req: Request, detail: boolean, resource = 'nodes'): Promise<Response> => {
    const a = authOf(req);
    const version = db.version();
    const scope = a.admin ? 'admin' : a.system && a.roles.has('reader') ? 'reader' : `project:${a.projectId ?? ''}`;
    const key = `${req.baseUrl}|${minorOf(req)}|${scope}|${resource}|${detail}|${req.query.toString()}`;
    const hit = version === undefined ? undefined : listCache.get(key);
    if (hit && hit.version === version) return { body: hit.body, headers: { 'Content-Type': 'application/json' } };
    const out = await listUncached(req, detail, resource);
    if (version !== undefined && version === db.version()) {
      if (listCache.size >= 256) listCache.clear();
      const body = Buffer.from(JSON.stringify(out.body));
      listCache.set(key, { version, body });
      return { body, headers: { 'Content-Type': 'application/json' } };
    }
    return out;
  };
  const listUncached = async (req: Request, detail: boolean, resource: string): Promise<Response> => {
    const a = authOf(req);
    const minor = minorOf(req);
    const q = req.query;
    if (q.has('detail')) {
      if (minor < 43) throw new ApiError(406, 'The detail parameter requires API version 1.43 or later.');
      if (resource === 'nodes/detail') throw badRequest("Can't fetch a subset of fields with 'detail' set");
      detail = boolParam(req, 'detail') ?? false;
    }
    let fields = fieldsParam(req, [...API_FIELDS], FIELD_SINCE);
    if (fields && detail) throw badRequest("Can't fetch a subset of fields with 'detail' set");
    if (!fields && !detail) fields = LIST_FIELDS;
    const pg = paging(req, SORTABLE);
    const where: string[] = [];
    const params: unknown[] = [];
    const eq = (param: string, col: string) => { const v = q.get(param); if (v !== null) { where.push(`n.${col} = ?`); params.push(v); } };
    eq('provision_state', 'provision_state'); eq('driver', 'driver'); eq('resource_class', 'resource_class');
    eq('conductor_group', 'conductor_group'); eq('fault', 'fault'); eq('owner', 'owner'); eq('lessee', 'lessee'); eq('shard', 'shard');
    if (q.get('instance_uuid')) { where.push('n.instance_uuid = ?'); params.push(uuidParam(q.get('instance_uuid'), 'instance_uuid')); }
    for (const [param, col] of [['maintenance', 'maintenance'], ['retired', 'retired']] as const) {
      const b = boolParam(req, param);
      if (b !== undefined) { where.push(`n.${col} = ?`); params.push(b ? 1 : 0); }
    }
    const assoc = boolParam(req, 'associated');
    if (assoc !== undefined) where.push(assoc ? 'n.instance_uuid IS NOT NULL' : 'n.instance_uuid IS NULL');
    const desc = q.get('description_contains');
    if (desc) { where.push("n.description LIKE ? ESCAPE '\\'"); params.push(`%${desc.replace(/[\\%_]/g, (c) => '\\' + c)}%`); }
    if (q.get('chassis_uuid')) { where.push('n.chassis_id = (SELECT id FROM chassis WHERE uuid = ?)'); params.push(uuidParam(q.get('chassis_uuid'), 'chassis_uuid')); }
    const project = q.get('project');
    if (project) { where.push('(n.owner = ? OR n.lessee = ?)'); params.push(project, project); }
    if (!(a.admin || (a.system && a.roles.has('reader')))) {
      if (!a.projectId) throw forbidden();
      where.push('(n.owner = ? OR n.lessee = ?)');
      params.push(a.projectId, a.projectId);
    }
    let marker: NodeRecord | undefined;
    if (pg.marker) {
      marker = isUuid(pg.marker) ? await findNode(db, pg.marker) : undefined;
      if (!marker) throw badRequest(`Invalid marker: node ${pg.marker} could not be found.`);
    }
    // Read only what is shown (plus what visibility and the conductor column need).
    const columns = fields ? [...fields.filter((f) => f !== 'conductor'), ...(fields.includes('conductor') ? ['reservation', 'driver', 'conductor_group'] : [])] : undefined;
    const nodes = await listNodes(db, { columns, where, params, sortKey: pg.sortKey, sortDir: pg.sortDir, limit: pg.limit, marker });
    const ctx = await viewCtx(req);
    const out: Record<string, unknown> = { nodes: nodes.map((n) => {
      const r = renderNode(n, ctx, fields);
      if (fields) r.links = links(ctx.base, 'nodes', n.uuid);
      return r;
    }) };
    const nxt = nextLink(req, resource, nodes, pg.limit, q.has('limit'));
    if (nxt) out.next = nxt;
    return { body: out };
  };

  router.add(style, 'GET', P, (req) => list(req, false));
  router.add(style, 'GET', `${P}/detail`, (req) => list(req, true, 'nodes/detail'));

  router.add(style, 'GET', `${P}/:node`, async (req) => {
    const fields = fieldsParam(req, [...API_FIELDS], FIELD_SINCE);
    const n = await getNode(req);
    const ctx = await viewCtx(req);
    const body = renderNode(n, ctx, fields);
    if (fields) body.links = links(ctx.base, 'nodes', n.uuid);
    return { body };
  });

  // ---- create ----
  router.add(style, 'POST', P, async (req) => {
    const a = authOf(req);
    adminOnly(a);
    const minor = minorOf(req);
    const b = objectBody(req, 'node');
    checkKeys(b, CREATE_FIELDS, 'node');
    for (const f of Object.keys(b)) if (!fieldAllowed(f, minor)) throw new ApiError(406, `Field ${f} requires API version 1.${FIELD_SINCE[f]} or later.`);
    if (typeof b.driver !== 'string' || !b.driver) throw badRequest("Schema error for node: 'driver' is a required property");
    for (const k of ['driver_info', 'properties', 'extra', 'instance_info', 'network_data'] as const) checkType(b, k, 'object', 'node');
    for (const k of ['name', 'resource_class', 'conductor_group', 'owner', 'lessee', 'description', 'protected_reason', 'retired_reason', 'shard', ...INTERFACE_FIELDS]) checkType(b, k, 'string', 'node');
    for (const k of ['automated_clean', 'protected', 'retired']) checkType(b, k, 'boolean', 'node');
    checkName(b.name, 'node');
    const type = hardwareType(b.driver);
    if (!type) throw badRequest(`The driver '${b.driver}' is unknown. Known drivers: see GET /v1/drivers.`);
    for (const kind of INTERFACE_KINDS) {
      const v = b[`${kind}_interface`];
      if (typeof v === 'string') { const err = checkInterface(type, kind, v); if (err) throw badRequest(err); }
    }
    const uuid = b.uuid === undefined ? undefined : uuidParam(b.uuid, 'uuid');
    if (uuid && (await findNode(db, uuid))) throw new ApiError(409, `A node with UUID ${uuid} already exists.`);
    if (typeof b.name === 'string' && (await findNode(db, b.name))) throw new ApiError(409, `A node with name ${b.name} already exists.`);
    let chassis_id: number | null = null;
    if (b.chassis_uuid !== undefined && b.chassis_uuid !== null) {
      const c = await db.get<{ id: number }>('SELECT id FROM chassis WHERE uuid = ?', [uuidParam(b.chassis_uuid, 'chassis_uuid')]);
      if (!c) throw badRequest(`Chassis ${String(b.chassis_uuid)} could not be found.`);
      chassis_id = Number(c.id);
    }
    const fields: Record<string, unknown> = {};
    for (const k of CREATE_FIELDS) if (b[k] !== undefined && k !== 'chassis_uuid' && k !== 'uuid') fields[k] = b[k];
    // As Ironic: the node records the interface each kind resolves to.
    const defaults = defaultInterfaces(type);
    for (const kind of INTERFACE_KINDS) if (fields[`${kind}_interface`] === undefined) fields[`${kind}_interface`] = defaults[kind];
    if (uuid) fields.uuid = uuid;
    if (fields.instance_uuid) fields.instance_uuid = uuidParam(fields.instance_uuid, 'instance_uuid');
    // The node and its first history entry in one commit.
    const node = await db.tx(async (t) => {
      const n = await insertNode(t, {
        ...(fields as Partial<NodeRecord>), driver: type.name, chassis_id,
        conductor_group: (b.conductor_group as string | undefined)?.toLowerCase() ?? '',
        provision_state: minor >= 11 ? S.ENROLL : S.AVAILABLE,
        power_state: null,
      });
      await addHistory(t, n.id, { event: `node created in state ${n.provision_state}`, event_type: 'provisioning', user_id: a.token.u });
      return n;
    });
    const ctx = await viewCtx(req);
    return { status: 201, headers: { Location: `${ctx.base}/v1/nodes/${node.uuid}` }, body: renderNode(node, ctx) };
  });

  // ---- update (JSON-Patch) ----
  router.add(style, 'PATCH', `${P}/:node`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    const minor = minorOf(req);
    if (!Array.isArray(req.body)) throw badRequest('The request body must be a JSON-Patch list, e.g. [{"op": "replace", "path": "/name", "value": "n1"}].');
    const resetInterfaces = boolParam(req, 'reset_interfaces');
    for (const op of req.body as { path?: unknown; op?: unknown }[]) {
      const path = typeof op?.path === 'string' ? op.path : '';
      const top = path.split('/')[1] ?? '';
      if (!PATCHABLE.has(top)) {
        if ((API_FIELDS as readonly string[]).includes(top) || top === 'id') throw badRequest(`'/${top}' is an internal attribute and can not be updated`);
        throw badRequest(`Invalid patch path '${path}': the node has no attribute '${top}'.`);
      }
      if (!fieldAllowed(top, minor)) throw new ApiError(406, `Field ${top} requires API version 1.${FIELD_SINCE[top]} or later.`);
      if (!a.admin && ['driver', 'driver_info', 'owner', 'conductor_group', 'protected', ...INTERFACE_FIELDS].includes(top)) throw forbidden(`Only an administrator may change '${top}'.`);
    }
    if (n.reservation) throw nodeLocked(n.uuid, n.reservation);
    const doc: Record<string, unknown> = {};
    for (const f of PATCHABLE) doc[f] = f === 'chassis_uuid' ? n.chassis_uuid ?? null : (n as unknown as Record<string, unknown>)[f] ?? null;
    for (const k of ['driver_info', 'properties', 'extra', 'instance_info', 'network_data']) if (!doc[k]) doc[k] = {};
    let patched: Record<string, unknown>;
    try { patched = applyPatch(doc, req.body); } catch (e) {
      if (e instanceof PatchError) throw badRequest(e.message);
      throw e;
    }
    // A removed top-level field goes back to its default.
    for (const f of PATCHABLE) if (!(f in patched)) patched[f] = ['driver_info', 'properties', 'extra', 'instance_info', 'network_data'].includes(f) ? {} : f === 'protected' || f === 'retired' || f === 'maintenance' ? false : null;
    const changes: Record<string, unknown> = {};
    for (const f of PATCHABLE) if (JSON.stringify(patched[f]) !== JSON.stringify(doc[f])) changes[f] = patched[f];
    for (const k of ['driver_info', 'properties', 'extra', 'instance_info', 'network_data']) checkType(changes, k, 'object', 'node', false);
    for (const k of ['name', 'resource_class', 'conductor_group', 'owner', 'lessee', 'description', 'protected_reason', 'retired_reason', 'shard', 'driver', 'maintenance_reason', ...INTERFACE_FIELDS]) checkType(changes, k, 'string', 'node');
    for (const k of ['automated_clean']) checkType(changes, k, 'boolean', 'node');
    for (const k of ['protected', 'retired', 'maintenance']) checkType(changes, k, 'boolean', 'node', false);
    if (n.protected && patched.protected !== false) {
      const other = Object.keys(changes).filter((k) => !['protected', 'protected_reason', 'maintenance', 'maintenance_reason', 'description', 'extra'].includes(k));
      if (other.length && [S.ACTIVE, S.RESCUE].includes(n.provision_state as 'active')) throw forbidden(`Node ${n.uuid} is protected and cannot be undeployed, rebuilt or changed (${other.join(', ')}): unset protected first.`);
    }
    if (changes.protected === true && ![S.ACTIVE, S.RESCUE].includes(n.provision_state as 'active')) throw badRequest(`Node ${n.uuid} can only be made protected in state active or rescue, not ${n.provision_state}.`);
    if (changes.protected_reason && !patched.protected) throw badRequest('Cannot set protected_reason without setting protected to True');
    if (changes.name !== undefined && changes.name !== null) {
      checkName(changes.name, 'node');
      const other = await findNode(db, changes.name as string);
      if (other && other.id !== n.id) throw new ApiError(409, `A node with name ${String(changes.name)} already exists.`);
    }
    if (changes.instance_uuid) changes.instance_uuid = uuidParam(changes.instance_uuid, 'instance_uuid');
    if ('chassis_uuid' in changes) {
      if (changes.chassis_uuid === null) changes.chassis_id = null;
      else {
        const c = await db.get<{ id: number }>('SELECT id FROM chassis WHERE uuid = ?', [uuidParam(changes.chassis_uuid, 'chassis_uuid')]);
        if (!c) throw badRequest(`Chassis ${String(changes.chassis_uuid)} could not be found.`);
        changes.chassis_id = Number(c.id);
      }
      delete changes.chassis_uuid;
    }
    const driver = (changes.driver as string | undefined) ?? n.driver;
    const type = hardwareType(driver);
    if (!type) throw badRequest(`The driver '${driver}' is unknown.`);
    if (changes.driver !== undefined && resetInterfaces !== false) {
      const defaults = defaultInterfaces(type);
      for (const kind of INTERFACE_KINDS) if (!(`${kind}_interface` in changes) || changes[`${kind}_interface`] === null) changes[`${kind}_interface`] = defaults[kind];
    } else if (resetInterfaces && changes.driver === undefined) {
      throw badRequest('The reset_interfaces parameter can be set only when the node driver is updated.');
    }
    for (const kind of INTERFACE_KINDS) {
      const v = changes[`${kind}_interface`];
      if (typeof v === 'string') { const err = checkInterface(type, kind as InterfaceKind, v); if (err) throw badRequest(err); }
      else if (changes.driver !== undefined) {
        const cur = (n as unknown as Record<string, string | null>)[`${kind}_interface`];
        if (cur && resetInterfaces === false && checkInterface(type, kind as InterfaceKind, cur)) throw badRequest(checkInterface(type, kind as InterfaceKind, cur)!);
      }
    }
    const ifaceChange = Object.keys(changes).some((k) => k === 'driver' || k.endsWith('_interface'));
    if (ifaceChange && ![S.ENROLL, S.MANAGEABLE, S.INSPECTING, S.INSPECTWAIT, S.AVAILABLE].includes(n.provision_state as 'enroll')) {
      throw new ApiError(409, `The driver or interfaces of node ${n.uuid} can only be changed in enroll, manageable, inspecting or available, not ${n.provision_state}.`);
    }
    if (changes.conductor_group !== undefined && changes.conductor_group !== null) changes.conductor_group = (changes.conductor_group as string).toLowerCase();
    if (changes.conductor_group === null) changes.conductor_group = '';
    if (Object.keys(changes).length) {
      if (!(await updateNode(db, n.id, changes as Partial<NodeRecord>, { reservation: null }))) throw nodeLocked(n.uuid, 'another host');
      await addHistory(db, n.id, { event: `updated: ${Object.keys(changes).join(', ')}`, event_type: 'update', user_id: a.token.u });
    }
    const fresh = (await findNode(db, n.uuid))!;
    return { body: renderNode(fresh, await viewCtx(req)) };
  });

  router.add(style, 'DELETE', `${P}/:node`, async (req) => {
    const a = authOf(req);
    adminOnly(a);
    const n = await getNode(req);
    if (n.reservation) throw nodeLocked(n.uuid, n.reservation);
    if (n.protected) throw forbidden(`Node ${n.uuid} is protected and cannot be deleted.`);
    // As in Ironic: any state may be deleted once the node is in maintenance.
    if (!DELETE_STATES.has(n.provision_state as 'enroll') && !n.maintenance) {
      throw new ApiError(409, `Can not delete node ${n.uuid} while it is in provision state "${n.provision_state}". Valid provision states to start deletion are: ${[...DELETE_STATES].join(', ')}, or set the node into maintenance mode`);
    }
    await db.tx(async (t) => {
      await t.run("UPDATE allocations SET node_id = NULL, state = 'error', last_error = 'The node was deleted' WHERE node_id = ?", [n.id]);
      await t.run('DELETE FROM node_tasks WHERE node_id = ?', [n.id]);
      await t.run('DELETE FROM node_history WHERE node_id = ?', [n.id]);
      await t.run('DELETE FROM ports WHERE node_id = ?', [n.id]);
      await t.run('DELETE FROM portgroups WHERE node_id = ?', [n.id]);
      const r = await t.run('DELETE FROM nodes WHERE id = ? AND reservation IS NULL', [n.id]);
      if (!r.changes) throw nodeLocked(n.uuid, 'another host');
    });
    return { status: 204 };
  });

  // ---- states ----
  router.add(style, 'GET', `${P}/:node/states`, async (req) => {
    const n = await getNode(req);
    const minor = minorOf(req);
    const body: Record<string, unknown> = {
      console_enabled: n.console_enabled, last_error: n.last_error, power_state: n.power_state, provision_state: n.provision_state,
      provision_updated_at: apiTime(n.provision_updated_at), target_power_state: n.target_power_state, target_provision_state: n.target_provision_state,
    };
    if (minor >= 12) { body.raid_config = n.raid_config; body.target_raid_config = n.target_raid_config; }
    if (minor >= 75) { body.boot_mode = n.boot_mode; body.secure_boot = n.secure_boot; }
    return { body };
  });

  router.add(style, 'PUT', `${P}/:node/states/provision`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    const minor = minorOf(req);
    const b = objectBody(req, 'provision request');
    checkKeys(b, ['target', 'configdrive', 'clean_steps', 'deploy_steps', 'rescue_password', 'disable_ramdisk'], 'provision request');
    const verb = b.target;
    if (typeof verb !== 'string' || !(verb in VERBS)) throw badRequest(`The requested action "${String(verb)}" is not a valid provision target: use one of ${Object.keys(VERBS).join(', ')}.`);
    const minVer: Record<string, number> = { manage: 4, provide: 4, inspect: 6, clean: 15, abort: 13, adopt: 17, rescue: 38, unrescue: 38, deploy: 73, undeploy: 73 };
    if (minVer[verb] && minor < minVer[verb]!) throw new ApiError(406, `The "${verb}" action requires API version 1.${minVer[verb]} or later.`);
    if (n.maintenance && BLOCKED_IN_MAINTENANCE.has(verb)) throw badRequest(`Node ${n.uuid} is in maintenance mode (${n.maintenance_reason ?? 'no reason given'}): unset maintenance before "${verb}".`);
    if (n.protected && ['deleted', 'undeploy', 'rebuild'].includes(verb)) throw forbidden(`Node ${n.uuid} is protected and cannot be undeployed, rebuilt or deleted.`);
    if (verb === 'clean') {
      if (!Array.isArray(b.clean_steps) || !b.clean_steps.length) throw badRequest('"clean_steps" is required when setting target provision state to clean');
      for (const s of b.clean_steps as unknown[]) {
        const st = s as Record<string, unknown>;
        if (!st || typeof st !== 'object' || typeof st.interface !== 'string' || typeof st.step !== 'string' || !st.step) throw badRequest('Invalid clean_steps: each step needs "interface" and "step" strings (and optional "args").');
        checkKeys(st, ['interface', 'step', 'args'], 'clean step');
      }
    } else if (b.clean_steps !== undefined) throw badRequest(`"clean_steps" is only valid when setting target provision state to clean`);
    if (b.configdrive !== undefined && !['active', 'deploy', 'rebuild'].includes(verb)) throw badRequest('Adding a config drive is only supported when setting provision state to active/deploy or rebuild');
    if (b.configdrive !== undefined && typeof b.configdrive !== 'string' && (typeof b.configdrive !== 'object' || b.configdrive === null)) throw badRequest('Invalid configdrive: a string (base64 gzipped ISO or URL) or an object (meta_data, user_data, network_data).');
    const event = VERBS[verb]!;
    if (Dispatcher.DIRECT.has(`${n.provision_state}:${event}`)) {
      await dispatcher.provision(n, event, undefined, {}, a.token.u, verb);
    } else {
      const action = ({ manage: 'verify', provide: 'clean', clean: 'clean', inspect: 'inspect', deploy: 'deploy', rebuild: 'deploy', delete: 'undeploy', abort: 'abort', adopt: 'adopt', rescue: 'rescue', unrescue: 'unrescue' } as const)[event as 'manage'];
      if (event === 'abort' && !WAIT_STATES.has(n.provision_state)) throw badRequest(`The requested action "abort" can not be performed on node "${n.uuid}" while it is in state "${n.provision_state}".`);
      const args: Record<string, unknown> = {};
      if (verb === 'clean') args.clean_steps = b.clean_steps;
      if (b.configdrive !== undefined) args.configdrive = b.configdrive;
      await dispatcher.provision(n, event, action, args, a.token.u, verb);
    }
    return { status: 202, headers: { Location: `${baseOf(req)}/v1/nodes/${n.uuid}/states` } };
  });

  router.add(style, 'PUT', `${P}/:node/states/power`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    const minor = minorOf(req);
    const b = objectBody(req, 'power request');
    checkKeys(b, ['target', 'timeout'], 'power request');
    const target = b.target;
    const allowed = ['power on', 'power off', 'rebooting', ...(minor >= 27 ? ['soft power off', 'soft rebooting'] : [])];
    if (typeof target !== 'string' || !allowed.includes(target)) throw badRequest(`Invalid power target ${JSON.stringify(target)}: use one of ${allowed.join(', ')}.`);
    if (b.timeout !== undefined && (!Number.isInteger(b.timeout) || (b.timeout as number) < 1)) throw badRequest('Invalid timeout: it must be a positive integer (seconds).');
    if (n.provision_state === S.ENROLL && n.power_state === null && !n.driver_info) throw badRequest(`Node ${n.uuid} has no power credentials yet.`);
    await dispatcher.power(n, target, b.timeout as number | undefined, a.token.u);
    return { status: 202, headers: { Location: `${baseOf(req)}/v1/nodes/${n.uuid}/states` } };
  });

  router.add(style, 'GET', `${P}/:node/states/console`, async (req) => {
    const n = await getNode(req);
    const info = n.console_enabled ? await dispatcher.call(n, 'validate', {}, false).then(() => ({ type: 'none', url: null })).catch(() => null) : null;
    return { body: { console_enabled: n.console_enabled, console_info: n.console_enabled ? info : null } };
  });
  router.add(style, 'PUT', `${P}/:node/states/console`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    const b = objectBody(req, 'console request');
    if (typeof b.enabled !== 'boolean') throw badRequest('Invalid console request: "enabled" must be true or false.');
    await dispatcher.call(n, 'console', { enabled: b.enabled }, true);
    return { status: 202, headers: { Location: `${baseOf(req)}/v1/nodes/${n.uuid}/states/console` } };
  });

  // ---- management ----
  router.add(style, 'GET', `${P}/:node/management/boot_device`, async (req) => {
    const n = await getNode(req);
    return { body: await dispatcher.call(n, 'get_boot_device', {}, false) };
  });
  router.add(style, 'GET', `${P}/:node/management/boot_device/supported`, async (req) => {
    const n = await getNode(req);
    const { resolveDriver } = await import('../../drivers/compose.js');
    const d = resolveDriver(n);
    return { body: { supported_boot_devices: d.management.supportedBootDevices({ node: n } as never) } };
  });
  router.add(style, 'PUT', `${P}/:node/management/boot_device`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    const b = objectBody(req, 'boot device request');
    checkKeys(b, ['boot_device', 'persistent'], 'boot device request');
    if (typeof b.boot_device !== 'string') throw badRequest('Invalid boot device request: "boot_device" is required.');
    if (b.persistent !== undefined && typeof b.persistent !== 'boolean') throw badRequest('Invalid boot device request: "persistent" must be true or false.');
    await dispatcher.call(n, 'set_boot_device', { boot_device: b.boot_device, persistent: b.persistent ?? false }, true);
    return { status: 204 };
  });

  router.add(style, 'GET', `${P}/:node/validate`, async (req) => {
    const n = await getNode(req);
    return { body: await dispatcher.call(n, 'validate', {}, false) };
  });

  // ---- maintenance ----
  router.add(style, 'PUT', `${P}/:node/maintenance`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (b.reason !== undefined && b.reason !== null && typeof b.reason !== 'string') throw badRequest('Invalid maintenance reason: a string.');
    await updateNode(db, n.id, { maintenance: true, maintenance_reason: (b.reason as string | undefined) ?? null, fault: null });
    await addHistory(db, n.id, { event: `maintenance set${b.reason ? `: ${String(b.reason)}` : ''}`, event_type: 'maintenance', user_id: a.token.u });
    return { status: 202 };
  });
  router.add(style, 'DELETE', `${P}/:node/maintenance`, async (req) => {
    const a = authOf(req);
    const n = await getNode(req);
    writer(a, n);
    await updateNode(db, n.id, { maintenance: false, maintenance_reason: null, fault: null });
    await addHistory(db, n.id, { event: 'maintenance unset', event_type: 'maintenance', user_id: a.token.u });
    return { status: 202 };
  });

  // ---- traits ----
  router.add(style, 'GET', `${P}/:node/traits`, async (req) => {
    requireMinor(req, 37);
    return { body: { traits: (await getNode(req)).traits } };
  });
  const setTraits = async (req: Request, traits: string[]) => {
    for (const t of traits) if (typeof t !== 'string' || t.length > 255 || !TRAIT_RE.test(t)) throw badRequest(`Invalid trait ${JSON.stringify(t)}: a standard trait or one matching CUSTOM_[A-Z0-9_]+.`);
    if (traits.length > 50) throw badRequest('A node can have at most 50 traits.');
    const n = await getNode(req);
    writer(authOf(req), n);
    if (n.reservation) throw nodeLocked(n.uuid, n.reservation);
    await updateNode(db, n.id, { traits: [...new Set(traits)].sort() });
  };
  router.add(style, 'PUT', `${P}/:node/traits`, async (req) => {
    requireMinor(req, 37);
    const b = objectBody(req, 'traits');
    if (!Array.isArray(b.traits)) throw badRequest('Invalid traits request: {"traits": [...]}.');
    await setTraits(req, b.traits as string[]);
    return { status: 204 };
  });
  router.add(style, 'PUT', `${P}/:node/traits/:trait`, async (req) => {
    requireMinor(req, 37);
    const n = await getNode(req);
    await setTraits(req, [...n.traits, req.params.trait!]);
    return { status: 204, headers: { Location: `${baseOf(req)}/v1/nodes/${n.uuid}/traits/${req.params.trait}` } };
  });
  router.add(style, 'DELETE', `${P}/:node/traits`, async (req) => {
    requireMinor(req, 37);
    await setTraits(req, []);
    return { status: 204 };
  });
  router.add(style, 'DELETE', `${P}/:node/traits/:trait`, async (req) => {
    requireMinor(req, 37);
    const n = await getNode(req);
    if (!n.traits.includes(req.params.trait!)) throw notFound(`Node ${n.uuid} doesn't have a trait '${req.params.trait}'`);
    await setTraits(req, n.traits.filter((t) => t !== req.params.trait));
    return { status: 204 };
  });

  // ---- history ----
  const renderEvent = (req: Request, n: NodeRecord, e: Record<string, unknown>, detail: boolean) => {
    const out: Record<string, unknown> = { uuid: e.uuid, created_at: apiTime(e.created_at as string), severity: e.severity, event: e.event, links: links(baseOf(req), 'nodes', `${n.uuid}/history/${String(e.uuid)}`) };
    if (detail) Object.assign(out, { event_type: e.event_type, conductor: e.conductor, user: e.user_id, duration_ms: e.duration_ms });
    return out;
  };
  router.add(style, 'GET', `${P}/:node/history`, async (req) => {
    requireMinor(req, 78);
    const n = await getNode(req);
    const detail = boolParam(req, 'detail') ?? false;
    const limit = Math.min(Number(req.query.get('limit') ?? 1000) || 1000, 1000);
    const rows = await db.all<Record<string, unknown>>('SELECT * FROM node_history WHERE node_id = ? ORDER BY id LIMIT ?', [n.id, limit]);
    return { body: { history: rows.map((r) => renderEvent(req, n, r, detail)) } };
  });
  router.add(style, 'GET', `${P}/:node/history/:event`, async (req) => {
    requireMinor(req, 78);
    const n = await getNode(req);
    const row = await db.get<Record<string, unknown>>('SELECT * FROM node_history WHERE node_id = ? AND uuid = ?', [n.id, req.params.event]);
    if (!row) throw notFound(`Node history record ${req.params.event} could not be found.`);
    return { body: renderEvent(req, n, row, true) };
  });

  // ---- inventory (filled by inspection) ----
  router.add(style, 'GET', `${P}/:node/inventory`, async (req) => {
    requireMinor(req, 81);
    const n = await getNode(req);
    const inv = n.driver_internal_info.inspection_inventory;
    if (!inv) throw notFound(`Inventory for node ${n.uuid} could not be found: inspect the node first.`);
    return { body: { inventory: inv, plugin_data: n.driver_internal_info.inspection_plugin_data ?? {} } };
  });

  // ---- VIFs (no tenant networking in the seed: always empty) ----
  router.add(style, 'GET', `${P}/:node/vifs`, async (req) => { await getNode(req); return { body: { vifs: [] } }; });

}
