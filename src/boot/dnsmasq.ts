/**
 * dnsmasq (Debian dnsmasq-base) supervised for the provisioning network: DHCP only for known
 * MACs (static leases in a hosts file, updated with SIGHUP, no restart), an opt-in discovery
 * range for unknown machines, TFTP with the iPXE binaries for BIOS and UEFI PXE firmware, iPXE
 * clients chained to the seed's HTTP boot script, IPv6 router advertisements (iPXE waits for
 * one), DNS off. Settings are validated with a clear error before anything starts; a crashed
 * dnsmasq is restarted with backoff.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export interface DhcpHost {
  mac: string;
  ip: string;
  hostname?: string;
}

export interface DnsmasqSettings {
  /** The provisioning interface (e.g. the lab's ooo-prov). */
  interface: string;
  /** Pool for static leases, as start-end (inclusive); every known MAC gets an address here. */
  range: { start: string; end: string };
  /** Opt-in: a dynamic range for unknown MACs (discovery). Must not overlap `range`. */
  discoveryRange?: { start: string; end: string };
  /** Lease time (dnsmasq syntax, default '1h'). */
  leaseTime?: string;
  /** The seed's boot HTTP base URL (e.g. http://192.0.2.1:8080): iPXE clients get BASE/boot.ipxe. */
  httpUrl: string;
  /** The TFTP server address given to PXE firmware (default: the interface's address). */
  nextServer?: string;
  /** Directory holding the hosts file, the leases, the TFTP root (created). */
  stateDir: string;
  /** TFTP root (default STATEDIR/tftp): the iPXE binaries are copied here, world-readable. */
  tftpRoot?: string;
  /** Where the Debian ipxe package puts its binaries (default /usr/lib/ipxe). */
  ipxeDir?: string;
  /** UEFI PXE boot file (default snponly.efi; ipxe.efi carries its own NIC drivers). */
  uefiBootFile?: 'snponly.efi' | 'ipxe.efi';
  /** IPv6 prefix for router advertisements (default fd00::, needs an address in it on the interface); false = none. */
  raPrefix?: string | false;
  hosts?: DhcpHost[];
  binary?: string;
  /** Records dnsmasq's PID (e.g. the lab network's state file, for cleanup after a crash). */
  tracker?: { add(pid: number, what: string): void; remove(pid: number): void };
  /** Restart a crashed dnsmasq (default true). */
  restart?: boolean;
  log?: (line: string) => void;
}

export class DnsmasqConfigError extends Error {
  constructor(message: string) { super(message); this.name = 'DnsmasqConfigError'; }
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function ipToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const p = m.slice(1).map(Number);
  if (p.some((x) => x > 255)) return undefined;
  return ((p[0] << 24) >>> 0) + (p[1] << 16) + (p[2] << 8) + p[3];
}
export function intToIp(n: number): string { return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'); }

/** The eight groups of an IPv6 address, without leading zeros ('fd00::1' -> fd00,0,0,0,0,0,0,1). */
export function expandIpv6(address: string): string[] | undefined {
  const [head, tail, more] = address.split('::');
  if (more !== undefined) return undefined;
  const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array(Math.max(0, fill)).fill('0'), ...t];
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}

export interface Subnet { address: string; prefix: number; network: number; broadcast: number; netmask: string }

function subnetOf(address: string, prefix: number): Subnet {
  const a = ipToInt(address)!;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = (a & mask) >>> 0;
  return { address, prefix, network, broadcast: (network | (~mask >>> 0)) >>> 0, netmask: intToIp(mask) };
}

/** The IPv4 subnets configured on `iface` (undefined: no such interface). */
export function interfaceSubnets(iface: string): Subnet[] | undefined {
  if (!existsSync(`/sys/class/net/${iface}`)) return undefined;
  return (networkInterfaces()[iface] ?? []).filter((a) => a.family === 'IPv4').map((a) => subnetOf(a.address, Number(a.cidr!.split('/')[1])));
}

/** UDP sockets bound to `port` (IPv4 and IPv6) with the processes holding them. */
export function udpPortUsers(port: number): { local: string; pids: { pid: number; name: string }[] }[] {
  const found: { local: string; inode: string }[] = [];
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const [addr, p] = cols[1].split(':');
      if (parseInt(p, 16) !== port) continue;
      const local = addr.length === 8 ? intToIp(Buffer.from(addr, 'hex').readUInt32LE(0)) : `[${addr}]`;
      found.push({ local: `${local}:${port}`, inode: cols[9] });
    }
  }
  if (!found.length) return [];
  const owners = new Map<string, { pid: number; name: string }[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let fds: string[];
    try { fds = readdirSync(`/proc/${d}/fd`); } catch { continue; }
    for (const fd of fds) {
      let l: string;
      try { l = readlinkSync(`/proc/${d}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(l);
      if (!m || !found.some((f) => f.inode === m[1])) continue;
      let name = '?';
      try { name = readFileSync(`/proc/${d}/comm`, 'utf8').trim(); } catch { /* gone */ }
      owners.set(m[1], [...(owners.get(m[1]) ?? []), { pid: Number(d), name }]);
    }
  }
  return found.map((f) => ({ local: f.local, pids: owners.get(f.inode) ?? [] }));
}

/** A dnsmasq started with --bind-interfaces and only other --interface= than `iface`. */
function boundElsewhere(pid: number, iface: string): boolean {
  let argv: string[];
  try { argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); } catch { return true; }
  if (!/dnsmasq$/.test(argv[0] ?? '') || !argv.includes('--bind-interfaces')) return false;
  const ifs = argv.filter((a) => a.startsWith('--interface=')).map((a) => a.slice('--interface='.length));
  return ifs.length > 0 && !ifs.includes(iface);
}

/** Every ancestor of `dir` must be searchable by others: dnsmasq serves TFTP as user nobody. */
function checkWorldReachable(dir: string): void {
  let d = resolve(dir);
  for (;;) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0) throw new DnsmasqConfigError(`TFTP root ${dir}: directory ${d} is not searchable by other users (mode ${(st.mode & 0o777).toString(8)}); dnsmasq drops to user nobody and could not read the iPXE binaries: chmod o+x ${d}, or put the TFTP root elsewhere`);
    const up = dirname(d);
    if (up === d) return;
    d = up;
  }
}

export const IPXE_FILES = ['undionly.kpxe', 'ipxe.efi', 'snponly.efi'];

export interface ValidatedSettings { subnet: Subnet; tftpRoot: string; nextServer: string }

/** Check everything dnsmasq would need; throws DnsmasqConfigError naming what is wrong. */
export function validateDnsmasq(s: DnsmasqSettings, opts: { checkPorts?: boolean } = {}): ValidatedSettings {
  const bin = s.binary ?? '/usr/sbin/dnsmasq';
  if (!existsSync(bin)) throw new DnsmasqConfigError(`dnsmasq not found at ${bin} (install the Debian package dnsmasq-base)`);
  const subnets = interfaceSubnets(s.interface);
  if (!subnets) {
    const have = existsSync('/sys/class/net') ? readdirSync('/sys/class/net').sort().join(', ') : 'none';
    throw new DnsmasqConfigError(`DHCP interface '${s.interface}' does not exist on this host (interfaces: ${have})`);
  }
  const oper = (() => { try { return readFileSync(`/sys/class/net/${s.interface}/flags`, 'utf8').trim(); } catch { return '0x1'; } })();
  if ((parseInt(oper, 16) & 1) === 0) throw new DnsmasqConfigError(`DHCP interface '${s.interface}' is down (ip link set ${s.interface} up)`);
  if (!subnets.length) throw new DnsmasqConfigError(`DHCP interface '${s.interface}' has no IPv4 address: give it an address in the provisioning subnet (e.g. ip addr add 192.0.2.1/26 dev ${s.interface})`);
  const where = subnets.map((n) => `${n.address}/${n.prefix}`).join(', ');
  const start = ipToInt(s.range.start);
  const end = ipToInt(s.range.end);
  if (start === undefined) throw new DnsmasqConfigError(`DHCP range start '${s.range.start}' is not an IPv4 address`);
  if (end === undefined) throw new DnsmasqConfigError(`DHCP range end '${s.range.end}' is not an IPv4 address`);
  if (start > end) throw new DnsmasqConfigError(`DHCP range ${s.range.start}-${s.range.end}: the start is after the end`);
  const subnet = subnets.find((n) => start > n.network && start < n.broadcast);
  if (!subnet || end <= subnet.network || end >= subnet.broadcast) {
    throw new DnsmasqConfigError(`DHCP range ${s.range.start}-${s.range.end} is not inside the subnet of interface '${s.interface}' (${where}); machines would get no address. Use a range inside ${subnets.map((n) => `${intToIp(n.network + 1)}-${intToIp(n.broadcast - 1)}`).join(' or ')}`);
  }
  const own = ipToInt(subnet.address)!;
  if (own >= start && own <= end) throw new DnsmasqConfigError(`DHCP range ${s.range.start}-${s.range.end} contains the interface's own address ${subnet.address}`);
  const inRange = (n: number) => n >= start && n <= end;
  if (s.discoveryRange) {
    const ds = ipToInt(s.discoveryRange.start), de = ipToInt(s.discoveryRange.end);
    if (ds === undefined || de === undefined || ds > de) throw new DnsmasqConfigError(`discovery range ${s.discoveryRange.start}-${s.discoveryRange.end} is not a valid IPv4 range`);
    if (ds <= subnet.network || de >= subnet.broadcast) throw new DnsmasqConfigError(`discovery range ${s.discoveryRange.start}-${s.discoveryRange.end} is not inside the subnet of interface '${s.interface}' (${subnet.address}/${subnet.prefix})`);
    if (!(de < start || ds > end)) throw new DnsmasqConfigError(`discovery range ${s.discoveryRange.start}-${s.discoveryRange.end} overlaps the static range ${s.range.start}-${s.range.end}`);
    if (own >= ds && own <= de) throw new DnsmasqConfigError(`discovery range contains the interface's own address ${subnet.address}`);
  }
  validateHosts(s.hosts ?? [], inRange, `${s.range.start}-${s.range.end}`);
  const nextServer = s.nextServer ?? subnet.address;
  if (ipToInt(nextServer) === undefined) throw new DnsmasqConfigError(`next-server '${nextServer}' is not an IPv4 address`);
  let url: URL;
  try { url = new URL(s.httpUrl); } catch { throw new DnsmasqConfigError(`boot HTTP URL '${s.httpUrl}' is not a URL`); }
  if (url.protocol !== 'http:') throw new DnsmasqConfigError(`boot HTTP URL '${s.httpUrl}': iPXE needs http:// here`);
  if (s.raPrefix !== false) {
    const prefix = s.raPrefix ?? 'fd00::';
    const v6 = (networkInterfaces()[s.interface] ?? []).filter((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'));
    const want = expandIpv6(prefix)?.slice(0, 4).join(':');
    if (!v6.some((a) => expandIpv6(a.address)?.slice(0, 4).join(':') === want)) throw new DnsmasqConfigError(`router advertisements for ${prefix}/64 need an address in it on '${s.interface}' (e.g. ip addr add ${prefix}1/64 dev ${s.interface} nodad); without RAs iPXE waits ~13 s per boot. Set raPrefix: false to do without`);
  }
  const ipxeDir = s.ipxeDir ?? '/usr/lib/ipxe';
  const missing = IPXE_FILES.filter((f) => !existsSync(join(ipxeDir, f)));
  if (missing.length) throw new DnsmasqConfigError(`iPXE binaries missing: ${missing.map((f) => join(ipxeDir, f)).join(', ')} (install the Debian package ipxe)`);
  const tftpRoot = s.tftpRoot ?? join(s.stateDir, 'tftp');
  if (opts.checkPorts !== false) {
    for (const [port, what] of [[67, 'DHCP'], [69, 'TFTP']] as const) {
      const users = udpPortUsers(port).filter((u) => port === 67
        // A dnsmasq bound to another interface (SO_BINDTODEVICE) does not take our DHCP packets.
        ? !(u.pids.length && u.pids.every((p) => boundElsewhere(p.pid, s.interface)))
        : u.local.startsWith('0.0.0.0') || u.local.startsWith(`${subnet.address}:`) || u.local.startsWith('[0000'));
      if (users.length) {
        const who = users.map((u) => `${u.local} by ${u.pids.map((p) => `${p.name} (pid ${p.pid})`).join(', ') || 'an unknown process'}`).join('; ');
        throw new DnsmasqConfigError(`UDP port ${port} (${what}) is already in use: ${who}. Stop the other ${what} server first`);
      }
    }
  }
  return { subnet, tftpRoot, nextServer };
}

function validateHosts(hosts: DhcpHost[], inRange: (n: number) => boolean, range: string): void {
  const macs = new Set<string>(), ips = new Set<string>();
  for (const h of hosts) {
    if (!MAC_RE.test(h.mac)) throw new DnsmasqConfigError(`DHCP host: '${h.mac}' is not a MAC address`);
    const n = ipToInt(h.ip);
    if (n === undefined) throw new DnsmasqConfigError(`DHCP host ${h.mac}: '${h.ip}' is not an IPv4 address`);
    if (!inRange(n)) throw new DnsmasqConfigError(`DHCP host ${h.mac}: address ${h.ip} is outside the static range ${range}`);
    if (h.hostname !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(h.hostname)) throw new DnsmasqConfigError(`DHCP host ${h.mac}: '${h.hostname}' is not a valid host name`);
    const mac = h.mac.toLowerCase();
    if (macs.has(mac)) throw new DnsmasqConfigError(`DHCP host ${h.mac} is listed twice`);
    if (ips.has(h.ip)) throw new DnsmasqConfigError(`DHCP host ${h.mac}: address ${h.ip} is given to two MACs`);
    macs.add(mac); ips.add(h.ip);
  }
}

/** The dnsmasq command line (no config file, DNS off, in the foreground, logging to stderr). */
export function dnsmasqArgs(s: DnsmasqSettings, v: ValidatedSettings): string[] {
  const lease = s.leaseTime ?? '1h';
  const base = s.httpUrl.replace(/\/+$/, '');
  const efi = s.uefiBootFile ?? 'snponly.efi';
  const a = [
    '--conf-file=/dev/null', '--port=0', '--keep-in-foreground', '--log-facility=-', '--log-dhcp',
    '--pid-file=', '--user=nobody', '--group=nogroup',
    `--interface=${s.interface}`, '--bind-interfaces', '--except-interface=lo',
    `--dhcp-leasefile=${join(s.stateDir, 'dnsmasq.leases')}`,
    `--dhcp-hostsfile=${join(s.stateDir, 'dhcp-hosts')}`,
    '--dhcp-authoritative', '--no-ping',
    `--dhcp-range=set:known-hosts,${s.range.start},static,${v.subnet.netmask},${lease}`,
  ];
  if (s.discoveryRange) a.push(`--dhcp-range=set:discovery,${s.discoveryRange.start},${s.discoveryRange.end},${v.subnet.netmask},10m`);
  a.push(
    // No default route and no DNS server for the machines: the provisioning network leads nowhere.
    '--dhcp-option=option:router', '--dhcp-option=option:dns-server',
    // Firmware kinds: iPXE (QEMU's NIC ROMs are iPXE already), UEFI x86-64, else BIOS PXE.
    '--dhcp-userclass=set:ipxe,iPXE', '--dhcp-match=set:ipxe,175',
    '--dhcp-match=set:efi64,option:client-arch,7', '--dhcp-match=set:efi64,option:client-arch,9',
    // Without option 60 iPXE waits ~3 s for a ProxyDHCP offer.
    '--dhcp-option-force=tag:ipxe,60,PXEClient',
    `--dhcp-boot=tag:ipxe,${base}/boot.ipxe`,
    `--dhcp-boot=tag:!ipxe,tag:efi64,${efi},,${v.nextServer}`,
    `--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,${v.nextServer}`,
    '--enable-tftp', `--tftp-root=${v.tftpRoot}`,
  );
  if (s.raPrefix !== false) {
    // iPXE waits ~13 s for a router advertisement; answer at once, as a router for no one (lifetime 0).
    a.push('--enable-ra', `--dhcp-range=${s.raPrefix ?? 'fd00::'},ra-only,64`, `--ra-param=${s.interface},10,0`);
  }
  return a;
}

/** One line of the hosts file: MAC,IP[,hostname]. */
function hostLine(h: DhcpHost): string { return [h.mac.toLowerCase(), h.ip, ...(h.hostname ? [h.hostname] : [])].join(','); }

export interface Lease { expires: number; mac: string; ip: string; hostname: string }

/**
 * Emits 'line' (each dnsmasq log line), 'exit' ({code, signal}), 'restart' (attempt, delayMs),
 * 'dhcp' ({kind, mac, ip, at}) for DHCPDISCOVER/OFFER/REQUEST/ACK/NAK.
 */
export class Dnsmasq extends EventEmitter {
  private child: ChildProcess | undefined;
  private hosts: DhcpHost[];
  private stopping = false;
  private backoffMs = 500;
  private restartTimer: NodeJS.Timeout | undefined;
  private validated: ValidatedSettings | undefined;
  private logTail: string[] = [];
  restarts = 0;
  private log: (line: string) => void;

  constructor(readonly settings: DnsmasqSettings) {
    super();
    this.hosts = [...(settings.hosts ?? [])];
    this.log = settings.log ?? (() => {});
  }

  get pid(): number | undefined { return this.child?.pid; }
  get running(): boolean { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }
  get hostsPath(): string { return join(this.settings.stateDir, 'dhcp-hosts'); }
  /** The last log lines (diagnostics). */
  recentLog(): string[] { return [...this.logTail]; }

  /** Validate, prepare the TFTP root and hosts file, start dnsmasq and wait until it serves. */
  async start(): Promise<void> {
    this.validated = validateDnsmasq({ ...this.settings, hosts: this.hosts });
    mkdirSync(this.settings.stateDir, { recursive: true });
    this.prepareTftpRoot(this.validated.tftpRoot);
    this.writeHosts();
    this.stopping = false;
    await this.spawnOnce();
  }

  private prepareTftpRoot(root: string): void {
    mkdirSync(root, { recursive: true });
    chmodSync(root, 0o755);
    const src = this.settings.ipxeDir ?? '/usr/lib/ipxe';
    for (const f of IPXE_FILES) {
      const dest = join(root, f);
      const tmp = `${dest}.tmp`;
      copyFileSync(join(src, f), tmp);
      chmodSync(tmp, 0o644);
      renameSync(tmp, dest);
    }
    checkWorldReachable(root);
  }

  private writeHosts(): void {
    const tmp = `${this.hostsPath}.tmp`;
    writeFileSync(tmp, this.hosts.map(hostLine).join('\n') + (this.hosts.length ? '\n' : ''), { mode: 0o644 });
    renameSync(tmp, this.hostsPath);
  }

  private spawnOnce(): Promise<void> {
    const args = dnsmasqArgs({ ...this.settings, hosts: this.hosts }, this.validated!);
    const child = spawn(this.settings.binary ?? '/usr/sbin/dnsmasq', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    if (child.pid) this.settings.tracker?.add(child.pid, 'dnsmasq');
    const startedAt = Date.now();
    let buf = '';
    let ready: (() => void) | undefined;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.onLine(line);
        if (ready && /dnsmasq-tftp(\[\d+\])?: TFTP root is/.test(line)) { ready(); ready = undefined; }
      }
    });
    return new Promise<void>((resolve, reject) => {
      ready = () => { this.log(`dnsmasq started (pid ${child.pid}) on ${this.settings.interface}`); resolve(); };
      child.once('error', (e) => reject(new DnsmasqConfigError(`cannot start dnsmasq: ${e.message}`)));
      child.once('exit', (code, signal) => {
        if (child.pid) this.settings.tracker?.remove(child.pid);
        this.emit('exit', { code, signal });
        if (ready) { ready = undefined; reject(new DnsmasqConfigError(`dnsmasq exited at start (${signal ?? `code ${code}`}): ${this.logTail.slice(-3).join(' | ') || 'no message'}`)); return; }
        if (this.stopping || this.settings.restart === false) return;
        if (Date.now() - startedAt > 60_000) this.backoffMs = 500;
        const delay = this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
        this.restarts++;
        this.log(`dnsmasq exited unexpectedly (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
        this.emit('restart', this.restarts, delay);
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          if (this.stopping) return;
          this.spawnOnce().catch((e) => this.log(`dnsmasq restart failed: ${(e as Error).message}`));
        }, delay);
      });
    });
  }

  private onLine(line: string): void {
    this.logTail.push(line);
    if (this.logTail.length > 200) this.logTail.shift();
    this.emit('line', line);
    // dnsmasq-dhcp: 1234 DHCPACK(ooo-prov) 192.0.2.10 52:54:00:12:34:56 lab-0
    const m = /DHCP(DISCOVER|OFFER|REQUEST|ACK|NAK)\([^)]*\)\s+(?:(\d+\.\d+\.\d+\.\d+)\s+)?([0-9a-f]{2}(?::[0-9a-f]{2}){5})/i.exec(line);
    if (m) this.emit('dhcp', { kind: m[1].toUpperCase(), ip: m[2], mac: m[3].toLowerCase(), at: Date.now() });
  }

  /** The current static hosts. */
  getHosts(): DhcpHost[] { return this.hosts.map((h) => ({ ...h })); }

  /** Replace the static hosts: validated, hosts file rewritten atomically, SIGHUP (no restart). */
  async setHosts(hosts: DhcpHost[]): Promise<void> {
    const start = ipToInt(this.settings.range.start)!, end = ipToInt(this.settings.range.end)!;
    validateHosts(hosts, (n) => n >= start && n <= end, `${this.settings.range.start}-${this.settings.range.end}`);
    this.hosts = hosts.map((h) => ({ ...h, mac: h.mac.toLowerCase() }));
    mkdirSync(this.settings.stateDir, { recursive: true });
    this.writeHosts();
    // An address now given to another MAC while the old MAC still holds a lease on it: dnsmasq
    // would refuse it ("not using configured address ... because it is leased to ...") until the
    // lease expires. Drop those leases, which dnsmasq only reads at start: restart it.
    const byIp = new Map(this.hosts.map((h) => [h.ip, h.mac]));
    const stale = this.leases().filter((l) => byIp.has(l.ip) && byIp.get(l.ip) !== l.mac.toLowerCase());
    if (stale.length && this.running) {
      this.log(`dnsmasq: ${stale.map((l) => `${l.ip} moves from ${l.mac} to ${byIp.get(l.ip)}`).join(', ')}: dropping the old leases (restart)`);
      await this.stop();
      this.pruneLeases(stale);
      this.stopping = false;
      await this.spawnOnce();
      return;
    }
    if (stale.length) this.pruneLeases(stale);
    if (!this.running) return;
    const reread = new Promise<void>((resolve) => {
      const t = setTimeout(done, 2000);
      function done() { clearTimeout(t); resolve(); }
      const onLine = (l: string) => { if (l.includes(`read ${this.hostsPath}`)) { this.removeListener('line', onLine); done(); } };
      this.on('line', onLine);
      setTimeout(() => this.removeListener('line', onLine), 2100);
    });
    this.child!.kill('SIGHUP');
    await reread;
  }

  async addHost(h: DhcpHost): Promise<void> {
    await this.setHosts([...this.hosts.filter((x) => x.mac !== h.mac.toLowerCase()), h]);
  }
  async removeHost(mac: string): Promise<void> {
    await this.setHosts(this.hosts.filter((x) => x.mac !== mac.toLowerCase()));
  }

  private pruneLeases(stale: Lease[]): void {
    const p = join(this.settings.stateDir, 'dnsmasq.leases');
    if (!existsSync(p)) return;
    const drop = new Set(stale.map((l) => `${l.mac} ${l.ip}`));
    const kept = readFileSync(p, 'utf8').split('\n').filter((l) => l && !drop.has(l.split(' ').slice(1, 3).join(' ')));
    writeFileSync(`${p}.tmp`, kept.map((l) => l + '\n').join(''));
    renameSync(`${p}.tmp`, p);
  }

  /** The lease file as dnsmasq last wrote it. */
  leases(): Lease[] {
    const p = join(this.settings.stateDir, 'dnsmasq.leases');
    if (!existsSync(p)) return [];
    return readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => {
      const [expires, mac, ip, hostname] = l.split(' ');
      return { expires: Number(expires), mac, ip, hostname };
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) { clearTimeout(this.restartTimer); this.restartTimer = undefined; }
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}
