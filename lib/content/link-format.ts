/**
 * CoRE link format (40, RFC 6690) as LwM2M uses it: the object list of a Register/Update
 * (`</>;rt="oma.lwm2m";ct=60,</1/0>,</3/0>;ver=1.1`) and Discover responses
 * (`</3/0/7>;dim=2;pmin=10`).
 */
import { ContentFormatError } from './error';
import { ContentFormat } from './formats';

const FORMAT = ContentFormat.LINK;

export type LinkAttributeValue = string | number | number[] | true;

export interface Link {
  /** The target between `<` and `>`, e.g. `/3/0/7`. */
  readonly uri: string;
  /** Attributes in the order given; a parameter without a value is `true`. */
  readonly attributes: Readonly<Record<string, LinkAttributeValue>>;
}

/** LwM2M attributes whose values are numbers (notification attributes, dim, ssid, ...). */
const NUMERIC = new Set(['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax', 'dim', 'ssid', 'edge', 'con', 'hqmax', 'sz']);
/** Attributes always written as quoted strings (RFC 6690 relation types, URIs); `ver` and `lwm2m` are bare tokens from LwM2M 1.1 on. */
const QUOTED = new Set(['rt', 'if', 'uri', 'anchor', 'title', 'rel', 'rev', 'hreflang', 'media', 'type']);
const NUMBER = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;
const CONTENT_FORMATS = /^[0-9]{1,5}(?: [0-9]{1,5})*$/;
const TOKEN = /^[!#$%&'()*+\-.:<=>?@[\]^_`{|}~0-9A-Za-z/]+$/;

/** Parses link-format text; throws ContentFormatError on anything malformed. */
export function parseLinkFormat(text: string): Link[] {
  const links: Link[] = [];
  let position = 0;
  const fail = (reason: string): never => {
    throw new ContentFormatError(FORMAT, 'decode', `${reason} at character ${position}`);
  };
  const skipSpaces = () => {
    while (position < text.length && (text[position] === ' ' || text[position] === '\t' || text[position] === '\r' || text[position] === '\n')) position++;
  };

  skipSpaces();
  if (position === text.length) return links;
  for (;;) {
    skipSpaces();
    if (text[position] !== '<') fail('expected "<" to start a link');
    const close = text.indexOf('>', position + 1);
    if (close < 0) fail('a link target is not closed with ">"');
    const uri = text.slice(position + 1, close);
    if (/[<\s,;"]/.test(uri)) fail(`the link target "${uri}" holds a character it may not`);
    position = close + 1;
    const attributes: Record<string, LinkAttributeValue> = {};
    skipSpaces();
    while (text[position] === ';') {
      position++;
      skipSpaces();
      const nameMatch = /^[A-Za-z0-9!#$&+\-.^_`|~*]+/.exec(text.slice(position, position + 64));
      if (!nameMatch) fail('expected an attribute name after ";"');
      const name = nameMatch![0];
      position += name.length;
      let raw: string | true = true;
      if (text[position] === '=') {
        position++;
        if (text[position] === '"') {
          let value = '';
          position++;
          for (;;) {
            if (position >= text.length) fail(`the value of "${name}" is not closed with a quote`);
            const char = text[position++];
            if (char === '"') break;
            if (char === '\\') {
              if (position >= text.length) fail(`the value of "${name}" ends inside an escape`);
              value += text[position++];
            } else value += char;
          }
          raw = value;
        } else {
          const start = position;
          while (position < text.length && !/[;,\s]/.test(text[position])) position++;
          raw = text.slice(start, position);
          if (raw === '') fail(`the attribute "${name}" has "=" but no value`);
        }
      }
      attributes[name] = attributeValue(name, raw);
      skipSpaces();
    }
    links.push({ uri, attributes });
    if (position === text.length) return links;
    if (text[position] !== ',') fail('expected "," or ";" after a link');
    position++;
  }
}

function attributeValue(name: string, raw: string | true): LinkAttributeValue {
  if (raw === true) return true;
  if (NUMERIC.has(name) && NUMBER.test(raw)) return Number(raw);
  if (name === 'ct' && CONTENT_FORMATS.test(raw)) {
    // one format (`ct=60`) is a number, a list (`ct="60 110"`) an array
    return raw.includes(' ') ? raw.split(' ').map(Number) : Number(raw);
  }
  return raw;
}

/** Writes link-format text; values are quoted where RFC 6690 or LwM2M asks, or where they must be. */
export function formatLinkFormat(links: readonly Link[]): string {
  return links.map(formatLink).join(',');
}

function formatLink(link: Link): string {
  if (typeof link?.uri !== 'string' || /[<>\s,;"]/.test(link.uri)) {
    throw new ContentFormatError(FORMAT, 'encode', `${JSON.stringify(link?.uri)} is not a link target`);
  }
  let text = `<${link.uri}>`;
  for (const [name, value] of Object.entries(link.attributes ?? {})) {
    if (!/^[A-Za-z0-9!#$&+\-.^_`|~*]+$/.test(name)) throw new ContentFormatError(FORMAT, 'encode', `"${name}" is not an attribute name`);
    if (value === true) text += `;${name}`;
    else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new ContentFormatError(FORMAT, 'encode', `attribute ${name} is ${value}, not a finite number`);
      text += `;${name}=${value}`;
    } else if (Array.isArray(value)) text += `;${name}="${value.join(' ')}"`;
    else if (typeof value === 'string') {
      const quote = QUOTED.has(name) || !TOKEN.test(value);
      text += `;${name}=${quote ? `"${value.replace(/(["\\])/g, '\\$1')}"` : value}`;
    } else throw new ContentFormatError(FORMAT, 'encode', `attribute ${name} has a value of type ${typeof value}`);
  }
  return text;
}
