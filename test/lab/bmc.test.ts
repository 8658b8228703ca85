/**
 * A lab machine behind a virtual BMC: ipmitool (lanplus) -> IpmiServer -> QemuMachine -> QMP ->
 * qemu. Power and boot device changes made through IPMI are visible in qemu itself.
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
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await ipmitool('chassis', 'power', 'off');
  });
});
