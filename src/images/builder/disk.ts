/**
 * Whole-disk images without loop devices or device-mapper: a GPT written by sfdisk into a plain
 * file, an EFI system partition built as its own FAT file (mkfs.vfat + mtools + syslinux) and an
 * ext4 root built with `mke2fs -d ROOTDIR`, both copied into place with `dd conv=notrunc,sparse`.
 *
 * Boot: BIOS through syslinux's gptmbr.bin in the protective MBR, which chains to the partition
 * flagged LegacyBIOSBootable (the ESP, holding ldlinux.sys, the kernel and the initramfs); UEFI
 * through EFI/BOOT/BOOTX64.EFI (syslinux.efi) on the same partition when syslinux-efi is
 * installed. The kernel finds its root by filesystem label.
 *
 * Deterministic for a given root tree and seed: fixed GPT/partition/filesystem UUIDs derived
 * from the seed, E2FSPROGS_FAKE_TIME / SOURCE_DATE_EPOCH for filesystem timestamps, and inode
 * change times reset afterwards with debugfs (mke2fs copies them from the host).
 */
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync, utimesSync, lstatSync, readlinkSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { output, requireTool, run } from './exec.js';

const MiB = 1024 * 1024;
export const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const LINUX_FS_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const SYSLINUX_EFI = '/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi';
const SYSLINUX_EFI_LDLINUX = '/usr/lib/syslinux/modules/efi64/ldlinux.e64';
const GPTMBR = ['/usr/lib/SYSLINUX/gptmbr.bin', '/usr/lib/syslinux/mbr/gptmbr.bin'];

export interface DiskOptions {
  root: string;
  dest: string;
  /** Scratch directory for the partition files. */
  workDir: string;
  rootLabel: string;
  sourceDateEpoch: number;
  /** Seed for the UUIDs (the build's input hash). */
  seed: string;
  /** Kernel command line (root=LABEL=... is added in front). */
  cmdline: string;
  espMiB?: number;
  /** Total disk size in MiB; default: the root's size plus headroom. */
  sizeMiB?: number;
  log?: (line: string) => void;
}

export interface DiskResult {
  bios: boolean;
  uefi: boolean;
  kernel?: string;
  sizeBytes: number;
  partitions: { name: string; start: number; size: number; type: string; uuid: string }[];
}

export function uuidFrom(seed: string, what: string): string {
  const h = createHash('sha256').update(`${seed}:${what}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40; // version 4 layout, deterministic content
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** Bytes a tree needs on ext4, roughly: data blocks plus one inode each. */
export async function treeUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  let bytes = 0;
  let inodes = 0;
  const seen = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    for (const n of await readdir(d)) {
      const p = join(d, n);
      const st = await lstat(p);
      if (st.nlink > 1 && !st.isDirectory()) {
        const k = `${st.dev}:${st.ino}`;
        if (seen.has(k)) continue;
        seen.add(k);
      }
      inodes++;
      bytes += Math.ceil(st.size / 4096) * 4096 + 256;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return { bytes, inodes };
}

/**
 * Resolve /boot/vmlinuz and /boot/initrd.img. Symlinks are followed inside the root (an absolute
 * link such as /boot/vmlinuz -> /boot/vmlinuz-6.1.0 means the image's own /boot, not the host's).
 */
export function findBootFiles(root: string): { kernel?: string; initrd?: string } {
  const resolveIn = (rel: string): string | undefined => {
    for (let i = 0; i < 16; i++) {
      const full = join(root, rel);
      let st;
      try { st = lstatSync(full); } catch { return undefined; }
      if (!st.isSymbolicLink()) return st.isFile() ? full : undefined;
      const l = readlinkSync(full);
      rel = l.startsWith('/') ? l.slice(1) : join(dirname(rel), l);
    }
    return undefined;
  };
  return {
    kernel: resolveIn('boot/vmlinuz') ?? resolveIn('vmlinuz'),
    initrd: resolveIn('boot/initrd.img') ?? resolveIn('initrd.img'),
  };
}

/** Set every mtime/atime under `dir` (and itself) to `epoch`, children before parents. */
export async function clampTimes(dir: string, epoch: number): Promise<void> {
  const { lutimes } = await import('node:fs/promises');
  const walk = async (d: string): Promise<void> => {
    for (const n of await readdir(d)) {
      const p = join(d, n);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      await lutimes(p, epoch, epoch);
    }
  };
  await walk(dir);
  utimesSync(dir, epoch, epoch);
}

/** In-use inode numbers of an ext4 image file, from dumpe2fs's per-group free ranges. */
function usedInodes(img: string): number[] {
  const text = output('dumpe2fs', [img]);
  const total = Number(/^Inode count:\s+(\d+)/m.exec(text)?.[1]);
  const free = new Uint8Array(total + 1);
  for (const m of text.matchAll(/^\s+Free inodes: (.*)$/gm)) {
    for (const range of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [a, b] = range.split('-').map(Number);
      for (let i = a!; i <= (b ?? a!); i++) free[i] = 1;
    }
  }
  const used: number[] = [];
  for (let i = 1; i <= total; i++) if (!free[i]) used.push(i);
  return used;
}

/** Build an ext4 filesystem image of `root` (deterministic; see the module comment). */
export async function makeExt4(root: string, img: string, sizeMiB: number, label: string, seed: string, epoch: number, workDir: string): Promise<void> {
  requireTool('mke2fs');
  const uuid = uuidFrom(seed, 'rootfs');
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(epoch), SOURCE_DATE_EPOCH: String(epoch), MKE2FS_CONFIG: '/etc/mke2fs.conf' };
  await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-U', uuid, '-E', `hash_seed=${uuidFrom(seed, 'hash')},root_owner=0:0`, '-b', '4096', '-O', '^resize_inode', '-m', '1', '-d', root, img, `${sizeMiB}M`], { env });
  const cmds = usedInodes(img).filter((i) => i === 2 || i >= 11).flatMap((i) => [`sif <${i}> ctime @${epoch}`, `sif <${i}> atime @${epoch}`]);
  const cmdFile = join(workDir, 'debugfs.cmds');
  writeFileSync(cmdFile, cmds.join('\n') + '\n');
  await run('debugfs', ['-w', '-f', cmdFile, img], { env });
}

async function ddInto(src: string, dest: string, offsetMiB: number): Promise<void> {
  await run('dd', [`if=${src}`, `of=${dest}`, 'bs=1M', `seek=${offsetMiB}`, 'conv=notrunc,sparse', 'status=none']);
}

export function syslinuxConfig(kernelCmdline: string): string {
  return ['DEFAULT linux', 'PROMPT 0', 'TIMEOUT 0', 'SERIAL 0 115200', 'LABEL linux', '  LINUX /vmlinuz', '  INITRD /initrd.img', `  APPEND ${kernelCmdline}`, ''].join('\n');
}

export async function buildDisk(o: DiskOptions): Promise<DiskResult> {
  for (const t of ['sfdisk', 'mkfs.vfat', 'mcopy', 'mmd', 'syslinux', 'mke2fs', 'debugfs', 'dumpe2fs']) requireTool(t);
  const log = o.log ?? (() => {});
  const espMiB = o.espMiB ?? 64;
  const boot = findBootFiles(o.root);
  const usage = await treeUsage(o.root);
  const rootMiB = o.sizeMiB
    ? o.sizeMiB - espMiB - 2
    : Math.max(64, Math.ceil((usage.bytes * 1.15 + usage.inodes * 256) / MiB) + 48);
  if (rootMiB < 16) throw new Error(`disk size ${o.sizeMiB} MiB is too small (the ESP alone takes ${espMiB} MiB)`);
  const totalMiB = 1 + espMiB + rootMiB + 1;
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(o.sourceDateEpoch), MTOOLS_SKIP_CHECK: '1' };

  // The partition contents, each in its own file.
  const esp = join(o.workDir, 'esp.img');
  const rootImg = join(o.workDir, 'root.ext4');
  log(`ext4 root: ${rootMiB} MiB, label ${o.rootLabel}`);
  await makeExt4(o.root, rootImg, rootMiB, o.rootLabel, o.seed, o.sourceDateEpoch, o.workDir);

  let bios = false;
  let uefi = false;
  await run('rm', ['-f', esp]);
  const volid = uuidFrom(o.seed, 'esp').replace(/-/g, '').slice(0, 8);
  await run('mkfs.vfat', ['-C', '--invariant', '-i', volid, '-n', 'EFI', esp, String(espMiB * 1024)], { env });
  if (boot.kernel && boot.initrd) {
    const cmdline = `root=LABEL=${o.rootLabel} ${o.cmdline}`.trim();
    const cfg = join(o.workDir, 'syslinux.cfg');
    writeFileSync(cfg, syslinuxConfig(cmdline));
    for (const f of [cfg, boot.kernel, boot.initrd]) utimesSync(f, o.sourceDateEpoch, o.sourceDateEpoch);
    await run('mcopy', ['-m', '-i', esp, boot.kernel, '::/vmlinuz'], { env });
    await run('mcopy', ['-m', '-i', esp, boot.initrd, '::/initrd.img'], { env });
    await run('mcopy', ['-m', '-i', esp, cfg, '::/syslinux.cfg'], { env });
    await run('syslinux', ['--install', esp], { env });
    bios = true;
    if (existsSync(SYSLINUX_EFI) && existsSync(SYSLINUX_EFI_LDLINUX)) {
      await run('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT'], { env });
      for (const [src, dst] of [[SYSLINUX_EFI, 'BOOTX64.EFI'], [SYSLINUX_EFI_LDLINUX, 'ldlinux.e64'], [cfg, 'syslinux.cfg']] as const) {
        await run('mcopy', ['-i', esp, src, `::/EFI/BOOT/${dst}`], { env });
      }
      uefi = true;
    }
  } else {
    log('no /boot/vmlinuz and /boot/initrd.img in the image: the disk will not be bootable (add the vm element)');
  }

  // The disk: sparse file, GPT, protective-MBR boot code, partitions.
  await run('rm', ['-f', o.dest]);
  const fd = openSync(o.dest, 'w');
  ftruncateSync(fd, totalMiB * MiB);
  closeSync(fd);
  const espStart = 2048;
  const espSize = espMiB * 2048;
  const rootStart = espStart + espSize;
  const rootSize = rootMiB * 2048;
  const parts = [
    { name: 'ESP', start: espStart, size: espSize, type: ESP_TYPE, uuid: uuidFrom(o.seed, 'part-esp') },
    { name: 'root', start: rootStart, size: rootSize, type: LINUX_FS_TYPE, uuid: uuidFrom(o.seed, 'part-root') },
  ];
  const script = [
    'label: gpt',
    `label-id: ${uuidFrom(o.seed, 'disk')}`,
    'unit: sectors',
    'first-lba: 2048',
    `start=${parts[0]!.start}, size=${parts[0]!.size}, type=${parts[0]!.type}, uuid=${parts[0]!.uuid}, name="ESP", attrs="LegacyBIOSBootable"`,
    `start=${parts[1]!.start}, size=${parts[1]!.size}, type=${parts[1]!.type}, uuid=${parts[1]!.uuid}, name="root"`,
    '',
  ].join('\n');
  await run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', o.dest], { input: script });
  const mbr = GPTMBR.find(existsSync);
  if (bios && mbr) {
    await run('dd', [`if=${mbr}`, `of=${o.dest}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none']);
  } else if (bios) {
    log('gptmbr.bin not found (syslinux-common): the disk will boot with UEFI only');
    bios = false;
  }
  await ddInto(esp, o.dest, 1);
  await ddInto(rootImg, o.dest, 1 + espMiB);
  await run('rm', ['-f', esp, rootImg]);
  return { bios, uefi, kernel: boot.kernel ? relative(o.root, boot.kernel) : undefined, sizeBytes: totalMiB * MiB, partitions: parts };
}
