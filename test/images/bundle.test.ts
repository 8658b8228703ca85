/**
 * The bundle archive format: ustar headers that GNU tar reads, sizes past 8 GiB (base-256),
 * and a reader that finds entries by their headers only and refuses corrupt or truncated files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { padding, tarEntries, tarHeader, trailer } from '../../src/images/bundle.js';

test('entries written by tarHeader are read back, by us and by GNU tar, also past 8 GiB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ooo-bundle-'));
  try {
    const path = join(dir, 'a.tar');
    const big = 9 * 2 ** 30 + 3; // base-256 size field
    const small = Buffer.from('{"x": 1}\n');
    const fd = openSync(path, 'w');
    writeSync(fd, tarHeader('manifest.json', small.length));
    writeSync(fd, small);
    writeSync(fd, padding(small.length));
    writeSync(fd, tarHeader('images/big', big));
    closeSync(fd);
    // The big entry's data is a hole: the file is sparse.
    const dataEnd = 512 + 512 + 512 + big;
    truncateSync(path, dataEnd + padding(big).length);
    const fd2 = openSync(path, 'a');
    writeSync(fd2, trailer());
    closeSync(fd2);
    const entries = await tarEntries(path);
    assert.deepEqual(entries.map((e) => [e.name, e.size, e.offset]), [['manifest.json', small.length, 512], ['images/big', big, 1536]]);
    const listing = execFileSync('tar', ['-tvf', path], { encoding: 'utf8' });
    assert.match(listing, /manifest\.json/);
    assert.match(listing, new RegExp(`${big}\\s.*images/big`));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a corrupt header or a truncated archive is refused clearly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ooo-bundle-'));
  try {
    const h = tarHeader('images/x', 10_000);
    const truncated = join(dir, 't.tar');
    writeFileSync(truncated, Buffer.concat([h, Buffer.alloc(600)]));
    await assert.rejects(tarEntries(truncated), /truncated/);
    const corrupt = join(dir, 'c.tar');
    h[0] = h[0]! ^ 1;
    writeFileSync(corrupt, Buffer.concat([h, Buffer.alloc(10_240)]));
    await assert.rejects(tarEntries(corrupt), /bad header checksum/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
