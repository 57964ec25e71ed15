/**
 * The DTLS record layer's framing (RFC 6347 §4.1): a datagram holds one or more records, each a
 * 13-byte header and a fragment. Parsing never throws: a truncated or malformed tail is dropped.
 */
import { RECORD_HEADER } from './constants';

export interface DtlsRecord {
  type: number;
  version: number;
  epoch: number;
  /** 48-bit sequence number */
  sequence: number;
  fragment: Buffer;
}

/** Largest fragment a record may carry (2^14 plaintext plus the largest expansion, RFC 5246 §6.2.3). */
const MAX_FRAGMENT = 16384 + 2048;

export function parseRecords(datagram: Buffer): DtlsRecord[] {
  const records: DtlsRecord[] = [];
  let at = 0;
  while (datagram.length - at >= RECORD_HEADER) {
    const length = datagram.readUInt16BE(at + 11);
    if (length > MAX_FRAGMENT || at + RECORD_HEADER + length > datagram.length) break;
    records.push({
      type: datagram[at]!,
      version: datagram.readUInt16BE(at + 1),
      epoch: datagram.readUInt16BE(at + 3),
      sequence: datagram.readUIntBE(at + 5, 6),
      fragment: datagram.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length),
    });
    at += RECORD_HEADER + length;
  }
  return records;
}

export function writeRecord(type: number, version: number, epoch: number, sequence: number, fragment: Buffer): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER + fragment.length);
  out[0] = type;
  out.writeUInt16BE(version, 1);
  out.writeUInt16BE(epoch, 3);
  out.writeUIntBE(sequence, 5, 6);
  out.writeUInt16BE(fragment.length, 11);
  fragment.copy(out, RECORD_HEADER);
  return out;
}
