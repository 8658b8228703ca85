/**
 * `ooo lab up|down|status`: a virtual bare-metal lab of qemu VMs behind virtual BMCs, enrolled
 * into the cloud as nodes lab-0, lab-1, ...
 *
 * `lab up` starts `ooo lab run` as a detached background process (the lab daemon: it holds the
 * VMs' QMP connections and serves the BMCs until SIGTERM; its output goes to DIR/lab.log), waits
 * until the daemon has written DIR/lab.json, then enrolls the nodes (or writes an inventory
 * file). `lab down` deletes the nodes, stops the daemon and removes whatever is left (also after
 * a crash).
 *
 * Files in DIR: lab.json (state, 0600: it holds the BMC password), lab.log (the daemon's log),
 * lab-state.json (PIDs for leftover cleanup), lab-N-serial.log (serial consoles), lab-N.qmp
 * (QMP sockets), lab-N-disk.raw (sparse disks).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { CommandSpec, Parsed } from './args.js';
import { UsageError } from './args.js';
import { CliError, EXIT, print, printJson, table } from './output.js';
import { CLOUD_FLAGS, asCliError, cloudOf } from './common.js';
import { Cloud, ClientError } from '../client/cloud.js';
import { defaultDataDir } from '../services/config.js';
import { LAB_MAX_NODES, startLab, type LabDriver, type LabNode } from '../lab/lab.js';
import { LabNetwork, linkExists, namespaceExists } from '../lab/network.js';
import { IpmiClient } from '../protocols/ipmi/client.js';

type Obj = Record<string, unknown>;

/** DIR/lab.json. */
export interface LabState {
  state: 'starting' | 'up';
  pid: number;
  /** Start time of the daemon (/proc/PID/stat field 22), so a reused PID is never taken for it. */
  pid_start: string;
  dir: string;
  driver?: LabDriver;
  accel?: string;
  accel_reason?: string;
  network?: { namespace: string; hostInterface: string; bridge: string; hostAddress: string; hostAddress6: string; subnet: string };
  nodes?: LabNode[];
  qemu_pids?: number[];
  started_at?: string;
  /** Set by `lab up` once the nodes are in the cloud. */
  enrolled?: { cloud: string | null; nodes: string[] };
  inventory_file?: string;
}

export function defaultLabDir(): string { return join(defaultDataDir(), 'lab'); }

function labDir(p: Parsed): string { return resolve(p.flags.dir ? String(p.flags.dir) : defaultLabDir()); }

function statePath(dir: string): string { return join(dir, 'lab.json'); }

export function readLabState(dir: string): LabState | undefined {
  try { return JSON.parse(readFileSync(statePath(dir), 'utf8')) as LabState; } catch { return undefined; }
}

function writeLabState(dir: string, s: LabState): void {
  const tmp = `${statePath(dir)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, statePath(dir));
}

function procStart(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z') return undefined;
    return f[19];
  } catch { return undefined; }
}

/** Whether the daemon recorded in `s` is still running. */
export function daemonAlive(s: LabState | undefined): boolean {
  if (!s || !Number.isInteger(s.pid) || s.pid <= 1) return false;
  const start = procStart(s.pid);
  return start !== undefined && (!s.pid_start || start === s.pid_start);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function needRoot(): void {
  if (process.getuid?.() !== 0) throw new CliError('needs root (network namespaces, tap devices)', EXIT.failure);
}

function intFlag(p: Parsed, name: string, min: number, max: number, what = `${min}..${max}`): number {
  const v = p.flags[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new UsageError(`--${name} must be ${what}, got '${String(v)}'`);
  return v;
}

function driverFlag(p: Parsed): LabDriver {
  const d = String(p.flags.driver);
  if (d !== 'ipmi' && d !== 'redfish') throw new UsageError(`--driver must be ipmi or redfish, got '${d}'`);
  return d;
}

function tail(path: string, lines = 20): string {
  try { return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

/** qemu processes whose command line mentions `dir` (the lab's disks, sockets and logs are there). */
export function qemuPidsIn(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(`${dir}/`) && procStart(Number(e)) !== undefined) out.push(Number(e));
    } catch { /* gone */ }
  }
  return out;
}

// ---------- the cloud side ----------

function cloudName(p: Parsed): string | null {
  return (p.flags['os-cloud'] as string | undefined) ?? process.env.OS_CLOUD ?? null;
}

/** The cloud cannot be reached or used at all (as opposed to refusing one request). */
function unreachable(e: unknown): boolean {
  return e instanceof ClientError ? !e.status || e.status >= 500 : !(e instanceof CliError);
}

async function enroll(cloud: Cloud, nodes: LabNode[], onNode: (name: string) => void): Promise<string[]> {
  const done: string[] = [];
  try {
    for (const n of nodes) {
      const node = await cloud.baremetal<Obj>('POST', '/v1/nodes', { name: n.name, driver: n.driver, driver_info: n.driver_info, resource_class: n.resource_class, extra: { lab_serial_log: n.serial_log } });
      done.push(n.name);
      for (const port of n.ports) await cloud.baremetal('POST', '/v1/ports', { node_uuid: node.uuid, address: port.address, pxe_enabled: port.pxe_enabled });
      onNode(`${n.name} (${String(node.uuid)}) in ${String(node.provision_state)}`);
    }
  } catch (e) {
    await deleteNodes(cloud, done, () => {}).catch(() => {});
    throw e;
  }
  return done;
}

/**
 * Delete nodes by name: a node not deletable in its state is put in maintenance first; a node
 * already gone is fine; a locked node is retried for a while.
 */
async function deleteNodes(cloud: Cloud, names: string[], say: (line: string) => void): Promise<void> {
  for (const name of names) {
    const id = encodeURIComponent(name);
    let maintenance = false;
    for (let attempt = 0; ; attempt++) {
      try {
        await cloud.baremetal('DELETE', `/v1/nodes/${id}`);
        say(`deleted node ${name}${maintenance ? ' (after setting maintenance)' : ''}`);
        break;
      } catch (e) {
        if (!(e instanceof ClientError)) throw e;
        if (e.status === 404) { say(`node ${name} was already gone`); break; }
        if ((e.status === 400 || e.status === 409) && !maintenance) {
          await cloud.baremetal('PUT', `/v1/nodes/${id}/maintenance`, { reason: 'ooo lab down' }).catch((m) => { if (!(m instanceof ClientError) || m.status !== 409) throw m; });
          maintenance = true;
          continue;
        }
        if (e.status === 409 && attempt < 50) { await sleep(200); continue; } // locked by a running operation
        throw e;
      }
    }
  }
}

// ---------- lab up ----------

async function up(p: Parsed): Promise<number> {
  const nodes = intFlag(p, 'nodes', 1, LAB_MAX_NODES);
  const driver = driverFlag(p);
  const memory = intFlag(p, 'memory', 64, 65536, '64..65536 (MiB)');
  const diskGb = intFlag(p, 'disk-gb', 1, 4096, '1..4096 (GiB)');
  const ipmiPort = intFlag(p, 'ipmi-port', 0, 65535, 'a port number (0-65535)');
  const redfishPort = intFlag(p, 'redfish-port', 0, 65535, 'a port number (0-65535)');
  if (ipmiPort !== 0 && ipmiPort + nodes - 1 > 65535) throw new UsageError(`--ipmi-port ${ipmiPort} + ${nodes} nodes goes past port 65535`);
  const inventoryFile = p.flags.inventory ? resolve(String(p.flags.inventory)) : undefined;
  needRoot();
  const dir = labDir(p);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const json = p.flags.json === true;
  const say = (line: string) => { if (!json) print(line); };

  const prev = readLabState(dir);
  if (prev && daemonAlive(prev)) {
    throw new CliError(`a lab is already up (pid ${prev.pid}, ${prev.nodes?.length ?? '?'} nodes); run \`ooo lab down\` first`, EXIT.conflict);
  }

  // The cloud first: a missing clouds.yaml or an unreachable API fails before any VM starts.
  let cloud: Cloud | undefined;
  if (!inventoryFile) {
    cloud = cloudOf(p);
    try { await cloud.authenticate(); } catch (e) { throw asCliError(e); }
  }

  if (prev || existsSync(join(dir, 'lab-state.json'))) {
    say(`the previous lab's daemon${prev ? ` (pid ${prev.pid})` : ''} is gone; cleaning up its leftovers`);
    if (prev?.enrolled?.nodes.length) {
      try {
        const old = cloud ?? cloudOf({ ...p, flags: { ...p.flags, 'os-cloud': (p.flags['os-cloud'] as string | undefined) ?? prev.enrolled.cloud ?? undefined } });
        await deleteNodes(old, prev.enrolled.nodes, (l) => say(`  ${l}`));
      } catch (e) { say(`  could not delete its nodes ${prev.enrolled.nodes.join(', ')} from the cloud: ${(e as Error).message}`); }
    }
    const removed = LabNetwork.cleanupLeftovers(dir);
    for (const pid of qemuPidsIn(dir)) { try { process.kill(pid, 'SIGKILL'); removed.push(`qemu (pid ${pid})`); } catch { /* gone */ } }
    say(`  removed: ${removed.length ? removed.join(', ') : 'nothing was left'}`);
    rmSync(statePath(dir), { force: true });
  }

  if (cloud) {
    // Names are the nodes' identity: never take over a node somebody else enrolled.
    for (let i = 0; i < nodes; i++) {
      try {
        await cloud.baremetal('GET', `/v1/nodes/lab-${i}?fields=uuid`);
        throw new CliError(`a node named lab-${i} already exists in the cloud; delete it first (ooo node delete lab-${i})`, EXIT.conflict);
      } catch (e) {
        if (e instanceof ClientError && e.status === 404) continue;
        throw asCliError(e);
      }
    }
  }

  // The daemon.
  const log = join(dir, 'lab.log');
  if (existsSync(log)) renameSync(log, `${log}.old`);
  const fd = openSync(log, 'a', 0o600);
  const args = ['--enable-source-maps', process.argv[1]!, 'lab', 'run', '--dir', dir, '--nodes', String(nodes), '--driver', driver,
    '--memory', String(memory), '--disk-gb', String(diskGb), '--ipmi-port', String(ipmiPort), '--redfish-port', String(redfishPort)];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd], cwd: dir });
  closeSync(fd);
  let exited: number | null | undefined;
  child.once('exit', (code, signal) => { exited = code ?? (signal ? 128 : 1); });
  const deadline = Date.now() + 60_000 + nodes * 10_000;
  let state: LabState | undefined;
  for (;;) {
    state = readLabState(dir);
    if (state?.state === 'up' && state.pid === child.pid) break;
    if (exited !== undefined) {
      rmSync(statePath(dir), { force: true });
      throw new CliError(`the lab did not start (see ${log}):\n${tail(log)}`, EXIT.failure);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await sleep(200);
      LabNetwork.cleanupLeftovers(dir);
      rmSync(statePath(dir), { force: true });
      throw new CliError(`the lab did not start within ${Math.round((deadline - Date.now()) / 1000 + 60 + nodes * 10)} s (see ${log}):\n${tail(log)}`, EXIT.timeout);
    }
    await sleep(100);
  }
  child.unref();

  const labNodes = state.nodes ?? [];
  try {
    if (inventoryFile) {
      const inv = { nodes: labNodes.map((n) => ({ name: n.name, driver: n.driver, driver_info: n.driver_info, resource_class: n.resource_class, ports: n.ports.map((x) => ({ address: x.address })), extra: { lab_serial_log: n.serial_log } })) };
      const tmp = `${inventoryFile}.${process.pid}.tmp`;
      writeFileSync(tmp, stringify(inv), { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, inventoryFile);
      state.inventory_file = inventoryFile;
    } else {
      const names = await enroll(cloud!, labNodes, () => {});
      state.enrolled = { cloud: cloudName(p), nodes: names };
    }
    writeLabState(dir, state);
  } catch (e) {
    // Nothing half-done stays behind: stop the daemon and remove the lab.
    await stopDaemon(state, () => {});
    LabNetwork.cleanupLeftovers(dir);
    rmSync(statePath(dir), { force: true });
    throw new CliError(`the lab was started but ${inventoryFile ? `writing ${inventoryFile}` : 'enrolling its nodes'} failed, so it was removed again: ${asCliError(e).message}`, asCliError(e).exitCode);
  }

  if (json) {
    printJson({ dir, pid: state.pid, driver: state.driver, accel: state.accel, accel_reason: state.accel_reason, network: state.network, enrolled: state.enrolled ?? null, inventory_file: state.inventory_file ?? null, nodes: labNodes.map(publicNode) });
    return EXIT.ok;
  }
  say(`lab up in ${dir} (daemon pid ${state.pid}, log ${log})`);
  say(`accelerator: ${(state.accel ?? '?').toUpperCase()}: ${state.accel_reason ?? ''}`);
  const net = state.network!;
  say(`network: ${net.subnet} on ${net.hostInterface} (host ${net.hostAddress}, ${net.hostAddress6}); VMs bridged on ${net.bridge} in namespace ${net.namespace}`);
  say(`BMCs: ${driver}, user ${nodeUser(labNodes[0])}; the password is in ${inventoryFile ? inventoryFile : "the nodes' driver_info"}`);
  if (state.enrolled) say(`enrolled ${state.enrolled.nodes.join(', ')} into cloud ${state.enrolled.cloud ?? '(default)'} in state enroll (driver ${driver}, resource class baremetal)`);
  else say(`inventory written to ${inventoryFile} (mode 0600); no nodes enrolled (ooo node import ${inventoryFile})`);
  say('');
  say(nodeTable(labNodes));
  return EXIT.ok;
}

function nodeUser(n: LabNode | undefined): string {
  if (!n) return 'admin';
  const di = n.driver_info as unknown as Obj;
  return String(di.ipmi_username ?? di.redfish_username ?? 'admin');
}

function publicNode(n: LabNode): Obj {
  const di = Object.fromEntries(Object.entries(n.driver_info).filter(([k]) => !k.endsWith('_password')));
  return { name: n.name, driver: n.driver, driver_info: di, macs: n.ports.map((x) => x.address), bmc: n.bmc, serial_log: n.serial_log };
}

function nodeTable(nodes: LabNode[], power?: Map<string, string>): string {
  const cols = ['name', 'MAC', 'BMC', ...(power ? ['power'] : []), 'serial log'];
  return table(cols, nodes.map((n) => [n.name, n.ports.map((x) => x.address).join(','), n.bmc, ...(power ? [power.get(n.name) ?? '?'] : []), n.serial_log]));
}

// ---------- the daemon ----------

async function run(p: Parsed): Promise<number> {
  needRoot();
  const dir = labDir(p);
  const stamp = () => new Date().toISOString();
  const log = (line: string) => process.stdout.write(`${stamp()} ${line}\n`);
  const base: LabState = { state: 'starting', pid: process.pid, pid_start: procStart(process.pid) ?? '', dir };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeLabState(dir, base);
  let stopping = false;
  let stopNow: (() => void) | undefined;
  const stopped = new Promise<void>((r) => { stopNow = r; });
  const onSignal = (sig: string) => { log(`${sig}: stopping the lab`); stopping = true; stopNow!(); };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGHUP', () => {});
  log(`lab daemon pid ${process.pid} starting ${String(p.flags.nodes)} node(s) in ${dir}`);
  let lab;
  try {
    lab = await startLab({
      dir, nodes: Number(p.flags.nodes), driver: driverFlag(p), memoryMiB: Number(p.flags.memory), diskBytes: Number(p.flags['disk-gb']) * 2 ** 30,
      ipmiPort: Number(p.flags['ipmi-port']), redfishPort: Number(p.flags['redfish-port']), log,
    });
  } catch (e) {
    log(`error: ${(e as Error).message}`);
    rmSync(statePath(dir), { force: true });
    process.stderr.write(`${(e as Error).message}\n`);
    return EXIT.failure;
  }
  if (stopping) {
    await lab.stop();
    return EXIT.ok;
  }
  writeLabState(dir, {
    ...base, state: 'up', driver: lab.driver, accel: lab.accel, accel_reason: lab.accelReason, network: lab.network,
    nodes: lab.inventory.nodes, qemu_pids: lab.pids, started_at: new Date().toISOString(),
  });
  for (const vm of lab.vms) void vm.exited.then(({ code, signal }) => { if (!stopping) log(`warning: qemu of ${vm.name} exited (${signal ?? `code ${code}`}); its BMC reports errors until \`ooo lab down\``); });
  const keepAlive = setInterval(() => {}, 60_000);
  log('lab up; waiting for SIGTERM');
  await stopped;
  clearInterval(keepAlive);
  await lab.stop();
  log('lab daemon exiting');
  setTimeout(() => process.exit(0), 1000).unref();
  return EXIT.ok;
}

// ---------- lab down ----------

/** SIGTERM the daemon and wait for it (SIGKILL after 10 s). */
async function stopDaemon(s: LabState, say: (line: string) => void): Promise<void> {
  if (!daemonAlive(s)) return;
  try { process.kill(s.pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + 10_000;
  while (daemonAlive(s) && Date.now() < deadline) await sleep(100);
  if (daemonAlive(s)) {
    try { process.kill(s.pid, 'SIGKILL'); } catch { /* gone */ }
    while (daemonAlive(s)) await sleep(50);
    say(`killed the lab daemon (pid ${s.pid}): it did not stop within 10 s of SIGTERM`);
  } else {
    say(`stopped the lab daemon (pid ${s.pid})`);
  }
}

async function down(p: Parsed): Promise<number> {
  needRoot();
  const dir = labDir(p);
  const s = readLabState(dir);
  const json = p.flags.json === true;
  const lines: string[] = [];
  const say = (line: string) => { lines.push(line); if (!json) print(line); };
  let code: number = EXIT.ok;
  if (!s && !existsSync(join(dir, 'lab-state.json')) && qemuPidsIn(dir).length === 0) {
    say(`no lab in ${dir}; nothing to remove`);
    if (json) printJson({ dir, removed: [] });
    return EXIT.ok;
  }

  // 1. The nodes in the cloud.
  const enrolled = s?.enrolled?.nodes ?? [];
  if (enrolled.length) {
    const name = (p.flags['os-cloud'] as string | undefined) ?? s?.enrolled?.cloud ?? undefined;
    let cloud: Cloud | undefined;
    const left: string[] = [];
    try { cloud = cloudOf({ ...p, flags: { ...p.flags, 'os-cloud': name } }); } catch (e) {
      say(`cannot use the cloud${name ? ` '${name}'` : ''}: ${(e as Error).message}`);
      left.push(...enrolled);
      code = EXIT.unavailable;
    }
    for (const node of cloud ? enrolled : []) {
      try {
        await deleteNodes(cloud!, [node], say);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        if (unreachable(e)) {
          const rest = enrolled.slice(enrolled.indexOf(node));
          left.push(...rest);
          say(`cannot reach the cloud${name ? ` '${name}'` : ''} (${msg}): nodes ${rest.join(', ')} stay enrolled`);
          code = EXIT.unavailable;
          break;
        }
        left.push(node);
        say(`cannot delete node ${node}: ${msg}`);
        code = EXIT.failure;
      }
    }
    if (left.length) say(`delete them by hand once the cloud allows it: ooo node delete ${left.join(' ')}`);
  }

  // 2. The daemon, which kills its VMs, closes its BMCs and removes the network.
  const net = s?.network;
  const before = {
    qemu: (s?.nodes ?? []).map((n, i) => ({ name: n.name, pid: s?.qemu_pids?.[i] })).filter((q) => q.pid && procStart(q.pid) !== undefined),
    namespace: net ? namespaceExists(net.namespace) : false,
    link: net ? linkExists(net.hostInterface) : false,
  };
  if (s) {
    if (daemonAlive(s)) await stopDaemon(s, say);
    else if (s.pid) say(`the lab daemon (pid ${s.pid}) was not running`);
  }

  // 3. Whatever is left (a crashed daemon, a daemon that had to be killed).
  const removed: string[] = [];
  for (const q of before.qemu) if (procStart(q.pid!) === undefined) removed.push(`qemu ${q.name} (pid ${q.pid})`);
  const left = LabNetwork.cleanupLeftovers(dir);
  for (const x of left) if (!removed.includes(x)) removed.push(x);
  for (const pid of qemuPidsIn(dir)) {
    try { process.kill(pid, 'SIGKILL'); removed.push(`qemu (pid ${pid})`); } catch { /* gone */ }
  }
  if (net && namespaceExists(net.namespace)) {
    // Recorded in lab.json as this lab's; its state file is gone: remove it the same way.
    try { new LabNetwork({ dir, namespace: net.namespace, hostInterface: net.hostInterface }).destroy(); } catch (e) { say(`cannot remove namespace ${net.namespace}: ${(e as Error).message}`); code = EXIT.failure; }
  }
  if (net && linkExists(net.hostInterface)) spawnSync('ip', ['link', 'del', net.hostInterface]);
  if (net) {
    if (before.namespace && !left.some((x) => x.startsWith('namespace'))) removed.push(`namespace ${net.namespace} (bridge ${net.bridge}, taps)`);
    if (before.link && !left.some((x) => x.startsWith('link'))) removed.push(`link ${net.hostInterface}`);
  }
  let disks = 0;
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    if (/^lab-\d+-disk\.(raw|qcow2)$/.test(f) || /^lab-\d+\.qmp$/.test(f)) { rmSync(join(dir, f), { force: true }); if (f.includes('-disk.')) disks++; }
  }
  if (disks) removed.push(`${disks} disk image(s)`);
  rmSync(statePath(dir), { force: true });
  say(`removed: ${removed.length ? removed.join(', ') : 'nothing was left'}`);
  const stillThere = [
    ...(net && namespaceExists(net.namespace) ? [`namespace ${net.namespace}`] : []),
    ...(net && linkExists(net.hostInterface) ? [`link ${net.hostInterface}`] : []),
    ...qemuPidsIn(dir).map((x) => `qemu pid ${x}`),
  ];
  if (stillThere.length) { say(`still there: ${stillThere.join(', ')}`); code = EXIT.failure; }
  else say(`lab in ${dir} is down (serial logs and lab.log kept)`);
  if (json) printJson({ dir, removed, messages: lines });
  return code;
}

// ---------- lab status ----------

async function bmcPower(n: LabNode): Promise<string> {
  const di = n.driver_info as unknown as Obj;
  try {
    if (n.driver === 'ipmi') {
      const c = new IpmiClient({ host: String(di.ipmi_address), port: Number(di.ipmi_port), username: String(di.ipmi_username), password: String(di.ipmi_password), timeoutMs: 2000, keepaliveMs: 0 });
      try { return `power ${await c.powerState()}`; } finally { await c.close().catch(() => {}); }
    }
    const auth = `Basic ${Buffer.from(`${String(di.redfish_username)}:${String(di.redfish_password)}`).toString('base64')}`;
    const r = await fetch(`${String(di.redfish_address)}${String(di.redfish_system_id)}`, { headers: { Authorization: auth }, signal: AbortSignal.timeout(2000) });
    if (!r.ok) return `BMC error ${r.status}`;
    return `power ${String(((await r.json()) as Obj).PowerState ?? '?').toLowerCase()}`;
  } catch (e) {
    return `BMC unreachable (${(e as Error).message.split('\n')[0]})`;
  }
}

async function status(p: Parsed): Promise<number> {
  const dir = labDir(p);
  const s = readLabState(dir);
  if (!s) {
    const leftovers = existsSync(join(dir, 'lab-state.json'));
    if (p.flags.json) printJson({ dir, up: false, leftovers });
    else print(`no lab in ${dir}${leftovers ? ' (but leftovers of a crashed one: run `ooo lab down`)' : ''}`);
    return leftovers ? EXIT.failure : EXIT.notFound;
  }
  const alive = daemonAlive(s);
  const nodes = s.nodes ?? [];
  const power = alive && s.state === 'up' ? new Map(await Promise.all(nodes.map(async (n) => [n.name, await bmcPower(n)] as [string, string]))) : undefined;
  if (p.flags.json) {
    printJson({ dir, up: alive && s.state === 'up', state: s.state, pid: s.pid, daemon_alive: alive, driver: s.driver, accel: s.accel, accel_reason: s.accel_reason, network: s.network, enrolled: s.enrolled ?? null, nodes: nodes.map((n) => ({ ...publicNode(n), power: power?.get(n.name) ?? null })) });
    return alive ? EXIT.ok : EXIT.failure;
  }
  print(`lab in ${dir}: ${alive ? (s.state === 'up' ? 'up' : 'starting') : 'DOWN (its daemon is gone: run `ooo lab down` to clean up)'}; daemon pid ${s.pid}${alive ? '' : ' (not running)'}`);
  if (s.accel) print(`accelerator: ${s.accel.toUpperCase()}: ${s.accel_reason ?? ''}`);
  if (s.network) print(`network: ${s.network.subnet} on ${s.network.hostInterface}, namespace ${s.network.namespace}`);
  if (s.enrolled) print(`enrolled in cloud ${s.enrolled.cloud ?? '(default)'}: ${s.enrolled.nodes.join(', ')}`);
  else if (s.inventory_file) print(`inventory: ${s.inventory_file}`);
  if (nodes.length) { print(''); print(nodeTable(nodes, power)); }
  return alive ? EXIT.ok : EXIT.failure;
}

const DIR_FLAG = { dir: { type: 'string' as const, help: 'lab directory (default: $OOO_DATA_DIR/lab or ~/.local/share/ooo/lab)', value: 'DIR' } };

const LAB_FLAGS = {
  nodes: { type: 'number' as const, help: `number of VMs (1-${LAB_MAX_NODES})`, value: 'N', default: 1 },
  driver: { type: 'string' as const, help: 'BMC protocol: ipmi or redfish', value: 'DRIVER', default: 'ipmi' },
  memory: { type: 'number' as const, help: 'RAM per VM in MiB', value: 'MiB', default: 512 },
  'disk-gb': { type: 'number' as const, help: 'sparse disk per VM in GiB', value: 'G', default: 8 },
  'ipmi-port': { type: 'number' as const, help: 'UDP port of lab-0\'s IPMI BMC on 127.0.0.1 (the others follow; 0 = any free ports)', value: 'P', default: 6230 },
  'redfish-port': { type: 'number' as const, help: 'TCP port of the Redfish BMC on 127.0.0.1 (0 = any free port)', value: 'Q', default: 8000 },
  ...DIR_FLAG,
};

export const commands: CommandSpec[] = [
  {
    path: ['lab', 'up'],
    summary: 'start a virtual bare-metal lab (qemu VMs behind virtual BMCs) and enroll its nodes',
    flags: { ...LAB_FLAGS, inventory: { type: 'string', help: 'write the inventory (with BMC passwords, mode 0600) to FILE instead of enrolling', value: 'FILE' }, ...CLOUD_FLAGS },
    run: up,
  },
  {
    path: ['lab', 'down'],
    summary: 'delete the lab\'s nodes from the cloud and remove the lab (VMs, BMCs, network)',
    flags: { ...DIR_FLAG, ...CLOUD_FLAGS },
    run: down,
  },
  {
    path: ['lab', 'status'],
    summary: 'show the lab: daemon, nodes, MACs, BMC addresses and power states',
    flags: { ...DIR_FLAG, json: CLOUD_FLAGS.json! },
    run: status,
  },
  {
    path: ['lab', 'run'],
    summary: '(internal) the lab daemon `ooo lab up` starts in the background',
    flags: LAB_FLAGS,
    run,
  },
];
