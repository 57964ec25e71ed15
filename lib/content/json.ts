/**
 * JSON parsing for the JSON data formats. Integers beyond 2^53 lose digits in JSON.parse; where
 * the runtime lets a reviver see the source text (V8 ≥ 11.4, i.e. Node 21+), such integers are
 * read exactly as bigints. On older runtimes they keep the nearest double.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONG_DIGITS = /[0-9]{16,}/;
const INTEGER = /^-?[0-9]+$/;

/** Whether this runtime hands revivers the source text of each value. */
const SOURCE_ACCESS = (() => {
  let seen = false;
  JSON.parse('1', ((_key: string, value: unknown, context?: { source?: string }) => {
    seen = context?.source === '1';
    return value;
  }) as (key: string, value: unknown) => unknown);
  return seen;
})();

/** Decodes UTF-8 (strictly) and parses JSON; throws the parser's own errors. */
export function parseJsonPayload(payload: Buffer): unknown {
  const text = utf8.decode(payload);
  if (!SOURCE_ACCESS || !LONG_DIGITS.test(text)) return JSON.parse(text);
  return JSON.parse(text, function (this: unknown, _key: string, value: unknown, context?: { source?: string }) {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source && INTEGER.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  } as (key: string, value: unknown) => unknown);
}

/** A JSON number: exact for bigints, `-0.0` for negative zero; undefined for NaN and infinities. */
export function formatJsonNumber(value: number | bigint): string | undefined {
  if (typeof value === 'bigint') return value.toString();
  if (!Number.isFinite(value)) return undefined;
  return Object.is(value, -0) ? '-0.0' : JSON.stringify(value);
}
