/**
 * LwM2MClient: a complete simulated LwM2M device over CoAP/UDP. It owns an object tree, registers
 * with one server and keeps the registration alive, answers Device Management and Observe requests,
 * sends notifications as the attributes allow, runs value generators, and can Send on demand.
 *
 *   const device = new LwM2MClient({ endpoint: 'sim-1', server: 'coap://127.0.0.1:5683' });
 *   await device.start();
 *   device.set('/3/0/9', 80);
 *   await device.stop();
 *
 * Bootstrap: with `bootstrap: 'coap[s]://…'` the client gets its server accounts from a
 * Bootstrap-Server (Bootstrap-Request, or the LwM2M 1.2 Bootstrap-Pack with `bootstrapPack`):
 * at start when it has no usable account, after `bootstrapAfterFailures` failed Register attempts,
 * and when a server executes the Bootstrap-Request Trigger (/1/x/9, LwM2M 1.1+). Accounts live in
 * the tree: the server account given by `server` is Security /0/0 with Server /1/0, the bootstrap
 * account the next free Security instance (/0/1 beside a server, else /0/0) with Bootstrap-Server
 * (/0/x/1) true and no Short Server ID. Of the accounts a bootstrap leaves, the client registers
 * with the one of the lowest Short Server ID (one server at a time; the others stay in the tree),
 * over DTLS for Security Mode 0 (PSK) or plain CoAP for 3 (NoSec). The Security object stays
 * invisible to LwM2M servers; only the bootstrap server reads (Discover) and writes it.
 */
import { EventEmitter } from 'node:events';
import {
  COMPOSITE_FORMATS,
  ContentFormat,
  canonicalFormat,
  encodeComposite,
  formatLinkFormat,
  formatName,
  type CompositeValue,
  type LwM2MValue,
} from '../content';
import { ObjectModel, defaultModel } from '../model';
import { LwM2MPath } from '../path';
import { CoapEndpoint, type Peer } from '../transport/endpoint';
import { DtlsClient, type DtlsSession } from '../transport/dtls/client';
import { CoapError } from '../transport/errors';
import type { CipherSuiteName, DtlsTiming } from '../transport/dtls/constants';
import { maxTransmitWait, type CoapTiming } from '../transport/timing';
import { accountSummaries, bootstrapInstanceId, chooseAccount, type AccountSummary, type ServerAccount } from './accounts';
import { parseCoapUri } from '../transport/uri';
import { AttributeStore } from './attributes';
import { BootstrapError, Bootstrapper } from './bootstrap';
import { ClientError } from './errors';
import { FIRMWARE_DEFAULTS, installFirmwareUpdate, type FirmwareOptions } from './firmware';
import { download } from './firmware-download';
import { errorResponse, formatsOf, handleManagement, renderObservation, type LwM2MVersion, type ManagementContext } from './management';
import { objectList } from './object-list';
import { bootstrapSecurityInstance, deviceInstance, securityInstance, serverInstance, type DeviceInfo } from './objects';
import type { CertificateCredentials, RawPublicKeyCredentials } from './ecdsa-keys';
import { Observations } from './observations';
import { Registration, RegistrationError, type RetryPolicy } from './registration';
import { openTransport, type TransportOptions } from './transport';
import { ObjectTree, executable, type InstanceSpec, type Resource } from './tree';

export interface LwM2MClientOptions {
  /** the endpoint client name the device registers with */
  endpoint: string;
  /**
   * `coap://host:port` of the LwM2M server (default port 5683), or `coaps://host:port` (5684) with
   * `psk`, `certificate` or `rawPublicKey`. Optional with `bootstrap`: the bootstrap server then provides the account. At least one
   * of `server` and `bootstrap` is needed.
   */
  server?: string;
  /** PSK identity and key for a `coaps://` server (DTLS 1.2; Security Mode 0) */
  psk?: { identity: string | Buffer; key: Buffer };
  /**
   * Security Mode 2 for a `coaps://` server: our certificate and its P-256 key, and the server's
   * certificate (its own: its key is pinned; or a CA its certificate chains to), all PEM. Instead of `psk`.
   */
  certificate?: CertificateCredentials;
  /** Security Mode 1 for a `coaps://` server: our P-256 private key and the server's public key, PEM. Instead of `psk`. */
  rawPublicKey?: RawPublicKeyCredentials;
  /** `coap://host:port` (default port 5683) or `coaps://host:port` (5684, with `bootstrapPsk`) of a Bootstrap-Server */
  bootstrap?: string;
  /** PSK identity and key for a `coaps://` bootstrap server */
  bootstrapPsk?: { identity: string | Buffer; key: Buffer };
  /** LwM2M 1.2 only: ask for the whole configuration with one Bootstrap-Pack-Request (GET /bspack) instead of Bootstrap-Request */
  bootstrapPack?: boolean;
  /** Register attempts failed in a row before a client with both `server` and `bootstrap` bootstraps (default 3) */
  bootstrapAfterFailures?: number;
  /** ms from the Bootstrap-Request until Bootstrap-Finish before the attempt counts as failed (default 60,000) */
  bootstrapTimeout?: number;
  /**
   * DTLS details: cipher suites in order of preference, flight retransmission timing,
   * `connectionId` (RFC 9146, default false): offer connection IDs for coaps:// so that the session
   * survives NAT rebinding without a new handshake (the server's ID goes in our records; we ask for none),
   * and a session to resume (the `dtlsSession` of an earlier client with the same server and PSK, e.g.
   * kept over a restart: the first handshake is then the abbreviated one when the server still has it)
   */
  dtls?: { cipherSuites?: CipherSuiteName[]; timing?: Partial<DtlsTiming>; connectionId?: boolean; session?: DtlsSession };
  /** registration lifetime in seconds (default 300) */
  lifetime?: number;
  version?: LwM2MVersion;
  /** `U`, or `UQ` for queue mode */
  binding?: 'U' | 'UQ';
  /** ms of silence after which a queue-mode client sleeps (default MAX_TRANSMIT_WAIT, 93 s) */
  queueQuietTime?: number;
  /** format for reads without Accept, announced as `ct=` (default TLV for 1.0, SenML CBOR after) */
  preferredFormat?: number;
  /** Short Server ID of the server (default 1) */
  shortServerId?: number;
  /** object instances: `{ 3303: { 0: { 5700: 21.5 } } }`; Security (0), Server (1) and Device (3) are added when missing */
  objects?: Record<number, Record<number, InstanceSpec>>;
  /** Device (3) identity when `objects` has no Device */
  device?: DeviceInfo;
  /** adds Firmware Update (5) with this behaviour */
  firmware?: FirmwareOptions | boolean;
  model?: ObjectModel;
  /** local address and port to bind (default: any address, a free port) */
  localAddress?: string;
  localPort?: number;
  /** bytes of receive and send buffer asked of the kernel for the device's socket (default 4 MiB; 0: the system's default) */
  socketBufferSize?: number;
  timing?: Partial<CoapTiming>;
  retry?: Partial<RetryPolicy>;
  /** ms to wait for the server's answer to Register/Update/Send and Bootstrap-Request (default MAX_TRANSMIT_WAIT) */
  requestTimeout?: number;
  /** ms De-register may take before stop() goes on without the answer (default 5000) */
  deregisterTimeout?: number;
  /** default pmin/pmax (Server object resources 2/3) in seconds */
  defaultPmin?: number;
  defaultPmax?: number;
}

export interface SendOptions {
  /** SenML CBOR (default), SenML JSON or LwM2M CBOR */
  format?: number;
}

/** Why the client bootstraps: it has no usable account, Register failed too often, or a server executed /1/x/9. */
export type BootstrapReason = 'no account' | 'registration failed' | 'trigger';

/** Events: registered, updated, deregistered, reregistering, retry, write, execute, create, delete,
 *  observe, cancel, sleep, awake, reboot, factoryReset, firmware ({ state, result } of object 5),
 *  firmwareUpdated (the new version, just before the device reboots), error;
 *  bootstrapping ({ reason }), bootstrapped ({ servers: [{ uri, shortServerId, security }] }, never
 *  keys), bootstrapFailed ({ reason }, after each failed attempt; the next follows with back-off). */
export class LwM2MClient extends EventEmitter {
  readonly tree: ObjectTree;
  readonly endpointName: string;
  private readonly options: LwM2MClientOptions;
  private readonly version: LwM2MVersion;
  private readonly attributes = new AttributeStore();
  private readonly endpoint: CoapEndpoint;
  private readonly observations: Observations;
  private readonly context: ManagementContext;
  private registration: Registration | undefined;
  private server: Peer | undefined;
  private readonly generatorTimers = new Map<string, NodeJS.Timeout>();
  /** run by stop(); what they return is awaited once the socket is closed */
  private readonly cleanups: Array<() => void | Promise<void>> = [];
  private structureTimer: NodeJS.Timeout | undefined;
  private running = false;
  private finished = false;
  private asleep = false;
  private sleepTimer: NodeJS.Timeout | undefined;
  private waking: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  /** work under way (a firmware download) that keeps a queue-mode client from sleeping */
  private busy = 0;
  /** the DTLS session to a coaps:// server */
  private dtls: DtlsClient | undefined;
  /** the account registered with (or being registered with) */
  private account: ServerAccount | undefined;
  private readonly bootstrapper: Bootstrapper | undefined;
  /** the bootstrap under way, then the switch to its account */
  private bootstrapRun: Promise<void> | undefined;
  private bootstrapDone = false;
  /** Register attempts failed in a row with the current account */
  private registerFailures = 0;
  /** settles the promise of start(): registered, or stopped first */
  private startWaiter: { resolve(): void; reject(error: Error): void } | undefined;

  constructor(options: LwM2MClientOptions) {
    super();
    if (typeof options?.endpoint !== 'string' || options.endpoint === '' || /[&?=\s]/.test(options.endpoint)) {
      throw new TypeError(`endpoint must be a non-empty name without "&", "?", "=" or spaces, not ${JSON.stringify(options?.endpoint)}`);
    }
    if (options.server === undefined && options.bootstrap === undefined) {
      throw new TypeError('a client needs server (coap:// or coaps:// URI of its LwM2M server), bootstrap (URI of a Bootstrap-Server), or both');
    }
    if (options.server !== undefined) checkServerSecurity(options);
    else if (options.psk || options.certificate || options.rawPublicKey) throw new TypeError('psk, certificate and rawPublicKey are for a coaps:// server, and no server is given');
    if (options.bootstrap !== undefined) checkUriAndPsk(options.bootstrap, options.bootstrapPsk, 'bootstrap', 'bootstrapPsk');
    else if (options.bootstrapPsk || options.bootstrapPack) throw new TypeError('bootstrapPsk and bootstrapPack need a bootstrap server URI (bootstrap)');
    this.options = { ...options };
    this.endpointName = options.endpoint;
    this.version = options.version ?? '1.1';
    if (!['1.0', '1.1', '1.2'].includes(this.version)) throw new TypeError(`version must be 1.0, 1.1 or 1.2, not ${this.version}`);
    if (options.bootstrapPack && this.version !== '1.2') throw new TypeError(`bootstrapPack (Bootstrap-Pack-Request) needs LwM2M 1.2; this client speaks ${this.version}`);
    const afterFailures = options.bootstrapAfterFailures ?? 3;
    if (!Number.isInteger(afterFailures) || afterFailures < 1) throw new TypeError(`bootstrapAfterFailures must be a whole number ≥ 1, not ${afterFailures}`);
    const bootstrapTimeout = options.bootstrapTimeout ?? 60_000;
    if (typeof bootstrapTimeout !== 'number' || !(bootstrapTimeout > 0)) throw new TypeError(`bootstrapTimeout must be a number of ms > 0, not ${bootstrapTimeout}`);
    const lifetime = options.lifetime ?? 300;
    if (!Number.isInteger(lifetime) || lifetime < 1) throw new TypeError(`lifetime must be a whole number of seconds ≥ 1, not ${lifetime}`);
    this.options.lifetime = lifetime;
    const binding = options.binding ?? 'U';
    if (binding !== 'U' && binding !== 'UQ') throw new TypeError(`binding must be U or UQ, not ${binding}`);
    this.options.binding = binding;

    this.tree = new ObjectTree(options.model ?? defaultModel());
    // a pushed firmware package must fit through the endpoint, however large the simulated flash
    const flashSize = typeof options.firmware === 'object' ? options.firmware.flashSize ?? 0 : 0;
    this.endpoint = new CoapEndpoint({ timing: options.timing, socketBufferSize: options.socketBufferSize, maxBodySize: Math.max(FIRMWARE_DEFAULTS.flashSize, flashSize) });
    this.endpoint.on('error', (error) => this.fail(error));
    this.endpoint.on('reset', ({ peer, token }) => {
      if (this.observations.cancel(peer, token)) this.emit('cancel', { token: token.toString('hex'), reason: 'reset' });
    });
    this.observations = new Observations({
      endpoint: this.endpoint,
      attributes: this.attributes,
      defaults: () => this.defaultPeriods(),
      render: (observation) => renderObservation(this.context, observation),
      failure: errorResponse,
      ready: () => this.wake(),
      onError: (error) => this.fail(error),
    });
    this.context = {
      tree: this.tree,
      attributes: this.attributes,
      observations: this.observations,
      version: this.version,
      preferredFormat: options.preferredFormat ?? (this.version === '1.0' ? ContentFormat.TLV : ContentFormat.SENML_CBOR),
      onCompositeWrite: (paths) => paths.forEach((path) => this.emit('write', { path: path.toString(), value: this.tree.get(path.toString()) })),
    };
    if (!formatsOf(this.version).has(this.context.preferredFormat)) {
      throw new TypeError(`preferredFormat ${formatName(this.context.preferredFormat)} is not a format of LwM2M ${this.version}`);
    }
    if (options.bootstrap !== undefined) {
      this.bootstrapper = new Bootstrapper(
        this.tree,
        this.attributes,
        {
          endpoint: this.endpointName,
          version: this.version,
          preferredFormat: this.context.preferredFormat,
          pack: options.bootstrapPack === true,
          timeout: bootstrapTimeout,
          requestTimeout: this.requestTimeout(),
          retry: this.retryPolicy(),
          timing: options.timing,
          // its own socket: the main endpoint may hold localPort
          transport: { cipherSuites: options.dtls?.cipherSuites, dtlsTiming: options.dtls?.timing, localAddress: options.localAddress },
        },
        () => {
          const choice = chooseAccount(this.tree, this.options.lifetime!);
          return 'problem' in choice ? choice.problem : undefined;
        },
      );
      this.bootstrapper.on('failed', (detail: { reason: string }) => this.emit('bootstrapFailed', detail));
    }
    this.buildObjects();
    this.tree.on('change', (path: LwM2MPath) => this.observations.changed(path));
    this.tree.on('structure', (path: LwM2MPath) => this.onStructure(path));
    this.endpoint.setRequestHandler(async (request) => {
      this.touch();
      const before = this.observations.size;
      const response = await handleManagement(this.context, request);
      this.report(request.method, request.path, request, response.code, before);
      return response;
    });
  }

  /** True while registered with the server. */
  get registered(): boolean {
    return this.registration?.registered ?? false;
  }

  /** The registration location the server gave (`rd/…`). */
  get location(): string | undefined {
    return this.registration?.location;
  }

  get sleeping(): boolean {
    return this.asleep;
  }

  /** True once a bootstrap gave the client the account it uses. */
  get bootstrapped(): boolean {
    return this.bootstrapDone;
  }

  /** True while a bootstrap is under way. */
  get bootstrapping(): boolean {
    return this.bootstrapRun !== undefined;
  }

  /** URI of the server the client registers with (undefined before it has an account). */
  get serverUri(): string | undefined {
    return this.account?.uri;
  }

  /** Number of active observations. */
  get observationCount(): number {
    return this.observations.size;
  }

  /** Local address of the client's socket (after start). */
  address(): { address: string; port: number } {
    const { address, port } = this.endpoint.address();
    return { address, port };
  }

  /**
   * Binds the socket, registers, and starts the value generators; resolves once registered. Without
   * a usable account (only `bootstrap` given) it bootstraps first.
   */
  async start(): Promise<void> {
    if (this.running) throw new Error(`client ${this.endpointName} is already started`);
    if (this.finished) throw new Error(`client ${this.endpointName} was stopped and cannot start again; create a new LwM2MClient`);
    this.running = true;
    const registered = new Promise<void>((resolve, reject) => (this.startWaiter = { resolve, reject }));
    registered.catch(() => undefined); // awaited below, unless start() fails first
    const choice = chooseAccount(this.tree, this.options.lifetime!);
    try {
      if ('account' in choice) await this.connect(choice.account);
      else if (!this.bootstrapper) throw new Error(`client ${this.endpointName} has no usable server account: ${choice.problem}`);
    } catch (error) {
      this.running = false;
      this.startWaiter = undefined;
      await this.endpoint.close();
      throw error;
    }
    this.startGenerators();
    if (!('account' in choice)) this.bootstrap('no account');
    await registered;
  }

  /**
   * Moves the endpoint to the account's transport (plain CoAP or a DTLS session under its PSK) and
   * registers there; the registration before it ends without De-register.
   */
  private async connect(account: ServerAccount): Promise<void> {
    const previous = this.registration;
    this.registration = undefined;
    await previous?.stop(false);
    this.observations.clear(); // observations end with the registration they came with
    await this.endpoint.detach();
    this.dtls = undefined;
    const { peer, dtls } = await openTransport(this.endpoint, account, this.transportOptions(), () => this.running);
    if (!this.running) return; // stopped while binding: stop() closes what was bound
    this.dtls = dtls;
    this.server = peer;
    this.account = account;
    this.registerFailures = 0;
    this.options.lifetime = account.lifetime;
    this.options.binding = account.binding;
    const registration = this.createRegistration(peer, account);
    this.registration = registration;
    void registration.start().catch(() => undefined); // start() waits for the 'registered' event instead
  }

  private transportOptions(): TransportOptions {
    const { dtls, localAddress, localPort, socketBufferSize } = this.options;
    return { cipherSuites: dtls?.cipherSuites, dtlsTiming: dtls?.timing, connectionId: dtls?.connectionId, dtlsSession: dtls?.session, localAddress, localPort, socketBufferSize };
  }

  /** The DTLS session with the current server, to resume in a later client (`dtls.session`); as secret as the PSK. */
  get dtlsSession(): DtlsSession | undefined {
    return this.dtls?.session;
  }

  private createRegistration(server: Peer, account: ServerAccount): Registration {
    const registration = new Registration(
      this.endpoint,
      server,
      { endpoint: this.endpointName, lifetime: account.lifetime, version: this.version, binding: account.binding },
      () => this.objectLinks(),
      this.retryPolicy(),
      this.requestTimeout(),
      this.options.deregisterTimeout ?? 5000,
      () => this.rouse(),
    );
    for (const event of ['registered', 'updated', 'deregistered', 'reregistering', 'retry'] as const) {
      registration.on(event, (detail) => {
        if (event !== 'retry' && event !== 'reregistering') this.touch();
        if (event === 'registered') {
          this.registerFailures = 0;
          this.startWaiter?.resolve();
          this.startWaiter = undefined;
        }
        this.emit(event, detail);
      });
    }
    registration.on('error', (error) => this.fail(error));
    registration.on('retry', ({ error }: { error: Error }) => {
      // a Register or Update that went unanswered may mean the server lost our DTLS session: start a new one
      if (error instanceof CoapError && error.kind === 'TIMEOUT') void this.dtls?.rehandshake().catch(() => undefined);
      if (registration !== this.registration || registration.registered) return;
      this.registerFailures++;
      if (this.bootstrapper && this.registerFailures >= (this.options.bootstrapAfterFailures ?? 3)) this.bootstrap('registration failed');
    });
    return registration;
  }

  /** Bootstraps (once at a time), then registers with the account it gave; retries until it works or stop(). */
  private bootstrap(reason: BootstrapReason): void {
    const bootstrapper = this.bootstrapper;
    if (!bootstrapper || this.bootstrapRun || !this.running) return;
    this.emit('bootstrapping', { reason });
    const previous = this.registration;
    this.registration = undefined;
    this.observations.clear();
    const run = async (): Promise<void> => {
      // a server that asked for the bootstrap is told we leave; one that failed us is not asked again
      await previous?.stop(reason === 'trigger');
      await bootstrapper.run(async () => {
        const choice = chooseAccount(this.tree, this.options.lifetime!);
        if ('problem' in choice) throw new BootstrapError(choice.problem);
        await this.connect(choice.account);
        if (!this.running) return;
        this.bootstrapDone = true;
        const servers: AccountSummary[] = accountSummaries(this.tree);
        this.emit('bootstrapped', { servers });
      });
    };
    this.bootstrapRun = run()
      .catch(() => undefined) // rejects only when stopped
      .finally(() => {
        this.bootstrapRun = undefined;
      });
  }

  private retryPolicy(): RetryPolicy {
    return { initialDelay: this.options.retry?.initialDelay ?? 1000, maxDelay: this.options.retry?.maxDelay ?? 60_000 };
  }

  /** De-registers (unless told not to), then closes the socket and clears every timer. */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.finished = true;
    clearTimeout(this.sleepTimer);
    clearTimeout(this.structureTimer);
    clearTimeout(this.restartTimer);
    this.stopGenerators();
    this.observations.close();
    this.startWaiter?.reject(new RegistrationError('register', undefined, 'the client was stopped before it registered'));
    this.startWaiter = undefined;
    const settling = this.cleanups.map((cleanup) => cleanup());
    const bootstrapStopped = this.bootstrapper?.stop();
    if (this.asleep) this.endpoint.setReceiving(true);
    await this.registration?.stop(options.deregister !== false && !this.asleep);
    await bootstrapStopped;
    await this.endpoint.close();
    await this.bootstrapRun;
    // a firmware download on the socket just closed has ended; one on a socket of its own closes it
    await Promise.all(settling);
    this.emit('stopped');
  }

  /** De-registers but keeps running (socket open, values moving) until `register()` or `stop()`. */
  async deregister(): Promise<void> {
    const registration = this.requireRegistration();
    this.observations.clear();
    await registration.stop(true);
  }

  /** Registers again: a fresh registration (after `deregister()`, or replacing the current one). */
  async register(): Promise<void> {
    const registration = this.requireRegistration();
    this.observations.clear(); // observations end with the old registration
    if (registration.registered) await registration.stop(false);
    await registration.start();
  }

  /** Sets a resource (or resource instance) value as the device itself; observers are notified as their attributes allow. */
  set(path: string | LwM2MPath, value: unknown): void {
    this.tree.set(path, value);
  }

  /** The current stored value at a path (no read handlers run). */
  get(path: string | LwM2MPath): LwM2MValue | undefined {
    return this.tree.get(path);
  }

  /** Adds an object instance (the server learns of it through an Update). */
  addInstance(objectId: number, spec: InstanceSpec = {}, instanceId?: number): number {
    const id = this.tree.addInstance(objectId, instanceId, spec);
    this.startGenerators();
    return id;
  }

  removeInstance(objectId: number, instanceId: number): boolean {
    return this.tree.removeInstance(objectId, instanceId);
  }

  /** Sends an Update now; with a new lifetime or binding when given. */
  async update(changes: { lifetime?: number; binding?: 'U' | 'UQ' } = {}): Promise<void> {
    const registration = this.requireRegistration();
    await this.wake();
    const server = this.account?.serverInstance ?? 0;
    if (changes.lifetime !== undefined) this.tree.set(`/1/${server}/1`, changes.lifetime);
    if (changes.binding !== undefined) this.tree.set(`/1/${server}/7`, changes.binding);
    await registration.change(changes);
  }

  /** LwM2M 1.1 Send: POSTs the current values of `paths` to /dp; resolves when the server answers 2.04. */
  async send(paths: ReadonlyArray<string | LwM2MPath>, options: SendOptions = {}): Promise<void> {
    if (this.version === '1.0') throw new ClientError('4.05', 'Send needs LwM2M 1.1 or later');
    this.requireRegistration();
    const format = canonicalFormat(options.format ?? ContentFormat.SENML_CBOR);
    if (!COMPOSITE_FORMATS.includes(format) || !formatsOf(this.version).has(format)) {
      throw new TypeError(`${formatName(format)} cannot carry a Send in LwM2M ${this.version}; use SenML CBOR or SenML JSON${this.version === '1.2' ? ' or LwM2M CBOR' : ''}`);
    }
    if (paths.length === 0) throw new TypeError('send needs at least one path');
    const values: CompositeValue = {};
    for (const path of paths) {
      const at = LwM2MPath.from(path);
      values[at.toString()] = await this.tree.read(at, 'local');
    }
    const payload = encodeComposite(format, values, this.tree.model);
    await this.wake();
    this.touch();
    const response = await this.endpoint.request(this.server!, {
      method: 'POST',
      path: ['dp'],
      payload,
      contentFormat: format,
      timeout: this.requestTimeout(),
    });
    if (response.code !== '2.04') throw new ClientError(response.code, `Send was answered ${response.code}${response.payload.length ? `: ${response.payload.toString('utf8').slice(0, 100)}` : ''}`);
  }

  /** Wakes a sleeping queue-mode client: it sends an Update so the server knows it can talk to it. */
  wake(): Promise<void> {
    if (!this.asleep) return Promise.resolve();
    if (!this.waking) {
      this.rouse();
      this.waking = (this.registration?.update() ?? Promise.resolve())
        .catch((error) => this.fail(error))
        .finally(() => {
          this.waking = undefined;
        });
    }
    return this.waking;
  }

  /** Radio on: the client hears the server again (the caller is about to send). */
  private rouse(): void {
    this.touch();
    if (!this.asleep) return;
    this.asleep = false;
    this.endpoint.setReceiving(true);
    this.emit('awake');
  }

  /** Errors are events for whoever listens; without a listener they are warnings, never a crash. */
  private fail(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error instanceof Error ? error : new Error(String(error)), { type: 'LwM2MClientWarning', detail: `client ${this.endpointName}` });
  }

  // --- internals ---

  /** ms to wait for the server's answer to Register, Update and Send. */
  private requestTimeout(): number {
    return this.options.requestTimeout ?? maxTransmitWait(this.endpoint.timing);
  }

  private requireRegistration(): Registration {
    if (this.running && this.bootstrapRun) throw new Error(`client ${this.endpointName} is bootstrapping; it has no registration now`);
    if (!this.registration || !this.running) throw new Error(`client ${this.endpointName} is not started`);
    return this.registration;
  }

  private defaultPeriods(): { pmin?: number; pmax?: number } {
    const server = this.account?.serverInstance ?? 0;
    const pmin = this.tree.get(`/1/${server}/2`);
    const pmax = this.tree.get(`/1/${server}/3`);
    return { pmin: typeof pmin === 'number' ? pmin : undefined, pmax: typeof pmax === 'number' && pmax > 0 ? pmax : undefined };
  }

  private buildObjects(): void {
    const { objects = {}, shortServerId = 1, server, bootstrap } = this.options;
    const tree = this.tree;
    if (!objects[0] && server !== undefined) tree.addInstance(0, 0, securityInstance(server, shortServerId, this.options));
    if (!objects[1] && server !== undefined) {
      tree.addInstance(
        1,
        0,
        serverInstance({ shortServerId, lifetime: this.options.lifetime!, binding: this.options.binding!, defaultPmin: this.options.defaultPmin, defaultPmax: this.options.defaultPmax }),
      );
    }
    tree.addObject(0);
    tree.addObject(1);
    if (!objects[3]) tree.addInstance(3, 0, deviceInstance(this.options.device));
    for (const [oid, instances] of Object.entries(objects)) {
      tree.addObject(Number(oid));
      for (const [iid, spec] of Object.entries(instances)) tree.addInstance(Number(oid), Number(iid), spec);
    }
    // the bootstrap account takes the first free Security instance: /0/1 beside a server account, else /0/0
    if (bootstrap !== undefined && bootstrapInstanceId(tree) === undefined) tree.addInstance(0, undefined, bootstrapSecurityInstance(bootstrap, this.options.bootstrapPsk));
    if (this.options.firmware) this.installFirmware(this.options.firmware === true ? {} : this.options.firmware);
    this.wireStandardResources();
  }

  /** Firmware Update (5): pull downloads go over this client's socket when they come from its server. */
  private installFirmware(options: FirmwareOptions): void {
    const tree = this.tree;
    const stop = installFirmwareUpdate(tree, options, {
      fetch: (url, signal) =>
        this.whileBusy(
          download(url, {
            own: () => (this.running && this.server ? { endpoint: this.endpoint, server: this.server, secure: this.dtls !== undefined } : undefined),
            psk: this.account?.psk,
            dtls: this.options.dtls,
            timing: this.options.timing,
            timeout: options.downloadTimeout ?? FIRMWARE_DEFAULTS.downloadTimeout,
            maxSize: options.flashSize ?? FIRMWARE_DEFAULTS.flashSize,
            signal,
          }),
        ),
      changed: (state, result) => this.emit('firmware', { state, result }),
      updated: (version) => {
        if (version && tree.resource(LwM2MPath.parse('/3/0/3'))) tree.set('/3/0/3', version);
        this.emit('firmwareUpdated', version);
        // the new firmware runs after a restart: off the network, then a new Register
        this.simulateReboot('reboot', options.rebootTime ?? FIRMWARE_DEFAULTS.rebootTime, true);
      },
    });
    this.cleanups.push(stop);
  }

  /** Keeps the radio on (no queue-mode sleep) until `work` settles. */
  private async whileBusy<T>(work: Promise<T>): Promise<T> {
    this.busy++;
    this.rouse();
    try {
      return await work;
    } finally {
      this.busy--;
      this.touch();
    }
  }

  /** Behaviour the specification gives Device and Server resources, unless the user wired their own. */
  private wireStandardResources(): void {
    const device = this.tree.instanceIds(3).length > 0;
    if (device) {
      this.addExecutable('/3/0/4', () => this.simulateReboot('reboot'));
      this.addExecutable('/3/0/5', () => this.simulateReboot('factoryReset'));
      this.addExecutable('/3/0/12', () => this.tree.set('/3/0/11', { 0: 0 }));
    }
    for (const iid of this.tree.instanceIds(1)) this.wireServerInstance(iid);
  }

  /**
   * Server (1) resources act on the registration when their instance is the account in use:
   * Registration Update Trigger (8), Disable (4), Lifetime (1) and Binding (7) writes; the
   * Bootstrap-Request Trigger (9, LwM2M 1.1+) exists when there is a bootstrap server.
   */
  private wireServerInstance(iid: number): void {
    const active = (): boolean => this.account?.serverInstance === iid && this.registration !== undefined;
    const hook = (rid: number, write: NonNullable<Resource['write']>): void => {
      const resource = this.tree.resource(LwM2MPath.of(1, iid, rid));
      if (resource && resource.write === undefined) resource.write = write;
    };
    this.addExecutable(`/1/${iid}/8`, () => {
      if (active()) void this.registration?.update().catch(() => undefined);
    });
    this.addExecutable(`/1/${iid}/4`, () => {
      if (active()) this.simulateDisable();
    });
    if (this.bootstrapper && this.version !== '1.0') {
      // answered 2.04 first; then De-register, bootstrap, and register with what it gives
      this.addExecutable(`/1/${iid}/9`, () => void setImmediate(() => this.bootstrap('trigger')));
    }
    hook(1, (value) => {
      // a new lifetime from the server goes out with the next Update
      if (active()) queueMicrotask(() => void this.registration?.change({ lifetime: value as number }).catch(() => undefined));
    });
    hook(7, (value) => {
      const binding = value === 'UQ' || value === 'U' ? value : undefined;
      if (!binding) throw new ClientError('4.00', `binding ${String(value)} is not supported; use U or UQ`);
      if (active()) queueMicrotask(() => void this.registration?.change({ binding }).catch(() => undefined));
    });
  }

  /** Makes an executable resource exist with a default handler (kept when the user gave one). */
  private addExecutable(path: string, run: () => void): void {
    const at = LwM2MPath.parse(path);
    if (!this.tree.has(at.parent())) return;
    const resource = this.tree.resource(at);
    if (!resource) this.tree.define(at, { execute: () => run() });
    else if (!resource.execute) resource.execute = () => run();
  }

  /**
   * A reboot or factory reset: the device drops off without de-registering and registers again
   * after `downtime` ms. `offline`: meanwhile it hears nothing and its observations are gone, as
   * after a real restart (Reboot /3/0/4 keeps its short, answering downtime).
   */
  private simulateReboot(kind: 'reboot' | 'factoryReset', downtime = 100, offline = false): void {
    this.emit(kind);
    clearTimeout(this.restartTimer);
    if (offline && this.running) {
      this.observations.clear();
      void this.registration?.stop(false);
      this.endpoint.setReceiving(false);
    }
    this.restartTimer = setTimeout(() => {
      if (!this.running) return;
      if (offline) {
        if (this.asleep) this.rouse();
        else this.endpoint.setReceiving(true);
      }
      void this.register().catch(() => undefined);
    }, downtime);
  }

  /** Server Disable (/1/x/4): de-register and come back after Disable Timeout (/1/x/5) seconds. */
  private simulateDisable(): void {
    const timeout = this.tree.get(`/1/${this.account?.serverInstance ?? 0}/5`);
    const seconds = typeof timeout === 'number' ? timeout : 86400;
    this.emit('disabled', seconds);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.running) return;
      void this.deregister().then(() => {
        this.restartTimer = setTimeout(() => {
          if (this.running) void this.register().catch(() => undefined);
        }, seconds * 1000);
      });
    }, 50);
  }

  /** The object list of Register/Update: `</>;rt="oma.lwm2m";ct=…`, then objects and instances, never /0. */
  objectLinks(): string {
    const root = this.version === '1.0' ? undefined : { uri: '/', attributes: { rt: 'oma.lwm2m', ct: this.context.preferredFormat } };
    return formatLinkFormat(objectList(this.tree, this.version, { root }));
  }

  private onStructure(path: LwM2MPath): void {
    // a Server instance a bootstrap (or anyone) created gets the standard behaviour
    if (path.objectId === 1 && path.instanceId !== undefined && this.tree.has(path)) this.wireServerInstance(path.instanceId);
    this.observations.changed(path);
    this.emit('structure', path.toString());
    if (!this.registration?.registered) return;
    // several creates in a row make one Update
    clearTimeout(this.structureTimer);
    this.structureTimer = setTimeout(() => void this.registration?.change({ objects: true }).catch(() => undefined), 20);
  }

  private report(method: string, segments: string[], request: { query: string[]; observe?: number; payload: Buffer }, code: string, observationsBefore: number): void {
    const path = '/' + segments.join('/');
    const ok = code.startsWith('2.');
    if (!ok) return;
    if (method === 'PUT' && request.payload.length === 0) this.emit('attributes', { path, query: request.query });
    else if (method === 'PUT' || (method === 'POST' && segments.length === 2)) this.emit('write', { path, value: this.tree.get(path) });
    else if (method === 'POST' && segments.length === 3 && this.isExecutable(path)) this.emit('execute', { path, args: request.payload.toString('utf8') });
    else if (method === 'POST' && segments.length === 3) this.emit('write', { path, value: this.tree.get(path) });
    else if (method === 'POST' && segments.length === 1) this.emit('create', { path });
    else if (method === 'DELETE') this.emit('delete', { path });
    else if (request.observe === 0 && this.observations.size > observationsBefore) this.emit('observe', { path });
  }

  private isExecutable(path: string): boolean {
    const resource = this.tree.resource(LwM2MPath.parse(path));
    return resource !== undefined && executable(resource);
  }

  // --- generators ---

  private startGenerators(): void {
    if (!this.running) return;
    for (const oid of this.tree.objectIds()) {
      for (const iid of this.tree.instanceIds(oid)) {
        for (const rid of this.tree.resourceIds(oid, iid)) {
          const path = LwM2MPath.of(oid, iid, rid);
          const resource = this.tree.resource(path)!;
          const key = path.toString();
          if (!resource.generator || this.generatorTimers.has(key)) continue;
          const generator = resource.generator;
          const started = Date.now();
          const tick = (): void => {
            if (!this.tree.has(path)) return this.stopGenerator(key);
            try {
              const value = generator.next({ previous: resource.value as never, elapsed: Date.now() - started, definition: resource.definition });
              if (value !== resource.value) this.tree.set(path, value);
            } catch (error) {
              this.stopGenerator(key);
              this.fail(error);
            }
          };
          tick();
          this.generatorTimers.set(key, setInterval(tick, generator.interval));
        }
      }
    }
  }

  private stopGenerator(key: string): void {
    clearInterval(this.generatorTimers.get(key));
    this.generatorTimers.delete(key);
  }

  private stopGenerators(): void {
    for (const timer of this.generatorTimers.values()) clearInterval(timer);
    this.generatorTimers.clear();
  }

  // --- queue mode ---

  /** Any traffic keeps a queue-mode client awake for the quiet time; then it sleeps. */
  private touch(): void {
    if (this.options.binding !== 'UQ' || !this.running) return;
    clearTimeout(this.sleepTimer);
    const quiet = this.options.queueQuietTime ?? maxTransmitWait(this.endpoint.timing);
    this.sleepTimer = setTimeout(() => {
      if (!this.running || this.asleep) return;
      if (this.busy > 0) return this.touch();
      this.asleep = true;
      this.endpoint.setReceiving(false);
      this.emit('sleep');
    }, quiet);
  }
}

/**
 * The server URI and how the client authenticates to it: coaps:// needs exactly one of a PSK, a
 * certificate and a raw public key (each checked here, so a bad key fails at construction), coap:// none.
 */
function checkServerSecurity(options: LwM2MClientOptions): void {
  const given = (['psk', 'certificate', 'rawPublicKey'] as const).filter((name) => options[name] !== undefined);
  if (given.length > 1) throw new TypeError(`give one of psk, certificate and rawPublicKey, not ${given.join(' and ')}`);
  if (given[0] === undefined || given[0] === 'psk') return checkUriAndPsk(options.server!, options.psk, 'server', 'psk');
  if (!parseCoapUri(options.server!, 'server').secure) throw new TypeError(`${given[0]} is for a coaps:// server; the server URI is coap://`);
  securityInstance(options.server!, 1, options); // checks the keys and certificates
}

/** A server or bootstrap URI and its PSK: coaps:// needs one, coap:// takes none. */
function checkUriAndPsk(uri: string, psk: { identity: string | Buffer; key: Buffer } | undefined, name: string, pskName: string): void {
  const { secure } = parseCoapUri(uri, name);
  if (secure && (!psk || !Buffer.isBuffer(psk.key) || psk.key.length === 0 || !psk.identity || psk.identity.length === 0)) {
    throw new TypeError(`a coaps:// ${name} needs ${pskName}: { identity, key } with a non-empty identity and key`);
  }
  if (!secure && psk) throw new TypeError(`${pskName} is for a coaps:// ${name}; the ${name} URI is coap://`);
}

export { announcedVersion } from './object-list';
