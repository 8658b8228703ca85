/**
 * What a virtual BMC (IPMI or Redfish server) drives: one machine. Implemented by the simulated
 * machine (src/lab/sim-machine.ts) and, in the lab, by a qemu VM over QMP.
 */
export type MachineBootDevice = 'pxe' | 'disk' | 'cdrom' | 'bios' | 'none';

export interface MachineBootOverride {
  device: MachineBootDevice;
  /** false = next boot only. */
  persistent: boolean;
  mode: 'bios' | 'uefi';
}

export interface MachineBackend {
  readonly name: string;
  /** Stable identity shown to clients (Redfish UUID, IPMI GUID). */
  readonly uuid: string;
  /** MAC addresses of the machine's NICs, in order. */
  readonly macs: string[];
  powerState(): Promise<'on' | 'off'>;
  powerOn(): Promise<void>;
  /** Hard power off. */
  powerOff(): Promise<void>;
  /** Ask the OS to shut down (ACPI power button). */
  softPowerOff(): Promise<void>;
  /** Hard reset (warm, power stays on). */
  reset(): Promise<void>;
  /** Power off then on. */
  powerCycle(): Promise<void>;
  bootOverride(): Promise<MachineBootOverride>;
  setBootOverride(o: MachineBootOverride): Promise<void>;
}
