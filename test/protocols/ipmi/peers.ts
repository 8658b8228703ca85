/**
 * Real IPMI peers for tests and benchmarks: OpenIPMI's ipmi_sim started on a free loopback UDP
 * port (with an optional chassis-control script whose state the test can read), and helpers to
 * run ipmitool and freeipmi against a BMC.
 */
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function which(bin: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Skip reason when a binary is missing (for `test(name, { skip }, ...)`), else false. */
export function missing(...bins: string[]): string | false {
  const gone = bins.filter((b) => !which(b));
  return gone.length ? `${gone.join(', ')} not installed` : false;
}

/** A UDP port that was free a moment ago on 127.0.0.1. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

export interface IpmiSim {
  port: number;
  dir: string;
  /** Power as the chassis-control script last recorded it (only with chassis: true). */
  power(): 'on' | 'off';
  /** Boot device ipmi_sim last passed to the script ('default' before any). */
  boot(): string;
  /** Every call of the chassis-control script, one per line. */
  calls(): string[];
  stop(): Promise<void>;
}

const CHASSIS_SCRIPT = `#!/bin/sh
# ipmi_sim chassis control: MC get ITEM... | MC set ITEM VALUE...
d=$(cd "$(dirname "$0")" && pwd)
echo "$*" >> "$d/calls.log"
op=$2; shift 2
if [ "$op" = get ]; then
  for item in "$@"; do
    case $item in
      power) p=0; [ -f "$d/power" ] && read p < "$d/power"; echo "power:$p";;
      boot) b=default; [ -f "$d/boot" ] && read b < "$d/boot"; echo "boot:$b";;
    esac
  done
else
  while [ $# -ge 2 ]; do
    case $1 in power) echo "$2" > "$d/power";; boot) echo "$2" > "$d/boot";; reset) echo 1 > "$d/power";; esac
    shift 2
  done
fi
`;

/**
 * Start ipmi_sim with user `username`/`password` (administrator). chassis: true adds the
 * chassis-control script (state visible through power()/boot(); each status call forks it).
 */
export async function startIpmiSim(opts: { username?: string; password?: string; chassis?: boolean } = {}): Promise<IpmiSim> {
  const dir = mkdtempSync(join(tmpdir(), 'ooo-ipmisim-'));
  mkdirSync(join(dir, 'state'));
  const port = await freeUdpPort();
  const script = join(dir, 'chassis.sh');
  writeFileSync(script, CHASSIS_SCRIPT);
  chmodSync(script, 0o755);
  writeFileSync(join(dir, 'power'), '0\n');
  writeFileSync(join(dir, 'lan.conf'), [
    'name "ooo"',
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr 127.0.0.1 ${port}`,
    '    priv_limit admin',
    '    allowed_auths_callback none md2 md5 straight',
    '    allowed_auths_user none md2 md5 straight',
    '    allowed_auths_operator none md2 md5 straight',
    '    allowed_auths_admin none md2 md5 straight',
    '    guid a123456789abcdefa123456789abcdef',
    '  endlan',
    ...(opts.chassis ? [`  chassis_control "${script} 0x20"`] : []),
    `  user 2 true "${opts.username ?? 'admin'}" "${opts.password ?? 'password'}" admin 10 none md2 md5 straight`,
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'sim.emu'), 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n');
  const child: ChildProcess = spawn('ipmi_sim', ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'sim.emu'), '-s', join(dir, 'state'), '-n', '-p'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  // Wait until it answers a presence ping.
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ipmi_sim exited (${child.exitCode}): ${stderr}`);
    if (await pong(port)) break;
    if (Date.now() > deadline) { child.kill(); throw new Error(`ipmi_sim did not answer on UDP ${port}: ${stderr}`); }
  }
  const read = (f: string, d: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').trim() : d);
  return {
    port, dir,
    power: () => (read('power', '0') === '1' ? 'on' : 'off'),
    boot: () => read('boot', 'default'),
    calls: () => read('calls.log', '').split('\n').filter(Boolean),
    stop: () => new Promise<void>((resolve) => {
      const done = () => { rmSync(dir, { recursive: true, force: true }); resolve(); };
      if (child.exitCode !== null) { done(); return; }
      child.once('exit', done);
      child.kill('SIGTERM');
    }),
  };
}

function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve(false); }, 100);
    s.on('message', () => { clearTimeout(t); s.close(); resolve(true); });
    s.on('error', () => undefined);
    s.send(Buffer.from([0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00]), port, '127.0.0.1');
  });
}

/** Run a command; resolves with its exit code and output (never rejects). */
export function run(cmd: string, args: string[], timeoutMs = 30000): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

export function ipmitool(port: number, args: string[], o: { suite?: number; user?: string; password?: string } = {}) {
  return run('ipmitool', ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(port), '-U', o.user ?? 'admin', '-P', o.password ?? 'password', ...(o.suite === undefined ? [] : ['-C', String(o.suite)]), ...args]);
}

export function freeipmi(bin: 'ipmipower' | 'ipmi-chassis' | 'ipmi-chassis-config', port: number, args: string[], o: { user?: string; password?: string } = {}) {
  return run(bin, ['-D', 'LAN_2_0', '-h', `127.0.0.1:${port}`, '-u', o.user ?? 'admin', '-p', o.password ?? 'password', ...args]);
}
