/**
 * Control-plane benchmark: ooo's seed against OpenStack Ironic (Debian ironic-api +
 * ironic-conductor, SQLite, fake-hardware, noauth) on this machine, same workloads, same run.
 *
 *   node dist/bench/controlplane.js [--nodes 1000] [--only ooo|ironic] [--duration 10] [--no-record]
 *
 * Workloads, the same for both services:
 *   (a) create N nodes (driver fake-hardware) with POST /v1/nodes over 8 keep-alive connections;
 *   (b) GET /v1/nodes/{uuid} and (c) GET /v1/nodes (N nodes, default fields) with wrk
 *       (-t2 -c16 -d10s --timeout 30s --latency): requests per second and p99;
 *   (d) 100 nodes manage -> provide -> active, polling GET /v1/nodes?fields=uuid,provision_state
 *       until every node has reached each state; for ooo also N fresh nodes enroll -> active;
 *   (e) resident memory (VmRSS) of the service's process tree, idle after start and after the work.
 * ooo runs with authentication on (a Keystone token on every request); Ironic with noauth.
 * Prints one table and appends it to bench/RESULTS.md under "## Control plane" (--no-record: don't).
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: node dist/bench/controlplane.js [--nodes N] [--only ooo|ironic] [--duration SECONDS] [--no-record]\n`);
  process.exit(2);
}
const flags = new Map<string, string | true>();
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === '--no-record' || a === '--help' || a === '-h') { flags.set(a.replace(/^-+/, ''), true); continue; }
  if (!['--nodes', '--only', '--duration'].includes(a)) usage(`unknown argument: ${a}`);
  const v = argv[++i];
  if (v === undefined) usage(`${a} needs a value`);
  flags.set(a.slice(2), v);
}
if (flags.has('help') || flags.has('h')) usage('Control-plane benchmark: ooo against OpenStack Ironic.');
const N = Number(flags.get('nodes') ?? 1000);
if (!Number.isInteger(N) || N < 100) usage('--nodes must be an integer >= 100');
const ONLY = flags.get('only') as string | undefined;
if (ONLY !== undefined && ONLY !== 'ooo' && ONLY !== 'ironic') usage('--only must be ooo or ironic');
const DURATION = Number(flags.get('duration') ?? 10);
if (!Number.isInteger(DURATION) || DURATION < 1) usage('--duration must be a whole number of seconds');
const RECORD = !flags.has('no-record');

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = existsSync(join(here, '..', 'package.json')) ? join(here, '..') : join(here, '..', '..');
const API_VERSION = '1.82';
const CONNECTIONS = 8;
const CYCLE_NODES = 100;
const STATE_TIMEOUT_MS = 300_000;
const REQUEST_TIMEOUT_MS = 120_000;

/** Ironic's figures from issue 2 (measured on this kind of machine), used when it is not run. */
const REFERENCE = { create: 8.6, getOne: 165, getList: 11, cycle100: 12.9, rssIdle: 474 };

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Processes and temporary directories, cleaned up on every way out

interface Service { name: string; child: ChildProcess; log: string }
const services = new Set<Service>();
const tempDirs = new Set<string>();

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(process.env.OOO_BENCH_TMPDIR ?? tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}
function removeDir(d: string): void { rmSync(d, { recursive: true, force: true }); tempDirs.delete(d); }

/** Starts a service in its own process group, output to a log file. */
function startService(name: string, cmd: string, args: string[], logFile: string): Service {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const s = { name, child, log: logFile };
  services.add(s);
  child.once('exit', () => services.delete(s));
  return s;
}
const alive = (s: Service) => s.child.exitCode === null && s.child.signalCode === null;
function signalGroup(s: Service, sig: NodeJS.Signals): void {
  try { process.kill(-s.child.pid!, sig); } catch { /* already gone */ }
}
/** SIGTERM to the process group, SIGKILL after 5 s. */
async function stopService(s: Service): Promise<void> {
  if (!alive(s)) { signalGroup(s, 'SIGKILL'); return; }
  const exited = new Promise((res) => s.child.once('exit', res));
  signalGroup(s, 'SIGTERM');
  const t = setTimeout(() => { log(`${s.name} did not stop in 5 s: killing it`); signalGroup(s, 'SIGKILL'); }, 5_000);
  await exited;
  clearTimeout(t);
  signalGroup(s, 'SIGKILL'); // workers left behind, if any
}
function tail(file: string, lines = 15): string {
  try { return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n'); } catch { return '    (no log)'; }
}

// One run at a time on this machine: two runs would share its cores and spoil both figures.
const LOCK = join(tmpdir(), 'ooo-bench-controlplane.lock');
let locked = false;
async function lockRun(): Promise<void> {
  const end = Date.now() + 20 * 60_000;
  for (let said = false; ;) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      locked = true;
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = 0;
    try { holder = Number(readFileSync(LOCK, 'utf8').trim()); } catch { continue; /* just removed */ }
    if (!holder) { await sleep(200); holder = Number(readFileSync(LOCK, 'utf8').trim()) || -1; /* being written */ }
    let holderAlive = false;
    try { process.kill(holder, 0); holderAlive = holder > 0; } catch { /* gone */ }
    if (!holderAlive) { rmSync(LOCK, { force: true }); continue; }
    if (Date.now() > end) throw new Error(`another control-plane benchmark (pid ${holder}) has been running for 20 minutes; giving up`);
    if (!said) { log(`another control-plane benchmark is running (pid ${holder}); waiting for it to finish`); said = true; }
    await sleep(2000);
  }
}

process.on('exit', () => {
  if (locked) rmSync(LOCK, { force: true });
  for (const s of services) signalGroup(s, 'SIGKILL');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping services and removing temporary files`);
    Promise.all([...services].map(stopService)).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface Target {
  name: 'ooo' | 'ironic';
  /** Bare-metal API endpoint (without /v1). */
  base: string;
  headers: Record<string, string>;
  agent: http.Agent;
  pids: () => number[];
  stop: () => Promise<void>;
  /** Log files to show when something goes wrong. */
  logs: string[];
}

interface Reply { status: number; body: any }

function call(t: Target, method: string, pathOrUrl: string, body?: unknown): Promise<Reply> {
  const url = /^https?:/.test(pathOrUrl) ? pathOrUrl : `${t.base}${pathOrUrl}`;
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { ...t.headers, Accept: 'application/json' };
    if (payload) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = String(payload.length); }
    const req = http.request(url, { method, agent: t.agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON: keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${url}: no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Ironic's error bodies carry JSON inside a JSON string; show the fault string. */
function errorText(r: Reply): string {
  const b = r.body as { error_message?: string } | string | undefined;
  if (b && typeof b === 'object' && typeof b.error_message === 'string') {
    try { return JSON.parse(b.error_message).faultstring ?? b.error_message; } catch { return b.error_message; }
  }
  return typeof b === 'string' ? b.slice(0, 300) : JSON.stringify(b)?.slice(0, 300) ?? '';
}

async function pool<T>(items: T[], conc: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try { await fn(items[i]!, i); } catch (e) { failed ??= e; }
    }
  }));
  if (failed !== undefined) throw failed;
}

/** Polls fn until it returns true; retries on errors, except errors marked `fatal`. */
async function waitUntil(what: string, ms: number, fn: () => Promise<boolean>, every = 200): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try { if (await fn()) return; } catch (e) { if ((e as { fatal?: boolean }).fatal) throw e; last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(every);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

// ---------------------------------------------------------------------------------------------
// Measurements

/** Sum of VmRSS over the given processes and all their descendants, in MB. */
function rssMB(pids: number[]): number {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const tree = new Set<number>(pids.filter((p) => parent.has(p)));
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parent) if (!tree.has(p) && tree.has(pp)) { tree.add(p); grew = true; }
  }
  let kib = 0;
  for (const p of tree) {
    try { kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0); } catch { /* gone */ }
  }
  return (kib * 1024) / 1e6;
}

/** CPU seconds (user + system) used so far by the given processes and their descendants. */
function cpuSeconds(pids: number[]): number {
  const stats = new Map<number, string[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      stats.set(Number(d), stat.slice(stat.lastIndexOf(')') + 2).split(' '));
    } catch { /* gone */ }
  }
  const tree = new Set<number>(pids.filter((p) => stats.has(p)));
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, f] of stats) if (!tree.has(p) && tree.has(Number(f[1]))) { tree.add(p); grew = true; }
  }
  // Fields utime, stime, cutime, cstime (14-17 in proc(5); 11-14 after the command name).
  let ticks = 0;
  for (const p of tree) { const f = stats.get(p)!; ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); }
  const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  return ticks / hz;
}

interface WrkResult { rps: number; p99: number; errors?: string }

function wrk(t: Target, path: string): WrkResult {
  const dir = tempDir('ooo-bench-wrk-');
  try {
    const lua = join(dir, 'headers.lua');
    writeFileSync(lua, Object.entries(t.headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`).join('\n') + '\n');
    const r = spawnSync('wrk', ['-t2', '-c16', `-d${DURATION}s`, '--timeout', '30s', '--latency', '-s', lua, `${t.base}${path}`],
      { encoding: 'utf8', timeout: (DURATION + 90) * 1000 });
    if (r.error || r.status !== 0) throw new Error(`wrk failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}${r.stdout}`);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    const m = /^\s*99%\s+([\d.]+)(us|ms|s|m)\b/m.exec(r.stdout);
    const p99 = m ? Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2]!]! : NaN;
    const errors = [/Non-2xx or 3xx responses: \d+/.exec(r.stdout)?.[0], /Socket errors: [^\n]+/.exec(r.stdout)?.[0]].filter(Boolean).join('; ');
    return errors ? { rps, p99, errors } : { rps, p99 };
  } finally {
    removeDir(dir);
  }
}

async function createNodes(t: Target, count: number, prefix: string): Promise<{ seconds: number; uuids: string[] }> {
  const uuids = new Array<string>(count);
  const t0 = performance.now();
  let made = 0;
  await pool(Array.from({ length: count }, (_, i) => i), CONNECTIONS, async (i) => {
    const r = await call(t, 'POST', '/v1/nodes', { driver: 'fake-hardware', name: `${prefix}-${i}` });
    if (r.status !== 201 || typeof r.body?.uuid !== 'string') throw new Error(`${t.name}: POST /v1/nodes: ${r.status} ${errorText(r)}`);
    uuids[i] = r.body.uuid;
    if (++made === Math.min(100, count)) log(`${t.name}: first ${made} nodes in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  });
  return { seconds: (performance.now() - t0) / 1000, uuids };
}

/** All of `uuids` through manage -> provide -> active; seconds from the first request to the last node active. */
async function cycle(t: Target, uuids: string[]): Promise<number> {
  const want = new Set(uuids);
  const t0 = performance.now();
  for (const [verb, state] of [['manage', 'manageable'], ['provide', 'available'], ['active', 'active']] as const) {
    await pool(uuids, CONNECTIONS, async (u) => {
      for (let attempt = 0; ; attempt++) {
        const r = await call(t, 'PUT', `/v1/nodes/${u}/states/provision`, { target: verb });
        if (r.status === 202) return;
        // A node still locked by the previous step: Ironic's clients retry these.
        if (r.status === 409 && attempt < 50) { await sleep(100); continue; }
        throw new Error(`${t.name}: ${verb} ${u}: ${r.status} ${errorText(r)}`);
      }
    });
    // Polling must not starve the service it measures: between polls, wait twice as long as the
    // last poll took (at least 50 ms), so the poller has the API at most a third of the time.
    let pollMs = 25;
    await waitUntil(`${uuids.length} ${t.name} nodes to reach ${state}`, STATE_TIMEOUT_MS, async () => {
      await sleep(Math.max(50, 2 * pollMs));
      const p0 = performance.now();
      let url = '/v1/nodes?fields=uuid,provision_state';
      let done = 0;
      while (url) {
        const r = await call(t, 'GET', url);
        if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${errorText(r)}`);
        const nodes = r.body.nodes as { uuid: string; provision_state: string }[];
        for (const n of nodes) {
          if (!want.has(n.uuid)) continue;
          if (n.provision_state === state) done++;
          else if (/fail|^error$/.test(n.provision_state)) {
            const d = await call(t, 'GET', `/v1/nodes/${n.uuid}?fields=provision_state,last_error`);
            throw Object.assign(new Error(`${t.name}: node ${n.uuid} went to ${n.provision_state} on ${verb}: ${d.body?.last_error ?? ''}`), { fatal: true });
          }
        }
        url = nodes.length && typeof r.body.next === 'string' ? r.body.next : '';
      }
      pollMs = performance.now() - p0;
      return done === uuids.length;
    }, 0);
  }
  return (performance.now() - t0) / 1000;
}

interface Figures {
  /** CPU seconds the service used for the fixed amounts of work: creating N nodes and the 100-node cycle. */
  cpu?: number;
  create?: number; getOne?: WrkResult; getList?: WrkResult; cycle100?: number; cycleN?: number; createN2?: number;
  rssIdle?: number; rssAfter?: number; failed?: string;
}

async function workload(t: Target, f: Figures): Promise<void> {
  await sleep(3000);
  f.rssIdle = rssMB(t.pids());
  let cpu0 = cpuSeconds(t.pids());
  log(`${t.name}: idle RSS ${f.rssIdle.toFixed(0)} MB; creating ${N} nodes over ${CONNECTIONS} connections`);
  const { seconds, uuids } = await createNodes(t, N, 'bench');
  f.create = seconds;
  f.cpu = cpuSeconds(t.pids()) - cpu0;
  log(`${t.name}: ${N} nodes in ${seconds.toFixed(2)} s; wrk GET /v1/nodes/{uuid} (${DURATION} s)`);
  f.getOne = wrk(t, `/v1/nodes/${uuids[0]}`);
  log(`${t.name}: ${f.getOne.rps.toFixed(0)} req/s, p99 ${f.getOne.p99} ms; wrk GET /v1/nodes (${DURATION} s)`);
  const probe = await call(t, 'GET', '/v1/nodes');
  if (probe.status !== 200 || (probe.body?.nodes?.length ?? 0) < Math.min(N, 1000)) throw new Error(`${t.name}: GET /v1/nodes returned ${probe.status} with ${probe.body?.nodes?.length} nodes`);
  f.getList = wrk(t, '/v1/nodes');
  log(`${t.name}: ${f.getList.rps.toFixed(1)} req/s, p99 ${f.getList.p99} ms; ${CYCLE_NODES} nodes manage -> provide -> active`);
  cpu0 = cpuSeconds(t.pids());
  f.cycle100 = await cycle(t, uuids.slice(0, CYCLE_NODES));
  f.cpu += cpuSeconds(t.pids()) - cpu0;
  log(`${t.name}: ${CYCLE_NODES} nodes active in ${f.cycle100.toFixed(2)} s; service CPU for creating and cycling: ${f.cpu.toFixed(1)} s`);
  if (t.name === 'ooo') {
    log(`${t.name}: creating ${N} more nodes, then all of them enroll -> manage -> provide -> active`);
    const second = await createNodes(t, N, 'bench-b');
    f.createN2 = second.seconds;
    f.cycleN = await cycle(t, second.uuids);
    log(`${t.name}: ${N} nodes active in ${f.cycleN.toFixed(2)} s`);
  }
  await sleep(2000);
  f.rssAfter = rssMB(t.pids());
}

// ---------------------------------------------------------------------------------------------
// The two services

async function startOoo(): Promise<Target> {
  const bin = join(ROOT, 'bin', 'ooo');
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'seed.js'))) throw new Error(`dist/src/cli/seed.js is missing: build first (npx tsc -p tsconfig.json)`);
  const dir = tempDir('ooo-bench-seed-');
  const port = await freePort();
  const logFile = join(dir, 'seed.out');
  const s = startService('ooo seed', bin, ['seed', 'up', '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--quiet'], logFile);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const stop = async () => { agent.destroy(); await stopService(s); removeDir(dir); };
  try {
    const clouds = join(dir, 'clouds.yaml');
    let token = '';
    let base = '';
    await waitUntil('the ooo seed to answer', 60_000, async () => {
      if (!alive(s)) throw Object.assign(new Error('exited'), { fatal: true });
      if (!existsSync(clouds)) return false;
      const cloud = YAML.parse(readFileSync(clouds, 'utf8'))?.clouds?.ooo;
      const a = cloud?.auth;
      if (!a?.auth_url) return false;
      const r = await fetch(`${String(a.auth_url).replace(/\/+$/, '').replace(/\/v3$/, '')}/v3/auth/tokens`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(10_000),
        body: JSON.stringify({ auth: {
          identity: { methods: ['password'], password: { user: { name: a.username, password: a.password, domain: { name: a.user_domain_name ?? 'Default' } } } },
          scope: { project: { name: a.project_name, domain: { name: a.project_domain_name ?? 'Default' } } },
        } }),
      });
      if (r.status >= 400 && r.status < 500) throw Object.assign(new Error(`POST /v3/auth/tokens with clouds.yaml's credentials: ${r.status} ${await r.text()}`), { fatal: true });
      if (r.status !== 201) return false;
      token = r.headers.get('x-subject-token') ?? '';
      const body = (await r.json()) as { token?: { catalog?: { type: string; endpoints: { interface: string; url: string; region?: string; region_id?: string }[] }[] } };
      const eps = body.token?.catalog?.find((c) => c.type === 'baremetal')?.endpoints.filter((e) => e.interface === 'public') ?? [];
      const ep = eps.find((e) => !cloud.region_name || e.region === cloud.region_name || e.region_id === cloud.region_name) ?? eps[0];
      if (!token || !ep) throw new Error('no token or no public baremetal endpoint in the catalog');
      base = ep.url.replace(/\/+$/, '').replace(/\/v1$/, '');
      if (!/^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(base)) throw Object.assign(new Error(`the catalog's baremetal endpoint ${base} is not on loopback`), { fatal: true });
      return true;
    }).catch((e) => { throw new Error(`ooo seed did not start: ${(e as Error).message}\n  ${logFile}:\n${tail(logFile)}`); });
    const t: Target = {
      name: 'ooo', base, agent, headers: { 'X-Auth-Token': token, 'X-OpenStack-Ironic-API-Version': API_VERSION },
      pids: () => [s.child.pid!], stop, logs: [logFile, join(dir, 'logs')],
    };
    const v1 = await call(t, 'GET', '/v1/nodes?limit=1');
    if (v1.status !== 200) throw new Error(`ooo: GET ${base}/v1/nodes with a token: ${v1.status} ${errorText(v1)}`);
    return t;
  } catch (e) {
    await stop();
    throw e;
  }
}

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) if (d && existsSync(join(d, cmd))) return join(d, cmd);
  return undefined;
}

function ironicVersion(): string {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'ironic-conductor'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.replace(/^\d+:/, '') : 'unknown version';
}

async function startIronic(): Promise<Target> {
  const api = which('ironic-api'), conductor = which('ironic-conductor'), dbsync = which('ironic-dbsync');
  if (!api || !conductor || !dbsync) throw Object.assign(new Error('not installed, skipped'), { skipped: true });
  const dir = tempDir('ooo-bench-ironic-');
  const [apiPort, rpcPort] = [await freePort(), await freePort()];
  const conf = join(dir, 'ironic.conf');
  writeFileSync(conf, readFileSync(join(ROOT, 'bench', 'ironic', 'ironic.conf.in'), 'utf8')
    .replaceAll('@DIR@', dir).replaceAll('@API_PORT@', String(apiPort)).replaceAll('@RPC_PORT@', String(rpcPort)));
  const sync = spawnSync(dbsync, ['--config-file', conf, 'create_schema'], { encoding: 'utf8', timeout: 120_000 });
  if (sync.status !== 0) { removeDir(dir); throw new Error(`ironic-dbsync create_schema failed (${sync.error?.message ?? `exit ${sync.status}`}):\n${sync.stderr}`); }
  const c = startService('ironic-conductor', conductor, ['--config-file', conf], join(dir, 'conductor.out'));
  const a = startService('ironic-api', api, ['--config-file', conf], join(dir, 'api.out'));
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const logs = [join(dir, 'ironic-conductor.log'), join(dir, 'ironic-api.log'), join(dir, 'conductor.out'), join(dir, 'api.out')];
  const stop = async () => { agent.destroy(); await Promise.all([stopService(a), stopService(c)]); removeDir(dir); };
  const t: Target = {
    name: 'ironic', base: `http://127.0.0.1:${apiPort}`, agent, headers: { 'X-OpenStack-Ironic-API-Version': API_VERSION },
    pids: () => [c.child.pid!, a.child.pid!], stop, logs,
  };
  try {
    // Ready when the API answers and lists fake-hardware, which needs a registered conductor.
    await waitUntil('Ironic to answer with fake-hardware', 180_000, async () => {
      for (const s of [a, c]) if (!alive(s)) throw Object.assign(new Error(`${s.name} exited`), { fatal: true });
      const r = await call(t, 'GET', '/v1/drivers');
      return r.status === 200 && (r.body?.drivers ?? []).some((d: { name: string }) => d.name === 'fake-hardware');
    }, 500).catch((e) => { throw new Error(`Ironic did not start: ${(e as Error).message}\n${logs.slice(0, 2).map((l) => `  ${l}:\n${tail(l)}`).join('\n')}`); });
    return t;
  } catch (e) {
    await stop();
    throw e;
  }
}

async function measure(name: 'ooo' | 'ironic', start: () => Promise<Target>): Promise<Figures | string> {
  let t: Target;
  try {
    log(`${name}: starting`);
    t = await start();
  } catch (e) {
    const err = e as Error & { skipped?: boolean };
    if (err.skipped) { process.stdout.write(`${name}: ${err.message}\n`); return err.message; }
    log(`${name}: ${err.message}`);
    return `failed to start: ${err.message.split('\n')[0]}`;
  }
  const f: Figures = {};
  try {
    await workload(t, f);
  } catch (e) {
    const msg = (e as Error).message;
    log(`${name}: workload failed: ${msg}\n${t.logs.filter((l) => existsSync(l) && !l.endsWith('logs')).slice(0, 2).map((l) => `  ${l}:\n${tail(l)}`).join('\n')}`);
    f.failed = msg.split('\n')[0];
  } finally {
    log(`${name}: stopping`);
    await t.stop();
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Report

function cpuModel(): string {
  const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  return `${m.trim()}, ${cpus().length} cores`;
}

function report(ooo: Figures | string | undefined, ironic: Figures | string | undefined): { table: string; notes: string[] } {
  const o = typeof ooo === 'object' ? ooo : undefined;
  const measured = typeof ironic === 'object' ? ironic : undefined;
  // Without a measured Ironic, compare with the issue's figures, which are for 1000 nodes.
  const ref = !measured && N === 1000;
  const i = measured ?? (!ref ? {} as Figures : { create: REFERENCE.create, getOne: { rps: REFERENCE.getOne, p99: NaN }, getList: { rps: REFERENCE.getList, p99: NaN }, cycle100: REFERENCE.cycle100, rssIdle: REFERENCE.rssIdle } as Figures);
  const star = ref ? '*' : '';
  const fmt = (v: number | undefined, d: number) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
  const fi = (v: number | undefined, d: number) => { const s = fmt(v, d); return s === '-' ? s : s + star; };
  const ratio = (a: number | undefined, b: number | undefined) => (a && b && !Number.isNaN(a) && !Number.isNaN(b) ? a / b : undefined);
  const rx = (r: number | undefined) => (r === undefined ? '-' : `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}x`);
  const yes = (ok: boolean | undefined) => (ok === undefined ? '-' : ok ? 'yes' : 'NO');
  const scaled = N === 1000 ? '' : ` (target is for 1000)`;
  type Row = [string, string, string, string, string, string];
  const rGetOne = ratio(o?.getOne?.rps, i.getOne?.rps), rGetList = ratio(o?.getList?.rps, i.getList?.rps);
  const rows: Row[] = [
    [`create ${N} nodes, ${CONNECTIONS} connections (s)`, fi(i.create, 2), fmt(o?.create, 2), rx(ratio(i.create, o?.create)), `< 1 s${scaled}`, yes(o?.create === undefined ? undefined : o.create < 1)],
    ['GET /v1/nodes/{uuid} (req/s)', fi(i.getOne?.rps, 0), fmt(o?.getOne?.rps, 0), rx(rGetOne), '>= 20x ironic', yes(rGetOne === undefined ? undefined : rGetOne >= 20)],
    ['GET /v1/nodes/{uuid} p99 (ms)', fi(i.getOne?.p99, 1), fmt(o?.getOne?.p99, 1), rx(ratio(i.getOne?.p99, o?.getOne?.p99)), '< 25 ms', yes(o?.getOne ? o.getOne.p99 < 25 : undefined)],
    [`GET /v1/nodes, ${N} nodes (req/s)`, fi(i.getList?.rps, 1), fmt(o?.getList?.rps, 0), rx(rGetList), '>= 20x ironic', yes(rGetList === undefined ? undefined : rGetList >= 20)],
    [`GET /v1/nodes, ${N} nodes p99 (ms)`, fi(i.getList?.p99, 0), fmt(o?.getList?.p99, 1), rx(ratio(i.getList?.p99, o?.getList?.p99)), '< 25 ms', yes(o?.getList ? o.getList.p99 < 25 : undefined)],
    [`${CYCLE_NODES} nodes manage -> provide -> active (s)`, fi(i.cycle100, 2), fmt(o?.cycle100, 2), rx(ratio(i.cycle100, o?.cycle100)), '', ''],
    [`service CPU: create ${N} + ${CYCLE_NODES}-node cycle (s)`, fmt(measured?.cpu, 1), fmt(o?.cpu, 1), rx(ratio(measured?.cpu, o?.cpu)), '', ''],
    [`create ${N} more nodes, ${N} present (s)`, '-', fmt(o?.createN2, 2), '', '', ''],
    [`${N} nodes enroll -> active (s)`, '-', fmt(o?.cycleN, 2), '', `< 5 s${scaled}`, yes(o?.cycleN === undefined ? undefined : o.cycleN < 5)],
    ['idle RSS after start, all services (MB)', fi(i.rssIdle, 0), fmt(o?.rssIdle, 0), rx(ratio(i.rssIdle, o?.rssIdle)), '< 120 MB', yes(o?.rssIdle === undefined ? undefined : o.rssIdle < 120)],
    ['RSS after the workload (MB)', fi(i.rssAfter, 0), fmt(o?.rssAfter, 0), rx(ratio(i.rssAfter, o?.rssAfter)), '', ''],
  ];
  const head: Row = ['workload', 'ironic', 'ooo', 'ooo better by', 'target (ooo)', 'met'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => '| ' + r.map((x, c) => x.padEnd(widths[c]!)).join(' | ') + ' |';
  const table = [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n');
  const notes: string[] = [];
  if (typeof ooo === 'string') notes.push(`ooo: ${ooo}`);
  else if (ooo?.failed) notes.push(`ooo: workload failed: ${ooo.failed}`);
  if (typeof ironic === 'string') notes.push(`ironic: ${ironic}`);
  else if (ironic?.failed) notes.push(`ironic: workload failed: ${ironic.failed}`);
  if (ref) notes.push(`* Ironic not measured in this run: its figures from issue 2, measured on this kind of machine (Ironic 21.4, 2 cores).`);
  for (const [who, f] of [['ironic', measured], ['ooo', o]] as const) {
    for (const [what, w] of [['GET /v1/nodes/{uuid}', f?.getOne], ['GET /v1/nodes', f?.getList]] as const) if (w?.errors) notes.push(`${who} ${what}: wrk reported ${w.errors}`);
  }
  if (o?.cycleN !== undefined) notes.push(`ooo: the ${N} nodes taken enroll -> active are the ${N} created after the first ${N}.`);
  notes.push(`The state waits poll GET /v1/nodes?fields=uuid,provision_state (all pages), pausing twice the last poll's duration (>= 50 ms) between polls.`);
  notes.push('ooo better by: ironic / ooo for times, latencies and memory; ooo / ironic for request rates.');
  return { table, notes };
}

function record(table: string, notes: string[], setup: string): void {
  const results = join(ROOT, 'bench', 'RESULTS.md');
  const date = spawnSync('date', { encoding: 'utf8' }).stdout.trim() || new Date().toUTCString();
  const command = ['node', 'dist/bench/controlplane.js', ...argv].join(' ');
  const entry = `### ${date}\n\n\`${command}\` — ${setup}\n\n${table}\n${notes.length ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}`;
  let text = existsSync(results) ? readFileSync(results, 'utf8') : '# Benchmark results\n';
  if (!/^## Control plane$/m.test(text)) text = text.replace(/\n*$/, '\n\n## Control plane\n\n');
  // Insert at the end of the "## Control plane" section (before the next "## " heading, if any).
  const start = text.search(/^## Control plane$/m);
  const next = text.slice(start + 1).search(/^## /m);
  const at = next < 0 ? text.length : start + 1 + next;
  text = text.slice(0, at).replace(/\n*$/, '\n\n') + entry + (next < 0 ? '' : '\n') + text.slice(at);
  writeFileSync(results, text);
  log(`appended to ${results}`);
}

async function main(): Promise<void> {
  await lockRun();
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const w = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (w.error) throw new Error('wrk is not installed (Debian package wrk)');
  let ooo: Figures | string | undefined;
  let ironic: Figures | string | undefined;
  let ironicVer = '';
  if (ONLY !== 'ironic') ooo = await measure('ooo', startOoo);
  else ooo = 'not run (--only ironic)';
  if (ONLY !== 'ooo') {
    ironicVer = which('ironic-conductor') ? ironicVersion() : '';
    ironic = await measure('ironic', startIronic);
  } else ironic = 'not run (--only ooo)';
  const { table, notes } = report(ooo, ironic);
  const setup = `${cpuModel()}, node ${process.version}; ooo seed (all services, SQLite) with a Keystone token on every request; `
    + (ironicVer ? `Ironic ${ironicVer} (Debian ironic-api + ironic-conductor, JSON-RPC, SQLite, noauth); ` : '')
    + `both fake-hardware, API version ${API_VERSION}; wrk -t2 -c16 -d${DURATION}s --timeout 30s; load average before the run ${load}, after ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; other work on the machine slows both sides (the service CPU row, a fixed amount of work, least).`;
  process.stdout.write(`\n${table}\n${notes.map((n) => `${n}\n`).join('')}`);
  if (RECORD) record(table, notes, setup);
  const failed = [ooo, ironic].some((r) => (typeof r === 'string' && r.startsWith('failed')) || (typeof r === 'object' && r.failed));
  process.exitCode = failed ? 1 : 0;
}

main().catch(async (e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
  await Promise.all([...services].map(stopService));
  process.exitCode = 1;
});
