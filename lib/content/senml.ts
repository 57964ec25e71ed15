/**
 * SenML (RFC 8428) as LwM2M 1.1+ uses it, independent of JSON or CBOR: records carry a base name
 * and base time forward, names concatenate into LwM2M paths, times below 2^28 are relative to now,
 * and the value field says the kind (v number, vs string, vb boolean, vd bytes, vlo object link).
 */
import type { ResourceLookup } from '../model/model';
import { LwM2MPath } from '../path';
import { decodeBase64 } from './base64';
import { ContentFormatError } from './error';
import { modelType, type DecodedRecords, type FlatValue, type TypedRecord } from './tree';
import { describe, fitValue, normalizeInteger, type ValueType } from './typing';
import { isResourceValue, parseObjectLink, type ResourceRecord, type ResourceValue } from './value';

/** A SenML record with its labels by name, as read from JSON or CBOR (values not yet checked). */
export interface SenmlRecord {
  bn?: unknown;
  bt?: unknown;
  bv?: unknown;
  bver?: unknown;
  n?: unknown;
  t?: unknown;
  v?: unknown;
  vs?: unknown;
  vb?: unknown;
  vd?: unknown;
  vlo?: unknown;
  [label: string]: unknown;
}

/** Times below this are relative to now (RFC 8428 §4.5.3). */
export const RELATIVE_TIME_LIMIT = 2 ** 28;
const VALUE_LABELS = ['v', 'vs', 'vb', 'vd', 'vlo'] as const;

/** One record to write: its name parts and its typed value (none for an empty object instance). */
export interface SenmlOut {
  readonly bn?: string;
  readonly n?: string;
  readonly t?: number;
  readonly record?: TypedRecord;
}

/**
 * Lays typed records out as a pack: below a non-root base, the first record carries the base path
 * as `bn` and every name is relative to it (`bn "/3/0/"`, `n "9"`); from the root (composites),
 * every `n` is a full path. An empty object instance below the base is a record with a name and no
 * value, so that a Create of an instance without resources still names it.
 */
export function packRecords(flat: FlatValue, base: LwM2MPath): SenmlOut[] {
  // (SenML cannot say "a multiple resource with no instances": such a resource is left out)
  const emptyInstances = flat.emptyInstances.filter((path) => path.length > base.length);
  if (base.isRoot()) {
    const out: SenmlOut[] = flat.records.map((record) => ({ n: record.path.toString(), t: record.time, record }));
    for (const path of emptyInstances) out.push({ n: path.toString() });
    return out;
  }
  const prefix = base.toString();
  const out: SenmlOut[] = flat.records.map((record) => {
    const full = record.path.toString();
    if (full === prefix) return { bn: prefix, t: record.time, record }; // a single value: its path is the base name
    return { n: full.slice(prefix.length + 1), t: record.time, record };
  });
  for (const path of emptyInstances) out.push({ n: path.toString().slice(prefix.length + 1) });
  if (out.length > 0 && out[0].bn === undefined) out[0] = { ...out[0], bn: prefix + '/' };
  return out;
}

export interface UnpackOptions {
  /** OMA JSON writes Opaque values as base64 strings where SenML has `vd`. */
  readonly opaqueAsBase64String?: boolean;
  /** JSON has no infinities: a number that reads as one overflowed a double, and is refused. */
  readonly finiteOnly?: boolean;
}

/** Reads a pack into records with full paths and absolute times. */
export function unpackRecords(
  format: number,
  pack: readonly SenmlRecord[],
  model: ResourceLookup,
  now: number,
  options: UnpackOptions = {},
): DecodedRecords {
  const { opaqueAsBase64String = false, finiteOnly = false } = options;
  const records: ResourceRecord[] = [];
  const emptyInstances: LwM2MPath[] = [];
  let baseName = '';
  let baseTime = 0;
  let baseValue = 0;
  pack.forEach((record, index) => {
    const fail = (reason: string): never => {
      throw new ContentFormatError(format, 'decode', `record ${index}: ${reason}`);
    };
    for (const label of Object.keys(record)) {
      if (label.endsWith('_')) fail(`label "${label}" must be understood and is not`);
    }
    if (record.bn !== undefined) baseName = typeof record.bn === 'string' ? record.bn : fail(`bn is ${describe(record.bn)}, not a string`);
    if (record.bt !== undefined) baseTime = finite(record.bt) ?? fail(`bt is ${describe(record.bt)}, not a number`);
    if (record.bv !== undefined) baseValue = finite(record.bv) ?? fail(`bv is ${describe(record.bv)}, not a number`);
    const name = record.n === undefined ? '' : typeof record.n === 'string' ? record.n : fail(`n is ${describe(record.n)}, not a string`);
    const path = parse(baseName + name) ?? fail(`the name "${baseName + name}" is not an LwM2M path`);
    if (path.length === 2 && VALUE_LABELS.every((label) => record[label] === undefined)) {
      emptyInstances.push(path); // an object instance named without resources: it exists, empty
      return;
    }
    if (path.length < 3) fail(`the name ${path} is not a resource or resource instance path`);
    const t = record.t === undefined ? 0 : (finite(record.t) ?? fail(`t is ${describe(record.t)}, not a number`));
    const hasTime = record.t !== undefined || record.bt !== undefined || baseTime !== 0;
    const absolute = baseTime + t;
    const time = hasTime ? (absolute < RELATIVE_TIME_LIMIT ? now + absolute : absolute) : undefined;
    const type = modelType(model, path);
    const adjusted = opaqueAsBase64String && type === 'Opaque' && typeof record.vs === 'string' ? { ...record, vs: undefined, vd: base64(record.vs, fail) } : record;
    const value = readValue(adjusted, type, baseValue, finiteOnly, fail);
    records.push(time === undefined ? { path, value } : { path, value, time });
  });
  return { records, emptyResources: [], emptyInstances };
}

/** The paths a pack names, for Read-Composite and Observe-Composite requests (values, if any, ignored). */
export function unpackPaths(format: number, pack: readonly SenmlRecord[]): LwM2MPath[] {
  let baseName = '';
  return pack.map((record, index) => {
    if (record.bn !== undefined) {
      if (typeof record.bn !== 'string') throw new ContentFormatError(format, 'decode', `record ${index}: bn is not a string`);
      baseName = record.bn;
    }
    if (record.n !== undefined && typeof record.n !== 'string') throw new ContentFormatError(format, 'decode', `record ${index}: n is not a string`);
    const name = baseName + ((record.n as string | undefined) ?? '');
    const path = parse(name);
    if (!path) throw new ContentFormatError(format, 'decode', `record ${index}: the name "${name}" is not an LwM2M path`);
    return path;
  });
}

function readValue(
  record: SenmlRecord,
  type: ValueType | undefined,
  baseValue: number,
  finiteOnly: boolean,
  fail: (reason: string) => never,
): ResourceValue {
  const present = VALUE_LABELS.filter((label) => record[label] !== undefined);
  if (present.length !== 1) fail(present.length === 0 ? 'no value (v, vs, vb, vd or vlo)' : `more than one value (${present.join(', ')})`);
  const label = present[0];
  let raw = record[label];
  if (label === 'v') {
    if (typeof raw !== 'number' && typeof raw !== 'bigint') fail(`v is ${describe(raw)}, not a number`);
    if (finiteOnly && !Number.isFinite(raw)) fail(`v ${raw} is beyond the range of a double`);
    if (baseValue !== 0) raw = Number(raw) + baseValue;
    if (typeof raw === 'bigint') raw = type === 'Float' ? Number(raw) : normalizeInteger(raw);
  } else if (label === 'vs' || label === 'vlo') {
    if (typeof raw !== 'string') fail(`${label} is ${describe(raw)}, not a string`);
  } else if (label === 'vb') {
    if (typeof raw !== 'boolean') fail(`vb is ${describe(raw)}, not a boolean`);
  } else if (label === 'vd') {
    if (typeof raw === 'string') raw = decodeBase64(raw, true) ?? fail('vd is not base64url');
    else if (raw instanceof Uint8Array) raw = Buffer.from(raw); // a copy, never a view into the payload
    else fail(`vd is ${describe(raw)}, not bytes`);
  }
  if (label === 'vlo' && !parseObjectLink(raw as string)) fail(`vlo ${describe(raw)} is not an object link ("3:0")`);
  if (type === undefined) return raw as ResourceValue; // unknown resource: the field says what it is
  if (!fieldFits(label, type)) fail(`the resource is ${type}, which SenML does not carry in "${label}"`);
  const fitted = fitValue(type, raw);
  return isResourceValue(fitted) ? fitted : fail(fitted.problem);
}

function fieldFits(label: (typeof VALUE_LABELS)[number], type: ValueType): boolean {
  switch (type) {
    case 'Integer':
    case 'Unsigned Integer':
    case 'Float':
    case 'Time':
      return label === 'v';
    case 'Boolean':
      return label === 'vb';
    case 'Opaque':
      return label === 'vd';
    case 'Objlnk':
      return label === 'vlo' || label === 'vs'; // some 1.1 devices send object links as strings
    case 'String':
    case 'Corelnk':
      return label === 'vs';
  }
}

/** The SenML field a resource type is written in. */
export function valueLabel(type: ValueType): 'v' | 'vs' | 'vb' | 'vd' | 'vlo' {
  switch (type) {
    case 'Boolean':
      return 'vb';
    case 'Opaque':
      return 'vd';
    case 'Objlnk':
      return 'vlo';
    case 'String':
    case 'Corelnk':
      return 'vs';
    default:
      return 'v';
  }
}

function base64(text: string, fail: (reason: string) => never): Buffer {
  return decodeBase64(text, false) ?? fail('the Opaque value is not base64');
}

function finite(value: unknown): number | undefined {
  if (typeof value === 'bigint') return Number(value);
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function parse(text: string): LwM2MPath | undefined {
  try {
    return LwM2MPath.parse(text);
  } catch {
    return undefined;
  }
}
