/**
 * Several conductors on one PostgreSQL: they share the nodes with none handled twice, and when
 * one is killed another takes its nodes over — in-flight work ends in the failed state with a
 * clear last_error, and the operator can retry it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PG_SKIP, TestSeed, eventually, startTestSeed } from '../helpers/seed.js';

const OOO = join(process.cwd(), 'bin', 'ooo');
const N = 24;

describe('two conductors on PostgreSQL', { skip: PG_SKIP }, () => {
  let s: TestSeed;
  const procs = new Map<string, ChildProcess>();
  const startConductor = (name: string) => {
    const p = spawn(OOO, ['serve', '--only', 'conductor', '--database', s.database, '--conductor-name', name, '--conductor-timeout', '6', '--quiet', '--data-dir', mkdtempSync(join(tmpdir(), `ooo-${name}-`))], { stdio: ['ignore', 'ignore', 'inherit'] });
    procs.set(name, p);
  };
  const states = async () => (await s.bm('GET', '/v1/nodes?fields=name,provision_state,reservation,last_error,target_provision_state&limit=1000')).body.nodes as any[];
  const all = (verb: string, names: string[]) => Promise.all(names.map((n) => s.bm('PUT', `/v1/nodes/${n}/states/provision`, { target: verb }).then((r) => assert.equal(r.status, 202, JSON.stringify(r.body)))));
  const settle = (want: (n: any) => boolean, what: string, ms = 60_000) => eventually(async () => { const ns = await states(); return ns.every((n) => !n.reservation && want(n)) ? ns : undefined; }, ms, what);

  before(async () => {
    s = await startTestSeed('postgres', { only: ['api'], deadAfterS: 6 });
    startConductor('c1');
    startConductor('c2');
    await eventually(async () => { const r = await s.bm('GET', '/v1/conductors'); return r.body.conductors?.filter((c: any) => c.alive).length === 2; }, 30_000, 'both conductors to register');
  });
  after(async () => {
    for (const p of procs.values()) p.kill('SIGKILL');
    await s.stop();
  });

  test('work is shared and no node is handled twice', async () => {
    const names = Array.from({ length: N }, (_, i) => `share-${i}`);
    for (const name of names) {
      const r = await s.bm('POST', '/v1/nodes', { driver: 'sim', name, driver_info: { sim_delay_ms: 20, sim_deploy_s: 1 }, instance_info: { image_source: 'img' } });
      assert.equal(r.status, 201);
    }
    await all('manage', names);
    await settle((n) => n.provision_state === 'manageable', 'manageable');
    await all('provide', names);
    await settle((n) => n.provision_state === 'available', 'available');
    await all('active', names);
    await settle((n) => n.provision_state === 'active', 'active');
    const by = new Map<string, number>();
    for (const name of names) {
      const h = (await s.bm('GET', `/v1/nodes/${name}/history?detail=true`)).body.history as any[];
      const deploys = h.filter((e) => /^deploying -> active/.test(e.event));
      assert.equal(deploys.length, 1, `${name} was deployed ${deploys.length} times`);
      by.set(deploys[0].conductor, (by.get(deploys[0].conductor) ?? 0) + 1);
    }
    assert.deepEqual([...by.keys()].sort(), ['c1', 'c2'], `both conductors took part: ${JSON.stringify([...by])}`);
  });

  test('killing a conductor mid-deploy: its nodes fail clearly, none stay locked, retry succeeds', async () => {
    const names = Array.from({ length: N }, (_, i) => `share-${i}`);
    await all('deleted', names);
    await settle((n) => n.provision_state === 'available', 'available again');
    for (const name of names) await s.bm('PATCH', `/v1/nodes/${name}`, [{ op: 'replace', path: '/driver_info/sim_deploy_s', value: 8 }, { op: 'add', path: '/instance_info/image_source', value: 'img' }]);
    await all('active', names);
    await new Promise((r) => setTimeout(r, 1500));
    procs.get('c2')!.kill('SIGKILL');
    const end = await settle((n) => n.provision_state === 'active' || n.provision_state === 'deploy failed', 'takeover', 60_000);
    const failed = end.filter((n) => n.provision_state === 'deploy failed');
    assert.ok(failed.length > 0 && failed.length < N, `some nodes were c2's: ${failed.length}`);
    for (const n of failed) assert.match(n.last_error, /Conductor c2 went offline while the node was deploying/);
    await all('active', failed.map((n) => n.name));
    await settle((n) => n.provision_state === 'active', 'retry on the surviving conductor', 60_000);
  });
});
