/**
 * IPMI v2.0 wire format: RMCP, ASF presence ping/pong, the IPMI 1.5 session header (used for
 * pre-session messages), the IPMI 2.0 / RMCP+ session header with integrity and confidentiality,
 * IPMI messages with their checksums, and the RMCP+ session setup payloads (Open Session, RAKP 1-4).
 * Every decoder throws IpmiDecodeError on malformed input; nothing else.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export class IpmiDecodeError extends Error {}

export const RMCP_VERSION = 0x06;
export const RMCP_CLASS_ASF = 0x06;
export const RMCP_CLASS_IPMI = 0x07;
export const ASF_IANA = 4542;

export const AUTH_TYPE_NONE = 0x00;
export const AUTH_TYPE_RMCPP = 0x06;

export const PAYLOAD_IPMI = 0x00;
export const PAYLOAD_SOL = 0x01;
export const PAYLOAD_OPEN_SESSION_REQ = 0x10;
export const PAYLOAD_OPEN_SESSION_RSP = 0x11;
export const PAYLOAD_RAKP1 = 0x12;
export const PAYLOAD_RAKP2 = 0x13;
export const PAYLOAD_RAKP3 = 0x14;
export const PAYLOAD_RAKP4 = 0x15;

export const NETFN_CHASSIS = 0x00;
export const NETFN_APP = 0x06;

export const PRIV_CALLBACK = 1;
export const PRIV_USER = 2;
export const PRIV_OPERATOR = 3;
export const PRIV_ADMIN = 4;
export const PRIV_OEM = 5;

/** RMCP+ status codes (Open Session / RAKP messages), IPMI v2.0 table 13-15. */
export const RAKP_STATUS: Record<number, string> = {
  0x00: 'no errors',
  0x01: 'insufficient resources to create a session',
  0x02: 'invalid session ID',
  0x03: 'invalid payload type',
  0x04: 'invalid authentication algorithm',
  0x05: 'invalid integrity algorithm',
  0x06: 'no matching authentication payload',
  0x07: 'no matching integrity payload',
  0x08: 'inactive session ID',
  0x09: 'invalid role',
  0x0a: 'unauthorized role or privilege level requested',
  0x0b: 'insufficient resources to create a session at the requested role',
  0x0c: 'invalid name length',
  0x0d: 'unauthorized name',
  0x0e: 'unauthorized GUID',
  0x0f: 'invalid integrity check value',
  0x10: 'invalid confidentiality algorithm',
  0x11: 'no cipher suite match with proposed security algorithms',
  0x12: 'illegal or unrecognized parameter',
};

/** Completion codes, IPMI v2.0 table 5-2 (the common ones). */
export const COMPLETION_CODES: Record<number, string> = {
  0x00: 'OK',
  0xc0: 'node busy',
  0xc1: 'invalid command',
  0xc2: 'command invalid for given LUN',
  0xc3: 'timeout while processing command',
  0xc4: 'out of space',
  0xc5: 'reservation canceled or invalid',
  0xc6: 'request data truncated',
  0xc7: 'request data length invalid',
  0xc8: 'request data field length limit exceeded',
  0xc9: 'parameter out of range',
  0xca: 'cannot return number of requested data bytes',
  0xcb: 'requested sensor, data, or record not present',
  0xcc: 'invalid data field in request',
  0xcd: 'command illegal for specified sensor or record type',
  0xce: 'command response could not be provided',
  0xcf: 'cannot execute duplicated request',
  0xd4: 'insufficient privilege level',
  0xd5: 'command not supported in present state',
  0xff: 'unspecified error',
};

/** Cryptographically random bytes, drawn from a pool (many small draws are costly one by one). */
let pool = Buffer.alloc(0);
let poolOff = 0;
export function random(n: number): Buffer {
  if (n > 256) return randomBytes(n);
  if (poolOff + n > pool.length) { pool = randomBytes(8192); poolOff = 0; }
  const out = Buffer.from(pool.subarray(poolOff, poolOff + n));
  pool.fill(0, poolOff, poolOff + n);
  poolOff += n;
  return out;
}

/** A random non-zero 32-bit session ID. */
export function randomSessionId(): number {
  for (;;) { const v = random(4).readUInt32LE(0); if (v !== 0) return v; }
}

// ---------------------------------------------------------------------------------------------
// Cipher suites

export type AuthAlg = 'none' | 'hmac-sha1' | 'hmac-md5' | 'hmac-sha256';
export type IntegrityAlg = 'none' | 'hmac-sha1-96' | 'hmac-md5-128' | 'md5-128' | 'hmac-sha256-128';
export type ConfAlg = 'none' | 'aes-cbc-128';

export interface CipherSuite {
  id: number;
  auth: AuthAlg;
  integrity: IntegrityAlg;
  conf: ConfAlg;
}

export const AUTH_ALG_IDS: Record<AuthAlg, number> = { 'none': 0, 'hmac-sha1': 1, 'hmac-md5': 2, 'hmac-sha256': 3 };
export const INTEGRITY_ALG_IDS: Record<IntegrityAlg, number> = { 'none': 0, 'hmac-sha1-96': 1, 'hmac-md5-128': 2, 'md5-128': 3, 'hmac-sha256-128': 4 };
export const CONF_ALG_IDS: Record<ConfAlg, number> = { 'none': 0, 'aes-cbc-128': 1 };

/** The cipher suites implemented here (IPMI v2.0 table 22-20). */
export const CIPHER_SUITES: Record<number, CipherSuite> = {
  0: { id: 0, auth: 'none', integrity: 'none', conf: 'none' },
  1: { id: 1, auth: 'hmac-sha1', integrity: 'none', conf: 'none' },
  2: { id: 2, auth: 'hmac-sha1', integrity: 'hmac-sha1-96', conf: 'none' },
  3: { id: 3, auth: 'hmac-sha1', integrity: 'hmac-sha1-96', conf: 'aes-cbc-128' },
  15: { id: 15, auth: 'hmac-sha256', integrity: 'none', conf: 'none' },
  16: { id: 16, auth: 'hmac-sha256', integrity: 'hmac-sha256-128', conf: 'none' },
  17: { id: 17, auth: 'hmac-sha256', integrity: 'hmac-sha256-128', conf: 'aes-cbc-128' },
};
export const SUPPORTED_CIPHER_SUITES = Object.keys(CIPHER_SUITES).map(Number);

export function suiteFromAlgs(auth: number, integrity: number, conf: number): CipherSuite | undefined {
  return Object.values(CIPHER_SUITES).find((s) => AUTH_ALG_IDS[s.auth] === auth && INTEGRITY_ALG_IDS[s.integrity] === integrity && CONF_ALG_IDS[s.conf] === conf);
}

function hashOf(alg: AuthAlg): 'sha1' | 'sha256' | 'md5' {
  return alg === 'hmac-sha256' ? 'sha256' : alg === 'hmac-md5' ? 'md5' : 'sha1';
}

/** HMAC with the RAKP authentication algorithm; empty for 'none'. */
export function rakpHmac(alg: AuthAlg, key: Buffer, data: Buffer): Buffer {
  if (alg === 'none') return Buffer.alloc(0);
  return createHmac(hashOf(alg), key).update(data).digest();
}

/** Length of the RAKP 4 integrity check value for an authentication algorithm. */
export function rakp4IcvLength(alg: AuthAlg): number {
  return alg === 'none' ? 0 : alg === 'hmac-sha1' ? 12 : 16;
}

/** Length of the AuthCode trailer for an integrity algorithm. */
export function integrityLength(alg: IntegrityAlg): number {
  return alg === 'none' ? 0 : alg === 'hmac-sha1-96' ? 12 : 16;
}

/** Session keys derived after RAKP: SIK, K1 (integrity) and K2 (confidentiality). */
export interface SessionKeys {
  sik: Buffer;
  k1: Buffer;
  k2: Buffer;
}

export function deriveKeys(suite: CipherSuite, kg: Buffer, rm: Buffer, rc: Buffer, role: number, username: Buffer): SessionKeys {
  const c1 = Buffer.alloc(20, 0x01);
  const c2 = Buffer.alloc(20, 0x02);
  if (suite.auth === 'none') return { sik: Buffer.alloc(0), k1: c1, k2: c2 };
  const sik = rakpHmac(suite.auth, kg, Buffer.concat([rm, rc, Buffer.from([role, username.length]), username]));
  return { sik, k1: rakpHmac(suite.auth, sik, c1), k2: rakpHmac(suite.auth, sik, c2) };
}

function integrityMac(alg: IntegrityAlg, k1: Buffer, data: Buffer): Buffer {
  switch (alg) {
    case 'none': return Buffer.alloc(0);
    case 'hmac-sha1-96': return createHmac('sha1', k1).update(data).digest().subarray(0, 12);
    case 'hmac-sha256-128': return createHmac('sha256', k1).update(data).digest().subarray(0, 16);
    case 'hmac-md5-128': return createHmac('md5', k1).update(data).digest();
    default: throw new IpmiDecodeError(`integrity algorithm ${alg} is not supported`);
  }
}

export function encryptPayload(conf: ConfAlg, k2: Buffer, plain: Buffer): Buffer {
  if (conf === 'none') return plain;
  const padLen = (16 - ((plain.length + 1) % 16)) % 16;
  const pad = Buffer.alloc(padLen + 1);
  for (let i = 0; i < padLen; i++) pad[i] = i + 1;
  pad[padLen] = padLen;
  const iv = random(16);
  const c = createCipheriv('aes-128-cbc', k2.subarray(0, 16), iv).setAutoPadding(false);
  return Buffer.concat([iv, c.update(Buffer.concat([plain, pad])), c.final()]);
}

export function decryptPayload(conf: ConfAlg, k2: Buffer, data: Buffer): Buffer {
  if (conf === 'none') return data;
  if (data.length < 32 || data.length % 16 !== 0) throw new IpmiDecodeError(`encrypted payload length ${data.length} is not a multiple of 16 with an IV`);
  const d = createDecipheriv('aes-128-cbc', k2.subarray(0, 16), data.subarray(0, 16)).setAutoPadding(false);
  const plain = Buffer.concat([d.update(data.subarray(16)), d.final()]);
  const padLen = plain[plain.length - 1]!;
  if (padLen > 15 || padLen + 1 > plain.length) throw new IpmiDecodeError('bad confidentiality pad length');
  return plain.subarray(0, plain.length - 1 - padLen);
}

// ---------------------------------------------------------------------------------------------
// Packets

export type Packet =
  | { kind: 'asf'; messageType: number; tag: number; data: Buffer }
  | { kind: 'v15'; authType: number; sequence: number; sessionId: number; message: Buffer }
  | { kind: 'v20'; payloadType: number; encrypted: boolean; authenticated: boolean; sessionId: number; sequence: number; payload: Buffer; /** Raw bytes for integrity checking. */ raw: Buffer };

function need(buf: Buffer, n: number, what: string): void {
  if (buf.length < n) throw new IpmiDecodeError(`${what}: packet too short (${buf.length} < ${n} bytes)`);
}

/** Decode one UDP datagram (RMCP framing and the session header; payload left as is). */
export function decodePacket(buf: Buffer): Packet {
  need(buf, 4, 'RMCP header');
  if (buf[0] !== RMCP_VERSION) throw new IpmiDecodeError(`not RMCP (version byte 0x${buf[0]!.toString(16)})`);
  const cls = buf[3]! & 0x1f;
  if (cls === RMCP_CLASS_ASF) {
    need(buf, 12, 'ASF message');
    if (buf.readUInt32BE(4) !== ASF_IANA) throw new IpmiDecodeError('ASF message with an unknown IANA number');
    const len = buf[11]!;
    need(buf, 12 + len, 'ASF message data');
    return { kind: 'asf', messageType: buf[8]!, tag: buf[9]!, data: buf.subarray(12, 12 + len) };
  }
  if (cls !== RMCP_CLASS_IPMI) throw new IpmiDecodeError(`unknown RMCP message class 0x${cls.toString(16)}`);
  need(buf, 5, 'session header');
  const authType = buf[4]! & 0x0f;
  if (authType === AUTH_TYPE_RMCPP) {
    need(buf, 16, 'RMCP+ session header');
    const pt = buf[5]!;
    let off = 6;
    if ((pt & 0x3f) === 0x02) { need(buf, 22, 'OEM payload header'); off += 6; }
    const sessionId = buf.readUInt32LE(off);
    const sequence = buf.readUInt32LE(off + 4);
    const len = buf.readUInt16LE(off + 8);
    off += 10;
    need(buf, off + len, 'RMCP+ payload');
    return { kind: 'v20', payloadType: pt & 0x3f, encrypted: (pt & 0x80) !== 0, authenticated: (pt & 0x40) !== 0, sessionId, sequence, payload: buf.subarray(off, off + len), raw: buf };
  }
  need(buf, 14, 'IPMI 1.5 session header');
  const sequence = buf.readUInt32LE(5);
  const sessionId = buf.readUInt32LE(9);
  let off = 13;
  if (authType !== AUTH_TYPE_NONE) off += 16;
  need(buf, off + 1, 'IPMI 1.5 session header');
  const len = buf[off]!;
  need(buf, off + 1 + len, 'IPMI 1.5 message');
  return { kind: 'v15', authType, sequence, sessionId, message: buf.subarray(off + 1, off + 1 + len) };
}

const RMCP_IPMI_HEADER = Buffer.from([RMCP_VERSION, 0x00, 0xff, RMCP_CLASS_IPMI]);

/** An IPMI 1.5 packet with no authentication (pre-session messages). */
export function encodeV15(message: Buffer, sessionId = 0, sequence = 0): Buffer {
  const h = Buffer.alloc(10);
  h[0] = AUTH_TYPE_NONE;
  h.writeUInt32LE(sequence >>> 0, 1);
  h.writeUInt32LE(sessionId >>> 0, 5);
  h[9] = message.length;
  return Buffer.concat([RMCP_IPMI_HEADER, h, message]);
}

/** What a session applies to its packets: none before RAKP completes. */
export interface SessionSecurity {
  suite: CipherSuite;
  k1: Buffer;
  k2: Buffer;
}

/** An IPMI 2.0 / RMCP+ packet, encrypted and signed as the session's suite asks. */
export function encodeV20(payloadType: number, payload: Buffer, sessionId: number, sequence: number, sec?: SessionSecurity): Buffer {
  const encrypt = !!sec && sec.suite.conf !== 'none';
  const sign = !!sec && sec.suite.integrity !== 'none';
  const body = encrypt ? encryptPayload(sec.suite.conf, sec.k2, payload) : payload;
  const h = Buffer.alloc(12);
  h[0] = AUTH_TYPE_RMCPP;
  h[1] = (payloadType & 0x3f) | (encrypt ? 0x80 : 0) | (sign ? 0x40 : 0);
  h.writeUInt32LE(sessionId >>> 0, 2);
  h.writeUInt32LE(sequence >>> 0, 6);
  h.writeUInt16LE(body.length, 10);
  if (!sign) return Buffer.concat([RMCP_IPMI_HEADER, h, body]);
  const padLen = (4 - ((12 + body.length + 2) % 4)) % 4;
  const trailer = Buffer.alloc(padLen + 2, 0xff);
  trailer[padLen] = padLen;
  trailer[padLen + 1] = 0x07;
  const signed = Buffer.concat([h, body, trailer]);
  return Buffer.concat([RMCP_IPMI_HEADER, signed, integrityMac(sec.suite.integrity, sec.k1, signed)]);
}

/**
 * Check the AuthCode of an authenticated RMCP+ packet and return the clear payload.
 * Throws IpmiDecodeError when the packet does not match what the session requires.
 */
export function openV20(p: Extract<Packet, { kind: 'v20' }>, sec: SessionSecurity): Buffer {
  const wantAuth = sec.suite.integrity !== 'none';
  const wantEnc = sec.suite.conf !== 'none';
  if (p.authenticated !== wantAuth) throw new IpmiDecodeError(`packet is ${p.authenticated ? '' : 'not '}authenticated, the session's cipher suite says otherwise`);
  if (p.encrypted !== wantEnc) throw new IpmiDecodeError(`packet is ${p.encrypted ? '' : 'not '}encrypted, the session's cipher suite says otherwise`);
  if (wantAuth) {
    const macLen = integrityLength(sec.suite.integrity);
    const hdr = p.payloadType === 0x02 ? 18 : 12;
    const payloadEnd = 4 + hdr + p.payload.length;
    const end = p.raw.length - macLen;
    if (end < payloadEnd + 2) throw new IpmiDecodeError('authenticated packet too short for its trailer');
    if (p.raw[end - 1] !== 0x07) throw new IpmiDecodeError('bad next-header byte in the integrity trailer');
    const mac = integrityMac(sec.suite.integrity, sec.k1, p.raw.subarray(4, end));
    const got = p.raw.subarray(end);
    if (got.length !== mac.length || !timingSafeEqual(got, mac)) throw new IpmiDecodeError('integrity check failed');
  }
  return wantEnc ? decryptPayload(sec.suite.conf, sec.k2, p.payload) : p.payload;
}

// ---------------------------------------------------------------------------------------------
// ASF presence ping / pong

export function encodeAsfPing(tag: number): Buffer {
  return Buffer.from([RMCP_VERSION, 0x00, 0xff, RMCP_CLASS_ASF, 0x00, 0x00, 0x11, 0xbe, 0x80, tag & 0xff, 0x00, 0x00]);
}

export function encodeAsfPong(tag: number): Buffer {
  const b = Buffer.alloc(28);
  Buffer.from([RMCP_VERSION, 0x00, 0xff, RMCP_CLASS_ASF, 0x00, 0x00, 0x11, 0xbe, 0x40, tag & 0xff, 0x00, 0x10]).copy(b);
  b.writeUInt32BE(ASF_IANA, 12);
  b[20] = 0x81; // IPMI supported, ASF 1.0
  return b;
}

// ---------------------------------------------------------------------------------------------
// IPMI messages

export function checksum(buf: Buffer, start = 0, end = buf.length): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + buf[i]!) & 0xff;
  return (0x100 - s) & 0xff;
}

export interface IpmiRequest {
  rsAddr: number;
  netFn: number;
  rsLun: number;
  rqAddr: number;
  rqSeq: number;
  rqLun: number;
  cmd: number;
  data: Buffer;
}

export interface IpmiResponse {
  rqAddr: number;
  netFn: number;
  rqLun: number;
  rsAddr: number;
  rqSeq: number;
  rsLun: number;
  cmd: number;
  code: number;
  data: Buffer;
}

export function encodeRequest(r: Pick<IpmiRequest, 'netFn' | 'cmd' | 'data' | 'rqSeq'> & Partial<IpmiRequest>): Buffer {
  const b = Buffer.alloc(7 + r.data.length);
  b[0] = r.rsAddr ?? 0x20;
  b[1] = ((r.netFn & 0x3f) << 2) | ((r.rsLun ?? 0) & 3);
  b[2] = checksum(b, 0, 2);
  b[3] = r.rqAddr ?? 0x81;
  b[4] = ((r.rqSeq & 0x3f) << 2) | ((r.rqLun ?? 0) & 3);
  b[5] = r.cmd;
  r.data.copy(b, 6);
  b[b.length - 1] = checksum(b, 3, b.length - 1);
  return b;
}

export function decodeRequest(b: Buffer): IpmiRequest {
  if (b.length < 7) throw new IpmiDecodeError(`IPMI request too short (${b.length} bytes)`);
  if (checksum(b, 0, 2) !== b[2]) throw new IpmiDecodeError('IPMI request header checksum mismatch');
  if (checksum(b, 3, b.length - 1) !== b[b.length - 1]) throw new IpmiDecodeError('IPMI request data checksum mismatch');
  return { rsAddr: b[0]!, netFn: b[1]! >> 2, rsLun: b[1]! & 3, rqAddr: b[3]!, rqSeq: b[4]! >> 2, rqLun: b[4]! & 3, cmd: b[5]!, data: b.subarray(6, b.length - 1) };
}

export function encodeResponse(req: IpmiRequest, code: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8 + data.length);
  b[0] = req.rqAddr;
  b[1] = (((req.netFn | 1) & 0x3f) << 2) | (req.rqLun & 3);
  b[2] = checksum(b, 0, 2);
  b[3] = req.rsAddr;
  b[4] = ((req.rqSeq & 0x3f) << 2) | (req.rsLun & 3);
  b[5] = req.cmd;
  b[6] = code;
  data.copy(b, 7);
  b[b.length - 1] = checksum(b, 3, b.length - 1);
  return b;
}

export function decodeResponse(b: Buffer): IpmiResponse {
  if (b.length < 8) throw new IpmiDecodeError(`IPMI response too short (${b.length} bytes)`);
  if (checksum(b, 0, 2) !== b[2]) throw new IpmiDecodeError('IPMI response header checksum mismatch');
  if (checksum(b, 3, b.length - 1) !== b[b.length - 1]) throw new IpmiDecodeError('IPMI response data checksum mismatch');
  return { rqAddr: b[0]!, netFn: b[1]! >> 2, rqLun: b[1]! & 3, rsAddr: b[3]!, rqSeq: b[4]! >> 2, rsLun: b[4]! & 3, cmd: b[5]!, code: b[6]!, data: b.subarray(7, b.length - 1) };
}

// ---------------------------------------------------------------------------------------------
// RMCP+ session setup payloads

export interface OpenSessionRequest {
  tag: number;
  privilege: number;
  consoleSessionId: number;
  auth: number;
  integrity: number;
  conf: number;
}

function algRecord(type: number, alg: number): Buffer {
  return Buffer.from([type, 0, 0, 8, alg, 0, 0, 0]);
}

export function encodeOpenSessionRequest(r: OpenSessionRequest): Buffer {
  const h = Buffer.alloc(8);
  h[0] = r.tag; h[1] = r.privilege;
  h.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  return Buffer.concat([h, algRecord(0, r.auth), algRecord(1, r.integrity), algRecord(2, r.conf)]);
}

export function decodeOpenSessionRequest(b: Buffer): OpenSessionRequest {
  if (b.length < 32) throw new IpmiDecodeError(`Open Session request too short (${b.length} bytes)`);
  const alg = (off: number, type: number) => {
    if ((b[off]! & 0x3f) !== type) throw new IpmiDecodeError(`Open Session request: payload record ${type} missing`);
    return b[off + 4]! & 0x3f;
  };
  return { tag: b[0]!, privilege: b[1]! & 0x0f, consoleSessionId: b.readUInt32LE(4), auth: alg(8, 0), integrity: alg(16, 1), conf: alg(24, 2) };
}

export interface OpenSessionResponse {
  tag: number;
  status: number;
  privilege: number;
  consoleSessionId: number;
  bmcSessionId: number;
  auth: number;
  integrity: number;
  conf: number;
}

export function encodeOpenSessionResponse(r: OpenSessionResponse): Buffer {
  const h = Buffer.alloc(12);
  h[0] = r.tag; h[1] = r.status; h[2] = r.privilege;
  h.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  if (r.status !== 0) return h.subarray(0, 8);
  h.writeUInt32LE(r.bmcSessionId >>> 0, 8);
  return Buffer.concat([h, algRecord(0, r.auth), algRecord(1, r.integrity), algRecord(2, r.conf)]);
}

export function decodeOpenSessionResponse(b: Buffer): OpenSessionResponse {
  if (b.length < 2) throw new IpmiDecodeError('Open Session response too short');
  const status = b[1]!;
  if (status !== 0) return { tag: b[0]!, status, privilege: 0, consoleSessionId: b.length >= 8 ? b.readUInt32LE(4) : 0, bmcSessionId: 0, auth: 0, integrity: 0, conf: 0 };
  if (b.length < 36) throw new IpmiDecodeError(`Open Session response too short (${b.length} bytes)`);
  return { tag: b[0]!, status, privilege: b[2]! & 0x0f, consoleSessionId: b.readUInt32LE(4), bmcSessionId: b.readUInt32LE(8), auth: b[16]! & 0x3f, integrity: b[24]! & 0x3f, conf: b[32]! & 0x3f };
}

export interface Rakp1 { tag: number; bmcSessionId: number; rm: Buffer; role: number; username: Buffer }
export function encodeRakp1(r: Rakp1): Buffer {
  const b = Buffer.alloc(28 + r.username.length);
  b[0] = r.tag;
  b.writeUInt32LE(r.bmcSessionId >>> 0, 4);
  r.rm.copy(b, 8);
  b[24] = r.role;
  b[27] = r.username.length;
  r.username.copy(b, 28);
  return b;
}
export function decodeRakp1(b: Buffer): Rakp1 {
  if (b.length < 28) throw new IpmiDecodeError(`RAKP 1 too short (${b.length} bytes)`);
  const n = b[27]!;
  if (n > 16 || b.length < 28 + n) throw new IpmiDecodeError(`RAKP 1: bad user name length ${n}`);
  return { tag: b[0]!, bmcSessionId: b.readUInt32LE(4), rm: Buffer.from(b.subarray(8, 24)), role: b[24]!, username: Buffer.from(b.subarray(28, 28 + n)) };
}

export interface Rakp2 { tag: number; status: number; consoleSessionId: number; rc: Buffer; guid: Buffer; authCode: Buffer }
export function encodeRakp2(r: Rakp2): Buffer {
  const h = Buffer.alloc(8);
  h[0] = r.tag; h[1] = r.status;
  h.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  if (r.status !== 0) return h;
  return Buffer.concat([h, r.rc, r.guid, r.authCode]);
}
export function decodeRakp2(b: Buffer): Rakp2 {
  if (b.length < 2) throw new IpmiDecodeError('RAKP 2 too short');
  const status = b[1]!;
  if (status !== 0) return { tag: b[0]!, status, consoleSessionId: b.length >= 8 ? b.readUInt32LE(4) : 0, rc: Buffer.alloc(0), guid: Buffer.alloc(0), authCode: Buffer.alloc(0) };
  if (b.length < 40) throw new IpmiDecodeError(`RAKP 2 too short (${b.length} bytes)`);
  return { tag: b[0]!, status, consoleSessionId: b.readUInt32LE(4), rc: Buffer.from(b.subarray(8, 24)), guid: Buffer.from(b.subarray(24, 40)), authCode: Buffer.from(b.subarray(40)) };
}

export interface Rakp34 { tag: number; status: number; sessionId: number; authCode: Buffer }
export function encodeRakp34(r: Rakp34): Buffer {
  const h = Buffer.alloc(8);
  h[0] = r.tag; h[1] = r.status;
  h.writeUInt32LE(r.sessionId >>> 0, 4);
  return r.status !== 0 ? h : Buffer.concat([h, r.authCode]);
}
export function decodeRakp34(b: Buffer): Rakp34 {
  if (b.length < 8) {
    if (b.length >= 2 && b[1] !== 0) return { tag: b[0]!, status: b[1]!, sessionId: 0, authCode: Buffer.alloc(0) };
    throw new IpmiDecodeError(`RAKP 3/4 too short (${b.length} bytes)`);
  }
  return { tag: b[0]!, status: b[1]!, sessionId: b.readUInt32LE(4), authCode: Buffer.from(b.subarray(8)) };
}

/** Input of the RAKP 2 key exchange authentication code (computed by the BMC, checked by the console). */
export function rakp2Input(consoleSid: number, bmcSid: number, rm: Buffer, rc: Buffer, guid: Buffer, role: number, username: Buffer): Buffer {
  const ids = Buffer.alloc(8);
  ids.writeUInt32LE(consoleSid >>> 0, 0);
  ids.writeUInt32LE(bmcSid >>> 0, 4);
  return Buffer.concat([ids, rm, rc, guid, Buffer.from([role, username.length]), username]);
}

/** Input of the RAKP 3 authentication code (computed by the console, checked by the BMC). */
export function rakp3Input(rc: Buffer, consoleSid: number, role: number, username: Buffer): Buffer {
  const id = Buffer.alloc(4);
  id.writeUInt32LE(consoleSid >>> 0, 0);
  return Buffer.concat([rc, id, Buffer.from([role, username.length]), username]);
}

/** Input of the RAKP 4 integrity check value (keyed with the SIK). */
export function rakp4Input(rm: Buffer, bmcSid: number, guid: Buffer): Buffer {
  const id = Buffer.alloc(4);
  id.writeUInt32LE(bmcSid >>> 0, 0);
  return Buffer.concat([rm, id, guid]);
}

/** The 16-byte GUID on the wire from a textual UUID (IPMI sends it least significant byte first). */
export function guidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  const b = /^[0-9a-fA-F]{32}$/.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(16);
  return Buffer.from(b.reverse());
}
