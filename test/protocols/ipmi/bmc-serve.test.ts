/**
 * `ooo bmc serve` as a process: prints the inventory, serves IPMI on consecutive ports, stops on
 * SIGTERM. (Run through the command's spec so it does not depend on the CLI's dispatcher.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { IpmiClient } from '../../../src/protocols/ipmi/index.js';
import { simMac, startVirtualBmcs } from '../../../src/cli/bmc.js';
import { freeUdpPort } from './peers.js';

const BMC_JS = fileURLToPath(new URL('../../../src/cli/bmc.js', import.meta.url));
const ARGS_JS = fileURLToPath(new URL('../../../src/cli/args.js', import.meta.url));

test('bmc serve: inventory YAML, IPMI on P..P+N-1, SIGTERM stops it', async () => {
  const base = await freeUdpPort();
  const script = `
    const { commands } = await import(${JSON.stringify(BMC_JS)});
    const { parseArgs } = await import(${JSON.stringify(ARGS_JS)});
    const spec = commands.find((c) => c.path.join(' ') === 'bmc serve');
    process.exitCode = await spec.run(parseArgs(spec, process.argv.slice(1)));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', '--machines', '3', '--ipmi-port', String(base), '--redfish-port', '0', '--username', 'root', '--password', 'calvin'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  try {
    const t0 = Date.now();
    while (!/serving/.test(err) || !/sim-2/.test(out)) {
      if (Date.now() - t0 > 10000 || child.exitCode !== null) throw new Error(`bmc serve did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const inv = parse(out) as { nodes: { name: string; driver: string; driver_info: Record<string, unknown>; ports: { address: string }[] }[] };
    assert.equal(inv.nodes.length, 3);
    inv.nodes.forEach((n, i) => {
      assert.equal((n as unknown as { redfish: { redfish_system_id: string } }).redfish.redfish_system_id, `/redfish/v1/Systems/sim-${i}`);
      assert.equal(n.name, `sim-${i}`);
      assert.equal(n.driver, 'ipmi');
      assert.deepEqual(n.driver_info, { ipmi_address: '127.0.0.1', ipmi_port: base + i, ipmi_username: 'root', ipmi_password: 'calvin' });
      assert.deepEqual(n.ports, [{ address: simMac(i) }]);
    });
    const c = new IpmiClient({ host: '127.0.0.1', port: base + 2, username: 'root', password: 'calvin' });
    await c.powerOn();
    assert.equal(await c.powerState(), 'on');
    await c.close();
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, err);
});

test('virtual BMCs: deterministic MACs and a clear error when a port is taken', async () => {
  assert.equal(simMac(0), '52:54:00:00:00:00');
  assert.equal(simMac(258), '52:54:00:00:01:02');
  const a = await startVirtualBmcs({ machines: 2, ipmiPort: 0, redfishPort: null });
  try {
    const taken = a.inventory.nodes[0]!.driver_info.ipmi_port;
    await assert.rejects(startVirtualBmcs({ machines: 1, ipmiPort: taken, redfishPort: null }), new RegExp(`cannot listen for IPMI on UDP 127.0.0.1:${taken}: EADDRINUSE`));
  } finally { await a.close(); }
});

test('virtual BMCs with the Redfish server: systems listed in the inventory and served', async () => {
  const b = await startVirtualBmcs({ machines: 2, ipmiPort: 0, redfishPort: 0, username: 'admin', password: 'pw' });
  try {
    const rf = b.inventory.nodes[1]!.redfish!;
    assert.equal(rf.redfish_system_id, '/redfish/v1/Systems/sim-1');
    const r = await fetch(`${rf.redfish_address}${rf.redfish_system_id}`, { headers: { authorization: `Basic ${Buffer.from('admin:pw').toString('base64')}` } });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { Id: string }).Id, 'sim-1');
  } finally { await b.close(); }
});
