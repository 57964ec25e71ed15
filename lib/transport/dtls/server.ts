/**
 * A DTLS 1.2 server with pre-shared keys (RFC 6347, RFC 4279) on one UDP socket. It looks like a
 * socket to the CoAP endpoint (DatagramSocket): `message` delivers each peer's decrypted
 * application data with the peer's PSK identity, `send` encrypts to the peer's session.
 *
 * Before any per-peer state there is a stateless cookie exchange; handshakes and sessions are
 * capped; a flight is retransmitted with back-off; records are checked against an anti-replay
 * window; renegotiation is refused. A full handshake gives the client a session id, and a later
 * ClientHello naming it gets the abbreviated handshake (session-cache.ts). What fails to parse or
 * authenticate is dropped, never thrown; each drop is told as a `drop` event ({ address, port,
 * reason, size }) to whoever listens, and each handshake that fails as `handshakeFailed`
 * (DtlsHandshakeFailure).
 *
 * Connection IDs (RFC 9146): a client that offers the extension gets an ID of its own; its
 * tls12_cid records are found by that ID from any address, and a record that authenticates and is
 * newer than any before moves the session to the address it came from (`sessionMoved`, a
 * SessionMove): what the server sends goes there from then on.
 *
 * Across a restart of the process: `exportConnections` gives the established connections (keys
 * included: seal them, connection-store.ts), `close(cb, { notify: false })` closes without telling
 * the peers, and a successor's `importConnections` takes them up before it listens, so a peer's
 * next record needs no handshake.
 */
import type { Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { createHmac, randomBytes, timingSafeEqual, type ECDH, type KeyObject, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { bindUdpSocket, type DatagramInfo, type DatagramSocket, type SocketBufferSizes } from '../datagram';
import { protectionsFor, keyBlockLength, type RecordProtection } from './cipher';
import {
  AlertDescription,
  AlertLevel,
  CIPHER_SUITES,
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  ExtensionType,
  HANDSHAKE_HEADER,
  HandshakeType,
  RECORD_HEADER,
  alertName,
  isEcdheSuite,
  DEFAULT_DTLS_TIMING,
  type AlertName,
  type DtlsTiming,
  type CipherSuiteName,
} from './constants';
import { CookieJar } from './cookie';
import {
  DecodeError,
  Reassembler,
  fragmentHandshake,
  parseClientHello,
  parseHandshakeFragments,
  parsePskIdentity,
  wantsRenegotiationInfo,
  HANDSHAKE_NAMES,
  writeHandshake,
  writeHelloVerifyRequest,
  writeServerHello,
  type ClientHello,
  type HandshakeFragment,
  type HandshakeMessage,
} from './handshake';
import { HandshakeHash, extendedMasterSecret, finishedVerifyData, keyBlock, masterSecret, pskPremasterSecret } from './prf';
import { parseRecords, writeRecord, type DtlsRecord } from './record';
import { parseConnectionIdExtension, unwrapInner, wrapInner, writeConnectionIdExtension } from './connection-id';
import { ReplayWindow } from './replay';
import { checkConnectionStates, resumedWriteSequence, type ConnectionState } from './connection-store';
import { SessionCache, type CachedSession, type SessionCacheOptions } from './session-cache';
import { CertificateError, commonName, loadEcdsaCredentials, parseCertificates, parseRawPublicKey, spkiOf, verifyChain, type DtlsAuthentication, type EcdsaCredentials, type OwnEcdsa } from './credentials';
import {
  CertificateType,
  ecdhSecret,
  helloAllowsEcdhe,
  newEcdh,
  parseCertificateChain,
  parseCertificateTypes,
  parseClientKeyExchange,
  parseRawPublicKey as parseRawPublicKeyMessage,
  verifyCertificateVerify,
  writeCertificateChain,
  writeCertificateRequest,
  writeCertificateTypes,
  writeEcdhParams,
  writeRawPublicKey,
  writeServerKeyExchange,
} from './ecdhe';

export interface DtlsServerOptions {
  /** the key of a PSK identity, or undefined when the identity is unknown (the handshake then fails); absent: no PSK suites */
  psk?(identity: string): Buffer | undefined;
  /** the server's own ECDSA P-256 key (+ chain for certificate mode, LwM2M mode 2; without: raw public key, mode 1) */
  ecdsa?: EcdsaCredentials;
  /** PEM of trusted CA certificate(s); client certificates must chain to one (their CN is the identity) */
  clientCa?: string;
  /** identity of a client raw public key (SPKI DER), undefined = unknown (refused with access_denied) */
  clientRawPublicKey?(spki: Buffer): string | undefined;
  /**
   * in order of preference (default: the PSK suites CCM_8, GCM, CBC when `psk` is given, then the
   * ECDHE-ECDSA suites CCM_8, GCM when `ecdsa` is); a suite is chosen only with credentials for it
   */
  cipherSuites?: CipherSuiteName[];
  /** handshakes in progress at once (default 256); more ClientHellos are dropped */
  maxHandshakes?: number;
  /** established sessions (default 10,000); a new one then ends the least recently used */
  maxSessions?: number;
  /** ms a session may stay silent before it is forgotten (default 24 h) */
  sessionTimeout?: number;
  /** ms a handshake may take in all (default 120 s) */
  handshakeTimeout?: number;
  timing?: Partial<DtlsTiming>;
  /** largest datagram sent (default 1200) */
  mtu?: number;
  /** refuse clients without extended master secret (RFC 7627; default false: used when offered) */
  requireExtendedMasterSecret?: boolean;
  /** bytes of receive and send buffer asked of the kernel for the socket (default 4 MiB; 0: the system's default) */
  socketBufferSize?: number;
  /** RFC 9146 connection IDs for clients that offer them, so sessions survive NAT rebinding (default true) */
  connectionId?: boolean;
  /**
   * Session resumption (RFC 5246 §7.3): each full handshake gives the client a session id, and a
   * ClientHello naming one still cached gets the abbreviated handshake. Default: on, 10,000
   * sessions for 24 h; false: no session ids.
   */
  sessionCache?: SessionCacheOptions | false;
}

/** A session that moved: one of its records authenticated from another address (connection IDs). */
export interface SessionMove {
  from: { address: string; port: number };
  to: { address: string; port: number };
  identity: string;
}

/** A datagram, or one record of it, that the server dropped, and why. */
export interface DtlsDrop {
  address: string;
  port: number;
  reason: string;
  /** bytes of the datagram it came in */
  size: number;
}

/** A handshake that did not end in a session, and why. */
export interface DtlsHandshakeFailure {
  address: string;
  port: number;
  /** the PSK identity the client named, or its certificate's CN or raw key's identity, when it got that far */
  identity?: string;
  reason: string;
  /** the alert sent to the client (or, when the client gave up, the one it sent), e.g. `unknown_psk_identity` */
  alert?: string;
}

export interface SessionInfo {
  address: string;
  port: number;
  identity: string;
  cipherSuite: CipherSuiteName;
  /** whether the master secret is bound to the handshake (RFC 7627) */
  extendedMasterSecret: boolean;
  /** the connection ID the server issued to this session (hex), when the client asked for connection IDs */
  connectionId?: string;
  /** whether this session came of an abbreviated handshake (a cached session resumed) */
  resumed: boolean;
  /** how the client authenticated (a resumed session: as in its full handshake) */
  authentication: DtlsAuthentication;
}

/** The identity a connection's client named, when it named one (`''` until its ClientKeyExchange). */
function identityOf(connection: Connection): { identity?: string } {
  return connection.identity === '' ? {} : { identity: connection.identity };
}

const PSK_SUITES: CipherSuiteName[] = ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS_PSK_WITH_AES_128_GCM_SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'];
const ECDHE_SUITES: CipherSuiteName[] = ['TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'];

/** What an ECDHE-ECDSA handshake with this client uses (RFC 7250 §4): each side's certificate type, and what to echo. */
interface EcdheChoice {
  clientType: CertificateType;
  serverType: CertificateType;
  /** the client sent client_certificate_type / server_certificate_type / ec_point_formats: answer each */
  echoClientType: boolean;
  echoServerType: boolean;
  echoPointFormats: boolean;
}
/** Bytes of the connection IDs the server issues: 2^48 values, random, so unguessable and unique with a check. */
const CID_LENGTH = 6;
/** epoch-1 records kept while the ChangeCipherSpec they follow is still missing */
const MAX_EARLY_RECORDS = 8;

/** One handshake message of a flight, or a ChangeCipherSpec; sealed anew on every (re)send. */
interface FlightEntry {
  type: ContentType;
  epoch: number;
  data: Buffer;
}

/** The DTLS state of one peer: a handshake in progress, then a session. */
class Connection {
  state: 'handshake' | 'established' = 'handshake';
  identity = '';
  authentication: DtlsAuthentication = 'psk';
  readonly suite: CipherSuiteName;
  lastActivity = Date.now();
  readonly startedAt = Date.now();

  // record layer
  writeEpoch = 0;
  readonly writeSequence = [0, 0];
  readProtection: RecordProtection | undefined;
  writeProtection: RecordProtection | undefined;
  readonly replay = new ReplayWindow();
  /** the ID the client puts in its records (we issued it); undefined without connection IDs */
  readCid: Buffer | undefined;
  /** the ID the client asked for in ours; undefined or empty: plain records to it */
  writeCid: Buffer | undefined;
  changeCipherSpecSeen = false;
  readonly early: DtlsRecord[] = [];

  // handshake
  readonly hash: HandshakeHash;
  /** ECDHE-ECDSA only: what was negotiated, our ephemeral key, the client's key once its Certificate checked out, and whether its CertificateVerify did */
  ecdhe: EcdheChoice | undefined;
  ecdh: ECDH | undefined;
  peerKey: KeyObject | undefined;
  /** a raw public key session's client key (SubjectPublicKeyInfo DER): a resumption or a restore finds it still listed */
  rawKey: Buffer | undefined;
  certificateVerified = false;
  readonly reassembler: Reassembler;
  readonly clientHelloSeq: number;
  readonly clientRandom: Buffer;
  readonly serverRandom: Buffer;
  readonly extendedMasterSecret: boolean;
  /** when the master secret was made: the full handshake, also for a session resumed from it */
  sessionCreatedAt = Date.now();
  nextMessageSeq: number;
  master: Buffer | undefined;
  /** the id given in our ServerHello (empty without a session cache) */
  sessionId: Buffer = Buffer.alloc(0);
  /** an abbreviated handshake: the client's Finished is the last message */
  resumed = false;
  /** of the PSK the full handshake used, for the session cache */
  keyCheck: Buffer | undefined;
  pendingRead: RecordProtection | undefined;
  flight: FlightEntry[] = [];
  timer: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout | undefined;
  timeout = 0;
  sends = 0;

  constructor(
    public address: string,
    public port: number,
    hello: { clientRandom: Buffer; messageSeq: number; serverRandom?: Buffer },
    firstSequence: number,
    suite: CipherSuiteName,
    extended: boolean,
    ecdhe: EcdheChoice | undefined,
  ) {
    this.suite = suite;
    this.ecdhe = ecdhe;
    this.hash = new HandshakeHash(ecdhe !== undefined);
    this.clientHelloSeq = hello.messageSeq;
    this.clientRandom = hello.clientRandom;
    this.serverRandom = hello.serverRandom ?? randomBytes(32);
    this.extendedMasterSecret = extended;
    this.nextMessageSeq = hello.messageSeq;
    this.reassembler = new Reassembler(hello.messageSeq + 1);
    this.writeSequence[0] = firstSequence;
  }

  get key(): string {
    return `${this.address}:${this.port}`;
  }

  /** The record protection of both directions, from a master secret and this connection's randoms. */
  protections(master: Buffer): { read: RecordProtection; write: RecordProtection } {
    return protectionsFor(this.suite, keyBlock(master, this.clientRandom, this.serverRandom, keyBlockLength(this.suite)), true);
  }
}

export class DtlsServer extends EventEmitter implements DatagramSocket {
  private socket: Socket | undefined;
  private readonly connections = new Map<string, Connection>();
  /** sessions and handshakes by the connection ID issued to them (hex) */
  private readonly byCid = new Map<string, Connection>();
  private readonly cookies = new CookieJar();
  private readonly suites: CipherSuiteName[];
  private readonly timing: DtlsTiming;
  private readonly mtu: number;
  private handshakes = 0;
  /** bytes of the datagram being read, for the drops it causes */
  private datagramSize = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private buffers: SocketBufferSizes | undefined;
  private readonly sessionCache: SessionCache | undefined;
  private readonly own: OwnEcdsa | undefined;
  private readonly trusted: X509Certificate[];

  constructor(private readonly options: DtlsServerOptions) {
    super();
    if (!options.psk && !options.ecdsa) throw new TypeError('a DTLS server needs psk or ecdsa credentials');
    this.own = options.ecdsa ? loadEcdsaCredentials(options.ecdsa) : undefined;
    if (this.own && !options.clientCa && !options.clientRawPublicKey) throw new TypeError('with ecdsa, a DTLS server needs clientCa or clientRawPublicKey to authenticate its clients');
    this.trusted = options.clientCa ? parseCertificates(options.clientCa, 'clientCa') : [];
    this.suites = options.cipherSuites ?? [...(options.psk ? PSK_SUITES : []), ...(options.ecdsa ? ECDHE_SUITES : [])];
    this.sessionCache = options.sessionCache === false ? undefined : new SessionCache(options.sessionCache);
    this.timing = { ...DEFAULT_DTLS_TIMING, ...options.timing };
    this.mtu = options.mtu ?? 1200;
  }

  async listen(port = 0, address?: string): Promise<AddressInfo> {
    if (this.socket) throw new Error('the DTLS server is already listening');
    const { socket, buffers } = await bindUdpSocket(port, address, this.options.socketBufferSize);
    this.buffers = buffers;
    socket.on('message', (datagram, info) => this.receive(datagram, info.address, info.port));
    socket.on('error', (error) => this.emit('error', error));
    this.socket = socket;
    const every = Math.min(this.sessionTimeout, 30_000);
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
    return socket.address();
  }

  address(): AddressInfo {
    if (!this.socket) throw new Error('the DTLS server is not listening');
    return this.socket.address();
  }

  /** The socket's buffer sizes, as the kernel reports them. */
  socketBuffers(): SocketBufferSizes | undefined {
    return this.socket ? this.buffers : undefined;
  }

  /** Established sessions and handshakes in progress. */
  get counts(): { sessions: number; handshakes: number } {
    return { sessions: this.connections.size - this.handshakes, handshakes: this.handshakes };
  }

  /** The session with this peer, if there is one. */
  session(address: string, port: number): SessionInfo | undefined {
    const connection = this.connections.get(`${address}:${port}`);
    if (connection?.state !== 'established') return undefined;
    const info: SessionInfo = {
      address,
      port,
      identity: connection.identity,
      cipherSuite: connection.suite,
      extendedMasterSecret: connection.extendedMasterSecret,
      resumed: connection.resumed,
      authentication: connection.authentication,
    };
    if (connection.readCid) info.connectionId = connection.readCid.toString('hex');
    return info;
  }

  /** Encrypts application data to the peer's session; without a session it is dropped. */
  send(data: Buffer, port: number, address: string): void {
    const connection = this.connections.get(`${address}:${port}`);
    if (connection?.state !== 'established') return;
    this.transmit(connection, [this.seal(connection, ContentType.APPLICATION_DATA, 1, data)]);
  }

  /** Ends a session with close_notify. */
  end(address: string, port: number): void {
    const connection = this.connections.get(`${address}:${port}`);
    if (!connection) return;
    if (connection.state === 'established') this.alert(connection, AlertLevel.WARNING, 'close_notify');
    this.forget(connection, 'closed by the server');
  }

  /** Ends every session and handshake of an identity (its key was replaced or revoked), and forgets its cached sessions; returns how many ended. */
  endIdentity(identity: string): number {
    this.sessionCache?.forgetIdentity(identity);
    let ended = 0;
    for (const connection of [...this.connections.values()]) {
      if (connection.identity !== identity) continue;
      this.end(connection.address, connection.port);
      ended++;
    }
    return ended;
  }

  /** The cached sessions (master secrets included: seal them before they leave memory, see session-store.ts). */
  exportSessions(): CachedSession[] {
    return this.sessionCache?.list() ?? [];
  }

  /** Takes sessions exported by an earlier server (e.g. before a restart); expired ones are left out. Returns how many are cached. */
  importSessions(sessions: readonly CachedSession[]): number {
    const cache = this.sessionCache;
    if (!cache) return 0;
    for (const session of sessions) if (Date.now() - session.createdAt < cache.lifetime) cache.add(session);
    return cache.size;
  }

  /**
   * The established connections, secrets included (seal them: connection-store.ts), so that a
   * server in a restarted process goes on with them without a handshake (importConnections).
   */
  exportConnections(): ConnectionState[] {
    const now = Date.now();
    const states: ConnectionState[] = [];
    for (const connection of this.connections.values()) {
      if (connection.state !== 'established' || !connection.master) continue;
      states.push({
        address: connection.address,
        port: connection.port,
        cipherSuite: connection.suite,
        identity: connection.identity,
        authentication: connection.authentication,
        extendedMasterSecret: connection.extendedMasterSecret,
        masterSecret: connection.master,
        clientRandom: connection.clientRandom,
        serverRandom: connection.serverRandom,
        epoch: 1,
        writeSequence: connection.writeSequence[1]!,
        replay: connection.replay.state(),
        ...(connection.readCid ? { readCid: connection.readCid } : {}),
        ...(connection.writeCid ? { writeCid: connection.writeCid } : {}),
        ...(connection.keyCheck ? { keyCheck: connection.keyCheck } : {}),
        ...(connection.rawKey ? { peerKey: connection.rawKey } : {}),
        sessionId: connection.sessionId,
        resumed: connection.resumed,
        createdAt: connection.sessionCreatedAt,
        lastActivity: connection.lastActivity,
        savedAt: now,
      });
    }
    return states;
  }

  /**
   * Takes up connections an earlier server exported, established at once: keys derived again from
   * the master secret and randoms, the replay window as it was, the write sequence number moved
   * past anything the earlier server can have sent (resumedWriteSequence). Left out: connections
   * idle longer than sessionTimeout or whose session is older than the session lifetime, those
   * whose suite or credentials this server no longer has (a PSK changed meanwhile), and those whose
   * address or connection ID is taken here. A malformed list is refused whole (SessionStoreError).
   * Returns how many were taken.
   */
  importConnections(states: readonly ConnectionState[]): number {
    const checked = checkConnectionStates(states);
    const now = Date.now();
    let imported = 0;
    for (const state of checked) {
      const write = this.restorable(state, now) ? resumedWriteSequence(state, now) : undefined;
      if (write === undefined) continue;
      const hello = { clientRandom: state.clientRandom, serverRandom: state.serverRandom, messageSeq: 0 };
      const connection = new Connection(state.address, state.port, hello, 0, state.cipherSuite, state.extendedMasterSecret, undefined);
      const { read, write: protection } = connection.protections(state.masterSecret);
      Object.assign(connection, {
        state: 'established',
        identity: state.identity,
        authentication: state.authentication,
        master: state.masterSecret,
        keyCheck: state.keyCheck,
        rawKey: state.peerKey,
        sessionId: state.sessionId,
        resumed: state.resumed,
        sessionCreatedAt: state.createdAt,
        lastActivity: state.lastActivity,
        readProtection: read,
        writeProtection: protection,
        changeCipherSpecSeen: true,
        writeEpoch: 1,
        readCid: state.readCid,
        writeCid: state.writeCid,
      } satisfies Partial<Connection>);
      connection.writeSequence[1] = write;
      connection.replay.restore(state.replay);
      this.connections.set(connection.key, connection);
      if (connection.readCid) this.byCid.set(connection.readCid.toString('hex'), connection);
      imported++;
    }
    return imported;
  }

  /** Whether an exported connection may be taken up here, now. */
  private restorable(state: ConnectionState, now: number): boolean {
    if (now - state.lastActivity > this.sessionTimeout || now - state.createdAt >= this.sessionLifetime) return false;
    if (this.connections.has(`${state.address}:${state.port}`) || (state.readCid && this.byCid.has(state.readCid.toString('hex')))) return false;
    // a peer must find its records with a connection ID understood: only IDs of the length this server reads
    if (state.readCid && (this.options.connectionId === false || state.readCid.length !== CID_LENGTH)) return false;
    return this.sessionStands(state);
  }

  /**
   * Whether a session made earlier (resumed, or restored after a restart) may go on: its suite is
   * still ours, and what the client proved itself with still holds. A PSK session's key and a raw
   * key session's key (setRawPublicKeys may have dropped it) must be the ones it was made with,
   * still bound to its identity. A certificate is not checked again: its chain is not kept, so a
   * CA replaced meanwhile does not end the session before its lifetime.
   */
  private sessionStands(session: Pick<CachedSession, 'cipherSuite' | 'authentication' | 'identity' | 'masterSecret' | 'peerKey'> & { keyCheck?: Buffer }): boolean {
    const { cipherSuite, identity, masterSecret, keyCheck: check, peerKey } = session;
    if (!this.suites.includes(cipherSuite) || !check) return false;
    let bound: Buffer | undefined;
    if (!isEcdheSuite(cipherSuite)) bound = this.options.psk?.(identity);
    else if (!this.own) return false;
    else if (session.authentication === 'certificate') return this.trusted.length > 0;
    else if (session.authentication === 'rawPublicKey' && peerKey && this.options.clientRawPublicKey?.(peerKey) === identity) bound = peerKey;
    return bound !== undefined && bound.length > 0 && timingSafeEqual(keyCheck(masterSecret, bound), check);
  }

  /** How long a master secret is used from its full handshake: the session cache's lifetime (without a cache, the idle timeout). */
  private get sessionLifetime(): number {
    return this.sessionCache?.lifetime ?? this.sessionTimeout;
  }

  /** Forgets every connection without a word to its peer (a restart that hands them over). */
  private dropAll(): void {
    for (const connection of this.connections.values()) {
      clearTimeout(connection.timer);
      clearTimeout(connection.deadline);
    }
    this.connections.clear();
    this.byCid.clear();
    this.handshakes = 0;
  }

  /**
   * Closes the socket. Every session is ended with close_notify, unless `notify` is false: for a
   * restart whose successor imports the sessions (exportConnections), so the devices must not
   * hear that their session is over. Either way this server keeps nothing.
   */
  close(callback?: () => void, options: { notify?: boolean } = {}): void {
    if (options.notify === false) this.dropAll();
    else for (const connection of [...this.connections.values()]) this.end(connection.address, connection.port);
    clearInterval(this.sweeper);
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) {
      callback?.();
      return;
    }
    socket.close(() => callback?.());
  }

  private get sessionTimeout(): number {
    return this.options.sessionTimeout ?? 24 * 3600_000;
  }

  // --- receiving ---

  private receive(datagram: Buffer, address: string, port: number): void {
    this.datagramSize = datagram.length;
    try {
      const records = parseRecords(datagram, this.options.connectionId === false ? 0 : CID_LENGTH);
      let parsed = 0;
      for (const record of records) {
        parsed += RECORD_HEADER + (record.cid?.length ?? 0) + record.fragment.length;
        if (!acceptableVersion(record)) {
          this.drop(address, port, () => `record version 0x${hex4(record.version)} on ${describe(record)}: not DTLS 1.2${record.epoch === 0 ? ' or 1.0 (only a ClientHello may carry any 0xfe..)' : ''}`);
          continue;
        }
        this.record(record, address, port);
      }
      if (parsed < datagram.length) {
        this.drop(address, port, () => (records.length === 0 ? `not a DTLS record (${datagram.length} bytes)` : `${datagram.length - parsed} bytes after the last whole record`));
      }
    } catch (error) {
      // a bug must not take the socket down with it; the peer's datagram is lost
      this.handshakeFailed({ address, port, reason: `internal error: ${(error as Error).message}` });
    }
  }

  private record(record: DtlsRecord, address: string, port: number): void {
    if (record.type === ContentType.TLS12_CID) return this.cidRecord(record, address, port);
    const connection = this.connections.get(`${address}:${port}`);
    if (record.epoch === 0) return this.plainRecord(record, address, port, connection);
    if (record.epoch !== 1) return this.drop(address, port, () => `${describe(record)}: this server never goes beyond epoch 1`);
    if (!connection) {
      // most often the peer's close_notify for a session this server ended (its key was replaced):
      // unreadable without the session, and nothing to answer, so not worth a log line
      if (record.type === ContentType.ALERT) return;
      return this.drop(address, port, () => `${describe(record)} without a DTLS session (forgotten, or the server restarted)`);
    }
    if (connection.readCid) return this.drop(address, port, () => `${describe(record)} without the connection ID its session negotiated`);
    this.protectedRecord(connection, record, address, port);
  }

  /** A tls12_cid record: its session is found by the ID, whatever address it came from. */
  private cidRecord(record: DtlsRecord, address: string, port: number): void {
    if (!record.cid) return this.drop(address, port, () => `${describe(record)}: this server issues no connection IDs`);
    if (record.epoch !== 1) return this.drop(address, port, () => `${describe(record)}: a connection ID record outside epoch 1`);
    const connection = this.byCid.get(record.cid.toString('hex'));
    if (!connection) return this.drop(address, port, () => `${describe(record)} with connection ID ${record.cid!.toString('hex')}, which this server did not issue (or forgot)`);
    this.protectedRecord(connection, record, address, port);
  }

  /** An epoch-1 record of a connection, from its own address or (by connection ID) from another. */
  private protectedRecord(connection: Connection, record: DtlsRecord, address: string, port: number): void {
    const elsewhere = address !== connection.address || port !== connection.port;
    if (!connection.readProtection) {
      if (elsewhere) return this.drop(address, port, () => `${describe(record)} of a handshake with ${connection.key}, from another address`);
      if (connection.state === 'handshake' && connection.early.length < MAX_EARLY_RECORDS) connection.early.push(record);
      else this.drop(address, port, () => `${describe(record)} before the client's ChangeCipherSpec, ${connection.early.length} already waiting`);
      return;
    }
    if (connection.state === 'handshake' && record.type === ContentType.APPLICATION_DATA) {
      // data the client sent after its Finished that came before it (reordered, or the Finished was
      // lost and is sent again, as in an abbreviated handshake): read once the session is up
      if (connection.early.length < MAX_EARLY_RECORDS) connection.early.push(record);
      else this.drop(address, port, () => `${describe(record)} before the client's Finished, ${connection.early.length} already waiting`);
      return;
    }
    if (!connection.replay.fresh(record.sequence)) return this.drop(address, port, () => `${describe(record)} replayed or too old`);
    const opened = connection.readProtection.open(record.type, record.version, record.epoch, record.sequence, record.fragment, record.cid);
    const inner = opened && record.cid ? unwrapInner(opened) : opened && { type: record.type, content: opened };
    if (!inner) {
      if (elsewhere) return this.drop(address, port, () => `${describe(record)} from another address than its session's (${connection.key}) does not authenticate: the session stays`);
      // in a handshake the client's first protected record is its Finished: failing means another key
      if (connection.state === 'handshake') return this.fail(connection, 'bad_record_mac', 'the client Finished does not authenticate: wrong key?', connection.identity);
      // RFC 6347 §4.1.2.7: records that do not authenticate are dropped without an alert
      return this.drop(address, port, () => `${describe(record)} does not authenticate`);
    }
    if (elsewhere) {
      // RFC 9146 §6: only a record newer than all before it may move the session (a replayed or delayed one must not)
      if (connection.state !== 'established' || record.sequence <= connection.replay.newest) {
        return this.drop(address, port, () => `${describe(record)} of the session with ${connection.key} from another address, but not its newest record: the session stays`);
      }
      connection.replay.mark(record.sequence);
      this.move(connection, address, port);
    } else {
      connection.replay.mark(record.sequence);
    }
    connection.lastActivity = Date.now();
    this.dispatch(connection, inner.type, inner.content);
  }

  /** An authenticated record's content, by its (real) type. */
  private dispatch(connection: Connection, type: number, plaintext: Buffer): void {
    const { address, port } = connection;
    if (type === ContentType.APPLICATION_DATA) {
      if (connection.state !== 'established') return this.drop(address, port, 'application data before the handshake finished');
      const info: DatagramInfo = { address, port, identity: connection.identity, authentication: connection.authentication };
      this.emit('message', plaintext, info);
    } else if (type === ContentType.HANDSHAKE) {
      this.protectedHandshake(connection, plaintext);
    } else if (type === ContentType.ALERT) {
      this.peerAlert(connection, plaintext);
    } else {
      this.drop(address, port, () => `a protected record of content type ${type}, unknown`);
    }
  }

  /** The session's peer is at another address now (NAT rebinding): what is sent goes there. */
  private move(connection: Connection, address: string, port: number): void {
    const from = { address: connection.address, port: connection.port };
    const occupant = this.connections.get(`${address}:${port}`);
    if (occupant) this.forget(occupant, `the session of ${connection.key} moved to its address`);
    this.connections.delete(connection.key);
    connection.address = address;
    connection.port = port;
    this.connections.set(connection.key, connection);
    const move: SessionMove = { from, to: { address, port }, identity: connection.identity };
    this.emit('sessionMoved', move);
  }

  private plainRecord(record: DtlsRecord, address: string, port: number, connection: Connection | undefined): void {
    if (record.type === ContentType.HANDSHAKE) {
      let fragments: HandshakeFragment[];
      try {
        fragments = parseHandshakeFragments(record.fragment);
      } catch (error) {
        return this.drop(address, port, () => `${describe(record)}: ${(error as Error).message}`);
      }
      const first = fragments[0];
      if (!first) return this.drop(address, port, 'an empty handshake record');
      if (first.type === HandshakeType.CLIENT_HELLO) return this.clientHello(record, first, fragments.length, address, port, connection);
      if (!connection) return this.drop(address, port, () => `${describe(record)} without a handshake in progress (no ClientHello with a valid cookie came first)`);
      if (connection.state === 'established') {
        // the client did not get our last flight and repeats its own: send ours again
        if (first.type === HandshakeType.CLIENT_KEY_EXCHANGE || first.type === HandshakeType.CERTIFICATE) this.sendFlight(connection);
        else this.drop(address, port, () => `${describe(record)} in the clear on an established session`);
        return;
      }
      this.handshakeFragments(connection, fragments);
    } else if (record.type === ContentType.CHANGE_CIPHER_SPEC && connection?.state === 'handshake') {
      if (record.fragment.length !== 1 || record.fragment[0] !== 1) return this.fail(connection, 'decode_error', 'a malformed ChangeCipherSpec');
      connection.changeCipherSpecSeen = true;
      this.activateRead(connection);
    } else if (record.type === ContentType.ALERT && connection?.state === 'handshake') {
      // unauthenticated alerts are heeded only during the handshake: they cannot end a session
      this.peerAlert(connection, record.fragment);
    } else {
      this.drop(address, port, () => `${describe(record)} ${connection ? 'in the clear on an established session' : 'without a handshake in progress'}`);
    }
  }

  private clientHello(record: DtlsRecord, fragment: HandshakeFragment, count: number, address: string, port: number, existing: Connection | undefined): void {
    // a ClientHello must come whole, alone in its record: it is handled before any state exists
    if (count !== 1 || fragment.offset !== 0 || fragment.body.length !== fragment.length) return this.drop(address, port, 'a fragmented ClientHello, or one sharing its record');
    let hello: ClientHello;
    try {
      hello = parseClientHello(fragment.body);
    } catch (error) {
      return this.drop(address, port, () => `a malformed ClientHello: ${(error as Error).message}`);
    }
    if (existing?.state === 'handshake' && existing.clientHelloSeq === fragment.messageSeq && existing.clientRandom.equals(hello.random)) {
      return this.sendFlight(existing); // the client repeats its ClientHello: it lost our flight
    }
    const peer = `${address}:${port}`;
    if (hello.cookie.length === 0 || !this.cookies.verify(peer, hello.cookieInput, hello.cookie)) {
      return this.helloVerifyRequest(record, fragment, address, port, this.cookies.make(peer, hello.cookieInput));
    }
    // the peer owns its address: from here on state is kept
    // versions count down: 0xfeff is DTLS 1.0, 0xfefd DTLS 1.2
    if (hello.version > DTLS_1_2) {
      this.handshakeFailed({ address, port, reason: `the client offers DTLS 0x${hex4(hello.version)}, older than DTLS 1.2`, alert: 'protocol_version' });
      return this.plainAlert(address, port, 'protocol_version', record.sequence);
    }
    let ecdhe: EcdheChoice | undefined;
    try {
      ecdhe = this.ecdheChoice(hello);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.handshakeFailed({ address, port, reason: `a malformed ClientHello extension: ${error.message}`, alert: 'decode_error' });
      return this.plainAlert(address, port, 'decode_error', record.sequence);
    }
    // our preference among what the client offers and we have credentials for
    const suite = this.suites.find((name) => hello.cipherSuites.includes(CIPHER_SUITES[name]) && (isEcdheSuite(name) ? ecdhe !== undefined : this.options.psk !== undefined));
    const extended = hello.extensions.has(ExtensionType.EXTENDED_MASTER_SECRET);
    const cidExtension = this.options.connectionId === false ? undefined : hello.extensions.get(ExtensionType.CONNECTION_ID);
    let offeredCid: Buffer | undefined;
    if (cidExtension) {
      try {
        offeredCid = Buffer.from(parseConnectionIdExtension(cidExtension));
      } catch (error) {
        this.handshakeFailed({ address, port, reason: (error as Error).message, alert: 'decode_error' });
        return this.plainAlert(address, port, 'decode_error', record.sequence);
      }
    }
    if (!suite || (this.options.requireExtendedMasterSecret && !extended)) {
      this.handshakeFailed({ address, port, reason: suite ? 'the client does not offer extended master secret' : 'no cipher suite in common', alert: 'handshake_failure' });
      return this.plainAlert(address, port, 'handshake_failure', record.sequence);
    }
    if (this.handshakes >= (this.options.maxHandshakes ?? 256)) {
      // no handshake was started, so this is a dropped ClientHello rather than a failed handshake
      return this.drop(address, port, () => `a ClientHello while ${this.handshakes} handshakes are in progress, the most allowed`);
    }
    if (existing) this.forget(existing, 'the client started a new handshake');
    this.makeRoom();
    const cached = this.resumable(hello, extended);
    const chosen = cached?.cipherSuite ?? suite;
    const connection = new Connection(address, port, { clientRandom: hello.random, messageSeq: fragment.messageSeq }, record.sequence, chosen, extended, !cached && isEcdheSuite(chosen) ? ecdhe : undefined);
    this.connections.set(connection.key, connection);
    this.handshakes++;
    connection.deadline = setTimeout(() => {
      this.handshakeFailed({ address, port, ...identityOf(connection), reason: 'the handshake took too long' });
      this.forget(connection, 'handshake timed out');
    }, this.options.handshakeTimeout ?? 2 * this.timing.maxTimeout);
    connection.deadline.unref();
    connection.hash.update(writeHandshake(fragment.type, fragment.messageSeq, fragment.body));

    const extensions = new Map<number, Buffer>();
    if (extended) extensions.set(ExtensionType.EXTENDED_MASTER_SECRET, Buffer.alloc(0));
    if (offeredCid) {
      connection.writeCid = offeredCid;
      connection.readCid = this.issueCid();
      this.byCid.set(connection.readCid.toString('hex'), connection);
      extensions.set(ExtensionType.CONNECTION_ID, writeConnectionIdExtension(connection.readCid));
    }
    if (wantsRenegotiationInfo(hello)) extensions.set(ExtensionType.RENEGOTIATION_INFO, Buffer.from([0]));
    if (cached) return this.resume(connection, cached, extensions);
    if (this.sessionCache) connection.sessionId = randomBytes(32);
    if (connection.ecdhe) return this.ecdheFlight(connection, connection.ecdhe, extensions);
    const serverHello = writeServerHello({ version: DTLS_1_2, random: connection.serverRandom, sessionId: connection.sessionId, cipherSuite: CIPHER_SUITES[suite], extensions });
    connection.flight = [this.handshakeEntry(connection, HandshakeType.SERVER_HELLO, serverHello, 0), this.handshakeEntry(connection, HandshakeType.SERVER_HELLO_DONE, Buffer.alloc(0), 0)];
    this.startFlight(connection);
  }

  /**
   * Whether an ECDHE-ECDSA suite can be used with this client, and how (RFC 7250 §4): the client's
   * certificate type is the first it lists that we can check (X.509 with clientCa, a raw key with
   * clientRawPublicKey), ours the first it lists that we have (X.509 with a chain; a raw key we
   * always have), except that a client sending a raw key gets ours as a raw key whenever it lists
   * that type. Without the extension the type is X.509. Throws DecodeError on malformed extensions.
   */
  private ecdheChoice(hello: ClientHello): EcdheChoice | undefined {
    if (!this.own || !helloAllowsEcdhe(hello.extensions)) return undefined;
    const clientTypes = hello.extensions.get(ExtensionType.CLIENT_CERTIFICATE_TYPE);
    const serverTypes = hello.extensions.get(ExtensionType.SERVER_CERTIFICATE_TYPE);
    const clientType = (clientTypes ? parseCertificateTypes(clientTypes) : [CertificateType.X509]).find((type) =>
      type === CertificateType.X509 ? this.trusted.length > 0 : type === CertificateType.RAW_PUBLIC_KEY && this.options.clientRawPublicKey !== undefined,
    );
    const offered = serverTypes ? parseCertificateTypes(serverTypes) : [CertificateType.X509];
    // LwM2M mode 1 is raw keys both ways: libcoap's GnuTLS client (-M) lists X.509 first for the
    // server, yet has nothing to check a certificate with. RFC 7250 lets us pick any type listed.
    const serverType =
      clientType === CertificateType.RAW_PUBLIC_KEY && offered.includes(CertificateType.RAW_PUBLIC_KEY)
        ? CertificateType.RAW_PUBLIC_KEY
        : offered.find((type) => (type === CertificateType.X509 ? this.own!.chain !== undefined : type === CertificateType.RAW_PUBLIC_KEY));
    if (clientType === undefined || serverType === undefined) return undefined;
    return { clientType, serverType, echoClientType: clientTypes !== undefined, echoServerType: serverTypes !== undefined, echoPointFormats: hello.extensions.has(ExtensionType.EC_POINT_FORMATS) };
  }

  /** ServerHello, Certificate, ServerKeyExchange (our signed ephemeral key), CertificateRequest, ServerHelloDone. */
  private ecdheFlight(connection: Connection, choice: EcdheChoice, extensions: Map<number, Buffer>): void {
    const own = this.own!;
    if (choice.echoClientType) extensions.set(ExtensionType.CLIENT_CERTIFICATE_TYPE, Buffer.from([choice.clientType]));
    if (choice.echoServerType) extensions.set(ExtensionType.SERVER_CERTIFICATE_TYPE, Buffer.from([choice.serverType]));
    if (choice.echoPointFormats) extensions.set(ExtensionType.EC_POINT_FORMATS, Buffer.from([1, 0]));
    connection.ecdh = newEcdh();
    const serverHello = writeServerHello({ version: DTLS_1_2, random: connection.serverRandom, sessionId: connection.sessionId, cipherSuite: CIPHER_SUITES[connection.suite], extensions });
    const certificate = choice.serverType === CertificateType.X509 ? writeCertificateChain(own.chain!) : writeRawPublicKey(own.spki);
    const keyExchange = writeServerKeyExchange(writeEcdhParams(connection.ecdh.getPublicKey()), connection.clientRandom, connection.serverRandom, own.privateKey);
    connection.flight = [
      this.handshakeEntry(connection, HandshakeType.SERVER_HELLO, serverHello, 0),
      this.handshakeEntry(connection, HandshakeType.CERTIFICATE, certificate, 0),
      this.handshakeEntry(connection, HandshakeType.SERVER_KEY_EXCHANGE, keyExchange, 0),
      this.handshakeEntry(connection, HandshakeType.CERTIFICATE_REQUEST, writeCertificateRequest(), 0),
      this.handshakeEntry(connection, HandshakeType.SERVER_HELLO_DONE, Buffer.alloc(0), 0),
    ];
    this.startFlight(connection);
  }

  /**
   * The cached session a ClientHello may resume: its suite still ours and offered again, the same
   * master secret derivation (RFC 7627 §5.3: otherwise a full handshake), and the identity's key
   * unchanged. Anything else is a full handshake with a new session id.
   */
  private resumable(hello: ClientHello, extended: boolean): CachedSession | undefined {
    const cached = this.sessionCache?.get(hello.sessionId);
    if (!cached) return undefined;
    if (!hello.cipherSuites.includes(CIPHER_SUITES[cached.cipherSuite])) return undefined;
    if (cached.extendedMasterSecret !== extended) return undefined;
    if (this.sessionStands(cached)) return cached;
    this.sessionCache!.delete(cached.id);
    return undefined;
  }

  /**
   * The abbreviated handshake: ServerHello with the cached id, ChangeCipherSpec and our Finished in
   * one flight, sent again until the client's Finished (the last message) arrives. Keys come from
   * the cached master secret and the new randoms.
   */
  private resume(connection: Connection, cached: CachedSession, extensions: Map<number, Buffer>): void {
    connection.resumed = true;
    connection.identity = cached.identity;
    connection.authentication = cached.authentication ?? 'psk';
    connection.master = cached.masterSecret;
    connection.sessionId = cached.id;
    connection.sessionCreatedAt = cached.createdAt;
    connection.keyCheck = cached.keyCheck;
    connection.rawKey = cached.peerKey;
    const { read, write } = connection.protections(cached.masterSecret);
    connection.pendingRead = read;
    connection.writeProtection = write;
    const serverHello = writeServerHello({ version: DTLS_1_2, random: connection.serverRandom, sessionId: cached.id, cipherSuite: CIPHER_SUITES[connection.suite], extensions });
    const hello = this.handshakeEntry(connection, HandshakeType.SERVER_HELLO, serverHello, 0);
    const verify = finishedVerifyData(cached.masterSecret, true, connection.hash.digest());
    connection.flight = [hello, { type: ContentType.CHANGE_CIPHER_SPEC, epoch: 0, data: Buffer.from([1]) }, this.handshakeEntry(connection, HandshakeType.FINISHED, verify, 1)];
    this.startFlight(connection);
  }

  /** RFC 6347 §4.2.1: stateless; record sequence and message_seq mirror the ClientHello's. */
  private helloVerifyRequest(record: DtlsRecord, fragment: HandshakeFragment, address: string, port: number, cookie: Buffer): void {
    const message = writeHandshake(HandshakeType.HELLO_VERIFY_REQUEST, fragment.messageSeq, writeHelloVerifyRequest(DTLS_1_0, cookie));
    this.socket?.send(writeRecord(ContentType.HANDSHAKE, DTLS_1_0, 0, record.sequence, message), port, address);
  }

  private handshakeFragments(connection: Connection, fragments: HandshakeFragment[]): void {
    let messages: HandshakeMessage[];
    try {
      messages = fragments.flatMap((fragment) => connection.reassembler.add(fragment));
    } catch (error) {
      return this.fail(connection, 'decode_error', (error as Error).message);
    }
    for (const message of messages) {
      if (!this.connections.has(connection.key) || connection.state !== 'handshake') return;
      const ecdhe = connection.ecdhe !== undefined;
      if (ecdhe && message.type === HandshakeType.CERTIFICATE && !connection.peerKey && !connection.master) this.clientCertificate(connection, message);
      else if (message.type === HandshakeType.CLIENT_KEY_EXCHANGE && !connection.master) this.clientKeyExchange(connection, message);
      else if (ecdhe && message.type === HandshakeType.CERTIFICATE_VERIFY && connection.master && !connection.certificateVerified) this.certificateVerify(connection, message);
      else if (message.type === HandshakeType.FINISHED && connection.readProtection && (!ecdhe || connection.certificateVerified)) this.finished(connection, message);
      else return this.fail(connection, 'unexpected_message', `an unexpected handshake message (type ${message.type})`);
    }
  }

  private protectedHandshake(connection: Connection, plaintext: Buffer): void {
    let fragments: HandshakeFragment[];
    try {
      fragments = parseHandshakeFragments(plaintext);
    } catch (error) {
      return this.drop(connection.address, connection.port, () => `a protected handshake record: ${(error as Error).message}`);
    }
    if (connection.state === 'handshake') return this.handshakeFragments(connection, fragments);
    const first = fragments[0];
    if (first?.type === HandshakeType.FINISHED) return this.sendFlight(connection); // our Finished was lost
    if (first?.type === HandshakeType.CLIENT_HELLO) return this.alert(connection, AlertLevel.WARNING, 'no_renegotiation');
    this.drop(connection.address, connection.port, () => `a protected handshake message (type ${first?.type ?? 'none'}) on an established session`);
  }

  /**
   * The client's Certificate (a chain, or a raw public key): checked before anything else of it is
   * used; its CN, or the identity clientRawPublicKey gives its key, is the session's identity.
   * An unknown raw key is refused with access_denied (the key is well-formed, only not allowed).
   */
  private clientCertificate(connection: Connection, message: HandshakeMessage): void {
    let named: string | undefined;
    try {
      if (connection.ecdhe!.clientType === CertificateType.RAW_PUBLIC_KEY) {
        const spki = parseRawPublicKeyMessage(message.body);
        const key = parseRawPublicKey(spki);
        const identity = this.options.clientRawPublicKey!(spki);
        if (identity === undefined) throw new CertificateError('access_denied', 'an unknown raw public key');
        connection.identity = identity;
        connection.peerKey = key;
        connection.rawKey = spkiOf(key);
        connection.authentication = 'rawPublicKey';
      } else {
        const chain = parseCertificateChain(message.body);
        named = leafName(chain[0]);
        const leaf = verifyChain(chain, this.trusted);
        const name = commonName(leaf);
        if (name === undefined) throw new CertificateError('bad_certificate', 'the client certificate has no CN to take the identity from');
        connection.identity = name;
        connection.peerKey = leaf.publicKey;
        connection.authentication = 'certificate';
      }
    } catch (error) {
      if (error instanceof DecodeError) return this.fail(connection, 'decode_error', `a malformed client Certificate: ${error.message}`, named);
      if (error instanceof CertificateError) return this.fail(connection, error.alert, `the client certificate is refused: ${error.message}`, named);
      throw error;
    }
    connection.hash.update(writeHandshake(message.type, message.messageSeq, message.body));
  }

  /** The client's CertificateVerify: its signature, with its certificate's key, over every message before it. */
  private certificateVerify(connection: Connection, message: HandshakeMessage): void {
    let verified: boolean;
    try {
      verified = verifyCertificateVerify(message.body, connection.hash.transcript(), connection.peerKey!);
    } catch (error) {
      return this.fail(connection, 'decode_error', `a malformed CertificateVerify: ${(error as Error).message}`, connection.identity);
    }
    if (!verified) return this.fail(connection, 'decrypt_error', 'the client CertificateVerify does not verify: not the certificate key', connection.identity);
    connection.certificateVerified = true;
    connection.hash.update(writeHandshake(message.type, message.messageSeq, message.body));
    connection.hash.release();
  }

  /** The premaster secret of an ECDHE ClientKeyExchange, or undefined when the handshake failed. */
  private ecdhePremaster(connection: Connection, message: HandshakeMessage): Buffer | undefined {
    // the certificate is required (RFC 5246 §7.4.6): no Certificate before the key exchange is a refusal
    if (!connection.peerKey) return void this.fail(connection, 'handshake_failure', 'the client sent no certificate');
    let point: Buffer;
    try {
      point = parseClientKeyExchange(message.body);
    } catch (error) {
      return void this.fail(connection, 'decode_error', (error as Error).message, connection.identity);
    }
    try {
      return ecdhSecret(connection.ecdh!, point);
    } catch (error) {
      return void this.fail(connection, 'illegal_parameter', `the client's ECDH key: ${(error as Error).message}`, connection.identity);
    }
  }

  /** The PSK premaster secret and the key it binds the session to, or undefined when the handshake failed. */
  private pskPremaster(connection: Connection, message: HandshakeMessage): { premaster: Buffer; psk: Buffer } | undefined {
    let identity: string;
    try {
      identity = parsePskIdentity(message.body).toString('utf8');
    } catch (error) {
      return void this.fail(connection, 'decode_error', (error as Error).message);
    }
    const psk = this.options.psk?.(identity);
    if (!psk || psk.length === 0) return void this.fail(connection, 'unknown_psk_identity', `unknown PSK identity ${JSON.stringify(identity)}`, identity);
    connection.identity = identity;
    return { premaster: pskPremasterSecret(psk), psk };
  }

  private clientKeyExchange(connection: Connection, message: HandshakeMessage): void {
    let premaster: Buffer;
    let bound: Buffer;
    if (connection.ecdhe) {
      const secret = this.ecdhePremaster(connection, message);
      if (!secret) return;
      premaster = secret;
      bound = spkiOf(connection.peerKey!); // a cached ECDSA session is bound to the client's key
      connection.ecdh = undefined;
    } else {
      const secret = this.pskPremaster(connection, message);
      if (!secret) return;
      premaster = secret.premaster;
      bound = secret.psk;
    }
    connection.hash.update(writeHandshake(message.type, message.messageSeq, message.body));
    connection.master = connection.extendedMasterSecret
      ? extendedMasterSecret(premaster, connection.hash.digest())
      : masterSecret(premaster, connection.clientRandom, connection.serverRandom);
    connection.keyCheck = keyCheck(connection.master, bound);
    const { read, write } = connection.protections(connection.master);
    connection.pendingRead = read;
    connection.writeProtection = write;
    connection.flight = []; // the client answered: our flight needs no more resending
    clearTimeout(connection.timer);
    this.activateRead(connection);
  }

  /** After both the keys and the client's ChangeCipherSpec: read epoch 1, and what came early. */
  private activateRead(connection: Connection): void {
    if (!connection.changeCipherSpecSeen || !connection.pendingRead || connection.readProtection) return;
    connection.readProtection = connection.pendingRead;
    for (const record of connection.early.splice(0)) this.record(record, connection.address, connection.port);
  }

  private finished(connection: Connection, message: HandshakeMessage): void {
    const expected = finishedVerifyData(connection.master!, false, connection.hash.digest());
    if (message.body.length !== expected.length || !timingSafeEqual(message.body, expected)) {
      return this.fail(connection, 'decrypt_error', 'the client Finished does not verify: wrong key?', connection.identity);
    }
    connection.hash.update(writeHandshake(message.type, message.messageSeq, message.body));
    if (connection.resumed) {
      // the client's Finished ends an abbreviated handshake: our flight is answered, nothing follows
      connection.flight = [];
      clearTimeout(connection.timer);
      connection.state = 'established';
      this.handshakes--;
      clearTimeout(connection.deadline);
      this.emit('session', this.session(connection.address, connection.port));
      this.readEarly(connection);
      return;
    }
    const verify = finishedVerifyData(connection.master!, true, connection.hash.digest());
    connection.flight = [{ type: ContentType.CHANGE_CIPHER_SPEC, epoch: 0, data: Buffer.from([1]) }, this.handshakeEntry(connection, HandshakeType.FINISHED, verify, 1)];
    connection.state = 'established';
    this.handshakes--;
    clearTimeout(connection.deadline);
    this.remember(connection);
    // the last flight is sent again only when the client repeats its own (RFC 6347 §4.2.4)
    this.sendFlight(connection);
    this.emit('session', this.session(connection.address, connection.port));
    this.readEarly(connection);
  }

  /** Application data that came before the client's Finished, now that the session is up. */
  private readEarly(connection: Connection): void {
    for (const record of connection.early.splice(0)) this.record(record, connection.address, connection.port);
  }

  /** A full handshake's session goes into the cache, under the id our ServerHello gave. */
  private remember(connection: Connection): void {
    if (!this.sessionCache || connection.sessionId.length === 0 || !connection.master || !connection.keyCheck) return;
    this.sessionCache.add({
      id: connection.sessionId,
      masterSecret: connection.master,
      cipherSuite: connection.suite,
      identity: connection.identity,
      extendedMasterSecret: connection.extendedMasterSecret,
      keyCheck: connection.keyCheck,
      createdAt: Date.now(),
      authentication: connection.authentication,
      ...(connection.rawKey ? { peerKey: connection.rawKey } : {}),
    });
  }

  private peerAlert(connection: Connection, fragment: Buffer): void {
    if (fragment.length !== 2) return this.drop(connection.address, connection.port, () => `an alert of ${fragment.length} bytes`);
    const [level, description] = [fragment[0]!, fragment[1]!];
    if (description === AlertDescription.close_notify) {
      if (connection.state === 'established') this.alert(connection, AlertLevel.WARNING, 'close_notify');
      this.forget(connection, 'closed by the client');
    } else if (level === AlertLevel.FATAL) {
      if (connection.state === 'handshake') {
        this.handshakeFailed({ address: connection.address, port: connection.port, ...identityOf(connection), reason: `the client sent ${alertName(description)}`, alert: alertName(description) });
      }
      this.forget(connection, `the client sent ${alertName(description)}`);
    }
  }

  // --- sending ---

  private handshakeEntry(connection: Connection, type: HandshakeType, body: Buffer, epoch: number): FlightEntry {
    const messageSeq = connection.nextMessageSeq++;
    const whole = writeHandshake(type, messageSeq, body);
    connection.hash.update(whole);
    return { type: ContentType.HANDSHAKE, epoch, data: whole };
  }

  private startFlight(connection: Connection): void {
    connection.timeout = this.timing.initialTimeout;
    connection.sends = 0;
    this.sendFlight(connection);
  }

  /** Sends the current flight (sealed with fresh sequence numbers), and arms its retransmission while handshaking. */
  private sendFlight(connection: Connection): void {
    const records: Buffer[] = [];
    for (const entry of connection.flight) {
      if (entry.type !== ContentType.HANDSHAKE) {
        records.push(this.seal(connection, entry.type, entry.epoch, entry.data));
        continue;
      }
      const type = entry.data[0]!;
      const messageSeq = entry.data.readUInt16BE(4);
      const body = entry.data.subarray(HANDSHAKE_HEADER);
      // room for the body in one datagram: headers, and an encrypted record's expansion (at most 64)
      const room = Math.max(16, this.mtu - RECORD_HEADER - HANDSHAKE_HEADER - (entry.epoch === 0 ? 0 : 64));
      for (const fragment of fragmentHandshake(type, messageSeq, body, room)) records.push(this.seal(connection, ContentType.HANDSHAKE, entry.epoch, fragment));
    }
    this.transmit(connection, records);
    if (connection.state !== 'handshake' || connection.flight.length === 0) return;
    clearTimeout(connection.timer);
    if (++connection.sends > this.timing.maxRetransmissions) {
      this.handshakeFailed({ address: connection.address, port: connection.port, ...identityOf(connection), reason: 'the client stopped answering' });
      return this.forget(connection, 'handshake timed out');
    }
    connection.timer = setTimeout(() => {
      connection.timeout = Math.min(connection.timeout * 2, this.timing.maxTimeout);
      this.sendFlight(connection);
    }, connection.timeout);
    connection.timer.unref();
  }

  private seal(connection: Connection, type: number, epoch: number, data: Buffer): Buffer {
    const sequence = connection.writeSequence[epoch]!;
    connection.writeSequence[epoch] = sequence + 1;
    if (epoch === 0) return writeRecord(type, DTLS_1_2, epoch, sequence, data);
    const cid = connection.writeCid;
    if (cid && cid.length > 0) {
      const fragment = connection.writeProtection!.seal(ContentType.TLS12_CID, DTLS_1_2, epoch, sequence, wrapInner(type, data), cid);
      return writeRecord(ContentType.TLS12_CID, DTLS_1_2, epoch, sequence, fragment, cid);
    }
    return writeRecord(type, DTLS_1_2, epoch, sequence, connection.writeProtection!.seal(type, DTLS_1_2, epoch, sequence, data));
  }

  /** A random connection ID no other connection holds. */
  private issueCid(): Buffer {
    for (;;) {
      const cid = randomBytes(CID_LENGTH);
      if (!this.byCid.has(cid.toString('hex'))) return cid;
    }
  }

  /** Packs records into datagrams of at most the MTU. */
  private transmit(connection: Connection, records: Buffer[]): void {
    const socket = this.socket;
    if (!socket) return;
    let batch: Buffer[] = [];
    let size = 0;
    for (const record of records) {
      if (size > 0 && size + record.length > this.mtu) {
        socket.send(Buffer.concat(batch), connection.port, connection.address);
        batch = [];
        size = 0;
      }
      batch.push(record);
      size += record.length;
    }
    if (batch.length > 0) socket.send(batch.length === 1 ? batch[0]! : Buffer.concat(batch), connection.port, connection.address);
  }

  private alert(connection: Connection, level: AlertLevel, name: AlertName): void {
    const epoch = connection.state === 'established' ? 1 : 0;
    this.transmit(connection, [this.seal(connection, ContentType.ALERT, epoch, Buffer.from([level, AlertDescription[name]]))]);
  }

  /** A fatal alert to a peer the server keeps no state for. */
  private plainAlert(address: string, port: number, name: AlertName, sequence: number): void {
    this.socket?.send(writeRecord(ContentType.ALERT, DTLS_1_2, 0, sequence, Buffer.from([AlertLevel.FATAL, AlertDescription[name]])), port, address);
  }

  /** Ends a handshake with a fatal alert. */
  private fail(connection: Connection, name: AlertName, reason: string, identity?: string): void {
    this.alert(connection, AlertLevel.FATAL, name);
    this.handshakeFailed({ address: connection.address, port: connection.port, ...(identity !== undefined ? { identity } : {}), reason, alert: name });
    this.forget(connection, reason);
  }

  private handshakeFailed(failure: DtlsHandshakeFailure): void {
    this.emit('handshakeFailed', failure);
  }

  /**
   * Tells listeners of `drop` why a datagram or record was dropped. The reason may be a function so
   * that nothing is formatted when nobody listens (a flood of garbage costs no strings).
   */
  private drop(address: string, port: number, reason: string | (() => string)): void {
    if (this.listenerCount('drop') === 0) return;
    const drop: DtlsDrop = { address, port, reason: typeof reason === 'string' ? reason : reason(), size: this.datagramSize };
    this.emit('drop', drop);
  }

  private forget(connection: Connection, reason: string): void {
    if (this.connections.get(connection.key) !== connection) return;
    clearTimeout(connection.timer);
    clearTimeout(connection.deadline);
    this.connections.delete(connection.key);
    if (connection.readCid) this.byCid.delete(connection.readCid.toString('hex'));
    if (connection.state === 'handshake') this.handshakes--;
    else this.emit('sessionEnded', { address: connection.address, port: connection.port, identity: connection.identity, reason });
  }

  /** At the session cap, the least recently heard session goes. */
  private makeRoom(): void {
    if (this.connections.size - this.handshakes < (this.options.maxSessions ?? 10_000)) return;
    let oldest: Connection | undefined;
    for (const connection of this.connections.values()) {
      if (connection.state === 'established' && (!oldest || connection.lastActivity < oldest.lastActivity)) oldest = connection;
    }
    if (oldest) this.forget(oldest, 'too many sessions');
  }

  private sweep(): void {
    this.sessionCache?.sweep();
    const now = Date.now();
    for (const connection of [...this.connections.values()]) {
      if (connection.state === 'established' && now - connection.lastActivity > this.sessionTimeout) this.forget(connection, 'idle too long');
    }
  }
}

/**
 * Records carry DTLS 1.2 (or 1.0, as before a version is agreed) in epoch 0, and DTLS 1.2 in
 * epoch 1. A ClientHello's record version is only checked to be 0xfe.. (RFC 6347 §4.1 and RFC 5246
 * Appendix E.1 ask servers not to be strict there): devices have been seen to send 0xfe00 there
 * (reported of mbedTLS-based firmware); the version that counts is the one inside the ClientHello.
 */
function acceptableVersion(record: DtlsRecord): boolean {
  if (record.version === DTLS_1_2) return true;
  if (record.epoch !== 0) return false;
  if (record.version === DTLS_1_0) return true;
  return record.type === ContentType.HANDSHAKE && record.fragment[0] === HandshakeType.CLIENT_HELLO && record.version >>> 8 === 0xfe;
}

/** The CN of a certificate that may not even parse, to name the client in a failure report. */
function leafName(der: Buffer | undefined): string | undefined {
  if (!der) return undefined;
  try {
    return commonName(new X509Certificate(der));
  } catch {
    return undefined;
  }
}

/** Binds a cached session to the PSK it was made with (or the client's ECDSA key), without keeping the key itself. */
function keyCheck(master: Buffer, psk: Buffer): Buffer {
  return createHmac('sha256', master).update(psk).digest();
}

function hex4(value: number): string {
  return value.toString(16).padStart(4, '0');
}

const CONTENT_NAMES: Record<number, string> = { 20: 'a ChangeCipherSpec', 21: 'an alert', 22: 'a handshake', 23: 'an application data', 25: 'a tls12_cid' };

/** What a record is, for a drop's reason: "a handshake record (ClientKeyExchange, epoch 0, sequence 3)". */
function describe(record: DtlsRecord): string {
  const what = CONTENT_NAMES[record.type] ?? `a content type ${record.type}`;
  // in the clear, the first handshake message's type is readable
  const message = record.epoch === 0 && record.type === ContentType.HANDSHAKE && record.fragment.length > 0 ? `${HANDSHAKE_NAMES[record.fragment[0]!] ?? `message type ${record.fragment[0]}`}, ` : '';
  return `${what} record (${message}epoch ${record.epoch}, sequence ${record.sequence})`;
}
