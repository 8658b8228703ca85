/**
 * The real OpenStack command-line client (Debian python3-openstackclient + python3-ironicclient)
 * against a seed on loopback, configured only by the clouds.yaml the seed writes.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { TestSeed, startTestSeed, waitState } from '../helpers/seed.js';

const run = promisify(execFile);
const OPENSTACK = '/usr/bin/openstack';
const skip = existsSync(OPENSTACK) ? false : 'the openstack client is not installed (Debian python3-openstackclient, python3-ironicclient)';

describe('openstack client against the seed', { skip }, () => {
  let s: TestSeed;
  let env: NodeJS.ProcessEnv;
  const os = async (...args: string[]) => {
    try {
      const r = await run(OPENSTACK, args, { env, timeout: 60_000 });
      return r.stdout;
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; code?: number };
      throw Object.assign(new Error(`openstack ${args.join(' ')} failed (${err.code}): ${err.stderr}`), { stderr: err.stderr, code: err.code });
    }
  };
  const osJson = async (...args: string[]) => JSON.parse(await os(...args, '-f', 'json'));

  before(async () => {
    s = await startTestSeed('sqlite');
    env = { ...process.env, OS_CLIENT_CONFIG_FILE: join(s.dataDir, 'clouds.yaml'), OS_CLOUD: 'ooo', PATH: `/usr/bin:${process.env.PATH}` };
    for (const k of Object.keys(env)) if (k.startsWith('OS_') && !['OS_CLIENT_CONFIG_FILE', 'OS_CLOUD'].includes(k)) delete env[k];
  });
  after(async () => { await s.stop(); });

  test('clouds.yaml is private to its owner', () => {
    assert.equal(statSync(join(s.dataDir, 'clouds.yaml')).mode & 0o777, 0o600);
  });

  test('token issue', async () => {
    const t = await osJson('token', 'issue');
    assert.match(t.id, /^o1/);
    assert.ok(t.project_id);
  });

  test('node create/list/show/set/unset/manage/provide/deploy/undeploy/delete, port create/list', async () => {
    const n = await osJson('baremetal', 'node', 'create', '--driver', 'fake-hardware', '--name', 'osc-1', '--driver-info', 'ipmi_password=topsecret', '--property', 'cpus=4');
    assert.equal(n.provision_state, 'enroll');
    assert.equal(n.driver_info.ipmi_password, '******');
    const list = await osJson('baremetal', 'node', 'list');
    assert.ok(list.some((x: any) => x.Name === 'osc-1'));
    await os('baremetal', 'node', 'set', 'osc-1', '--extra', 'rack=r7', '--resource-class', 'baremetal');
    let shown = await osJson('baremetal', 'node', 'show', 'osc-1');
    assert.deepEqual(shown.extra, { rack: 'r7' });
    assert.equal(shown.resource_class, 'baremetal');
    await os('baremetal', 'node', 'unset', 'osc-1', '--extra', 'rack');
    shown = await osJson('baremetal', 'node', 'show', 'osc-1');
    assert.deepEqual(shown.extra, {});
    const port = await osJson('baremetal', 'port', 'create', '52:54:00:12:34:56', '--node', n.uuid);
    assert.equal(port.address, '52:54:00:12:34:56');
    const ports = await osJson('baremetal', 'port', 'list');
    assert.equal(ports.length, 1);
    await os('baremetal', 'node', 'manage', 'osc-1', '--wait', '30');
    await os('baremetal', 'node', 'provide', 'osc-1', '--wait', '30');
    await os('baremetal', 'node', 'deploy', 'osc-1', '--wait', '30');
    assert.equal((await osJson('baremetal', 'node', 'show', 'osc-1')).provision_state, 'active');
    await os('baremetal', 'node', 'undeploy', 'osc-1', '--wait', '30');
    await waitState(s, 'osc-1', 'available');
    await os('baremetal', 'node', 'power', 'on', 'osc-1');
    await os('baremetal', 'node', 'delete', 'osc-1');
    const after = await osJson('baremetal', 'node', 'list');
    assert.ok(!after.some((x: any) => x.Name === 'osc-1'));
  });

  test('allocation create, driver list, conductor list', async () => {
    await osJson('baremetal', 'node', 'create', '--driver', 'fake-hardware', '--name', 'osc-a', '--resource-class', 'compute');
    await os('baremetal', 'node', 'manage', 'osc-a', '--wait', '30');
    await os('baremetal', 'node', 'provide', 'osc-a', '--wait', '30');
    const a = await osJson('baremetal', 'allocation', 'create', '--resource-class', 'compute', '--wait', '30');
    assert.equal(a.state, 'active');
    const drivers = await osJson('baremetal', 'driver', 'list');
    assert.ok(drivers.some((d: any) => d['Supported driver(s)'] === 'fake-hardware'));
    const conductors = await osJson('baremetal', 'conductor', 'list');
    assert.equal(conductors[0].Alive, true);
  });

  test('an illegal transition is reported by the client with the API message', async () => {
    await osJson('baremetal', 'node', 'create', '--driver', 'fake-hardware', '--name', 'osc-bad');
    await assert.rejects(os('baremetal', 'node', 'deploy', 'osc-bad'), (e: any) => /can not be performed on node .* while it is in state "enroll"/.test(e.stderr));
  });

  test('users and roles: user create, role add, the new user can log in', async () => {
    await os('user', 'create', '--password', 'op-pass-1', 'operator1');
    await os('role', 'add', '--project', 'admin', '--user', 'operator1', 'member');
    const assignments = await osJson('role', 'assignment', 'list', '--user', 'operator1', '--names');
    assert.ok(assignments.some((r: any) => r.Role === 'member'));
    const userEnv = { ...env };
    delete userEnv.OS_CLOUD;
    delete userEnv.OS_CLIENT_CONFIG_FILE;
    Object.assign(userEnv, { OS_AUTH_URL: `${s.url}/identity`, OS_USERNAME: 'operator1', OS_PASSWORD: 'op-pass-1', OS_PROJECT_NAME: 'admin', OS_USER_DOMAIN_NAME: 'Default', OS_PROJECT_DOMAIN_NAME: 'Default', OS_IDENTITY_API_VERSION: '3' });
    const r = await run(OPENSTACK, ['token', 'issue', '-f', 'json'], { env: userEnv });
    assert.ok(JSON.parse(r.stdout).id);
    const bad = run(OPENSTACK, ['token', 'issue'], { env: { ...userEnv, OS_PASSWORD: 'wrong' } });
    await assert.rejects(bad, (e: any) => /401|authenticat/i.test(e.stderr));
  });
});
