import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { closeRedfishClients, parseRedfishDriverInfo, redfishManagement, redfishPower } from '../../src/drivers/redfish.js';
import { getInterface, secretProperties } from '../../src/drivers/registry.js';
import { DriverError, type DriverNode, type Task } from '../../src/drivers/interfaces.js';
import { Logger } from '../../src/util/log.js';
import { startBmc } from '../protocols/redfish/fixtures.js';

function task(driver_info: Record<string, unknown>, extra: Partial<DriverNode> = {}): Task & { node: DriverNode } {
  const node: DriverNode = {
    uuid: '6a1f3c52-2f5e-4f8e-9d55-1f0f0f0f0f0f', name: 'n', driver: 'redfish', driver_info, driver_internal_info: {}, instance_info: {},
    properties: {}, extra: {}, provision_state: 'enroll', power_state: null, boot_mode: null, resource_class: null, traits: [], ...extra,
  };
  return {
    node, ports: [], log: new Logger('test'), signal: new AbortController().signal,
    async update() { /* not needed */ },
    async event() { /* not needed */ },
  };
}

test('registered as redfish; the password is secret', () => {
  assert.equal(getInterface('power', 'redfish'), redfishPower);
  assert.equal(getInterface('management', 'redfish'), redfishManagement);
  assert.ok(secretProperties().has('redfish_password'));
  assert.ok(redfishPower.properties.redfish_address!.required);
});

test('driver_info: address forms, defaults, and errors naming the field', () => {
  const p = (di: Record<string, unknown>) => parseRedfishDriverInfo({ driver_info: di });
  assert.equal(p({ redfish_address: '10.0.0.1' }).address, 'https://10.0.0.1');
  assert.equal(p({ redfish_address: '10.0.0.1:8443' }).address, 'https://10.0.0.1:8443');
  assert.equal(p({ redfish_address: 'http://bmc.example:8000/' }).address, 'http://bmc.example:8000');
  assert.equal(p({ redfish_address: '[fd00::5]:443' }).address, 'https://[fd00::5]');
  const d = p({ redfish_address: 'bmc' });
  assert.deepEqual([d.verify, d.authType, d.timeoutMs, d.systemId], [true, 'auto', 10000, undefined]);
  assert.equal(p({ redfish_address: 'bmc', redfish_verify_ca: 'False' }).verify, false);
  assert.equal(p({ redfish_address: 'bmc', redfish_verify_ca: '/etc/ssl/bmc-ca.pem' }).verify, '/etc/ssl/bmc-ca.pem');
  assert.equal(p({ redfish_address: 'bmc', redfish_auth_type: 'Basic' }).authType, 'basic');
  const bad = (di: Record<string, unknown>, re: RegExp, code: string) => assert.throws(() => p(di), (e: DriverError) => e instanceof DriverError && re.test(e.message) && e.code === code);
  bad({}, /redfish_address is required/, 'missing_parameter');
  bad({ redfish_address: 'ftp://bmc' }, /must use http or https/, 'invalid_parameter');
  bad({ redfish_address: 'a b' }, /redfish_address must be/, 'invalid_parameter');
  bad({ redfish_address: 'bmc', redfish_verify_ca: 'maybe' }, /redfish_verify_ca must be true, false or the absolute path/, 'invalid_parameter');
  bad({ redfish_address: 'bmc', redfish_auth_type: 'kerberos' }, /redfish_auth_type must be auto, session or basic/, 'invalid_parameter');
  bad({ redfish_address: 'bmc', redfish_system_id: 5 }, /redfish_system_id must be a resource path/, 'invalid_parameter');
  bad({ redfish_address: 'bmc', redfish_timeout: -1 }, /redfish_timeout/, 'invalid_parameter');
});

test('power and management through our Redfish server', async () => {
  const bmc = await startBmc(['a', 'b']);
  try {
    const m = bmc.machines.get('b')!;
    const t = task({ redfish_address: bmc.url, redfish_system_id: '/redfish/v1/Systems/b', redfish_username: 'admin', redfish_password: 'secret' });
    await redfishPower.validate(t);
    await redfishManagement.validate(t);
    assert.equal(await redfishPower.getPowerState(t), 'power off');
    await redfishManagement.setBootDevice(t, 'pxe', false);
    assert.deepEqual(await m.bootOverride(), { device: 'pxe', persistent: false, mode: 'bios' });
    assert.deepEqual(await redfishManagement.getBootDevice(t), { boot_device: 'pxe', persistent: false });
    await redfishPower.setPowerState(t, 'power on');
    assert.equal(await m.powerState(), 'on');
    assert.equal(m.lastBootDevice, 'pxe');
    assert.deepEqual(await redfishManagement.getBootDevice(t), { boot_device: null, persistent: null });
    const uefi = task({ ...t.node.driver_info }, { boot_mode: 'uefi' });
    await redfishManagement.setBootDevice(uefi, 'disk', true);
    assert.deepEqual(await m.bootOverride(), { device: 'disk', persistent: true, mode: 'uefi' });
    assert.deepEqual(await redfishManagement.getBootDevice(t), { boot_device: 'disk', persistent: true });
    const boots = m.boots;
    await redfishPower.reboot(t);
    assert.equal(m.boots, boots + 1);
    await redfishPower.reboot(t, true);
    assert.equal(m.boots, boots + 2);
    await redfishPower.setPowerState(t, 'soft power off');
    assert.equal(await redfishPower.getPowerState(t), 'power off');
    await redfishPower.reboot(t);
    assert.equal(await m.powerState(), 'on');
    await redfishPower.setPowerState(t, 'power off');
    assert.equal(await m.powerState(), 'off');
    assert.equal(await bmc.machines.get('a')!.powerState(), 'off');
    await assert.rejects(redfishManagement.setBootDevice(t, 'safe', false), (e: DriverError) => e.code === 'invalid_parameter' && /'safe' is not supported/.test(e.message));
    // Basic authentication and an address without the scheme default (given explicitly here).
    const basic = task({ ...t.node.driver_info, redfish_auth_type: 'basic' });
    assert.equal(await redfishPower.getPowerState(basic), 'power off');
  } finally { await closeRedfishClients(); await bmc.close(); }
});

test('validate: system id needed with several systems; found alone with one; clear errors', async () => {
  const two = await startBmc(['a', 'b']);
  const one = await startBmc(['only']);
  try {
    const creds = { redfish_username: 'admin', redfish_password: 'secret' };
    await assert.rejects(redfishPower.validate(task({ redfish_address: two.url, ...creds })),
      (e: DriverError) => e.code === 'bmc_error' && /has 2 systems/.test(e.message) && /redfish_system_id/.test(e.message));
    const alone = task({ redfish_address: one.url, ...creds });
    await redfishPower.validate(alone);
    await redfishPower.setPowerState(alone, 'power on');
    assert.equal(await one.machines.get('only')!.powerState(), 'on');
    await assert.rejects(redfishPower.validate(task({ redfish_address: two.url, redfish_system_id: '/redfish/v1/Systems/zz', ...creds })),
      (e: DriverError) => e.code === 'bmc_error' && /HTTP 404/.test(e.message) && /Systems\/zz/.test(e.message));
    await assert.rejects(redfishPower.validate(task({ redfish_address: two.url, redfish_system_id: '/redfish/v1/Systems/a', redfish_username: 'admin', redfish_password: 'nope' })),
      (e: DriverError) => e.code === 'bmc_error' && /authentication failed/.test(e.message) && !e.message.includes('nope'));
    await assert.rejects(redfishPower.validate(task({})), (e: DriverError) => e.code === 'missing_parameter');
  } finally { await closeRedfishClients(); await two.close(); await one.close(); }
});

test('a dead BMC: timeout or bmc_error within the timeout, never a hang', async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  const t = task({ redfish_address: `http://127.0.0.1:${port}`, redfish_username: 'admin', redfish_password: 'x', redfish_timeout: 1 });
  const t0 = Date.now();
  await assert.rejects(redfishPower.getPowerState(t), (e: DriverError) => e.code === 'bmc_error' && /cannot reach the BMC/.test(e.message) && /ECONNREFUSED/.test(e.message));
  assert.ok(Date.now() - t0 < 1500);
  const silent = createServer((s) => { s.resume(); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const ts = task({ redfish_address: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, redfish_username: 'admin', redfish_password: 'x', redfish_timeout: 0.5 });
  await assert.rejects(redfishPower.validate(ts), (e: DriverError) => e.code === 'timeout' && /within 500 ms/.test(e.message));
  await closeRedfishClients();
  await new Promise((r) => silent.close(r));
});
