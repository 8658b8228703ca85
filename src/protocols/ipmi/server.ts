/**
 * A virtual BMC: IPMI v2.0 / RMCP+ over UDP for one machine (a MachineBackend).
 *
 * Answers ASF presence pings; pre-session Get Channel Authentication Capabilities and Get Channel
 * Cipher Suites (as IPMI 1.5 or 2.0 packets); RMCP+ session setup (Open Session, RAKP 1-4) for the
 * cipher suites in CIPHER_SUITES; and, in session: Get Device ID, Set Session Privilege Level,
 * Close Session, Get Chassis Status, Chassis Control, Set/Get System Boot Options. Any other
 * command gets completion code 0xC1 (invalid command), as ipmitool's HPM/PICMG/VSO probes expect.
 * Malformed packets are dropped silently, as real BMCs do.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { timingSafeEqual } from 'node:crypto';
import type { MachineBackend } from '../machine.js';
import {
  AUTH_ALG_IDS, AUTH_TYPE_NONE, CIPHER_SUITES, CONF_ALG_IDS, INTEGRITY_ALG_IDS, NETFN_APP, NETFN_CHASSIS,
  PAYLOAD_IPMI, PAYLOAD_OPEN_SESSION_REQ, PAYLOAD_OPEN_SESSION_RSP, PAYLOAD_RAKP1, PAYLOAD_RAKP2, PAYLOAD_RAKP3, PAYLOAD_RAKP4,
  PRIV_ADMIN, PRIV_OPERATOR, PRIV_USER, decodeOpenSessionRequest, decodePacket, decodeRakp1, decodeRakp34, decodeRequest,
  deriveKeys, encodeAsfPong, encodeOpenSessionResponse, encodeRakp2, encodeRakp34, encodeResponse, encodeV15, encodeV20,
  guidBytes, openV20, random, randomSessionId, rakp2Input, rakp3Input, rakp4Input, rakp4IcvLength, rakpHmac, suiteFromAlgs,
  type CipherSuite, type IpmiRequest, type Packet, type SessionSecurity,
} from './codec.js';
import { CMD, decodeBootFlags, encodeBootFlags, encodeChassisStatus } from './commands.js';

export interface IpmiUser {
  name: string;
  password: string;
  /** 1 callback, 2 user, 3 operator, 4 administrator (default). */
  privilege?: number;
}

export interface IpmiServerOptions {
  backend: MachineBackend;
  users: IpmiUser[];
  /** Cipher suites offered (default: all of CIPHER_SUITES). */
  cipherSuites?: number[];
  /** Most sessions open at once (default 32); the oldest idle one is dropped beyond that. */
  maxSessions?: number;
  /** Seconds of inactivity after which a session is forgotten (default 60). */
  sessionTimeoutS?: number;
}

interface Session {
  bmcSid: number;
  consoleSid: number;
  suite: CipherSuite;
  /** Highest privilege granted (Open Session answer, then user and role). */
  maxPriv: number;
  priv: number;
  active: boolean;
  user?: IpmiUser;
  username?: Buffer;
  role?: number;
  rm?: Buffer;
  rc?: Buffer;
  rakp2?: Buffer;
  rakp3?: Buffer;
  rakp4?: Buffer;
  sec?: SessionSecurity;
  outSeq: number;
  lastSeen: number;
  lastReq?: { key: string; payload: Buffer };
  /** Highest inbound session sequence number seen, and the recent ones (replay window). */
  inHigh?: number;
  inSeen: Set<number>;
}

type Reply = { code: number; data?: Buffer; after?: () => void };

export class IpmiServer {
  private readonly backend: MachineBackend;
  private readonly users: IpmiUser[];
  private readonly suites: number[];
  private readonly maxSessions: number;
  private readonly sessionTimeoutMs: number;
  private readonly guid: Buffer;
  private readonly sessions = new Map<number, Session>();
  private readonly bootParams = new Map<number, Buffer>();
  private socket?: Socket;
  /** Packets handled and dropped (malformed or not for a known session), for tests and logs. */
  readonly stats = { received: 0, dropped: 0, sessionsOpened: 0 };

  constructor(opts: IpmiServerOptions) {
    this.backend = opts.backend;
    this.users = opts.users;
    this.suites = (opts.cipherSuites ?? Object.keys(CIPHER_SUITES).map(Number)).filter((s) => CIPHER_SUITES[s]);
    this.maxSessions = opts.maxSessions ?? 32;
    this.sessionTimeoutMs = (opts.sessionTimeoutS ?? 60) * 1000;
    this.guid = guidBytes(opts.backend.uuid);
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      sock.once('error', reject);
      sock.on('message', (msg, rinfo) => {
        this.stats.received++;
        this.handle(msg, rinfo).catch(() => { this.stats.dropped++; });
      });
      sock.bind(port, host, () => {
        sock.off('error', reject);
        sock.on('error', () => { /* ICMP unreachable and the like: nothing to do */ });
        this.socket = sock;
        resolve(sock.address().port);
      });
    });
  }

  close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    this.sessions.clear();
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }

  private send(buf: Buffer, rinfo: RemoteInfo): void {
    this.socket?.send(buf, rinfo.port, rinfo.address);
  }

  /** Handle one datagram. Never throws for bad input: drops it. */
  async handle(msg: Buffer, rinfo: RemoteInfo): Promise<void> {
    let p: Packet;
    try { p = decodePacket(msg); } catch { this.stats.dropped++; return; }
    if (p.kind === 'asf') {
      if (p.messageType === 0x80) this.send(encodeAsfPong(p.tag), rinfo);
      return;
    }
    if (p.kind === 'v15') {
      if (p.authType !== AUTH_TYPE_NONE || p.sessionId !== 0) { this.stats.dropped++; return; } // no IPMI 1.5 sessions
      const req = this.tryRequest(p.message);
      if (!req) return;
      const r = this.preSession(req);
      if (r) this.send(encodeV15(encodeResponse(req, r.code, r.data)), rinfo);
      return;
    }
    switch (p.payloadType) {
      case PAYLOAD_OPEN_SESSION_REQ: return this.openSession(p.payload, rinfo);
      case PAYLOAD_RAKP1: return this.rakp1(p.payload, rinfo);
      case PAYLOAD_RAKP3: return this.rakp3(p.payload, rinfo);
      case PAYLOAD_IPMI: break;
      default: this.stats.dropped++; return;
    }
    if (p.sessionId === 0) {
      if (p.authenticated || p.encrypted) { this.stats.dropped++; return; }
      const req = this.tryRequest(p.payload);
      if (!req) return;
      const r = this.preSession(req);
      if (r) this.send(encodeV20(PAYLOAD_IPMI, encodeResponse(req, r.code, r.data), 0, 0), rinfo);
      return;
    }
    const s = this.sessions.get(p.sessionId);
    if (!s || !s.active || !s.sec) { this.stats.dropped++; return; }
    let clear: Buffer;
    try { clear = openV20(p, s.sec); } catch { this.stats.dropped++; return; }
    const req = this.tryRequest(clear);
    if (!req) return;
    // Replay window (IPMI v2.0 6.12.13): a sequence number seen before, or far behind the highest,
    // is only answered when it repeats the last request (a retransmission).
    const seq = p.sequence;
    const replay = seq === 0 || s.inSeen.has(seq) || (s.inHigh !== undefined && (seq < s.inHigh - 16 || seq > s.inHigh + 64));
    const key = `${req.netFn}:${req.cmd}:${req.rqSeq}:${req.data.toString('hex')}`;
    const repeat = !!s.lastReq && s.lastReq.key === key;
    if (replay && !repeat) { this.stats.dropped++; return; }
    if (!replay) {
      s.inSeen.add(seq);
      if (s.inHigh === undefined || seq > s.inHigh) s.inHigh = seq;
      for (const old of s.inSeen) if (old < s.inHigh - 32) s.inSeen.delete(old);
    }
    s.lastSeen = Date.now();
    let payload: Buffer;
    let after: (() => void) | undefined;
    if (repeat) {
      payload = s.lastReq!.payload; // a retransmission: answer again without acting twice
    } else {
      let r: Reply;
      try { r = await this.inSession(s, req); } catch { r = { code: 0xff }; }
      payload = encodeResponse(req, r.code, r.data);
      after = r.after;
      s.lastReq = { key, payload };
    }
    s.outSeq = (s.outSeq + 1) >>> 0 || 1;
    this.send(encodeV20(PAYLOAD_IPMI, payload, s.consoleSid, s.outSeq, s.sec), rinfo);
    after?.();
  }

  private tryRequest(b: Buffer): IpmiRequest | undefined {
    try { return decodeRequest(b); } catch { this.stats.dropped++; return undefined; }
  }

  private channelAuthCaps(req: IpmiRequest): Reply {
    if (req.data.length < 2) return { code: 0xc7 };
    const ch = req.data[0]! & 0x0f;
    if (ch !== 0x0e && ch !== 0x01) return { code: 0xcc };
    const v2 = (req.data[0]! & 0x80) !== 0;
    // Channel 1; auth types: none (plus the "IPMI v2.0 extended data" bit); non-null user names;
    // IPMI v1.5 and v2.0 connections supported; no OEM.
    return { code: 0, data: Buffer.from([0x01, (v2 ? 0x80 : 0x00) | 0x01, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00]) };
  }

  private cipherSuites(req: IpmiRequest): Reply {
    if (req.data.length < 3) return { code: 0xc7 };
    const ch = req.data[0]! & 0x0f;
    if (ch !== 0x0e && ch !== 0x01) return { code: 0xcc };
    if ((req.data[1]! & 0x3f) !== PAYLOAD_IPMI) return { code: 0x80 };
    const index = req.data[2]! & 0x3f;
    const records = Buffer.concat(this.suites.map((id) => {
      const s = CIPHER_SUITES[id]!;
      return Buffer.from([0xc0, id, AUTH_ALG_IDS[s.auth], 0x40 | INTEGRITY_ALG_IDS[s.integrity], 0x80 | CONF_ALG_IDS[s.conf]]);
    }));
    return { code: 0, data: Buffer.concat([Buffer.from([0x01]), records.subarray(index * 16, index * 16 + 16)]) };
  }

  private preSession(req: IpmiRequest): Reply | undefined {
    if (req.netFn === NETFN_APP && req.cmd === CMD.GET_CHANNEL_AUTH_CAPABILITIES) return this.channelAuthCaps(req);
    if (req.netFn === NETFN_APP && req.cmd === CMD.GET_CHANNEL_CIPHER_SUITES) return this.cipherSuites(req);
    if (req.netFn === NETFN_APP && req.cmd === CMD.GET_DEVICE_ID) return this.deviceId();
    if ((req.netFn & 1) !== 0) return undefined; // a response, not a request
    return { code: 0xd4 };
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (now - s.lastSeen > this.sessionTimeoutMs) this.sessions.delete(id);
    while (this.sessions.size >= this.maxSessions) {
      let oldest: Session | undefined;
      for (const s of this.sessions.values()) if (!oldest || s.lastSeen < oldest.lastSeen) oldest = s;
      if (!oldest) break;
      this.sessions.delete(oldest.bmcSid);
    }
  }

  private openSession(payload: Buffer, rinfo: RemoteInfo): void {
    let r;
    try { r = decodeOpenSessionRequest(payload); } catch {
      if (payload.length >= 8) {
        this.send(encodeV20(PAYLOAD_OPEN_SESSION_RSP, encodeOpenSessionResponse({ tag: payload[0]!, status: 0x12, privilege: 0, consoleSessionId: payload.readUInt32LE(4), bmcSessionId: 0, auth: 0, integrity: 0, conf: 0 }), 0, 0), rinfo);
      } else this.stats.dropped++;
      return;
    }
    const fail = (status: number) => this.send(encodeV20(PAYLOAD_OPEN_SESSION_RSP, encodeOpenSessionResponse({ ...r, status, bmcSessionId: 0 }), 0, 0), rinfo);
    const suite = suiteFromAlgs(r.auth, r.integrity, r.conf);
    if (!suite || !this.suites.includes(suite.id)) { fail(0x11); return; }
    if (r.privilege > PRIV_ADMIN) { fail(0x09); return; }
    this.expire();
    let bmcSid = 0;
    while (bmcSid === 0 || this.sessions.has(bmcSid)) bmcSid = randomSessionId();
    // Privilege 0 asks for the highest level the channel allows: answer with that real level.
    const maxPriv = r.privilege === 0 ? PRIV_ADMIN : r.privilege;
    this.sessions.set(bmcSid, { bmcSid, consoleSid: r.consoleSessionId, suite, maxPriv, priv: PRIV_USER, active: false, outSeq: 0, lastSeen: Date.now(), inSeen: new Set() });
    this.stats.sessionsOpened++;
    this.send(encodeV20(PAYLOAD_OPEN_SESSION_RSP, encodeOpenSessionResponse({ tag: r.tag, status: 0, privilege: maxPriv, consoleSessionId: r.consoleSessionId, bmcSessionId: bmcSid, auth: r.auth, integrity: r.integrity, conf: r.conf }), 0, 0), rinfo);
  }

  private rakp1(payload: Buffer, rinfo: RemoteInfo): void {
    let r;
    try { r = decodeRakp1(payload); } catch { this.stats.dropped++; return; }
    const s = this.sessions.get(r.bmcSessionId);
    const reply = (b: Buffer) => this.send(encodeV20(PAYLOAD_RAKP2, b, 0, 0), rinfo);
    if (!s) { reply(encodeRakp2({ tag: r.tag, status: 0x02, consoleSessionId: 0, rc: Buffer.alloc(0), guid: Buffer.alloc(0), authCode: Buffer.alloc(0) })); return; }
    if (s.active) { this.stats.dropped++; return; }
    if (s.rakp2 && s.rm && s.rm.equals(r.rm)) { reply(s.rakp2); return; } // retransmission
    const fail = (status: number) => {
      this.sessions.delete(s.bmcSid);
      reply(encodeRakp2({ tag: r.tag, status, consoleSessionId: s.consoleSid, rc: Buffer.alloc(0), guid: Buffer.alloc(0), authCode: Buffer.alloc(0) }));
    };
    const name = r.username.toString('latin1');
    const user = this.users.find((u) => u.name === name);
    if (!user) { fail(0x0d); return; }
    const requested = r.role & 0x0f;
    const userPriv = user.privilege ?? PRIV_ADMIN;
    if (requested > PRIV_ADMIN) { fail(0x09); return; }
    const want = requested === 0 ? Math.min(userPriv, s.maxPriv) : requested;
    if (want > userPriv || want > s.maxPriv) { fail(0x0a); return; }
    s.user = user;
    s.username = r.username;
    s.role = r.role;
    s.rm = r.rm;
    s.rc = random(16);
    s.maxPriv = want;
    s.lastSeen = Date.now();
    const kuid = Buffer.from(user.password, 'utf8');
    const authCode = rakpHmac(s.suite.auth, kuid, rakp2Input(s.consoleSid, s.bmcSid, s.rm, s.rc, this.guid, r.role, r.username));
    s.rakp2 = encodeRakp2({ tag: r.tag, status: 0, consoleSessionId: s.consoleSid, rc: s.rc, guid: this.guid, authCode });
    reply(s.rakp2);
  }

  private rakp3(payload: Buffer, rinfo: RemoteInfo): void {
    let r;
    try { r = decodeRakp34(payload); } catch { this.stats.dropped++; return; }
    const s = this.sessions.get(r.sessionId);
    const reply = (b: Buffer) => this.send(encodeV20(PAYLOAD_RAKP4, b, 0, 0), rinfo);
    if (!s || !s.user || !s.rc || !s.rm || !s.username || s.role === undefined) {
      if (r.status === 0) reply(encodeRakp34({ tag: r.tag, status: 0x02, sessionId: 0, authCode: Buffer.alloc(0) }));
      return;
    }
    if (r.status !== 0) { this.sessions.delete(s.bmcSid); return; } // the console gave up
    if (s.active) {
      if (s.rakp3 && s.rakp4 && s.rakp3.equals(payload)) reply(s.rakp4);
      return;
    }
    const kuid = Buffer.from(s.user.password, 'utf8');
    const want = rakpHmac(s.suite.auth, kuid, rakp3Input(s.rc, s.consoleSid, s.role, s.username));
    if (want.length !== r.authCode.length || (want.length > 0 && !timingSafeEqual(want, r.authCode))) {
      this.sessions.delete(s.bmcSid);
      reply(encodeRakp34({ tag: r.tag, status: 0x0f, sessionId: s.consoleSid, authCode: Buffer.alloc(0) }));
      return;
    }
    const keys = deriveKeys(s.suite, kuid, s.rm, s.rc, s.role, s.username);
    const icv = rakpHmac(s.suite.auth, keys.sik, rakp4Input(s.rm, s.bmcSid, this.guid)).subarray(0, rakp4IcvLength(s.suite.auth));
    s.sec = { suite: s.suite, k1: keys.k1, k2: keys.k2 };
    s.active = true;
    s.priv = Math.min(PRIV_USER, s.maxPriv);
    s.lastSeen = Date.now();
    s.rakp3 = Buffer.from(payload);
    s.rakp4 = encodeRakp34({ tag: r.tag, status: 0, sessionId: s.consoleSid, authCode: icv });
    reply(s.rakp4);
  }

  private deviceId(): Reply {
    // Device 0x20, revision 1 with SDRs; firmware 1.00; IPMI 2.0; chassis + bridge support;
    // manufacturer 0 (unspecified), product 0x0ooo.
    return { code: 0, data: Buffer.from([0x20, 0x01, 0x01, 0x00, 0x02, 0x9f, 0x00, 0x00, 0x00, 0x00, 0x00]) };
  }

  private async inSession(s: Session, req: IpmiRequest): Promise<Reply> {
    const d = req.data;
    if (req.netFn === NETFN_APP) {
      switch (req.cmd) {
        case CMD.GET_DEVICE_ID: return this.deviceId();
        case CMD.GET_CHANNEL_AUTH_CAPABILITIES: return this.channelAuthCaps(req);
        case CMD.GET_CHANNEL_CIPHER_SUITES: return this.cipherSuites(req);
        case CMD.SET_SESSION_PRIVILEGE: {
          if (d.length < 1) return { code: 0xc7 };
          const want = d[0]! & 0x0f;
          if (want === 0) return { code: 0, data: Buffer.from([s.priv]) };
          if (want > PRIV_ADMIN || want < PRIV_USER) return { code: 0x80 };
          if (want > s.maxPriv) return { code: 0x81 };
          s.priv = want;
          return { code: 0, data: Buffer.from([s.priv]) };
        }
        case CMD.CLOSE_SESSION: {
          if (d.length < 4) return { code: 0xc7 };
          const id = d.readUInt32LE(0);
          if (id === s.bmcSid || id === 0) return { code: 0, after: () => this.sessions.delete(s.bmcSid) };
          if (!this.sessions.has(id)) return { code: 0x87 };
          if (s.priv < PRIV_ADMIN) return { code: 0xd4 };
          this.sessions.delete(id);
          return { code: 0 };
        }
        default: return { code: 0xc1 };
      }
    }
    if (req.netFn === NETFN_CHASSIS) {
      switch (req.cmd) {
        case CMD.GET_CHASSIS_STATUS:
          return { code: 0, data: encodeChassisStatus((await this.backend.powerState()) === 'on') };
        case CMD.CHASSIS_CONTROL: {
          if (d.length < 1) return { code: 0xc7 };
          if (s.priv < PRIV_OPERATOR) return { code: 0xd4 };
          switch (d[0]! & 0x0f) {
            case 0x00: await this.backend.powerOff(); break;
            case 0x01: await this.backend.powerOn(); break;
            case 0x02: await this.backend.powerCycle(); break;
            case 0x03: await this.backend.reset(); break;
            case 0x04: break; // diagnostic interrupt: nothing to simulate
            case 0x05: await this.backend.softPowerOff(); break;
            default: return { code: 0xcc };
          }
          return { code: 0 };
        }
        case CMD.SET_SYSTEM_BOOT_OPTIONS: return this.setBootOption(s, d);
        case CMD.GET_SYSTEM_BOOT_OPTIONS: return this.getBootOption(d);
        default: return { code: 0xc1 };
      }
    }
    return { code: 0xc1 };
  }

  private async setBootOption(s: Session, d: Buffer): Promise<Reply> {
    if (d.length < 1) return { code: 0xc7 };
    if (s.priv < PRIV_OPERATOR) return { code: 0xd4 };
    const param = d[0]! & 0x7f;
    const value = Buffer.from(d.subarray(1));
    if (param > 7) return { code: 0x80 }; // parameter not supported
    if (param === 5) {
      if (value.length < 5) return { code: 0xc7 };
      const f = decodeBootFlags(value);
      const device = f.valid ? f.device : 'none';
      await this.backend.setBootOverride({ device, persistent: f.persistent, mode: f.mode });
    }
    this.bootParams.set(param, value);
    return { code: 0 };
  }

  private async getBootOption(d: Buffer): Promise<Reply> {
    if (d.length < 1) return { code: 0xc7 };
    const param = d[0]! & 0x7f;
    if (param === 5) {
      const o = await this.backend.bootOverride();
      const written = this.bootParams.get(5);
      const w = written ? decodeBootFlags(written) : undefined;
      // A device set with the valid bit reads back valid; "none" keeps the bit it was written with.
      const valid = o.device !== 'none' ? true : !!w && w.valid && w.device === 'none';
      const sel = w && o.device !== 'none' && w.device === o.device ? w.selector : undefined;
      return { code: 0, data: Buffer.concat([Buffer.from([0x01, 5]), encodeBootFlags({ valid, persistent: o.persistent, mode: o.mode, device: o.device, selector: sel })]) };
    }
    const dflt: Record<number, Buffer> = { 0: Buffer.from([0]), 1: Buffer.from([0]), 2: Buffer.from([0]), 3: Buffer.from([0]), 4: Buffer.from([0, 0]), 6: Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0]), 7: Buffer.from([0, 0]) };
    const v = this.bootParams.get(param) ?? dflt[param];
    if (!v) return { code: 0x80 };
    return { code: 0, data: Buffer.concat([Buffer.from([0x01, param]), v]) };
  }
}
