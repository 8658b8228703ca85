/**
 * Image bundles: one POSIX tar (ustar) archive holding images and a manifest, for carrying the
 * images a deployment needs to a seed with no network.
 *
 *   manifest.json          first entry: {format, version, created_at, images: [{id, name, ..., file}]}
 *   images/<image id>      each image's data (entries are named by id, never by image name)
 *
 * Written and read as streams: memory use does not depend on the image sizes. Sizes above
 * 8 GiB use the base-256 size field (GNU tar reads and writes it).
 */
import { open } from 'node:fs/promises';

export const BUNDLE_FORMAT = 'ooo-image-bundle';
export const MANIFEST = 'manifest.json';

export interface BundleImage {
  id: string;
  name: string | null;
  disk_format: string | null;
  container_format: string | null;
  visibility: string;
  protected: boolean;
  min_disk: number;
  min_ram: number;
  tags: string[];
  properties: Record<string, string>;
  size: number;
  checksum: string;
  os_hash_algo: string;
  os_hash_value: string;
  file: string;
}

export interface Manifest { format: string; version: number; created_at: string; images: BundleImage[] }

export class BundleError extends Error {}

const BLOCK = 512;

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'ascii');
}

/** A ustar header block for a regular file. */
export function tarHeader(name: string, size: number, mtime = Math.floor(Date.now() / 1000)): Buffer {
  if (Buffer.byteLength(name) > 100) throw new BundleError(`tar entry name too long: ${name}`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  if (size < 0o77777777777) octal(h, 124, 12, size);
  else {
    // base-256: high bit set, big-endian value in the remaining 11 bytes
    h[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) { h[i] = Number(v & 0xffn); v >>= 8n; }
  }
  octal(h, 136, 12, mtime);
  h.fill(0x20, 148, 156); // checksum counted as spaces
  h.write('0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

export const padding = (size: number): Buffer => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
/** Two zero blocks end an archive. */
export const trailer = (): Buffer => Buffer.alloc(2 * BLOCK);

function parseSize(h: Buffer): number {
  const f = h.subarray(124, 136);
  if (f[0]! & 0x80) {
    let v = 0n;
    for (let i = 1; i < 12; i++) v = (v << 8n) | BigInt(f[i]!);
    return Number(v);
  }
  const s = f.toString('ascii').replace(/\0.*$/s, '').trim();
  return s ? parseInt(s, 8) : 0;
}

export interface TarEntry { name: string; size: number; offset: number; type: string }

/**
 * The entries of a tar file, found by reading only its headers (the data is skipped). Checks
 * each header's checksum; pax extended headers and GNU long names are understood.
 */
export async function tarEntries(path: string): Promise<TarEntry[]> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const out: TarEntry[] = [];
    let pos = 0;
    let longName: string | undefined;
    const h = Buffer.alloc(BLOCK);
    while (pos + BLOCK <= size) {
      const { bytesRead } = await fh.read(h, 0, BLOCK, pos);
      if (bytesRead < BLOCK) break;
      if (h.every((b) => b === 0)) return out;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      const stated = parseInt(h.subarray(148, 156).toString('ascii').replace(/\0.*$/s, '').trim(), 8);
      if (sum !== stated) throw new BundleError(`${path} is not a valid tar archive (bad header checksum at byte ${pos})`);
      const type = String.fromCharCode(h[156] || 0x30);
      const entrySize = parseSize(h);
      const dataAt = pos + BLOCK;
      if (dataAt + entrySize > size) throw new BundleError(`${path} is truncated: entry at byte ${pos} needs ${entrySize} bytes, the file ends at ${size}`);
      let name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
      if (prefix) name = `${prefix}/${name}`;
      if (type === 'L') {
        const b = Buffer.alloc(entrySize);
        await fh.read(b, 0, entrySize, dataAt);
        longName = b.toString('utf8').replace(/\0.*$/s, '');
      } else if (type === 'x') {
        const b = Buffer.alloc(entrySize);
        await fh.read(b, 0, entrySize, dataAt);
        const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(b.toString('utf8'));
        if (m) longName = m[1];
      } else if (type !== 'g') {
        out.push({ name: longName ?? name, size: entrySize, offset: dataAt, type });
        longName = undefined;
      }
      pos = dataAt + entrySize + ((BLOCK - (entrySize % BLOCK)) % BLOCK);
    }
    return out;
  } finally {
    await fh.close();
  }
}
