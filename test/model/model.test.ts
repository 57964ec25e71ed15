import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ContentFormat, decode, defaultModel, encode, ModelError, ObjectModel, parseDdf, parseRangeEnumeration, type ResourceDefinition } from '../../lib';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/models');

describe('object model', () => {
  describe('bundled definitions', () => {
    const model = ObjectModel.bundled();
    const expected = [
      0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 19, 20, 3200, 3201, 3202, 3203, 3300, 3301, 3302, 3303, 3304, 3305, 3306, 3311, 3312, 3313,
      3314, 3315, 3316, 3320, 3321, 3322, 3323, 3324, 3325, 3326, 3327, 3328, 3329, 3330, 3336, 3340, 3341, 3342, 3347,
    ];

    it('holds the core objects 0–7, the other OMA objects a fleet is managed with and the common IPSO objects, each once', () => {
      assert.deepEqual(model.objects().map((object) => object.id), expected);
    });

    it('knows the Device object: names, operations, types, multiplicity', () => {
      const device = model.object(3)!;
      assert.equal(device.name, 'Device');
      assert.equal(device.multiple, false);
      assert.equal(device.mandatory, true);
      assert.deepEqual(
        [0, 4, 6, 9, 13, 16].map((id) => {
          const { name, operations, type, multiple, mandatory } = device.resources.get(id)!;
          return { id, name, operations, type, multiple, mandatory };
        }),
        [
          { id: 0, name: 'Manufacturer', operations: 'R', type: 'String', multiple: false, mandatory: false },
          { id: 4, name: 'Reboot', operations: 'E', type: 'none', multiple: false, mandatory: true },
          { id: 6, name: 'Available Power Sources', operations: 'R', type: 'Integer', multiple: true, mandatory: false },
          { id: 9, name: 'Battery Level', operations: 'R', type: 'Integer', multiple: false, mandatory: false },
          { id: 13, name: 'Current Time', operations: 'RW', type: 'Time', multiple: false, mandatory: false },
          { id: 16, name: 'Supported Binding and Modes', operations: 'R', type: 'String', multiple: false, mandatory: true },
        ],
      );
      assert.deepEqual(device.resources.get(9)!.range, { min: 0, max: 100 });
      assert.equal(device.resources.get(9)!.units, '/100');
    });

    it('knows the IPSO Temperature sensor and typed resources of other core objects', () => {
      assert.equal(model.object(3303)!.name, 'Temperature');
      assert.equal(model.resource(3303, 5700)!.type, 'Float');
      assert.equal(model.resource(3303, 5700)!.name, 'Sensor Value');
      assert.equal(model.resource(3303, 5605)!.operations, 'E');
      assert.equal(model.resource(1, 1)!.name, 'Lifetime');
      assert.equal(model.resource(0, 3)!.type, 'Opaque');
      assert.equal(model.resource(5, 0)!.type, 'Opaque');
      assert.equal(model.resource(5, 3)!.name, 'State');
      assert.equal(model.resource(6, 0)!.name, 'Latitude');
      assert.equal(model.resource(3342, 5500)!.type, 'Boolean');
      assert.equal(model.resource(3336, 6051)!.type, 'Float');
    });

    it('gives every executable type none and every other resource a real type', () => {
      for (const object of model.objects()) {
        for (const resource of object.resources.values()) {
          assert.equal(resource.type === 'none', resource.operations === 'E', `/${object.id}/${resource.id} ${resource.name}`);
        }
      }
    });

    it('builds registry-style URNs', () => {
      assert.equal(model.object(3)!.urn, `urn:oma:lwm2m:oma:3:${model.object(3)!.version}`);
      assert.match(model.object(3303)!.urn, /^urn:oma:lwm2m:ext:3303(:\d\.\d)?$/);
    });

    it('returns undefined for objects and resources it does not know', () => {
      assert.equal(model.object(42424), undefined);
      assert.equal(model.resource(3, 9999), undefined);
      assert.equal(model.has(42424), false);
    });

    it('gives each caller of bundled() its own model, so additions do not leak', () => {
      const mine = ObjectModel.bundled();
      mine.addXml(`<LWM2M><Object><Name>Mine</Name><ObjectID>40000</ObjectID></Object></LWM2M>`);
      assert.ok(mine.has(40000));
      assert.ok(!ObjectModel.bundled().has(40000));
      assert.ok(!defaultModel().has(40000));
    });
  });

  describe('OMA objects beyond the core (9–13, 16, 19, 20)', () => {
    const model = ObjectModel.bundled();
    /** id → [name, version, multiple instances], as the registry's DDF files of the newest approved versions give them. */
    const objects: Record<number, [string, string, boolean]> = {
      9: ['LWM2M Software Management', '1.1', true],
      10: ['LWM2M Cellular Connectivity', '1.1', false],
      11: ['LWM2M APN Connection Profile', '1.1', true],
      12: ['WLAN connectivity', '1.1', true],
      13: ['LWM2M Bearer Selection', '1.1', false],
      16: ['Portfolio', '1.0', true],
      19: ['BinaryAppDataContainer', '1.0', true],
      20: ['Event Log', '3.1', true],
    };

    it('has each object at its registry version, with a registry-style URN', () => {
      for (const [id, [name, version, multiple]] of Object.entries(objects)) {
        const object = model.object(Number(id));
        assert.ok(object, `object ${id} is bundled`);
        assert.deepEqual(
          { name: object.name, version: object.version, multiple: object.multiple, mandatory: object.mandatory },
          { name, version, multiple, mandatory: false },
          `object ${id}`,
        );
        assert.equal(object.urn, `urn:oma:lwm2m:oma:${id}${version === '1.0' ? '' : `:${version}`}`);
        assert.ok(object.description.length > 0, `object ${id} has a description`);
      }
      // the same objects through the model every node shares
      assert.equal(defaultModel().object(11)!.name, 'LWM2M APN Connection Profile');
      assert.equal(defaultModel().resource(12, 5)!.name, 'SSID');
    });

    /** [object, resource, name, operations, type, multiple, mandatory], checked against the registry's DDF files. */
    const spots: Array<[number, number, string, string, string, boolean, boolean]> = [
      [9, 0, 'PkgName', 'R', 'String', false, true],
      [9, 4, 'Install', 'E', 'none', false, true],
      [9, 17, 'Software Component Link', 'R', 'Objlnk', true, false],
      [9, 21, 'Operational State', 'R', 'Unsigned Integer', false, true],
      [10, 4, 'PSM Timer', 'RW', 'Integer', false, false],
      [10, 7, 'eDRX parameters for Iu mode', 'RW', 'Opaque', false, false],
      [10, 11, 'Activated Profile Names', 'R', 'Objlnk', true, true],
      [11, 0, 'Profile name', 'RW', 'String', false, true],
      [11, 1, 'APN', 'RW', 'String', false, false],
      [11, 4, 'Authentication Type', 'RW', 'Integer', false, true],
      [11, 9, 'Connection establishment time (1)', 'R', 'Time', true, false],
      [11, 30, 'Supported RAT Types', 'RW', 'Unsigned Integer', true, false],
      [12, 1, 'Enable', 'RW', 'Boolean', false, true],
      [12, 5, 'SSID', 'RW', 'String', false, true],
      [12, 17, 'WPA Pre Shared Key', 'W', 'String', false, false],
      [12, 48, 'Vendor specific extensions', 'R', 'Objlnk', false, false],
      [13, 0, 'Preferred Communications Bearer', 'RW', 'Integer', true, false],
      [13, 12, 'Attach without PDN connection', 'RW', 'Boolean', false, false],
      [16, 0, 'Identity', 'RW', 'String', true, true],
      [16, 1, 'GetAuthData', 'E', 'none', false, false],
      [16, 2, 'AuthData', 'R', 'Opaque', true, false],
      [19, 0, 'Data', 'RW', 'Opaque', true, true],
      [19, 2, 'Data Creation Time', 'RW', 'Time', false, false],
      [20, 4011, 'LogStart', 'E', 'none', false, false],
      [20, 4014, 'LogData', 'R', 'Opaque', false, true],
      [20, 4016, 'LogDataIncremental', '', 'Opaque', false, false],
      [20, 4050, 'AppID', 'RW', 'Unsigned Integer', false, true],
    ];
    it('knows spot-checked resources: id, name, operations, type, multiplicity, mandatory', () => {
      for (const [oid, rid, name, operations, type, multiple, mandatory] of spots) {
        const resource = model.resource(oid, rid);
        assert.ok(resource, `/${oid}/${rid} is defined`);
        assert.deepEqual(
          { name: resource.name, operations: resource.operations, type: resource.type, multiple: resource.multiple, mandatory: resource.mandatory },
          { name, operations, type, multiple, mandatory },
          `/${oid}/${rid}`,
        );
      }
      // ranges and units parsed from the registry's text
      assert.deepEqual(model.resource(12, 5)!.range, { min: 1, max: 32 });
      assert.deepEqual(model.resource(13, 3)!.range, { min: -140, max: -44 });
      assert.deepEqual(model.resource(9, 7)!.range, { min: 0, max: 4 });
      assert.equal(model.resource(10, 4)!.units, 's');
      // Cellular Connectivity 1.1 moved resource 6 to the APN profile (as 26)
      assert.equal(model.resource(10, 6), undefined);
      assert.equal(model.resource(11, 26)!.name, 'Serving PLMN Rate control');
    });

    it('gives each object a name no other bundled object has, and each resource a unique name within its object', () => {
      // (the registry itself names both 6 and IPSO 3336 "Location", so the check is per new object)
      const names = model.objects().map((object) => object.name);
      for (const id of Object.keys(objects)) {
        const name = model.object(Number(id))!.name;
        assert.equal(names.filter((other) => other.toLowerCase() === name.toLowerCase()).length, 1, `object ${id} ${name}`);
        const resourceNames = [...model.object(Number(id))!.resources.values()].map((resource) => resource.name);
        assert.equal(new Set(resourceNames).size, resourceNames.length, `object ${id}: ${resourceNames.join(', ')}`);
      }
    });

    /** A value of the resource's type, inside its range where the registry gives one. */
    const single = (resource: ResourceDefinition, index: number): unknown => {
      const min = resource.range?.min;
      switch (resource.type) {
        case 'String':
          return `${resource.name.slice(0, 20)} ${index}`;
        case 'Integer':
        case 'Unsigned Integer':
          return min !== undefined ? min + index : 7 + index;
        case 'Float':
          return 1.5 + index;
        case 'Boolean':
          return index % 2 === 0;
        case 'Opaque':
          return Buffer.from([0xca, 0xfe, index]);
        case 'Time':
          return 1_700_000_000 + index;
        case 'Objlnk':
          return `11:${index}`;
        case 'Corelnk':
          return '</3/0>';
        default:
          throw new Error(`no value for type ${resource.type}`);
      }
    };
    /** Every readable resource of the object with a value; multiple resources with two instances. */
    const fullInstance = (oid: number): Record<number, unknown> => {
      const instance: Record<number, unknown> = {};
      for (const resource of model.object(oid)!.resources.values()) {
        if (!resource.operations.includes('R')) continue;
        instance[resource.id] = resource.multiple ? { 0: single(resource, 0), 1: single(resource, 1) } : single(resource, 0);
      }
      return instance;
    };

    for (const [format, label] of [
      [ContentFormat.TLV, 'TLV'],
      [ContentFormat.SENML_CBOR, 'SenML CBOR'],
      [ContentFormat.LWM2M_CBOR, 'LwM2M CBOR'],
    ] as const) {
      it(`round-trips a full instance of each object in ${label}`, () => {
        for (const id of Object.keys(objects)) {
          const value = fullInstance(Number(id));
          assert.ok(Object.keys(value).length > 0, `object ${id} has readable resources`);
          const payload = encode(format, `/${id}/0`, value, model);
          assert.deepEqual(decode(format, `/${id}/0`, payload, model), value, `object ${id}`);
        }
      });
    }
  });

  describe('DDF XML loader', () => {
    it('reads every field of a definition from a folder of DDF files', async () => {
      const model = new ObjectModel();
      const result = await model.addFolder(FIXTURES);
      const greenhouse = model.object(32769)!;
      assert.ok(result.loaded.some((object) => object.id === 32769));
      assert.equal(greenhouse.name, 'Greenhouse Controller');
      assert.equal(greenhouse.version, '1.1');
      assert.equal(greenhouse.lwm2mVersion, '1.1');
      assert.equal(greenhouse.urn, 'urn:oma:lwm2m:x:32769:1.1');
      assert.equal(greenhouse.multiple, true);
      assert.equal(greenhouse.mandatory, false);
      assert.equal(greenhouse.description, 'Test object: climate control of a greenhouse.');
      const types = [...greenhouse.resources.values()].map((resource) => resource.type);
      assert.deepEqual(types, ['String', 'Integer', 'Unsigned Integer', 'Float', 'Boolean', 'Opaque', 'Time', 'Objlnk', 'Corelnk', 'none', 'Integer']);
      const label = greenhouse.resources.get(0)!;
      assert.deepEqual(
        { name: label.name, operations: label.operations, multiple: label.multiple, mandatory: label.mandatory, range: label.range },
        { name: 'Label', operations: 'RW', multiple: false, mandatory: true, range: { min: 0, max: 32 } },
      );
      assert.equal(greenhouse.resources.get(3)!.multiple, true);
      assert.equal(greenhouse.resources.get(3)!.units, 'Cel');
      assert.deepEqual(greenhouse.resources.get(1)!.range, { min: -10, max: 10 });
      assert.deepEqual(greenhouse.resources.get(10)!.enumeration, [0, 1, 2]);
      assert.equal(greenhouse.resources.get(9)!.operations, 'E');
      assert.equal(greenhouse.resources.get(9)!.description, 'Flushes the pipes.');
    });

    it('reports each broken file by name and still loads the others', async () => {
      const model = ObjectModel.bundled();
      const { loaded, errors } = await model.addFolder(FIXTURES);
      assert.deepEqual(loaded.map((object) => object.id).sort((a, b) => a - b), [3303, 32769]);
      const byFile = new Map(errors.map((error) => [path.basename(error.source), error]));
      assert.deepEqual([...byFile.keys()].sort(), ['broken-bad-type.xml', 'broken-unclosed.xml', 'not-a-ddf.xml']);
      for (const error of errors) assert.ok(error instanceof ModelError);
      assert.match(byFile.get('broken-unclosed.xml')!.message, /broken-unclosed\.xml.*not well-formed XML \(line \d+/);
      assert.match(byFile.get('broken-bad-type.xml')!.message, /broken-bad-type\.xml.*resource 0.*unknown <Type> "Decimal128"/);
      assert.match(byFile.get('not-a-ddf.xml')!.message, /not-a-ddf\.xml.*no <LWM2M><Object> element/);
      assert.ok(!model.has(32770) && !model.has(32771));
    });

    it('lets a user file override a bundled object, keeping the old version reachable', async () => {
      const model = ObjectModel.bundled();
      const bundledVersion = model.object(3303)!.version;
      await model.addFolder(FIXTURES);
      assert.equal(model.object(3303)!.name, 'Thermometer (site variant)');
      assert.equal(model.resource(3303, 5700)!.type, 'Integer');
      assert.equal(model.object(3303, '1.0')!.name, 'Thermometer (site variant)');
      if (bundledVersion !== '1.0') assert.equal(model.object(3303, bundledVersion)!.name, 'Temperature');
    });

    it('reports a missing folder as an error instead of throwing', async () => {
      const { loaded, errors } = await new ObjectModel().addFolder(path.join(FIXTURES, 'no-such-folder'));
      assert.deepEqual(loaded, []);
      assert.equal(errors.length, 1);
      assert.match(errors[0].message, /no-such-folder: cannot read the folder/);
    });

    it('reads several objects from one file, and is lenient where the registry varies', () => {
      const xml = `<?xml version="1.0"?><LWM2M>
        <Object><Name>A</Name><ObjectID>40001</ObjectID><MultipleInstances>single</MultipleInstances>
          <Resources><Item ID="1"><Name>Go</Name><Operations>e</Operations><Type></Type></Item>
          <Item ID="2"><Name>Count</Name><Operations>RW</Operations><Type>unsigned integer</Type></Item></Resources></Object>
        <Object><Name>B</Name><ObjectID>40002</ObjectID><MultipleInstances>Multiple</MultipleInstances></Object>
      </LWM2M>`;
      const [a, b] = parseDdf(xml, 'inline');
      assert.equal(a.id, 40001);
      assert.equal(a.version, '1.0');
      assert.equal(a.resources.get(1)!.operations, 'E');
      assert.equal(a.resources.get(1)!.type, 'none');
      assert.equal(a.resources.get(2)!.type, 'Unsigned Integer');
      assert.equal(b.multiple, true);
      assert.equal(b.resources.size, 0);
    });

    const invalid: Array<[string, string, RegExp]> = [
      ['no object id', '<LWM2M><Object><Name>A</Name></Object></LWM2M>', /missing ObjectID/],
      ['an object id out of range', '<LWM2M><Object><Name>A</Name><ObjectID>70000</ObjectID></Object></LWM2M>', /ObjectID "70000" is not an integer/],
      ['no name', '<LWM2M><Object><ObjectID>5</ObjectID></Object></LWM2M>', /object 5 has no <Name>/],
      ['a resource without id', '<LWM2M><Object><Name>A</Name><ObjectID>5</ObjectID><Resources><Item><Name>x</Name></Item></Resources></Object></LWM2M>', /missing resource Item ID/],
      ['duplicate resources', '<LWM2M><Object><Name>A</Name><ObjectID>5</ObjectID><Resources><Item ID="1"><Name>x</Name><Operations>R</Operations><Type>String</Type></Item><Item ID="1"><Name>y</Name><Operations>R</Operations><Type>String</Type></Item></Resources></Object></LWM2M>', /defines resource 1 twice/],
      ['bad operations', '<LWM2M><Object><Name>A</Name><ObjectID>5</ObjectID><Resources><Item ID="1"><Name>x</Name><Operations>RX</Operations><Type>String</Type></Item></Resources></Object></LWM2M>', /Operations "RX"/],
      ['a readable resource with no type', '<LWM2M><Object><Name>A</Name><ObjectID>5</ObjectID><Resources><Item ID="1"><Name>x</Name><Operations>R</Operations></Item></Resources></Object></LWM2M>', /no <Type> for a resource with operations R/],
      ['bad multiplicity', '<LWM2M><Object><Name>A</Name><ObjectID>5</ObjectID><MultipleInstances>Many</MultipleInstances></Object></LWM2M>', /MultipleInstances "Many"/],
      ['not XML at all', 'hello', /not well-formed XML/],
    ];
    for (const [what, xml, reason] of invalid) {
      it(`refuses a definition with ${what}, naming the source`, () => {
        assert.throws(
          () => parseDdf(xml, 'my-file.xml'),
          (error: unknown) => error instanceof ModelError && error.source === 'my-file.xml' && reason.test(error.message),
        );
      });
    }
  });

  describe('RangeEnumeration', () => {
    it('reads the ways the registry writes ranges and lists', () => {
      assert.deepEqual(parseRangeEnumeration('0..100'), { range: { min: 0, max: 100 } });
      assert.deepEqual(parseRangeEnumeration('-40..85'), { range: { min: -40, max: 85 } });
      assert.deepEqual(parseRangeEnumeration('0-255'), { range: { min: 0, max: 255 } });
      assert.deepEqual(parseRangeEnumeration('1..255 bytes'), { range: { min: 1, max: 255 } });
      assert.deepEqual(parseRangeEnumeration('-3.4E+38..3.4E+38'), { range: { min: -3.4e38, max: 3.4e38 } });
      assert.deepEqual(parseRangeEnumeration('0,1,2,3'), { enumeration: [0, 1, 2, 3] });
      assert.deepEqual(parseRangeEnumeration('"U","UQ"'), { enumeration: ['U', 'UQ'] });
      assert.deepEqual(parseRangeEnumeration('7'), { enumeration: [7] });
      assert.deepEqual(parseRangeEnumeration(''), {});
      assert.deepEqual(parseRangeEnumeration('see the description'), {});
      assert.deepEqual(parseRangeEnumeration('10..1'), {});
    });
  });
});
