/**
 * Adding the config-drive partition to a whole-disk image's partition table, without touching
 * the image's own partitions: the new GPT (primary and backup, CRCs recomputed) or MBR sectors
 * are computed here from the image's first sectors and the target disk's size, and the ramdisk
 * agent writes them with dd. No loop devices, no partitioning tools in the ramdisk.
 */
import { randomUUID } from 'node:crypto';

export const SECTOR = 512;
const GPT_SIG = 'EFI PART';
/** "Microsoft basic data": what a FAT config drive uses. */
const BASIC_DATA_GUID = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** GUID text to its mixed-endian on-disk form. */
function guidBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

export interface PartitionWrite {
  /** Byte offset on the disk where each blob goes. */
  writes: { offset: number; data: Buffer }[];
  /** Where the config drive's bytes go, and the partition number it gets. */
  partitionOffset: number;
  partitionNumber: number;
  table: 'gpt' | 'mbr';
}

export class PartitionError extends Error {}

/**
 * The partition-table sectors to write so that a new partition of `partBytes` exists after the
 * image's last partition, at the end of a disk of `diskBytes`.
 * `head` is the image's first 34 sectors (MBR + GPT header + 128 entries).
 */
export function addPartition(head: Buffer, imageBytes: number, diskBytes: number, partBytes: number, name = 'config-2'): PartitionWrite {
  if (head.length < 34 * SECTOR) throw new PartitionError(`need the image's first ${34 * SECTOR} bytes, got ${head.length}`);
  const diskSectors = Math.floor(diskBytes / SECTOR);
  const partSectors = Math.ceil(partBytes / SECTOR);
  if (head.subarray(SECTOR, SECTOR + 8).toString('latin1') === GPT_SIG) return addGpt(head, diskSectors, partSectors, name);
  if (head[510] === 0x55 && head[511] === 0xaa) return addMbr(head, imageBytes, diskSectors, partSectors);
  throw new PartitionError('the image has neither a GPT nor an MBR partition table: a config drive needs a whole-disk image');
}

function addGpt(head: Buffer, diskSectors: number, partSectors: number, name: string): PartitionWrite {
  const hdr = Buffer.from(head.subarray(SECTOR, 2 * SECTOR));
  const hdrSize = hdr.readUInt32LE(12);
  const entriesLba = Number(hdr.readBigUInt64LE(72));
  const count = hdr.readUInt32LE(80);
  const entrySize = hdr.readUInt32LE(84);
  if (entriesLba !== 2 || entrySize !== 128 || count * entrySize > 32 * SECTOR) throw new PartitionError(`unusual GPT layout (entries at LBA ${entriesLba}, ${count} x ${entrySize} bytes)`);
  const entries = Buffer.from(head.subarray(2 * SECTOR, 2 * SECTOR + count * entrySize));
  if (crc32(entries) !== hdr.readUInt32LE(88)) throw new PartitionError('the image\'s GPT entry array fails its CRC check');
  let lastUsed = 0;
  let free = -1;
  for (let i = 0; i < count; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) { if (free < 0) free = i; continue; }
    lastUsed = Math.max(lastUsed, Number(e.readBigUInt64LE(40)));
  }
  if (free < 0) throw new PartitionError('the image\'s GPT has no free partition entry');
  const entrySectors = Math.ceil((count * entrySize) / SECTOR);
  const lastUsable = diskSectors - 1 - entrySectors - 1;
  // Place the partition at the end of the disk (as Ironic does), 1 MiB aligned.
  const align = 2048;
  const first = Math.floor((lastUsable - partSectors + 1) / align) * align;
  if (first <= lastUsed) throw new PartitionError(`the disk (${diskSectors * SECTOR} bytes) has no room for a ${partSectors * SECTOR}-byte config drive after the image's partitions`);
  const e = entries.subarray(free * entrySize, (free + 1) * entrySize);
  e.fill(0);
  guidBytes(BASIC_DATA_GUID).copy(e, 0);
  guidBytes(randomUUID()).copy(e, 16);
  e.writeBigUInt64LE(BigInt(first), 32);
  e.writeBigUInt64LE(BigInt(first + partSectors - 1), 40);
  Buffer.from(name, 'utf16le').subarray(0, 72).copy(e, 56);
  const entriesCrc = crc32(entries);
  const header = (self: number, alternate: number, entriesAt: number) => {
    const h = Buffer.alloc(SECTOR);
    hdr.copy(h, 0, 0, hdrSize);
    h.writeUInt32LE(0, 16);
    h.writeBigUInt64LE(BigInt(self), 24);
    h.writeBigUInt64LE(BigInt(alternate), 32);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    h.writeBigUInt64LE(BigInt(entriesAt), 72);
    h.writeUInt32LE(entriesCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, hdrSize)), 16);
    return h;
  };
  const backupLba = diskSectors - 1;
  const backupEntriesLba = backupLba - entrySectors;
  const entriesPadded = Buffer.alloc(entrySectors * SECTOR);
  entries.copy(entriesPadded);
  // Protective MBR covering the whole disk.
  const mbr = Buffer.from(head.subarray(0, SECTOR));
  if (mbr[450] === 0xee) mbr.writeUInt32LE(Math.min(diskSectors - 1, 0xffffffff), 458);
  return {
    table: 'gpt', partitionNumber: free + 1, partitionOffset: first * SECTOR,
    writes: [
      { offset: 0, data: Buffer.concat([mbr, header(1, backupLba, 2), entriesPadded]) },
      { offset: backupEntriesLba * SECTOR, data: Buffer.concat([entriesPadded, header(backupLba, 1, backupEntriesLba)]) },
    ],
  };
}

function addMbr(head: Buffer, imageBytes: number, diskSectors: number, partSectors: number): PartitionWrite {
  const mbr = Buffer.from(head.subarray(0, SECTOR));
  let free = -1;
  let lastUsed = Math.ceil(imageBytes / SECTOR);
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    const type = mbr[o + 4]!;
    if (type === 0) { if (free < 0) free = i; continue; }
    if (type === 0x05 || type === 0x0f || type === 0x85) throw new PartitionError('the image uses extended MBR partitions; use a GPT image for a config drive');
    lastUsed = Math.max(lastUsed, mbr.readUInt32LE(o + 8) + mbr.readUInt32LE(o + 12));
  }
  if (free < 0) throw new PartitionError('the image\'s MBR has no free primary partition slot for a config drive');
  const first = Math.floor((Math.min(diskSectors, 0xffffffff) - partSectors) / 2048) * 2048;
  if (first <= lastUsed) throw new PartitionError('the disk has no room for a config drive after the image');
  const o = 446 + free * 16;
  mbr.fill(0, o, o + 16);
  mbr[o + 4] = 0x0c; // FAT32 (LBA)
  mbr.fill(0xfe, o + 1, o + 4);
  mbr.fill(0xfe, o + 5, o + 8);
  mbr.writeUInt32LE(first, o + 8);
  mbr.writeUInt32LE(partSectors, o + 12);
  return { table: 'mbr', partitionNumber: free + 1, partitionOffset: first * SECTOR, writes: [{ offset: 0, data: mbr }] };
}
