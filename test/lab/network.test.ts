/**
 * The lab network: namespace, bridge, veth pair, addresses, taps; idempotent create; destroy;
 * cleanup of a crashed lab's leftovers (namespace, links and a recorded process).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabNetwork, LabNetworkError, linkExists, namespaceExists } from '../../src/lab/network.js';
import { labSkipReason } from './helpers.js';
import { QemuVm } from '../../src/lab/vm.js';
import { which } from '../../src/images/builder/exec.js';

const skip = labSkipReason();
const tag = (process.pid % 100000).toString(36);

describe('lab network', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ooo-net-'));
  const names = { namespace: `ooo-t-${tag}`, hostInterface: `oot${tag}`, dir };
  after(() => {
    LabNetwork.cleanupLeftovers(dir);
    try { new LabNetwork(names).destroy(); } catch { /* already gone */ }
    rmSync(dir, { recursive: true, force: true });
  });

  test('create: namespace, bridge, veth, addresses; idempotent', () => {
    const net = new LabNetwork(names);
    net.create();
    net.create();
    assert.ok(namespaceExists(names.namespace));
    assert.ok(linkExists(names.hostInterface));
    assert.ok(linkExists('br-prov', names.namespace));
    const addr = spawnSync('ip', ['-o', 'addr', 'show', 'dev', names.hostInterface], { encoding: 'utf8' }).stdout;
    assert.match(addr, /inet 192\.0\.2\.1\/26/);
    assert.match(addr, /inet6 fd00::1\/64/);
    assert.equal(readFileSync(`/proc/sys/net/ipv4/conf/${names.hostInterface}/forwarding`, 'utf8').trim(), '0');
    const br = spawnSync('ip', ['netns', 'exec', names.namespace, 'ip', '-o', 'link', 'show', 'master', 'br-prov'], { encoding: 'utf8' }).stdout;
    assert.match(br, /prov-uplink/);
    // Only lo, the bridge and the uplink in the namespace: nothing else to route through.
    const links = spawnSync('ip', ['netns', 'exec', names.namespace, 'ip', '-o', 'link'], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(':')[1].trim().split('@')[0]);
    assert.deepEqual(links.sort(), ['br-prov', 'lo', 'prov-uplink']);
  });

  test('taps join the bridge; remove', () => {
    const net = new LabNetwork(names);
    net.addTap('tap-a0');
    net.addTap('tap-a0');
    const br = spawnSync('ip', ['netns', 'exec', names.namespace, 'ip', '-o', 'link', 'show', 'master', 'br-prov'], { encoding: 'utf8' }).stdout;
    assert.match(br, /tap-a0/);
    assert.throws(() => net.addTap('a-name-much-too-long'), LabNetworkError);
    net.removeTap('tap-a0');
    assert.equal(linkExists('tap-a0', names.namespace), false);
  });

  test('a VM whose tap is missing is refused before qemu starts', { skip: which('qemu-system-x86_64') ? false : 'not installed: qemu-system-x86_64' }, async () => {
    const vm = new QemuVm({ name: 'notap', dir, netns: names.namespace, nics: [{ mac: '52:54:00:00:00:31', tap: 'tap-none' }] });
    await assert.rejects(vm.start(), new RegExp(`tap device 'tap-none' for NIC 52:54:00:00:00:31 does not exist in network namespace ${names.namespace}.*LabNetwork\\.addTap`));
    assert.equal(vm.running, false);
  });

  test('bad names are refused with the reason', () => {
    assert.throws(() => new LabNetwork({ dir, hostInterface: 'x'.repeat(16) }), /host interface name 'x{16}' is not a valid interface name/);
  });

  test('destroy removes namespace, links and recorded processes', async () => {
    const net = new LabNetwork(names);
    const child = spawn('ip', ['netns', 'exec', names.namespace, 'sleep', '300'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    net.add(child.pid!, 'sleeper');
    const gone = new Promise((r) => child.once('exit', r));
    net.destroy();
    await gone;
    assert.equal(namespaceExists(names.namespace), false);
    assert.equal(linkExists(names.hostInterface), false);
    assert.equal(existsSync(net.statePath), false);
  });

  test('cleanupLeftovers removes a crashed lab (processes, namespace, links)', async () => {
    const net = new LabNetwork(names);
    net.create();
    net.addTap('tap-b0');
    // A "crashed" lab: a process recorded, another only present in the namespace.
    const a = spawn('sleep', ['300'], { stdio: 'ignore' });
    const b = spawn('ip', ['netns', 'exec', names.namespace, 'sleep', '301'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    net.add(a.pid!, 'qemu lab-0');
    const exits = Promise.all([new Promise((r) => a.once('exit', r)), new Promise((r) => b.once('exit', r))]);
    const removed = LabNetwork.cleanupLeftovers(dir);
    await exits;
    assert.ok(removed.some((r) => r.includes(`qemu lab-0 (pid ${a.pid})`)), removed.join(', '));
    assert.ok(removed.some((r) => r.includes(`process ${b.pid}`)), removed.join(', '));
    assert.ok(removed.includes(`namespace ${names.namespace}`));
    assert.equal(namespaceExists(names.namespace), false);
    assert.equal(linkExists(names.hostInterface), false);
    assert.deepEqual(LabNetwork.cleanupLeftovers(dir), []);
  });
});
