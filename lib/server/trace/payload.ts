/**
 * A CoAP payload as a trace shows it: decoded by its Content-Format into JSON-friendly values
 * (text and CoRE links as strings, JSON parsed, CBOR read by our strict reader, TLV by our TLV
 * codec), else hex. Every form is bounded, so that a trace of any traffic stays small.
 */
import { ContentFormat, canonicalFormat, decode, formatName } from '../../content';
import { CborTag, decodeCbor } from '../../content/cbor-reader';
import { ContentFormatError } from '../../content/error';
import { readTlvTree, type TlvEntryView } from '../../content/tlv';
import type { ResourceLookup } from '../../model/model';

export interface TracedPayload {
  /** how `value` shows the bytes */
  as: 'text' | 'link' | 'json' | 'cbor' | 'tlv' | 'hex';
  /** JSON-friendly: a string, parsed JSON, decoded CBOR or TLV (bytes inside as `{ hex }`), or hex digits */
  value: unknown;
  /** why the payload did not decode as its Content-Format says (it is then shown as hex, or as a TLV entry tree) */
  error?: string;
  /** why it was shown as it is without being an error: one block of a larger body, too large to decode */
  note?: string;
  /** only the first bytes (hex) or characters (text) are shown */
  truncated?: true;
}

export interface PayloadContext {
  contentFormat?: number;
  /** the LwM2M path the payload is about (TLV needs it to name values): the request's, or the path of the request a response answers */
  path?: string;
  /** set when the payload is one block of a larger body: decoding a part alone would fail */
  fragment?: string;
  model: ResourceLookup;
}

/** at most this many payload bytes are shown as hex */
export const HEX_LIMIT = 512;
/** at most this many characters of text */
export const TEXT_LIMIT = 4096;
/** larger payloads are not decoded for the trace (a datagram's payload rarely is: block-wise parts are 1 KB at most) */
export const DECODE_LIMIT = 16 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Content-Formats outside LwM2M that devices and tools still send */
const APPLICATION_JSON = 50;
const APPLICATION_CBOR = 60;

export function describePayload(payload: Buffer, context: PayloadContext): TracedPayload {
  if (context.fragment) return hex(payload, { note: `${context.fragment}: not decoded alone` });
  const format = context.contentFormat === undefined ? undefined : canonicalFormat(context.contentFormat);
  if (payload.length > DECODE_LIMIT && format !== ContentFormat.OPAQUE) return hex(payload, { note: `${payload.length} bytes: larger than the trace decodes (${DECODE_LIMIT})` });
  try {
    switch (format) {
      case undefined: {
        // no Content-Format: diagnostic text of an error response, or bytes
        const text = textOf(payload);
        return text !== undefined && !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text) ? bounded('text', text) : hex(payload);
      }
      case ContentFormat.TEXT:
        return bounded('text', strictText(payload));
      case ContentFormat.LINK:
        return bounded('link', strictText(payload));
      case ContentFormat.OPAQUE:
        return hex(payload);
      case ContentFormat.SENML_JSON:
      case ContentFormat.OMA_JSON:
      case APPLICATION_JSON:
        return { as: 'json', value: parseJson(payload) };
      case ContentFormat.SENML_CBOR:
      case ContentFormat.LWM2M_CBOR:
      case APPLICATION_CBOR:
        return { as: 'cbor', value: jsonFriendly(decodeCbor(payload, format)) };
      case ContentFormat.TLV:
        return tlv(payload, context);
      default:
        return hex(payload, { note: `${formatName(context.contentFormat!)}: shown as hex` });
    }
  } catch (error) {
    return hex(payload, { error: reason(error) });
  }
}

/** TLV: the values by the model when the path is known, else (or when they do not decode) the entry tree. */
function tlv(payload: Buffer, context: PayloadContext): TracedPayload {
  let failure: string | undefined;
  if (context.path !== undefined) {
    try {
      return { as: 'tlv', value: jsonFriendly(decode(ContentFormat.TLV, context.path, payload, context.model)) };
    } catch (error) {
      failure = reason(error);
    }
  }
  const tree = treeView(readTlvTree(payload));
  return failure === undefined ? { as: 'tlv', value: tree } : { as: 'tlv', value: tree, error: failure };
}

function treeView(entries: TlvEntryView[]): unknown[] {
  return entries.map((entry) => (entry.entries ? { kind: entry.kind, id: entry.id, entries: treeView(entry.entries) } : { kind: entry.kind, id: entry.id, hex: entry.value!.toString('hex') }));
}

function hex(payload: Buffer, extra: Pick<TracedPayload, 'error' | 'note'> = {}): TracedPayload {
  const shown = payload.length > HEX_LIMIT ? payload.subarray(0, HEX_LIMIT) : payload;
  return { as: 'hex', value: shown.toString('hex'), ...extra, ...(shown !== payload ? { truncated: true as const } : {}) };
}

function bounded(as: 'text' | 'link', text: string): TracedPayload {
  return text.length > TEXT_LIMIT ? { as, value: text.slice(0, TEXT_LIMIT), truncated: true } : { as, value: text };
}

function textOf(payload: Buffer): string | undefined {
  try {
    return utf8.decode(payload);
  } catch {
    return undefined;
  }
}

function strictText(payload: Buffer): string {
  const text = textOf(payload);
  if (text === undefined) throw new Error('not valid UTF-8 text');
  return text;
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(strictText(payload));
  } catch (error) {
    throw new Error(`not valid JSON: ${(error as Error).message}`);
  }
}

function reason(error: unknown): string {
  if (error instanceof ContentFormatError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Any decoded value as plain JSON: bytes as `{ hex }`, big integers beyond 2^53 as strings, maps
 * as objects (keys that are not strings or numbers as their JSON), CBOR tags as `{ tag, value }`,
 * NaN and the infinities as strings, undefined as null.
 */
export function jsonFriendly(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? value + 0 : String(value); // + 0: no -0, which JSON cannot keep
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  if (Array.isArray(value)) return value.map(jsonFriendly);
  if (value instanceof CborTag) return { tag: value.tag, value: jsonFriendly(value.value) };
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of value) out[typeof key === 'string' || typeof key === 'number' ? String(key) : JSON.stringify(jsonFriendly(key))] = jsonFriendly(item);
    return out;
  }
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = jsonFriendly(item);
    return out;
  }
  return String(value);
}
