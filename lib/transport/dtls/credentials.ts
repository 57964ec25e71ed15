/**
 * ECDSA P-256 credentials for the ECDHE-ECDSA suites (LwM2M security modes 1, raw public key, and
 * 2, certificate): our own key with or without a certificate chain, and the checks a peer's
 * certificate chain or raw public key must pass. node:crypto only.
 *
 * A check that fails throws CertificateError naming the alert to send (RFC 5246 §7.2.2).
 */
import { isIP } from 'node:net';
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { AlertName } from './constants';

export type DtlsAuthentication = 'psk' | 'rawPublicKey' | 'certificate';

/** our own ECDSA P-256 key; with `chain` (PEM, leaf first) we present a certificate, without it a raw public key */
export interface EcdsaCredentials {
  key: string | KeyObject;
  chain?: string;
}

/** A certificate or raw key that did not check out, and the alert that says so. */
export class CertificateError extends Error {
  constructor(
    readonly alert: AlertName,
    message: string,
  ) {
    super(message);
  }
}

/** Our credentials, parsed once. */
export interface OwnEcdsa {
  privateKey: KeyObject;
  /** our public key, SubjectPublicKeyInfo DER: what we send as a raw public key */
  spki: Buffer;
  /** DER, leaf first; undefined: raw public key only */
  chain: Buffer[] | undefined;
}

/** Certificate chains longer than this (leaf included, trusted CA excluded) are not followed. */
export const MAX_CHAIN = 4;

/** The PEM certificates in a string, parsed (a TypeError names what is wrong: this is configuration). */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TypeError(`${what}: no PEM certificate in it`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new TypeError(`${what}: ${(error as Error).message}`);
    }
  });
}

export function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

export function spkiOf(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** Checks and parses our own credentials; a TypeError when they cannot work. */
export function loadEcdsaCredentials(credentials: EcdsaCredentials): OwnEcdsa {
  const privateKey = typeof credentials.key === 'string' ? createPrivateKey(credentials.key) : credentials.key;
  if (privateKey.type !== 'private' || !isP256(privateKey)) throw new TypeError('the ecdsa key must be a private EC key on P-256 (prime256v1)');
  const spki = spkiOf(createPublicKey(privateKey));
  if (credentials.chain === undefined) return { privateKey, spki, chain: undefined };
  const chain = parseCertificates(credentials.chain, 'the ecdsa chain');
  if (!spkiOf(chain[0]!.publicKey).equals(spki)) throw new TypeError("the ecdsa chain's first certificate is not of the ecdsa key");
  return { privateKey, spki, chain: chain.map((certificate) => certificate.raw) };
}

/** A peer's raw public key (SPKI DER), which must be EC P-256. */
export function parseRawPublicKey(spki: Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CertificateError('bad_certificate', 'the raw public key is not a SubjectPublicKeyInfo');
  }
  if (!isP256(key)) throw new CertificateError('unsupported_certificate', 'the raw public key is not an EC P-256 key');
  return key;
}

function checkValidity(certificate: X509Certificate, now: number): void {
  const from = Date.parse(certificate.validFrom);
  const to = Date.parse(certificate.validTo);
  if (!(from <= now && now <= to)) throw new CertificateError('certificate_expired', `certificate ${certificate.subject.replace(/\n/g, ', ')} is valid from ${certificate.validFrom} to ${certificate.validTo}, not now`);
}

/**
 * Checks a peer's chain (DER, leaf first, as its Certificate message gave it) against trusted CA
 * certificates: built from the leaf up through the certificates the peer sent, at most MAX_CHAIN
 * deep, to one the trusted list holds; every signature verifies, every certificate is valid now,
 * every issuer is a CA, the leaf key is EC P-256. Returns the leaf.
 */
export function verifyChain(ders: readonly Buffer[], trusted: readonly X509Certificate[], now = Date.now()): X509Certificate {
  if (ders.length === 0) throw new CertificateError('handshake_failure', 'the peer sent no certificate');
  let sent: X509Certificate[];
  try {
    sent = ders.map((der) => new X509Certificate(der));
  } catch (error) {
    throw new CertificateError('bad_certificate', `a certificate does not parse: ${(error as Error).message}`);
  }
  const leaf = sent[0]!;
  if (!isP256(leaf.publicKey)) throw new CertificateError('unsupported_certificate', 'the certificate key is not EC P-256');
  for (const certificate of sent) checkValidity(certificate, now);
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const anchor = trusted.find((ca) => current.checkIssued(ca));
    if (anchor) {
      if (!current.verify(anchor.publicKey)) throw new CertificateError('bad_certificate', `the signature on ${describe(current)} does not verify`);
      if (!anchor.ca) throw new CertificateError('unknown_ca', `the trusted ${describe(anchor)} is not a CA certificate`);
      checkValidity(anchor, now);
      return leaf;
    }
    const issuer = sent.find((candidate) => candidate !== current && current.checkIssued(candidate));
    if (!issuer) break;
    if (!current.verify(issuer.publicKey)) throw new CertificateError('bad_certificate', `the signature on ${describe(current)} does not verify`);
    if (!issuer.ca) throw new CertificateError('bad_certificate', `${describe(issuer)} issues certificates but is no CA`);
    current = issuer;
  }
  throw new CertificateError('unknown_ca', `${describe(current)} does not chain to a trusted CA`);
}

/** The subject's common name, if it has one. */
export function commonName(certificate: X509Certificate): string | undefined {
  for (const line of certificate.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** Whether the certificate names this host (subjectAltName DNS or IP, or else the CN). */
export function namesHost(certificate: X509Certificate, name: string): boolean {
  if (isIP(name)) return certificate.checkIP(name) !== undefined;
  return certificate.checkHost(name) !== undefined || commonName(certificate) === name;
}

function describe(certificate: X509Certificate): string {
  return `certificate "${certificate.subject.replace(/\n/g, ', ')}"`;
}
