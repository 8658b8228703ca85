/**
 * `ooo bmc serve`: virtual BMCs for N simulated machines — one IPMI v2.0 server per machine on
 * UDP ports P..P+N-1 and one Redfish HTTP server on port Q serving /redfish/v1/Systems/<name> —
 * and the inventory printed as YAML on stdout. Runs until SIGINT or SIGTERM.
 *
 * Inventory format (what `ooo node import` reads):
 *
 *   nodes:
 *     - name: sim-0                       # sim-<index>
 *       driver: ipmi
 *       driver_info:
 *         ipmi_address: 127.0.0.1         # --listen
 *         ipmi_port: 6230                 # --ipmi-port + index
 *         ipmi_username: admin            # --username
 *         ipmi_password: password         # --password
 *       redfish:                          # only when the Redfish server runs
 *         redfish_address: http://127.0.0.1:8000
 *         redfish_system_id: /redfish/v1/Systems/sim-0
 *         redfish_username: admin
 *         redfish_password: password
 *       ports:
 *         - address: 52:54:00:00:00:00    # 52:54:00 + the index on three bytes
 *
 * The flags are a contract other tools rely on; keep them stable.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { CommandSpec, Parsed } from './args.js';
import { UsageError } from './args.js';
import { CliError, EXIT } from './output.js';
import { IpmiServer } from '../protocols/ipmi/server.js';
import { RedfishServer } from '../protocols/redfish/server.js';
import { SimMachine } from '../lab/sim-machine.js';
import type { MachineBackend } from '../protocols/machine.js';

export interface VirtualBmcOptions {
  machines: number;
  listen?: string;
  /** First IPMI port (0 = any free port for each machine). */
  ipmiPort?: number;
  /** Redfish port (0 = any free port; null = no Redfish server). */
  redfishPort?: number | null;
  username?: string;
  password?: string;
  /** Prefix of the machine names (default sim-). */
  prefix?: string;
}

export interface InventoryNode {
  name: string;
  driver: 'ipmi';
  driver_info: { ipmi_address: string; ipmi_port: number; ipmi_username: string; ipmi_password: string };
  redfish?: { redfish_address: string; redfish_system_id: string; redfish_username: string; redfish_password: string };
  ports: { address: string }[];
}

export interface VirtualBmcs {
  machines: SimMachine[];
  ipmi: IpmiServer[];
  redfishPort: number | null;
  inventory: { nodes: InventoryNode[] };
  close(): Promise<void>;
}

/** Deterministic MAC for machine `index`: 52:54:00 + the index on three bytes. */
export function simMac(index: number): string {
  return ['52', '54', '00', (index >> 16) & 0xff, (index >> 8) & 0xff, index & 0xff].map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0'))).join(':');
}

/** Deterministic UUID for a machine name. */
export function simUuid(name: string): string {
  const h = createHash('sha1').update(`ooo-sim:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

/** Start N simulated machines with their IPMI servers (and one Redfish server). */
export async function startVirtualBmcs(o: VirtualBmcOptions): Promise<VirtualBmcs> {
  const host = o.listen ?? '127.0.0.1';
  const username = o.username ?? 'admin';
  const password = o.password ?? 'password';
  const prefix = o.prefix ?? 'sim-';
  const basePort = o.ipmiPort ?? 6230;
  const machines: SimMachine[] = [];
  const ipmi: IpmiServer[] = [];
  const ports: number[] = [];
  let redfish: RedfishServer | undefined;
  const close = async () => {
    await Promise.all(ipmi.map((s) => s.close()));
    await redfish?.close();
  };
  try {
    for (let i = 0; i < o.machines; i++) {
      const name = `${prefix}${i}`;
      const m = new SimMachine({ name, uuid: simUuid(name), macs: [simMac(i)] });
      const s = new IpmiServer({ backend: m, users: [{ name: username, password }] });
      const want = basePort === 0 ? 0 : basePort + i;
      try {
        ports.push(await s.listen(want, host));
      } catch (e) {
        throw new CliError(`cannot listen for IPMI on UDP ${host}:${want}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.failure);
      }
      machines.push(m);
      ipmi.push(s);
    }
    let redfishPort: number | null = null;
    if (o.redfishPort !== null && o.redfishPort !== undefined) {
      redfish = new RedfishServer({ machines: new Map(machines.map((m) => [m.name, m as MachineBackend])), username, password });
      try {
        redfishPort = await redfish.listen(o.redfishPort, host);
      } catch (e) {
        redfish = undefined;
        throw new CliError(`cannot listen for Redfish on TCP ${host}:${o.redfishPort}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.failure);
      }
    }
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const nodes: InventoryNode[] = machines.map((m, i) => ({
      name: m.name,
      driver: 'ipmi',
      driver_info: { ipmi_address: host, ipmi_port: ports[i]!, ipmi_username: username, ipmi_password: password },
      ...(redfishPort !== null ? { redfish: { redfish_address: `http://${urlHost}:${redfishPort}`, redfish_system_id: `/redfish/v1/Systems/${m.name}`, redfish_username: username, redfish_password: password } } : {}),
      ports: m.macs.map((address) => ({ address })),
    }));
    return { machines, ipmi, redfishPort, inventory: { nodes }, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function port(p: Parsed, name: string): number {
  const v = p.flags[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new UsageError(`--${name} must be a port number (0-65535), got '${String(v)}'`);
  return v;
}

async function serve(p: Parsed): Promise<number> {
  const n = p.flags.machines;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 10000) throw new UsageError(`--machines must be a whole number from 1 to 10000, got '${String(n)}'`);
  const ipmiPort = port(p, 'ipmi-port');
  if (ipmiPort !== 0 && ipmiPort + n - 1 > 65535) throw new UsageError(`--ipmi-port ${ipmiPort} + ${n} machines goes past port 65535`);
  const bmcs = await startVirtualBmcs({
    machines: n,
    listen: String(p.flags.listen),
    ipmiPort,
    redfishPort: p.flags['no-redfish'] === true ? null : port(p, 'redfish-port'),
    username: String(p.flags.username),
    password: String(p.flags.password),
  });
  process.stdout.write(stringify(bmcs.inventory));
  const last = bmcs.ipmi.length > 1 ? `-${bmcs.inventory.nodes[n - 1]!.driver_info.ipmi_port}` : '';
  process.stderr.write(`serving ${n} virtual BMC(s): IPMI on udp ${p.flags.listen}:${bmcs.inventory.nodes[0]!.driver_info.ipmi_port}${last}${bmcs.redfishPort !== null ? `, Redfish on http://${p.flags.listen}:${bmcs.redfishPort}` : ''}; Ctrl-C to stop\n`);
  await new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await bmcs.close();
  return EXIT.ok;
}

export const commands: CommandSpec[] = [
  {
    path: ['bmc', 'serve'],
    summary: 'Virtual BMCs (IPMI and Redfish) for simulated machines; prints the inventory',
    flags: {
      machines: { type: 'number', help: 'Number of simulated machines', value: 'N', default: 1 },
      listen: { type: 'string', help: 'Address to listen on', value: 'ADDR', default: '127.0.0.1' },
      'ipmi-port': { type: 'number', help: 'UDP port of the first machine\'s IPMI BMC (the others follow; 0 = any free ports)', value: 'P', default: 6230 },
      'redfish-port': { type: 'number', help: 'TCP port of the Redfish server (0 = any free port)', value: 'Q', default: 8000 },
      'no-redfish': { type: 'boolean', help: 'Serve IPMI only' },
      username: { type: 'string', help: 'BMC user name', value: 'U', default: 'admin' },
      password: { type: 'string', help: 'BMC password (printed in the inventory)', value: 'W', default: 'password' },
    },
    run: serve,
  },
];
