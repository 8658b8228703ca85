/**
 * No request crashes the service or leaves a node locked: random bodies, paths, headers and
 * JSON-Patch documents against every kind of route get a 4xx, never a 5xx.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TestSeed, startTestSeed } from '../helpers/seed.js';

let s: TestSeed;
let node: string;
before(async () => {
  s = await startTestSeed('sqlite');
  node = (await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'fuzz' })).body.uuid;
});
after(async () => { await s.stop(); });

const json = fc.jsonValue({ maxDepth: 3 });
const routes: [string, (n: string) => string][] = [
  ['POST', () => '/baremetal/v1/nodes'], ['PATCH', (n) => `/baremetal/v1/nodes/${n}`], ['PUT', (n) => `/baremetal/v1/nodes/${n}/states/provision`],
  ['PUT', (n) => `/baremetal/v1/nodes/${n}/states/power`], ['PUT', (n) => `/baremetal/v1/nodes/${n}/management/boot_device`],
  ['POST', () => '/baremetal/v1/ports'], ['POST', () => '/baremetal/v1/allocations'], ['POST', () => '/baremetal/v1/portgroups'],
  ['POST', () => '/baremetal/v1/deploy_templates'], ['POST', () => '/baremetal/v1/chassis'], ['PUT', (n) => `/baremetal/v1/nodes/${n}/traits`],
  ['POST', () => '/identity/v3/auth/tokens'], ['POST', () => '/identity/v3/users'], ['POST', () => '/identity/v3/projects'],
  ['POST', (n) => `/baremetal/v1/heartbeat/${n}`],
];

test('random JSON bodies on every write route: always 4xx (or success), never 5xx', async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: routes.length - 1 }), json, async (i, body) => {
    const [method, path] = routes[i]!;
    const r = await s.call(method, path(node), body, { 'X-OpenStack-Ironic-API-Version': 'latest' });
    assert.ok(r.status < 500, `${method} ${path(node)} ${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
  }), { numRuns: 400 });
});

test('random paths, query strings and version headers: never 5xx', async () => {
  await fc.assert(fc.asyncProperty(fc.webPath(), fc.webQueryParameters(), fc.string({ maxLength: 8 }), async (path, query, version) => {
    const r = await s.call('GET', `/baremetal/v1/nodes${path}?${query}`, undefined, { 'X-OpenStack-Ironic-API-Version': version.replace(/[^\x20-\x7e]/g, '') });
    assert.ok(r.status < 500, `${path}?${query} -> ${r.status}`);
  }), { numRuns: 300 });
});

test('afterwards the node is unlocked and still usable', async () => {
  const n = await s.bm('GET', `/v1/nodes/${node}`);
  assert.equal(n.status, 200);
  assert.equal(n.body.reservation, null);
});
