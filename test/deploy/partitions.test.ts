/**
 * Adding the config-drive partition to GPT and MBR whole-disk images: the result is read back
 * by sfdisk (util-linux), which checks the GPT CRCs and both headers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addPartition, crc32 } from '../../src/deploy/partitions.js';
import { which } from '../../src/images/builder/exec.js';

const skip = which('sfdisk') ? false : 'sfdisk is not installed (Debian fdisk)';
const MiB = 1024 * 1024;

function imageWith(label: 'gpt' | 'dos'): string {
  const f = join(mkdtempSync(join(tmpdir(), 'ooo-pt-')), 'img');
  writeFileSync(f, Buffer.alloc(8 * MiB));
  execFileSync('sfdisk', ['-q', f], { input: `label: ${label}\nstart=2048, size=8192, type=${label === 'gpt' ? 'L' : '83'}\n` });
  return f;
}

function deploy(image: string, diskBytes: number): { disk: string; plan: ReturnType<typeof addPartition> } {
  const disk = `${image}.disk`;
  const img = readFileSync(image);
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, diskBytes);
  writeSync(fd, img, 0, img.length, 0);
  const plan = addPartition(img.subarray(0, 34 * 512), img.length, diskBytes, 64 * MiB);
  for (const w of plan.writes) writeSync(fd, w.data, 0, w.data.length, w.offset);
  closeSync(fd);
  return { disk, plan };
}

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('GPT: a config-2 partition at the end of the disk, both headers valid', { skip }, () => {
  const { disk, plan } = deploy(imageWith('gpt'), 2048 * MiB);
  const out = execFileSync('sfdisk', ['-J', disk], { stdio: ['ignore', 'pipe', 'pipe'] });
  const t = JSON.parse(out.toString()).partitiontable;
  assert.equal(t.label, 'gpt');
  assert.equal(t.partitions.length, 2);
  assert.equal(t.partitions[1].name, 'config-2');
  assert.equal(t.partitions[1].start * 512, plan.partitionOffset);
  assert.equal(t.partitions[1].size * 512, 64 * MiB);
  assert.equal(t.lastlba, 2048 * MiB / 512 - 34, 'usable space extends to the new disk end');
  const verify = execFileSync('sfdisk', ['--verify', disk]).toString();
  assert.match(verify, /No errors detected/);
});

test('MBR: a FAT32 primary partition after the image', { skip }, () => {
  const { disk, plan } = deploy(imageWith('dos'), 1024 * MiB);
  const t = JSON.parse(execFileSync('sfdisk', ['-J', disk]).toString()).partitiontable;
  assert.equal(t.label, 'dos');
  assert.equal(t.partitions.length, 2);
  assert.equal(t.partitions[1].type, 'c');
  assert.equal(t.partitions[1].start * 512, plan.partitionOffset);
});

test('an image without a partition table, or a disk too small, is refused clearly', () => {
  assert.throws(() => addPartition(Buffer.alloc(34 * 512), 8 * MiB, 1024 * MiB, 64 * MiB), /neither a GPT nor an MBR/);
  if (!skip) assert.throws(() => { const img = readFileSync(imageWith('gpt')); addPartition(img.subarray(0, 34 * 512), img.length, 40 * MiB, 64 * MiB); }, /no room/);
});
