/**
 * Strict base64 and base64url decoding: Node's Buffer.from(..., 'base64') skips characters it does
 * not know, which would turn garbage into bytes without a word.
 */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
const EITHER_ALPHABET = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Decodes base64 (padding optional) or, with `eitherAlphabet`, base64url or base64 with or without
 * padding (SenML `vd` should be base64url without padding, but devices send all four); undefined
 * when the text is not base64.
 */
export function decodeBase64(text: string, eitherAlphabet: boolean): Buffer | undefined {
  if (eitherAlphabet) {
    const unpadded = text.replace(/=+$/, '');
    if (!EITHER_ALPHABET.test(text) || unpadded.length % 4 === 1) return undefined;
    if (/[+/]/.test(unpadded) && /[-_]/.test(unpadded)) return undefined; // one alphabet or the other
    return Buffer.from(unpadded, 'base64');
  }
  if (!BASE64.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

/** base64url without padding, as SenML JSON writes `vd` (RFC 8428). */
export function encodeBase64Url(bytes: Buffer): string {
  return bytes.toString('base64url');
}
