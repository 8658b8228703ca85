/**
 * The virtual bare-metal lab as a library: a provisioning network (LabNetwork), N qemu VMs
 * `lab-0..lab-{N-1}` that network-boot (SeaBIOS + QEMU's iPXE NIC ROM) and start powered off,
 * and one virtual BMC per VM (IPMI on UDP 127.0.0.1:6230+i, or one Redfish server serving the
 * systems `lab-i`), backed by QemuMachine. `startLab()` returns the inventory the cloud enrolls
 * and `stop()`; a failure while starting removes everything created so far.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { LabNetwork, linkExists, namespaceExists } from './network.js';
import { detectAccel, QemuVm, type Accel } from './vm.js';
import { QemuMachine } from './qemu-machine.js';
import { IpmiServer } from '../protocols/ipmi/server.js';
import { RedfishServer } from '../protocols/redfish/server.js';
import type { MachineBackend } from '../protocols/machine.js';

export type LabDriver = 'ipmi' | 'redfish';

export const LAB_MAX_NODES = 32;

export interface LabOptions {
  /** Directory for disks, serial logs, QMP sockets and the network state file. */
  dir: string;
  nodes: number;
  driver?: LabDriver;
  /** Per VM (default 512). */
  memoryMiB?: number;
  /** Per VM (default 1). */
  cpus?: number;
  /** Sparse raw disk per VM (default 8 GiB). */
  diskBytes?: number;
  /** Address the BMCs listen on (default 127.0.0.1). */
  listen?: string;
  /** First IPMI UDP port; VM i gets port + i (default 6230; 0 = any free port per VM). */
  ipmiPort?: number;
  /** Redfish TCP port (default 8000; 0 = any free port). */
  redfishPort?: number;
  /** BMC user (default admin). */
  username?: string;
  /** BMC password (default: random per lab). */
  password?: string;
  /** Milliseconds the firmware waits before retrying when nothing booted (default 10000). */
  rebootTimeoutMs?: number;
  accel?: Accel | 'auto';
  log?: (line: string) => void;
}

export interface IpmiDriverInfo { ipmi_address: string; ipmi_port: number; ipmi_username: string; ipmi_password: string }
export interface RedfishDriverInfo { redfish_address: string; redfish_system_id: string; redfish_username: string; redfish_password: string }

export interface LabNode {
  name: string;
  driver: LabDriver;
  driver_info: IpmiDriverInfo | RedfishDriverInfo;
  resource_class: string;
  ports: { address: string; pxe_enabled: boolean }[];
  /** Where the VM's serial console goes. */
  serial_log: string;
  /** The VM's QMP socket (qemu serves one client at a time: the lab holds it). */
  qmp_socket: string;
  /** The BMC as people write it: udp 127.0.0.1:6230 or http://127.0.0.1:8000/redfish/v1/Systems/lab-0. */
  bmc: string;
}

export interface Lab {
  dir: string;
  driver: LabDriver;
  accel: Accel;
  accelReason: string;
  network: { namespace: string; hostInterface: string; bridge: string; hostAddress: string; hostAddress6: string; subnet: string };
  inventory: { nodes: LabNode[] };
  vms: QemuVm[];
  machines: QemuMachine[];
  /** PIDs of the qemu processes. */
  pids: number[];
  stop(): Promise<void>;
}

/** Deterministic MAC of lab VM `index`: 52:54:00:1a:b0:<index>. */
export function labMac(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 255) throw new RangeError(`lab VM index ${index} out of range 0..255`);
  return `52:54:00:1a:b0:${index.toString(16).padStart(2, '0')}`;
}

/** The tap device of NIC `nic` of VM `index` (inside the lab namespace). */
export function labTap(index: number, nic = 0): string { return `tap-lab${index}-${nic}`; }

/** The network an address/prefix like 192.0.2.1/26 is on: 192.0.2.0/26. */
export function subnetOf(cidr: string): string {
  const [addr, len] = cidr.split('/');
  const bits = Number(len ?? 32);
  const n = addr!.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  const net = (n & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 0xff).join('.')}/${bits}`;
}

export class LabError extends Error {
  constructor(message: string) { super(message); this.name = 'LabError'; }
}

/** Start the lab. On any failure everything created so far is removed and the error rethrown. */
export async function startLab(o: LabOptions): Promise<Lab> {
  const n = o.nodes;
  if (!Number.isInteger(n) || n < 1 || n > LAB_MAX_NODES) throw new LabError(`the number of nodes must be 1..${LAB_MAX_NODES}, got ${n}`);
  const driver: LabDriver = o.driver ?? 'ipmi';
  if (driver !== 'ipmi' && driver !== 'redfish') throw new LabError(`the driver must be ipmi or redfish, got '${String(driver)}'`);
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root (network namespaces, tap devices)');
  const log = o.log ?? (() => {});
  const host = o.listen ?? '127.0.0.1';
  const username = o.username ?? 'admin';
  const password = o.password ?? randomBytes(12).toString('base64url');
  const basePort = o.ipmiPort ?? 6230;
  if (basePort !== 0 && basePort + n - 1 > 65535) throw new LabError(`IPMI port ${basePort} + ${n} nodes goes past port 65535`);

  const removed = LabNetwork.cleanupLeftovers(o.dir, log);
  if (removed.length) log(`removed leftovers of a previous lab: ${removed.join(', ')}`);

  const net = new LabNetwork({ dir: o.dir, log });
  // Another lab (another directory) or a test holds the names: never share them.
  if (namespaceExists(net.namespace)) throw new LabError(`network namespace ${net.namespace} already exists (another lab or a test uses it; \`ip netns pids ${net.namespace}\` shows what runs there)`);
  if (linkExists(net.hostInterface)) throw new LabError(`interface ${net.hostInterface} already exists (another lab or a test uses it)`);
  const vms: QemuVm[] = [];
  const machines: QemuMachine[] = [];
  const ipmi: IpmiServer[] = [];
  let redfish: RedfishServer | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(ipmi.map((s) => s.close().catch(() => {})));
    await redfish?.close().catch(() => {});
    await Promise.all(vms.map((vm) => vm.kill().catch(() => {})));
    // The disks belong to this lab only (a new lab starts blank); serial logs stay for reading.
    for (const vm of vms) if (vm.diskPath) rmSync(vm.diskPath, { force: true });
    try { net.destroy(); } catch (e) { log(`lab network: ${(e as Error).message}`); LabNetwork.cleanupLeftovers(o.dir, log); }
    log('lab stopped');
  };

  try {
    const { accel, reason } = o.accel && o.accel !== 'auto' ? { accel: o.accel, reason: 'configured' } : await detectAccel();
    net.create();
    for (let i = 0; i < n; i++) {
      const name = `lab-${i}`;
      const tap = labTap(i);
      net.addTap(tap);
      const vm = new QemuVm({
        name, dir: o.dir, netns: net.namespace, tracker: net, accel,
        memoryMiB: o.memoryMiB ?? 512, cpus: o.cpus ?? 1,
        disk: { sizeBytes: o.diskBytes ?? 8 * 2 ** 30, format: 'raw' },
        nics: [{ mac: labMac(i), tap }],
        rebootTimeoutMs: o.rebootTimeoutMs ?? 10_000,
        log,
      });
      // A new lab gets blank disks.
      if (vm.diskPath) rmSync(vm.diskPath, { force: true });
      vms.push(vm);
      await vm.start();
      machines.push(new QemuMachine(vm, log));
    }
    const nodes: LabNode[] = [];
    const urlHost = host.includes(':') ? `[${host}]` : host;
    if (driver === 'ipmi') {
      for (const [i, m] of machines.entries()) {
        const s = new IpmiServer({ backend: m, users: [{ name: username, password }] });
        const want = basePort === 0 ? 0 : basePort + i;
        let port: number;
        try { port = await s.listen(want, host); } catch (e) {
          throw new LabError(`cannot listen for IPMI on UDP ${host}:${want}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (choose other ports)`);
        }
        ipmi.push(s);
        nodes.push(node(vms[i]!, 'ipmi', { ipmi_address: host, ipmi_port: port, ipmi_username: username, ipmi_password: password }, `udp ${urlHost}:${port}`));
      }
    } else {
      const server = new RedfishServer({ machines: new Map(machines.map((m) => [m.name, m as MachineBackend])), username, password });
      let port: number;
      try { port = await server.listen(o.redfishPort ?? 8000, host); } catch (e) {
        throw new LabError(`cannot listen for Redfish on TCP ${host}:${o.redfishPort ?? 8000}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (choose another port)`);
      }
      redfish = server;
      const address = `http://${urlHost}:${port}`;
      for (const vm of vms) {
        const system = `/redfish/v1/Systems/${vm.name}`;
        nodes.push(node(vm, 'redfish', { redfish_address: address, redfish_system_id: system, redfish_username: username, redfish_password: password }, `${address}${system}`));
      }
    }
    log(`lab up: ${n} VM(s), ${driver} BMCs, accelerator ${accel} (${reason})`);
    return {
      dir: o.dir, driver, accel, accelReason: reason,
      network: { namespace: net.namespace, hostInterface: net.hostInterface, bridge: net.bridge, hostAddress: net.hostAddress, hostAddress6: net.hostAddress6, subnet: subnetOf(net.hostAddress) },
      inventory: { nodes }, vms, machines, pids: vms.map((v) => v.pid!).filter(Boolean), stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function node(vm: QemuVm, driver: LabDriver, driver_info: IpmiDriverInfo | RedfishDriverInfo, bmc: string): LabNode {
  return {
    name: vm.name, driver, driver_info, resource_class: 'baremetal',
    ports: vm.macs.map((address) => ({ address, pxe_enabled: true })),
    serial_log: vm.serialPath, qmp_socket: vm.qmpPath, bmc,
  };
}
