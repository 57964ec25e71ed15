/**
 * Cached DTLS sessions sealed for storage (a file, a Redis key), so that a restarted server can
 * still resume them: AES-256-GCM under a key derived (HKDF-SHA256) from a secret the operator
 * already keeps, e.g. the node's credentials. A master secret never rests in the clear; a blob that
 * was changed, or sealed under another secret, does not open (SessionStoreError).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { CIPHER_SUITES, type CipherSuiteName } from './constants';
import type { CachedSession } from './session-cache';
import type { DtlsAuthentication } from './credentials';

export class SessionStoreError extends Error {
  override readonly name = 'SessionStoreError';
}

/** format byte of a sealed list of cached sessions (AES-256-GCM, 12-byte nonce, 16-byte tag, JSON inside) */
const SESSIONS = 1;
const NONCE = 12;
const TAG = 16;
const INFO = Buffer.from('lwm2m dtls session store v1');

/** The sealing key for a secret (any length; at least 16 bytes of it should be unguessable). */
export function sessionStoreKey(secret: Buffer | string): Buffer {
  const input = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (input.length === 0) throw new SessionStoreError('the session store needs a non-empty secret');
  return Buffer.from(hkdfSync('sha256', input, Buffer.alloc(0), INFO, 32));
}

export interface StoredSession {
  id: string;
  masterSecret: string;
  cipherSuite: CipherSuiteName;
  identity: string;
  extendedMasterSecret: boolean;
  keyCheck: string;
  createdAt: number;
  /** absent in sessions sealed before ECDHE-ECDSA: psk */
  authentication?: DtlsAuthentication;
  peerKey?: string;
}

export function sealSessions(sessions: readonly CachedSession[], key: Buffer): Buffer {
  return sealJson(sessions.map(storedSession), key, SESSIONS);
}

export function openSessions(sealed: Buffer, key: Buffer): CachedSession[] {
  const stored = openJson(sealed, key, SESSIONS);
  if (!Array.isArray(stored)) throw new SessionStoreError('the sealed sessions are not a list');
  return stored.map((entry, index) => toSession(entry, index));
}

/** A cached session as JSON: its secrets hex-encoded (the JSON is only ever stored sealed). */
export function storedSession(session: CachedSession): StoredSession {
  return {
    id: session.id.toString('hex'),
    masterSecret: session.masterSecret.toString('hex'),
    cipherSuite: session.cipherSuite,
    identity: session.identity,
    extendedMasterSecret: session.extendedMasterSecret,
    keyCheck: session.keyCheck.toString('hex'),
    createdAt: session.createdAt,
    ...(session.authentication ? { authentication: session.authentication } : {}),
    ...(session.peerKey ? { peerKey: session.peerKey.toString('hex') } : {}),
  };
}

/**
 * Seals any JSON value: format byte, 12-byte nonce, AES-256-GCM ciphertext, 16-byte tag. The format
 * byte is authenticated too, so a blob of one kind never opens as another.
 */
export function sealJson(value: unknown, key: Buffer, format: number): Buffer {
  if (key.length !== 32) throw new SessionStoreError('the session store key must be 32 bytes (sessionStoreKey)');
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from([format]));
  const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([format]), nonce, body, cipher.getAuthTag()]);
}

/** The JSON value of a blob sealJson made with this key and format; SessionStoreError for anything else. */
export function openJson(sealed: Buffer, key: Buffer, format: number): unknown {
  if (key.length !== 32) throw new SessionStoreError('the session store key must be 32 bytes (sessionStoreKey)');
  if (!Buffer.isBuffer(sealed) || sealed.length < 1 + NONCE + TAG || sealed[0] !== format) throw new SessionStoreError('not a sealed session store (format or length)');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 1 + NONCE));
  decipher.setAAD(sealed.subarray(0, 1));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
  let plaintext: string;
  try {
    plaintext = Buffer.concat([decipher.update(sealed.subarray(1 + NONCE, sealed.length - TAG)), decipher.final()]).toString('utf8');
  } catch {
    throw new SessionStoreError('the sealed sessions do not authenticate: changed, or sealed under another secret');
  }
  try {
    return JSON.parse(plaintext);
  } catch {
    throw new SessionStoreError('the sealed sessions are not JSON');
  }
}

/** A stored session back, checked; SessionStoreError when anything is missing or wrong. */
export function toSession(entry: unknown, index: number): CachedSession {
  const value = entry as Partial<StoredSession> | null;
  const hex = (text: unknown, min: number, max = min): Buffer | undefined =>
    typeof text === 'string' && text.length % 2 === 0 && text.length >= min * 2 && text.length <= max * 2 && /^[0-9a-f]*$/.test(text) ? Buffer.from(text, 'hex') : undefined;
  const id = hex(value?.id, 32);
  const masterSecret = hex(value?.masterSecret, 48);
  const keyCheck = hex(value?.keyCheck, 32);
  const suite = value?.cipherSuite;
  if (!value || !id || !masterSecret || !keyCheck || typeof suite !== 'string' || !(suite in CIPHER_SUITES) || typeof value.identity !== 'string' || typeof value.extendedMasterSecret !== 'boolean' || typeof value.createdAt !== 'number') {
    throw new SessionStoreError(`sealed session ${index} is malformed`);
  }
  const authentication = value.authentication;
  if (authentication !== undefined && authentication !== 'psk' && authentication !== 'rawPublicKey' && authentication !== 'certificate') throw new SessionStoreError(`sealed session ${index} is malformed`);
  // a SubjectPublicKeyInfo: a P-256 one is 91 bytes
  const peerKey = value.peerKey === undefined ? undefined : hex(value.peerKey, 1, 512);
  if (value.peerKey !== undefined && !peerKey) throw new SessionStoreError(`sealed session ${index} is malformed`);
  return { id, masterSecret, keyCheck, cipherSuite: suite, identity: value.identity, extendedMasterSecret: value.extendedMasterSecret, createdAt: value.createdAt, ...(authentication ? { authentication } : {}), ...(peerKey ? { peerKey } : {}) };
}

