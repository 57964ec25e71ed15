/**
 * Changes one handshake message a DTLS client sends in the clear (epoch 0), on its way to the
 * server through a UDP relay: to play a client that sends a broken Certificate, a wrong
 * CertificateVerify or a point off the curve, which our own DtlsClient never would.
 */
import type { Socket } from 'node:dgram';
import { ContentType } from '../../lib/transport/dtls/constants';
import { parseHandshakeFragments, writeHandshake } from '../../lib/transport/dtls/handshake';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { udpRelay } from './relay';

/** A relay to the server whose client messages of `type` (whole, unfragmented) become `change(body)`. */
export function tamperingRelay(serverPort: number, type: number, change: (body: Buffer) => Buffer): Promise<Socket> {
  return udpRelay(serverPort, (datagram) => {
    const records = parseRecords(datagram).map((record) => {
      if (record.type !== ContentType.HANDSHAKE || record.epoch !== 0) return writeRecord(record.type, record.version, record.epoch, record.sequence, record.fragment);
      const fragments = parseHandshakeFragments(record.fragment).map((fragment) => {
        const whole = fragment.offset === 0 && fragment.body.length === fragment.length;
        const body = whole && fragment.type === type ? change(Buffer.from(fragment.body)) : fragment.body;
        return whole ? writeHandshake(fragment.type, fragment.messageSeq, body) : rewriteOffset(fragment);
      });
      return writeRecord(record.type, record.version, record.epoch, record.sequence, Buffer.concat(fragments));
    });
    return [Buffer.concat(records)];
  });
}

/** A fragment passed on unchanged, with its header as it came. */
function rewriteOffset(fragment: { type: number; messageSeq: number; offset: number; length: number; body: Buffer }): Buffer {
  const out = writeHandshake(fragment.type, fragment.messageSeq, fragment.body, 0, fragment.body.length, fragment.length);
  out.writeUIntBE(fragment.offset, 6, 3);
  return out;
}

/** The first certificate's DER inside a Certificate message body (X.509 list). */
export function firstCertificate(body: Buffer): { start: number; end: number } {
  const length = body.readUIntBE(3, 3);
  return { start: 6, end: 6 + length };
}

/** A Certificate message body holding these DER certificates. */
export function certificateBody(ders: readonly Buffer[]): Buffer {
  const uint24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
  const list = Buffer.concat(ders.flatMap((der) => [uint24(der.length), der]));
  return Buffer.concat([uint24(list.length), list]);
}
