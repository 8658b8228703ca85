/**
 * The seed's side of the provisioning network: dnsmasq (./dnsmasq.ts) on the provisioning
 * interface answering DHCP only for the MACs of enrolled PXE-enabled ports (each gets a stable
 * address from the static range), TFTP with iPXE for firmware that does not speak it, and iPXE
 * pointed at the seed's /boot.ipxe; the seed's HTTP reachable at the interface's address, and
 * that address handed to machines as the seed's URL (settings.baremetal_url).
 *
 * The interface may appear after the seed starts (`ooo lab up` creates it): the service then
 * waits for it, saying so once, and configures itself when it shows up. Wrong settings (a range
 * outside the interface's subnet, a missing dnsmasq or iPXE) are refused with the reason.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Db } from '../store/db.js';
import { DhcpHost, Dnsmasq, DnsmasqConfigError, expandIpv6, interfaceSubnets, intToIp, ipToInt, validateDnsmasq } from './dnsmasq.js';

export interface ProvisioningSettings {
  /** The provisioning interface (e.g. the lab's ooo-prov). */
  interface: string;
  /** Static range for known MACs; default: from the 10th address of the interface's subnet to its last. */
  range?: { start: string; end: string };
  /** Opt-in dynamic range for unknown machines. */
  discoveryRange?: { start: string; end: string };
  nextServer?: string;
  /** Port of the seed's HTTP (API and boot scripts) as machines reach it. */
  port: number;
  /** The address each MAC was given (kept across restarts). */
  stateDir: string;
  /**
   * dnsmasq's files (hosts, leases, TFTP root). dnsmasq runs as user nobody and re-reads its hosts
   * file as that user, so this directory and its parents must be searchable by others (the seed's
   * data directory is not). Default /run/ooo/provisioning-<hash of stateDir>.
   */
  dnsmasqDir?: string;
  /** How often the port list is compared with dnsmasq's hosts (ms, default 1000). */
  syncMs?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export interface ProvisioningHooks {
  /** Make the seed's HTTP reachable at this address (no-op when it already listens on all). */
  listenOn(address: string): Promise<void>;
  /** Machines reach the seed at this base URL (http://ADDRESS:PORT). */
  setMachineUrl(base: string): Promise<void>;
}

/** "A-B" -> {start, end}, checked. */
export function parseRange(s: string, what: string): { start: string; end: string } {
  const m = /^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$/.exec(s);
  if (!m || ipToInt(m[1]!) === undefined || ipToInt(m[2]!) === undefined) throw new DnsmasqConfigError(`${what} must be START-END with IPv4 addresses (e.g. 192.0.2.10-192.0.2.62), got '${s}'`);
  if (ipToInt(m[1]!)! > ipToInt(m[2]!)!) throw new DnsmasqConfigError(`${what} ${s}: the start is after the end`);
  return { start: m[1]!, end: m[2]! };
}

const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export class ProvisioningNetwork {
  private dnsmasq: Dnsmasq | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private syncing: Promise<void> = Promise.resolve();
  private lastHosts = '';
  private fullWarned = '';
  private readonly assignPath: string;
  private readonly log: NonNullable<ProvisioningSettings['log']>;
  private readyResolve!: () => void;
  /** Resolves when dnsmasq serves the interface. */
  readonly ready: Promise<void>;
  /** The seed's address on the provisioning network, once configured. */
  address: string | undefined;

  constructor(private readonly db: Db, readonly settings: ProvisioningSettings, private readonly hooks: ProvisioningHooks) {
    this.assignPath = join(settings.stateDir, 'dhcp-addresses.json');
    this.log = settings.log ?? (() => {});
    this.ready = new Promise((r) => { this.readyResolve = r; });
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(settings.interface)) throw new DnsmasqConfigError(`provisioning interface '${settings.interface}' is not a valid interface name`);
  }

  /**
   * Configure now when the interface exists (throws what is wrong), else wait for it in the
   * background.
   */
  async start(): Promise<void> {
    if (interfaceSubnets(this.settings.interface)?.length) {
      await this.configure();
      return;
    }
    const have = existsSync('/sys/class/net') ? readdirSync('/sys/class/net').sort().join(', ') : 'none';
    this.log('warn', `provisioning interface '${this.settings.interface}' does not exist or has no IPv4 address yet (interfaces: ${have}); DHCP and network boot start when it appears`);
    this.waitForInterface();
  }

  /** Poll until the interface is there with an address, then configure (retrying bad settings every 10 s). */
  private waitForInterface(): void {
    const poll = async () => {
      if (this.stopped) return;
      if (interfaceSubnets(this.settings.interface)?.length) {
        try { await this.configure(); return; } catch (e) {
          this.log('error', `provisioning network on '${this.settings.interface}' not started: ${(e as Error).message}; retrying in 10 s`);
          this.timer = setTimeout(() => void poll(), 10_000);
          return;
        }
      }
      this.timer = setTimeout(() => void poll(), 500);
    };
    this.timer = setTimeout(() => void poll(), 500);
  }

  private ifindex(): string | undefined {
    try { return readFileSync(`/sys/class/net/${this.settings.interface}/ifindex`, 'utf8').trim(); } catch { return undefined; }
  }

  private dnsmasqDir(): string {
    if (this.settings.dnsmasqDir) return this.settings.dnsmasqDir;
    const dir = join('/run/ooo', `provisioning-${createHash('sha256').update(this.settings.stateDir).digest('hex').slice(0, 12)}`);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync('/run/ooo', 0o755);
    chmodSync(dir, 0o755);
    return dir;
  }

  private defaultRange(): { start: string; end: string } {
    const subnet = interfaceSubnets(this.settings.interface)![0]!;
    const own = ipToInt(subnet.address)!;
    let start = subnet.network + 10;
    const end = subnet.broadcast - 1;
    if (own >= start && own <= end) start = own + 1;
    if (start > end) throw new DnsmasqConfigError(`the subnet of '${this.settings.interface}' (${subnet.address}/${subnet.prefix}) is too small for a default DHCP range: set one`);
    return { start: intToIp(start), end: intToIp(end) };
  }

  /** The interface's /64 for router advertisements (iPXE waits ~13 s without one), if it has a ULA address. */
  private raPrefix(): string | false {
    const v6 = (networkInterfaces()[this.settings.interface] ?? []).find((a) => a.family === 'IPv6' && /^f[cd]/i.test(a.address) && a.cidr?.endsWith('/64'));
    if (!v6) return false;
    const groups = expandIpv6(v6.address);
    return groups ? `${groups.slice(0, 4).join(':')}::` : false;
  }

  private configuredIndex: string | undefined;

  private async configure(): Promise<void> {
    const index = this.ifindex();
    const subnet = interfaceSubnets(this.settings.interface)![0]!;
    const range = this.settings.range ?? this.defaultRange();
    const raPrefix = this.raPrefix();
    if (raPrefix === false) this.log('warn', `'${this.settings.interface}' has no fd00::/8 IPv6 address: no router advertisements, so iPXE waits ~13 s per boot (add one: ip addr add fd00::1/64 dev ${this.settings.interface} nodad)`);
    const base = `http://${subnet.address}:${this.settings.port}`;
    const dnsmasq = new Dnsmasq({
      interface: this.settings.interface, range, discoveryRange: this.settings.discoveryRange, nextServer: this.settings.nextServer,
      httpUrl: base, stateDir: this.dnsmasqDir(), raPrefix, hosts: [],
      log: (l) => this.log('info', l),
    });
    // Check everything before binding anything.
    validateDnsmasq(dnsmasq.settings);
    await this.hooks.listenOn(subnet.address);
    await this.hooks.setMachineUrl(base);
    mkdirSync(this.settings.stateDir, { recursive: true });
    await dnsmasq.start();
    dnsmasq.on('dhcp', (e: { kind: string; mac: string; ip?: string }) => { if (e.kind === 'ACK') this.log('info', `DHCP ${e.ip} -> ${e.mac}`); });
    this.dnsmasq = dnsmasq;
    this.address = subnet.address;
    this.configuredIndex = index;
    this.lastHosts = '';
    this.log('info', `provisioning network: DHCP ${range.start}-${range.end}${this.settings.discoveryRange ? ` (discovery ${this.settings.discoveryRange.start}-${this.settings.discoveryRange.end})` : ''} on ${this.settings.interface}, machines reach the seed at ${base}`);
    await this.sync();
    this.readyResolve();
    const tick = () => {
      if (this.stopped) return;
      if (this.ifindex() !== this.configuredIndex || !interfaceSubnets(this.settings.interface)?.length) {
        // The interface went away (or was re-created): dnsmasq is bound to the old one.
        this.log('warn', `provisioning interface '${this.settings.interface}' went away; DHCP stopped until it is back`);
        const old = this.dnsmasq;
        this.dnsmasq = undefined;
        this.address = undefined;
        void (old?.stop() ?? Promise.resolve()).then(() => { if (!this.stopped) this.waitForInterface(); });
        return;
      }
      this.syncing = this.sync().catch((e) => this.log('error', `DHCP hosts not updated: ${(e as Error).message}`));
      void this.syncing.then(() => { if (!this.stopped) this.timer = setTimeout(tick, this.settings.syncMs ?? 1000); });
    };
    this.timer = setTimeout(tick, this.settings.syncMs ?? 1000);
  }

  private readAssignments(): Record<string, string> {
    try { return JSON.parse(readFileSync(this.assignPath, 'utf8')) as Record<string, string>; } catch { return {}; }
  }

  /** dnsmasq's hosts = every PXE-enabled port, each MAC keeping the address it was given. */
  async sync(): Promise<void> {
    const d = this.dnsmasq;
    if (!d) return;
    const rows = await this.db.all<{ address: string; name: string | null }>('SELECT p.address, n.name FROM ports p JOIN nodes n ON n.id = p.node_id WHERE p.pxe_enabled <> 0 ORDER BY p.id');
    const range = d.settings.range;
    const lo = ipToInt(range.start)!, hi = ipToInt(range.end)!;
    const old = this.readAssignments();
    const assigned: Record<string, string> = {};
    const used = new Set<number>();
    for (const r of rows) {
      const ip = old[r.address];
      const n = ip ? ipToInt(ip) : undefined;
      if (n !== undefined && n >= lo && n <= hi && !used.has(n)) { assigned[r.address] = ip!; used.add(n); }
    }
    let next = lo;
    const full: string[] = [];
    for (const r of rows) {
      if (assigned[r.address]) continue;
      while (next <= hi && used.has(next)) next++;
      if (next > hi) { full.push(r.address); continue; }
      assigned[r.address] = intToIp(next);
      used.add(next);
    }
    if (full.length && full.join() !== this.fullWarned) {
      this.fullWarned = full.join();
      this.log('error', `DHCP range ${range.start}-${range.end} is full (${hi - lo + 1} addresses): no address for ${full.join(', ')}; widen the range`);
    }
    const hosts: DhcpHost[] = rows.filter((r) => assigned[r.address]).map((r) => ({
      mac: r.address, ip: assigned[r.address]!, ...(r.name && HOSTNAME_RE.test(r.name) && rows.filter((x) => x.name === r.name).length === 1 ? { hostname: r.name } : {}),
    }));
    const key = JSON.stringify(hosts);
    if (key === this.lastHosts) return;
    const tmp = `${this.assignPath}.tmp`;
    writeFileSync(tmp, JSON.stringify(assigned, null, 1) + '\n');
    renameSync(tmp, this.assignPath);
    await d.setHosts(hosts);
    this.lastHosts = key;
  }

  /** The current static hosts (diagnostics, tests). */
  hosts(): DhcpHost[] { return this.dnsmasq?.getHosts() ?? []; }

  /** dnsmasq itself, once started (events, leases). */
  get server(): Dnsmasq | undefined { return this.dnsmasq; }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.syncing.catch(() => undefined);
    await this.dnsmasq?.stop();
  }
}
