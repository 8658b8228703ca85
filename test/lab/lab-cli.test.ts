/**
 * `ooo lab up|down|status` against a real seed: the lab's VMs are enrolled as nodes, the
 * conductor reaches their virtual BMCs (IPMI and Redfish) and really powers the qemu VMs, and
 * `lab down` leaves nothing behind — also after the lab daemon was killed.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startTestSeed, waitState, eventually, type TestSeed } from '../helpers/seed.js';
import { labSkipReason } from './helpers.js';

const OOO = join(process.cwd(), 'bin', 'ooo');
const skip = labSkipReason('qemu-system-x86_64');
if (skip) console.log(`# lab CLI tests skipped: ${skip}`);

type Run = { code: number; stdout: string; stderr: string };

function qemuPidsIn(dir: string): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const st = readFileSync(`/proc/${e}/stat`, 'utf8');
      return cmd.includes('qemu-system') && cmd.includes(`${dir}/`) && !st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
    } catch { return false; }
  }).map(Number);
}
const netnsList = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
const linkThere = (name: string) => spawnSync('ip', ['link', 'show', 'dev', name]).status === 0;
/** Running (a zombie left for a parent that does not reap it counts as gone). */
const alive = (pid: number) => { try { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return !st.slice(st.lastIndexOf(')') + 2).startsWith('Z'); } catch { return false; } };

describe('ooo lab up / down', { skip }, () => {
  let s: TestSeed;
  let env: NodeJS.ProcessEnv;
  const dirs: string[] = [];
  const ooo = (...args: string[]): Promise<Run> => new Promise((resolve) => {
    execFile(OOO, args, { env, timeout: 90_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const newDir = () => { const d = mkdtempSync(join(tmpdir(), 'ooo-labcli-')); dirs.push(d); return join(d, 'lab'); };
  const labJson = (dir: string) => JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8'));
  const assertGone = (dir: string) => {
    assert.doesNotMatch(netnsList(), /\booo-lab\b/, 'namespace ooo-lab is gone');
    assert.equal(linkThere('ooo-prov'), false, 'link ooo-prov is gone');
    assert.deepEqual(qemuPidsIn(dir), [], 'no qemu of the lab is left');
    assert.equal(existsSync(join(dir, 'lab.json')), false, 'lab.json is removed');
  };

  before(async () => {
    s = await startTestSeed('sqlite');
    env = { ...process.env, OS_CLIENT_CONFIG_FILE: join(s.dataDir, 'clouds.yaml'), OS_CLOUD: 'ooo' };
    for (const k of Object.keys(env)) if (k.startsWith('OS_') && !['OS_CLIENT_CONFIG_FILE', 'OS_CLOUD'].includes(k)) delete env[k];
  });
  after(async () => {
    for (const d of dirs) { await ooo('lab', 'down', '--dir', join(d, 'lab')); rmSync(d, { recursive: true, force: true }); }
    await s?.stop();
  });

  test('bad input names the flag', async () => {
    const n = await ooo('lab', 'up', '--nodes', '0');
    assert.equal(n.code, 2);
    assert.match(n.stderr, /--nodes must be 1\.\.32/);
    const d = await ooo('lab', 'up', '--nodes', '1', '--driver', 'ilo');
    assert.equal(d.code, 2);
    assert.match(d.stderr, /--driver must be ipmi or redfish/);
  });

  test('ipmi: 2 nodes enrolled; a second up refused; manage and power on reach the VM; down removes everything', async () => {
    const dir = newDir();
    const t0 = Date.now();
    const upr = await ooo('lab', 'up', '--nodes', '2', '--driver', 'ipmi', '--ipmi-port', '0', '--dir', dir);
    assert.equal(upr.code, 0, upr.stderr + upr.stdout);
    console.log(`# lab up (2 nodes, enrolled): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.match(upr.stdout, /accelerator: (TCG|KVM): /);
    assert.match(upr.stdout, /192\.0\.2\.0\/26 on ooo-prov/);
    assert.match(upr.stdout, /namespace ooo-lab/);
    assert.match(upr.stdout, /lab-0\s+52:54:00:1a:b0:00\s+udp 127\.0\.0\.1:\d+/);
    const state = labJson(dir);
    assert.equal(statSync(join(dir, 'lab.json')).mode & 0o777, 0o600);
    for (const n of state.nodes) assert.equal(upr.stdout.includes(n.driver_info.ipmi_password), false, 'the BMC password is not printed');

    for (const [i, name] of ['lab-0', 'lab-1'].entries()) {
      const node = (await s.bm('GET', `/v1/nodes/${name}`)).body;
      assert.equal(node.provision_state, 'enroll');
      assert.equal(node.driver, 'ipmi');
      assert.equal(node.resource_class, 'baremetal');
      assert.equal(node.driver_info.ipmi_address, '127.0.0.1');
      assert.equal(node.driver_info.ipmi_port, state.nodes[i].driver_info.ipmi_port);
      const ports = (await s.bm('GET', `/v1/nodes/${name}/ports?detail=true`)).body.ports;
      assert.deepEqual(ports.map((p: { address: string }) => p.address), [`52:54:00:1a:b0:0${i}`]);
      assert.equal(ports[0].pxe_enabled, true);
    }

    const again = await ooo('lab', 'up', '--nodes', '1', '--dir', dir);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`a lab is already up \\(pid ${state.pid}, 2 nodes\\); run \`ooo lab down\` first`));

    // The conductor reaches lab-0's BMC over IPMI: manage verifies the power state.
    assert.equal((await s.bm('PUT', '/v1/nodes/lab-0/states/provision', { target: 'manage' })).status, 202);
    const managed = await waitState(s, 'lab-0', 'manageable', 30_000);
    assert.equal(managed.power_state, 'power off');
    assert.equal((await s.bm('PUT', '/v1/nodes/lab-0/states/power', { target: 'power on' })).status, 202);
    await eventually(async () => { const n = (await s.bm('GET', '/v1/nodes/lab-0')).body; return n.power_state === 'power on' && !n.target_power_state; }, 30_000, 'lab-0 to power on');
    // The VM really runs: its firmware writes to the serial console, and the BMC says on.
    await eventually(async () => readFileSync(state.nodes[0].serial_log, 'latin1').includes('iPXE'), 30_000, 'iPXE on lab-0\'s console');
    const st = await ooo('lab', 'status', '--dir', dir, '--json');
    assert.equal(st.code, 0, st.stderr);
    const sj = JSON.parse(st.stdout);
    assert.equal(sj.up, true);
    assert.deepEqual(sj.nodes.map((n: { power: string }) => n.power), ['power on', 'power off']);
    assert.equal(st.stdout.includes(state.nodes[0].driver_info.ipmi_password), false);

    // A node in a state that does not allow deleting (inspect failed: the seed has no deploy
    // ramdisk) is put in maintenance and deleted by `lab down`.
    assert.equal((await s.bm('PUT', '/v1/nodes/lab-1/states/provision', { target: 'manage' })).status, 202);
    await waitState(s, 'lab-1', 'manageable', 30_000);
    assert.equal((await s.bm('PUT', '/v1/nodes/lab-1/states/provision', { target: 'inspect' })).status, 202);
    await waitState(s, 'lab-1', 'inspect failed', 30_000);

    const t1 = Date.now();
    const d = await ooo('lab', 'down', '--dir', dir);
    assert.equal(d.code, 0, d.stderr + d.stdout);
    console.log(`# lab down (2 nodes): ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    assert.match(d.stdout, /deleted node lab-0/);
    assert.match(d.stdout, /deleted node lab-1 \(after setting maintenance\)/);
    assert.match(d.stdout, /stopped the lab daemon/);
    assert.equal((await s.bm('GET', '/v1/nodes/lab-0')).status, 404);
    assert.equal((await s.bm('GET', '/v1/nodes/lab-1')).status, 404);
    assert.equal(alive(state.pid), false);
    assertGone(dir);
  });

  test('redfish: 1 node manageable through the Redfish BMC; down removes it', async () => {
    const dir = newDir();
    const upr = await ooo('lab', 'up', '--nodes', '1', '--driver', 'redfish', '--redfish-port', '0', '--dir', dir);
    assert.equal(upr.code, 0, upr.stderr + upr.stdout);
    assert.match(upr.stdout, /lab-0\s+52:54:00:1a:b0:00\s+http:\/\/127\.0\.0\.1:\d+\/redfish\/v1\/Systems\/lab-0/);
    const node = (await s.bm('GET', '/v1/nodes/lab-0')).body;
    assert.equal(node.driver, 'redfish');
    assert.equal(node.driver_info.redfish_system_id, '/redfish/v1/Systems/lab-0');
    assert.equal((await s.bm('PUT', '/v1/nodes/lab-0/states/provision', { target: 'manage' })).status, 202);
    const managed = await waitState(s, 'lab-0', 'manageable', 30_000);
    assert.equal(managed.power_state, 'power off');
    const d = await ooo('lab', 'down', '--dir', dir);
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.equal((await s.bm('GET', '/v1/nodes/lab-0')).status, 404);
    assertGone(dir);
  });

  test('after kill -9 of the daemon, up cleans the leftovers and down removes everything', async () => {
    const dir = newDir();
    const inv = join(dir, '..', 'inventory.yaml');
    const first = await ooo('lab', 'up', '--nodes', '1', '--dir', dir);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const pid1 = labJson(dir).pid as number;
    process.kill(pid1, 'SIGKILL');
    await eventually(async () => !alive(pid1), 5000, 'the daemon to die');
    assert.equal(qemuPidsIn(dir).length, 1, 'its qemu outlives it');
    const st = await ooo('lab', 'status', '--dir', dir);
    assert.notEqual(st.code, 0);
    assert.match(st.stdout, /DOWN/);

    // A new lab in the same directory: the old one's node, VM and network are removed first.
    const second = await ooo('lab', 'up', '--nodes', '1', '--dir', dir, '--inventory', inv);
    assert.equal(second.code, 0, second.stderr + second.stdout);
    assert.match(second.stdout, new RegExp(`previous lab's daemon \\(pid ${pid1}\\) is gone; cleaning up`));
    assert.match(second.stdout, /deleted node lab-0/);
    assert.match(second.stdout, /removed: qemu lab-0 \(pid \d+\)/);
    assert.equal((await s.bm('GET', '/v1/nodes/lab-0')).status, 404, '--inventory enrolls nothing');
    assert.equal(statSync(inv).mode & 0o777, 0o600);
    const doc = parse(readFileSync(inv, 'utf8'));
    assert.equal(doc.nodes[0].name, 'lab-0');
    assert.equal(doc.nodes[0].driver_info.ipmi_username, 'admin');
    assert.ok(doc.nodes[0].driver_info.ipmi_password.length >= 12);
    assert.deepEqual(doc.nodes[0].ports, [{ address: '52:54:00:1a:b0:00' }]);
    assert.equal(qemuPidsIn(dir).length, 1);

    const pid2 = labJson(dir).pid as number;
    process.kill(pid2, 'SIGKILL');
    await eventually(async () => !alive(pid2), 5000, 'the daemon to die');
    const d = await ooo('lab', 'down', '--dir', dir);
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.match(d.stdout, /was not running/);
    assert.match(d.stdout, /removed: .*qemu lab-0 \(pid \d+\).*namespace ooo-lab/);
    assertGone(dir);
  });
});
