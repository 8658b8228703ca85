/**
 * The smaller bare-metal resources: version discovery, chassis, drivers, conductors,
 * allocations and deploy templates.
 */
import type { Db } from '../../store/db.js';
import { ApiError, Request, Router, badRequest, forbidden, notFound } from '../http.js';
import { authOf } from '../auth.js';
import { apiTime, canonicalUuid, isUuid, now, uuid as newUuid } from '../../util/ids.js';
import { applyPatch, PatchError } from '../../util/jsonpatch.js';
import { defaultInterfaces, driverProperties, hardwareType, hardwareTypes } from '../../drivers/registry.js';
import { INTERFACE_KINDS } from '../../drivers/interfaces.js';
import { ConductorRing, ConductorRow, DEFAULT_DEAD_AFTER_S } from '../../conductor/ring.js';
import { S } from '../../conductor/states.js';
import { addHistory, findNode, updateNode } from '../../store/nodes.js';
import { BAREMETAL_PREFIX, MAX_MINOR, MIN_MINOR, baseOf, boolParam, checkKeys, checkName, checkType, fieldsParam, links, minorOf, objectBody, requireMinor, uuidParam } from './common.js';

const TRAIT_RE = /^(CUSTOM_[A-Z0-9_]+|[A-Z][A-Z0-9_]*)$/;

export function resourceRoutes(router: Router, db: Db, ring: ConductorRing): void {
  const style = { style: 'ironic' as const };
  const pub = { style: 'ironic' as const, public: true };
  const V = `${BAREMETAL_PREFIX}/v1`;
  const adminOnly = (req: Request) => { if (!authOf(req).admin) throw forbidden(); };

  // ---- version discovery (no authentication, as Ironic) ----
  const version = (req: Request) => ({
    id: 'v1', links: [{ href: `${baseOf(req)}/v1/`, rel: 'self' }], status: 'CURRENT', min_version: `1.${MIN_MINOR}`, version: `1.${MAX_MINOR}`,
  });
  router.add(pub, 'GET', BAREMETAL_PREFIX || '/', (req) => ({
    body: { name: 'OpenStack Ironic API', description: 'Ironic is an OpenStack project which enables the provision and management of baremetal machines.', default_version: version(req), versions: [version(req)] },
  }));
  router.add(pub, 'GET', V, (req) => {
    const b = baseOf(req);
    const res = (name: string) => [{ href: `${b}/v1/${name}/`, rel: 'self' }, { href: `${b}/${name}/`, rel: 'bookmark' }];
    return {
      body: {
        id: 'v1', links: [{ href: `${b}/v1/`, rel: 'self' }, { href: 'https://docs.openstack.org//ironic/latest/contributor//webapi.html', rel: 'describedby', type: 'text/html' }],
        media_types: [{ base: 'application/json', type: 'application/vnd.openstack.ironic.v1+json' }],
        chassis: res('chassis'), nodes: res('nodes'), ports: res('ports'), portgroups: res('portgroups'), drivers: res('drivers'),
        volume: res('volume'), lookup: res('lookup'), heartbeat: res('heartbeat'), conductors: res('conductors'), allocations: res('allocations'),
        deploy_templates: res('deploy_templates'), version: version(req),
      },
    };
  });

  // ---- chassis ----
  interface ChassisRow { id: number; uuid: string; description: string | null; extra: string; created_at: string; updated_at: string | null }
  const renderChassis = (req: Request, c: ChassisRow, fields?: string[]) => {
    const all: Record<string, unknown> = { uuid: c.uuid, description: c.description, extra: JSON.parse(c.extra), created_at: apiTime(c.created_at), updated_at: apiTime(c.updated_at) };
    const out: Record<string, unknown> = {};
    for (const f of fields ?? Object.keys(all)) out[f] = all[f];
    out.links = links(baseOf(req), 'chassis', c.uuid);
    if (!fields) out.nodes = links(baseOf(req), 'chassis', `${c.uuid}/nodes`);
    return out;
  };
  const getChassis = async (req: Request) => {
    const id = req.params.chassis!;
    const c = isUuid(id) ? await db.get<ChassisRow>('SELECT * FROM chassis WHERE uuid = ?', [canonicalUuid(id)]) : undefined;
    if (!c) throw notFound(`Chassis ${id} could not be found.`);
    return c;
  };
  const listChassis = async (req: Request, detail: boolean) => {
    const rows = await db.all<ChassisRow>('SELECT * FROM chassis ORDER BY id LIMIT 1000');
    const fields = fieldsParam(req, ['uuid', 'description', 'extra', 'created_at', 'updated_at']) ?? (detail ? undefined : ['uuid', 'description']);
    return { body: { chassis: rows.map((c) => renderChassis(req, c, fields)) } };
  };
  router.add(style, 'GET', `${V}/chassis`, (req) => listChassis(req, boolParam(req, 'detail') ?? false));
  router.add(style, 'GET', `${V}/chassis/detail`, (req) => listChassis(req, true));
  router.add(style, 'GET', `${V}/chassis/:chassis`, async (req) => ({ body: renderChassis(req, await getChassis(req)) }));
  router.add(style, 'GET', `${V}/chassis/:chassis/nodes`, async (req) => {
    const c = await getChassis(req);
    const rows = await db.all<{ uuid: string; name: string | null; instance_uuid: string | null; power_state: string | null; provision_state: string; maintenance: number }>('SELECT uuid, name, instance_uuid, power_state, provision_state, maintenance FROM nodes WHERE chassis_id = ? ORDER BY id', [c.id]);
    return { body: { nodes: rows.map((n) => ({ ...n, maintenance: !!n.maintenance, links: links(baseOf(req), 'nodes', n.uuid) })) } };
  });
  router.add(style, 'POST', `${V}/chassis`, async (req) => {
    adminOnly(req);
    const b = objectBody(req, 'chassis');
    checkKeys(b, ['uuid', 'description', 'extra'], 'chassis');
    checkType(b, 'description', 'string', 'chassis');
    checkType(b, 'extra', 'object', 'chassis', false);
    const id = b.uuid === undefined ? newUuid() : uuidParam(b.uuid, 'uuid');
    if (await db.get('SELECT id FROM chassis WHERE uuid = ?', [id])) throw new ApiError(409, `A chassis with UUID ${id} already exists.`);
    await db.run('INSERT INTO chassis (uuid, description, extra, created_at) VALUES (?, ?, ?, ?)', [id, b.description ?? null, JSON.stringify(b.extra ?? {}), now()]);
    return { status: 201, headers: { Location: `${baseOf(req)}/v1/chassis/${id}` }, body: renderChassis(req, (await db.get<ChassisRow>('SELECT * FROM chassis WHERE uuid = ?', [id]))!) };
  });
  router.add(style, 'PATCH', `${V}/chassis/:chassis`, async (req) => {
    adminOnly(req);
    const c = await getChassis(req);
    let p: Record<string, unknown>;
    try { p = applyPatch({ description: c.description, extra: JSON.parse(c.extra) }, req.body); } catch (e) { if (e instanceof PatchError) throw badRequest(e.message); throw e; }
    checkKeys(p, ['description', 'extra'], 'chassis');
    checkType(p, 'description', 'string', 'chassis');
    await db.run('UPDATE chassis SET description = ?, extra = ?, updated_at = ? WHERE id = ?', [p.description ?? null, JSON.stringify(p.extra ?? {}), now(), c.id]);
    return { body: renderChassis(req, (await db.get<ChassisRow>('SELECT * FROM chassis WHERE id = ?', [c.id]))!) };
  });
  router.add(style, 'DELETE', `${V}/chassis/:chassis`, async (req) => {
    adminOnly(req);
    const c = await getChassis(req);
    if (await db.get('SELECT id FROM nodes WHERE chassis_id = ?', [c.id])) throw badRequest(`Chassis ${c.uuid} contains nodes.`);
    await db.run('DELETE FROM chassis WHERE id = ?', [c.id]);
    return { status: 204 };
  });

  // ---- drivers ----
  const renderDriver = async (req: Request, name: string, detail: boolean) => {
    const live = await ring.live();
    const type = hardwareType(name)!;
    const out: Record<string, unknown> = {
      name, hosts: live.filter((c) => c.drivers.has(name)).map((c) => c.hostname), type: 'dynamic',
      links: links(baseOf(req), 'drivers', name), properties: links(baseOf(req), 'drivers', `${name}/properties`),
    };
    if (detail && minorOf(req) >= 30) {
      const d = defaultInterfaces(type);
      for (const k of INTERFACE_KINDS) { out[`default_${k}_interface`] = d[k]; out[`enabled_${k}_interfaces`] = type.supported[k]; }
    }
    return out;
  };
  router.add(style, 'GET', `${V}/drivers`, async (req) => {
    const t = req.query.get('type');
    if (t && t !== 'classic' && t !== 'dynamic') throw badRequest(`Invalid driver type ${t}: classic or dynamic.`);
    const detail = boolParam(req, 'detail') ?? false;
    const live = await ring.live();
    const names = t === 'classic' ? [] : hardwareTypes().map((h) => h.name).filter((n) => live.some((c) => c.drivers.has(n)));
    return { body: { drivers: await Promise.all(names.map((n) => renderDriver(req, n, detail))) } };
  });
  router.add(style, 'GET', `${V}/drivers/:driver`, async (req) => {
    if (!hardwareType(req.params.driver!)) throw notFound(`Could not find the following driver(s) or hardware type(s): ${req.params.driver}.`);
    return { body: await renderDriver(req, req.params.driver!, true) };
  });
  router.add(style, 'GET', `${V}/drivers/:driver/properties`, async (req) => {
    const type = hardwareType(req.params.driver!);
    if (!type) throw notFound(`Could not find the following driver(s) or hardware type(s): ${req.params.driver}.`);
    const props = driverProperties(type);
    return { body: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, `${v.description}${v.required ? ' Required.' : ''}`])) };
  });

  // ---- conductors ----
  const renderConductor = (req: Request, c: ConductorRow, detail: boolean) => {
    const alive = !!c.online && Date.parse(c.alive_at) > Date.now() - DEFAULT_DEAD_AFTER_S * 1000;
    const out: Record<string, unknown> = { hostname: c.hostname, conductor_group: c.conductor_group, alive, links: links(baseOf(req), 'conductors', c.hostname) };
    if (detail) Object.assign(out, { drivers: JSON.parse(c.drivers), created_at: apiTime(c.created_at), updated_at: apiTime(c.alive_at) });
    return out;
  };
  router.add(style, 'GET', `${V}/conductors`, async (req) => {
    requireMinor(req, 49);
    const rows = await db.all<ConductorRow>('SELECT * FROM conductors ORDER BY hostname');
    return { body: { conductors: rows.map((c) => renderConductor(req, c, boolParam(req, 'detail') ?? false)) } };
  });
  router.add(style, 'GET', `${V}/conductors/:host`, async (req) => {
    requireMinor(req, 49);
    const c = await db.get<ConductorRow>('SELECT * FROM conductors WHERE hostname = ?', [req.params.host]);
    if (!c) throw notFound(`Conductor ${req.params.host} could not be found.`);
    return { body: renderConductor(req, c, true) };
  });

  // ---- allocations ----
  interface AllocationRow { id: number; uuid: string; name: string | null; node_id: number | null; state: string; last_error: string | null; resource_class: string | null; traits: string; candidate_nodes: string; extra: string; owner: string | null; created_at: string; updated_at: string | null; node_uuid?: string | null }
  const A_SELECT = 'SELECT a.*, n.uuid AS node_uuid FROM allocations a LEFT JOIN nodes n ON n.id = a.node_id';
  const renderAlloc = (req: Request, a: AllocationRow) => ({
    uuid: a.uuid, name: a.name, node_uuid: a.node_uuid ?? null, state: a.state, last_error: a.last_error, resource_class: a.resource_class,
    traits: JSON.parse(a.traits), candidate_nodes: JSON.parse(a.candidate_nodes), extra: JSON.parse(a.extra), owner: a.owner,
    created_at: apiTime(a.created_at), updated_at: apiTime(a.updated_at), links: links(baseOf(req), 'allocations', a.uuid),
  });
  const getAlloc = async (req: Request) => {
    requireMinor(req, 52);
    const id = req.params.alloc!;
    const a = isUuid(id) ? await db.get<AllocationRow>(`${A_SELECT} WHERE a.uuid = ?`, [canonicalUuid(id)]) : await db.get<AllocationRow>(`${A_SELECT} WHERE a.name = ?`, [id]);
    if (!a) throw notFound(`Allocation ${id} could not be found.`);
    return a;
  };
  router.add(style, 'GET', `${V}/allocations`, async (req) => {
    requireMinor(req, 52);
    const where: string[] = [];
    const params: unknown[] = [];
    for (const k of ['state', 'resource_class', 'owner']) if (req.query.get(k)) { where.push(`a.${k} = ?`); params.push(req.query.get(k)); }
    if (req.query.get('node')) { const n = await findNode(db, req.query.get('node')!); where.push('a.node_id = ?'); params.push(n?.id ?? -1); }
    const rows = await db.all<AllocationRow>(`${A_SELECT}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY a.id LIMIT 1000`, params);
    return { body: { allocations: rows.map((a) => renderAlloc(req, a)) } };
  });
  router.add(style, 'GET', `${V}/allocations/:alloc`, async (req) => ({ body: renderAlloc(req, await getAlloc(req)) }));
  router.add(style, 'GET', `${V}/nodes/:node/allocation`, async (req) => {
    requireMinor(req, 52);
    const n = await findNode(db, req.params.node!);
    if (!n) throw notFound(`Node ${req.params.node} could not be found.`);
    const a = await db.get<AllocationRow>(`${A_SELECT} WHERE a.node_id = ?`, [n.id]);
    if (!a) throw notFound(`Allocation for node ${n.uuid} could not be found.`);
    return { body: renderAlloc(req, a) };
  });
  router.add(style, 'POST', `${V}/allocations`, async (req) => {
    requireMinor(req, 52);
    const auth = authOf(req);
    if (!auth.admin && !auth.roles.has('member')) throw forbidden();
    const b = objectBody(req, 'allocation');
    checkKeys(b, ['uuid', 'name', 'resource_class', 'traits', 'candidate_nodes', 'extra', 'node', 'owner'], 'allocation');
    checkType(b, 'resource_class', 'string', 'allocation');
    checkType(b, 'traits', 'array', 'allocation', false);
    checkType(b, 'candidate_nodes', 'array', 'allocation', false);
    checkType(b, 'extra', 'object', 'allocation', false);
    checkName(b.name, 'allocation');
    const traits = (b.traits as unknown[] | undefined) ?? [];
    for (const t of traits) if (typeof t !== 'string' || !TRAIT_RE.test(t)) throw badRequest(`Invalid trait ${JSON.stringify(t)} in allocation.`);
    if (!b.node && !b.resource_class) throw badRequest('The resource_class field is mandatory when not backfilling');
    const id = b.uuid === undefined ? newUuid() : uuidParam(b.uuid, 'uuid');
    if (await db.get('SELECT id FROM allocations WHERE uuid = ?', [id])) throw new ApiError(409, `An allocation with UUID ${id} already exists.`);
    if (b.name && (await db.get('SELECT id FROM allocations WHERE name = ?', [b.name]))) throw new ApiError(409, `An allocation with name ${String(b.name)} already exists.`);
    const candidates: number[] = [];
    for (const c of (b.candidate_nodes as unknown[] | undefined) ?? []) {
      const n = typeof c === 'string' ? await findNode(db, c) : undefined;
      if (!n) throw badRequest(`Candidate node ${String(c)} could not be found.`);
      candidates.push(n.id);
    }
    const owner = (b.owner as string | undefined) ?? (auth.admin ? null : auth.projectId ?? null);
    await db.tx(async (t) => {
      await t.run('INSERT INTO allocations (uuid, name, state, resource_class, traits, candidate_nodes, extra, owner, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [id, b.name ?? null, 'allocating', b.resource_class ?? null, JSON.stringify(traits), JSON.stringify(b.candidate_nodes ?? []), JSON.stringify(b.extra ?? {}), owner, now()]);
      const alloc = (await t.get<{ id: number }>('SELECT id FROM allocations WHERE uuid = ?', [id]))!;
      let chosen: { id: number; uuid: string; traits: string } | undefined;
      let error: string | undefined;
      if (b.node) {
        // Backfill: record an allocation for a node that is already deployed.
        const n = await findNode(t, String(b.node));
        if (!n) throw badRequest(`Node ${String(b.node)} could not be found.`);
        if (n.provision_state !== S.ACTIVE) throw badRequest(`Cannot backfill an allocation for node ${n.uuid} in state ${n.provision_state}: it must be active.`);
        if (n.allocation_id) throw new ApiError(409, `Node ${n.uuid} already has an allocation.`);
        if (b.resource_class && n.resource_class !== b.resource_class) throw badRequest(`Node ${n.uuid} has resource class ${n.resource_class}, not ${String(b.resource_class)}.`);
        chosen = { id: n.id, uuid: n.uuid, traits: JSON.stringify(n.traits) };
      } else {
        const where = ["provision_state = 'available'", 'maintenance = 0', 'retired = 0', 'reservation IS NULL', 'instance_uuid IS NULL', 'allocation_id IS NULL', 'resource_class = ?'];
        const params: unknown[] = [b.resource_class];
        if (candidates.length) { where.push(`id IN (${candidates.map(() => '?').join(', ')})`); params.push(...candidates); }
        if (owner && !auth.admin) { where.push('(owner = ? OR lessee = ?)'); params.push(owner, owner); }
        const rows = await t.all<{ id: number; uuid: string; traits: string }>(`SELECT id, uuid, traits FROM nodes WHERE ${where.join(' AND ')} ORDER BY id`, params);
        const fit = rows.filter((r) => { const have = new Set(JSON.parse(r.traits) as string[]); return traits.every((x) => have.has(x as string)); });
        // Spread the load: pick at random among the nodes that fit.
        chosen = fit.length ? fit[Math.floor(Math.random() * fit.length)] : undefined;
        if (!chosen) error = `Failed to allocate: no available nodes match the resource class ${String(b.resource_class)}${traits.length ? ` and traits ${traits.join(', ')}` : ''}${candidates.length ? ' among the candidate nodes' : ''}.`;
      }
      if (chosen) {
        await t.run("UPDATE allocations SET node_id = ?, state = 'active', traits = ?, updated_at = ? WHERE id = ?", [chosen.id, JSON.stringify(traits), now(), alloc.id]);
        await updateNode(t, chosen.id, { allocation_id: alloc.id, instance_uuid: b.node ? undefined : id } as never);
        await addHistory(t, chosen.id, { event: `allocated by ${id}`, event_type: 'allocation', user_id: auth.token.u });
      } else {
        await t.run("UPDATE allocations SET state = 'error', last_error = ?, updated_at = ? WHERE id = ?", [error, now(), alloc.id]);
      }
    });
    return { status: 201, headers: { Location: `${baseOf(req)}/v1/allocations/${id}` }, body: renderAlloc(req, (await db.get<AllocationRow>(`${A_SELECT} WHERE a.uuid = ?`, [id]))!) };
  });
  router.add(style, 'PATCH', `${V}/allocations/:alloc`, async (req) => {
    const a = await getAlloc(req);
    let p: Record<string, unknown>;
    try { p = applyPatch({ name: a.name, extra: JSON.parse(a.extra) }, req.body); } catch (e) { if (e instanceof PatchError) throw badRequest(e.message); throw e; }
    checkKeys(p, ['name', 'extra'], 'allocation');
    checkName(p.name, 'allocation');
    await db.run('UPDATE allocations SET name = ?, extra = ?, updated_at = ? WHERE id = ?', [p.name ?? null, JSON.stringify(p.extra ?? {}), now(), a.id]);
    return { body: renderAlloc(req, (await db.get<AllocationRow>(`${A_SELECT} WHERE a.id = ?`, [a.id]))!) };
  });
  const deleteAlloc = async (a: AllocationRow) => {
    await db.tx(async (t) => {
      if (a.node_id) {
        const n = await t.get<{ provision_state: string; instance_uuid: string | null }>('SELECT provision_state, instance_uuid FROM nodes WHERE id = ?', [a.node_id]);
        if (n && [S.ACTIVE, S.DEPLOYING, S.DEPLOYWAIT].includes(n.provision_state as 'active')) throw new ApiError(409, `Cannot remove the allocation ${a.uuid}: its node is ${n.provision_state}; undeploy it first.`);
        await t.run(`UPDATE nodes SET allocation_id = NULL${n?.instance_uuid === a.uuid ? ', instance_uuid = NULL' : ''} WHERE id = ?`, [a.node_id]);
      }
      await t.run('DELETE FROM allocations WHERE id = ?', [a.id]);
    });
  };
  router.add(style, 'DELETE', `${V}/allocations/:alloc`, async (req) => { await deleteAlloc(await getAlloc(req)); return { status: 204 }; });
  router.add(style, 'DELETE', `${V}/nodes/:node/allocation`, async (req) => {
    requireMinor(req, 52);
    const n = await findNode(db, req.params.node!);
    if (!n) throw notFound(`Node ${req.params.node} could not be found.`);
    const a = await db.get<AllocationRow>(`${A_SELECT} WHERE a.node_id = ?`, [n.id]);
    if (!a) throw notFound(`Allocation for node ${n.uuid} could not be found.`);
    await deleteAlloc(a);
    return { status: 204 };
  });

  // ---- deploy templates ----
  interface TemplateRow { id: number; uuid: string; name: string; steps: string; extra: string; created_at: string; updated_at: string | null }
  const renderTpl = (req: Request, t: TemplateRow, fields?: string[]) => {
    const all: Record<string, unknown> = { uuid: t.uuid, name: t.name, steps: JSON.parse(t.steps), extra: JSON.parse(t.extra), created_at: apiTime(t.created_at), updated_at: apiTime(t.updated_at) };
    const out: Record<string, unknown> = {};
    for (const f of fields ?? Object.keys(all)) out[f] = all[f];
    out.links = links(baseOf(req), 'deploy_templates', t.uuid);
    return out;
  };
  const checkSteps = (steps: unknown) => {
    if (!Array.isArray(steps) || !steps.length) throw badRequest('Invalid deploy template: "steps" must be a non-empty list.');
    for (const s of steps) {
      const st = s as Record<string, unknown>;
      if (!st || typeof st.interface !== 'string' || typeof st.step !== 'string' || typeof st.priority !== 'number' || st.priority < 0) {
        throw badRequest('Invalid deploy step: each needs "interface", "step", "args" (object) and "priority" (integer >= 0).');
      }
      if (!['bios', 'deploy', 'management', 'power', 'raid'].includes(st.interface)) throw badRequest(`Invalid deploy step interface '${st.interface}'.`);
    }
  };
  const getTpl = async (req: Request) => {
    requireMinor(req, 55);
    const id = req.params.tpl!;
    const t = await db.get<TemplateRow>('SELECT * FROM deploy_templates WHERE uuid = ? OR name = ?', [id, id]);
    if (!t) throw notFound(`Deploy template ${id} could not be found.`);
    return t;
  };
  router.add(style, 'GET', `${V}/deploy_templates`, async (req) => {
    requireMinor(req, 55);
    const detail = boolParam(req, 'detail') ?? false;
    const rows = await db.all<TemplateRow>('SELECT * FROM deploy_templates ORDER BY id');
    return { body: { deploy_templates: rows.map((t) => renderTpl(req, t, detail ? undefined : fieldsParam(req, ['uuid', 'name', 'steps', 'extra', 'created_at', 'updated_at']) ?? ['uuid', 'name'])) } };
  });
  router.add(style, 'GET', `${V}/deploy_templates/:tpl`, async (req) => ({ body: renderTpl(req, await getTpl(req)) }));
  router.add(style, 'POST', `${V}/deploy_templates`, async (req) => {
    requireMinor(req, 55);
    adminOnly(req);
    const b = objectBody(req, 'deploy template');
    checkKeys(b, ['uuid', 'name', 'steps', 'extra'], 'deploy template');
    if (typeof b.name !== 'string' || !/^CUSTOM_[A-Z0-9_]+$/.test(b.name)) throw badRequest(`Invalid deploy template name ${JSON.stringify(b.name)}: it must be a custom trait (CUSTOM_[A-Z0-9_]+).`);
    checkSteps(b.steps);
    checkType(b, 'extra', 'object', 'deploy template', false);
    const id = b.uuid === undefined ? newUuid() : uuidParam(b.uuid, 'uuid');
    if (await db.get('SELECT id FROM deploy_templates WHERE name = ? OR uuid = ?', [b.name, id])) throw new ApiError(409, `A deploy template with name ${b.name} already exists.`);
    await db.run('INSERT INTO deploy_templates (uuid, name, steps, extra, created_at) VALUES (?, ?, ?, ?, ?)', [id, b.name, JSON.stringify((b.steps as Record<string, unknown>[]).map((s) => ({ args: {}, ...s }))), JSON.stringify(b.extra ?? {}), now()]);
    return { status: 201, headers: { Location: `${baseOf(req)}/v1/deploy_templates/${id}` }, body: renderTpl(req, (await db.get<TemplateRow>('SELECT * FROM deploy_templates WHERE uuid = ?', [id]))!) };
  });
  router.add(style, 'PATCH', `${V}/deploy_templates/:tpl`, async (req) => {
    adminOnly(req);
    const t = await getTpl(req);
    let p: Record<string, unknown>;
    try { p = applyPatch({ name: t.name, steps: JSON.parse(t.steps), extra: JSON.parse(t.extra) }, req.body); } catch (e) { if (e instanceof PatchError) throw badRequest(e.message); throw e; }
    if (typeof p.name !== 'string' || !/^CUSTOM_[A-Z0-9_]+$/.test(p.name)) throw badRequest(`Invalid deploy template name ${JSON.stringify(p.name)}.`);
    checkSteps(p.steps);
    await db.run('UPDATE deploy_templates SET name = ?, steps = ?, extra = ?, updated_at = ? WHERE id = ?', [p.name, JSON.stringify(p.steps), JSON.stringify(p.extra ?? {}), now(), t.id]);
    return { body: renderTpl(req, (await db.get<TemplateRow>('SELECT * FROM deploy_templates WHERE id = ?', [t.id]))!) };
  });
  router.add(style, 'DELETE', `${V}/deploy_templates/:tpl`, async (req) => {
    adminOnly(req);
    const t = await getTpl(req);
    await db.run('DELETE FROM deploy_templates WHERE id = ?', [t.id]);
    return { status: 204 };
  });
}
