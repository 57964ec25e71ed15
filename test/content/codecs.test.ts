/** The details of each codec that implementations commonly get wrong, one behaviour per test. */
import assert from 'node:assert/strict';
import {
  ContentFormat,
  ContentFormatError,
  decode,
  decodeComposite,
  decodeLinks,
  decodeRecords,
  encode,
  encodeComposite,
  encodeLinks,
  encodeRecords,
  ObjectModel,
  type LwM2MValue,
} from '../../lib';
import { hex } from '../helpers/bytes';

const model = ObjectModel.bundled();
model.addXml(`<LWM2M><Object><Name>Types</Name><ObjectID>40000</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
  <Item ID="0"><Name>s</Name><Operations>RW</Operations><Type>String</Type></Item>
  <Item ID="1"><Name>i</Name><Operations>RW</Operations><Type>Integer</Type></Item>
  <Item ID="2"><Name>u</Name><Operations>RW</Operations><Type>Unsigned Integer</Type></Item>
  <Item ID="3"><Name>f</Name><Operations>RW</Operations><Type>Float</Type></Item>
  <Item ID="4"><Name>b</Name><Operations>RW</Operations><Type>Boolean</Type></Item>
  <Item ID="5"><Name>o</Name><Operations>RW</Operations><Type>Opaque</Type></Item>
  <Item ID="6"><Name>t</Name><Operations>RW</Operations><Type>Time</Type></Item>
  <Item ID="7"><Name>l</Name><Operations>RW</Operations><Type>Objlnk</Type></Item>
  <Item ID="8"><Name>c</Name><Operations>RW</Operations><Type>Corelnk</Type></Item>
  <Item ID="9"><Name>x</Name><Operations>E</Operations><Type></Type></Item>
  <Item ID="10"><Name>fm</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Type>Float</Type></Item>
  <Item ID="300"><Name>wide</Name><Operations>RW</Operations><Type>Integer</Type></Item>
</Resources></Object></LWM2M>`);

/** Asserts a ContentFormatError for `format` whose message matches `reason`. */
function rejects(run: () => unknown, format: number, operation: 'encode' | 'decode', reason: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ContentFormatError, `expected ContentFormatError, got ${String(error)}`);
    assert.equal(error.format, format);
    assert.equal(error.operation, operation);
    assert.match(error.message, reason);
    return true;
  });
}

const { TEXT, OPAQUE, TLV, OMA_JSON, SENML_JSON, SENML_CBOR, LWM2M_CBOR } = ContentFormat;

describe('codecs', () => {
  describe('dispatch', () => {
    it('decodes the legacy numbers 1541/1542/1543 as text, TLV and OMA JSON', () => {
      assert.equal(decode(ContentFormat.LEGACY_TEXT, '/3/0/9', Buffer.from('95'), model), 95);
      assert.deepEqual(decode(ContentFormat.LEGACY_TLV, '/3/0', hex('C1 09 5F'), model), { 9: 95 });
      assert.deepEqual(decode(ContentFormat.LEGACY_JSON, '/3/0', Buffer.from('{"bn":"/3/0/","e":[{"n":"9","v":95}]}'), model), { 9: 95 });
    });

    it('refuses a format it does not know, and the link format for values', () => {
      rejects(() => decode(60, '/3/0', Buffer.from('a0', 'hex'), model), 60, 'decode', /content format 60 is not a format LwM2M values can be decoded in/);
      rejects(() => encodeComposite(TLV, { '/3/0/9': 1 }, model), TLV, 'encode', /cannot carry composite values/);
      rejects(() => encodeComposite(SENML_JSON, { '/3/0': { 9: 1 }, '/1/0/1': 60, '/3/0/9': 2 }, model), SENML_JSON, 'encode', /the paths \/3\/0 and \/3\/0\/9 overlap/);
      rejects(() => encodeComposite(SENML_JSON, { '/3/0/x': 1 }, model), SENML_JSON, 'encode', /Invalid LwM2M path/);
      rejects(() => encode(TLV, '/3/x', 1, model), TLV, 'encode', /Invalid LwM2M path "\/3\/x"/);
      rejects(() => decode(TLV, '/3/0', 'C1095F' as unknown as Buffer, model), TLV, 'decode', /must be a Buffer/);
    });

    it('accepts a Uint8Array payload and paths as text or LwM2MPath', () => {
      assert.deepEqual(decode(TLV, '/3/0', new Uint8Array([0xc1, 0x09, 0x5f]), model), { 9: 95 });
    });

    it('uses the bundled model when none is given', () => {
      assert.deepEqual(decode(TLV, '/3/0', hex('C1 09 5F')), { 9: 95 });
      assert.deepEqual(encode(TLV, '/3303/0/5700', 20), hex('E4 16 44 41 A0 00 00'));
    });
  });

  describe('an empty object instance (a Create with no resources)', () => {
    const vectors: Array<[number, Buffer]> = [
      [TLV, hex('00 2A')], // object instance 42, length 0
      [OMA_JSON, Buffer.from('{"bn":"/40000/","e":[{"n":"42"}]}')],
      [SENML_JSON, Buffer.from('[{"bn":"/40000/","n":"42"}]')],
      [SENML_CBOR, hex('81 A2 21 67 2F 34 30 30 30 30 2F 00 62 34 32')],
      [LWM2M_CBOR, hex('A1 19 9C 40 A1 18 2A A0')],
    ];
    for (const [format, bytes] of vectors) {
      it(`keeps the instance in ${format}: its header or name is written and read back`, () => {
        assert.deepEqual(encode(format, '/40000', { 42: {} }, model), bytes);
        assert.deepEqual(decode(format, '/40000', bytes, model), { 42: {} });
        // beside a full instance, too
        const both = { 1: { 1: 7 }, 42: {} };
        assert.deepEqual(decode(format, '/40000', encode(format, '/40000', both, model), model), both);
      });
    }

    it('a SenML record naming a resource without a value is still refused', () => {
      rejects(() => decode(SENML_JSON, '/40000', Buffer.from('[{"bn":"/40000/","n":"42/1"}]'), model), SENML_JSON, 'decode', /no value/);
    });
  });

  describe('typing from the model', () => {
    it('writes a Float resource given 20 as a float in every binary format', () => {
      assert.deepEqual(encode(TLV, '/40000/0/3', 20, model), hex('C4 03 41 A0 00 00'));
      assert.deepEqual(encode(SENML_CBOR, '/40000/0/3', 20, model).subarray(-4), hex('02 F9 4D 00'));
      assert.deepEqual(encode(LWM2M_CBOR, '/40000/0/3', 20, model).subarray(-3), hex('F9 4D 00'));
      // and reads it back as the number 20
      for (const format of [TEXT, TLV, OMA_JSON, SENML_JSON, SENML_CBOR, LWM2M_CBOR]) {
        assert.equal(decode(format, '/40000/0/3', encode(format, '/40000/0/3', 20, model), model), 20, String(format));
      }
    });

    it('refuses values that do not fit their type instead of coercing them', () => {
      const cases: Array<[string, unknown, RegExp]> = [
        ['/40000/0/1', 1.5, /1\.5 is not an Integer/],
        ['/40000/0/1', '12', /"12" is not an Integer/],
        ['/40000/0/1', 2n ** 63n, /is not an Integer \(-2\^63\.\.2\^63-1\)/],
        ['/40000/0/2', -1, /-1 is not an Unsigned Integer/],
        ['/40000/0/2', 2n ** 64n, /is not an Unsigned Integer/],
        ['/40000/0/3', '1.5', /is not a Float/],
        ['/40000/0/4', 1, /1 is not a Boolean/],
        ['/40000/0/4', 'true', /is not a Boolean/],
        ['/40000/0/0', 5, /5 is not a String/],
        ['/40000/0/5', 'AQID', /is not Opaque \(a Buffer\)/],
        ['/40000/0/6', 1.5, /is not a Time/],
        ['/40000/0/7', '3', /is not an Objlnk/],
        ['/40000/0/7', '65536:0', /is not an Objlnk/],
        ['/40000/0/9', 1, /resource 9 \(x\) is executable and has no value/],
        ['/40000/0/1', null, /null is not an Integer/],
        ['/40000/0/1', { 0: 1 }, /single-instance; give a value, not an object/],
        ['/40000/0/10', 1.5, /multiple-instance; give \{ "<instance id>": value \}/],
        ['/40000/0/1/0', 1, /single-instance, so it has no resource instances/],
      ];
      for (const format of [TLV, SENML_JSON, SENML_CBOR, LWM2M_CBOR]) {
        for (const [path, value, reason] of cases) rejects(() => encode(format, path, value, model), format, 'encode', reason);
      }
    });

    it('refuses text holding a lone UTF-16 surrogate in every format, rather than sending U+FFFD', () => {
      for (const format of [TEXT, TLV, OMA_JSON, SENML_JSON, SENML_CBOR, LWM2M_CBOR]) {
        rejects(() => encode(format, '/40000/0/0', 'a\uD800b', model), format, 'encode', /lone UTF-16 surrogate/);
      }
      assert.equal(decode(TLV, '/40000/0/0', encode(TLV, '/40000/0/0', 'a\uD83D\uDE00b', model), model), 'a\uD83D\uDE00b');
    });

    it('refuses decimal text that overflows a double instead of reading Infinity', () => {
      rejects(() => decode(TEXT, '/3303/0/5700', Buffer.from('1e999'), model), TEXT, 'decode', /not a Float within the range of a double/);
      rejects(() => decode(SENML_JSON, '/', Buffer.from('[{"n":"/3303/0/5700","v":-1e999}]'), model), SENML_JSON, 'decode', /v -Infinity is beyond the range of a double/);
      rejects(() => decode(OMA_JSON, '/3303/0', Buffer.from('{"bn":"/3303/0/","e":[{"n":"5700","v":1e999}]}'), model), OMA_JSON, 'decode', /beyond the range of a double/);
    });

    it('refuses shapes that do not fit the path level', () => {
      rejects(() => encode(TLV, '/40000/0', 5, model), TLV, 'encode', /expected \{ "<resource id>": \.\.\. \} for an instance path, not 5/);
      rejects(() => encode(TLV, '/40000', { 0: 5 }, model), TLV, 'encode', /expected \{ "<resource id>"/);
      rejects(() => encode(TLV, '/40000/0', { x: 5 }, model), TLV, 'encode', /"x" is not a resource id/);
      rejects(() => encode(TLV, '/40000/0', { '01': 5 }, model), TLV, 'encode', /"01" is not a resource id/);
      rejects(() => encode(TLV, '/40000/0', [1, 2], model), TLV, 'encode', /not an array/);
      rejects(() => encode(TLV, '/40000/0/10', { 0: 1, 70000: 2 }, model), TLV, 'encode', /"70000" is not a resource instance id/);
    });

    it('takes a Date for a Time resource and a Uint8Array for an Opaque one', () => {
      assert.equal(decode(TLV, '/40000/0/6', encode(TLV, '/40000/0/6', new Date('2013-05-02T10:40:15.900Z'), model), model), 1367491215);
      assert.deepEqual(decode(TLV, '/40000/0/5', encode(TLV, '/40000/0/5', new Uint8Array([1, 2]), model), model), Buffer.from([1, 2]));
    });

    it('infers types for resources the model does not know', () => {
      const value = { 1: 'text', 2: 7, 3: 2.5, 4: true, 5: Buffer.from([9]), 6: -0, 7: 2n ** 63n };
      for (const format of [SENML_JSON, SENML_CBOR, LWM2M_CBOR]) {
        const decoded = decode(format, '/42000/0', encode(format, '/42000/0', value, model), model) as Record<string, unknown>;
        assert.equal(decoded[1], 'text');
        assert.equal(decoded[2], 7);
        assert.equal(decoded[3], 2.5);
        assert.equal(decoded[4], true);
        assert.deepEqual(decoded[5], Buffer.from([9]));
        assert.ok(Object.is(decoded[6], -0), `${format}: -0 kept`);
        if (format !== SENML_JSON) assert.equal(decoded[7], 2n ** 63n);
      }
    });
  });

  describe('TLV (11542)', () => {
    it('writes integers in the fewest of 1, 2, 4, 8 bytes and reads all four sizes signed', () => {
      const sizes: Array<[number | bigint, string]> = [
        [0, 'C1 01 00'],
        [-1, 'C1 01 FF'],
        [127, 'C1 01 7F'],
        [128, 'C2 01 00 80'],
        [-129, 'C2 01 FF 7F'],
        [32768, 'C4 01 00 00 80 00'],
        [-(2 ** 31), 'C4 01 80 00 00 00'],
        [2 ** 31, 'C8 01 08 00 00 00 00 80 00 00 00'],
        [2n ** 63n - 1n, 'C8 01 08 7F FF FF FF FF FF FF FF'],
        [-(2n ** 63n), 'C8 01 08 80 00 00 00 00 00 00 00'],
      ];
      for (const [value, bytes] of sizes) {
        assert.deepEqual(encode(TLV, '/40000/0/1', value, model), hex(bytes), String(value));
        assert.equal(decode(TLV, '/40000/0/1', hex(bytes), model), value);
      }
      rejects(() => decode(TLV, '/40000/0/1', hex('C3 01 00 00 01'), model), TLV, 'decode', /3 byte\(s\) \(000001\) are not an Integer \(1, 2, 4 or 8 bytes\)/);
    });

    it('reads unsigned integers as unsigned: 0xFF is 255, not -1', () => {
      assert.equal(decode(TLV, '/40000/0/2', hex('C1 02 FF'), model), 255);
      assert.equal(decode(TLV, '/40000/0/2', hex('C8 02 08 FF FF FF FF FF FF FF FF'), model), 2n ** 64n - 1n);
      assert.deepEqual(encode(TLV, '/40000/0/2', 255, model), hex('C1 02 FF'));
    });

    it('writes floats in 4 bytes when exact, else 8; reads both', () => {
      assert.deepEqual(encode(TLV, '/40000/0/3', 1.5, model), hex('C4 03 3F C0 00 00'));
      assert.deepEqual(encode(TLV, '/40000/0/3', 0.1, model), hex('C8 03 08 3F B9 99 99 99 99 99 9A'));
      assert.equal(decode(TLV, '/40000/0/3', hex('C8 03 08 3F B9 99 99 99 99 99 9A'), model), 0.1);
      assert.ok(Object.is(decode(TLV, '/40000/0/3', hex('C4 03 80 00 00 00'), model), -0));
      rejects(() => decode(TLV, '/40000/0/3', hex('C2 03 3F C0'), model), TLV, 'decode', /not a Float \(4 or 8 bytes\)/);
    });

    it('writes time as an integer and object links as two 16-bit ids', () => {
      assert.deepEqual(encode(TLV, '/40000/0/6', 1367491215, model), hex('C4 06 51 82 42 8F'));
      assert.deepEqual(encode(TLV, '/40000/0/7', '66:1', model), hex('C4 07 00 42 00 01'));
      rejects(() => decode(TLV, '/40000/0/7', hex('C3 07 00 42 00'), model), TLV, 'decode', /not an Objlnk \(4 bytes\)/);
    });

    it('reads booleans strictly: one byte, 0 or 1', () => {
      assert.equal(decode(TLV, '/40000/0/4', hex('C1 04 01'), model), true);
      rejects(() => decode(TLV, '/40000/0/4', hex('C1 04 02'), model), TLV, 'decode', /not a Boolean/);
      rejects(() => decode(TLV, '/40000/0/4', hex('C2 04 00 01'), model), TLV, 'decode', /not a Boolean/);
    });

    it('uses 16-bit ids and 8/16/24-bit lengths where needed', () => {
      assert.deepEqual(encode(TLV, '/40000/0/300', 1, model), hex('E1 01 2C 01'));
      assert.equal(decode(TLV, '/40000/0/300', hex('E1 01 2C 01'), model), 1);
      const s300 = 'x'.repeat(300);
      assert.deepEqual(encode(TLV, '/40000/0/0', s300, model).subarray(0, 4), hex('D0 00 01 2C'));
      const s70000 = 'y'.repeat(70000);
      const long = encode(TLV, '/40000/0/0', s70000, model);
      assert.deepEqual(long.subarray(0, 5), hex('D8 00 01 11 70'));
      assert.equal(decode(TLV, '/40000/0/0', long, model), s70000);
    });

    it('gives unknown resources as raw bytes', () => {
      assert.deepEqual(decode(TLV, '/42000/0', hex('C2 01 12 34 86 02 41 00 01 41 01 02'), model), { 1: hex('12 34'), 2: { 0: hex('01'), 1: hex('02') } });
    });

    it('refuses payloads that are cut short, misplaced, repeated or for another id', () => {
      rejects(() => decode(TLV, '/3/0', hex('C8 00 14 41 42'), model), TLV, 'decode', /claims 20 bytes but only 2 are left/);
      rejects(() => decode(TLV, '/3/0', hex('DB 00 FF FF FF 41'), model), TLV, 'decode', /claims 16777215 bytes but only 1 are left/);
      rejects(() => decode(TLV, '/3/0', hex('E1 00'), model), TLV, 'decode', /cut short in its header/);
      rejects(() => decode(TLV, '/3/0', hex('C1 09 5F C1 09 60'), model), TLV, 'decode', /gives this path twice/);
      rejects(() => decode(TLV, '/3', hex('C1 09 5F'), model), TLV, 'decode', /found a resource entry .* where a object instance belongs/);
      rejects(() => decode(TLV, '/3/0/9', hex('C1 0A 5F'), model), TLV, 'decode', /entry with id 10 where id 9 was requested/);
      rejects(() => decode(TLV, '/3/1', hex('03 00 C1 09 5F'), model), TLV, 'decode', /entry with id 0 where id 1 was requested/);
      rejects(() => decode(TLV, '/3/0', hex('C3 00 FF FE FD'), model), TLV, 'decode', /not valid UTF-8/);
      rejects(() => encode(TLV, '/', { 3: { 0: { 9: 1 } } }, model), TLV, 'encode', /TLV cannot carry the root/);
    });
  });

  describe('SenML (110 JSON, 112 CBOR)', () => {
    const json = (text: string) => Buffer.from(text);

    it('carries bn and bt forward and concatenates names', () => {
      const pack = json('[{"bn":"/3/0/","bt":1700000000,"n":"9","v":95},{"n":"10","v":15,"t":10},{"bn":"/3303/0/","n":"5700","v":21.5}]');
      const records = decodeRecords(SENML_JSON, '/', pack, model);
      assert.deepEqual(
        records.map((record) => [String(record.path), record.value, record.time]),
        [
          ['/3/0/9', 95, 1700000000],
          ['/3/0/10', 15, 1700000010],
          ['/3303/0/5700', 21.5, 1700000000],
        ],
      );
    });

    it('reads times below 2^28 as relative to now', () => {
      const now = 1_800_000_000;
      const records = decodeRecords(SENML_JSON, '/', json('[{"n":"/3/0/9","v":95,"t":-60},{"n":"/3/0/9","v":96,"t":0},{"n":"/3/0/9","v":97,"t":268435456}]'), model, { now });
      assert.deepEqual(records.map((record) => record.time), [now - 60, now, 268435456]);
      assert.equal(decodeRecords(SENML_JSON, '/', json('[{"n":"/3/0/9","v":95}]'), model)[0].time, undefined);
    });

    it('keeps the latest value of a path given several times', () => {
      const now = 1_800_000_000;
      const pack = json('[{"bn":"/3303/0/5700","v":20,"t":-10},{"v":22,"t":-1},{"v":21,"t":-5}]');
      assert.equal(decode(SENML_JSON, '/3303/0/5700', pack, model, { now }), 22);
      assert.deepEqual(decodeComposite(SENML_JSON, pack, model, { now }), { '/3303/0/5700': 22 });
    });

    it('writes opaque values as base64url without padding and reads either alphabet with or without padding', () => {
      const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x01]);
      assert.equal(encode(SENML_JSON, '/40000/0/5', bytes, model).toString(), '[{"bn":"/40000/0/5","vd":"-_-_AQ"}]');
      for (const text of ['-_-_AQ', '-_-_AQ==', '+/+/AQ==']) {
        assert.deepEqual(decode(SENML_JSON, '/40000/0/5', json(`[{"bn":"/40000/0/5","vd":"${text}"}]`), model), bytes, text);
      }
      rejects(() => decode(SENML_JSON, '/40000/0/5', json('[{"bn":"/40000/0/5","vd":"a*b"}]'), model), SENML_JSON, 'decode', /vd is not base64url/);
    });

    it('writes each type in its field: v, vs, vb, vd, vlo; keeps -0 and refuses NaN in JSON', () => {
      const value = { 0: 's', 1: -3, 2: 3, 3: -0, 4: false, 5: Buffer.from([1]), 6: 5, 7: '1:2', 8: '</1/0>' };
      assert.equal(
        encode(SENML_JSON, '/40000/0', value, model).toString(),
        '[{"bn":"/40000/0/","n":"0","vs":"s"},{"n":"1","v":-3},{"n":"2","v":3},{"n":"3","v":-0.0},{"n":"4","vb":false},{"n":"5","vd":"AQ"},{"n":"6","v":5},{"n":"7","vlo":"1:2"},{"n":"8","vs":"</1/0>"}]',
      );
      const decoded = decode(SENML_JSON, '/40000/0', encode(SENML_JSON, '/40000/0', value, model), model) as Record<string, unknown>;
      assert.ok(Object.is(decoded[3], -0));
      rejects(() => encode(SENML_JSON, '/40000/0/3', NaN, model), SENML_JSON, 'encode', /NaN cannot be written in JSON/);
      assert.ok(Number.isNaN(decode(SENML_CBOR, '/40000/0/3', encode(SENML_CBOR, '/40000/0/3', NaN, model), model)));
    });

    it('refuses records without a value, with two values, with values of the wrong kind, or with must-understand labels', () => {
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","n":"9"}]'), model), SENML_JSON, 'decode', /record 0: no value/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","n":"9","v":1,"vs":"1"}]'), model), SENML_JSON, 'decode', /more than one value \(v, vs\)/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","n":"9","vs":"95"}]'), model), SENML_JSON, 'decode', /the resource is Integer, which SenML does not carry in "vs"/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","n":"9","v":9.5}]'), model), SENML_JSON, 'decode', /9\.5 is not an Integer/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","n":"9","v":95,"foo_":1}]'), model), SENML_JSON, 'decode', /label "foo_" must be understood/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","n":"x","v":95}]'), model), SENML_JSON, 'decode', /the name "\/3\/0\/x" is not an LwM2M path/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0","v":95}]'), model), SENML_JSON, 'decode', /not a resource or resource instance path/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"bn":5,"v":95}]'), model), SENML_JSON, 'decode', /bn is 5, not a string/);
      rejects(() => decode(SENML_JSON, '/3/0', json('{"bn":"/3/0/"}'), model), SENML_JSON, 'decode', /must be a JSON array/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[1]'), model), SENML_JSON, 'decode', /record 0 is not a JSON object/);
      rejects(() => decode(SENML_JSON, '/3/0', json('[{"n":'), model), SENML_JSON, 'decode', /not valid JSON/);
      rejects(() => decode(SENML_JSON, '/3/0/9', json('[{"n":"/3/0/9","v":1},{"n":"/3/0/9/0","v":2}]'), model), SENML_JSON, 'decode', /both as a single value and with instances/);
    });

    it('ignores labels it does not know and reads base values', () => {
      assert.deepEqual(decode(SENML_JSON, '/3/0', json('[{"bver":10,"bn":"/3/0/","n":"9","v":90,"u":"%","foo":"bar"}]'), model), { 9: 90 });
      assert.deepEqual(decode(SENML_JSON, '/3/0', json('[{"bn":"/3/0/","bv":90,"n":"9","v":5}]'), model), { 9: 95 });
    });

    it('decodes unknown resources from the value field alone', () => {
      const pack = json('[{"bn":"/42000/0/","n":"1","v":1.5},{"n":"2","vs":"a"},{"n":"3","vb":true},{"n":"4","vd":"AQI"},{"n":"5","vlo":"3:0"}]');
      assert.deepEqual(decode(SENML_JSON, '/42000/0', pack, model), { 1: 1.5, 2: 'a', 3: true, 4: Buffer.from([1, 2]), 5: '3:0' });
    });

    it('writes SenML CBOR with the RFC 8428 labels: vd 8 (bytes), vb 4, vs 3, v 2, n 0, bn -2, t 6', () => {
      assert.deepEqual(encode(SENML_CBOR, '/40000/0/5', Buffer.from([1]), model), hex('81 A2 21 6A 2F 34 30 30 30 30 2F 30 2F 35 08 41 01'));
      assert.deepEqual(encode(SENML_CBOR, '/40000/0/4', true, model).subarray(-2), hex('04 F5'));
      assert.deepEqual(encode(SENML_CBOR, '/40000/0/0', 'a', model).subarray(-3), hex('03 61 61'));
      assert.deepEqual(
        encodeRecords(SENML_CBOR, [{ path: '/3/0/9', value: 95, time: 1700000000 }], model),
        hex('81 A3 00 66 2F 33 2F 30 2F 39 02 18 5F 06 1A 65 53 F1 00'),
      );
    });

    it('accepts text labels in SenML CBOR as well as the integer ones', () => {
      // [{"n": "/3/0/9", "v": 95}] with text keys
      assert.deepEqual(decodeComposite(SENML_CBOR, hex('81 A2 61 6E 66 2F 33 2F 30 2F 39 61 76 18 5F'), model), { '/3/0/9': 95 });
    });

    it('writes Send records with their times and reads them back', () => {
      const records = [
        { path: '/3303/0/5700', value: 21.5, time: 1700000000 },
        { path: '/3303/0/5700', value: 22, time: 1700000060 },
        { path: '/3/0/9', value: 80 },
      ];
      for (const format of [SENML_JSON, SENML_CBOR]) {
        const back = decodeRecords(format, '/', encodeRecords(format, records, model), model);
        assert.deepEqual(back.map((record) => [String(record.path), record.value, record.time]), [
          ['/3303/0/5700', 21.5, 1700000000],
          ['/3303/0/5700', 22, 1700000060],
          ['/3/0/9', 80, undefined],
        ]);
      }
      assert.equal(encodeRecords(SENML_JSON, records.slice(0, 1), model).toString(), '[{"n":"/3303/0/5700","v":21.5,"t":1700000000}]');
    });

    it('refuses CBOR that is not a pack of maps, or holds tags and trailing bytes', () => {
      rejects(() => decode(SENML_CBOR, '/3/0', hex('A0'), model), SENML_CBOR, 'decode', /must be a CBOR array/);
      rejects(() => decode(SENML_CBOR, '/3/0', hex('81 01'), model), SENML_CBOR, 'decode', /record 0 is not a CBOR map/);
      rejects(() => decode(SENML_CBOR, '/3/0', hex('80 00'), model), SENML_CBOR, 'decode', /not valid CBOR/);
      rejects(() => decode(SENML_CBOR, '/3/0', hex(''), model), SENML_CBOR, 'decode', /the payload is empty/);
      rejects(() => decode(SENML_CBOR, '/3/0', hex('81 A3 21 65 2F 33 2F 30 2F 00 61 39 02 C1 18 5F'), model), SENML_CBOR, 'decode', /v is CBOR tag 1, not a number/);
      rejects(() => decode(SENML_CBOR, '/3/0', hex('81 D8 1C 81 D8 1D 00'), model), SENML_CBOR, 'decode', /.+/);
    });
  });

  describe('OMA JSON (11543)', () => {
    it('writes Opaque as base64 in sv, Boolean in bv, Objlnk in ov, and reads them back', () => {
      const value = { 4: true, 5: Buffer.from([0xfb, 0xff]), 7: '3:0' };
      const text = encode(OMA_JSON, '/40000/0', value, model).toString();
      assert.equal(text, '{"bn":"/40000/0/","e":[{"n":"4","bv":true},{"n":"5","sv":"+/8="},{"n":"7","ov":"3:0"}]}');
      assert.deepEqual(decode(OMA_JSON, '/40000/0', Buffer.from(text), model), value);
    });

    it('writes a single resource with the instance as base name, as strict 1.0 clients want it, and reads both forms', () => {
      assert.equal(encode(OMA_JSON, '/3/0/9', 95, model).toString(), '{"bn":"/3/0/","e":[{"n":"9","v":95}]}');
      assert.equal(encode(OMA_JSON, '/3/0/14', '+02:00', model).toString(), '{"bn":"/3/0/","e":[{"n":"14","sv":"+02:00"}]}');
      assert.equal(encode(OMA_JSON, '/3/0/7/1', 5000, model).toString(), '{"bn":"/3/0/","e":[{"n":"7/1","v":5000}]}');
      assert.equal(encode(OMA_JSON, '/3/0/7', { 0: 3800, 1: 5000 }, model).toString(), '{"bn":"/3/0/","e":[{"n":"7/0","v":3800},{"n":"7/1","v":5000}]}');
      assert.equal(encode(OMA_JSON, '/3303', { 0: { 5700: 1.5 } }, model).toString(), '{"bn":"/3303/","e":[{"n":"0/5700","v":1.5}]}');
      assert.equal(decode(OMA_JSON, '/3/0/9', Buffer.from('{"bn":"/3/0/9","e":[{"v":95}]}'), model), 95);
      assert.equal(decode(OMA_JSON, '/3/0/9', Buffer.from('{"bn":"/3/0/","e":[{"n":"9","v":95}]}'), model), 95);
    });

    it('refuses documents that are not objects with an entry list', () => {
      rejects(() => decode(OMA_JSON, '/3/0', Buffer.from('[]'), model), OMA_JSON, 'decode', /must be a JSON object/);
      rejects(() => decode(OMA_JSON, '/3/0', Buffer.from('{"e":[5]}'), model), OMA_JSON, 'decode', /entry 0 is not a JSON object/);
      rejects(() => decode(OMA_JSON, '/3/0', Buffer.from('{"bn":"/3/0/","e":[{"n":"9","sv":"x"}]}'), model), OMA_JSON, 'decode', /Integer, which SenML does not carry in "vs"/);
    });
  });

  describe('LwM2M CBOR (11544)', () => {
    it('round-trips an empty multiple resource, -0, NaN and 64-bit integers', () => {
      const value: LwM2MValue = { 1: -(2n ** 63n), 2: 2n ** 64n - 1n, 3: -0, 10: {} };
      const back = decode(LWM2M_CBOR, '/40000/0', encode(LWM2M_CBOR, '/40000/0', value, model), model) as Record<string, unknown>;
      assert.equal(back[1], -(2n ** 63n));
      assert.equal(back[2], 2n ** 64n - 1n);
      assert.ok(Object.is(back[3], -0));
      assert.deepEqual(back[10], {});
      assert.ok(Number.isNaN(decode(LWM2M_CBOR, '/40000/0/3', encode(LWM2M_CBOR, '/40000/0/3', NaN, model), model)));
    });

    it('writes a composite from the root with shared prefixes merged', () => {
      const bytes = encodeComposite(LWM2M_CBOR, { '/3/0/9': 95, '/3/0/10': 15, '/1/0/1': 86400 }, model);
      assert.deepEqual(bytes, hex('A2 01 A1 00 A1 01 1A 00 01 51 80 03 A1 00 A2 09 18 5F 0A 0F'));
      assert.deepEqual(decodeComposite(LWM2M_CBOR, bytes, model), { '/1/0/1': 86400, '/3/0/9': 95, '/3/0/10': 15 });
    });

    it('refuses nulls, unknown tags, non-id keys, values above the resource level and repeated paths', () => {
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('A1 03 A1 00 A1 09 F6'), model), LWM2M_CBOR, 'decode', /null values are not supported/);
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('A1 03 A1 00 A1 09 D8 64 01'), model), LWM2M_CBOR, 'decode', /CBOR tag 100 is not a value/);
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('A1 61 78 01'), model), LWM2M_CBOR, 'decode', /key "x" below \/ is not an id/);
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('A1 20 01'), model), LWM2M_CBOR, 'decode', /key -1 below \/ is not an id/);
      rejects(() => decode(LWM2M_CBOR, '/3', hex('A1 03 A1 00 05'), model), LWM2M_CBOR, 'decode', /a value sits at \/3\/0/);
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('A2 83 03 00 09 01 83 03 00 09 02'), model), LWM2M_CBOR, 'decode', /gives this path twice/);
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('81 01'), model), LWM2M_CBOR, 'decode', /must be a CBOR map/);
      rejects(() => decode(LWM2M_CBOR, '/3/0', hex('A1 03 A1 00 A1 09 61 78'), model), LWM2M_CBOR, 'decode', /"x" is not an Integer/);
    });
  });

  describe('text/plain (0)', () => {
    it('refuses text that is not the resource type', () => {
      rejects(() => decode(TEXT, '/3/0/9', Buffer.from('9x'), model), TEXT, 'decode', /"9x" is not an Integer/);
      rejects(() => decode(TEXT, '/3/0/9', Buffer.from('95.0'), model), TEXT, 'decode', /is not an Integer/);
      rejects(() => decode(TEXT, '/3/0/9', Buffer.from('9223372036854775808'), model), TEXT, 'decode', /is not an Integer/);
      rejects(() => decode(TEXT, '/1/0/6', Buffer.from('true'), model), TEXT, 'decode', /is not a Boolean \("0" or "1"\)/);
      rejects(() => decode(TEXT, '/3303/0/5700', Buffer.from('NaN'), model), TEXT, 'decode', /is not a Float/);
      rejects(() => decode(TEXT, '/3/0/0', Buffer.from([0xff, 0xfe]), model), TEXT, 'decode', /not valid UTF-8/);
      rejects(() => decode(TEXT, '/5/0/0', Buffer.from('@@@'), model), TEXT, 'decode', /not Opaque in base64/);
      rejects(() => decode(TEXT, '/3/0', Buffer.from('x'), model), TEXT, 'decode', /single resource value/);
      rejects(() => encode(TEXT, '/3/0', { 9: 1 }, model), TEXT, 'encode', /exactly one resource/);
      rejects(() => encode(TEXT, '/3303/0/5700', Infinity, model), TEXT, 'encode', /Infinity has no text\/plain form/);
    });

    it('reads 64-bit integers exactly and the text of unknown resources as a string', () => {
      assert.equal(decode(TEXT, '/3/0/9', Buffer.from('-9223372036854775808'), model), -(2n ** 63n));
      assert.equal(decode(TEXT, '/40000/0/2', Buffer.from('18446744073709551615'), model), 2n ** 64n - 1n);
      assert.equal(decode(TEXT, '/42000/0/1', Buffer.from('42'), model), '42');
      assert.ok(Object.is(decode(TEXT, '/3303/0/5700', encode(TEXT, '/3303/0/5700', -0, model), model), -0));
      assert.equal(decode(TEXT, '/3303/0/5700', Buffer.from('2.5e3'), model), 2500);
    });
  });

  describe('CoRE link format (40)', () => {
    it('reads flags, quoted values with escapes and spaces, and writes them back', () => {
      const links = decodeLinks(Buffer.from(' </a>;obs;title="a \\"b\\", c",</b>'));
      assert.deepEqual(links, [
        { uri: '/a', attributes: { obs: true, title: 'a "b", c' } },
        { uri: '/b', attributes: {} },
      ]);
      assert.equal(encodeLinks(links).toString(), '</a>;obs;title="a \\"b\\", c",</b>');
    });

    it('quotes a string that is not a plain token, and leaves numbers bare', () => {
      assert.equal(encodeLinks([{ uri: '/1/0', attributes: { ssid: 101, note: 'two words', ver: '1.1' } }]).toString(), '</1/0>;ssid=101;note="two words";ver=1.1');
    });

    it('refuses malformed link text with the position', () => {
      rejects(() => decodeLinks(Buffer.from('/3/0>')), ContentFormat.LINK, 'decode', /expected "<" to start a link at character 0/);
      rejects(() => decodeLinks(Buffer.from('</3/0')), ContentFormat.LINK, 'decode', /not closed with ">"/);
      rejects(() => decodeLinks(Buffer.from('</3/0>;rt="oma')), ContentFormat.LINK, 'decode', /not closed with a quote/);
      rejects(() => decodeLinks(Buffer.from('</3/0>;=5')), ContentFormat.LINK, 'decode', /expected an attribute name/);
      rejects(() => decodeLinks(Buffer.from('</3/0>;pmin=')), ContentFormat.LINK, 'decode', /has "=" but no value/);
      rejects(() => decodeLinks(Buffer.from('</3/0> x')), ContentFormat.LINK, 'decode', /expected "," or ";"/);
      rejects(() => decodeLinks(Buffer.from([0x3c, 0xff, 0x3e])), ContentFormat.LINK, 'decode', /not valid UTF-8/);
      rejects(() => encodeLinks([{ uri: '/a>b', attributes: {} }]), ContentFormat.LINK, 'encode', /is not a link target/);
      rejects(() => encodeLinks([{ uri: '/a', attributes: { pmin: NaN } }]), ContentFormat.LINK, 'encode', /not a finite number/);
    });

    it('reads an empty payload as no links', () => {
      assert.deepEqual(decodeLinks(Buffer.alloc(0)), []);
    });
  });
});
