/**
 * The deploy ramdisk's agent (elements/deploy-ramdisk) against a real seed, run on this host
 * under busybox with a fake /sys and a disk image file: inspection fills the node's properties
 * and ports, cleaning erases the disk, deploy streams an image, verifies it and powers off;
 * a checksum mismatch fails the deploy and the bad image is never booted.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, symlinkSync, writeFileSync, ftruncateSync, writeSync, rmSync, readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestSeed, startTestSeed, waitState } from '../helpers/seed.js';

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find(existsSync);
const AGENT = join(process.cwd(), 'elements', 'deploy-ramdisk', 'static', 'usr', 'bin', 'ooo-agent');
const MAC = '52:54:00:a9:00:01';

describe('ramdisk agent against the seed', { skip: BUSYBOX ? false : 'busybox is not installed (Debian busybox-static)' }, () => {
  let s: TestSeed;
  let dir: string;
  let disk: string;
  let sys: string;
  let bin: string;
  let images: Server;
  let imageUrl: string;
  // A whole-disk image: a GPT with one partition, the rest random bytes.
  let image = Buffer.alloc(0);
  let sha = '';
  let agent: ChildProcess | undefined;
  let agentLog = '';

  const token = async () => {
    const row = await s.seed.db.get<{ driver_internal_info: string }>("SELECT driver_internal_info FROM nodes WHERE name = 'agent-n'");
    return JSON.parse(row!.driver_internal_info).agent_secret_token as string;
  };
  /** What the boot interface puts on the kernel command line. */
  const cmdline = async () => {
    const f = join(dir, 'cmdline');
    const uuid = (await s.bm('GET', '/v1/nodes/agent-n')).body.uuid;
    writeFileSync(f, `console=ttyS0 ooo.api=${s.url}/baremetal ooo.token=${await token()} ooo.node=${uuid} ooo.poll=0.2\n`);
    return f;
  };
  const startAgent = async () => {
    agentLog = '';
    agent = spawn(BUSYBOX!, ['sh', AGENT], {
      env: { PATH: `${bin}`, OOO_AGENT_CMDLINE: await cmdline(), OOO_AGENT_SYSFS: sys, OOO_AGENT_DEV: join(dir, 'dev'), OOO_AGENT_NONET: '1', OOO_AGENT_TEST: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout!.on('data', (d) => { agentLog += d; });
    agent.stderr!.on('data', (d) => { agentLog += d; });
  };
  const stopAgent = () => { agent?.kill('SIGKILL'); agent = undefined; };
  /** Waits for a state; on failure the agent's own output says why. */
  const reach = async (state: string, ms = 30_000) => {
    try { return await waitState(s, 'agent-n', state, ms); } catch (e) {
      const n = (await s.bm('GET', '/v1/nodes/agent-n')).body;
      throw new Error(`${(e as Error).message}; node is ${n.provision_state} (${n.last_error}); agent said:\n${agentLog.slice(-3000)}`);
    }
  };
  const head = (n: number) => { const fd = openSync(disk, 'r'); const b = Buffer.alloc(n); readSync(fd, b, 0, n, 0); closeSync(fd); return b; };

  before(async () => {
    s = await startTestSeed('sqlite', { waitTimeoutS: 120 });
    dir = mkdtempSync(join(tmpdir(), 'ooo-agent-'));
    // A busybox-only PATH: the agent must work with busybox applets alone.
    bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const applet of execFileSync(BUSYBOX!, ['--list']).toString().split('\n').filter(Boolean)) symlinkSync(BUSYBOX!, join(bin, applet));
    // A fake machine: one NIC, one 5 GiB disk (a sparse file whose first MiB is 0xff).
    sys = join(dir, 'sys');
    mkdirSync(join(sys, 'class', 'net', 'eth0'), { recursive: true });
    writeFileSync(join(sys, 'class', 'net', 'eth0', 'address'), MAC + '\n');
    writeFileSync(join(sys, 'class', 'net', 'eth0', 'carrier'), '1\n');
    mkdirSync(join(sys, 'block', 'vda', 'queue'), { recursive: true });
    writeFileSync(join(sys, 'block', 'vda', 'size'), String((5 * 1024 ** 3) / 512) + '\n');
    writeFileSync(join(sys, 'block', 'vda', 'queue', 'rotational'), '0\n');
    writeFileSync(join(sys, 'block', 'vda', 'serial'), 'DISK-SERIAL-1\n');
    mkdirSync(join(dir, 'dev'));
    disk = join(dir, 'dev', 'vda');
    const fd = openSync(disk, 'w');
    ftruncateSync(fd, 5 * 1024 ** 3);
    writeSync(fd, Buffer.alloc(1024 * 1024, 0xff), 0, 1024 * 1024, 0);
    closeSync(fd);
    const imgFile = join(dir, 'img.raw');
    writeFileSync(imgFile, Buffer.alloc(4 * 1024 * 1024));
    execFileSync('sfdisk', ['-q', imgFile], { input: 'label: gpt\nstart=2048, size=4096, type=L, name=root\n' });
    image = readFileSync(imgFile);
    randomBytes(2 * 1024 * 1024).copy(image, 1024 * 1024);
    sha = createHash('sha256').update(image).digest('hex');
    images = createServer((_req, res) => { res.setHeader('Content-Length', image.length); res.end(image); });
    await new Promise<void>((r) => images.listen(0, '127.0.0.1', () => r()));
    imageUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}/img.raw`;
    const n = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'agent-n', deploy_interface: 'direct', inspect_interface: 'agent' });
    assert.equal(n.status, 201, JSON.stringify(n.body));
    await s.bm('PUT', '/v1/nodes/agent-n/states/provision', { target: 'manage' });
    await waitState(s, 'agent-n', 'manageable');
  });
  after(async () => {
    stopAgent();
    images.close();
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('inspection: the agent reports the hardware; properties and ports follow', async () => {
    await s.bm('PUT', '/v1/nodes/agent-n/states/provision', { target: 'inspect' });
    await waitState(s, 'agent-n', 'inspect wait');
    await startAgent();
    const n = await reach('manageable');
    stopAgent();
    assert.equal(n.properties.local_gb, 4);
    assert.equal(n.properties.cpu_arch, 'x86_64');
    assert.ok(n.properties.cpus >= 1 && n.properties.memory_mb > 100, JSON.stringify(n.properties));
    const ports = (await s.bm('GET', '/v1/nodes/agent-n/ports')).body.ports;
    assert.deepEqual(ports.map((p: any) => p.address), [MAC]);
    const inv = (await s.bm('GET', '/v1/nodes/agent-n/inventory')).body.inventory;
    assert.equal(inv.disks[0].serial, 'DISK-SERIAL-1');
    assert.equal(n.driver_internal_info.agent_secret_token, undefined, 'the agent token dies with the ramdisk');
  });

  test('cleaning erases the disk metadata before the node is available', async () => {
    assert.equal(head(16).toString('hex'), 'ff'.repeat(16));
    await s.bm('PUT', '/v1/nodes/agent-n/states/provision', { target: 'provide' });
    await waitState(s, 'agent-n', 'clean wait');
    await startAgent();
    await reach('available');
    stopAgent();
    assert.equal(head(1024 * 1024).every((b) => b === 0), true, 'first MiB zeroed');
    assert.match(agentLog, /command \d+: erase_devices_metadata/);
  });

  test('a checksum mismatch fails the deploy; the bad image is never booted', async () => {
    await s.bm('PATCH', '/v1/nodes/agent-n', [{ op: 'add', path: '/instance_info', value: { image_source: imageUrl, image_checksum: 'sha256:' + '0'.repeat(64), image_size: image.length } }]);
    await s.bm('PUT', '/v1/nodes/agent-n/states/provision', { target: 'active' });
    await waitState(s, 'agent-n', 'wait call-back');
    await startAgent();
    const n = await reach('deploy failed');
    stopAgent();
    assert.match(n.last_error, /write_image failed: checksum mismatch on .*vda/);
    const boot = (await s.bm('GET', '/v1/nodes/agent-n/management/boot_device')).body;
    assert.equal(boot.boot_device, 'pxe', 'never switched to booting the bad disk');
  });

  test('deploy streams the image to the root disk, verifies it, powers off and boots from disk', async () => {
    await s.bm('PATCH', '/v1/nodes/agent-n', [{ op: 'add', path: '/instance_info/image_checksum', value: sha }]);
    await s.bm('PUT', '/v1/nodes/agent-n/states/provision', { target: 'active' });
    await waitState(s, 'agent-n', 'wait call-back');
    await startAgent();
    const n = await reach('active');
    if (agent && agent.exitCode === null) await new Promise((r) => agent!.once('exit', r));
    // The image, byte for byte, but for its partition table, which gained the config drive's entry.
    assert.equal(head(image.length).subarray(34 * 512).equals(image.subarray(34 * 512)), true, 'disk holds the image');
    assert.equal(n.power_state, 'power on');
    const boot = (await s.bm('GET', '/v1/nodes/agent-n/management/boot_device')).body;
    assert.deepEqual(boot, { boot_device: 'disk', persistent: true });
    assert.match(agentLog, /command \d+: poweroff/);
    // The config drive: a partition labelled config-2 at the end of the disk, in the GPT the OS will read.
    const table = JSON.parse(execFileSync('sfdisk', ['-J', disk]).toString()).partitiontable;
    assert.equal(table.partitions.length, 2);
    const cd = table.partitions[1];
    assert.equal(cd.name, 'config-2');
    assert.ok((cd.start + cd.size) * 512 <= 5 * 1024 ** 3 && cd.start * 512 > 4 * 1024 ** 3, 'at the end of the disk');
    const meta = JSON.parse(execFileSync('mtype', ['-i', `${disk}@@${cd.start * 512}`, '::openstack/latest/meta_data.json']).toString());
    assert.equal(meta.uuid, n.uuid);
    assert.equal(meta.ooo.node, n.uuid);
    // What the config agent does at boot: report in with the token from the config drive.
    const bad = await fetch(`${s.url}/baremetal/v1/agent/${n.uuid}/report`, { method: 'POST', headers: { 'X-Report-Token': 'nope', 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(bad.status, 403);
    const r = await fetch(`${s.url}/baremetal/v1/agent/${n.uuid}/report`, { method: 'POST', headers: { 'X-Report-Token': meta.ooo.token, 'Content-Type': 'application/json' }, body: JSON.stringify({ hostname: 'agent-n', kernel: '6.1', addresses: '192.0.2.10/26' }) });
    assert.equal(r.status, 200);
    const h = (await s.bm('GET', '/v1/nodes/agent-n/history')).body.history;
    assert.ok(h.some((e: any) => /deployed OS reported in: agent-n/.test(e.event)));
  });

  test('a wrong agent token is refused', async () => {
    const r = await fetch(`${s.url}/baremetal/v1/agent/agent-n/commands/next`, { headers: { 'X-Agent-Token': 'forged' } });
    assert.equal(r.status, 403);
  });
});
