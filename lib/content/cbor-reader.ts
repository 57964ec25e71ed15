/**
 * A strict CBOR (RFC 8949) reader for payloads from devices: SenML CBOR and LwM2M CBOR.
 *
 * Written here rather than taken from cbor-x because cbor-x's tag handlers are process-wide and
 * some are unsafe on untrusted input: a 1 MB bignum (tag 2) takes quadratic time, and shared
 * references (tags 28/29) let a few hundred bytes stand for exponentially many items. This reader
 * knows no tag semantics at all (a tag comes back as a CborTag for the format to judge), checks
 * every length against the bytes that are left before it allocates, limits nesting, and returns
 * byte strings as copies, never as views into the payload.
 */
import { ContentFormatError } from './error';

export type CborItem = number | bigint | string | boolean | null | undefined | Buffer | CborTag | CborItem[] | Map<CborItem, CborItem>;

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborItem,
  ) {}
}

/** Deep enough for SenML (array → map → value) and LwM2M CBOR (a map per path level, key arrays, tags). */
const MAX_DEPTH = 16;
const BREAK = Symbol('break');
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes exactly one CBOR item; anything malformed, or left over after it, is a ContentFormatError. */
export function decodeCbor(payload: Buffer, format: number): CborItem {
  if (payload.length === 0) throw new ContentFormatError(format, 'decode', 'the payload is empty');
  const reader = new Reader(payload, format);
  const item = reader.item(0);
  if (item === BREAK) reader.fail('a "break" byte outside an indefinite-length item');
  if (reader.position !== payload.length) reader.fail(`${payload.length - reader.position} byte(s) left after the CBOR item`);
  return item as CborItem;
}

class Reader {
  position = 0;

  constructor(
    private readonly bytes: Buffer,
    private readonly format: number,
  ) {}

  fail(reason: string): never {
    throw new ContentFormatError(this.format, 'decode', `not valid CBOR: ${reason} (at byte ${this.position})`);
  }

  private need(count: number): void {
    if (count > this.bytes.length - this.position) this.fail(`the item needs ${count} more byte(s), ${this.bytes.length - this.position} are left`);
  }

  /** The argument of a head: the value of a small int, or a length. `null` for indefinite length. */
  private argument(info: number): number | bigint | null {
    if (info < 24) return info;
    switch (info) {
      case 24:
        this.need(1);
        return this.bytes[this.position++];
      case 25:
        this.need(2);
        this.position += 2;
        return this.bytes.readUInt16BE(this.position - 2);
      case 26:
        this.need(4);
        this.position += 4;
        return this.bytes.readUInt32BE(this.position - 4);
      case 27: {
        this.need(8);
        const value = this.bytes.readBigUInt64BE(this.position);
        this.position += 8;
        return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
      }
      case 31:
        return null;
      default:
        return this.fail(`reserved additional information ${info}`);
    }
  }

  /** A length that must be definite and no larger than what is left (each element takes ≥ `unit` bytes). */
  private length(argument: number | bigint, unit: number): number {
    const left = (this.bytes.length - this.position) / unit;
    if (typeof argument === 'bigint' || argument > left) this.fail(`a length of ${argument} where only ${Math.floor(left)} can follow`);
    return argument as number;
  }

  item(depth: number): CborItem | typeof BREAK {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.need(1);
    const head = this.bytes[this.position++];
    const major = head >> 5;
    const info = head & 0x1f;
    if (major === 7) return this.simple(info);
    const argument = this.argument(info);
    switch (major) {
      case 0:
        if (argument === null) return this.fail('an integer cannot have indefinite length');
        return argument;
      case 1:
        if (argument === null) return this.fail('an integer cannot have indefinite length');
        return typeof argument === 'bigint' ? -1n - argument : argument === Number.MAX_SAFE_INTEGER ? -1n - BigInt(argument) : -1 - argument;
      case 2:
        return argument === null ? this.chunks(2, depth) : this.byteString(this.length(argument, 1));
      case 3:
        return argument === null ? this.text(this.chunks(3, depth), 0, undefined) : this.textAt(this.length(argument, 1));
      case 4:
        return this.array(argument, depth);
      case 5:
        return this.map(argument, depth);
      default: {
        // major 6: a tag; the format decides what it means
        if (argument === null || typeof argument === 'bigint') return this.fail('a tag number beyond 2^53');
        const value = this.item(depth + 1);
        if (value === BREAK) return this.fail('a tag without its item');
        return new CborTag(argument, value);
      }
    }
  }

  private simple(info: number): CborItem | typeof BREAK {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25:
        this.need(2);
        this.position += 2;
        return halfToNumber(this.bytes.readUInt16BE(this.position - 2));
      case 26:
        this.need(4);
        this.position += 4;
        return this.bytes.readFloatBE(this.position - 4);
      case 27:
        this.need(8);
        this.position += 8;
        return this.bytes.readDoubleBE(this.position - 8);
      case 31:
        return BREAK;
      default:
        return this.fail(`simple value ${info === 24 ? this.bytes[this.position] : info}, which LwM2M data never holds`);
    }
  }

  /** A definite text string read in place: ASCII (most LwM2M text) without a decoder call. */
  private textAt(length: number): string {
    const start = this.position;
    this.position += length;
    const bytes = this.bytes;
    for (let i = start; i < this.position; i++) {
      if (bytes[i] >= 0x80) return this.text(bytes, start, this.position);
    }
    return bytes.toString('latin1', start, this.position);
  }

  private text(bytes: Buffer, start: number, end: number | undefined): string {
    try {
      return utf8.decode(bytes.subarray(start, end));
    } catch {
      return this.fail('a text string that is not valid UTF-8');
    }
  }

  private byteString(length: number): Buffer {
    this.position += length;
    return Buffer.from(this.bytes.subarray(this.position - length, this.position));
  }

  /** An indefinite-length byte or text string: definite chunks of the same major type up to a break. */
  private chunks(major: number, depth: number): Buffer {
    const parts: Buffer[] = [];
    for (;;) {
      this.need(1);
      if (this.bytes[this.position] === 0xff) {
        this.position++;
        return Buffer.concat(parts);
      }
      const head = this.bytes[this.position++];
      if (head >> 5 !== major || (head & 0x1f) === 31) this.fail('a chunk of an indefinite-length string that is not a definite string of the same type');
      parts.push(this.byteString(this.length(this.argument(head & 0x1f)!, 1)));
      if (parts.length > this.bytes.length) this.fail(`too many chunks at depth ${depth}`);
    }
  }

  private array(argument: number | bigint | null, depth: number): CborItem[] {
    const items: CborItem[] = [];
    if (argument === null) {
      for (;;) {
        const item = this.item(depth + 1);
        if (item === BREAK) return items;
        items.push(item);
      }
    }
    const count = this.length(argument, 1);
    for (let i = 0; i < count; i++) {
      const item = this.item(depth + 1);
      if (item === BREAK) this.fail('a "break" inside a definite-length array');
      items.push(item as CborItem);
    }
    return items;
  }

  private map(argument: number | bigint | null, depth: number): Map<CborItem, CborItem> {
    const map = new Map<CborItem, CborItem>();
    const count = argument === null ? Infinity : this.length(argument, 2);
    for (let i = 0; i < count; i++) {
      const key = this.item(depth + 1);
      if (key === BREAK) {
        if (argument === null) return map;
        this.fail('a "break" inside a definite-length map');
      }
      const value = this.item(depth + 1);
      if (value === BREAK) this.fail('a map key without a value');
      if (map.has(key as CborItem)) this.fail(`the map key ${String(key)} appears twice`);
      map.set(key as CborItem, value as CborItem);
    }
    return map;
  }
}

/** IEEE 754 half precision to a number. */
function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
