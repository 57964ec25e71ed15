/** The shape every data-format codec has, so `encode`/`decode` can look codecs up by number. */
import type { ResourceLookup } from '../model/model';
import type { LwM2MPath } from '../path';
import type { DecodedRecords, FlatValue } from './tree';

export interface DecodeOptions {
  /** "Now" in seconds since the epoch, for SenML times below 2^28 (which are relative to now). */
  readonly now?: number;
}

export interface Codec {
  readonly format: number;
  /** True for formats that can carry values of several unrelated paths (Read-Composite, Send...). */
  readonly composite: boolean;
  /** Writes typed records; `base` is the path the request addresses (the root for composites). */
  encode(flat: FlatValue, base: LwM2MPath, model: ResourceLookup): Buffer;
  /** Reads a payload into records with full paths; `base` is the path the request addressed. */
  decode(payload: Buffer, base: LwM2MPath, model: ResourceLookup, options: DecodeOptions): DecodedRecords;
}
