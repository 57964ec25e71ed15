/**
 * A DTLS server's live state for a restart of its process: the established connections (enough to
 * go on exchanging records with each peer without a handshake) and the resumption cache, sealed
 * together under the session store's key (session-store.ts). Nothing secret leaves this module
 * unsealed: the master secrets and randoms the record keys are derived from travel only inside the
 * AES-256-GCM blob.
 *
 * What is kept of a connection: the peer's address, the suite, the master secret and both randoms
 * (the record keys are derived again from them, as in the handshake), the next write sequence
 * number, the anti-replay window, both connection IDs, the identity and how it authenticated, the
 * session id (so it can still be resumed), and when the session was made and last heard from.
 */
import type { CipherSuiteName } from './constants';
import { CIPHER_SUITES } from './constants';
import type { DtlsAuthentication } from './credentials';
import type { CachedSession } from './session-cache';
import { SessionStoreError, openJson, sealJson, storedSession, toSession } from './session-store';

/** One established connection, as DtlsServer exports and imports it. */
export interface ConnectionState {
  address: string;
  port: number;
  cipherSuite: CipherSuiteName;
  identity: string;
  authentication: DtlsAuthentication;
  extendedMasterSecret: boolean;
  /** 48 bytes; with the randoms, the record keys of both directions */
  masterSecret: Buffer;
  clientRandom: Buffer;
  serverRandom: Buffer;
  /** always 1: this server never renegotiates */
  epoch: number;
  /** the sequence number of the next record we send (in `epoch`) */
  writeSequence: number;
  /** the anti-replay window: the highest sequence number received (-1: none), and a bit for each of the 64 before it */
  replay: { newest: number; seen: bigint };
  /** the connection ID the peer puts in its records (ours), when connection IDs were negotiated */
  readCid?: Buffer;
  /** the connection ID we put in ours (may be empty) */
  writeCid?: Buffer;
  /** HMAC of the PSK (or of the client's public key) under the master secret, so a key replaced meanwhile is noticed */
  keyCheck?: Buffer;
  /** raw public key sessions: the client's key (SubjectPublicKeyInfo DER), which must still be listed */
  peerKey?: Buffer;
  /** the session id of the full handshake (empty without a session cache) */
  sessionId: Buffer;
  /** whether it came of an abbreviated handshake */
  resumed: boolean;
  /** ms since the epoch when the master secret was made (the full handshake) */
  createdAt: number;
  /** ms since the epoch when the peer was last heard from */
  lastActivity: number;
  /** ms since the epoch when this state was taken (the write sequence number was read) */
  savedAt: number;
}

/** Everything a DtlsServer hands over to its successor. */
export interface DtlsState {
  connections: ConnectionState[];
  sessions: CachedSession[];
}

/** format byte of a sealed DtlsState (1 is a list of cached sessions alone) */
const STATE = 2;
/** the largest DTLS sequence number is 2^48 - 1 */
export const MAX_SEQUENCE = 2 ** 48 - 1;

export function sealDtlsState(state: DtlsState, key: Buffer): Buffer {
  return sealJson({ connections: state.connections.map(storedConnection), sessions: state.sessions.map(storedSession) }, key, STATE);
}

/** The state in a blob sealDtlsState made with this key; SessionStoreError when it does not open or any part of it is malformed (nothing is taken then). */
export function openDtlsState(sealed: Buffer, key: Buffer): DtlsState {
  const value = openJson(sealed, key, STATE) as { connections?: unknown; sessions?: unknown } | null;
  if (!value || typeof value !== 'object' || !Array.isArray(value.connections) || !Array.isArray(value.sessions)) throw new SessionStoreError('the sealed DTLS state is malformed');
  return { connections: value.connections.map((entry, index) => fromStored(entry, index)), sessions: value.sessions.map((entry, index) => toSession(entry, index)) };
}

/**
 * Checks connection states handed to an import before any is used: a partial import would leave
 * devices half restored, so one malformed entry refuses them all (SessionStoreError).
 */
export function checkConnectionStates(states: unknown): ConnectionState[] {
  if (!Array.isArray(states)) throw new SessionStoreError('the DTLS connections to import are not a list');
  return states.map((state, index) => fromStored(storedConnection(state as ConnectionState, index), index));
}

interface StoredConnection {
  address: string;
  port: number;
  cipherSuite: string;
  identity: string;
  authentication: string;
  extendedMasterSecret: boolean;
  masterSecret: string;
  clientRandom: string;
  serverRandom: string;
  epoch: number;
  writeSequence: number;
  replayNewest: number;
  replaySeen: string;
  readCid?: string;
  writeCid?: string;
  keyCheck?: string;
  peerKey?: string;
  sessionId: string;
  resumed: boolean;
  createdAt: number;
  lastActivity: number;
  savedAt: number;
}

function storedConnection(state: ConnectionState, index = 0): StoredConnection {
  const hex = (value: unknown): string => {
    if (!Buffer.isBuffer(value)) throw new SessionStoreError(`DTLS connection ${index} is malformed`);
    return value.toString('hex');
  };
  if (!state || typeof state !== 'object' || !state.replay || typeof state.replay.seen !== 'bigint') throw new SessionStoreError(`DTLS connection ${index} is malformed`);
  return {
    address: state.address,
    port: state.port,
    cipherSuite: state.cipherSuite,
    identity: state.identity,
    authentication: state.authentication,
    extendedMasterSecret: state.extendedMasterSecret,
    masterSecret: hex(state.masterSecret),
    clientRandom: hex(state.clientRandom),
    serverRandom: hex(state.serverRandom),
    epoch: state.epoch,
    writeSequence: state.writeSequence,
    replayNewest: state.replay.newest,
    replaySeen: state.replay.seen.toString(16),
    ...(state.readCid !== undefined ? { readCid: hex(state.readCid) } : {}),
    ...(state.writeCid !== undefined ? { writeCid: hex(state.writeCid) } : {}),
    ...(state.keyCheck !== undefined ? { keyCheck: hex(state.keyCheck) } : {}),
    ...(state.peerKey !== undefined ? { peerKey: hex(state.peerKey) } : {}),
    sessionId: hex(state.sessionId),
    resumed: state.resumed,
    createdAt: state.createdAt,
    lastActivity: state.lastActivity,
    savedAt: state.savedAt,
  };
}

function fromStored(entry: unknown, index: number): ConnectionState {
  const value = entry as Partial<StoredConnection> | null;
  const bad = (): never => {
    throw new SessionStoreError(`DTLS connection ${index} is malformed`);
  };
  const bytes = (text: unknown, min: number, max: number): Buffer => {
    if (typeof text !== 'string' || text.length % 2 !== 0 || text.length < 2 * min || text.length > 2 * max || !/^[0-9a-f]*$/.test(text)) return bad();
    return Buffer.from(text, 'hex');
  };
  const integer = (number: unknown, min: number, max: number): number => (typeof number === 'number' && Number.isInteger(number) && number >= min && number <= max ? number : bad());
  const time = (number: unknown): number => (typeof number === 'number' && Number.isFinite(number) && number >= 0 ? number : bad());
  if (!value || typeof value !== 'object') return bad();
  const suite = value.cipherSuite;
  const authentication = value.authentication;
  if (typeof suite !== 'string' || !Object.hasOwn(CIPHER_SUITES, suite)) return bad();
  if (authentication !== 'psk' && authentication !== 'rawPublicKey' && authentication !== 'certificate') return bad();
  if (typeof value.address !== 'string' || value.address === '' || typeof value.identity !== 'string') return bad();
  if (typeof value.extendedMasterSecret !== 'boolean' || typeof value.resumed !== 'boolean') return bad();
  if (typeof value.replaySeen !== 'string' || !/^[0-9a-f]{1,16}$/.test(value.replaySeen)) return bad();
  const state: ConnectionState = {
    address: value.address,
    port: integer(value.port, 1, 65535),
    cipherSuite: suite as CipherSuiteName,
    identity: value.identity,
    authentication,
    extendedMasterSecret: value.extendedMasterSecret,
    masterSecret: bytes(value.masterSecret, 48, 48),
    clientRandom: bytes(value.clientRandom, 32, 32),
    serverRandom: bytes(value.serverRandom, 32, 32),
    epoch: integer(value.epoch, 1, 1),
    writeSequence: integer(value.writeSequence, 0, MAX_SEQUENCE),
    replay: { newest: integer(value.replayNewest, -1, MAX_SEQUENCE), seen: BigInt(`0x${value.replaySeen}`) },
    sessionId: bytes(value.sessionId, 0, 32),
    resumed: value.resumed,
    createdAt: time(value.createdAt),
    lastActivity: time(value.lastActivity),
    savedAt: time(value.savedAt),
  };
  if (value.readCid !== undefined) state.readCid = bytes(value.readCid, 1, 255);
  if (value.writeCid !== undefined) state.writeCid = bytes(value.writeCid, 0, 255);
  if (value.keyCheck !== undefined) state.keyCheck = bytes(value.keyCheck, 32, 32);
  if (value.peerKey !== undefined) state.peerKey = bytes(value.peerKey, 1, 512);
  return state;
}

/** sequence numbers skipped on every import, beyond the time-based part */
export const IMPORT_GAP = 2 ** 32;
/** sequence numbers per ms a connection is assumed never to exceed (about a million records a second: far beyond one peer, or this process) */
export const RECORDS_PER_MS = 1024;

/**
 * The first write sequence number a restored connection may use, or undefined when the space is
 * used up (the peer must handshake again).
 *
 * Why no AEAD nonce (salt + epoch + sequence) is ever used twice: the state was taken at
 * `savedAt` with `writeSequence` next; whatever run went on after that sent at most
 * RECORDS_PER_MS per ms since `savedAt`, until it stopped. Starting at writeSequence + IMPORT_GAP +
 * (now - savedAt) * RECORDS_PER_MS lands past all of it, however many times the same saved state
 * is imported again (two crashes in a row: the later import starts past what the earlier one sent,
 * since it comes later). This does not depend on a save after the import having reached the disk;
 * the server saves anyway, so the next import starts from the advanced number. IMPORT_GAP covers a
 * clock that went back (an NTP step): the time part is then taken as 0.
 */
export function resumedWriteSequence(state: ConnectionState, now: number): number | undefined {
  const next = state.writeSequence + IMPORT_GAP + Math.max(0, Math.ceil(now - state.savedAt)) * RECORDS_PER_MS;
  return next <= MAX_SEQUENCE - IMPORT_GAP ? next : undefined;
}
