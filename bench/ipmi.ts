/**
 * IPMI benchmark: 100 sequential `chassis power status` calls against OpenIPMI's ipmi_sim with
 * ipmitool -C 3 (a new process and session per call, as Ironic does), freeipmi's ipmi-chassis,
 * and our client (one session reused); then a power-state sync of 1000 virtual BMCs (our servers,
 * in this process, on 127.0.0.1) with bounded concurrency.
 *
 *   node dist/bench/ipmi.js [--calls 100] [--bmcs 1000] [--concurrency 64] [--append]
 *
 * --append adds the table to bench/RESULTS.md under "## IPMI".
 */
import { recordResult } from './results.js';
import { execFileSync, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { IpmiClient } from '../src/protocols/ipmi/client.js';
import { IpmiServer } from '../src/protocols/ipmi/server.js';
import { SimMachine } from '../src/lab/sim-machine.js';
import { freeipmi, ipmitool, missing, startIpmiSim } from '../test/protocols/ipmi/peers.js';

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const CALLS = flag('calls', 100);
const BMCS = flag('bmcs', 1000);
const CONCURRENCY = flag('concurrency', 64);

interface Row { tool: string; calls: number | string; total: number | null; note: string; target?: string }
const rows: Row[] = [];

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main(): Promise<void> {
  const simMissing = missing('ipmi_sim');
  if (simMissing) {
    rows.push({ tool: 'ipmi_sim peers', calls: '-', total: null, note: `skipped: ${simMissing}` });
  } else {
    const sim = await startIpmiSim();
    try {
      const miss = missing('ipmitool');
      if (miss) rows.push({ tool: 'ipmitool -I lanplus -C 3 (process per call)', calls: '-', total: null, note: `skipped: ${miss}` });
      else {
        const s = await timed(async () => {
          for (let i = 0; i < CALLS; i++) {
            const r = await ipmitool(sim.port, ['chassis', 'power', 'status'], { suite: 3 });
            if (r.code !== 0 || !/Chassis Power is/.test(r.stdout)) throw new Error(`ipmitool failed: ${r.stderr}`);
          }
        });
        rows.push({ tool: 'ipmitool -I lanplus -C 3 (process per call)', calls: CALLS, total: s, note: 'vs ipmi_sim' });
      }
      const missF = missing('ipmi-chassis');
      if (missF) rows.push({ tool: 'freeipmi ipmi-chassis --get-status', calls: '-', total: null, note: `skipped: ${missF}` });
      else {
        const s = await timed(async () => {
          for (let i = 0; i < CALLS; i++) {
            const r = await freeipmi('ipmi-chassis', sim.port, ['-W', 'opensesspriv', '--get-status']); // without it: "privilege level cannot be obtained" from ipmi_sim
            if (r.code !== 0 || !/System Power/.test(r.stdout)) throw new Error(`ipmi-chassis failed: ${r.stderr}`);
          }
        });
        rows.push({ tool: 'freeipmi ipmi-chassis --get-status', calls: CALLS, total: s, note: 'vs ipmi_sim, -W opensesspriv' });
      }
      for (const suite of [3]) {
        const c = new IpmiClient({ host: '127.0.0.1', port: sim.port, username: 'admin', password: 'password', cipherSuite: suite });
        const s = await timed(async () => { for (let i = 0; i < CALLS; i++) await c.powerState(); });
        await c.close();
        rows.push({ tool: `ooo IpmiClient -C ${suite} (session reused)`, calls: CALLS, total: s, note: 'vs ipmi_sim, session open included', target: '< 0.3 s' });
      }
    } finally { await sim.stop(); }
  }

  // Our client against our own server, both suites, for reference.
  {
    const server = new IpmiServer({ backend: new SimMachine({ name: 'b' }), users: [{ name: 'admin', password: 'password' }] });
    const port = await server.listen(0);
    for (const suite of [3, 17]) {
      const c = new IpmiClient({ host: '127.0.0.1', port, username: 'admin', password: 'password', cipherSuite: suite });
      const s = await timed(async () => { for (let i = 0; i < CALLS; i++) await c.powerState(); });
      await c.close();
      rows.push({ tool: `ooo IpmiClient -C ${suite} (session reused)`, calls: CALLS, total: s, note: 'vs ooo IpmiServer' });
    }
    await server.close();
  }

  // Power-state sync of many virtual BMCs (served by a child process, as `ooo bmc serve` would):
  // one session each, bounded concurrency.
  {
    const script = `
      const { startVirtualBmcs } = await import(${JSON.stringify(new URL('../src/cli/bmc.js', import.meta.url).pathname)});
      const b = await startVirtualBmcs({ machines: ${BMCS}, ipmiPort: 0, redfishPort: null, prefix: 'bench-' });
      process.stdout.write(JSON.stringify(b.inventory.nodes.map((n) => n.driver_info)) + '\\n');
      process.stdin.on('end', () => b.close().then(() => process.exit(0)));
      process.stdin.resume();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const infos = await new Promise<{ ipmi_address: string; ipmi_port: number; ipmi_username: string; ipmi_password: string }[]>((resolve, reject) => {
      child.stdout!.on('data', (d) => { out += d; if (out.includes('\n')) resolve(JSON.parse(out)); });
      child.on('exit', (c) => reject(new Error(`virtual BMC process exited (${c})`)));
    });
    try {
      const clients = infos.map((di) => new IpmiClient({ host: di.ipmi_address, port: di.ipmi_port, username: di.ipmi_username, password: di.ipmi_password, cipherSuite: 17, timeoutMs: 5000, retries: 3 }));
      const sync = async () => {
        let on = 0;
        let next = 0;
        const worker = async () => {
          for (;;) {
            const i = next++;
            if (i >= BMCS) return;
            if ((await clients[i]!.powerState()) === 'on') on++;
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        return on;
      };
      let on = 0;
      const cold = await timed(async () => { on = await sync(); });
      rows.push({ tool: `power sync of ${BMCS} virtual BMCs, cold (-C 17, concurrency ${CONCURRENCY})`, calls: BMCS, total: cold, note: `session opened + status each; servers in a child process; ${on} on`, target: '< 2 s' });
      const warm = await timed(async () => { on = await sync(); });
      rows.push({ tool: `power sync of ${BMCS} virtual BMCs, sessions reused`, calls: BMCS, total: warm, note: `status each; ${on} on` });
      await Promise.all(clients.map((c) => c.close()));
    } finally {
      child.stdin!.end();
      await new Promise((r) => child.once('exit', r));
    }
  }

  const header = ['tool', 'calls', 'total s', 'per-call ms', 'target', 'notes'];
  const body = rows.map((r) => [r.tool, String(r.calls), r.total === null ? '-' : r.total.toFixed(3), r.total === null || typeof r.calls !== 'number' ? '-' : ((r.total * 1000) / r.calls).toFixed(2), r.target ?? '', r.note]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const table = [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...body.map(line)].join('\n');
  process.stdout.write(`${table}\n`);

  if (process.argv.includes('--append')) {
    const file = new URL('../../bench/RESULTS.md', import.meta.url);
    const date = execFileSync('date', { encoding: 'utf8' }).trim();
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const entry = `### ${date}\n\n\`node dist/bench/ipmi.js ${process.argv.slice(2).join(' ')}\` — ${cpu}, ${cpus().length} cores; ipmi_sim without a chassis-control script (status answered from its own state)\n\n${table}\n`;
    recordResult(file, 'IPMI', entry);
  }
}

main().then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack ?? e}\n`); process.exit(1); });
