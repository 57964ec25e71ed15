/**
 * A CBOR (RFC 8949) writer for SenML CBOR (112) and LwM2M CBOR (11544), in preferred (shortest)
 * serialization and plain data only: no tags but tag 1 for LwM2M CBOR times. Our own because a
 * Float resource holding 20 or -0 must go out as a CBOR float, which general encoders (cbor-x
 * among them) decide from the value, not from the resource type.
 */
import type { ValueType } from './typing';
import type { ResourceValue } from './value';

/** Writes CBOR items into a growing buffer. */
export class CborWriter {
  private buffer = Buffer.allocUnsafe(256);
  private position = 0;

  private room(bytes: number): void {
    if (this.position + bytes <= this.buffer.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.position + bytes));
    this.buffer.copy(bigger, 0, 0, this.position);
    this.buffer = bigger;
  }

  /** A major type with its argument, in the fewest bytes. */
  private head(major: number, argument: number | bigint): this {
    const type = major << 5;
    if (typeof argument === 'bigint' && argument <= 0xffffffffn) argument = Number(argument);
    this.room(9);
    if (typeof argument === 'bigint') {
      this.buffer[this.position++] = type | 27;
      this.buffer.writeBigUInt64BE(argument, this.position);
      this.position += 8;
    } else if (argument < 24) {
      this.buffer[this.position++] = type | argument;
    } else if (argument <= 0xff) {
      this.buffer[this.position++] = type | 24;
      this.buffer[this.position++] = argument;
    } else if (argument <= 0xffff) {
      this.buffer[this.position++] = type | 25;
      this.position = this.buffer.writeUInt16BE(argument, this.position);
    } else if (argument <= 0xffffffff) {
      this.buffer[this.position++] = type | 26;
      this.position = this.buffer.writeUInt32BE(argument, this.position);
    } else {
      this.buffer[this.position++] = type | 27;
      this.position = this.buffer.writeBigUInt64BE(BigInt(argument), this.position);
    }
    return this;
  }

  /** An integer (major type 0 or 1); must be an integer within -2^64..2^64-1. */
  integer(value: number | bigint): this {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) value = BigInt(value);
    return value < 0 ? this.head(1, typeof value === 'bigint' ? -1n - value : -1 - value) : this.head(0, value);
  }

  /** A float in the shortest of half, single or double precision that holds it exactly. */
  float(value: number): this {
    this.room(9);
    const half = toHalf(value);
    if (half !== undefined) {
      this.buffer[this.position++] = 0xf9;
      this.position = this.buffer.writeUInt16BE(half, this.position);
    } else if (Object.is(Math.fround(value), value)) {
      this.buffer[this.position++] = 0xfa;
      this.position = this.buffer.writeFloatBE(value, this.position);
    } else {
      this.buffer[this.position++] = 0xfb;
      this.position = this.buffer.writeDoubleBE(value, this.position);
    }
    return this;
  }

  text(value: string): this {
    const length = Buffer.byteLength(value, 'utf8');
    this.head(3, length);
    this.room(length);
    this.position += this.buffer.write(value, this.position, 'utf8');
    return this;
  }

  bytes(value: Buffer): this {
    this.head(2, value.length);
    this.room(value.length);
    this.position += value.copy(this.buffer, this.position);
    return this;
  }

  boolean(value: boolean): this {
    this.room(1);
    this.buffer[this.position++] = value ? 0xf5 : 0xf4;
    return this;
  }

  null(): this {
    this.room(1);
    this.buffer[this.position++] = 0xf6;
    return this;
  }

  array(length: number): this {
    return this.head(4, length);
  }
  map(size: number): this {
    return this.head(5, size);
  }
  tag(tag: number): this {
    return this.head(6, tag);
  }

  /** The bytes written so far, as a Buffer of their own. */
  toBuffer(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.position));
  }
}

/**
 * Writes a resource value as its type asks: Float as a float even when integral, integers as
 * integers, Opaque as bytes, the text types as text. Time is an integer, or with `timeTag` an
 * epoch-seconds date (tag 1) as LwM2M CBOR writes it (Anjay does the same).
 */
export function writeResourceValue(writer: CborWriter, type: ValueType, value: ResourceValue, timeTag: boolean): void {
  switch (type) {
    case 'Float':
      writer.float(value as number);
      return;
    case 'Time':
      // tag 1 only where the integer fits in 32 bits: readers (cbor-x among them) turn the tag into a
      // date and fail on 64-bit seconds, which lie beyond the years 1834..2106 anyway
      if (timeTag && typeof value === 'number' && value >= -(2 ** 32) && value < 2 ** 32) writer.tag(1);
      writer.integer(value as number | bigint);
      return;
    case 'Integer':
    case 'Unsigned Integer':
      writer.integer(value as number | bigint);
      return;
    case 'Boolean':
      writer.boolean(value as boolean);
      return;
    case 'Opaque':
      writer.bytes(value as Buffer);
      return;
    default:
      writer.text(value as string);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE half-precision bits of `value` when it converts exactly, else undefined. */
function toHalf(value: number): number | undefined {
  if (Number.isNaN(value)) return 0x7e00;
  if (!Object.is(Math.fround(value), value)) return undefined;
  f32[0] = value;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00; // infinities (NaN handled above)
  if (exponent === 0 && mantissa === 0) return sign; // ±0
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 31) return undefined;
  if (halfExponent >= 1) {
    return mantissa & 0x1fff ? undefined : sign | (halfExponent << 10) | (mantissa >>> 13);
  }
  // subnormal half: the value must be a multiple of 2^-24
  const shift = 14 - halfExponent;
  if (shift > 24) return undefined;
  const full = mantissa | 0x800000;
  return full & ((1 << shift) - 1) ? undefined : sign | (full >>> shift);
}
