/**
 * Differential tests of our CBOR codecs against cbor-x, an independent CBOR implementation (a
 * devDependency only: the oracle here and the baseline in bench/codecs, never used at run time).
 *
 * Three layers, each in both directions (ours encodes → cbor-x decodes, cbor-x encodes → ours decodes):
 *   1. the low-level reader and writer (lib/content/cbor-reader.ts, cbor-writer.ts) on random data
 *      items: integers over the whole -2^64..2^64-1 range, floats, text and byte strings, arrays,
 *      maps with integer and text keys, booleans, null, undefined, tags;
 *   2. SenML CBOR (112): packs of records against arrays of integer-labelled maps built here;
 *   3. LwM2M CBOR (11544): nested maps keyed by path ids (and arrays of ids) against values built here.
 *
 * What each side may legitimately do differently is kept out of the generators, each with its
 * reason next to it (cbor-x writes -0 as the integer 0, -2^64 as a bignum, lone surrogates as invalid UTF-8, ...).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Decoder, Encoder, FLOAT32_OPTIONS, Tag } from 'cbor-x';
import { PLAIN_CBORX } from '../helpers/cborx';
import { ContentFormat, decode, decodePaths, decodeRecords, encode, encodeComposite, encodePaths, encodeRecords, ObjectModel, type CompositeValue } from '../../lib';
import { CborTag, decodeCbor, type CborItem } from '../../lib/content/cbor-reader';
import { CborWriter } from '../../lib/content/cbor-writer';

// ---------------------------------------------------------------------------------------------
// cbor-x as a plain RFC 8949 codec

const PLAIN = PLAIN_CBORX;
const cborx = new Encoder(PLAIN);
const cborxDecoder = new Decoder(PLAIN);
/** Writes every number that is not a 32-bit integer as a single: used only with float32-exact values. */
const cborxSingles = new Encoder({ ...PLAIN, useFloat32: FLOAT32_OPTIONS.ALWAYS });

/** cbor-x's encoded bytes as a Buffer of their own (its encoders may reuse their buffer). */
const cborxEncode = (value: unknown, encoder: Encoder = cborx): Buffer => Buffer.from(encoder.encode(value));

const NUM_RUNS = 300;
const run = (property: fc.IProperty<any>, numRuns = NUM_RUNS) => fc.assert(property, { numRuns });

// ---------------------------------------------------------------------------------------------
// Comparison: strict types (number ≠ bigint), Object.is for numbers (-0, NaN), bytes by content

interface SameOptions {
  /** Map entries must come in the same order (the low-level layer), or only hold the same pairs (the formats). */
  readonly orderedMaps: boolean;
}

function show(value: unknown): string {
  if (value instanceof Uint8Array) return `bytes(${value.length}) ${Buffer.from(value).subarray(0, 16).toString('hex')}${value.length > 16 ? '…' : ''}`;
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…(${value.length} units)` : value);
  if (value instanceof Map) return `Map(${value.size})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  if (value instanceof Date) return `Date(${value.getTime()})`;
  if (value instanceof Tag || value instanceof CborTag) return `${value.constructor.name}(${value.tag})`;
  if (value && typeof value === 'object') return `{${Object.keys(value).join(',')}}`;
  return String(value);
}

/** The first place `actual` differs from `expected`, or undefined when they are the same. */
function difference(actual: unknown, expected: unknown, options: SameOptions, at = '$'): string | undefined {
  const mismatch = () => `${at}: got ${show(actual)}, expected ${show(expected)}`;
  if (expected instanceof Uint8Array) {
    return actual instanceof Uint8Array && Buffer.from(actual).equals(Buffer.from(expected)) ? undefined : mismatch();
  }
  if (expected instanceof Date) return actual instanceof Date && Object.is(actual.getTime(), expected.getTime()) ? undefined : mismatch();
  if (expected instanceof Tag || expected instanceof CborTag) {
    if (!(actual instanceof expected.constructor) || (actual as Tag).tag !== expected.tag) return mismatch();
    return difference((actual as Tag).value, expected.value, options, `${at}<tag ${expected.tag}>`);
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return mismatch();
    for (let i = 0; i < expected.length; i++) {
      const inner = difference(actual[i], expected[i], options, `${at}[${i}]`);
      if (inner) return inner;
    }
    return undefined;
  }
  if (expected instanceof Map) {
    if (!(actual instanceof Map) || actual.size !== expected.size) return mismatch();
    const actualEntries = [...actual.entries()];
    const expectedEntries = [...expected.entries()];
    if (options.orderedMaps) {
      for (let i = 0; i < expectedEntries.length; i++) {
        const [key, value] = expectedEntries[i];
        const inner = difference(actualEntries[i][0], key, options, `${at}.key#${i}`) ?? difference(actualEntries[i][1], value, options, `${at}.${show(key)}`);
        if (inner) return inner;
      }
      return undefined;
    }
    // unordered: every expected pair has an actual pair with the same key (keys are unique on both sides)
    for (const [key, value] of expectedEntries) {
      const match = actualEntries.find(([candidate]) => difference(candidate, key, options) === undefined);
      if (!match) return `${at}: no key ${show(key)} among [${actualEntries.map(([candidate]) => show(candidate))}]`;
      const inner = difference(match[1], value, options, `${at}.${show(key)}`);
      if (inner) return inner;
    }
    return undefined;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || actual instanceof Uint8Array || Array.isArray(actual) || actual instanceof Map) return mismatch();
    const expectedKeys = Object.keys(expected).sort();
    const actualKeys = Object.keys(actual).sort();
    if (expectedKeys.join() !== actualKeys.join()) return `${at}: got keys [${actualKeys}], expected [${expectedKeys}]`;
    for (const key of expectedKeys) {
      const inner = difference((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], options, `${at}.${key}`);
      if (inner) return inner;
    }
    return undefined;
  }
  return typeof actual === typeof expected && Object.is(actual, expected) ? undefined : `${at}: got ${typeof actual} ${show(actual)}, expected ${typeof expected} ${show(expected)}`;
}

function assertSame(actual: unknown, expected: unknown, options: SameOptions, context: string): void {
  const problem = difference(actual, expected, options);
  if (problem !== undefined) assert.fail(`${context}: ${problem}`);
}

const ORDERED: SameOptions = { orderedMaps: true };
const UNORDERED: SameOptions = { orderedMaps: false };

// ---------------------------------------------------------------------------------------------
// Shared value arbitraries

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U32 = 0xffffffffn;

/** The form our decoders return an integer in: a number within ±(2^53-1), else a bigint. */
const normalize = (value: bigint): number | bigint => (value >= -SAFE && value <= SAFE ? Number(value) : value);

/**
 * What cbor-x returns for a CBOR integer written in preferred serialization: a number when the
 * head's argument fits in 32 bits, a bigint when it takes 8 bytes (cbor-x makes every 8-byte
 * integer a bigint, however small). So this also checks that our writer used the shortest head.
 */
const cborxInteger = (value: bigint): number | bigint => ((value < 0n ? -1n - value : value) <= U32 ? Number(value) : value);

/**
 * The JS value to hand cbor-x for an integer: a number while the argument fits in 32 bits (cbor-x
 * writes it as an integer then, in the fewest bytes), else a bigint (an 8-byte integer). A number
 * beyond 32 bits would go out as a double, a bigint within 32 bits as a non-preferred 8-byte head.
 */
const cborxIntegerInput = (value: bigint): number | bigint => ((value < 0n ? -1n - value : value) <= U32 ? Number(value) : value);

function withEdges<T>(random: fc.Arbitrary<T>, edges: readonly T[]): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: random, weight: 3 }, { arbitrary: fc.constantFrom(...edges), weight: 1 });
}

/** Every head width, and both sides of each boundary, for major types 0 and 1. */
const INTEGER_EDGES: readonly bigint[] = [
  0n, 1n, 23n, 24n, 255n, 256n, 65535n, 65536n, U32, U32 + 1n, SAFE, SAFE + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n,
  -1n, -24n, -25n, -256n, -257n, -65536n, -65537n, -U32 - 1n, -U32 - 2n, -SAFE, -SAFE - 1n, -SAFE - 2n, -(2n ** 63n), -(2n ** 64n),
];
const anyInteger: fc.Arbitrary<bigint> = withEdges(
  fc.oneof(
    fc.integer({ min: -30, max: 30 }).map(BigInt),
    fc.integer().map(BigInt),
    fc.maxSafeInteger().map(BigInt),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
  ),
  INTEGER_EDGES,
);
const int64 = withEdges(fc.oneof(fc.integer().map(BigInt), fc.maxSafeInteger().map(BigInt), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })), INTEGER_EDGES.filter((value) => value >= -(2n ** 63n) && value < 2n ** 63n));
const uint64 = withEdges(fc.oneof(fc.nat().map(BigInt), fc.maxSafeNat().map(BigInt), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })), INTEGER_EDGES.filter((value) => value >= 0n));

const FLOAT_EDGES = [
  0, -0, 1, -1, 1.5, 0.1, -2.5, 1 / 3, 20, 65504, 65505, 65520, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -126, 2 ** -149, 2 ** -150,
  3.4028234663852886e38, 3.4028235677973366e38, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, 2 ** 53, 2 ** 64, NaN, Infinity, -Infinity,
];
/** Half-exact values (11 significant bits, exponents over the half range and a little beyond), singles and doubles. */
const anyFloat: fc.Arbitrary<number> = withEdges(
  fc.oneof(
    fc.tuple(fc.integer({ min: -2047, max: 2047 }), fc.integer({ min: -36, max: 18 })).map(([mantissa, exponent]) => mantissa * 2 ** exponent),
    fc.float(),
    fc.double(),
  ),
  FLOAT_EDGES,
);

/**
 * Text without a lone surrogate, which has no UTF-8 form: cbor-x writes it as the invalid bytes
 * ED A0 80.. in strings under 64 units (as U+FFFD in longer ones), our writer as U+FFFD (the
 * codecs never pass it one: the String types refuse lone surrogates before encoding).
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const text: fc.Arbitrary<string> = fc
  .oneof(
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }), weight: 3 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 30 }), weight: 2 },
    { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 30 }), weight: 2 },
    // lengths around cbor-x's header guess (made from UTF-16 units, fixed up from the UTF-8 length)
    { arbitrary: fc.string({ unit: 'grapheme', minLength: 20, maxLength: 300 }), weight: 1 },
  )
  .filter((value) => !LONE_SURROGATE.test(value));
const bytes: fc.Arbitrary<Buffer> = fc.uint8Array({ maxLength: 300 }).map((array) => Buffer.from(array));

// ---------------------------------------------------------------------------------------------
// 1. The low-level reader and writer

/** A CBOR data item, independent of either library's JS form of it. */
type Item =
  | { readonly kind: 'int'; readonly value: bigint }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'text'; readonly value: string }
  | { readonly kind: 'bytes'; readonly value: Buffer }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' }
  | { readonly kind: 'undefined' }
  /** `indefinite`: cbor-x writes it with indefinite length (our writer only ever writes definite lengths). */
  | { readonly kind: 'array'; readonly items: readonly Item[]; readonly indefinite: boolean }
  | { readonly kind: 'map'; readonly entries: ReadonlyArray<readonly [Item, Item]> }
  | { readonly kind: 'tag'; readonly tag: number; readonly item: Item };

/**
 * Tag numbers cbor-x gives no meaning to (it returns them as a Tag): it turns 0–6, 14, 15, 27–29,
 * 51, 64–86, 105, 216–255, 258, 259, 55799 and ranges from 27647 up and from 57337 up into dates,
 * bignums, typed arrays, shared values, packed strings, records... which are cbor-x's business,
 * not plain CBOR.
 */
const plainTag = fc.oneof(fc.integer({ min: 7, max: 13 }), fc.integer({ min: 16, max: 26 }), fc.integer({ min: 30, max: 50 }), fc.integer({ min: 260, max: 27000 }), fc.integer({ min: 32768, max: 55000 }), fc.constant(2 ** 32 - 1));

interface ItemShape {
  /** Our writer has no method for `undefined` (no LwM2M value is one), so it is only in the cbor-x → ours direction. */
  readonly undefinedToo: boolean;
  /**
   * Only floats that need a double, and only definite-length arrays: for byte-for-byte comparison,
   * as cbor-x writes every non-integral number as a double and every integral one as an integer,
   * where ours writes the shortest float of half, single or double that holds the value.
   */
  readonly sameSerialization: boolean;
  /**
   * Items cbor-x is to write: without -2^64, the most negative CBOR integer (major type 1,
   * argument 2^64-1), which cbor-x writes as a bignum (tag 3) instead: its range check is off by
   * one (`value > -(1n << 64n)`). Our reader gives tags no meaning, so that would be a CborTag.
   */
  readonly cborxWrites: boolean;
}

function itemArbitrary(shape: ItemShape): fc.Arbitrary<Item> {
  const float = shape.sameSerialization ? fc.double().filter((value) => !Object.is(Math.fround(value), value)) : anyFloat;
  const integer = shape.cborxWrites ? anyInteger.filter((value) => value !== -(2n ** 64n)) : anyInteger;
  const leaves: Array<fc.Arbitrary<Item>> = [
    integer.map((value) => ({ kind: 'int', value }) as const),
    float.map((value) => ({ kind: 'float', value }) as const),
    text.map((value) => ({ kind: 'text', value }) as const),
    bytes.map((value) => ({ kind: 'bytes', value }) as const),
    fc.boolean().map((value) => ({ kind: 'bool', value }) as const),
    fc.constant({ kind: 'null' } as const),
  ];
  if (shape.undefinedToo) leaves.push(fc.constant({ kind: 'undefined' } as const));
  const key = fc.oneof(integer.map((value) => ({ kind: 'int', value }) as const), text.map((value) => ({ kind: 'text', value }) as const));
  const { item } = fc.letrec<{ item: Item }>((tie) => ({
    item: fc.oneof(
      // depth 4 at most: our reader refuses nesting beyond 16 levels, on purpose
      { maxDepth: 4, depthSize: 'small' },
      fc.oneof(...leaves),
      fc.tuple(fc.array(tie('item'), { maxLength: 5 }), shape.sameSerialization ? fc.constant(false) : fc.boolean()).map(([items, indefinite]) => ({ kind: 'array', items, indefinite }) as const),
      // unique keys: our reader refuses a repeated map key on purpose (cbor-x keeps the last value)
      fc
        .uniqueArray(fc.tuple(key, tie('item')), { maxLength: 5, selector: ([k]) => (k.kind === 'int' ? `i${k.value}` : `t${k.value}`) })
        .map((entries) => ({ kind: 'map', entries }) as const),
      fc.tuple(plainTag, tie('item')).map(([tag, inner]) => ({ kind: 'tag', tag, item: inner }) as const),
    ),
  }));
  return item;
}

function writeOurs(writer: CborWriter, item: Item): void {
  switch (item.kind) {
    case 'int':
      writer.integer(normalize(item.value));
      return;
    case 'float':
      writer.float(item.value);
      return;
    case 'text':
      writer.text(item.value);
      return;
    case 'bytes':
      writer.bytes(item.value);
      return;
    case 'bool':
      writer.boolean(item.value);
      return;
    case 'null':
      writer.null();
      return;
    case 'undefined':
      throw new Error('our writer has no undefined');
    case 'array':
      writer.array(item.items.length);
      for (const inner of item.items) writeOurs(writer, inner);
      return;
    case 'map':
      writer.map(item.entries.length);
      for (const [key, value] of item.entries) {
        writeOurs(writer, key);
        writeOurs(writer, value);
      }
      return;
    case 'tag':
      writer.tag(item.tag);
      writeOurs(writer, item.item);
  }
}

function ourBytes(item: Item): Buffer {
  const writer = new CborWriter();
  writeOurs(writer, item);
  return writer.toBuffer();
}

/** What cbor-x must decode from our bytes of `item`. */
function cborxView(item: Item): unknown {
  switch (item.kind) {
    case 'int':
      return cborxInteger(item.value);
    case 'null':
      return null;
    case 'undefined':
      return undefined;
    case 'array':
      return item.items.map(cborxView);
    case 'map':
      return new Map(item.entries.map(([key, value]) => [cborxView(key), cborxView(value)]));
    case 'tag':
      return new Tag(cborxView(item.item), item.tag);
    default:
      return item.value;
  }
}

/** An iterable that is not an Array: cbor-x writes it as an indefinite-length array (0x9f … 0xff). */
class Sequence {
  constructor(private readonly items: readonly unknown[]) {}
  *[Symbol.iterator](): Iterator<unknown> {
    yield* this.items;
  }
}

/**
 * The JS value cbor-x encodes for `item`; with `bigints`, every integer as a bigint (8-byte heads,
 * not preferred). Arrays marked indefinite go as a Sequence, for cbor-x to write with indefinite length.
 */
function cborxInput(item: Item, bigints = false): unknown {
  switch (item.kind) {
    case 'int':
      return bigints ? item.value : cborxIntegerInput(item.value);
    case 'null':
      return null;
    case 'undefined':
      return undefined;
    case 'array': {
      const items = item.items.map((inner) => cborxInput(inner, bigints));
      return item.indefinite ? new Sequence(items) : items;
    }
    case 'map':
      return new Map(item.entries.map(([key, value]) => [cborxInput(key, bigints), cborxInput(value, bigints)]));
    case 'tag':
      return new Tag(cborxInput(item.item, bigints), item.tag);
    default:
      return item.value;
  }
}

/** What our reader must decode from the bytes of `item`, written by cbor-x or (`ours`) by our writer. */
function ourView(item: Item, writer: 'cbor-x' | 'ours' = 'cbor-x'): unknown {
  switch (item.kind) {
    case 'int':
      return normalize(item.value);
    case 'float':
      // cbor-x writes -0 as the integer 0 (it tests `value >>> 0 === value`, true for -0): a loss on its side
      return writer === 'cbor-x' && Object.is(item.value, -0) ? 0 : item.value;
    case 'null':
      return null;
    case 'undefined':
      return undefined;
    case 'array':
      return item.items.map((inner) => ourView(inner, writer));
    case 'map':
      return new Map(item.entries.map(([key, value]) => [ourView(key, writer), ourView(value, writer)]));
    case 'tag':
      return new CborTag(item.tag, ourView(item.item, writer) as CborItem);
    default:
      return item.value;
  }
}

const describeBytes = (payload: Buffer) => payload.subarray(0, 64).toString('hex') + (payload.length > 64 ? `… (${payload.length} bytes)` : '');

// ---------------------------------------------------------------------------------------------
// 2 and 3. The LwM2M formats: a model with one resource of each type

const TYPES = ['String', 'Integer', 'Unsigned Integer', 'Float', 'Boolean', 'Opaque', 'Time', 'Objlnk', 'Corelnk'] as const;
type Type = (typeof TYPES)[number];
/** Resource id of the single-instance resource of each type in object 40000; the multiple one is this + 10. */
const RID: Readonly<Record<Type, number>> = Object.fromEntries(TYPES.map((type, index) => [type, index])) as Record<Type, number>;
const MULTIPLE = 10;
const OBJECT = 40000;

const model = new ObjectModel();
model.addXml(`<LWM2M><Object><Name>T</Name><ObjectID>${OBJECT}</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
${TYPES.map(
  (type, index) => `  <Item ID="${index}"><Name>single ${type}</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances><Type>${type}</Type></Item>
  <Item ID="${index + MULTIPLE}"><Name>multiple ${type}</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Type>${type}</Type></Item>`,
).join('\n')}
</Resources></Object></LWM2M>`);

const objlnk = fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })).map(([objectId, instanceId]) => `${objectId}:${instanceId}`);
const time = withEdges(fc.oneof(fc.integer({ min: 0, max: 4_102_444_800 }).map(BigInt), int64), [0n, 1_700_000_000n, U32, U32 + 1n, -(2n ** 32n), -(2n ** 32n) - 1n]);

/** A value of `type` as our encoder takes it (integers as numbers while safe, else bigints). */
function ourInput(type: Type): fc.Arbitrary<unknown> {
  switch (type) {
    case 'String':
    case 'Corelnk':
      return text;
    case 'Integer':
      return int64.map(normalize);
    case 'Unsigned Integer':
      return uint64.map(normalize);
    case 'Float':
      return anyFloat;
    case 'Boolean':
      return fc.boolean();
    case 'Opaque':
      return bytes;
    case 'Time':
      return time.map(normalize);
    case 'Objlnk':
      return objlnk;
  }
}

/** What cbor-x decodes from our encoding of a resource value; `timeTag` for LwM2M CBOR's tag 1 on a Time. */
function cborxValue(type: Type, value: unknown, timeTag: boolean): unknown {
  switch (type) {
    case 'Integer':
    case 'Unsigned Integer':
      return cborxInteger(BigInt(value as number | bigint));
    case 'Time':
      // LwM2M CBOR writes a Time within ±2^32 s as tag 1 (epoch seconds), which cbor-x makes a Date
      if (timeTag && typeof value === 'number' && value >= -(2 ** 32) && value < 2 ** 32) return new Date(value * 1000);
      return cborxInteger(BigInt(value as number | bigint));
    default:
      return value; // floats, booleans, text and bytes as they are
  }
}

/** A SenML record's value label for a resource type (RFC 8428 labels; LwM2M's vlo has no number). */
function senmlLabel(type: Type): number | string {
  switch (type) {
    case 'Boolean':
      return 4;
    case 'Opaque':
      return 8;
    case 'Objlnk':
      return 'vlo';
    case 'String':
    case 'Corelnk':
      return 3;
    default:
      return 2;
  }
}

/** A resource (instance) value as cbor-x is given it, and what our decoder must return for it. */
interface Given {
  readonly input: unknown;
  readonly expected: unknown;
}

/**
 * Values of `type` written by cbor-x. With `lwm2mTags`, a Time may also be a Date (tag 1, seconds
 * as an integer or, with milliseconds or before 1970, as a double) or RFC 3339 text (tag 0), and a
 * Float a decimal fraction (tag 4): the tags LwM2M CBOR readers must take.
 */
function givenValue(type: Type, lwm2mTags: boolean): fc.Arbitrary<Given> {
  const same = (arbitrary: fc.Arbitrary<unknown>) => arbitrary.map((value) => ({ input: value, expected: value }));
  const integer = (arbitrary: fc.Arbitrary<bigint>) => arbitrary.map((value) => ({ input: cborxIntegerInput(value), expected: normalize(value) }));
  switch (type) {
    case 'String':
    case 'Corelnk':
      return same(text);
    case 'Boolean':
      return same(fc.boolean());
    case 'Opaque':
      return same(bytes);
    case 'Objlnk':
      return same(objlnk);
    case 'Integer':
      return integer(int64);
    case 'Unsigned Integer':
      return integer(uint64);
    case 'Float': {
      // -0 goes out of cbor-x as the integer 0 (see ourView)
      const plain = anyFloat.map((value) => ({ input: value, expected: Object.is(value, -0) ? 0 : value }));
      if (!lwm2mTags) return plain;
      const decimal = fc
        .tuple(fc.integer({ min: -20, max: 20 }), fc.oneof(fc.integer(), fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n })))
        .map(([exponent, mantissa]) => ({ input: new Tag([exponent, mantissa], 4), expected: Number.parseFloat(`${mantissa}e${exponent}`) }));
      return fc.oneof({ arbitrary: plain, weight: 3 }, { arbitrary: decimal, weight: 1 });
    }
    case 'Time': {
      const seconds = integer(time);
      if (!lwm2mTags) return seconds;
      const date = fc.date({ min: new Date('1900-01-01T00:00:00Z'), max: new Date('2200-01-01T00:00:00Z'), noInvalidDate: true });
      return fc.oneof(
        seconds,
        date.map((value) => ({ input: value, expected: Math.floor(value.getTime() / 1000) })),
        date.map((value) => ({ input: new Tag(value.toISOString(), 0), expected: Math.floor(value.getTime() / 1000) })),
      );
    }
  }
}

const iid = withEdges(fc.integer({ min: 0, max: 65535 }), [0, 65535]);
const riid = iid;

/** A resource of object 40000: single of one type, or a multiple one with its instances. */
interface ResourceChoice {
  readonly type: Type;
  readonly multiple: boolean;
}
const resourceChoice: fc.Arbitrary<ResourceChoice> = fc.record({ type: fc.constantFrom(...TYPES), multiple: fc.boolean() });
const ridOf = ({ type, multiple }: ResourceChoice) => RID[type] + (multiple ? MULTIPLE : 0);

/**
 * An object instance value as our encoder takes it: `{ rid: value | { riid: value } }`. The keys
 * come in ascending order, as a JS object orders integer keys; `minResources: 0` makes empty instances.
 */
function instanceValue(minResources: number, emptyMultiple: boolean): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .uniqueArray(resourceChoice, { minLength: minResources, maxLength: 5, selector: ridOf })
    .chain((choices) =>
      fc.tuple(
        ...choices.map((choice) =>
          choice.multiple
            ? fc
                .uniqueArray(fc.tuple(riid, ourInput(choice.type)), { minLength: emptyMultiple ? 0 : 1, maxLength: 3, selector: ([id]) => id })
                .map((entries): [number, unknown] => [ridOf(choice), Object.fromEntries(entries.map(([id, value]) => [String(id), value]))])
            : ourInput(choice.type).map((value): [number, unknown] => [ridOf(choice), value]),
        ),
      ),
    )
    .map((entries) => Object.fromEntries(entries.map(([rid, value]) => [String(rid), value])));
}

const typeOfRid = (rid: number): Type => TYPES[rid % MULTIPLE];

/** `{ iid: instance }`, as our encoder takes an object value. */
function objectValue(minResources: number, emptyMultiple: boolean): fc.Arbitrary<Record<string, Record<string, unknown>>> {
  return fc
    .uniqueArray(fc.tuple(iid, instanceValue(minResources, emptyMultiple)), { minLength: 1, maxLength: 3, selector: ([id]) => id })
    .map((entries) => Object.fromEntries(entries.map(([id, instance]) => [String(id), instance])));
}

const NOW = 1_750_000_000.25;

// ---------------------------------------------------------------------------------------------

describe('CBOR codecs against cbor-x (differential)', function () {
  this.timeout(120_000);

  it('cbor-x is the plain codec these tests assume (options took effect)', () => {
    // a Map with an integer key, a Uint8Array and a small bigint: no tag 259, no tag 64, an 8-byte head
    assert.equal(cborxEncode(new Map<unknown, unknown>([[1, new Uint8Array([7])], ['b', 2n]])).toString('hex'), 'a2' + '01' + '4107' + '6162' + '1b0000000000000002');
    const decoded = cborxDecoder.decode(Buffer.from('a201f56162f4', 'hex'));
    assert.ok(decoded instanceof Map && decoded.get(1) === true && decoded.get('b') === false, 'maps decode as Map');
  });

  describe('the low-level reader and writer', () => {
    it('what our writer writes, cbor-x reads as the same items (integers needing 8 bytes as bigints, map order kept), and so does our reader', () => {
      run(
        fc.property(itemArbitrary({ undefinedToo: false, sameSerialization: false, cborxWrites: false }), (item) => {
          const payload = ourBytes(item);
          assertSame(cborxDecoder.decode(payload), cborxView(item), ORDERED, `ours ${describeBytes(payload)}`);
          // the same bytes through our reader: half-precision floats only ever come from our writer
          assertSame(decodeCbor(payload, ContentFormat.SENML_CBOR), ourView(item, 'ours'), ORDERED, `ours read back ${describeBytes(payload)}`);
        }),
      );
    });

    it('what cbor-x writes, our reader reads as the same items (undefined, tags and indefinite-length arrays included)', () => {
      run(
        fc.property(itemArbitrary({ undefinedToo: true, sameSerialization: false, cborxWrites: true }), (item) => {
          const payload = cborxEncode(cborxInput(item));
          assertSame(decodeCbor(payload, ContentFormat.SENML_CBOR), ourView(item), ORDERED, `cbor-x ${describeBytes(payload)}`);
        }),
      );
    });

    it('our reader takes integers of every size in 8-byte heads (cbor-x writes every bigint so, not in preferred form)', () => {
      run(
        fc.property(itemArbitrary({ undefinedToo: true, sameSerialization: false, cborxWrites: true }), (item) => {
          const payload = cborxEncode(cborxInput(item, true));
          assertSame(decodeCbor(payload, ContentFormat.SENML_CBOR), ourView(item), ORDERED, `cbor-x ${describeBytes(payload)}`);
        }),
      );
    });

    it('our reader reads single-precision floats as cbor-x writes them', () => {
      // float32-exact values that cbor-x writes as singles: not integral (those go out as integers), within [-2^31, 2^32)
      const single = fc.float({ noNaN: true, noDefaultInfinity: true, min: -(2 ** 31), max: 2 ** 32 - 256 }).filter((value) => !Number.isInteger(value));
      run(
        fc.property(single, (value) => {
          const payload = cborxEncode(value, cborxSingles);
          assert.equal(payload.toString('hex').slice(0, 2), 'fa', `cbor-x wrote ${describeBytes(payload)} for ${value}`);
          assertSame(decodeCbor(payload, ContentFormat.SENML_CBOR), value, ORDERED, `cbor-x ${describeBytes(payload)}`);
        }),
      );
    });

    it('where both write the same preferred serialization (no float that fits a single), the bytes are identical', () => {
      run(
        fc.property(itemArbitrary({ undefinedToo: false, sameSerialization: true, cborxWrites: true }), (item) => {
          assert.equal(ourBytes(item).toString('hex'), cborxEncode(cborxInput(item)).toString('hex'));
        }),
      );
    });
  });

  describe('SenML CBOR (112)', () => {
    const FORMAT = ContentFormat.SENML_CBOR;

    interface TimedRecord {
      readonly path: string;
      readonly type: Type;
      readonly value: unknown;
      readonly time?: number;
    }
    const timedRecord: fc.Arbitrary<TimedRecord> = fc
      .record({
        iid: fc.integer({ min: 0, max: 3 }),
        resource: resourceChoice,
        riid,
        time: fc.option(fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }), fc.maxSafeInteger(), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 })), { nil: undefined }),
      })
      .chain(({ iid: instance, resource, riid: instanceId, time: at }) =>
        ourInput(resource.type).map((value) => ({
          path: `/${OBJECT}/${instance}/${ridOf(resource)}${resource.multiple ? `/${instanceId}` : ''}`,
          type: resource.type,
          value,
          ...(at === undefined ? {} : { time: at }),
        })),
      );

    it('encodeRecords: cbor-x reads an array of maps {0: name, <value label>: value, 6: time}', () => {
      run(
        fc.property(fc.array(timedRecord, { minLength: 1, maxLength: 6 }), (records) => {
          const payload = encodeRecords(FORMAT, records, model);
          const expected = records.map(({ path, type, value, time: at }) => {
            const map = new Map<unknown, unknown>([[0, path], [senmlLabel(type), cborxValue(type, value, false)]]);
            // an integral time is an integer, any other a float
            if (at !== undefined) map.set(6, Number.isInteger(at) ? cborxInteger(BigInt(at)) : at);
            return map;
          });
          assertSame(cborxDecoder.decode(payload), expected, UNORDERED, `ours ${describeBytes(payload)}`);
        }),
      );
    });

    it('encode of an object: the first record carries the base name, empty instances come as names without value', () => {
      run(
        fc.property(objectValue(0, false), (object) => {
          const payload = encode(FORMAT, `/${OBJECT}`, object, model);
          const expected: Array<Map<unknown, unknown>> = [];
          const empty: Array<Map<unknown, unknown>> = [];
          for (const [instanceId, instance] of Object.entries(object)) {
            if (Object.keys(instance).length === 0) empty.push(new Map([[0, instanceId]]));
            for (const [rid, value] of Object.entries(instance)) {
              const type = typeOfRid(Number(rid));
              const entries: Array<[string, unknown]> = Number(rid) >= MULTIPLE ? Object.entries(value as object).map(([id, inner]) => [`${rid}/${id}`, inner]) : [[rid, value]];
              for (const [name, inner] of entries) expected.push(new Map([[0, `${instanceId}/${name}`], [senmlLabel(type), cborxValue(type, inner, false)]]));
            }
          }
          expected.push(...empty);
          expected[0].set(-2, `/${OBJECT}/`);
          assertSame(cborxDecoder.decode(payload), expected, UNORDERED, `ours ${describeBytes(payload)}`);
        }),
      );
    });

    /** A record as cbor-x writes it, and what decodeRecords must make of the pack it is in. */
    interface PackRecord {
      readonly map: Map<number | string, unknown>;
      readonly expected: { readonly path: string; readonly value: unknown; readonly time?: number };
    }

    /**
     * A pack built as plain maps: names split at random between base name and name (bn set when
     * the record asks or the running one is no prefix of its path), times relative or absolute,
     * base time (nonzero) in the first record only, an Objlnk in vlo or vs, sometimes a unit (label 1, ignored).
     */
    const pack = fc
      .tuple(
        fc.array(
          fc.record({
            iid: fc.integer({ min: 0, max: 3 }),
            resource: resourceChoice,
            riid,
            newBase: fc.boolean(),
            cut: fc.nat(),
            time: fc.option(fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 1_600_000_000, max: 1_800_000_000 }), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e10 })), { nil: undefined }),
            objlnkAsVs: fc.boolean(),
            unit: fc.option(fc.constantFrom('Cel', '%RH', 'm'), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.option(fc.oneof(fc.integer({ min: -1000, max: 1000 }).filter((at) => at !== 0), fc.integer({ min: 1_600_000_000, max: 1_800_000_000 })), { nil: undefined }),
      )
      .chain(([records, baseTime]) =>
        fc.tuple(...records.map((record) => givenValue(record.resource.type, false))).map((values): PackRecord[] => {
          let baseName = '';
          return records.map((record, index) => {
            const path = `/${OBJECT}/${record.iid}/${ridOf(record.resource)}${record.resource.multiple ? `/${record.riid}` : ''}`;
            const map = new Map<number | string, unknown>();
            if (record.newBase || !path.startsWith(baseName)) {
              baseName = path.slice(0, record.cut % (path.length + 1));
              map.set(-2, baseName);
            }
            const name = path.slice(baseName.length);
            if (name !== '' || index % 2 === 0) map.set(0, name); // an empty name may be left out
            const { type } = record.resource;
            map.set(type === 'Objlnk' && record.objlnkAsVs ? 3 : senmlLabel(type), values[index].input);
            if (record.unit !== undefined) map.set(1, record.unit);
            if (index === 0 && baseTime !== undefined) map.set(-3, baseTime);
            if (record.time !== undefined) map.set(6, record.time);
            // RFC 8428: time = base time + time; below 2^28 it is relative to now
            const timed = record.time !== undefined || baseTime !== undefined;
            const absolute = (baseTime ?? 0) + (record.time ?? 0);
            const at = timed ? (absolute < 2 ** 28 ? NOW + absolute : absolute) : undefined;
            return { map, expected: { path, value: values[index].expected, ...(at === undefined ? {} : { time: at }) } };
          });
        }),
      );

    it('a pack cbor-x writes as plain maps (in a definite or indefinite-length array) decodes to the same paths, values and times', () => {
      run(
        fc.property(pack, fc.boolean(), (records, indefinite) => {
          const maps = records.map((record) => record.map);
          const payload = cborxEncode(indefinite ? new Sequence(maps) : maps);
          const decoded = decodeRecords(FORMAT, '/', payload, model, { now: NOW }).map((record) => ({
            path: record.path.toString(),
            value: record.value,
            ...(record.time === undefined ? {} : { time: record.time }),
          }));
          assertSame(decoded, records.map((record) => record.expected), UNORDERED, `cbor-x ${describeBytes(payload)}`);
        }),
      );
    });

    const pathList = fc.uniqueArray(
      fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.option(iid, { nil: undefined }), fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined })).map(([objectId, instance, resource]) =>
        instance === undefined ? `/${objectId}` : resource === undefined ? `/${objectId}/${instance}` : `/${objectId}/${instance}/${resource}`,
      ),
      { minLength: 1, maxLength: 6 },
    );

    it('path lists (Read-Composite, Observe-Composite) both ways: [{0: path}, ...]', () => {
      run(
        fc.property(pathList, (paths) => {
          const ours = encodePaths(FORMAT, paths);
          assertSame(cborxDecoder.decode(ours), paths.map((path) => new Map([[0, path]])), UNORDERED, `ours ${describeBytes(ours)}`);
          const theirs = cborxEncode(paths.map((path) => new Map([[0, path]])));
          assert.deepEqual(decodePaths(FORMAT, theirs).map(String), paths);
        }),
      );
    });
  });

  describe('LwM2M CBOR (11544)', () => {
    const FORMAT = ContentFormat.LWM2M_CBOR;

    /** `{ iid: { rid: value | { riid: value } } }` as nested Maps of what cbor-x decodes. */
    function expectedMaps(object: Record<string, Record<string, unknown>>): Map<number, unknown> {
      const instances = new Map<number, unknown>();
      for (const [instanceId, instance] of Object.entries(object)) {
        const resources = new Map<number, unknown>();
        for (const [rid, value] of Object.entries(instance)) {
          const type = typeOfRid(Number(rid));
          resources.set(
            Number(rid),
            Number(rid) >= MULTIPLE ? new Map(Object.entries(value as object).map(([id, inner]) => [Number(id), cborxValue(type, inner, true)])) : cborxValue(type, value, true),
          );
        }
        instances.set(Number(instanceId), resources);
      }
      return new Map([[OBJECT, instances]]);
    }

    it('encode of an object: cbor-x reads {40000: {iid: {rid: value | {riid: value}}}}, Times as dates, empty instances and resources as empty maps', () => {
      run(
        fc.property(objectValue(0, true), (object) => {
          const payload = encode(FORMAT, `/${OBJECT}`, object, model);
          assertSame(cborxDecoder.decode(payload), expectedMaps(object), UNORDERED, `ours ${describeBytes(payload)}`);
        }),
      );
    });

    it('encodeComposite of instances and resources: one tree of nested maps from the object id', () => {
      run(
        fc.property(
          fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 5 }), instanceValue(1, true), fc.boolean()), { minLength: 1, maxLength: 4, selector: ([id]) => id }),
          (instances) => {
            // each instance given whole (/40000/iid) or resource by resource (/40000/iid/rid)
            const composite: CompositeValue = {};
            for (const [instanceId, instance, whole] of instances) {
              if (whole) composite[`/${OBJECT}/${instanceId}`] = instance as CompositeValue[string];
              else for (const [rid, value] of Object.entries(instance)) composite[`/${OBJECT}/${instanceId}/${rid}`] = value as CompositeValue[string];
            }
            const payload = encodeComposite(FORMAT, composite, model);
            const object = Object.fromEntries(instances.map(([instanceId, instance]) => [String(instanceId), instance]));
            assertSame(cborxDecoder.decode(payload), expectedMaps(object), UNORDERED, `ours ${describeBytes(payload)}`);
          },
        ),
      );
    });

    /** A level of the tree cbor-x writes: children by id, each hoisted into its parent's map under an id array or not. */
    interface Node {
      readonly children: ReadonlyArray<{ readonly id: number; readonly inline: boolean; readonly node: Node | Given }>;
    }
    const isNode = (value: Node | Given): value is Node => 'children' in value;

    const givenResource = (choice: ResourceChoice): fc.Arbitrary<Node | Given> =>
      choice.multiple
        ? fc
            .tuple(fc.uniqueArray(fc.tuple(riid, givenValue(choice.type, true), fc.boolean()), { maxLength: 3, selector: ([id]) => id }))
            .map(([entries]) => ({ children: entries.map(([id, given, inline]) => ({ id, inline, node: given })) }))
        : givenValue(choice.type, true);
    const givenInstance: fc.Arbitrary<Node> = fc
      .uniqueArray(resourceChoice, { maxLength: 5, selector: ridOf })
      .chain((choices) => fc.tuple(...choices.map((choice) => fc.tuple(givenResource(choice), fc.boolean()))).map((nodes) => ({ children: nodes.map(([node, inline], index) => ({ id: ridOf(choices[index]), inline, node })) })));
    const givenTree: fc.Arbitrary<Node> = fc
      .tuple(fc.uniqueArray(fc.tuple(iid, givenInstance, fc.boolean()), { minLength: 1, maxLength: 3, selector: ([id]) => id }), fc.boolean())
      .map(([instances, inline]) => ({ children: [{ id: OBJECT, inline, node: { children: instances.map(([id, node, hoist]) => ({ id, inline: hoist, node })) } }] }));

    /**
     * The Map cbor-x is given. A non-empty child marked inline is not a map of its own: its
     * entries go into the parent's map under id arrays (`{[40000, 0]: {...}}`, `{[40000, 0, 1]: 5}`).
     */
    function render(node: Node, prefix: readonly number[] = [], into: Array<[unknown, unknown]> = []): Array<[unknown, unknown]> {
      for (const { id, inline, node: child } of node.children) {
        const ids = [...prefix, id];
        const key = ids.length === 1 ? ids[0] : ids;
        if (!isNode(child)) into.push([key, child.input]);
        else if (inline && child.children.length > 0) render(child, ids, into);
        else into.push([key, new Map(render(child))]);
      }
      return into;
    }

    /** What decode(11544, '/', payload) must give: the value shapes of the message contract. */
    function expectedValue(node: Node): Record<string, unknown> {
      return Object.fromEntries(node.children.map(({ id, node: child }) => [String(id), isNode(child) ? expectedValue(child) : child.expected]));
    }

    it('nested maps cbor-x writes (ids and id arrays as keys, dates, decimal fractions) decode to the same value', () => {
      run(
        fc.property(givenTree, (tree) => {
          const payload = cborxEncode(new Map(render(tree)));
          assertSame(decode(FORMAT, '/', payload, model), expectedValue(tree), UNORDERED, `cbor-x ${describeBytes(payload)}`);
        }),
      );
    });
  });
});
