/**
 * The PSKs of devices, by identity (what a DTLS handshake names) and by endpoint (what a device
 * registers or bootstraps as). One identity belongs to one endpoint; an endpoint has one identity.
 */
import type { PskCredential } from './types';

export class PskTable {
  private byIdentity = new Map<string, PskCredential>();
  private byEndpoint = new Map<string, PskCredential>();

  /** Replaces every credential; nothing changes when one is invalid. */
  replaceAll(credentials: readonly PskCredential[]): void {
    if (!Array.isArray(credentials)) throw new TypeError('credentials must be an array of { identity, key, endpoint }');
    const byIdentity = new Map<string, PskCredential>();
    const byEndpoint = new Map<string, PskCredential>();
    for (const credential of credentials) {
      const copy = checked(credential);
      if (byIdentity.has(copy.identity)) throw new TypeError(`the PSK identity ${copy.identity} is given twice`);
      byIdentity.set(copy.identity, copy);
      byEndpoint.set(copy.endpoint, copy);
    }
    this.byIdentity = byIdentity;
    this.byEndpoint = byEndpoint;
  }

  /** Adds or replaces one endpoint's credential; returns the one it replaced. */
  set(credential: PskCredential): PskCredential | undefined {
    const copy = checked(credential);
    const holder = this.byIdentity.get(copy.identity);
    if (holder && holder.endpoint !== copy.endpoint) throw new TypeError(`the PSK identity ${copy.identity} belongs to ${holder.endpoint}, not ${copy.endpoint}`);
    const old = this.remove(copy.endpoint);
    this.byIdentity.set(copy.identity, copy);
    this.byEndpoint.set(copy.endpoint, copy);
    return old;
  }

  /** Removes one endpoint's credential; returns it. */
  remove(endpoint: string): PskCredential | undefined {
    const old = this.byEndpoint.get(endpoint);
    if (!old) return undefined;
    this.byEndpoint.delete(endpoint);
    if (this.byIdentity.get(old.identity) === old) this.byIdentity.delete(old.identity);
    return old;
  }

  key(identity: string): Buffer | undefined {
    return this.byIdentity.get(identity)?.key;
  }

  /** The endpoint an identity is bound to. */
  endpointOf(identity: string): string | undefined {
    return this.byIdentity.get(identity)?.endpoint;
  }

  hasEndpoint(endpoint: string): boolean {
    return this.byEndpoint.has(endpoint);
  }

  /** Copies: a caller cannot change a key in place. */
  list(): PskCredential[] {
    return [...this.byEndpoint.values()].map((credential) => ({ ...credential, key: Buffer.from(credential.key) }));
  }
}

function checked(credential: PskCredential): PskCredential {
  if (!credential?.identity || typeof credential.identity !== 'string' || !Buffer.isBuffer(credential.key) || credential.key.length === 0 || !credential.endpoint) {
    throw new TypeError('a PSK credential needs an identity, a non-empty key (Buffer) and an endpoint');
  }
  return { identity: credential.identity, key: Buffer.from(credential.key), endpoint: credential.endpoint };
}
