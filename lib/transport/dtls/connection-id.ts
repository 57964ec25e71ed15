/**
 * Connection IDs for DTLS 1.2 (RFC 9146). Each side names, in its hello's `connection_id`
 * extension, the ID it wants to find in the records it receives (empty: "send me plain records,
 * I will still put your ID in mine"). A protected record to a peer that asked for an ID has the
 * outer type tls12_cid; its plaintext is wrapped as content, real type, then zero padding, so the
 * real type travels encrypted.
 */
import { ContentType } from './constants';
import { DecodeError } from './handshake';

/** The ID a hello's connection_id extension carries: `opaque cid<0..255>`. */
export function parseConnectionIdExtension(data: Buffer): Buffer {
  if (data.length < 1 || data.length !== 1 + data[0]!) throw new DecodeError('a malformed connection_id extension');
  return data.subarray(1);
}

export function writeConnectionIdExtension(cid: Buffer): Buffer {
  return Buffer.concat([Buffer.from([cid.length]), cid]);
}

/** Content, its real type, no padding: what a tls12_cid record encrypts. */
export function wrapInner(type: ContentType, content: Buffer): Buffer {
  const out = Buffer.allocUnsafe(content.length + 1);
  content.copy(out, 0);
  out[content.length] = type;
  return out;
}

/** The content and real type of a decrypted tls12_cid record; undefined when it is all padding. */
export function unwrapInner(inner: Buffer): { type: number; content: Buffer } | undefined {
  let end = inner.length - 1;
  while (end >= 0 && inner[end] === 0) end--;
  if (end < 0) return undefined;
  const type = inner[end]!;
  if (type === ContentType.TLS12_CID) return undefined;
  return { type, content: inner.subarray(0, end) };
}
