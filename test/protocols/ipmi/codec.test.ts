import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  CIPHER_SUITES, IpmiDecodeError, checksum, decodeOpenSessionRequest, decodePacket, decodeRakp1, decodeRakp2, decodeRakp34, decodeRequest,
  decodeResponse, decryptPayload, deriveKeys, encodeAsfPing, encodeAsfPong, encodeOpenSessionRequest, encodeRakp1, encodeRequest,
  encodeResponse, encodeV15, encodeV20, encryptPayload, openV20, decodeOpenSessionResponse,
} from '../../../src/protocols/ipmi/codec.js';
import { decodeBootFlags, encodeBootFlags, decodeChassisStatus, encodeChassisStatus } from '../../../src/protocols/ipmi/commands.js';
import fc from 'fast-check';

test('IPMI message checksums: header and data sum to zero', () => {
  const b = encodeRequest({ netFn: 0x06, cmd: 0x38, data: Buffer.from([0x8e, 0x04]), rqSeq: 5 });
  assert.equal((b[0]! + b[1]! + b[2]!) & 0xff, 0);
  assert.equal(b.subarray(3).reduce((a, x) => (a + x) & 0xff, 0), 0);
  assert.equal(checksum(Buffer.from([0x20, 0x18])), 0xc8);
  const req = decodeRequest(b);
  assert.deepEqual([req.netFn, req.cmd, req.rqSeq, [...req.data]], [6, 0x38, 5, [0x8e, 4]]);
  const rsp = decodeResponse(encodeResponse(req, 0, Buffer.from([1, 2])));
  assert.deepEqual([rsp.netFn, rsp.cmd, rsp.rqSeq, rsp.code, [...rsp.data]], [7, 0x38, 5, 0, [1, 2]]);
  const bad = Buffer.from(b); bad[6]! ^= 1;
  assert.throws(() => decodeRequest(bad), IpmiDecodeError);
});

test('ipmitool\'s Get Channel Auth Capabilities packet decodes', () => {
  // As sent by ipmitool -I lanplus: RMCP, IPMI 1.5 header (no auth), message.
  const pkt = Buffer.from('0600ff07000000000000000000092018c88100388e04b5', 'hex');
  const p = decodePacket(pkt);
  assert.equal(p.kind, 'v15');
  if (p.kind !== 'v15') return;
  const r = decodeRequest(p.message);
  assert.equal(r.cmd, 0x38);
  assert.deepEqual([...r.data], [0x8e, 0x04]);
  assert.deepEqual(encodeV15(p.message), pkt);
});

test('ASF presence ping and pong', () => {
  const ping = decodePacket(encodeAsfPing(7));
  assert.deepEqual(ping.kind === 'asf' && [ping.messageType, ping.tag], [0x80, 7]);
  const pong = decodePacket(encodeAsfPong(7));
  assert.ok(pong.kind === 'asf' && pong.messageType === 0x40 && pong.tag === 7 && pong.data.length === 16 && pong.data[8] === 0x81);
});

test('RMCP+ packets round-trip with integrity and AES for every suite', () => {
  for (const suite of Object.values(CIPHER_SUITES)) {
    const keys = deriveKeys(suite, Buffer.from('password'), randomBytes(16), randomBytes(16), 0x14, Buffer.from('admin'));
    const sec = { suite, k1: keys.k1, k2: keys.k2 };
    for (let n = 0; n < 40; n++) {
      const msg = randomBytes(n);
      const wire = encodeV20(0, msg, 0x1234, n + 1, sec);
      const p = decodePacket(wire);
      assert.equal(p.kind, 'v20');
      if (p.kind !== 'v20') continue;
      assert.equal(p.sessionId, 0x1234);
      assert.equal(p.sequence, n + 1);
      assert.deepEqual(openV20(p, sec), msg, `suite ${suite.id} length ${n}`);
      if (suite.integrity !== 'none') {
        assert.equal((wire.length - 4 - (suite.integrity === 'hmac-sha1-96' ? 12 : 16)) % 4, 0, 'integrity pad aligns to 4');
        const bad = Buffer.from(wire); bad[bad.length - 1]! ^= 0x55;
        const q = decodePacket(bad);
        assert.throws(() => openV20(q as never, sec), /integrity/);
      }
    }
  }
});

test('AES-CBC-128 confidentiality: pad, IV, tamper', () => {
  const k2 = randomBytes(20);
  for (let n = 0; n < 33; n++) {
    const plain = randomBytes(n);
    const c = encryptPayload('aes-cbc-128', k2, plain);
    assert.equal(c.length % 16, 0);
    assert.deepEqual(decryptPayload('aes-cbc-128', k2, c), plain);
  }
  assert.throws(() => decryptPayload('aes-cbc-128', k2, randomBytes(17)), IpmiDecodeError);
});

test('Open Session and RAKP 1 payloads', () => {
  const os = { tag: 3, privilege: 0, consoleSessionId: 0xa0a1a2a3, auth: 1, integrity: 1, conf: 1 };
  assert.deepEqual(decodeOpenSessionRequest(encodeOpenSessionRequest(os)), os);
  const r1 = { tag: 9, bmcSessionId: 77, rm: randomBytes(16), role: 0x14, username: Buffer.from('admin') };
  assert.deepEqual(decodeRakp1(encodeRakp1(r1)), r1);
  assert.throws(() => decodeRakp1(Buffer.alloc(10)), IpmiDecodeError);
});

test('boot flags (parameter 5) and chassis status', () => {
  const f = decodeBootFlags(encodeBootFlags({ valid: true, persistent: true, mode: 'uefi', device: 'pxe' }));
  assert.deepEqual(f, { valid: true, persistent: true, mode: 'uefi', device: 'pxe', selector: 1 });
  assert.deepEqual([...encodeBootFlags({ valid: true, persistent: false, mode: 'bios', device: 'pxe' })], [0x80, 0x04, 0, 0, 0]);
  assert.equal(decodeBootFlags(Buffer.from([0xc0, 0x08, 0, 0, 0])).device, 'disk');
  assert.equal(decodeBootFlags(Buffer.from([0x80, 0x14, 0, 0, 0])).device, 'cdrom');
  assert.equal(decodeBootFlags(Buffer.from([0x80, 0x18, 0, 0, 0])).device, 'bios');
  assert.equal(decodeChassisStatus(encodeChassisStatus(true)).powerOn, true);
  assert.equal(decodeChassisStatus(encodeChassisStatus(false)).powerOn, false);
});

test('decoders throw only IpmiDecodeError on random and mutated input (property)', () => {
  const suite = CIPHER_SUITES[17]!;
  const keys = deriveKeys(suite, Buffer.from('pw'), randomBytes(16), randomBytes(16), 4, Buffer.from('u'));
  const sec = { suite, k1: keys.k1, k2: keys.k2 };
  const seeds = [
    encodeV15(encodeRequest({ netFn: 6, cmd: 0x38, data: Buffer.from([0x8e, 4]), rqSeq: 1 })),
    encodeV20(0x10, encodeOpenSessionRequest({ tag: 1, privilege: 4, consoleSessionId: 5, auth: 3, integrity: 4, conf: 1 }), 0, 0),
    encodeV20(0, encodeRequest({ netFn: 0, cmd: 1, data: Buffer.alloc(0), rqSeq: 2 }), 9, 3, sec),
    encodeAsfPing(1),
  ];
  const only = (fn: () => unknown) => { try { fn(); } catch (e) { if (!(e instanceof IpmiDecodeError)) throw e; } };
  const decodeAll = (b: Buffer) => {
    only(() => {
      const p = decodePacket(b);
      if (p.kind === 'v20') {
        only(() => openV20(p, sec));
        for (const d of [decodeOpenSessionRequest, decodeOpenSessionResponse, decodeRakp1, decodeRakp2, decodeRakp34, decodeRequest, decodeResponse]) only(() => d(p.payload));
      }
      if (p.kind === 'v15') { only(() => decodeRequest(p.message)); only(() => decodeResponse(p.message)); }
    });
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (a) => { decodeAll(Buffer.from(a)); }), { numRuns: 3000 });
  fc.assert(fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(300), (seed, flips, cut) => {
    const b = Buffer.from(seed);
    for (const [i, v] of flips) b[i % b.length] = v;
    decodeAll(b.subarray(0, Math.max(0, b.length - (cut % 8 === 0 ? cut % b.length : 0))));
  }), { numRuns: 3000 });
});
