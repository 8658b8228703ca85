/**
 * The image API over HTTP on SQLite and PostgreSQL: Glance's create/upload/download/list/patch/
 * delete/tags/import, bad input (formats, truncated uploads, checksum mismatch, empty data, path
 * traversal in names), byte ranges, the in-use check, and serving to machines with raw conversion.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { STORES, TestSeed, eventually, startTestSeed, waitState } from '../helpers/seed.js';

const QEMU = existsSync('/usr/bin/qemu-img') ? false : 'qemu-img is not installed (Debian qemu-utils)';
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p)); else out.push(p);
  }
  return out;
}

for (const store of STORES) {
  describe(`image API on ${store}`, () => {
    let s: TestSeed;
    const img = (m: string, p: string, b?: unknown, h: Record<string, string> = {}) => s.call(m, `/image/v2${p}`, b, h);
    const upload = async (id: string, data: Buffer, headers: Record<string, string> = {}) => {
      const r = await fetch(`${s.url}/image/v2/images/${id}/file`, { method: 'PUT', body: new Uint8Array(data), headers: { 'X-Auth-Token': s.token, 'Content-Type': 'application/octet-stream', ...headers } });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    };
    const create = async (body: Record<string, unknown>) => {
      const r = await img('POST', '/images', { disk_format: 'raw', container_format: 'bare', ...body });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const storeFiles = () => filesUnder(join(s.dataDir, 'images')).filter((f) => !f.includes(`${join('images', 'tmp')}`));

    before(async () => { s = await startTestSeed(store); });
    after(async () => { await s.stop(); });

    test('version discovery and the catalog', async () => {
      const v = await fetch(`${s.url}/image`);
      assert.equal(v.status, 300);
      const body = await v.json() as any;
      assert.equal(body.versions[0].status, 'CURRENT');
      assert.match(body.versions[0].links[0].href, /\/image\/v2\/$/);
      const cat = await s.call('GET', '/identity/v3/auth/catalog');
      assert.ok(cat.body.catalog.some((c: any) => c.type === 'image' && c.endpoints.some((e: any) => e.url.endsWith('/image'))));
      const schema = await img('GET', '/schemas/image');
      assert.equal(schema.body.name, 'image');
      const info = await img('GET', '/info/import');
      assert.deepEqual(info.body['import-methods'].value, ['web-download', 'ooo-local']);
    });

    test('create, upload, show, download: hashes as Glance computes them', async () => {
      const data = randomBytes(300_000);
      const c = await create({ name: 'img-1', tags: ['a', 'b'], min_ram: 512, hw_machine_type: 'q35' });
      assert.equal(c.status, 'queued');
      assert.equal(c.visibility, 'shared');
      assert.deepEqual(c.tags, ['a', 'b']);
      assert.equal(c.hw_machine_type, 'q35');
      assert.equal(c.self, `/v2/images/${c.id}`);
      const queuedFile = await fetch(`${s.url}/image/v2/images/${c.id}/file`, { headers: { 'X-Auth-Token': s.token } });
      assert.equal(queuedFile.status, 204);
      const u = await upload(c.id, data);
      assert.equal(u.status, 204, JSON.stringify(u.body));
      const shown = (await img('GET', `/images/${c.id}`)).body;
      assert.equal(shown.status, 'active');
      assert.equal(shown.size, data.length);
      assert.equal(shown.virtual_size, data.length);
      assert.equal(shown.checksum, md5(data));
      assert.equal(shown.os_hash_algo, 'sha512');
      assert.equal(shown.os_hash_value, sha('sha512', data));
      const d = await fetch(`${s.url}/image/v2/images/${c.id}/file`, { headers: { 'X-Auth-Token': s.token } });
      assert.equal(d.status, 200);
      assert.equal(d.headers.get('content-md5'), md5(data));
      assert.ok(Buffer.from(await d.arrayBuffer()).equals(data));
      // Stored once, by content hash.
      assert.ok(existsSync(join(s.dataDir, 'images', 'sha256', sha('sha256', data).slice(0, 2), sha('sha256', data))));
      const again = await upload(c.id, data);
      assert.equal(again.status, 409);
      assert.match(again.body.message, /active to saving is not allowed/);
    });

    test('byte ranges: 206 with Content-Range, 416 for a bad range', async () => {
      const data = randomBytes(10_000);
      const c = await create({ name: 'ranged' });
      assert.equal((await upload(c.id, data)).status, 204);
      const get = (range: string) => fetch(`${s.url}/image/v2/images/${c.id}/file`, { headers: { 'X-Auth-Token': s.token, Range: range } });
      let r = await get('bytes=100-199');
      assert.equal(r.status, 206);
      assert.equal(r.headers.get('content-range'), `bytes 100-199/${data.length}`);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(100, 200)));
      r = await get('bytes=9000-');
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(9000)));
      r = await get('bytes=-10');
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(data.length - 10)));
      for (const bad of ['bytes=20000-', 'bytes=5-2', 'bytes=0-1,5-6', 'pages=1-2']) {
        r = await get(bad);
        assert.equal(r.status, 416, bad);
        assert.equal(r.headers.get('content-range'), `bytes */${data.length}`);
        const body = await r.json() as any;
        assert.match(body.message, /Requested range not satisfiable/);
      }
    });

    test('bad input: formats, read-only fields, properties, ids', async () => {
      let r = await img('POST', '/images', { name: 'x', disk_format: 'floppy' });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /disk_format/);
      assert.equal(r.body.code, '400 Bad Request', 'Glance error body');
      r = await img('POST', '/images', { name: 'x', container_format: 'zip' });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /container_format/);
      r = await img('POST', '/images', { name: 'x', size: 5 });
      assert.equal(r.status, 403);
      assert.match(r.body.message, /'size' is read-only/);
      r = await img('POST', '/images', { name: 'x', colour: 5 });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /'colour'.*string/);
      r = await img('POST', '/images', { name: 'x', id: 'nope' });
      assert.equal(r.status, 400);
      const noFormat = await img('POST', '/images', { name: 'no-format' });
      const nf = await upload(noFormat.body.id, randomBytes(10));
      assert.equal(nf.status, 400);
      assert.match(nf.body.message, /disk_format, container_format must be set prior to saving data/);
      r = await img('POST', '/images', { name: 'x', min_ram: -1 });
      assert.equal(r.status, 400);
      const id = '0b9a5f45-7aa8-4b41-9d55-4df8dbfdd001';
      assert.equal((await img('POST', '/images', { id, name: 'fixed' })).status, 201);
      r = await img('POST', '/images', { id, name: 'fixed' });
      assert.equal(r.status, 409);
      assert.equal((await img('GET', '/images/not-a-uuid')).status, 404);
      assert.equal((await img('GET', '/images/0b9a5f45-7aa8-4b41-9d55-4df8dbfdd999')).status, 404);
    });

    test('a 0-byte image and a checksum mismatch get a 400 and keep nothing', async () => {
      const before = storeFiles();
      const c = await create({ name: 'empty' });
      let r = await upload(c.id, Buffer.alloc(0));
      assert.equal(r.status, 400);
      assert.match(r.body.message, /empty \(0 bytes\)/);
      assert.equal((await img('GET', `/images/${c.id}`)).body.status, 'queued');
      const data = randomBytes(5000);
      r = await upload(c.id, data, { 'Content-MD5': md5(Buffer.from('other')) });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /md5 mismatch/);
      r = await upload(c.id, data, { 'X-Image-Meta-Sha512': sha('sha512', Buffer.from('other')) });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /sha512 mismatch/);
      assert.equal((await img('GET', `/images/${c.id}`)).body.status, 'queued');
      assert.deepEqual(storeFiles(), before, 'nothing kept in the store');
      assert.deepEqual(readdirSync(join(s.dataDir, 'images', 'tmp')), []);
      // The SDK's own checksum property counts as the client's word too.
      const c2 = await create({ name: 'sdk-md5', 'owner_specified.openstack.md5': md5(Buffer.from('nope')) });
      r = await upload(c2.id, data);
      assert.equal(r.status, 400);
      r = await upload(c.id, data, { 'Content-MD5': Buffer.from(md5(data), 'hex').toString('base64') });
      assert.equal(r.status, 204);
    });

    test('an image left saving by a crashed upload takes new data once stale', async () => {
      const c = await create({ name: 'crashed' });
      const old = new Date(Date.now() - 3600_000).toISOString();
      await s.seed.db.run("UPDATE images SET status = 'saving', updated_at = ? WHERE id = ?", [old, c.id]);
      assert.equal((await upload(c.id, randomBytes(100))).status, 204);
      const d = await create({ name: 'busy' });
      await s.seed.db.run("UPDATE images SET status = 'saving' WHERE id = ?", [d.id]);
      const r = await upload(d.id, randomBytes(100));
      assert.equal(r.status, 409);
      assert.match(r.body.message, /saving to saving is not allowed/);
    });

    test('a truncated upload (Content-Length larger than the body, then close) keeps nothing', async () => {
      const c = await create({ name: 'truncated' });
      const before = storeFiles();
      const u = new URL(s.url);
      await new Promise<void>((resolve, reject) => {
        const sock = net.connect(Number(u.port), u.hostname, () => {
          sock.write(`PUT /image/v2/images/${c.id}/file HTTP/1.1\r\nHost: ${u.host}\r\nX-Auth-Token: ${s.token}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
          sock.write(randomBytes(40_000), () => setTimeout(() => sock.end(), 100));
        });
        sock.on('data', () => undefined);
        sock.on('close', () => resolve());
        sock.on('error', reject);
      });
      const img1 = await eventually(async () => { const r = await img('GET', `/images/${c.id}`); return r.body.status === 'queued' ? r.body : undefined; }, 5000, 'image back to queued');
      assert.equal(img1.size, null);
      assert.equal(img1.checksum, null);
      assert.deepEqual(storeFiles(), before);
      await eventually(async () => readdirSync(join(s.dataDir, 'images', 'tmp')).length === 0, 5000, 'temporary file removed');
      // And the image still takes a proper upload afterwards.
      assert.equal((await upload(c.id, randomBytes(1000))).status, 204);
    });

    test('names with path traversal are only names: storage is by hash', async () => {
      const data = randomBytes(2048);
      for (const name of ['../../etc/passwd', '/absolute/name', 'a/b/../../c', '..']) {
        const c = await create({ name });
        assert.equal(c.name, name);
        assert.equal((await upload(c.id, data)).status, 204);
        assert.equal((await img('GET', `/images/${c.id}`)).body.name, name);
      }
      const r = await img('POST', '/images', { name: 'nul\u0000name' });
      assert.equal(r.status, 400);
      assert.match(r.body.message, /NUL/);
      for (const f of filesUnder(s.dataDir)) assert.ok(!/passwd|absolute|name$/.test(f), `unexpected file ${f}`);
      const h = sha('sha256', data);
      assert.ok(existsSync(join(s.dataDir, 'images', 'sha256', h.slice(0, 2), h)));
      assert.ok(!existsSync('/etc/passwd.img'));
      // A name is only a lookup key, also when machines ask for an image by name.
      const byName = await fetch(`${s.url}/images/${encodeURIComponent('/absolute/name')}`);
      assert.equal(byName.status, 200);
      assert.ok(Buffer.from(await byName.arrayBuffer()).equals(data));
      assert.equal((await fetch(`${s.url}/images/${encodeURIComponent('../../../../etc/shadow')}`)).status, 404);
    });

    test('list: filters, sorting, pagination with next links', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const c = await create({ name: `page-${i}`, tags: i % 2 ? ['odd', 'paged'] : ['paged'], disk_format: i === 4 ? 'qcow2' : 'raw' });
        ids.push(c.id);
      }
      let r = await img('GET', '/images?tag=paged&sort=name:asc&limit=2');
      assert.deepEqual(r.body.images.map((i: any) => i.name), ['page-0', 'page-1']);
      assert.equal(r.body.first, '/v2/images');
      assert.ok(r.body.next.startsWith('/v2/images?'));
      const seen: string[] = r.body.images.map((i: any) => i.name);
      while (r.body.next) {
        r = await s.call('GET', `/image${r.body.next}`);
        seen.push(...r.body.images.map((i: any) => i.name));
      }
      assert.deepEqual(seen, ['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
      r = await img('GET', '/images?tag=paged&tag=odd&sort_key=name&sort_dir=desc');
      assert.deepEqual(r.body.images.map((i: any) => i.name), ['page-3', 'page-1']);
      r = await img('GET', '/images?disk_format=qcow2&tag=paged');
      assert.deepEqual(r.body.images.map((i: any) => i.name), ['page-4']);
      r = await img('GET', '/images?name=in:page-1,page-2&sort=name:asc');
      assert.deepEqual(r.body.images.map((i: any) => i.name), ['page-1', 'page-2']);
      r = await img('GET', '/images?status=active&size_min=2048&size_max=2048');
      assert.ok(r.body.images.length >= 4 && r.body.images.every((i: any) => i.size === 2048));
      assert.equal((await img('GET', '/images?sort_key=colour')).status, 400);
      assert.equal((await img('GET', '/images?colour=red')).status, 400);
      assert.equal((await img('GET', '/images?size_min=big')).status, 400);
      assert.equal((await img('GET', '/images?marker=0b9a5f45-7aa8-4b41-9d55-4df8dbfdd777')).status, 400);
    });

    test('PATCH as Glance: properties, tags, read-only fields 403, content type 415', async () => {
      const c = await create({ name: 'patchme', os_distro: 'debian' });
      const P = { 'Content-Type': 'application/openstack-images-v2.1-json-patch' };
      let r = await img('PATCH', `/images/${c.id}`, [
        { op: 'replace', path: '/name', value: 'patched' }, { op: 'add', path: '/my_prop', value: 'v1' },
        { op: 'replace', path: '/tags', value: ['t1', 't2'] }, { op: 'remove', path: '/os_distro' }, { op: 'replace', path: '/min_disk', value: 10 },
      ], P);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.name, 'patched');
      assert.equal(r.body.my_prop, 'v1');
      assert.equal(r.body.os_distro, undefined);
      assert.deepEqual(r.body.tags, ['t1', 't2']);
      assert.equal(r.body.min_disk, 10);
      for (const path of ['/size', '/status', '/checksum', '/id', '/os_hash_value']) {
        r = await img('PATCH', `/images/${c.id}`, [{ op: 'replace', path, value: 'x' }], P);
        assert.equal(r.status, 403, path);
        assert.match(r.body.message, /read-only/);
      }
      r = await img('PATCH', `/images/${c.id}`, [{ op: 'add', path: '/os_glance_x', value: 'x' }], P);
      assert.equal(r.status, 403);
      r = await img('PATCH', `/images/${c.id}`, [{ op: 'replace', path: '/disk_format', value: 'floppy' }], P);
      assert.equal(r.status, 400);
      r = await img('PATCH', `/images/${c.id}`, [{ op: 'remove', path: '/nothere' }], P);
      assert.equal(r.status, 400);
      r = await img('PATCH', `/images/${c.id}`, [{ op: 'replace', path: '/name', value: 'x' }]);
      assert.equal(r.status, 415);
      // Tags one at a time.
      assert.equal((await img('PUT', `/images/${c.id}/tags/t3`)).status, 204);
      assert.equal((await img('DELETE', `/images/${c.id}/tags/t1`)).status, 204);
      assert.equal((await img('DELETE', `/images/${c.id}/tags/t1`)).status, 404);
      assert.deepEqual((await img('GET', `/images/${c.id}`)).body.tags, ['t2', 't3']);
    });

    test('delete: protected 403, in use by a deploying node 409, else 204 and data gone', async () => {
      const data = randomBytes(4096);
      const c = await create({ name: 'deployed-img', protected: true });
      assert.equal((await upload(c.id, data)).status, 204);
      let r = await img('DELETE', `/images/${c.id}`);
      assert.equal(r.status, 403);
      assert.match(r.body.message, /protected/);
      await img('PATCH', `/images/${c.id}`, [{ op: 'replace', path: '/protected', value: false }], { 'Content-Type': 'application/openstack-images-v2.1-json-patch' });
      const n = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'img-user', instance_info: { image_source: 'deployed-img' } });
      assert.equal(n.status, 201);
      await s.bm('PUT', '/v1/nodes/img-user/states/provision', { target: 'manage' });
      await waitState(s, 'img-user', 'manageable');
      await s.bm('PUT', '/v1/nodes/img-user/states/provision', { target: 'provide' });
      await waitState(s, 'img-user', 'available');
      await s.bm('PUT', '/v1/nodes/img-user/states/provision', { target: 'active' });
      await waitState(s, 'img-user', 'active');
      r = await img('DELETE', `/images/${c.id}`);
      assert.equal(r.status, 409);
      assert.match(r.body.message, /in use by node img-user \(active\)/);
      await s.bm('PATCH', '/v1/nodes/img-user', [{ op: 'replace', path: '/instance_info/image_source', value: c.id }]);
      assert.equal((await img('DELETE', `/images/${c.id}`)).status, 409, 'by id as well');
      await s.bm('PUT', '/v1/nodes/img-user/states/provision', { target: 'deleted' });
      await waitState(s, 'img-user', 'available');
      // A node in the middle of a deploy (waiting for its ramdisk), pointing at the image by URL.
      const w = await s.bm('POST', '/v1/nodes', { driver: 'fake-hardware', name: 'img-deploying', instance_info: { image_source: `${s.url}/images/${c.id}/raw` } });
      await s.seed.db.run("UPDATE nodes SET provision_state = 'wait call-back', target_provision_state = 'active' WHERE uuid = ?", [w.body.uuid]);
      r = await img('DELETE', `/images/${c.id}`);
      assert.equal(r.status, 409);
      assert.match(r.body.message, /in use by node img-deploying \(wait call-back\)/);
      await s.seed.db.run("UPDATE nodes SET provision_state = 'deploy failed', target_provision_state = NULL WHERE uuid = ?", [w.body.uuid]);
      r = await img('DELETE', `/images/${c.id}`);
      assert.equal(r.status, 204);
      assert.equal((await img('GET', `/images/${c.id}`)).status, 404);
      const h = sha('sha256', data);
      assert.ok(!existsSync(join(s.dataDir, 'images', 'sha256', h.slice(0, 2), h)), 'data removed with its last image');
    });

    test('data shared by two images stays until the last one is deleted', async () => {
      const data = randomBytes(3000);
      const a = await create({ name: 'twin-a' });
      const b = await create({ name: 'twin-b' });
      await upload(a.id, data);
      await upload(b.id, data);
      const h = sha('sha256', data);
      const path = join(s.dataDir, 'images', 'sha256', h.slice(0, 2), h);
      assert.equal((await img('DELETE', `/images/${a.id}`)).status, 204);
      assert.ok(existsSync(path));
      const d = await fetch(`${s.url}/image/v2/images/${b.id}/file`, { headers: { 'X-Auth-Token': s.token } });
      assert.ok(Buffer.from(await d.arrayBuffer()).equals(data));
      assert.equal((await img('DELETE', `/images/${b.id}`)).status, 204);
      assert.ok(!existsSync(path));
    });

    test('import: web-download from a URL, ooo-local from a path (admin, absolute, no ..)', async () => {
      const data = randomBytes(50_000);
      const srv = http.createServer((req, res) => {
        if (req.url === '/img') { res.setHeader('Content-Length', data.length); res.end(data); } else if (req.url === '/moved') { res.writeHead(302, { Location: '/img' }); res.end(); } else { res.writeHead(404); res.end(); }
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as net.AddressInfo).port;
      try {
        const c = await create({ name: 'web' });
        let r = await img('POST', `/images/${c.id}/import`, { method: { name: 'web-download', uri: `http://127.0.0.1:${port}/moved` } });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        const done = await eventually(async () => { const x = await img('GET', `/images/${c.id}`); return x.body.status === 'active' ? x.body : undefined; }, 10000, 'import');
        assert.equal(done.checksum, md5(data));
        const bad = await create({ name: 'web-404' });
        assert.equal((await img('POST', `/images/${bad.id}/import`, { method: { name: 'web-download', uri: `http://127.0.0.1:${port}/missing` } })).status, 202);
        const failed = await eventually(async () => { const x = await img('GET', `/images/${bad.id}`); return x.body.os_glance_import_error ? x.body : undefined; }, 10000, 'failed import');
        assert.equal(failed.status, 'queued');
        assert.match(failed.os_glance_import_error, /HTTP 404/);
        r = await img('POST', `/images/${bad.id}/import`, { method: { name: 'web-download', uri: 'file:///etc/passwd' } });
        assert.equal(r.status, 400);
        assert.match(r.body.message, /only http and https/);
      } finally { srv.close(); }
      const dir = mkdtempSync(join(tmpdir(), 'ooo-img-local-'));
      try {
        const f = join(dir, 'disk.raw');
        writeFileSync(f, data);
        const c = await create({ name: 'local' });
        for (const path of ['relative/disk.raw', `${dir}/../${dir.split('/').pop()}/disk.raw`, join(dir, 'missing.raw'), dir]) {
          const r = await img('POST', `/images/${c.id}/import`, { method: { name: 'ooo-local', path } });
          assert.equal(r.status, 400, path);
        }
        assert.equal((await img('POST', `/images/${c.id}/import`, { method: { name: 'ooo-local', path: f } })).status, 202);
        await eventually(async () => (await img('GET', `/images/${c.id}`)).body.status === 'active', 10000, 'local import');
        assert.equal((await img('POST', `/images/${c.id}/import`, { method: { name: 'ooo-local', path: f } })).status, 409);
        // Not for members.
        await s.call('POST', '/identity/v3/users', { user: { name: `img-member-${store}`, password: 'member-pass-1', domain_id: 'default' } });
        const users = await s.call('GET', `/identity/v3/users?name=img-member-${store}`);
        const projects = await s.call('GET', '/identity/v3/projects?name=admin');
        const roles = await s.call('GET', '/identity/v3/roles?name=member');
        await s.call('PUT', `/identity/v3/projects/${projects.body.projects[0].id}/users/${users.body.users[0].id}/roles/${roles.body.roles[0].id}`);
        const token = await s.tokenFor(`img-member-${store}`, 'member-pass-1');
        const m = await create({ name: 'member-local' });
        const r = await s.call('POST', `/image/v2/images/${m.id}/import`, { method: { name: 'ooo-local', path: f } }, { 'X-Auth-Token': token });
        assert.equal(r.status, 403);
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });

    test('serving to machines: /images/{id|name} with no token, HEAD and ranges', async () => {
      const data = randomBytes(70_000);
      const c = await create({ name: 'served' });
      await upload(c.id, data);
      for (const ident of [c.id, 'served']) {
        const r = await fetch(`${s.url}/images/${ident}`);
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-image-sha256'), sha('sha256', data));
        assert.ok(Buffer.from(await r.arrayBuffer()).equals(data));
      }
      const head = await fetch(`${s.url}/images/served/raw`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(data.length));
      const part = await fetch(`${s.url}/images/served`, { headers: { Range: 'bytes=10-19' } });
      assert.equal(part.status, 206);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(10, 20)));
      assert.equal((await fetch(`${s.url}/images/nope`)).status, 404);
      // A downloader that goes away mid-stream costs nothing; the next one is served.
      const big = await create({ name: 'served-big' });
      const bigData = randomBytes(8 << 20);
      assert.equal((await upload(big.id, bigData)).status, 204);
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${s.url}/images/served-big`, (res) => {
          res.once('data', () => { req.destroy(); setTimeout(resolve, 100); });
        });
        req.on('error', () => undefined);
        req.setTimeout(5000, () => reject(new Error('no data')));
      });
      const whole = await fetch(`${s.url}/images/served-big`);
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bigData));
      const queued = await create({ name: 'no-data' });
      assert.equal((await fetch(`${s.url}/images/${queued.id}`)).status, 409);
    });

    test('raw conversion of a qcow2: once, shared by concurrent requests, equal to the original', { skip: QEMU }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ooo-img-qcow2-'));
      try {
        const raw = join(dir, 'disk.raw');
        const q = join(dir, 'disk.qcow2');
        // A 4 MiB disk with data in a few places (and holes between).
        const buf = Buffer.alloc(4 << 20);
        randomBytes(65536).copy(buf, 0);
        randomBytes(65536).copy(buf, 3 << 20);
        writeFileSync(raw, buf);
        execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, q]);
        const qdata = readFileSync(q);
        const c = await create({ name: 'qcow', disk_format: 'qcow2' });
        assert.equal((await upload(c.id, qdata)).status, 204);
        const shown = (await img('GET', `/images/${c.id}`)).body;
        assert.equal(shown.virtual_size, 4 << 20);
        assert.equal(shown.size, qdata.length);
        const got = await Promise.all([0, 1, 2].map(async () => {
          const r = await fetch(`${s.url}/images/${c.id}/raw`);
          assert.equal(r.status, 200);
          return { sha: r.headers.get('x-image-sha256'), body: Buffer.from(await r.arrayBuffer()) };
        }));
        for (const g of got) {
          assert.ok(g.body.equals(buf), 'raw equals the original');
          assert.equal(g.sha, sha('sha256', buf));
        }
        const cache = readdirSync(join(s.dataDir, 'images', 'raw'));
        assert.equal(cache.filter((f) => f.endsWith('.raw')).length, 1, 'one conversion');
        // Not qcow2 at all, or with a backing file: refused at upload.
        const fake = await create({ name: 'fake-qcow', disk_format: 'qcow2' });
        let r = await upload(fake.id, randomBytes(1000));
        assert.equal(r.status, 400);
        assert.match(r.body.message, /not a valid qcow2 image/);
        const backed = join(dir, 'backed.qcow2');
        execFileSync('qemu-img', ['create', '-f', 'qcow2', '-F', 'qcow2', '-b', q, backed]);
        const b = await create({ name: 'backed', disk_format: 'qcow2' });
        r = await upload(b.id, readFileSync(backed));
        assert.equal(r.status, 400);
        assert.match(r.body.message, /backing file/);
        assert.equal((await img('DELETE', `/images/${c.id}`)).status, 204);
        assert.deepEqual(readdirSync(join(s.dataDir, 'images', 'raw')), [], 'conversion removed with the image');
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });

    test('random bodies, patches and queries: 4xx or success, never 5xx', async () => {
      const target = await create({ name: 'fuzz-target' });
      const json = fc.jsonValue({ maxDepth: 3 });
      await fc.assert(fc.asyncProperty(json, async (body) => {
        const r = await img('POST', '/images', body);
        assert.ok(r.status < 500, `POST ${JSON.stringify(body)} -> ${r.status} ${JSON.stringify(r.body)}`);
      }), { numRuns: 150 });
      const op = fc.record({ op: fc.constantFrom('add', 'replace', 'remove', 'move', 'test', 'x'), path: fc.oneof(fc.constantFrom('/name', '/tags', '/tags/0', '/tags/-', '/min_ram', '/protected', '/visibility', '/x', '/', '', '/a/b', '/os_glance_y'), fc.string()), value: json });
      await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 4 }), async (patch) => {
        const r = await img('PATCH', `/images/${target.id}`, patch, { 'Content-Type': 'application/openstack-images-v2.1-json-patch' });
        assert.ok(r.status < 500, `PATCH ${JSON.stringify(patch)} -> ${r.status} ${JSON.stringify(r.body)}`);
      }), { numRuns: 150 });
      const key = fc.constantFrom('name', 'status', 'tag', 'limit', 'marker', 'sort', 'sort_key', 'sort_dir', 'size_min', 'created_at', 'visibility', 'owner', 'x');
      await fc.assert(fc.asyncProperty(fc.array(fc.tuple(key, fc.string()), { maxLength: 4 }), async (pairs) => {
        const q = new URLSearchParams(pairs).toString();
        const r = await img('GET', `/images?${q}`);
        assert.ok(r.status < 500, `GET ?${q} -> ${r.status} ${JSON.stringify(r.body)}`);
      }), { numRuns: 150 });
      await fc.assert(fc.asyncProperty(fc.string(), async (ident) => {
        const r = await fetch(`${s.url}/images/${encodeURIComponent(ident)}`);
        await r.arrayBuffer();
        assert.ok(r.status < 500, `GET /images/${ident} -> ${r.status}`);
        const t = await img('PUT', `/images/${target.id}/tags/${encodeURIComponent(ident)}`);
        assert.ok(t.status < 500, `PUT tag ${JSON.stringify(ident)} -> ${t.status}`);
      }), { numRuns: 100 });
    });

    test('visibility: a member of another project neither sees nor changes private images', async () => {
      const c = await create({ name: 'secret', visibility: 'private' });
      await s.call('POST', '/identity/v3/projects', { project: { name: `other-${store}`, domain_id: 'default' } });
      await s.call('POST', '/identity/v3/users', { user: { name: `other-user-${store}`, password: 'other-pass-1', domain_id: 'default' } });
      const users = await s.call('GET', `/identity/v3/users?name=other-user-${store}`);
      const projects = await s.call('GET', `/identity/v3/projects?name=other-${store}`);
      const roles = await s.call('GET', '/identity/v3/roles?name=member');
      await s.call('PUT', `/identity/v3/projects/${projects.body.projects[0].id}/users/${users.body.users[0].id}/roles/${roles.body.roles[0].id}`);
      const token = await s.tokenFor(`other-user-${store}`, 'other-pass-1', { project: { name: `other-${store}`, domain: { id: 'default' } } });
      const h = { 'X-Auth-Token': token };
      assert.equal((await s.call('GET', `/image/v2/images/${c.id}`, undefined, h)).status, 404);
      assert.equal((await s.call('DELETE', `/image/v2/images/${c.id}`, undefined, h)).status, 404);
      const list = await s.call('GET', '/image/v2/images', undefined, h);
      assert.ok(!list.body.images.some((i: any) => i.id === c.id));
      const pub = await s.call('POST', '/image/v2/images', { name: 'mine', visibility: 'public' }, h);
      assert.equal(pub.status, 403);
    });
  });
}
