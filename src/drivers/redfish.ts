/**
 * redfish: power and management through the node's BMC over Redfish, with our own client
 * (src/protocols/redfish). driver_info fields follow Ironic's redfish driver. One client (one
 * keep-alive connection pool and one session) is shared per BMC address, user and TLS setting.
 */
import { sleep } from './wait.js';
import type { BootDevice, DriverNode, ManagementInterface, PowerInterface, PowerState, PropertySpec, Task } from './interfaces.js';
import { DriverError } from './interfaces.js';
import { registerInterface } from './registry.js';
import { RedfishClient, RedfishError } from '../protocols/redfish/client.js';
import type { ResetType } from '../protocols/redfish/common.js';

export const REDFISH_PROPERTIES: Record<string, PropertySpec> = {
  redfish_address: { description: 'The BMC: a host, host:port or URL (https by default). Required.', required: true },
  redfish_system_id: { description: 'Path of the system resource, e.g. /redfish/v1/Systems/1. Required when the BMC has more than one system.' },
  redfish_username: { description: 'BMC user name. Optional.' },
  redfish_password: { description: 'BMC password. Optional.', secret: true },
  redfish_verify_ca: { description: "Verify the BMC's TLS certificate: true (default), false, or the path of a CA bundle." },
  redfish_auth_type: { description: 'auto (default: a session, Basic when sessions are not offered), session or basic.' },
  redfish_timeout: { description: 'Seconds one BMC request may take, the retry included. Optional, default 10.' },
};

export interface RedfishDriverInfo {
  address: string;
  systemId?: string;
  username?: string;
  password?: string;
  verify: boolean | string;
  authType: 'auto' | 'session' | 'basic';
  timeoutMs: number;
}

function blank(v: unknown): boolean { return v === undefined || v === null || v === ''; }

/** Read and check the node's Redfish driver_info. Throws DriverError naming the bad field. */
export function parseRedfishDriverInfo(node: Pick<DriverNode, 'driver_info'>): RedfishDriverInfo {
  const di = node.driver_info;
  const raw = di.redfish_address;
  if (blank(raw)) throw new DriverError('driver_info.redfish_address is required (the BMC: host, host:port or URL).', 'missing_parameter');
  if (typeof raw !== 'string' || /\s/.test(raw)) throw new DriverError(`driver_info.redfish_address must be a host, host:port or URL, got '${String(raw)}'.`, 'invalid_parameter');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try { url = new URL(withScheme); } catch { throw new DriverError(`driver_info.redfish_address '${raw}' is not a valid host, host:port or URL.`, 'invalid_parameter'); }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DriverError(`driver_info.redfish_address '${raw}' must use http or https.`, 'invalid_parameter');
  if (!url.hostname) throw new DriverError(`driver_info.redfish_address '${raw}' has no host.`, 'invalid_parameter');

  let systemId: string | undefined;
  if (!blank(di.redfish_system_id)) {
    if (typeof di.redfish_system_id !== 'string' || /\s/.test(di.redfish_system_id)) throw new DriverError(`driver_info.redfish_system_id must be a resource path like /redfish/v1/Systems/1, got '${String(di.redfish_system_id)}'.`, 'invalid_parameter');
    systemId = di.redfish_system_id;
  }
  let verify: boolean | string = true;
  const v = di.redfish_verify_ca;
  if (!blank(v)) {
    if (typeof v === 'boolean') verify = v;
    else if (typeof v === 'string' && ['true', 'yes', '1', 'on'].includes(v.toLowerCase())) verify = true;
    else if (typeof v === 'string' && ['false', 'no', '0', 'off'].includes(v.toLowerCase())) verify = false;
    else if (typeof v === 'string' && v.startsWith('/')) verify = v;
    else throw new DriverError(`driver_info.redfish_verify_ca must be true, false or the absolute path of a CA bundle, got '${String(v)}'.`, 'invalid_parameter');
  }
  const at = blank(di.redfish_auth_type) ? 'auto' : String(di.redfish_auth_type).toLowerCase();
  if (at !== 'auto' && at !== 'session' && at !== 'basic') throw new DriverError(`driver_info.redfish_auth_type must be auto, session or basic, got '${String(di.redfish_auth_type)}'.`, 'invalid_parameter');
  const timeoutS = blank(di.redfish_timeout) ? 10 : Number(di.redfish_timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 600) throw new DriverError(`driver_info.redfish_timeout must be a number of seconds from 0 to 600, got '${String(di.redfish_timeout)}'.`, 'invalid_parameter');
  return {
    address: `${url.protocol}//${url.host}`,
    systemId,
    username: blank(di.redfish_username) ? undefined : String(di.redfish_username),
    password: blank(di.redfish_password) ? undefined : String(di.redfish_password),
    verify,
    authType: at,
    timeoutMs: Math.round(timeoutS * 1000),
  };
}

const clients = new Map<string, RedfishClient>();

function clientFor(info: RedfishDriverInfo): RedfishClient {
  // The password is part of the key (so a changed password gets a new session) but is never shown.
  const key = JSON.stringify([info.address, info.username ?? '', info.password ?? '', info.verify, info.authType, info.timeoutMs]);
  let c = clients.get(key);
  if (!c) {
    try {
      c = new RedfishClient({ address: info.address, username: info.username, password: info.password, verify: info.verify, timeoutMs: info.timeoutMs, authType: info.authType });
    } catch (e) {
      throw new DriverError(`driver_info.redfish_address / redfish_verify_ca: ${(e as Error).message}`, 'invalid_parameter');
    }
    clients.set(key, c);
  }
  return c;
}

/** Close every shared client (tests, shutdown). */
export async function closeRedfishClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.all(all.map((c) => c.close().catch(() => undefined)));
}

function driverError(info: RedfishDriverInfo, what: string, e: unknown): DriverError {
  if (e instanceof DriverError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const text = `Redfish ${what} failed for BMC ${info.address}${info.systemId ? ` (system ${info.systemId})` : ''}: ${msg}`;
  if (e instanceof RedfishError && e.kind === 'timeout') return new DriverError(text, 'timeout');
  if (e instanceof RedfishError && e.kind === 'bad_request' && /Allowable|not one of|does not allow/.test(msg)) return new DriverError(text, 'unsupported');
  return new DriverError(text, 'bmc_error');
}

interface Ctx { c: RedfishClient; info: RedfishDriverInfo; system: string }

async function withBmc<T>(task: Task, what: string, fn: (x: Ctx) => Promise<T>): Promise<T> {
  const info = parseRedfishDriverInfo(task.node);
  try {
    const c = clientFor(info);
    const system = await c.systemPath(info.systemId);
    return await fn({ c, info, system });
  } catch (e) {
    const err = driverError(info, what, e);
    task.log.warn('Redfish request failed', { node: task.node.uuid, bmc: info.address, op: what, error: err.message });
    throw err;
  }
}

function mapPower(s: string | null): PowerState {
  if (s === 'On' || s === 'PoweringOn') return 'power on';
  if (s === 'Off' || s === 'PoweringOff') return 'power off';
  return null;
}

/** Poll until the system reports exactly On / Off, or timeoutS passes. */
async function waitPower(task: Task, x: Ctx, want: 'On' | 'Off', timeoutS: number): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  let delay = 100;
  for (;;) {
    if ((await x.c.powerState(x.system)) === want) return;
    if (Date.now() >= deadline) throw new DriverError(`BMC ${x.info.address}: system ${x.system} did not reach power ${want} within ${timeoutS} s.`, 'timeout');
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), task.signal);
    delay = Math.min(delay * 2, 1000);
  }
}

async function resetAndWait(task: Task, x: Ctx, type: ResetType, want: 'On' | 'Off', timeoutS: number): Promise<void> {
  await x.c.reset(type, x.system);
  await waitPower(task, x, want, timeoutS);
}

async function validateBmc(task: Task): Promise<void> {
  const info = parseRedfishDriverInfo(task.node);
  try {
    const c = clientFor(info);
    const path = await c.systemPath(info.systemId);
    await c.system(path);
  } catch (e) {
    const err = driverError(info, 'validation (read the system)', e);
    throw new DriverError(`${err.message} Check driver_info.redfish_address, redfish_system_id, redfish_username, redfish_password and redfish_verify_ca.`, err.code);
  }
}

export const redfishPower: PowerInterface = {
  name: 'redfish',
  properties: REDFISH_PROPERTIES,
  validate: validateBmc,
  getPowerState(task) {
    return withBmc(task, 'get power state', async (x) => mapPower(await x.c.powerState(x.system)));
  },
  setPowerState(task, target, timeoutS = 60) {
    return withBmc(task, `set power state '${target}'`, async (x) => {
      switch (target) {
        case 'power on':
          if ((await x.c.powerState(x.system)) === 'On') return;
          await resetAndWait(task, x, 'On', 'On', timeoutS); return;
        case 'power off': await resetAndWait(task, x, 'ForceOff', 'Off', timeoutS); return;
        case 'soft power off': await resetAndWait(task, x, 'GracefulShutdown', 'Off', timeoutS); return;
        default: throw new DriverError(`power state '${String(target)}' is not supported.`, 'invalid_parameter');
      }
    });
  },
  reboot(task, soft = false, timeoutS = 60) {
    return withBmc(task, soft ? 'soft reboot' : 'reboot', async (x) => {
      const on = (await x.c.powerState(x.system)) === 'On';
      if (!on) { await resetAndWait(task, x, 'On', 'On', timeoutS); return; }
      if (soft) {
        await resetAndWait(task, x, 'GracefulShutdown', 'Off', timeoutS);
        await resetAndWait(task, x, 'On', 'On', timeoutS);
        return;
      }
      await resetAndWait(task, x, 'ForceRestart', 'On', timeoutS);
    });
  },
  supportedPowerStates: () => ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'],
};

const TARGET: Partial<Record<BootDevice, string>> = { pxe: 'Pxe', disk: 'Hdd', cdrom: 'Cd', bios: 'BiosSetup' };
const DEVICE: Record<string, BootDevice> = { Pxe: 'pxe', Hdd: 'disk', Cd: 'cdrom', BiosSetup: 'bios' };

export const redfishManagement: ManagementInterface = {
  name: 'redfish',
  properties: REDFISH_PROPERTIES,
  validate: validateBmc,
  supportedBootDevices: () => ['pxe', 'disk', 'cdrom', 'bios'],
  setBootDevice(task, device, persistent) {
    const target = TARGET[device];
    if (!target) return Promise.reject(new DriverError(`boot device '${device}' is not supported by the redfish management interface (use pxe, disk, cdrom or bios).`, 'invalid_parameter'));
    return withBmc(task, `set boot device '${device}'`, async (x) => {
      const attempt = async () => {
        const s = await x.c.system(x.system);
        if (s.boot.allowedTargets && !s.boot.allowedTargets.includes(target)) {
          throw new DriverError(`BMC ${x.info.address}: system ${x.system} does not offer boot target ${target} (it offers ${s.boot.allowedTargets.join(', ')}).`, 'unsupported');
        }
        const mode = task.node.boot_mode === 'uefi' ? 'UEFI' : task.node.boot_mode === 'bios' ? 'Legacy' : undefined;
        await x.c.setBoot({ target, enabled: persistent ? 'Continuous' : 'Once', ...(mode && s.boot.BootSourceOverrideMode !== undefined ? { mode } : {}) }, { id: x.system, etag: s.etag });
      };
      try {
        await attempt();
      } catch (e) {
        // The system changed between the read and the PATCH (ETag mismatch): read it again, once.
        if (!(e instanceof RedfishError) || e.kind !== 'precondition') throw e;
        await attempt();
      }
    });
  },
  getBootDevice(task) {
    return withBmc(task, 'get boot device', async (x) => {
      const s = await x.c.system(x.system);
      const t = s.boot.BootSourceOverrideTarget;
      const en = s.boot.BootSourceOverrideEnabled;
      if (!t || t === 'None' || en === 'Disabled' || !(t in DEVICE)) return { boot_device: null, persistent: null };
      return { boot_device: DEVICE[t]!, persistent: en === 'Continuous' };
    });
  },
};

registerInterface('power', redfishPower);
registerInterface('management', redfishManagement);
