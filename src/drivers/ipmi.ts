/**
 * ipmi (alias ipmitool): power and management through the node's BMC over IPMI v2.0 / RMCP+,
 * with our own client (src/protocols/ipmi) instead of one ipmitool process per call. driver_info
 * fields follow Ironic's ipmitool driver. Sessions are shared per BMC and user.
 */
import { sleep } from './wait.js';
import type { BootDevice, DriverNode, ManagementInterface, PowerInterface, PowerState, PropertySpec, Task } from './interfaces.js';
import { DriverError } from './interfaces.js';
import { registerInterface } from './registry.js';
import { IpmiError, ipmiSession, type IpmiClient } from '../protocols/ipmi/client.js';
import { CIPHER_SUITES, PRIV_ADMIN, PRIV_CALLBACK, PRIV_OPERATOR, PRIV_USER } from '../protocols/ipmi/codec.js';
import { encodeBootFlags } from '../protocols/ipmi/commands.js';
import type { MachineBootDevice } from '../protocols/machine.js';

export const IPMI_PROPERTIES: Record<string, PropertySpec> = {
  ipmi_address: { description: 'IP address or host name of the BMC. Required.', required: true },
  ipmi_port: { description: 'UDP port of the BMC. Optional, default 623.' },
  ipmi_username: { description: 'BMC user name. Optional, default: the anonymous (empty) user.' },
  ipmi_password: { description: 'BMC password (at most 20 bytes). Optional, default empty.', secret: true },
  ipmi_cipher_suite: { description: `RMCP+ cipher suite: one of ${Object.keys(CIPHER_SUITES).join(', ')}. Optional; by default the best the BMC offers (17, then 3).` },
  ipmi_priv_level: { description: 'Privilege level: ADMINISTRATOR (default), OPERATOR, USER or CALLBACK.' },
  ipmi_protocol_version: { description: "IPMI protocol version: only '2.0' (the default) is supported." },
  ipmi_force_boot_device: { description: 'Set the boot device again before every power on, for BMCs that forget it. Optional, default false.' },
  ipmi_disable_boot_timeout: { description: 'Ask the BMC not to clear the boot device after 60 s (boot option parameter 3). Optional, default true.' },
  ipmi_bridging: { description: "Bridging type: only 'no' (the default) is supported." },
  ipmi_timeout: { description: 'Seconds one BMC request may take, retries included. Optional, default 5.' },
};

const PRIV_LEVELS: Record<string, number> = { ADMINISTRATOR: PRIV_ADMIN, OPERATOR: PRIV_OPERATOR, USER: PRIV_USER, CALLBACK: PRIV_CALLBACK };
/** Suites tried, best first, when ipmi_cipher_suite is not set. */
const PREFERRED_SUITES = [17, 3, 16, 2, 15, 1];

export interface IpmiDriverInfo {
  address: string;
  port: number;
  username: string;
  password: string;
  cipherSuite?: number;
  privilege: number;
  forceBootDevice: boolean;
  disableBootTimeout: boolean;
  timeoutMs: number;
}

function bool(v: unknown, key: string, dflt: boolean): boolean {
  if (v === undefined || v === null || v === '') return dflt;
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(s)) return true;
  if (['false', 'no', '0', 'off'].includes(s)) return false;
  throw new DriverError(`driver_info.${key} must be true or false, got '${String(v)}'.`, 'invalid_parameter');
}

function int(v: unknown, key: string, dflt: number | undefined, min: number, max: number): number | undefined {
  if (v === undefined || v === null || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new DriverError(`driver_info.${key} must be an integer from ${min} to ${max}, got '${String(v)}'.`, 'invalid_parameter');
  return n;
}

/** Read and check the node's IPMI driver_info. Throws DriverError naming the bad field. */
export function parseIpmiDriverInfo(node: Pick<DriverNode, 'driver_info'>): IpmiDriverInfo {
  const di = node.driver_info;
  const address = di.ipmi_address;
  if (address === undefined || address === null || address === '') throw new DriverError('driver_info.ipmi_address is required (the BMC address).', 'missing_parameter');
  if (typeof address !== 'string' || /\s/.test(address)) throw new DriverError(`driver_info.ipmi_address must be a host name or IP address, got '${String(address)}'.`, 'invalid_parameter');
  const username = di.ipmi_username === undefined || di.ipmi_username === null ? '' : String(di.ipmi_username);
  if (Buffer.byteLength(username, 'latin1') > 16) throw new DriverError('driver_info.ipmi_username must be at most 16 characters.', 'invalid_parameter');
  const password = di.ipmi_password === undefined || di.ipmi_password === null ? '' : String(di.ipmi_password);
  if (Buffer.byteLength(password, 'utf8') > 20) throw new DriverError('driver_info.ipmi_password must be at most 20 bytes (IPMI v2.0).', 'invalid_parameter');
  const cipherSuite = int(di.ipmi_cipher_suite, 'ipmi_cipher_suite', undefined, 0, 255);
  if (cipherSuite !== undefined && !CIPHER_SUITES[cipherSuite]) throw new DriverError(`driver_info.ipmi_cipher_suite ${cipherSuite} is not supported; use one of ${Object.keys(CIPHER_SUITES).join(', ')}.`, 'invalid_parameter');
  const privName = di.ipmi_priv_level === undefined || di.ipmi_priv_level === null || di.ipmi_priv_level === '' ? 'ADMINISTRATOR' : String(di.ipmi_priv_level).toUpperCase();
  const privilege = PRIV_LEVELS[privName];
  if (!privilege) throw new DriverError(`driver_info.ipmi_priv_level must be one of ${Object.keys(PRIV_LEVELS).join(', ')}, got '${String(di.ipmi_priv_level)}'.`, 'invalid_parameter');
  const version = di.ipmi_protocol_version === undefined || di.ipmi_protocol_version === null || di.ipmi_protocol_version === '' ? '2.0' : String(di.ipmi_protocol_version);
  if (version !== '2.0') throw new DriverError(`driver_info.ipmi_protocol_version '${version}' is not supported; only IPMI 2.0 (RMCP+) is.`, 'invalid_parameter');
  const bridging = di.ipmi_bridging === undefined || di.ipmi_bridging === null || di.ipmi_bridging === '' ? 'no' : String(di.ipmi_bridging);
  if (bridging !== 'no') throw new DriverError(`driver_info.ipmi_bridging '${bridging}' is not supported; only 'no' is.`, 'invalid_parameter');
  const timeoutS = di.ipmi_timeout === undefined || di.ipmi_timeout === null || di.ipmi_timeout === '' ? 5 : Number(di.ipmi_timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 600) throw new DriverError(`driver_info.ipmi_timeout must be a number of seconds from 0 to 600, got '${String(di.ipmi_timeout)}'.`, 'invalid_parameter');
  return {
    address,
    port: int(di.ipmi_port, 'ipmi_port', 623, 1, 65535)!,
    username,
    password,
    cipherSuite,
    privilege,
    forceBootDevice: bool(di.ipmi_force_boot_device, 'ipmi_force_boot_device', false),
    disableBootTimeout: bool(di.ipmi_disable_boot_timeout, 'ipmi_disable_boot_timeout', true),
    timeoutMs: Math.round(timeoutS * 1000),
  };
}

/** Cipher suites chosen by negotiation, per BMC. */
const negotiated = new Map<string, number>();

function where(info: IpmiDriverInfo): string { return `${info.address}:${info.port}`; }

function driverError(info: IpmiDriverInfo, what: string, e: unknown): DriverError {
  if (e instanceof DriverError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const text = `IPMI ${what} failed for BMC ${where(info)}: ${msg}`;
  if (e instanceof IpmiError && e.kind === 'timeout') return new DriverError(text, 'timeout');
  return new DriverError(text, 'bmc_error');
}

async function client(info: IpmiDriverInfo): Promise<IpmiClient> {
  const base = { host: info.address, port: info.port, username: info.username, password: info.password, privilege: info.privilege, timeoutMs: info.timeoutMs, retries: 3 };
  if (info.cipherSuite !== undefined) return ipmiSession({ ...base, cipherSuite: info.cipherSuite });
  const key = `${info.address}|${info.port}`;
  let suite = negotiated.get(key);
  if (suite === undefined) {
    let offered: number[] = [];
    try {
      offered = await ipmiSession({ ...base, cipherSuite: 3 }).getChannelCipherSuites();
    } catch (e) {
      // BMCs without Get Channel Cipher Suites: fall back to suite 3, as ipmitool does.
      if (!(e instanceof IpmiError) || e.kind !== 'completion') throw e;
    }
    suite = PREFERRED_SUITES.find((s) => offered.includes(s)) ?? 3;
    negotiated.set(key, suite);
  }
  return ipmiSession({ ...base, cipherSuite: suite });
}

async function withBmc<T>(task: Task, what: string, fn: (c: IpmiClient, info: IpmiDriverInfo) => Promise<T>): Promise<T> {
  const info = parseIpmiDriverInfo(task.node);
  try {
    return await fn(await client(info), info);
  } catch (e) {
    const err = driverError(info, what, e);
    task.log.warn('IPMI request failed', { node: task.node.uuid, bmc: where(info), op: what, error: err.message });
    throw err;
  }
}

/** Poll the power state until it is `want` or timeoutS passes. */
async function waitPower(task: Task, c: IpmiClient, info: IpmiDriverInfo, want: 'on' | 'off', timeoutS: number): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  let delay = 100;
  for (;;) {
    if ((await c.powerState()) === want) return;
    if (Date.now() >= deadline) throw new DriverError(`BMC ${where(info)}: the node did not reach power ${want} within ${timeoutS} s.`, 'timeout');
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), task.signal);
    delay = Math.min(delay * 2, 1000);
  }
}

const MACHINE_DEVICE: Record<BootDevice, { device: MachineBootDevice; selector?: number } | undefined> = {
  pxe: { device: 'pxe' }, disk: { device: 'disk' }, cdrom: { device: 'cdrom' }, bios: { device: 'bios' }, safe: { device: 'disk', selector: 0x3 }, wanboot: undefined,
};

async function writeBootDevice(task: Task, c: IpmiClient, info: IpmiDriverInfo, device: BootDevice, persistent: boolean): Promise<void> {
  const m = MACHINE_DEVICE[device];
  if (!m) throw new DriverError(`boot device '${device}' is not supported by the ipmi management interface.`, 'invalid_parameter');
  // Like Ironic: stop the BMC from clearing the flags 60 s after they are set.
  if (info.disableBootTimeout) await c.setBootOption(3, Buffer.from([0x08])).catch(() => undefined);
  const flags = encodeBootFlags({ valid: true, persistent, mode: task.node.boot_mode === 'uefi' ? 'uefi' : 'bios', device: m.device, selector: m.selector });
  await c.setBootOption(5, flags);
}

async function powerOn(task: Task, c: IpmiClient, info: IpmiDriverInfo, timeoutS: number): Promise<void> {
  const dii = task.node.driver_internal_info;
  if (info.forceBootDevice && typeof dii.persistent_boot_device === 'string') {
    await writeBootDevice(task, c, info, dii.persistent_boot_device as BootDevice, dii.is_next_boot_persistent !== false);
  }
  await c.powerOn();
  await waitPower(task, c, info, 'on', timeoutS);
}

async function validateBmc(task: Task): Promise<void> {
  const info = parseIpmiDriverInfo(task.node);
  try {
    const c = await client(info);
    await c.chassisStatus();
  } catch (e) {
    const err = driverError(info, 'validation (open a session and read the chassis status)', e);
    throw new DriverError(`${err.message} Check driver_info.ipmi_address, ipmi_port, ipmi_username, ipmi_password and ipmi_cipher_suite.`, err.code);
  }
}

export const ipmiPower: PowerInterface = {
  name: 'ipmi',
  properties: IPMI_PROPERTIES,
  validate: validateBmc,
  getPowerState(task): Promise<PowerState> {
    return withBmc(task, 'get power state', async (c) => ((await c.powerState()) === 'on' ? 'power on' : 'power off'));
  },
  setPowerState(task, target, timeoutS = 60) {
    return withBmc(task, `set power state '${target}'`, async (c, info) => {
      switch (target) {
        case 'power on': await powerOn(task, c, info, timeoutS); return;
        case 'power off': await c.powerOff(); await waitPower(task, c, info, 'off', timeoutS); return;
        case 'soft power off': await c.softPowerOff(); await waitPower(task, c, info, 'off', timeoutS); return;
        default: throw new DriverError(`power state '${String(target)}' is not supported.`, 'invalid_parameter');
      }
    });
  },
  reboot(task, soft = false, timeoutS = 60) {
    return withBmc(task, soft ? 'soft reboot' : 'reboot', async (c, info) => {
      if (soft) await c.softPowerOff(); else await c.powerOff();
      await waitPower(task, c, info, 'off', timeoutS);
      await powerOn(task, c, info, timeoutS);
    });
  },
  supportedPowerStates: () => ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'],
};

export const ipmiManagement: ManagementInterface = {
  name: 'ipmi',
  properties: IPMI_PROPERTIES,
  validate: validateBmc,
  supportedBootDevices: () => ['pxe', 'disk', 'cdrom', 'bios', 'safe'],
  setBootDevice(task, device, persistent) {
    return withBmc(task, `set boot device '${device}'`, async (c, info) => {
      await writeBootDevice(task, c, info, device, persistent);
      if (info.forceBootDevice) await task.update({ driver_internal_info: { persistent_boot_device: device, is_next_boot_persistent: persistent } });
    });
  },
  getBootDevice(task) {
    return withBmc(task, 'get boot device', async (c, info) => {
      const dii = task.node.driver_internal_info;
      if (info.forceBootDevice && typeof dii.persistent_boot_device === 'string') {
        return { boot_device: dii.persistent_boot_device as BootDevice, persistent: dii.is_next_boot_persistent !== false };
      }
      const f = await c.getBootFlags();
      if (!f.valid || f.device === 'none') return { boot_device: null, persistent: null };
      const dev: BootDevice = f.selector === 0x3 ? 'safe' : (f.device as BootDevice);
      return { boot_device: dev, persistent: f.persistent };
    });
  },
};

/** Forget negotiated cipher suites (tests). */
export function resetIpmiNegotiation(): void { negotiated.clear(); }

registerInterface('power', ipmiPower, ['ipmitool']);
registerInterface('management', ipmiManagement, ['ipmitool']);
