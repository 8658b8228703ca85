/**
 * A hostile BMC: random status codes, headers and bodies (malformed JSON, wrong shapes, broken
 * connections). The client must answer every call with a value or a RedfishError, never crash.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { test } from 'node:test';
import fc from 'fast-check';
import { RedfishClient, RedfishError } from '../../../src/protocols/redfish/client.js';
import { startBmc } from './fixtures.js';

interface Reply { status: number; headers: Record<string, string>; body: string; cut?: boolean }

const link = fc.oneof(
  fc.constantFrom('/redfish/v1/Systems/1', '/redfish/v1/Systems', '/redfish/v1/SessionService/Sessions', '/redfish/v1/Managers/1', '/redfish/v1/Managers/1/VirtualMedia', '/redfish/v1/Managers/1/VirtualMedia/Cd', 'http://[::1', '//evil.example/x', '', '/'),
  fc.string({ maxLength: 30 }),
);
const odata = fc.oneof(fc.record({ '@odata.id': link }), fc.anything({ maxDepth: 2 }));
const shaped = fc.oneof(
  fc.record({ Id: fc.anything({ maxDepth: 1 }), Systems: odata, Managers: odata, Links: fc.oneof(fc.record({ Sessions: odata }), fc.anything({ maxDepth: 2 })), SessionService: odata }, { requiredKeys: [] }),
  fc.record({ Members: fc.oneof(fc.array(odata, { maxLength: 4 }), fc.anything({ maxDepth: 2 })) }, { requiredKeys: [] }),
  fc.record({
    Id: fc.anything({ maxDepth: 1 }), PowerState: fc.oneof(fc.constantFrom('On', 'Off', 'PoweringOn'), fc.anything({ maxDepth: 1 })),
    Boot: fc.oneof(fc.record({ BootSourceOverrideTarget: fc.anything({ maxDepth: 1 }), 'BootSourceOverrideTarget@Redfish.AllowableValues': fc.anything({ maxDepth: 1 }) }, { requiredKeys: [] }), fc.anything({ maxDepth: 2 })),
    Actions: fc.oneof(fc.record({ '#ComputerSystem.Reset': fc.oneof(fc.record({ target: link, 'ResetType@Redfish.AllowableValues': fc.anything({ maxDepth: 1 }) }, { requiredKeys: [] }), fc.anything({ maxDepth: 1 })) }, { requiredKeys: [] }), fc.anything({ maxDepth: 2 })),
    Links: fc.anything({ maxDepth: 3 }), VirtualMedia: odata, MediaTypes: fc.anything({ maxDepth: 1 }),
  }, { requiredKeys: [] }),
  fc.record({ error: fc.oneof(fc.record({ code: fc.anything({ maxDepth: 1 }), message: fc.anything({ maxDepth: 1 }), '@Message.ExtendedInfo': fc.anything({ maxDepth: 2 }) }, { requiredKeys: [] }), fc.anything({ maxDepth: 2 })) }),
);
const body = fc.oneof(
  shaped.map((o) => JSON.stringify(o)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 80 }),
  shaped.map((o) => JSON.stringify(o).slice(0, -3)),
  fc.constantFrom('', 'null', '[]', '"error"', '{"error":"plain string"}', '{"error":{"code":5,"message":null}}', '{', '\u0000\u00ff'),
);
const reply: fc.Arbitrary<Reply> = fc.record({
  status: fc.oneof(fc.constantFrom(200, 201, 204, 400, 401, 403, 404, 405, 412, 500, 503), fc.integer({ min: 200, max: 599 })),
  headers: fc.record({ 'x-auth-token': fc.oneof(fc.stringMatching(/^[0-9a-f]{1,20}$/), fc.string({ maxLength: 10 })), location: link, etag: fc.string({ maxLength: 10 }) }, { requiredKeys: [] }),
  body,
  cut: fc.boolean().map((b) => b && Math.random() < 0.2),
});

const ops: ((c: RedfishClient) => Promise<unknown>)[] = [
  (c) => c.serviceRoot(),
  (c) => c.systems(),
  (c) => c.powerState(),
  (c) => c.powerState('/redfish/v1/Systems/1'),
  (c) => c.system('1'),
  (c) => c.reset('On', '/redfish/v1/Systems/1'),
  (c) => c.setBoot({ target: 'Pxe', enabled: 'Once' }, { id: '/redfish/v1/Systems/1', ifMatch: true }),
  (c) => c.virtualMedia('/redfish/v1/Systems/1'),
  (c) => c.insertMedia('http://127.0.0.1/x.iso', { id: '/redfish/v1/Systems/1' }),
  (c) => c.ejectMedia(),
  (c) => c.ethernetMacs('/redfish/v1/Systems/1'),
];

test('a hostile BMC never crashes the client', async () => {
  let script: Reply[] = [];
  let n = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      const r = script[n++ % Math.max(1, script.length)] ?? { status: 500, headers: {}, body: '' };
      try {
        res.statusCode = r.status;
        for (const [k, v] of Object.entries(r.headers)) { try { res.setHeader(k, v); } catch { /* invalid header value: leave it out */ } }
        if (r.cut) { res.setHeader('content-length', String(r.body.length + 100)); res.write(r.body); setImmediate(() => res.destroy()); return; }
        res.end(r.body);
      } catch { res.destroy(); }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  let errors = 0;
  let values = 0;
  try {
    await fc.assert(fc.asyncProperty(fc.array(reply, { minLength: 1, maxLength: 8 }), fc.nat(ops.length - 1), fc.constantFrom('auto', 'session', 'basic') as fc.Arbitrary<'auto' | 'session' | 'basic'>, async (replies, op, authType) => {
      script = replies;
      n = 0;
      const c = new RedfishClient({ address: url, username: 'u', password: 'p', timeoutMs: 2000, authType });
      try {
        await ops[op]!(c);
        values++;
      } catch (e) {
        if (!(e instanceof RedfishError)) throw new Error(`not a RedfishError: ${(e as Error)?.stack ?? String(e)}`);
        assert.ok(e.message.length > 0);
        errors++;
      } finally {
        await c.close();
      }
    }), { numRuns: 400 });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  console.log(`hostile BMC: ${values} calls answered, ${errors} clear errors`);
  assert.ok(errors > 0);
});

/** Replace one value somewhere in a JSON document (chosen by `pick`) with `value`. */
function mutate(doc: unknown, pick: number, value: unknown): unknown {
  const slots: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => { slots.push({ parent: v, key: i }); walk(x); });
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { slots.push({ parent: v as Record<string, unknown>, key: k }); walk(x); }
  };
  walk(doc);
  if (slots.length === 0) return value;
  const s = slots[pick % slots.length]!;
  (s.parent as Record<string | number, unknown>)[s.key] = value;
  return doc;
}

test('answers of a real BMC with one value mutated never crash the client', async () => {
  const bmc = await startBmc(['1']);
  const { request } = await import('node:http');
  // Mutations for the current case: request number -> (slot, value). Others pass through.
  let plan = new Map<number, { pick: number; value: unknown; status?: number }>();
  let n = 0;
  const front = createServer((req, res) => {
    const k = n++;
    const up = request({ host: '127.0.0.1', port: bmc.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const m = plan.get(k);
        let text = Buffer.concat(chunks).toString('utf8');
        if (m && text) { try { text = JSON.stringify(mutate(JSON.parse(text), m.pick, m.value)) ?? ''; } catch { /* leave it */ } }
        const headers = { ...r.headers };
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        res.writeHead(m?.status ?? r.statusCode!, headers);
        res.end(text);
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(front.address() as { port: number }).port}`;
  let values = 0;
  let errors = 0;
  const mutation = fc.record({
    at: fc.nat(6),
    pick: fc.nat(200),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, '', '/', '//x', 'http://[', [], {}, { '@odata.id': 5 })),
    status: fc.option(fc.constantFrom(200, 201, 204, 400, 401, 404, 412, 500), { nil: undefined }),
  }, { requiredKeys: ['at', 'pick', 'value'] });
  try {
    await fc.assert(fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.nat(ops.length - 1), async (muts, op) => {
      plan = new Map(muts.map((m) => [m.at, { pick: m.pick, value: m.value, status: m.status }]));
      n = 0;
      for (const m of bmc.machines.values()) await m.setBootOverride({ device: 'none', persistent: false, mode: 'bios' });
      const c = new RedfishClient({ address: url, username: 'admin', password: 'secret', timeoutMs: 2000 });
      try {
        await ops[op]!(c);
        values++;
      } catch (e) {
        if (!(e instanceof RedfishError)) throw new Error(`not a RedfishError: ${(e as Error)?.stack ?? String(e)}`);
        errors++;
      } finally {
        plan = new Map();
        await c.close();
        // Leave no media behind for the next case.
        const clean = new RedfishClient({ address: bmc.url, username: 'admin', password: 'secret', authType: 'basic' });
        await clean.ejectMedia({ id: '1' }).catch(() => undefined);
        await clean.close();
      }
    }), { numRuns: 300 });
  } finally {
    front.closeAllConnections();
    await new Promise((r) => front.close(r));
    await bmc.close();
  }
  console.log(`mutated BMC: ${values} calls answered, ${errors} clear errors`);
  assert.ok(values > 0 && errors > 0);
});
