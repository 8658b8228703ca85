/**
 * PXE boot of N lab VMs at once (TCG): power on -> DHCP ACK -> node script -> kernel + initramfs
 * fetched -> marker printed by the initramfs. Prints one table (per VM and the slowest).
 *
 *   node dist/bench/lab-pxe.js [--vms 4] [--memory 256]
 *
 * Needs root, qemu-system-x86, dnsmasq-base, ipxe, busybox-static and a Debian kernel (see
 * test/lab/helpers.ts findKernel). Everything it creates is removed at the end.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabNetwork } from '../src/lab/network.js';
import { QemuVm } from '../src/lab/vm.js';
import { QemuMachine } from '../src/lab/qemu-machine.js';
import { Dnsmasq } from '../src/boot/dnsmasq.js';
import { bootHttpHandler } from '../src/boot/http.js';
import { renderRamdiskScript } from '../src/boot/ipxe.js';
import { findKernel, labSkipReason, markerInitramfs } from '../test/lab/helpers.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: number) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def; };
const N = opt('vms', 4);
const MEM = opt('memory', 256);
const MARKER = 'OOO-BENCH-PXE-UP';

async function main(): Promise<void> {
  const why = labSkipReason('qemu-system-x86_64');
  if (why) { console.log(`lab-pxe: skipped: ${why}`); return; }
  const kernel = findKernel();
  if (!kernel) { console.log('lab-pxe: skipped: no Debian kernel'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'ooo-bench-pxe-'));
  chmodSync(dir, 0o755);
  const files = join(dir, 'files');
  mkdirSync(files);
  copyFileSync(kernel, join(files, 'vmlinuz'));
  copyFileSync(await markerInitramfs(dir, MARKER), join(files, 'initramfs'));
  const net = new LabNetwork({ dir, namespace: `ooo-bench-${process.pid}`, hostInterface: `oob${process.pid % 100000}` });
  const vms: QemuVm[] = [];
  let dnsmasq: Dnsmasq | undefined;
  const server = createServer();
  try {
    net.create();
    const macs = Array.from({ length: N }, (_, i) => `52:54:00:be:00:${i.toString(16).padStart(2, '0')}`);
    await new Promise<void>((r) => server.listen(0, net.hostIp, () => r()));
    const base = `http://${net.hostIp}:${(server.address() as { port: number }).port}`;
    const fetched = new Map<string, number>();
    const handler = bootHttpHandler({
      baseUrl: base, filesDir: files,
      scriptFor: (mac) => macs.includes(mac) ? renderRamdiskScript({ kernelUrl: `${base}/boot/files/vmlinuz`, initrdUrl: `${base}/boot/files/initramfs`, apiUrl: `${base}/none`, token: 'bench' }) : undefined,
      log: (l) => { const m = /\/boot\/([0-9a-f:]+)\.ipxe 200/.exec(l); if (m && !fetched.has(m[1])) fetched.set(m[1], Date.now()); },
    });
    server.on('request', (req, res) => { void handler(req, res).then((done) => { if (!done) { res.writeHead(404); res.end(); } }); });
    dnsmasq = new Dnsmasq({ interface: net.hostInterface, range: { start: '192.0.2.10', end: '192.0.2.40' }, httpUrl: base, stateDir: join(dir, 'dnsmasq'), tracker: net,
      hosts: macs.map((mac, i) => ({ mac, ip: `192.0.2.${10 + i}` })) });
    const acks = new Map<string, number>();
    dnsmasq.on('dhcp', (e: { kind: string; mac: string; at: number }) => { if (e.kind === 'ACK' && !acks.has(e.mac)) acks.set(e.mac, e.at); });
    await dnsmasq.start();
    for (const [i, mac] of macs.entries()) {
      net.addTap(`tap-b${i}`);
      const vm = new QemuVm({ name: `bench-${i}`, dir, memoryMiB: MEM, netns: net.namespace, tracker: net, nics: [{ mac, tap: `tap-b${i}` }] });
      await vm.start();
      vms.push(vm);
    }
    const machines = vms.map((vm) => new QemuMachine(vm));
    const t0 = Date.now();
    await Promise.all(machines.map((m) => m.powerOn()));
    const marker = await Promise.all(vms.map((vm) => vm.waitForSerial(MARKER, 180_000).then(() => Date.now(), (e) => { console.error((e as Error).message); return NaN; })));
    const s = (t: number | undefined) => (t === undefined || Number.isNaN(t) ? '-' : ((t - t0) / 1000).toFixed(1));
    console.log(`\nPXE boot of ${N} VM(s) at once (TCG, ${MEM} MiB, 1 vCPU; seconds from power on)\n`);
    console.log('| VM | DHCP ACK | node script | marker |');
    console.log('|---|---|---|---|');
    macs.forEach((mac, i) => console.log(`| bench-${i} | ${s(acks.get(mac))} | ${s(fetched.get(mac))} | ${s(marker[i])} |`));
    console.log(`| all | ${s(Math.max(...macs.map((m) => acks.get(m) ?? NaN)))} | ${s(Math.max(...macs.map((m) => fetched.get(m) ?? NaN)))} | ${s(Math.max(...marker))} |`);
  } finally {
    for (const vm of vms) await vm.kill();
    await dnsmasq?.stop();
    server.close();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
