/**
 * The bare-metal API over HTTP, on SQLite and on PostgreSQL: resources, microversions,
 * pagination, the provision state machine with fake-hardware, and Ironic's error shapes.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { STORES, TestSeed, ironicMessage, startTestSeed, waitState } from '../helpers/seed.js';

for (const store of STORES) {
  describe(`bare-metal API on ${store}`, () => {
    let s: TestSeed;
    before(async () => { s = await startTestSeed(store); });
    after(async () => { await s.stop(); });

    test('version discovery needs no token and advertises 1.1..1.82', async () => {
      const root = await s.call('GET', '/baremetal', undefined, { 'X-Auth-Token': '' });
      assert.equal(root.status, 200);
      assert.equal(root.body.default_version.version, '1.82');
      assert.equal(root.headers.get('x-openstack-ironic-api-maximum-version'), '1.82');
      const v1 = await fetch(`${s.url}/baremetal/v1`);
      assert.equal(v1.status, 200);
      assert.ok((await v1.json()).nodes);
    });

    test('unsupported or malformed microversions are refused', async () => {
      const r = await s.bm('GET', '/v1/nodes', undefined, { 'X-OpenStack-Ironic-API-Version': '1.99' });
      assert.equal(r.status, 406);
      assert.match(ironicMessage(r.body), /supported version range is: \[1\.1, 1\.82\]/);
      const bad = await s.bm('GET', '/v1/nodes', undefined, { 'X-OpenStack-Ironic-API-Version': 'one' });
      assert.equal(bad.status, 400);
    });

    test('a request without a token gets 401 with the identity URL', async () => {
      const r = await fetch(`${s.url}/baremetal/v1/nodes`);
      assert.equal(r.status, 401);
      assert.match(r.headers.get('www-authenticate') ?? '', /Keystone uri=".*\/identity"/);
      const forged = await s.bm('GET', '/v1/nodes', undefined, { 'X-Auth-Token': s.token.slice(0, -4) + 'AAAA' });
      assert.equal(forged.status, 401);
    });

    test('create, show, list, patch, delete a node; secrets masked', async () => {
      const c = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'api-n1', driver_info: { ipmi_password: 'sekrit', ipmi_address: '10.0.0.1' }, properties: { cpus: 4 } });
      assert.equal(c.status, 201);
      assert.equal(c.body.provision_state, 'enroll');
      assert.equal(c.body.driver_info.ipmi_password, '******');
      assert.equal(c.body.driver_info.ipmi_address, '10.0.0.1');
      assert.equal(c.body.power_interface, 'fake');
      assert.ok(!JSON.stringify(c.body).includes('sekrit'));
      const show = await s.bm('GET', '/v1/nodes/api-n1');
      assert.equal(show.body.uuid, c.body.uuid);
      const old = await s.bm('GET', `/v1/nodes/${c.body.uuid}`, undefined, { 'X-OpenStack-Ironic-API-Version': '1.20' });
      assert.equal(old.body.traits, undefined, 'fields newer than the microversion are hidden');
      assert.equal(old.body.network_interface, 'noop');
      const p = await s.bm('PATCH', '/v1/nodes/api-n1', [{ op: 'add', path: '/extra/rack', value: 'r1' }, { op: 'replace', path: '/properties/cpus', value: 8 }, { op: 'remove', path: '/driver_info/ipmi_address' }]);
      assert.equal(p.status, 200, JSON.stringify(p.body));
      assert.deepEqual(p.body.extra, { rack: 'r1' });
      assert.equal(p.body.properties.cpus, 8);
      assert.equal(p.body.driver_info.ipmi_address, undefined);
      const internal = await s.bm('PATCH', '/v1/nodes/api-n1', [{ op: 'replace', path: '/provision_state', value: 'active' }]);
      assert.equal(internal.status, 400);
      assert.match(ironicMessage(internal.body), /internal attribute/);
      const d = await s.bm('DELETE', '/v1/nodes/api-n1');
      assert.equal(d.status, 204);
      assert.equal((await s.bm('GET', '/v1/nodes/api-n1')).status, 404);
    });

    test('bad input gets a 400 that names the problem', async () => {
      const badJson = await s.bm('POST', '/v1/nodes', '{"driver": ', { 'Content-Type': 'application/json' });
      assert.equal(badJson.status, 400);
      assert.match(ironicMessage(badJson.body), /not valid JSON/);
      const unknown = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', colour: 'red' });
      assert.equal(unknown.status, 400);
      assert.match(ironicMessage(unknown.body), /'colour' was unexpected/);
      const noDriver = await s.bm('POST', '/v1/nodes', { name: 'x' });
      assert.match(ironicMessage(noDriver.body), /'driver' is a required property/);
      const badDriver = await s.bm('POST', '/v1/nodes', { driver: 'nope' });
      assert.match(ironicMessage(badDriver.body), /driver 'nope' is unknown/);
      const badUuid = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', uuid: 'not-a-uuid' });
      assert.equal(badUuid.status, 400);
      assert.match(ironicMessage(badUuid.body), /Expected a UUID/);
      const badName = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'has space' });
      assert.match(ironicMessage(badName.body), /invalid name/);
      const n = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware' });
      const badMac = await s.bm('POST', '/v1/ports', { node_uuid: n.body.uuid, address: 'zz:zz' });
      assert.equal(badMac.status, 400);
      assert.match(ironicMessage(badMac.body), /Expected a MAC address/);
      const badIface = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', power_interface: 'ipmi-nope' });
      assert.match(ironicMessage(badIface.body), /power interface 'ipmi-nope'/);
      const badTarget = await s.bm('PUT', `/v1/nodes/${n.body.uuid}/states/provision`, { target: 'explode' });
      assert.equal(badTarget.status, 400);
      const illegal = await s.bm('PUT', `/v1/nodes/${n.body.uuid}/states/provision`, { target: 'active' });
      assert.equal(illegal.status, 400);
      assert.match(ironicMessage(illegal.body), /can not be performed on node .* while it is in state "enroll"/);
      const badSort = await s.bm('GET', '/v1/nodes?sort_key=driver_info');
      assert.equal(badSort.status, 400);
      const badField = await s.bm('GET', '/v1/nodes?fields=uuid,bogus');
      assert.match(ironicMessage(badField.body), /Field bogus is not a valid field/);
      const notFound = await s.bm('GET', '/v1/nodes/00000000-0000-0000-0000-000000000000');
      assert.equal(notFound.status, 404);
      const after = await s.bm('GET', `/v1/nodes/${n.body.uuid}`);
      assert.equal(after.body.reservation, null, 'no failed request leaves the node locked');
    });

    test('fake-hardware: enroll -> manageable -> available -> active -> available, recorded in history', async () => {
      const n = (await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'life' })).body;
      for (const [target, state] of [['manage', 'manageable'], ['provide', 'available'], ['active', 'active'], ['deleted', 'available']]) {
        const r = await s.bm('PUT', `/v1/nodes/life/states/provision`, { target });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        assert.match(r.headers.get('location') ?? '', /\/v1\/nodes\/.*\/states$/);
        await waitState(s, 'life', state!);
      }
      const node = (await s.bm('GET', '/v1/nodes/life')).body;
      assert.equal(node.power_state, 'power off');
      const h = await s.bm('GET', `/v1/nodes/${n.uuid}/history?detail=true`);
      const events = h.body.history.map((e: any) => e.event).join('\n');
      assert.match(events, /enroll -> verifying/);
      assert.match(events, /deploying -> active/);
      assert.ok(h.body.history.some((e: any) => typeof e.duration_ms === 'number'));
    });

    test('a node being worked on is locked (409), power and boot device work', async () => {
      const n = (await s.bm('POST', '/v1/nodes', { driver: 'sim', name: 'slow', driver_info: { sim_delay_ms: 800 } })).body;
      const m = await s.bm('PUT', '/v1/nodes/slow/states/provision', { target: 'manage' });
      assert.equal(m.status, 202);
      await waitState(s, 'slow', 'manageable');
      const on = await s.bm('PUT', '/v1/nodes/slow/states/power', { target: 'power on' });
      assert.equal(on.status, 202);
      const again = await s.bm('PATCH', '/v1/nodes/slow', [{ op: 'add', path: '/extra/x', value: 1 }]);
      assert.equal(again.status, 409);
      assert.match(ironicMessage(again.body), /is locked by host/);
      await waitState(s, 'slow', 'manageable');
      const st = await s.bm('GET', `/v1/nodes/${n.uuid}/states`);
      assert.equal(st.body.power_state, 'power on');
      const bd = await s.bm('PUT', '/v1/nodes/slow/management/boot_device', { boot_device: 'pxe', persistent: true });
      assert.equal(bd.status, 204, JSON.stringify(bd.body));
      const got = await s.bm('GET', '/v1/nodes/slow/management/boot_device');
      assert.deepEqual(got.body, { boot_device: 'pxe', persistent: true });
      const badDev = await s.bm('PUT', '/v1/nodes/slow/management/boot_device', { boot_device: 'floppy' });
      assert.equal(badDev.status, 400);
      const v = await s.bm('GET', '/v1/nodes/slow/validate');
      assert.equal(v.body.power.result, true);
    });

    test('a simulated failure ends in deploy failed with last_error; the operator can retry', async () => {
      await s.bm('POST', '/v1/nodes', { driver: 'sim', name: 'flaky', driver_info: { sim_delay_ms: 0, sim_fail: 'deploy' }, instance_info: { image_source: 'img' } });
      for (const [t, st] of [['manage', 'manageable'], ['provide', 'available']]) {
        await s.bm('PUT', '/v1/nodes/flaky/states/provision', { target: t });
        await waitState(s, 'flaky', st!, 20000);
      }
      await s.bm('PUT', '/v1/nodes/flaky/states/provision', { target: 'active' });
      const failed = await waitState(s, 'flaky', 'deploy failed');
      assert.match(failed.last_error, /image write failed/);
      await s.bm('PATCH', '/v1/nodes/flaky', [{ op: 'remove', path: '/driver_info/sim_fail' }]);
      await s.bm('PUT', '/v1/nodes/flaky/states/provision', { target: 'active' });
      const ok = await waitState(s, 'flaky', 'active', 20000);
      assert.equal(ok.last_error, null);
    });

    test('pagination with limit, marker and next; sorting; filters', async () => {
      const made: string[] = [];
      for (let i = 0; i < 7; i++) made.push((await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: `pg-${i}`, resource_class: 'rc-page' })).body.uuid);
      const seen: string[] = [];
      let url = '/v1/nodes?resource_class=rc-page&limit=3&sort_key=name';
      let pages = 0;
      while (url) {
        const r = await s.bm('GET', url);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        seen.push(...r.body.nodes.map((n: any) => n.name));
        url = r.body.next ? r.body.next.slice(r.body.next.indexOf('/v1/')) : '';
        pages++;
      }
      assert.deepEqual(seen, made.map((_, i) => `pg-${i}`));
      assert.equal(pages, 3);
      const desc = await s.bm('GET', '/v1/nodes?resource_class=rc-page&sort_key=name&sort_dir=desc&fields=name');
      assert.equal(desc.body.nodes[0].name, 'pg-6');
      assert.deepEqual(Object.keys(desc.body.nodes[0]).sort(), ['links', 'name']);
      const det = await s.bm('GET', '/v1/nodes/detail?resource_class=rc-page&limit=1');
      assert.ok('driver_info' in det.body.nodes[0]);
    });

    test('ports, allocations, traits, deploy templates, drivers, conductors', async () => {
      const n = (await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'alloc-n', resource_class: 'gold' })).body;
      const port = await s.bm('POST', '/v1/ports', { node_uuid: n.uuid, address: '52:54:00:AA:BB:01' });
      assert.equal(port.status, 201);
      assert.equal(port.body.address, '52:54:00:aa:bb:01');
      const dup = await s.bm('POST', '/v1/ports', { node_uuid: n.uuid, address: '52:54:00:aa:bb:01' });
      assert.equal(dup.status, 409);
      const ports = await s.bm('GET', `/v1/nodes/${n.uuid}/ports`);
      assert.equal(ports.body.ports.length, 1);
      assert.equal((await s.bm('PUT', `/v1/nodes/${n.uuid}/traits/CUSTOM_GPU`)).status, 204);
      assert.deepEqual((await s.bm('GET', `/v1/nodes/${n.uuid}/traits`)).body.traits, ['CUSTOM_GPU']);
      for (const t of ['manage', 'provide']) { await s.bm('PUT', `/v1/nodes/${n.uuid}/states/provision`, { target: t }); await waitState(s, n.uuid, t === 'manage' ? 'manageable' : 'available'); }
      const miss = await s.bm('POST', '/v1/allocations', { resource_class: 'gold', traits: ['CUSTOM_FPGA'] });
      assert.equal(miss.body.state, 'error');
      assert.match(miss.body.last_error, /no available nodes match/);
      const a = await s.bm('POST', '/v1/allocations', { resource_class: 'gold', traits: ['CUSTOM_GPU'], name: 'a1' });
      assert.equal(a.status, 201);
      assert.equal(a.body.state, 'active');
      assert.equal(a.body.node_uuid, n.uuid);
      assert.equal((await s.bm('GET', `/v1/nodes/${n.uuid}`)).body.allocation_uuid, a.body.uuid);
      assert.equal((await s.bm('DELETE', '/v1/allocations/a1')).status, 204);
      const tpl = await s.bm('POST', '/v1/deploy_templates', { name: 'CUSTOM_RAID1', steps: [{ interface: 'raid', step: 'apply_configuration', args: {}, priority: 10 }] });
      assert.equal(tpl.status, 201, JSON.stringify(tpl.body));
      const badTpl = await s.bm('POST', '/v1/deploy_templates', { name: 'raid1', steps: [] });
      assert.equal(badTpl.status, 400);
      const drivers = await s.bm('GET', '/v1/drivers');
      assert.ok(drivers.body.drivers.some((d: any) => d.name === 'fake-hardware' && d.hosts.length === 1));
      const props = await s.bm('GET', '/v1/drivers/sim/properties');
      assert.ok(props.body.sim_delay_ms);
      const cond = await s.bm('GET', '/v1/conductors');
      assert.equal(cond.body.conductors[0].alive, true);
    });

    test('readers read but cannot write; project members see only their nodes', async () => {
      const u = await s.call('POST', '/identity/v3/users', { user: { name: 'viewer', password: 'viewer-pass' } });
      assert.equal(u.status, 201);
      const roles = await s.call('GET', '/identity/v3/roles?name=reader');
      const reader = roles.body.roles[0].id;
      assert.equal((await s.call('PUT', `/identity/v3/system/users/${u.body.user.id}/roles/${reader}`)).status, 204);
      const tok = await s.tokenFor('viewer', 'viewer-pass', { system: { all: true } });
      const h = { 'X-Auth-Token': tok };
      assert.equal((await s.bm('GET', '/v1/nodes', undefined, h)).status, 200);
      const w = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware' }, h);
      assert.equal(w.status, 403);
      const proj = await s.call('POST', '/identity/v3/projects', { project: { name: 'tenant-a' } });
      const member = (await s.call('GET', '/identity/v3/roles?name=member')).body.roles[0].id;
      const u2 = await s.call('POST', '/identity/v3/users', { user: { name: 'tenant-user', password: 'tenant-pass' } });
      await s.call('PUT', `/identity/v3/projects/${proj.body.project.id}/users/${u2.body.user.id}/roles/${member}`);
      const owned = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'owned-by-a', owner: proj.body.project.id });
      assert.equal(owned.status, 201);
      const t2 = await s.tokenFor('tenant-user', 'tenant-pass', { project: { id: proj.body.project.id } });
      const mine = await s.bm('GET', '/v1/nodes', undefined, { 'X-Auth-Token': t2 });
      assert.deepEqual(mine.body.nodes.map((n: any) => n.name), ['owned-by-a']);
    });
  });
}
