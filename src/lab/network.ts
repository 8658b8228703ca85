/**
 * The lab's provisioning network (TripleO Stage 1 addressing): a network namespace holding a
 * bridge and one tap device per VM NIC, joined to the host by a veth pair whose host end carries
 * 192.0.2.1/26 and fd00::1/64 (where the seed's dnsmasq and HTTP listen). Nothing is routed:
 * forwarding is off on the host end, and the namespace has no other link.
 *
 *   host                         namespace ooo-lab
 *   ooo-prov 192.0.2.1/26 ─veth─ prov-uplink ─┐
 *            fd00::1/64                        br-prov ─ tap per VM NIC ─ qemu
 *
 * PIDs of lab processes are recorded in DIR/lab-state.json so that cleanupLeftovers() can remove
 * what a crashed lab left behind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessTracker } from './vm.js';

export interface LabNetworkOptions {
  /** Directory for the state file (created if missing). */
  dir: string;
  /** Network namespace (default 'ooo-lab'). */
  namespace?: string;
  /** Host end of the veth pair (default 'ooo-prov'). */
  hostInterface?: string;
  /** Bridge inside the namespace (default 'br-prov'). */
  bridge?: string;
  /** Namespace end of the veth pair (default 'prov-uplink'). */
  uplink?: string;
  /** Host end address (default 192.0.2.1/26). */
  hostAddress?: string;
  /** Host end IPv6 address, for the router advertisements iPXE waits for (default fd00::1/64). */
  hostAddress6?: string;
  log?: (line: string) => void;
}

export class LabNetworkError extends Error {
  constructor(message: string) { super(message); this.name = 'LabNetworkError'; }
}

interface StateFile {
  namespace: string;
  hostInterface: string;
  processes: { pid: number; what: string; start: string }[];
}

const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

function ip(args: string[], ns?: string): { ok: boolean; out: string; err: string } {
  const argv = ns ? ['netns', 'exec', ns, 'ip', ...args] : args;
  const r = spawnSync('ip', argv, { encoding: 'utf8' });
  if (r.error) throw new LabNetworkError(`cannot run ip (install the Debian package iproute2): ${r.error.message}`);
  return { ok: r.status === 0, out: r.stdout, err: r.stderr.trim() };
}

function must(args: string[], ns?: string): string {
  const r = ip(args, ns);
  if (!r.ok) throw new LabNetworkError(`ip ${ns ? `(in namespace ${ns}) ` : ''}${args.join(' ')}: ${r.err}`);
  return r.out;
}

function sysctl(key: string, value: string, ns?: string): void {
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  if (!ns) { try { writeFileSync(path, value); } catch (e) { throw new LabNetworkError(`cannot set ${key}=${value}: ${(e as Error).message}`); } return; }
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', `echo ${value} > ${path}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new LabNetworkError(`cannot set ${key}=${value} in namespace ${ns}: ${r.stderr.trim()}`);
}

/** Start time of a process (field 22 of /proc/PID/stat), to tell a PID from a reused one. */
function procStart(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch { return undefined; }
}

export function namespaceExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}

export function linkExists(name: string, ns?: string): boolean {
  return ip(['link', 'show', 'dev', name], ns).ok;
}

export class LabNetwork implements ProcessTracker {
  readonly namespace: string;
  readonly hostInterface: string;
  readonly bridge: string;
  readonly uplink: string;
  readonly hostAddress: string;
  readonly hostAddress6: string;
  readonly statePath: string;
  private log: (line: string) => void;

  constructor(readonly opts: LabNetworkOptions) {
    this.namespace = opts.namespace ?? 'ooo-lab';
    this.hostInterface = opts.hostInterface ?? 'ooo-prov';
    this.bridge = opts.bridge ?? 'br-prov';
    this.uplink = opts.uplink ?? 'prov-uplink';
    this.hostAddress = opts.hostAddress ?? '192.0.2.1/26';
    this.hostAddress6 = opts.hostAddress6 ?? 'fd00::1/64';
    this.statePath = join(opts.dir, 'lab-state.json');
    this.log = opts.log ?? (() => {});
    for (const [what, n] of [['host interface', this.hostInterface], ['bridge', this.bridge], ['uplink', this.uplink]] as const) {
      if (!IFNAME_RE.test(n)) throw new LabNetworkError(`${what} name '${n}' is not a valid interface name (1-15 letters, digits, '.', '_', '-')`);
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(this.namespace)) throw new LabNetworkError(`namespace name '${this.namespace}' is not valid`);
  }

  /** The host end's IPv4 address without prefix length (where the seed listens for the lab). */
  get hostIp(): string { return this.hostAddress.split('/')[0]; }

  private readState(): StateFile {
    try { return JSON.parse(readFileSync(this.statePath, 'utf8')) as StateFile; } catch { return { namespace: this.namespace, hostInterface: this.hostInterface, processes: [] }; }
  }
  private writeState(s: StateFile): void {
    mkdirSync(this.opts.dir, { recursive: true });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n');
    renameSync(tmp, this.statePath);
  }

  /** Record a lab process (qemu, dnsmasq, ...) for cleanupLeftovers(). */
  add(pid: number, what: string): void {
    const s = this.readState();
    s.processes = s.processes.filter((p) => p.pid !== pid);
    s.processes.push({ pid, what, start: procStart(pid) ?? '' });
    this.writeState(s);
  }
  remove(pid: number): void {
    if (!existsSync(this.statePath)) return;
    const s = this.readState();
    s.processes = s.processes.filter((p) => p.pid !== pid);
    this.writeState(s);
  }

  /** Create the namespace, bridge, veth pair and addresses; existing parts are kept (idempotent). */
  create(): void {
    if (process.getuid?.() !== 0) throw new LabNetworkError('creating the lab network needs root (network namespaces, bridges, tap devices)');
    const ns = this.namespace;
    const s = this.readState();
    this.writeState({ ...s, namespace: ns, hostInterface: this.hostInterface });
    if (!namespaceExists(ns)) { must(['netns', 'add', ns]); this.log(`lab network: namespace ${ns} created`); }
    must(['link', 'set', 'lo', 'up'], ns);
    // No IPv6 addresses inside the namespace: it only bridges frames.
    sysctl('net.ipv6.conf.all.disable_ipv6', '1', ns);
    sysctl('net.ipv6.conf.default.disable_ipv6', '1', ns);
    if (!linkExists(this.bridge, ns)) must(['link', 'add', this.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0'], ns);
    must(['link', 'set', this.bridge, 'up'], ns);
    if (!linkExists(this.hostInterface)) {
      if (linkExists(this.uplink, ns)) must(['link', 'del', this.uplink], ns);
      must(['link', 'add', this.hostInterface, 'type', 'veth', 'peer', 'name', this.uplink, 'netns', ns]);
      this.log(`lab network: veth ${this.hostInterface} <-> ${ns}/${this.uplink}`);
    } else if (!linkExists(this.uplink, ns)) {
      throw new LabNetworkError(`interface ${this.hostInterface} exists but is not joined to namespace ${ns} (${this.uplink} missing there): remove it (ip link del ${this.hostInterface}) or choose another hostInterface`);
    }
    must(['link', 'set', this.uplink, 'master', this.bridge, 'up'], ns);
    // The host end: the seed's side. Never route lab traffic, never take RAs from the lab.
    const hi = this.hostInterface;
    sysctl(`net.ipv4.conf.${hi}.forwarding`, '0');
    sysctl(`net.ipv6.conf.${hi}.disable_ipv6`, '0');
    sysctl(`net.ipv6.conf.${hi}.forwarding`, '0');
    sysctl(`net.ipv6.conf.${hi}.accept_ra`, '0');
    sysctl(`net.ipv6.conf.${hi}.autoconf`, '0');
    const addrs = must(['-o', 'addr', 'show', 'dev', hi]);
    if (!addrs.includes(` ${this.hostAddress} `)) must(['addr', 'add', this.hostAddress, 'dev', hi]);
    if (!addrs.includes(` ${this.hostAddress6} `)) must(['addr', 'add', this.hostAddress6, 'dev', hi, 'nodad']);
    must(['link', 'set', hi, 'up']);
    this.log(`lab network: ${hi} ${this.hostAddress} ${this.hostAddress6}, bridge ${ns}/${this.bridge}`);
  }

  /** A tap device on the bridge, for one VM NIC (idempotent). */
  addTap(name: string): void {
    if (!IFNAME_RE.test(name)) throw new LabNetworkError(`tap name '${name}' is not a valid interface name (1-15 letters, digits, '.', '_', '-')`);
    if (!linkExists(name, this.namespace)) must(['tuntap', 'add', 'dev', name, 'mode', 'tap'], this.namespace);
    must(['link', 'set', name, 'master', this.bridge, 'up'], this.namespace);
  }

  removeTap(name: string): void {
    if (linkExists(name, this.namespace)) must(['link', 'del', name], this.namespace);
  }

  /** Run `argv` inside the namespace: the prefix to put before a command. */
  execPrefix(): string[] { return ['ip', 'netns', 'exec', this.namespace]; }

  /** Kill the recorded lab processes and any process left in the namespace; remove links and the namespace. */
  destroy(): void {
    const s = this.readState();
    killRecorded(s.processes, this.log);
    if (namespaceExists(this.namespace)) {
      killNamespacePids(this.namespace, this.log);
      must(['netns', 'del', this.namespace]);
    }
    // Deleting the namespace removes the veth pair; delete the host end in case it was left alone.
    if (linkExists(this.hostInterface)) ip(['link', 'del', this.hostInterface]);
    rmSync(this.statePath, { force: true });
    this.log(`lab network: ${this.namespace} removed`);
  }

  /**
   * Remove what a previous lab run in `dir` left behind (processes recorded in its state file,
   * its namespace and host interface). Returns what was removed.
   */
  static cleanupLeftovers(dir: string, log: (line: string) => void = () => {}): string[] {
    const statePath = join(dir, 'lab-state.json');
    if (!existsSync(statePath)) return [];
    let s: StateFile;
    try { s = JSON.parse(readFileSync(statePath, 'utf8')) as StateFile; } catch { rmSync(statePath, { force: true }); return []; }
    const removed: string[] = killRecorded(s.processes, log);
    if (s.namespace && namespaceExists(s.namespace)) {
      removed.push(...killNamespacePids(s.namespace, log));
      if (ip(['netns', 'del', s.namespace]).ok) removed.push(`namespace ${s.namespace}`);
    }
    if (s.hostInterface && linkExists(s.hostInterface)) { ip(['link', 'del', s.hostInterface]); removed.push(`link ${s.hostInterface}`); }
    rmSync(statePath, { force: true });
    if (removed.length) log(`lab leftovers removed: ${removed.join(', ')}`);
    return removed;
  }
}

function killRecorded(procs: StateFile['processes'], log: (line: string) => void): string[] {
  const out: string[] = [];
  for (const p of procs) {
    const start = procStart(p.pid);
    if (start === undefined || (p.start && start !== p.start)) continue; // gone, or the PID was reused
    try { process.kill(p.pid, 'SIGKILL'); out.push(`${p.what} (pid ${p.pid})`); log(`killed leftover ${p.what} (pid ${p.pid})`); } catch { /* already gone */ }
  }
  waitGone(procs.map((p) => p.pid));
  return out;
}

function killNamespacePids(ns: string, log: (line: string) => void): string[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  const pids = (r.stdout ?? '').split(/\s+/).filter(Boolean).map(Number).filter((n) => n > 1 && n !== process.pid);
  const out: string[] = [];
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); out.push(`process ${pid} in namespace ${ns}`); log(`killed process ${pid} left in namespace ${ns}`); } catch { /* gone */ }
  }
  waitGone(pids);
  return out;
}

function waitGone(pids: number[]): void {
  const deadline = Date.now() + 3000;
  for (const pid of pids) {
    while (Date.now() < deadline) {
      const st = (() => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return ''; } })();
      if (!st || st.slice(st.lastIndexOf(')') + 2).startsWith('Z')) break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}
