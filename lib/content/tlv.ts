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
// Encoding: build the entry tree with every size known, then write it into one buffer.

interface Entry {
  readonly kind: Kind;
  readonly id: number;
  /** Length of the value part: the value bytes, or the entries inside. */
  size: number;
  readonly record?: TypedRecord;
  readonly children?: Entry[];
}

function encodeTlv(flat: FlatValue, base: LwM2MPath): Buffer {
  if (base.length === 0) throw encodeError('TLV cannot carry the root (it has no object ids); use SenML or LwM2M CBOR', base);
  const records = [...flat.records].sort((a, b) => a.path.compare(b.path));
  let top: Entry[];
  if (base.level === 'object') {
    const byInstance = new Map<number, { records: TypedRecord[]; empties: LwM2MPath[] }>();
    const groupOf = (id: number) => {
      let group = byInstance.get(id);
      if (!group) byInstance.set(id, (group = { records: [], empties: [] }));
      return group;
    };
    for (const record of records) groupOf(record.path.ids[1]).records.push(record);
    for (const path of flat.emptyResources) groupOf(path.ids[1]).empties.push(path);
    for (const path of flat.emptyInstances) groupOf(path.instanceId!); // an instance header with nothing inside
    top = [...byInstance.keys()].sort((a, b) => a - b).map((id) => container(Kind.ObjectInstance, id, resourceEntries(byInstance.get(id)!.records, byInstance.get(id)!.empties)));
  } else if (base.level === 'resourceInstance') {
    const [record] = records;
    if (records.length !== 1 || !record.path.equals(base)) throw encodeError('expected exactly one resource instance value', base);
    top = [leaf(Kind.ResourceInstance, base.resourceInstanceId!, record)];
  } else {
    top = resourceEntries(records, flat.emptyResources);
  }
  const output = Buffer.allocUnsafe(top.reduce((total, entry) => total + entrySize(entry), 0));
  let offset = 0;
  for (const entry of top) offset = writeEntry(output, offset, entry);
  return output;
}

/** Resource entries (single or multiple) for the sorted records of one object instance. */
function resourceEntries(records: TypedRecord[], empties: readonly LwM2MPath[]): Entry[] {
  const entries: Entry[] = [];
  for (const record of records) {
    const ids = record.path.ids;
    if (ids.length === 3) {
      entries.push(leaf(Kind.Resource, ids[2], record));
      continue;
    }
    // a resource instance: join the multiple resource entry just made for it, or start one
    const last = entries[entries.length - 1];
    const instance = leaf(Kind.ResourceInstance, ids[3], record);
    if (last?.kind === Kind.MultipleResource && last.id === ids[2]) {
      last.children!.push(instance);
      last.size += entrySize(instance);
    } else entries.push(container(Kind.MultipleResource, ids[2], [instance]));
  }
  if (empties.length === 0) return entries;
  for (const path of empties) entries.push(container(Kind.MultipleResource, path.resourceId!, []));
  return entries.sort((a, b) => a.id - b.id);
}

function leaf(kind: Kind, id: number, record: TypedRecord): Entry {
  return { kind, id, size: valueSize(record), record };
}

function container(kind: Kind, id: number, children: Entry[]): Entry {
  return { kind, id, size: children.reduce((total, child) => total + entrySize(child), 0), children };
}

function lengthFieldSize(length: number): number {
  return length < 8 ? 0 : length <= 0xff ? 1 : length <= 0xffff ? 2 : 3;
}

function entrySize(entry: Entry): number {
  if (entry.size > MAX_LENGTH) throw new ContentFormatError(FORMAT, 'encode', `a value of ${entry.size} bytes exceeds TLV's limit of ${MAX_LENGTH}`);
  return 1 + (entry.id > 0xff ? 2 : 1) + lengthFieldSize(entry.size) + entry.size;
}

function writeEntry(output: Buffer, offset: number, entry: Entry): number {
  const { size, id } = entry;
  const lengthSize = lengthFieldSize(size);
  output[offset++] = (entry.kind << 6) | (id > 0xff ? 0x20 : 0) | (lengthSize << 3) | (lengthSize === 0 ? size : 0);
  offset = id > 0xff ? output.writeUInt16BE(id, offset) : output.writeUInt8(id, offset);
  if (lengthSize > 0) offset = output.writeUIntBE(size, offset, lengthSize);
  if (entry.children) {
    for (const child of entry.children) offset = writeEntry(output, offset, child);
    return offset;
  }
  return writeValue(output, offset, entry.record!, size);
}

function valueSize(record: TypedRecord): number {
  const value = record.value;
  switch (record.type) {
    case 'String':
    case 'Corelnk':
      return Buffer.byteLength(value as string, 'utf8');
    case 'Opaque':
      return (value as Buffer).length;
    case 'Boolean':
      return 1;
    case 'Objlnk':
      return 4;
    case 'Float':
      // 4 bytes when a float32 holds the value exactly (NaN included), else 8
      return Object.is(Math.fround(value as number), value) || Number.isNaN(value) ? 4 : 8;
    case 'Integer':
    case 'Time':
      return integerSize(value as number | bigint, true);
    case 'Unsigned Integer':
      return integerSize(value as number | bigint, false);
  }
}

/** The fewest of 1, 2, 4 or 8 bytes that hold the integer (two's complement when signed). */
function integerSize(value: number | bigint, signed: boolean): number {
  for (const size of [1, 2, 4]) {
    const bits = size * 8;
    const fits = signed ? value >= -(2 ** (bits - 1)) && value < 2 ** (bits - 1) : value < 2 ** bits;
    if (fits) return size;
  }
  return 8;
}

function writeValue(output: Buffer, offset: number, record: TypedRecord, size: number): number {
  const value = record.value;
  switch (record.type) {
    case 'String':
    case 'Corelnk':
      return offset + output.write(value as string, offset, 'utf8');
    case 'Opaque':
      return offset + (value as Buffer).copy(output, offset);
    case 'Boolean':
      return output.writeUInt8(value ? 1 : 0, offset);
    case 'Float':
      return size === 4 ? output.writeFloatBE(value as number, offset) : output.writeDoubleBE(value as number, offset);
    case 'Objlnk': {
      const link = parseObjectLink(value as string)!;
      offset = output.writeUInt16BE(link.objectId, offset);
      return output.writeUInt16BE(link.instanceId, offset);
    }
    case 'Integer':
    case 'Time':
      if (size === 8) return output.writeBigInt64BE(BigInt(value as number | bigint), offset);
      return output.writeIntBE(Number(value), offset, size);
    case 'Unsigned Integer':
      if (size === 8) return output.writeBigUInt64BE(BigInt(value as number | bigint), offset);
      return output.writeUIntBE(Number(value), offset, size);
  }
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
        reader.objectInstance(base.child(tlv.id), children(tlv));
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
  return { records: reader.records, emptyResources: reader.emptyResources, emptyInstances: reader.emptyInstances, unique: true };
}

class TlvReader {
  readonly records: ResourceRecord[] = [];
  readonly emptyResources: LwM2MPath[] = [];
  readonly emptyInstances: LwM2MPath[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly model: ResourceLookup) {}

  /** An instance entry of an object-level payload: it exists even with no resource inside. */
  objectInstance(path: LwM2MPath, entries: Tlv[]): void {
    this.once(path);
    if (entries.length === 0) this.emptyInstances.push(path);
    this.instance(path, entries);
  }

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

// ---------------------------------------------------------------------------------------------
// The entry tree without a model or a base path: what a CoAP trace shows of a TLV payload

export interface TlvEntryView {
  kind: 'object instance' | 'resource instance' | 'multiple resource' | 'resource';
  id: number;
  /** a leaf's value bytes (a view into the payload) */
  value?: Buffer;
  /** a container's entries */
  entries?: TlvEntryView[];
}

/** The entries of a TLV payload as a tree (containers opened, three levels at most); a malformed payload is a ContentFormatError. */
export function readTlvTree(payload: Buffer, depth = 0): TlvEntryView[] {
  return readEntries(payload, 0, payload.length).map((tlv) => {
    const container = tlv.kind === Kind.ObjectInstance || tlv.kind === Kind.MultipleResource;
    return container && depth < 2
      ? { kind: KIND_NAMES[tlv.kind] as TlvEntryView['kind'], id: tlv.id, entries: readTlvTree(tlv.value, depth + 1) }
      : { kind: KIND_NAMES[tlv.kind] as TlvEntryView['kind'], id: tlv.id, value: tlv.value };
  });
}
