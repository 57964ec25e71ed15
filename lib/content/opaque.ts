/** application/octet-stream (42): the raw bytes of one Opaque resource (instance). */
import type { ResourceLookup } from '../model/model';
import type { LwM2MPath } from '../path';
import type { Codec } from './codec';
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';
import { modelType, type DecodedRecords, type FlatValue } from './tree';

const FORMAT = ContentFormat.OPAQUE;

export const opaqueCodec: Codec = {
  format: FORMAT,
  composite: false,
  encode(flat: FlatValue, base: LwM2MPath): Buffer {
    const [record] = flat.records;
    if (flat.records.length !== 1 || flat.emptyResources.length > 0 || flat.emptyInstances.length > 0 || !record.path.equals(base)) {
      throw new ContentFormatError(FORMAT, 'encode', 'opaque carries exactly one resource (instance) value', base.toString());
    }
    if (record.type !== 'Opaque') {
      throw new ContentFormatError(FORMAT, 'encode', `opaque carries only Opaque values, and this one is ${record.type}`, base.toString());
    }
    return record.value as Buffer;
  },
  decode(payload: Buffer, base: LwM2MPath, model: ResourceLookup): DecodedRecords {
    if (base.length < 3) throw new ContentFormatError(FORMAT, 'decode', 'opaque carries a single resource value, not an object or instance', base.toString());
    const type = modelType(model, base);
    if (type !== undefined && type !== 'Opaque') {
      throw new ContentFormatError(FORMAT, 'decode', `the resource is ${type}; opaque carries only Opaque values`, base.toString());
    }
    return { records: [{ path: base, value: Buffer.from(payload) }], emptyResources: [] };
  },
};
