/**
 * OMA TLV (11542). Each entry: a type byte (kind in bits 7–6, 16-bit id flag in bit 5, length
 * size in bits 4–3, short length in bits 2–0), the id (1 or 2 bytes), the length (0–3 bytes), the
 * value. Kinds nest: object instance → resources; multiple resource → resource instances.
 */
import type { ResourceLookup } from '../model/model';
import { LwM2MPath } from '../path';
import type { Codec } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { modelType, type DecodedRecords, type FlatValue, type TypedRecord } from './tree';
import { normalizeInteger, type ValueType } from './typing';
import { parseObjectLink, type ResourceRecord, type ResourceValue } from './value';

const FORMAT = ContentFormat.TLV;
const MAX_LENGTH = 0xffffff;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const enum Kind {
  ObjectInstance = 0,
  ResourceInstance = 1,
  MultipleResource = 2,
  Resource = 3,
}
const KIND_NAMES = ['object instance', 'resource instance', 'multiple resource', 'resource'];

export const tlvCodec: Codec = {
  format: FORMAT,
  composite: false,
  encode: encodeTlv,
  decode: decodeTlv,
};

// ---------------------------------------------------------------------------------------------
// Encoding

function encodeTlv(flat: FlatValue, base: LwM2MPath): Buffer {
  if (base.length === 0) throw encodeError('TLV cannot carry the root (it has no object ids); use SenML or LwM2M CBOR', base);
  const records = [...flat.records].sort((a, b) => a.path.compare(b.path));
  const empties = flat.emptyResources;
  const chunks: Buffer[] = [];
  if (base.level === 'object') {
    for (const [instanceId, group] of groupBy(records, empties, 1)) {
      chunks.push(entry(Kind.ObjectInstance, instanceId, resourcesOf(group.records, group.empties)));
    }
  } else if (base.level === 'instance') {
    chunks.push(resourcesOf(records, empties));
  } else if (base.level === 'resource') {
    chunks.push(resourcesOf(records, empties));
  } else {
    const [record] = records;
    if (records.length !== 1 || !record.path.equals(base)) throw encodeError('expected exactly one resource instance value', base);
    chunks.push(entry(Kind.ResourceInstance, base.resourceInstanceId!, valueBytes(record)));
  }
  return Buffer.concat(chunks);
}

/** Resource TLVs (single or multiple) for records of one object instance, in path order. */
function resourcesOf(records: TypedRecord[], empties: readonly LwM2MPath[]): Buffer {
  const chunks: Buffer[] = [];
  for (const [resourceId, group] of groupBy(records, empties, 2)) {
    const multiple = group.empties.length > 0 || group.records.some((record) => record.path.length === 4);
    if (!multiple) {
      chunks.push(entry(Kind.Resource, resourceId, valueBytes(group.records[0])));
      continue;
    }
    const instances = group.records.map((record) => entry(Kind.ResourceInstance, record.path.resourceInstanceId!, valueBytes(record)));
    chunks.push(entry(Kind.MultipleResource, resourceId, Buffer.concat(instances)));
  }
  return Buffer.concat(chunks);
}

interface Group {
  records: TypedRecord[];
  empties: LwM2MPath[];
}

/** Groups sorted records (and empty resources) by their id at `depth` (1: instance, 2: resource). */
function groupBy(records: TypedRecord[], empties: readonly LwM2MPath[], depth: number): Map<number, Group> {
  const groups = new Map<number, Group>();
  const add = (id: number): Group => {
    let group = groups.get(id);
    if (!group) groups.set(id, (group = { records: [], empties: [] }));
    return group;
  };
  for (const record of records) add(record.path.ids[depth]).records.push(record);
  for (const path of empties) add(path.ids[depth]).empties.push(path);
  return new Map([...groups].sort(([a], [b]) => a - b));
}

function entry(kind: Kind, id: number, value: Buffer): Buffer {
  const length = value.length;
  if (length > MAX_LENGTH) throw new ContentFormatError(FORMAT, 'encode', `a value of ${length} bytes exceeds TLV's limit of ${MAX_LENGTH}`);
  const wideId = id > 0xff;
  const lengthSize = length < 8 ? 0 : length <= 0xff ? 1 : length <= 0xffff ? 2 : 3;
  const header = Buffer.alloc(1 + (wideId ? 2 : 1) + lengthSize);
  header[0] = (kind << 6) | (wideId ? 0x20 : 0) | (lengthSize << 3) | (lengthSize === 0 ? length : 0);
  let offset = 1;
  if (wideId) offset = header.writeUInt16BE(id, offset);
  else offset = header.writeUInt8(id, offset);
  if (lengthSize > 0) header.writeUIntBE(length, offset, lengthSize);
  return Buffer.concat([header, value]);
}

function valueBytes(record: TypedRecord): Buffer {
  const value = record.value;
  switch (record.type) {
    case 'String':
    case 'Corelnk':
      return Buffer.from(value as string, 'utf8');
    case 'Opaque':
      return value as Buffer;
    case 'Boolean':
      return Buffer.of(value ? 1 : 0);
    case 'Integer':
    case 'Time':
      return integerBytes(BigInt(value as number | bigint), true);
    case 'Unsigned Integer':
      return integerBytes(BigInt(value as number | bigint), false);
    case 'Float': {
      const number = value as number;
      // 4 bytes when a float32 holds the value exactly (NaN included), else 8
      if (Object.is(Math.fround(number), number) || Number.isNaN(number)) {
        const bytes = Buffer.alloc(4);
        bytes.writeFloatBE(number);
        return bytes;
      }
      const bytes = Buffer.alloc(8);
      bytes.writeDoubleBE(number);
      return bytes;
    }
    case 'Objlnk': {
      const link = parseObjectLink(value as string)!;
      const bytes = Buffer.alloc(4);
      bytes.writeUInt16BE(link.objectId, 0);
      bytes.writeUInt16BE(link.instanceId, 2);
      return bytes;
    }
  }
}

/** Big-endian integer in the fewest of 1, 2, 4 or 8 bytes: two's complement when signed. */
function integerBytes(value: bigint, signed: boolean): Buffer {
  for (const size of [1, 2, 4]) {
    const bits = BigInt(size * 8);
    const fits = signed ? value >= -(1n << (bits - 1n)) && value < 1n << (bits - 1n) : value < 1n << bits;
    if (fits) {
      const bytes = Buffer.alloc(size);
      if (signed) bytes.writeIntBE(Number(value), 0, size);
      else bytes.writeUIntBE(Number(value), 0, size);
      return bytes;
    }
  }
  const bytes = Buffer.alloc(8);
  if (signed) bytes.writeBigInt64BE(value);
  else bytes.writeBigUInt64BE(value);
  return bytes;
}

function encodeError(reason: string, path: LwM2MPath): ContentFormatError {
  return new ContentFormatError(FORMAT, 'encode', reason, path.toString());
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Tlv {
  readonly kind: Kind;
  readonly id: number;
  /** The value bytes (a view into the payload). */
  readonly value: Buffer;
  /** Where the entry starts in the payload, for messages. */
  readonly offset: number;
}

/** Splits a byte range into TLV entries, checking every length against what is left. */
function readEntries(payload: Buffer, start: number, end: number): Tlv[] {
  const entries: Tlv[] = [];
  let offset = start;
  while (offset < end) {
    const entryOffset = offset;
    const type = payload[offset++];
    const idSize = type & 0x20 ? 2 : 1;
    const lengthSize = (type >> 3) & 0x03;
    if (offset + idSize + lengthSize > end) throw decodeError(`the entry at byte ${entryOffset} is cut short in its header`);
    const id = idSize === 2 ? payload.readUInt16BE(offset) : payload[offset];
    offset += idSize;
    const length = lengthSize === 0 ? type & 0x07 : payload.readUIntBE(offset, lengthSize);
    offset += lengthSize;
    if (length > end - offset) {
      throw decodeError(`the entry at byte ${entryOffset} claims ${length} bytes but only ${end - offset} are left`);
    }
    entries.push({ kind: (type >> 6) as Kind, id, value: payload.subarray(offset, offset + length), offset: entryOffset });
    offset += length;
  }
  return entries;
}

function children(tlv: Tlv): Tlv[] {
  return readEntries(tlv.value, 0, tlv.value.length);
}

function decodeTlv(payload: Buffer, base: LwM2MPath, model: ResourceLookup): DecodedRecords {
  if (base.length === 0) throw decodeError('TLV cannot carry the root; read an object or below', base);
  const reader = new TlvReader(model);
  const top = readEntries(payload, 0, payload.length);
  switch (base.level) {
    case 'object':
      for (const tlv of top) {
        expectKind(tlv, [Kind.ObjectInstance], base);
        reader.instance(base.child(tlv.id), children(tlv));
      }
      break;
    case 'instance':
      // the object instance wrapper may be present or left out
      if (top.length === 1 && top[0].kind === Kind.ObjectInstance) {
        expectId(top[0], base.instanceId!, base);
        reader.instance(base, children(top[0]));
      } else reader.instance(base, top);
      break;
    case 'resource': {
      const resources = top.length === 1 && top[0].kind === Kind.ObjectInstance ? (expectId(top[0], base.instanceId!, base), children(top[0])) : top;
      if (resources.length === 0) break; // nothing: an empty multiple resource, or an error nest() reports
      if (resources.every((tlv) => tlv.kind === Kind.ResourceInstance)) {
        reader.resourceInstances(base, resources); // some devices send the instances without the multiple-resource wrapper
      } else {
        if (resources.length !== 1) throw decodeError(`expected one resource entry, found ${resources.length}`, base);
        expectId(resources[0], base.resourceId!, base);
        reader.resource(base.parent(), resources[0]);
      }
      break;
    }
    case 'resourceInstance': {
      let entries = top;
      if (entries.length === 1 && entries[0].kind === Kind.MultipleResource) {
        expectId(entries[0], base.resourceId!, base);
        entries = children(entries[0]);
      }
      if (entries.length !== 1) throw decodeError(`expected one resource instance entry, found ${entries.length}`, base);
      expectKind(entries[0], [Kind.ResourceInstance], base);
      expectId(entries[0], base.resourceInstanceId!, base);
      reader.resourceInstances(base.parent(), entries);
      break;
    }
  }
  return { records: reader.records, emptyResources: reader.emptyResources };
}

class TlvReader {
  readonly records: ResourceRecord[] = [];
  readonly emptyResources: LwM2MPath[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly model: ResourceLookup) {}

  instance(path: LwM2MPath, entries: Tlv[]): void {
    for (const tlv of entries) {
      expectKind(tlv, [Kind.Resource, Kind.MultipleResource], path);
      this.resource(path, tlv);
    }
  }

  resource(instancePath: LwM2MPath, tlv: Tlv): void {
    const path = instancePath.child(tlv.id);
    if (tlv.kind === Kind.Resource) return this.add(path, tlv);
    expectKind(tlv, [Kind.MultipleResource], path);
    const instances = children(tlv);
    if (instances.length === 0) {
      this.emptyResources.push(path);
      this.once(path);
    }
    this.resourceInstances(path, instances);
  }

  resourceInstances(resourcePath: LwM2MPath, entries: Tlv[]): void {
    for (const tlv of entries) {
      expectKind(tlv, [Kind.ResourceInstance], resourcePath);
      this.add(resourcePath.child(tlv.id), tlv);
    }
  }

  private add(path: LwM2MPath, tlv: Tlv): void {
    this.once(path);
    this.records.push({ path, value: readValue(modelType(this.model, path), tlv.value, path) });
  }

  private once(path: LwM2MPath): void {
    const key = path.toString();
    if (this.seen.has(key)) throw decodeError('the payload gives this path twice', path);
    this.seen.add(key);
  }
}

function readValue(type: ValueType | undefined, bytes: Buffer, path: LwM2MPath): ResourceValue {
  const fail = (what: string): never => {
    throw decodeError(`${bytes.length} byte(s) ${bytes.length ? `(${bytes.subarray(0, 8).toString('hex')}${bytes.length > 8 ? '…' : ''}) ` : ''}are not ${what}`, path);
  };
  switch (type) {
    case undefined:
      return Buffer.from(bytes); // unknown resource: raw bytes, copied out of the payload
    case 'Opaque':
      return Buffer.from(bytes);
    case 'String':
    case 'Corelnk':
      try {
        return utf8.decode(bytes);
      } catch {
        return fail('valid UTF-8 text');
      }
    case 'Integer':
    case 'Time':
      if (bytes.length === 8) return normalizeInteger(bytes.readBigInt64BE());
      return bytes.length === 1 || bytes.length === 2 || bytes.length === 4 ? bytes.readIntBE(0, bytes.length) : fail('an Integer (1, 2, 4 or 8 bytes)');
    case 'Unsigned Integer':
      if (bytes.length === 8) return normalizeInteger(bytes.readBigUInt64BE());
      return bytes.length === 1 || bytes.length === 2 || bytes.length === 4 ? bytes.readUIntBE(0, bytes.length) : fail('an Unsigned Integer (1, 2, 4 or 8 bytes)');
    case 'Float':
      return bytes.length === 4 ? bytes.readFloatBE() : bytes.length === 8 ? bytes.readDoubleBE() : fail('a Float (4 or 8 bytes)');
    case 'Boolean':
      return bytes.length === 1 && bytes[0] <= 1 ? bytes[0] === 1 : fail('a Boolean (one byte, 0 or 1)');
    case 'Objlnk':
      return bytes.length === 4 ? `${bytes.readUInt16BE(0)}:${bytes.readUInt16BE(2)}` : fail('an Objlnk (4 bytes)');
  }
}

function expectKind(tlv: Tlv, kinds: Kind[], path: LwM2MPath): void {
  if (!kinds.includes(tlv.kind)) {
    throw decodeError(`found a ${KIND_NAMES[tlv.kind]} entry (id ${tlv.id}, byte ${tlv.offset}) where a ${kinds.map((kind) => KIND_NAMES[kind]).join(' or ')} belongs`, path);
  }
}

function expectId(tlv: Tlv, id: number, path: LwM2MPath): void {
  if (tlv.id !== id) throw decodeError(`found a ${KIND_NAMES[tlv.kind]} entry with id ${tlv.id} where id ${id} was requested`, path);
}

function decodeError(reason: string, path?: LwM2MPath): ContentFormatError {
  return new ContentFormatError(FORMAT, 'decode', reason, path?.toString());
}
