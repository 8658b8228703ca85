/**
 * Real provisioning end to end, as an operator runs it: a seed with its provisioning network on
 * the lab's interface, `ooo lab up` (qemu VMs behind IPMI or Redfish BMCs), then manage ->
 * inspect -> provide -> deploy -> the deployed OS reports in -> undeploy, every boot a real
 * network boot (BMC power -> iPXE ROM -> seed DHCP -> iPXE script -> deploy ramdisk over HTTP).
 * Failure cases: wrong BMC credentials, BMC unreachable, image checksum mismatch, a ramdisk that
 * never calls back, the node powered off mid-deploy; each ends where the operator can retry.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, startTestSeed, TestSeed, waitState } from '../helpers/seed.js';
import { bootSkipReason, markerInitramfs } from '../lab/helpers.js';
import { markerElement } from '../images/helpers.js';

const OOO = join(process.cwd(), 'bin', 'ooo');
const MARKER = 'OOO-LAB-OS-UP';
const WAIT_TIMEOUT_S = 45;

const skip = bootSkipReason('qemu-system-x86_64', 'busybox', 'sfdisk', 'mke2fs', 'ipmitool')
  || (existsSync('/sys/class/net/ooo-prov') && 'the lab interface ooo-prov is in use (a lab is up: ooo lab down)');
if (skip) console.log(`# lab deploy tests skipped: ${skip}`);

describe('deploying lab machines through their BMCs', { skip }, () => {
  let s: TestSeed;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let labDir = '';
  const labDirs: string[] = [];
  let machineBase = '';
  const images: Record<string, { id: string; sha256: string; size: number }> = {};

  const ooo = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile(OOO, args, { env, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const upload = async (name: string, path: string, fmt: string) => {
    const data = readFileSync(path);
    const img = await s.call('POST', '/image/v2/images', { name, disk_format: fmt, container_format: fmt === 'raw' ? 'bare' : fmt });
    assert.equal(img.status, 201, JSON.stringify(img.body));
    const up = await fetch(`${s.url}/image/v2/images/${img.body.id}/file`, { method: 'PUT', headers: { 'X-Auth-Token': s.token, 'Content-Type': 'application/octet-stream' }, body: data });
    assert.equal(up.status, 204);
    images[name] = { id: img.body.id, sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  };
  const lab = () => JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8'));
  const serialOf = (node: string) => { const p = lab().nodes.find((n: any) => n.name === node)?.serial_log; return p && existsSync(p) ? readFileSync(p, 'latin1') : ''; };
  /** Waits for a state; on timeout the error carries the node's last_error and the end of its console. */
  const reach = async (node: string, state: string, ms = 240_000) => {
    try { return await waitState(s, node, state, ms); } catch (e) {
      const n = (await s.bm('GET', `/v1/nodes/${node}`)).body;
      throw new Error(`${(e as Error).message}; node is ${n.provision_state} (${n.last_error}); console:\n${serialOf(node).slice(-2500)}`);
    }
  };
  const provision = async (node: string, target: string, body: Record<string, unknown> = {}) => {
    const r = await s.bm('PUT', `/v1/nodes/${node}/states/provision`, { target, ...body });
    assert.equal(r.status, 202, JSON.stringify(r.body));
  };
  const labUp = async (driver: 'ipmi' | 'redfish') => {
    if (labDir) await ooo('lab', 'down', '--dir', labDir); // a previous test that failed half-way
    labDir = join(dir, `lab-${driver}`);
    labDirs.push(labDir);
    const r = await ooo('lab', 'up', '--nodes', '1', '--driver', driver, '--ipmi-port', '0', '--redfish-port', '0', '--dir', labDir);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await Promise.race([s.seed.provisioning!.ready, new Promise((_, rej) => setTimeout(() => rej(new Error('provisioning network not up 30 s after lab up')), 30_000))]);
    await eventually(async () => s.seed.provisioning!.hosts().some((h) => h.mac === lab().nodes[0].ports[0].address), 10_000, 'the lab MAC in the DHCP hosts');
  };
  const history = async (node: string) => (await s.bm('GET', `/v1/nodes/${node}/history`)).body.history.map((h: any) => h.event as string);
  const internal = async (node: string) => JSON.parse((await s.seed.db.get<{ driver_internal_info: string }>('SELECT driver_internal_info FROM nodes WHERE name = ?', [node]))!.driver_internal_info);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-labdeploy-'));
    chmodSync(dir, 0o755);
    execFileSync(OOO, ['image', 'build', '-t', 'ramdisk', '-o', join(dir, 'deploy'), 'busybox', 'deploy-ramdisk'], { stdio: 'ignore' });
    markerElement(join(dir, 'elements'), MARKER, { poweroff: false });
    execFileSync(OOO, ['image', 'build', '-t', 'raw', '-o', join(dir, 'os'), '--elements-path', join(dir, 'elements'), 'busybox', 'vm', 'config-agent', 'marker'], { stdio: 'ignore' });
    s = await startTestSeed('sqlite', { provisioning: { interface: 'ooo-prov' }, waitTimeoutS: WAIT_TIMEOUT_S });
    env = { ...process.env, OS_CLIENT_CONFIG_FILE: join(s.dataDir, 'clouds.yaml'), OS_CLOUD: 'ooo' };
    for (const k of Object.keys(env)) if (k.startsWith('OS_') && !['OS_CLIENT_CONFIG_FILE', 'OS_CLOUD'].includes(k)) delete env[k];
    await upload('ooo-deploy-kernel', join(dir, 'deploy.kernel'), 'aki');
    await upload('ooo-deploy-ramdisk', join(dir, 'deploy.initramfs'), 'ari');
    await upload('lab-os', join(dir, 'os.raw'), 'raw');
    // A ramdisk without the agent: boots, prints a line, powers off; never calls back.
    await upload('no-agent-ramdisk', await markerInitramfs(dir, 'OOO-NO-AGENT'), 'ari');
    machineBase = `http://192.0.2.1:${new URL(s.url).port}`;
  });
  after(async () => {
    for (const d of labDirs) await ooo('lab', 'down', '--dir', d);
    await s?.stop();
    if (dir && !process.env.OOO_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  test('ipmi: manage -> inspect -> provide -> failure cases -> deploy -> the OS reports in -> undeploy', { timeout: 1_500_000 }, async () => {
    await labUp('ipmi');
    const node = lab().nodes[0];
    const mac = node.ports[0].address;

    // Wrong credentials: a clear error, and the node stays where it was.
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'replace', path: '/driver_info/ipmi_password', value: 'wrong-password' }]);
    await provision('lab-0', 'manage');
    let n = await reach('lab-0', 'enroll');
    assert.match(n.last_error, /password|authenticat|unauthori[sz]ed|RAKP/i, n.last_error);
    assert.doesNotMatch(n.last_error, /wrong-password/);
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'replace', path: '/driver_info/ipmi_password', value: node.driver_info.ipmi_password }]);

    // BMC unreachable: another node whose BMC address answers nothing.
    const ghost = await s.bm('POST', '/v1/nodes', { name: 'ghost', driver: 'ipmi', driver_info: { ipmi_address: '127.0.0.1', ipmi_port: 9, ipmi_username: 'admin', ipmi_password: 'x', ipmi_timeout: 2 } });
    assert.equal(ghost.status, 201);
    await provision('ghost', 'manage');
    n = await reach('ghost', 'enroll', 30_000);
    assert.match(n.last_error, /127\.0\.0\.1:9|no answer|did not answer|unreachable|timed out/i, n.last_error);
    await s.bm('DELETE', '/v1/nodes/ghost');

    // manage: the BMC answers; the VM is off.
    await provision('lab-0', 'manage');
    n = await reach('lab-0', 'manageable', 60_000);
    assert.equal(n.power_state, 'power off');

    // inspect: the ramdisk reports the VM's real hardware.
    let t0 = Date.now();
    await provision('lab-0', 'inspect');
    n = await reach('lab-0', 'manageable');
    console.log(`# inspect (network boot + agent) ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(n.last_error, null);
    assert.equal(n.properties.cpus, 1);
    assert.equal(n.properties.local_gb, 7);
    assert.ok(n.properties.memory_mb > 400 && n.properties.memory_mb <= 512, `memory_mb ${n.properties.memory_mb}`);
    assert.deepEqual((await s.bm('GET', '/v1/nodes/lab-0/ports')).body.ports.map((p: any) => p.address), [mac]);
    assert.equal(n.power_state, 'power off');
    assert.equal(n.resource_class, 'baremetal');
    assert.ok(n.traits.includes('CUSTOM_INSPECTED_ARCH_X86_64') && n.traits.includes('CUSTOM_INSPECTED_BOOT_BIOS'), JSON.stringify(n.traits));
    assert.match(serialOf('lab-0'), /iPXE/);

    // provide: cleaning erases the disk (the lab's disk file, read from the host).
    t0 = Date.now();
    await provision('lab-0', 'provide');
    await reach('lab-0', 'available');
    console.log(`# provide (network boot + metadata erase) ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const fd = openSync(join(labDir, 'lab-0-disk.raw'), 'r');
    const head = Buffer.alloc(1024 * 1024);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    assert.ok(head.every((x) => x === 0), 'the start of the disk is zeroed');

    // Checksum mismatch: the written image fails verification; the node never boots it.
    const bad = 'f'.repeat(64);
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'add', path: '/instance_info', value: { image_source: `${machineBase}/images/${images['lab-os']!.id}/raw`, image_checksum: bad, image_size: images['lab-os']!.size } }]);
    await provision('lab-0', 'active');
    n = await reach('lab-0', 'deploy failed');
    assert.match(n.last_error, /checksum|sha256/i, n.last_error);
    assert.notEqual((await internal('lab-0')).ipxe_boot?.mode, 'local', 'not switched to boot from disk');
    assert.equal(n.power_state, 'power off');

    // A ramdisk that never calls back: the wait times out with a clear error.
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'add', path: '/driver_info/deploy_ramdisk', value: 'no-agent-ramdisk' }]);
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'add', path: '/instance_info', value: { image_source: 'lab-os' } }]);
    t0 = Date.now();
    await provision('lab-0', 'active');
    n = await reach('lab-0', 'deploy failed', (WAIT_TIMEOUT_S + 60) * 1000);
    assert.match(n.last_error, /Timeout reached while waiting for callback .*no call-back from the ramdisk agent in 45 s/, n.last_error);
    assert.ok(Date.now() - t0 >= WAIT_TIMEOUT_S * 1000);
    assert.match(serialOf('lab-0'), /OOO-NO-AGENT/, 'the no-agent ramdisk did boot');
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'remove', path: '/driver_info/deploy_ramdisk' }]);

    // Powered off mid-deploy (someone at the BMC): the agent goes quiet, the wait times out.
    await provision('lab-0', 'active');
    await reach('lab-0', 'wait call-back', 60_000);
    await eventually(async () => (await internal('lab-0')).agent_connected, 120_000, 'the agent to call in');
    execFileSync('ipmitool', ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(node.driver_info.ipmi_port), '-U', node.driver_info.ipmi_username, '-P', node.driver_info.ipmi_password, '-C', '3', 'chassis', 'power', 'off'], { stdio: 'ignore', timeout: 30_000 });
    n = await reach('lab-0', 'deploy failed', (WAIT_TIMEOUT_S + 60) * 1000);
    assert.match(n.last_error, /Timeout reached while waiting for callback/, n.last_error);

    // Retry from deploy failed: deploy the builder's image; the VM boots it and it reports in.
    t0 = Date.now();
    await provision('lab-0', 'active');
    n = await reach('lab-0', 'active');
    console.log(`# deploy (network boot + write + config drive + power cycle) ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(n.last_error, null);
    assert.equal(n.power_state, 'power on');
    await eventually(async () => (await history('lab-0')).some((e: string) => /deployed OS reported in: lab-0/.test(e)), 180_000, `the deployed OS to report in; console:\n${serialOf('lab-0').slice(-2000)}`);
    console.log(`# deploy -> deployed OS reported in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await eventually(async () => serialOf('lab-0').includes(MARKER), 30_000, 'the deployed OS to print its marker');
    assert.equal((await internal('lab-0')).ipxe_boot?.mode, 'local');
    assert.equal((await s.bm('GET', '/v1/nodes/lab-0/states')).body.power_state, 'power on', 'the deployed OS keeps running');

    // undeploy: cleaned and available again, powered off.
    await provision('lab-0', 'deleted');
    n = await reach('lab-0', 'available');
    assert.equal(n.power_state, 'power off');
    assert.equal(n.instance_info.image_source, undefined);

    const down = await ooo('lab', 'down', '--dir', labDir);
    assert.equal(down.code, 0, down.stderr);
    labDir = '';
  });

  test('redfish: manage -> provide -> deploy -> the OS reports in -> undeploy', { timeout: 900_000 }, async () => {
    await labUp('redfish');
    await provision('lab-0', 'manage');
    let n = await reach('lab-0', 'manageable', 60_000);
    assert.equal(n.power_state, 'power off');
    await provision('lab-0', 'provide');
    await reach('lab-0', 'available');
    await s.bm('PATCH', '/v1/nodes/lab-0', [{ op: 'add', path: '/instance_info', value: { image_source: 'lab-os' } }]);
    const t0 = Date.now();
    await provision('lab-0', 'active');
    n = await reach('lab-0', 'active');
    assert.equal(n.power_state, 'power on');
    await eventually(async () => (await history('lab-0')).some((e: string) => /deployed OS reported in: lab-0/.test(e)), 180_000, `the deployed OS to report in; console:\n${serialOf('lab-0').slice(-2000)}`);
    console.log(`# redfish: deploy -> deployed OS reported in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await provision('lab-0', 'deleted');
    n = await reach('lab-0', 'available');
    assert.equal(n.power_state, 'power off');
  });
});
