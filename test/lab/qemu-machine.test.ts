/**
 * QMP client and QemuMachine against a real qemu (TCG): power states, soft power off, reset,
 * boot device by bootindex (persistent and once). No guest OS is needed: every state change is
 * visible through QMP.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuVm, detectAccel, qemuArgs } from '../../src/lab/vm.js';
import { QemuMachine } from '../../src/lab/qemu-machine.js';
import { QmpClient, QmpError } from '../../src/lab/qmp.js';
import { which } from '../../src/images/builder/exec.js';
import { acpiInitramfs, findKernel } from './helpers.js';

const skip = which('qemu-system-x86_64') ? false : 'not installed: qemu-system-x86_64 (see scripts/packages/lab.txt)';

test('qemu command line: paused, no shutdown, QMP, serial file, network then disk', () => {
  const a = qemuArgs({ name: 'n0', dir: '/x', uuid: 'u', nics: [{ mac: '52:54:00:AA:00:01', tap: 'tap0' }, { mac: '52:54:00:aa:00:02', tap: 'tap1' }], disk: { sizeBytes: 1 } }, 'tcg', { qmp: '/x/q', serial: '/x/s', disk: '/x/d' });
  const s = a.join(' ');
  for (const want of ['-S', '-no-shutdown', '-nographic', '-monitor none', '-accel tcg', '-serial file:/x/s', '-qmp unix:/x/q,server=on,wait=off']) assert.ok(s.includes(want), `missing ${want} in ${s}`);
  assert.ok(s.includes('tap,id=net0,ifname=tap0,script=no,downscript=no'));
  assert.ok(s.includes('virtio-net-pci,netdev=net0,mac=52:54:00:aa:00:01,id=nic0,bootindex=1'));
  assert.ok(s.includes('virtio-net-pci,netdev=net1,mac=52:54:00:aa:00:02,id=nic1 ') || s.endsWith('id=nic1'), s);
  assert.ok(s.includes('virtio-blk-pci,drive=disk0-fmt,id=disk0,bootindex=2'));
  assert.throws(() => qemuArgs({ name: 'n', dir: '/x', uuid: 'u', nics: [{ mac: 'zz' }] }, 'tcg', { qmp: 'q', serial: 's' }), /invalid MAC 'zz'/);
});

describe('QemuMachine over QMP', { skip }, () => {
  let dir: string;
  let vm: QemuVm;
  let m: QemuMachine;
  const logs: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-qmp-'));
    vm = new QemuVm({ name: 'qmp-test', dir, memoryMiB: 128, nics: [{ mac: '52:54:00:00:00:11' }], disk: { sizeBytes: 64 * 1024 * 1024, format: 'raw' }, log: (l) => logs.push(l) });
    await vm.start();
    m = new QemuMachine(vm);
  });
  after(async () => {
    await vm?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('accelerator detected once and logged', async () => {
    const a = await detectAccel();
    assert.ok(a.accel === 'tcg' || a.accel === 'kvm');
    assert.ok(logs.some((l) => l.includes(`accelerator ${a.accel}`)), logs.join('\n'));
  });

  test('sparse disk of the configured size', () => {
    const st = statSync(vm.diskPath!);
    assert.equal(st.size, 64 * 1024 * 1024);
    assert.ok(st.blocks * 512 < 1024 * 1024, 'sparse');
  });

  test('QMP greeting, ids, error answers', async () => {
    assert.ok(vm.qmp.greeting?.QMP.version.qemu.major! >= 7);
    const [a, b] = await Promise.all([vm.qmp.execute<{ status: string }>('query-status'), vm.qmp.execute<any[]>('query-cpus-fast')]);
    assert.equal(a.status, 'prelaunch');
    assert.equal(b.length, 1);
    await assert.rejects(vm.qmp.execute('no-such-command'), (e: QmpError) => e.errorClass === 'CommandNotFound');
  });

  test('starts off (prelaunch); power on runs it; hard off returns to prelaunch', async () => {
    assert.equal(await m.powerState(), 'off');
    await m.powerOn();
    assert.equal(await m.status(), 'running');
    assert.equal(await m.powerState(), 'on');
    await m.powerOn(); // idempotent
    await m.powerOff();
    assert.equal(await m.status(), 'prelaunch');
    assert.equal(await m.powerState(), 'off');
    await m.powerOff(); // idempotent
  });

  test('reset emits RESET and keeps running; power cycle from off turns it on', async () => {
    await m.powerOn();
    const ev = vm.qmp.waitEvent('RESET', 5000);
    const boots = m.boots;
    await m.reset();
    await ev;
    assert.equal(await m.status(), 'running');
    assert.equal(m.boots, boots + 1);
    await m.powerOff();
    await m.powerCycle();
    assert.equal(await m.status(), 'running');
  });

  test('stopped counts as off; power on then resets and runs', async () => {
    // (The guest powering itself off, status shutdown, is covered by the PXE boot test.)
    await m.powerOn();
    await m.softPowerOff(); // accepted; SeaBIOS/iPXE ignore the button
    await vm.qmp.execute('stop');
    assert.equal(await m.powerState(), 'off');
    await m.powerOn();
    assert.equal(await m.status(), 'running');
  });

  test('concurrent requests run one at a time, in order', async () => {
    await Promise.all([m.powerOn(), m.powerOff(), m.powerOn(), m.reset()]);
    assert.equal(await m.status(), 'running');
    await Promise.all([m.powerOff(), m.powerCycle(), m.powerOff()]);
    assert.equal(await m.status(), 'prelaunch');
  });

  test('boot device: persistent disk, once pxe consumed by one boot', async () => {
    await m.powerOff();
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    await m.setBootOverride({ device: 'disk', persistent: true, mode: 'bios' });
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await m.setBootOverride({ device: 'pxe', persistent: false, mode: 'bios' });
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    assert.equal((await m.bootOverride()).device, 'pxe');
    await m.powerOn();
    // That boot used pxe (the firmware reads the order while it starts: it stays until the next boot).
    assert.equal((await m.bootOverride()).device, 'none');
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    await m.powerOff();
    await m.powerOn();
    // The next boot goes back to disk.
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await m.setBootOverride({ device: 'none', persistent: true, mode: 'bios' });
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    await m.powerOff();
  });

  test('QMP: connection error names the socket', async () => {
    await assert.rejects(QmpClient.connect(join(dir, 'nope.qmp'), { timeoutMs: 200 }), /cannot connect to QMP socket .*nope\.qmp/);
  });

  test('shutdown quits qemu; QMP calls then fail clearly', async () => {
    await vm.shutdown();
    assert.equal(vm.running, false);
    await assert.rejects(m.powerState(), /qemu is not running/);
  });
});

describe('QemuMachine with a guest OS', { skip }, () => {
  let dir: string;
  let vm: QemuVm | undefined;
  after(async () => { await vm?.kill(); if (dir) rmSync(dir, { recursive: true, force: true }); });

  test('soft power off: the guest handles the ACPI power button; power on again after it', async (t) => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-acpi-'));
    const kernel = findKernel();
    const initrd = kernel && (await acpiInitramfs(dir, kernel, 'OOO-ACPI-READY'));
    if (!kernel || !initrd) { t.skip('no Debian kernel with button.ko/evdev.ko (image builder cache or apt-get download linux-image-6.1.0-*-amd64)'); return; }
    vm = new QemuVm({ name: 'acpi', dir, memoryMiB: 256, kernel: { kernel, initrd, append: 'console=ttyS0 quiet' } });
    await vm.start();
    const m = new QemuMachine(vm);
    await m.powerOn();
    await vm.waitForSerial('OOO-ACPI-READY', 60_000);
    const down = vm.qmp.waitEvent('SHUTDOWN', 30_000);
    await m.softPowerOff();
    const ev = await down;
    assert.equal(ev.data?.guest, true);
    assert.match(vm.serial(), /power button pressed/);
    assert.equal(await m.status(), 'shutdown');
    assert.equal(await m.powerState(), 'off');
    const before = vm.serial().split('OOO-ACPI-READY').length;
    await m.powerOn();
    assert.equal(await m.status(), 'running');
    const deadline = Date.now() + 60_000;
    while (vm.serial().split('OOO-ACPI-READY').length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(vm.serial().split('OOO-ACPI-READY').length, before + 1, 'booted again');
    await vm.waitForSerial(/OOO-ACPI-READY[\s\S]*OOO-ACPI-READY/, 5000);
    // A clean shutdown of the VM: the guest powers off first, then qemu quits.
    await vm.shutdown(5000, 30_000);
    assert.equal(vm.running, false);
    assert.equal(vm.serial().split('power button pressed').length, 3);
  });

  test('a one-time boot device is consumed by a reboot the guest does itself', async (t) => {
    const kernel = findKernel();
    const initrd = kernel && (await acpiInitramfs(dir, kernel, 'OOO-ACPI-READY'));
    if (!kernel || !initrd) { t.skip('no Debian kernel with button.ko/evdev.ko'); return; }
    await vm?.kill();
    vm = new QemuVm({ name: 'reboot', dir, memoryMiB: 256, nics: [{ mac: '52:54:00:00:00:12' }], disk: { sizeBytes: 1 << 20 }, kernel: { kernel, initrd, append: 'console=ttyS0 quiet ooo.reboot' } });
    await vm.start();
    const m = new QemuMachine(vm);
    await m.setBootOverride({ device: 'disk', persistent: true, mode: 'bios' });
    await m.powerOn();
    await m.setBootOverride({ device: 'pxe', persistent: false, mode: 'bios' });
    assert.deepEqual(await m.bootIndexes(), { nic0: 1, disk0: 2 });
    await vm.qmp.waitEvent('RESET', 60_000, (e) => e.data?.guest === true);
    const deadline = Date.now() + 3000;
    while ((await m.bootOverride()).device !== 'none' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await m.bootOverride()).device, 'none');
    // The next boot is back on the persistent device.
    await m.powerOff();
    await m.powerOn();
    assert.deepEqual(await m.bootIndexes(), { nic0: 2, disk0: 1 });
    await m.powerOff();
  });
});
