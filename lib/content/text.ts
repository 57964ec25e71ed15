/**
 * text/plain (0): one resource or resource-instance value as UTF-8 text. Numbers in decimal,
 * Boolean as "0"/"1", Objlnk as "3:0", Opaque in base64 (LwM2M 1.1+).
 */
import type { ResourceLookup } from '../model/model';
import type { LwM2MPath } from '../path';
import { decodeBase64 } from './base64';
import type { Codec } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { modelType, type DecodedRecords, type FlatValue } from './tree';
import { INT64_MAX, INT64_MIN, normalizeInteger, UINT64_MAX, type ValueType } from './typing';
import { parseObjectLink, type ResourceValue } from './value';

const FORMAT = ContentFormat.TEXT;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const DECIMAL = /^-?(?:0|[1-9][0-9]*)$/;
const FLOAT = /^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;

export const textCodec: Codec = {
  format: FORMAT,
  composite: false,
  encode(flat: FlatValue, base: LwM2MPath): Buffer {
    const [record] = flat.records;
    if (flat.records.length !== 1 || flat.emptyResources.length > 0 || flat.emptyInstances.length > 0 || !record.path.equals(base)) {
      throw new ContentFormatError(FORMAT, 'encode', 'text/plain carries exactly one resource (instance) value', base.toString());
    }
    return Buffer.from(valueToText(record.type, record.value, base), 'utf8');
  },
  decode(payload: Buffer, base: LwM2MPath, model: ResourceLookup): DecodedRecords {
    if (base.length < 3) throw new ContentFormatError(FORMAT, 'decode', 'text/plain carries a single resource value, not an object or instance', base.toString());
    let text: string;
    try {
      text = utf8.decode(payload);
    } catch {
      throw new ContentFormatError(FORMAT, 'decode', 'the payload is not valid UTF-8', base.toString());
    }
    const value = textToValue(modelType(model, base), text, base);
    return { records: [{ path: base, value }], emptyResources: [] };
  },
};

export function valueToText(type: ValueType, value: ResourceValue, path: LwM2MPath): string {
  switch (type) {
    case 'Boolean':
      return value ? '1' : '0';
    case 'Opaque':
      return (value as Buffer).toString('base64');
    case 'Float': {
      const number = value as number;
      if (!Number.isFinite(number)) throw new ContentFormatError(FORMAT, 'encode', `${number} has no text/plain form`, path.toString());
      return Object.is(number, -0) ? '-0.0' : String(number);
    }
    default:
      return String(value);
  }
}

/** Reads the text of one value as `type` (a String when the model does not know the resource). */
export function textToValue(type: ValueType | undefined, text: string, path: LwM2MPath): ResourceValue {
  const fail = (what: string): never => {
    throw new ContentFormatError(FORMAT, 'decode', `${JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text)} is not ${what}`, path.toString());
  };
  switch (type) {
    case undefined:
    case 'String':
    case 'Corelnk':
      return text;
    case 'Integer':
    case 'Time':
      return readInteger(text, INT64_MIN, INT64_MAX) ?? fail(`a${type === 'Time' ? ' Time' : 'n Integer'} (decimal, 64-bit signed)`);
    case 'Unsigned Integer':
      return readInteger(text, 0n, UINT64_MAX) ?? fail('an Unsigned Integer (decimal, 0..2^64-1)');
    case 'Float':
      if (!FLOAT.test(text)) return fail('a Float (decimal number)');
      return Number.isFinite(Number(text)) ? Number(text) : fail('a Float within the range of a double');
    case 'Boolean':
      return text === '1' ? true : text === '0' ? false : fail('a Boolean ("0" or "1")');
    case 'Objlnk':
      return parseObjectLink(text) ? text : fail('an Objlnk ("<object id>:<instance id>")');
    case 'Opaque':
      return decodeBase64(text, false) ?? fail('Opaque in base64');
  }
}

function readInteger(text: string, min: bigint, max: bigint): number | bigint | undefined {
  if (text.length > 21 || !DECIMAL.test(text)) return undefined;
  const value = BigInt(text);
  return value < min || value > max ? undefined : normalizeInteger(value);
}
