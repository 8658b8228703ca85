/**
 * Image builder benchmark: busybox ramdisk, busybox whole disk, debian whole disk on a warm and a
 * cold cache, a cache hit, and diskimage-builder side by side when it is installed.
 * Prints one table and appends it to bench/RESULTS.md under "## Images".
 *
 *   node dist/bench/images.js [--skip-cold] [--skip-dib]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage, defaultCacheDir, detectMirror, BuildOptions } from '../src/images/builder/build.js';
import { which } from '../src/images/builder/exec.js';

const argv = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const repo = existsSync(join(here, '..', 'package.json')) ? join(here, '..') : join(here, '..', '..');
const work = mkdtempSync(join(process.env.OOO_BENCH_TMPDIR ?? tmpdir(), 'ooo-bench-images-'));
const rows: { what: string; seconds: number | null; size?: number; target?: string; note?: string }[] = [];
const quiet = () => {};

async function timed(what: string, opts: Omit<BuildOptions, 'output'> & { output?: string }, target?: string, note?: string): Promise<void> {
  const output = opts.output ?? join(work, what.replace(/[^a-z0-9]+/gi, '-'));
  process.stderr.write(`bench: ${what} ...\n`);
  try {
    const t0 = process.hrtime.bigint();
    const r = await buildImage({ progress: quiet, ...opts, output });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const size = r.manifest.artifacts.reduce((s, a) => s + a.size, 0);
    rows.push({ what, seconds, size, target, note: note ?? (r.cacheHit ? 'cache hit' : r.phases.filter((p) => p.seconds >= 1).map((p) => `${p.phase} ${p.seconds.toFixed(1)}`).join(', ')) });
  } catch (e) {
    rows.push({ what, seconds: null, target, note: `failed: ${(e as Error).message.split('\n')[0]}` });
  }
}

function dib(): void {
  if (argv.includes('--skip-dib')) { rows.push({ what: 'diskimage-builder debian-minimal baremetal qcow2', seconds: null, note: 'skipped (--skip-dib)' }); return; }
  if (!which('disk-image-create')) {
    rows.push({ what: 'diskimage-builder debian-minimal baremetal qcow2', seconds: null, note: 'not installed (python3-diskimage-builder); 179 s measured on this kind of machine' });
    return;
  }
  const mirror = detectMirror('bookworm');
  const env = {
    ...process.env, DIB_RELEASE: 'bookworm', DIB_DISTRIBUTION_MIRROR: mirror,
    DIB_DEBIAN_SECURITY_MIRROR: `${mirror.replace(/\/debian$/, '')}/debian-security`, DIB_DEBIAN_SECURITY_SUBPATH: '-security',
    PATH: `/usr/sbin:/usr/bin:/sbin:/bin`,
  };
  process.stderr.write('bench: diskimage-builder (about 3 minutes) ...\n');
  const t0 = Date.now();
  const r = spawnSync('disk-image-create', ['-t', 'qcow2', '-o', join(work, 'dib'), 'debian-minimal', 'baremetal'], { env, encoding: 'utf8', maxBuffer: 256 << 20 });
  const seconds = (Date.now() - t0) / 1000;
  if (r.status === 0) rows.push({ what: 'diskimage-builder debian-minimal baremetal qcow2', seconds, note: 'reference' });
  else rows.push({ what: 'diskimage-builder debian-minimal baremetal qcow2', seconds: null, note: `failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0]}` });
}

async function main(): Promise<void> {
  const cache = defaultCacheDir();
  const epoch = 1704067200;
  // Warm the package caches first (kernel, debian minbase); not timed.
  process.stderr.write('bench: warming caches ...\n');
  await buildImage({ elements: ['busybox', 'ramdisk'], types: ['ramdisk'], output: join(work, 'warm'), useCache: false, progress: quiet });
  await timed('busybox ramdisk (kernel + initramfs)', { elements: ['busybox', 'ramdisk'], types: ['ramdisk'], useCache: false, sourceDateEpoch: epoch }, '< 5 s');
  await timed('busybox ramdisk, zstd initramfs', { elements: ['busybox', 'ramdisk'], types: ['ramdisk'], compression: 'zstd', useCache: false, sourceDateEpoch: epoch }, '< 5 s');
  await timed('busybox vm whole disk (raw)', { elements: ['busybox', 'vm'], types: ['raw'], useCache: false, sourceDateEpoch: epoch });
  await timed('busybox vm whole disk, cache hit', { elements: ['busybox', 'vm'], types: ['raw'], sourceDateEpoch: epoch, output: join(work, 'hit1') });
  await timed('busybox vm whole disk, cache hit', { elements: ['busybox', 'vm'], types: ['raw'], sourceDateEpoch: epoch, output: join(work, 'hit2') });
  rows.splice(rows.length - 2, 1); // the first of the two only fills the cache
  await buildImage({ elements: ['debian', 'vm'], types: ['raw'], output: join(work, 'warm-debian'), useCache: false, progress: quiet }).catch(() => {});
  await timed('debian vm whole disk (raw), warm package cache', { elements: ['debian', 'vm'], types: ['raw'], useCache: false, sourceDateEpoch: epoch }, '< 60 s');
  await timed('debian vm whole disk (qcow2), warm package cache', { elements: ['debian', 'vm'], types: ['qcow2'], useCache: false, sourceDateEpoch: epoch }, '< 60 s');
  if (argv.includes('--skip-cold')) {
    rows.push({ what: 'debian vm whole disk (raw), cold cache', seconds: null, note: 'skipped (--skip-cold)' });
  } else {
    const coldCache = join(work, 'cold-cache');
    mkdirSync(coldCache);
    await timed('debian vm whole disk (raw), cold cache', { elements: ['debian', 'vm'], types: ['raw'], useCache: false, cacheDir: coldCache, sourceDateEpoch: epoch }, '< 90 s (half of dib)', undefined);
    rmSync(coldCache, { recursive: true, force: true });
  }
  dib();

  const mib = (b?: number) => (b === undefined ? '' : `${(b / 2 ** 20).toFixed(1)} MiB`);
  const header = ['build', 'seconds', 'output size', 'target', 'notes'];
  const body = rows.map((r) => [r.what, r.seconds === null ? '-' : r.seconds.toFixed(r.seconds < 1 ? 2 : 1), mib(r.size), r.target ?? '', r.note ?? '']);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  const tableText = [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
  process.stdout.write(tableText + '\n');

  const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown cpu';
  const date = spawnSync('date', ['-u'], { encoding: 'utf8' }).stdout.trim();
  const entry = [`### ${date}`, '', `\`node dist/bench/images.js ${argv.join(' ')}\`` + ` — ${cpu}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores, cache ${cache}`, '', tableText, ''].join('\n');
  const results = join(repo, 'bench', 'RESULTS.md');
  let text = existsSync(results) ? readFileSync(results, 'utf8') : '# Benchmark results\n';
  if (!/^## Images$/m.test(text)) text = text.replace(/\n*$/, '\n\n## Images\n\n');
  // Insert at the end of the "## Images" section (before the next "## " heading, if any).
  const start = text.search(/^## Images$/m);
  const next = text.slice(start + 1).search(/^## /m);
  const at = next < 0 ? text.length : start + 1 + next;
  text = text.slice(0, at).replace(/\n*$/, '\n\n') + entry + '\n' + text.slice(at);
  writeFileSync(results, text);
  process.stderr.write(`bench: appended to ${results}\n`);
  rmSync(work, { recursive: true, force: true });
}

main().catch((e) => { process.stderr.write(`bench: ${(e as Error).stack}\n`); process.exitCode = 1; });
