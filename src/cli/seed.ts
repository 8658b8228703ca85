/**
 * `ooo seed up` (everything in one process), `ooo serve --only ...` (some services), and
 * `ooo seed demo` (simulated machines taken through their whole life cycle).
 */
import type { CommandSpec, Parsed } from './args.js';
import { str } from './args.js';
import { ConfigError, DEFAULT_PORT, defaultDataDir, parseListen, parseOnly, ServiceConfig } from '../services/config.js';
import { startSeed } from '../services/seed.js';
import { CliError, EXIT, print } from './output.js';
import { Cloud, loadCloud } from '../client/cloud.js';
import { CLOUD_FLAGS, guarded, waitForNodes } from './common.js';
import { importNodes } from './baremetal.js';
import { configureLogging } from '../util/log.js';
import { parseRange } from '../boot/provisioning.js';
import { DEFAULT_DEPLOY_KERNEL, DEFAULT_DEPLOY_RAMDISK } from '../drivers/ipxe.js';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const SERVICE_FLAGS: CommandSpec['flags'] = {
  'data-dir': { type: 'string', help: 'where the database, logs and clouds.yaml live (env OOO_DATA_DIR)', value: 'DIR' },
  listen: { type: 'string', help: `address for the APIs (env OOO_LISTEN)`, value: 'HOST:PORT', default: undefined },
  database: { type: 'string', help: 'sqlite:///PATH (default: DIR/ooo.sqlite) or postgresql://USER@HOST/DB (env OOO_DATABASE)', value: 'URL' },
  'public-url': { type: 'string', help: 'URL clients should use (default: from --listen)', value: 'URL' },
  'conductor-name': { type: 'string', help: 'this conductor\'s name (default: the host name)', value: 'NAME' },
  'conductor-group': { type: 'string', help: 'conductor group this conductor serves', default: '', value: 'GROUP' },
  'admin-password': { type: 'string', help: 'admin password on first start (default: generated; env OOO_ADMIN_PASSWORD)', value: 'PASSWORD' },
  'wait-timeout': { type: 'number', help: 'seconds a node may wait for its ramdisk before failing', value: 'SECONDS' },
  'power-sync-interval': { type: 'number', help: 'seconds between power-state syncs', value: 'SECONDS' },
  'conductor-timeout': { type: 'number', help: 'seconds without a heartbeat before a conductor counts as dead and its nodes are taken over', value: 'SECONDS' },
  'provisioning-interface': { type: 'string', help: 'serve DHCP/TFTP/iPXE for enrolled machines on this interface; machines reach the seed at its address (env OOO_PROVISIONING_INTERFACE)', value: 'IFACE' },
  'dhcp-range': { type: 'string', help: 'addresses for enrolled machines (default: the interface subnet from its 10th address)', value: 'START-END' },
  'discovery-range': { type: 'string', help: 'also answer unknown machines from this range (opt-in discovery)', value: 'START-END' },
  'next-server': { type: 'string', help: 'TFTP server for PXE firmware (default: the interface address)', value: 'ADDRESS' },
  quiet: { type: 'boolean', help: 'log to the file only, not to the terminal' },
};

function provisioning(p: Parsed): ServiceConfig['provisioning'] {
  const iface = str(p, 'provisioning-interface') ?? process.env.OOO_PROVISIONING_INTERFACE;
  const range = str(p, 'dhcp-range'), discovery = str(p, 'discovery-range'), nextServer = str(p, 'next-server');
  if (!iface) {
    if (range || discovery || nextServer) throw new ConfigError('--dhcp-range, --discovery-range and --next-server need --provisioning-interface');
    return undefined;
  }
  try {
    if (nextServer !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(nextServer)) throw new ConfigError(`--next-server must be an IPv4 address, got '${nextServer}'`);
    return { interface: iface, range: range ? parseRange(range, '--dhcp-range') : undefined, discoveryRange: discovery ? parseRange(discovery, '--discovery-range') : undefined, nextServer };
  } catch (e) { throw new ConfigError((e as Error).message); }
}

function config(p: Parsed, only: string | undefined): ServiceConfig {
  try {
    const { host, port } = parseListen(str(p, 'listen') ?? process.env.OOO_LISTEN ?? `127.0.0.1:${DEFAULT_PORT}`);
    return {
      dataDir: str(p, 'data-dir') ?? defaultDataDir(), host, port,
      database: str(p, 'database') ?? process.env.OOO_DATABASE ?? '',
      publicUrl: str(p, 'public-url') ?? process.env.OOO_PUBLIC_URL,
      only: parseOnly(only),
      conductorName: str(p, 'conductor-name') ?? process.env.OOO_CONDUCTOR_NAME,
      conductorGroup: str(p, 'conductor-group') ?? '',
      adminPassword: str(p, 'admin-password') ?? process.env.OOO_ADMIN_PASSWORD,
      waitTimeoutS: p.flags['wait-timeout'] as number | undefined,
      powerSyncS: p.flags['power-sync-interval'] as number | undefined,
      provisioning: provisioning(p),
      deadAfterS: (p.flags['conductor-timeout'] as number | undefined) ?? (process.env.OOO_CONDUCTOR_TIMEOUT ? Number(process.env.OOO_CONDUCTOR_TIMEOUT) : undefined),
    };
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT.usage);
    throw e;
  }
}

/** Runs until SIGINT/SIGTERM, then stops cleanly. */
async function serve(p: Parsed, only: string | undefined, demo?: number): Promise<number> {
  if (p.flags.quiet) configureLogging({ stderr: false });
  const cfg = config(p, only);
  const lab = p.flags.lab as number | undefined;
  if (lab !== undefined) {
    if (!Number.isInteger(lab) || lab < 1 || lab > 32) throw new CliError(`--lab must be 1..32, got '${String(lab)}'`, EXIT.usage);
    if (demo) throw new CliError('--lab and --demo cannot be combined', EXIT.usage);
    if (!['ipmi', 'redfish'].includes(String(p.flags['lab-driver']))) throw new CliError(`--lab-driver must be ipmi or redfish, got '${String(p.flags['lab-driver'])}'`, EXIT.usage);
    if (process.getuid?.() !== 0) throw new CliError('--lab needs root (network namespaces, tap devices, DHCP)', EXIT.usage);
    cfg.provisioning ??= { interface: 'ooo-prov' };
    if (cfg.provisioning.interface !== 'ooo-prov') throw new CliError(`--lab uses the lab's provisioning interface ooo-prov, not '${cfg.provisioning.interface}'`, EXIT.usage);
  }
  let seed;
  try {
    seed = await startSeed(cfg);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new CliError(`cannot listen on ${cfg.host}:${cfg.port}: the address is in use (another seed running? choose --listen)`, EXIT.unavailable);
    if (err.code === 'EADDRNOTAVAIL') throw new CliError(`cannot listen on ${cfg.host}:${cfg.port}: no such local address`, EXIT.usage);
    if (err.name === 'DnsmasqConfigError') throw new CliError(`provisioning network: ${err.message}`, EXIT.usage);
    if (err.code === 'ECONNREFUSED' || /password authentication|does not exist/.test(err.message)) throw new CliError(`cannot open the database: ${err.message}`, EXIT.unavailable);
    throw e;
  }
  const services = [...cfg.only].join(' + ');
  print(`ooo ${services} running${seed.url ? ` at ${seed.url}` : ''} (data: ${cfg.dataDir})`);
  if (seed.url) print(`  export OS_CLIENT_CONFIG_FILE=${seed.cloudsYaml} OS_CLOUD=ooo`);
  const done = new Promise<void>((resolve) => {
    const stop = (sig: string) => { print(`\n${sig}: stopping`); resolve(); };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  if (demo) {
    process.env.OS_CLIENT_CONFIG_FILE = seed.cloudsYaml;
    runDemo(new Cloud(loadCloud('ooo')), demo, 'demo-').then(
      (code) => print(code === 0 ? `demo finished: every node went enroll -> manageable -> available -> active -> available. The seed keeps running; Ctrl-C stops it.` : `demo ended with failures (exit ${code}); see 'ooo node history NODE'.`),
      (e) => print(`demo failed: ${(e as Error).message}`),
    );
  }
  if (lab) {
    runLabDemo(seed.cloudsYaml, cfg.dataDir, lab, String(p.flags['lab-driver'])).then(
      () => print(`\nlab demo finished: ${lab} machine(s) deployed through their BMCs and running the deployed image. The seed keeps running; Ctrl-C stops it and removes the lab.`),
      (e) => print(`lab demo failed: ${(e as Error).message}`),
    );
  }
  await done;
  if (lab) {
    const env = { ...process.env, OS_CLIENT_CONFIG_FILE: seed.cloudsYaml, OS_CLOUD: 'ooo' };
    const r = await oooChild(['lab', 'down', '--dir', join(cfg.dataDir, 'lab')], env);
    print(r.out.trim());
  }
  await seed.stop();
  print('stopped');
  return EXIT.ok;
}

/** Enrolls N simulated machines and takes them through their whole life cycle. */
export async function runDemo(cloud: Cloud, count: number, prefix: string): Promise<number> {
  const existing = await cloud.baremetal<{ nodes: { name: string | null }[] }>('GET', '/v1/nodes?fields=name');
  const taken = new Set(existing.nodes.map((n) => n.name));
  const names: string[] = [];
  for (let i = 0; names.length < count; i++) if (!taken.has(`${prefix}${i}`)) names.push(`${prefix}${i}`);
  print(`enrolling ${count} simulated machines: ${names.join(', ')}`);
  await importNodes(cloud, names.map((name, i) => ({
    name, driver: 'sim', resource_class: 'baremetal',
    driver_info: { sim_delay_ms: 300, sim_deploy_s: 2, sim_cpus: 8 + 8 * (i % 3), sim_memory_mb: 32768, sim_disk_gb: 240 },
    ports: [{ address: `52:54:00:de:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }],
  })));
  await lifecycle(cloud, names, 'demo-image', true);
  return EXIT.ok;
}

/** manage -> inspect -> provide -> deploy `image` (-> undeploy), all nodes at once, progress printed. */
async function lifecycle(cloud: Cloud, names: string[], image: string, undeploy: boolean): Promise<void> {
  const step = async (label: string, verb: string, target: string, body: Record<string, unknown> = {}) => {
    print(`\n== ${label}`);
    for (const n of names) await cloud.baremetal('PUT', `/v1/nodes/${n}/states/provision`, { target: verb, ...body });
    const code = await waitForNodes(cloud, names, target, 3600);
    if (code) throw new CliError(`${label} did not finish`, code);
  };
  await step('manage (verify the BMCs)', 'manage', 'manageable');
  await step('inspect (discover hardware)', 'inspect', 'manageable');
  await step('provide (clean, make available)', 'provide', 'available');
  for (const n of names) await cloud.baremetal('PATCH', `/v1/nodes/${n}`, [{ op: 'add', path: '/instance_info/image_source', value: image }]);
  await step(`deploy ${image}`, 'active', 'active');
  if (undeploy) await step('undeploy (tear down, clean)', 'deleted', 'available');
}

/** Runs `ooo ARGS` (this program) with the seed's cloud; output prefixed, returns the exit code. */
function oooChild(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [process.argv[1]!, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer) => { out += d.toString(); };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('exit', (code) => resolve({ code: code ?? 1, out }));
  });
}

export const DEMO_OS_IMAGE = 'ooo-demo-os';

/**
 * `seed up --lab N`: the deploy ramdisk and a small OS image (built here unless the image service
 * has them), a virtual lab of N qemu VMs behind BMCs on the provisioning network, and the whole
 * life cycle on them: manage, inspect, provide, deploy; the deployed machines then report in.
 */
async function runLabDemo(cloudsYaml: string, dataDir: string, count: number, driver: string): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, OS_CLIENT_CONFIG_FILE: cloudsYaml, OS_CLOUD: 'ooo' };
  for (const k of Object.keys(env)) if (k.startsWith('OS_') && !['OS_CLIENT_CONFIG_FILE', 'OS_CLOUD'].includes(k)) delete env[k];
  process.env.OS_CLIENT_CONFIG_FILE = cloudsYaml;
  const cloud = new Cloud(loadCloud('ooo'));
  const have = async (name: string) => ((await cloud.call('image', 'GET', `/v2/images?name=${encodeURIComponent(name)}&status=active`)).body as { images: unknown[] }).images.length > 0;
  const run = async (what: string, args: string[]) => {
    const r = await oooChild(args, env);
    if (r.code !== 0) throw new CliError(`${what} failed:\n${r.out.trim()}`, r.code);
    return r.out;
  };
  const images = join(dataDir, 'lab-images');
  mkdirSync(images, { recursive: true });
  if (!(await have(DEFAULT_DEPLOY_KERNEL)) || !(await have(DEFAULT_DEPLOY_RAMDISK))) {
    print('building the deploy ramdisk (image builder: busybox + deploy-ramdisk) ...');
    await run('building the deploy ramdisk', ['image', 'build', '-t', 'ramdisk', '-o', join(images, 'deploy'), 'busybox', 'deploy-ramdisk']);
    await run('uploading the deploy kernel', ['image', 'upload', join(images, 'deploy.kernel'), '--name', DEFAULT_DEPLOY_KERNEL, '--disk-format', 'aki', '--container-format', 'aki']);
    await run('uploading the deploy ramdisk', ['image', 'upload', join(images, 'deploy.initramfs'), '--name', DEFAULT_DEPLOY_RAMDISK, '--disk-format', 'ari', '--container-format', 'ari']);
  }
  if (!(await have(DEMO_OS_IMAGE))) {
    print(`building the image to deploy, ${DEMO_OS_IMAGE} (busybox + vm + config-agent) ...`);
    await run('building the OS image', ['image', 'build', '-t', 'raw', '-o', join(images, 'os'), 'busybox', 'vm', 'config-agent']);
    await run('uploading the OS image', ['image', 'upload', join(images, 'os.raw'), '--name', DEMO_OS_IMAGE, '--disk-format', 'raw']);
  }
  const labDir = join(dataDir, 'lab');
  await oooChild(['lab', 'down', '--dir', labDir], env); // a lab left by an earlier run
  print(`starting the lab: ${count} VM(s) behind ${driver} BMCs ...`);
  print((await run('ooo lab up', ['lab', 'up', '--nodes', String(count), '--driver', driver, '--dir', labDir])).trim());
  const names = Array.from({ length: count }, (_, i) => `lab-${i}`);
  await lifecycle(cloud, names, DEMO_OS_IMAGE, false);
  const deadline = Date.now() + 300_000;
  const pending = new Set(names);
  while (pending.size && Date.now() < deadline) {
    for (const n of [...pending]) {
      const h = (await cloud.baremetal<{ history: { event: string }[] }>('GET', `/v1/nodes/${n}/history`)).history;
      const e = h.find((x) => /deployed OS reported in/.test(x.event));
      if (e) { print(`  ${n}: ${e.event}`); pending.delete(n); }
    }
    if (pending.size) await new Promise((r) => setTimeout(r, 1000));
  }
  if (pending.size) throw new CliError(`no report from the deployed OS of ${[...pending].join(', ')} within 300 s (see ooo lab status, and the serial logs in ${labDir})`, EXIT.timeout);
}

export const commands: CommandSpec[] = [
  {
    path: ['seed', 'up'], summary: 'start the seed (all services in one process) in the foreground',
    flags: {
      ...SERVICE_FLAGS,
      demo: { type: 'number', help: 'also enroll N simulated machines and take them through their life cycle', value: 'N' },
      lab: { type: 'number', help: 'also start a virtual lab of N qemu VMs behind BMCs (root) on the provisioning network ooo-prov, and deploy an image built here onto them', value: 'N' },
      'lab-driver': { type: 'string', help: 'BMC protocol of the lab VMs: ipmi or redfish', value: 'DRIVER', default: 'ipmi' },
    },
    run: (p) => serve(p, undefined, p.flags.demo as number | undefined),
  },
  {
    path: ['serve'], summary: 'run some of the services (e.g. --only conductor) against a shared database',
    flags: { ...SERVICE_FLAGS, only: { type: 'string', help: 'services to run: api, conductor (comma-separated)', value: 'LIST' } },
    run: (p) => serve(p, str(p, 'only')),
  },
  {
    path: ['seed', 'demo'], summary: 'enroll simulated machines into a running seed and take them through their life cycle',
    flags: { ...CLOUD_FLAGS, nodes: { type: 'number', help: 'how many machines', default: 4 }, prefix: { type: 'string', help: 'node name prefix', default: 'demo-' } },
    run: (p) => guarded(async () => {
      const { cloudOf } = await import('./common.js');
      return runDemo(cloudOf(p), p.flags.nodes as number, String(p.flags.prefix));
    }),
  },
];
