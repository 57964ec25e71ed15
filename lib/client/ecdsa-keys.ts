/**
 * Security modes 1 (Raw Public Key) and 2 (Certificate) as the Security object (/0) holds them, and
 * as DTLS needs them. The object holds DER (resource 3: our certificate, or our SubjectPublicKeyInfo;
 * 4: the server's certificate, or its SubjectPublicKeyInfo; 5: our private key, PKCS#8), while
 * users and DTLS speak PEM.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { isP256, spkiOf } from '../transport/dtls/credentials';

/** Mode 2: our certificate and key, and the server's certificate (its own, or a CA it chains to), PEM. */
export interface CertificateCredentials {
  certificate: string;
  key: string;
  server: string;
}

/** Mode 1: our P-256 private key and the server's public key, PEM. */
export interface RawPublicKeyCredentials {
  key: string;
  server: string;
}

/** How DTLS authenticates us and checks the server: what a DtlsClient takes (ecdsa, serverCa, serverPublicKey). */
export interface EcdsaConnection {
  ecdsa: { key: KeyObject; chain?: string };
  /** the server's certificate must chain to this CA (PEM) */
  serverCa?: string;
  /** the server's leaf key or raw public key must be this one (SubjectPublicKeyInfo DER) */
  serverPublicKey?: Buffer;
}

/** A P-256 private key from PEM or from DER (PKCS#8, or SEC1 as some devices store it); throws a TypeError saying what is wrong. */
export function privateKeyOf(key: string | Buffer, what: string): KeyObject {
  let object: KeyObject;
  try {
    if (typeof key === 'string') object = createPrivateKey(key);
    else {
      try {
        object = createPrivateKey({ key, format: 'der', type: 'pkcs8' });
      } catch {
        object = createPrivateKey({ key, format: 'der', type: 'sec1' });
      }
    }
  } catch (error) {
    throw new TypeError(`${what} is not a private key: ${(error as Error).message}`);
  }
  if (!isP256(object)) {
    throw new TypeError(`${what} must be an EC key on P-256 (secp256r1), not ${object.asymmetricKeyType}${object.asymmetricKeyDetails?.namedCurve ? ` ${object.asymmetricKeyDetails.namedCurve}` : ''}`);
  }
  return object;
}

/** A certificate from PEM or DER; throws a TypeError saying what is wrong. */
export function certificateOf(certificate: string | Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(certificate);
  } catch (error) {
    throw new TypeError(`${what} is not an X.509 certificate: ${(error as Error).message}`);
  }
}

/** A public key (SubjectPublicKeyInfo DER) from PEM (a public key, a private key or a certificate) or from SPKI DER. */
export function publicKeyDer(key: string | Buffer, what: string): Buffer {
  try {
    if (typeof key === 'string' && key.includes('CERTIFICATE')) return spkiOf(certificateOf(key, what).publicKey);
    return spkiOf(typeof key === 'string' ? createPublicKey(key) : createPublicKey({ key, format: 'der', type: 'spki' }));
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith(what)) throw error;
    throw new TypeError(`${what} is not a public key: ${(error as Error).message}`);
  }
}

/** Resources 3, 4 and 5 of a Security instance in mode 2 (Certificate). */
export function certificateResources(credentials: CertificateCredentials): { 3: Buffer; 4: Buffer; 5: Buffer } {
  const own = certificateOf(credentials.certificate, 'certificate.certificate');
  const key = privateKeyOf(credentials.key, 'certificate.key');
  if (!own.checkPrivateKey(key)) throw new TypeError('certificate.key is not the key of certificate.certificate');
  return { 3: own.raw, 4: certificateOf(credentials.server, 'certificate.server').raw, 5: key.export({ type: 'pkcs8', format: 'der' }) };
}

/** Resources 3, 4 and 5 of a Security instance in mode 1 (Raw Public Key). */
export function rawPublicKeyResources(credentials: RawPublicKeyCredentials): { 3: Buffer; 4: Buffer; 5: Buffer } {
  const key = privateKeyOf(credentials.key, 'rawPublicKey.key');
  return { 3: spkiOf(createPublicKey(key)), 4: publicKeyDer(credentials.server, 'rawPublicKey.server'), 5: key.export({ type: 'pkcs8', format: 'der' }) };
}

/**
 * What DTLS needs of a Security instance in mode 1 or 2, from its resources 3, 4 and 5; a string
 * says what is wrong. In mode 2 the server's certificate (resource 4) is taken as a trust anchor
 * when it is a CA, else as the one certificate the server must present (its key is pinned).
 */
export function ecdsaConnectionOf(mode: 'rpk' | 'certificate', own: unknown, server: unknown, secret: unknown): EcdsaConnection | string {
  const name = mode === 'rpk' ? 'Raw Public Key' : 'Certificate';
  if (!Buffer.isBuffer(secret) || secret.length === 0) return `the private key (resource 5) of ${name} mode is empty`;
  if (!Buffer.isBuffer(server) || server.length === 0) return `the server's ${mode === 'rpk' ? 'public key' : 'certificate'} (resource 4) is empty`;
  try {
    const key = privateKeyOf(secret, 'the private key (resource 5)');
    if (mode === 'rpk') {
      if (Buffer.isBuffer(own) && own.length > 0 && !publicKeyDer(own, 'our public key (resource 3)').equals(spkiOf(createPublicKey(key)))) {
        return 'our public key (resource 3) is not the public key of the private key (resource 5)';
      }
      return { ecdsa: { key }, serverPublicKey: publicKeyDer(server, "the server's public key (resource 4)") };
    }
    if (!Buffer.isBuffer(own) || own.length === 0) return 'our certificate (resource 3) is empty';
    const certificate = certificateOf(own, 'our certificate (resource 3)');
    if (!certificate.checkPrivateKey(key)) return 'our certificate (resource 3) is not of the private key (resource 5)';
    const serverCertificate = certificateOf(server, "the server's certificate (resource 4)");
    const ecdsa = { key, chain: certificate.toString() };
    return serverCertificate.ca ? { ecdsa, serverCa: serverCertificate.toString() } : { ecdsa, serverPublicKey: spkiOf(serverCertificate.publicKey) };
  } catch (error) {
    return (error as Error).message;
  }
}
