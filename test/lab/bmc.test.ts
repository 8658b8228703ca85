/**
 * A lab machine behind a virtual BMC: ipmitool (lanplus) -> IpmiServer, or Redfish over HTTP ->
 * RedfishServer, -> QemuMachine -> QMP -> qemu. Power and boot device changes made through IPMI are visible in qemu itself.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuVm } from '../../src/lab/vm.js';
import { QemuMachine } from '../../src/lab/qemu-machine.js';
import { IpmiServer } from '../../src/protocols/ipmi/server.js';
import { RedfishServer } from '../../src/protocols/redfish/server.js';
import { which } from '../../src/images/builder/exec.js';

const skip = !which('qemu-system-x86_64') ? 'not installed: qemu-system-x86_64' : !which('ipmitool') ? 'not installed: ipmitool' : false;

describe('lab machine behind a virtual IPMI BMC', { skip }, () => {
  let dir: string;
  let vm: QemuVm;
  let m: QemuMachine;
  let bmc: IpmiServer;
  let port = 0;
  const ipmitool = (...args: string[]) => new Promise<string>((resolve, reject) => {
    const c = spawn('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(port), '-U', 'admin', '-P', 'lab-password', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { out += d; });
    c.on('exit', (code) => code === 0 ? resolve(out.trim()) : reject(new Error(`ipmitool ${args.join(' ')}: exit ${code}: ${out}`)));
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-bmc-'));
    vm = new QemuVm({ name: 'bmc-0', dir, memoryMiB: 128, nics: [{ mac: '52:54:00:00:00:21' }], disk: { sizeBytes: 16 << 20 } });
    await vm.start();
    m = new QemuMachine(vm);
    bmc = new IpmiServer({ backend: m, users: [{ name: 'admin', password: 'lab-password' }] });
    port = await bmc.listen(0, '127.0.0.1');
  });
  after(async () => {
    await bmc?.close();
    await vm?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('chassis power status / on / off / cycle reach qemu', async () => {
    assert.match(await ipmitool('chassis', 'power', 'status'), /Chassis Power is off/);
    await ipmitool('chassis', 'power', 'on');
    assert.equal((await vm.qmp.execute<{ status: string }>('query-status')).status, 'running');
    assert.match(await ipmitool('chassis', 'power', 'status'), /Chassis Power is on/);
    await ipmitool('chassis', 'power', 'off');
    assert.equal((await vm.qmp.execute<{ status: string }>('query-status')).status, 'prelaunch');
    await ipmitool('chassis', 'power', 'cycle');
    // A power cycle from off turns the machine on (as the simulated machine does).
    const s = (await vm.qmp.execute<{ status: string }>('query-status')).status;
    assert.ok(s === 'running' || s === 'prelaunch', s);
    await ipmitool('chassis', 'power', 'off');
  });

  test('chassis bootdev disk (persistent) and pxe (next boot) set the bootindex in qemu', async () => {
    await ipmitool('chassis', 'bootdev', 'disk', 'options=persistent');
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await ipmitool('chassis', 'bootdev', 'pxe');
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    await ipmitool('chassis', 'power', 'on');
    // That boot used pxe; the next one is back on the disk.
    assert.match(await ipmitool('chassis', 'bootparam', 'get', '5'), /No override/);
    await ipmitool('chassis', 'power', 'off');
    await ipmitool('chassis', 'power', 'on');
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await ipmitool('chassis', 'power', 'off');
  });
});

describe('lab machine behind a virtual Redfish BMC', { skip: which('qemu-system-x86_64') ? false : 'not installed: qemu-system-x86_64' }, () => {
  let dir: string;
  let vm: QemuVm;
  let m: QemuMachine;
  let bmc: RedfishServer;
  let base = '';
  const auth = { Authorization: `Basic ${Buffer.from('admin:lab-password').toString('base64')}`, 'Content-Type': 'application/json' };
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const status = async () => (await vm.qmp.execute<{ status: string }>('query-status')).status;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-rf-'));
    vm = new QemuVm({ name: 'rf-0', dir, memoryMiB: 128, nics: [{ mac: '52:54:00:00:00:22' }], disk: { sizeBytes: 16 << 20 } });
    await vm.start();
    m = new QemuMachine(vm);
    bmc = new RedfishServer({ machines: new Map([['rf-0', m]]), username: 'admin', password: 'lab-password' });
    base = `http://127.0.0.1:${await bmc.listen(0, '127.0.0.1')}`;
  });
  after(async () => {
    await bmc?.close();
    await vm?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Reset actions and PowerState reach qemu; Boot override sets the bootindex', async () => {
    const systems = await call('GET', '/redfish/v1/Systems');
    const sys = systems.Members[0]['@odata.id'] as string;
    assert.equal((await call('GET', sys)).PowerState, 'Off');
    const reset = (await call('GET', sys)).Actions['#ComputerSystem.Reset'].target as string;
    await call('POST', reset, { ResetType: 'On' });
    assert.equal(await status(), 'running');
    assert.equal((await call('GET', sys)).PowerState, 'On');
    await call('POST', reset, { ResetType: 'ForceOff' });
    assert.equal(await status(), 'prelaunch');
    await call('PATCH', sys, { Boot: { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' } });
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await call('PATCH', sys, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } });
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    await call('POST', reset, { ResetType: 'On' });
    // Used by that boot; the disk order comes back for the next one.
    assert.equal((await call('GET', sys)).Boot.BootSourceOverrideEnabled, 'Disabled');
    await call('POST', reset, { ResetType: 'ForceRestart' });
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await call('POST', reset, { ResetType: 'ForceOff' });
  });
});
