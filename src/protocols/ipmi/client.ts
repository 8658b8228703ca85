/**
 * IPMI v2.0 / RMCP+ client over UDP (node:dgram + node:crypto).
 *
 * One IpmiClient holds at most one session with one BMC and runs one request at a time (requests
 * queue): BMCs allow few sessions. The session opens on the first request, is reused, kept alive
 * while idle and re-opened when the BMC has forgotten it. Each request is retried with backoff
 * inside a total budget of timeoutMs. ipmiSession() shares clients per (host, port, user).
 */
import { createSocket, type Socket } from 'node:dgram';
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CIPHER_SUITES, COMPLETION_CODES, AUTH_ALG_IDS, CONF_ALG_IDS, INTEGRITY_ALG_IDS, NETFN_APP, NETFN_CHASSIS,
  PAYLOAD_IPMI, PAYLOAD_OPEN_SESSION_REQ, PAYLOAD_OPEN_SESSION_RSP, PAYLOAD_RAKP1, PAYLOAD_RAKP2, PAYLOAD_RAKP3, PAYLOAD_RAKP4,
  PRIV_ADMIN, RAKP_STATUS, decodeOpenSessionResponse, decodePacket, decodeRakp2, decodeRakp34, decodeResponse,
  deriveKeys, encodeAsfPing, encodeOpenSessionRequest, encodeRakp1, encodeRakp34, encodeRequest, encodeV15, encodeV20,
  openV20, random, randomSessionId, rakp2Input, rakp3Input, rakp4Input, rakp4IcvLength, rakpHmac,
  type CipherSuite, type IpmiResponse, type Packet, type SessionSecurity,
} from './codec.js';
import { CHASSIS_CONTROL, CMD, decodeBootFlags, decodeChassisStatus, decodeDeviceId, encodeBootFlags, type BootFlags, type ChassisControl, type ChassisStatus, type DeviceId } from './commands.js';
import type { MachineBootDevice } from '../machine.js';

export type IpmiErrorKind =
  /** No (valid) answer within the time budget. */
  | 'timeout'
  /** Wrong user name or password, or privilege refused. */
  | 'auth'
  /** The BMC does not offer the cipher suite asked for. */
  | 'unsupported_cipher'
  /** The BMC answered a command with a non-zero completion code. */
  | 'completion'
  /** Session setup refused for another reason, or an answer we cannot use. */
  | 'protocol'
  /** The client was closed. */
  | 'closed';

export class IpmiError extends Error {
  constructor(message: string, readonly kind: IpmiErrorKind, readonly detail: { rakpStatus?: number; completionCode?: number } = {}) {
    super(message);
    this.name = 'IpmiError';
  }
}

export interface IpmiClientOptions {
  host: string;
  /** UDP port (default 623). */
  port?: number;
  username: string;
  password: string;
  /** RMCP+ cipher suite (default 3). */
  cipherSuite?: number;
  /** Privilege level to ask for: 2 user, 3 operator, 4 administrator (default). */
  privilege?: number;
  /** Total time one request may take, retries included (default 3000 ms). */
  timeoutMs?: number;
  /** Retransmissions after the first attempt (default 2); each waits twice as long as the one before. */
  retries?: number;
  /** Send a harmless request when the session has been idle this long (default 20000; 0 = never). */
  keepaliveMs?: number;
  /** Close the session and the client after this long without a caller's request (default 0 = never; pooled clients: 300000). */
  idleCloseMs?: number;
}

interface Session {
  bmcSid: number;
  consoleSid: number;
  sec: SessionSecurity;
  seq: number;
  lastUsed: number;
}

type Matcher<T> = (p: Packet) => T | undefined;

export class IpmiClient {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly cipherSuite: number;
  private readonly password: string;
  private readonly privilege: number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly keepaliveMs: number;
  private readonly idleCloseMs: number;
  private lastCall = Date.now();
  private socket?: Socket;
  private pending?: (p: Packet) => void;
  private queue: Promise<unknown> = Promise.resolve();
  private session?: Session;
  private rqSeq = 0;
  private tag = 0;
  private closed = false;
  private keepaliveTimer?: NodeJS.Timeout;

  constructor(opts: IpmiClientOptions) {
    this.host = opts.host;
    this.port = opts.port ?? 623;
    this.username = opts.username;
    this.password = opts.password;
    this.cipherSuite = opts.cipherSuite ?? 3;
    this.privilege = opts.privilege ?? PRIV_ADMIN;
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.retries = opts.retries ?? 2;
    this.keepaliveMs = opts.keepaliveMs ?? 20000;
    this.idleCloseMs = opts.idleCloseMs ?? 0;
    if (!CIPHER_SUITES[this.cipherSuite]) throw new IpmiError(`cipher suite ${this.cipherSuite} is not supported (supported: ${Object.keys(CIPHER_SUITES).join(', ')})`, 'unsupported_cipher');
    if (Buffer.byteLength(this.username, 'latin1') > 16) throw new IpmiError('IPMI user names are at most 16 bytes', 'auth');
    if (Buffer.byteLength(this.password, 'utf8') > 20) throw new IpmiError('IPMI v2.0 passwords are at most 20 bytes', 'auth');
  }

  private get where(): string { return `BMC ${this.host}:${this.port}`; }

  /** True once close() was called. */
  get isClosed(): boolean { return this.closed; }

  private sock(): Socket {
    if (this.socket) return this.socket;
    const s = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    s.on('message', (msg) => {
      let p: Packet;
      try { p = decodePacket(msg); } catch { return; }
      this.pending?.(p);
    });
    s.on('error', () => { /* ICMP port unreachable and the like: the request times out */ });
    s.unref();
    this.socket = s;
    return s;
  }

  /** Send build() and wait for a packet match() accepts; retransmit with backoff within the budget. */
  private exchange<T>(what: string, build: () => Buffer, match: Matcher<T>): Promise<T> {
    if (this.closed) return Promise.reject(new IpmiError('the IPMI client is closed', 'closed'));
    const sock = this.sock();
    const attempts = this.retries + 1;
    const base = this.timeoutMs / (2 ** attempts - 1);
    return new Promise<T>((resolve, reject) => {
      let attempt = 0;
      let timer: NodeJS.Timeout | undefined;
      let failure: IpmiError | undefined;
      const done = (fn: () => void) => { clearTimeout(timer); this.pending = undefined; fn(); };
      this.pending = (p) => {
        let v: T | undefined;
        try { v = match(p); } catch (e) {
          if (e instanceof IpmiError && e.kind !== 'protocol') { done(() => reject(e)); return; }
          failure = e instanceof IpmiError ? e : new IpmiError(`${what}: ${(e as Error).message}`, 'protocol');
          return;
        }
        if (v !== undefined) done(() => resolve(v as T));
      };
      const fire = () => {
        if (attempt >= attempts) {
          done(() => reject(failure ?? new IpmiError(`${this.where} did not answer ${what} within ${this.timeoutMs} ms (${attempts} attempts)`, 'timeout')));
          return;
        }
        const wait = base * 2 ** attempt++;
        try { sock.send(build(), this.port, this.host); } catch (e) { done(() => reject(new IpmiError(`${what}: ${(e as Error).message}`, 'protocol'))); return; }
        timer = setTimeout(fire, wait);
      };
      fire();
    });
  }

  /** Run fn after every request queued before it. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // --------------------------------------------------------------------------------- pre-session

  private preSessionRequest(netFn: number, cmd: number, data: Buffer): Promise<IpmiResponse> {
    const rqSeq = this.rqSeq = (this.rqSeq + 1) & 0x3f;
    const pkt = encodeV15(encodeRequest({ netFn, cmd, data, rqSeq }));
    const what = cmd === CMD.GET_CHANNEL_AUTH_CAPABILITIES ? 'Get Channel Authentication Capabilities' : cmd === CMD.GET_CHANNEL_CIPHER_SUITES ? 'Get Channel Cipher Suites' : `command 0x${cmd.toString(16)}`;
    return this.exchange(what, () => pkt, (p) => {
      const msg = p.kind === 'v15' ? p.message : p.kind === 'v20' && p.payloadType === PAYLOAD_IPMI && p.sessionId === 0 ? p.payload : undefined;
      if (!msg) return undefined;
      const r = decodeResponse(msg);
      return r.rqSeq === rqSeq && r.cmd === cmd && r.netFn === (netFn | 1) ? r : undefined;
    });
  }

  /** Get Channel Authentication Capabilities (pre-session): what the BMC's LAN channel offers. */
  getChannelAuthCapabilities(privilege = PRIV_ADMIN): Promise<{ channel: number; ipmi20: boolean; authTypes: number; raw: Buffer }> {
    return this.serial(async () => {
      const r = await this.preSessionRequest(NETFN_APP, CMD.GET_CHANNEL_AUTH_CAPABILITIES, Buffer.from([0x8e, privilege]));
      if (r.code !== 0 || r.data.length < 8) throw this.completionError('Get Channel Authentication Capabilities', r.code);
      return { channel: r.data[0]!, ipmi20: (r.data[1]! & 0x80) !== 0 && (r.data[3]! & 0x02) !== 0, authTypes: r.data[1]! & 0x3f, raw: Buffer.from(r.data) };
    });
  }

  /** Get Channel Cipher Suites (pre-session): the cipher suite IDs the BMC offers. */
  getChannelCipherSuites(): Promise<number[]> {
    return this.serial(async () => {
      const parts: Buffer[] = [];
      for (let index = 0; index < 64; index++) {
        const r = await this.preSessionRequest(NETFN_APP, CMD.GET_CHANNEL_CIPHER_SUITES, Buffer.from([0x0e, 0x00, 0x80 | index]));
        if (r.code !== 0 || r.data.length < 1) throw this.completionError('Get Channel Cipher Suites', r.code);
        parts.push(r.data.subarray(1));
        if (r.data.length < 17) break;
      }
      const all = Buffer.concat(parts);
      const ids: number[] = [];
      for (let i = 0; i < all.length;) {
        if (all[i] === 0xc0 && i + 1 < all.length) { ids.push(all[i + 1]!); i += 2; } else if (all[i] === 0xc1 && i + 4 < all.length) { ids.push(all[i + 1]!); i += 5; } else i++;
      }
      return ids;
    });
  }

  // --------------------------------------------------------------------------------- session setup

  private async open(): Promise<Session> {
    const suite: CipherSuite = CIPHER_SUITES[this.cipherSuite]!;
    const consoleSid = randomSessionId();
    const tag = () => (this.tag = (this.tag + 1) & 0xff);
    const user = Buffer.from(this.username, 'latin1');
    const kuid = Buffer.from(this.password, 'utf8');

    // Get Channel Authentication Capabilities first, as ipmitool and freeipmi do (some BMCs
    // expect it before Open Session); it also tells whether the BMC speaks IPMI v2.0 at all.
    const caps = await this.preSessionRequest(NETFN_APP, CMD.GET_CHANNEL_AUTH_CAPABILITIES, Buffer.from([0x8e, this.privilege]));
    if (caps.code === 0 && caps.data.length >= 4 && ((caps.data[1]! & 0x80) === 0 || (caps.data[3]! & 0x02) === 0)) {
      throw new IpmiError(`${this.where} does not support IPMI v2.0 (RMCP+); IPMI 1.5 sessions are not supported`, 'unsupported_cipher');
    }

    // Open Session
    const t1 = tag();
    const osReq = encodeV20(PAYLOAD_OPEN_SESSION_REQ, encodeOpenSessionRequest({ tag: t1, privilege: this.privilege, consoleSessionId: consoleSid, auth: AUTH_ALG_IDS[suite.auth], integrity: INTEGRITY_ALG_IDS[suite.integrity], conf: CONF_ALG_IDS[suite.conf] }), 0, 0);
    const os = await this.exchange('Open Session', () => osReq, (p) => {
      if (p.kind !== 'v20' || p.payloadType !== PAYLOAD_OPEN_SESSION_RSP) return undefined;
      const r = decodeOpenSessionResponse(p.payload);
      return r.tag === t1 && (r.consoleSessionId === consoleSid || r.status !== 0) ? r : undefined;
    });
    if (os.status !== 0) {
      const desc = RAKP_STATUS[os.status] ?? `status 0x${os.status.toString(16)}`;
      if ([0x04, 0x05, 0x06, 0x07, 0x10, 0x11].includes(os.status)) {
        throw new IpmiError(`${this.where} does not support cipher suite ${suite.id} (${suite.auth}/${suite.integrity}/${suite.conf}): ${desc} (RMCP+ status 0x${os.status.toString(16).padStart(2, '0')})`, 'unsupported_cipher', { rakpStatus: os.status });
      }
      throw new IpmiError(`${this.where} refused to open a session: ${desc} (RMCP+ status 0x${os.status.toString(16).padStart(2, '0')})`, os.status === 0x09 || os.status === 0x0a ? 'auth' : 'protocol', { rakpStatus: os.status });
    }
    if (os.auth !== AUTH_ALG_IDS[suite.auth] || os.integrity !== INTEGRITY_ALG_IDS[suite.integrity] || os.conf !== CONF_ALG_IDS[suite.conf]) {
      throw new IpmiError(`${this.where} answered cipher suite ${suite.id} with other algorithms`, 'unsupported_cipher');
    }
    const bmcSid = os.bmcSessionId;

    // RAKP 1 / 2
    const rm = random(16);
    const role = 0x10 | (this.privilege & 0x0f); // name-only lookup
    const t2 = tag();
    const r1 = encodeV20(PAYLOAD_RAKP1, encodeRakp1({ tag: t2, bmcSessionId: bmcSid, rm, role, username: user }), 0, 0);
    const r2 = await this.exchange('RAKP 1', () => r1, (p) => {
      if (p.kind !== 'v20' || p.payloadType !== PAYLOAD_RAKP2) return undefined;
      const r = decodeRakp2(p.payload);
      return r.tag === t2 ? r : undefined;
    });
    if (r2.status !== 0) {
      const desc = RAKP_STATUS[r2.status] ?? `status 0x${r2.status.toString(16)}`;
      const msg = r2.status === 0x0d ? `${this.where} does not know user '${this.username}'` : r2.status === 0x09 || r2.status === 0x0a ? `${this.where} refused privilege level ${this.privilege} for user '${this.username}'` : `${this.where} refused the session`;
      throw new IpmiError(`${msg}: ${desc} (RAKP 2 status 0x${r2.status.toString(16).padStart(2, '0')})`, [0x09, 0x0a, 0x0d, 0x0f].includes(r2.status) ? 'auth' : 'protocol', { rakpStatus: r2.status });
    }
    const want2 = rakpHmac(suite.auth, kuid, rakp2Input(consoleSid, bmcSid, rm, r2.rc, r2.guid, role, user));
    if (want2.length !== r2.authCode.length || (want2.length > 0 && !timingSafeEqual(want2, r2.authCode))) {
      // Tell the BMC to drop the half-open session.
      try { this.sock().send(encodeV20(PAYLOAD_RAKP3, encodeRakp34({ tag: tag(), status: 0x0f, sessionId: bmcSid, authCode: Buffer.alloc(0) }), 0, 0), this.port, this.host); } catch { /* best effort */ }
      throw new IpmiError(`${this.where} rejected the password for user '${this.username}': invalid integrity check value (RAKP 2 authentication code mismatch, status 0x0f)`, 'auth', { rakpStatus: 0x0f });
    }

    // RAKP 3 / 4
    const t3 = tag();
    const r3 = encodeV20(PAYLOAD_RAKP3, encodeRakp34({ tag: t3, status: 0, sessionId: bmcSid, authCode: rakpHmac(suite.auth, kuid, rakp3Input(r2.rc, consoleSid, role, user)) }), 0, 0);
    const r4 = await this.exchange('RAKP 3', () => r3, (p) => {
      if (p.kind !== 'v20' || p.payloadType !== PAYLOAD_RAKP4) return undefined;
      const r = decodeRakp34(p.payload);
      return r.tag === t3 ? r : undefined;
    });
    if (r4.status !== 0) {
      const desc = RAKP_STATUS[r4.status] ?? `status 0x${r4.status.toString(16)}`;
      throw new IpmiError(`${this.where} rejected the session for user '${this.username}': ${desc} (RAKP 4 status 0x${r4.status.toString(16).padStart(2, '0')})`, r4.status === 0x0f || r4.status === 0x0d ? 'auth' : 'protocol', { rakpStatus: r4.status });
    }
    const keys = deriveKeys(suite, kuid, rm, r2.rc, role, user);
    const icv = rakpHmac(suite.auth, keys.sik, rakp4Input(rm, bmcSid, r2.guid)).subarray(0, rakp4IcvLength(suite.auth));
    if (!icv.equals(r4.authCode.subarray(0, icv.length)) || r4.authCode.length < icv.length) {
      throw new IpmiError(`${this.where} sent a RAKP 4 integrity check value that does not match`, 'protocol');
    }
    const s: Session = { bmcSid, consoleSid, sec: { suite, k1: keys.k1, k2: keys.k2 }, seq: 0, lastUsed: Date.now() };
    this.session = s;
    const r = await this.sessionRequest(s, NETFN_APP, CMD.SET_SESSION_PRIVILEGE, Buffer.from([this.privilege]));
    if (r.code !== 0) {
      this.session = undefined;
      throw new IpmiError(`${this.where} refused privilege level ${this.privilege} for user '${this.username}' (completion code 0x${r.code.toString(16)})`, 'auth', { completionCode: r.code });
    }
    this.armKeepalive();
    return s;
  }

  private sessionRequest(s: Session, netFn: number, cmd: number, data: Buffer): Promise<IpmiResponse> {
    const rqSeq = this.rqSeq = (this.rqSeq + 1) & 0x3f;
    const msg = encodeRequest({ netFn, cmd, data, rqSeq });
    return this.exchange(`command 0x${netFn.toString(16)}/0x${cmd.toString(16)}`, () => {
      s.seq = (s.seq + 1) >>> 0 || 1;
      return encodeV20(PAYLOAD_IPMI, msg, s.bmcSid, s.seq, s.sec);
    }, (p) => {
      if (p.kind !== 'v20' || p.payloadType !== PAYLOAD_IPMI || p.sessionId !== s.consoleSid) return undefined;
      let clear: Buffer;
      try { clear = openV20(p, s.sec); } catch { return undefined; }
      const r = decodeResponse(clear);
      return r.rqSeq === rqSeq && r.cmd === cmd && r.netFn === (netFn | 1) ? r : undefined;
    }).then((r) => { s.lastUsed = Date.now(); return r; });
  }

  private armKeepalive(): void {
    if (this.keepaliveMs <= 0 || this.keepaliveTimer) return;
    this.keepaliveTimer = setInterval(() => {
      if (this.idleCloseMs > 0 && Date.now() - this.lastCall > this.idleCloseMs) { this.close().catch(() => undefined); return; }
      const s = this.session;
      if (!s || Date.now() - s.lastUsed < this.keepaliveMs) return;
      this.serial(async () => {
        if (this.session !== s) return;
        try { await this.sessionRequest(s, NETFN_APP, CMD.GET_DEVICE_ID, Buffer.alloc(0)); } catch { if (this.session === s) this.session = undefined; }
      }).catch(() => undefined);
    }, Math.max(1000, this.keepaliveMs / 2));
    this.keepaliveTimer.unref();
  }

  private completionError(what: string, code: number): IpmiError {
    return new IpmiError(`${this.where}: ${what} failed: ${COMPLETION_CODES[code] ?? 'error'} (completion code 0x${code.toString(16).padStart(2, '0')})`, 'completion', { completionCode: code });
  }

  /**
   * Send one command in the session (opened or re-opened as needed) and return the raw answer,
   * whatever its completion code.
   */
  raw(netFn: number, cmd: number, data: Buffer = Buffer.alloc(0)): Promise<IpmiResponse> {
    this.lastCall = Date.now();
    return this.serial(async () => {
      let s = this.session;
      const fresh = !s;
      if (!s) s = await this.open();
      try {
        return await this.sessionRequest(s, netFn, cmd, data);
      } catch (e) {
        if (this.session === s) this.session = undefined;
        // The BMC may have dropped an old session (restart, timeout): open a new one once.
        if (!fresh && e instanceof IpmiError && e.kind === 'timeout' && !this.closed) {
          return this.sessionRequest(await this.open(), netFn, cmd, data);
        }
        throw e;
      }
    });
  }

  /** Send one command; throw IpmiError('completion') unless it succeeded. Returns the answer's data. */
  async command(netFn: number, cmd: number, data: Buffer = Buffer.alloc(0), what = `command 0x${netFn.toString(16)}/0x${cmd.toString(16)}`): Promise<Buffer> {
    const r = await this.raw(netFn, cmd, data);
    if (r.code !== 0) throw this.completionError(what, r.code);
    return r.data;
  }

  /** Open the session now (otherwise the first command does). */
  async connect(): Promise<void> {
    await this.serial(async () => { if (!this.session) await this.open(); });
  }

  async deviceId(): Promise<DeviceId> {
    return decodeDeviceId(await this.command(NETFN_APP, CMD.GET_DEVICE_ID, undefined, 'Get Device ID'));
  }

  async chassisStatus(): Promise<ChassisStatus> {
    return decodeChassisStatus(await this.command(NETFN_CHASSIS, CMD.GET_CHASSIS_STATUS, undefined, 'Get Chassis Status'));
  }

  async powerState(): Promise<'on' | 'off'> {
    return (await this.chassisStatus()).powerOn ? 'on' : 'off';
  }

  async chassisControl(op: ChassisControl): Promise<void> {
    await this.command(NETFN_CHASSIS, CMD.CHASSIS_CONTROL, Buffer.from([CHASSIS_CONTROL[op]]), `Chassis Control ${op}`);
  }

  powerOn(): Promise<void> { return this.chassisControl('power-up'); }
  powerOff(): Promise<void> { return this.chassisControl('power-down'); }
  powerCycle(): Promise<void> { return this.chassisControl('power-cycle'); }
  reset(): Promise<void> { return this.chassisControl('hard-reset'); }
  softPowerOff(): Promise<void> { return this.chassisControl('soft-shutdown'); }

  /** Set System Boot Options parameter (raw data after the parameter selector). */
  async setBootOption(param: number, data: Buffer): Promise<void> {
    await this.command(NETFN_CHASSIS, CMD.SET_SYSTEM_BOOT_OPTIONS, Buffer.concat([Buffer.from([param & 0x7f]), data]), `Set System Boot Options parameter ${param}`);
  }

  /** Get System Boot Options parameter: the parameter data (after version and selector bytes). */
  async getBootOption(param: number): Promise<Buffer> {
    const d = await this.command(NETFN_CHASSIS, CMD.GET_SYSTEM_BOOT_OPTIONS, Buffer.from([param & 0x7f, 0, 0]), `Get System Boot Options parameter ${param}`);
    if (d.length < 2) throw new IpmiError(`${this.where}: Get System Boot Options answer too short`, 'protocol');
    return d.subarray(2);
  }

  /**
   * Set the boot device the way ipmitool's `chassis bootdev` does: set-in-progress (param 0),
   * clear the boot info acknowledge (param 4), write the boot flags (param 5) with the valid bit,
   * then set complete.
   */
  async setBootDevice(o: { device: MachineBootDevice; persistent?: boolean; mode?: 'bios' | 'uefi' }): Promise<void> {
    // Parameters 0 and 4 are optional (some BMCs, ipmi_sim among them, refuse them): best effort.
    const inProgress = await this.setBootOption(0, Buffer.from([0x01])).then(() => true, () => false);
    try {
      await this.setBootOption(4, Buffer.from([0x01, 0x01])).catch(() => undefined);
      await this.setBootOption(5, encodeBootFlags({ valid: true, persistent: o.persistent ?? false, mode: o.mode ?? 'bios', device: o.device }));
    } finally {
      if (inProgress) await this.setBootOption(0, Buffer.from([0x00])).catch(() => undefined);
    }
  }

  async getBootFlags(): Promise<BootFlags> {
    return decodeBootFlags(await this.getBootOption(5));
  }

  /** ASF presence ping: true if something answers RMCP at all. */
  async ping(): Promise<boolean> {
    const t = (this.tag = (this.tag + 1) & 0xff);
    const pkt = encodeAsfPing(t);
    try {
      await this.serial(() => this.exchange('ASF presence ping', () => pkt, (p) => (p.kind === 'asf' && p.messageType === 0x40 && p.tag === t ? true : undefined)));
      return true;
    } catch (e) {
      if (e instanceof IpmiError && e.kind === 'timeout') return false;
      throw e;
    }
  }

  /** Close the session (Close Session) and the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.keepaliveTimer);
    await this.serial(async () => {
      const s = this.session;
      this.session = undefined;
      if (s) {
        const id = Buffer.alloc(4);
        id.writeUInt32LE(s.bmcSid, 0);
        try { await this.sessionRequest(s, NETFN_APP, CMD.CLOSE_SESSION, id); } catch { /* the BMC forgets it anyway */ }
      }
    }).catch(() => undefined);
    this.closed = true;
    const sock = this.socket;
    this.socket = undefined;
    if (sock) await new Promise<void>((r) => sock.close(() => r()));
  }
}

// ------------------------------------------------------------------------------------- pool

const pool = new Map<string, IpmiClient>();

function poolKey(o: IpmiClientOptions): string {
  const pw = createHash('sha256').update(o.password).digest('hex').slice(0, 16);
  return [o.host, o.port ?? 623, o.username, pw, o.cipherSuite ?? 3, o.privilege ?? PRIV_ADMIN, o.timeoutMs ?? 3000, o.retries ?? 2].join('|');
}

/**
 * The shared client for one BMC and user: one session per (host, port, user) reused by every
 * caller, requests queued. A changed password or cipher suite gets its own client. A client
 * unused for 5 minutes closes its session and is replaced on the next call.
 */
export function ipmiSession(opts: IpmiClientOptions): IpmiClient {
  const key = poolKey(opts);
  let c = pool.get(key);
  if (!c || c.isClosed) {
    c = new IpmiClient({ idleCloseMs: 300000, ...opts });
    pool.set(key, c);
  }
  return c;
}

/** Close every pooled client (tests, shutdown). */
export async function closeIpmiSessions(): Promise<void> {
  const all = [...pool.values()];
  pool.clear();
  await Promise.all(all.map((c) => c.close()));
}
