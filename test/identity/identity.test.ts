/**
 * Identity: tokens (expiry, revocation, forgery, scope), password hashing, the Keystone API's
 * answers to good and bad requests — on SQLite and PostgreSQL.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../../src/store/db.js';
import { migrate } from '../../src/store/schema.js';
import { AuthError, Identity } from '../../src/identity/identity.js';
import { hashPassword, verifyPassword } from '../../src/identity/passwords.js';
import { STORES, TestSeed, startTestSeed } from '../helpers/seed.js';

test('passwords are stored as salted scrypt hashes and verified in constant time', async () => {
  const h = await hashPassword('correct horse');
  assert.match(h, /^scrypt\$16384\$8\$1\$/);
  assert.notEqual(h, await hashPassword('correct horse'), 'salted');
  assert.equal(await verifyPassword('correct horse', h), true);
  assert.equal(await verifyPassword('correct hors', h), false);
  assert.equal(await verifyPassword('x', null), false);
});

test('tokens expire, and a forged or revoked token is refused', async () => {
  const db = await openDb(':memory:');
  await migrate(db);
  const id = new Identity(db, { tokenTtlS: 1 });
  await id.init();
  await id.bootstrap('pw-admin');
  const { token } = await id.authenticate({ password: { userName: 'admin', password: 'pw-admin' }, scope: { projectName: 'admin' } });
  const data = await id.validate(token);
  assert.equal(data.pn, 'admin');
  assert.deepEqual(data.r.map(([, n]) => n).sort(), ['admin', 'member', 'reader']);
  const forged = token.replace(/\.(.)/, (_m, c) => '.' + (c === 'A' ? 'B' : 'A'));
  await assert.rejects(id.validate(forged), AuthError);
  const body = JSON.parse(Buffer.from(token.slice(2, token.indexOf('.')), 'base64url').toString());
  body.r = [['x', 'admin']];
  const tampered = 'o1' + Buffer.from(JSON.stringify(body)).toString('base64url') + token.slice(token.indexOf('.'));
  await assert.rejects(id.validate(tampered), /requires authentication/);
  const { token: t2, data: d2 } = await id.authenticate({ password: { userName: 'admin', password: 'pw-admin' } });
  await id.revoke(d2.a, d2.e);
  await assert.rejects(id.validate(t2), /revoked/);
  await new Promise((r) => setTimeout(r, 1100));
  await assert.rejects(id.validate(token), /expired/);
  await assert.rejects(id.authenticate({ password: { userName: 'admin', password: 'nope' } }), /requires authentication/);
  await assert.rejects(id.authenticate({ password: { userName: 'ghost', password: 'nope' } }), /requires authentication/);
  await db.close();
});

for (const store of STORES) {
  describe(`identity API on ${store}`, () => {
    let s: TestSeed;
    before(async () => { s = await startTestSeed(store); });
    after(async () => { await s.stop(); });

    test('version discovery and a system-scoped token', async () => {
      const v = await s.call('GET', '/identity');
      assert.equal(v.status, 300);
      assert.equal(v.body.versions.values[0].id, 'v3.14');
      const r = await s.call('POST', '/identity/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { name: 'admin', domain: { name: 'Default' }, password: s.adminPassword } } }, scope: { system: { all: true } } } });
      assert.equal(r.status, 201);
      assert.deepEqual(r.body.token.system, { all: true });
      const types = r.body.token.catalog.map((c: any) => c.type).sort();
      assert.ok(types.includes('baremetal') && types.includes('identity'));
      for (const ep of r.body.token.catalog[0].endpoints) assert.equal(ep.region_id, 'RegionOne');
      assert.deepEqual(r.body.token.catalog[0].endpoints.map((e: any) => e.interface).sort(), ['admin', 'internal', 'public']);
    });

    test('validate (GET/HEAD), revoke (DELETE) a token', async () => {
      const t = await s.tokenFor('admin', s.adminPassword);
      const g = await s.call('GET', '/identity/v3/auth/tokens', undefined, { 'X-Subject-Token': t });
      assert.equal(g.status, 200);
      assert.equal(g.body.token.project.name, 'admin');
      assert.equal((await s.call('HEAD', '/identity/v3/auth/tokens', undefined, { 'X-Subject-Token': t })).status, 200);
      assert.equal((await s.call('DELETE', '/identity/v3/auth/tokens', undefined, { 'X-Subject-Token': t })).status, 204);
      assert.equal((await s.call('GET', '/identity/v3/auth/tokens', undefined, { 'X-Subject-Token': t })).status, 404);
      const use = await s.bm('GET', '/v1/nodes', undefined, { 'X-Auth-Token': t });
      assert.equal(use.status, 401);
    });

    test('bad requests get Keystone-shaped errors', async () => {
      const noBody = await s.call('POST', '/identity/v3/auth/tokens', {});
      assert.equal(noBody.status, 400);
      assert.equal(noBody.body.error.code, 400);
      const wrong = await s.call('POST', '/identity/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: 'wrong' } } } } });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.title, 'Unauthorized');
      const dup = await s.call('POST', '/identity/v3/users', { user: { name: 'admin', password: 'x' } });
      assert.equal(dup.status, 409);
      const noName = await s.call('POST', '/identity/v3/projects', { project: { description: 'x' } });
      assert.equal(noName.status, 400);
      assert.match(noName.body.error.message, /name/);
    });

    test('disabling a user revokes their tokens; a removed role takes effect', async () => {
      const u = (await s.call('POST', '/identity/v3/users', { user: { name: 'temp-user', password: 'temp-pass' } })).body.user;
      const member = (await s.call('GET', '/identity/v3/roles?name=member')).body.roles[0].id;
      const admin = (await s.call('GET', '/identity/v3/projects?name=admin')).body.projects[0].id;
      await s.call('PUT', `/identity/v3/projects/${admin}/users/${u.id}/roles/${member}`);
      const t = await s.tokenFor('temp-user', 'temp-pass');
      assert.equal((await s.bm('GET', '/v1/nodes', undefined, { 'X-Auth-Token': t })).status, 200);
      assert.equal((await s.call('PATCH', `/identity/v3/users/${u.id}`, { user: { enabled: false } })).status, 200);
      assert.equal((await s.bm('GET', '/v1/nodes', undefined, { 'X-Auth-Token': t })).status, 401);
      await assert.rejects(s.tokenFor('temp-user', 'temp-pass'));
    });
  });
}
