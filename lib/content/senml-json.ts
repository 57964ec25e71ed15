/** SenML JSON (110): a SenML pack as a JSON array; `vd` is base64url without padding. */
import type { ResourceLookup } from '../model/model';
import type { LwM2MPath } from '../path';
import { encodeBase64Url } from './base64';
import type { Codec, DecodeOptions } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { formatJsonNumber, parseJsonPayload } from './json';
import { packRecords, unpackPaths, unpackRecords, valueLabel, type SenmlRecord } from './senml';
import type { DecodedRecords, FlatValue } from './tree';
import type { ValueType } from './typing';
import type { ResourceValue } from './value';

const FORMAT = ContentFormat.SENML_JSON;

export const senmlJsonCodec: Codec = {
  format: FORMAT,
  composite: true,
  encode(flat: FlatValue, base: LwM2MPath): Buffer {
    const parts = packRecords(flat, base).map((out) => {
      let json = '{';
      if (out.bn !== undefined) json += `"bn":${JSON.stringify(out.bn)},`;
      if (out.n !== undefined) json += `"n":${JSON.stringify(out.n)},`;
      if (!out.record) return json.slice(0, -1) + '}'; // an empty object instance: its name only
      json += `"${valueLabel(out.record.type)}":${jsonValue(out.record.type, out.record.value, out.record.path)}`;
      if (out.t !== undefined) json += `,"t":${jsonNumber(out.t, out.record.path)}`;
      return json + '}';
    });
    return Buffer.from(`[${parts.join(',')}]`, 'utf8');
  },
  decode(payload: Buffer, _base: LwM2MPath, model: ResourceLookup, options: DecodeOptions): DecodedRecords {
    return unpackRecords(FORMAT, parseSenmlJson(payload), model, options.now ?? Date.now() / 1000, { finiteOnly: true });
  },
};

/** Parses a SenML JSON pack: an array of objects. */
export function parseSenmlJson(payload: Buffer): SenmlRecord[] {
  let pack: unknown;
  try {
    pack = parseJsonPayload(payload);
  } catch (error) {
    throw new ContentFormatError(FORMAT, 'decode', `not valid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(pack)) throw new ContentFormatError(FORMAT, 'decode', 'a SenML pack must be a JSON array');
  pack.forEach((record, index) => {
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      throw new ContentFormatError(FORMAT, 'decode', `record ${index} is not a JSON object`);
    }
  });
  return pack as SenmlRecord[];
}

/** Reads the paths of a SenML JSON pack (the body of a Read-Composite or Observe-Composite request). */
export function decodeSenmlJsonPaths(payload: Buffer): LwM2MPath[] {
  return unpackPaths(FORMAT, parseSenmlJson(payload));
}

/** Writes a pack naming paths only: `[{"n":"/3/0/9"},{"n":"/1/0"}]`. */
export function encodeSenmlJsonPaths(paths: readonly LwM2MPath[]): Buffer {
  return Buffer.from(`[${paths.map((path) => `{"n":${JSON.stringify(path.toString())}}`).join(',')}]`, 'utf8');
}

function jsonValue(type: ValueType, value: ResourceValue, path: LwM2MPath): string {
  switch (type) {
    case 'Opaque':
      return `"${encodeBase64Url(value as Buffer)}"`;
    case 'Boolean':
      return value ? 'true' : 'false';
    case 'String':
    case 'Corelnk':
    case 'Objlnk':
      return JSON.stringify(value);
    default:
      return jsonNumber(value as number | bigint, path);
  }
}

/** A JSON number, exact for bigints and keeping the sign of -0; NaN and infinities have none. */
function jsonNumber(value: number | bigint, path: LwM2MPath): string {
  const json = formatJsonNumber(value);
  if (json === undefined) throw new ContentFormatError(FORMAT, 'encode', `${value} cannot be written in JSON`, path.toString());
  return json;
}
