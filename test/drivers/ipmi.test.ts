import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipmiManagement, ipmiPower, parseIpmiDriverInfo, resetIpmiNegotiation } from '../../src/drivers/ipmi.js';
import { getInterface, secretProperties } from '../../src/drivers/registry.js';
import { DriverError, type DriverNode, type Task } from '../../src/drivers/interfaces.js';
import { Logger } from '../../src/util/log.js';
import { IpmiServer, closeIpmiSessions } from '../../src/protocols/ipmi/index.js';
import { SimMachine } from '../../src/lab/sim-machine.js';
import { freeUdpPort } from '../protocols/ipmi/peers.js';

function task(driver_info: Record<string, unknown>, extra: Partial<DriverNode> = {}): Task & { node: DriverNode } {
  const node: DriverNode = {
    uuid: '0b4c6a52-2f5e-4f8e-9d55-1f0f0f0f0f0f', name: 'n', driver: 'ipmi', driver_info, driver_internal_info: {}, instance_info: {},
    properties: {}, extra: {}, provision_state: 'enroll', power_state: null, boot_mode: null, resource_class: null, traits: [], ...extra,
  };
  return {
    node, ports: [], log: new Logger('test'), signal: new AbortController().signal,
    async update(c) { if (c.driver_internal_info) node.driver_internal_info = { ...node.driver_internal_info, ...c.driver_internal_info }; },
    async event() { /* not needed */ },
  };
}

test('registered as ipmi with the ipmitool alias; the password is secret', () => {
  assert.equal(getInterface('power', 'ipmi'), ipmiPower);
  assert.equal(getInterface('power', 'ipmitool'), ipmiPower);
  assert.equal(getInterface('management', 'ipmitool'), ipmiManagement);
  assert.ok(secretProperties().has('ipmi_password'));
  assert.ok(ipmiPower.properties.ipmi_address!.required);
});

test('driver_info validation names the bad field', () => {
  const bad = (di: Record<string, unknown>, re: RegExp, code: string) => assert.throws(() => parseIpmiDriverInfo({ driver_info: di }), (e: DriverError) => e instanceof DriverError && re.test(e.message) && e.code === code);
  bad({}, /ipmi_address is required/, 'missing_parameter');
  bad({ ipmi_address: '10.0.0.1', ipmi_port: 'x' }, /ipmi_port must be an integer/, 'invalid_parameter');
  bad({ ipmi_address: '10.0.0.1', ipmi_cipher_suite: 42 }, /ipmi_cipher_suite 42 is not supported/, 'invalid_parameter');
  bad({ ipmi_address: '10.0.0.1', ipmi_priv_level: 'ROOT' }, /ipmi_priv_level must be one of/, 'invalid_parameter');
  bad({ ipmi_address: '10.0.0.1', ipmi_protocol_version: '1.5' }, /only IPMI 2.0/, 'invalid_parameter');
  bad({ ipmi_address: '10.0.0.1', ipmi_password: 'x'.repeat(21) }, /at most 20 bytes/, 'invalid_parameter');
  bad({ ipmi_address: '10.0.0.1', ipmi_force_boot_device: 'maybe' }, /ipmi_force_boot_device must be true or false/, 'invalid_parameter');
  const ok = parseIpmiDriverInfo({ driver_info: { ipmi_address: '10.0.0.1', ipmi_priv_level: 'operator', ipmi_cipher_suite: '17' } });
  assert.deepEqual([ok.port, ok.privilege, ok.cipherSuite, ok.username], [623, 3, 17, '']);
});

test('power and management through a virtual BMC', async () => {
  const machine = new SimMachine({ name: 'm' });
  const server = new IpmiServer({ backend: machine, users: [{ name: 'admin', password: 'password' }] });
  const port = await server.listen(0);
  try {
    resetIpmiNegotiation();
    const t = task({ ipmi_address: '127.0.0.1', ipmi_port: port, ipmi_username: 'admin', ipmi_password: 'password' });
    await ipmiPower.validate(t);
    assert.equal(await ipmiPower.getPowerState(t), 'power off');
    await ipmiPower.setPowerState(t, 'power on');
    assert.equal(await machine.powerState(), 'on');
    await ipmiManagement.setBootDevice(t, 'pxe', false);
    assert.deepEqual(await machine.bootOverride(), { device: 'pxe', persistent: false, mode: 'bios' });
    assert.deepEqual(await ipmiManagement.getBootDevice(t), { boot_device: 'pxe', persistent: false });
    const boots = machine.boots;
    await ipmiPower.reboot(t);
    assert.equal(machine.boots, boots + 1);
    assert.equal(machine.lastBootDevice, 'pxe');
    assert.deepEqual(await ipmiManagement.getBootDevice(t), { boot_device: null, persistent: null }, 'a one-time override is used up');
    await ipmiPower.setPowerState(t, 'soft power off');
    assert.equal(await ipmiPower.getPowerState(t), 'power off');
    // UEFI nodes get the EFI bit; "safe" is the hard-drive-safe selector.
    const u = task({ ipmi_address: '127.0.0.1', ipmi_port: port, ipmi_username: 'admin', ipmi_password: 'password', ipmi_cipher_suite: 3 }, { boot_mode: 'uefi' });
    await ipmiManagement.setBootDevice(u, 'safe', true);
    assert.deepEqual(await machine.bootOverride(), { device: 'disk', persistent: true, mode: 'uefi' });
    assert.deepEqual(await ipmiManagement.getBootDevice(u), { boot_device: 'safe', persistent: true });
    // Forced boot device: written again before each power on.
    const f = task({ ipmi_address: '127.0.0.1', ipmi_port: port, ipmi_username: 'admin', ipmi_password: 'password', ipmi_force_boot_device: true });
    await ipmiManagement.setBootDevice(f, 'cdrom', false);
    await machine.setBootOverride({ device: 'none', persistent: false, mode: 'bios' });
    await ipmiPower.setPowerState(f, 'power on');
    assert.equal(machine.lastBootDevice, 'cdrom');
    assert.deepEqual(await ipmiManagement.getBootDevice(f), { boot_device: 'cdrom', persistent: false });
    // Wrong credentials: a clear bmc_error from validate, the password never in the message.
    const w = task({ ipmi_address: '127.0.0.1', ipmi_port: port, ipmi_username: 'admin', ipmi_password: 'hunter22', ipmi_timeout: 1 });
    await assert.rejects(ipmiPower.validate(w), (e: DriverError) => e.code === 'bmc_error' && /rejected the password for user 'admin'/.test(e.message) && !e.message.includes('hunter22'));
    const n = task({ ipmi_address: '127.0.0.1', ipmi_port: port, ipmi_username: 'root', ipmi_password: 'x', ipmi_timeout: 1 });
    await assert.rejects(ipmiPower.getPowerState(n), (e: DriverError) => e.code === 'bmc_error' && /does not know user 'root'/.test(e.message));
  } finally {
    await closeIpmiSessions();
    await server.close();
  }
});

test('a BMC that does not answer gives a timeout error within ipmi_timeout', async () => {
  resetIpmiNegotiation();
  const t = task({ ipmi_address: '127.0.0.1', ipmi_port: await freeUdpPort(), ipmi_username: 'admin', ipmi_password: 'p', ipmi_timeout: 1 });
  const t0 = Date.now();
  await assert.rejects(ipmiPower.validate(t), (e: DriverError) => e.code === 'timeout' && /did not answer/.test(e.message) && /ipmi_address/.test(e.message));
  assert.ok(Date.now() - t0 < 1500);
  await closeIpmiSessions();
});
