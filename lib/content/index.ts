/**
 * Encoding and decoding of every LwM2M content format, looked up by number.
 *
 *   encode(ContentFormat.TLV, '/3/0', { 0: 'ACME', 9: 95 })        → Buffer
 *   decode(ContentFormat.SENML_JSON, '/3/0', payload)             → { 0: 'ACME', 9: 95 }
 *   encodeComposite / decodeComposite                             → { '/3/0/9': 95, ... }
 *   decodeRecords                                                 → every value with its time (SEND, history)
 *   encode(ContentFormat.LINK, '/', links) / decode(...)          → CoRE link format
 *
 * Every failure is a ContentFormatError naming the format and the reason.
 */
import { defaultModel, type ResourceLookup } from '../model/model';
import { LwM2MPath } from '../path';
import type { Codec, DecodeOptions } from './codec';
import { ContentFormatError } from './error';
import { canonicalFormat, ContentFormat, formatName } from './formats';
import { formatLinkFormat, parseLinkFormat, type Link } from './link-format';
import { lwm2mCborCodec } from './lwm2m-cbor';
import { omaJsonCodec } from './oma-json';
import { opaqueCodec } from './opaque';
import { decodeSenmlCborPaths, encodeSenmlCborPaths, senmlCborCodec } from './senml-cbor';
import { decodeSenmlJsonPaths, encodeSenmlJsonPaths, senmlJsonCodec } from './senml-json';
import { textCodec } from './text';
import { tlvCodec } from './tlv';
import { flatten, flattenComposite, groupComposite, nest, typedRecord } from './tree';
import type { CompositeValue, LwM2MValue, ResourceRecord } from './value';

const CODECS: ReadonlyMap<number, Codec> = new Map(
  [textCodec, opaqueCodec, tlvCodec, omaJsonCodec, senmlJsonCodec, senmlCborCodec, lwm2mCborCodec].map((codec) => [codec.format, codec]),
);

export type { DecodeOptions } from './codec';

/** Formats that carry values (all but the link format). */
export const VALUE_FORMATS: readonly number[] = [...CODECS.keys()];
/** Formats that carry values of unrelated paths: Read-Composite, Write-Composite, Send. */
export const COMPOSITE_FORMATS: readonly number[] = [...CODECS.values()].filter((codec) => codec.composite).map((codec) => codec.format);

function codecFor(format: number, operation: 'encode' | 'decode'): Codec {
  const codec = CODECS.get(canonicalFormat(format));
  if (!codec) {
    const hint = format === ContentFormat.LINK ? ' (use the link-format functions for 40)' : '';
    throw new ContentFormatError(format, operation, `${formatName(format)} is not a format LwM2M values can be ${operation}d in${hint}`);
  }
  return codec;
}

function toPath(format: number, operation: 'encode' | 'decode', path: LwM2MPath | string): LwM2MPath {
  try {
    return LwM2MPath.from(path);
  } catch (error) {
    throw new ContentFormatError(format, operation, (error as Error).message);
  }
}

function toBuffer(format: number, payload: Buffer | Uint8Array): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new ContentFormatError(format, 'decode', 'the payload must be a Buffer or Uint8Array');
}

/**
 * Runs a codec step so that only ContentFormatError leaves it; anything else is a bug in a codec,
 * reported as such rather than as a crash.
 */
function guarded<T>(format: number, operation: 'encode' | 'decode', step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof ContentFormatError) throw error;
    throw new ContentFormatError(format, operation, `unexpected ${operation}r failure: ${(error as Error)?.message ?? String(error)}`);
  }
}

/** Encodes the value of `path` (object, instance, resource or resource instance) in `format`. */
export function encode(format: typeof ContentFormat.LINK, path: LwM2MPath | string, links: readonly Link[]): Buffer;
export function encode(format: number, path: LwM2MPath | string, value: unknown, model?: ResourceLookup): Buffer;
export function encode(format: number, path: LwM2MPath | string, value: unknown, model: ResourceLookup = defaultModel()): Buffer {
  if (format === ContentFormat.LINK) return encodeLinks(value as readonly Link[]);
  const codec = codecFor(format, 'encode');
  const base = toPath(format, 'encode', path);
  return guarded(format, 'encode', () => codec.encode(flatten(format, base, value, model), base, model));
}

/** Decodes a payload answering a request on `path` into the value shapes of the message contract. */
export function decode(format: typeof ContentFormat.LINK, path: LwM2MPath | string, payload: Buffer | Uint8Array): Link[];
export function decode(format: number, path: LwM2MPath | string, payload: Buffer | Uint8Array, model?: ResourceLookup, options?: DecodeOptions): LwM2MValue;
export function decode(
  format: number,
  path: LwM2MPath | string,
  payload: Buffer | Uint8Array,
  model: ResourceLookup = defaultModel(),
  options: DecodeOptions = {},
): LwM2MValue | Link[] {
  if (format === ContentFormat.LINK) return decodeLinks(payload);
  const codec = codecFor(format, 'decode');
  const base = toPath(format, 'decode', path);
  const bytes = toBuffer(format, payload);
  return guarded(format, 'decode', () => nest(format, base, codec.decode(bytes, base, model, options), model));
}

/** Encodes `{ "<path>": value }` for Write-Composite, Read-Composite responses or Send. */
export function encodeComposite(format: number, values: CompositeValue, model: ResourceLookup = defaultModel()): Buffer {
  const codec = codecFor(format, 'encode');
  if (!codec.composite) throw new ContentFormatError(format, 'encode', `${formatName(format)} cannot carry composite values; use SenML JSON, SenML CBOR or LwM2M CBOR`);
  return guarded(format, 'encode', () => codec.encode(flattenComposite(format, values, model), LwM2MPath.ROOT, model));
}

export interface CompositeDecodeOptions extends DecodeOptions {
  /** The paths a Read-Composite asked for: the result is keyed by them. Without, by resource path. */
  readonly paths?: ReadonlyArray<LwM2MPath | string>;
}

/** Decodes a composite payload into `{ "<path>": value }`. */
export function decodeComposite(
  format: number,
  payload: Buffer | Uint8Array,
  model: ResourceLookup = defaultModel(),
  options: CompositeDecodeOptions = {},
): CompositeValue {
  const codec = codecFor(format, 'decode');
  const paths = options.paths?.map((path) => toPath(format, 'decode', path));
  const bytes = toBuffer(format, payload);
  return guarded(format, 'decode', () => groupComposite(format, codec.decode(bytes, LwM2MPath.ROOT, model, options), model, paths));
}

/**
 * Decodes every value of a payload with its own path and time, keeping repeated paths (a SenML
 * pack with history): what Send and notifications with stored values need.
 */
export function decodeRecords(
  format: number,
  path: LwM2MPath | string,
  payload: Buffer | Uint8Array,
  model: ResourceLookup = defaultModel(),
  options: DecodeOptions = {},
): ResourceRecord[] {
  const codec = codecFor(format, 'decode');
  const base = toPath(format, 'decode', path);
  const bytes = toBuffer(format, payload);
  return guarded(format, 'decode', () => {
    const { records } = codec.decode(bytes, base, model, options);
    const outside = records.find((record) => !base.contains(record.path));
    if (outside) throw new ContentFormatError(format, 'decode', `the payload holds ${outside.path}, which is outside ${base}`);
    return records;
  });
}

/** Encodes resource values each with its own path and optional time (a Send with history). */
export function encodeRecords(
  format: number,
  records: ReadonlyArray<{ path: LwM2MPath | string; value: unknown; time?: number }>,
  model: ResourceLookup = defaultModel(),
): Buffer {
  const codec = codecFor(format, 'encode');
  if (!codec.composite) throw new ContentFormatError(format, 'encode', `${formatName(format)} cannot carry records of several paths`);
  return guarded(format, 'encode', () => {
    const typed = records.map((record) => {
      const path = toPath(format, 'encode', record.path);
      if (path.length < 3) throw new ContentFormatError(format, 'encode', 'a record must be a resource or resource instance path', path.toString());
      if (record.time !== undefined && !Number.isFinite(record.time)) throw new ContentFormatError(format, 'encode', `time ${record.time} is not a number`, path.toString());
      return typedRecord(format, path, record.value, model, record.time);
    });
    return codec.encode({ records: typed, emptyResources: [], emptyInstances: [] }, LwM2MPath.ROOT, model);
  });
}

/** Encodes the path list of a Read-Composite or Observe-Composite request (SenML JSON or CBOR). */
export function encodePaths(format: number, paths: ReadonlyArray<LwM2MPath | string>): Buffer {
  const parsed = paths.map((path) => toPath(format, 'encode', path));
  switch (canonicalFormat(format)) {
    case ContentFormat.SENML_JSON:
      return encodeSenmlJsonPaths(parsed);
    case ContentFormat.SENML_CBOR:
      return encodeSenmlCborPaths(parsed);
    default:
      throw new ContentFormatError(format, 'encode', 'a path list is written in SenML JSON (110) or SenML CBOR (112)');
  }
}

/** Decodes the path list of a Read-Composite or Observe-Composite request. */
export function decodePaths(format: number, payload: Buffer | Uint8Array): LwM2MPath[] {
  const bytes = toBuffer(format, payload);
  switch (canonicalFormat(format)) {
    case ContentFormat.SENML_JSON:
      return guarded(format, 'decode', () => decodeSenmlJsonPaths(bytes));
    case ContentFormat.SENML_CBOR:
      return guarded(format, 'decode', () => decodeSenmlCborPaths(bytes));
    default:
      throw new ContentFormatError(format, 'decode', 'a path list is written in SenML JSON (110) or SenML CBOR (112)');
  }
}

export function encodeLinks(links: readonly Link[]): Buffer {
  if (!Array.isArray(links)) throw new ContentFormatError(ContentFormat.LINK, 'encode', 'links must be an array of { uri, attributes }');
  return Buffer.from(guarded(ContentFormat.LINK, 'encode', () => formatLinkFormat(links)), 'utf8');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function decodeLinks(payload: Buffer | Uint8Array): Link[] {
  const bytes = toBuffer(ContentFormat.LINK, payload);
  return guarded(ContentFormat.LINK, 'decode', () => {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new ContentFormatError(ContentFormat.LINK, 'decode', 'the payload is not valid UTF-8');
    }
    return parseLinkFormat(text);
  });
}

export { ContentFormat, canonicalFormat, formatName, isKnownFormat, mediaType } from './formats';
export { ContentFormatError } from './error';
export { parseLinkFormat, formatLinkFormat, type Link, type LinkAttributeValue } from './link-format';
export * from './value';
export { inferType, type ValueType } from './typing';
