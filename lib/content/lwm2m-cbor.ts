/**
 * LwM2M CBOR (11544, LwM2M 1.2): nested CBOR maps keyed by path ids from the object id down,
 * `{3: {0: {9: 95}}}`. A key may also be an array of several ids (`{[3, 0]: {9: 95}}`), mixed
 * freely with single ids. Values: integers, floats, booleans, text (String, Corelnk, Objlnk as
 * "3:0"), byte strings (Opaque), and Time as an epoch-seconds date (tag 1).
 *
 * Paths are absolute from the object id; a Write or Create payload may be written relative to
 * the request path instead, which the decoder accepts when the absolute reading falls outside it.
 */
import type { ResourceLookup } from '../model/model';
import { LwM2MPath, MAX_ID } from '../path';
import { CborTag, decodeCbor, type CborItem } from './cbor-reader';
import { CborWriter, writeResourceValue } from './cbor-writer';
import type { Codec } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { modelType, type DecodedRecords, type FlatValue, type TypedRecord } from './tree';
import { describe, fitValue, normalizeInteger, type ValueType } from './typing';
import { isResourceValue, parseObjectLink, type ResourceRecord, type ResourceValue } from './value';

const FORMAT = ContentFormat.LWM2M_CBOR;

export const lwm2mCborCodec: Codec = {
  format: FORMAT,
  composite: true,
  encode: encodeLwm2mCbor,
  decode: decodeLwm2mCbor,
};

// ---------------------------------------------------------------------------------------------
// Encoding

/** A level of the nested map: child ids to deeper levels or to leaf records. */
type Level = Map<number, Level | TypedRecord>;

function encodeLwm2mCbor(flat: FlatValue): Buffer {
  const root: Level = new Map();
  const levelAt = (ids: readonly number[], path: LwM2MPath): Level => {
    let level = root;
    for (const id of ids) {
      let next = level.get(id);
      if (next === undefined) level.set(id, (next = new Map()));
      if (!(next instanceof Map)) throw new ContentFormatError(FORMAT, 'encode', 'the resource is given both as a single value and with instances', path.toString());
      level = next;
    }
    return level;
  };
  for (const path of flat.emptyResources) levelAt(path.ids, path);
  for (const path of flat.emptyInstances) levelAt(path.ids, path);
  for (const record of flat.records) {
    const ids = record.path.ids;
    const parent = levelAt(ids.slice(0, -1), record.path);
    if (parent.has(ids[ids.length - 1])) throw new ContentFormatError(FORMAT, 'encode', 'the value is given twice', record.path.toString());
    parent.set(ids[ids.length - 1], record);
  }
  const writer = new CborWriter();
  writeLevel(writer, root);
  return writer.toBuffer();
}

function writeLevel(writer: CborWriter, level: Level): void {
  writer.map(level.size);
  for (const id of [...level.keys()].sort((a, b) => a - b)) {
    writer.integer(id);
    const child = level.get(id)!;
    if (child instanceof Map) writeLevel(writer, child);
    else writeResourceValue(writer, child.type, child.value, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Leaf {
  readonly ids: number[];
  readonly item: CborItem;
}

function decodeLwm2mCbor(payload: Buffer, base: LwM2MPath, model: ResourceLookup): DecodedRecords {
  const root = decodeCbor(payload, FORMAT);
  if (!(root instanceof Map)) throw new ContentFormatError(FORMAT, 'decode', `the payload must be a CBOR map, not ${describe(root)}`);
  const leaves: Leaf[] = [];
  const emptyMaps: number[][] = [];
  collect(root, [], leaves, emptyMaps);

  // absolute paths unless that puts a value outside the request path, then relative to it
  const idLists = [...leaves.map((leaf) => leaf.ids), ...emptyMaps];
  let paths = idLists.map((ids) => LwM2MPath.of(...ids));
  if (base.length > 0 && !paths.every((path) => base.contains(path))) {
    paths = idLists.map((ids) => {
      const full = [...base.ids, ...ids];
      if (full.length > 4) throw new ContentFormatError(FORMAT, 'decode', `the path /${full.join('/')} has more than 4 ids`);
      return LwM2MPath.of(...full);
    });
  }

  const records: ResourceRecord[] = [];
  const emptyResources = paths.slice(leaves.length).filter((path) => path.length === 3);
  const emptyInstances = paths.slice(leaves.length).filter((path) => path.length === 2);
  const seen = new Set<string>();
  for (const [index, leaf] of leaves.entries()) {
    const path = paths[index];
    if (path.length < 3) throw new ContentFormatError(FORMAT, 'decode', `a value sits at ${path}, which is not a resource or resource instance path`);
    const key = path.toString();
    if (seen.has(key)) throw new ContentFormatError(FORMAT, 'decode', 'the payload gives this path twice', key);
    seen.add(key);
    records.push({ path, value: readValue(leaf.item, modelType(model, path), path) });
  }
  return { records, emptyResources, emptyInstances, unique: true };
}

/** Walks the nested maps, joining key ids into paths (at most 4 ids deep). */
function collect(level: Map<CborItem, CborItem>, prefix: number[], leaves: Leaf[], emptyMaps: number[][]): void {
  if (level.size === 0 && prefix.length > 0) emptyMaps.push(prefix);
  for (const [key, item] of level) {
    const ids = [...prefix, ...keyIds(key, prefix)];
    if (ids.length > 4) throw new ContentFormatError(FORMAT, 'decode', `the path /${ids.join('/')} has more than 4 ids`);
    if (item instanceof Map) collect(item, ids, leaves, emptyMaps);
    else leaves.push({ ids, item });
  }
}

function keyIds(key: CborItem, prefix: number[]): number[] {
  const ids = Array.isArray(key) ? key : [key];
  if (ids.length === 0) throw new ContentFormatError(FORMAT, 'decode', `an empty array key below /${prefix.join('/')}`);
  return ids.map((id) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
      throw new ContentFormatError(FORMAT, 'decode', `key ${describe(id)} below /${prefix.join('/')} is not an id (0..${MAX_ID})`);
    }
    return id;
  });
}

function readValue(item: CborItem, type: ValueType | undefined, path: LwM2MPath): ResourceValue {
  const fail = (reason: string): never => {
    throw new ContentFormatError(FORMAT, 'decode', reason, path.toString());
  };
  let value: unknown = item;
  if (item instanceof CborTag) value = untag(item, type, fail);
  if (value === null || value === undefined) fail('null values are not supported');
  if (Array.isArray(value) || value instanceof Map) fail(`${Array.isArray(value) ? 'an array' : 'a map'} is not a resource value`);
  if (typeof value === 'bigint') value = type === 'Float' ? Number(value) : normalizeInteger(value);
  if (type === undefined) {
    return isResourceValue(value) ? value : fail(`${describe(value)} is not a resource value`);
  }
  if (type === 'Objlnk' && (typeof value !== 'string' || !parseObjectLink(value))) fail(`${describe(value)} is not an Objlnk ("3:0")`);
  const fitted = fitValue(type, value);
  return isResourceValue(fitted) ? fitted : fail(fitted.problem);
}

/**
 * The tags a value may carry: 1 (epoch seconds) and 0 (RFC 3339 text) for a Time, 4 (decimal
 * fraction) for a number. Anything else is refused.
 */
function untag(item: CborTag, type: ValueType | undefined, fail: (reason: string) => never): unknown {
  const { tag, value } = item;
  if (tag === 1 || tag === 0) {
    if (type !== undefined && type !== 'Time') fail(`the resource is ${type}, not a Time, yet the value is a date/time (tag ${tag})`);
    if (tag === 1) {
      if (typeof value === 'number' || typeof value === 'bigint') return typeof value === 'number' ? Math.floor(value) : value;
      return fail(`tag 1 holds ${describe(value)}, not seconds`);
    }
    const time = typeof value === 'string' ? Date.parse(value) : NaN;
    return Number.isNaN(time) ? fail(`tag 0 holds ${describe(value)}, not an RFC 3339 date/time`) : Math.floor(time / 1000);
  }
  if (tag === 4 && Array.isArray(value) && value.length === 2 && Number.isInteger(value[0]) && (typeof value[1] === 'number' || typeof value[1] === 'bigint')) {
    const number = Number(`${value[1]}e${value[0]}`); // mantissa × 10^exponent, read exactly as decimal text
    return Number.isFinite(number) ? number : fail('the decimal fraction is out of range');
  }
  return fail(`CBOR tag ${tag} is not a value LwM2M CBOR carries`);
}

