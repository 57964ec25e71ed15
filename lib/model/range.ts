import type { NumericRange } from './types';

const NUMBER = '[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?';
// `0..100`, `-40..85`, `0-255`, `1..255 bytes`: the registry writes ranges several ways.
const RANGE = new RegExp(`^(${NUMBER})\\s*(?:\\.\\.|-|to)\\s*(${NUMBER})(?:\\s*[a-zA-Z ]*)?$`);
const NUMBER_LIST = new RegExp(`^${NUMBER}(?:\\s*[,;]\\s*${NUMBER})+$`);
const QUOTED_LIST = /^"[^"]*"(?:\s*,\s*"[^"]*")*$/;

export interface ParsedRangeEnumeration {
  range?: NumericRange;
  enumeration?: Array<number | string>;
}

/**
 * Reads a DDF `<RangeEnumeration>`: a numeric range (`min..max`) or a list of allowed values.
 * Free text the registry sometimes puts there (`see description`) yields neither.
 */
export function parseRangeEnumeration(text: string): ParsedRangeEnumeration {
  const trimmed = text.trim();
  if (trimmed === '') return {};
  const range = RANGE.exec(trimmed);
  if (range) {
    const min = Number(range[1]);
    const max = Number(range[2]);
    if (min <= max) return { range: { min, max } };
  }
  if (NUMBER_LIST.test(trimmed)) return { enumeration: trimmed.split(/[,;]/).map((item) => Number(item.trim())) };
  if (QUOTED_LIST.test(trimmed)) return { enumeration: trimmed.split(/\s*,\s*/).map((item) => item.slice(1, -1)) };
  if (new RegExp(`^${NUMBER}$`).test(trimmed)) return { enumeration: [Number(trimmed)] };
  return {};
}
