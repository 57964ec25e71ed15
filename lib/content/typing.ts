/**
 * Which data type a resource value has, and whether a given JS value fits it. Every codec asks
 * here, so a Float resource written as `20` encodes as a float everywhere, and a value that does
 * not fit its type is refused with the same words in every format.
 */
import type { ResourceLookup } from '../model/model';
import type { ResourceDefinition, ResourceType } from '../model/types';
import type { LwM2MPath } from '../path';
import { isResourceValue, parseObjectLink, type ResourceValue } from './value';

/** The types a value can have (an executable resource has none). */
export type ValueType = Exclude<ResourceType, 'none'>;

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
export const UINT64_MAX = 2n ** 64n - 1n;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The model's definition of the resource a resource or resource-instance path points into. */
export function definitionAt(model: ResourceLookup, path: LwM2MPath): ResourceDefinition | undefined {
  const { objectId, resourceId } = path;
  if (objectId === undefined || resourceId === undefined) return undefined;
  return model.resource(objectId, resourceId);
}

/** A type for a value of a resource the model does not know, from the JS value itself. */
export function inferType(value: ResourceValue): ValueType {
  switch (typeof value) {
    case 'boolean':
      return 'Boolean';
    case 'string':
      return 'String';
    case 'bigint':
      return value > INT64_MAX ? 'Unsigned Integer' : 'Integer';
    case 'number':
      return Number.isInteger(value) && !Object.is(value, -0) && Math.abs(value) < 2 ** 63 ? 'Integer' : 'Float';
    default:
      return 'Opaque';
  }
}

/**
 * Checks `value` against `type` and returns it in its one canonical form (a Date becomes seconds,
 * a Uint8Array a Buffer, an integer beyond ±2^53 a bigint). Returns a string saying what is wrong
 * when it does not fit; nothing is ever coerced across types.
 */
export function fitValue(type: ValueType, value: unknown): ResourceValue | { problem: string } {
  switch (type) {
    case 'String':
    case 'Corelnk':
      if (typeof value !== 'string') return mismatch(value, `a ${type} (string)`);
      // UTF-8 cannot carry half of a surrogate pair; refuse rather than send U+FFFD in its place
      return LONE_SURROGATE.test(value) ? { problem: `${describe(value)} holds a lone UTF-16 surrogate, which is not text` } : value;
    case 'Boolean':
      return typeof value === 'boolean' ? value : mismatch(value, 'a Boolean (true or false)');
    case 'Float':
      return typeof value === 'number' ? value : mismatch(value, 'a Float (number)');
    case 'Integer':
      return fitInteger(value, INT64_MIN, INT64_MAX, 'an Integer (-2^63..2^63-1)');
    case 'Unsigned Integer':
      return fitInteger(value, 0n, UINT64_MAX, 'an Unsigned Integer (0..2^64-1)');
    case 'Time':
      if (value instanceof Date) {
        const time = value.getTime();
        return Number.isNaN(time) ? { problem: 'the Date is invalid' } : Math.floor(time / 1000);
      }
      return fitInteger(value, INT64_MIN, INT64_MAX, 'a Time (integer seconds since 1970, or a Date)');
    case 'Opaque':
      if (Buffer.isBuffer(value)) return value;
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      return mismatch(value, 'Opaque (a Buffer)');
    case 'Objlnk':
      return typeof value === 'string' && parseObjectLink(value)
        ? value
        : mismatch(value, 'an Objlnk ("<object id>:<instance id>", e.g. "3:0")');
  }
}

function fitInteger(value: unknown, min: bigint, max: bigint, what: string): ResourceValue | { problem: string } {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return mismatch(value, what);
    // a safe integer is within every range here but the unsigned one's lower end
    if (Number.isSafeInteger(value)) return min === 0n && value < 0 ? mismatch(value, what) : value === 0 ? 0 : value;
    value = BigInt(value);
  }
  if (typeof value === 'bigint') {
    if (value < min || value > max) return mismatch(value, what);
    return normalizeInteger(value);
  }
  return mismatch(value, what);
}

/** An integer as a number when it is exact as one, else as a bigint: the form decoders return. */
export function normalizeInteger(value: bigint): number | bigint {
  return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value;
}
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function mismatch(value: unknown, what: string): { problem: string } {
  return { problem: `${describe(value)} is not ${what}` };
}

/** A short, safe description of any value for error messages. */
export function describe(value: unknown): string {
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a Date';
  if (value instanceof Map) return 'a map';
  const tag = (value as { tag?: unknown } | undefined)?.tag;
  if (typeof value === 'object' && typeof tag === 'number' && 'value' in value) return `CBOR tag ${tag}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** The type to encode a resource value as: the model's, else one inferred from the value. */
export function typeForEncoding(
  definition: ResourceDefinition | undefined,
  value: unknown,
): ValueType | { problem: string } {
  if (!definition) {
    return isResourceValue(value) ? inferType(value) : { problem: `${describe(value)} is not a resource value` };
  }
  if (definition.type === 'none') {
    return { problem: `resource ${definition.id} (${definition.name}) is executable and has no value` };
  }
  return definition.type;
}
