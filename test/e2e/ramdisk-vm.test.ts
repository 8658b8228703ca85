/**
 * The real deploy ramdisk, built by the image builder, booted in a qemu VM (TCG) whose user-mode
 * network reaches the seed on this host: inspection reports the VM's real CPUs, RAM, disk and
 * MAC; cleaning erases its disk; deploy writes a bootable image built by the image builder,
 * verified, and the VM then boots that image from its own disk.
 * (Power here is the test starting and stopping qemu; BMC-driven power is the lab's part.)
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestSeed, startTestSeed, waitState } from '../helpers/seed.js';
import { bootUntil, markerElement, missingTools } from '../images/helpers.js';

const OOO = join(process.cwd(), 'bin', 'ooo');
const MAC = '52:54:00:12:34:99';
const DISK_BYTES = 8 * 1024 ** 3;
const skip = missingTools('qemu-system-x86_64', 'busybox', 'mount', 'sfdisk', 'mke2fs');

describe('deploy ramdisk in a VM', { skip: skip ?? false }, () => {
  let s: TestSeed;
  let dir: string;
  let disk: string;
  let images: Server;
  let imagePort = 0;
  let image = { path: '', sha256: '', size: 0 };
  let vm: ChildProcess | undefined;
  let serial = '';
  const marker = 'OOO-DEPLOYED-OS-UP';

  const nodeSecret = async () => {
    const row = await s.seed.db.get<{ uuid: string; driver_internal_info: string }>("SELECT uuid, driver_internal_info FROM nodes WHERE name = 'vm-0'");
    return { uuid: row!.uuid, token: JSON.parse(row!.driver_internal_info).agent_secret_token as string };
  };
  /** What the ipxe boot interface would boot: the ramdisk with the seed and token on the command line. */
  const bootRamdisk = async () => {
    const { uuid, token } = await nodeSecret();
    const port = new URL(s.url).port;
    serial = join(dir, `serial-${Date.now()}.log`);
    writeFileSync(serial, '');
    vm = spawn('qemu-system-x86_64', [
      '-accel', 'tcg', '-m', '512', '-smp', '1', '-nographic', '-monitor', 'none', '-no-reboot', '-serial', `file:${serial}`,
      '-kernel', join(dir, 'deploy.kernel'), '-initrd', join(dir, 'deploy.initramfs'),
      '-append', `console=ttyS0 ooo.api=http://10.0.2.2:${port}/baremetal ooo.token=${token} ooo.node=${uuid} ooo.poll=1`,
      '-netdev', 'user,id=n0', '-device', `virtio-net-pci,netdev=n0,mac=${MAC}`,
      '-drive', `file=${disk},if=virtio,format=raw`,
    ], { stdio: 'ignore' });
  };
  const stopVm = async () => {
    if (vm && vm.exitCode === null) { const exited = new Promise((r) => vm!.once('exit', r)); vm.kill('SIGKILL'); await exited; }
    vm = undefined;
  };
  const reach = async (state: string, ms = 180_000) => {
    try { return await waitState(s, 'vm-0', state, ms); } catch (e) {
      const n = (await s.bm('GET', '/v1/nodes/vm-0')).body;
      throw new Error(`${(e as Error).message}; node is ${n.provision_state} (${n.last_error}); console:\n${existsSync(serial) ? readFileSync(serial, 'latin1').slice(-3000) : ''}`);
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-vm-'));
    execFileSync(OOO, ['image', 'build', '-t', 'ramdisk', '-o', join(dir, 'deploy'), 'busybox', 'deploy-ramdisk'], { stdio: 'ignore' });
    markerElement(join(dir, 'elements'), marker);
    execFileSync(OOO, ['image', 'build', '-t', 'raw', '-o', join(dir, 'os'), '--elements-path', join(dir, 'elements'), 'busybox', 'vm', 'config-agent', 'marker'], { stdio: 'ignore' });
    image = { path: join(dir, 'os.raw'), size: statSync(join(dir, 'os.raw')).size, sha256: createHash('sha256').update(readFileSync(join(dir, 'os.raw'))).digest('hex') };
    images = createServer((_req, res) => { res.setHeader('Content-Length', image.size); createReadStream(image.path).pipe(res); });
    await new Promise<void>((r) => images.listen(0, '127.0.0.1', () => r()));
    imagePort = (images.address() as { port: number }).port;
    disk = join(dir, 'disk.raw');
    const fd = openSync(disk, 'w');
    ftruncateSync(fd, DISK_BYTES);
    writeSync(fd, Buffer.alloc(1024 * 1024, 0xab), 0, 1024 * 1024, 0);
    closeSync(fd);
    s = await startTestSeed('sqlite', { waitTimeoutS: 600 });
    // The address machines reach the seed at (qemu's user network maps 10.0.2.2 to this host), as --public-url sets it.
    await s.seed.db.run("UPDATE settings SET value = ? WHERE key = 'baremetal_url'", [`http://10.0.2.2:${new URL(s.url).port}/baremetal`]);
    const n = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'vm-0', deploy_interface: 'direct', inspect_interface: 'agent' });
    assert.equal(n.status, 201);
    await s.bm('PUT', '/v1/nodes/vm-0/states/provision', { target: 'manage' });
    await waitState(s, 'vm-0', 'manageable');
  });
  after(async () => {
    await stopVm();
    images?.close();
    await s?.stop();
    if (dir && !process.env.OOO_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  test('inspection reports the VM\'s real hardware', async () => {
    await s.bm('PUT', '/v1/nodes/vm-0/states/provision', { target: 'inspect' });
    await waitState(s, 'vm-0', 'inspect wait');
    await bootRamdisk();
    const n = await reach('manageable');
    await stopVm();
    assert.equal(n.properties.cpus, 1);
    assert.equal(n.properties.local_gb, 7);
    assert.ok(n.properties.memory_mb > 400 && n.properties.memory_mb <= 512, `memory_mb ${n.properties.memory_mb}`);
    const ports = (await s.bm('GET', '/v1/nodes/vm-0/ports')).body.ports;
    assert.deepEqual(ports.map((p: any) => p.address), [MAC]);
    const inv = (await s.bm('GET', '/v1/nodes/vm-0/inventory')).body.inventory;
    assert.equal(inv.disks.find((d: any) => d.name === '/dev/vda')?.size, DISK_BYTES);
  });

  test('cleaning erases the VM\'s disk', async () => {
    await s.bm('PUT', '/v1/nodes/vm-0/states/provision', { target: 'provide' });
    await waitState(s, 'vm-0', 'clean wait');
    await bootRamdisk();
    await reach('available');
    await stopVm();
    const fd = openSync(disk, 'r');
    const b = Buffer.alloc(1024 * 1024);
    readSync(fd, b, 0, b.length, 0);
    closeSync(fd);
    assert.ok(b.every((x) => x === 0), 'the first MiB is zeroed');
  });

  test('deploy writes the image from the seed\'s image service; the VM then boots it from its own disk', async () => {
    // The image the builder made, uploaded to the seed's image service as an operator would.
    const created = await s.call('POST', '/image/v2/images', { name: 'vm-os', disk_format: 'raw', container_format: 'bare' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const up = await fetch(`${s.url}/image/v2/images/${created.body.id}/file`, { method: 'PUT', headers: { 'X-Auth-Token': s.token, 'Content-Type': 'application/octet-stream' }, body: readFileSync(image.path) });
    assert.equal(up.status, 204);
    await s.bm('PATCH', '/v1/nodes/vm-0', [{ op: 'add', path: '/instance_info', value: { image_source: created.body.id } }]);
    await s.bm('PUT', '/v1/nodes/vm-0/states/provision', { target: 'active' });
    await waitState(s, 'vm-0', 'wait call-back');
    await bootRamdisk();
    const n = await reach('active');
    await stopVm();
    assert.equal(n.last_error, null);
    const booted = await bootUntil(['-drive', `file=${disk},if=virtio,format=raw`, '-netdev', 'user,id=n0', '-device', `virtio-net-pci,netdev=n0,mac=${MAC}`], marker, 120_000, join(dir, 'os-serial.log'));
    assert.ok(booted.found, `the deployed OS did not print its marker:\n${booted.serial.slice(-2000)}`);
    const h = (await s.bm('GET', '/v1/nodes/vm-0/history')).body.history;
    assert.ok(h.some((e: any) => /deployed OS reported in: vm-0/.test(e.event)), `no report-in; console:\n${booted.serial.slice(-2500)}`);
  });
});
