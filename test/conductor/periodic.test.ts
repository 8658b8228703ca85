/**
 * The conductor's periodic duties: a ramdisk that never calls back fails the deploy after the
 * wait timeout; a BMC that stops answering sets power_state to None with a clear last_error,
 * without wedging the conductor; when the BMC is back, the state is read again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestSeed, eventually, startTestSeed, waitState } from '../helpers/seed.js';

let s: TestSeed;
before(async () => { s = await startTestSeed('sqlite', { waitTimeoutS: 2, powerSyncS: 1 }); });
after(async () => { await s.stop(); });

const toAvailable = async (name: string) => {
  for (const [t, st] of [['manage', 'manageable'], ['provide', 'available']]) {
    await s.bm('PUT', `/v1/nodes/${name}/states/provision`, { target: t });
    await waitState(s, name, st!);
  }
};

test('a deploy whose ramdisk never calls back fails after the wait timeout, powered off', async () => {
  await s.bm('POST', '/v1/nodes', { driver: 'sim', name: 'silent', driver_info: { sim_delay_ms: 0, sim_fail: 'callback' }, instance_info: { image_source: 'img' } });
  await toAvailable('silent');
  await s.bm('PUT', '/v1/nodes/silent/states/provision', { target: 'active' });
  await waitState(s, 'silent', 'wait call-back');
  const failed = await waitState(s, 'silent', 'deploy failed', 20_000);
  assert.match(failed.last_error, /Timeout reached while waiting for callback .*\(no call-back from the ramdisk agent in 2 s\)/);
  assert.equal(failed.reservation, null);
  const again = await s.bm('PUT', '/v1/nodes/silent/states/provision', { target: 'deleted' });
  assert.equal(again.status, 202, 'the operator can undeploy and retry');
  await waitState(s, 'silent', 'available');
});

test('abort of a node waiting for its agent moves it to the failed state', async () => {
  await s.bm('POST', '/v1/nodes', { driver: 'sim', name: 'abortme', driver_info: { sim_delay_ms: 0, sim_fail: 'callback' }, instance_info: { image_source: 'img' } });
  await toAvailable('abortme');
  await s.bm('PUT', '/v1/nodes/abortme/states/provision', { target: 'active' });
  await waitState(s, 'abortme', 'wait call-back');
  const r = await s.bm('PUT', '/v1/nodes/abortme/states/provision', { target: 'abort' });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const n = await waitState(s, 'abortme', 'deploy failed');
  assert.match(n.last_error, /aborted by the operator/);
});

test('a BMC that stops answering: power_state None with last_error; recovers when it answers again', async () => {
  await s.bm('POST', '/v1/nodes', { driver: 'sim', name: 'mute', driver_info: { sim_delay_ms: 0 } });
  await toAvailable('mute');
  await s.bm('PATCH', '/v1/nodes/mute', [{ op: 'add', path: '/driver_info/sim_fail', value: 'power' }]);
  const lost = await eventually(async () => { const n = (await s.bm('GET', '/v1/nodes/mute')).body; return n.power_state === null && n.last_error ? n : undefined; }, 15_000, 'power state to become None');
  assert.match(lost.last_error, /Power state sync failed for node .*the simulated BMC does not answer/);
  const other = (await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'neighbour' })).body;
  await s.bm('PUT', `/v1/nodes/${other.uuid}/states/provision`, { target: 'manage' });
  await waitState(s, 'neighbour', 'manageable');
  await s.bm('PATCH', '/v1/nodes/mute', [{ op: 'remove', path: '/driver_info/sim_fail' }]);
  const back = await eventually(async () => { const n = (await s.bm('GET', '/v1/nodes/mute')).body; return n.power_state !== null ? n : undefined; }, 15_000, 'power state to be read again');
  assert.equal(back.power_state, 'power off');
  const h = (await s.bm('GET', '/v1/nodes/mute/history?detail=true')).body.history;
  assert.ok(h.some((e: any) => e.severity === 'ERROR' && /Power state sync failed/.test(e.event)));
});
