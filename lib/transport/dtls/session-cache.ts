/**
 * The server's memory of finished full handshakes, by session id, so that a client naming one in
 * its ClientHello can get the abbreviated handshake (RFC 5246 §7.3, RFC 6347). Bounded in entries
 * (the least recently used goes first) and in age (counted from the full handshake, never renewed
 * by a resumption: a master secret is not used forever).
 */
import type { CipherSuiteName } from './constants';
import type { DtlsAuthentication } from './credentials';

/** What a resumed session needs from the full handshake that made it. */
export interface CachedSession {
  id: Buffer;
  masterSecret: Buffer;
  cipherSuite: CipherSuiteName;
  identity: string;
  extendedMasterSecret: boolean;
  /** HMAC-SHA256 of the identity's PSK under the master secret: a key replaced since no longer matches */
  keyCheck: Buffer;
  /** ms since the epoch of the full handshake */
  createdAt: number;
  /** how the full handshake authenticated the client (absent: psk); a resumed session keeps it */
  authentication?: DtlsAuthentication;
  /** a raw public key session's client key (SubjectPublicKeyInfo DER): it must still be listed to resume */
  peerKey?: Buffer;
}

export interface SessionCacheOptions {
  /** sessions kept (default 10,000); one more pushes out the least recently used */
  maxEntries?: number;
  /** ms a session may be resumed after its full handshake (default 24 h) */
  lifetime?: number;
}

export class SessionCache {
  /** by id in hex; a Map keeps insertion order, so the first entry is the least recently used */
  private readonly entries = new Map<string, CachedSession>();
  readonly maxEntries: number;
  readonly lifetime: number;

  constructor(options: SessionCacheOptions = {}, private readonly now: () => number = Date.now) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.lifetime = options.lifetime ?? 24 * 3600_000;
    if (!(this.maxEntries >= 1) || !(this.lifetime > 0)) throw new RangeError('a session cache needs maxEntries >= 1 and a positive lifetime');
  }

  get size(): number {
    return this.entries.size;
  }

  add(session: CachedSession): void {
    const key = session.id.toString('hex');
    this.entries.delete(key);
    this.entries.set(key, session);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** The unexpired session of this id, now the most recently used; an expired one is forgotten. */
  get(id: Buffer): CachedSession | undefined {
    if (id.length === 0) return undefined;
    const key = id.toString('hex');
    const session = this.entries.get(key);
    if (!session) return undefined;
    this.entries.delete(key);
    if (this.expired(session)) return undefined;
    this.entries.set(key, session);
    return session;
  }

  delete(id: Buffer): void {
    this.entries.delete(id.toString('hex'));
  }

  /** Forgets every session of a PSK identity (its key was replaced or removed); returns how many. */
  forgetIdentity(identity: string): number {
    let forgotten = 0;
    for (const [key, session] of this.entries) {
      if (session.identity !== identity) continue;
      this.entries.delete(key);
      forgotten++;
    }
    return forgotten;
  }

  /** Drops the expired sessions. */
  sweep(): void {
    for (const [key, session] of this.entries) if (this.expired(session)) this.entries.delete(key);
  }

  /** The unexpired sessions, least recently used first (so that adding them in order keeps the order). */
  list(): CachedSession[] {
    this.sweep();
    return [...this.entries.values()];
  }

  clear(): void {
    this.entries.clear();
  }

  private expired(session: CachedSession): boolean {
    return this.now() - session.createdAt >= this.lifetime;
  }
}
