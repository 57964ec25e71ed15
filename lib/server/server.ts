/**
 * LwM2MServer: the LwM2M server of the palette, usable without Node-RED. Devices register, update
 * and de-register on `/rd` and Send on `/dp`; the caller reads, writes, executes and observes them.
 * Downlink requests leave from the listening socket, so devices behind NAT receive them.
 *
 *   const server = new LwM2MServer({ port: 5683 });
 *   server.on('register', (registration) => console.log(registration.endpoint));
 *   await server.listen();
 *   const value = await server.read('dev1', '/3/0/9');
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  ContentFormat,
  ContentFormatError,
  canonicalFormat,
  decode,
  decodeComposite,
  decodeLinks,
  decodeRecords,
  encode,
  encodeComposite,
  encodePaths,
  formatName,
  type CompositeValue,
  type Link,
  type LwM2MValue,
  type ResourceRecord,
} from '../content';
import { latestPerPath } from '../content/tree';
import { ObjectModel, defaultModel } from '../model';
import { LwM2MPath } from '../path';
import { CoapEndpoint, type CoapResponse, type IncomingRequest, type OutgoingResponse, type Peer, type RequestParams } from '../transport/endpoint';
import { CoapError } from '../transport/errors';
import { OptionNumber } from '../transport/message';
import { maxTransmitWait, type CoapTiming } from '../transport/timing';
import type { SocketBufferSizes } from '../transport/datagram';
import { pooledRandomId } from '../transport/random-pool';
import type { NotificationAttributes } from '../protocol';
import { LwM2MError, errorFromResponse } from './errors';
import { RateLimitedLog, type Logger } from './log';
import { RequestQueue } from './queue';
import { RegistrationRequestError, parseObjectList, parseRegisterQuery, parseUpdateQuery, type ObjectList, type RegisteredObject } from './register-params';
import type { PskTable } from './psk-table';
import { DeviceIdentities, describeIdentity, recordedAuthentication } from './device-identity';
import { Registry } from './registry';
import { NoStore, StoreError, type RegistrationStore } from './store';
import type { ObservationRecord, PskCredential, QueuedRequestRecord, RawPublicKeyCredential, RegistrationRecord } from './types';
import { requestParams, storedRequest } from './persistence';

export type { PskCredential, RawPublicKeyCredential };
import type { DtlsServer, DtlsServerOptions, SessionMove } from '../transport/dtls/server';
import { ServerEndpoints } from './endpoints';
import { FirmwareJobs, type FirmwareFleetOptions, type FirmwareOutcome, type FirmwareSource, type FirmwareUpdateOptions } from './firmware';
import { PACKAGE_PATH, PackageServer, hostFor, type PublishedPackage } from './packages';
import { ObservationTable } from './observations';
import { BadInputEvents } from './bad-input-events';
import type { EventLimiterOptions } from './event-limiter';
import type { LwM2MServerEvents, QueuedRequestEvent } from './events';
import { CoapTrace, type PeerIdentity } from './trace';
import { ClusterMember, type ClusterHost } from './cluster/member';
import { StoredTokens } from './cluster/stored-tokens';
import { checkRecord } from './store-records';
import { DtlsSessionKeeper, keepsDtlsState } from './dtls-sessions';

export interface LwM2MServerOptions {
  /** UDP port (default 5683; 0 picks a free one) */
  port?: number;
  /** address to bind (default all IPv4 addresses) */
  address?: string;
  store?: RegistrationStore;
  model?: ObjectModel;
  /** ms a device-management request may take, block-wise parts included (default 10 s) */
  requestTimeout?: number;
  /** the format for reads and writes when the caller gives none; default: what the device announced, else by its version */
  preferredFormat?: number;
  /** seconds past a registration's lifetime before it expires (default 5) */
  expiryGrace?: number;
  /** ms a request to a sleeping queue-mode device may wait for it (default 60 s) */
  queueTimeToLive?: number;
  /** ms a queue-mode device stays reachable after its last message (default MAX_TRANSMIT_WAIT, 93 s) */
  awakeTime?: number;
  timing?: Partial<CoapTiming>;
  /** requests remembered for deduplication (bounds the memory of the message layer; default 10,000) */
  maxExchanges?: number;
  /** largest body sent or received block-wise, e.g. a firmware package pushed (default 8 MiB) */
  maxBodySize?: number;
  /**
   * bytes of receive and send buffer asked of the kernel for each socket (default 4 MiB; 0: the
   * system's default). Linux caps it at net.core.rmem_max / wmem_max: `socketBuffers()` tells what
   * the sockets got, and the log warns when it is less.
   */
  socketBufferSize?: number;
  /** where rate-limited log lines about bad input go: a function `(level, message)` or a console-like object (default: nowhere) */
  logger?: Logger;
  /** CoAP over DTLS with pre-shared keys, on a port of its own beside plain CoAP */
  dtls?: DtlsOptions;
  /** refuse registrations over plain CoAP (NoSec); default false */
  requireSecurity?: boolean;
  /**
   * over plain CoAP, accept Update and De-register only from the address the device registered
   * from (its port may change); default false, since a device behind NAT may change address
   * between Updates. Without it, any host that learns a registration id can move the device's
   * downlink to itself: DTLS is the real answer.
   */
  requireSameAddress?: boolean;
  /** the host devices reach this server at, for the URIs it hands them (firmware packages); default: the bound address, or the local address on the device's network */
  publicHost?: string;
  /** the rate limit of `badDatagram` and `handshakeFailed` events, each: `burst` per `window` ms (default 10 per 1000 ms), then one `eventsSuppressed` */
  eventLimit?: EventLimiterOptions;
  /** CoAP messages the trace keeps (`server.trace.entries()`); default 0: none. A `trace` listener gets every message either way. */
  trace?: number;
  /**
   * this server's name among several instances sharing `store` (a RedisStore): with it, every
   * instance sees every registration, requests for a device go out through the instance its
   * messages reach, and registration events are emitted by that instance only. Keep it the same
   * across restarts; two running instances may not share a name.
   */
  instance?: string;
}

export interface DtlsOptions extends Omit<DtlsServerOptions, 'psk' | 'clientRawPublicKey'> {
  /** UDP port for DTLS (default 5684; 0 picks a free one) */
  port?: number;
  /** address to bind (default: the plain CoAP address) */
  address?: string;
  /** the devices' PSKs (default none; set them later with setCredentials) */
  credentials?: readonly PskCredential[];
  /** the devices' raw public keys (Security Mode 1; default none; set them later with setRawPublicKeys). Needs `ecdsa`. */
  rawPublicKeys?: readonly RawPublicKeyCredential[];
  /**
   * With it, and a store that keeps DTLS sessions (FileStore, MemoryStore, RedisStore: per instance), the established DTLS
   * sessions survive a restart: saved sealed (AES-256-GCM, key derived from this secret) when they
   * change and when the server closes, taken up at listen, so a device's next record needs no
   * handshake. Without it nothing of DTLS is kept. Keep it secret and the same across restarts.
   */
  sessionSecret?: string | Buffer;
}

/** A registration as the server's users see it. */
export interface Registration extends Readonly<RegistrationRecord> {
  /** the objects and instances the device announced (never /0) */
  readonly objects: readonly RegisteredObject[];
  /** Content-Formats the device announced on its root link */
  readonly contentFormats: readonly number[];
  /** ms since the epoch when the registration expires without an Update */
  readonly expiresAt: number;
  /** for queue mode: whether the device is reachable now */
  readonly awake: boolean;
}

export interface RequestOptions {
  /** Content-Format to ask for (reads) or to send in (writes) */
  format?: number;
  /** ms for this request (default the server's requestTimeout) */
  timeout?: number;
  /** ms the request may wait for a sleeping queue-mode device (default the server's queueTimeToLive) */
  ttl?: number;
}

export interface WriteOptions extends RequestOptions {
  /** PUT (replace, default) or POST (partial update of an instance) */
  mode?: 'replace' | 'update';
  /** Block1 block size for a large value (16..1024; default 1024); the device may ask for less */
  blockSize?: number;
  /** told after each block of a large value the device acknowledged */
  onProgress?: (sent: number, total: number) => void;
}

export type AttributeChanges = { [name in keyof NotificationAttributes]?: number | null };

export interface Observation {
  readonly id: string;
  readonly endpoint: string;
  readonly registrationId: string;
  readonly paths: readonly string[];
  readonly composite: boolean;
  /** the value of the first response */
  readonly value: LwM2MValue | CompositeValue;
}

export interface NotifyEvent {
  observation: Observation;
  endpoint: string;
  /** the value: of the observed path, or `{ path: value }` for a composite observation */
  value: LwM2MValue | CompositeValue;
  contentFormat?: number;
  /** the Observe sequence number */
  sequence: number;
}

export interface SendEvent {
  endpoint: string;
  registration: Registration;
  /** the latest value of each path */
  values: CompositeValue;
  /** every record with its time, as sent */
  records: ResourceRecord[];
}

interface ObservationState extends Observation {
  /** the request that started it: an active cancel repeats it with Observe=1 (RFC 7641 §3.6 wants the same options) */
  request: RequestParams;
  token: Buffer;
  peer: Peer;
  /** stops hearing its notifications; replaced when the device moves to another instance */
  cancel(): void;
  /** what its notifications go to, wherever they arrive */
  listener: (response: CoapResponse) => void;
  lastSequence: number;
  lastAt: number;
}

/** RFC 7641 §3.4: Observe numbers are compared in a 24-bit circle, and anything older than 128 s is stale anyway. */
function isNewer(previous: number, previousAt: number, next: number, now: number): boolean {
  const half = 1 << 23;
  return (previous < next && next - previous < half) || (previous > next && previous - next > half) || now > previousAt + 128_000;
}

/** ms between attempts to read a store that could not be read at listen */
const STORE_RETRY = 5000;

const COMPOSITE = new Set<number>([ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR]);

export class LwM2MServer extends EventEmitter {
  readonly model: ObjectModel;
  private readonly options: LwM2MServerOptions;
  private readonly endpoint: CoapEndpoint;
  private readonly registry = new Registry();
  private readonly store: RegistrationStore;
  private readonly queue: RequestQueue;
  private readonly log: RateLimitedLog;
  private readonly tracked = new ObservationTable<ObservationState>((event) => {
    // a closing server keeps its observations in the store: the devices go on notifying, and a restarted server hears them
    if (event.reason !== 'closed') this.store.removeObservation(event.id);
    this.emit('observationEnded', event);
  });
  private readonly badInput: BadInputEvents;
  private readonly parsedLists = new WeakMap<RegistrationRecord, { links: string; list: ObjectList }>();
  private readonly awakeUntil = new Map<string, { until: number; timer: NodeJS.Timeout }>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly sockets: ServerEndpoints;
  /** CoAP over DTLS, when configured */
  private readonly dtls: DtlsServer | undefined;
  private readonly secureEndpoint: CoapEndpoint | undefined;
  private readonly identities = new DeviceIdentities();
  private get psks(): PskTable {
    return this.identities.psks;
  }
  private listening = false;
  private closed = false;
  /** what devices download from this server (firmware packages) */
  private readonly packages = new PackageServer();
  private readonly firmware = new FirmwareJobs(this);
  /** every CoAP message in and out, while someone wants them (setTrace, a `trace` listener) */
  readonly trace: CoapTrace;
  /** the other instances sharing the store, when this one has a name among them */
  private readonly cluster: ClusterMember | undefined;
  /** expiry claims in flight (several instances) */
  private readonly claiming = new Set<string>();
  /** registrations whose observations and queued requests are being taken up from an instance that stopped */
  private readonly takingUp = new Set<string>();
  /** stored observations by token, for notifications from devices that moved here */
  private readonly storedTokens = new StoredTokens(() => this.store.loadObservations());
  /** the store's observations and queue were read: at listen, or once an unreachable store came back */
  private restored = false;
  /** reads the store again while it could not be read at listen */
  private reloadTimer: NodeJS.Timeout | undefined;
  /** keeps the DTLS sessions in the store across restarts (dtls.sessionSecret) */
  private readonly dtlsSessions: DtlsSessionKeeper | undefined;
  private reloading: Promise<void> | undefined;

  constructor(options: LwM2MServerOptions = {}) {
    super();
    this.options = { ...options };
    this.model = options.model ?? defaultModel();
    this.store = options.store ?? new NoStore();
    this.log = new RateLimitedLog(options.logger);
    if (options.instance !== undefined) {
      if (typeof options.instance !== 'string' || options.instance.trim() === '') throw new TypeError(`LwM2MServer: instance must be a non-empty name, not ${JSON.stringify(options.instance)}`);
      if (!this.store.cluster) throw new TypeError('LwM2MServer: an instance name needs a store several instances can share (a RedisStore)');
      this.cluster = new ClusterMember(options.instance, this.store.cluster(), this.clusterHost());
    }
    this.badInput = new BadInputEvents(this, options.eventLimit);
    if (options.dtls) {
      this.setCredentials(options.dtls.credentials ?? []);
      this.setRawPublicKeys(options.dtls.rawPublicKeys ?? []);
    }
    this.sockets = new ServerEndpoints(
      {
        ...options,
        dtls: options.dtls && { ...withoutSecret(options.dtls), psk: (identity) => this.psks.key(identity), clientRawPublicKey: (spki) => this.identities.rawKeys.endpointOf(spki) },
        log: this.log,
        fail: (error) => this.fail(error),
        events: this.badInput,
      },
      (request) => this.uplink(request),
    );
    this.endpoint = this.sockets.plain;
    this.dtls = this.sockets.dtls;
    this.dtls?.on('sessionMoved', (move: SessionMove) => this.sessionMoved(move));
    const secret = options.dtls?.sessionSecret;
    if (this.dtls && secret !== undefined && keepsDtlsState(this.store)) this.dtlsSessions = new DtlsSessionKeeper(this.dtls, this.store, secret, (error) => this.fail(error), { owner: this.cluster?.instance });
    this.secureEndpoint = this.sockets.secure;
    for (const endpoint of [this.endpoint, this.secureEndpoint]) {
      endpoint?.on('blockServed', ({ peer, path, served, total }) => this.packages.served(peer, path, served, total));
      // a notification nobody here waits for may be of a device that moved here from another instance
      if (this.cluster) endpoint?.setUnmatchedHandler((peer, token, reset) => this.unmatchedNotification(peer, token, reset));
    }
    this.queue = new RequestQueue();
    const sources = [{ endpoint: this.endpoint, secure: false }, ...(this.secureEndpoint ? [{ endpoint: this.secureEndpoint, secure: true }] : [])];
    this.trace = new CoapTrace(sources, { whois: (peer, secure) => this.whois(peer, secure), model: this.model, onEntry: (entry) => this.emit('trace', entry) });
    if (options.trace) this.trace.setSize(options.trace);
    // a `trace` listener switches tracing on by itself (no buffer needed to stream), and its removal off
    this.on('newListener', (event: string | symbol) => {
      if (event === 'trace') this.trace.setStreaming(true);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'trace') this.trace.setStreaming(this.listenerCount('trace') > 0);
    });
  }

  /** Sets how many CoAP messages the trace keeps (0: none; tracing stops unless a `trace` listener remains). */
  setTrace(options: { size: number }): void {
    this.trace.setSize(options.size);
  }

  /** Who a peer is, for the trace: over DTLS its session's identity and the endpoint bound to it; else the registration at its address. */
  private whois(peer: Peer, secure: boolean): PeerIdentity {
    if (secure) {
      // a peer of an outgoing message may carry no identity: its session has it
      const session = peer.identity === undefined ? this.dtls?.session(peer.address, peer.port) : peer;
      const identity = session?.identity;
      const endpoint = this.identities.endpointOf({ identity, authentication: session?.authentication }) ?? this.registry.byAddress(peer)?.endpoint;
      return { identity, endpoint };
    }
    const record = this.registry.byAddress(peer);
    return { endpoint: record && record.identity === undefined ? record.endpoint : undefined };
  }

  /**
   * Replaces the PSK credentials. A device may register only as the endpoint bound to its identity,
   * and an endpoint bound to an identity may not register over plain CoAP.
   */
  setCredentials(credentials: readonly PskCredential[]): void {
    this.psks.replaceAll(credentials);
  }

  /**
   * Adds or replaces the PSK of one endpoint (a bootstrap server issued it). The endpoint's old
   * identity and key stop working at once: its DTLS sessions under them end.
   */
  setCredential(credential: PskCredential): void {
    const old = this.psks.set(credential);
    if (old && (old.identity !== credential.identity || !old.key.equals(credential.key))) this.dtls?.endIdentity(old.identity);
  }

  /** Removes the PSK of one endpoint and ends its DTLS sessions; true when it had one. */
  removeCredential(endpoint: string): boolean {
    const old = this.psks.remove(endpoint);
    if (old) this.dtls?.endIdentity(old.identity);
    return old !== undefined;
  }

  /**
   * Replaces the raw public keys (Security Mode 1) devices may use, each bound to one endpoint; an
   * endpoint with a key may not register over plain CoAP. Sessions of keys no longer listed end.
   */
  setRawPublicKeys(keys: readonly RawPublicKeyCredential[]): void {
    for (const endpoint of this.identities.rawKeys.replaceAll(keys)) this.dtls?.endIdentity(endpoint);
  }

  /** The raw public keys, as PEM. */
  rawPublicKeys(): RawPublicKeyCredential[] {
    return this.identities.rawKeys.list();
  }

  /** The PSK credentials, keys included (copies). */
  credentials(): PskCredential[] {
    return this.psks.list();
  }

  /** `coap://host:port` (or `coaps://`, over DTLS) a device at `deviceAddress` reaches this server at. */
  uriFor(deviceAddress: string, secure = this.dtls !== undefined): string {
    if (secure && !this.dtls) throw new Error('this server has no DTLS port');
    const bound = secure ? this.dtls!.address() : this.endpoint.address();
    return `${secure ? 'coaps' : 'coap'}://${hostFor(deviceAddress, bound.address, this.options.publicHost)}:${bound.port}`;
  }

  /** Loads stored registrations and binds the socket. */
  async listen(): Promise<AddressInfo> {
    if (this.listening || this.closed) throw new Error(this.closed ? 'the server is closed' : 'the server is already listening');
    this.listening = true;
    // the others' changes are heard from before the store is read, so none falls in between
    if (this.cluster) {
      try {
        await this.cluster.join();
      } catch (error) {
        this.listening = false;
        throw new LwM2MError('SERVER_NOT_RUNNING', (error as Error).message);
      }
    }
    let stored: RegistrationRecord[] = [];
    let unreadable = false;
    let unreachable = false;
    try {
      stored = await this.store.load();
    } catch (error) {
      unreadable = true;
      unreachable = error instanceof StoreError && error.transient;
      this.fail(error);
    }
    const now = Date.now();
    const grace = this.grace();
    for (const record of stored) {
      // with several instances, one that expired while this one was down is claimed by the sweep (one `expire` in the cluster)
      if (this.cluster || record.updatedAt + record.lifetime * 1000 + grace >= now) this.registry.add(record);
      else this.store.remove(record.id);
    }
    let saved: [ObservationRecord[], QueuedRequestRecord[]] = [[], []];
    if (!unreadable) {
      saved = await Promise.all([this.store.loadObservations(), this.store.loadQueue()]).catch((error: unknown) => {
        // a store that could not give its registrations fails the same way here: reported once
        unreadable = true;
        this.fail(error);
        return [[], []] as [ObservationRecord[], QueuedRequestRecord[]];
      });
    }
    // before the DTLS socket receives anything: a restored session's first record is then understood
    if (this.dtlsSessions && !unreadable) await this.dtlsSessions.restore();
    else if (this.options.dtls?.sessionSecret !== undefined && !this.dtlsSessions) this.log.warn('dtls.sessionSecret is set, but this store keeps no DTLS sessions: devices handshake again after a restart');
    const plain = { port: this.options.port ?? 5683, address: this.options.address ?? '0.0.0.0' };
    const address = await this.sockets.listen(plain, this.options.dtls && { port: this.options.dtls.port ?? 5684, address: this.options.dtls.address ?? plain.address });
    if (!unreadable) {
      this.restored = true;
      await this.restore(...saved);
    }
    this.cluster?.start();
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    // a store that could not be read (Redis not up yet) is tried again until it can
    if (unreachable) {
      this.log.warn(`serving without what the store holds; reading it again every ${STORE_RETRY / 1000} s until it can be read`);
      this.reloadTimer = setInterval(() => void this.reload(), STORE_RETRY);
    }
    return address;
  }

  /** Takes up the stored observations and queued requests: this instance's own, and those of instances no longer running. */
  private async restore(observations: ObservationRecord[], queued: QueuedRequestRecord[]): Promise<void> {
    const mine = this.ownership();
    for (const observation of observations) if (!this.tracked.get(observation.id) && (await mine(observation.instance))) this.restoreObservation(observation);
    for (const request of queued) if (await mine(request.instance)) this.restoreQueued(request);
  }

  /**
   * Whether what another instance left in the store is this one's to take up: its own, what has no
   * instance (a single server), and what an instance that is not running left (it stopped for good,
   * or restarted under another name). Asks the bus once per instance.
   */
  private ownership(): (instance: string | undefined) => Promise<boolean> {
    const alive = new Map<string, Promise<boolean>>();
    return async (instance) => {
      if (!this.cluster || instance === undefined || instance === this.cluster.instance) return true;
      if (!alive.has(instance)) alive.set(instance, this.cluster.isAlive(instance).catch(() => true));
      return !(await alive.get(instance));
    };
  }

  /**
   * Reads the store again and takes what it holds that this server does not: after the store
   * could not be read at listen (then also the observations and queue), or when the other
   * instances' changes may have been missed (the connection to Redis was lost).
   */
  private reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        const stored = await this.store.load();
        const inStore = new Set<string>();
        const now = Date.now();
        for (const record of stored) {
          inStore.add(record.id);
          if (this.cluster || record.updatedAt + record.lifetime * 1000 + this.grace() >= now) this.merge(record, undefined);
          else this.store.remove(record.id);
        }
        // what this instance registered while the store was away (or what a Redis restarted empty lost)
        for (const record of this.registry.all()) if (!inStore.has(record.id) && (!this.cluster || record.instance === this.cluster.instance)) this.store.save(record);
        if (!this.restored) {
          const [observations, queued] = [await this.store.loadObservations(), await this.store.loadQueue()];
          this.restored = true;
          await this.restore(observations, queued);
        }
        if (this.reloadTimer) {
          clearInterval(this.reloadTimer);
          this.reloadTimer = undefined;
          this.emit('storeLoaded', { registrations: this.registry.size });
        }
      } catch (error) {
        if (!this.reloadTimer) this.fail(error); // while retrying, the first failure was reported at listen
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  /** The plain CoAP address. */
  address(): AddressInfo {
    return this.endpoint.address();
  }

  /** The DTLS address, when DTLS is configured. */
  secureAddress(): AddressInfo | undefined {
    return this.dtls?.address();
  }

  /** The sockets' receive and send buffer sizes as the kernel reports them (Linux: twice the bytes granted), once listening. */
  socketBuffers(): { plain?: SocketBufferSizes; secure?: SocketBufferSizes } {
    return this.sockets.socketBuffers();
  }

  /** Stops: pending requests fail, observations end, the store is flushed, the socket closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    clearInterval(this.reloadTimer);
    // what ends now stays in the store for a restart: the other instances are not told
    this.cluster?.closing();
    for (const { timer } of this.awakeUntil.values()) clearTimeout(timer);
    this.awakeUntil.clear();
    const kept = this.store instanceof NoStore ? '' : '; the request stays in the store and goes out when the device wakes after a restart';
    this.queue.clear(new LwM2MError('SERVER_NOT_RUNNING', `the server was closed${kept}`));
    this.tracked.endAll('closed');
    this.badInput.close();
    this.packages.clear();
    // sessions handed to the store are not ended: the devices go on with the restarted server
    const sessionsKept = this.dtlsSessions?.stop() ?? false;
    await this.sockets.close({ notify: !sessionsKept });
    await this.reloading;
    await this.cluster?.leave();
    await this.store.close();
  }

  // --- registrations ---

  registrations(): Registration[] {
    return [...this.registry.all()].map((record) => this.view(record));
  }

  registration(endpoint: string): Registration | undefined {
    const record = this.registry.byEndpointName(endpoint);
    return record ? this.view(record) : undefined;
  }

  private view(record: RegistrationRecord): Registration {
    const list = () => this.objectList(record);
    return Object.freeze({
      ...record,
      get objects() {
        return list().objects;
      },
      get contentFormats() {
        return list().contentFormats;
      },
      expiresAt: record.updatedAt + record.lifetime * 1000,
      awake: this.isAwake(record),
    });
  }

  /** The parsed object list of a registration, parsed once per list the device sent. */
  private objectList(record: RegistrationRecord): ObjectList {
    const cached = this.parsedLists.get(record);
    if (cached && cached.links === record.objectLinks) return cached.list;
    const list = parseObjectList(Buffer.from(record.objectLinks, 'utf8'));
    this.parsedLists.set(record, { links: record.objectLinks, list });
    return list;
  }

  /** Emits a registration event only when someone listens: building the view costs, at 10,000 Updates a second. */
  private announce(event: string, record: RegistrationRecord, ...rest: unknown[]): void {
    if (this.listenerCount(event) > 0) this.emit(event, this.view(record), ...rest);
  }

  private grace(): number {
    return (this.options.expiryGrace ?? 5) * 1000;
  }

  private sweep(): void {
    for (const record of this.registry.expired(Date.now(), this.grace())) {
      if (this.cluster) this.claimExpiry(this.cluster, record);
      else this.end(record, 'expire');
    }
  }

  /** With several instances, the one whose claim succeeds expires the registration (and emits `expire`); the others forget it quietly. */
  private claimExpiry(cluster: ClusterMember, record: RegistrationRecord): void {
    if (this.claiming.has(record.id)) return;
    this.claiming.add(record.id);
    cluster
      .claimExpiry(record.id, record.updatedAt)
      .then(
        (claim) => {
          if (this.registry.get(record.id) !== record || this.closed) return;
          if (claim === 'claimed') {
            this.end(record, 'expire');
            cluster.shareEnd(record.id, 'expire');
          } else if (claim === 'gone') this.end(record, 'expire', false);
          else this.merge(claim.newer, undefined); // an Update on another instance this one missed
        },
        (error: Error) => this.log.warn(`cannot claim the expiry of ${record.endpoint}'s registration: ${error.message}; trying again`),
      )
      .finally(() => this.claiming.delete(record.id));
  }

  /**
   * Ends a registration: its observations, queued requests and awake state go with it. `here`:
   * it ended on this instance, which stores it and emits the event; else another instance did.
   */
  private end(record: RegistrationRecord, event: 'deregister' | 'expire' | 'replaced', here = true): void {
    this.registry.remove(record.id);
    if (here) this.store.remove(record.id);
    this.tracked.endRegistration(record.id, event === 'replaced' ? 'reregistered' : event === 'deregister' ? 'deregistered' : 'expired');
    if (this.queue.size(record.id) > 0) this.queue.drop(record.id, new LwM2MError('NOT_REGISTERED', `${record.endpoint} is no longer registered`));
    const awake = this.awakeUntil.get(record.id);
    if (awake) clearTimeout(awake.timer);
    this.awakeUntil.delete(record.id);
    this.cluster?.dropRelays(record.id);
    if (event === 'replaced') return;
    if (here) this.announce(event, record);
    else this.elsewhere(event, record);
  }

  // --- uplink: /rd and /dp ---

  private uplink(request: IncomingRequest): OutgoingResponse {
    try {
      const [first, second, ...rest] = request.path;
      if (first === 'rd' && rest.length === 0) {
        if (second === undefined) {
          if (request.method !== 'POST') return { code: '4.05' };
          return this.register(request);
        }
        if (request.method === 'POST') return this.update(request, second);
        if (request.method === 'DELETE') return this.deregister(request, second);
        return { code: '4.05' };
      }
      if (first === PACKAGE_PATH && rest.length === 0) return this.packages.serve(request, second);
      if (first === 'dp' && second === undefined) {
        if (request.method !== 'POST') return { code: '4.05' };
        return this.receiveSend(request);
      }
      this.log.warn(`${request.method} /${request.path.join('/')} from ${request.peer.address}:${request.peer.port}: no such resource on this server`);
      this.badRequest(request, `${request.method} /${request.path.join('/')}: no such resource on this server`);
      return { code: '4.04' };
    } catch (error) {
      if (error instanceof RegistrationRequestError) {
        this.log.warn(`refused ${request.method} /${request.path.join('/')} from ${request.peer.address}:${request.peer.port}: ${error.message}`);
        this.badRequest(request, `${request.method} /${request.path.join('/')}: ${error.message}`);
        return { code: error.coapCode, payload: Buffer.from(error.message) };
      }
      this.fail(error);
      return { code: '5.00' };
    }
  }

  private register(request: IncomingRequest): OutgoingResponse {
    const params = parseRegisterQuery(request.query);
    if (request.contentFormat !== undefined && request.contentFormat !== ContentFormat.LINK) {
      throw new RegistrationRequestError('4.00', `the object list must be CoRE link format (40), not ${formatName(request.contentFormat)}`);
    }
    this.checkSecurity(request, params.endpoint);
    const objectLinks = request.payload.toString('utf8');
    const list = parseObjectList(request.payload);
    const now = Date.now();
    const record: RegistrationRecord = {
      id: this.newId(),
      endpoint: params.endpoint,
      lifetime: params.lifetime,
      version: params.version,
      binding: params.binding,
      queueMode: params.queueMode,
      objectLinks,
      address: request.peer.address,
      port: request.peer.port,
      rootPath: list.rootPath,
      registeredAt: now,
      updatedAt: now,
    };
    if (params.sms !== undefined) record.sms = params.sms;
    if (request.peer.identity !== undefined) Object.assign(record, { identity: request.peer.identity }, recordedAuthentication(request.peer));
    if (this.cluster) record.instance = this.cluster.instance;
    const previous = this.registry.byEndpointName(record.endpoint);
    if (previous) this.end(previous, 'replaced');
    this.registry.add(record);
    this.store.save(record);
    this.cluster?.share(record);
    return {
      code: '2.01',
      options: [
        { number: OptionNumber.LOCATION_PATH, value: Buffer.from('rd') },
        { number: OptionNumber.LOCATION_PATH, value: Buffer.from(record.id) },
      ],
      // the device may act on its registration only once it has the answer: announce it then
      onSent: () => {
        if (this.registry.get(record.id) !== record) return;
        this.announce('register', record, previous ? this.view(previous) : undefined);
        this.heard(record);
      },
    };
  }

  private update(request: IncomingRequest, id: string): OutgoingResponse {
    const record = this.registry.get(id);
    if (!record) {
      this.badRequest(request, `an Update of rd/${id}, which is not a registration`);
      return { code: '4.04', payload: Buffer.from(`no registration rd/${id}; register again`) };
    }
    const stranger = this.stranger(request, record);
    if (stranger) return this.refuse(request, `an Update of ${record.endpoint}'s registration from ${stranger}`);
    const changes = parseUpdateQuery(request.query);
    let list;
    if (request.payload.length > 0) {
      if (request.contentFormat !== undefined && request.contentFormat !== ContentFormat.LINK) {
        throw new RegistrationRequestError('4.00', `the object list must be CoRE link format (40), not ${formatName(request.contentFormat)}`);
      }
      list = parseObjectList(request.payload);
    }
    // everything checked: apply
    const changed: string[] = [];
    for (const field of ['lifetime', 'binding', 'queueMode', 'sms'] as const) {
      const value = changes[field];
      if (value === undefined || value === record[field]) continue;
      Object.assign(record, { [field]: value });
      changed.push(field);
    }
    if (list) {
      // an object list, when present, replaces the old one
      record.objectLinks = request.payload.toString('utf8');
      record.rootPath = list.rootPath;
      changed.push('objects');
    }
    if (record.address !== request.peer.address || record.port !== request.peer.port) changed.push('address');
    this.follow(record, request.peer);
    record.updatedAt = Date.now();
    this.store.save(record);
    this.cluster?.share(record);
    return {
      code: '2.04',
      onSent: () => {
        this.announce('update', record, changed);
        this.heard(record);
      },
    };
  }

  private deregister(request: IncomingRequest, id: string): OutgoingResponse {
    const record = this.registry.get(id);
    if (!record) {
      this.badRequest(request, `a De-register of rd/${id}, which is not a registration`);
      return { code: '4.04' };
    }
    const stranger = this.stranger(request, record);
    if (stranger) return this.refuse(request, `a De-register of ${record.endpoint} from ${stranger}`);
    return {
      code: '2.02',
      onSent: () => {
        if (this.registry.get(id) !== record) return;
        this.end(record, 'deregister');
        this.cluster?.shareEnd(record.id, 'deregister');
      },
    };
  }

  private receiveSend(request: IncomingRequest): OutgoingResponse {
    // over DTLS the session's identity names the device; over plain CoAP only its address can
    const identity = request.peer.identity;
    const bound = this.identities.endpointOf(request.peer);
    const record = identity === undefined ? this.registry.byAddress(request.peer) : bound === undefined ? undefined : this.registry.byEndpointName(bound);
    const stranger = record && this.stranger(request, record);
    if (stranger) return this.refuse(request, `a Send as ${record!.endpoint} from ${stranger}`);
    if (!record) {
      this.log.warn(`refused a Send from ${request.peer.address}:${request.peer.port}, which is not registered`);
      this.badRequest(request, 'a Send from a device that is not registered');
      return { code: '4.03', payload: Buffer.from('not registered') };
    }
    const format = request.contentFormat === undefined ? undefined : canonicalFormat(request.contentFormat);
    if (format === undefined || !COMPOSITE.has(format)) {
      return { code: '4.15', payload: Buffer.from('a Send is SenML CBOR, SenML JSON or LwM2M CBOR') };
    }
    let records: ResourceRecord[];
    try {
      records = decodeRecords(format, '/', request.payload, this.model);
    } catch (error) {
      this.log.warn(`refused a Send from ${record.endpoint}: ${(error as Error).message}`);
      return { code: '4.00', payload: Buffer.from((error as Error).message.slice(0, 200)) };
    }
    if (this.cluster && record.instance !== this.cluster.instance) {
      this.takeOver(this.cluster, record);
      this.store.save(record);
      this.cluster.share(record);
    }
    this.heard(record);
    const event: SendEvent = { endpoint: record.endpoint, registration: this.view(record), values: latestValues(records), records };
    return { code: '2.04', onSent: () => this.emit('send', event) };
  }

  /**
   * The security policy of a Register: over DTLS only the endpoint bound to the session's identity
   * (a PSK identity's, a raw public key's, or a certificate's CN); over plain CoAP nothing with a
   * PSK or raw public key or registered over DTLS, and nothing at all when security is required.
   */
  private checkSecurity(request: IncomingRequest, endpoint: string): void {
    if (request.peer.identity !== undefined) {
      const bound = this.identities.endpointOf(request.peer);
      if (bound !== endpoint) throw new RegistrationRequestError('4.03', `${describeIdentity(request.peer)} may not register as ${endpoint}`);
    } else if (this.options.requireSecurity) {
      throw new RegistrationRequestError('4.03', 'this server accepts registrations over DTLS only');
    } else if (this.identities.hasKey(endpoint)) {
      throw new RegistrationRequestError('4.03', `${endpoint} has a ${this.psks.hasEndpoint(endpoint) ? 'PSK' : 'raw public key'}: it must register over DTLS`);
    } else if (this.registry.byEndpointName(endpoint)?.identity !== undefined) {
      // a device registered with a certificate (whose CN no table lists) is not replaced over plain CoAP
      throw new RegistrationRequestError('4.03', `${endpoint} is registered over DTLS: it must register over DTLS`);
    }
  }

  /**
   * Why a request about a registration does not come from its device, or undefined when it does: it
   * must come over the registration's transport with its identity, and, with `requireSameAddress`,
   * over plain CoAP from the address the device registered from.
   */
  private stranger(request: IncomingRequest, record: RegistrationRecord): string | undefined {
    if (!this.identities.sameSession(request.peer, record)) return 'another session';
    if (this.options.requireSameAddress && record.identity === undefined && request.peer.address !== record.address) return `another address than ${record.address}`;
    return undefined;
  }

  private refuse(request: IncomingRequest, what: string): OutgoingResponse {
    this.log.warn(`refused ${what} (${request.peer.address}:${request.peer.port})`);
    this.badRequest(request, `refused ${what}`);
    return { code: '4.03', payload: Buffer.from('forbidden') };
  }

  /** A request refused as nonsense or unauthorised: a `badDatagram` event (rate-limited). */
  private badRequest(request: IncomingRequest, reason: string): void {
    const { address, port, identity } = request.peer;
    this.badInput.badDatagram(() => ({ address, port, kind: 'refused', reason, size: request.size ?? request.payload.length, secure: identity !== undefined }));
  }

  /** Downlink goes over the transport the device registered over. */
  private endpointFor(record: RegistrationRecord): CoapEndpoint {
    if (record.identity === undefined) return this.endpoint;
    if (!this.secureEndpoint) throw new LwM2MError('TIMEOUT', `${record.endpoint} registered over DTLS, which this server no longer offers`);
    return this.secureEndpoint;
  }

  private newId(): string {
    let id: string;
    do id = pooledRandomId(6);
    while (this.registry.get(id));
    return id;
  }

  // --- queue mode ---

  private isAwake(record: RegistrationRecord): boolean {
    return !record.queueMode || (this.awakeUntil.get(record.id)?.until ?? 0) > Date.now();
  }

  /** Any message from a queue-mode device: it is reachable for awakeTime, and what waited for it goes out. */
  private heard(record: RegistrationRecord): void {
    if (!record.queueMode || this.closed) return;
    const wasAwake = this.isAwake(record);
    const awakeTime = this.options.awakeTime ?? maxTransmitWait(this.endpoint.timing);
    const previous = this.awakeUntil.get(record.id);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => {
      this.awakeUntil.delete(record.id);
      if (this.registry.get(record.id) === record) this.announce('sleep', record);
    }, awakeTime);
    this.awakeUntil.set(record.id, { until: Date.now() + awakeTime, timer });
    if (!wasAwake) this.announce('awake', record);
    this.queue.release(record.id);
  }

  // --- downlink ---

  private target(endpoint: string): RegistrationRecord {
    if (typeof endpoint !== 'string' || endpoint === '') throw new LwM2MError('BAD_REQUEST', 'an endpoint name is required');
    const record = this.registry.byEndpointName(endpoint);
    if (!record) throw new LwM2MError('NOT_REGISTERED', `${endpoint} is not registered`);
    if (record.updatedAt + record.lifetime * 1000 < Date.now()) throw new LwM2MError('NOT_REGISTERED', `the registration of ${endpoint} has expired`);
    return record;
  }

  private pathOf(path: string | LwM2MPath): LwM2MPath {
    try {
      return LwM2MPath.from(path);
    } catch (error) {
      throw new LwM2MError('BAD_REQUEST', (error as Error).message);
    }
  }

  private segments(record: RegistrationRecord, path: LwM2MPath): string[] {
    const root = record.rootPath === '' ? [] : record.rootPath.slice(1).split('/');
    return [...root, ...path.ids.map(String)];
  }

  /**
   * The format for values to and from a device: the caller's, the server's, what it announced, else
   * by its version. Writes to a 1.0 device go in TLV, which every 1.0 client must take: their OMA
   * JSON readers differ too much to trust with a write.
   */
  private valueFormat(record: RegistrationRecord, requested: number | undefined, composite: boolean, purpose: 'read' | 'write' = 'read'): number {
    if (requested !== undefined) return canonicalFormat(requested);
    const announced = this.objectList(record).contentFormats.map(canonicalFormat);
    const preferred = this.options.preferredFormat;
    const usable = (format: number) => (!composite || COMPOSITE.has(format)) && format !== ContentFormat.TEXT && format !== ContentFormat.OPAQUE;
    if (preferred !== undefined && usable(canonicalFormat(preferred)) && (announced.length === 0 || announced.includes(canonicalFormat(preferred)))) {
      return canonicalFormat(preferred);
    }
    if (purpose === 'write' && !composite && record.version === '1.0') return ContentFormat.TLV;
    const fromDevice = announced.find(usable);
    if (fromDevice !== undefined) return fromDevice;
    if (record.version === '1.0') return composite ? ContentFormat.SENML_CBOR : ContentFormat.TLV;
    return ContentFormat.SENML_CBOR;
  }

  /** Sends one request to a registered device (waiting for it to wake in queue mode) and checks the answer. */
  private async request(record: RegistrationRecord, operation: string, params: RequestParams, options: RequestOptions, success: string[]): Promise<CoapResponse> {
    // params is each caller's own literal: the timeout goes into it instead of into a copy
    params.timeout = options.timeout ?? this.options.requestTimeout ?? 10_000;
    const ttl = options.ttl ?? this.options.queueTimeToLive ?? 60_000;
    const response = this.heldElsewhere(record)
      ? await this.cluster!.forward(record, operation, params, record.queueMode ? ttl : 0, success)
      : await this.deliver(record, operation, params, ttl, success);
    if (!success.includes(response.code)) throw errorFromResponse(operation, record.endpoint, response.code, response.payload);
    return response;
  }

  /** Sends a request from this instance's socket, or queues it while the device sleeps. */
  private deliver(record: RegistrationRecord, operation: string, params: RequestParams, ttl: number, success: string[]): Promise<CoapResponse> {
    return this.isAwake(record) ? this.transmit(record, operation, params) : this.enqueue(record, operation, params, ttl, success);
  }

  /** Whether the device talks to another instance (which sends to it for this one). */
  private heldElsewhere(record: RegistrationRecord): boolean {
    return this.cluster !== undefined && record.instance !== undefined && record.instance !== this.cluster.instance;
  }

  /** Waits for a sleeping device, kept in the store meanwhile so that a restart does not lose it. */
  private enqueue(record: RegistrationRecord, operation: string, params: RequestParams, ttl: number, success: string[]): Promise<CoapResponse> {
    const now = Date.now();
    const stored: QueuedRequestRecord = { id: pooledRandomId(6), registrationId: record.id, endpoint: record.endpoint, operation, request: storedRequest(params), success, queuedAt: now, expiresAt: now + ttl };
    if (this.cluster) stored.instance = this.cluster.instance;
    this.store.saveQueued(stored);
    return this.queue.enqueue(record.id, () => this.transmit(record, operation, params), ttl, `${operation} on ${record.endpoint}`).finally(() => {
      // a closing server keeps it for the next start
      if (!this.closed) this.store.removeQueued(stored.id);
    });
  }

  /** A request queued before a restart: its caller is gone, so its outcome becomes a `queuedRequest` event. */
  private restoreQueued(stored: QueuedRequestRecord): void {
    const record = this.registry.get(stored.registrationId);
    if (!record) {
      this.store.removeQueued(stored.id);
      return;
    }
    // taken up from an instance that is not running: this one's from now on
    if (this.cluster && stored.instance !== this.cluster.instance) this.store.saveQueued({ ...stored, instance: this.cluster.instance });
    const event: QueuedRequestEvent = { id: stored.id, endpoint: stored.endpoint, operation: stored.operation, queuedAt: stored.queuedAt };
    const ttl = stored.expiresAt - Date.now();
    const params = requestParams(stored.request);
    params.timeout = this.options.requestTimeout ?? 10_000;
    const sent: Promise<CoapResponse> =
      ttl <= 0
        ? Promise.reject(new LwM2MError('TIMEOUT', `${stored.operation} on ${stored.endpoint}: the device did not wake up before the request's time to live ran out (the server was down)`))
        : this.heldElsewhere(record)
          ? this.cluster!.forward(record, stored.operation, params, ttl, stored.success)
          : this.queue.enqueue(record.id, () => this.transmit(record, stored.operation, params), ttl, `${stored.operation} on ${stored.endpoint}`);
    sent.then(
      (response) => {
        event.code = response.code;
        if (response.contentFormat !== undefined) event.contentFormat = response.contentFormat;
        event.payload = response.payload;
        if (!stored.success.includes(response.code)) event.error = errorFromResponse(stored.operation, stored.endpoint, response.code, response.payload);
        else if (params.method === 'GET' && response.code === '2.05' && params.accept !== ContentFormat.LINK) {
          try {
            event.value = decode(response.contentFormat ?? ContentFormat.TEXT, this.lwm2mPath(record, stored.request.path), response.payload, this.model);
          } catch (error) {
            event.error = new LwM2MError('INTERNAL', `${stored.operation} on ${stored.endpoint}: the answer does not decode: ${(error as Error).message}`, response.code);
          }
        }
      },
      (error: Error) => {
        event.error = error instanceof LwM2MError ? error : new LwM2MError('INTERNAL', error.message);
      },
    ).finally(() => {
      if (this.closed && event.error?.code === 'SERVER_NOT_RUNNING') return; // kept for the next start
      this.store.removeQueued(stored.id);
      this.emit('queuedRequest', event);
    });
  }

  /** The LwM2M path of a request's Uri-Path segments: the device's root path taken off. */
  private lwm2mPath(record: RegistrationRecord, segments: readonly string[]): LwM2MPath {
    const root = record.rootPath === '' ? 0 : record.rootPath.slice(1).split('/').length;
    return LwM2MPath.from(`/${segments.slice(root).join('/')}`);
  }

  /** Puts one request on the wire to the device, over the transport it registered over; transport errors become LwM2MErrors. */
  private async transmit(record: RegistrationRecord, operation: string, params: RequestParams): Promise<CoapResponse> {
    if (this.closed) throw new LwM2MError('SERVER_NOT_RUNNING', 'the server was closed');
    try {
      return await this.endpointFor(record).request({ address: record.address, port: record.port }, params);
    } catch (error) {
      if (error instanceof CoapError) throw transportError(operation, record.endpoint, params.method, error);
      throw error;
    }
  }

  private decodeValue(record: RegistrationRecord, operation: string, response: CoapResponse, path: LwM2MPath): LwM2MValue {
    const format = response.contentFormat ?? ContentFormat.TEXT;
    try {
      return decode(format, path, response.payload, this.model);
    } catch (error) {
      const reason = error instanceof ContentFormatError ? error.reason : (error as Error).message;
      throw new LwM2MError('INTERNAL', `${operation} on ${record.endpoint}: the answer (${formatName(format)}) does not decode: ${reason}`, response.code);
    }
  }

  async read(endpoint: string, path: string | LwM2MPath, options: RequestOptions = {}): Promise<LwM2MValue> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    const response = await this.request(record, `Read ${at}`, { method: 'GET', path: this.segments(record, at), accept: this.valueFormat(record, options.format, false) }, options, ['2.05']);
    return this.decodeValue(record, `Read ${at}`, response, at);
  }

  async discover(endpoint: string, path: string | LwM2MPath, options: RequestOptions = {}): Promise<Link[]> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    const response = await this.request(record, `Discover ${at}`, { method: 'GET', path: this.segments(record, at), accept: ContentFormat.LINK }, options, ['2.05']);
    try {
      const links = decodeLinks(response.payload);
      // links are relative to the device's root path: strip it so callers see LwM2M paths
      return record.rootPath === '' ? links : links.map((link) => ({ ...link, uri: link.uri.startsWith(record.rootPath + '/') ? link.uri.slice(record.rootPath.length) : link.uri }));
    } catch (error) {
      throw new LwM2MError('INTERNAL', `Discover ${at} on ${endpoint}: the answer is not link format: ${(error as Error).message}`, response.code);
    }
  }

  async readComposite(endpoint: string, paths: ReadonlyArray<string | LwM2MPath>, options: RequestOptions = {}): Promise<CompositeValue> {
    const record = this.target(endpoint);
    const at = paths.map((path) => this.pathOf(path));
    if (at.length === 0) throw new LwM2MError('BAD_REQUEST', 'Read-Composite needs at least one path');
    const format = this.valueFormat(record, options.format, true);
    const request = format === ContentFormat.SENML_JSON ? ContentFormat.SENML_JSON : ContentFormat.SENML_CBOR;
    const response = await this.request(
      record,
      'Read-Composite',
      { method: 'FETCH', path: this.segments(record, LwM2MPath.ROOT), contentFormat: request, accept: format, payload: encodePaths(request, at) },
      options,
      ['2.05'],
    );
    try {
      return decodeComposite(response.contentFormat ?? format, response.payload, this.model, { paths: at });
    } catch (error) {
      throw new LwM2MError('INTERNAL', `Read-Composite on ${endpoint}: the answer does not decode: ${(error as Error).message}`, response.code);
    }
  }

  async write(endpoint: string, path: string | LwM2MPath, value: unknown, options: WriteOptions = {}): Promise<void> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    const format = this.valueFormat(record, options.format, false, 'write');
    const payload = this.encodeFor(format, at, value);
    const method = options.mode === 'update' ? 'POST' : 'PUT';
    const params: RequestParams = { method, path: this.segments(record, at), contentFormat: format, payload, blockSize: options.blockSize, onProgress: options.onProgress };
    await this.request(record, `Write ${at}`, params, options, ['2.04']);
  }

  async writeComposite(endpoint: string, values: CompositeValue, options: RequestOptions = {}): Promise<void> {
    const record = this.target(endpoint);
    const format = this.valueFormat(record, options.format, true);
    let payload: Buffer;
    try {
      payload = encodeComposite(format, values, this.model);
    } catch (error) {
      throw new LwM2MError('BAD_REQUEST', (error as Error).message);
    }
    await this.request(record, 'Write-Composite', { method: 'IPATCH', path: this.segments(record, LwM2MPath.ROOT), contentFormat: format, payload }, options, ['2.04']);
  }

  async writeAttributes(endpoint: string, path: string | LwM2MPath, attributes: AttributeChanges, options: RequestOptions = {}): Promise<void> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    const query = attributeQuery(attributes);
    await this.request(record, `Write-Attributes ${at}`, { method: 'PUT', path: this.segments(record, at), query }, options, ['2.04']);
  }

  async execute(endpoint: string, path: string | LwM2MPath, args = '', options: RequestOptions = {}): Promise<void> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    if (at.level !== 'resource') throw new LwM2MError('BAD_REQUEST', `Execute needs a resource path, not ${at}`);
    const payload = Buffer.from(String(args), 'utf8');
    await this.request(record, `Execute ${at}`, { method: 'POST', path: this.segments(record, at), payload, contentFormat: payload.length > 0 ? ContentFormat.TEXT : undefined }, options, ['2.04']);
  }

  /**
   * Creates an instance: `path` is the new instance (`/3303/5`), or the object (`/3303`) to let the
   * device pick the id. Resolves with the new instance's path, as the device's Location-Path says.
   *
   * Without an id, TLV can carry the resources alone (the device picks the id), so TLV is used when
   * the caller names no format and the device takes it. Other formats name the instance, so the id
   * is picked from what the device says it has now (Discover), not from a registration that may be
   * stale.
   */
  async create(endpoint: string, path: string | LwM2MPath, value: unknown, options: RequestOptions = {}): Promise<string> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    if (at.level !== 'object' && at.level !== 'instance') throw new LwM2MError('BAD_REQUEST', `Create needs an object or instance path, not ${at}`);
    const objectPath = LwM2MPath.of(at.objectId!);
    let format = this.valueFormat(record, options.format, false, 'write');
    if (at.level === 'object' && options.format === undefined && format !== ContentFormat.TLV && this.takesTlv(record)) format = ContentFormat.TLV;
    let payload: Buffer;
    if (at.level === 'instance') payload = this.encodeFor(format, objectPath, { [at.instanceId!]: value });
    else if (format === ContentFormat.TLV) payload = this.encodeFor(format, LwM2MPath.of(at.objectId!, 0), value); // resources only: the device picks the id
    else payload = this.encodeFor(format, objectPath, { [await this.freeInstance(record, at.objectId!, options)]: value });
    const response = await this.request(record, `Create ${at}`, { method: 'POST', path: this.segments(record, objectPath), contentFormat: format, payload }, options, ['2.01']);
    const location = response.options.filter((option) => option.number === OptionNumber.LOCATION_PATH).map((option) => option.value.toString('utf8'));
    const created = location.length >= 2 ? `/${location.slice(-2).join('/')}` : at.level === 'instance' ? at.toString() : undefined;
    if (created === undefined) this.log.warn(`Create ${at} on ${endpoint}: the device answered 2.01 without a Location-Path, so the new instance's id is unknown`);
    return created ?? objectPath.toString();
  }

  async delete(endpoint: string, path: string | LwM2MPath, options: RequestOptions = {}): Promise<void> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    await this.request(record, `Delete ${at}`, { method: 'DELETE', path: this.segments(record, at) }, options, ['2.02']);
  }

  private encodeFor(format: number, path: LwM2MPath, value: unknown): Buffer {
    try {
      return encode(format, path, value, this.model);
    } catch (error) {
      throw new LwM2MError('BAD_REQUEST', (error as Error).message);
    }
  }

  /** Whether a device takes TLV: every 1.0 device must; later ones when they announce it, or announce nothing. */
  private takesTlv(record: RegistrationRecord): boolean {
    const announced = this.objectList(record).contentFormats.map(canonicalFormat);
    return record.version === '1.0' || announced.length === 0 || announced.includes(ContentFormat.TLV);
  }

  /** The lowest instance id the device does not use: from a Discover of the object, else from its registration. */
  private async freeInstance(record: RegistrationRecord, objectId: number, options: RequestOptions): Promise<number> {
    const used = new Set<number>();
    try {
      for (const link of await this.discover(record.endpoint, LwM2MPath.of(objectId), options)) {
        const [, object, instance] = link.uri.split('/');
        if (object === String(objectId) && instance !== undefined && /^\d+$/.test(instance)) used.add(Number(instance));
      }
    } catch (error) {
      if (!(error instanceof LwM2MError) || error.code === 'TIMEOUT' || error.code === 'NOT_REGISTERED') throw error;
      // a device that does not Discover (or not this object): its registration is all there is to go by
      for (const object of this.objectList(record).objects) if (object.objectId === objectId && object.instanceId !== undefined) used.add(object.instanceId);
    }
    let id = 0;
    while (used.has(id)) id++;
    return id;
  }

  // --- several instances ---

  /** What this server does for the other instances: send to the devices whose socket it holds, and take in their changes. */
  private clusterHost(): ClusterHost {
    const registered = (id: string, operation: string): RegistrationRecord => {
      const record = this.registry.get(id);
      if (!record) throw new LwM2MError('NOT_REGISTERED', `${operation}: registration ${id} is no longer registered`);
      return record;
    };
    return {
      deliver: async (id, operation, params, ttl, success) => this.deliver(registered(id, operation), operation, params, ttl, success),
      observeHere: async (id, operation, params, ttl, listener) => {
        const record = registered(id, operation);
        const start = () => this.endpointFor(record).observe({ address: record.address, port: record.port }, params, listener);
        return this.isAwake(record) ? start() : this.queue.enqueue(record.id, start, ttl, `${operation} on ${record.endpoint}`);
      },
      adoptHere: (id, token, listener) => {
        const record = this.registry.get(id);
        return record && this.endpointFor(record).adoptObservation({ address: record.address, port: record.port }, token, listener);
      },
      shared: (record, from) => {
        const checked = checkRecord('registrations', record);
        if (typeof checked === 'string') this.log.warn(`ignored a registration from instance ${from}: ${checked}`);
        else this.merge(checked, from);
      },
      ended: (id, reason) => {
        const record = this.registry.get(id);
        if (record) this.end(record, reason, false);
      },
      rejoined: (instance) => {
        // its socket forgot the notifications it passed on for this one: ask again
        for (const record of this.registry.all()) if (record.instance === instance && this.tracked.ofRegistration(record.id).length > 0) this.rehome(record);
      },
      resync: () => void this.reload(),
      warn: (message) => this.log.warn(message),
    };
  }

  /**
   * Takes in a registration as another instance (`from`) or the store has it: a new one (replacing
   * an older one of the same endpoint), or a change of one known. When its device moved to another
   * instance, the observations follow it there.
   */
  private merge(incoming: RegistrationRecord, from: string | undefined): void {
    const existing = this.registry.get(incoming.id);
    if (existing) {
      if (incoming.updatedAt < existing.updatedAt) return; // older news than this instance has
      const moved = existing.instance !== incoming.instance;
      const readdressed = existing.address !== incoming.address || existing.port !== incoming.port;
      if (readdressed) this.registry.move(existing, incoming);
      for (const field of Object.keys(existing) as Array<keyof RegistrationRecord>) if (!(field in incoming)) delete existing[field];
      Object.assign(existing, incoming);
      if (moved) this.cluster?.dropRelays(existing.id);
      if (moved || readdressed) this.rehome(existing);
      if (from !== undefined) this.elsewhere('update', existing);
      return;
    }
    const previous = this.registry.byEndpointName(incoming.endpoint);
    if (previous) {
      if (previous.registeredAt > incoming.registeredAt) return; // this instance has a newer registration of the device
      this.end(previous, 'replaced', false);
    }
    const record = { ...incoming };
    this.registry.add(record);
    if (from !== undefined) this.elsewhere('register', record);
  }

  /** A registration changed on another instance: no registration event here (its instance emitted one), a `clusterRegistration` event for views of the fleet. */
  private elsewhere(kind: 'register' | 'update' | 'deregister' | 'expire', record: RegistrationRecord): void {
    if (!this.cluster || this.listenerCount('clusterRegistration') === 0) return;
    this.emit('clusterRegistration', { kind, registration: this.view(record), instance: record.instance ?? '' });
  }

  /** A DTLS session moved (connection ID, NAT rebinding): the device's registration and observations follow it. */
  private sessionMoved(move: SessionMove): void {
    const record = this.registry.byAddress(move.from);
    if (!record || record.identity !== move.identity || !this.follow(record, move.to)) return;
    this.store.save(record);
    this.cluster?.share(record);
  }

  /**
   * A device heard from `peer`: its registration moves there (NAT rebinding, a moved DTLS session)
   * and, with several instances, to this instance; its observations follow. True when anything
   * changed: the caller stores and shares the record.
   */
  private follow(record: RegistrationRecord, peer: Peer): boolean {
    const readdressed = record.address !== peer.address || record.port !== peer.port;
    if (readdressed) this.registry.move(record, peer);
    if (this.cluster && this.heldElsewhere(record)) this.takeOver(this.cluster, record);
    else if (readdressed) {
      this.cluster?.dropRelays(record.id);
      this.rehome(record);
    } else return false;
    return true;
  }

  /** The observations of a registration whose device moved: heard where its messages now arrive. */
  private rehome(record: RegistrationRecord): void {
    for (const state of this.tracked.ofRegistration(record.id)) {
      state.cancel();
      state.peer = { address: record.address, port: record.port };
      try {
        state.cancel = this.listenFor(record, state.id, state.token, state.listener);
      } catch (error) {
        this.tracked.end(state, 'error');
        this.log.warn(`observation ${state.id} of ${record.endpoint} ended: ${(error as Error).message}`);
      }
    }
  }

  /**
   * A device whose socket another instance held talks to this one now (the load balancer moved it,
   * or that instance stopped): this instance holds it from now on. The caller stores and shares the
   * record. Observations and queued requests of instances no longer running are taken up from the store.
   */
  private takeOver(cluster: ClusterMember, record: RegistrationRecord): void {
    record.instance = cluster.instance;
    this.rehome(record);
    void this.takeUpOrphans(record);
  }

  private async takeUpOrphans(record: RegistrationRecord): Promise<void> {
    this.takingUp.add(record.id);
    try {
      const [observations, queued] = await Promise.all([this.store.loadObservations(), this.store.loadQueue()]);
      if (this.registry.get(record.id) !== record || this.closed) return;
      // this instance's own queued requests for the device are in its queue already
      const elsewhere = (instance: string | undefined) => instance !== undefined && instance !== this.cluster?.instance;
      await this.restore(
        observations.filter((observation) => observation.registrationId === record.id),
        queued.filter((request) => request.registrationId === record.id && elsewhere(request.instance)),
      );
    } catch (error) {
      this.log.warn(`${record.endpoint} moved to this instance, but the observations and queued requests it had elsewhere could not be read: ${(error as Error).message}`);
    } finally {
      this.takingUp.delete(record.id);
    }
  }

  /**
   * A notification with a token nobody here waits for. From a device another instance holds: it
   * moved here, and its next copy will be heard. From an address no registration has: a device
   * whose balancer session moved here (from a new port) before its next Update, found by its
   * token among the stored observations; anything else gets its Reset.
   */
  private unmatchedNotification(peer: Peer, token: Buffer, reset: () => void): boolean {
    const cluster = this.cluster;
    if (!cluster || this.closed) return false;
    const record = this.registry.byAddress(peer);
    if (record && this.takingUp.has(record.id)) return true; // its observation may be among those being read from the store
    if (record && this.follow(record, peer)) {
      this.store.save(record);
      cluster.share(record);
      return true;
    }
    // the token names the observation, and so the device (also one whose relay for another instance is being set up anew)
    this.storedTokens.find(token).then(
      (stored) => {
        const target = stored && this.registry.get(stored.registrationId);
        if (!target || this.closed) return reset();
        if (!this.follow(target, peer)) return;
        this.store.save(target);
        cluster.share(target);
      },
      () => reset(),
    );
    return true;
  }

  // --- firmware and packages ---

  /**
   * Updates a device's firmware through its Firmware Update object (5): push (a Block1 Write of the
   * package) or pull (the package served by this server, or a URI given), then Execute Update and
   * follow the device through its reboot. Resolves with the outcome; a failure is an outcome too.
   */
  updateFirmware(endpoint: string, source: FirmwareSource, options?: FirmwareUpdateOptions): Promise<FirmwareOutcome> {
    return this.firmware.update(endpoint, source, options);
  }

  /** The same for many devices, `concurrency` at a time (default 5): one outcome per device, in order. */
  updateFirmwareFleet(endpoints: readonly string[], source: FirmwareSource, options?: FirmwareFleetOptions): Promise<FirmwareOutcome[]> {
    return this.firmware.fleet(endpoints, source, options);
  }

  /** Serves `payload` under `/fw/<random name>` on this server's ports until it is released. */
  publish(payload: Buffer, contentFormat?: number): PublishedPackage {
    return this.packages.publish(payload, contentFormat);
  }

  /** The URI a device downloads a published package from: over DTLS if it registered over DTLS, at an address it reaches. */
  packageUri(endpoint: string, published: PublishedPackage): string {
    const record = this.target(endpoint);
    return this.uriFor(record.address, record.identity !== undefined && this.dtls !== undefined) + published.path;
  }

  // --- observe ---

  /** Observes a path (Write-Attributes first when `attributes` are given); notifications come as `notify` events. */
  async observe(endpoint: string, path: string | LwM2MPath, attributes?: AttributeChanges, options: RequestOptions = {}): Promise<Observation> {
    const record = this.target(endpoint);
    const at = this.pathOf(path);
    if (attributes && Object.keys(attributes).length > 0) await this.writeAttributes(endpoint, at, attributes, options);
    const accept = this.valueFormat(record, options.format, false);
    return this.startObservation(record, [at], false, { method: 'GET', path: this.segments(record, at), accept }, options);
  }

  /** Observe-Composite: one observation of several paths (FETCH with Observe). */
  async observeComposite(endpoint: string, paths: ReadonlyArray<string | LwM2MPath>, attributes?: AttributeChanges, options: RequestOptions = {}): Promise<Observation> {
    const record = this.target(endpoint);
    const at = paths.map((path) => this.pathOf(path));
    if (at.length === 0) throw new LwM2MError('BAD_REQUEST', 'Observe-Composite needs at least one path');
    if (attributes && Object.keys(attributes).length > 0) for (const path of at) await this.writeAttributes(endpoint, path, attributes, options);
    const format = this.valueFormat(record, options.format, true);
    const request = format === ContentFormat.SENML_JSON ? ContentFormat.SENML_JSON : ContentFormat.SENML_CBOR;
    return this.startObservation(
      record,
      at,
      true,
      { method: 'FETCH', path: this.segments(record, LwM2MPath.ROOT), contentFormat: request, accept: format, payload: encodePaths(request, at) },
      options,
    );
  }

  private async startObservation(record: RegistrationRecord, paths: LwM2MPath[], composite: boolean, params: RequestParams, options: RequestOptions): Promise<Observation> {
    const operation = composite ? 'Observe-Composite' : `Observe ${paths[0]}`;
    const peer = { address: record.address, port: record.port };
    const id = pooledRandomId(6);
    const ttl = options.ttl ?? this.options.queueTimeToLive ?? 60_000;
    // another instance holding the device's socket waits for it to wake itself
    const elsewhere = this.heldElsewhere(record);
    let state: ObservationState | undefined;
    const pending: CoapResponse[] = [];
    const onNotification = this.notificationListener(record, operation, paths, composite, () => state, pending);
    let first: CoapResponse | undefined;
    const start = async (): Promise<CoapResponse> => {
      const timeout = options.timeout ?? this.options.requestTimeout ?? 10_000;
      try {
        const { response, cancel } = elsewhere
          ? await this.cluster!.observe(record, `${this.cluster!.instance}/${id}`, operation, { ...params, timeout }, record.queueMode ? ttl : 0, onNotification)
          : await this.endpointFor(record).observe(peer, { ...params, timeout }, onNotification);
        if (response.code !== '2.05') {
          cancel();
          throw errorFromResponse(operation, record.endpoint, response.code, response.payload);
        }
        if (response.observe === undefined) {
          cancel();
          throw new LwM2MError('INTERNAL', `${operation} on ${record.endpoint}: the device answered but does not observe (no Observe option)`, response.code);
        }
        const value = this.decodeObserved(record, operation, paths, composite, response);
        first = response;
        state = {
          id,
          endpoint: record.endpoint,
          registrationId: record.id,
          paths: paths.map(String),
          composite,
          value,
          request: params,
          token: response.token,
          peer,
          cancel,
          listener: onNotification,
          lastSequence: response.observe,
          lastAt: Date.now(),
        };
        return response;
      } catch (error) {
        if (error instanceof CoapError) throw transportError(operation, record.endpoint, params.method, error);
        if (error instanceof ContentFormatError) throw new LwM2MError('INTERNAL', `${operation} on ${record.endpoint}: the answer does not decode: ${error.reason}`);
        throw error;
      }
    };
    if (elsewhere || this.isAwake(record)) await start();
    else await this.queue.enqueue(record.id, start, ttl, `${operation} on ${record.endpoint}`);
    const observation = state!;
    if (this.registry.get(record.id) !== record) {
      observation.cancel();
      throw new LwM2MError('NOT_REGISTERED', `${record.endpoint} is no longer registered`);
    }
    this.tracked.add(observation);
    this.store.saveObservation(observationRecord(observation, first!, this.cluster?.instance));
    for (const early of pending.splice(0)) onNotification(early);
    return publicObservation(observation);
  }

  /** An observation started before a restart: its device's next notification is matched by the stored token. */
  private restoreObservation(stored: ObservationRecord): void {
    const record = this.registry.get(stored.registrationId);
    const forget = (why: string) => {
      this.log.warn(`observation ${stored.id} of ${stored.endpoint} not restored: ${why}`);
      this.store.removeObservation(stored.id);
    };
    if (!record) {
      this.store.removeObservation(stored.id); // its registration ended while the server was down
      return;
    }
    let paths: LwM2MPath[];
    let value: LwM2MValue | CompositeValue;
    const operation = stored.composite ? 'Observe-Composite' : `Observe ${stored.paths[0]}`;
    try {
      paths = stored.paths.map((path) => LwM2MPath.from(path));
      value = this.decodeObserved(record, operation, paths, stored.composite, { contentFormat: stored.first.contentFormat, payload: Buffer.from(stored.first.payload, 'base64') });
    } catch (error) {
      forget(`its first value does not decode: ${(error as Error).message}`);
      return;
    }
    let state: ObservationState | undefined;
    const peer = { address: record.address, port: record.port };
    const token = Buffer.from(stored.token, 'hex');
    const onNotification = this.notificationListener(record, operation, paths, stored.composite, () => state, []);
    let cancel: () => void;
    try {
      cancel = this.listenFor(record, stored.id, token, onNotification);
    } catch (error) {
      forget((error as Error).message);
      return;
    }
    // no sequence number yet: the first notification after the restart is taken whatever its number
    state = { id: stored.id, endpoint: record.endpoint, registrationId: record.id, paths: [...stored.paths], composite: stored.composite, value, request: requestParams(stored.request), token, peer, cancel, listener: onNotification, lastSequence: 0, lastAt: 0 };
    this.tracked.add(state);
    // taken up from an instance that is not running: this one's from now on
    if (this.cluster && stored.instance !== this.cluster.instance) this.store.saveObservation({ ...stored, instance: this.cluster.instance });
  }

  /** Hears the notifications with `token` of a registration's device: on this instance's socket, or passed on by the instance holding it. */
  private listenFor(record: RegistrationRecord, observationId: string, token: Buffer, listener: (response: CoapResponse) => void): () => void {
    if (this.heldElsewhere(record)) return this.cluster!.adopt(record, `${this.cluster!.instance}/${observationId}`, token, listener);
    return this.endpointFor(record).adoptObservation({ address: record.address, port: record.port }, token, listener);
  }

  /** Decodes an observed value: of the path, or `{ path: value }` of a composite observation. */
  private decodeObserved(record: RegistrationRecord, operation: string, paths: LwM2MPath[], composite: boolean, response: Pick<CoapResponse, 'contentFormat' | 'payload'>): LwM2MValue | CompositeValue {
    return composite
      ? decodeComposite(response.contentFormat ?? ContentFormat.SENML_CBOR, response.payload, this.model, { paths })
      : this.decodeValue(record, operation, response as CoapResponse, paths[0]!);
  }

  /**
   * What becomes of an observation's notifications: each newer one a `notify` event; an error or a
   * final answer ends the observation. Those that come before the observation exists (`state()`)
   * wait in `pending`.
   */
  private notificationListener(record: RegistrationRecord, operation: string, paths: LwM2MPath[], composite: boolean, observation: () => ObservationState | undefined, pending: CoapResponse[]): (response: CoapResponse) => void {
    let published: Observation | undefined;
    return (response) => {
      const state = observation();
      if (!state) {
        pending.push(response);
        return;
      }
      this.heard(record);
      if (response.observe === undefined || !response.code.startsWith('2.')) {
        // a final answer (e.g. 4.04: the resource went away) ends the observation
        this.tracked.end(state, response.code.startsWith('2.') ? 'ended' : 'error', response.code);
        return;
      }
      const now = Date.now();
      if (!isNewer(state.lastSequence, state.lastAt, response.observe, now)) return; // out of order: an older value
      state.lastSequence = response.observe;
      state.lastAt = now;
      let value: LwM2MValue | CompositeValue;
      try {
        value = this.decodeObserved(record, operation, paths, composite, response);
      } catch (error) {
        this.log.warn(`dropped a notification from ${record.endpoint}: ${(error as Error).message}`);
        return;
      }
      // the public view does not change between notifications: made once, for the first
      published ??= Object.freeze(publicObservation(state));
      const event: NotifyEvent = { observation: published, endpoint: record.endpoint, value, contentFormat: response.contentFormat, sequence: response.observe };
      this.emit('notify', event);
    };
  }

  /** The observations in force, of one device or all. */
  observations(endpoint?: string): Observation[] {
    return [...this.tracked.values()].filter((observation) => endpoint === undefined || observation.endpoint === endpoint).map(publicObservation);
  }

  /** Cancels actively: the GET (or FETCH) that started the observation again, with Observe=1 and its token; the observation ends either way. */
  async cancelObservation(observation: Observation | string, options: RequestOptions = {}): Promise<void> {
    const id = typeof observation === 'string' ? observation : observation.id;
    const state = this.tracked.get(id);
    if (!state) throw new LwM2MError('NOT_FOUND', `no observation ${id}`);
    this.tracked.end(state, 'cancelled');
    const record = this.registry.get(state.registrationId);
    if (!record) return;
    await this.request(record, 'Cancel Observation', { ...state.request, observe: 1, token: state.token }, options, ['2.05', '4.04']);
  }

  private fail(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error instanceof Error ? error : new Error(String(error)), { type: 'LwM2MServerWarning' });
  }
}

/** Typed listeners for the events of LwM2MServerEvents; any other name falls back to EventEmitter's. */
export interface LwM2MServer {
  on<E extends keyof LwM2MServerEvents>(event: E, listener: LwM2MServerEvents[E]): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once<E extends keyof LwM2MServerEvents>(event: E, listener: LwM2MServerEvents[E]): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off<E extends keyof LwM2MServerEvents>(event: E, listener: LwM2MServerEvents[E]): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** A failure of the message layer as the server's users see it. */
function transportError(operation: string, endpoint: string, method: string, error: CoapError): LwM2MError {
  const code = error.kind === 'TIMEOUT' ? 'TIMEOUT' : error.kind === 'TOO_LARGE' ? 'BAD_REQUEST' : 'INTERNAL';
  // composite operations are new in 1.1, and some devices drop what they do not know without a word
  const silent = error.kind === 'TIMEOUT' && (method === 'FETCH' || method === 'IPATCH');
  const reason = silent ? `the device did not answer ${method} (${error.message}); a device without composite operations may drop them silently` : error.message;
  return new LwM2MError(code, `${operation} on ${endpoint}: ${reason}`);
}

/** `{ path: value }` of the latest record of each path. */
function latestValues(records: readonly ResourceRecord[]): CompositeValue {
  const values: CompositeValue = {};
  for (const record of latestPerPath(records)) values[record.path.toString()] = record.value;
  return values;
}

/** What the store keeps of an observation: enough to match, decode and cancel it after a restart. */
function observationRecord(state: ObservationState, first: CoapResponse, instance: string | undefined): ObservationRecord {
  const record: ObservationRecord = {
    id: state.id,
    registrationId: state.registrationId,
    endpoint: state.endpoint,
    paths: [...state.paths],
    composite: state.composite,
    token: state.token.toString('hex'),
    request: storedRequest(state.request),
    first: { payload: first.payload.toString('base64') },
    startedAt: Date.now(),
  };
  if (first.contentFormat !== undefined) record.first.contentFormat = first.contentFormat;
  if (instance !== undefined) record.instance = instance;
  return record;
}

function publicObservation(state: ObservationState): Observation {
  return { id: state.id, endpoint: state.endpoint, registrationId: state.registrationId, paths: state.paths, composite: state.composite, value: state.value };
}

/** `{ pmin: 10, gt: null }` → `['pmin=10', 'gt']`: a value sets, null unsets. */
function attributeQuery(attributes: AttributeChanges): string[] {
  const query: string[] = [];
  for (const [name, value] of Object.entries(attributes)) {
    if (!/^(pmin|pmax|gt|lt|st|epmin|epmax|edge|con|hqmax)$/.test(name)) throw new LwM2MError('BAD_REQUEST', `${name} is not a notification attribute`);
    if (value === null) query.push(name);
    else if (typeof value === 'number' && Number.isFinite(value)) query.push(`${name}=${value}`);
    else if (value !== undefined) throw new LwM2MError('BAD_REQUEST', `attribute ${name} must be a number (or null to unset it), not ${String(value)}`);
  }
  return query;
}

/** The DTLS server's own options: the session secret stays with the LwM2M server. */
function withoutSecret(options: DtlsOptions): Omit<DtlsOptions, 'sessionSecret'> {
  const { sessionSecret: _secret, ...rest } = options;
  return rest;
}
