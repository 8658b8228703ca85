/**
 * The whole network boot on the lab network: a qemu VM (TCG) with a known MAC, powered on over
 * QMP, boots its NIC ROM (iPXE) -> dnsmasq DHCP -> boot.ipxe -> the node's script over HTTP ->
 * kernel + initramfs over HTTP -> a marker on the serial console. Then "boot from local disk":
 * iPXE exits and the firmware moves on to the disk.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabNetwork } from '../../src/lab/network.js';
import { QemuVm } from '../../src/lab/vm.js';
import { QemuMachine } from '../../src/lab/qemu-machine.js';
import { Dnsmasq } from '../../src/boot/dnsmasq.js';
import { bootHttpHandler } from '../../src/boot/http.js';
import { renderLocalBootScript, renderRamdiskScript } from '../../src/boot/ipxe.js';
import { bootSkipReason, findKernel, markerInitramfs } from '../lab/helpers.js';

const MAC = '52:54:00:0b:00:01';
const UEFI_MAC = '52:54:00:0b:00:02';
const OVMF = '/usr/share/ovmf/OVMF.fd';
const MARKER = 'OOO-PXE-RAMDISK-UP';
const tag = (process.pid % 100000).toString(36);

const skip = bootSkipReason('qemu-system-x86_64') || (!existsSync('/bin/busybox') && 'not installed: busybox-static');

describe('PXE boot on the lab network', { skip }, () => {
  let dir: string;
  let net: LabNetwork;
  let dnsmasq: Dnsmasq;
  let http: Server;
  let vm: QemuVm;
  let m: QemuMachine;
  let base = '';
  let mode: 'ramdisk' | 'local' | 'unknown' = 'ramdisk';
  const dhcp: { kind: string; mac: string; at: number }[] = [];
  const httpLog: string[] = [];
  const logs: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ooo-pxe-'));
    chmodSync(dir, 0o755);
    const kernel = findKernel();
    if (!kernel) throw new Error('no Debian kernel: neither the image builder cache nor apt-get download linux-image-6.1.0-*-amd64 gave one');
    const files = join(dir, 'files');
    mkdirSync(files);
    copyFileSync(kernel, join(files, 'vmlinuz'));
    copyFileSync(await markerInitramfs(dir, MARKER), join(files, 'initramfs'));

    net = new LabNetwork({ dir, namespace: `ooo-pxe-${tag}`, hostInterface: `oop${tag}`, log: (l) => logs.push(l) });
    net.create();
    net.addTap('tap-pxe0');

    http = createServer((req, res) => {
      handler(req, res).then((done) => { if (!done) { res.writeHead(404); res.end(); } }, () => { res.destroy(); });
    });
    // Only on the lab network's host end.
    await new Promise<void>((r) => http.listen(0, net.hostIp, () => r()));
    base = `http://${net.hostIp}:${(http.address() as { port: number }).port}`;
    const handler = bootHttpHandler({
      baseUrl: base,
      filesDir: files,
      log: (l) => httpLog.push(`${Date.now()} ${l}`),
      scriptFor: (mac) => (mac !== MAC && mac !== UEFI_MAC) || mode === 'unknown' ? undefined : mode === 'local' ? renderLocalBootScript() : renderRamdiskScript({
        kernelUrl: `${base}/boot/files/vmlinuz`, initrdUrl: `${base}/boot/files/initramfs`,
        apiUrl: `http://${net.hostIp}:6385/baremetal`, token: 'tok-test-123', node: 'node-uuid-1',
      }),
    });

    dnsmasq = new Dnsmasq({
      interface: net.hostInterface, range: { start: '192.0.2.10', end: '192.0.2.40' }, httpUrl: base,
      stateDir: join(dir, 'dnsmasq'), hosts: [{ mac: MAC, ip: '192.0.2.10', hostname: 'lab-0' }, { mac: UEFI_MAC, ip: '192.0.2.11', hostname: 'lab-1' }], log: (l) => logs.push(l), tracker: net,
    });
    dnsmasq.on('dhcp', (e) => dhcp.push(e));
    await dnsmasq.start();
    assert.ok(JSON.parse(readFileSync(net.statePath, 'utf8')).processes.some((p: { what: string }) => p.what === 'dnsmasq'), 'dnsmasq recorded for leftover cleanup');

    vm = new QemuVm({ name: 'pxe0', dir, memoryMiB: 256, netns: net.namespace, nics: [{ mac: MAC, tap: 'tap-pxe0' }], disk: { sizeBytes: 64 * 1024 * 1024 }, tracker: net, log: (l) => logs.push(l) });
    await vm.start();
    m = new QemuMachine(vm);
  });

  let uefi: QemuVm | undefined;
  after(async () => {
    await vm?.kill();
    await uefi?.kill();
    await dnsmasq?.stop();
    http?.close();
    try { net?.destroy(); } catch (e) { console.error((e as Error).message); }
    if (dir && !process.env.OOO_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  test('power on -> iPXE -> DHCP -> HTTP script, kernel, initramfs -> marker on the console', async () => {
    const t0 = Date.now();
    await m.powerOn();
    let seconds: number;
    try { seconds = await vm.waitForSerial(MARKER, 90_000); } catch (e) {
      throw new Error(`${(e as Error).message}\ndnsmasq:\n${dnsmasq.recentLog().slice(-15).join('\n')}\nhttp:\n${httpLog.join('\n')}`);
    }
    const serial = vm.serial();
    assert.match(serial, /arg ooo\.token=tok-test-123/);
    assert.match(serial, /arg ooo\.node=node-uuid-1/);
    const discover = dhcp.find((e) => e.mac === MAC && e.kind === 'DISCOVER');
    const ack = dhcp.find((e) => e.mac === MAC && e.kind === 'ACK');
    assert.ok(discover && ack, `DHCP exchange not seen: ${JSON.stringify(dhcp)}`);
    assert.ok(dnsmasq.leases().some((l) => l.mac === MAC && l.ip === '192.0.2.10'), 'lease recorded');
    assert.ok(httpLog.some((l) => l.includes('/boot.ipxe 200')) && httpLog.some((l) => l.includes(`/boot/${MAC}.ipxe 200`)), httpLog.join('\n'));
    const at = (re: RegExp) => { const l = httpLog.find((x) => re.test(x)); return l ? ((Number(l.split(' ')[0]) - t0) / 1000).toFixed(1) : '?'; };
    console.log(`# PXE figures (s from power on, accel ${vm.accel}): DHCP DISCOVER->ACK ${ack.at - discover.at} ms, ACK ${((ack.at - t0) / 1000).toFixed(1)}; boot.ipxe ${at(/boot\.ipxe 200/)}; node script ${at(new RegExp(`${MAC}\\.ipxe 200`))}; kernel fetched ${at(/vmlinuz 200/)}; initramfs fetched ${at(/initramfs 200/)}; marker ${seconds.toFixed(1)}`);
    // The initramfs powers the machine off: qemu stays, in status shutdown = power off.
    const deadline = Date.now() + 20_000;
    while ((await m.status()) !== 'shutdown' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(await m.status(), 'shutdown');
    assert.equal(await m.powerState(), 'off');
  });

  test('boot from local disk: the node script exits and the firmware tries the disk', async () => {
    mode = 'local';
    const before = vm.serial().length;
    await m.powerOn(); // from status shutdown: system_reset + cont
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const s = vm.serial().slice(before);
      if (/Booting from Hard Disk/.test(s)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const s = vm.serial().slice(before);
    assert.match(s, /booting from the local disk/, s.slice(-1500));
    assert.match(s, /Booting from Hard Disk/, s.slice(-1500));
    assert.doesNotMatch(s, new RegExp(MARKER));
    await m.powerOff();
  });

  test('UEFI firmware\'s own PXE (OVMF, NIC without the iPXE ROM): DHCP arch 7 -> TFTP snponly.efi -> iPXE -> HTTP -> marker', { skip: existsSync(OVMF) ? false : `not installed: ovmf (${OVMF})` }, async () => {
    mode = 'ramdisk';
    net.addTap('tap-pxe1');
    const lines: string[] = [];
    const onLine = (l: string) => lines.push(`${Date.now()} ${l}`);
    dnsmasq.on('line', onLine);
    uefi = new QemuVm({ name: 'pxe1', dir, memoryMiB: 512, netns: net.namespace, nics: [{ mac: UEFI_MAC, tap: 'tap-pxe1', romfile: '' }], tracker: net, extraArgs: ['-bios', OVMF] });
    await uefi.start();
    const t0 = Date.now();
    await new QemuMachine(uefi).powerOn();
    let seconds: number;
    try { seconds = await uefi.waitForSerial(MARKER, 120_000); } finally { dnsmasq.removeListener('line', onLine); }
    const tftp = lines.find((l) => /sent .*snponly\.efi/.test(l));
    assert.ok(tftp, `no TFTP transfer of snponly.efi:\n${lines.filter((l) => /TFTP|tftp|arch|tags/.test(l)).join('\n')}`);
    assert.ok(lines.some((l) => /tags: .*efi64/.test(l)), 'the UEFI client was tagged efi64');
    console.log(`# UEFI PXE figures (s from power on): snponly.efi sent ${((Number(tftp.split(' ')[0]) - t0) / 1000).toFixed(1)}; marker ${seconds.toFixed(1)}`);
    await uefi.kill();
  });

  test('no script for the MAC: boot.ipxe retries, then gives up to the next boot device', async () => {
    mode = 'unknown';
    const before = vm.serial().length;
    await m.powerOn();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !/Booting from Hard Disk/.test(vm.serial().slice(before))) await new Promise((r) => setTimeout(r, 200));
    const s = vm.serial().slice(before);
    assert.match(s, /no boot script for 52:54:00:0b:00:01 yet \(attempt 2\)/, s.slice(-2000));
    assert.match(s, /trying the next boot device/, s.slice(-2000));
    assert.match(s, /Booting from Hard Disk/, s.slice(-2000));
    assert.equal(httpLog.filter((l) => l.includes(`/boot/${MAC}.ipxe 404`)).length, 3);
    await m.powerOff();
  });
});
