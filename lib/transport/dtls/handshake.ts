/**
 * Handshake messages of DTLS 1.2 with PSK: their 12-byte header, fragmentation and reassembly
 * (RFC 6347 §4.2.3), and the bodies this server and client exchange. Parsing throws DecodeError on
 * anything malformed; the caller answers with a decode_error alert or drops the datagram.
 */
import { HANDSHAKE_HEADER, HandshakeType, ExtensionType, EMPTY_RENEGOTIATION_INFO_SCSV } from './constants';

export class DecodeError extends Error {}

export interface HandshakeFragment {
  type: number;
  length: number;
  messageSeq: number;
  offset: number;
  body: Buffer;
}

/** The handshake fragments in one record's plaintext. */
export function parseHandshakeFragments(data: Buffer): HandshakeFragment[] {
  const fragments: HandshakeFragment[] = [];
  let at = 0;
  while (at < data.length) {
    if (data.length - at < HANDSHAKE_HEADER) throw new DecodeError('truncated handshake header');
    const length = data.readUIntBE(at + 1, 3);
    const offset = data.readUIntBE(at + 6, 3);
    const fragmentLength = data.readUIntBE(at + 9, 3);
    if (offset + fragmentLength > length || at + HANDSHAKE_HEADER + fragmentLength > data.length) throw new DecodeError('handshake fragment beyond its message');
    fragments.push({ type: data[at]!, length, messageSeq: data.readUInt16BE(at + 4), offset, body: data.subarray(at + HANDSHAKE_HEADER, at + HANDSHAKE_HEADER + fragmentLength) });
    at += HANDSHAKE_HEADER + fragmentLength;
  }
  return fragments;
}

/** A handshake message or a fragment of it, with its header. */
export function writeHandshake(type: number, messageSeq: number, body: Buffer, offset = 0, fragmentLength = body.length - offset, totalLength = body.length): Buffer {
  const out = Buffer.allocUnsafe(HANDSHAKE_HEADER + fragmentLength);
  out[0] = type;
  out.writeUIntBE(totalLength, 1, 3);
  out.writeUInt16BE(messageSeq, 4);
  out.writeUIntBE(offset, 6, 3);
  out.writeUIntBE(fragmentLength, 9, 3);
  body.copy(out, HANDSHAKE_HEADER, offset, offset + fragmentLength);
  return out;
}

/** A message cut into fragments of at most `maxBody` bytes of body each. */
export function fragmentHandshake(type: number, messageSeq: number, body: Buffer, maxBody: number): Buffer[] {
  if (body.length <= maxBody) return [writeHandshake(type, messageSeq, body)];
  const fragments: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += maxBody) fragments.push(writeHandshake(type, messageSeq, body, offset, Math.min(maxBody, body.length - offset)));
  return fragments;
}

export interface HandshakeMessage {
  type: number;
  messageSeq: number;
  body: Buffer;
}

/**
 * Largest handshake message accepted: a Certificate with a chain of a few ECDSA certificates fits
 * (they are about 0.5 to 1 KB each). With at most 5 messages pending, a handshake ties up at most
 * 5 × 2 × 16 KiB however a peer fragments.
 */
const MAX_MESSAGE = 16384;

/**
 * Puts fragments back together and hands out complete messages in message_seq order; duplicates
 * and retransmissions of delivered messages are ignored.
 */
export class Reassembler {
  private next = 0;
  private readonly pending = new Map<number, { type: number; body: Buffer; filled: Uint8Array; missing: number }>();

  constructor(firstSeq = 0) {
    this.next = firstSeq;
  }

  get expected(): number {
    return this.next;
  }

  /** Adds a fragment; returns the messages it completed, in order. */
  add(fragment: HandshakeFragment): HandshakeMessage[] {
    if (fragment.messageSeq < this.next || fragment.messageSeq > this.next + 4) return [];
    if (fragment.length > MAX_MESSAGE) throw new DecodeError(`a handshake message of ${fragment.length} bytes`);
    let entry = this.pending.get(fragment.messageSeq);
    if (!entry) {
      entry = { type: fragment.type, body: Buffer.alloc(fragment.length), filled: new Uint8Array(fragment.length), missing: fragment.length };
      this.pending.set(fragment.messageSeq, entry);
    }
    if (entry.type !== fragment.type || entry.body.length !== fragment.length) throw new DecodeError('fragments of one message disagree');
    for (let i = 0; i < fragment.body.length; i++) {
      if (entry.filled[fragment.offset + i]) continue;
      entry.filled[fragment.offset + i] = 1;
      entry.body[fragment.offset + i] = fragment.body[i]!;
      entry.missing--;
    }
    const complete: HandshakeMessage[] = [];
    for (let ready = this.pending.get(this.next); ready && ready.missing === 0; ready = this.pending.get(this.next)) {
      complete.push({ type: ready.type, messageSeq: this.next, body: ready.body });
      this.pending.delete(this.next);
      this.next++;
    }
    return complete;
  }
}

/** Reads a handshake body; every read checks the bounds. */
export class Reader {
  private at = 0;
  constructor(private readonly data: Buffer) {}

  uint8(): number {
    return this.bytes(1)[0]!;
  }
  uint16(): number {
    return this.bytes(2).readUInt16BE(0);
  }
  bytes(length: number): Buffer {
    if (this.at + length > this.data.length) throw new DecodeError('truncated handshake message');
    return this.data.subarray(this.at, (this.at += length));
  }
  vector8(): Buffer {
    return this.bytes(this.uint8());
  }
  vector16(): Buffer {
    return this.bytes(this.uint16());
  }
  vector24(): Buffer {
    return this.bytes(this.bytes(3).readUIntBE(0, 3));
  }
  get done(): boolean {
    return this.at === this.data.length;
  }
  get offset(): number {
    return this.at;
  }
}

export interface ClientHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  cipherSuites: number[];
  extensions: Map<number, Buffer>;
  /** the hello without its cookie: what the cookie is computed over */
  cookieInput: Buffer;
}

export function parseClientHello(body: Buffer): ClientHello {
  const reader = new Reader(body);
  const version = reader.uint16();
  const random = reader.bytes(32);
  const sessionId = reader.vector8();
  if (sessionId.length > 32) throw new DecodeError('session id longer than 32 bytes');
  const cookieAt = reader.offset;
  const cookie = reader.vector8();
  const afterCookie = reader.offset;
  const suites = reader.vector16();
  if (suites.length === 0 || suites.length % 2 !== 0) throw new DecodeError('bad cipher suite list');
  const cipherSuites: number[] = [];
  for (let i = 0; i < suites.length; i += 2) cipherSuites.push(suites.readUInt16BE(i));
  const compression = reader.vector8();
  if (!compression.includes(0)) throw new DecodeError('no null compression');
  const extensions = reader.done ? new Map<number, Buffer>() : parseExtensions(reader.vector16());
  if (!reader.done) throw new DecodeError('bytes after the ClientHello');
  return { version, random, sessionId, cookie, cipherSuites, extensions, cookieInput: Buffer.concat([body.subarray(0, cookieAt), body.subarray(afterCookie)]) };
}

function parseExtensions(data: Buffer): Map<number, Buffer> {
  const reader = new Reader(data);
  const extensions = new Map<number, Buffer>();
  while (!reader.done) {
    const type = reader.uint16();
    if (extensions.has(type)) throw new DecodeError(`extension ${type} twice`);
    extensions.set(type, reader.vector16());
  }
  return extensions;
}

function writeExtensions(extensions: Array<[number, Buffer]>): Buffer {
  if (extensions.length === 0) return Buffer.alloc(0);
  const parts = extensions.map(([type, data]) => {
    const head = Buffer.alloc(4);
    head.writeUInt16BE(type, 0);
    head.writeUInt16BE(data.length, 2);
    return Buffer.concat([head, data]);
  });
  const body = Buffer.concat(parts);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length, 0);
  return Buffer.concat([length, body]);
}

/** Whether the client asked for secure renegotiation (RFC 5746), so the server must confirm it. */
export function wantsRenegotiationInfo(hello: ClientHello): boolean {
  return hello.extensions.has(ExtensionType.RENEGOTIATION_INFO) || hello.cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV);
}

export function writeHelloVerifyRequest(version: number, cookie: Buffer): Buffer {
  const out = Buffer.alloc(3 + cookie.length);
  out.writeUInt16BE(version, 0);
  out[2] = cookie.length;
  cookie.copy(out, 3);
  return out;
}

export function parseHelloVerifyRequest(body: Buffer): Buffer {
  const reader = new Reader(body);
  reader.uint16();
  const cookie = reader.vector8();
  if (cookie.length > 255) throw new DecodeError('cookie too long');
  return cookie;
}

export interface ServerHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  extensions: Map<number, Buffer>;
}

export function writeServerHello(hello: ServerHello): Buffer {
  const head = Buffer.alloc(2 + 32 + 1);
  head.writeUInt16BE(hello.version, 0);
  hello.random.copy(head, 2);
  head[34] = hello.sessionId.length;
  const suite = Buffer.alloc(3);
  suite.writeUInt16BE(hello.cipherSuite, 0);
  suite[2] = 0; // null compression
  return Buffer.concat([head, hello.sessionId, suite, writeExtensions([...hello.extensions])]);
}

export function parseServerHello(body: Buffer): ServerHello {
  const reader = new Reader(body);
  const version = reader.uint16();
  const random = reader.bytes(32);
  const sessionId = reader.vector8();
  const cipherSuite = reader.uint16();
  if (reader.uint8() !== 0) throw new DecodeError('the server chose a compression');
  const extensions = reader.done ? new Map<number, Buffer>() : parseExtensions(reader.vector16());
  return { version, random, sessionId, cipherSuite, extensions };
}

export function writeClientHello(hello: Omit<ClientHello, 'cookieInput' | 'extensions'> & { extensions: Array<[number, Buffer]> }): Buffer {
  const head = Buffer.alloc(2 + 32);
  head.writeUInt16BE(hello.version, 0);
  hello.random.copy(head, 2);
  const suites = Buffer.alloc(2 + 2 * hello.cipherSuites.length);
  suites.writeUInt16BE(2 * hello.cipherSuites.length, 0);
  hello.cipherSuites.forEach((suite, index) => suites.writeUInt16BE(suite, 2 + 2 * index));
  return Buffer.concat([
    head,
    Buffer.from([hello.sessionId.length]),
    hello.sessionId,
    Buffer.from([hello.cookie.length]),
    hello.cookie,
    suites,
    Buffer.from([1, 0]), // compression: null only
    writeExtensions(hello.extensions),
  ]);
}

/** A PSK identity (ClientKeyExchange) or identity hint (ServerKeyExchange): `opaque<0..2^16-1>`. */
export function writePskIdentity(identity: Buffer): Buffer {
  const out = Buffer.alloc(2 + identity.length);
  out.writeUInt16BE(identity.length, 0);
  identity.copy(out, 2);
  return out;
}

export function parsePskIdentity(body: Buffer): Buffer {
  const reader = new Reader(body);
  const identity = reader.vector16();
  if (!reader.done) throw new DecodeError('bytes after the PSK identity');
  return identity;
}

export const HANDSHAKE_NAMES: Record<number, string> = {
  [HandshakeType.CLIENT_HELLO]: 'ClientHello',
  [HandshakeType.SERVER_HELLO]: 'ServerHello',
  [HandshakeType.HELLO_VERIFY_REQUEST]: 'HelloVerifyRequest',
  [HandshakeType.CERTIFICATE]: 'Certificate',
  [HandshakeType.SERVER_KEY_EXCHANGE]: 'ServerKeyExchange',
  [HandshakeType.CERTIFICATE_REQUEST]: 'CertificateRequest',
  [HandshakeType.CERTIFICATE_VERIFY]: 'CertificateVerify',
  [HandshakeType.SERVER_HELLO_DONE]: 'ServerHelloDone',
  [HandshakeType.CLIENT_KEY_EXCHANGE]: 'ClientKeyExchange',
  [HandshakeType.FINISHED]: 'Finished',
};
