/**
 * Strict base64 and base64url decoding: Node's Buffer.from(..., 'base64') skips characters it does
 * not know, which would turn garbage into bytes without a word.
 */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes base64 (padding optional) or, with `url`, base64url; undefined when the text is not that. */
export function decodeBase64(text: string, url: boolean): Buffer | undefined {
  if (url) {
    if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
    return Buffer.from(text, 'base64url');
  }
  if (!BASE64.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

/** base64url without padding, as SenML JSON writes `vd` (RFC 8428). */
export function encodeBase64Url(bytes: Buffer): string {
  return bytes.toString('base64url');
}
