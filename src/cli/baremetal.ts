/**
 * `ooo node|port|allocation|driver|conductor ...`: the bare-metal API from the command line,
 * the way an operator uses it: tables by default, --json for scripts, --wait with progress.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { CommandSpec, Parsed } from './args.js';
import { CLOUD_FLAGS, WAIT_FLAGS, cloudOf, guarded, keyValues, waitForNodes } from './common.js';
import { CliError, EXIT, print, printJson, record, table } from './output.js';
import type { Cloud } from '../client/cloud.js';

type Obj = Record<string, unknown>;
const enc = encodeURIComponent;

function show(p: Parsed, obj: Obj): void {
  if (p.flags.json) printJson(obj);
  else print(record(Object.fromEntries(Object.entries(obj).filter(([k]) => !['links', 'ports', 'states', 'portgroups', 'volume'].includes(k)))));
}

const NODE_SET_FLAGS = {
  name: { type: 'string', help: 'node name' },
  'driver-info': { type: 'list', help: 'driver_info KEY=VALUE (repeatable)', value: 'KEY=VALUE' },
  property: { type: 'list', help: 'properties KEY=VALUE (repeatable)', value: 'KEY=VALUE' },
  'instance-info': { type: 'list', help: 'instance_info KEY=VALUE (repeatable)', value: 'KEY=VALUE' },
  extra: { type: 'list', help: 'extra KEY=VALUE (repeatable)', value: 'KEY=VALUE' },
  'resource-class': { type: 'string', help: 'resource class' },
  description: { type: 'string', help: 'free-text description' },
  owner: { type: 'string', help: 'owning project' },
  'conductor-group': { type: 'string', help: 'conductor group' },
} as const;

function patchFrom(p: Parsed, op: 'add' | 'remove'): Obj[] {
  const ops: Obj[] = [];
  const scalars: [string, string][] = [['name', 'name'], ['resource-class', 'resource_class'], ['description', 'description'], ['owner', 'owner'], ['conductor-group', 'conductor_group']];
  for (const [flag, field] of scalars) {
    const v = p.flags[flag];
    if (v === undefined) continue;
    ops.push(op === 'add' ? { op: 'add', path: `/${field}`, value: v } : { op: 'remove', path: `/${field}` });
  }
  for (const [flag, field] of [['driver-info', 'driver_info'], ['property', 'properties'], ['instance-info', 'instance_info'], ['extra', 'extra']] as const) {
    if (op === 'add') for (const [k, v] of Object.entries(keyValues(p.flags[flag], flag))) ops.push({ op: 'add', path: `/${field}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, value: v });
    else for (const k of (p.flags[flag] as string[] | undefined) ?? []) ops.push({ op: 'remove', path: `/${field}/${k}` });
  }
  return ops;
}

const TARGET_OF_VERB: Record<string, string> = { manage: 'manageable', provide: 'available', inspect: 'manageable', clean: 'manageable', active: 'active', rebuild: 'active', deleted: 'available', abort: '', adopt: 'active' };

async function provision(p: Parsed, verb: string, body: Obj = {}): Promise<number> {
  const cloud = cloudOf(p);
  return guarded(async () => {
    const start = new Map<string, string>();
    for (const id of p.args) {
      if (p.flags.image) await cloud.baremetal('PATCH', `/v1/nodes/${enc(id)}`, [{ op: 'add', path: '/instance_info/image_source', value: String(p.flags.image) }]);
      if (p.flags.wait) {
        const n = await cloud.baremetal<Obj>('GET', `/v1/nodes/${enc(id)}?fields=provision_state`);
        start.set(id, String(n.provision_state));
      }
      await cloud.baremetal('PUT', `/v1/nodes/${enc(id)}/states/provision`, { target: verb, ...body });
      if (!p.flags.wait) print(`${id}: ${verb} requested`);
    }
    if (!p.flags.wait || !TARGET_OF_VERB[verb]) return EXIT.ok;
    return waitForNodes(cloud, p.args, TARGET_OF_VERB[verb]!, p.flags.timeout as number, false, new Map());
  });
}

const provisionCmd = (name: string, verb: string, summary: string, extra: CommandSpec['flags'] = {}, body: (p: Parsed) => Obj = () => ({})): CommandSpec => ({
  path: ['node', name], summary, args: ['NODE...'], flags: { ...CLOUD_FLAGS, ...WAIT_FLAGS, ...extra },
  run: (p) => { if (!p.args.length) throw new CliError('name at least one NODE', EXIT.usage); return provision(p, verb, body(p)); },
});

/** Reads an inventory (YAML or JSON): {nodes: [{name, driver, driver_info, properties, resource_class, ports: [{address}]}]}. */
export function readInventory(file: string): Obj[] {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new CliError(`cannot read ${file}: ${(e as Error).message}`, EXIT.usage); }
  let doc: unknown;
  try { doc = YAML.parse(text); } catch (e) { throw new CliError(`${file} is not valid YAML or JSON: ${(e as Error).message}`, EXIT.usage); }
  const nodes = Array.isArray(doc) ? doc : (doc as { nodes?: unknown })?.nodes;
  if (!Array.isArray(nodes)) throw new CliError(`${file}: expected a list of nodes or {nodes: [...]}`, EXIT.usage);
  nodes.forEach((n, i) => {
    if (!n || typeof n !== 'object') throw new CliError(`${file}: node #${i + 1} is not a mapping`, EXIT.usage);
    if (typeof (n as Obj).driver !== 'string') throw new CliError(`${file}: node #${i + 1}${(n as Obj).name ? ` (${String((n as Obj).name)})` : ''} has no driver`, EXIT.usage);
  });
  return nodes as Obj[];
}

export async function importNodes(cloud: Cloud, nodes: Obj[], onNode?: (n: Obj) => void): Promise<Obj[]> {
  const created: Obj[] = [];
  for (const n of nodes) {
    const { ports, mac, macs, redfish, pm_addr: _pm, ...fields } = n as Obj & { ports?: Obj[]; mac?: string[]; macs?: string[]; redfish?: unknown };
    void redfish; void _pm;
    const body: Obj = {};
    for (const k of ['name', 'driver', 'driver_info', 'properties', 'extra', 'resource_class', 'uuid', 'description', 'owner', 'conductor_group', 'instance_info', 'network_data', ...['bios', 'boot', 'console', 'deploy', 'inspect', 'management', 'network', 'power', 'raid', 'rescue', 'storage', 'vendor'].map((x) => `${x}_interface`)]) {
      if ((fields as Obj)[k] !== undefined) body[k] = (fields as Obj)[k];
    }
    const node = await cloud.baremetal<Obj>('POST', '/v1/nodes', body);
    const addresses = [...((ports as Obj[] | undefined) ?? []).map((x) => String(x.address)), ...(mac ?? []), ...(macs ?? [])];
    for (const address of addresses) await cloud.baremetal('POST', '/v1/ports', { node_uuid: node.uuid, address });
    created.push(node);
    onNode?.(node);
  }
  return created;
}

export const commands: CommandSpec[] = [
  {
    path: ['node', 'list'], summary: 'list nodes',
    flags: { ...CLOUD_FLAGS, 'provision-state': { type: 'string', help: 'only nodes in this state' }, driver: { type: 'string', help: 'only nodes with this driver' }, long: { type: 'boolean', help: 'more columns' }, limit: { type: 'number', help: 'at most this many' } },
    run: (p) => guarded(async () => {
      const cloud = cloudOf(p);
      const q = new URLSearchParams();
      if (p.flags['provision-state']) q.set('provision_state', String(p.flags['provision-state']));
      if (p.flags.driver) q.set('driver', String(p.flags.driver));
      q.set('fields', 'uuid,name,power_state,provision_state,maintenance,driver,resource_class,last_error,instance_uuid');
      let url = `/v1/nodes?${q}`;
      const nodes: Obj[] = [];
      const max = (p.flags.limit as number | undefined) ?? Infinity;
      while (url && nodes.length < max) {
        const r = await cloud.baremetal<{ nodes: Obj[]; next?: string }>('GET', url);
        nodes.push(...r.nodes);
        url = r.next ? r.next.slice(r.next.indexOf('/v1/')) : '';
      }
      const rows = nodes.slice(0, max === Infinity ? undefined : max);
      if (p.flags.json) { printJson(rows); return EXIT.ok; }
      const cols = p.flags.long ? ['uuid', 'name', 'driver', 'power_state', 'provision_state', 'maintenance', 'resource_class', 'last_error'] : ['uuid', 'name', 'power_state', 'provision_state', 'maintenance'];
      print(table(cols, rows.map((n) => cols.map((c) => n[c]))));
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'show'], summary: 'show one node', args: ['NODE'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => { show(p, await cloudOf(p).baremetal<Obj>('GET', `/v1/nodes/${enc(p.args[0]!)}`)); return EXIT.ok; }),
  },
  {
    path: ['node', 'create'], summary: 'enroll a node',
    flags: { ...CLOUD_FLAGS, driver: { type: 'string', help: 'hardware type (ipmi, redfish, sim, fake-hardware)' }, uuid: { type: 'string', help: 'UUID (default: generated)' }, ...NODE_SET_FLAGS, port: { type: 'list', help: 'MAC address of a NIC (repeatable)', value: 'MAC' } },
    run: (p) => guarded(async () => {
      if (!p.flags.driver) throw new CliError('--driver is required (see `ooo driver list`)', EXIT.usage);
      const cloud = cloudOf(p);
      const body: Obj = { driver: p.flags.driver };
      if (p.flags.uuid) body.uuid = p.flags.uuid;
      for (const op of patchFrom(p, 'add')) {
        const [, field, key] = String(op.path).split('/');
        if (key) ((body[field!] as Obj | undefined) ?? (body[field!] = {}), (body[field!] as Obj)[key.replace(/~1/g, '/').replace(/~0/g, '~')] = op.value);
        else body[field!] = op.value;
      }
      const [node] = await importNodes(cloud, [{ ...body, ports: ((p.flags.port as string[] | undefined) ?? []).map((address) => ({ address })) }]);
      show(p, node!);
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'import'], summary: 'enroll the nodes of an inventory file (YAML or JSON, as `ooo bmc serve` prints)', args: ['FILE'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const nodes = readInventory(p.args[0]!);
      const created = await importNodes(cloudOf(p), nodes, (n) => { if (!p.flags.json) print(`enrolled ${String(n.name ?? n.uuid)} (${String(n.uuid)}) in ${String(n.provision_state)}`); });
      if (p.flags.json) printJson(created.map((n) => ({ uuid: n.uuid, name: n.name, provision_state: n.provision_state })));
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'set'], summary: 'change node fields', args: ['NODE'],
    flags: { ...CLOUD_FLAGS, ...NODE_SET_FLAGS, maintenance: { type: 'boolean', help: 'put the node in maintenance' }, 'no-maintenance': { type: 'boolean', help: 'take the node out of maintenance' }, reason: { type: 'string', help: 'maintenance reason' } },
    run: (p) => guarded(async () => {
      const cloud = cloudOf(p);
      const id = enc(p.args[0]!);
      const ops = patchFrom(p, 'add');
      if (!ops.length && !p.flags.maintenance && !p.flags['no-maintenance']) throw new CliError('nothing to set: give at least one option', EXIT.usage);
      if (ops.length) await cloud.baremetal('PATCH', `/v1/nodes/${id}`, ops);
      if (p.flags.maintenance) await cloud.baremetal('PUT', `/v1/nodes/${id}/maintenance`, p.flags.reason ? { reason: p.flags.reason } : {});
      if (p.flags['no-maintenance']) await cloud.baremetal('DELETE', `/v1/nodes/${id}/maintenance`);
      if (p.flags.json) printJson(await cloud.baremetal('GET', `/v1/nodes/${id}`));
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'unset'], summary: 'remove node fields (give the keys to remove)', args: ['NODE'],
    flags: { ...CLOUD_FLAGS, 'driver-info': { type: 'list', help: 'driver_info KEY to remove', value: 'KEY' }, property: { type: 'list', help: 'properties KEY to remove', value: 'KEY' }, 'instance-info': { type: 'list', help: 'instance_info KEY to remove', value: 'KEY' }, extra: { type: 'list', help: 'extra KEY to remove', value: 'KEY' }, name: { type: 'boolean', help: 'remove the name' }, description: { type: 'boolean', help: 'remove the description' }, 'resource-class': { type: 'boolean', help: 'remove the resource class' } },
    run: (p) => guarded(async () => {
      const ops = patchFrom(p, 'remove');
      if (!ops.length) throw new CliError('nothing to unset: give at least one option', EXIT.usage);
      await cloudOf(p).baremetal('PATCH', `/v1/nodes/${enc(p.args[0]!)}`, ops);
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'delete'], summary: 'delete nodes', args: ['NODE...'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const cloud = cloudOf(p);
      for (const id of p.args) { await cloud.baremetal('DELETE', `/v1/nodes/${enc(id)}`); print(`deleted ${id}`); }
      return EXIT.ok;
    }),
  },
  provisionCmd('manage', 'manage', 'verify the BMC and move nodes to manageable'),
  provisionCmd('provide', 'provide', 'clean nodes and make them available'),
  provisionCmd('inspect', 'inspect', 'discover the hardware of nodes'),
  provisionCmd('clean', 'clean', 'run clean steps on manageable nodes', { 'clean-steps': { type: 'string', help: 'JSON list of steps, e.g. \'[{"interface":"deploy","step":"erase_devices_metadata"}]\'' } }, (p) => {
    const raw = p.flags['clean-steps'];
    if (!raw) throw new CliError('--clean-steps is required', EXIT.usage);
    try { return { clean_steps: JSON.parse(String(raw)) }; } catch (e) { throw new CliError(`--clean-steps is not valid JSON: ${(e as Error).message}`, EXIT.usage); }
  }),
  provisionCmd('deploy', 'active', 'deploy nodes (set instance_info image_source first, or pass --image)', { image: { type: 'string', help: 'image to deploy (sets instance_info.image_source)' }, 'config-drive': { type: 'string', help: 'config drive: JSON with meta_data/user_data/network_data, or a URL' } }, (p) => {
    const body: Obj = {};
    if (p.flags['config-drive']) { const v = String(p.flags['config-drive']); try { body.configdrive = JSON.parse(v); } catch { body.configdrive = v; } }
    return body;
  }),
  provisionCmd('undeploy', 'deleted', 'tear down deployments and clean the nodes'),
  provisionCmd('rebuild', 'rebuild', 'redeploy active nodes'),
  provisionCmd('abort', 'abort', 'abort an operation waiting for the ramdisk'),
  provisionCmd('adopt', 'adopt', 'take over nodes that are already running an instance'),
  ...(['on', 'off', 'reboot'] as const).map((state): CommandSpec => ({
    path: ['node', 'power', state], summary: `power nodes ${state}`, args: ['NODE...'],
    flags: { ...CLOUD_FLAGS, ...WAIT_FLAGS, soft: { type: 'boolean', help: 'ask the OS (ACPI) instead of cutting power' } },
    run: (p) => guarded(async () => {
      const cloud = cloudOf(p);
      const target = state === 'on' ? 'power on' : state === 'off' ? (p.flags.soft ? 'soft power off' : 'power off') : (p.flags.soft ? 'soft rebooting' : 'rebooting');
      for (const id of p.args) await cloud.baremetal('PUT', `/v1/nodes/${enc(id)}/states/power`, { target });
      if (!p.flags.wait) return EXIT.ok;
      const want = state === 'off' ? 'power off' : 'power on';
      const deadline = Date.now() + (p.flags.timeout as number) * 1000;
      for (const id of p.args) {
        for (;;) {
          const n = await cloud.baremetal<Obj>('GET', `/v1/nodes/${enc(id)}?fields=name,power_state,target_power_state,last_error`);
          if (!n.target_power_state) {
            if (n.power_state === want) { print(`${id}: ${want}`); break; }
            throw new CliError(`${id}: power ${state} failed: ${String(n.last_error ?? `power state is ${String(n.power_state)}`)}`, EXIT.failure);
          }
          if (Date.now() > deadline) throw new CliError(`${id}: timed out waiting for ${want}`, EXIT.timeout);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      return EXIT.ok;
    }),
  })),
  {
    path: ['node', 'boot-device'], summary: 'set the next boot device (pxe, disk, cdrom, bios), or show it with no DEVICE', args: ['NODE', 'DEVICE?'],
    flags: { ...CLOUD_FLAGS, persistent: { type: 'boolean', help: 'for every boot, not just the next' } },
    run: (p) => guarded(async () => {
      const cloud = cloudOf(p);
      const id = enc(p.args[0]!);
      if (p.args[1]) { await cloud.baremetal('PUT', `/v1/nodes/${id}/management/boot_device`, { boot_device: p.args[1], persistent: !!p.flags.persistent }); return EXIT.ok; }
      show(p, await cloud.baremetal<Obj>('GET', `/v1/nodes/${id}/management/boot_device`));
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'validate'], summary: "check each of a node's interfaces", args: ['NODE'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const r = await cloudOf(p).baremetal<Record<string, { result: boolean | null; reason: string | null }>>('GET', `/v1/nodes/${enc(p.args[0]!)}/validate`);
      if (p.flags.json) { printJson(r); return EXIT.ok; }
      print(table(['interface', 'result', 'reason'], Object.entries(r).map(([k, v]) => [k, v.result, v.reason])));
      return Object.values(r).some((v) => v.result === false) ? EXIT.failure : EXIT.ok;
    }),
  },
  {
    path: ['node', 'history'], summary: 'what happened to a node, and why', args: ['NODE'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const r = await cloudOf(p).baremetal<{ history: Obj[] }>('GET', `/v1/nodes/${enc(p.args[0]!)}/history?detail=true`);
      if (p.flags.json) { printJson(r.history); return EXIT.ok; }
      print(table(['time', 'severity', 'type', 'event', 'ms'], r.history.map((e) => [e.created_at, e.severity, e.event_type, e.event, e.duration_ms])));
      return EXIT.ok;
    }),
  },
  {
    path: ['node', 'inventory'], summary: 'the hardware inventory found by inspection', args: ['NODE'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => { printJson(await cloudOf(p).baremetal('GET', `/v1/nodes/${enc(p.args[0]!)}/inventory`)); return EXIT.ok; }),
  },
  {
    path: ['port', 'list'], summary: 'list ports', flags: { ...CLOUD_FLAGS, node: { type: 'string', help: 'only the ports of this node' } },
    run: (p) => guarded(async () => {
      const r = await cloudOf(p).baremetal<{ ports: Obj[] }>('GET', `/v1/ports?detail=true${p.flags.node ? `&node=${enc(String(p.flags.node))}` : ''}`);
      if (p.flags.json) { printJson(r.ports); return EXIT.ok; }
      print(table(['uuid', 'address', 'node_uuid', 'pxe_enabled'], r.ports.map((x) => [x.uuid, x.address, x.node_uuid, x.pxe_enabled])));
      return EXIT.ok;
    }),
  },
  {
    path: ['port', 'create'], summary: 'add a NIC (MAC address) to a node', args: ['MAC'],
    flags: { ...CLOUD_FLAGS, node: { type: 'string', help: 'node name or UUID' }, 'no-pxe': { type: 'boolean', help: 'the node does not network-boot from this NIC' }, 'physical-network': { type: 'string', help: 'physical network name' } },
    run: (p) => guarded(async () => {
      if (!p.flags.node) throw new CliError('--node is required', EXIT.usage);
      const cloud = cloudOf(p);
      const node = await cloud.baremetal<Obj>('GET', `/v1/nodes/${enc(String(p.flags.node))}?fields=uuid`);
      const body: Obj = { node_uuid: node.uuid, address: p.args[0] };
      if (p.flags['no-pxe']) body.pxe_enabled = false;
      if (p.flags['physical-network']) body.physical_network = p.flags['physical-network'];
      show(p, await cloud.baremetal<Obj>('POST', '/v1/ports', body));
      return EXIT.ok;
    }),
  },
  {
    path: ['port', 'show'], summary: 'show a port', args: ['PORT'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => { show(p, await cloudOf(p).baremetal<Obj>('GET', `/v1/ports/${enc(p.args[0]!)}`)); return EXIT.ok; }),
  },
  {
    path: ['port', 'delete'], summary: 'delete ports', args: ['PORT...'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => { const c = cloudOf(p); for (const id of p.args) await c.baremetal('DELETE', `/v1/ports/${enc(id)}`); return EXIT.ok; }),
  },
  {
    path: ['allocation', 'create'], summary: 'claim an available node by resource class and traits',
    flags: { ...CLOUD_FLAGS, 'resource-class': { type: 'string', help: 'resource class the node must have' }, trait: { type: 'list', help: 'trait the node must have (repeatable)' }, candidate: { type: 'list', help: 'only consider this node (repeatable)' }, name: { type: 'string', help: 'allocation name' }, node: { type: 'string', help: 'backfill: record an allocation for this active node' } },
    run: (p) => guarded(async () => {
      const body: Obj = {};
      if (p.flags['resource-class']) body.resource_class = p.flags['resource-class'];
      if (p.flags.trait) body.traits = p.flags.trait;
      if (p.flags.candidate) body.candidate_nodes = p.flags.candidate;
      if (p.flags.name) body.name = p.flags.name;
      if (p.flags.node) body.node = p.flags.node;
      const a = await cloudOf(p).baremetal<Obj>('POST', '/v1/allocations', body);
      show(p, a);
      return a.state === 'error' ? EXIT.failure : EXIT.ok;
    }),
  },
  {
    path: ['allocation', 'list'], summary: 'list allocations', flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const r = await cloudOf(p).baremetal<{ allocations: Obj[] }>('GET', '/v1/allocations');
      if (p.flags.json) { printJson(r.allocations); return EXIT.ok; }
      print(table(['uuid', 'name', 'state', 'node_uuid', 'resource_class', 'last_error'], r.allocations.map((a) => [a.uuid, a.name, a.state, a.node_uuid, a.resource_class, a.last_error])));
      return EXIT.ok;
    }),
  },
  {
    path: ['allocation', 'show'], summary: 'show an allocation', args: ['ALLOCATION'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => { show(p, await cloudOf(p).baremetal<Obj>('GET', `/v1/allocations/${enc(p.args[0]!)}`)); return EXIT.ok; }),
  },
  {
    path: ['allocation', 'delete'], summary: 'release allocations', args: ['ALLOCATION...'], flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => { const c = cloudOf(p); for (const id of p.args) await c.baremetal('DELETE', `/v1/allocations/${enc(id)}`); return EXIT.ok; }),
  },
  {
    path: ['driver', 'list'], summary: 'hardware types and the conductors that serve them', flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const r = await cloudOf(p).baremetal<{ drivers: Obj[] }>('GET', '/v1/drivers');
      if (p.flags.json) { printJson(r.drivers); return EXIT.ok; }
      print(table(['name', 'hosts'], r.drivers.map((d) => [d.name, (d.hosts as string[]).join(', ')])));
      return EXIT.ok;
    }),
  },
  {
    path: ['conductor', 'list'], summary: 'conductors and whether they are alive', flags: CLOUD_FLAGS,
    run: (p) => guarded(async () => {
      const r = await cloudOf(p).baremetal<{ conductors: Obj[] }>('GET', '/v1/conductors?detail=true');
      if (p.flags.json) { printJson(r.conductors); return EXIT.ok; }
      print(table(['hostname', 'conductor_group', 'alive', 'drivers'], r.conductors.map((c) => [c.hostname, c.conductor_group, c.alive, (c.drivers as string[]).join(', ')])));
      return EXIT.ok;
    }),
  },
];
