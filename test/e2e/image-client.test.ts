/**
 * The image service driven by its clients: the Debian `openstack image ...` commands (python3-
 * openstackclient + openstacksdk) and the `ooo image ...` commands (upload, list, show, download,
 * delete, bundle, import-bundle), against seeds on loopback configured only by their clouds.yaml.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestSeed, startTestSeed } from '../helpers/seed.js';

const run = promisify(execFile);
const OPENSTACK = '/usr/bin/openstack';
const skip = existsSync(OPENSTACK) ? false : 'the openstack client is not installed (Debian python3-openstackclient)';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'image-cli.js');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

function envFor(s: TestSeed): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OS_CLIENT_CONFIG_FILE: join(s.dataDir, 'clouds.yaml'), OS_CLOUD: 'ooo', PATH: `/usr/bin:${process.env.PATH}` };
  for (const k of Object.keys(env)) if (k.startsWith('OS_') && !['OS_CLIENT_CONFIG_FILE', 'OS_CLOUD'].includes(k)) delete env[k];
  return env;
}

async function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(cmd, args, { env, timeout: 120_000, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? String(e) };
  }
}

describe('openstack image commands against the seed', { skip }, () => {
  let s: TestSeed;
  let env: NodeJS.ProcessEnv;
  let dir: string;
  const os = async (...args: string[]) => {
    const r = await exec(OPENSTACK, args, env);
    if (r.code !== 0) throw Object.assign(new Error(`openstack ${args.join(' ')} failed (${r.code}): ${r.stderr}`), r);
    return r.stdout;
  };
  const osJson = async (...args: string[]) => JSON.parse(await os(...args, '-f', 'json'));

  before(async () => {
    s = await startTestSeed('sqlite', { only: ['api'] });
    env = envFor(s);
    dir = mkdtempSync(join(tmpdir(), 'ooo-image-client-'));
  });
  after(async () => { await s.stop(); rmSync(dir, { recursive: true, force: true }); });

  test('image create --file, list, show, save (byte-identical), set, delete', async () => {
    const data = randomBytes(3 << 20);
    const file = join(dir, 'disk.raw');
    writeFileSync(file, data);
    const created = await osJson('image', 'create', '--file', file, '--disk-format', 'raw', '--container-format', 'bare', '--property', 'os_distro=debian', '--tag', 'seed', 'osc-image');
    assert.equal(created.name, 'osc-image');
    const list = await osJson('image', 'list');
    const row = list.find((i: any) => i.Name === 'osc-image');
    assert.ok(row, JSON.stringify(list));
    assert.equal(row.Status, 'active');
    const shown = await osJson('image', 'show', 'osc-image');
    assert.equal(shown.size, data.length);
    assert.equal(shown.checksum, md5(data));
    assert.equal(shown.disk_format, 'raw');
    assert.equal(shown.properties?.os_distro ?? shown.os_distro, 'debian');
    const saved = join(dir, 'saved.raw');
    await os('image', 'save', '--file', saved, 'osc-image');
    assert.ok(readFileSync(saved).equals(data), 'the saved image is byte-identical');
    await os('image', 'set', '--property', 'role=control', '--min-ram', '1024', 'osc-image');
    const after = await osJson('image', 'show', 'osc-image');
    assert.equal(after.min_ram, 1024);
    assert.equal(after.properties?.role ?? after.role, 'control');
    await os('image', 'delete', 'osc-image');
    const gone = await osJson('image', 'list');
    assert.ok(!gone.some((i: any) => i.Name === 'osc-image'));
  });

  test('a wrong disk format is refused with the service\'s message', async () => {
    const file = join(dir, 'small.raw');
    writeFileSync(file, randomBytes(1000));
    const r = await exec(OPENSTACK, ['image', 'create', '--file', file, '--disk-format', 'floppy', 'bad-format'], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /floppy|disk[-_]format/i);
  });
});

describe('ooo image commands: upload, list, show, download, delete, bundle and import-bundle', () => {
  let a: TestSeed;
  let b: TestSeed;
  let dir: string;
  const ooo = (s: TestSeed, ...args: string[]) => exec(process.execPath, [CLI, ...args], envFor(s));

  before(async () => {
    a = await startTestSeed('sqlite', { only: ['api'] });
    b = await startTestSeed('sqlite', { only: ['api'] });
    dir = mkdtempSync(join(tmpdir(), 'ooo-image-cli-'));
  });
  after(async () => { await a.stop(); await b.stop(); rmSync(dir, { recursive: true, force: true }); });

  test('upload, list, show, download round trip; delete', async () => {
    const data = randomBytes(2 << 20);
    const file = join(dir, 'one.raw');
    writeFileSync(file, data);
    let r = await ooo(a, 'image', 'upload', file, '--name', 'cli-one', '--tag', 'role-control', '--property', 'os_distro=debian', '--json');
    assert.equal(r.code, 0, r.stderr);
    const img = JSON.parse(r.stdout);
    assert.equal(img.status, 'active');
    assert.equal(img.checksum, md5(data));
    assert.equal(img.os_distro, 'debian');
    r = await ooo(a, 'image', 'list');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /cli-one\s+active\s+raw\s+2097152/);
    r = await ooo(a, 'image', 'show', 'cli-one', '--json');
    assert.equal(JSON.parse(r.stdout).id, img.id);
    const out = join(dir, 'one.out');
    r = await ooo(a, 'image', 'download', 'cli-one', '-o', out);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(out).equals(data));
    r = await ooo(a, 'image', 'show', 'nothing-here');
    assert.equal(r.code, 3);
    const empty = join(dir, 'empty.raw');
    writeFileSync(empty, '');
    r = await ooo(a, 'image', 'upload', empty, '--name', 'empty');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /empty/);
    r = await ooo(a, 'image', 'upload', file, '--name', 'x', '--disk-format', 'floppy');
    assert.equal(r.code, 2);
    r = await ooo(a, 'image', 'delete', 'cli-one');
    assert.equal(r.code, 0, r.stderr);
    r = await ooo(a, 'image', 'show', 'cli-one');
    assert.equal(r.code, 3);
  });

  test('bundle on one seed, import-bundle on another: same images, checksums verified', async () => {
    const datas = [randomBytes(1 << 20), randomBytes(777_777)];
    for (const [i, d] of datas.entries()) {
      writeFileSync(join(dir, `b${i}.raw`), d);
      const r = await ooo(a, 'image', 'upload', join(dir, `b${i}.raw`), '--name', `bundled-${i}`, '--property', `index=${i}`);
      assert.equal(r.code, 0, r.stderr);
    }
    const archive = join(dir, 'images.tar');
    let r = await ooo(a, 'image', 'bundle', '-o', archive, 'bundled-0', 'bundled-1');
    assert.equal(r.code, 0, r.stderr);
    // A standard tar reads it.
    const listing = (await run('tar', ['-tf', archive])).stdout.trim().split('\n');
    assert.equal(listing[0], 'manifest.json');
    assert.equal(listing.length, 3);
    r = await ooo(b, 'image', 'import-bundle', archive);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /imported/);
    for (const [i, d] of datas.entries()) {
      const shown = JSON.parse((await ooo(b, 'image', 'show', `bundled-${i}`, '--json')).stdout);
      assert.equal(shown.checksum, md5(d));
      assert.equal(shown.index, String(i));
      const out = join(dir, `b${i}.out`);
      assert.equal((await ooo(b, 'image', 'download', `bundled-${i}`, '-o', out)).code, 0);
      assert.ok(readFileSync(out).equals(d));
    }
    // Importing again changes nothing.
    r = await ooo(b, 'image', 'import-bundle', archive);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /already present/);
    // A corrupted archive: the image whose bytes changed is refused, nothing of it kept.
    const bad = readFileSync(archive);
    const at = bad.indexOf(datas[1]!.subarray(0, 64));
    bad[at + 1000] = bad[at + 1000]! ^ 0xff;
    const badArchive = join(dir, 'bad.tar');
    writeFileSync(badArchive, bad);
    const c = await startTestSeed('sqlite', { only: ['api'] });
    try {
      r = await ooo(c, 'image', 'import-bundle', badArchive);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /bundled-1.*failed: .*mismatch/);
      assert.match(r.stdout, /bundled-0.*imported/);
      const l = await ooo(c, 'image', 'list', '--json');
      assert.deepEqual(JSON.parse(l.stdout).map((i: any) => i.name), ['bundled-0']);
    } finally { await c.stop(); }
    // Not a bundle at all.
    writeFileSync(join(dir, 'junk.tar'), randomBytes(2048));
    r = await ooo(b, 'image', 'import-bundle', join(dir, 'junk.tar'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a valid tar|not an image bundle/);
  });
});
