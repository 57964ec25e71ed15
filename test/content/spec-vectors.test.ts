/**
 * The payload examples of the OMA LwM2M Technical Specification (Core 1.0–1.2), byte for byte
 * where the specification gives bytes. Where the specification's own bytes are misprinted (see
 * test/vectors/SPEC_EXAMPLES.md, "Errata"), the corrected form is used and the misprint is
 * checked to fail cleanly.
 */
import assert from 'node:assert/strict';
import { ContentFormat, ContentFormatError, decode, decodeComposite, decodePaths, decodeRecords, encode, encodeComposite, encodePaths, ObjectModel } from '../../lib';
import { hex } from '../helpers/bytes';
import { DEVICE_EXAMPLE } from '../helpers/device';

/** The example objects 65, 66 and 67 the specification uses to illustrate object links. */
const model = ObjectModel.bundled();
model.addXml(`<LWM2M>
  <Object><Name>Example 65</Name><ObjectID>65</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
    <Item ID="0"><Name>Links</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Type>Objlnk</Type></Item>
    <Item ID="1"><Name>Number</Name><Operations>RW</Operations><Type>String</Type></Item>
    <Item ID="2"><Name>Value</Name><Operations>RW</Operations><Type>Integer</Type></Item></Resources></Object>
  <Object><Name>Example 66</Name><ObjectID>66</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
    <Item ID="0"><Name>Service</Name><Operations>RW</Operations><Type>String</Type></Item>
    <Item ID="1"><Name>Address</Name><Operations>RW</Operations><Type>String</Type></Item>
    <Item ID="2"><Name>Link</Name><Operations>RW</Operations><Type>Objlnk</Type></Item></Resources></Object>
  <Object><Name>Example 67</Name><ObjectID>67</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
    <Item ID="0"><Name>IP</Name><Operations>RW</Operations><Type>String</Type></Item>
    <Item ID="1"><Name>Mask</Name><Operations>RW</Operations><Type>String</Type></Item></Resources></Object>
  <Object><Name>Example 72</Name><ObjectID>72</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
    <Item ID="2"><Name>Temperature</Name><Operations>R</Operations><Type>Float</Type></Item></Resources></Object>
</LWM2M>`);

const DEVICE = DEVICE_EXAMPLE;

/** Records as [path, value, time] rows, for comparing timelines. */
function rows(records: ReadonlyArray<{ path: unknown; value: unknown; time?: number }>): unknown[][] {
  return records.map((record) => [String(record.path), record.value, record.time]);
}

/** The temperature history of the /72 example: bt 25462634 with t -5, -30, -50, relative to `now`. */
function history72(now: number): unknown[][] {
  return [
    ['/72/1/2', 22.4, now + 25462629],
    ['/72/1/2', 22.9, now + 25462604],
    ['/72/1/2', 24.1, now + 25462584],
  ];
}

const DEVICE_TLV = hex(`
  C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
  C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
  C8 02 09 33 34 35 30 30 30 31 32 33
  C3 03 31 2E 30
  86 06 41 00 01 41 01 05
  88 07 08 42 00 0E D8 42 01 13 88
  87 08 41 00 7D 42 01 03 84
  C1 09 64
  C1 0A 0F
  83 0B 41 00 00
  C4 0D 51 82 42 8F
  C6 0E 2B 30 32 3A 30 30
  C1 10 55`);

describe('specification examples', () => {
  describe('TLV (11542)', () => {
    it('Device object instance, Read /3/0 (1.0 §6.4.3.1): 121 bytes both ways', () => {
      assert.equal(DEVICE_TLV.length, 121);
      assert.deepEqual(encode(ContentFormat.TLV, '/3/0', DEVICE, model), DEVICE_TLV);
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0', DEVICE_TLV, model), DEVICE);
    });

    it('the same instance inside an object instance TLV, Read /3 (§6.4.3.2 A)', () => {
      const wrapped = Buffer.concat([hex('08 00 79'), DEVICE_TLV]);
      assert.deepEqual(encode(ContentFormat.TLV, '/3', { 0: DEVICE }, model), wrapped);
      assert.deepEqual(decode(ContentFormat.TLV, '/3', wrapped, model), { 0: DEVICE });
      // a Read of /3/0 answered with the wrapper present decodes the same
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0', wrapped, model), DEVICE);
    });

    it('Access Control object with two instances and a 16-bit resource instance id (§6.4.3.2 B)', () => {
      const bytes = hex(`08 00 0E C1 00 01 C1 01 00 83 02 41 7F 07 C1 03 7F
                         08 02 12 C1 00 03 C1 01 00 87 02 41 7F 07 61 01 36 01 C1 03 7F`);
      const acl = {
        0: { 0: 1, 1: 0, 2: { 127: 7 }, 3: 127 },
        2: { 0: 3, 1: 0, 2: { 127: 7, 310: 1 }, 3: 127 },
      };
      assert.deepEqual(decode(ContentFormat.TLV, '/2', bytes, model), acl);
      assert.deepEqual(encode(ContentFormat.TLV, '/2', acl, model), bytes);
    });

    it('Server object with one instance (§6.4.3.2 C)', () => {
      const bytes = hex('08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55');
      const server = { 0: { 0: 1, 1: 86400, 6: true, 7: 'U' } };
      assert.deepEqual(decode(ContentFormat.TLV, '/1', bytes, model), server);
      assert.deepEqual(encode(ContentFormat.TLV, '/1', server, model), bytes);
    });

    it('object links: instance /65/0 with a multiple Objlnk resource (§6.4.3.3, 1)', () => {
      const bytes = hex(`88 00 0C 44 00 00 42 00 00 44 01 00 42 00 01
                         C8 01 0D 38 36 31 33 38 30 30 37 35 35 35 30 30
                         C4 02 12 34 56 78`);
      const value = { 0: { 0: '66:0', 1: '66:1' }, 1: '8613800755500', 2: 0x12345678 };
      assert.deepEqual(decode(ContentFormat.TLV, '/65/0', bytes, model), value);
      assert.deepEqual(encode(ContentFormat.TLV, '/65/0', value, model), bytes);
    });

    it('object links: object /66 with two instances, one holding the null link (§6.4.3.3, 2)', () => {
      const bytes = hex(`08 00 26 C8 00 0B 6D 79 53 65 72 76 69 63 65 20 31
                           C8 01 0F 49 6E 74 65 72 6E 65 74 2E 31 35 2E 32 33 34 C4 02 00 43 00 00
                         08 01 26 C8 00 0B 6D 79 53 65 72 76 69 63 65 20 32
                           C8 01 0F 49 6E 74 65 72 6E 65 74 2E 31 35 2E 32 33 35 C4 02 FF FF FF FF`);
      const value = {
        0: { 0: 'myService 1', 1: 'Internet.15.234', 2: '67:0' },
        1: { 0: 'myService 2', 1: 'Internet.15.235', 2: '65535:65535' },
      };
      assert.deepEqual(decode(ContentFormat.TLV, '/66', bytes, model), value);
      assert.deepEqual(encode(ContentFormat.TLV, '/66', value, model), bytes);
    });

    it('a single multiple resource, Read /3/0/6: written wrapped, read either way', () => {
      assert.deepEqual(encode(ContentFormat.TLV, '/3/0/6', { 0: 1, 1: 5 }, model), hex('86 06 41 00 01 41 01 05'));
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0/6', hex('86 06 41 00 01 41 01 05'), model), { 0: 1, 1: 5 });
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0/6', hex('41 00 01 41 01 05'), model), { 0: 1, 1: 5 });
      // a resource instance on its own
      assert.deepEqual(encode(ContentFormat.TLV, '/3/0/6/1', 5, model), hex('41 01 05'));
      assert.equal(decode(ContentFormat.TLV, '/3/0/6/1', hex('41 01 05'), model), 5);
    });

    it('a multiple resource with zero instances, and objects and instances with none', () => {
      assert.deepEqual(encode(ContentFormat.TLV, '/3/0', { 11: {} }, model), hex('80 0B'));
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0', hex('80 0B'), model), { 11: {} });
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0/11', hex('80 0B'), model), {});
      assert.deepEqual(decode(ContentFormat.TLV, '/2', Buffer.alloc(0), model), {});
      assert.deepEqual(decode(ContentFormat.TLV, '/2/0', Buffer.alloc(0), model), {});
      assert.deepEqual(decode(ContentFormat.TLV, '/3/0/11', Buffer.alloc(0), model), {});
      assert.throws(() => decode(ContentFormat.TLV, '/3/0/9', Buffer.alloc(0), model), ContentFormatError);
      // a zero-length value is legal where the type allows it (a Bootstrap-Write of an empty key)
      assert.deepEqual(decode(ContentFormat.TLV, '/0/0', hex('C0 03'), model), { 3: Buffer.alloc(0) });
    });

    it('the misprinted spec bytes fail with a clear error, not garbage', () => {
      const printed = [
        // "Lightweigt": one byte short of the declared 0x16, so the entries lose sync
        hex('C8 01 16 4C 69 67 68 74 77 65 69 67 74 20 4D 32 4D 20 43 6C 69 65 6E 74 C8 02 09 33 34 35 30 30 30 31 32 33'),
        // ACL multiple resource declared 6 bytes long, 7 given
        hex('08 02 12 C1 00 03 C1 01 00 86 02 41 7F 07 61 01 36 01 C1 03 7F'),
        // Server instance declared 13 bytes long, 15 given
        hex('08 00 0D C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55'),
      ];
      const paths = ['/3/0', '/2', '/1'];
      printed.forEach((bytes, index) => {
        assert.throws(() => decode(ContentFormat.TLV, paths[index], bytes, model), (error: unknown) => error instanceof ContentFormatError && error.format === ContentFormat.TLV);
      });
    });
  });

  describe('OMA JSON (11543)', () => {
    const text =
      '{"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"1","sv":"Lightweight M2M Client"},{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},{"n":"16","sv":"U"}]}';

    it('Device object instance, Read /3/0 (1.0 §6.4.4): text both ways', () => {
      assert.equal(encode(ContentFormat.OMA_JSON, '/3/0', DEVICE, model).toString(), text);
      assert.deepEqual(decode(ContentFormat.OMA_JSON, '/3/0', Buffer.from(text), model), DEVICE);
    });

    it('notification with historical values: bt after e, t relative to bt (1.0.2 §6.4.4)', () => {
      const history = Buffer.from(`{"bn":"/72/",
"e":[ {"n":"1/2","v":22.4,"t":-5},
{"n":"1/2","v":22.9,"t":-30},
{"n":"1/2","v":24.1,"t":-50}],
"bt":25462634 }`);
      const now = 1_700_000_000;
      const records = decodeRecords(ContentFormat.OMA_JSON, '/72', history, model, { now });
      // bt + t stays below 2^28, so under the SenML rules OMA JSON was drafted from it is relative to now
      assert.deepEqual(rows(records), history72(now));
      // the plain value is the latest of the history
      assert.deepEqual(decode(ContentFormat.OMA_JSON, '/72', history, model, { now }), { 1: { 2: 22.4 } });
    });

    it('an empty list of entries is an empty object, instance or multiple resource', () => {
      assert.deepEqual(decode(ContentFormat.OMA_JSON, '/2', Buffer.from('{"e":[]}'), model), {});
      assert.deepEqual(decode(ContentFormat.OMA_JSON, '/3/0/11', Buffer.from('{"e":[]}'), model), {});
      assert.throws(() => decode(ContentFormat.OMA_JSON, '/3/0/9', Buffer.from('{"e":[]}'), model), ContentFormatError);
      assert.throws(() => decode(ContentFormat.OMA_JSON, '/2', Buffer.from('{}'), model), /"e" must be an array/);
    });
  });

  describe('SenML JSON (110)', () => {
    const device =
      '[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}]';

    it('Device object instance, Read /3/0 (1.1 Table 7.4.4-2): text both ways', () => {
      assert.equal(encode(ContentFormat.SENML_JSON, '/3/0', DEVICE, model).toString(), device);
      assert.deepEqual(decode(ContentFormat.SENML_JSON, '/3/0', Buffer.from(device), model), DEVICE);
    });

    it('historical values: bn and bt carry over, t adds to bt (1.1 Table 7.4.4-3)', () => {
      const pack = '[{"bn":"/72/","bt":25462634,"n":"1/2","v":22.4,"t":-5},{"n":"1/2","v":22.9,"t":-30},{"n":"1/2","v":24.1,"t":-50}]';
      const now = 1_700_000_000;
      const records = decodeRecords(ContentFormat.SENML_JSON, '/', Buffer.from(pack), model, { now });
      assert.deepEqual(rows(records), history72(now));
    });

    it('an instance with object links and linked instances under bn "/" (1.1 Table 7.4.4-4)', () => {
      const pack =
        '[{"bn":"/","n":"65/0/0/0","vlo":"66:0"},{"n":"65/0/0/1","vlo":"66:1"},{"n":"65/0/1","vs":"8613800755500"},{"n":"65/0/2","v":1},{"n":"66/0/0","vs":"myService1"},{"n":"66/0/1","vs":"Internet.15.234"},{"n":"66/0/2","vlo":"67:0"},{"n":"66/1/0","vs":"myService2"},{"n":"66/1/1","vs":"Internet.15.235"},{"n":"66/1/2","vlo":"65535:65535"},{"n":"67/0/0","vs":"85.76.76.84"},{"n":"67/0/1","vs":"85.76.255.255"}]';
      const value = {
        65: { 0: { 0: { 0: '66:0', 1: '66:1' }, 1: '8613800755500', 2: 1 } },
        66: { 0: { 0: 'myService1', 1: 'Internet.15.234', 2: '67:0' }, 1: { 0: 'myService2', 1: 'Internet.15.235', 2: '65535:65535' } },
        67: { 0: { 0: '85.76.76.84', 1: '85.76.255.255' } },
      };
      assert.deepEqual(decode(ContentFormat.SENML_JSON, '/', Buffer.from(pack), model), value);
      // a read of /65/0 answered with the linked instances too: they are outside the requested path
      assert.throws(() => decode(ContentFormat.SENML_JSON, '/65/0', Buffer.from(pack), model), /66\/0\/0, which is outside the requested path/);
      assert.deepEqual(decodeComposite(ContentFormat.SENML_JSON, Buffer.from(pack), model, { paths: ['/65/0', '/66', '/67/0'] }), {
        '/65/0': value[65][0],
        '/66': value[66],
        '/67/0': value[67][0],
      });
    });

    it('a single resource, Read /3/0/0 (1.1 Table 7.4.4-5)', () => {
      const pack = '[{"bn":"/3/0/0","vs":"Open Mobile Alliance"}]';
      assert.equal(encode(ContentFormat.SENML_JSON, '/3/0/0', 'Open Mobile Alliance', model).toString(), pack);
      assert.equal(decode(ContentFormat.SENML_JSON, '/3/0/0', Buffer.from(pack), model), 'Open Mobile Alliance');
    });

    it('Read-Composite request and response (1.1 Tables 7.4.4-6 and 7.4.4-7)', () => {
      const request = '[{"n":"/3/0/0"},{"n":"/3/0/9"},{"n":"/1/0/1"}]';
      assert.equal(encodePaths(ContentFormat.SENML_JSON, ['/3/0/0', '/3/0/9', '/1/0/1']).toString(), request);
      assert.deepEqual(decodePaths(ContentFormat.SENML_JSON, Buffer.from(request)).map(String), ['/3/0/0', '/3/0/9', '/1/0/1']);
      const response = '[{"n":"/3/0/0", "vs":"Open Mobile Alliance"},{"n" :"/3/0/9", "v":95},{"n":"/1/0/1", "v":86400}]';
      const value = { '/3/0/0': 'Open Mobile Alliance', '/3/0/9': 95, '/1/0/1': 86400 };
      assert.deepEqual(decodeComposite(ContentFormat.SENML_JSON, Buffer.from(response), model, { paths: ['/3/0/0', '/3/0/9', '/1/0/1'] }), value);
      assert.equal(encodeComposite(ContentFormat.SENML_JSON, value, model).toString(), '[{"n":"/3/0/0","vs":"Open Mobile Alliance"},{"n":"/3/0/9","v":95},{"n":"/1/0/1","v":86400}]');
    });

    it('Write-Composite request (1.1 Table 7.4.4-8)', () => {
      const request = '[{"n":"/3311/0/5850", "vb":false},{"n":"/3311/1/5850", "vb":false},{"n":"/3311/2/5851", "v":20},{"n":"/3308/0/5900", "v":18}]';
      const value = { '/3311/0/5850': false, '/3311/1/5850': false, '/3311/2/5851': 20, '/3308/0/5900': 18 };
      assert.equal(encodeComposite(ContentFormat.SENML_JSON, value, model).toString(), request.replace(/\s/g, ''));
      assert.deepEqual(decodeComposite(ContentFormat.SENML_JSON, Buffer.from(request), model), value);
    });
  });

  describe('SenML CBOR (112)', () => {
    const DEVICE_SENML_CBOR = hex(`
      90 A3 21 65 2F 33 2F 30 2F 00 61 30 03 74 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
      A2 00 61 31 03 76 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
      A2 00 61 32 03 69 33 34 35 30 30 30 31 32 33
      A2 00 61 33 03 63 31 2E 30
      A2 00 63 36 2F 30 02 01
      A2 00 63 36 2F 31 02 05
      A2 00 63 37 2F 30 02 19 0E D8
      A2 00 63 37 2F 31 02 19 13 88
      A2 00 63 38 2F 30 02 18 7D
      A2 00 63 38 2F 31 02 19 03 84
      A2 00 61 39 02 18 64
      A2 00 62 31 30 02 0F
      A2 00 64 31 31 2F 30 02 00
      A2 00 62 31 33 02 1A 51 82 42 8F
      A2 00 62 31 34 03 66 2B 30 32 3A 30 30
      A2 00 62 31 36 03 61 55`);

    it('Device object instance, Read /3/0 (1.1.1 §7.4.6): 196 bytes both ways', () => {
      assert.equal(DEVICE_SENML_CBOR.length, 196);
      assert.deepEqual(encode(ContentFormat.SENML_CBOR, '/3/0', DEVICE, model), DEVICE_SENML_CBOR);
      assert.deepEqual(decode(ContentFormat.SENML_CBOR, '/3/0', DEVICE_SENML_CBOR, model), DEVICE);
    });

    it('an object link under the text label "vlo" (OMA answer to issue #484)', () => {
      const bytes = hex('81 A2 00 69 2F 36 35 2F 30 2F 30 2F 30 63 76 6C 6F 64 36 36 3A 30');
      assert.deepEqual(encodeComposite(ContentFormat.SENML_CBOR, { '/65/0/0/0': '66:0' }, model), bytes);
      assert.deepEqual(decodeComposite(ContentFormat.SENML_CBOR, bytes, model, { paths: ['/65/0/0/0'] }), { '/65/0/0/0': '66:0' });
    });

    it('Read-Composite request and response, Write-Composite (CBOR forms of 1.1 Tables 7.4.4-6 to -8)', () => {
      assert.deepEqual(encodePaths(ContentFormat.SENML_CBOR, ['/3/0/0', '/3/0/9', '/1/0/1']), hex('83 A1 00 66 2F 33 2F 30 2F 30 A1 00 66 2F 33 2F 30 2F 39 A1 00 66 2F 31 2F 30 2F 31'));
      const response = hex(`83 A2 00 66 2F 33 2F 30 2F 30 03 74 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
                            A2 00 66 2F 33 2F 30 2F 39 02 18 5F A2 00 66 2F 31 2F 30 2F 31 02 1A 00 01 51 80`);
      const value = { '/3/0/0': 'Open Mobile Alliance', '/3/0/9': 95, '/1/0/1': 86400 };
      assert.deepEqual(encodeComposite(ContentFormat.SENML_CBOR, value, model), response);
      assert.deepEqual(decodeComposite(ContentFormat.SENML_CBOR, response, model), value);
      const write = hex(`84 A2 00 6C 2F 33 33 31 31 2F 30 2F 35 38 35 30 04 F4 A2 00 6C 2F 33 33 31 31 2F 31 2F 35 38 35 30 04 F4
                         A2 00 6C 2F 33 33 31 31 2F 32 2F 35 38 35 31 02 14 A2 00 6C 2F 33 33 30 38 2F 30 2F 35 39 30 30 02 12`);
      // /3308/0/5900 is not a bundled object, so 18 goes as an integer just as the example has it
      const writeValue = { '/3311/0/5850': false, '/3311/1/5850': false, '/3311/2/5851': 20, '/3308/0/5900': 18 };
      assert.deepEqual(encodeComposite(ContentFormat.SENML_CBOR, writeValue, model), write);
      assert.deepEqual(decodeComposite(ContentFormat.SENML_CBOR, write, model), writeValue);
    });

    it('historical values with bn, bt and negative t (CBOR form of 1.1 Table 7.4.4-3)', () => {
      const bytes = hex(`83 A5 21 64 2F 37 32 2F 22 1A 01 84 87 6A 00 63 31 2F 32 02 FB 40 36 66 66 66 66 66 66 06 24
                         A3 00 63 31 2F 32 02 FB 40 36 E6 66 66 66 66 66 06 38 1D
                         A3 00 63 31 2F 32 02 FB 40 38 19 99 99 99 99 9A 06 38 31`);
      const now = 1_700_000_000;
      assert.deepEqual(rows(decodeRecords(ContentFormat.SENML_CBOR, '/72', bytes, model, { now })), history72(now));
    });
  });

  describe('LwM2M CBOR (11544)', () => {
    it('the first Server instance of the 1.2 §7.4.4.4 example, inside its absolute path', () => {
      const instance = hex('A7 00 18 65 01 1A 00 01 51 80 02 19 01 2C 03 19 17 70 05 1A 00 01 51 80 06 F5 07 61 55');
      const value = { 0: 101, 1: 86400, 2: 300, 3: 6000, 5: 86400, 6: true, 7: 'U' };
      const bytes = Buffer.concat([hex('A1 01 A1 00'), instance]);
      assert.deepEqual(encode(ContentFormat.LWM2M_CBOR, '/1/0', value, model), bytes);
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/1/0', bytes, model), value);
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/1', bytes, model), { 0: value });
    });

    it('reads the equivalent key forms: single ids, id arrays, mixed, indefinite lengths', () => {
      const forms = ['A1 83 0D 18 1A 01 18 2A', 'A1 0D A1 18 1A A1 01 18 2A', 'A1 81 0D A1 81 18 1A A1 81 01 18 2A', 'BF 9F 0D 18 1A 01 FF 18 2A FF', 'BF 0D BF 18 1A BF 01 18 2A FF FF FF'];
      for (const form of forms) assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/13/26', hex(form), model), { 1: 42 }, form);
      const two = ['A1 82 0D 18 1A A2 01 18 2A 02 15', 'A2 83 0D 18 1A 01 18 2A 83 0D 18 1A 02 15', 'A2 82 0D 18 1A A1 01 18 2A 83 0D 18 1A 02 15', 'A2 83 0D 18 1A 01 18 2A 82 0D 18 1A A1 81 02 15'];
      for (const form of two) assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/13/26', hex(form), model), { 1: 42, 2: 21 }, form);
    });

    it('writes Time as tag 1 and object links as text, and reads Time bare or tagged', () => {
      assert.deepEqual(encode(ContentFormat.LWM2M_CBOR, '/3/0/13', 3, model), hex('A1 03 A1 00 A1 0D C1 03'));
      assert.equal(decode(ContentFormat.LWM2M_CBOR, '/3/0/13', hex('A1 03 A1 00 A1 0D C1 03'), model), 3);
      assert.equal(decode(ContentFormat.LWM2M_CBOR, '/3/0/13', hex('A1 03 A1 00 A1 0D 03'), model), 3);
      assert.deepEqual(encode(ContentFormat.LWM2M_CBOR, '/66/0/2', '17:18', model), hex('A1 18 42 A1 00 A1 02 65 31 37 3A 31 38'));
      assert.equal(decode(ContentFormat.LWM2M_CBOR, '/66/0/2', hex('A1 18 42 A1 00 A1 02 65 31 37 3A 31 38'), model), '17:18');
    });

    it('reads a Write payload written relative to the request path', () => {
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/3/0', hex('A1 09 18 5F'), model), { 9: 95 });
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/1/0', hex('A2 00 18 65 01 1A 00 01 51 80'), model), { 0: 101, 1: 86400 });
    });

    it('reads an empty map as an empty read, and refuses ids beyond 4 levels', () => {
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/2', hex('A0'), model), {});
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/2', hex('BF FF'), model), {});
      assert.throws(() => decode(ContentFormat.LWM2M_CBOR, '/', hex('A1 85 0D 18 1A 03 04 05 05'), model), /more than 4 ids/);
      assert.throws(() => decode(ContentFormat.LWM2M_CBOR, '/', hex('A1 0D A1 18 1A A1 01 A1 02 A1 03 04'), model), /more than 4 ids/);
    });

    it('the Device instance in LwM2M CBOR round-trips with the same logical content', () => {
      const bytes = encode(ContentFormat.LWM2M_CBOR, '/3/0', DEVICE, model);
      assert.deepEqual(bytes.subarray(0, 5), hex('A1 03 A1 00 AD'));
      assert.deepEqual(decode(ContentFormat.LWM2M_CBOR, '/3/0', bytes, model), DEVICE);
    });
  });

  describe('text/plain (0) and opaque (42)', () => {
    it('writes each data type as the specification says', () => {
      assert.equal(encode(ContentFormat.TEXT, '/3/0/0', 'Open Mobile Alliance', model).toString(), 'Open Mobile Alliance');
      assert.equal(encode(ContentFormat.TEXT, '/3/0/9', 95, model).toString(), '95');
      assert.equal(encode(ContentFormat.TEXT, '/3/0/13', 1476186613, model).toString(), '1476186613');
      assert.equal(encode(ContentFormat.TEXT, '/1/0/6', true, model).toString(), '1');
      assert.equal(encode(ContentFormat.TEXT, '/1/0/6', false, model).toString(), '0');
      assert.equal(encode(ContentFormat.TEXT, '/66/0/2', '66:0', model).toString(), '66:0');
      assert.equal(encode(ContentFormat.TEXT, '/5/0/0', hex('01 02 03 04 05'), model).toString(), 'AQIDBAU=');
      assert.equal(decode(ContentFormat.TEXT, '/3/0/0', Buffer.from('Open Mobile Alliance'), model), 'Open Mobile Alliance');
      assert.equal(decode(ContentFormat.TEXT, '/1/0/6', Buffer.from('1'), model), true);
      assert.deepEqual(decode(ContentFormat.TEXT, '/5/0/0', Buffer.from('AQIDBAU='), model), hex('01 02 03 04 05'));
      assert.deepEqual(decode(ContentFormat.TEXT, '/5/0/0', Buffer.from('AQIDBAU'), model), hex('01 02 03 04 05'));
    });

    it('carries raw bytes of an Opaque resource or resource instance in opaque', () => {
      const firmware = Buffer.from([0, 1, 2, 0xfe, 0xff]);
      assert.deepEqual(encode(ContentFormat.OPAQUE, '/5/0/0', firmware, model), firmware);
      assert.deepEqual(decode(ContentFormat.OPAQUE, '/5/0/0', firmware, model), firmware);
      assert.throws(() => encode(ContentFormat.OPAQUE, '/3/0/9', 5, model), /opaque carries only Opaque values/);
    });
  });

  describe('CoRE link format (40)', () => {
    it('Discover on an object, an instance and a resource (1.0 examples)', () => {
      const object = '</3>;pmin=10,</3/0>,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/6>,</3/0/7>,</3/0/8>,</3/0/11>,</3/0/16>';
      const links = decode(ContentFormat.LINK, '/3', Buffer.from(object));
      assert.equal(links.length, 11);
      assert.deepEqual(links[0], { uri: '/3', attributes: { pmin: 10 } });
      assert.deepEqual(links[10], { uri: '/3/0/16', attributes: {} });
      assert.equal(encode(ContentFormat.LINK, '/3', links).toString(), object);

      const instance = '</3/0>;pmax=60,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/6>;dim=8,</3/0/7>;dim=8;gt=50;lt=42.2,</3/0/8>;dim=8,</3/0/11>,</3/0/16>';
      const parsed = decode(ContentFormat.LINK, '/3/0', Buffer.from(instance));
      assert.deepEqual(parsed[6], { uri: '/3/0/7', attributes: { dim: 8, gt: 50, lt: 42.2 } });
      assert.equal(encode(ContentFormat.LINK, '/3/0', parsed).toString(), instance);

      const resource = '</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2';
      assert.deepEqual(decode(ContentFormat.LINK, '/3/0/7', Buffer.from(resource)), [{ uri: '/3/0/7', attributes: { dim: 8, pmin: 10, pmax: 60, gt: 50, lt: 42.2 } }]);
    });

    it('registration object lists with rt, ct lists and versions', () => {
      const register = '</>;rt="oma.lwm2m";ct="60 110 112 1542 1543 11542 11543",</1>;ver=1.1,</1/0>,</2>,</3>;ver=1.1,</3/0>,</3442/0>';
      const links = decode(ContentFormat.LINK, '/', Buffer.from(register));
      assert.deepEqual(links[0], { uri: '/', attributes: { rt: 'oma.lwm2m', ct: [60, 110, 112, 1542, 1543, 11542, 11543] } });
      assert.deepEqual(links[1], { uri: '/1', attributes: { ver: '1.1' } });
      assert.equal(encode(ContentFormat.LINK, '/', links).toString(), register);
      assert.deepEqual(decode(ContentFormat.LINK, '/', Buffer.from('</>;rt="oma.lwm2m";ct=11543,</1/0>'))[0].attributes, { rt: 'oma.lwm2m', ct: 11543 });
      // 1.0 sometimes quotes ver
      assert.deepEqual(decode(ContentFormat.LINK, '/', Buffer.from('</44>;ver="2.2",</44/0>'))[0], { uri: '/44', attributes: { ver: '2.2' } });
    });

    it('Bootstrap-Discover with lwm2m, ssid and quoted uri', () => {
      const text = '</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://server_1.example.com",</0/1>,</1/0>;ssid=101';
      const links = decode(ContentFormat.LINK, '/', Buffer.from(text));
      assert.deepEqual(links[0].attributes, { lwm2m: '1.1' });
      assert.deepEqual(links[1].attributes, { ssid: 101, uri: 'coaps://server_1.example.com' });
    });
  });
});
