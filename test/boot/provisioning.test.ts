/**
 * The seed's provisioning network: `--provisioning-interface` starts dnsmasq there with a static
 * lease for every enrolled PXE-enabled port (updated without restarting it), serves the seed on
 * the interface's address, hands that address to machines, and the `ipxe` boot interface makes
 * each node's iPXE script from its state. Wrong settings are refused with the reason.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabNetwork } from '../../src/lab/network.js';
import { startSeed } from '../../src/services/seed.js';
import { eventually, startTestSeed, TestSeed, waitState } from '../helpers/seed.js';
import { bootSkipReason } from '../lab/helpers.js';

const tag = (process.pid % 100000).toString(36);
const MAC = '52:54:00:0c:00:01';
const MAC2 = '52:54:00:0c:00:02';

const skip = bootSkipReason();

describe('provisioning network of the seed', { skip }, () => {
  let dir: string;
  let net: LabNetwork;
  let s: TestSeed;
  let machineBase = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-prov-'));
    chmodSync(dir, 0o755);
    net = new LabNetwork({ dir, namespace: `ooo-pv-${tag}`, hostInterface: `opv${tag}`, hostAddress: '198.51.100.1/26', hostAddress6: 'fd00:51::1/64' });
    net.create();
    s = await startTestSeed('sqlite', { provisioning: { interface: net.hostInterface } });
    await s.seed.provisioning!.ready;
    const port = new URL(s.url).port;
    machineBase = `http://198.51.100.1:${port}`;
  });
  after(async () => {
    await s?.stop();
    try { net?.destroy(); } catch (e) { console.error((e as Error).message); }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('machines reach the seed at the interface address, and are told so', async () => {
    const row = await s.seed.db.get<{ value: string }>("SELECT value FROM settings WHERE key = 'baremetal_url'");
    assert.equal(row?.value, `${machineBase}/baremetal`);
    const r = await fetch(`${machineBase}/`);
    assert.equal(r.status, 200);
    const chain = await (await fetch(`${machineBase}/boot.ipxe`)).text();
    assert.match(chain, /^#!ipxe/);
    assert.ok(chain.includes(`chain --autofree ${machineBase}/boot/\${mac:hexhyp}.ipxe`), chain);
  });

  test('every PXE-enabled port gets a stable static lease; deleted ports lose it; no dnsmasq restart', async () => {
    const pid = s.seed.provisioning!.server!.pid;
    const n = await s.bm('POST', '/v1/nodes', { name: 'pv-0', driver: 'fake-hardware', boot_interface: 'ipxe', deploy_interface: 'direct', inspect_interface: 'agent' });
    assert.equal(n.status, 201);
    const p1 = await s.bm('POST', '/v1/ports', { address: MAC, node_uuid: n.body.uuid });
    assert.equal(p1.status, 201);
    const hostsFile = s.seed.provisioning!.server!.hostsPath;
    await eventually(async () => existsSync(hostsFile) && readFileSync(hostsFile, 'utf8').includes(`${MAC},198.51.100.10,pv-0`), 5000, 'the port in the hosts file');
    const p2 = await s.bm('POST', '/v1/ports', { address: MAC2, node_uuid: n.body.uuid, pxe_enabled: false });
    assert.equal(p2.status, 201);
    await s.bm('DELETE', `/v1/ports/${p1.body.uuid}`);
    await eventually(async () => !readFileSync(hostsFile, 'utf8').includes(MAC), 5000, 'the deleted port gone from the hosts file');
    assert.ok(!readFileSync(hostsFile, 'utf8').includes(MAC2), 'a port with pxe_enabled false gets no lease');
    await s.bm('POST', '/v1/ports', { address: MAC, node_uuid: n.body.uuid });
    await eventually(async () => readFileSync(hostsFile, 'utf8').includes(`${MAC},198.51.100.10`), 5000, 'the port back with its address');
    assert.equal(s.seed.provisioning!.server!.pid, pid, 'dnsmasq was not restarted');
  });

  test('ipxe boot: no deploy ramdisk -> a clear error; with one, the node script boots it with a one-time token', async () => {
    await s.bm('PUT', '/v1/nodes/pv-0/states/provision', { target: 'manage' });
    await waitState(s, 'pv-0', 'manageable');
    // Nothing to boot yet: the script is absent (iPXE falls through to the next device).
    assert.equal((await fetch(`${machineBase}/boot/${MAC.replace(/:/g, '-')}.ipxe`)).status, 404);
    await s.bm('PUT', '/v1/nodes/pv-0/states/provision', { target: 'inspect' });
    const failed = await waitState(s, 'pv-0', 'inspect failed');
    assert.match(failed.last_error, /driver_info\.deploy_kernel is not set .*ooo-deploy-kernel.*ooo image build -t ramdisk/);

    const ids: Record<string, string> = {};
    for (const [name, fmt, data] of [['ooo-deploy-kernel', 'aki', 'KERNEL'], ['ooo-deploy-ramdisk', 'ari', 'INITRAMFS']] as const) {
      const img = await s.call('POST', '/image/v2/images', { name, disk_format: fmt, container_format: fmt });
      assert.equal(img.status, 201, JSON.stringify(img.body));
      const up = await fetch(`${s.url}/image/v2/images/${img.body.id}/file`, { method: 'PUT', headers: { 'X-Auth-Token': s.token, 'Content-Type': 'application/octet-stream' }, body: data });
      assert.equal(up.status, 204);
      ids[name] = img.body.id;
    }
    await s.bm('PUT', '/v1/nodes/pv-0/states/provision', { target: 'manage' });
    await waitState(s, 'pv-0', 'manageable');
    await s.bm('PUT', '/v1/nodes/pv-0/states/provision', { target: 'inspect' });
    await waitState(s, 'pv-0', 'inspect wait');
    const script = await (await fetch(`${machineBase}/boot/${MAC}.ipxe`)).text();
    const row = await s.seed.db.get<{ uuid: string; driver_internal_info: string }>("SELECT uuid, driver_internal_info FROM nodes WHERE name = 'pv-0'");
    const token = JSON.parse(row!.driver_internal_info).agent_secret_token;
    assert.ok(token && token.length >= 32);
    assert.ok(script.includes(`kernel --name kernel ${machineBase}/images/${ids['ooo-deploy-kernel']} initrd=initramfs`), script);
    assert.ok(script.includes(`initrd --name initramfs ${machineBase}/images/${ids['ooo-deploy-ramdisk']}`), script);
    assert.ok(script.includes(`ooo.api=${machineBase}/baremetal ooo.token=${token} ooo.node=${row!.uuid}`), script);
    // The kernel the script names is served to the machine.
    assert.equal(await (await fetch(`${machineBase}/images/${ids['ooo-deploy-kernel']}`)).text(), 'KERNEL');
    // The API never shows the token.
    const shown = await s.bm('GET', '/v1/nodes/pv-0');
    assert.ok(!JSON.stringify(shown.body).includes(token), 'token not in the API output');
    await s.bm('PUT', '/v1/nodes/pv-0/states/provision', { target: 'abort' });
    await waitState(s, 'pv-0', 'inspect failed');
  });

  test('bad settings are refused with the reason', async () => {
    const bad = async (provisioning: any) => {
      const d = mkdtempSync(join(tmpdir(), 'ooo-prov-bad-'));
      try {
        const seed = await startSeed({ dataDir: d, host: '127.0.0.1', port: 0, database: '', only: new Set(['api']), conductorGroup: '', adminPassword: 'x-12345678', provisioning });
        await seed.stop();
        return 'started';
      } catch (e) { return (e as Error).message; } finally { rmSync(d, { recursive: true, force: true }); }
    };
    assert.match(await bad({ interface: net.hostInterface, range: { start: '192.0.2.10', end: '192.0.2.20' } }), /DHCP range 192\.0\.2\.10-192\.0\.2\.20 is not inside the subnet of interface '.*' \(198\.51\.100\.1\/26\)/);
    assert.match(await bad({ interface: net.hostInterface, range: { start: '198.51.100.1', end: '198.51.100.20' } }), /contains the interface's own address 198\.51\.100\.1/);
    assert.match(await bad({ interface: 'bad name!' }), /not a valid interface name/);
  });
});
