/**
 * Fuzzing of every decoder (acceptance criterion: "A fuzz test feeds at least 100,000 random and
 * mutated payloads per decoder: only the typed error ever escapes, and the run finishes in bounded
 * memory").
 *
 * Each decoder gets FUZZ_PAYLOADS payloads (100 000 unless the environment says otherwise): purely
 * random bytes, random soups of the format's tokens, and mutations of valid payloads (bit flips,
 * interesting bytes, inserted / deleted / duplicated runs, truncation, splices of two seeds, huge
 * length fields). Every payload is decoded at several paths; whatever comes out must be a value or
 * a ContentFormatError of that format, never a wrapped codec bug ("unexpected decoder failure"),
 * and a value must not be much larger than its payload nor share memory with it.
 *
 * The PRNG is seeded (FUZZ_SEED, printed at the start) so every run can be replayed.
 *
 * Decoding runs in child processes (this same file, forked with LWM2M_FUZZ_CHILD set), two at a
 * time: a decoder stuck in native code cannot be interrupted by a timeout or a worker termination,
 * only killed. A child that goes quiet is killed, its payloads replayed to find the one that hangs,
 * and the run goes on after it. Memory is measured in the children, with --expose-gc.
 *
 * Hand-crafted dangerous payloads (huge length claims, deep nesting, CBOR value sharing, 100 000
 * record packs...) run in a child process with a watchdog too.
 */
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  ContentFormat,
  ContentFormatError,
  decode,
  decodeComposite,
  decodePaths,
  encode,
  encodeComposite,
  encodePaths,
  encodeRecords,
  LwM2MPath,
  ObjectModel,
  type CompositeValue,
} from '../../lib';
import { DEVICE_EXAMPLE } from '../helpers/device';

const PAYLOADS = Number(process.env.FUZZ_PAYLOADS ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? 0x1f2e3d4c) >>> 0;

// ---------------------------------------------------------------------------------------------
// A small seeded PRNG (mulberry32)

class Random {
  constructor(private state: number) {}

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }

  bytes(length: number): Buffer {
    const bytes = Buffer.allocUnsafe(length);
    for (let index = 0; index < length; index++) bytes[index] = this.next() & 0xff;
    return bytes;
  }
}

// ---------------------------------------------------------------------------------------------
// The model: the bundled objects (Device /3 among them) and the test object 40000

const TYPES = ['String', 'Integer', 'Unsigned Integer', 'Float', 'Boolean', 'Opaque', 'Time', 'Objlnk', 'Corelnk'];
const XML_40000 = `<LWM2M><Object><Name>T</Name><ObjectID>40000</ObjectID><MultipleInstances>Multiple</MultipleInstances><Resources>
${TYPES.map(
  (type, index) => `<Item ID="${index}"><Name>single ${type}</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances><Type>${type}</Type></Item>
<Item ID="${index + 10}"><Name>multiple ${type}</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Type>${type}</Type></Item>`,
).join('\n')}
</Resources></Object></LWM2M>`;

const model = ObjectModel.bundled();
model.addXml(XML_40000);

// ---------------------------------------------------------------------------------------------
// Valid seeds

const DEVICE = DEVICE_EXAMPLE;

const T40000 = {
  0: 'hello, wörld 😀',
  1: -123456789,
  2: 4_000_000_000,
  3: 21.5,
  4: true,
  5: Buffer.from('0102fffe00', 'hex'),
  6: 1_700_000_000,
  7: '3:0',
  8: '</3/0>;rt="x"',
  10: { 0: 'a', 7: 'b' },
  11: { 0: 2n ** 62n, 300: -1, 65535: -(2 ** 40) },
  12: { 1: 2n ** 64n - 1n, 2: 255 },
  13: { 0: -0.5, 2: 1e300, 3: 0.1 },
  14: { 0: false },
  15: { 0: Buffer.alloc(20, 7), 1: Buffer.alloc(0) },
  16: { 0: 0, 9: -1 },
  17: { 0: '65535:65535' },
  18: {},
};

const COMPOSITE_FORMATS: readonly number[] = [ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR];

const SEED_VALUES: Array<[string, unknown]> = [
  ['/3/0', DEVICE],
  ['/3', { 0: DEVICE }],
  ['/3/0/7', DEVICE[7]],
  ['/3/0/7/1', 5000],
  ['/3/0/9', 95],
  ['/3/0/0', DEVICE[0]],
  ['/3/0/13', 1367491215],
  ['/40000/0', T40000],
  ['/40000', { 0: T40000, 1: { 0: 'x', 3: -0, 17: { 1: '1:1' } }, 65535: { 4: false } }],
  ['/40000/0/11', T40000[11]],
  ['/40000/0/18', {}],
  ...Object.entries(T40000)
    .filter(([rid]) => Number(rid) < 10)
    .map(([rid, value]): [string, unknown] => [`/40000/0/${rid}`, value]),
  ['/40000/0/1', -(2n ** 63n)],
  ['/40000/0/2', 2n ** 64n - 1n],
  ['/40000/0/3', NaN],
  ['/40000/0/3', -Infinity],
  ['/40000/0/3', 5e-324],
  ['/40000/0/13/4', 65504],
  ['/40000/0/15/9', Buffer.alloc(300, 0x5a)],
  ['/40000/0/0', 'y'.repeat(300)],
];

const COMPOSITE_SEEDS: CompositeValue[] = [
  { '/3/0/9': 95, '/3/0/7': { 0: 3800, 1: 5000 }, '/3/0/0': 'ACME' },
  { '/40000/0': T40000 as CompositeValue[string], '/3/0/13': 1367491215, '/40000/1/13/1': 2.5 },
  { '/3/0': DEVICE as CompositeValue[string] },
];

function attempt(make: () => Buffer): Buffer[] {
  try {
    return [make()];
  } catch (error) {
    if (error instanceof ContentFormatError) return []; // a value the format cannot carry
    throw error;
  }
}

function seedsFor(format: number): Buffer[] {
  const seeds = SEED_VALUES.flatMap(([path, value]) => attempt(() => encode(format, path, value, model)));
  if (COMPOSITE_FORMATS.includes(format)) {
    seeds.push(...COMPOSITE_SEEDS.flatMap((value) => attempt(() => encodeComposite(format, value, model))));
    seeds.push(
      ...attempt(() =>
        encodeRecords(
          format,
          [
            { path: '/3303/0/5700', value: 21.5, time: 1_700_000_000 },
            { path: '/3303/0/5700', value: 22, time: 1_700_000_060 },
            { path: '/3/0/9', value: 90, time: 100 },
            { path: '/40000/0/0', value: 'x' },
          ],
          model,
        ),
      ),
    );
  }
  if (format === ContentFormat.SENML_JSON) {
    seeds.push(
      Buffer.from('[{"bn":"/3/0/","bt":1.7e9,"n":"9","v":95,"t":-5},{"n":"0","vs":"x"},{"n":"7/0","v":1,"bv":3},{"n":"/40000/0/5","vd":"AQID"},{"n":"/40000/0/7","vlo":"3:0"},{"n":"/40000/0/4","vb":true}]'),
      Buffer.from('[{"bn":"/40000/0/","n":"1","v":9007199254740993},{"n":"2","v":18446744073709551615},{"n":"3","v":-0.0}]'),
    );
  }
  if (format === ContentFormat.OMA_JSON) {
    seeds.push(Buffer.from('{"bn":"/3/0/","bt":25462634,"e":[{"n":"9","v":95,"t":-5},{"n":"0","sv":"x"},{"n":"7/0","v":1}]}'));
  }
  return seeds;
}

const LINK_SEEDS = [
  '</>;rt="oma.lwm2m";ct=60,</1/0>,</3/0>;ver=1.1,</3303/0>;ssid=101',
  '</3/0>;pmin=10;pmax=60,</3/0/7>;dim=2,</3/0/9>;gt=50.5;lt=0;st=1.5',
  '</rd>;rt="core.rd";ct=40;title="a \\"quoted\\" title",</3>;ct="60 110 112 11542 11543 11544"',
  '</0/1>, </1/1>;ver=1.1 ,\r\n</5/0>;lwm2m=1.1;epmin=5;epmax=-1.5e3;edge=1;con=0;hqmax=3',
].map((text) => Buffer.from(text));

const PATH_SEEDS = [
  encodePaths(ContentFormat.SENML_JSON, ['/3/0/9', '/1/0', '/3303', '/', '/3/0/7/1']),
  encodePaths(ContentFormat.SENML_CBOR, ['/3/0/9', '/1/0', '/3303', '/', '/3/0/7/1']),
  Buffer.from('[{"bn":"/3/0/","n":"9"},{"n":"7/1"},{"bn":"/1/"},{"n":"0"}]'),
];

// ---------------------------------------------------------------------------------------------
// Payload generation

/** Bytes that make parsers take unusual paths (CBOR heads, tags, breaks, TLV kinds, limits). */
const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x9f, 0xbf, 0x5f, 0x7f, 0xc0, 0xc1, 0xc2, 0xd8, 0xd9, 0xda, 0xdb, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0x20, 0x38, 0x3b, 0x01, 0x08, 0xc8, 0xe8, 0x88, 0x98, 0x41, 0x61];

/** Huge length fields in the encodings of each format. */
const HUGE = [
  [0x1a, 0xff, 0xff, 0xff, 0xff],
  [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x5a, 0xff, 0xff, 0xff, 0xff],
  [0x5b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
  [0x7a, 0x7f, 0xff, 0xff, 0xff],
  [0x9a, 0xff, 0xff, 0xff, 0xff],
  [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0xba, 0x00, 0xff, 0xff, 0xff],
  [0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
  [0xd8, 0x00, 0xff, 0xff, 0xff], // TLV resource with a 3-byte length of 16 MB
  [0xf8, 0x01, 0xff, 0xff, 0xff], // TLV with a 16-bit id and a 3-byte length
  [0x18, 0x00, 0xff, 0xff, 0xff], // TLV object instance of 16 MB
  [0x90, 0x07, 0xff, 0xff], // TLV multiple resource of 64 KB
].map((bytes) => Buffer.from(bytes));

const JSON_TOKENS = [
  '{', '}', '[', ']', '"', ':', ',', '"bn":', '"n":', '"v":', '"vs":', '"vd":', '"vb":true', '"vlo":', '"bt":', '"t":', '"bv":', '"e":', '"sv":', '"ov":', '"bver":',
  '"x_":1', '1e999', '-0.0', '18446744073709551616', '9007199254740993', '-9223372036854775809', 'null', 'false', '"\\ud800"', '"/3/0/9"', '"/65536/0"', '"/3/0/"',
  '"3:0"', '"AQID"', '"=="', '0.5', '-1', '2e-400', '{"n":"/3/0/9","v":1}', '\\u0000', '\u00e9', '\ud83d\ude00',
];
const LINK_TOKENS = ['<', '>', ';', ',', '=', '"', '\\', ' ', '\t', '</3/0>', '</>', 'ct=', 'ct="60 110"', 'rt="', 'pmin=', '-1.5e3', 'ver=1.1', 'dim=2', '\u00e9', ';;', '<<', '>>', '"\\'];
const TEXT_TOKENS = ['-', '+', '.', 'e', 'E', '0', '1', '9'.repeat(30), ':', '65535', '65536', '=', '==', 'AQID', ' ', '\u00e9', '18446744073709551615', '-9223372036854775808', 'NaN', 'Infinity', '0x10'];

const CBOR_TOKENS = [
  'a0', '80', '9f', 'bf', 'ff', 'f6', 'f7', 'f4', 'f5', 'f97e00', 'fa7f800000', 'fb8000000000000000', 'c11a65000000', 'c0', 'c2', 'c3', 'c4', 'd81c', 'd81d00', 'd81b', 'd90102', 'd90103',
  'd9e000', 'd9dfff', '1bffffffffffffffff', '3bffffffffffffffff', '63766c6f', '00', '02', '03', '08', '21', '6b2f333330332f302f35373030', '4100', '6161',
].map((text) => Buffer.from(text, 'hex'));

type TokenSet = readonly Buffer[];
const tokens = (list: readonly string[]): TokenSet => list.map((text) => Buffer.from(text, 'utf8'));

function insert(bytes: Buffer, at: number, piece: Buffer): Buffer {
  return Buffer.concat([bytes.subarray(0, at), piece, bytes.subarray(at)]);
}

/** One mutation of `bytes`; `seeds` are the other valid payloads (for splices). */
function mutateOnce(random: Random, bytes: Buffer, seeds: readonly Buffer[], dictionary: TokenSet): Buffer {
  const length = bytes.length;
  const at = random.below(length + 1);
  switch (random.below(11)) {
    case 0: {
      // flip bits
      if (length === 0) return random.bytes(1);
      const copy = Buffer.from(bytes);
      for (let count = 1 + random.below(3); count > 0; count--) copy[random.below(length)] ^= 1 << random.below(8);
      return copy;
    }
    case 1: {
      // overwrite a byte with an interesting value
      if (length === 0) return Buffer.of(random.pick(INTERESTING));
      const copy = Buffer.from(bytes);
      copy[random.below(length)] = random.pick(INTERESTING);
      return copy;
    }
    case 2: // insert random bytes
      return insert(bytes, at, random.bytes(1 + random.below(8)));
    case 3: {
      // delete a run
      const run = 1 + random.below(Math.min(16, Math.max(1, length)));
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + run)]);
    }
    case 4: {
      // duplicate a run, possibly several times
      const start = random.below(length);
      const run = bytes.subarray(start, start + 1 + random.below(32));
      const copies = random.chance(0.2) ? 2 + random.below(30) : 1;
      return insert(bytes, random.below(length + 1), Buffer.concat(Array.from({ length: copies }, () => run)));
    }
    case 5: // truncate
      return bytes.subarray(0, random.below(length + 1));
    case 6: {
      // splice two seeds
      const other = random.pick(seeds);
      return Buffer.concat([bytes.subarray(0, at), other.subarray(random.below(other.length + 1))]);
    }
    case 7: {
      // overwrite with a huge length field
      const huge = random.pick(HUGE);
      const copy = Buffer.from(bytes);
      if (length === 0) return Buffer.from(huge);
      huge.copy(copy, Math.min(at, length - 1));
      return random.chance(0.5) ? copy : insert(bytes, at, huge);
    }
    case 8: // insert a token of the format
      return insert(bytes, at, random.pick(dictionary));
    case 9: {
      // small arithmetic on a byte
      if (length === 0) return Buffer.of(random.below(256));
      const copy = Buffer.from(bytes);
      const index = random.below(length);
      copy[index] = (copy[index] + (random.chance(0.5) ? 1 : -1) * (1 + random.below(16))) & 0xff;
      return copy;
    }
    default: {
      // replace a run with random bytes
      const copy = Buffer.from(bytes);
      const run = Math.min(length - at, 1 + random.below(8));
      for (let index = 0; index < run; index++) copy[at + index] = random.next() & 0xff;
      return copy;
    }
  }
}

function nextPayload(random: Random, seeds: readonly Buffer[], dictionary: TokenSet): Buffer {
  const roll = random.below(100);
  if (roll < 35) {
    // purely random bytes: mostly short, some up to 512
    return random.bytes(random.chance(0.85) ? random.below(65) : 65 + random.below(448));
  }
  if (roll < 45) {
    // a soup of the format's tokens and random bytes
    const parts: Buffer[] = [];
    for (let count = 1 + random.below(24); count > 0; count--) parts.push(random.chance(0.8) ? random.pick(dictionary) : random.bytes(1 + random.below(3)));
    return Buffer.concat(parts);
  }
  let bytes = random.pick(seeds);
  for (let count = 1 + (random.chance(0.5) ? 0 : random.below(4)); count > 0; count--) bytes = mutateOnce(random, bytes, seeds, dictionary);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The decoders under test

interface Call {
  readonly label: string;
  readonly run: (payload: Buffer) => unknown;
}

interface Target {
  readonly name: string;
  readonly format: number;
  readonly seeds: readonly Buffer[];
  readonly dictionary: TokenSet;
  readonly calls: readonly Call[];
}

const TREE_PATHS = ['/3/0', '/3', '/3/0/7', '/3/0/9', '/3/0/7/1', '/', '/40000/0', '/40000', '/40000/0/11'];
const RESOURCE_PATHS = ['/3/0/9', '/3/0/7', '/3/0/0', '/3/0/13', '/3/0', '/3', '/', ...[0, 1, 2, 3, 4, 5, 7].map((rid) => `/40000/0/${rid}`), '/40000/0/16/3'];
const OPAQUE_PATHS = ['/40000/0/5', '/40000/0/15/1', '/3/0/9', '/3/0', '/'];

function decodeCalls(format: number, paths: readonly string[]): Call[] {
  return paths.map((path) => ({ label: `decode ${path}`, run: (payload: Buffer) => decode(format, path, payload, model) }));
}

function valueTarget(name: string, format: number): Target {
  const calls =
    format === ContentFormat.TEXT ? decodeCalls(format, RESOURCE_PATHS) : format === ContentFormat.OPAQUE ? decodeCalls(format, OPAQUE_PATHS) : decodeCalls(format, TREE_PATHS);
  if (COMPOSITE_FORMATS.includes(format)) {
    calls.push(
      { label: 'decodeComposite', run: (payload) => decodeComposite(format, payload, model) },
      { label: 'decodeComposite paths=[/3/0,/40000]', run: (payload) => decodeComposite(format, payload, model, { paths: ['/3/0', '/40000'] }) },
    );
  }
  const cbor = format === ContentFormat.SENML_CBOR || format === ContentFormat.LWM2M_CBOR;
  const dictionary =
    format === ContentFormat.TEXT ? tokens(TEXT_TOKENS) : format === ContentFormat.OMA_JSON || format === ContentFormat.SENML_JSON ? tokens(JSON_TOKENS) : cbor ? CBOR_TOKENS : HUGE;
  const seeds = format === ContentFormat.OPAQUE ? [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(300, 1)] : seedsFor(format);
  return { name, format, seeds, dictionary, calls };
}

const TARGETS: readonly Target[] = [
  valueTarget('TEXT', ContentFormat.TEXT),
  valueTarget('OPAQUE', ContentFormat.OPAQUE),
  valueTarget('TLV', ContentFormat.TLV),
  valueTarget('OMA_JSON', ContentFormat.OMA_JSON),
  valueTarget('SENML_JSON', ContentFormat.SENML_JSON),
  valueTarget('SENML_CBOR', ContentFormat.SENML_CBOR),
  valueTarget('LWM2M_CBOR', ContentFormat.LWM2M_CBOR),
  {
    name: 'LINK',
    format: ContentFormat.LINK,
    seeds: LINK_SEEDS,
    dictionary: tokens(LINK_TOKENS),
    calls: [{ label: "decode '/'", run: (payload) => decode(ContentFormat.LINK, '/', payload) }],
  },
  {
    name: 'decodePaths SENML_JSON',
    format: ContentFormat.SENML_JSON,
    seeds: [PATH_SEEDS[0], PATH_SEEDS[2]],
    dictionary: tokens(JSON_TOKENS),
    calls: [{ label: 'decodePaths', run: (payload) => decodePaths(ContentFormat.SENML_JSON, payload) }],
  },
  {
    name: 'decodePaths SENML_CBOR',
    format: ContentFormat.SENML_CBOR,
    seeds: [PATH_SEEDS[1]],
    dictionary: CBOR_TOKENS,
    calls: [{ label: 'decodePaths', run: (payload) => decodePaths(ContentFormat.SENML_CBOR, payload) }],
  },
];

// ---------------------------------------------------------------------------------------------
// Checking what comes out (in the process that decodes)

/** Roughly how much a decoded value holds: string and Buffer lengths, keys, and one per node. */
function weigh(value: unknown): { total: number; largest: number; buffers: Buffer[] } {
  let total = 0;
  let largest = 0;
  const buffers: Buffer[] = [];
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') {
      total += item.length;
      largest = Math.max(largest, item.length);
    } else if (item instanceof Uint8Array) {
      total += item.length + 1;
      largest = Math.max(largest, item.length);
      if (Buffer.isBuffer(item)) buffers.push(item);
    } else if (item instanceof LwM2MPath) {
      total += item.toString().length;
    } else if (item !== null && typeof item === 'object') {
      if (seen.has(item)) continue;
      seen.add(item);
      total += 1;
      for (const [key, child] of Object.entries(item)) {
        total += key.length;
        stack.push(child);
      }
    } else total += 1;
  }
  return { total, largest, buffers };
}

/** True when `inner` shares memory with `outer`. */
function overlaps(inner: Buffer, outer: Buffer): boolean {
  if (inner.buffer !== outer.buffer || inner.length === 0 || outer.length === 0) return false;
  return inner.byteOffset < outer.byteOffset + outer.length && outer.byteOffset < inner.byteOffset + inner.length;
}

/** Groups similar reasons together: numbers and quoted text vary from payload to payload. */
function category(text: string): string {
  return text
    .replace(/"[^"]*"/g, '"…"')
    .replace(/[0-9a-f]{8,}/gi, '#')
    .replace(/\d+/g, '#')
    .slice(0, 90);
}

function showPayload(payload: Buffer): string {
  return `payload (${payload.length} bytes): ${payload.subarray(0, 160).toString('hex')}${payload.length > 160 ? '…' : ''}`;
}

type Report = (category: string, payload: Buffer, detail: string) => void;

/** Runs one decode call and reports anything but a value or the typed error of the right format. */
function check(target: Target, call: Call, payload: Buffer, report: Report): 'decoded' | 'refused' {
  let result: unknown;
  try {
    result = call.run(payload);
  } catch (error) {
    if (!(error instanceof ContentFormatError)) {
      report(`${target.name} ${call.label}: ${(error as Error)?.constructor?.name ?? typeof error} escaped: ${category(String((error as Error)?.message ?? error))}`, payload, String(error));
    } else if (error.reason.startsWith('unexpected ')) {
      report(`${target.name} ${call.label}: ${category(error.reason)}`, payload, error.message);
    } else if (error.format !== target.format || error.operation !== 'decode') {
      report(`${target.name} ${call.label}: the error names format ${error.format} (${error.operation})`, payload, error.message);
    } else if (error.message.length > 4 * payload.length + 1024) {
      report(`${target.name} ${call.label}: an error message of ${error.message.length} characters`, payload, error.message.slice(0, 200));
    }
    return 'refused';
  }
  const { total, largest, buffers } = weigh(result);
  const bound = 4 * payload.length + 1024;
  if (largest > bound || total > bound) {
    report(`${target.name} ${call.label}: the result holds ${total} units (largest ${largest}) for a ${payload.length}-byte payload`, payload, '');
  }
  if (buffers.some((buffer) => overlaps(buffer, payload))) {
    report(`${target.name} ${call.label}: a returned Buffer is a view into the payload (it changes when the payload buffer is reused)`, payload, '');
  }
  return 'decoded';
}

// ---------------------------------------------------------------------------------------------
// Child processes: decoding runs in a child so that a decoder stuck in native code (where no
// timeout or worker termination reaches) can be killed, and the payload that did it found.

const MB = 1024 * 1024;
const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;
const collect = (): void => (global as { gc?: () => void }).gc?.();
/** A child that sends nothing for this long is taken to hang (256 payloads take well under a second). */
const IDLE_MS = 10_000;

function spawnChild(kind: 'fuzz' | 'sandbox', job?: unknown): ChildProcess {
  return fork(__filename, [], {
    env: { ...process.env, LWM2M_FUZZ_CHILD: kind, LWM2M_FUZZ_JOB: JSON.stringify(job ?? null) },
    execArgv: ['--expose-gc', '--max-old-space-size=1024'],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

const asBuffer = (bytes: Uint8Array): Buffer => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

function randomFor(seed: number, target: number): Random {
  return new Random((seed ^ Math.imul(target + 1, 0x9e3779b9)) >>> 0);
}

/** The payload sequence of a target: the same in every process for the same seed. */
function* payloadsOf(target: number, seed: number): Generator<Buffer, never> {
  const random = randomFor(seed, target);
  const { seeds, dictionary } = TARGETS[target];
  for (;;) yield nextPayload(random, seeds, dictionary);
}

function payloadAt(target: number, seed: number, index: number): Buffer {
  const payloads = payloadsOf(target, seed);
  for (let skip = 0; skip < index; skip++) payloads.next();
  return payloads.next().value;
}

interface FuzzJob {
  readonly target: number;
  readonly seed: number;
  /** Feed payloads [from, to) of the sequence. */
  readonly from: number;
  readonly to: number;
  /** Write the index of each payload here before decoding it (to find one that hangs). */
  readonly traceFile?: string;
}

interface MemoryFigures {
  readonly before: NodeJS.MemoryUsage;
  readonly after: NodeJS.MemoryUsage;
  readonly peakRss: number;
}

interface FuzzProgress {
  readonly type: 'progress' | 'done';
  /** The last payload fed. */
  readonly index: number;
  readonly decoded: number;
  readonly refused: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly largest: number;
  readonly seconds?: number;
  readonly memory?: MemoryFigures;
}
type FuzzMessage = FuzzProgress | { readonly type: 'failure'; readonly category: string; readonly example: string };

/** The child side of a fuzz run: feeds the payloads and reports progress, failures and memory. */
function fuzzChild(job: FuzzJob): void {
  const target = TARGETS[job.target];
  const send = (message: FuzzMessage, then?: () => void): void => void process.send!(message, undefined, undefined, then);
  const failures: Record<string, number> = {};
  const examples = new Map<string, Set<string>>();
  const report: Report = (kind, payload, detail) => {
    failures[kind] = (failures[kind] ?? 0) + 1;
    let sent = examples.get(kind);
    if (!sent) examples.set(kind, (sent = new Set()));
    const example = `${showPayload(payload)}${detail ? `\n        ${detail}` : ''}`;
    if (sent.size < 20 && !sent.has(example)) {
      sent.add(example);
      send({ type: 'failure', category: kind, example });
    }
  };
  let decoded = 0;
  let refused = 0;
  let largest = 0;
  collect();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  const started = performance.now();
  // a million thrown errors: their stack traces would be most of the cost, and tell nothing here
  Error.stackTraceLimit = 0;
  const payloads = payloadsOf(job.target, job.seed);
  for (let index = 0; index < job.to; index++) {
    const payload = payloads.next().value;
    if (index < job.from) continue;
    if (job.traceFile) writeFileSync(job.traceFile, String(index));
    largest = Math.max(largest, payload.length);
    for (const call of target.calls) {
      if (check(target, call, payload, report) === 'decoded') decoded++;
      else refused++;
    }
    if ((index + 1) % 256 === 0) send({ type: 'progress', index, decoded, refused, failures, largest });
    if (index % 8192 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const seconds = (performance.now() - started) / 1000;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  collect();
  const after = process.memoryUsage();
  send({ type: 'done', index: job.to - 1, decoded, refused, failures, largest, seconds, memory: { before, after, peakRss } }, () => process.disconnect());
}

interface Segment {
  status: 'done' | 'hung' | 'crashed';
  reason?: string;
  last?: FuzzProgress;
  examples: Array<[string, string]>;
}

/** Runs one fuzz child; 'hung' when it goes quiet for IDLE_MS, 'crashed' when it dies. */
function runSegment(job: FuzzJob): Promise<Segment> {
  return new Promise((resolve) => {
    const child = spawnChild('fuzz', job);
    const segment: Segment = { status: 'crashed', examples: [] };
    let settled = false;
    const settle = (status: Segment['status'], reason?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      Object.assign(segment, { status, reason });
      if (status !== 'done') child.kill('SIGKILL');
      resolve(segment);
    };
    let timer = setTimeout(() => settle('hung'), IDLE_MS);
    child.on('message', (message: FuzzMessage) => {
      clearTimeout(timer);
      timer = setTimeout(() => settle('hung'), IDLE_MS);
      if (message.type === 'failure') segment.examples.push([message.category, message.example]);
      else {
        segment.last = message;
        if (message.type === 'done') settle('done');
      }
    });
    child.on('exit', (code, signal) => settle('crashed', `exit code ${code}, signal ${signal}`));
    child.on('error', (error) => settle('crashed', String(error)));
  });
}

interface TargetResult {
  readonly name: string;
  readonly payloads: number;
  decoded: number;
  refused: number;
  largest: number;
  seconds: number;
  readonly failures: Map<string, { count: number; examples: string[] }>;
  readonly hangs: string[];
  readonly memory: MemoryFigures[];
}

/** Feeds PAYLOADS payloads to one target, in as many child processes as hangs make necessary. */
async function fuzzTarget(index: number): Promise<TargetResult> {
  const result: TargetResult = { name: TARGETS[index].name, payloads: PAYLOADS, decoded: 0, refused: 0, largest: 0, seconds: 0, failures: new Map(), hangs: [], memory: [] };
  const absorb = (segment: Segment): void => {
    const last = segment.last;
    if (last) {
      result.decoded += last.decoded;
      result.refused += last.refused;
      result.largest = Math.max(result.largest, last.largest);
      result.seconds += last.seconds ?? 0;
      if (last.memory) result.memory.push(last.memory);
      for (const [kind, count] of Object.entries(last.failures)) {
        const failure = result.failures.get(kind) ?? { count: 0, examples: [] };
        failure.count += count;
        result.failures.set(kind, failure);
      }
    }
    for (const [kind, example] of segment.examples) {
      const failure = result.failures.get(kind) ?? { count: 0, examples: [] };
      if (!failure.examples.includes(example)) failure.examples.push(example);
      failure.examples.sort((a, b) => a.length - b.length); // the shortest are the easiest to read
      failure.examples.length = Math.min(failure.examples.length, 3);
      result.failures.set(kind, failure);
    }
  };
  let from = 0;
  while (from < PAYLOADS) {
    const segment = await runSegment({ target: index, seed: SEED, from, to: PAYLOADS });
    absorb(segment);
    if (segment.status === 'done') break;
    // replay from the last payload known to be done, noting each index, to find the culprit
    const start = segment.last ? segment.last.index + 1 : from;
    const traceFile = join(tmpdir(), `lwm2m-fuzz-${process.pid}-${index}-${start}.txt`);
    const replay = await runSegment({ target: index, seed: SEED, from: start, to: Math.min(PAYLOADS, start + 512), traceFile });
    const culprit = existsSync(traceFile) ? Number(readFileSync(traceFile, 'utf8')) : start;
    rmSync(traceFile, { force: true });
    if (replay.status === 'done') {
      result.hangs.push(`the process ${segment.status === 'hung' ? 'went quiet' : `died (${segment.reason})`} after payload #${start - 1}, but not when payloads #${start}.. were replayed`);
      absorb(replay);
      from = Math.min(PAYLOADS, start + 512);
      continue;
    }
    const what = replay.status === 'hung' ? `no answer for ${IDLE_MS / 1000} s (killed)` : `the process died (${replay.reason})`;
    result.hangs.push(`payload #${culprit}: ${what}\n      ${showPayload(payloadAt(index, SEED, culprit))}`);
    from = culprit + 1;
  }
  return result;
}

/** Runs at most `width` jobs at a time. */
function limiter(width: number): <T>(job: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (job) => {
    if (active >= width) await new Promise<void>((resume) => waiting.push(resume));
    active++;
    try {
      return await job();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

// ---------------------------------------------------------------------------------------------
// A child process with a watchdog, for hand-crafted payloads that might hang a decoder

type Outcome =
  | { status: 'decoded'; ms: number; weight: number }
  | { status: 'threw'; ms: number; typed: boolean; format?: number; operation?: string; name?: string; reason: string; reasonLength: number }
  | { status: 'hung'; ms: number }
  | { status: 'crashed'; ms: number; reason: string };

interface Task {
  readonly call: 'decode' | 'decodeComposite' | 'decodePaths';
  readonly format: number;
  readonly path?: string;
  readonly payload: Buffer;
  /** Overrides the case's expectation for this one call. */
  readonly expect?: 'fail' | 'either';
}

function runTask(task: Task): Outcome {
  const payload = asBuffer(task.payload);
  const started = performance.now();
  try {
    let result: unknown;
    if (task.call === 'decodeComposite') result = decodeComposite(task.format, payload, model);
    else if (task.call === 'decodePaths') result = decodePaths(task.format, payload);
    else if (task.format === ContentFormat.LINK) result = decode(ContentFormat.LINK, task.path ?? '/', payload);
    else result = decode(task.format, task.path ?? '/', payload, model);
    return { status: 'decoded', weight: weigh(result).total, ms: performance.now() - started };
  } catch (error) {
    const typed = error instanceof ContentFormatError;
    const reason = typed ? error.reason : String((error as Error)?.message ?? error);
    return {
      status: 'threw',
      ms: performance.now() - started,
      typed,
      format: typed ? error.format : undefined,
      operation: typed ? error.operation : undefined,
      name: (error as Error)?.constructor?.name,
      reason: reason.slice(0, 300),
      reasonLength: reason.length,
    };
  }
}

function sandboxChild(): void {
  process.on('message', (message: Task & { id: number }) => {
    process.send!({ id: message.id, outcome: runTask(message) });
  });
}

class Sandbox {
  private child?: ChildProcess;
  private nextId = 0;

  run(task: Task, limitMs: number): Promise<Outcome> {
    const child = (this.child ??= spawnChild('sandbox'));
    const id = ++this.nextId;
    const started = performance.now();
    return new Promise((resolve) => {
      const finish = (outcome: Outcome, discard: boolean): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (discard) {
          if (this.child === child) this.child = undefined;
          child.kill('SIGKILL');
        }
        resolve(outcome);
      };
      const onMessage = (message: { id: number; outcome: Outcome }): void => {
        if (message.id === id) finish(message.outcome, false);
      };
      const onExit = (code: number | null, signal: string | null): void =>
        finish({ status: 'crashed', ms: performance.now() - started, reason: `the process exited (code ${code}, signal ${signal})` }, true);
      const timer = setTimeout(() => finish({ status: 'hung', ms: performance.now() - started }, true), limitMs);
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.send({ id, call: task.call, format: task.format, path: task.path, payload: task.payload });
    });
  }

  close(): void {
    this.child?.kill('SIGKILL');
    this.child = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-crafted dangerous payloads

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/**
 * CBOR value sharing (tags 28/29) as a DAG: `levels` nested arrays of `width` elements, each level
 * holding the level below once and `width - 1` references to it. The bytes grow linearly, the
 * tree they stand for as width^levels.
 */
function sharedDag(levels: number, width: number): Buffer {
  const bytes: number[] = [];
  const head = (major: number, n: number): void => {
    if (n < 24) bytes.push((major << 5) | n);
    else if (n < 256) bytes.push((major << 5) | 24, n);
    else bytes.push((major << 5) | 25, n >> 8, n & 0xff);
  };
  // shareable ids are given in the order the tags are met: the outermost array is 0
  for (let level = levels; level >= 0; level--) {
    bytes.push(0xd8, 0x1c);
    head(4, width);
  }
  for (let index = 0; index < width; index++) bytes.push(0x00);
  for (let level = 1; level <= levels; level++) {
    const below = levels - (level - 1);
    for (let index = 0; index < width - 1; index++) {
      bytes.push(0xd8, 0x1d);
      head(0, below);
    }
  }
  return Buffer.from(bytes);
}

/** A SenML JSON pack of `count` records, each for a different resource (or all for the same one). */
function senmlPack(count: number, distinct: boolean): Buffer {
  const records: string[] = [];
  for (let index = 0; index < count; index++) {
    const path = distinct ? `/${3303 + (index >>> 16)}/${index & 0xffff}/5700` : '/3303/0/5700';
    records.push(`{"n":"${path}","v":${index % 1000},"t":${1_700_000_000 + index}}`);
  }
  return Buffer.from(`[${records.join(',')}]`);
}

interface Dangerous {
  readonly name: string;
  readonly tasks: readonly Task[];
  /** 'fail': must be refused with the typed error; 'either': may also decode. */
  readonly expect: 'fail' | 'either';
  /** The watchdog: beyond this the decoder is taken to hang. */
  readonly limitMs: number;
}

const CBOR_FORMATS = [ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR];
const JSON_FORMATS = [ContentFormat.SENML_JSON, ContentFormat.OMA_JSON];

/** The same payload for SenML CBOR and LwM2M CBOR (decode at /3/0 and as a composite) and as a SenML CBOR path list. */
function cborTasks(payload: Buffer): Task[] {
  return [
    ...CBOR_FORMATS.flatMap((format): Task[] => [
      { call: 'decode', format, path: '/3/0', payload },
      { call: 'decodeComposite', format, payload },
    ]),
    { call: 'decodePaths', format: ContentFormat.SENML_CBOR, payload },
  ];
}

function jsonTasks(payload: Buffer): Task[] {
  return [
    ...JSON_FORMATS.map((format): Task => ({ call: 'decode', format, path: '/3/0', payload })),
    { call: 'decodeComposite', format: ContentFormat.SENML_JSON, payload },
    { call: 'decodePaths', format: ContentFormat.SENML_JSON, payload },
  ];
}

const FAST = 10_000;

const DANGEROUS: readonly Dangerous[] = [
  // TLV
  {
    name: 'TLV: a resource entry claiming 16 MB in a 6-byte payload',
    tasks: ['/3/0', '/3', '/3/0/0', '/3/0/7/0'].map((path): Task => ({ call: 'decode', format: ContentFormat.TLV, path, payload: hex('d8 00 ff ff ff 00') })),
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'TLV: an object instance claiming 16 MB, and a multiple resource claiming 64 KB, inside short payloads',
    tasks: [
      { call: 'decode', format: ContentFormat.TLV, path: '/3', payload: hex('18 00 ff ff ff c1 00 01') },
      { call: 'decode', format: ContentFormat.TLV, path: '/3/0', payload: hex('08 00 05 90 07 ff ff 41') },
      { call: 'decode', format: ContentFormat.TLV, path: '/3/0', payload: hex('f8 ff ff ff ff ff 00') },
    ],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'TLV: 65 536 distinct resources of an unknown object instance',
    tasks: [
      {
        call: 'decode',
        format: ContentFormat.TLV,
        path: '/40001/0',
        payload: Buffer.concat(Array.from({ length: 65536 }, (_, id) => Buffer.of(0xe1, id >> 8, id & 0xff, 0x00))),
      },
    ],
    expect: 'either',
    limitMs: FAST,
  },
  // CBOR length claims
  ...(
    [
      ['an array of 2^64-1 elements', '9b ff ff ff ff ff ff ff ff'],
      ['an array of 2^32-1 elements', '9a ff ff ff ff'],
      ['a byte string of 2^32-1 bytes', '5a ff ff ff ff'],
      ['a byte string of 2^32 bytes', '5b 00 00 00 01 00 00 00 00'],
      ['a text string of 2^64-1 bytes', '7b ff ff ff ff ff ff ff ff'],
      ['a map of 2^32 pairs', 'bb 00 00 00 01 00 00 00 00'],
      ['a map of 2^32-1 pairs', 'ba ff ff ff ff'],
      ['a map of 2^64-1 pairs inside a SenML record', '81 bb ff ff ff ff ff ff ff ff'],
      ['an unterminated indefinite array', `9f ${'00 '.repeat(1000)}`],
    ] as const
  ).map(([what, bytes]): Dangerous => ({ name: `CBOR: ${what}`, tasks: cborTasks(hex(bytes)), expect: 'fail', limitMs: FAST })),
  {
    name: 'CBOR: arrays nested 10 000 levels deep',
    tasks: cborTasks(Buffer.concat([Buffer.alloc(10_000, 0x81), Buffer.of(0x00)])),
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: maps and indefinite arrays nested 10 000 levels deep',
    tasks: [...cborTasks(Buffer.concat([hex('a1 00'.repeat(10_000)), Buffer.of(0x00)])), ...cborTasks(Buffer.alloc(10_000, 0x9f))],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: a non-ASCII text string, then a byte string claiming 2^32-8 bytes (9 bytes in all)',
    tasks: [
      { call: 'decode', format: ContentFormat.SENML_CBOR, path: '/3/0', payload: hex('81 a2 00 62 c3 a9 02 5a ff ff ff f8') },
      { call: 'decode', format: ContentFormat.LWM2M_CBOR, path: '/3/0', payload: hex('62 c3 a9 02 5a ff ff ff f8') },
      { call: 'decodePaths', format: ContentFormat.SENML_CBOR, payload: hex('81 a1 00 62 c3 a9 00 5a ff ff ff f8') },
    ],
    expect: 'fail',
    limitMs: 5_000,
  },
  {
    name: 'CBOR: tags 28/29 (value sharing) with cycles, and a reference to nothing',
    tasks: [...cborTasks(hex('d8 1c 81 d8 1d 00')), ...cborTasks(hex('d8 1c a1 00 d8 1d 00')), ...cborTasks(hex('d8 1d 00')), ...cborTasks(hex('81 d8 1d 05'))],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: tags 28/29 sharing one array 16 times per level, 11 levels deep (a ~500-byte payload standing for 16^11 elements)',
    tasks: CBOR_FORMATS.map((format): Task => ({ call: 'decode', format, path: '/3/0', payload: sharedDag(11, 16) })),
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: tag 27 (generic object: RegExp, Error)',
    tasks: [
      ...cborTasks(Buffer.concat([hex('d8 1b 83 66'), Buffer.from('RegExp'), hex('65'), Buffer.from('(a+)+'), hex('61'), Buffer.from('g')])),
      ...cborTasks(Buffer.concat([hex('a1 19 0003 d8 1b 82 65'), Buffer.from('Error'), hex('61'), Buffer.from('x')])),
    ],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: tag 258 (a set) and tag 259 (a map with map keys)',
    tasks: [...cborTasks(hex('d9 0102 82 01 02')), ...cborTasks(hex('a1 03 d9 0102 81 00')), ...cborTasks(hex('d9 0103 a1 a0 00'))],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: tags 259 (explicit map) and 28 (shareable, no cycle) around a valid payload, a 1 MB text value',
    tasks: [
      { call: 'decode', format: ContentFormat.LWM2M_CBOR, path: '/3/0', payload: hex('d9 0103 a1 03 a1 00 a1 09 18 5f') },
      { call: 'decode', format: ContentFormat.LWM2M_CBOR, path: '/3/0', payload: hex('d8 1c a1 03 a1 00 a1 09 18 5f') },
      { call: 'decode', format: ContentFormat.SENML_CBOR, path: '/3/0', payload: hex('d8 1c 81 a2 00 66 2f332f302f39 02 18 5f') },
      { call: 'decode', format: ContentFormat.LWM2M_CBOR, path: '/3/0', payload: Buffer.concat([hex('a1 03 a1 00 a1 00 7a 00 10 00 00'), Buffer.alloc(1 << 20, 'x')]) },
    ],
    expect: 'either',
    limitMs: FAST,
  },
  {
    name: 'CBOR: record definitions (tags 0xdfff and 0xe000 range)',
    tasks: [...cborTasks(hex('d9 e000 82 00 00')), ...cborTasks(hex('d9 dfff 83 00 80 00')), ...cborTasks(hex('81 d9 dfff 84 19 e000 81 63 616263 01'))],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'CBOR: tag 2 (bignum) over 1 MB',
    tasks: [
      { call: 'decode', format: ContentFormat.LWM2M_CBOR, path: '/3/0', payload: Buffer.concat([hex('a1 03 a1 00 a1 09 c2 5a 00 10 00 00'), Buffer.alloc(1 << 20, 0xff)]) },
    ],
    expect: 'fail',
    limitMs: FAST,
  },
  // JSON
  {
    name: 'JSON: arrays nested 100 000 levels deep',
    tasks: jsonTasks(Buffer.from('['.repeat(100_000) + ']'.repeat(100_000))),
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'JSON: objects nested 100 000 levels deep, and an unterminated nesting',
    tasks: [...jsonTasks(Buffer.from('{"e":'.repeat(100_000) + '1' + '}'.repeat(100_000))), ...jsonTasks(Buffer.from('[{"bn":'.repeat(100_000)))],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'JSON: a number of 1 000 000 digits',
    // a path list ignores values, so decodePaths may read it
    tasks: jsonTasks(Buffer.from(`[{"n":"/3/0/9","v":${'9'.repeat(1_000_000)}}]`)).map((task) => (task.call === 'decodePaths' ? { ...task, expect: 'either' as const } : task)),
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'SenML JSON: a pack of 100 000 records of one resource (history), decoded at / and as a composite',
    tasks: [
      { call: 'decode', format: ContentFormat.SENML_JSON, path: '/', payload: senmlPack(100_000, false) },
      { call: 'decodeComposite', format: ContentFormat.SENML_JSON, payload: senmlPack(100_000, false) },
    ],
    expect: 'either',
    limitMs: 30_000,
  },
  {
    name: 'SenML JSON: a pack of 100 000 records of different resources, decoded at /',
    tasks: [{ call: 'decode', format: ContentFormat.SENML_JSON, path: '/', payload: senmlPack(100_000, true) }],
    expect: 'either',
    limitMs: 30_000,
  },
  {
    name: 'SenML JSON: a pack of 100 000 records of different resources, decoded as a composite',
    tasks: [{ call: 'decodeComposite', format: ContentFormat.SENML_JSON, payload: senmlPack(100_000, true) }],
    expect: 'either',
    limitMs: 30_000,
  },
  // link format
  {
    name: 'link format: an unterminated quote of 1 MB, an unclosed target of 1 MB',
    tasks: [
      { call: 'decode', format: ContentFormat.LINK, path: '/', payload: Buffer.from(`</3/0>;rt="${'a'.repeat(1 << 20)}`) },
      { call: 'decode', format: ContentFormat.LINK, path: '/', payload: Buffer.from(`</3/0>;rt="${'\\"'.repeat(1 << 19)}`) },
      { call: 'decode', format: ContentFormat.LINK, path: '/', payload: Buffer.from(`<${'/3'.repeat(1 << 19)}`) },
    ],
    expect: 'fail',
    limitMs: FAST,
  },
  {
    name: 'link format: 500 000 attributes, 130 000 links',
    tasks: [
      { call: 'decode', format: ContentFormat.LINK, path: '/', payload: Buffer.from(`</3/0>${';a'.repeat(500_000)}`) },
      { call: 'decode', format: ContentFormat.LINK, path: '/', payload: Buffer.from(`${'</3/0>,'.repeat(130_000)}</1/0>`) },
    ],
    expect: 'either',
    limitMs: FAST,
  },
  // text
  {
    name: 'text/plain: 1 MB of digits for an Integer, 1 MB of base64 for an Opaque',
    tasks: [
      { call: 'decode', format: ContentFormat.TEXT, path: '/3/0/9', payload: Buffer.alloc(1 << 20, '9') },
      { call: 'decode', format: ContentFormat.TEXT, path: '/40000/0/5', payload: Buffer.alloc(1 << 20, 'A') },
    ],
    expect: 'either',
    limitMs: FAST,
  },
];

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The test: mocha runs this file; the child processes it forks run the same file with LWM2M_FUZZ_CHILD set

const CHILD = process.env.LWM2M_FUZZ_CHILD;
if (CHILD === 'fuzz') fuzzChild(JSON.parse(process.env.LWM2M_FUZZ_JOB!) as FuzzJob);
else if (CHILD === 'sandbox') sandboxChild();
else {
  describe('content decoders under fuzzing', function () {
    this.timeout(180_000);
    const results = new Map<number, Promise<TargetResult | { error: unknown }>>();

    before(() => {
      console.log(`      fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED}), ${PAYLOADS} payloads per decoder, two child processes at a time`);
      const limit = limiter(2);
      TARGETS.forEach((_, index) => results.set(index, limit(() => fuzzTarget(index)).catch((error: unknown) => ({ error }))));
    });

    TARGETS.forEach((target, index) => {
      it(`${target.name}: ${PAYLOADS} random and mutated payloads at ${target.calls.length} call(s) each; only the typed error escapes, in bounded memory`, async function () {
        this.timeout(175_000);
        const result = await results.get(index)!;
        if ('error' in result) throw result.error;
        const [first] = result.memory;
        const last = result.memory[result.memory.length - 1];
        const peakRss = Math.max(0, ...result.memory.map((memory) => memory.peakRss));
        console.log(
          `      ${target.name}: ${result.payloads} payloads (largest ${result.largest} B) × ${target.calls.length} call(s) in ${result.seconds.toFixed(1)} s; ` +
            `${result.decoded} calls decoded, ${result.refused} refused` +
            (first ? `; heap ${mb(first.before.heapUsed)} → ${mb(last.after.heapUsed)}, arrayBuffers ${mb(first.before.arrayBuffers)} → ${mb(last.after.arrayBuffers)}, rss ${mb(first.before.rss)} → ${mb(last.after.rss)} (peak ${mb(peakRss)})` : '') +
            (result.hangs.length ? `; ${result.hangs.length} hang(s)` : ''),
        );
        const problems = [
          ...result.hangs.map((hang) => `  hang: ${hang}`),
          ...[...result.failures].map(([kind, { count, examples }]) => `  ${kind} — ${count} call(s), e.g.\n${examples.map((example) => `      ${example}`).join('\n')}`),
        ];
        assert.equal(problems.length, 0, `${target.name}: ${problems.length} kind(s) of failure:\n${problems.join('\n')}`);
        for (const memory of result.memory) {
          assert.ok(memory.after.heapUsed - memory.before.heapUsed < 200 * MB, `the heap grew from ${mb(memory.before.heapUsed)} to ${mb(memory.after.heapUsed)}`);
          assert.ok(memory.after.arrayBuffers - memory.before.arrayBuffers < 200 * MB, `arrayBuffers grew from ${mb(memory.before.arrayBuffers)} to ${mb(memory.after.arrayBuffers)}`);
        }
        assert.ok(peakRss < 1536 * MB, `rss reached ${mb(peakRss)}`);
      });
    });

    describe('hand-crafted dangerous payloads fail fast with the typed error (in a child process with a watchdog)', () => {
      const sandbox = new Sandbox();
      after(() => sandbox.close());

      for (const danger of DANGEROUS) {
        it(danger.name, async function () {
          this.timeout(danger.tasks.length * (danger.limitMs + 5_000) + 10_000);
          const problems: string[] = [];
          const timings: string[] = [];
          for (const task of danger.tasks) {
            const where = `${task.call}(${task.format}${task.path ? `, ${task.path}` : ''}) of ${task.payload.length} bytes`;
            const outcome = await sandbox.run(task, danger.limitMs);
            timings.push(`${outcome.status} in ${outcome.ms.toFixed(0)} ms`);
            switch (outcome.status) {
              case 'hung':
                problems.push(`${where}: still running after ${danger.limitMs} ms (killed)`);
                break;
              case 'crashed':
                problems.push(`${where}: ${outcome.reason}`);
                break;
              case 'decoded':
                if ((task.expect ?? danger.expect) === 'fail') problems.push(`${where}: decoded (${outcome.weight} units) instead of failing`);
                else if (outcome.weight > 4 * task.payload.length + 1024) problems.push(`${where}: the result holds ${outcome.weight} units`);
                break;
              case 'threw':
                if (!outcome.typed) problems.push(`${where}: ${outcome.name} escaped: ${outcome.reason}`);
                else if (outcome.reason.startsWith('unexpected ')) problems.push(`${where}: ${outcome.reason}`);
                else if (outcome.format !== task.format || outcome.operation !== 'decode') problems.push(`${where}: the error names format ${outcome.format} (${outcome.operation})`);
                else if (outcome.reasonLength > 4 * task.payload.length + 1024) problems.push(`${where}: a reason of ${outcome.reasonLength} characters`);
                break;
            }
          }
          console.log(`        ${timings.join('; ')}`);
          assert.deepEqual(problems, []);
        });
      }
    });
  });
}
