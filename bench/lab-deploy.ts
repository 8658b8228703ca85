/**
 * Deploying lab machines, per phase: from `deploy` to "deployed OS reported in", for 1 VM and for
 * N VMs at once, with a 1 GiB image, against the physical limit on this machine.
 *
 *   node dist/bench/lab-deploy.js [--vms 1,4] [--image-mib 1024] [--driver ipmi|redfish] [--no-record]
 *
 * What runs: a seed (in this process) with its provisioning network on the lab's interface,
 * `ooo lab up` (qemu VMs behind virtual BMCs), the deploy ramdisk and a whole-disk image made by
 * the image builder, padded with incompressible bytes to the image size. Each node is managed and
 * provided (cleaned) first; then all are deployed at once and the phases are read from their
 * histories:
 *   boot ramdisk   deploy requested -> ramdisk agent connected (BMC power on, PXE, iPXE, kernel)
 *   inspect        -> the agent reported the disks (the write starts)
 *   write+verify   -> image written and its sha256 verified on the disk
 *   config drive   -> config-drive partition written
 *   reboot         -> node active (power off, boot from disk, power on)
 *   OS boot        -> the deployed OS reported in
 * Physical limit = ramdisk boot + image bytes / disk write throughput + OS boot, each measured
 * here without ooo: the deploy ramdisk and the deployed image booted directly in qemu (TCG, as the
 * lab), and a 1 GiB write with fdatasync to the filesystem holding the VM disks. With N VMs on C
 * cores the boots are CPU-bound (x N/C when N > C) and the writes share the disk (x N).
 *
 * Needs root, qemu-system-x86, dnsmasq-base, ipxe, busybox-static (scripts/packages/lab.txt).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSeed } from '../src/services/seed.js';
import { configureLogging } from '../src/util/log.js';
import { labSkipReason } from '../test/lab/helpers.js';
import { bootUntil, markerElement, writeTree } from '../test/images/helpers.js';
import { recordResult } from './results.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1]! : def; };
const COUNTS = opt('vms', '1,4').split(',').map(Number);
const IMAGE_MIB = Number(opt('image-mib', '1024'));
const DRIVER = opt('driver', 'ipmi');
const RECORD = !argv.includes('--no-record');
const OOO = join(process.cwd(), 'bin', 'ooo');
const MARKER = 'OOO-BENCH-OS-UP';

configureLogging({ stderr: false, level: 'warn' });

const sec = (ms: number) => (ms / 1000).toFixed(1);
const run = (args: string[], env: NodeJS.ProcessEnv) => new Promise<{ code: number; out: string }>((resolve) => {
  execFile(OOO, args, { env, timeout: 300_000 }, (e, stdout, stderr) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
});

/** Sequential write throughput of `dir`'s filesystem: 1 GiB with fdatasync, bytes/s. */
function diskWriteThroughput(dir: string): number {
  const f = join(dir, 'throughput.bin');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('dd', ['if=/dev/zero', `of=${f}`, 'bs=4M', 'count=256', 'conv=fdatasync'], { encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(f, { force: true });
  if (r.status !== 0) throw new Error(`dd: ${r.stderr}`);
  return (1024 ** 3) / s;
}

async function main(): Promise<void> {
  const why = labSkipReason('qemu-system-x86_64', 'busybox', 'sfdisk', 'mke2fs');
  if (why) { console.log(`lab-deploy: skipped: ${why}`); return; }
  if (existsSync('/sys/class/net/ooo-prov')) { console.log('lab-deploy: skipped: ooo-prov exists (a lab is up: ooo lab down first)'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'ooo-bench-deploy-'));
  chmodSync(dir, 0o755);
  let seed: Awaited<ReturnType<typeof startSeed>> | undefined;
  const labs: string[] = [];
  let env: NodeJS.ProcessEnv = process.env;
  try {
    console.log('building the deploy ramdisk and a whole-disk image ...');
    execFileSync(OOO, ['image', 'build', '-t', 'ramdisk', '-o', join(dir, 'deploy'), 'busybox', 'deploy-ramdisk'], { stdio: 'ignore' });
    markerElement(join(dir, 'elements'), MARKER, { poweroff: false });
    execFileSync(OOO, ['image', 'build', '-t', 'raw', '-o', join(dir, 'os'), '--elements-path', join(dir, 'elements'), 'busybox', 'vm', 'config-agent', 'marker'], { stdio: 'ignore' });
    // Pad to the image size with incompressible bytes after the built image (the partitions stay as built).
    const osPath = join(dir, 'os.raw');
    const built = statSync(osPath).size;
    const target = IMAGE_MIB * 1024 * 1024;
    if (target > built) {
      const fd = openSync(osPath, 'r+');
      const chunk = randomBytes(4 * 1024 * 1024);
      for (let off = built; off < target; off += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, target - off), off);
      closeSync(fd);
    }
    const image = readFileSync(osPath);
    const imageSize = image.length;

    // The physical limit's parts, measured without ooo. Disk write throughput as the VM sees it: a
    // ramdisk that writes 1 GiB of zeros to its virtio disk with fsync and prints the time.
    const hostBps = diskWriteThroughput(dir);
    writeTree(join(dir, 'elements', 'write-probe'), {
      'element-deps': 'busybox\n',
      'static/init.d/40-write-probe': '!#!/bin/sh\ngrep -q ooo.write_probe /proc/cmdline || exit 0\na=$(cut -d" " -f1 /proc/uptime)\ndd if=/dev/zero of=/dev/vda bs=4M count=256 conv=fsync 2>/dev/null\nb=$(cut -d" " -f1 /proc/uptime)\necho "WRITE-PROBE $a $b"\npoweroff -f\n',
    });
    execFileSync(OOO, ['image', 'build', '-t', 'ramdisk', '-o', join(dir, 'probe'), '--elements-path', join(dir, 'elements'), 'busybox', 'ramdisk', 'write-probe'], { stdio: 'ignore' });
    const probeDisk = join(dir, 'probe-disk.raw');
    closeSync(openSync(probeDisk, 'w'));
    execFileSync('truncate', ['-s', '2G', probeDisk]);
    const probe = await bootUntil(['-kernel', join(dir, 'probe.kernel'), '-initrd', join(dir, 'probe.initramfs'), '-append', 'console=ttyS0 ooo.write_probe', '-drive', `file=${probeDisk},if=virtio,format=raw`], 'WRITE-PROBE', 300_000, join(dir, 'probe-serial.log'));
    const pm = /WRITE-PROBE ([\d.]+) ([\d.]+)/.exec(probe.serial);
    if (!pm) throw new Error(`the disk write probe printed nothing:\n${probe.serial.slice(-1500)}`);
    rmSync(probeDisk, { force: true });
    const diskBps = (1024 ** 3) / (Number(pm[2]) - Number(pm[1]));
    const ramdiskBoot = await bootUntil(['-kernel', join(dir, 'deploy.kernel'), '-initrd', join(dir, 'deploy.initramfs'), '-append', 'console=ttyS0'], 'ooo-agent: no ooo.api', 120_000, join(dir, 'ramdisk-serial.log'));
    const osBoot = await bootUntil(['-drive', `file=${osPath},if=virtio,format=raw,snapshot=on`], MARKER, 120_000, join(dir, 'os-serial.log'));
    if (!ramdiskBoot.found || !osBoot.found) throw new Error(`direct boots failed: ramdisk ${ramdiskBoot.found}, OS ${osBoot.found}`);

    seed = await startSeed({
      dataDir: join(dir, 'seed'), host: '127.0.0.1', port: 0, database: '', only: new Set(['api', 'conductor']), conductorGroup: '',
      adminPassword: `bench-${randomBytes(6).toString('hex')}`, provisioning: { interface: 'ooo-prov' },
    });
    env = { ...process.env, OS_CLIENT_CONFIG_FILE: seed.cloudsYaml, OS_CLOUD: 'ooo' };
    for (const k of Object.keys(env)) if (k.startsWith('OS_') && !['OS_CLIENT_CONFIG_FILE', 'OS_CLOUD'].includes(k)) delete env[k];
    const { Cloud, loadCloud } = await import('../src/client/cloud.js');
    process.env.OS_CLIENT_CONFIG_FILE = seed.cloudsYaml;
    const cloud = new Cloud(loadCloud('ooo'));
    const bm = <T = any>(m: string, p: string, b?: unknown) => cloud.baremetal<T>(m, p, b);
    const upload = async (name: string, data: Buffer, fmt: string) => {
      const r = await cloud.call('image', 'POST', '/v2/images', { name, disk_format: fmt, container_format: fmt === 'raw' ? 'bare' : fmt });
      const id = (r.body as { id: string }).id;
      const { token, url } = await cloud.session('image');
      const up = await fetch(`${url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/octet-stream' }, body: data as unknown as BodyInit });
      if (up.status !== 204) throw new Error(`upload ${name}: HTTP ${up.status}`);
    };
    await upload('ooo-deploy-kernel', readFileSync(join(dir, 'deploy.kernel')), 'aki');
    await upload('ooo-deploy-ramdisk', readFileSync(join(dir, 'deploy.initramfs')), 'ari');
    await upload('bench-os', image, 'raw');
    const sha = createHash('sha256').update(image).digest('hex');

    const rows: string[][] = [];
    const waitAll = async (names: string[], state: string, ms: number) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const nodes = (await bm<{ nodes: any[] }>('GET', '/v1/nodes?detail=true')).nodes.filter((n) => names.includes(n.name));
        const bad = nodes.find((n) => /failed|error/.test(n.provision_state));
        if (bad) throw new Error(`${bad.name}: ${bad.provision_state}: ${bad.last_error}`);
        if (nodes.every((n) => n.provision_state === state && !n.target_provision_state && !n.reservation)) return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${state}: ${nodes.map((n) => `${n.name} ${n.provision_state}`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    for (const n of COUNTS) {
      const labDir = join(dir, `lab-${n}`);
      console.log(`lab up --nodes ${n} ...`);
      const up = await run(['lab', 'up', '--nodes', String(n), '--driver', DRIVER, '--ipmi-port', '0', '--redfish-port', '0', '--dir', labDir], env);
      if (up.code !== 0) throw new Error(`lab up: ${up.out}`);
      labs.push(labDir);
      await seed.provisioning!.ready;
      const names = Array.from({ length: n }, (_, i) => `lab-${i}`);
      for (const name of names) await bm('PUT', `/v1/nodes/${name}/states/provision`, { target: 'manage' });
      await waitAll(names, 'manageable', 120_000);
      for (const name of names) await bm('PUT', `/v1/nodes/${name}/states/provision`, { target: 'provide' });
      await waitAll(names, 'available', 600_000);
      for (const name of names) await bm('PATCH', `/v1/nodes/${name}`, [{ op: 'add', path: '/instance_info', value: { image_source: 'bench-os' } }]);
      console.log(`deploying ${n} node(s) with a ${IMAGE_MIB} MiB image ...`);
      const t0 = Date.now();
      for (const name of names) await bm('PUT', `/v1/nodes/${name}/states/provision`, { target: 'active' });
      await waitAll(names, 'active', 3_600_000);
      const reported = async () => {
        const out: Record<string, any[]> = {};
        for (const name of names) out[name] = (await bm<{ history: any[] }>('GET', `/v1/nodes/${name}/history`)).history;
        return out;
      };
      let hist = await reported();
      const deadline = Date.now() + 300_000;
      while (!names.every((name) => hist[name]!.some((e) => /deployed OS reported in/.test(e.event))) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        hist = await reported();
      }
      const phases = names.map((name) => {
        const h = hist[name]!.filter((e) => Date.parse(e.created_at) >= t0 - 1000);
        const at = (re: RegExp) => { const e = h.find((x) => re.test(x.event)); return e ? Date.parse(e.created_at) : NaN; };
        const agent = at(/ramdisk agent connected/), writing = at(/writing the image/), written = at(/image written and verified/),
          drive = at(/config drive written/), active = at(/-> active/), report = at(/deployed OS reported in/);
        return { name, boot: agent - t0, inspect: writing - agent, write: written - writing, drive: drive - written, reboot: active - drive, os: report - active, total: report - t0 };
      });
      const worst = (k: keyof typeof phases[number]) => Math.max(...phases.map((p) => p[k] as number));
      const factor = Math.max(1, n / cpus().length);
      const limit = (ramdiskBoot.seconds + osBoot.seconds) * 1000 * factor + (n * imageSize / diskBps) * 1000;
      for (const p of phases) rows.push([`${n}`, p.name, sec(p.boot), sec(p.inspect), sec(p.write), sec(p.drive), sec(p.reboot), sec(p.os), sec(p.total), '', '']);
      rows.push([`${n}`, 'slowest', sec(worst('boot')), sec(worst('inspect')), sec(worst('write')), sec(worst('drive')), sec(worst('reboot')), sec(worst('os')), sec(worst('total')), sec(limit), `${(worst('total') / limit).toFixed(2)}x`]);
      console.log(`lab down ...`);
      await run(['lab', 'down', '--dir', labDir], env);
      labs.pop();
    }
    const header = ['VMs', 'node', 'boot ramdisk', 'inspect', 'write+verify', 'config drive', 'reboot', 'OS boot', 'total s', 'limit s', 'total/limit'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    const table = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
    const notes = [
      `image ${IMAGE_MIB} MiB (${imageSize} bytes, sha256 ${sha.slice(0, 12)}...), driver ${DRIVER}, qemu TCG, ${cpus().length} cores`,
      `physical limit parts (measured here without ooo): deploy ramdisk direct boot to userspace ${ramdiskBoot.seconds.toFixed(1)} s; deployed image boot (firmware+kernel+init) ${osBoot.seconds.toFixed(1)} s; VM disk write ${(diskBps / 1e6).toFixed(0)} MB/s (dd 1 GiB to its virtio disk, fsync, in the VM; the host filesystem under it: ${(hostBps / 1e6).toFixed(0)} MB/s)`,
      'limit = (ramdisk boot + OS boot) x max(1, VMs/cores) + VMs x image bytes / disk write',
    ];
    const out = `${table}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
    console.log(`\n${out}`);
    if (RECORD) recordResult(new URL('../../bench/RESULTS.md', import.meta.url), 'Deploy (lab)', `### ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — \`node dist/bench/lab-deploy.js${argv.length ? ' ' + argv.join(' ') : ''}\`\n\n${out}`);
  } finally {
    for (const l of labs) await run(['lab', 'down', '--dir', l], env);
    await seed?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(`lab-deploy: ${(e as Error).message}`); process.exitCode = 1; });
