/**
 * One datagram of a CoAP trace as a plain, JSON-serializable object: the header fields, the
 * options by name, the payload decoded by its Content-Format. Malformed datagrams are entries too,
 * with the reason they do not parse.
 */
import { canonicalFormat, formatName, mediaType } from '../../content/formats';
import type { ResourceLookup } from '../../model/model';
import type { Peer } from '../../transport/endpoint';
import { CoapFormatError, OptionNumber, decodeBlock, decodeUint, methodOf, parseMessage, peekHeader, type CoapMessage, type CoapOption, type MessageType } from '../../transport/message';
import { HEX_LIMIT, describePayload, type TracedPayload } from './payload';

export interface TraceEntry {
  /** ms since the epoch */
  time: number;
  direction: 'in' | 'out';
  peer: { address: string; port: number };
  /** the PSK identity of the DTLS session, when the message went over DTLS */
  identity?: string;
  /** the device's endpoint name, when the server knows who the peer is */
  endpoint?: string;
  type?: MessageType;
  /** the method of a request (`GET`, `POST`, ...), else the code (`2.05`; `0.00` for an empty message) */
  code?: string;
  messageId?: number;
  /** hex */
  token?: string;
  /** by name: `Uri-Path` as a path, `Uri-Query` as a list, `Content-Format` and `Accept` by media type, `Block1`/`Block2` as `{ num, more, size }` */
  options?: Record<string, unknown>;
  payload?: TracedPayload;
  /** bytes of the datagram */
  size: number;
  /** why the datagram is not a CoAP message (then only the header fields that could be read are given, and the bytes as hex) */
  malformed?: string;
}

/** What a datagram is about beyond its own bytes. */
export interface EntryContext {
  time: number;
  direction: 'in' | 'out';
  peer: Peer;
  identity?: string;
  endpoint?: string;
  model: ResourceLookup;
  /** for a response: the LwM2M path of the request it answers, when known */
  requestPath?: (message: CoapMessage) => string | undefined;
}

export function traceEntry(datagram: Buffer, context: EntryContext): { entry: TraceEntry; message?: CoapMessage } {
  const entry: TraceEntry = { time: context.time, direction: context.direction, peer: { address: context.peer.address, port: context.peer.port }, size: datagram.length };
  if (context.identity !== undefined) entry.identity = context.identity;
  if (context.endpoint !== undefined) entry.endpoint = context.endpoint;
  let message: CoapMessage;
  try {
    message = parseMessage(datagram);
  } catch (error) {
    const header = peekHeader(datagram);
    if (header) {
      entry.type = header.type;
      entry.messageId = header.messageId;
    }
    entry.malformed = error instanceof CoapFormatError ? error.message : String(error);
    entry.payload = { as: 'hex', value: datagram.subarray(0, HEX_LIMIT).toString('hex'), ...(datagram.length > HEX_LIMIT ? { truncated: true as const } : {}) };
    return { entry };
  }
  const request = message.code.startsWith('0.') && message.code !== '0.00';
  entry.type = message.type;
  entry.code = (request && methodOf(message.code)) || message.code;
  entry.messageId = message.messageId;
  entry.token = message.token.toString('hex');
  if (message.options.length > 0) entry.options = namedOptions(message.options);
  if (message.payload.length > 0) {
    const path = request ? lwm2mPathOf(message) : context.requestPath?.(message);
    const contentFormat = uintOf(message.options, OptionNumber.CONTENT_FORMAT);
    entry.payload = describePayload(message.payload, { contentFormat, path, fragment: fragmentOf(message, request), model: context.model });
  }
  return { entry, message };
}

/** The LwM2M path a request addresses: its Uri-Path without an alternate root path (`/lwm2m/3/0` → `/3/0`); undefined when not numeric. */
export function lwm2mPathOf(message: { options: readonly CoapOption[] }): string | undefined {
  const segments: string[] = [];
  for (const option of message.options) if (option.number === OptionNumber.URI_PATH) segments.push(option.value.toString('utf8'));
  let start = segments.length;
  while (start > 0 && /^\d{1,5}$/.test(segments[start - 1]!)) start--;
  // a path with a non-numeric segment after the numeric ones (or none at all) is not an LwM2M path
  if (start === segments.length) return undefined;
  return `/${segments.slice(start).join('/')}`;
}

/** Set when the payload is one block of a larger body: Block1 of a request, Block2 of a response. */
function fragmentOf(message: CoapMessage, request: boolean): string | undefined {
  const number = request ? OptionNumber.BLOCK1 : OptionNumber.BLOCK2;
  const value = message.options.find((option) => option.number === number)?.value;
  if (!value) return undefined;
  try {
    const block = decodeBlock(value);
    return block.num > 0 || block.more ? `block ${block.num} (${request ? 'Block1' : 'Block2'}) of a larger body` : undefined;
  } catch {
    return undefined;
  }
}

const NAMES: Readonly<Record<number, string>> = {
  1: 'If-Match',
  3: 'Uri-Host',
  4: 'ETag',
  5: 'If-None-Match',
  6: 'Observe',
  7: 'Uri-Port',
  8: 'Location-Path',
  11: 'Uri-Path',
  12: 'Content-Format',
  14: 'Max-Age',
  15: 'Uri-Query',
  17: 'Accept',
  20: 'Location-Query',
  23: 'Block2',
  27: 'Block1',
  28: 'Size2',
  35: 'Proxy-Uri',
  39: 'Proxy-Scheme',
  60: 'Size1',
  258: 'No-Response',
};
const UINT = new Set([6, 7, 14, 28, 60, 258]);
const STRING = new Set([3, 35, 39]);
const LISTS = new Set([15, 20]);
const PATHS = new Set([8, 11]);

/** Common CoAP Content-Formats beyond LwM2M's, by media type (RFC 7252 §12.3 and the IANA registry). */
const OTHER_MEDIA_TYPES: Readonly<Record<number, string>> = {
  41: 'application/xml',
  47: 'application/exi',
  50: 'application/json',
  60: 'application/cbor',
  61: 'application/cwt',
};

/** A Content-Format (or Accept) number by its media type; a legacy LwM2M number keeps its number beside it. */
export function formatLabel(format: number): string {
  const type = mediaType(format) ?? OTHER_MEDIA_TYPES[format];
  if (type === undefined) return formatName(format);
  return canonicalFormat(format) === format ? type : `${type} (${format})`;
}

function namedOptions(options: readonly CoapOption[]): Record<string, unknown> {
  const named: Record<string, unknown> = {};
  for (const { number, value } of options) {
    const name = NAMES[number] ?? `Option ${number}`;
    let shown: unknown;
    try {
      shown = optionValue(number, value);
    } catch {
      shown = value.toString('hex');
    }
    if (PATHS.has(number)) named[name] = `${(named[name] as string | undefined) ?? ''}/${shown as string}`;
    else if (LISTS.has(number)) {
      const list = named[name] as unknown[] | undefined;
      if (list) list.push(shown);
      else named[name] = [shown];
    } else if (name in named) named[name] = [...(Array.isArray(named[name]) ? (named[name] as unknown[]) : [named[name]]), shown];
    else named[name] = shown;
  }
  return named;
}

function optionValue(number: number, value: Buffer): unknown {
  if (number === OptionNumber.CONTENT_FORMAT || number === OptionNumber.ACCEPT) return formatLabel(decodeUint(value));
  if (number === OptionNumber.BLOCK1 || number === OptionNumber.BLOCK2) {
    const block = decodeBlock(value);
    return { num: block.num, more: block.more, size: 1 << (block.szx + 4) };
  }
  if (number === OptionNumber.IF_NONE_MATCH) return true;
  if (UINT.has(number)) return decodeUint(value);
  if (STRING.has(number) || LISTS.has(number) || PATHS.has(number)) return value.toString('utf8');
  // ETag, If-Match and options this table does not know: bytes
  return value.toString('hex');
}

function uintOf(options: readonly CoapOption[], number: number): number | undefined {
  const value = options.find((option) => option.number === number)?.value;
  if (value === undefined) return undefined;
  try {
    return decodeUint(value);
  } catch {
    return undefined;
  }
}
