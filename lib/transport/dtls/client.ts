/**
 * A DTLS 1.2 client with pre-shared keys (RFC 6347, RFC 4279) that looks like a UDP socket: `send()`
 * takes plaintext datagrams for the server and `'message'` delivers the server's, so a CoapEndpoint
 * given `{ socket: new DtlsClient(...) }` speaks coaps:// to one LwM2M server.
 *
 * The handshake (one flight per line, RFC 6347 §4.2.4):
 *   ClientHello
 *     ← HelloVerifyRequest (optional: some servers answer the first ClientHello directly)
 *   ClientHello with the cookie
 *     ← ServerHello, [ServerKeyExchange with a PSK identity hint], ServerHelloDone
 *   ClientKeyExchange (our identity), ChangeCipherSpec, Finished (epoch 1)
 *     ← ChangeCipherSpec, Finished (epoch 1)
 * Each of our flights is retransmitted with a doubling timeout until the server's next flight is complete.
 *
 * With `connectionId`, the ClientHello offers RFC 9146 connection IDs; when the server answers with
 * one, our protected records carry it (tls12_cid), so the server finds the session even when a NAT
 * gives us another address or port.
 *
 * With a session id from an earlier handshake (RFC 5246 §7.3) the server may answer with the
 * abbreviated handshake instead:
 *   ClientHello with the session id (and the cookie)
 *     ← ServerHello with the same id, ChangeCipherSpec, Finished (epoch 1)
 *   ChangeCipherSpec, Finished (epoch 1)
 * Our last flight is then the handshake's last: it is sent again only when the server repeats its own.
 */
import { X509Certificate, randomBytes, timingSafeEqual, type ECDH, type KeyObject } from 'node:crypto';
import type { RemoteInfo, Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP, isIPv6, type AddressInfo } from 'node:net';
import { createUdpSocket, sizeSocketBuffers, type DatagramSocket } from '../datagram';
import { keyBlockLength, protectionsFor, type RecordProtection } from './cipher';
import {
  AlertDescription,
  AlertLevel,
  CIPHER_SUITES,
  ContentType,
  DTLS_1_2,
  ExtensionType,
  HANDSHAKE_HEADER,
  HandshakeType,
  RECORD_HEADER,
  alertName,
  cipherSuiteName,
  isEcdheSuite,
  DEFAULT_DTLS_TIMING,
  type CipherSuiteName,
  type DtlsTiming,
} from './constants';
import {
  DecodeError,
  HANDSHAKE_NAMES,
  Reassembler,
  fragmentHandshake,
  parseHandshakeFragments,
  parseHelloVerifyRequest,
  parsePskIdentity,
  parseServerHello,
  writeClientHello,
  writeHandshake,
  writePskIdentity,
  type HandshakeMessage,
} from './handshake';
import { HandshakeHash, extendedMasterSecret, finishedVerifyData, keyBlock, masterSecret, pskPremasterSecret } from './prf';
import { parseRecords, writeRecord, type DtlsRecord } from './record';
import { ReplayWindow } from './replay';
import { parseConnectionIdExtension, unwrapInner, wrapInner, writeConnectionIdExtension } from './connection-id';
import { CertificateError, isP256, loadEcdsaCredentials, namesHost, parseCertificates, parseRawPublicKey, spkiOf, verifyChain, type DtlsAuthentication, type EcdsaCredentials, type OwnEcdsa } from './credentials';
import {
  CertificateType,
  ecdhSecret,
  ecdheHelloExtensions,
  newEcdh,
  parseCertificateChain,
  parseCertificateRequest,
  parseChosenCertificateType,
  parseRawPublicKey as parseRawPublicKeyMessage,
  parseServerKeyExchange,
  verifyServerKeyExchange,
  writeCertificateChain,
  writeCertificateTypes,
  writeCertificateVerify,
  writeClientKeyExchange,
  writeRawPublicKey,
} from './ecdhe';

export interface DtlsClientOptions {
  host: string;
  port: number;
  /** PSK identity and key (both, or neither: then `ecdsa`) */
  identity?: string | Buffer;
  key?: Buffer;
  /** our key (+ chain: certificate mode, LwM2M mode 2; without: raw public key, mode 1) for the ECDHE-ECDSA suites */
  ecdsa?: EcdsaCredentials;
  /** PEM; the server's certificate must chain to it */
  serverCa?: string;
  /** the server certificate's CN or subjectAltName must match (default: no name check) */
  serverName?: string;
  /** pinned server raw public key or leaf key (SPKI DER) */
  serverPublicKey?: Buffer;
  /**
   * offered in this order (default with PSK: CCM_8, the one LwM2M mandates, then GCM, then CBC;
   * with ecdsa: only the ECDHE-ECDSA suites, CCM_8 then GCM)
   */
  cipherSuites?: CipherSuiteName[];
  timing?: Partial<DtlsTiming>;
  localAddress?: string;
  localPort?: number;
  /** largest datagram we send during the handshake (default 1200) */
  mtu?: number;
  /** bytes of receive and send buffer asked of the kernel for the socket (default 4 MiB; 0: the system's default) */
  socketBufferSize?: number;
  /** offer RFC 9146 connection IDs: when the server gives one, our records carry it and survive NAT rebinding (default false) */
  connectionId?: boolean;
  /** bytes of the ID we ask the server to put in its records to us (default 0: it sends plain records; at most 255) */
  receiveConnectionIdLength?: number;
  /** offer to resume the last session in each new handshake (default true) */
  resumeSessions?: boolean;
  /** a session of an earlier DtlsClient (its `session`) to resume first, e.g. after the socket was replaced */
  session?: DtlsSession;
}

/**
 * What resuming a session takes: the server's session id and the master secret. As secret as the
 * PSK itself. Only sessions with an extended master secret are kept (RFC 7627 §5.3).
 */
export interface DtlsSession {
  id: Buffer;
  masterSecret: Buffer;
  cipherSuite: CipherSuiteName;
  extendedMasterSecret: boolean;
  /** how the server authenticated in the full handshake (absent: psk) */
  authentication?: DtlsAuthentication;
}

/** A failed handshake, with the alert that ended it when there was one. */
export class DtlsHandshakeError extends Error {
  override readonly name = 'DtlsHandshakeError';
  /** the alert's name, e.g. `unknown_ca` */
  alert?: string;
  /** who sent it: we refused the server ('client'), or the server refused us ('server') */
  alertSentBy?: 'client' | 'server';
}

const PSK_SUITES: CipherSuiteName[] = ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS_PSK_WITH_AES_128_GCM_SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'];
const ECDHE_SUITES: CipherSuiteName[] = ['TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'];
/** datagrams kept while the handshake runs; CoAP retransmits anyway, so the oldest are dropped */
const MAX_QUEUE = 64;
/** a server that keeps asking for new cookies is broken or hostile; do not loop with it */
const MAX_HELLO_VERIFY = 4;
const MAX_SEQUENCE = 2 ** 48 - 1;
const EMPTY = Buffer.alloc(0);
const CHANGE_CIPHER_SPEC = Buffer.from([1]);

type FlightItem = { type: number; messageSeq: number; body: Buffer; epoch: 0 | 1 } | 'ChangeCipherSpec';

/** One handshake attempt; dropping it drops everything it negotiated so far. */
interface Handshake {
  phase: 'hello' | 'keyExchange' | 'finished';
  random: Buffer;
  cookie: Buffer;
  helloVerifies: number;
  /** our next message_seq */
  nextSeq: number;
  /** our latest ClientHello with its header: the handshake hash starts with it (RFC 6347 §4.2.1) */
  clientHello: Buffer;
  reassembler: Reassembler;
  hash?: HandshakeHash;
  serverRandom?: Buffer;
  suite?: CipherSuiteName;
  /** the hash of every message through our ClientKeyExchange (RFC 7627) */
  sessionHash?: Buffer;
  /** the server echoed extended_master_secret (RFC 7627) */
  extendedMasterSecret: boolean;
  /** ECDHE-ECDSA: each side's certificate type, the server's key once its Certificate checked out, its ECDH point once signed, whether it asked for our certificate */
  clientType?: CertificateType;
  serverType?: CertificateType;
  serverKey?: KeyObject;
  serverPoint?: Buffer;
  certificateRequested?: boolean;
  /** the connection ID we offer to receive (empty: none), when we offer the extension */
  ownCid?: Buffer;
  /** the session whose id our ClientHello carries */
  offered?: DtlsSession;
  /** the server took the offer: an abbreviated handshake */
  resumed: boolean;
  /** the id the server's ServerHello gave */
  sessionId: Buffer;
  master?: Buffer;
  /** our epoch-1 protection in an abbreviated handshake, installed with our ChangeCipherSpec */
  write?: RecordProtection;
  /** the server's epoch-1 protection, installed when its ChangeCipherSpec arrives */
  read?: RecordProtection;
  serverVerifyData?: Buffer;
  flight: FlightItem[];
  timer?: NodeJS.Timeout;
  timeout: number;
  retransmissions: number;
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

const PHASES: Record<Handshake['phase'], string> = {
  hello: 'waiting for ServerHello',
  keyExchange: 'waiting for ServerHelloDone',
  finished: "waiting for the server's Finished",
};

/**
 * Events: 'message' (plaintext, { address: host, port } as configured, so a CoapEndpoint's requests
 * to { address: host, port } get their responses) for application data; 'connected' ({ cipherSuite })
 * after each handshake; 'handshakeFailed' (Error); 'disconnected' (Error, or undefined for the
 * server's close_notify) when an established session ends; 'error' (socket errors, only when
 * someone listens); 'close'.
 */
export class DtlsClient extends EventEmitter implements DatagramSocket {
  private readonly host: string;
  private readonly port: number;
  private readonly identity: Buffer | undefined;
  private readonly key: Buffer | undefined;
  private readonly own: OwnEcdsa | undefined;
  private readonly trusted: X509Certificate[];
  private readonly serverName: string | undefined;
  private readonly pinned: Buffer | undefined;
  private authentication: DtlsAuthentication | undefined;
  private readonly suites: CipherSuiteName[];
  private readonly initialTimeout: number;
  private readonly maxTimeout: number;
  private readonly maxRetransmissions: number;
  private readonly mtu: number;
  private readonly offerCid: boolean;
  private readonly receiveCidLength: number;
  private readonly socket: Socket;
  private readonly listening: Promise<void>;
  private remoteAddress: string | undefined;

  private handshake: Handshake | undefined;
  private established = false;
  private suite: CipherSuiteName | undefined;
  /** our epoch-1 protection, from our ChangeCipherSpec on */
  private write: RecordProtection | undefined;
  /** the server's epoch-1 protection, from its ChangeCipherSpec on */
  private read: RecordProtection | undefined;
  private replay = new ReplayWindow();
  /** next record sequence number we write, per epoch */
  private writeSequence = [0, 0];
  /** the server's connection ID, which our protected records carry (undefined: plain records) */
  private writeCid: Buffer | undefined;
  /** the ID the server puts in its protected records to us (undefined: it sends plain ones) */
  private readCid: Buffer | undefined;
  private queue: Buffer[] = [];
  private closing: Promise<void> | undefined;
  /** events raised while a datagram is processed, emitted after it, so a listener's exception is not taken for garbage */
  private deferred: Array<() => void> | undefined;
  private readonly resumeSessions: boolean;
  private wasResumed = false;
  private saved: DtlsSession | undefined;
  /** our ChangeCipherSpec and Finished of an abbreviated handshake, for when the server repeats its flight */
  private lastFlight: FlightItem[] | undefined;

  constructor(options: DtlsClientOptions) {
    super();
    const psk = options.identity !== undefined || options.key !== undefined;
    if (psk && (options.identity === undefined || options.key === undefined)) throw new TypeError('a PSK needs both identity and key');
    if (!psk && !options.ecdsa) throw new TypeError('a DTLS client needs a PSK (identity and key) or ecdsa credentials');
    if (options.key?.length === 0) throw new TypeError('the PSK must not be empty');
    // no silent trust-anything: an ECDSA server must be checked against something
    if (options.ecdsa && options.serverCa === undefined && options.serverPublicKey === undefined) throw new TypeError('with ecdsa, a DTLS client needs serverCa or serverPublicKey to check the server');
    this.own = options.ecdsa ? loadEcdsaCredentials(options.ecdsa) : undefined;
    this.trusted = options.serverCa !== undefined ? parseCertificates(options.serverCa, 'serverCa') : [];
    this.serverName = options.serverName;
    this.pinned = options.serverPublicKey ? Buffer.from(options.serverPublicKey) : undefined;
    this.suites = options.cipherSuites ?? (options.ecdsa ? ECDHE_SUITES : PSK_SUITES);
    if (this.suites.length === 0 || this.suites.some((suite) => CIPHER_SUITES[suite] === undefined)) throw new TypeError(`unknown cipher suites: ${this.suites.join(', ')}`);
    if (this.suites.some((suite) => (isEcdheSuite(suite) ? !this.own : !psk))) throw new TypeError(`no credentials for some of the cipher suites ${this.suites.join(', ')}`);
    this.host = options.host;
    this.port = options.port;
    this.identity = options.identity === undefined ? undefined : typeof options.identity === 'string' ? Buffer.from(options.identity, 'utf8') : Buffer.from(options.identity);
    this.key = options.key && Buffer.from(options.key);
    this.initialTimeout = options.timing?.initialTimeout ?? DEFAULT_DTLS_TIMING.initialTimeout;
    this.maxTimeout = options.timing?.maxTimeout ?? DEFAULT_DTLS_TIMING.maxTimeout;
    this.maxRetransmissions = options.timing?.maxRetransmissions ?? DEFAULT_DTLS_TIMING.maxRetransmissions;
    this.mtu = options.mtu ?? 1200;
    this.offerCid = options.connectionId ?? false;
    this.receiveCidLength = options.receiveConnectionIdLength ?? 0;
    if (!Number.isInteger(this.receiveCidLength) || this.receiveCidLength < 0 || this.receiveCidLength > 255) {
      throw new TypeError(`receiveConnectionIdLength must be 0 to 255 bytes, not ${this.receiveCidLength}`);
    }
    if (isIP(this.host)) this.remoteAddress = this.host;
    this.resumeSessions = options.resumeSessions ?? true;
    this.saved = options.session;

    this.socket = createUdpSocket(isIPv6(options.localAddress ?? this.host) ? 'udp6' : 'udp4');
    this.socket.on('message', this.onDatagram);
    this.socket.on('error', (error) => {
      // a DatagramSocket's 'error' would crash the process without a listener; a send error only costs a retransmission
      if (this.listenerCount('error') > 0) this.emit('error', error);
    });
    this.listening = new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(options.localPort ?? 0, options.localAddress, () => {
        this.socket.off('error', reject);
        sizeSocketBuffers(this.socket, options.socketBufferSize);
        resolve();
      });
    });
    this.listening.catch(() => undefined); // the handshake reports it
  }

  get connected(): boolean {
    return this.established;
  }

  get cipherSuite(): CipherSuiteName | undefined {
    return this.established ? this.suite : undefined;
  }

  /** The server's connection ID (hex) our records carry, when the session negotiated one. */
  get connectionId(): string | undefined {
    return this.established ? this.writeCid?.toString('hex') : undefined;
  }

  /** How the server authenticated in the session up now: psk, certificate or rawPublicKey. */
  get serverAuthentication(): DtlsAuthentication | undefined {
    return this.established ? this.authentication : undefined;
  }

  /** Whether the session up now came of an abbreviated handshake (an earlier session resumed). */
  get resumed(): boolean {
    return this.established && this.wasResumed;
  }

  /** The last session made, to resume (in this client or, given as `session`, in another); undefined when there is none. */
  get session(): DtlsSession | undefined {
    return this.saved;
  }

  /** Resolves once a session is established (at once when it is already). */
  connect(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('the DTLS client is closed'));
    if (this.established) return Promise.resolve();
    return (this.handshake ?? this.startHandshake()).promise;
  }

  /** Forgets the session (e.g. the server lost it) and runs a fresh handshake. */
  rehandshake(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('the DTLS client is closed'));
    if (this.handshake) return this.handshake.promise; // one from scratch is running already
    // a server that still holds the session ignores a ClientHello from the same address and port
    // (libcoap does): close_notify makes it let go; one that lost the session ignores the alert
    if (this.established) this.sendRecord(ContentType.ALERT, 1, Buffer.from([AlertLevel.WARNING, AlertDescription.close_notify]));
    return this.startHandshake().promise;
  }

  /**
   * Sends application data to the server; `port` and `address` are ignored, as the session has one
   * peer. Before the session is up the datagram waits (and a handshake starts).
   */
  send(data: Buffer, _port?: number, _address?: string): void {
    if (this.closing) return;
    if (this.established && this.writeSequence[1]! < MAX_SEQUENCE) {
      this.sendRecord(ContentType.APPLICATION_DATA, 1, data);
      return;
    }
    if (this.established) this.endSession(new Error('DTLS record sequence numbers exhausted')); // RFC 6347 §4.1: renegotiate before they wrap
    if (this.queue.length >= MAX_QUEUE) this.queue.shift();
    this.queue.push(Buffer.from(data)); // a copy: the caller may reuse its buffer
    if (!this.handshake) this.startHandshake();
  }

  address(): AddressInfo {
    return this.socket.address();
  }

  /** Sends close_notify when a session is up, closes the socket and clears every timer. */
  close(callback?: () => void): void {
    if (!this.closing) {
      const handshake = this.handshake;
      this.handshake = undefined;
      if (handshake) {
        clearTimeout(handshake.timer);
        handshake.reject(new Error('the DTLS client was closed'));
      }
      this.queue = [];
      const closeNotify = this.established ? this.record(ContentType.ALERT, 1, Buffer.from([AlertLevel.WARNING, AlertDescription.close_notify])) : undefined;
      this.resetSession();
      this.closing = new Promise<void>((resolve) => {
        const closeSocket = () => this.socket.close(() => resolve());
        // close only once close_notify has left: closing the socket first could cancel the send
        if (closeNotify && this.remoteAddress) this.socket.send(closeNotify, this.port, this.remoteAddress, closeSocket);
        else closeSocket();
      }).then(() => {
        this.emit('close');
      });
    }
    if (callback) void this.closing.then(callback);
  }

  // --- handshake ---

  private startHandshake(): Handshake {
    this.resetSession();
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // a send() starts handshakes nobody awaits; failures also go to 'handshakeFailed'
    const handshake: Handshake = {
      phase: 'hello',
      random: randomBytes(32),
      cookie: EMPTY,
      helloVerifies: 0,
      nextSeq: 0,
      clientHello: EMPTY,
      extendedMasterSecret: false,
      ...(this.offerCid ? { ownCid: randomBytes(this.receiveCidLength) } : {}),
      offered: this.resumable(),
      resumed: false,
      sessionId: EMPTY,
      reassembler: new Reassembler(0),
      flight: [],
      timeout: this.initialTimeout,
      retransmissions: 0,
      promise,
      resolve,
      reject,
    };
    this.handshake = handshake;
    this.prepare().then(
      () => {
        if (this.handshake === handshake) this.sendClientHello(handshake);
      },
      (error: Error) => this.fail(handshake, new Error(`DTLS client cannot reach ${this.host}:${this.port}: ${error.message}`)),
    );
    return handshake;
  }

  /** The saved session, if it is to be offered: one of our suites, with an extended master secret. */
  private resumable(): DtlsSession | undefined {
    const saved = this.saved;
    if (!this.resumeSessions || !saved || saved.id.length === 0 || !saved.extendedMasterSecret || !this.suites.includes(saved.cipherSuite)) return undefined;
    return saved;
  }

  /** The socket is bound and the server's name resolved, once. */
  private async prepare(): Promise<void> {
    await this.listening;
    if (!this.remoteAddress) this.remoteAddress = (await lookup(this.host, { family: this.socket.address().family === 'IPv6' ? 6 : 4 })).address;
  }

  private sendClientHello(handshake: Handshake): void {
    const body = writeClientHello({
      version: DTLS_1_2,
      random: handshake.random, // the same in both ClientHellos (RFC 6347 §4.2.1)
      sessionId: handshake.offered?.id ?? EMPTY,
      cookie: handshake.cookie,
      cipherSuites: this.suites.map((suite) => CIPHER_SUITES[suite]),
      extensions: [
        [ExtensionType.EXTENDED_MASTER_SECRET, EMPTY],
        [ExtensionType.RENEGOTIATION_INFO, Buffer.from([0])], // an empty renegotiated_connection: this is an initial handshake
        ...(handshake.ownCid ? [[ExtensionType.CONNECTION_ID, writeConnectionIdExtension(handshake.ownCid)] as [number, Buffer]] : []),
        ...this.ecdheExtensions(),
      ],
    });
    const messageSeq = handshake.nextSeq++;
    handshake.clientHello = writeHandshake(HandshakeType.CLIENT_HELLO, messageSeq, body);
    this.startFlight(handshake, [{ type: HandshakeType.CLIENT_HELLO, messageSeq, body, epoch: 0 }]);
  }

  /**
   * For the ECDHE-ECDSA suites: our curve and signature algorithm, and the certificate types
   * (RFC 7250): a raw public key of ours when we have no chain; the server's raw key (or else a
   * certificate) when we only pin its key and trust no CA.
   */
  private ecdheExtensions(): Array<[number, Buffer]> {
    if (!this.own || !this.suites.some(isEcdheSuite)) return [];
    const extensions = ecdheHelloExtensions();
    if (!this.own.chain) extensions.push([ExtensionType.CLIENT_CERTIFICATE_TYPE, writeCertificateTypes([CertificateType.RAW_PUBLIC_KEY])]);
    if (this.trusted.length === 0) extensions.push([ExtensionType.SERVER_CERTIFICATE_TYPE, writeCertificateTypes([CertificateType.RAW_PUBLIC_KEY, CertificateType.X509])]);
    return extensions;
  }

  private onHandshakeMessage(handshake: Handshake, message: HandshakeMessage): void {
    // the hash takes each message as if it had come unfragmented
    const whole = writeHandshake(message.type, message.messageSeq, message.body);
    switch (handshake.phase) {
      case 'hello':
        if (message.type === HandshakeType.HELLO_VERIFY_REQUEST) {
          if (++handshake.helloVerifies > MAX_HELLO_VERIFY) return this.fail(handshake, this.handshakeError(handshake, 'the server keeps sending HelloVerifyRequest'));
          handshake.cookie = parseHelloVerifyRequest(message.body);
          return this.sendClientHello(handshake);
        }
        if (message.type === HandshakeType.SERVER_HELLO) return this.onServerHello(handshake, message.body, whole);
        break;
      case 'keyExchange':
        if (isEcdheSuite(handshake.suite!)) {
          if (this.onEcdheMessage(handshake, message, whole)) return;
          break;
        }
        if (message.type === HandshakeType.SERVER_KEY_EXCHANGE) {
          parsePskIdentity(message.body); // the identity hint: we have one key for this server, whatever it hints
          handshake.hash!.update(whole);
          return;
        }
        if (message.type === HandshakeType.SERVER_HELLO_DONE) {
          handshake.hash!.update(whole);
          return this.sendKeyExchange(handshake);
        }
        break;
      case 'finished':
        if (message.type === HandshakeType.FINISHED) return this.onServerFinished(handshake, message.body, whole);
        break;
    }
    if (message.type === HandshakeType.HELLO_REQUEST) return; // we do not renegotiate
    const name = HANDSHAKE_NAMES[message.type] ?? `handshake message ${message.type}`;
    this.fail(handshake, this.handshakeError(handshake, `unexpected ${name}`), AlertDescription.unexpected_message);
  }

  private onServerHello(handshake: Handshake, body: Buffer, whole: Buffer): void {
    const hello = parseServerHello(body);
    if (hello.version !== DTLS_1_2) return this.fail(handshake, this.handshakeError(handshake, `the server chose version 0x${hello.version.toString(16)}, not DTLS 1.2`), AlertDescription.protocol_version);
    const suite = cipherSuiteName(hello.cipherSuite);
    if (!suite || !this.suites.includes(suite)) return this.fail(handshake, this.handshakeError(handshake, `the server chose cipher suite 0x${hello.cipherSuite.toString(16)}, which we did not offer`), AlertDescription.illegal_parameter);
    const renegotiation = hello.extensions.get(ExtensionType.RENEGOTIATION_INFO);
    if (renegotiation && !(renegotiation.length === 1 && renegotiation[0] === 0)) return this.fail(handshake, this.handshakeError(handshake, 'bad renegotiation_info'), AlertDescription.handshake_failure);
    const cidExtension = hello.extensions.get(ExtensionType.CONNECTION_ID);
    if (cidExtension && !handshake.ownCid) return this.fail(handshake, this.handshakeError(handshake, 'the server sent a connection_id extension we did not offer'), AlertDescription.unsupported_extension);
    if (cidExtension) {
      // from our ChangeCipherSpec on, each side puts the other's ID in its records
      const serverCid = parseConnectionIdExtension(cidExtension);
      this.writeCid = serverCid.length > 0 ? Buffer.from(serverCid) : undefined;
      this.readCid = handshake.ownCid!.length > 0 ? handshake.ownCid : undefined;
    }
    const offered = handshake.offered;
    if (offered && hello.sessionId.equals(offered.id)) return this.onResumption(handshake, offered, hello.random, hello.extensions, suite, whole);
    handshake.sessionId = hello.sessionId;
    handshake.suite = suite;
    handshake.serverRandom = hello.random;
    handshake.hash = new HandshakeHash();
    handshake.hash.update(handshake.clientHello);
    handshake.hash.update(whole);
    handshake.extendedMasterSecret = hello.extensions.has(ExtensionType.EXTENDED_MASTER_SECRET);
    handshake.phase = 'keyExchange';
    if (isEcdheSuite(suite)) {
      // the CertificateVerify signs every message, so they are kept (from the ClientHello on)
      handshake.hash = new HandshakeHash(true);
      handshake.hash.update(handshake.clientHello);
      handshake.hash.update(whole);
      this.certificateTypes(handshake, hello.extensions);
    }
    // the ClientHello keeps being retransmitted until the whole flight is in: the server then repeats it all
  }

  /** The server takes our session: keys from its master secret and the new randoms; its ChangeCipherSpec and Finished come next. */
  private onResumption(handshake: Handshake, session: DtlsSession, serverRandom: Buffer, extensions: Map<number, Buffer>, suite: CipherSuiteName, whole: Buffer): void {
    if (suite !== session.cipherSuite) return this.fail(handshake, this.handshakeError(handshake, `the server resumes our session with cipher suite ${suite}, not its ${session.cipherSuite}`), AlertDescription.illegal_parameter);
    // RFC 7627 §5.3: a session with an extended master secret is resumed only with the extension
    if (!extensions.has(ExtensionType.EXTENDED_MASTER_SECRET)) return this.fail(handshake, this.handshakeError(handshake, 'the server resumes our session without extended_master_secret'), AlertDescription.handshake_failure);
    handshake.resumed = true;
    this.authentication = session.authentication ?? 'psk';
    handshake.suite = suite;
    handshake.serverRandom = serverRandom;
    handshake.extendedMasterSecret = true;
    handshake.sessionId = session.id;
    handshake.master = session.masterSecret;
    handshake.hash = new HandshakeHash();
    handshake.hash.update(handshake.clientHello);
    handshake.hash.update(whole);
    const keys = protectionsFor(suite, keyBlock(session.masterSecret, handshake.random, serverRandom, keyBlockLength(suite)), false);
    handshake.read = keys.read;
    handshake.write = keys.write;
    handshake.serverVerifyData = finishedVerifyData(session.masterSecret, true, handshake.hash.digest());
    handshake.phase = 'finished';
    // our ClientHello keeps being retransmitted until the server's Finished is in
  }

  /** The certificate types the server chose (RFC 7250 §4): absent, X.509; present, one we offered. */
  private certificateTypes(handshake: Handshake, extensions: Map<number, Buffer>): void {
    const offered = new Map(this.ecdheExtensions());
    for (const [extension, side] of [
      [ExtensionType.CLIENT_CERTIFICATE_TYPE, 'clientType'],
      [ExtensionType.SERVER_CERTIFICATE_TYPE, 'serverType'],
    ] as const) {
      const chosen = extensions.get(extension);
      if (chosen === undefined) {
        handshake[side] = CertificateType.X509;
        continue;
      }
      const ours = offered.get(extension);
      if (!ours) throw new CertificateError('unsupported_extension', `the server sent certificate type extension ${extension}, which we did not offer`);
      const type = parseChosenCertificateType(chosen);
      if (!ours.subarray(1).includes(type)) throw new CertificateError('unsupported_certificate', `the server chose certificate type ${type}, which we did not offer`);
      handshake[side] = type;
    }
  }

  /** Certificate, ServerKeyExchange, CertificateRequest and ServerHelloDone of ECDHE-ECDSA; false for any other message. */
  private onEcdheMessage(handshake: Handshake, message: HandshakeMessage, whole: Buffer): boolean {
    const hash = handshake.hash!;
    if (message.type === HandshakeType.CERTIFICATE && !handshake.serverKey) {
      handshake.serverKey = this.checkServerCertificate(handshake, message.body);
    } else if (message.type === HandshakeType.SERVER_KEY_EXCHANGE && handshake.serverKey && !handshake.serverPoint) {
      const exchange = parseServerKeyExchange(message.body);
      if (!verifyServerKeyExchange(exchange, handshake.random, handshake.serverRandom!, handshake.serverKey)) {
        throw new CertificateError('decrypt_error', "the ServerKeyExchange signature does not verify with the server's key");
      }
      handshake.serverPoint = exchange.point;
    } else if (message.type === HandshakeType.CERTIFICATE_REQUEST && handshake.serverPoint && !handshake.certificateRequested) {
      if (!parseCertificateRequest(message.body)) throw new CertificateError('handshake_failure', 'the server asks for a certificate other than ECDSA with SHA-256');
      handshake.certificateRequested = true;
    } else if (message.type === HandshakeType.SERVER_HELLO_DONE && handshake.serverPoint) {
      hash.update(whole);
      this.sendKeyExchange(handshake);
      return true;
    } else {
      return false;
    }
    hash.update(whole);
    return true;
  }

  /** The server's Certificate: its chain to serverCa (and name), or its key as pinned; returns its key. */
  private checkServerCertificate(handshake: Handshake, body: Buffer): KeyObject {
    if (handshake.serverType === CertificateType.RAW_PUBLIC_KEY) {
      const spki = parseRawPublicKeyMessage(body);
      const key = parseRawPublicKey(spki);
      // access_denied: a well-formed key, only not the one we trust (the server side answers the same)
      if (!this.pinned?.equals(spki)) throw new CertificateError('access_denied', "the server's raw public key is not the pinned one");
      return key;
    }
    const chain = parseCertificateChain(body);
    let leaf: X509Certificate;
    if (this.trusted.length > 0) {
      leaf = verifyChain(chain, this.trusted);
    } else {
      // only a pinned key: the leaf is trusted for its key alone
      if (chain.length === 0) throw new CertificateError('handshake_failure', 'the server sent no certificate');
      try {
        leaf = new X509Certificate(chain[0]!);
      } catch {
        throw new CertificateError('bad_certificate', "the server's certificate does not parse");
      }
      if (!isP256(leaf.publicKey)) throw new CertificateError('unsupported_certificate', "the server's certificate key is not EC P-256");
    }
    if (this.pinned && !spkiOf(leaf.publicKey).equals(this.pinned)) throw new CertificateError('access_denied', "the server's certificate key is not the pinned one");
    if (this.serverName !== undefined && !namesHost(leaf, this.serverName)) throw new CertificateError('bad_certificate', `the server's certificate does not name ${this.serverName}`);
    return leaf.publicKey;
  }

  /** Our Certificate (when asked), ECDHE ClientKeyExchange and CertificateVerify (when we sent a certificate), and the premaster secret. */
  private ecdheKeyExchange(handshake: Handshake): { items: FlightItem[]; premaster: Buffer } {
    const own = this.own!;
    const hash = handshake.hash!;
    const ecdh: ECDH = newEcdh();
    let premaster: Buffer;
    try {
      premaster = ecdhSecret(ecdh, handshake.serverPoint!);
    } catch (error) {
      throw new CertificateError('illegal_parameter', `the server's ECDH key: ${(error as Error).message}`);
    }
    const items: FlightItem[] = [];
    const add = (type: HandshakeType, body: Buffer): void => {
      const item = { type, messageSeq: handshake.nextSeq++, body, epoch: 0 as const };
      hash.update(writeHandshake(item.type, item.messageSeq, item.body));
      items.push(item);
    };
    // asked for a certificate we cannot give in the type agreed, we send an empty list: the server decides
    const certificate = handshake.clientType === CertificateType.RAW_PUBLIC_KEY ? writeRawPublicKey(own.spki) : writeCertificateChain(own.chain ?? []);
    const signs = handshake.certificateRequested === true && (handshake.clientType === CertificateType.RAW_PUBLIC_KEY || own.chain !== undefined);
    if (handshake.certificateRequested) add(HandshakeType.CERTIFICATE, certificate);
    add(HandshakeType.CLIENT_KEY_EXCHANGE, writeClientKeyExchange(ecdh.getPublicKey()));
    // the master secret's session hash ends with the ClientKeyExchange (RFC 7627 §3), before the CertificateVerify
    handshake.sessionHash = hash.digest();
    if (signs) add(HandshakeType.CERTIFICATE_VERIFY, writeCertificateVerify(hash.transcript(), own.privateKey));
    hash.release();
    return { items, premaster };
  }

  private sendKeyExchange(handshake: Handshake): void {
    const suite = handshake.suite!;
    const hash = handshake.hash!;
    let items: FlightItem[];
    let premaster: Buffer;
    if (isEcdheSuite(suite)) {
      ({ items, premaster } = this.ecdheKeyExchange(handshake));
    } else {
      premaster = pskPremasterSecret(this.key!);
      const keyExchange = { type: HandshakeType.CLIENT_KEY_EXCHANGE, messageSeq: handshake.nextSeq++, body: writePskIdentity(this.identity!), epoch: 0 as const };
      hash.update(writeHandshake(keyExchange.type, keyExchange.messageSeq, keyExchange.body));
      handshake.sessionHash = hash.digest();
      items = [keyExchange];
    }
    const master = handshake.extendedMasterSecret
      ? extendedMasterSecret(premaster, handshake.sessionHash!) // the session hash: every message through ClientKeyExchange
      : masterSecret(premaster, handshake.random, handshake.serverRandom!);
    const keys = protectionsFor(suite, keyBlock(master, handshake.random, handshake.serverRandom!, keyBlockLength(suite)), false);
    const finished = { type: HandshakeType.FINISHED, messageSeq: handshake.nextSeq++, body: finishedVerifyData(master, false, hash.digest()), epoch: 1 as const };
    hash.update(writeHandshake(finished.type, finished.messageSeq, finished.body));
    handshake.serverVerifyData = finishedVerifyData(master, true, hash.digest());
    handshake.master = master;
    handshake.read = keys.read;
    this.write = keys.write;
    handshake.phase = 'finished';
    this.startFlight(handshake, [...items, 'ChangeCipherSpec', finished]);
  }

  private onServerFinished(handshake: Handshake, verifyData: Buffer, whole: Buffer): void {
    const expected = handshake.serverVerifyData!;
    if (verifyData.length !== expected.length || !timingSafeEqual(verifyData, expected)) {
      return this.fail(handshake, this.handshakeError(handshake, "the server's Finished does not verify"), AlertDescription.decrypt_error);
    }
    clearTimeout(handshake.timer);
    this.handshake = undefined;
    if (handshake.resumed) {
      // an abbreviated handshake ends with our Finished, over everything up to the server's
      handshake.hash!.update(whole);
      this.write = handshake.write;
      const finished = { type: HandshakeType.FINISHED, messageSeq: handshake.nextSeq++, body: finishedVerifyData(handshake.master!, false, handshake.hash!.digest()), epoch: 1 as const };
      this.lastFlight = ['ChangeCipherSpec', finished];
      this.transmitItems(this.lastFlight);
    } else {
      const { sessionId, master, suite } = handshake;
      this.authentication = !isEcdheSuite(suite!) ? 'psk' : handshake.serverType === CertificateType.RAW_PUBLIC_KEY ? 'rawPublicKey' : 'certificate';
      this.saved =
        sessionId.length > 0 && handshake.extendedMasterSecret ? { id: sessionId, masterSecret: master!, cipherSuite: suite!, extendedMasterSecret: true, authentication: this.authentication } : undefined;
    }
    this.established = true;
    this.suite = handshake.suite;
    const queued = this.queue;
    this.queue = [];
    for (const data of queued) this.sendRecord(ContentType.APPLICATION_DATA, 1, data);
    this.wasResumed = handshake.resumed;
    this.raise(() => this.emit('connected', { cipherSuite: handshake.suite }));
    handshake.resolve();
  }

  private handshakeError(handshake: Handshake, reason: string): DtlsHandshakeError {
    return new DtlsHandshakeError(`DTLS handshake with ${this.host}:${this.port} failed ${PHASES[handshake.phase]}: ${reason}`);
  }

  /** Ends a handshake attempt: queued datagrams go with it, a later send() starts afresh. */
  private fail(handshake: Handshake, error: Error, alert?: number): void {
    if (this.handshake !== handshake) return;
    clearTimeout(handshake.timer);
    this.handshake = undefined;
    // a resumption the server took and that then failed: that session is not to be offered again
    if (handshake.resumed && this.saved === handshake.offered) this.saved = undefined;
    if (alert !== undefined && error instanceof DtlsHandshakeError && error.alert === undefined) {
      error.alert = alertName(alert);
      error.alertSentBy = 'client';
    }
    if (alert !== undefined && this.remoteAddress) this.sendRecord(ContentType.ALERT, this.write ? 1 : 0, Buffer.from([AlertLevel.FATAL, alert]));
    this.resetSession();
    this.queue = [];
    this.raise(() => this.emit('handshakeFailed', error));
    handshake.reject(error);
  }

  // --- flights ---

  private startFlight(handshake: Handshake, flight: FlightItem[]): void {
    handshake.flight = flight;
    handshake.timeout = this.initialTimeout;
    handshake.retransmissions = 0;
    this.transmitFlight(handshake);
  }

  private transmitFlight(handshake: Handshake): void {
    clearTimeout(handshake.timer);
    this.transmitItems(handshake.flight);
    handshake.timer = setTimeout(() => this.onFlightTimeout(handshake), handshake.timeout);
  }

  /** Sends handshake messages and ChangeCipherSpecs packed into datagrams of at most the MTU. */
  private transmitItems(items: FlightItem[]): void {
    // every transmission gets fresh record sequence numbers, as RFC 6347 §4.2.4 requires
    const records = items.flatMap((item) =>
      item === 'ChangeCipherSpec'
        ? [this.record(ContentType.CHANGE_CIPHER_SPEC, 0, CHANGE_CIPHER_SPEC)]
        : fragmentHandshake(item.type, item.messageSeq, item.body, this.maxHandshakeBody(item.epoch)).map((fragment) => this.record(ContentType.HANDSHAKE, item.epoch, fragment)),
    );
    let datagram: Buffer[] = [];
    let size = 0;
    for (const record of records) {
      if (size > 0 && size + record.length > this.mtu) {
        this.transmit(Buffer.concat(datagram));
        datagram = [];
        size = 0;
      }
      datagram.push(record);
      size += record.length;
    }
    if (size > 0) this.transmit(Buffer.concat(datagram));
  }

  private onFlightTimeout(handshake: Handshake): void {
    if (this.handshake !== handshake) return;
    if (handshake.retransmissions >= this.maxRetransmissions) {
      const sent = handshake.retransmissions + 1;
      return this.fail(handshake, this.handshakeError(handshake, `timed out, no answer to ${sent} transmission${sent === 1 ? '' : 's'} of our last flight`));
    }
    handshake.retransmissions++;
    handshake.timeout = Math.min(handshake.timeout * 2, this.maxTimeout);
    this.transmitFlight(handshake);
  }

  private maxHandshakeBody(epoch: 0 | 1): number {
    const overhead = epoch === 1 ? this.write!.overhead : 0;
    return Math.max(16, this.mtu - RECORD_HEADER - HANDSHAKE_HEADER - overhead);
  }

  // --- records ---

  private record(type: number, epoch: 0 | 1, plaintext: Buffer): Buffer {
    const sequence = this.writeSequence[epoch]!++;
    if (epoch === 0) return writeRecord(type, DTLS_1_2, epoch, sequence, plaintext);
    const cid = this.writeCid;
    if (cid) return writeRecord(ContentType.TLS12_CID, DTLS_1_2, epoch, sequence, this.write!.seal(ContentType.TLS12_CID, DTLS_1_2, epoch, sequence, wrapInner(type, plaintext), cid), cid);
    return writeRecord(type, DTLS_1_2, epoch, sequence, this.write!.seal(type, DTLS_1_2, epoch, sequence, plaintext));
  }

  private sendRecord(type: number, epoch: 0 | 1, plaintext: Buffer): void {
    this.transmit(this.record(type, epoch, plaintext));
  }

  private transmit(datagram: Buffer): void {
    if (this.closing || !this.remoteAddress) return;
    this.socket.send(datagram, this.port, this.remoteAddress);
  }

  private readonly onDatagram = (datagram: Buffer, from: RemoteInfo): void => {
    if (from.port !== this.port || from.address !== this.remoteAddress || this.closing) return;
    const events: Array<() => void> = [];
    this.deferred = events;
    try {
      for (const record of parseRecords(datagram, this.readCid?.length ?? 0)) this.onRecord(record);
    } catch {
      // whatever slipped past the checks is the server's garbage: it must not take the socket down
    } finally {
      this.deferred = undefined;
    }
    for (const event of events) event();
  };

  private raise(event: () => void): void {
    if (this.deferred) this.deferred.push(event);
    else event();
  }

  private onRecord(record: DtlsRecord): void {
    let plaintext = record.fragment;
    let type = record.type;
    const authenticated = record.epoch === 1 && this.read !== undefined;
    // with an ID of ours, the server's protected records must carry it, and only they may
    if ((type === ContentType.TLS12_CID) !== (authenticated && this.readCid !== undefined)) return;
    if (record.cid && !record.cid.equals(this.readCid!)) return;
    if (authenticated) {
      if (!this.replay.fresh(record.sequence)) return;
      const opened = this.read!.open(record.type, record.version, record.epoch, record.sequence, record.fragment, record.cid);
      const inner = opened && record.cid ? unwrapInner(opened) : opened && { type, content: opened };
      if (!inner) return; // forged, corrupted or from an older session: dropped silently (RFC 6347 §4.1.2.7)
      this.replay.mark(record.sequence);
      plaintext = inner.content;
      type = inner.type;
    } else if (record.epoch !== 0) return;

    switch (type) {
      case ContentType.APPLICATION_DATA:
        if (authenticated && this.established) {
          const info = { address: this.host, port: this.port, ...(this.authentication ? { authentication: this.authentication } : {}) };
          this.raise(() => this.emit('message', plaintext, info));
        }
        return;
      case ContentType.HANDSHAKE:
        return this.onHandshakeRecord(plaintext, record.epoch);
      case ContentType.CHANGE_CIPHER_SPEC: {
        const handshake = this.handshake;
        if (handshake?.phase === 'finished' && !this.read && record.epoch === 0 && plaintext.equals(CHANGE_CIPHER_SPEC)) {
          this.read = handshake.read;
          this.replay = new ReplayWindow();
        }
        return;
      }
      case ContentType.ALERT:
        return this.onAlert(plaintext, authenticated);
    }
  }

  private onHandshakeRecord(plaintext: Buffer, epoch: number): void {
    const handshake = this.handshake;
    let fragments;
    try {
      fragments = parseHandshakeFragments(plaintext);
    } catch {
      return; // DecodeError: a broken record, not a broken handshake
    }
    if (!handshake) {
      // the server repeats its flight of an abbreviated handshake: our Finished was lost
      if (this.established && this.lastFlight && epoch === 0 && fragments.some((fragment) => fragment.type === HandshakeType.SERVER_HELLO)) return this.transmitItems(this.lastFlight);
      // a HelloVerifyRequest now means the server has forgotten us (e.g. it restarted)
      if (this.established && epoch === 0 && fragments.some((fragment) => fragment.type === HandshakeType.HELLO_VERIFY_REQUEST)) {
        this.endSession(new Error(`DTLS session with ${this.host}:${this.port} ended: the server sent a HelloVerifyRequest, it has lost the session`));
      }
      return;
    }
    // the server's Finished must come under the new keys, everything before it in the clear
    if (epoch !== (handshake.phase === 'finished' ? 1 : 0)) return;
    for (const fragment of fragments) {
      let messages: HandshakeMessage[];
      try {
        messages = handshake.reassembler.add(fragment);
      } catch {
        continue; // a fragment that contradicts an earlier one: drop it
      }
      for (const message of messages) {
        if (this.handshake !== handshake) return;
        try {
          this.onHandshakeMessage(handshake, message);
        } catch (error) {
          if (error instanceof CertificateError) {
            this.fail(handshake, this.handshakeError(handshake, error.message), AlertDescription[error.alert]);
            continue;
          }
          if (!(error instanceof DecodeError)) throw error;
          this.fail(handshake, this.handshakeError(handshake, `malformed ${HANDSHAKE_NAMES[message.type] ?? 'message'}: ${error.message}`), AlertDescription.decode_error);
        }
      }
    }
  }

  private onAlert(plaintext: Buffer, authenticated: boolean): void {
    if (plaintext.length < 2) return;
    const [level, description] = [plaintext[0]!, plaintext[1]!];
    const closing = description === AlertDescription.close_notify;
    if (level !== AlertLevel.FATAL && !closing) return; // warnings (e.g. no_renegotiation) change nothing
    const what = closing ? 'closed the session (close_notify)' : `sent a fatal ${alertName(description)} alert (${description})`;
    if (this.handshake) {
      const error = this.handshakeError(this.handshake, `the server ${what}`);
      error.alert = alertName(description);
      error.alertSentBy = 'server';
      return this.fail(this.handshake, error);
    }
    if (!this.established) return;
    // an alert in the clear is unauthenticated, but a server that lost our keys can send nothing else:
    // the cost of believing a forged one is a new handshake on the next send
    if (closing && authenticated) this.sendRecord(ContentType.ALERT, 1, Buffer.from([AlertLevel.WARNING, AlertDescription.close_notify]));
    this.endSession(closing ? undefined : new Error(`DTLS session with ${this.host}:${this.port} ended: the server ${what}`));
  }

  // --- session ---

  /** The session is gone; the next send() starts a new handshake. */
  private endSession(error: Error | undefined): void {
    this.resetSession();
    this.raise(() => this.emit('disconnected', error));
  }

  private resetSession(): void {
    this.established = false;
    this.suite = undefined;
    this.write = undefined;
    this.read = undefined;
    this.lastFlight = undefined;
    this.replay = new ReplayWindow();
    this.writeCid = undefined;
    this.readCid = undefined;
    // a new handshake is a new association: epoch 0 from sequence number 0 (RFC 6347 §4.2.8)
    this.writeSequence = [0, 0];
  }
}
