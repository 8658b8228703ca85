/** iPXE script rendering and the boot HTTP handlers (scripts by MAC, static files with Range). */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, request, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootHttpHandler, parseRange } from '../../src/boot/http.js';
import { normaliseMac, renderChainScript, renderLocalBootScript, renderRamdiskScript } from '../../src/boot/ipxe.js';

test('ramdisk script: kernel args carry seed URL, token, node and console; retries', () => {
  const s = renderRamdiskScript({ kernelUrl: 'http://192.0.2.1:8080/boot/files/k', initrdUrl: 'http://192.0.2.1:8080/boot/files/i', apiUrl: 'http://192.0.2.1:6385/baremetal', token: 'abc_-123', node: 'u-1', extraArgs: ['ooo.poll=1'] });
  assert.ok(s.startsWith('#!ipxe\n'));
  assert.match(s, /^kernel --name kernel http:\/\/192\.0\.2\.1:8080\/boot\/files\/k initrd=initramfs console=ttyS0,115200 ooo\.api=http:\/\/192\.0\.2\.1:6385\/baremetal ooo\.token=abc_-123 ooo\.node=u-1 ooo\.poll=1 \|\| goto failed$/m);
  assert.match(s, /^initrd --name initramfs http:\/\/192\.0\.2\.1:8080\/boot\/files\/i \|\| goto failed$/m);
  assert.match(s, /^boot \|\| goto failed$/m);
  assert.match(s, /^sleep 5\ngoto retry$/m);
  assert.doesNotMatch(s, /giveup/);
  const limited = renderRamdiskScript({ kernelUrl: 'http://a/k', initrdUrl: 'http://a/i', apiUrl: 'http://a', token: 't', attempts: 3 });
  assert.match(limited, /iseq \$\{ooo-attempt\} 3 && goto giveup \|\|/);
  assert.match(limited, /:giveup\n.*\nexit 1\n$/);
  assert.throws(() => renderRamdiskScript({ kernelUrl: 'http://a/k', initrdUrl: 'http://a/i', apiUrl: 'http://a', token: 'has space' }), /token 'has space' must be printable/);
  assert.throws(() => renderRamdiskScript({ kernelUrl: 'http://a/${x}', initrdUrl: 'http://a/i', apiUrl: 'http://a', token: 't' }), /kernelUrl/);
});

test('local boot and chain scripts: exit after the chain so the firmware moves on', () => {
  assert.equal(renderLocalBootScript(), '#!ipxe\necho ooo: booting from the local disk\nexit\n');
  const c = renderChainScript({ baseUrl: 'http://192.0.2.1:8080/' });
  assert.match(c, /^chain --autofree http:\/\/192\.0\.2\.1:8080\/boot\/\$\{mac:hexhyp\}\.ipxe \|\| goto failed\nexit\n/m);
  assert.match(c, /iseq \$\{ooo-attempt\} 3 && goto giveup/);
});

test('MAC forms in URLs', () => {
  assert.equal(normaliseMac('52-54-00-AB-00-01'), '52:54:00:ab:00:01');
  assert.equal(normaliseMac('52:54:00:ab:00:01'), '52:54:00:ab:00:01');
  assert.equal(normaliseMac('525400ab0001'), '52:54:00:ab:00:01');
  assert.equal(normaliseMac('52-54-00-ab-00'), undefined);
  assert.equal(normaliseMac('zz-54-00-ab-00-01'), undefined);
});

test('Range parsing', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), [0, 9]);
  assert.deepEqual(parseRange('bytes=90-', 100), [90, 99]);
  assert.deepEqual(parseRange('bytes=-10', 100), [90, 99]);
  assert.deepEqual(parseRange('bytes=50-500', 100), [50, 99]);
  assert.equal(parseRange('bytes=100-', 100), 'bad');
  assert.equal(parseRange('bytes=9-1', 100), 'bad');
  assert.equal(parseRange('bytes=0-1,5-6', 100), undefined);
  assert.equal(parseRange('lines=1-2', 100), undefined);
  assert.equal(parseRange(undefined, 100), undefined);
});

describe('boot HTTP handler', () => {
  let dir: string;
  let server: Server;
  let port = 0;
  const data = Buffer.alloc(3 * 1024 * 1024 + 7);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 255;
  const asked: string[] = [];

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => new Promise<{ status: number; headers: Record<string, any>; body: Buffer }>((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    r.on('error', reject);
    r.end();
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-boothttp-'));
    writeFileSync(join(dir, 'vmlinuz'), data);
    writeFileSync(join(tmpdir(), 'ooo-outside-secret'), 'secret');
    symlinkSync(join(tmpdir(), 'ooo-outside-secret'), join(dir, 'escape'));
    const handler = bootHttpHandler({
      baseUrl: 'http://192.0.2.1:8080', filesDir: dir,
      scriptFor: (mac) => { asked.push(mac); if (mac === '52:54:00:00:00:0e') throw new Error('no image'); return mac === '52:54:00:00:00:01' ? renderLocalBootScript() : undefined; },
    });
    server = createServer(async (req, res) => { if (!(await handler(req, res))) { res.writeHead(418); res.end('not mine'); } });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); rmSync(join(tmpdir(), 'ooo-outside-secret'), { force: true }); });

  test('boot.ipxe and per-MAC scripts (any MAC form), 404 for unknown, 400 for junk, 500 names the failure', async () => {
    const chain = await get('/boot.ipxe');
    assert.equal(chain.status, 200);
    assert.match(chain.body.toString(), /chain --autofree http:\/\/192\.0\.2\.1:8080\/boot\/\$\{mac:hexhyp\}\.ipxe/);
    const s = await get('/boot/52-54-00-00-00-01.ipxe');
    assert.equal(s.status, 200);
    assert.equal(s.headers['cache-control'], 'no-store');
    assert.match(s.body.toString(), /exit/);
    assert.equal((await get('/boot/52:54:00:00:00:01.ipxe')).status, 200);
    assert.equal((await get('/boot/52-54-00-00-00-02.ipxe')).status, 404);
    assert.equal((await get('/boot/not-a-mac.ipxe')).status, 400);
    const failed = await get('/boot/52-54-00-00-00-0e.ipxe');
    assert.equal(failed.status, 500);
    assert.match(failed.body.toString(), /echo ooo: the seed failed to make a boot script: no image/);
    assert.deepEqual(asked.slice(0, 2), ['52:54:00:00:00:01', '52:54:00:00:00:01']);
    assert.equal((await get('/boot.ipxe', {}, 'POST')).status, 405);
  });

  test('static files: whole, ranges, HEAD, conditional, 416, no escape from the directory', async () => {
    const whole = await get('/boot/files/vmlinuz');
    assert.equal(whole.status, 200);
    assert.equal(Number(whole.headers['content-length']), data.length);
    assert.ok(whole.body.equals(data));
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    const part = await get('/boot/files/vmlinuz', { Range: 'bytes=1048570-1048585' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1048570-1048585/${data.length}`);
    assert.ok(part.body.equals(data.subarray(1048570, 1048586)));
    const tail = await get('/boot/files/vmlinuz', { Range: 'bytes=-7' });
    assert.ok(tail.body.equals(data.subarray(data.length - 7)));
    const bad = await get('/boot/files/vmlinuz', { Range: `bytes=${data.length}-` });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], `bytes */${data.length}`);
    const head = await get('/boot/files/vmlinuz', {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal((await get('/boot/files/vmlinuz', { 'If-None-Match': whole.headers.etag })).status, 304);
    const stale = await get('/boot/files/vmlinuz', { Range: 'bytes=0-0', 'If-Range': '"old"' });
    assert.equal(stale.status, 200);
    for (const p of ['/boot/files/../http.test.js', '/boot/files/%2e%2e/x', '/boot/files/escape', '/boot/files/', '/boot/files/nope']) assert.equal((await get(p)).status, 404, p);
    assert.equal((await get('/elsewhere')).status, 418, 'not handled: left to the next handler');
  });
});
