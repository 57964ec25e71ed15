/**
 * The DTLS record layer's framing (RFC 6347 §4.1): a datagram holds one or more records, each a
 * 13-byte header and a fragment. A tls12_cid record (RFC 9146 §4) carries a connection ID between
 * the sequence number and the length; its length is not on the wire, so the reader must know the
 * length of the IDs it issued. Parsing never throws: a truncated or malformed tail is dropped.
 */
import { ContentType, RECORD_HEADER } from './constants';

export interface DtlsRecord {
  type: number;
  version: number;
  epoch: number;
  /** 48-bit sequence number */
  sequence: number;
  /** the connection ID of a tls12_cid record, when the reader expects one */
  cid?: Buffer;
  fragment: Buffer;
}

/** Largest fragment a record may carry (2^14 plaintext plus the largest expansion, RFC 5246 §6.2.3). */
const MAX_FRAGMENT = 16384 + 2048;

/** `cidLength`: bytes of the connection IDs this reader issued (0: it issued none, tls12_cid records then parse without one). */
export function parseRecords(datagram: Buffer, cidLength = 0): DtlsRecord[] {
  const records: DtlsRecord[] = [];
  let at = 0;
  while (datagram.length - at >= RECORD_HEADER) {
    const type = datagram[at]!;
    const cidBytes = type === ContentType.TLS12_CID ? cidLength : 0;
    if (datagram.length - at < RECORD_HEADER + cidBytes) break;
    const length = datagram.readUInt16BE(at + 11 + cidBytes);
    const start = at + RECORD_HEADER + cidBytes;
    if (length > MAX_FRAGMENT || start + length > datagram.length) break;
    const record: DtlsRecord = {
      type,
      version: datagram.readUInt16BE(at + 1),
      epoch: datagram.readUInt16BE(at + 3),
      sequence: datagram.readUIntBE(at + 5, 6),
      fragment: datagram.subarray(start, start + length),
    };
    if (cidBytes > 0) record.cid = datagram.subarray(at + 11, at + 11 + cidBytes);
    records.push(record);
    at = start + length;
  }
  return records;
}

/** A record; with a (non-empty) `cid` it is written in the tls12_cid layout. */
export function writeRecord(type: number, version: number, epoch: number, sequence: number, fragment: Buffer, cid?: Buffer): Buffer {
  const cidBytes = cid?.length ?? 0;
  const out = Buffer.allocUnsafe(RECORD_HEADER + cidBytes + fragment.length);
  out[0] = type;
  out.writeUInt16BE(version, 1);
  out.writeUInt16BE(epoch, 3);
  out.writeUIntBE(sequence, 5, 6);
  if (cid) cid.copy(out, 11);
  out.writeUInt16BE(fragment.length, 11 + cidBytes);
  fragment.copy(out, RECORD_HEADER + cidBytes);
  return out;
}
