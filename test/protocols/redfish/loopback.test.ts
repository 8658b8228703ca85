/** Our Redfish client against our Redfish server: every operation, auth modes, errors, TLS. */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { RedfishClient, RedfishError } from '../../../src/protocols/redfish/client.js';
import { hasOpenssl, makeCerts, startBmc } from './fixtures.js';

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

test('service root without auth; systems, power, reset, MACs', async () => {
  const bmc = await startBmc(['n0', 'n1']);
  const c = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret' });
  try {
    const root = await c.serviceRoot();
    assert.equal((root.Systems as { '@odata.id': string })['@odata.id'], '/redfish/v1/Systems');
    assert.deepEqual(await c.systems(), ['/redfish/v1/Systems/n0', '/redfish/v1/Systems/n1']);
    assert.equal(c.authMode, 'session');
    const s = await c.system('/redfish/v1/Systems/n1');
    assert.equal(s.id, 'n1');
    assert.equal(s.uuid, bmc.machines.get('n1')!.uuid);
    assert.equal(s.powerState, 'Off');
    assert.ok(s.etag);
    assert.ok(s.resetTypes?.includes('ForceRestart'));
    assert.ok(s.boot.allowedTargets?.includes('Pxe'));
    assert.equal(await c.systemPath('n0'), '/redfish/v1/Systems/n0');
    await assert.rejects(c.systemPath(), (e: RedfishError) => e.kind === 'bad_request' && /has 2 systems/.test(e.message));
    assert.deepEqual(await c.ethernetMacs('n1'), ['52:54:00:aa:00:01', '52:54:00:bb:00:01']);

    const m = bmc.machines.get('n1')!;
    await c.reset('On', 'n1');
    assert.equal(await m.powerState(), 'on');
    assert.equal(await c.powerState('n1'), 'On');
    const boots = m.boots;
    await c.reset('ForceRestart', 'n1');
    assert.equal(m.boots, boots + 1);
    await c.reset('GracefulShutdown', 'n1');
    assert.equal(await m.powerState(), 'off');
    await c.reset('PowerCycle', 'n1');
    assert.equal(await m.powerState(), 'on');
    await c.reset('Nmi', 'n1');
    await c.reset('GracefulRestart', 'n1');
    await c.reset('ForceOff', 'n1');
    assert.equal(await c.powerState('n1'), 'Off');
    await assert.rejects(c.reset('Bogus' as never, 'n1'), (e: RedfishError) => e.kind === 'bad_request' && /does not allow ResetType Bogus/.test(e.message));
    await assert.rejects(c.request('POST', '/redfish/v1/Systems/n1/Actions/ComputerSystem.Reset', { ResetType: 'Bogus' }),
      (e: RedfishError) => e.kind === 'bad_request' && e.status === 400 && e.code === 'Base.1.8.ActionParameterValueNotInList' && /Bogus/.test(e.message));
  } finally { await c.close(); await bmc.close(); }
});

test('boot override: PATCH, If-Match with the current ETag, 412 on a stale one', async () => {
  const bmc = await startBmc(['n0']);
  const c = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret' });
  const m = bmc.machines.get('n0')!;
  try {
    await c.setBoot({ target: 'Pxe', enabled: 'Once', mode: 'UEFI' });
    assert.deepEqual(await m.bootOverride(), { device: 'pxe', persistent: false, mode: 'uefi' });
    const s = await c.system();
    assert.deepEqual([s.boot.BootSourceOverrideTarget, s.boot.BootSourceOverrideEnabled, s.boot.BootSourceOverrideMode], ['Pxe', 'Once', 'UEFI']);
    await c.setBoot({ target: 'Hdd', enabled: 'Continuous' }, { etag: s.etag });
    assert.deepEqual(await m.bootOverride(), { device: 'disk', persistent: true, mode: 'uefi' });
    // s.etag is stale now.
    await assert.rejects(c.setBoot({ target: 'Cd', enabled: 'Once' }, { etag: s.etag }), (e: RedfishError) => e.kind === 'precondition' && e.status === 412);
    assert.equal((await m.bootOverride()).device, 'disk');
    await c.setBoot({ target: 'BiosSetup', enabled: 'Once', mode: 'Legacy' }, { ifMatch: true });
    assert.deepEqual(await m.bootOverride(), { device: 'bios', persistent: false, mode: 'bios' });
    await c.setBoot({ enabled: 'Disabled' });
    assert.equal((await m.bootOverride()).device, 'none');
    await assert.rejects(c.setBoot({ target: 'Floppy', enabled: 'Once' }), (e: RedfishError) => e.kind === 'bad_request' && /Floppy/.test(e.message));
    await assert.rejects(c.request('PATCH', '/redfish/v1/Systems/n0', { PowerState: 'On' }), (e: RedfishError) => e.kind === 'bad_request' && /not writable/.test(e.message));
  } finally { await c.close(); await bmc.close(); }
});

test('virtual media: insert and eject through the manager', async () => {
  const bmc = await startBmc(['n0', 'n1']);
  const c = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret' });
  try {
    let vm = await c.virtualMedia('n1');
    assert.equal(vm.length, 1);
    assert.equal(vm[0]!.path, '/redfish/v1/Managers/n1/VirtualMedia/Cd');
    assert.equal(vm[0]!.inserted, false);
    await c.insertMedia('http://127.0.0.1/boot.iso', { id: 'n1' });
    vm = await c.virtualMedia('n1');
    assert.equal(vm[0]!.inserted, true);
    assert.equal(vm[0]!.image, 'http://127.0.0.1/boot.iso');
    assert.equal((await c.virtualMedia('n0'))[0]!.inserted, false);
    await assert.rejects(c.insertMedia('http://127.0.0.1/other.iso', { id: 'n1' }), (e: RedfishError) => e.kind === 'bad_request' && /already inserted/.test(e.message));
    await c.ejectMedia({ id: 'n1' });
    vm = await c.virtualMedia('n1');
    assert.equal(vm[0]!.inserted, false);
    assert.equal(vm[0]!.image, null);
    await assert.rejects(c.insertMedia('x', { id: 'n1', mediaType: 'Floppy' }), (e: RedfishError) => e.kind === 'not_found');
  } finally { await c.close(); await bmc.close(); }
});

test('sessions: token reused, deleted on close, re-login after the BMC dropped it; Basic mode', async () => {
  const bmc = await startBmc(['n0']);
  try {
    const c = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret' });
    await c.powerState();
    assert.equal(c.authMode, 'session');
    const list = async () => {
      const r = await fetch(`${bmc.url}/redfish/v1/SessionService/Sessions`, { headers: { authorization: basic('admin', 'secret') } });
      return ((await r.json()) as { Members: { '@odata.id': string }[] }).Members.map((m) => m['@odata.id']);
    };
    const before = await list();
    assert.equal(before.length, 1);
    for (let i = 0; i < 5; i++) await c.powerState();
    assert.equal((await list()).length, 1, 'one session for many requests');
    // The BMC forgets the session: the next request logs in again.
    const del = await fetch(`${bmc.url}${before[0]}`, { method: 'DELETE', headers: { authorization: basic('admin', 'secret') } });
    assert.equal(del.status, 204);
    assert.equal(await c.powerState(), 'Off');
    const after = await list();
    assert.equal(after.length, 1);
    assert.notEqual(after[0], before[0]);
    await c.close();
    assert.equal((await list()).length, 0, 'the session is deleted on close');

    const b = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret', authType: 'basic' });
    assert.equal(await b.powerState(), 'Off');
    assert.equal(b.authMode, 'basic');
    assert.equal((await list()).length, 0);
    await b.close();
  } finally { await bmc.close(); }
});

test('Basic fallback when the BMC offers no sessions', async () => {
  const bmc = await startBmc(['n0']);
  // A front that hides the session service (404), as some BMCs do.
  const { createServer: createHttp, request } = await import('node:http');
  const front = createHttp((req, res) => {
    if (req.url?.includes('SessionService')) { res.writeHead(404, { 'content-type': 'application/json' }); res.end('{"error":{"code":"Base.1.8.ResourceMissingAtURI","message":"no sessions"}}'); return; }
    const up = request({ host: '127.0.0.1', port: bmc.port, path: req.url, method: req.method, headers: req.headers }, (r) => { res.writeHead(r.statusCode!, r.headers); r.pipe(res); });
    req.pipe(up);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const port = (front.address() as { port: number }).port;
  const c = new RedfishClient({ address: `http://127.0.0.1:${port}`, username: 'admin', password: 'secret' });
  try {
    assert.equal(await c.powerState(), 'Off');
    assert.equal(c.authMode, 'basic');
    await c.reset('On');
    assert.equal(await bmc.machines.get('n0')!.powerState(), 'on');
    const s = new RedfishClient({ address: `http://127.0.0.1:${port}`, username: 'admin', password: 'secret', authType: 'session' });
    await assert.rejects(s.powerState(), (e: RedfishError) => e.kind === 'not_found');
    await s.close();
  } finally { await c.close(); front.closeAllConnections(); await new Promise((r) => front.close(r)); await bmc.close(); }
});

test('wrong password, unknown system, no credentials', async () => {
  const bmc = await startBmc(['n0']);
  try {
    for (const authType of ['auto', 'session', 'basic'] as const) {
      const c = new RedfishClient({ address: bmc.url, username: 'admin', password: 'wrong', authType });
      await assert.rejects(c.powerState(), (e: RedfishError) => e.kind === 'auth' && e.status === 401 && /authentication failed/.test(e.message) && !e.message.includes('wrong'));
      await c.close();
    }
    const c = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret' });
    await assert.rejects(c.system('/redfish/v1/Systems/nope'), (e: RedfishError) => e.kind === 'not_found' && e.status === 404 && /no system 'nope'/.test(e.message));
    await assert.rejects(c.system('nope'), (e: RedfishError) => e.kind === 'not_found' && /has no system 'nope'/.test(e.message));
    await c.close();
    const anon = new RedfishClient({ address: bmc.url });
    await assert.rejects(anon.powerState(), (e: RedfishError) => e.kind === 'auth');
    await anon.close();
    // Error bodies are Redfish error objects, never plain strings.
    const r = await fetch(`${bmc.url}/redfish/v1/Systems/n0`, { headers: { authorization: basic('admin', 'x') } });
    assert.equal(r.status, 401);
    const body = (await r.json()) as { error: { code: string; message: string; '@Message.ExtendedInfo': unknown[] } };
    assert.match(body.error.code, /^Base\./);
    assert.ok(body.error['@Message.ExtendedInfo'].length > 0);
    const bad = await fetch(`${bmc.url}/redfish/v1/SessionService/Sessions`, { method: 'POST', body: '{nope', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'Base.1.8.MalformedJSON');
  } finally { await bmc.close(); }
});

test('dead BMC: a clear error within the timeout; a silent one times out', async () => {
  // A port nobody listens on.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  const c = new RedfishClient({ address: `http://127.0.0.1:${port}`, username: 'a', password: 'b', timeoutMs: 2000 });
  let t0 = Date.now();
  await assert.rejects(c.powerState(), (e: RedfishError) => e.kind === 'unreachable' && /cannot reach the BMC at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/.test(e.message));
  assert.ok(Date.now() - t0 < 2000);
  await c.close();
  // Accepts connections, never answers.
  const silent = createServer((sock) => { sock.resume(); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const s = new RedfishClient({ address: `http://127.0.0.1:${(silent.address() as { port: number }).port}`, username: 'a', password: 'b', timeoutMs: 500 });
  t0 = Date.now();
  await assert.rejects(s.powerState(), (e: RedfishError) => e.kind === 'timeout' && /within 500 ms/.test(e.message));
  assert.ok(Date.now() - t0 < 1500);
  await s.close();
  await new Promise((r) => silent.close(r));
});

test('Connection: close is honoured', async () => {
  const bmc = await startBmc(['n0']);
  try {
    const { request } = await import('node:http');
    const closed = await new Promise<boolean>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: bmc.port, path: '/redfish/v1/', headers: { connection: 'close' } }, (res) => {
        assert.equal(res.headers.connection, 'close');
        res.resume();
        res.on('end', () => req.socket?.once('close', () => resolve(true)));
      });
      req.on('error', reject);
      req.end();
    });
    assert.ok(closed);
  } finally { await bmc.close(); }
});

test('TLS: verify off accepts a self-signed BMC, a CA path verifies it, default verification refuses it', { skip: hasOpenssl() ? false : 'openssl is not installed' }, async () => {
  const certs = makeCerts();
  const bmc = await startBmc(['n0'], { tls: { key: certs.key, cert: certs.cert } });
  try {
    const off = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret', verify: false });
    assert.equal(await off.powerState(), 'Off');
    await off.close();
    const ca = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret', verify: certs.caPath });
    await ca.reset('On');
    assert.equal(await ca.powerState(), 'On');
    await ca.close();
    const strict = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret', timeoutMs: 3000 });
    await assert.rejects(strict.powerState(), (e: RedfishError) => e.kind === 'unreachable' && /TLS/.test(e.message));
    await strict.close();
    assert.throws(() => new RedfishClient({ address: bmc.url, verify: '/nonexistent/ca.pem' }), /cannot read the CA bundle/);
  } finally { await bmc.close(); }
});

test('server: at most 1024 sessions (oldest dropped), If-Match *, 405 and 404 bodies', async () => {
  const bmc = await startBmc(['n0']);
  try {
    const login = async () => {
      const r = await fetch(`${bmc.url}/redfish/v1/SessionService/Sessions`, { method: 'POST', body: JSON.stringify({ UserName: 'admin', Password: 'secret' }), headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 201);
      await r.arrayBuffer();
      return r.headers.get('x-auth-token')!;
    };
    const first = await login();
    for (let i = 0; i < 1024; i++) await login();
    const gone = await fetch(`${bmc.url}/redfish/v1/Systems/n0`, { headers: { 'x-auth-token': first } });
    assert.equal(gone.status, 401);
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'Base.1.8.NoValidSession');
    const list = await fetch(`${bmc.url}/redfish/v1/SessionService/Sessions`, { headers: { authorization: basic('admin', 'secret') } });
    assert.equal(((await list.json()) as { Members: unknown[] }).Members.length, 1024);

    const star = await fetch(`${bmc.url}/redfish/v1/Systems/n0`, { method: 'PATCH', body: JSON.stringify({ Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } }), headers: { authorization: basic('admin', 'secret'), 'if-match': '*', 'content-type': 'application/json' } });
    assert.equal(star.status, 200);
    assert.ok(star.headers.get('etag'));
    assert.equal((await bmc.machines.get('n0')!.bootOverride()).device, 'cdrom');
    const del = await fetch(`${bmc.url}/redfish/v1/Systems`, { method: 'DELETE', headers: { authorization: basic('admin', 'secret') } });
    assert.equal(del.status, 405);
    assert.equal(((await del.json()) as { error: { code: string } }).error.code, 'Base.1.8.OperationNotAllowed');
    const nf = await fetch(`${bmc.url}/redfish/v1/Nope`, { headers: { authorization: basic('admin', 'secret') } });
    assert.equal(nf.status, 404);
    assert.match(((await nf.json()) as { error: { message: string } }).error.message, /\/redfish\/v1\/Nope/);
  } finally { await bmc.close(); }
});
