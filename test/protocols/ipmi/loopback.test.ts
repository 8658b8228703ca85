import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { IpmiClient, IpmiError, IpmiServer, SUPPORTED_CIPHER_SUITES, closeIpmiSessions, ipmiSession } from '../../../src/protocols/ipmi/index.js';
import { SimMachine } from '../../../src/lab/sim-machine.js';
import { freeUdpPort } from './peers.js';

async function bmc(opts: { suites?: number[] } = {}) {
  const machine = new SimMachine({ name: 'm0', uuid: '6e5b0ba2-34d9-4d2c-9c87-5a8b0f9c2a11' });
  const server = new IpmiServer({ backend: machine, users: [{ name: 'admin', password: 'password' }, { name: 'viewer', password: 'secret', privilege: 2 }], cipherSuites: opts.suites });
  const port = await server.listen(0, '127.0.0.1');
  return { machine, server, port };
}

test('our client against our server, every supported cipher suite', async () => {
  const { machine, server, port } = await bmc();
  try {
    for (const suite of SUPPORTED_CIPHER_SUITES) {
      const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password', cipherSuite: suite, timeoutMs: 2000 });
      await c.powerOff();
      assert.equal(await c.powerState(), 'off', `suite ${suite}`);
      await c.powerOn();
      assert.equal(await machine.powerState(), 'on');
      const boots = machine.boots;
      await c.powerCycle();
      await c.reset();
      assert.equal(machine.boots, boots + 2);
      await c.softPowerOff();
      assert.equal(await machine.powerState(), 'off');
      await c.setBootDevice({ device: 'cdrom', persistent: true, mode: 'uefi' });
      assert.deepEqual(await machine.bootOverride(), { device: 'cdrom', persistent: true, mode: 'uefi' });
      const f = await c.getBootFlags();
      assert.deepEqual([f.valid, f.device, f.persistent, f.mode], [true, 'cdrom', true, 'uefi']);
      assert.equal((await c.deviceId()).ipmiVersion, '2.0');
      await c.close();
    }
    const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password' });
    assert.deepEqual(await c.getChannelCipherSuites(), SUPPORTED_CIPHER_SUITES);
    assert.equal((await c.getChannelAuthCapabilities()).ipmi20, true);
    assert.equal(await c.ping(), true);
    await c.close();
  } finally { await server.close(); }
});

test('errors: wrong password, unknown user, unsupported suite, privilege, dead BMC', async () => {
  const { server, port } = await bmc({ suites: [3] });
  const fail = async (o: Partial<ConstructorParameters<typeof IpmiClient>[0]>, kind: string, re: RegExp, status?: number) => {
    const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password', timeoutMs: 1000, ...o });
    const t0 = Date.now();
    const e = await c.powerState().then(() => undefined, (x: unknown) => x);
    await c.close();
    assert.ok(e instanceof IpmiError, `expected an IpmiError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, re);
    if (status !== undefined) assert.equal(e.detail.rakpStatus, status);
    assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
    assert.doesNotMatch(e.message, /password'/);
  };
  try {
    await fail({ password: 'wrong' }, 'auth', /rejected the password for user 'admin'.*0x0f/, 0x0f);
    await fail({ username: 'nobody' }, 'auth', /does not know user 'nobody'.*0x0d/, 0x0d);
    await fail({ cipherSuite: 17 }, 'unsupported_cipher', /does not support cipher suite 17/, 0x11);
    await fail({ username: 'viewer', password: 'secret' }, 'auth', /refused privilege level 4 for user 'viewer'/);
    const dead = await freeUdpPort();
    await fail({ port: dead }, 'timeout', new RegExp(`127.0.0.1:${dead} did not answer Get Channel Authentication Capabilities within 1000 ms`));
    assert.throws(() => new IpmiClient({ host: 'h', username: 'a', password: 'b', cipherSuite: 42 }), /cipher suite 42 is not supported/);
    // A user with operator rights is enough for chassis status with privilege 2.
    const v = new IpmiClient({ host: '127.0.0.1', port, username: 'viewer', password: 'secret', privilege: 2 });
    assert.equal(await v.powerState(), 'off');
    await assert.rejects(v.powerOn(), (e: IpmiError) => e.kind === 'completion' && e.detail.completionCode === 0xd4);
    await v.close();
  } finally { await server.close(); }
});

test('sessions are reused and requests serialised; a lost session is re-opened', async () => {
  const { machine, server, port } = await bmc();
  try {
    const opts = { host: '127.0.0.1', port, username: 'admin', password: 'password', timeoutMs: 1500 };
    const a = ipmiSession(opts);
    assert.equal(ipmiSession(opts), a);
    assert.notEqual(ipmiSession({ ...opts, cipherSuite: 17 }), a);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a.powerOn() : a.powerState())));
    assert.equal(results.length, 20);
    assert.equal(server.stats.sessionsOpened, 1, 'one session for all of them');
    // The BMC restarts and forgets its sessions: the client re-opens.
    await server.close();
    const again = new IpmiServer({ backend: machine, users: [{ name: 'admin', password: 'password' }] });
    await again.listen(port, '127.0.0.1');
    assert.equal(await a.powerState(), 'on');
    assert.equal(again.stats.sessionsOpened, 1);
    await closeIpmiSessions();
    await again.close();
  } finally { await server.close(); }
});

test('unknown commands get 0xC1; retransmitted requests are not executed twice', async () => {
  const { machine, server, port } = await bmc();
  const seen: Buffer[] = [];
  const orig = server.handle.bind(server);
  server.handle = (msg, rinfo) => { seen.push(Buffer.from(msg)); return orig(msg, rinfo); };
  try {
    const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password' });
    const r = await c.raw(0x2c, 0x3e, Buffer.from([0x00]));
    assert.equal(r.code, 0xc1);
    assert.equal(r.netFn, 0x2d);
    await assert.rejects(c.command(0x06, 0x99), (e: IpmiError) => e.kind === 'completion' && /0xc1/.test(e.message));
    await c.powerOn();
    assert.equal(machine.boots, 1);
    // The same packet again (a retransmission): answered, not acted upon twice.
    const again = seen[seen.length - 1]!;
    await orig(again, { address: '127.0.0.1', port: await freeUdpPort(), family: 'IPv4', size: again.length });
    await c.powerCycle();
    assert.equal(machine.boots, 2);
    await machine.powerOff();
    await orig(again, { address: '127.0.0.1', port: await freeUdpPort(), family: 'IPv4', size: again.length });
    assert.equal(await machine.powerState(), 'off', 'an old request replayed after a newer one is dropped');
    await c.close();
  } finally { await server.close(); }
});

test('an idle session is kept alive', async () => {
  const { server, port } = await bmc();
  try {
    const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password', keepaliveMs: 1000 });
    await c.powerState();
    const before = server.stats.received;
    await new Promise((r) => setTimeout(r, 1700));
    assert.ok(server.stats.received > before, 'a keepalive went out');
    assert.equal(await c.powerState(), 'off');
    assert.equal(server.stats.sessionsOpened, 1);
    await c.close();
    // A client left idle closes itself; a pooled one is then replaced.
    const idle = ipmiSession({ host: '127.0.0.1', port, username: 'admin', password: 'password', keepaliveMs: 1000, idleCloseMs: 500 });
    await idle.powerState();
    await new Promise((r) => setTimeout(r, 1700));
    assert.equal(idle.isClosed, true);
    const fresh = ipmiSession({ host: '127.0.0.1', port, username: 'admin', password: 'password', keepaliveMs: 1000, idleCloseMs: 500 });
    assert.notEqual(fresh, idle);
    assert.equal(await fresh.powerState(), 'off');
    await closeIpmiSessions();
  } finally { await server.close(); }
});

test('random and mutated packets never crash the server (property)', async () => {
  const { server, port } = await bmc();
  const seen: Buffer[] = [];
  const orig = server.handle.bind(server);
  server.handle = (msg, rinfo) => { seen.push(Buffer.from(msg)); return orig(msg, rinfo); };
  try {
    // Record a real conversation for every suite, then replay it mutated.
    for (const suite of SUPPORTED_CIPHER_SUITES) {
      const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password', cipherSuite: suite });
      await c.getChannelCipherSuites();
      await c.setBootDevice({ device: 'pxe' });
      await c.powerState();
      await c.close();
    }
    const sink = await freeUdpPort();
    const rinfo = { address: '127.0.0.1', port: sink, family: 'IPv4' as const, size: 0 };
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (a) => { await orig(Buffer.from(a), rinfo); }), { numRuns: 2000 });
    await fc.assert(fc.asyncProperty(fc.constantFrom(...seen), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), async (seed, flips, cut) => {
      const b = Buffer.from(seed);
      for (const [i, v] of flips) b[i % b.length] = v;
      await orig(cut % 5 === 0 ? b.subarray(0, cut % (b.length + 1)) : b, rinfo);
    }), { numRuns: 3000 });
    // Also over the wire, then check the BMC still serves.
    const s = createSocket('udp4');
    for (let i = 0; i < 300; i++) s.send(seen[i % seen.length]!.map((x, j) => (j === (i % 40) ? x ^ 0xa5 : x)), port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    s.close();
    const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password', cipherSuite: 17 });
    assert.equal(await c.powerState(), 'off');
    await c.close();
  } finally { await server.close(); }
});

test('a BMC that answers garbage never crashes the client (property)', async () => {
  const { server, port } = await bmc();
  // A proxy in front of the real BMC that mutates what it answers.
  const proxy = createSocket('udp4');
  const upstream = createSocket('udp4');
  let client: { port: number } | undefined;
  let mutate: (b: Buffer) => Buffer = (b) => b;
  proxy.on('message', (m, r) => { client = { port: r.port }; upstream.send(m, port, '127.0.0.1'); });
  upstream.on('message', (m) => { if (client) proxy.send(mutate(Buffer.from(m)), client.port, '127.0.0.1'); });
  await new Promise<void>((r) => proxy.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
  const pport = proxy.address().port;
  try {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 255 }), fc.boolean(), fc.constantFrom(3, 17, 0), async (pos, val, truncate, suite) => {
      mutate = (b) => { if (truncate) return b.subarray(0, pos % (b.length + 1)); if (pos < b.length) b[pos] = val; return b; };
      const c = new IpmiClient({ host: '127.0.0.1', port: pport, username: 'admin', password: 'password', cipherSuite: suite, timeoutMs: 60, retries: 0 });
      try { await c.powerState(); } catch (e) { assert.ok(e instanceof IpmiError, String(e)); }
      await c.close();
    }), { numRuns: 150 });
  } finally {
    proxy.close(); upstream.close();
    await server.close();
  }
});
