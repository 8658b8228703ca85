/**
 * `ooo image build`: resolve elements, run their phases against a fresh image root, and write
 * the requested outputs (raw, qcow2, tar, ramdisk) with a manifest. Builds are cached by the
 * hash of everything that goes in (element trees, options, the builder itself).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, renameSync, chmodSync, WriteStream } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Element, elementSearchPath, hashTree, PhaseName, PHASES, resolveElements, ElementError } from './elements.js';
import { output, requireTool, run, runCapture, logStream } from './exec.js';
import { buildDisk, clampTimes, findBootFiles, DiskResult } from './disk.js';
import { writeCpio, Compression } from './cpio.js';

export type OutputType = 'raw' | 'qcow2' | 'tar' | 'ramdisk';
export const OUTPUT_TYPES: OutputType[] = ['raw', 'qcow2', 'tar', 'ramdisk'];
/** Default SOURCE_DATE_EPOCH when none is given: 2024-01-01T00:00:00Z. */
export const DEFAULT_EPOCH = 1704067200;

export interface BuildOptions {
  elements: string[];
  types: OutputType[];
  /** Output path without extension; `.raw`, `.qcow2`, `.tar`, `.kernel`/`.initramfs` are added. */
  output: string;
  elementsPath?: string[];
  cacheDir?: string;
  /** Use and fill the build cache (default true). */
  useCache?: boolean;
  sourceDateEpoch?: number;
  release?: string;
  mirror?: string;
  compression?: Exclude<Compression, 'none'>;
  /** Whole-disk size in MiB (default: fitted to the content). */
  sizeMiB?: number;
  /** Extra environment for hooks (overrides environment.d). */
  env?: Record<string, string>;
  /** Progress lines. */
  progress?: (line: string) => void;
  /** Echo every hook output line. */
  verbose?: boolean;
  /** Keep the work directory (for debugging). */
  keepWorkDir?: boolean;
}

export interface Artifact { type: string; path: string; size: number; sha256: string }
export interface Manifest {
  name: string;
  elements: string[];
  base: string;
  inputHash: string;
  sourceDateEpoch: number;
  release?: string;
  kernel?: string;
  packages: Record<string, string>;
  boot?: { bios: boolean; uefi: boolean; rootLabel: string };
  artifacts: Artifact[];
}
export interface BuildResult { manifest: Manifest; manifestPath: string; cacheHit: boolean; seconds: number; phases: { phase: string; seconds: number }[] }

export class HookError extends Error {
  constructor(readonly element: string, readonly phase: string, readonly hook: string, readonly exitCode: number | null, readonly tail: string[], readonly logFile: string) {
    super(`element '${element}', phase ${phase}, hook ${hook} failed (${exitCode === null ? 'killed' : `exit ${exitCode}`}); last lines of its output:\n  ${tail.join('\n  ')}\n(full log: ${logFile})`);
  }
}
export class BuildError extends Error {}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OOO_IMAGE_CACHE_DIR) return env.OOO_IMAGE_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'ooo', 'images');
}

/** The Debian mirror the machine's apt uses (first non-security `deb` source for the release). */
export function detectMirror(release = 'bookworm'): string {
  const files: string[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  if (existsSync('/etc/apt/sources.list.d')) for (const f of readdirSync('/etc/apt/sources.list.d').sort()) files.push(join('/etc/apt/sources.list.d', f));
  const candidates: { uri: string; suites: string[] }[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const get = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim();
        if (!/\bdeb\b/.test(get('Types') ?? '')) continue;
        const uris = (get('URIs') ?? '').split(/\s+/).filter(Boolean);
        const suites = (get('Suites') ?? '').split(/\s+/);
        for (const u of uris) candidates.push({ uri: u, suites });
      }
    } else if (f.endsWith('.list')) {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
        if (m) candidates.push({ uri: m[1]!, suites: [m[2]!] });
      }
    }
  }
  const hit = candidates.find((c) => c.suites.includes(release) && !/security/.test(c.uri));
  return (hit?.uri ?? 'http://deb.debian.org/debian').replace(/\/$/, '');
}

/** sha256 of the builder's own code and helper, so a changed builder never reuses old builds. */
function builderHash(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const h = createHash('sha256');
  for (const f of readdirSync(here).filter((n) => /\.(js|ts)$/.test(n)).sort()) h.update(f).update(readFileSync(join(here, f)));
  return h.digest('hex');
}

/** Remove work directories of builds that failed more than a day ago (nothing mounted in them). */
function pruneWork(dir: string): void {
  if (!existsSync(dir)) return;
  const mounts = readFileSync('/proc/mounts', 'utf8');
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    try {
      if (Date.now() - statSync(p).mtimeMs < 24 * 3600_000 || mounts.includes(` ${p}/`)) continue;
      rmSync(p, { recursive: true, force: true });
    } catch { /* another build's; leave it */ }
  }
}

/** Host programs whose files end up in images (busybox is copied in); a new version is a new build. */
function hostInputs(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of ['/bin/busybox', '/usr/lib/SYSLINUX/gptmbr.bin', '/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi', '/usr/lib/syslinux/modules/bios/ldlinux.c32']) {
    if (existsSync(p)) { const st = statSync(p); out[p] = `${st.size}:${st.mtimeMs}`; }
  }
  return out;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

function artifactFiles(out: string, types: OutputType[]): { type: string; path: string }[] {
  const files: { type: string; path: string }[] = [];
  for (const t of types) {
    if (t === 'ramdisk') files.push({ type: 'kernel', path: `${out}.kernel` }, { type: 'initramfs', path: `${out}.initramfs` });
    else files.push({ type: t, path: `${out}.${t}` });
  }
  return files;
}

interface Ctx {
  opts: BuildOptions;
  elements: Element[];
  base: Element;
  work: string;
  root: string;
  env: Record<string, string>;
  log: WriteStream;
  logFile: string;
  progress: (l: string) => void;
  mounts: string[];
}

/** Evaluate every element's environment.d files in order, in one bash, and return the result. */
async function evalEnvironment(elements: Element[], baseEnv: Record<string, string>): Promise<Record<string, string>> {
  const files = elements.flatMap((e) => e.envFiles.map((f) => ({ e: e.name, f })));
  if (!files.length) return baseEnv;
  const script = ['set -a'];
  for (const { e, f } of files) script.push(`source ${JSON.stringify(f)} || { echo "element '${e}': environment file ${basename(f)} failed" >&2; exit 1; }`);
  script.push('set +a', 'env -0');
  const r = output('bash', ['-c', script.join('\n')], baseEnv);
  const env: Record<string, string> = {};
  for (const kv of r.split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  for (const k of ['PWD', 'SHLVL', '_', 'OLDPWD']) delete env[k];
  return env;
}

async function mountChroot(c: Ctx): Promise<void> {
  if (c.mounts.length) return;
  const m = async (args: string[], target: string) => {
    mkdirSync(join(c.root, target), { recursive: true });
    await run('mount', [...args, join(c.root, target)]);
    c.mounts.push(join(c.root, target));
  };
  await m(['-t', 'proc', 'proc'], 'proc');
  await m(['-t', 'sysfs', 'sysfs'], 'sys');
  await m(['--bind', '/dev'], 'dev');
  if (existsSync('/dev/pts')) await m(['--bind', '/dev/pts'], 'dev/pts');
}

async function unmountChroot(c: Ctx): Promise<void> {
  while (c.mounts.length) {
    const t = c.mounts.pop()!;
    const r = await runCapture('umount', [t]);
    if (r.code !== 0) await runCapture('umount', ['-l', t]);
  }
}

function condHolds(cond: string, env: Record<string, string>): boolean {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*(!?=)\s*(.*)$/.exec(cond)!;
  const v = env[m[1]!] ?? '';
  return m[2] === '=' ? v === m[3]!.trim() : v !== m[3]!.trim();
}

async function runHooks(c: Ctx, phase: PhaseName, where: 'host' | 'chroot'): Promise<number> {
  const hooks = c.elements.flatMap((e, idx) => (e.hooks[phase] ?? []).map((h) => ({ e, h, idx })));
  hooks.sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : a.idx - b.idx));
  for (const { e, h } of hooks) {
    c.progress(`  ${phase}: ${e.name}/${h}`);
    c.log.write(`\n==> ${phase}: ${e.name}/${h}\n`);
    let cmd: string;
    let args: string[];
    let env: Record<string, string>;
    if (where === 'host') {
      cmd = join(e.dir, `${phase}.d`, h);
      args = [];
      env = { ...c.env, ELEMENT_NAME: e.name, ELEMENT_DIR: e.dir, OOO_PHASE: phase };
    } else {
      const inside = `/tmp/ooo-elements/${e.name}`;
      cmd = 'chroot';
      args = [c.root, `${inside}/${phase}.d/${h}`];
      env = { ...c.env, ELEMENT_NAME: e.name, ELEMENT_DIR: inside, OOO_PHASE: phase, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' };
      delete env.TARGET_ROOT;
      delete env.OOO_CACHE_DIR;
      delete env.OOO_BUILD_DIR;
    }
    const r = await runCapture(cmd, args, { env, log: c.log, onLine: c.opts.verbose ? (l) => c.progress(`    ${l}`) : undefined, cwd: where === 'host' ? c.work : undefined });
    if (r.code !== 0) throw new HookError(e.name, phase, h, r.code, r.tail, c.logFile);
  }
  return hooks.length;
}

async function installPackages(c: Ctx, uninstall: boolean): Promise<void> {
  const wanted = c.elements.flatMap((e) => e.packages.filter((p) => p.when.every((w) => condHolds(w, c.env))).filter((p) => !uninstall || p.uninstall).map((p) => ({ e: e.name, p: p.name })));
  if (!wanted.length) return;
  if (!existsSync(join(c.root, 'usr/bin/apt-get'))) {
    const who = [...new Set(wanted.map((w) => w.e))].join(', ');
    throw new BuildError(`element(s) ${who} want packages (${wanted.map((w) => w.p).join(' ')}) but the base '${c.base.name}' has no package manager (add a 'when: OOO_BASE=debian' condition in package-installs.yaml)`);
  }
  const names = [...new Set(wanted.map((w) => w.p))].sort();
  c.progress(`  ${uninstall ? 'removing' : 'installing'} packages: ${names.join(' ')}`);
  const archives = join(c.env.OOO_CACHE_DIR!, 'apt-archives');
  mkdirSync(join(archives, 'partial'), { recursive: true });
  const target = join(c.root, 'var/cache/apt/archives');
  mkdirSync(target, { recursive: true });
  await run('mount', ['--bind', archives, target]);
  c.mounts.push(target);
  try {
    const env = { ...c.env, DEBIAN_FRONTEND: 'noninteractive', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    const aptArgs = uninstall ? ['purge', '-y', '--auto-remove', ...names] : ['install', '-y', '--no-install-recommends', '-o', 'Dpkg::Use-Pty=0', ...names];
    const r = await runCapture('chroot', [c.root, 'apt-get', '-o', 'APT::Keep-Downloaded-Packages=true', '-o', 'Binary::apt::APT::Keep-Downloaded-Packages=true', ...aptArgs], { env, log: c.log, onLine: c.opts.verbose ? (l) => c.progress(`    ${l}`) : undefined });
    if (r.code !== 0) {
      throw new HookError(wanted.map((w) => w.e).filter((v, i, a) => a.indexOf(v) === i).join(','), uninstall ? 'cleanup' : 'install', `package-installs (apt-get ${aptArgs[0]} ${names.join(' ')})`, r.code, r.tail, c.logFile);
    }
  } finally {
    const t = c.mounts.pop()!;
    await run('umount', [t]);
  }
}

async function copyStatic(c: Ctx): Promise<void> {
  for (const e of c.elements) {
    if (!e.hasStatic) continue;
    c.progress(`  static: ${e.name}`);
    await run('cp', ['-rd', '--preserve=mode,links', '--no-target-directory', join(e.dir, 'static'), c.root]);
  }
}

function packageVersions(c: Ctx): Record<string, string> {
  const pkgs: Record<string, string> = {};
  if (existsSync(join(c.root, 'var/lib/dpkg/status'))) {
    const text = output('dpkg-query', [`--admindir=${join(c.root, 'var/lib/dpkg')}`, '-W', '-f', '${Package}\t${Version}\t${db:Status-Abbrev}\n']);
    for (const l of text.split('\n')) {
      const [p, v, s] = l.split('\t');
      if (p && v && s?.startsWith('i')) pkgs[p] = v;
    }
  }
  const ver = c.env.OOO_BUSYBOX_VERSION;
  if (ver) pkgs['busybox-static'] = ver;
  return Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function writeOutputs(c: Ctx, outBase: string, hash: string): Promise<{ artifacts: Artifact[]; boot?: DiskResult }> {
  const o = c.opts;
  const sde = String(o.sourceDateEpoch);
  let boot: DiskResult | undefined;
  const need = new Set(o.types);
  const rawPath = need.has('raw') ? `${outBase}.raw` : join(c.work, 'disk.raw');
  if (need.has('raw') || need.has('qcow2')) {
    c.progress('output raw: partitioning, ext4 root, bootloader');
    boot = await buildDisk({
      root: c.root, dest: rawPath, workDir: c.work, rootLabel: c.env.OOO_ROOT_LABEL!, sourceDateEpoch: o.sourceDateEpoch!, seed: hash,
      cmdline: c.env.OOO_KERNEL_CMDLINE ?? '', sizeMiB: o.sizeMiB, espMiB: c.env.OOO_ESP_SIZE_MB ? Number(c.env.OOO_ESP_SIZE_MB) : undefined,
      log: (l) => c.progress(`  ${l}`),
    });
  }
  if (need.has('qcow2')) {
    requireTool('qemu-img');
    c.progress('output qcow2: qemu-img convert');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', rawPath, `${outBase}.qcow2`]);
    if (!need.has('raw')) rmSync(rawPath, { force: true });
  }
  if (need.has('tar')) {
    c.progress('output tar');
    await run('tar', ['--sort=name', '--numeric-owner', '--format=gnu', `--mtime=@${sde}`, '--xattrs', '-C', c.root, '-cf', `${outBase}.tar`, '.'], { env: { ...process.env, TZ: 'UTC' } });
  }
  if (need.has('ramdisk')) {
    const bf = findBootFiles(c.root);
    if (!bf.kernel) throw new BuildError('ramdisk output needs a kernel at /boot/vmlinuz in the image: add the ramdisk element');
    if (!existsSync(join(c.root, 'init'))) throw new BuildError('ramdisk output needs an /init in the image: add the ramdisk element');
    c.progress(`output ramdisk: kernel + ${o.compression} initramfs`);
    await run('cp', [bf.kernel, `${outBase}.kernel`]);
    await run('touch', ['-d', `@${sde}`, `${outBase}.kernel`]);
    await writeCpio(c.root, `${outBase}.initramfs`, {
      mtime: o.sourceDateEpoch!, compression: o.compression,
      exclude: (r) => /^boot\/(vmlinuz|initrd\.img)/.test(r),
    });
  }
  const artifacts: Artifact[] = [];
  for (const f of artifactFiles(outBase, o.types)) {
    artifacts.push({ type: f.type, path: basename(f.path), size: statSync(f.path).size, sha256: await sha256File(f.path) });
  }
  return { artifacts, boot };
}

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  const t0 = Date.now();
  const o: BuildOptions = { ...opts };
  o.sourceDateEpoch ??= process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : DEFAULT_EPOCH;
  if (!Number.isInteger(o.sourceDateEpoch) || o.sourceDateEpoch! < 0) throw new BuildError(`SOURCE_DATE_EPOCH must be a non-negative integer, got '${o.sourceDateEpoch}'`);
  o.release ??= process.env.OOO_DEBIAN_RELEASE ?? 'bookworm';
  o.compression ??= 'gzip';
  o.useCache ??= true;
  if (!o.types.length) throw new BuildError('no output type given (-t raw|qcow2|tar|ramdisk)');
  for (const t of o.types) if (!OUTPUT_TYPES.includes(t)) throw new BuildError(`unknown output type '${t}' (known: ${OUTPUT_TYPES.join(', ')})`);
  const progress = o.progress ?? (() => {});
  const cacheDir = resolve(o.cacheDir ?? defaultCacheDir());
  const outBase = resolve(o.output.replace(/\.(raw|qcow2|tar)$/, ''));
  mkdirSync(dirname(outBase), { recursive: true });
  mkdirSync(cacheDir, { recursive: true });

  if (process.getuid?.() !== 0) throw new BuildError('image builds need root (they chroot, mount /proc and /dev into the image root and create device nodes)');
  const tools = ['bash', 'tar', 'mount', 'chroot', 'dpkg-query'];
  if (o.types.includes('raw') || o.types.includes('qcow2')) tools.push('sfdisk', 'mkfs.vfat', 'mcopy', 'mmd', 'syslinux', 'mke2fs', 'debugfs', 'dumpe2fs', 'dd');
  if (o.types.includes('qcow2')) tools.push('qemu-img');
  if (o.types.includes('ramdisk') && o.compression === 'zstd') tools.push('zstd');
  for (const t of tools) requireTool(t);

  const searchPath = elementSearchPath(o.elementsPath ?? []);
  const elements = resolveElements(o.elements, searchPath);
  const base = elements.find((e) => e.isBase)!;
  const names = elements.map((e) => e.name);
  progress(`elements: ${names.join(' ')}`);

  const mirror = o.mirror ?? process.env.OOO_DEBIAN_MIRROR ?? detectMirror(o.release);
  const extraEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(OOO_|DIB_)/.test(k) && !['OOO_ELEMENTS_PATH', 'OOO_IMAGE_CACHE_DIR'].includes(k)).sort()) as Record<string, string>;
  const inputs = {
    builder: builderHash(),
    elements: elements.map((e) => ({ name: e.name, tree: hashTree(e.dir).digest('hex') })),
    types: [...o.types].sort(), compression: o.compression, sizeMiB: o.sizeMiB ?? null, release: o.release, mirror,
    sourceDateEpoch: o.sourceDateEpoch, env: { ...extraEnv, ...(o.env ?? {}) },
    host: hostInputs(),
  };
  const hash = createHash('sha256').update(JSON.stringify(inputs)).digest('hex');
  const name = basename(outBase);
  const manifestPath = `${outBase}.manifest.json`;

  // Cache hit: copy the stored artifacts.
  const cached = join(cacheDir, 'builds', hash);
  if (o.useCache && existsSync(join(cached, 'manifest.json'))) {
    const m = JSON.parse(readFileSync(join(cached, 'manifest.json'), 'utf8')) as Manifest;
    if (m.artifacts.every((a) => existsSync(join(cached, a.path)))) {
      progress(`cache hit: ${hash.slice(0, 16)} (built before with the same inputs)`);
      for (const a of m.artifacts) {
        const ext = a.path.slice(a.path.lastIndexOf('.'));
        await run('cp', ['--sparse=always', '--reflink=auto', join(cached, a.path), `${outBase}${ext}`]);
        a.path = basename(`${outBase}${ext}`);
      }
      m.name = name;
      writeFileSync(manifestPath, JSON.stringify(m, null, 2) + '\n');
      return { manifest: m, manifestPath, cacheHit: true, seconds: (Date.now() - t0) / 1000, phases: [] };
    }
  }

  pruneWork(join(cacheDir, 'work'));
  const work = join(cacheDir, 'work', `${hash.slice(0, 16)}-${process.pid}-${Date.now()}`);
  const root = join(work, 'root');
  mkdirSync(root, { recursive: true });
  chmodSync(root, 0o755);
  const logFile = join(work, 'build.log');
  const helpers = join(work, 'bin');
  mkdirSync(helpers);
  const cpioCli = join(dirname(fileURLToPath(import.meta.url)), 'cpio-cli.js');
  writeFileSync(join(helpers, 'ooo-cpio'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cpioCli)} "$@"\n`, { mode: 0o755 });

  const baseEnv: Record<string, string> = {
    PATH: `${helpers}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    HOME: process.env.HOME ?? '/root',
    LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC',
    TARGET_ROOT: root,
    OOO_BUILD_DIR: work,
    OOO_CACHE_DIR: cacheDir,
    OOO_BASE: base.name,
    OOO_ELEMENTS: names.join(' '),
    IMAGE_ELEMENT: names.join(' '),
    OOO_OUTPUT_TYPES: o.types.join(','),
    OOO_IMAGE_NAME: name,
    OOO_ARCH: 'amd64', ARCH: 'amd64',
    OOO_DEBIAN_RELEASE: o.release!, DIB_RELEASE: o.release!,
    OOO_DEBIAN_MIRROR: mirror,
    OOO_ROOT_LABEL: 'cloudimg-rootfs',
    OOO_KERNEL_CMDLINE: 'console=tty0 console=ttyS0,115200n8',
    SOURCE_DATE_EPOCH: String(o.sourceDateEpoch),
    DEBIAN_FRONTEND: 'noninteractive',
    ...extraEnv,
  };
  const env = { ...(await evalEnvironment(elements, baseEnv)), ...(o.env ?? {}) };
  const c: Ctx = { opts: o, elements, base, work, root, env, log: logStream(logFile), logFile, progress, mounts: [] };
  const phases: { phase: string; seconds: number }[] = [];
  let ok = false;
  try {
    for (const p of PHASES) {
      const ts = Date.now();
      const hasHooks = elements.some((e) => e.hooks[p.name]?.length);
      if (p.name === 'pre-install') {
        await copyStatic(c);
        if (!existsSync(join(root, 'bin/sh'))) throw new BuildError(`the root phase left no /bin/sh in the image: base element '${base.name}' did not create a root`);
      }
      const needsChroot = p.where === 'chroot' && (hasHooks || (p.name === 'install' && elements.some((e) => e.packages.length)));
      if (needsChroot) {
        await mountChroot(c);
        for (const e of elements) {
          if (!PHASES.some((q) => q.where === 'chroot' && e.hooks[q.name]?.length)) continue;
          const dst = join(root, 'tmp/ooo-elements', e.name);
          if (!existsSync(dst)) {
            mkdirSync(dst, { recursive: true });
            await run('cp', ['-rd', '--preserve=mode,links', '--no-target-directory', e.dir, dst]);
          }
        }
      }
      if (hasHooks || p.name === 'install') progress(`phase ${p.name}`);
      if (p.name === 'install') await installPackages(c, false);
      await runHooks(c, p.name, p.where);
      if (p.name === 'post-install') {
        await installPackages(c, true);
        rmSync(join(root, 'tmp/ooo-elements'), { recursive: true, force: true });
        await unmountChroot(c);
      }
      phases.push({ phase: p.name, seconds: (Date.now() - ts) / 1000 });
    }
    await unmountChroot(c);
    const ts = Date.now();
    await clampTimes(root, o.sourceDateEpoch!);
    const dest = o.useCache ? join(cacheDir, 'builds', `${hash}.partial-${process.pid}`) : dirname(outBase);
    if (o.useCache) rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    const produceBase = o.useCache ? join(dest, name) : outBase;
    const { artifacts, boot } = await writeOutputs(c, produceBase, hash);
    phases.push({ phase: 'outputs', seconds: (Date.now() - ts) / 1000 });
    const kernels = existsSync(join(root, 'lib/modules')) ? readdirSync(join(root, 'lib/modules')).sort() : [];
    const manifest: Manifest = {
      name, elements: names, base: base.name, inputHash: hash, sourceDateEpoch: o.sourceDateEpoch!,
      release: base.name === 'debian' ? o.release : undefined, kernel: kernels[0],
      packages: packageVersions(c),
      boot: boot ? { bios: boot.bios, uefi: boot.uefi, rootLabel: env.OOO_ROOT_LABEL! } : undefined,
      artifacts,
    };
    if (o.useCache) {
      writeFileSync(join(dest, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
      rmSync(cached, { recursive: true, force: true });
      try { renameSync(dest, cached); } catch { /* a concurrent identical build stored it first */ }
      if (existsSync(dest)) {
        for (const a of manifest.artifacts) renameSync(join(dest, a.path), join(cached, a.path));
        rmSync(dest, { recursive: true, force: true });
      }
      for (const a of manifest.artifacts) {
        const ext = a.path.slice(a.path.lastIndexOf('.'));
        await run('cp', ['--sparse=always', '--reflink=auto', join(cached, a.path), `${outBase}${ext}`]);
        a.path = basename(`${outBase}${ext}`);
      }
    }
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    ok = true;
    return { manifest, manifestPath, cacheHit: false, seconds: (Date.now() - t0) / 1000, phases };
  } finally {
    await unmountChroot(c).catch(() => {});
    await new Promise<void>((r) => c.log.end(r));
    const stillMounted = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1]?.startsWith(work + '/'));
    if (stillMounted) progress(`something is still mounted under ${work}: left in place, unmount it by hand`);
    else if (ok && !o.keepWorkDir) rmSync(work, { recursive: true, force: true });
    else if (!ok) progress(`work directory kept for inspection: ${work}`);
  }
}

export { ElementError };
