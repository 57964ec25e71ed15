/**
 * CoAP messages (RFC 7252 §3) as plain objects, with option numbers instead of names: a strict
 * reader (every malformed datagram is a CoapFormatError, nothing is read past its end), a writer
 * that allocates once per message, and the option helpers the LwM2M layers need.
 */

export type MessageType = 'CON' | 'NON' | 'ACK' | 'RST';

export interface CoapOption {
  number: number;
  value: Buffer;
}

export interface CoapMessage {
  type: MessageType;
  /** `class.detail`, e.g. `0.01` (GET) or `2.05` (Content); `0.00` for an empty message. */
  code: string;
  messageId: number;
  token: Buffer;
  options: CoapOption[];
  payload: Buffer;
}

export const OptionNumber = {
  IF_MATCH: 1,
  URI_HOST: 3,
  ETAG: 4,
  IF_NONE_MATCH: 5,
  OBSERVE: 6,
  URI_PORT: 7,
  LOCATION_PATH: 8,
  URI_PATH: 11,
  CONTENT_FORMAT: 12,
  MAX_AGE: 14,
  URI_QUERY: 15,
  ACCEPT: 17,
  LOCATION_QUERY: 20,
  BLOCK2: 23,
  BLOCK1: 27,
  SIZE2: 28,
  PROXY_URI: 35,
  SIZE1: 60,
} as const;

export const METHODS = {
  GET: '0.01',
  POST: '0.02',
  PUT: '0.03',
  DELETE: '0.04',
  FETCH: '0.05',
  PATCH: '0.06',
  IPATCH: '0.07',
} as const;
export type Method = keyof typeof METHODS;
const METHOD_BY_CODE = new Map<string, Method>(Object.entries(METHODS).map(([name, code]) => [code, name as Method]));

export function methodOf(code: string): Method | undefined {
  return METHOD_BY_CODE.get(code);
}

/** A datagram that is not a well-formed CoAP message. */
export class CoapFormatError extends Error {
  override readonly name = 'CoapFormatError';
}

/** Reads the header fields that survive a malformed rest (to answer it with a Reset). */
export function peekHeader(datagram: Buffer): { type: MessageType; messageId: number } | undefined {
  if (datagram.length < 4 || datagram[0]! >> 6 !== 1) return undefined;
  const type = (['CON', 'NON', 'ACK', 'RST'] as const)[(datagram[0]! >> 4) & 3]!;
  return { type, messageId: datagram.readUInt16BE(2) };
}

export function parseMessage(datagram: Buffer): CoapMessage {
  const header = peekHeader(datagram);
  if (!header) throw new CoapFormatError('not a CoAP 1 message');
  const tokenLength = datagram[0]! & 0x0f;
  if (tokenLength > 8) throw new CoapFormatError(`token length ${tokenLength} is reserved`);
  if (datagram.length < 4 + tokenLength) throw new CoapFormatError('the token runs past the end of the datagram');
  const codeByte = datagram[1]!;
  const code = `${codeByte >> 5}.${String(codeByte & 0x1f).padStart(2, '0')}`;
  const token = datagram.subarray(4, 4 + tokenLength);
  if (code === '0.00') {
    // RFC 7252 §4.1: an empty message is the 4-byte header and nothing else
    if (datagram.length !== 4) throw new CoapFormatError('an empty message must be the header alone');
    return { type: header.type, code, messageId: header.messageId, token, options: [], payload: EMPTY };
  }
  const { options, payload } = readOptions(datagram, 4 + tokenLength);
  return { type: header.type, code, messageId: header.messageId, token, options, payload };
}

const EMPTY = Buffer.alloc(0);

/** Reads the options (RFC 7252 §3.1) and the payload after them; every option must lie inside the datagram. */
function readOptions(datagram: Buffer, start: number): { options: CoapOption[]; payload: Buffer } {
  const options: CoapOption[] = [];
  let index = start;
  let number = 0;
  const extended = (nibble: number): number => {
    if (nibble === 15) throw new CoapFormatError('reserved option nibble 15');
    const bytes = nibble === 13 ? 1 : nibble === 14 ? 2 : 0;
    if (index + bytes > datagram.length) throw new CoapFormatError('an option runs past the end of the datagram');
    index += bytes;
    return bytes === 1 ? datagram[index - 1]! + 13 : bytes === 2 ? datagram.readUInt16BE(index - 2) + 269 : nibble;
  };
  while (index < datagram.length) {
    const byte = datagram[index++]!;
    if (byte === 0xff) {
      if (index === datagram.length) throw new CoapFormatError('payload marker followed by no payload');
      return { options, payload: datagram.subarray(index) };
    }
    number += extended(byte >> 4);
    const length = extended(byte & 0x0f);
    if (index + length > datagram.length) throw new CoapFormatError('an option runs past the end of the datagram');
    options.push({ number, value: datagram.subarray(index, index + length) });
    index += length;
  }
  return { options, payload: EMPTY };
}

const TYPE_BITS: Record<MessageType, number> = { CON: 0, NON: 1, ACK: 2, RST: 3 };
const CODE = /^([0-7])\.([0-2][0-9]|3[01])$/;

/** Writes a message (RFC 7252 §3): header, token, options in number order (repeats keep theirs), payload. */
export function serializeMessage(message: CoapMessage, maxLength = 65507): Buffer {
  const { token, payload } = message;
  if (token.length > 8) throw new CoapFormatError(`a token has at most 8 bytes, not ${token.length}`);
  const code = CODE.exec(message.code);
  if (!code) throw new CoapFormatError(`${message.code} is not a CoAP code (c.dd)`);
  if (message.code === '0.00' && (token.length > 0 || message.options.length > 0 || payload.length > 0)) {
    throw new CoapFormatError('an empty message has no token, options or payload');
  }
  if (!Number.isInteger(message.messageId) || message.messageId < 0 || message.messageId > 0xffff) throw new CoapFormatError(`message id ${message.messageId} is not 0..65535`);
  // a stable sort: options of the same number (Uri-Path segments) keep their order
  const options = message.options.length < 2 || isSorted(message.options) ? message.options : [...message.options].sort((x, y) => x.number - y.number);
  let length = 4 + token.length + (payload.length > 0 ? 1 + payload.length : 0);
  let previous = 0;
  for (const option of options) {
    length += 1 + extensionBytes(option.number - previous) + extensionBytes(option.value.length) + option.value.length;
    previous = option.number;
  }
  if (length > maxLength) throw new CoapFormatError(`the message is ${length} bytes, more than ${maxLength}`);
  const out = Buffer.allocUnsafe(length);
  out[0] = 0x40 | (TYPE_BITS[message.type] << 4) | token.length;
  out[1] = (Number(code[1]) << 5) | Number(code[2]);
  out.writeUInt16BE(message.messageId, 2);
  let at = 4 + token.copy(out, 4);
  previous = 0;
  for (const option of options) {
    const delta = option.number - previous;
    const size = option.value.length;
    if (delta < 0 || option.number > 0xffff) throw new CoapFormatError(`option number ${option.number} is out of range`);
    out[at++] = (nibble(delta) << 4) | nibble(size);
    at = writeExtension(out, at, delta);
    at = writeExtension(out, at, size);
    at += option.value.copy(out, at);
    previous = option.number;
  }
  if (payload.length > 0) {
    out[at++] = 0xff;
    payload.copy(out, at);
  }
  return out;
}

function isSorted(options: readonly CoapOption[]): boolean {
  for (let i = 1; i < options.length; i++) if (options[i]!.number < options[i - 1]!.number) return false;
  return true;
}

function nibble(value: number): number {
  return value < 13 ? value : value < 269 ? 13 : 14;
}

function extensionBytes(value: number): number {
  return value < 13 ? 0 : value < 269 ? 1 : 2;
}

function writeExtension(out: Buffer, at: number, value: number): number {
  if (value < 13) return at;
  if (value < 269) {
    out[at] = value - 13;
    return at + 1;
  }
  if (value > 0xffff + 269) throw new CoapFormatError(`option field ${value} is too large`);
  out.writeUInt16BE(value - 269, at);
  return at + 2;
}

// --- option helpers ---

export function getOption(message: { options: readonly CoapOption[] }, number: number): Buffer | undefined {
  for (const option of message.options) if (option.number === number) return option.value;
  return undefined;
}

export function getOptions(message: { options: readonly CoapOption[] }, number: number): Buffer[] {
  const values: Buffer[] = [];
  for (const option of message.options) if (option.number === number) values.push(option.value);
  return values;
}

/** The minimal big-endian encoding of an unsigned option value (RFC 7252 §3.2: zero is empty). */
export function encodeUint(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`option value ${value} is not a 32-bit unsigned integer`);
  if (value === 0) return Buffer.alloc(0);
  const bytes = value < 0x100 ? 1 : value < 0x10000 ? 2 : value < 0x1000000 ? 3 : 4;
  const buffer = Buffer.alloc(bytes);
  buffer.writeUIntBE(value, 0, bytes);
  return buffer;
}

export function decodeUint(value: Buffer): number {
  if (value.length > 4) throw new CoapFormatError(`an unsigned option of ${value.length} bytes is too long`);
  return value.length === 0 ? 0 : value.readUIntBE(0, value.length);
}

export function uintOption(number: number, value: number): CoapOption {
  return { number, value: encodeUint(value) };
}

export function getUintOption(message: { options: readonly CoapOption[] }, number: number): number | undefined {
  const value = getOption(message, number);
  return value === undefined ? undefined : decodeUint(value);
}

export function pathOptions(segments: readonly string[]): CoapOption[] {
  return segments.map((segment) => ({ number: OptionNumber.URI_PATH, value: Buffer.from(segment, 'utf8') }));
}

export function queryOptions(items: readonly string[]): CoapOption[] {
  return items.map((item) => ({ number: OptionNumber.URI_QUERY, value: Buffer.from(item, 'utf8') }));
}

export function stringOptions(message: { options: readonly CoapOption[] }, number: number): string[] {
  return getOptions(message, number).map((value) => value.toString('utf8'));
}

// --- block-wise transfer (RFC 7959 §2.2) ---

export interface BlockOption {
  num: number;
  more: boolean;
  /** block size exponent: size = 2 ** (szx + 4) */
  szx: number;
}

export function blockSize(szx: number): number {
  return 1 << (szx + 4);
}

/** The largest SZX whose block size is no more than `bytes`. */
export function szxFor(bytes: number): number {
  let szx = 6;
  while (szx > 0 && blockSize(szx) > bytes) szx--;
  return szx;
}

export function decodeBlock(value: Buffer): BlockOption {
  if (value.length > 3) throw new CoapFormatError(`a block option of ${value.length} bytes is too long`);
  const raw = decodeUint(value);
  const szx = raw & 7;
  if (szx === 7) throw new CoapFormatError('block size exponent 7 is reserved');
  return { num: raw >>> 4, more: (raw & 8) !== 0, szx };
}

export function encodeBlock(block: BlockOption): Buffer {
  return encodeUint(block.num * 16 + (block.more ? 8 : 0) + block.szx);
}
