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
import { packRecords, unpackRecords, type SenmlRecord } from './senml';
import type { DecodedRecords, FlatValue } from './tree';
import { describe, type ValueType } from './typing';
import type { ResourceValue } from './value';

const FORMAT = ContentFormat.OMA_JSON;
const ENTRY_LABELS: Readonly<Record<string, string>> = { n: 'n', t: 't', v: 'v', sv: 'vs', bv: 'vb', ov: 'vlo' };

export const omaJsonCodec: Codec = {
  format: FORMAT,
  composite: false,
  encode(flat: FlatValue, base: LwM2MPath): Buffer {
    const pack = packRecords(flat, base);
    const baseName = pack.length > 0 && pack[0].bn !== undefined ? pack[0].bn : base.isRoot() ? undefined : base.toString() + '/';
    const entries = pack.map((out) => {
      let json = '{';
      if (out.n !== undefined) json += `"n":${JSON.stringify(out.n)},`;
      json += valuePair(out.record.type, out.record.value, out.record.path);
      if (out.t !== undefined) json += `,"t":${number(out.t, out.record.path)}`;
      return json + '}';
    });
    return Buffer.from(`{${baseName !== undefined ? `"bn":${JSON.stringify(baseName)},` : ''}"e":[${entries.join(',')}]}`, 'utf8');
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
