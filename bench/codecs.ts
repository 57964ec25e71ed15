/**
 * Codec throughput: encode and decode operations per second of
 *   1. a Device object instance (/3/0, 17 resources) in TLV, OMA JSON, SenML JSON, SenML CBOR and LwM2M CBOR;
 *   2. a 10-record SenML pack (10 timed readings of /3303/0/5700, a Send with history) in SenML JSON and CBOR;
 *   3. a composite of 10 distinct resources (/3303/0..9/5700) in SenML JSON, SenML CBOR and LwM2M CBOR;
 * each beside JSON.stringify / JSON.parse of the same JS data, measured in the same run; and every
 * SenML CBOR and LwM2M CBOR row beside cbor-x (a general CBOR codec, a devDependency) encoding the
 * same document as generic CBOR: the array of integer-keyed maps or nested id maps that the pack
 * or document is, and decoding the very bytes our encoder produced.
 *
 *   node dist/bench/codecs.js [--seconds 1] [--warmup 0.5]     (or BENCH_SECONDS / BENCH_WARMUP)
 *
 * Every case is checked once (decode(encode(x)) deep-equals x) before it is timed. The figures are
 * never asserted: the process exits 0 unless a codec throws or fails that check.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { Decoder as CborxDecoder, Encoder as CborxEncoder, isNativeAccelerationEnabled } from 'cbor-x';
import { PLAIN_CBORX } from '../test/helpers/cborx';
import {
  ContentFormat,
  decode,
  decodeComposite,
  decodeRecords,
  encode,
  encodeComposite,
  encodeRecords,
  formatName,
  type CompositeValue,
  type ResourceRecord,
} from '../lib';
import { DEVICE_EXAMPLE } from '../test/helpers/device';
import { decodeCbor } from '../lib/content/cbor-reader';

// ---------------------------------------------------------------------------------------------
// Settings

interface Settings {
  /** Timed seconds per case. */
  readonly seconds: number;
  /** Untimed seconds per case before it, so the JIT has settled. */
  readonly warmup: number;
}

const USAGE = 'usage: node dist/bench/codecs.js [--seconds <s>] [--warmup <s>]   (env: BENCH_SECONDS, BENCH_WARMUP)';

function readSettings(argv: readonly string[], env: NodeJS.ProcessEnv): Settings {
  const given: Record<string, string | undefined> = { seconds: env.BENCH_SECONDS, warmup: env.BENCH_WARMUP };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const match = /^--(seconds|warmup)(?:=(.*))?$/.exec(arg);
    if (!match) throw new UsageError(`unknown argument ${arg}`);
    given[match[1]] = match[2] ?? argv[++i];
  }
  return { seconds: positive('seconds', given.seconds, 1), warmup: positive('warmup', given.warmup, 0.5) };
}

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > 600) throw new UsageError(`--${name} must be a number of seconds in (0, 600], not ${text}`);
  return value;
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Measurement {
  readonly opsPerSecond: number;
  /** Relative standard deviation of the per-slice rates, in percent. */
  readonly spread: number;
}

/** Keeps every result alive so no call can be optimised away. */
let sink: unknown;

/** Runs `operation` `count` times; returns the elapsed nanoseconds. */
function runBatch(operation: () => unknown, count: number): bigint {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) sink = operation();
  return process.hrtime.bigint() - start;
}

const SLICES = 10;

/**
 * Warms `operation` up, then times it for `seconds` in ten slices. The rate reported is the
 * median slice rate (robust to the odd slice disturbed by GC or another process), with the
 * slices' relative standard deviation as the spread.
 */
function measure(operation: () => unknown, settings: Settings): Measurement {
  // A batch long enough (≥ 1 ms) that reading the clock costs nothing next to it.
  let batch = 1;
  while (Number(runBatch(operation, batch)) < 1e6 && batch < 1 << 24) batch *= 2;

  const warmupEnd = process.hrtime.bigint() + BigInt(Math.round(settings.warmup * 1e9));
  while (process.hrtime.bigint() < warmupEnd) runBatch(operation, batch);

  const sliceNs = BigInt(Math.round((settings.seconds * 1e9) / SLICES));
  const rates: number[] = [];
  for (let slice = 0; slice < SLICES; slice++) {
    let ops = 0;
    let elapsed = 0n;
    while (elapsed < sliceNs) {
      elapsed += runBatch(operation, batch);
      ops += batch;
    }
    rates.push((ops * 1e9) / Number(elapsed));
  }
  rates.sort((a, b) => a - b);
  const median = (rates[SLICES / 2 - 1] + rates[SLICES / 2]) / 2;
  const mean = rates.reduce((sum, rate) => sum + rate, 0) / SLICES;
  const deviation = Math.sqrt(rates.reduce((sum, rate) => sum + (rate - mean) ** 2, 0) / (SLICES - 1));
  return { opsPerSecond: median, spread: (100 * deviation) / mean };
}

// ---------------------------------------------------------------------------------------------
// Cases

/** One row of a table: a format's encode and decode of the data set, checked before timing. */
interface Row {
  readonly label: string;
  readonly encode: () => unknown;
  readonly decode: () => unknown;
  /** The encoded payload's size in bytes. */
  readonly bytes: number;
  /** Row label of the baseline its ratios are taken against (the first row of the table when absent). */
  readonly baseline?: string;
  /** True for a JSON.stringify/parse row. */
  readonly isBaseline?: boolean;
  /** Rows with the same key are the same operations on the same data: measured once, shown in each table. */
  readonly key?: string;
  /** Label of the cbor-x row doing the same document generically: this row's ratios to it are printed. */
  readonly cborxPeer?: string;
}

interface Table {
  readonly title: string;
  readonly rows: readonly Row[];
  readonly notes?: readonly string[];
}

interface Result {
  readonly row: Row;
  readonly encode: Measurement;
  readonly decode: Measurement;
}

function formatLabel(format: number): string {
  return formatName(format); // 'TLV (11542)'
}

/** The baseline row: JSON.stringify / JSON.parse of the same JS data, checked like the codecs. */
function jsonRow(label: string, data: unknown, extra: Partial<Row> = {}): Row {
  const text = JSON.stringify(data);
  assert.deepStrictEqual(JSON.parse(text), data, `${label}: JSON.parse(JSON.stringify(x)) differs from x`);
  return { label, encode: () => JSON.stringify(data), decode: () => JSON.parse(text), bytes: Buffer.byteLength(text), isBaseline: true, ...extra };
}

/** A codec row, after checking that decoding the encoded payload gives the data back. */
function codecRow(
  label: string,
  encodeOnce: () => Buffer,
  decodeFrom: (payload: Buffer) => unknown,
  expected: unknown,
  extra: Partial<Row> = {},
  /** Brings the decoded value to the shape of `expected` for the check only (not timed). */
  reshape: (decoded: unknown) => unknown = (decoded) => decoded,
): Row {
  let payload: Buffer;
  let decoded: unknown;
  try {
    payload = encodeOnce();
    decoded = reshape(decodeFrom(payload));
  } catch (error) {
    throw new Error(`${label}: the round trip threw before timing: ${(error as Error).message}`, { cause: error });
  }
  assert.deepStrictEqual(decoded, expected, `${label}: decode(encode(x)) differs from x`);
  return { label, encode: encodeOnce, decode: () => decodeFrom(payload), bytes: payload.length, ...extra };
}

/** cbor-x as a plain RFC 8949 codec, with the options of the differential tests (test/helpers/cborx.ts). */
const CBORX_OPTIONS = PLAIN_CBORX;
const CBORX_VERSION = (require('cbor-x/package.json') as { version: string }).version;
const cborxEncoder = new CborxEncoder(CBORX_OPTIONS);
const cborxDecoder = new CborxDecoder(CBORX_OPTIONS);

/**
 * Our CBOR row and, after it, cbor-x on the same document: it encodes the generic structure that
 * our payload is (arrays, integer-keyed Maps, Buffers, Dates for tag 1) and decodes our very bytes
 * into that structure, without any LwM2M typing. Both are checked before timing.
 */
function withCborx(ours: Row, labelSuffix: string, extra: Partial<Row> = {}): Row[] {
  const payload = ours.encode() as Buffer;
  const structure: unknown = cborxDecoder.decode(payload);
  const encoded = Buffer.from(cborxEncoder.encode(structure));
  assert.deepStrictEqual(cborxDecoder.decode(encoded), structure, `${ours.label}: cbor-x does not read back what it wrote`);
  const label = `  cbor-x, same document${labelSuffix}`;
  const peer: Row = {
    ...extra,
    label,
    encode: () => cborxEncoder.encode(structure),
    decode: () => cborxDecoder.decode(payload),
    bytes: encoded.length,
  };
  return [{ ...ours, cborxPeer: label }, peer];
}

const isCborFormat = (format: number) => format === ContentFormat.SENML_CBOR || format === ContentFormat.LWM2M_CBOR;

// 1. The Device object instance, in the value shape of the message contract.
const DEVICE_PATH = '/3/0';
// the specification's example, plus a few more string resources so it has ≈ 15 resources
const DEVICE = { ...DEVICE_EXAMPLE, 15: 'Europe/Berlin', 17: 'ACME tracker', 18: '1.1', 19: '2.0' };
const DEVICE_FORMATS = [ContentFormat.TLV, ContentFormat.OMA_JSON, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR];

function deviceTable(): Table {
  const resources = Object.keys(DEVICE).length;
  const multiple = Object.values(DEVICE).filter((value) => typeof value === 'object').length;
  return {
    title: `Device object instance ${DEVICE_PATH}: ${resources} resources (${multiple} multiple-instance) — encode(f, '${DEVICE_PATH}', value) / decode(f, '${DEVICE_PATH}', payload)`,
    rows: [
      jsonRow('JSON.stringify/parse', DEVICE),
      ...DEVICE_FORMATS.flatMap((format) => {
        const row = codecRow(formatLabel(format), () => encode(format, DEVICE_PATH, DEVICE), (payload) => decode(format, DEVICE_PATH, payload), DEVICE);
        return isCborFormat(format) ? withCborx(row, ` (${format})`) : [row];
      }),
    ],
  };
}

// 2. A Send with history: ten timed readings of one temperature sensor.
const READING_PATH = '/3303/0/5700';
const READINGS = Array.from({ length: 10 }, (_, i) => ({
  n: READING_PATH,
  v: Math.round((21.3 + 0.1 * i) * 10) / 10,
  t: 1700000000 + 60 * i,
}));
const READING_RECORDS = READINGS.map(({ n, v, t }) => ({ path: n, value: v, time: t }));

// 3. A composite of ten distinct resources: the same readings from ten sensors, without times.
const COMPOSITE: CompositeValue = Object.fromEntries(READINGS.map(({ v }, i) => [`/3303/${i}/5700`, v]));
const COMPOSITE_FORMATS = [ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR];

function asReadings(records: readonly ResourceRecord[]): Array<{ n: string; v: unknown; t?: number }> {
  return records.map((record) => ({ n: record.path.toString(), v: record.value, t: record.time }));
}

function compositeRow(format: number, extra: Partial<Row> = {}): Row {
  return codecRow(formatLabel(format), () => encodeComposite(format, COMPOSITE), (payload) => decodeComposite(format, payload), COMPOSITE, extra);
}

function recordsTable(): Table {
  const lwm2mCbor = formatLabel(ContentFormat.LWM2M_CBOR);
  return {
    title: `10-record SenML pack: ${READINGS.length} timed readings of ${READING_PATH} (Send with history) — encodeRecords(f, records) / decodeRecords(f, '/', payload)`,
    rows: [
      jsonRow('JSON.stringify/parse', READINGS),
      ...[ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR].flatMap((format) => {
        const row = codecRow(
          formatLabel(format),
          () => encodeRecords(format, READING_RECORDS),
          (payload) => decodeRecords(format, '/', payload),
          READINGS,
          {},
          (decoded) => asReadings(decoded as ResourceRecord[]),
        );
        return isCborFormat(format) ? withCborx(row, ` (${format})`) : [row];
      }),
      jsonRow('JSON.stringify/parse ¹', COMPOSITE, { key: 'composite JSON' }),
      ...withCborx(
        compositeRow(ContentFormat.LWM2M_CBOR, { label: `${lwm2mCbor} ¹`, baseline: 'JSON.stringify/parse ¹', key: `composite ${ContentFormat.LWM2M_CBOR}` }),
        ` (${ContentFormat.LWM2M_CBOR}) ¹`,
        { baseline: 'JSON.stringify/parse ¹', key: `composite ${ContentFormat.LWM2M_CBOR} cbor-x` },
      ),
    ],
    notes: [
      `¹ LwM2M CBOR cannot hold a repeated path or times, so its row is the composite of 10 distinct resources`,
      `  /3303/0..9/5700 (same values, no times) via encodeComposite/decodeComposite, against JSON of that composite`,
      `  (the same measurements as in the composite table below).`,
    ],
  };
}

function compositeTable(): Table {
  return {
    title: `Composite of 10 distinct resources /3303/0..9/5700 — encodeComposite(f, value) / decodeComposite(f, payload)`,
    rows: [
      jsonRow('JSON.stringify/parse', COMPOSITE, { key: 'composite JSON' }),
      ...COMPOSITE_FORMATS.flatMap((format) => {
        const row = compositeRow(format, { key: `composite ${format}` });
        return isCborFormat(format) ? withCborx(row, ` (${format})`, { key: `composite ${format} cbor-x` }) : [row];
      }),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Output

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function microseconds(opsPerSecond: number): string {
  const us = 1e6 / opsPerSecond;
  return us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us.toFixed(2);
}

function ratio(value: number, baseline: number): string {
  const r = value / baseline;
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

function rate(measurement: Measurement): string {
  return `${integer.format(measurement.opsPerSecond)} ±${measurement.spread < 10 ? measurement.spread.toFixed(1) : measurement.spread.toFixed(0)}%`;
}

function printTable(table: Table, results: readonly Result[]): void {
  const byLabel = new Map(results.map((result) => [result.row.label, result]));
  const header = ['format', 'bytes', 'encode ops/s', 'µs/op', 'vs JSON', 'ours÷cbor-x', 'decode ops/s', 'µs/op', 'vs JSON', 'ours÷cbor-x'];
  const lines = results.map(({ row, encode: enc, decode: dec }) => {
    const base = byLabel.get(row.baseline ?? results[0].row.label)!;
    const isBaseline = row.isBaseline === true;
    const peer = row.cborxPeer === undefined ? undefined : byLabel.get(row.cborxPeer)!;
    return [
      row.label,
      String(row.bytes),
      rate(enc),
      microseconds(enc.opsPerSecond),
      isBaseline ? '1 (base)' : ratio(enc.opsPerSecond, base.encode.opsPerSecond),
      peer ? ratio(enc.opsPerSecond, peer.encode.opsPerSecond) : '',
      rate(dec),
      microseconds(dec.opsPerSecond),
      isBaseline ? '1 (base)' : ratio(dec.opsPerSecond, base.decode.opsPerSecond),
      peer ? ratio(dec.opsPerSecond, peer.decode.opsPerSecond) : '',
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column].length)));
  const render = (cells: readonly string[]) =>
    '  ' + cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('   ');
  console.log(`\n${table.title}\n`);
  console.log(render(header));
  console.log(render(widths.map((width) => '-'.repeat(width))));
  for (const line of lines) console.log(render(line));
  for (const note of table.notes ?? []) console.log(`  ${note}`);
}

function main(): void {
  let settings: Settings;
  try {
    settings = readSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }

  // Every case is built (and its round trip checked) before anything is timed.
  const tables = [deviceTable(), recordsTable(), compositeTable()];
  const distinct = new Set(tables.flatMap((table) => table.rows.map((row) => row.key ?? row)));
  const cases = distinct.size * 2;
  const cpus = os.cpus();
  console.log('LwM2M codec throughput');
  console.log(`  node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}`);
  console.log(`  cpu  ${cpus[0]?.model.trim() ?? 'unknown'} × ${cpus.length}, load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}`);
  console.log(`  date ${new Date().toISOString()}`);
  console.log(
    `  ${cases} cases, each ${settings.warmup} s warm-up + ${settings.seconds} s timed (median of ${SLICES} slices, ± = relative sd of the slices); ` +
      `about ${Math.ceil(cases * (settings.warmup + settings.seconds))} s in all`,
  );
  console.log('  vs JSON = ops/s ÷ ops/s of JSON.stringify (encode) or JSON.parse (decode) of the same data in this run; below 1× is slower.');
  console.log('  JSON bytes are those of the UTF-8 string; the codecs return Buffers. Every round trip was checked before timing.');
  console.log(`  cbor-x ${CBORX_VERSION} (native string extraction ${isNativeAccelerationEnabled ? 'on' : 'off'}), plain RFC 8949 options, below each SenML CBOR and LwM2M CBOR row:`);
  console.log('    encode = cbor-x encoding the generic structure of that same document (arrays, integer-keyed Maps, Buffers, Dates);');
  console.log('    decode = cbor-x decoding the very bytes our encoder produced. cbor-x yields only generic Maps and arrays, where ours');
  console.log('    checks the document against the object model and yields typed LwM2M values (paths, ids, integer/float/time types).');
  console.log('    ours÷cbor-x = our ops/s ÷ cbor-x ops/s on that document in this run; below 1× ours is slower. Its bytes column is');
  console.log('    the size cbor-x writes (doubles where ours writes the shortest float).');

  const started = process.hrtime.bigint();
  const measured = new Map<string, Omit<Result, 'row'>>();
  for (const table of tables) {
    const results = table.rows.map((row): Result => {
      const earlier = row.key === undefined ? undefined : measured.get(row.key);
      const { encode: enc, decode: dec } = earlier ?? { encode: measure(row.encode, settings), decode: measure(row.decode, settings) };
      if (row.key !== undefined) measured.set(row.key, { encode: enc, decode: dec });
      return { row, encode: enc, decode: dec };
    });
    printTable(table, results);
  }
  hostileInput();
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`\n  done in ${elapsed.toFixed(1)} s`);
}

/**
 * What a CBOR decoder does with input made to hurt it, the kind a device (or anyone who can send it
 * a datagram) controls: a bignum (tag 2) of n bytes, which cbor-x turns into a BigInt in time that
 * grows with the square of n, and a shared value that refers to itself (tags 28/29), which cbor-x
 * turns into a circular structure that any later JSON.stringify or deep copy of a message loops
 * on. Ours keeps unknown tags as plain tagged values: no arithmetic on the bytes, no references.
 */
function hostileInput(): void {
  const bignum = (bytes: number): Buffer => {
    const header = Buffer.from([0xc2, 0x5a, 0, 0, 0, 0]);
    header.writeUInt32BE(bytes, 2);
    return Buffer.concat([header, Buffer.alloc(bytes, 0xff)]);
  };
  const time = (decode: () => unknown): { ms: number; result: unknown } => {
    const began = performance.now();
    let result: unknown;
    try {
      result = decode();
    } catch (error) {
      result = error;
    }
    return { ms: performance.now() - began, result };
  };
  console.log('\nHostile input: one CBOR item each, decoded once by cbor-x and by our reader (decodeCbor), in ms');
  console.log(`  ${'input'.padEnd(36)}${'cbor-x'.padEnd(30)}ours`);
  for (const bytes of [4_000, 16_000, 64_000]) {
    const input = bignum(bytes);
    const theirs = time(() => cborxDecoder.decode(input));
    const ours = time(() => decodeCbor(input, ContentFormat.SENML_CBOR));
    const what = (result: unknown) => (typeof result === 'bigint' ? 'a BigInt' : result instanceof Error ? 'refused' : 'a tagged value');
    console.log(`  ${`bignum (tag 2) of ${bytes.toLocaleString('en-US')} bytes`.padEnd(36)}${`${theirs.ms.toFixed(1)} ms, ${what(theirs.result)}`.padEnd(30)}${ours.ms.toFixed(2)} ms, ${what(ours.result)}`);
  }
  const circular = Buffer.from([0xd8, 0x1c, 0x81, 0xd8, 0x1d, 0x00]); // 28([29(0)]): an array holding itself
  const theirs = time(() => cborxDecoder.decode(circular));
  const ours = time(() => decodeCbor(circular, ContentFormat.SENML_CBOR));
  const loops = (value: unknown) => Array.isArray(value) && value[0] === value;
  console.log(`  ${'28([29(0)]), 6 bytes'.padEnd(36)}${(loops(theirs.result) ? 'an array that holds itself' : 'no cycle').padEnd(30)}${loops(ours.result) ? 'an array that holds itself' : 'tagged values, no cycle'}`);
}

main();
