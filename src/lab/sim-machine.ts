/**
 * A simulated machine: power and boot state in memory, with optional delays, so that virtual
 * BMCs, the simulator and tests behave like hardware without a VM.
 */
import { randomUUID } from 'node:crypto';
import type { MachineBackend, MachineBootOverride } from '../protocols/machine.js';

export interface SimMachineOptions {
  name: string;
  uuid?: string;
  macs?: string[];
  /** Milliseconds a power change takes to be visible (default 0). */
  powerDelayMs?: number;
}

export class SimMachine implements MachineBackend {
  readonly name: string;
  readonly uuid: string;
  readonly macs: string[];
  private on = false;
  private override: MachineBootOverride = { device: 'none', persistent: false, mode: 'bios' };
  /** Number of boots since creation (each power on / reset / cycle counts one). */
  boots = 0;
  /** The device the last boot used. */
  lastBootDevice: string = 'none';
  private readonly delay: number;

  constructor(opts: SimMachineOptions) {
    this.name = opts.name;
    this.uuid = opts.uuid ?? randomUUID();
    this.macs = opts.macs ?? [];
    this.delay = opts.powerDelayMs ?? 0;
  }

  private async settle(): Promise<void> {
    if (this.delay > 0) await new Promise((r) => setTimeout(r, this.delay));
  }

  private boot(): void {
    this.boots++;
    this.lastBootDevice = this.override.device === 'none' ? 'disk' : this.override.device;
    if (!this.override.persistent) this.override = { ...this.override, device: 'none' };
  }

  async powerState(): Promise<'on' | 'off'> { return this.on ? 'on' : 'off'; }
  async powerOn(): Promise<void> { await this.settle(); if (!this.on) { this.on = true; this.boot(); } }
  async powerOff(): Promise<void> { await this.settle(); this.on = false; }
  async softPowerOff(): Promise<void> { await this.settle(); this.on = false; }
  async reset(): Promise<void> { await this.settle(); if (this.on) this.boot(); }
  async powerCycle(): Promise<void> { await this.settle(); this.on = true; this.boot(); }
  async bootOverride(): Promise<MachineBootOverride> { return { ...this.override }; }
  async setBootOverride(o: MachineBootOverride): Promise<void> { this.override = { ...o }; }
}
