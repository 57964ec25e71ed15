/**
 * The raw public keys of devices (Security Mode 1), each bound to the one endpoint it may register
 * as. A DTLS handshake presents a SubjectPublicKeyInfo; the table answers with its endpoint, which
 * becomes the session's identity.
 */
import { createPublicKey } from 'node:crypto';
import { isP256, spkiOf } from '../transport/dtls/credentials';
import type { RawPublicKeyCredential } from './types';

export class RawKeyTable {
  /** endpoint by SubjectPublicKeyInfo DER (hex) */
  private byKey = new Map<string, string>();
  private byEndpoint = new Map<string, { endpoint: string; publicKey: Buffer }>();

  /** Replaces every key; nothing changes when one is invalid. Returns the endpoints whose key was dropped or replaced. */
  replaceAll(credentials: readonly RawPublicKeyCredential[]): string[] {
    if (!Array.isArray(credentials)) throw new TypeError('rawPublicKeys must be an array of { endpoint, publicKey }');
    const byKey = new Map<string, string>();
    const byEndpoint = new Map<string, { endpoint: string; publicKey: Buffer }>();
    for (const credential of credentials) {
      const entry = checked(credential);
      const hex = entry.publicKey.toString('hex');
      const holder = byKey.get(hex);
      if (holder !== undefined) throw new TypeError(`one raw public key is given for both ${holder} and ${entry.endpoint}`);
      if (byEndpoint.has(entry.endpoint)) throw new TypeError(`the endpoint ${entry.endpoint} has two raw public keys`);
      byKey.set(hex, entry.endpoint);
      byEndpoint.set(entry.endpoint, entry);
    }
    const dropped = [...this.byEndpoint.values()].filter(({ endpoint, publicKey }) => !byEndpoint.get(endpoint)?.publicKey.equals(publicKey)).map(({ endpoint }) => endpoint);
    this.byKey = byKey;
    this.byEndpoint = byEndpoint;
    return dropped;
  }

  /** The endpoint a key (SubjectPublicKeyInfo DER) is bound to. */
  endpointOf(spki: Buffer): string | undefined {
    return this.byKey.get(spki.toString('hex'));
  }

  hasEndpoint(endpoint: string): boolean {
    return this.byEndpoint.has(endpoint);
  }

  /** The keys as PEM, by endpoint. */
  list(): RawPublicKeyCredential[] {
    return [...this.byEndpoint.values()].map(({ endpoint, publicKey }) => ({ endpoint, publicKey: createPublicKey({ key: publicKey, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }).toString() }));
  }
}

function checked(credential: RawPublicKeyCredential): { endpoint: string; publicKey: Buffer } {
  if (!credential || typeof credential.endpoint !== 'string' || credential.endpoint === '') throw new TypeError('a raw public key needs an endpoint and a publicKey (PEM, or SubjectPublicKeyInfo DER)');
  let spki: Buffer;
  try {
    const key = typeof credential.publicKey === 'string' ? createPublicKey(credential.publicKey) : createPublicKey({ key: credential.publicKey, format: 'der', type: 'spki' });
    if (!isP256(key)) throw new Error(`it is ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}, not EC P-256`.trim());
    spki = spkiOf(key);
  } catch (error) {
    throw new TypeError(`the raw public key of ${credential.endpoint} is not a P-256 public key: ${(error as Error).message}`);
  }
  return { endpoint: credential.endpoint, publicKey: spki };
}
