/**
 * Redfish benchmark: 100 sequential power-state reads against our Redfish server (in a child
 * process) with our client (one session, keep-alive) and with python3-sushy (one process, one
 * session, `system.refresh(); system.power_state` per read), on 127.0.0.1.
 *
 *   node dist/bench/redfish.js [--calls 100] [--append]
 *
 * --append adds the table to bench/RESULTS.md under "## Redfish".
 */
import { recordResult } from './results.js';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { RedfishClient } from '../src/protocols/redfish/client.js';

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const CALLS = flag('calls', 100);
const SERVER_JS = fileURLToPath(new URL('../src/protocols/redfish/server.js', import.meta.url));
const SIM_JS = fileURLToPath(new URL('../src/lab/sim-machine.js', import.meta.url));
const SUSHY_PY = fileURLToPath(new URL('../../test/protocols/redfish/sushy_peer.py', import.meta.url));
const PY = '/usr/bin/python3';

interface Row { tool: string; calls: number | string; total: number | null; note: string }
const rows: Row[] = [];

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function sushyMissing(): string | false {
  try { execFileSync(PY, ['-c', 'import sushy'], { stdio: 'pipe' }); return false; } catch { return 'python3-sushy is not installed'; }
}

async function main(): Promise<void> {
  const script = `
    const { RedfishServer } = await import(${JSON.stringify(SERVER_JS)});
    const { SimMachine } = await import(${JSON.stringify(SIM_JS)});
    const machines = new Map([['bench-0', new SimMachine({ name: 'bench-0', macs: ['52:54:00:00:00:00'] })]]);
    const s = new RedfishServer({ machines, username: 'admin', password: 'password' });
    process.stdout.write(String(await s.listen(0, '127.0.0.1')) + '\\n');
    process.stdin.resume();
    process.stdin.on('end', () => s.close().then(() => process.exit(0)));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.on('exit', (c) => reject(new Error(`Redfish server process exited (${c})`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const system = '/redfish/v1/Systems/bench-0';
  try {
    for (const authType of ['session', 'basic'] as const) {
      const c = new RedfishClient({ address: url, username: 'admin', password: 'password', authType });
      const s = await timed(async () => {
        for (let i = 0; i < CALLS; i++) if ((await c.powerState(system)) !== 'Off') throw new Error('unexpected power state');
      });
      rows.push({ tool: `ooo RedfishClient (${authType === 'session' ? 'one session' : 'Basic auth'}, keep-alive)`, calls: CALLS, total: s, note: authType === 'session' ? 'login included' : 'no session' });
      await c.close();
    }
    const miss = sushyMissing();
    if (miss) rows.push({ tool: 'python3-sushy (one process)', calls: '-', total: null, note: `skipped: ${miss}` });
    else {
      const env = { ...process.env };
      delete env.REQUESTS_CA_BUNDLE;
      delete env.CURL_CA_BUNDLE;
      let inner = 0;
      const wall = await timed(() => new Promise<void>((resolve, reject) => {
        execFile(PY, [SUSHY_PY, url, 'admin', 'password', system, `bench:${CALLS}`], { env, timeout: 120000 }, (err, stdout, stderr) => {
          if (err) { reject(new Error(`sushy failed: ${stderr || err.message}`)); return; }
          inner = (JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number }).seconds;
          resolve();
        });
      }));
      rows.push({ tool: 'python3-sushy (one process, one session)', calls: CALLS, total: inner, note: 'reads only (refresh + power_state)' });
      rows.push({ tool: 'python3-sushy, whole process', calls: CALLS, total: wall, note: 'python start, import, login, reads, logout' });
    }
  } finally {
    child.stdin!.end();
    await new Promise((r) => child.once('exit', r));
  }

  const header = ['client', 'reads', 'total s', 'per-read ms', 'notes'];
  const body = rows.map((r) => [r.tool, String(r.calls), r.total === null ? '-' : r.total.toFixed(3), r.total === null || typeof r.calls !== 'number' ? '-' : ((r.total * 1000) / r.calls).toFixed(2), r.note]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const table = [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...body.map(line)].join('\n');
  process.stdout.write(`${table}\n`);

  if (process.argv.includes('--append')) {
    const file = new URL('../../bench/RESULTS.md', import.meta.url);
    const date = execFileSync('date', { encoding: 'utf8' }).trim();
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const entry = `### ${date}\n\n\`node dist/bench/redfish.js ${process.argv.slice(2).join(' ')}\` — ${cpu}, ${cpus().length} cores; our Redfish server with one simulated machine, in a child process, over http on 127.0.0.1\n\n${table}\n`;
    recordResult(file, 'Redfish', entry);
  }
}

main().then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack ?? e}\n`); process.exit(1); });
