/**
 * Real peers: ipmitool and freeipmi against our virtual BMC; our client against OpenIPMI's ipmi_sim.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IpmiClient, IpmiServer, closeIpmiSessions } from '../../../src/protocols/ipmi/index.js';
import { ipmiManagement, ipmiPower, resetIpmiNegotiation } from '../../../src/drivers/ipmi.js';
import type { DriverNode, Task } from '../../../src/drivers/interfaces.js';
import { Logger } from '../../../src/util/log.js';
import { SimMachine } from '../../../src/lab/sim-machine.js';
import { freeipmi, ipmitool, missing, startIpmiSim } from './peers.js';

async function bmc() {
  const machine = new SimMachine({ name: 'm0', uuid: '6e5b0ba2-34d9-4d2c-9c87-5a8b0f9c2a11' });
  const server = new IpmiServer({ backend: machine, users: [{ name: 'admin', password: 'password' }] });
  const port = await server.listen(0, '127.0.0.1');
  return { machine, server, port };
}

for (const suite of [undefined, 3, 17]) {
  const label = suite === undefined ? 'default cipher negotiation' : `-C ${suite}`;
  test(`ipmitool -I lanplus (${label}) against our BMC`, { skip: missing('ipmitool') }, async () => {
    const { machine, server, port } = await bmc();
    try {
      const t = async (args: string[], expect: RegExp) => {
        const r = await ipmitool(port, args, { suite });
        assert.equal(r.code, 0, `ipmitool ${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stdout, expect);
        assert.ok(r.ms < 3000, `ipmitool ${args.join(' ')} took ${r.ms} ms (a stall?)`);
        return r;
      };
      await t(['chassis', 'power', 'status'], /Chassis Power is off/);
      await t(['chassis', 'power', 'on'], /Up\/On/);
      assert.equal(await machine.powerState(), 'on');
      await t(['chassis', 'power', 'status'], /Chassis Power is on/);
      let boots = machine.boots;
      await t(['chassis', 'power', 'cycle'], /Cycle/);
      assert.equal(machine.boots, boots + 1);
      boots = machine.boots;
      await t(['chassis', 'power', 'reset'], /Reset/);
      assert.equal(machine.boots, boots + 1);
      await t(['chassis', 'power', 'off'], /Down\/Off/);
      assert.equal(await machine.powerState(), 'off');
      await t(['chassis', 'bootdev', 'pxe'], /Set Boot Device to pxe/);
      assert.deepEqual(await machine.bootOverride(), { device: 'pxe', persistent: false, mode: 'bios' });
      await t(['chassis', 'bootparam', 'get', '5'], /Boot Flag Valid[\s\S]*Force PXE/);
      await t(['chassis', 'bootdev', 'disk', 'options=persistent,efiboot'], /Set Boot Device to disk/);
      assert.deepEqual(await machine.bootOverride(), { device: 'disk', persistent: true, mode: 'uefi' });
      await t(['mc', 'info'], /IPMI Version\s*:\s*2\.0/);
      const bad = await ipmitool(port, ['chassis', 'power', 'status'], { suite, password: 'wrong' });
      assert.notEqual(bad.code, 0);
    } finally { await server.close(); }
  });
}

test('freeipmi ipmipower and ipmi-chassis against our BMC', { skip: missing('ipmipower', 'ipmi-chassis') }, async () => {
  const { machine, server, port } = await bmc();
  try {
    const p = async (arg: string, expect: RegExp) => {
      const r = await freeipmi('ipmipower', port, [arg]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, expect, `ipmipower ${arg}`);
    };
    await p('--stat', /127\.0\.0\.1: off/);
    await p('--on', /127\.0\.0\.1: ok/);
    assert.equal(await machine.powerState(), 'on');
    await p('--stat', /127\.0\.0\.1: on/);
    let boots = machine.boots;
    await p('--cycle', /ok/);
    assert.equal(machine.boots, boots + 1);
    boots = machine.boots;
    await p('--reset', /ok/);
    assert.equal(machine.boots, boots + 1);
    await p('--off', /ok/);
    assert.equal(await machine.powerState(), 'off');
    const st = await freeipmi('ipmi-chassis', port, ['--get-status']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /System Power\s*:\s*off/);
    const on = await freeipmi('ipmi-chassis', port, ['--chassis-control=power-up']);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(await machine.powerState(), 'on');
    if (!missing('ipmi-chassis-config')) {
      const bd = await freeipmi('ipmi-chassis-config', port, ['--commit', '-e', 'Chassis_Boot_Flags:Boot_Device=PXE']);
      assert.equal(bd.code, 0, bd.stderr + bd.stdout);
      assert.equal((await machine.bootOverride()).device, 'pxe');
      const gb = await freeipmi('ipmi-chassis-config', port, ['--checkout', '-S', 'Chassis_Boot_Flags']);
      assert.equal(gb.code, 0, gb.stderr);
      assert.match(gb.stdout, /Boot_Device\s+PXE/);
    }
    const bad = await freeipmi('ipmipower', port, ['--stat'], { password: 'wrong' });
    assert.match(bad.stdout + bad.stderr, /password invalid|authentication/i);
  } finally { await server.close(); }
});

test('our client against OpenIPMI ipmi_sim, cipher suite 3', { skip: missing('ipmi_sim') }, async () => {
  const sim = await startIpmiSim({ chassis: true });
  try {
    const c = new IpmiClient({ host: '127.0.0.1', port: sim.port, username: 'admin', password: 'password', cipherSuite: 3 });
    assert.ok((await c.getChannelCipherSuites()).includes(3));
    assert.equal(await c.powerState(), 'off');
    await c.powerOn();
    assert.equal(sim.power(), 'on');
    assert.equal(await c.powerState(), 'on');
    await c.powerCycle();
    assert.ok(sim.calls().some((l) => /set power 0/.test(l)), 'power cycle turned it off first');
    await c.powerOff();
    assert.equal(sim.power(), 'off');
    assert.equal(await c.powerState(), 'off');
    await c.setBootDevice({ device: 'pxe' });
    assert.equal(sim.boot(), 'pxe');
    assert.equal((await c.getBootFlags()).device, 'pxe');
    await c.setBootDevice({ device: 'disk', persistent: true });
    assert.equal(sim.boot(), 'default');
    assert.equal((await c.getBootFlags()).device, 'disk');
    assert.equal((await c.deviceId()).ipmiVersion, '2.0');
    await c.close();
    const bad = new IpmiClient({ host: '127.0.0.1', port: sim.port, username: 'admin', password: 'nope', timeoutMs: 1000 });
    await assert.rejects(bad.powerState(), /rejected the password/);
    await bad.close();
    const nobody = new IpmiClient({ host: '127.0.0.1', port: sim.port, username: 'nobody', password: 'password', timeoutMs: 1000 });
    await assert.rejects(nobody.powerState(), /does not know user 'nobody'|RAKP 2 status/);
    await nobody.close();
  } finally { await sim.stop(); }
});

test('the ipmi driver against ipmi_sim (cipher suite negotiated)', { skip: missing('ipmi_sim') }, async () => {
  const sim = await startIpmiSim({ chassis: true });
  try {
    resetIpmiNegotiation();
    const node = {
      uuid: 'u', name: 'n', driver: 'ipmi', driver_info: { ipmi_address: '127.0.0.1', ipmi_port: sim.port, ipmi_username: 'admin', ipmi_password: 'password' },
      driver_internal_info: {}, instance_info: {}, properties: {}, extra: {}, provision_state: 'enroll', power_state: null, boot_mode: null, resource_class: null, traits: [],
    } as DriverNode;
    const task: Task = { node, ports: [], log: new Logger('test'), signal: new AbortController().signal, async update() { /* unused */ }, async event() { /* unused */ } };
    await ipmiPower.validate(task);
    await ipmiManagement.setBootDevice(task, 'pxe', false);
    assert.equal(sim.boot(), 'pxe');
    await ipmiPower.setPowerState(task, 'power on', 10);
    assert.equal(sim.power(), 'on');
    assert.equal(await ipmiPower.getPowerState(task), 'power on');
    await ipmiPower.setPowerState(task, 'power off', 10);
    assert.equal(await ipmiPower.getPowerState(task), 'power off');
  } finally {
    await closeIpmiSessions();
    await sim.stop();
  }
});
