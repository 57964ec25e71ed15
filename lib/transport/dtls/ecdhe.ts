/**
 * The handshake messages of ECDHE-ECDSA (RFC 8422, RFC 5246 §7.4, RFC 7250): Certificate (a chain
 * or a raw public key), ServerKeyExchange with signed P-256 parameters, CertificateRequest,
 * ClientKeyExchange with the client's point, CertificateVerify; the hello extensions that go with
 * them; and the ECDH and ECDSA operations (node:crypto). Parsers throw DecodeError.
 */
import { createECDH, sign, verify, type ECDH, type KeyObject } from 'node:crypto';
import { ExtensionType } from './constants';
import { DecodeError, Reader } from './handshake';

/** secp256r1 (RFC 8422 NamedCurve) */
export const SECP256R1 = 23;
/** ecdsa_secp256r1_sha256 (SignatureAndHashAlgorithm sha256(4), ecdsa(3)) */
export const ECDSA_SHA256 = 0x0403;
/** ClientCertificateType ecdsa_sign (RFC 8422 §5.5) */
const ECDSA_SIGN = 64;
const NAMED_CURVE = 3;
/** RFC 7250 certificate types */
export const enum CertificateType {
  X509 = 0,
  RAW_PUBLIC_KEY = 2,
}

function uint24(length: number): Buffer {
  const out = Buffer.alloc(3);
  out.writeUIntBE(length, 0, 3);
  return out;
}

function vector8(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([data.length]), data]);
}

function vector16(data: Buffer): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(data.length, 0);
  return Buffer.concat([head, data]);
}

/** Certificate with an X.509 chain (DER, leaf first). */
export function writeCertificateChain(chain: readonly Buffer[]): Buffer {
  const list = Buffer.concat(chain.flatMap((der) => [uint24(der.length), der]));
  return Buffer.concat([uint24(list.length), list]);
}

export function parseCertificateChain(body: Buffer): Buffer[] {
  const reader = new Reader(body);
  const list = new Reader(reader.vector24());
  if (!reader.done) throw new DecodeError('bytes after the certificate list');
  const chain: Buffer[] = [];
  while (!list.done) {
    const der = list.vector24();
    if (der.length === 0) throw new DecodeError('an empty certificate');
    chain.push(der);
  }
  return chain;
}

/** Certificate with a raw public key (RFC 7250 §3): the SubjectPublicKeyInfo alone. */
export function writeRawPublicKey(spki: Buffer): Buffer {
  return Buffer.concat([uint24(spki.length), spki]);
}

export function parseRawPublicKey(body: Buffer): Buffer {
  const reader = new Reader(body);
  const spki = reader.vector24();
  if (!reader.done || spki.length === 0) throw new DecodeError('a malformed raw public key Certificate');
  return spki;
}

/** A fresh P-256 key pair for one handshake. */
export function newEcdh(): ECDH {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh;
}

/** ServerECDHParams: named_curve secp256r1 and our point. */
export function writeEcdhParams(point: Buffer): Buffer {
  return Buffer.concat([Buffer.from([NAMED_CURVE, SECP256R1 >> 8, SECP256R1 & 0xff]), vector8(point)]);
}

/** ServerKeyExchange: the parameters signed with our key over both randoms and the parameters. */
export function writeServerKeyExchange(params: Buffer, clientRandom: Buffer, serverRandom: Buffer, key: KeyObject): Buffer {
  const signature = sign('sha256', Buffer.concat([clientRandom, serverRandom, params]), { key, dsaEncoding: 'der' });
  return Buffer.concat([params, signed(signature)]);
}

function signed(signature: Buffer): Buffer {
  return Buffer.concat([Buffer.from([ECDSA_SHA256 >> 8, ECDSA_SHA256 & 0xff]), vector16(signature)]);
}

export interface ServerKeyExchange {
  params: Buffer;
  point: Buffer;
  algorithm: number;
  signature: Buffer;
}

export function parseServerKeyExchange(body: Buffer): ServerKeyExchange {
  const reader = new Reader(body);
  if (reader.uint8() !== NAMED_CURVE) throw new DecodeError('ServerKeyExchange: not a named curve');
  const curve = reader.uint16();
  if (curve !== SECP256R1) throw new DecodeError(`ServerKeyExchange: curve ${curve}, not secp256r1`);
  const point = reader.vector8();
  const params = body.subarray(0, reader.offset);
  const algorithm = reader.uint16();
  const signature = reader.vector16();
  if (!reader.done) throw new DecodeError('bytes after the ServerKeyExchange');
  return { params, point, algorithm, signature };
}

/** Whether the ServerKeyExchange is signed by the server's key (its parameters bound to this handshake's randoms). */
export function verifyServerKeyExchange(exchange: ServerKeyExchange, clientRandom: Buffer, serverRandom: Buffer, key: KeyObject): boolean {
  if (exchange.algorithm !== ECDSA_SHA256) return false;
  return verifySignature(Buffer.concat([clientRandom, serverRandom, exchange.params]), exchange.signature, key);
}

function verifySignature(data: Buffer, signature: Buffer, key: KeyObject): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false; // a signature that is not even DER
  }
}

/** CertificateRequest: an ECDSA certificate signed with SHA-256, from any CA. */
export function writeCertificateRequest(): Buffer {
  return Buffer.from([1, ECDSA_SIGN, 0, 2, ECDSA_SHA256 >> 8, ECDSA_SHA256 & 0xff, 0, 0]);
}

/** Whether a CertificateRequest lets us answer with an ECDSA P-256 / SHA-256 certificate. */
export function parseCertificateRequest(body: Buffer): boolean {
  const reader = new Reader(body);
  const types = reader.vector8();
  const algorithms = reader.vector16();
  reader.vector16(); // certificate_authorities: we have one chain and send it whatever they name
  if (!reader.done) throw new DecodeError('bytes after the CertificateRequest');
  let sha256 = false;
  for (let i = 0; i + 1 < algorithms.length; i += 2) if (algorithms.readUInt16BE(i) === ECDSA_SHA256) sha256 = true;
  return types.includes(ECDSA_SIGN) && sha256;
}

/** ClientKeyExchange of ECDHE: our point. */
export function writeClientKeyExchange(point: Buffer): Buffer {
  return vector8(point);
}

export function parseClientKeyExchange(body: Buffer): Buffer {
  const reader = new Reader(body);
  const point = reader.vector8();
  if (!reader.done) throw new DecodeError('bytes after the ClientKeyExchange');
  return point;
}

/**
 * The premaster secret: the x coordinate of our private key times the peer's point (RFC 8422
 * §5.10). Only uncompressed points (RFC 8422 §5.1.2); one not on the curve throws DecodeError.
 */
export function ecdhSecret(ecdh: ECDH, point: Buffer): Buffer {
  if (point.length !== 65 || point[0] !== 4) throw new DecodeError('the ECDH point is not an uncompressed P-256 point');
  try {
    return ecdh.computeSecret(point);
  } catch {
    throw new DecodeError('the ECDH point is not on P-256');
  }
}

/** CertificateVerify: our signature over every handshake message before it. */
export function writeCertificateVerify(transcript: Buffer, key: KeyObject): Buffer {
  return signed(sign('sha256', transcript, { key, dsaEncoding: 'der' }));
}

export function verifyCertificateVerify(body: Buffer, transcript: Buffer, key: KeyObject): boolean {
  const reader = new Reader(body);
  const algorithm = reader.uint16();
  const signature = reader.vector16();
  if (!reader.done) throw new DecodeError('bytes after the CertificateVerify');
  return algorithm === ECDSA_SHA256 && verifySignature(transcript, signature, key);
}

// --- hello extensions ---

/** What a client offers for ECDHE-ECDSA: secp256r1, uncompressed points, ECDSA with SHA-256. */
export function ecdheHelloExtensions(): Array<[number, Buffer]> {
  return [
    [ExtensionType.SUPPORTED_GROUPS, Buffer.from([0, 2, SECP256R1 >> 8, SECP256R1 & 0xff])],
    [ExtensionType.EC_POINT_FORMATS, Buffer.from([1, 0])],
    [ExtensionType.SIGNATURE_ALGORITHMS, Buffer.from([0, 2, ECDSA_SHA256 >> 8, ECDSA_SHA256 & 0xff])],
  ];
}

/** The uint16 list in an extension (supported_groups, signature_algorithms). */
function uint16List(data: Buffer): number[] {
  const reader = new Reader(data);
  const list = reader.vector16();
  if (!reader.done || list.length % 2 !== 0) throw new DecodeError('a malformed extension list');
  const out: number[] = [];
  for (let i = 0; i < list.length; i += 2) out.push(list.readUInt16BE(i));
  return out;
}

/**
 * Whether a ClientHello's extensions allow ECDHE on secp256r1 with ECDSA-SHA256 signatures: each
 * extension absent means its default (RFC 8422 §4, RFC 5246 §7.4.1.4.1), present must name ours.
 */
export function helloAllowsEcdhe(extensions: Map<number, Buffer>): boolean {
  const groups = extensions.get(ExtensionType.SUPPORTED_GROUPS);
  if (groups && !uint16List(groups).includes(SECP256R1)) return false;
  const formats = extensions.get(ExtensionType.EC_POINT_FORMATS);
  if (formats && !new Reader(formats).vector8().includes(0)) return false;
  const algorithms = extensions.get(ExtensionType.SIGNATURE_ALGORITHMS);
  if (algorithms && !uint16List(algorithms).includes(ECDSA_SHA256)) return false;
  return true;
}

/** A client's certificate type extension: the types it lists, best first (RFC 7250 §3). */
export function parseCertificateTypes(data: Buffer): number[] {
  const reader = new Reader(data);
  const types = reader.vector8();
  if (!reader.done || types.length === 0) throw new DecodeError('a malformed certificate type extension');
  return [...types];
}

export function writeCertificateTypes(types: readonly number[]): Buffer {
  return vector8(Buffer.from(types));
}

/** The server's answer: one type. */
export function parseChosenCertificateType(data: Buffer): number {
  if (data.length !== 1) throw new DecodeError('a malformed certificate type in the ServerHello');
  return data[0]!;
}
