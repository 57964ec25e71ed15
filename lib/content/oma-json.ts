/**
 * OMA JSON (11543), the LwM2M 1.0 JSON format: `{"bn":"/3/0/","e":[{"n":"0","sv":"..."}]}` with
 * `v` (number), `sv` (string; Opaque in base64), `bv` (boolean), `ov` (object link), `t` (time).
 * Read through the SenML rules it was drafted from.
 */
import type { ResourceLookup } from '../model/model';
import type { LwM2MPath } from '../path';
import type { Codec, DecodeOptions } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { formatJsonNumber, parseJsonPayload } from './json';
import { unpackRecords, type SenmlRecord } from './senml';
import type { DecodedRecords, FlatValue } from './tree';
import { describe, type ValueType } from './typing';
import type { ResourceValue } from './value';

const FORMAT = ContentFormat.OMA_JSON;
const ENTRY_LABELS: Readonly<Record<string, string>> = { n: 'n', t: 't', v: 'v', sv: 'vs', bv: 'vb', ov: 'vlo' };

export const omaJsonCodec: Codec = {
  format: FORMAT,
  composite: false,
  encode(flat: FlatValue, base: LwM2MPath): Buffer {
    // The base name goes down to the object instance at most ("bn":"/3/0/", "n":"14"): that is how
    // 1.0 clients write it themselves, and strict ones refuse a resource path as the base name.
    const prefix = base.isRoot() ? '' : `/${base.ids.slice(0, 2).join('/')}/`;
    const entries = flat.records.map((record) => {
      let json = `{"n":${JSON.stringify(record.path.toString().slice(prefix.length))},`;
      json += valuePair(record.type, record.value, record.path);
      if (record.time !== undefined) json += `,"t":${number(record.time, record.path)}`;
      return json + '}';
    });
    // an empty object instance below the base is named without a value, so a Create still names it
    for (const path of flat.emptyInstances) if (path.length > base.length) entries.push(`{"n":${JSON.stringify(path.toString().slice(prefix.length))}}`);
    return Buffer.from(`{${prefix ? `"bn":${JSON.stringify(prefix)},` : ''}"e":[${entries.join(',')}]}`, 'utf8');
  },
  decode(payload: Buffer, _base: LwM2MPath, model: ResourceLookup, options: DecodeOptions): DecodedRecords {
    return unpackRecords(FORMAT, toSenml(payload), model, options.now ?? Date.now() / 1000, { opaqueAsBase64String: true, finiteOnly: true });
  },
};

/** Rewrites the document as a SenML pack: the base name and time go on the first record. */
function toSenml(payload: Buffer): SenmlRecord[] {
  let document: unknown;
  try {
    document = parseJsonPayload(payload);
  } catch (error) {
    throw new ContentFormatError(FORMAT, 'decode', `not valid JSON (${(error as Error).message})`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new ContentFormatError(FORMAT, 'decode', 'an OMA JSON document must be a JSON object');
  }
  const { bn, bt, e } = document as Record<string, unknown>;
  if (!Array.isArray(e)) throw new ContentFormatError(FORMAT, 'decode', `"e" must be an array of entries, not ${describe(e)}`);
  return e.map((entry, index) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ContentFormatError(FORMAT, 'decode', `entry ${index} is not a JSON object`);
    }
    const record: SenmlRecord = index === 0 ? { bn: bn ?? '', bt } : {};
    for (const [label, value] of Object.entries(entry as Record<string, unknown>)) {
      const senml = ENTRY_LABELS[label];
      if (senml) record[senml] = value;
    }
    return record;
  });
}

function valuePair(type: ValueType, value: ResourceValue, path: LwM2MPath): string {
  switch (type) {
    case 'Boolean':
      return `"bv":${value ? 'true' : 'false'}`;
    case 'Objlnk':
      return `"ov":${JSON.stringify(value)}`;
    case 'Opaque':
      return `"sv":"${(value as Buffer).toString('base64')}"`;
    case 'String':
    case 'Corelnk':
      return `"sv":${JSON.stringify(value)}`;
    default:
      return `"v":${number(value as number | bigint, path)}`;
  }
}

function number(value: number | bigint, path: LwM2MPath): string {
  const json = formatJsonNumber(value);
  if (json === undefined) throw new ContentFormatError(FORMAT, 'encode', `${value} cannot be written in JSON`, path.toString());
  return json;
}
