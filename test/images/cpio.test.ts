import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, readlinkSync, statSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { cpioBuffer, writeCpio } from '../../src/images/builder/cpio.js';
import { missingTools, tmp } from './helpers.js';

function sample(): string {
  const root = tmp('ooo-cpio-');
  mkdirSync(join(root, 'etc/deep/er'), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'box\n');
  writeFileSync(join(root, 'etc/deep/er/odd-size'), 'abcde'); // padding
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'big'), Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a)); // several read chunks
  writeFileSync(join(root, 'run.sh'), '#!/bin/sh\n');
  chmodSync(join(root, 'run.sh'), 0o4755);
  symlinkSync('etc/hostname', join(root, 'link'));
  return root;
}

test('newc headers: magic, sorted names, fixed mtime, owner 0, trailer', async () => {
  const root = sample();
  const buf = await cpioBuffer(root, { mtime: 1234567890 });
  const names: string[] = [];
  let off = 0;
  for (;;) {
    const h = buf.subarray(off, off + 110).toString('ascii');
    assert.equal(h.slice(0, 6), '070701');
    const f = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
    const nameLen = f(11);
    const name = buf.subarray(off + 110, off + 110 + nameLen - 1).toString();
    if (name === 'TRAILER!!!') break;
    assert.equal(f(2), 0); assert.equal(f(3), 0);
    assert.equal(f(5), 1234567890);
    names.push(name);
    off += 110 + nameLen; off = (off + 3) & ~3;
    off += f(6); off = (off + 3) & ~3;
  }
  assert.deepEqual(names, ['big', 'empty', 'etc', 'etc/deep', 'etc/deep/er', 'etc/deep/er/odd-size', 'etc/hostname', 'link', 'run.sh']);
  assert.equal(buf.length % 4, 0);
  // Same tree, same bytes.
  assert.ok(buf.equals(await cpioBuffer(root, { mtime: 1234567890 })));
});

test('busybox cpio reads the archive back (gzip, and zstd when installed)', { skip: missingTools('busybox') }, async () => {
  const root = sample();
  const work = tmp('ooo-cpio-out-');
  const arch = join(work, 'a.cpio.gz');
  await writeCpio(root, arch, { mtime: 0, compression: 'gzip', exclude: (r) => r === 'empty' });
  const raw = gunzipSync(readFileSync(arch));
  writeFileSync(join(work, 'a.cpio'), raw);
  const list = spawnSync('busybox', ['cpio', '-t', '-F', join(work, 'a.cpio')], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual(list.stdout.trim().split('\n'), ['big', 'etc', 'etc/deep', 'etc/deep/er', 'etc/deep/er/odd-size', 'etc/hostname', 'link', 'run.sh']);
  const out = join(work, 'x');
  mkdirSync(out);
  const ex = spawnSync('busybox', ['cpio', '-i', '-d', '-F', join(work, 'a.cpio')], { cwd: out, encoding: 'utf8' });
  assert.equal(ex.status, 0, ex.stderr);
  assert.equal(readFileSync(join(out, 'etc/hostname'), 'utf8'), 'box\n');
  assert.equal(readFileSync(join(out, 'etc/deep/er/odd-size'), 'utf8'), 'abcde');
  assert.ok(readFileSync(join(out, 'big')).equals(readFileSync(join(root, 'big'))));
  assert.equal(readlinkSync(join(out, 'link')), 'etc/hostname');
  assert.equal(statSync(join(out, 'run.sh')).mode & 0o7777, 0o4755);
  if (!missingTools('zstd')) {
    const z = join(work, 'a.cpio.zst');
    await writeCpio(root, z, { mtime: 0, compression: 'zstd', exclude: (r) => r === 'empty' });
    const dec = spawnSync('zstd', ['-dc', z], { maxBuffer: 64 << 20 });
    assert.equal(dec.status, 0);
    assert.ok(dec.stdout.equals(raw), 'zstd and gzip archives hold the same cpio stream');
  }
});
