/** SenML CBOR (112): a SenML pack as a CBOR array of maps with the integer labels of RFC 8428. */
import type { ResourceLookup } from '../model/model';
import type { LwM2MPath } from '../path';
import { decodeCbor, type CborItem } from './cbor-reader';
import { CborWriter, writeResourceValue } from './cbor-writer';
import type { Codec, DecodeOptions } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { packRecords, unpackPaths, unpackRecords, valueLabel, type SenmlRecord } from './senml';
import type { DecodedRecords, FlatValue, TypedRecord } from './tree';

const FORMAT = ContentFormat.SENML_CBOR;

/** RFC 8428 §6 labels; LwM2M's `vlo` has no number and goes as the text "vlo". */
const LABEL_NAMES: ReadonlyMap<number, string> = new Map([
  [-1, 'bver'], [-2, 'bn'], [-3, 'bt'], [-4, 'bu'], [-5, 'bv'], [-6, 'bs'],
  [0, 'n'], [1, 'u'], [2, 'v'], [3, 'vs'], [4, 'vb'], [5, 's'], [6, 't'], [7, 'ut'], [8, 'vd'],
]);
const LABEL = { bn: -2, n: 0, t: 6, v: 2, vs: 3, vb: 4, vd: 8 } as const;

export const senmlCborCodec: Codec = {
  format: FORMAT,
  composite: true,
  encode(flat: FlatValue, base: LwM2MPath): Buffer {
    const pack = packRecords(flat, base);
    const writer = new CborWriter().array(pack.length);
    for (const out of pack) {
      writer.map((out.bn !== undefined ? 1 : 0) + (out.n !== undefined ? 1 : 0) + (out.t !== undefined ? 1 : 0) + (out.record ? 1 : 0));
      if (out.bn !== undefined) writer.integer(LABEL.bn).text(out.bn);
      if (out.n !== undefined) writer.integer(LABEL.n).text(out.n);
      if (out.record) writeValue(writer, out.record); // none: an empty object instance, named only
      if (out.t !== undefined) writer.integer(LABEL.t)[Number.isInteger(out.t) ? 'integer' : 'float'](out.t);
    }
    return writer.toBuffer();
  },
  decode(payload: Buffer, _base: LwM2MPath, model: ResourceLookup, options: DecodeOptions): DecodedRecords {
    return unpackRecords(FORMAT, readPack(payload), model, options.now ?? Date.now() / 1000);
  },
};

function writeValue(writer: CborWriter, record: TypedRecord): void {
  const label = valueLabel(record.type);
  if (label === 'vlo') writer.text('vlo');
  else writer.integer(LABEL[label]);
  writeResourceValue(writer, record.type, record.value, false);
}

/** Reads a SenML CBOR pack into records keyed by label name. */
function readPack(payload: Buffer): SenmlRecord[] {
  const item = decodeCbor(payload, FORMAT);
  if (!Array.isArray(item)) throw new ContentFormatError(FORMAT, 'decode', 'a SenML pack must be a CBOR array');
  return item.map((entry, index) => {
    if (!(entry instanceof Map)) throw new ContentFormatError(FORMAT, 'decode', `record ${index} is not a CBOR map`);
    const record: SenmlRecord = {};
    for (const [key, value] of entry as Map<CborItem, CborItem>) {
      const name = typeof key === 'number' ? LABEL_NAMES.get(key) : typeof key === 'string' ? key : undefined;
      if (name === undefined) {
        if (typeof key === 'number') continue; // a label this version does not know: ignore, as RFC 8428 says
        throw new ContentFormatError(FORMAT, 'decode', `record ${index} has a label that is neither a number nor a text`);
      }
      record[name] = value;
    }
    return record;
  });
}

export function decodeSenmlCborPaths(payload: Buffer): LwM2MPath[] {
  return unpackPaths(FORMAT, readPack(payload));
}

export function encodeSenmlCborPaths(paths: readonly LwM2MPath[]): Buffer {
  const writer = new CborWriter().array(paths.length);
  for (const path of paths) writer.map(1).integer(LABEL.n).text(path.toString());
  return writer.toBuffer();
}
