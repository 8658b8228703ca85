/**
 * A qemu VM as a MachineBackend: what a virtual BMC (IPMI or Redfish server) drives in the lab.
 *
 * Power maps to QMP: on = cont (after system_reset, so that the boot order in effect is the
 * current one); hard off = stop + system_reset (status prelaunch); soft off = system_powerdown
 * (the guest handles the ACPI power button; with -no-shutdown qemu stays in status shutdown);
 * reset = system_reset. The boot device is the bootindex of the NIC and disk devices, set with
 * qom-set. The firmware reads the order late (while it starts, not at the reset), so a one-time
 * override is reported consumed as soon as one boot has started with it (ours or a reboot by the
 * guest), but the persistent order is put back only right before the next boot.
 */
import type { MachineBackend, MachineBootDevice, MachineBootOverride } from '../protocols/machine.js';
import type { QmpClient, QmpEvent } from './qmp.js';

/** What QemuMachine needs from a VM (QemuVm provides it). */
export interface QemuMachineTarget {
  readonly name: string;
  readonly uuid: string;
  readonly macs: string[];
  /** QOM ids of the NIC devices, in MAC order; the first is the PXE NIC. */
  readonly nicIds: string[];
  readonly diskId: string | undefined;
  readonly qmp: QmpClient;
}

export type QemuStatus = 'prelaunch' | 'running' | 'paused' | 'shutdown' | string;

export class QemuMachine implements MachineBackend {
  private override: MachineBootOverride = { device: 'none', persistent: false, mode: 'bios' };
  /** The order set when no override is active. */
  private persistentDevice: MachineBootDevice = 'none';
  /** A one-time override is in the devices' bootindex and will be consumed by the next boot. */
  private oncePending = false;
  /** A one-time override was consumed; its order stays in place until the next boot starts. */
  private restorePending = false;
  private hooked: QmpClient | undefined;
  /** Boots started since creation (power on, reset, cycle, guest reboots). */
  boots = 0;
  /** Power and boot operations run one at a time (two BMC clients may ask at once). */
  private queue: Promise<unknown> = Promise.resolve();

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  constructor(private readonly vm: QemuMachineTarget, private readonly log: (line: string) => void = () => {}) {}

  get name(): string { return this.vm.name; }
  get uuid(): string { return this.vm.uuid; }
  get macs(): string[] { return this.vm.macs; }

  private qmp(): QmpClient {
    const q = this.vm.qmp;
    if (this.hooked !== q) {
      this.hooked = q;
      // A reset the guest asks for (reboot) also consumes a one-time boot device.
      q.on('RESET', (e: QmpEvent) => {
        if (e.data?.guest) void this.serial(async () => { this.boots++; await this.beforeBoot(); this.afterBoot(); }).catch(() => {});
      });
    }
    return q;
  }

  async status(): Promise<QemuStatus> {
    const r = await this.qmp().execute<{ status: string; running: boolean }>('query-status');
    return r.status;
  }

  async powerState(): Promise<'on' | 'off'> {
    const s = await this.status();
    // paused: between stop and the reset of a hard power off. guest-panicked/internal-error: a
    // crashed machine is still powered.
    return s === 'prelaunch' || s === 'shutdown' || s === 'paused' ? 'off' : 'on';
  }

  /** system_reset and wait until qemu has done it (the RESET event). */
  private async systemReset(): Promise<void> {
    const q = this.qmp();
    const ev = q.waitEvent('RESET', 10_000, (e) => !e.data?.guest);
    await q.execute('system_reset');
    await ev;
  }

  powerOn(): Promise<void> { return this.serial(() => this.powerOnNow()); }
  private async powerOnNow(): Promise<void> {
    if ((await this.powerState()) === 'on') return;
    await this.bootNow(true);
  }

  /** Reset (picks up the current bootindex) and, if asked, run. */
  private async bootNow(run: boolean): Promise<void> {
    const q = this.qmp();
    const s = await this.status();
    if (s === 'running' && run) await q.execute('stop');
    await this.beforeBoot();
    await this.systemReset();
    this.boots++;
    if (run) await q.execute('cont');
    this.afterBoot();
    this.log(`${this.name}: boot ${this.boots} (${this.describeOrder()})`);
  }

  powerOff(): Promise<void> { return this.serial(() => this.powerOffNow()); }
  private async powerOffNow(): Promise<void> {
    const q = this.qmp();
    const s = await this.status();
    if (s === 'prelaunch') return;
    if (s === 'running') await q.execute('stop');
    await this.systemReset();
    const after = await this.status();
    if (after !== 'prelaunch') throw new Error(`${this.name}: still '${after}' after stop + system_reset`);
  }

  softPowerOff(): Promise<void> { return this.serial(() => this.softPowerOffNow()); }
  private async softPowerOffNow(): Promise<void> {
    if ((await this.status()) !== 'running') return;
    await this.qmp().execute('system_powerdown');
  }

  reset(): Promise<void> { return this.serial(() => this.resetNow()); }
  private async resetNow(): Promise<void> {
    if ((await this.status()) !== 'running') return;
    await this.beforeBoot();
    await this.systemReset();
    this.boots++;
    this.afterBoot();
  }

  powerCycle(): Promise<void> { return this.serial(() => this.powerCycleNow()); }
  private async powerCycleNow(): Promise<void> {
    await this.powerOffNow();
    await this.bootNow(true);
  }

  async bootOverride(): Promise<MachineBootOverride> { return { ...this.override }; }

  setBootOverride(o: MachineBootOverride): Promise<void> { return this.serial(() => this.setBootOverrideNow(o)); }
  private async setBootOverrideNow(o: MachineBootOverride): Promise<void> {
    this.override = { ...o };
    this.restorePending = false;
    if (o.persistent) { this.persistentDevice = o.device; this.oncePending = false; }
    else this.oncePending = o.device !== 'none';
    await this.applyOrder(o.persistent || o.device !== 'none' ? o.device : this.persistentDevice);
  }

  /** Put the persistent order back if a consumed one-time override still holds the bootindex. */
  private async beforeBoot(): Promise<void> {
    if (!this.restorePending) return;
    this.restorePending = false;
    await this.applyOrder(this.persistentDevice).catch((e) => this.log(`${this.name}: restoring the boot order failed: ${(e as Error).message}`));
  }

  /** A boot started: a one-time override is now used up (as a BMC clears its boot flags). */
  private afterBoot(): void {
    if (!this.oncePending) return;
    this.oncePending = false;
    this.restorePending = true;
    this.override = { ...this.override, device: 'none' };
  }

  private describeOrder(): string { return `boot device ${this.override.device === 'none' ? this.persistentDevice : this.override.device}`; }

  /**
   * Put `device` first: pxe = first NIC then disk; disk = disk then first NIC; none (and cdrom,
   * bios: the VM has neither) = the VM's default, network then disk.
   */
  private async applyOrder(device: MachineBootDevice): Promise<void> {
    const nic = this.vm.nicIds[0];
    const disk = this.vm.diskId;
    const order: string[] = device === 'disk' ? [disk, nic].filter((x): x is string => !!x) : [nic, disk].filter((x): x is string => !!x);
    const q = this.qmp();
    // Two devices cannot hold the same index: clear them all first.
    for (const id of [nic, disk]) if (id) await q.execute('qom-set', { path: `/machine/peripheral/${id}`, property: 'bootindex', value: -1 });
    for (const [i, id] of order.entries()) await q.execute('qom-set', { path: `/machine/peripheral/${id}`, property: 'bootindex', value: i + 1 });
  }

  /** The bootindex of each boot device as qemu has it now (tests, diagnostics). */
  async bootIndexes(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const id of [this.vm.nicIds[0], this.vm.diskId]) {
      if (id) out[id] = await this.qmp().execute<number>('qom-get', { path: `/machine/peripheral/${id}`, property: 'bootindex' });
    }
    return out;
  }
}
