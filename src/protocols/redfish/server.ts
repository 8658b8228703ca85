/**
 * A Redfish virtual BMC: one HTTP(S) server serving many machines as
 * /redfish/v1/Systems/<name>, with a manager (virtual media) and a chassis per machine.
 * Enough of DMTF Redfish for Ironic/sushy-style clients: service root, sessions, systems
 * (power, reset, boot override with ETags), ethernet interfaces, virtual media.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { MachineBackend, MachineBootDevice, MachineBootOverride } from '../machine.js';
import { BOOT_ENABLED, BOOT_MODES, BOOT_TARGETS, errorBody, RESET_TYPES, type ResetType } from './common.js';

export interface RedfishServerOptions {
  machines: Map<string, MachineBackend>;
  username: string;
  password: string;
  tls?: { key: string | Buffer; cert: string | Buffer };
}

interface Session { id: string; tokenHash: string; user: string; lastUsed: number }
interface Media { image: string | null; inserted: boolean; writeProtected: boolean; connectedVia: string }

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) { super(message); }
}

const V1 = '/redfish/v1';
const MAX_BODY = 1024 * 1024;
/** Idle seconds after which a session expires (advertised as SessionService.SessionTimeout). */
const SESSION_TIMEOUT_S = 1800;
/** Sessions kept at most; the least recently used goes first. */
const MAX_SESSIONS = 1024;

const TARGET_OF: Record<MachineBootDevice, string> = { none: 'None', pxe: 'Pxe', disk: 'Hdd', cdrom: 'Cd', bios: 'BiosSetup' };
const DEVICE_OF: Record<string, MachineBootDevice> = { None: 'none', Pxe: 'pxe', Hdd: 'disk', Cd: 'cdrom', BiosSetup: 'bios' };

function sameSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

export class RedfishServer {
  private readonly machines: Map<string, MachineBackend>;
  private readonly username: string;
  private readonly password: string;
  private readonly server: http.Server | https.Server;
  /** Sessions by id, least recently used first. */
  private readonly sessions = new Map<string, Session>();
  /** Session ids by the sha256 of their token (tokens themselves are not kept). */
  private readonly byToken = new Map<string, string>();
  private readonly media = new Map<string, Media>();
  private readonly serviceUuid = randomUUIDish();

  constructor(opts: RedfishServerOptions) {
    this.machines = opts.machines;
    this.username = opts.username;
    this.password = opts.password;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => { void this.handle(req, res); };
    this.server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : http.createServer(handler);
    this.server.keepAliveTimeout = 30_000;
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) { resolve(); return; }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- plumbing ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const body = await readBody(req);
      const url = new URL(req.url ?? '/', 'http://bmc');
      let path = url.pathname.replace(/\/+$/, '');
      if (path === '') path = '/';
      const out = await this.route(req, (req.method ?? 'GET').toUpperCase(), path, body);
      this.send(req, res, out.status, out.body, out.headers);
    } catch (e) {
      if (e instanceof HttpError) this.send(req, res, e.status, errorBody(e.code, e.message), e.headers);
      else this.send(req, res, 500, errorBody('InternalError', `internal error: ${(e as Error).message}`));
    }
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = body === undefined ? '' : JSON.stringify(body);
    const h: Record<string, string | number> = { 'OData-Version': '4.0', ...headers };
    if (body !== undefined) { h['Content-Type'] = 'application/json; charset=utf-8'; }
    h['Content-Length'] = Buffer.byteLength(text);
    if (/\bclose\b/i.test(String(req.headers.connection ?? ''))) h.Connection = 'close';
    res.writeHead(status, h);
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  private authenticate(req: http.IncomingMessage): string {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && token) {
      const hash = createHash('sha256').update(token).digest('hex');
      const id = this.byToken.get(hash);
      const s = id === undefined ? undefined : this.sessions.get(id);
      if (s && Date.now() - s.lastUsed <= SESSION_TIMEOUT_S * 1000) {
        s.lastUsed = Date.now();
        this.sessions.delete(s.id);
        this.sessions.set(s.id, s);
        return s.user;
      }
      if (s) this.dropSession(s.id);
      throw new HttpError(401, 'NoValidSession', 'The session token is not valid (expired or deleted); log in again.', { 'WWW-Authenticate': 'Basic realm="Redfish"' });
    }
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && /^basic /i.test(auth)) {
      const dec = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      const user = i < 0 ? dec : dec.slice(0, i);
      const pass = i < 0 ? '' : dec.slice(i + 1);
      const userOk = sameSecret(user, this.username);
      const passOk = sameSecret(pass, this.password);
      if (userOk && passOk) return user;
      throw new HttpError(401, 'InsufficientPrivilege', 'Wrong user name or password.', { 'WWW-Authenticate': 'Basic realm="Redfish"' });
    }
    throw new HttpError(401, 'NoValidSession', 'Authentication required: a session token (X-Auth-Token) or HTTP Basic credentials.', { 'WWW-Authenticate': 'Basic realm="Redfish"' });
  }

  private dropSession(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    this.byToken.delete(s.tokenHash);
  }

  private machine(name: string): MachineBackend {
    const m = this.machines.get(decodeURIComponent(name));
    if (!m) throw new HttpError(404, 'ResourceMissingAtURI', `There is no system '${decodeURIComponent(name)}' on this BMC.`);
    return m;
  }

  private mediaOf(name: string): Media {
    let m = this.media.get(name);
    if (!m) { m = { image: null, inserted: false, writeProtected: true, connectedVia: 'NotConnected' }; this.media.set(name, m); }
    return m;
  }

  // ---- routes ----

  private async route(req: http.IncomingMessage, method: string, path: string, body: unknown): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    if (path === '/redfish') return get(method, { v1: `${V1}/` });
    if (path === V1) return get(method, this.serviceRoot());
    if (path === `${V1}/odata`) return get(method, { '@odata.context': '/redfish/v1/$metadata', value: [{ name: 'Service', kind: 'Singleton', url: '/redfish/v1/' }, { name: 'Systems', kind: 'Singleton', url: '/redfish/v1/Systems' }] });

    if (path === `${V1}/SessionService/Sessions` && method === 'POST') return this.login(body);

    const user = this.authenticate(req);
    void user;
    const parts = path.slice(V1.length + 1).split('/');
    if (!path.startsWith(`${V1}/`)) throw notFound(path);
    const [top, id, sub, subId, ...rest] = parts;

    switch (top) {
      case 'SessionService':
        if (id === undefined) return get(method, { '@odata.id': `${V1}/SessionService`, '@odata.type': '#SessionService.v1_1_8.SessionService', Id: 'SessionService', Name: 'Session Service', ServiceEnabled: true, SessionTimeout: SESSION_TIMEOUT_S, Sessions: { '@odata.id': `${V1}/SessionService/Sessions` } });
        if (id === 'Sessions' && sub === undefined) return get(method, collection(`${V1}/SessionService/Sessions`, 'SessionCollection', 'Sessions', [...this.sessions.keys()].map((k) => `${V1}/SessionService/Sessions/${k}`)));
        if (id === 'Sessions' && sub !== undefined && subId === undefined) {
          const s = this.sessions.get(sub);
          if (!s) throw notFound(path);
          if (method === 'DELETE') { this.dropSession(sub); return { status: 204 }; }
          return get(method, { '@odata.id': path, '@odata.type': '#Session.v1_3_0.Session', Id: s.id, Name: 'User Session', UserName: s.user });
        }
        throw notFound(path);
      case 'Systems':
        if (id === undefined) return get(method, collection(`${V1}/Systems`, 'ComputerSystemCollection', 'Computer System Collection', [...this.machines.keys()].map((n) => `${V1}/Systems/${encodeURIComponent(n)}`)));
        return this.systems(req, method, path, this.machine(id), sub, subId, rest, body);
      case 'Managers':
        if (id === undefined) return get(method, collection(`${V1}/Managers`, 'ManagerCollection', 'Manager Collection', [...this.machines.keys()].map((n) => `${V1}/Managers/${encodeURIComponent(n)}`)));
        return this.managers(method, path, this.machine(id), sub, subId, rest, body);
      case 'Chassis':
        if (id === undefined) return get(method, collection(`${V1}/Chassis`, 'ChassisCollection', 'Chassis Collection', [...this.machines.keys()].map((n) => `${V1}/Chassis/${encodeURIComponent(n)}`)));
        if (sub !== undefined) throw notFound(path);
        return this.chassis(method, this.machine(id));
      default:
        throw notFound(path);
    }
  }

  private serviceRoot(): unknown {
    return {
      '@odata.id': `${V1}/`,
      '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
      Id: 'RootService',
      Name: 'Root Service',
      RedfishVersion: '1.8.0',
      UUID: this.serviceUuid,
      Systems: { '@odata.id': `${V1}/Systems` },
      Managers: { '@odata.id': `${V1}/Managers` },
      Chassis: { '@odata.id': `${V1}/Chassis` },
      SessionService: { '@odata.id': `${V1}/SessionService` },
      Links: { Sessions: { '@odata.id': `${V1}/SessionService/Sessions` } },
    };
  }

  private login(body: unknown): { status: number; body: unknown; headers: Record<string, string> } {
    const b = body as Record<string, unknown> | undefined;
    if (!b || typeof b !== 'object' || typeof b.UserName !== 'string' || typeof b.Password !== 'string') {
      throw new HttpError(400, 'PropertyMissing', 'A session needs UserName and Password (strings) in the request body.');
    }
    const userOk = sameSecret(b.UserName, this.username);
    const passOk = sameSecret(b.Password, this.password);
    if (!userOk || !passOk) {
      throw new HttpError(401, 'InsufficientPrivilege', 'Wrong user name or password.');
    }
    const id = randomBytes(8).toString('hex');
    const token = randomBytes(24).toString('hex');
    const tokenHash = createHash('sha256').update(token).digest('hex');
    while (this.sessions.size >= MAX_SESSIONS) this.dropSession(this.sessions.keys().next().value!);
    this.sessions.set(id, { id, tokenHash, user: b.UserName, lastUsed: Date.now() });
    this.byToken.set(tokenHash, id);
    const loc = `${V1}/SessionService/Sessions/${id}`;
    return { status: 201, body: { '@odata.id': loc, '@odata.type': '#Session.v1_3_0.Session', Id: id, Name: 'User Session', UserName: b.UserName }, headers: { 'X-Auth-Token': token, Location: loc } };
  }

  private async systemResource(m: MachineBackend): Promise<Record<string, unknown>> {
    const base = `${V1}/Systems/${encodeURIComponent(m.name)}`;
    const power = await m.powerState();
    const o = await m.bootOverride();
    return {
      '@odata.id': base,
      '@odata.type': '#ComputerSystem.v1_10_0.ComputerSystem',
      Id: m.name,
      Name: m.name,
      UUID: m.uuid,
      SystemType: 'Physical',
      Manufacturer: 'ooo',
      Model: 'virtual machine',
      PowerState: power === 'on' ? 'On' : 'Off',
      Status: { State: 'Enabled', Health: 'OK' },
      Boot: {
        BootSourceOverrideTarget: TARGET_OF[o.device],
        'BootSourceOverrideTarget@Redfish.AllowableValues': [...BOOT_TARGETS],
        BootSourceOverrideEnabled: o.device === 'none' ? 'Disabled' : o.persistent ? 'Continuous' : 'Once',
        'BootSourceOverrideEnabled@Redfish.AllowableValues': [...BOOT_ENABLED],
        BootSourceOverrideMode: o.mode === 'uefi' ? 'UEFI' : 'Legacy',
        'BootSourceOverrideMode@Redfish.AllowableValues': [...BOOT_MODES],
      },
      EthernetInterfaces: { '@odata.id': `${base}/EthernetInterfaces` },
      Links: { Chassis: [{ '@odata.id': `${V1}/Chassis/${encodeURIComponent(m.name)}` }], ManagedBy: [{ '@odata.id': `${V1}/Managers/${encodeURIComponent(m.name)}` }] },
      Actions: {
        '#ComputerSystem.Reset': { target: `${base}/Actions/ComputerSystem.Reset`, 'ResetType@Redfish.AllowableValues': [...RESET_TYPES] },
      },
    };
  }

  private async systems(req: http.IncomingMessage, method: string, path: string, m: MachineBackend, sub: string | undefined, subId: string | undefined, rest: string[], body: unknown): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    const base = `${V1}/Systems/${encodeURIComponent(m.name)}`;
    if (sub === undefined) {
      const current = await this.systemResource(m);
      const etag = etagOf(current);
      if (method === 'GET' || method === 'HEAD') return { status: 200, body: current, headers: { ETag: etag } };
      if (method !== 'PATCH') throw notAllowed(method, path);
      const ifMatch = req.headers['if-match'];
      if (typeof ifMatch === 'string' && ifMatch.trim() !== '*' && !ifMatch.split(',').map((s) => s.trim().replace(/^W\//, '')).includes(etag.replace(/^W\//, ''))) {
        throw new HttpError(412, 'PreconditionFailed', `If-Match ${ifMatch} does not match the current ETag of ${base}; read the resource again.`);
      }
      await this.patchSystem(m, body);
      const after = await this.systemResource(m);
      return { status: 200, body: after, headers: { ETag: etagOf(after) } };
    }
    if (sub === 'Actions' && subId === 'ComputerSystem.Reset' && rest.length === 0) {
      if (method !== 'POST') throw notAllowed(method, path);
      const t = (body as Record<string, unknown> | undefined)?.ResetType;
      if (typeof t !== 'string') throw new HttpError(400, 'ActionParameterMissing', 'ComputerSystem.Reset needs a ResetType.');
      if (!(RESET_TYPES as readonly string[]).includes(t)) throw new HttpError(400, 'ActionParameterValueNotInList', `ResetType '${t}' is not one of ${RESET_TYPES.join(', ')}.`);
      await reset(m, t as ResetType);
      return { status: 204 };
    }
    if (sub === 'EthernetInterfaces') {
      if (subId === undefined) return get(method, collection(`${base}/EthernetInterfaces`, 'EthernetInterfaceCollection', 'Ethernet Interface Collection', m.macs.map((_, i) => `${base}/EthernetInterfaces/${i}`)));
      const i = Number(subId);
      if (rest.length > 0 || !/^\d+$/.test(subId) || i >= m.macs.length) throw notFound(path);
      return get(method, { '@odata.id': `${base}/EthernetInterfaces/${i}`, '@odata.type': '#EthernetInterface.v1_4_0.EthernetInterface', Id: String(i), Name: `NIC ${i}`, MACAddress: m.macs[i], PermanentMACAddress: m.macs[i], Status: { State: 'Enabled', Health: 'OK' } });
    }
    throw notFound(path);
  }

  private async patchSystem(m: MachineBackend, body: unknown): Promise<void> {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'MalformedJSON', 'PATCH needs a JSON object.');
    const b = body as Record<string, unknown>;
    for (const k of Object.keys(b)) if (k !== 'Boot') throw new HttpError(400, 'PropertyNotWritable', `Property ${k} is not writable on this system (only Boot is).`);
    const boot = b.Boot;
    if (boot === undefined) return;
    if (!boot || typeof boot !== 'object' || Array.isArray(boot)) throw new HttpError(400, 'PropertyValueTypeError', 'Boot must be an object.');
    const bo = boot as Record<string, unknown>;
    const cur = await m.bootOverride();
    const next: MachineBootOverride = { ...cur };
    let enabled: string = cur.device === 'none' ? 'Disabled' : cur.persistent ? 'Continuous' : 'Once';
    for (const [k, v] of Object.entries(bo)) {
      if (k === 'BootSourceOverrideTarget') {
        if (typeof v !== 'string' || !(v in DEVICE_OF)) throw new HttpError(400, 'PropertyValueNotInList', `BootSourceOverrideTarget '${String(v)}' is not one of ${BOOT_TARGETS.join(', ')}.`);
        next.device = DEVICE_OF[v]!;
      } else if (k === 'BootSourceOverrideEnabled') {
        if (typeof v !== 'string' || !(BOOT_ENABLED as readonly string[]).includes(v)) throw new HttpError(400, 'PropertyValueNotInList', `BootSourceOverrideEnabled '${String(v)}' is not one of ${BOOT_ENABLED.join(', ')}.`);
        enabled = v;
      } else if (k === 'BootSourceOverrideMode') {
        if (typeof v !== 'string' || !(BOOT_MODES as readonly string[]).includes(v)) throw new HttpError(400, 'PropertyValueNotInList', `BootSourceOverrideMode '${String(v)}' is not one of ${BOOT_MODES.join(', ')}.`);
        next.mode = v === 'UEFI' ? 'uefi' : 'bios';
      } else {
        throw new HttpError(400, 'PropertyNotWritable', `Property Boot.${k} is not writable on this system.`);
      }
    }
    if (enabled === 'Disabled') next.device = 'none';
    else next.persistent = enabled === 'Continuous';
    if (next.device === 'none' && 'BootSourceOverrideEnabled' in bo && enabled !== 'Disabled' && !('BootSourceOverrideTarget' in bo)) {
      throw new HttpError(400, 'PropertyValueConflict', 'BootSourceOverrideEnabled needs a BootSourceOverrideTarget: none is set.');
    }
    await m.setBootOverride(next);
  }

  private async managers(method: string, path: string, m: MachineBackend, sub: string | undefined, subId: string | undefined, rest: string[], body: unknown): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    const base = `${V1}/Managers/${encodeURIComponent(m.name)}`;
    if (sub === undefined) {
      return get(method, {
        '@odata.id': base, '@odata.type': '#Manager.v1_5_0.Manager', Id: m.name, Name: `BMC of ${m.name}`, ManagerType: 'BMC', UUID: m.uuid,
        Status: { State: 'Enabled', Health: 'OK' }, FirmwareVersion: '1.0.0',
        VirtualMedia: { '@odata.id': `${base}/VirtualMedia` },
        Links: { ManagerForServers: [{ '@odata.id': `${V1}/Systems/${encodeURIComponent(m.name)}` }], ManagerForChassis: [{ '@odata.id': `${V1}/Chassis/${encodeURIComponent(m.name)}` }] },
      });
    }
    if (sub !== 'VirtualMedia') throw notFound(path);
    if (subId === undefined) return get(method, collection(`${base}/VirtualMedia`, 'VirtualMediaCollection', 'Virtual Media Services', [`${base}/VirtualMedia/Cd`]));
    if (subId !== 'Cd') throw notFound(path);
    const media = this.mediaOf(m.name);
    const vm = `${base}/VirtualMedia/Cd`;
    if (rest.length === 0) {
      return get(method, {
        '@odata.id': vm, '@odata.type': '#VirtualMedia.v1_3_0.VirtualMedia', Id: 'Cd', Name: 'Virtual CD', MediaTypes: ['CD', 'DVD'],
        Image: media.image, ImageName: media.image ? media.image.split('/').pop() : null, Inserted: media.inserted, WriteProtected: media.writeProtected,
        ConnectedVia: media.connectedVia,
        Actions: {
          '#VirtualMedia.InsertMedia': { target: `${vm}/Actions/VirtualMedia.InsertMedia` },
          '#VirtualMedia.EjectMedia': { target: `${vm}/Actions/VirtualMedia.EjectMedia` },
        },
      });
    }
    if (rest.length === 2 && rest[0] === 'Actions') {
      if (method !== 'POST') throw notAllowed(method, path);
      if (rest[1] === 'VirtualMedia.InsertMedia') {
        const b = (body ?? {}) as Record<string, unknown>;
        if (typeof b.Image !== 'string' || !b.Image) throw new HttpError(400, 'ActionParameterMissing', 'VirtualMedia.InsertMedia needs an Image (URL).');
        if (media.inserted) throw new HttpError(400, 'ActionNotSupported', 'A medium is already inserted; eject it first.');
        media.image = b.Image;
        media.inserted = b.Inserted === undefined ? true : b.Inserted === true;
        media.writeProtected = b.WriteProtected === undefined ? true : b.WriteProtected === true;
        media.connectedVia = 'URI';
        return { status: 204 };
      }
      if (rest[1] === 'VirtualMedia.EjectMedia') {
        media.image = null; media.inserted = false; media.connectedVia = 'NotConnected';
        return { status: 204 };
      }
    }
    throw notFound(path);
  }

  private async chassis(method: string, m: MachineBackend): Promise<{ status: number; body?: unknown }> {
    const power = await m.powerState();
    return get(method, {
      '@odata.id': `${V1}/Chassis/${encodeURIComponent(m.name)}`, '@odata.type': '#Chassis.v1_8_0.Chassis', Id: m.name, Name: `Chassis of ${m.name}`,
      ChassisType: 'RackMount', PowerState: power === 'on' ? 'On' : 'Off', Status: { State: 'Enabled', Health: 'OK' },
      Links: { ComputerSystems: [{ '@odata.id': `${V1}/Systems/${encodeURIComponent(m.name)}` }], ManagedBy: [{ '@odata.id': `${V1}/Managers/${encodeURIComponent(m.name)}` }] },
    });
  }
}

async function reset(m: MachineBackend, t: ResetType): Promise<void> {
  switch (t) {
    case 'On': await m.powerOn(); return;
    case 'ForceOff': await m.powerOff(); return;
    case 'GracefulShutdown': await m.softPowerOff(); return;
    case 'ForceRestart': case 'GracefulRestart':
      if ((await m.powerState()) === 'on') await m.reset(); else await m.powerOn();
      return;
    case 'PowerCycle': await m.powerCycle(); return;
    case 'PushPowerButton':
      if ((await m.powerState()) === 'on') await m.softPowerOff(); else await m.powerOn();
      return;
    case 'Nmi': return;
  }
}

function get(method: string, body: unknown): { status: number; body: unknown } {
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'OperationNotAllowed', `${method} is not allowed on this resource.`, { Allow: 'GET, HEAD' });
  return { status: 200, body };
}

function notFound(path: string): HttpError {
  return new HttpError(404, 'ResourceMissingAtURI', `The resource at ${path} was not found.`);
}

function notAllowed(method: string, path: string): HttpError {
  return new HttpError(405, 'OperationNotAllowed', `${method} is not allowed on ${path}.`);
}

function collection(id: string, type: string, name: string, members: string[]): unknown {
  return { '@odata.id': id, '@odata.type': `#${type}.${type}`, Name: name, Members: members.map((m) => ({ '@odata.id': m })), 'Members@odata.count': members.length };
}

function etagOf(o: unknown): string {
  return `"${createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 20)}"`;
}

function randomUUIDish(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY && !failed) { failed = true; reject(new HttpError(413, 'GeneralError', 'Request body too large.')); }
      if (!failed) chunks.push(c);
    });
    req.on('error', (e) => { if (!failed) { failed = true; reject(e); } });
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') { resolve(undefined); return; }
      try { resolve(JSON.parse(text)); } catch { reject(new HttpError(400, 'MalformedJSON', 'The request body is not valid JSON.')); }
    });
  });
}
