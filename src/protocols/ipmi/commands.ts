/**
 * IPMI command numbers and the data formats both the client and the server use: chassis status,
 * chassis control, system boot options (parameter 5, boot flags) and Get Device ID.
 */
import type { MachineBootDevice } from '../machine.js';

export const CMD = {
  // NetFn App (0x06)
  GET_DEVICE_ID: 0x01,
  GET_CHANNEL_AUTH_CAPABILITIES: 0x38,
  SET_SESSION_PRIVILEGE: 0x3b,
  CLOSE_SESSION: 0x3c,
  GET_CHANNEL_CIPHER_SUITES: 0x54,
  // NetFn Chassis (0x00)
  GET_CHASSIS_STATUS: 0x01,
  CHASSIS_CONTROL: 0x02,
  SET_SYSTEM_BOOT_OPTIONS: 0x08,
  GET_SYSTEM_BOOT_OPTIONS: 0x09,
} as const;

export const CHASSIS_CONTROL = {
  'power-down': 0x00,
  'power-up': 0x01,
  'power-cycle': 0x02,
  'hard-reset': 0x03,
  'diag-interrupt': 0x04,
  'soft-shutdown': 0x05,
} as const;
export type ChassisControl = keyof typeof CHASSIS_CONTROL;

export interface ChassisStatus {
  powerOn: boolean;
  powerOverload: boolean;
  powerFault: boolean;
  /** 'always-off' | 'previous' | 'always-on' | 'unknown' */
  restorePolicy: string;
  lastPowerEvent: number;
  miscState: number;
}

export function decodeChassisStatus(d: Buffer): ChassisStatus {
  if (d.length < 3) throw new Error(`Get Chassis Status answer too short (${d.length} bytes)`);
  const b = d[0]!;
  return {
    powerOn: (b & 1) !== 0,
    powerOverload: (b & 2) !== 0,
    powerFault: (b & 8) !== 0,
    restorePolicy: ['always-off', 'previous', 'always-on', 'unknown'][(b >> 5) & 3]!,
    lastPowerEvent: d[1]!,
    miscState: d[2]!,
  };
}

export function encodeChassisStatus(on: boolean): Buffer {
  // Power restore policy "always off" (0), no faults, no last event; misc: no intrusion.
  return Buffer.from([on ? 0x01 : 0x00, 0x00, 0x40, 0x00]);
}

/** Boot device selector values of boot flags byte 2, bits 5:2. */
const DEVICE_CODES: Record<MachineBootDevice, number> = { none: 0x0, pxe: 0x1, disk: 0x2, cdrom: 0x5, bios: 0x6 };
const CODE_DEVICES: Record<number, MachineBootDevice> = { 0x0: 'none', 0x1: 'pxe', 0x2: 'disk', 0x3: 'disk', 0x5: 'cdrom', 0x6: 'bios', 0xf: 'none' };

export interface BootFlags {
  /** Bit 7 of byte 1: the flags are valid (take effect at the next boot). */
  valid: boolean;
  persistent: boolean;
  mode: 'bios' | 'uefi';
  device: MachineBootDevice;
  /** Selector bits 5:2 as sent (for devices with no MachineBootDevice equivalent). */
  selector: number;
}

/** Boot option parameter 5 data (5 bytes). */
export function encodeBootFlags(f: Omit<BootFlags, 'selector'> & { selector?: number }): Buffer {
  const sel = f.selector ?? DEVICE_CODES[f.device];
  return Buffer.from([(f.valid ? 0x80 : 0) | (f.persistent ? 0x40 : 0) | (f.mode === 'uefi' ? 0x20 : 0), (sel & 0x0f) << 2, 0, 0, 0]);
}

export function decodeBootFlags(d: Buffer): BootFlags {
  if (d.length < 2) throw new Error(`boot flags too short (${d.length} bytes)`);
  const sel = (d[1]! >> 2) & 0x0f;
  return { valid: (d[0]! & 0x80) !== 0, persistent: (d[0]! & 0x40) !== 0, mode: (d[0]! & 0x20) !== 0 ? 'uefi' : 'bios', device: CODE_DEVICES[sel] ?? 'none', selector: sel };
}

export interface DeviceId {
  deviceId: number;
  deviceRevision: number;
  firmware: string;
  ipmiVersion: string;
  manufacturerId: number;
  productId: number;
}

export function decodeDeviceId(d: Buffer): DeviceId {
  if (d.length < 11) throw new Error(`Get Device ID answer too short (${d.length} bytes)`);
  return {
    deviceId: d[0]!,
    deviceRevision: d[1]! & 0x0f,
    firmware: `${d[2]! & 0x7f}.${d[3]!.toString(16).padStart(2, '0')}`,
    ipmiVersion: `${d[4]! & 0x0f}.${d[4]! >> 4}`,
    manufacturerId: d[6]! | (d[7]! << 8) | ((d[8]! & 0x0f) << 16),
    productId: d[9]! | (d[10]! << 8),
  };
}
