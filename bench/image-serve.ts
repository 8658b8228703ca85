/**
 * Image serving benchmark: a 1 GiB image (a random 1 MiB block repeated, so nothing compresses
 * or dedups on the way) uploaded into a seed running in its own process, then served to 8
 * concurrent downloaders (curl) over loopback, next to the references on the same run:
 *   - a plain HTTP file copy over loopback: a minimal server in its own process that writes a
 *     header and copies the same file to the socket (no routing, no auth, no database), same
 *     8 curl clients;
 *   - busybox httpd (C) serving the same file, same clients;
 *   - 8 concurrent `cat FILE > /dev/null` (page cache, no network) for scale.
 * The seed's RSS is sampled before, during and after, against a 64 MiB image as well: it must
 * not grow with the image size. Prints one table and appends it to bench/RESULTS.md under
 * "## Image service".
 *
 *   node dist/bench/image-serve.js [--size-mib N] [--clients N] [--no-record]
 */
import { spawn, execFileSync, ChildProcess } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir, cpus, loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';

const here = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);
const flag = (name: string, dflt: number) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : dflt; };
const MiB = 1 << 20;

// ---- child mode: the seed ----------------------------------------------------------------
if (argv[0] === '--plain') {
  // child mode: the reference server, in its own process like the seed
  const ref = await plainServer(argv[1]!);
  process.stdout.write(JSON.stringify({ url: ref.url }) + '\n');
  process.on('SIGTERM', () => { ref.close(); process.exit(0); });
} else if (argv[0] === '--serve') {
  const { startSeed } = await import('../src/services/seed.js');
  const { configureLogging } = await import('../src/util/log.js');
  configureLogging({ stderr: false, level: 'error' });
  const seed = await startSeed({ dataDir: argv[1]!, host: '127.0.0.1', port: 0, database: '', only: new Set(['api']), conductorGroup: '', adminPassword: 'bench-admin-pass' });
  process.stdout.write(JSON.stringify({ url: seed.url }) + '\n');
  process.on('SIGTERM', () => { void seed.stop().then(() => process.exit(0)); });
} else {
  await main();
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function makeImage(path: string, mib: number): void {
  const block = randomBytes(MiB);
  const fd = openSync(path, 'w');
  for (let i = 0; i < mib; i++) writeSync(fd, block);
  closeSync(fd);
}

async function token(url: string): Promise<string> {
  const r = await fetch(`${url}/identity/v3/auth/tokens`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: 'bench-admin-pass' } } }, scope: { project: { name: 'admin', domain: { id: 'default' } } } } }),
  });
  if (r.status !== 201) throw new Error(`token: HTTP ${r.status}`);
  return r.headers.get('x-subject-token')!;
}

/** Creates an image and streams a file into it; returns its id and the upload seconds. */
async function upload(url: string, tok: string, file: string, name: string): Promise<{ id: string; seconds: number }> {
  const c = await fetch(`${url}/image/v2/images`, { method: 'POST', headers: { 'X-Auth-Token': tok, 'Content-Type': 'application/json' }, body: JSON.stringify({ name, disk_format: 'raw', container_format: 'bare' }) });
  const id = ((await c.json()) as { id: string }).id;
  const size = statSync(file).size;
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const req = http.request(`${url}/image/v2/images/${id}/file`, { method: 'PUT', headers: { 'X-Auth-Token': tok, 'Content-Type': 'application/octet-stream', 'Content-Length': size } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`upload: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    createReadStream(file, { highWaterMark: MiB }).pipe(req);
  });
  return { id, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** N concurrent curl downloads of a URL; returns total bytes and wall seconds. */
async function curlAll(url: string, n: number, headers: string[] = []): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const sizes = await Promise.all(Array.from({ length: n }, () => new Promise<number>((resolve, reject) => {
    const p = spawn('curl', ['-s', '-f', '-o', '/dev/null', '-w', '%{size_download}', ...headers.flatMap((h) => ['-H', h]), url]);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`curl ${url} exited ${code}`))));
  })));
  return { bytes: sizes.reduce((a, b) => a + b, 0), seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function catAll(file: string, n: number): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
    const p = spawn('sh', ['-c', `cat "$0" > /dev/null`, file]);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`cat exited ${code}`))));
  })));
  return { bytes: statSync(file).size * n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** The reference: the least an HTTP server can do to copy a file to a socket. */
async function plainServer(file: string): Promise<{ url: string; close(): void }> {
  const size = statSync(file).size;
  const srv = net.createServer((sock) => {
    sock.once('data', () => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n`);
      pipeline(createReadStream(file, { highWaterMark: MiB }), sock).catch(() => sock.destroy());
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/`, close: () => srv.close() };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const p = (srv.address() as net.AddressInfo).port; srv.close(() => resolve(p)); });
  });
}

function urlOf(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => { buf += d; const nl = buf.indexOf('\n'); if (nl >= 0) resolve((JSON.parse(buf.slice(0, nl)) as { url: string }).url); });
    child.on('exit', (c) => reject(new Error(`child exited ${c}`)));
  });
}

async function main(): Promise<void> {
  const sizeMiB = flag('--size-mib', 1024);
  const clients = flag('--clients', 8);
  if (!existsSync('/usr/bin/curl')) throw new Error('curl is needed for the downloaders (Debian curl)');
  const work = mkdtempSync(join(process.env.OOO_BENCH_TMPDIR ?? tmpdir(), 'ooo-bench-serve-'));
  const rows: string[][] = [];
  const GBs = (r: { bytes: number; seconds: number }) => r.bytes / r.seconds / 1e9;
  const child = spawn(process.execPath, [here, '--serve', join(work, 'seed')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await urlOf(child);
    const pid = child.pid!;
    const loadBefore = loadavg().map((x) => x.toFixed(1)).join(' ');
    const tok = await token(url);
    const small = join(work, 'small.raw');
    const big = join(work, 'big.raw');
    process.stderr.write(`bench: writing ${sizeMiB} MiB test image ...\n`);
    makeImage(small, 64);
    makeImage(big, sizeMiB);
    const rssIdle = rssMiB(pid);
    const s = await upload(url, tok, small, 'bench-small');
    const b = await upload(url, tok, big, 'bench-big');
    const rssAfterUpload = rssMiB(pid);
    let peak = rssAfterUpload;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(pid)); }, 50);

    // Warm the page cache for every reader alike.
    await catAll(big, 1);
    process.stderr.write('bench: downloads ...\n');
    // Three rounds, interleaved with the reference; the best of each counts (the machine is shared).
    const best = (a: { bytes: number; seconds: number } | undefined, b: { bytes: number; seconds: number }) => (!a || GBs(b) > GBs(a) ? b : a);
    let smallRun, seedRun, apiRun, refRun, catRun, bbRun;
    let peakSmall = peak;
    let peakBig = peak;
    // The reference serves the very file the seed serves (same page-cache state), from its own process.
    const head = await fetch(`${url}/images/${b.id}`, { method: 'HEAD' });
    const blob = join(work, 'seed', 'images', 'sha256', head.headers.get('x-image-sha256')!.slice(0, 2), head.headers.get('x-image-sha256')!);
    const refChild = spawn(process.execPath, [here, '--plain', blob], { stdio: ['ignore', 'pipe', 'inherit'] });
    const ref = { url: await urlOf(refChild), close: () => refChild.kill('SIGTERM') };
    await catAll(blob, 1);
    // A second reference in C: busybox httpd (Debian busybox-static) serving the same file.
    let bb: ChildProcess | undefined;
    let bbUrl: string | undefined;
    if (existsSync('/usr/bin/busybox')) {
      const port = await freePort();
      bb = spawn('/usr/bin/busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', dirname(blob)], { stdio: 'ignore' });
      bbUrl = `http://127.0.0.1:${port}/${basename(blob)}`;
      for (let i = 0; i < 50 && !(await fetch(bbUrl, { method: 'HEAD' }).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    }
    for (let round = 0; round < 3; round++) {
      refRun = best(refRun, await curlAll(ref.url, clients));
      if (bbUrl) bbRun = best(bbRun, await curlAll(bbUrl, clients));
      smallRun = best(smallRun, await curlAll(`${url}/images/${s.id}`, clients));
      if (round === 0) peakSmall = peak;
      seedRun = best(seedRun, await curlAll(`${url}/images/${b.id}`, clients));
      apiRun = best(apiRun, await curlAll(`${url}/image/v2/images/${b.id}/file`, clients, [`X-Auth-Token: ${tok}`]));
      peakBig = Math.max(peakBig, peak);
      catRun = best(catRun, await catAll(big, clients));
    }
    ref.close();
    bb?.kill('SIGTERM');
    clearInterval(sampler);
    const rssAfter = rssMiB(pid);
    if (!smallRun || !seedRun || !apiRun || !refRun || !catRun) throw new Error('no runs');

    // The target is measured against the faster of the two plain copies.
    const baseline = Math.max(GBs(refRun), bbRun ? GBs(bbRun) : 0);
    const pct = (x: number) => `${((x / baseline) * 100).toFixed(0)}%`;
    rows.push(['upload 1 image (PUT, md5+sha256+sha512, fsync)', `${sizeMiB} MiB`, (sizeMiB * MiB / b.seconds / 1e9).toFixed(2), '', `${b.seconds.toFixed(1)} s`]);
    rows.push([`seed /images/{id}, ${clients} curl clients`, `${clients} x ${sizeMiB} MiB`, GBs(seedRun).toFixed(2), pct(GBs(seedRun)), `target >= 90%; ${seedRun.seconds.toFixed(1)} s`]);
    rows.push([`seed /image/v2/images/{id}/file (token), ${clients} clients`, `${clients} x ${sizeMiB} MiB`, GBs(apiRun).toFixed(2), pct(GBs(apiRun)), `${apiRun.seconds.toFixed(1)} s`]);
    rows.push([`reference: plain HTTP file copy over loopback (node), ${clients} clients`, `${clients} x ${sizeMiB} MiB`, GBs(refRun).toFixed(2), pct(GBs(refRun)), `${refRun.seconds.toFixed(1)} s`]);
    if (bbRun) rows.push([`reference: busybox httpd over loopback, ${clients} clients`, `${clients} x ${sizeMiB} MiB`, GBs(bbRun).toFixed(2), pct(GBs(bbRun)), `${bbRun.seconds.toFixed(1)} s`]);
    rows.push([`reference: ${clients} x cat FILE > /dev/null (page cache)`, `${clients} x ${sizeMiB} MiB`, GBs(catRun).toFixed(2), pct(GBs(catRun)), 'no network']);
    rows.push([`seed /images/{id}, 64 MiB image, ${clients} clients`, `${clients} x 64 MiB`, GBs(smallRun).toFixed(2), pct(GBs(smallRun)), '']);
    const rssRows = [
      ['seed RSS idle', `${rssIdle.toFixed(0)} MiB`],
      ['seed RSS after both uploads', `${rssAfterUpload.toFixed(0)} MiB`],
      ['seed RSS peak serving the 64 MiB image', `${peakSmall.toFixed(0)} MiB`],
      [`seed RSS peak serving the ${sizeMiB} MiB image (both endpoints)`, `${peakBig.toFixed(0)} MiB`],
      ['seed RSS after', `${rssAfter.toFixed(0)} MiB`],
    ];
    const cols = ['what', 'data', 'GB/s', 'vs best plain copy', 'notes'];
    const widths = cols.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    const tableText = [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
    const w2 = [Math.max(...rssRows.map((r) => r[0]!.length)), Math.max(...rssRows.map((r) => r[1]!.length))];
    const rssText = [`| ${'memory'.padEnd(w2[0]!)} | ${'RSS'.padEnd(w2[1]!)} |`, `| ${'-'.repeat(w2[0]!)} | ${'-'.repeat(w2[1]!)} |`, ...rssRows.map((r) => `| ${r[0]!.padEnd(w2[0]!)} | ${r[1]!.padEnd(w2[1]!)} |`)].join('\n');
    process.stdout.write(tableText + '\n\n' + rssText + '\n');

    if (argv.includes('--no-record')) return;
    const date = execFileSync('date', { encoding: 'utf8' }).trim();
    const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
    const load = `load average ${loadBefore} before, ${loadavg().map((x) => x.toFixed(1)).join(' ')} after (other work on the machine slows the single-process servers most)`;
    const entry = `### ${date}\n\n\`node dist/bench/image-serve.js${argv.length ? ' ' + argv.join(' ') : ''}\` — ${cpu}, ${cpus().length} cores, loopback; ${load}\n\n${tableText}\n\n${rssText}\n`;
    const repo = existsSync(join(dirname(here), '..', 'package.json')) ? join(dirname(here), '..') : join(dirname(here), '..', '..');
    const results = join(repo, 'bench', 'RESULTS.md');
    let text = existsSync(results) ? readFileSync(results, 'utf8') : '# Benchmark results\n';
    if (!/^## Image service$/m.test(text)) text = text.replace(/\n*$/, '\n\n## Image service\n\n');
    const start = text.search(/^## Image service$/m);
    const next = text.slice(start + 1).search(/^## /m);
    const at = next < 0 ? text.length : start + 1 + next;
    text = text.slice(0, at).replace(/\n*$/, '\n\n') + entry + '\n' + text.slice(at);
    writeFileSync(results, text);
    process.stderr.write(`bench: appended to ${results}\n`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
}
