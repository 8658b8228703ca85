/**
 * A qemu VM of the virtual bare-metal lab: started paused (-S) with -no-shutdown, serial console
 * to a log file, a QMP socket, a sparse disk, NICs on tap devices of the lab's network namespace,
 * network-then-disk boot order by bootindex. Power is driven over QMP (see qemu-machine.ts).
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from './qmp.js';

export type Accel = 'kvm' | 'tcg';

export interface VmNic {
  mac: string;
  /** Tap device (inside `netns` when given) the NIC is plugged into; without one the NIC is on an
   * isolated qemu user network (restrict=on: nothing leaves the VM). */
  tap?: string;
  /** Default virtio-net-pci. */
  model?: string;
  /** NIC option ROM; '' = none, so the firmware's own PXE client boots it (like most real NICs)
   * instead of QEMU's iPXE ROM. */
  romfile?: string;
}

export interface VmDisk {
  /** Default DIR/NAME-disk.FORMAT. */
  path?: string;
  /** Default 'raw' (a sparse file); 'qcow2' is made with qemu-img. */
  format?: 'raw' | 'qcow2';
  /** Size in bytes when the file is created (an existing file is kept as is). */
  sizeBytes: number;
}

/** Something that records the PIDs of lab processes so that a crashed lab can be cleaned up. */
export interface ProcessTracker {
  add(pid: number, what: string): void;
  remove(pid: number): void;
}

export interface VmOptions {
  name: string;
  /** Directory for the disk, the serial log and the QMP socket (created if missing). */
  dir: string;
  uuid?: string;
  memoryMiB?: number;
  cpus?: number;
  disk?: VmDisk;
  nics?: VmNic[];
  /** Run qemu inside this network namespace (`ip netns exec NS`). */
  netns?: string;
  /** 'auto' (default): KVM only if it really works here, else TCG. */
  accel?: Accel | 'auto';
  /** Direct kernel boot instead of firmware boot (tests). */
  kernel?: { kernel: string; initrd?: string; append?: string };
  /** Milliseconds SeaBIOS waits before rebooting when no device booted (default 10000; -1 = never). */
  rebootTimeoutMs?: number;
  extraArgs?: string[];
  qemu?: string;
  log?: (line: string) => void;
  tracker?: ProcessTracker;
}

export class VmError extends Error {
  constructor(message: string) { super(message); this.name = 'VmError'; }
}

let accelProbe: Promise<{ accel: Accel; reason: string }> | undefined;

/**
 * Whether KVM really works here: /dev/kvm must open read-write, the CPU must have vmx/svm, and a
 * qemu started with `-accel kvm -cpu host` must still be running after 2 s (a software-only KVM
 * aborts it on an MSR assertion). Probed once per process; OOO_LAB_ACCEL=kvm|tcg overrides.
 */
export function detectAccel(qemu = 'qemu-system-x86_64'): Promise<{ accel: Accel; reason: string }> {
  accelProbe ??= (async () => {
    const forced = process.env.OOO_LAB_ACCEL;
    if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: `OOO_LAB_ACCEL=${forced}` };
    try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); } catch { return { accel: 'tcg' as const, reason: '/dev/kvm is missing or not accessible' }; }
    const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
    if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo)) return { accel: 'tcg' as const, reason: 'the CPU has no vmx/svm flag (software-only KVM aborts real guests)' };
    const child = spawn(qemu, ['-accel', 'kvm', '-cpu', 'host', '-m', '64', '-nodefaults', '-display', 'none', '-serial', 'none', '-monitor', 'none', '-no-reboot'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    const exited = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 2000);
      child.once('exit', () => { clearTimeout(t); resolve(true); });
      child.once('error', () => { clearTimeout(t); resolve(true); });
    });
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
      return { accel: 'kvm' as const, reason: 'a KVM guest with -cpu host runs' };
    }
    return { accel: 'tcg' as const, reason: `a KVM guest with -cpu host failed: ${err.trim().split('\n').pop() ?? 'exited'}` };
  })();
  return accelProbe;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Device ids used on the qemu command line (QOM paths /machine/peripheral/ID). */
export function nicId(i: number): string { return `nic${i}`; }
export const DISK_ID = 'disk0';

/** The qemu command line for `opts` (without the `ip netns exec` prefix). */
export function qemuArgs(opts: VmOptions & { uuid: string }, accel: Accel, paths: { qmp: string; serial: string; disk?: string }): string[] {
  const nics = opts.nics ?? [];
  const a = [
    '-name', `${opts.name},process=ooo-vm-${opts.name}`,
    '-uuid', opts.uuid,
    '-machine', 'pc', '-accel', accel,
    '-cpu', accel === 'kvm' ? 'host' : 'qemu64',
    '-m', String(opts.memoryMiB ?? 512),
    '-smp', String(opts.cpus ?? 1),
    '-S', '-no-shutdown',
    '-nodefaults', '-nographic', '-monitor', 'none',
    '-serial', `file:${paths.serial}`,
    '-qmp', `unix:${paths.qmp},server=on,wait=off`,
    '-boot', `menu=off,strict=off,reboot-timeout=${opts.rebootTimeoutMs ?? 10_000}`,
  ];
  nics.forEach((n, i) => {
    if (!MAC_RE.test(n.mac)) throw new VmError(`VM ${opts.name}: NIC ${i} has an invalid MAC '${n.mac}'`);
    a.push('-netdev', n.tap ? `tap,id=net${i},ifname=${n.tap},script=no,downscript=no` : `user,id=net${i},restrict=on`);
    // Network first (the first NIC), then the disk; other NICs are not boot devices.
    a.push('-device', `${n.model ?? 'virtio-net-pci'},netdev=net${i},mac=${n.mac.toLowerCase()},id=${nicId(i)}${n.romfile !== undefined ? `,romfile=${n.romfile}` : ''}${i === 0 ? ',bootindex=1' : ''}`);
  });
  if (opts.disk && paths.disk) {
    a.push('-blockdev', `driver=file,filename=${paths.disk},node-name=disk0-file,cache.direct=off`);
    a.push('-blockdev', `driver=${opts.disk.format ?? 'raw'},file=disk0-file,node-name=disk0-fmt`);
    a.push('-device', `virtio-blk-pci,drive=disk0-fmt,id=${DISK_ID},bootindex=${nics.length ? 2 : 1}`);
  }
  if (opts.kernel) {
    a.push('-kernel', opts.kernel.kernel);
    if (opts.kernel.initrd) a.push('-initrd', opts.kernel.initrd);
    if (opts.kernel.append) a.push('-append', opts.kernel.append);
  }
  a.push(...(opts.extraArgs ?? []));
  return a;
}

/** Create a sparse disk file if it does not exist yet. */
export function createDisk(path: string, format: 'raw' | 'qcow2', sizeBytes: number): void {
  if (existsSync(path)) return;
  if (!Number.isFinite(sizeBytes) || sizeBytes <= 0) throw new VmError(`disk ${path}: size must be a positive number of bytes, got ${sizeBytes}`);
  if (format === 'raw') {
    const fd = openSync(path, 'wx');
    try { ftruncateSync(fd, sizeBytes); } finally { closeSync(fd); }
    return;
  }
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(sizeBytes)], { encoding: 'utf8' });
  if (r.error) throw new VmError(`qemu-img not available (install the Debian package qemu-utils): ${r.error.message}`);
  if (r.status !== 0) throw new VmError(`qemu-img create ${path} failed: ${r.stderr.trim()}`);
}

export class QemuVm {
  readonly name: string;
  readonly uuid: string;
  readonly macs: string[];
  readonly nicIds: string[];
  readonly diskId: string | undefined;
  readonly qmpPath: string;
  readonly serialPath: string;
  readonly diskPath: string | undefined;
  accel: Accel = 'tcg';
  private child: ChildProcess | undefined;
  private stderr = '';
  private _qmp: QmpClient | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  private log: (line: string) => void;

  constructor(readonly opts: VmOptions) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(opts.name)) throw new VmError(`VM name '${opts.name}' must be letters, digits, '.', '_' or '-'`);
    this.name = opts.name;
    this.uuid = opts.uuid ?? randomUUID();
    this.macs = (opts.nics ?? []).map((n) => n.mac.toLowerCase());
    this.nicIds = (opts.nics ?? []).map((_n, i) => nicId(i));
    this.diskId = opts.disk ? DISK_ID : undefined;
    this.qmpPath = join(opts.dir, `${opts.name}.qmp`);
    this.serialPath = join(opts.dir, `${opts.name}-serial.log`);
    this.diskPath = opts.disk ? (opts.disk.path ?? join(opts.dir, `${opts.name}-disk.${opts.disk.format ?? 'raw'}`)) : undefined;
    this.log = opts.log ?? (() => {});
  }

  get pid(): number | undefined { return this.child?.pid; }
  get running(): boolean { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }
  get qmp(): QmpClient {
    if (!this._qmp || !this._qmp.isOpen) throw new VmError(`VM ${this.name}: qemu is not running${this.stderr ? ` (${this.stderr.trim().split('\n').pop()})` : ''}`);
    return this._qmp;
  }

  /** Start qemu paused (status prelaunch) and connect QMP. */
  async start(): Promise<void> {
    if (this.running) return;
    mkdirSync(this.opts.dir, { recursive: true });
    const { accel, reason } = this.opts.accel && this.opts.accel !== 'auto' ? { accel: this.opts.accel, reason: 'configured' } : await detectAccel(this.opts.qemu);
    this.accel = accel;
    this.log(`VM ${this.name}: accelerator ${accel} (${reason})`);
    for (const n of this.opts.nics ?? []) {
      if (!n.tap) continue;
      const r = spawnSync('ip', [...(this.opts.netns ? ['netns', 'exec', this.opts.netns, 'ip'] : []), 'link', 'show', 'dev', n.tap], { encoding: 'utf8' });
      if (r.status !== 0) throw new VmError(`VM ${this.name}: tap device '${n.tap}' for NIC ${n.mac} does not exist${this.opts.netns ? ` in network namespace ${this.opts.netns}` : ''} (${(r.stderr || r.error?.message || '').trim()}); create it first (LabNetwork.addTap)`);
    }
    if (this.opts.disk) createDisk(this.diskPath!, this.opts.disk.format ?? 'raw', this.opts.disk.sizeBytes);
    rmSync(this.qmpPath, { force: true });
    const args = qemuArgs({ ...this.opts, uuid: this.uuid }, accel, { qmp: this.qmpPath, serial: this.serialPath, disk: this.diskPath });
    const qemu = this.opts.qemu ?? 'qemu-system-x86_64';
    const [cmd, argv] = this.opts.netns ? ['ip', ['netns', 'exec', this.opts.netns, qemu, ...args]] : [qemu, args];
    this.stderr = '';
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (child.pid) this.opts.tracker?.remove(child.pid);
        this.log(`VM ${this.name}: qemu exited (${signal ?? `code ${code}`})`);
        resolve({ code, signal });
      });
      child.once('error', (e) => { this.stderr += e.message; resolve({ code: -1, signal: null }); });
    });
    if (child.pid) this.opts.tracker?.add(child.pid, `qemu ${this.name}`);
    const failed = this.exited.then(() => { throw new VmError(`VM ${this.name}: qemu exited while starting: ${this.stderr.trim() || 'no message'}`); });
    try {
      this._qmp = await Promise.race([QmpClient.connect(this.qmpPath, { timeoutMs: 15_000 }), failed]);
    } catch (e) {
      await this.kill();
      throw e instanceof VmError ? e : new VmError(`VM ${this.name}: ${(e as Error).message}; qemu said: ${this.stderr.trim() || 'nothing'}`);
    }
    failed.catch(() => {});
  }

  /** The serial console so far. */
  serial(): string { return existsSync(this.serialPath) ? readFileSync(this.serialPath, 'latin1') : ''; }

  /** Wait until the serial console shows `marker`; resolves with the seconds waited. */
  async waitForSerial(marker: string | RegExp, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const s = this.serial();
      if (typeof marker === 'string' ? s.includes(marker) : marker.test(s)) return (Date.now() - t0) / 1000;
      if (!this.running) throw new VmError(`VM ${this.name}: qemu exited before ${marker} appeared on the console; last lines:\n${s.slice(-1500)}`);
      if (Date.now() - t0 > timeoutMs) throw new VmError(`VM ${this.name}: ${marker} did not appear on the console within ${timeoutMs / 1000} s; last lines:\n${s.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Quit qemu over QMP (the VM is gone, the disk stays); kill it if it does not exit in time.
   * With `graceful`, a running guest is first asked to power off (ACPI power button) and given
   * that many milliseconds to do so.
   */
  async shutdown(timeoutMs = 5000, graceful = 0): Promise<void> {
    if (!this.running) return;
    if (graceful > 0) {
      try {
        const { status } = await this.qmp.execute<{ status: string }>('query-status');
        if (status === 'running') {
          const down = this.qmp.waitEvent('SHUTDOWN', graceful);
          await this.qmp.execute('system_powerdown');
          await down;
          this.log(`VM ${this.name}: the guest powered off`);
        }
      } catch (e) { this.log(`VM ${this.name}: no clean power off (${(e as Error).message}); quitting`); }
    }
    try { await this.qmp.execute('quit', undefined, timeoutMs); } catch { /* exits anyway or is killed below */ }
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
    if (!done) await this.kill();
    this._qmp?.close();
    rmSync(this.qmpPath, { force: true });
  }

  /** SIGKILL qemu (and the `ip netns exec` wrapper, which execs it: same process). */
  async kill(): Promise<void> {
    this._qmp?.close();
    if (this.running) {
      this.child!.kill('SIGKILL');
      await this.exited;
    }
    rmSync(this.qmpPath, { force: true });
  }

  /** Remove the disk and logs (after shutdown). */
  removeFiles(): void {
    if (this.diskPath && !this.opts.disk?.path) rmSync(this.diskPath, { force: true });
    rmSync(this.serialPath, { force: true });
  }

  diskSize(): number | undefined { return this.diskPath && existsSync(this.diskPath) ? statSync(this.diskPath).size : undefined; }
}
