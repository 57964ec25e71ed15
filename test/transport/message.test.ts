import assert from 'node:assert/strict';
import {
  blockSize,
  CoapFormatError,
  decodeBlock,
  decodeUint,
  encodeBlock,
  encodeUint,
  getOption,
  getOptions,
  getUintOption,
  methodOf,
  OptionNumber,
  parseMessage,
  pathOptions,
  peekHeader,
  queryOptions,
  serializeMessage,
  stringOptions,
  szxFor,
  uintOption,
  type CoapMessage,
  type MessageType,
} from '../../lib/transport/message';
import * as coapPacket from 'coap-packet';
import { hex } from '../helpers/bytes';

const EMPTY = Buffer.alloc(0);

function message(fields: Partial<CoapMessage>): CoapMessage {
  return { type: 'CON', code: '0.01', messageId: 0x1234, token: EMPTY, options: [], payload: EMPTY, ...fields };
}

function roundTrip(original: CoapMessage): CoapMessage {
  return parseMessage(serializeMessage(original));
}

describe('CoAP messages (transport/message)', () => {
  describe('round trip', () => {
    it('keeps type, code, message id, token, options and payload for CON/NON/ACK/RST', () => {
      const cases: Array<[MessageType, string]> = [
        ['CON', '0.02'],
        ['NON', '0.01'],
        ['ACK', '2.05'],
        ['RST', '0.00'],
      ];
      for (const [type, code] of cases) {
        const empty = code === '0.00';
        const original = message({
          type,
          code,
          messageId: 0xbeef,
          token: empty ? EMPTY : Buffer.from('a1b2c3', 'hex'),
          options: empty ? [] : [uintOption(OptionNumber.CONTENT_FORMAT, 11542)],
          payload: empty ? EMPTY : Buffer.from(`payload of a ${type}`),
        });
        assert.deepEqual(roundTrip(original), original, `${type} ${code}`);
      }
    });

    it('writes the header bits of RFC 7252 §3 exactly', () => {
      // RFC 7252 Figure 7: CON GET, mid 0x7d34, Uri-Path "temperature"
      const datagram = serializeMessage(message({ messageId: 0x7d34, options: pathOptions(['temperature']) }));
      assert.deepEqual(datagram, Buffer.concat([hex('40 01 7d 34 bb'), Buffer.from('temperature')]));
      assert.deepEqual(serializeMessage(message({ type: 'NON', code: '0.00', messageId: 1 })), hex('50 00 00 01'));
      assert.deepEqual(serializeMessage(message({ type: 'ACK', code: '0.00', messageId: 2 })), hex('60 00 00 02'));
      assert.deepEqual(serializeMessage(message({ type: 'RST', code: '0.00', messageId: 3 })), hex('70 00 00 03'));
      assert.deepEqual(serializeMessage(message({ code: '4.04', token: hex('ff'), payload: Buffer.from('x') })), hex('41 84 12 34 ff ff 78'));
    });

    it('keeps repeated options in their order and sorts different numbers', () => {
      const original = message({
        options: [
          ...queryOptions(['ep=node1', 'lt=300', 'b=U']),
          uintOption(OptionNumber.CONTENT_FORMAT, 40),
          ...pathOptions(['rd', 'abc', '0', 'z']),
          uintOption(OptionNumber.URI_PORT, 5683),
        ],
      });
      const parsed = roundTrip(original);
      assert.deepEqual(
        parsed.options.map((option) => option.number),
        [7, 11, 11, 11, 11, 12, 15, 15, 15],
      );
      assert.deepEqual(stringOptions(parsed, OptionNumber.URI_PATH), ['rd', 'abc', '0', 'z']);
      assert.deepEqual(stringOptions(parsed, OptionNumber.URI_QUERY), ['ep=node1', 'lt=300', 'b=U']);
      assert.equal(getUintOption(parsed, OptionNumber.URI_PORT), 5683);
      assert.equal(getUintOption(parsed, OptionNumber.CONTENT_FORMAT), 40);
    });

    it('carries tokens of 0 to 8 bytes', () => {
      for (let length = 0; length <= 8; length++) {
        const token = Buffer.from(Array.from({ length }, (_, i) => 0xa0 + i));
        const datagram = serializeMessage(message({ token }));
        assert.equal(datagram[0]! & 0x0f, length);
        assert.deepEqual(parseMessage(datagram).token, token);
      }
    });

    it('carries empty, small and large payloads and long options with extended delta/length', () => {
      const long = Buffer.alloc(300, 0x61); // option length >= 269: 2-byte extension
      const medium = Buffer.alloc(20, 0x62); // option length 13..268: 1-byte extension
      const original = message({
        options: [
          { number: OptionNumber.URI_PATH, value: medium },
          { number: OptionNumber.PROXY_URI, value: long }, // delta 24: 1-byte extension
          { number: 2100, value: hex('01') }, // delta 2065: 2-byte extension
        ],
        payload: Buffer.alloc(4000, 7),
      });
      assert.deepEqual(roundTrip(original), original);
      const noPayload = message({ options: pathOptions(['x']) });
      const datagram = serializeMessage(noPayload);
      assert.equal(datagram.includes(0xff), false, 'no payload marker without a payload');
      assert.deepEqual(parseMessage(datagram).payload, EMPTY);
    });

    it('parses a datagram written by hand', () => {
      // CON PUT, mid 0x0102, token 0xcafe, Uri-Path "3" "0" "1", Content-Format 0 (empty), payload "hi"
      const parsed = parseMessage(hex('42 03 01 02 ca fe b1 33 01 30 01 31 10 ff 68 69'));
      assert.equal(parsed.type, 'CON');
      assert.equal(parsed.code, '0.03');
      assert.equal(methodOf(parsed.code), 'PUT');
      assert.equal(parsed.messageId, 0x0102);
      assert.deepEqual(parsed.token, hex('ca fe'));
      assert.deepEqual(stringOptions(parsed, OptionNumber.URI_PATH), ['3', '0', '1']);
      assert.equal(getUintOption(parsed, OptionNumber.CONTENT_FORMAT), 0);
      assert.deepEqual(parsed.payload, Buffer.from('hi'));
    });
  });

  describe('rejects malformed datagrams', () => {
    const bad: Array<[string, Buffer]> = [
      ['fewer than 4 bytes', hex('40 01 00')],
      ['an empty datagram', EMPTY],
      ['version 0', hex('00 01 00 01')],
      ['version 2', hex('80 01 00 01')],
      ['version 3', hex('c0 01 00 01')],
      ['a truncated option value', hex('40 01 00 01 b5 61 62')],
      ['a truncated 1-byte option delta extension', hex('40 01 00 01 d0')],
      ['a truncated 2-byte option delta extension', hex('40 01 00 01 e0 00')],
      ['a truncated 1-byte option length extension', hex('40 01 00 01 bd')],
      ['a truncated 2-byte option length extension', hex('40 01 00 01 be 00')],
      ['an option value cut by the extended length', hex('40 01 00 01 bd 05 61 61')],
      ['option delta nibble 15', hex('40 01 00 01 f1 61')],
      ['option length nibble 15', hex('40 01 00 01 bf 61')],
      ['a payload marker with no payload', hex('40 01 00 01 ff')],
      ['a payload marker with no payload after options', hex('40 01 00 01 b1 61 ff')],
      ['an empty message with a token', hex('41 00 00 01 aa')],
      ['an empty message with bytes after the header', hex('60 00 00 01 ff 61')],
      ['a token longer than the datagram', hex('48 01 00 01 aa bb')],
      ['a token announced but absent', hex('44 01 00 01')],
    ];
    for (const [what, datagram] of bad) {
      it(`rejects ${what}`, () => {
        assert.throws(() => parseMessage(datagram), CoapFormatError);
      });
    }

    it('rejects token lengths 9 to 15 (reserved)', () => {
      for (let tkl = 9; tkl <= 15; tkl++) {
        const datagram = Buffer.concat([Buffer.from([0x40 | tkl, 0x01, 0x00, 0x01]), Buffer.alloc(20, 0xaa)]);
        assert.throws(() => parseMessage(datagram), CoapFormatError, `TKL ${tkl}`);
      }
    });
  });

  it('refuses to write a token over 8 bytes or an empty message with content', () => {
    const base = { type: 'CON' as const, code: '0.01', messageId: 1, options: [], payload: Buffer.alloc(0) };
    assert.throws(() => serializeMessage({ ...base, token: Buffer.alloc(9) }), /at most 8 bytes/);
    assert.throws(() => serializeMessage({ ...base, code: '0.00', token: Buffer.alloc(0), payload: Buffer.from('x') }), /empty message/);
  });

  it('reads 20,000 random and mutated datagrams without any error but CoapFormatError, and re-writes what it accepts', () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 48271) % 2147483647) % n);
    const valid = serializeMessage(
      message({ token: hex('a1b2c3d4'), options: [...pathOptions(['rd']), ...queryOptions(['ep=x', 'lt=60']), uintOption(OptionNumber.CONTENT_FORMAT, 40)], payload: Buffer.from('</3/0>,</1/0>') }),
    );
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      let datagram: Buffer;
      if (i % 2 === 0) {
        datagram = Buffer.from(Array.from({ length: random(40) }, () => random(256)));
        if (datagram.length > 0) datagram[0] = (datagram[0]! & 0x3f) | 0x40; // mostly version 1, to get past the header
      } else {
        datagram = Buffer.from(valid);
        for (let flips = random(4) + 1; flips > 0; flips--) datagram[random(datagram.length)] = random(256);
        if (random(3) === 0) datagram = datagram.subarray(0, random(datagram.length + 1));
      }
      try {
        const parsed = parseMessage(datagram);
        accepted++;
        if (parsed.token.length <= 8) assert.deepEqual(parseMessage(serializeMessage(parsed)).options, parsed.options);
      } catch (error) {
        assert.ok(error instanceof CoapFormatError, `${datagram.toString('hex')}: ${String(error)}`);
      }
    }
    assert.ok(accepted > 1000, `some mutations are still valid messages (${accepted})`);
  });

  it('writes the same bytes as coap-packet (an independent writer) for 2,000 random messages', () => {
    let seed = 3;
    const random = (n: number) => ((seed = (seed * 48271) % 2147483647) % n);
    const types: MessageType[] = ['CON', 'NON', 'ACK', 'RST'];
    const bits = { CON: { confirmable: true }, NON: {}, ACK: { ack: true }, RST: { reset: true } };
    for (let i = 0; i < 2000; i++) {
      const type = types[random(4)]!;
      const options = Array.from({ length: random(6) }, () => ({
        number: [1, 4, 6, 11, 12, 14, 15, 17, 23, 27, 28, 60, 258, 300, 2000][random(15)]!,
        value: Buffer.from(Array.from({ length: [0, 1, 5, 12, 13, 14, 100, 268, 269, 300][random(10)]! }, () => random(256))),
      }));
      const original = message({
        type,
        code: `${1 + random(5)}.${String(random(32)).padStart(2, '0')}`,
        messageId: random(65536),
        token: Buffer.from(Array.from({ length: random(9) }, () => random(256))),
        options,
        payload: Buffer.from(Array.from({ length: random(3) === 0 ? 0 : random(400) }, () => random(256))),
      });
      const theirs = coapPacket.generate(
        { ...bits[type], code: original.code, messageId: original.messageId, token: original.token, options: original.options.map((option) => ({ name: String(option.number), value: option.value })), payload: original.payload },
        65507,
      );
      assert.deepEqual(serializeMessage(original), theirs, `message ${i}`);
    }
  });

  describe('peekHeader', () => {
    it('reads type and message id of a version 1 header even when the rest is broken', () => {
      assert.deepEqual(peekHeader(hex('40 01 12 34 f1')), { type: 'CON', messageId: 0x1234 });
      assert.deepEqual(peekHeader(hex('5f 01 ab cd')), { type: 'NON', messageId: 0xabcd });
      assert.deepEqual(peekHeader(hex('60 00 00 07')), { type: 'ACK', messageId: 7 });
      assert.deepEqual(peekHeader(hex('70 00 ff ff')), { type: 'RST', messageId: 0xffff });
    });

    it('gives up on short datagrams and other versions', () => {
      assert.equal(peekHeader(hex('40 01 12')), undefined);
      assert.equal(peekHeader(hex('00 01 12 34')), undefined);
      assert.equal(peekHeader(hex('80 01 12 34')), undefined);
    });
  });

  describe('option helpers', () => {
    it('encodeUint writes the shortest big-endian form, zero as no bytes', () => {
      assert.deepEqual(encodeUint(0), EMPTY);
      assert.deepEqual(encodeUint(1), hex('01'));
      assert.deepEqual(encodeUint(255), hex('ff'));
      assert.deepEqual(encodeUint(256), hex('01 00'));
      assert.deepEqual(encodeUint(0xffff), hex('ff ff'));
      assert.deepEqual(encodeUint(0x10000), hex('01 00 00'));
      assert.deepEqual(encodeUint(0xffffff), hex('ff ff ff'));
      assert.deepEqual(encodeUint(0x1000000), hex('01 00 00 00'));
      assert.deepEqual(encodeUint(0xffffffff), hex('ff ff ff ff'));
    });

    it('encodeUint refuses what is not a 32-bit unsigned integer', () => {
      for (const value of [-1, 1.5, 0x100000000, Number.NaN, Infinity]) {
        assert.throws(() => encodeUint(value), RangeError, String(value));
      }
    });

    it('decodeUint reads 0 to 4 bytes (leading zeros allowed) and refuses 5', () => {
      assert.equal(decodeUint(EMPTY), 0);
      assert.equal(decodeUint(hex('00')), 0);
      assert.equal(decodeUint(hex('00 01')), 1);
      assert.equal(decodeUint(hex('12 34 56')), 0x123456);
      assert.equal(decodeUint(hex('ff ff ff ff')), 0xffffffff);
      assert.throws(() => decodeUint(hex('01 00 00 00 00')), CoapFormatError);
      for (const value of [0, 1, 300, 70000, 0x12345678]) assert.equal(decodeUint(encodeUint(value)), value);
    });

    it('getOption returns the first value, getOptions all of them in order', () => {
      const msg = { options: [...pathOptions(['a', 'b']), uintOption(OptionNumber.OBSERVE, 0)] };
      assert.deepEqual(getOption(msg, OptionNumber.URI_PATH), Buffer.from('a'));
      assert.deepEqual(getOptions(msg, OptionNumber.URI_PATH), [Buffer.from('a'), Buffer.from('b')]);
      assert.equal(getOption(msg, OptionNumber.ACCEPT), undefined);
      assert.deepEqual(getOptions(msg, OptionNumber.ACCEPT), []);
      assert.equal(getUintOption(msg, OptionNumber.OBSERVE), 0, 'an empty uint option is 0, not absent');
      assert.equal(getUintOption(msg, OptionNumber.ACCEPT), undefined);
    });

    it('methodOf maps request codes to method names and nothing else', () => {
      assert.equal(methodOf('0.01'), 'GET');
      assert.equal(methodOf('0.02'), 'POST');
      assert.equal(methodOf('0.03'), 'PUT');
      assert.equal(methodOf('0.04'), 'DELETE');
      assert.equal(methodOf('0.05'), 'FETCH');
      assert.equal(methodOf('0.06'), 'PATCH');
      assert.equal(methodOf('0.07'), 'IPATCH');
      assert.equal(methodOf('0.08'), undefined);
      assert.equal(methodOf('2.05'), undefined);
      assert.equal(methodOf('0.00'), undefined);
    });
  });

  describe('block options (RFC 7959 §2.2)', () => {
    it('encodes NUM, M and SZX', () => {
      assert.deepEqual(encodeBlock({ num: 0, more: false, szx: 0 }), EMPTY);
      assert.deepEqual(encodeBlock({ num: 0, more: true, szx: 6 }), hex('0e'));
      assert.deepEqual(encodeBlock({ num: 1, more: false, szx: 2 }), hex('12'));
      assert.deepEqual(encodeBlock({ num: 15, more: true, szx: 4 }), hex('fc'));
      assert.deepEqual(encodeBlock({ num: 16, more: false, szx: 6 }), hex('01 06'));
      assert.deepEqual(encodeBlock({ num: 0xfffff, more: true, szx: 5 }), hex('ff ff fd'));
    });

    it('decodes NUM, M and SZX', () => {
      assert.deepEqual(decodeBlock(EMPTY), { num: 0, more: false, szx: 0 });
      assert.deepEqual(decodeBlock(hex('0e')), { num: 0, more: true, szx: 6 });
      assert.deepEqual(decodeBlock(hex('01 06')), { num: 16, more: false, szx: 6 });
      assert.deepEqual(decodeBlock(hex('ff ff fd')), { num: 0xfffff, more: true, szx: 5 });
      for (const block of [
        { num: 3, more: true, szx: 1 },
        { num: 4095, more: false, szx: 3 },
        { num: 70000, more: true, szx: 6 },
      ]) {
        assert.deepEqual(decodeBlock(encodeBlock(block)), block);
      }
    });

    it('refuses SZX 7 and values longer than 3 bytes', () => {
      assert.throws(() => decodeBlock(hex('07')), CoapFormatError);
      assert.throws(() => decodeBlock(hex('0f')), CoapFormatError);
      assert.throws(() => decodeBlock(hex('01 2f')), CoapFormatError);
      assert.throws(() => decodeBlock(hex('00 00 00 16')), CoapFormatError);
    });

    it('blockSize and szxFor agree on 16..1024', () => {
      assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(blockSize), [16, 32, 64, 128, 256, 512, 1024]);
      assert.equal(szxFor(1024), 6);
      assert.equal(szxFor(65536), 6, 'never more than 1024');
      assert.equal(szxFor(1023), 5);
      assert.equal(szxFor(512), 5);
      assert.equal(szxFor(300), 4);
      assert.equal(szxFor(256), 4);
      assert.equal(szxFor(16), 0);
      assert.equal(szxFor(10), 0, 'never less than 16');
      for (let bytes = 16; bytes <= 2048; bytes += 7) {
        const size = blockSize(szxFor(bytes));
        assert.ok(size <= bytes && (size === 1024 || size * 2 > bytes), `${bytes} → ${size}`);
      }
    });
  });
});
