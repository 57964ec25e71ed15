/**
 * Property tests of the codecs: for every resource type and every format that can carry it,
 * `decode(encode(v))` gives back `v`, at every path level the format supports, for random values
 * and for the edge values each type has (int64/uint64 limits, -0.0, NaN, ±Infinity, subnormals,
 * empty and 70 000-unit strings and buffers, "0:0" and "65535:65535" links, ...).
 *
 * Encoding is driven by the model: object 40000 has one single-instance resource of each type
 * (ids 0–8) and a multiple-instance variant of each (ids 10–18).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ContentFormat, ContentFormatError, decode, decodeComposite, encode, encodeComposite, ObjectModel, type CompositeValue } from '../../lib';

// ---------------------------------------------------------------------------------------------
// The model

const TYPES = ['String', 'Integer', 'Unsigned Integer', 'Float', 'Boolean', 'Opaque', 'Time', 'Objlnk', 'Corelnk'] as const;
type Type = (typeof TYPES)[number];
/** Resource id of the single-instance resource of each type; the multiple one is this + 10. */
const RID: Readonly<Record<Type, number>> = Object.fromEntries(TYPES.map((type, index) => [type, index])) as Record<Type, number>;
const MULTIPLE = 10;

const model = new ObjectModel();
model.addXml(`<LWM2M><Object><Name>T</Name><ObjectID>40000</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
${TYPES.map(
  (type, index) => `  <Item ID="${index}"><Name>single ${type}</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances><Type>${type}</Type></Item>
  <Item ID="${index + MULTIPLE}"><Name>multiple ${type}</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Type>${type}</Type></Item>`,
).join('\n')}
</Resources></Object></LWM2M>`);

// ---------------------------------------------------------------------------------------------
// The formats and what each carries

/** How exact a format is: text and the binary formats carry int64/uint64 exactly, JSON only ±(2^53-1) on Node 20. */
type Exactness = 'text' | 'json' | 'binary';

interface FormatCase {
  readonly name: string;
  readonly format: number;
  readonly exactness: Exactness;
  /** NaN and ±Infinity have a form in this format. */
  readonly nonFinite: boolean;
  readonly types: readonly Type[];
  /** Object instance and object paths (and a multiple resource at its resource path). */
  readonly tree: boolean;
  /** A multiple resource with zero instances (`{}`) survives. */
  readonly emptyMultiple: boolean;
  readonly composite: boolean;
}

const FORMATS: readonly FormatCase[] = [
  { name: 'TEXT', format: ContentFormat.TEXT, exactness: 'text', nonFinite: false, types: TYPES, tree: false, emptyMultiple: false, composite: false },
  { name: 'OPAQUE', format: ContentFormat.OPAQUE, exactness: 'binary', nonFinite: true, types: ['Opaque'], tree: false, emptyMultiple: false, composite: false },
  { name: 'TLV', format: ContentFormat.TLV, exactness: 'binary', nonFinite: true, types: TYPES, tree: true, emptyMultiple: true, composite: false },
  { name: 'OMA_JSON', format: ContentFormat.OMA_JSON, exactness: 'json', nonFinite: false, types: TYPES, tree: true, emptyMultiple: false, composite: false },
  { name: 'SENML_JSON', format: ContentFormat.SENML_JSON, exactness: 'json', nonFinite: false, types: TYPES, tree: true, emptyMultiple: false, composite: true },
  { name: 'SENML_CBOR', format: ContentFormat.SENML_CBOR, exactness: 'binary', nonFinite: true, types: TYPES, tree: true, emptyMultiple: false, composite: true },
  { name: 'LWM2M_CBOR', format: ContentFormat.LWM2M_CBOR, exactness: 'binary', nonFinite: true, types: TYPES, tree: true, emptyMultiple: true, composite: true },
];

/** Runs per property: ~175 properties, so the file stays well under 30 s on 2 cores. */
const NUM_RUNS = 300;
const run = (property: fc.IProperty<any>) => fc.assert(property, { numRuns: NUM_RUNS });

// ---------------------------------------------------------------------------------------------
// Value arbitraries, with the edge values of each type mixed in

const SAFE = Number.MAX_SAFE_INTEGER; // 2^53-1
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** The form decoders return an integer in: a number within ±(2^53-1), else a bigint. */
const normalize = (value: bigint): number | bigint => (value >= -BigInt(SAFE) && value <= BigInt(SAFE) ? Number(value) : value);

function withEdges<T>(random: fc.Arbitrary<T>, edges: readonly T[]): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: random, weight: 3 }, { arbitrary: fc.constantFrom(...edges), weight: 1 });
}

const SIGNED_SAFE_EDGES = [0, -1, 1, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32, SAFE, -SAFE];
const SIGNED_EXACT_EDGES = [...SIGNED_SAFE_EDGES, 2n ** 53n, -(2n ** 53n), INT64_MAX, INT64_MIN, INT64_MAX - 1n, INT64_MIN + 1n];
const UNSIGNED_SAFE_EDGES = [0, 1, 255, 256, 2 ** 31, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, SAFE];
const UNSIGNED_EXACT_EDGES = [...UNSIGNED_SAFE_EDGES, 2n ** 53n, INT64_MAX, 2n ** 63n, UINT64_MAX];

const signed = (exactness: Exactness): fc.Arbitrary<number | bigint> =>
  exactness === 'json'
    ? withEdges<number | bigint>(fc.oneof(fc.integer(), fc.maxSafeInteger()), SIGNED_SAFE_EDGES)
    : withEdges<number | bigint>(fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.bigInt({ min: INT64_MIN, max: INT64_MAX }).map(normalize)), SIGNED_EXACT_EDGES);

const unsigned = (exactness: Exactness): fc.Arbitrary<number | bigint> =>
  exactness === 'json'
    ? withEdges<number | bigint>(fc.oneof(fc.nat(), fc.maxSafeNat()), UNSIGNED_SAFE_EDGES)
    : withEdges<number | bigint>(fc.oneof(fc.nat(), fc.maxSafeNat(), fc.bigInt({ min: 0n, max: UINT64_MAX }).map(normalize)), UNSIGNED_EXACT_EDGES);

const time = (exactness: Exactness): fc.Arbitrary<number | bigint> =>
  fc.oneof({ arbitrary: fc.integer({ min: 0, max: 4_102_444_800 }), weight: 2 }, { arbitrary: signed(exactness), weight: 1 }, { arbitrary: fc.constantFrom(1_700_000_000, 4_102_444_800), weight: 1 });

const FINITE_FLOAT_EDGES = [
  0, -0, 1, -1, 20, 0.1, -0.1, 1 / 3, 1.5, -2.5, 3.14159, 1e21, 1e-7, 123456789.125,
  Number.MIN_VALUE, -Number.MIN_VALUE, Number.MAX_VALUE, -Number.MAX_VALUE, Number.EPSILON,
  2 ** -149, 2 ** -126, 3.4028234663852886e38, // float32: smallest subnormal, smallest normal, largest
  65504, 2 ** -24, 2 ** -14, // half: largest, smallest subnormal, smallest normal
  SAFE, 2 ** 53, 2 ** 60, -(2 ** 63), 2 ** 64,
];
const float = (nonFinite: boolean): fc.Arbitrary<number> =>
  withEdges(
    fc.oneof(
      nonFinite ? fc.double() : fc.double({ noNaN: true, noDefaultInfinity: true }),
      nonFinite ? fc.float() : fc.float({ noNaN: true, noDefaultInfinity: true }), // float32-exact
      fc.integer().map((value) => value / 8), // short binary fractions
      fc.integer(),
    ),
    nonFinite ? [...FINITE_FLOAT_EDGES, NaN, Infinity, -Infinity] : FINITE_FLOAT_EDGES,
  );

const STRING_EDGES = [
  '',
  ' ',
  '0',
  '-0.0',
  '3:0',
  'x'.repeat(70_000), // a TLV length of 3 bytes
  '€ñ中文'.repeat(10_000), // 2- and 3-byte UTF-8, 70 000 units
  '😀👩‍👩‍👧‍👦𝄞'.repeat(2_000), // 4-byte UTF-8, surrogate pairs, ZWJ sequences
  '\uFEFFstarts with a byte order mark',
  '\u0000nul\u0000',
  '"quotes" \\ backslash / slash \n\r\t\b\f \u001f \u007f \u2028\u2029',
  '</3/0>;rt="oma.lwm2m",</1/0>',
];
const string: fc.Arbitrary<string> = withEdges(
  fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'binary-ascii', maxLength: 40 })),
  STRING_EDGES,
);

const OPAQUE_EDGES = [Buffer.alloc(0), Buffer.of(0), Buffer.of(0xff), Buffer.from(Array.from({ length: 256 }, (_, index) => index)), Buffer.alloc(70_000, 0xa5)];
const opaque: fc.Arbitrary<Buffer> = withEdges(
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  OPAQUE_EDGES,
);

const objlnk: fc.Arbitrary<string> = withEdges(
  fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })).map(([objectId, instanceId]) => `${objectId}:${instanceId}`),
  ['0:0', '65535:65535', '3:0', '65535:0', '0:65535'],
);

function valueOf(type: Type, format: FormatCase): fc.Arbitrary<unknown> {
  switch (type) {
    case 'String':
    case 'Corelnk':
      return string;
    case 'Integer':
      return signed(format.exactness);
    case 'Unsigned Integer':
      return unsigned(format.exactness);
    case 'Float':
      return float(format.nonFinite);
    case 'Boolean':
      return fc.boolean();
    case 'Opaque':
      return opaque;
    case 'Time':
      return time(format.exactness);
    case 'Objlnk':
      return objlnk;
  }
}

const id = (max = 65535): fc.Arbitrary<number> => withEdges(fc.integer({ min: 0, max }), [0, max]);

/** `{ "<riid>": value }` built as a plain object. */
function multipleOf(type: Type, format: FormatCase, minKeys: number, maxKeys = 4): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .uniqueArray(fc.tuple(id(), valueOf(type, format)), { minLength: minKeys, maxLength: maxKeys, selector: ([riid]) => riid })
    .map((entries) => Object.fromEntries(entries.map(([riid, value]) => [String(riid), value])));
}

/** An object instance with one or more of the 18 resources, multiple ones included. */
function instanceOf(format: FormatCase): fc.Arbitrary<Record<string, unknown>> {
  const resources: Record<string, fc.Arbitrary<unknown>> = {};
  for (const type of format.types) {
    resources[RID[type]] = valueOf(type, format);
    resources[RID[type] + MULTIPLE] = multipleOf(type, format, format.emptyMultiple ? 0 : 1, 3);
  }
  return fc
    .record(resources, { requiredKeys: [], noNullPrototype: true })
    .filter((instance) => Object.keys(instance).length > 0)
    .map((instance) => ({ ...instance }));
}

function objectOf(format: FormatCase): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .uniqueArray(fc.tuple(id(), instanceOf(format)), { minLength: 1, maxLength: 3, selector: ([iid]) => iid })
    .map((entries) => Object.fromEntries(entries.map(([iid, instance]) => [String(iid), instance])));
}

/**
 * A composite value keyed by instance, resource and resource-instance paths, and what decoding it
 * must give: the same values keyed by resource path.
 */
function compositeOf(format: FormatCase): fc.Arbitrary<{ input: Record<string, unknown>; expected: Record<string, unknown> }> {
  const mode = fc.constantFrom('instance', 'resources', 'resourceInstances');
  return fc
    .uniqueArray(fc.tuple(fc.integer({ min: 0, max: 3 }), instanceOf(format), mode), { minLength: 1, maxLength: 3, selector: ([iid]) => iid })
    .map((entries) => {
      const input: Record<string, unknown> = {};
      const expected: Record<string, unknown> = {};
      for (const [iid, instance, how] of entries) {
        if (how === 'instance') input[`/40000/${iid}`] = instance;
        for (const [rid, value] of Object.entries(instance)) {
          const resource = `/40000/${iid}/${rid}`;
          expected[resource] = value;
          if (how === 'instance') continue;
          const instances = Number(rid) >= MULTIPLE ? Object.entries(value as Record<string, unknown>) : [];
          if (how === 'resourceInstances' && instances.length > 0) {
            for (const [riid, item] of instances) input[`${resource}/${riid}`] = item;
          } else input[resource] = value;
        }
      }
      return { input, expected };
    });
}

// ---------------------------------------------------------------------------------------------
// Comparison: Object.is for numbers (-0, NaN), Buffer.equals for bytes, strict types (number ≠ bigint)

function show(value: unknown): string {
  if (Buffer.isBuffer(value)) return `Buffer(${value.length}) ${value.subarray(0, 16).toString('hex')}${value.length > 16 ? '…' : ''}`;
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…(${value.length} units)` : value);
  if (value && typeof value === 'object') return `{${Object.keys(value).slice(0, 8).join(',')}${Object.keys(value).length > 8 ? ',…' : ''}}`;
  return String(value);
}

/** The first place `actual` differs from `expected`, or undefined when they are the same. */
function difference(actual: unknown, expected: unknown, at = '$'): string | undefined {
  if (Buffer.isBuffer(expected)) {
    return Buffer.isBuffer(actual) && actual.equals(expected) ? undefined : `${at}: got ${show(actual)}, expected ${show(expected)}`;
  }
  if (typeof expected === 'number' || typeof expected === 'bigint' || typeof expected === 'string' || typeof expected === 'boolean') {
    return typeof actual === typeof expected && Object.is(actual, expected) ? undefined : `${at}: got ${typeof actual} ${show(actual)}, expected ${typeof expected} ${show(expected)}`;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Buffer.isBuffer(actual) || Array.isArray(actual)) return `${at}: got ${show(actual)}, expected an object`;
    const expectedKeys = Object.keys(expected).sort();
    const actualKeys = Object.keys(actual).sort();
    if (expectedKeys.join() !== actualKeys.join()) return `${at}: got keys [${actualKeys}], expected [${expectedKeys}]`;
    for (const key of expectedKeys) {
      const inner = difference((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${at}.${key}`);
      if (inner) return inner;
    }
    return undefined;
  }
  return `${at}: unexpected expected value ${String(expected)}`;
}

function assertSame(actual: unknown, expected: unknown, context = ''): void {
  const problem = difference(actual, expected);
  if (problem !== undefined) assert.fail(`${context}${context ? ': ' : ''}${problem}`);
}

function roundTrip(format: FormatCase, path: string, value: unknown): void {
  const payload = encode(format.format, path, value, model);
  const decoded = decode(format.format, path, payload, model);
  assertSame(decoded, value, `${format.name} ${path}`);
}

function isTyped(error: unknown, format: number, operation: 'encode' | 'decode'): boolean {
  return error instanceof ContentFormatError && error.format === format && error.operation === operation && !error.reason.startsWith('unexpected ');
}

function assertRefused(format: number, path: string, value: unknown): void {
  assert.throws(
    () => encode(format, path, value, model),
    (error: unknown) => {
      assert.ok(isTyped(error, format, 'encode'), `expected a ContentFormatError (format ${format}, encode), got ${String(error)}`);
      return true;
    },
    `${path} = ${show(value)} should be refused in format ${format}`,
  );
}

// ---------------------------------------------------------------------------------------------

describe('content formats: decode(encode(v)) is v (property tests)', function () {
  this.timeout(120_000);

  for (const format of FORMATS) {
    describe(`${format.name} (${format.format})`, () => {
      for (const type of format.types) {
        it(`${type} at a resource path`, () => {
          run(fc.property(valueOf(type, format), (value) => roundTrip(format, `/40000/0/${RID[type]}`, value)));
        });

        it(`${type} at a resource-instance path`, () => {
          run(fc.property(id(), id(), valueOf(type, format), (iid, riid, value) => roundTrip(format, `/40000/${iid}/${RID[type] + MULTIPLE}/${riid}`, value)));
        });

        if (format.tree) {
          it(`a multiple ${type} resource at its resource path${format.emptyMultiple ? ' (zero instances included)' : ''}`, () => {
            run(fc.property(multipleOf(type, format, format.emptyMultiple ? 0 : 1), (value) => roundTrip(format, `/40000/0/${RID[type] + MULTIPLE}`, value)));
          });
        }
      }

      if (format.tree) {
        it(`an object instance of several resources${format.emptyMultiple ? ', multiple ones with zero instances included' : ''}`, () => {
          run(fc.property(id(), instanceOf(format), (iid, instance) => roundTrip(format, `/40000/${iid}`, instance)));
        });

        it('an object of several instances', () => {
          run(fc.property(objectOf(format), (object) => roundTrip(format, '/40000', object)));
        });
      }

      if (format.composite) {
        it('a composite value, decoded keyed by resource path', () => {
          run(
            fc.property(compositeOf(format), ({ input, expected }) => {
              const payload = encodeComposite(format.format, input as CompositeValue, model);
              assertSame(decodeComposite(format.format, payload, model), expected, `${format.name} composite`);
            }),
          );
        });
      }
    });
  }

  describe('edge cases every format must get right', () => {
    const carriesFloat = FORMATS.filter((format) => format.types.includes('Float'));

    it('a Float resource given an integer (20) decodes as the number 20 in every format', () => {
      for (const format of carriesFloat) {
        for (const path of ['/40000/0/3', '/40000/0/13/0']) {
          const decoded = decode(format.format, path, encode(format.format, path, 20, model), model);
          assertSame(decoded, 20, `${format.name} ${path}`);
        }
        if (format.tree) assertSame(decode(format.format, '/40000/0', encode(format.format, '/40000/0', { 3: 20, 13: { 0: 20 } }, model), model), { 3: 20, 13: { 0: 20 } }, format.name);
      }
    });

    it('a Float resource sent as a CBOR integer (even a 64-bit one) decodes as a number, in SenML CBOR as in LwM2M CBOR', () => {
      // /40000/0/3 = 2^60 and = 20 as CBOR unsigned integers (major type 0), not floats
      const big = '1b 1000000000000000';
      const cases: Array<[number, string]> = [
        [ContentFormat.LWM2M_CBOR, `a1 19 9c40 a1 00 a1 03 ${big}`],
        [ContentFormat.LWM2M_CBOR, 'a1 19 9c40 a1 00 a1 03 14'],
        [ContentFormat.SENML_CBOR, `81 a2 00 6a 2f34303030302f302f33 02 ${big}`],
        [ContentFormat.SENML_CBOR, '81 a2 00 6a 2f34303030302f302f33 02 14'],
      ];
      for (const [format, bytes] of cases) {
        const decoded = decode(format, '/40000/0/3', Buffer.from(bytes.replace(/\s+/g, ''), 'hex'), model);
        assertSame(decoded, bytes.endsWith('14') ? 20 : 2 ** 60, `format ${format}, ${bytes}`);
      }
    });

    it('LwM2M CBOR reads a Time written as tag 1 over any 64-bit integer, as other implementations may write it', () => {
      const cases: Array<[string, number | bigint]> = [
        ['c1 1a 65538180', 0x65538180],
        ['c1 1b 0000000100000000', 2 ** 32],
        ['c1 3b 0000000100000000', -(2 ** 32) - 1],
        ['c1 1b 001fffffffffffff', SAFE],
      ];
      for (const [bytes, expected] of cases) {
        const payload = Buffer.from(`a1199c40a100a106${bytes.replace(/\s+/g, '')}`, 'hex');
        assertSame(decode(ContentFormat.LWM2M_CBOR, '/40000/0/6', payload, model), expected, bytes);
      }
    });

    it('a Float resource given an integer is written as a float in TLV (4 bytes)', () => {
      assert.deepEqual(encode(ContentFormat.TLV, '/40000/0/3', 20, model), Buffer.from('c403' + '41a00000', 'hex'));
    });

    it('-0.0 keeps its sign in every format that carries Float', () => {
      for (const format of carriesFloat) assertSame(decode(format.format, '/40000/0/3', encode(format.format, '/40000/0/3', -0, model), model), -0, format.name);
    });

    it('NaN and ±Infinity are refused by TEXT and the JSON formats, at every level', () => {
      for (const format of FORMATS.filter((candidate) => candidate.types.includes('Float') && !candidate.nonFinite)) {
        for (const value of [NaN, Infinity, -Infinity]) {
          assertRefused(format.format, '/40000/0/3', value);
          assertRefused(format.format, '/40000/0/13/1', value);
          if (format.tree) {
            assertRefused(format.format, '/40000/0', { 0: 'ok', 3: value });
            assertRefused(format.format, '/40000/0/13', { 0: 1.5, 1: value });
          }
        }
      }
    });

    it('integers beyond ±(2^53-1) given as numbers come back as the equal bigint (TEXT, TLV, CBOR formats)', () => {
      for (const format of FORMATS.filter((candidate) => candidate.exactness !== 'json' && candidate.types.includes('Integer'))) {
        assertSame(decode(format.format, '/40000/0/1', encode(format.format, '/40000/0/1', 2 ** 60, model), model), 2n ** 60n, format.name);
        assertSame(decode(format.format, '/40000/0/1', encode(format.format, '/40000/0/1', -(2 ** 63), model), model), INT64_MIN, format.name);
        assertSame(decode(format.format, '/40000/0/2', encode(format.format, '/40000/0/2', 2 ** 63, model), model), 2n ** 63n, format.name);
        // and a bigint within the safe range comes back as a number
        assertSame(decode(format.format, '/40000/0/1', encode(format.format, '/40000/0/1', 42n, model), model), 42, format.name);
      }
    });

    it('OPAQUE carries only Opaque values, and only at resource (instance) paths', () => {
      const opaque = ContentFormat.OPAQUE;
      for (const type of TYPES.filter((candidate) => candidate !== 'Opaque')) {
        const sample = { String: 'x', Integer: 1, 'Unsigned Integer': 1, Float: 1.5, Boolean: true, Time: 1, Objlnk: '3:0', Corelnk: '</3>' }[type];
        assertRefused(opaque, `/40000/0/${RID[type]}`, sample);
        assert.throws(() => decode(opaque, `/40000/0/${RID[type]}`, Buffer.from('01', 'hex'), model), (error: unknown) => isTyped(error, opaque, 'decode'));
      }
      assertRefused(opaque, '/40000/0', { 5: Buffer.of(1) });
      assert.throws(() => decode(opaque, '/40000/0', Buffer.of(1), model), (error: unknown) => isTyped(error, opaque, 'decode'));
    });

    it('TEXT carries one value only: object and instance paths are refused', () => {
      assertRefused(ContentFormat.TEXT, '/40000/0', { 0: 'x' });
      assertRefused(ContentFormat.TEXT, '/40000', { 0: { 0: 'x' } });
      assertRefused(ContentFormat.TEXT, '/40000/0/10', { 0: 'x', 1: 'y' });
    });

    it('encode refuses a value that does not fit its type, in every format, naming the format', () => {
      const misfits: Array<[Type, unknown]> = [
        ['Integer', 1.5],
        ['Integer', NaN],
        ['Integer', 2n ** 63n],
        ['Integer', INT64_MIN - 1n],
        ['Integer', '5'],
        ['Unsigned Integer', -1],
        ['Unsigned Integer', -1n],
        ['Unsigned Integer', 2n ** 64n],
        ['Unsigned Integer', 2 ** 64],
        ['Unsigned Integer', 0.5],
        ['Time', 1.5],
        ['Time', '2024-01-01'],
        ['Float', '1.5'],
        ['Float', 1n],
        ['Boolean', 'x'],
        ['Boolean', 1],
        ['String', 5],
        ['String', Buffer.from('x')],
        ['Corelnk', 5],
        ['Objlnk', '3'],
        ['Objlnk', '65536:0'],
        ['Objlnk', '3:-1'],
        ['Objlnk', 3],
        ['Opaque', 'AQID'],
        ['Opaque', [1, 2, 3]],
      ];
      for (const format of FORMATS) {
        for (const [type, value] of misfits) {
          assertRefused(format.format, `/40000/0/${RID[type]}`, value);
          assertRefused(format.format, `/40000/0/${RID[type] + MULTIPLE}/0`, value);
          if (format.tree) assertRefused(format.format, '/40000/0', { [RID[type] + MULTIPLE]: { 0: value } });
        }
        for (const value of [null, undefined, {}, [1]]) assertRefused(format.format, '/40000/0/1', value);
      }
    });
  });
});
