/**
 * `ooo image upload|list|show|delete|download|bundle|import-bundle`: the seed's image service
 * from the command line. Image data is streamed both ways and verified end to end (md5 and
 * sha512, as the service computes them); bundles carry images to a seed with no network.
 */
import http from 'node:http';
import https from 'node:https';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, WriteStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { once } from 'node:events';
import { Readable, Transform } from 'node:stream';
import { CommandSpec, Parsed, str, UsageError } from './args.js';
import { CLOUD_FLAGS, cloudOf, guarded, keyValues } from './common.js';
import { CliError, EXIT, print, printJson, record, table } from './output.js';
import { Cloud, ClientError, errorMessage } from '../client/cloud.js';
import { BUNDLE_FORMAT, BundleImage, MANIFEST, Manifest, padding, tarEntries, tarHeader, trailer } from '../images/bundle.js';

type Img = Record<string, unknown> & { id: string; name: string | null; status: string; size: number | null; checksum: string | null; os_hash_value: string | null };

const DISK_FORMATS = ['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'];
const CORE = new Set(['id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'checksum', 'os_hash_algo', 'os_hash_value', 'owner', 'size', 'virtual_size',
  'min_disk', 'min_ram', 'container_format', 'disk_format', 'created_at', 'updated_at', 'tags', 'self', 'file', 'schema', 'locations', 'direct_url', 'stores']);

/** An HTTP request whose body and response are streams; a 4xx/5xx becomes a ClientError with the service's message. */
async function streamCall(cloud: Cloud, method: string, path: string, opts: { headers?: Record<string, string>; body?: Readable; length?: number } = {}): Promise<http.IncomingMessage> {
  const { token, url } = await cloud.session('image');
  const u = new URL(`${url}${path}`);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method,
      headers: { 'X-Auth-Token': token, ...(opts.length !== undefined ? { 'Content-Length': String(opts.length) } : {}), ...opts.headers },
    }, (res) => {
      if ((res.statusCode ?? 0) >= 400) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => { if (chunks.length < 64) chunks.push(c); });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try { body = JSON.parse(text); } catch { /* plain text */ }
          reject(new ClientError(errorMessage({ status: res.statusCode ?? 0, headers: res.headers, body, text }), res.statusCode ?? 0));
        });
        return;
      }
      resolve(res);
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(new ClientError(e.code === 'ECONNREFUSED' ? `cannot reach ${u.origin}: connection refused (is the seed running?)` : `${method} ${u.pathname}: ${e.message}`)));
    if (opts.body) {
      opts.body.on('error', (e) => req.destroy(e));
      opts.body.pipe(req);
    } else req.end();
  });
}

async function api<T = Record<string, unknown>>(cloud: Cloud, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  return (await cloud.call('image', method, `/v2${path}`, body, headers)).body as T;
}

/** Every image (following `next` links), optionally filtered. */
async function allImages(cloud: Cloud, query = ''): Promise<Img[]> {
  const out: Img[] = [];
  let path: string | undefined = `/images?limit=200${query ? '&' + query : ''}`;
  while (path) {
    const page: { images: Img[]; next?: string } = await api(cloud, 'GET', path);
    out.push(...page.images);
    path = page.next ? page.next.replace(/^\/v2/, '') : undefined;
  }
  return out;
}

/** An image by id or by (unique) name. */
async function findImage(cloud: Cloud, ident: string): Promise<Img> {
  if (/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(ident)) {
    try { return await api<Img>(cloud, 'GET', `/images/${ident}`); } catch (e) { if (!(e instanceof ClientError && e.status === 404)) throw e; }
  }
  const named = await allImages(cloud, `name=${encodeURIComponent(ident)}`);
  if (named.length === 0) throw new CliError(`no image '${ident}'`, EXIT.notFound);
  if (named.length > 1) throw new CliError(`${named.length} images are named '${ident}': use an id (${named.map((i) => i.id).join(', ')})`, EXIT.conflict);
  return named[0]!;
}

/** Hashes what flows through, as the service does. */
function hasher() {
  const md5 = createHash('md5');
  const sha512 = createHash('sha512');
  let size = 0;
  return { update(c: Buffer) { md5.update(c); sha512.update(c); size += c.length; }, done: () => ({ size, md5: md5.digest('hex'), sha512: sha512.digest('hex') }) };
}

async function sniffFormat(file: string): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.toString('latin1') === 'QFI\xfb' ? 'qcow2' : 'raw';
  } finally { await fh.close(); }
}

function progress(label: string, total: number): { tick(n: number): void; end(): void } {
  if (!process.stderr.isTTY) return { tick() {}, end() {} };
  let done = 0;
  let last = 0;
  return {
    tick(n) {
      done += n;
      if (Date.now() - last > 250) { last = Date.now(); process.stderr.write(`\r${label}: ${(done / 1048576).toFixed(0)} / ${(total / 1048576).toFixed(0)} MiB`); }
    },
    end() { process.stderr.write(`\r${label}: ${(done / 1048576).toFixed(0)} MiB done${' '.repeat(20)}\n`); },
  };
}

/** Streams a local file into a queued image; verifies what the service stored against what was sent. */
async function sendData(cloud: Cloud, id: string, body: Readable, size: number, headers: Record<string, string> = {}): Promise<Img> {
  const h = hasher();
  const bar = progress('upload', size);
  const counted = body.pipe(new Transform({ highWaterMark: 1 << 20, transform(c: Buffer, _e, cb) { h.update(c); bar.tick(c.length); cb(null, c); } }));
  body.on('error', (e) => counted.destroy(e));
  const res = await streamCall(cloud, 'PUT', `/v2/images/${id}/file`, { body: counted, length: size, headers: { 'Content-Type': 'application/octet-stream', ...headers } });
  res.resume();
  await once(res, 'end');
  bar.end();
  const sent = h.done();
  const img = await api<Img>(cloud, 'GET', `/images/${id}`);
  if (img.status !== 'active' || img.checksum !== sent.md5 || img.os_hash_value !== sent.sha512 || img.size !== sent.size) {
    throw new CliError(`image ${id}: the service stored ${img.size} bytes md5 ${img.checksum} (status ${img.status}), ${sent.size} bytes md5 ${sent.md5} were sent`, EXIT.failure);
  }
  return img;
}

function summary(img: Img): Record<string, unknown> {
  const { self: _s, file: _f, schema: _sc, ...rest } = img;
  return rest;
}

async function upload(p: Parsed): Promise<number> {
  const file = p.args[0]!;
  const st = await stat(file).catch(() => { throw new CliError(`cannot read ${file}: no such file`, EXIT.usage); });
  if (!st.isFile()) throw new CliError(`${file} is not a regular file`, EXIT.usage);
  if (st.size === 0) throw new CliError(`${file} is empty: an image needs data`, EXIT.usage);
  const diskFormat = str(p, 'disk-format') ?? await sniffFormat(file);
  if (!DISK_FORMATS.includes(diskFormat)) throw new UsageError(`--disk-format must be one of ${DISK_FORMATS.join(', ')}, got '${diskFormat}'`);
  const props = keyValues(p.flags.property, 'property');
  for (const [k, v] of Object.entries(props)) props[k] = String(v);
  return guarded(async () => {
    const cloud = cloudOf(p);
    const body: Record<string, unknown> = {
      ...props, name: str(p, 'name') ?? basename(file).replace(/\.(raw|qcow2|img|iso)$/, ''), disk_format: diskFormat,
      container_format: str(p, 'container-format') ?? 'bare', tags: (p.flags.tag as string[] | undefined) ?? [],
    };
    if (p.flags.public) body.visibility = 'public';
    if (p.flags.private) body.visibility = 'private';
    if (p.flags.protected) body.protected = true;
    const created = await api<Img>(cloud, 'POST', '/images', body);
    try {
      const img = await sendData(cloud, created.id, createReadStream(file, { highWaterMark: 1 << 20 }), st.size);
      if (p.flags.json) printJson(img); else print(record(summary(img)));
      return EXIT.ok;
    } catch (e) {
      await api(cloud, 'DELETE', `/images/${created.id}`).catch(() => undefined);
      throw e;
    }
  });
}

async function list(p: Parsed): Promise<number> {
  return guarded(async () => {
    const cloud = cloudOf(p);
    const q = new URLSearchParams();
    for (const k of ['name', 'status', 'visibility', 'disk-format']) { const v = str(p, k); if (v) q.set(k.replace('-', '_'), v); }
    for (const t of (p.flags.tag as string[] | undefined) ?? []) q.append('tag', t);
    q.set('sort', 'name:asc');
    const images = await allImages(cloud, q.toString());
    if (p.flags.json) { printJson(images); return EXIT.ok; }
    const cols = p.flags.long ? ['ID', 'Name', 'Status', 'Disk Format', 'Size', 'Checksum', 'Visibility', 'Tags'] : ['ID', 'Name', 'Status', 'Disk Format', 'Size'];
    print(table(cols, images.map((i) => {
      const row: unknown[] = [i.id, i.name, i.status, i.disk_format, i.size];
      if (p.flags.long) row.push(i.checksum, i.visibility, (i.tags as string[]).join(','));
      return row;
    })));
    return EXIT.ok;
  });
}

async function show(p: Parsed): Promise<number> {
  return guarded(async () => {
    const img = await findImage(cloudOf(p), p.args[0]!);
    if (p.flags.json) printJson(img); else print(record(summary(img)));
    return EXIT.ok;
  });
}

async function remove(p: Parsed): Promise<number> {
  if (!p.args.length) throw new UsageError('missing argument IMAGE...');
  return guarded(async () => {
    const cloud = cloudOf(p);
    let failed = 0;
    for (const ident of p.args) {
      try {
        const img = await findImage(cloud, ident);
        await api(cloud, 'DELETE', `/images/${img.id}`);
        print(`deleted ${img.id}${img.name ? ` (${img.name})` : ''}`);
      } catch (e) {
        if (p.args.length === 1) throw e;
        failed++;
        process.stderr.write(`ooo image delete: ${ident}: ${(e as Error).message}\n`);
      }
    }
    return failed ? EXIT.failure : EXIT.ok;
  });
}

/** Writes a stream to a file through hashing, with backpressure. */
async function drainTo(src: Readable, out: WriteStream, h: ReturnType<typeof hasher>, bar?: { tick(n: number): void }): Promise<void> {
  for await (const chunk of src as AsyncIterable<Buffer>) {
    h.update(chunk);
    bar?.tick(chunk.length);
    if (!out.write(chunk)) await once(out, 'drain');
  }
}

async function closeStream(out: WriteStream): Promise<void> {
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

async function download(p: Parsed): Promise<number> {
  const output = str(p, 'output');
  if (!output) throw new UsageError('--output/-o FILE is required');
  return guarded(async () => {
    const cloud = cloudOf(p);
    const img = await findImage(cloud, p.args[0]!);
    if (img.status !== 'active') throw new CliError(`image ${img.id} has no data to download (status ${img.status})`, EXIT.conflict);
    const tmp = join(dirname(output), `.${basename(output)}.part-${process.pid}`);
    const out = createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 });
    const h = hasher();
    try {
      const res = await streamCall(cloud, 'GET', `/v2/images/${img.id}/file`);
      const bar = progress('download', img.size ?? 0);
      await drainTo(res, out, h, bar);
      await closeStream(out);
      bar.end();
      const got = h.done();
      if (got.size !== img.size || got.md5 !== img.checksum || got.sha512 !== img.os_hash_value) {
        throw new CliError(`download of ${img.id} does not match the image: got ${got.size} bytes md5 ${got.md5}, the image has ${img.size} bytes md5 ${img.checksum}`, EXIT.failure);
      }
      await rename(tmp, output);
    } catch (e) {
      out.destroy();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    if (p.flags.json) printJson({ id: img.id, output, size: img.size, checksum: img.checksum }); else print(`${output}: ${img.size} bytes, md5 ${img.checksum}, sha512 verified`);
    return EXIT.ok;
  });
}

async function bundle(p: Parsed): Promise<number> {
  const output = str(p, 'output');
  if (!output) throw new UsageError('--output/-o ARCHIVE is required');
  return guarded(async () => {
    const cloud = cloudOf(p);
    let images: Img[];
    if (p.args.length) {
      images = [];
      for (const ident of p.args) images.push(await findImage(cloud, ident));
    } else images = await allImages(cloud, 'status=active');
    const ids = new Set<string>();
    images = images.filter((i) => (ids.has(i.id) ? false : (ids.add(i.id), true)));
    if (!images.length) throw new CliError('no active images to bundle', EXIT.notFound);
    for (const i of images) if (i.status !== 'active') throw new CliError(`image ${i.name ?? i.id} is ${i.status}: only active images can be bundled`, EXIT.conflict);
    const manifest: Manifest = {
      format: BUNDLE_FORMAT, version: 1, created_at: new Date().toISOString(),
      images: images.map((i): BundleImage => ({
        id: i.id, name: i.name, disk_format: (i.disk_format as string) ?? null, container_format: (i.container_format as string) ?? null,
        visibility: String(i.visibility), protected: !!i.protected, min_disk: Number(i.min_disk ?? 0), min_ram: Number(i.min_ram ?? 0),
        tags: (i.tags as string[]) ?? [], properties: Object.fromEntries(Object.entries(i).filter(([k, v]) => !CORE.has(k) && !k.startsWith('os_glance') && typeof v === 'string')) as Record<string, string>,
        size: i.size!, checksum: i.checksum!, os_hash_algo: String(i.os_hash_algo), os_hash_value: i.os_hash_value!, file: `images/${i.id}`,
      })),
    };
    const tmp = join(dirname(output), `.${basename(output)}.part-${process.pid}`);
    const out = createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 });
    const write = async (b: Buffer) => { if (!out.write(b)) await once(out, 'drain'); };
    try {
      const m = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
      await write(tarHeader(MANIFEST, m.length));
      await write(m);
      await write(padding(m.length));
      for (const bi of manifest.images) {
        await write(tarHeader(bi.file, bi.size));
        const res = await streamCall(cloud, 'GET', `/v2/images/${bi.id}/file`);
        const h = hasher();
        await drainTo(res, out, h, progress(`bundle ${bi.name ?? bi.id}`, bi.size));
        const got = h.done();
        if (got.size !== bi.size || got.md5 !== bi.checksum || got.sha512 !== bi.os_hash_value) throw new CliError(`image ${bi.id} changed or was corrupted while bundled (${got.size} bytes md5 ${got.md5}, expected ${bi.size} md5 ${bi.checksum})`, EXIT.failure);
        await write(padding(bi.size));
        if (!p.flags.json) process.stderr.write(`bundled ${bi.name ?? bi.id} (${bi.size} bytes)\n`);
      }
      await write(trailer());
      await closeStream(out);
      await rename(tmp, output);
    } catch (e) {
      out.destroy();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    if (p.flags.json) printJson({ output, images: manifest.images.map((i) => ({ id: i.id, name: i.name, size: i.size, checksum: i.checksum })) });
    else print(table(['ID', 'Name', 'Size', 'Checksum'], manifest.images.map((i) => [i.id, i.name, i.size, i.checksum])));
    return EXIT.ok;
  });
}

async function importBundle(p: Parsed): Promise<number> {
  const archive = p.args[0]!;
  const entries = await tarEntries(archive).catch((e: Error) => { throw new CliError(`${archive}: ${e.message}`, EXIT.usage); });
  const first = entries[0];
  if (!first || first.name !== MANIFEST) throw new CliError(`${archive} is not an image bundle: its first entry is not ${MANIFEST}`, EXIT.usage);
  const fh = await open(archive, 'r');
  let manifest: Manifest;
  try {
    const b = Buffer.alloc(first.size);
    await fh.read(b, 0, first.size, first.offset);
    manifest = JSON.parse(b.toString('utf8')) as Manifest;
  } catch (e) {
    throw new CliError(`${archive}: the manifest is not valid JSON: ${(e as Error).message}`, EXIT.usage);
  } finally { await fh.close(); }
  if (manifest.format !== BUNDLE_FORMAT || manifest.version !== 1) throw new CliError(`${archive}: unknown bundle format ${manifest.format} v${manifest.version}`, EXIT.usage);
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const i of manifest.images) {
    const e = byName.get(i.file);
    if (!e) throw new CliError(`${archive}: the manifest lists ${i.file} (${i.name ?? i.id}) but the archive has no such entry`, EXIT.usage);
    if (e.size !== i.size) throw new CliError(`${archive}: ${i.file} has ${e.size} bytes, the manifest says ${i.size}`, EXIT.usage);
  }
  return guarded(async () => {
    const cloud = cloudOf(p);
    const rows: unknown[][] = [];
    let failed = 0;
    for (const i of manifest.images) {
      const e = byName.get(i.file)!;
      let existing: Img | undefined;
      try { existing = await api<Img>(cloud, 'GET', `/images/${i.id}`); } catch (err) { if (!(err instanceof ClientError && err.status === 404)) throw err; }
      if (existing && existing.status === 'active') {
        if (existing.checksum === i.checksum && existing.os_hash_value === i.os_hash_value) { rows.push([i.id, i.name, i.size, 'already present']); continue; }
        failed++;
        rows.push([i.id, i.name, i.size, `conflict: an image with this id and other data exists`]);
        continue;
      }
      let created = false;
      try {
        if (!existing) {
          await api(cloud, 'POST', '/images', {
            ...i.properties, id: i.id, name: i.name, disk_format: i.disk_format, container_format: i.container_format, visibility: i.visibility,
            protected: i.protected, min_disk: i.min_disk, min_ram: i.min_ram, tags: i.tags,
          });
          created = true;
        }
        // The service checks md5 and sha512 against the manifest and keeps nothing on a mismatch.
        await sendData(cloud, i.id, createReadStream(archive, { start: e.offset, end: e.offset + e.size - 1, highWaterMark: 1 << 20 }), e.size,
          { 'X-Image-Meta-Checksum': i.checksum, ...(i.os_hash_algo === 'sha512' ? { 'X-Image-Meta-Sha512': i.os_hash_value } : {}) });
        rows.push([i.id, i.name, i.size, 'imported']);
      } catch (err) {
        failed++;
        rows.push([i.id, i.name, i.size, `failed: ${(err as Error).message}`]);
        if (created) await api(cloud, 'DELETE', `/images/${i.id}`).catch(() => undefined);
      }
    }
    if (p.flags.json) printJson(rows.map(([id, name, size, result]) => ({ id, name, size, result })));
    else print(table(['ID', 'Name', 'Size', 'Result'], rows));
    return failed ? EXIT.failure : EXIT.ok;
  });
}

export const commands: CommandSpec[] = [
  {
    path: ['image', 'upload'], summary: 'Upload a disk image file into the seed\'s image service', args: ['FILE'],
    flags: {
      ...CLOUD_FLAGS,
      name: { type: 'string', value: 'NAME', help: 'image name (default: the file name without extension)' },
      'disk-format': { type: 'string', value: 'FORMAT', help: `one of ${DISK_FORMATS.join(', ')} (default: qcow2 or raw, from the file)` },
      'container-format': { type: 'string', value: 'FORMAT', help: 'container format', default: 'bare' },
      property: { type: 'list', value: 'KEY=VALUE', help: 'image property (repeatable)' },
      tag: { type: 'list', value: 'TAG', help: 'tag (repeatable)' },
      public: { type: 'boolean', help: 'visible to every project (administrators only)' },
      private: { type: 'boolean', help: 'visible to the owning project only' },
      protected: { type: 'boolean', help: 'refuse deletion until unprotected' },
    },
    run: upload,
  },
  {
    path: ['image', 'list'], summary: 'List images',
    flags: {
      ...CLOUD_FLAGS,
      name: { type: 'string', value: 'NAME', help: 'only images with this name' },
      status: { type: 'string', value: 'STATUS', help: 'only images in this status (queued, active, ...)' },
      visibility: { type: 'string', value: 'VIS', help: 'public, private, shared, community or all' },
      'disk-format': { type: 'string', value: 'FORMAT', help: 'only images in this disk format' },
      tag: { type: 'list', value: 'TAG', help: 'only images with this tag (repeatable: all of them)' },
      long: { type: 'boolean', help: 'more columns' },
    },
    run: list,
  },
  { path: ['image', 'show'], summary: 'Show an image (by id or name)', args: ['IMAGE'], flags: { ...CLOUD_FLAGS }, run: show },
  { path: ['image', 'delete'], summary: 'Delete images (refused while a node deploys or runs one)', args: ['IMAGE...'], flags: { ...CLOUD_FLAGS }, run: remove },
  {
    path: ['image', 'download'], summary: 'Download an image\'s data to a file, verified', args: ['IMAGE'],
    flags: { ...CLOUD_FLAGS, output: { type: 'string', short: 'o', value: 'FILE', help: 'where to write the data' } },
    run: download,
  },
  {
    path: ['image', 'bundle'], summary: 'Write images (default: all active) and a checksum manifest into one tar archive', args: ['IMAGE...'],
    flags: { ...CLOUD_FLAGS, output: { type: 'string', short: 'o', value: 'ARCHIVE', help: 'the archive to write' } },
    run: bundle,
  },
  {
    path: ['image', 'import-bundle'], summary: 'Load the images of a bundle into the seed, verifying their checksums', args: ['ARCHIVE'],
    flags: { ...CLOUD_FLAGS },
    run: importBundle,
  },
];
