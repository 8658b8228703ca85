/**
 * dnsmasq supervisor: validation errors before anything starts, the command line, and a real
 * dnsmasq on a lab network answering DHCP clients (busybox udhcpc in the namespace): static
 * leases only for known MACs, hosts added with SIGHUP (same process), the discovery range,
 * restart after a crash.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dnsmasq, DnsmasqConfigError, DnsmasqSettings, dnsmasqArgs, validateDnsmasq } from '../../src/boot/dnsmasq.js';
import { LabNetwork } from '../../src/lab/network.js';
import { labSkipReason } from '../lab/helpers.js';

const tag = (process.pid % 100000).toString(36);

test('dnsmasq: a missing interface is named, with the ones that exist', () => {
  assert.throws(() => validateDnsmasq({ interface: 'no-such-if0', range: { start: '192.0.2.10', end: '192.0.2.20' }, httpUrl: 'http://192.0.2.1:1', stateDir: '/tmp/x' }),
    (e: Error) => e instanceof DnsmasqConfigError && /DHCP interface 'no-such-if0' does not exist on this host \(interfaces: .*lo/.test(e.message));
});

test('dnsmasq: a missing binary says which package', () => {
  assert.throws(() => validateDnsmasq({ interface: 'lo', range: { start: '127.0.0.10', end: '127.0.0.20' }, httpUrl: 'http://x', stateDir: '/tmp/x', binary: '/nonexistent/dnsmasq' }), /install the Debian package dnsmasq-base/);
});

describe('dnsmasq on a lab network', { skip: labSkipReason() || (!existsSync('/usr/sbin/dnsmasq') && 'not installed: dnsmasq (dnsmasq-base)') || (!existsSync('/bin/busybox') && 'not installed: busybox-static') || false }, () => {
  let dir: string;
  let net: LabNetwork;
  let d: Dnsmasq | undefined;
  const base = (): DnsmasqSettings => ({ interface: net.hostInterface, range: { start: '192.0.2.10', end: '192.0.2.40' }, httpUrl: 'http://192.0.2.1:8080', stateDir: join(dir, 'dnsmasq'), raPrefix: false });
  /** A DHCP client with MAC `mac` in the namespace: returns the leased address or undefined. */
  const client = (mac: string, i: number): string | undefined => {
    const ns = net.namespace, a = `dc${i}`, b = `dc${i}p`;
    const ipns = (...args: string[]) => spawnSync('ip', ['netns', 'exec', ns, 'ip', ...args], { encoding: 'utf8' });
    ipns('link', 'add', a, 'address', mac, 'type', 'veth', 'peer', 'name', b);
    ipns('link', 'set', b, 'master', net.bridge, 'up');
    ipns('link', 'set', a, 'up');
    try {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'busybox', 'udhcpc', '-i', a, '-f', '-n', '-q', '-t', '3', '-T', '1', '-s', '/bin/true'], { encoding: 'utf8', timeout: 15_000 });
      return /lease of (\d+\.\d+\.\d+\.\d+) obtained/.exec(r.stdout + r.stderr)?.[1];
    } finally { ipns('link', 'del', a); }
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-dnsmasq-'));
    chmodSync(dir, 0o755);
    net = new LabNetwork({ dir, namespace: `ooo-dq-${tag}`, hostInterface: `ood${tag}` });
    net.create();
  });
  after(async () => {
    await d?.stop();
    try { net?.destroy(); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  });

  test('validation: range outside the interface subnet', () => {
    assert.throws(() => validateDnsmasq({ ...base(), range: { start: '10.0.0.10', end: '10.0.0.20' } }),
      new RegExp(`DHCP range 10\\.0\\.0\\.10-10\\.0\\.0\\.20 is not inside the subnet of interface '${net.hostInterface}' \\(192\\.0\\.2\\.1/26\\).*192\\.0\\.2\\.1-192\\.0\\.2\\.62`));
    assert.throws(() => validateDnsmasq({ ...base(), range: { start: '192.0.2.10', end: '192.0.2.70' } }), /not inside the subnet/);
    assert.throws(() => validateDnsmasq({ ...base(), range: { start: '192.0.2.30', end: '192.0.2.10' } }), /the start is after the end/);
    assert.throws(() => validateDnsmasq({ ...base(), range: { start: '192.0.2.1', end: '192.0.2.10' } }), /contains the interface's own address 192\.0\.2\.1/);
    assert.throws(() => validateDnsmasq({ ...base(), range: { start: '192.0.2.300', end: '192.0.2.10' } }), /'192\.0\.2\.300' is not an IPv4 address/);
  });

  test('validation: hosts, discovery range, URL, RA address, TFTP root permissions', () => {
    assert.throws(() => validateDnsmasq({ ...base(), hosts: [{ mac: '52:54:00:00:00:01', ip: '192.0.2.50' }] }), /address 192\.0\.2\.50 is outside the static range 192\.0\.2\.10-192\.0\.2\.40/);
    assert.throws(() => validateDnsmasq({ ...base(), hosts: [{ mac: '52:54:00:00:00:01', ip: '192.0.2.11' }, { mac: '52:54:00:00:00:02', ip: '192.0.2.11' }] }), /192\.0\.2\.11 is given to two MACs/);
    assert.throws(() => validateDnsmasq({ ...base(), hosts: [{ mac: 'nope', ip: '192.0.2.11' }] }), /'nope' is not a MAC address/);
    assert.throws(() => validateDnsmasq({ ...base(), discoveryRange: { start: '192.0.2.30', end: '192.0.2.50' } }), /overlaps the static range/);
    assert.throws(() => validateDnsmasq({ ...base(), httpUrl: 'https://x' }), /iPXE needs http:\/\//);
    assert.throws(() => validateDnsmasq({ ...base(), raPrefix: 'fd01::' }), /router advertisements for fd01::\/64 need an address in it/);
    assert.throws(() => validateDnsmasq({ ...base(), ipxeDir: '/nonexistent' }), /iPXE binaries missing: \/nonexistent\/undionly\.kpxe.*install the Debian package ipxe/);
    const down = `oox${tag}`;
    spawnSync('ip', ['link', 'add', down, 'type', 'veth', 'peer', 'name', `${down}p`]);
    try { assert.throws(() => validateDnsmasq({ ...base(), interface: down }), new RegExp(`'${down}' is down`)); } finally { spawnSync('ip', ['link', 'del', down]); }
  });

  test('validation: TFTP root not readable by nobody', async () => {
    const closed = mkdtempSync(join(tmpdir(), 'ooo-closed-'));
    try {
      const s = new Dnsmasq({ ...base(), tftpRoot: join(closed, 'tftp') });
      await assert.rejects(s.start(), new RegExp(`directory ${closed} is not searchable by other users.*dnsmasq drops to user nobody`));
    } finally { rmSync(closed, { recursive: true, force: true }); }
  });

  test('command line: no config, no DNS, no ping, iPXE/UEFI/BIOS boot files, hosts file', () => {
    const v = validateDnsmasq({ ...base(), raPrefix: undefined }, { checkPorts: false });
    const a = dnsmasqArgs({ ...base(), raPrefix: undefined }, v).join(' ');
    for (const want of ['--conf-file=/dev/null', '--port=0', '--no-ping', '--keep-in-foreground', '--dhcp-userclass=set:ipxe,iPXE', '--dhcp-match=set:ipxe,175',
      '--dhcp-option-force=tag:ipxe,60,PXEClient', '--dhcp-boot=tag:ipxe,http://192.0.2.1:8080/boot.ipxe', '--dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,192.0.2.1',
      '--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,192.0.2.1', '--enable-ra', '--dhcp-range=fd00::,ra-only,64', `--interface=${net.hostInterface}`, '--bind-interfaces', 'static,255.255.255.192']) {
      assert.ok(a.includes(want), `missing ${want}`);
    }
  });

  test('DHCP: known MACs only; hosts added by SIGHUP without a restart; discovery range', async () => {
    d = new Dnsmasq({ ...base(), hosts: [{ mac: '52:54:00:0d:00:01', ip: '192.0.2.21', hostname: 'lab-1' }] });
    await d.start();
    const pid = d.pid;
    assert.ok(existsSync(join(dir, 'dnsmasq', 'tftp', 'undionly.kpxe')));
    let t = Date.now();
    assert.equal(client('52:54:00:0d:00:01', 1), '192.0.2.21');
    console.log(`# DHCP lease (udhcpc, discover to lease) ${Date.now() - t} ms`);
    assert.equal(client('52:54:00:0d:00:02', 2), undefined, 'an unknown MAC gets no lease');
    await d.addHost({ mac: '52:54:00:0d:00:02', ip: '192.0.2.22' });
    assert.equal(d.pid, pid, 'no restart');
    assert.equal(client('52:54:00:0d:00:02', 3), '192.0.2.22');
    // An address handed to a new MAC while the old one still holds a lease on it.
    await d.setHosts([{ mac: '52:54:00:0d:00:04', ip: '192.0.2.21' }, { mac: '52:54:00:0d:00:02', ip: '192.0.2.22' }]);
    assert.equal(client('52:54:00:0d:00:04', 5), '192.0.2.21');
    assert.equal(client('52:54:00:0d:00:01', 6), undefined, 'the removed MAC gets nothing');
    await d.stop();
    d = new Dnsmasq({ ...base(), discoveryRange: { start: '192.0.2.50', end: '192.0.2.60' } });
    await d.start();
    t = Date.now();
    const ip = client('52:54:00:0d:00:03', 4);
    assert.ok(ip && /^192\.0\.2\.(5\d|60)$/.test(ip), `discovery lease ${ip}`);
  });

  test('a second dnsmasq is refused: port 67 in use, with the process named', () => {
    assert.throws(() => validateDnsmasq(base()), new RegExp(`UDP port 67 \\(DHCP\\) is already in use: .*dnsmasq \\(pid ${d!.pid}\\)`));
  });

  test('crash: restarted with backoff', async () => {
    const pid = d!.pid!;
    const restarted = new Promise<[number, number]>((r) => d!.once('restart', (n: number, ms: number) => r([n, ms])));
    process.kill(pid, 'SIGKILL');
    const [n, ms] = await restarted;
    assert.equal(n, 1);
    assert.equal(ms, 500);
    const deadline = Date.now() + 10_000;
    while (!(d!.running && d!.pid !== pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(d!.running && d!.pid !== pid, 'a new dnsmasq runs');
    await d!.stop();
    assert.equal(d!.running, false);
  });
});
