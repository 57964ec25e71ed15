/**
 * LwM2MBootstrapServer: the Bootstrap interface, server side. A device POSTs `/bs?ep=…`; the server
 * answers 2.04 and writes the device's LwM2M server accounts per its configuration, then sends
 * Bootstrap-Finish. LwM2M 1.2 clients may instead GET `/bspack?ep=…` and receive everything at once.
 *
 *   const bootstrap = new LwM2MBootstrapServer({ port: 5783, configs: { '*': { servers: [{ server: lwm2mServer, security: 'psk' }] } } });
 *   bootstrap.on('bootstrapFinished', ({ endpoint }) => console.log(endpoint, 'bootstrapped'));
 *   await bootstrap.listen();
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { ContentFormat, encodeComposite, type CompositeValue } from '../content';
import { ObjectModel, defaultModel } from '../model';
import { ServerEndpoints } from '../server/endpoints';
import { RateLimitedLog, type Logger } from '../server/log';
import { PskTable } from '../server/psk-table';
import { RegistrationRequestError, parseBootstrapQuery } from '../server/register-params';
import type { PskCredential } from '../server/types';
import type { DtlsServerOptions } from '../transport/dtls/server';
import type { IncomingRequest, OutgoingResponse } from '../transport/endpoint';
import type { CoapTiming } from '../transport/timing';
import { checkConfig, planAccounts, type PlannedAccount } from './config';
import { ASSUMED_BOOTSTRAP_INSTANCES, BootstrapFailure, runSequence } from './sequence';
import type { BootstrapConfig, BootstrapFailedEvent, BootstrapFinishedEvent, BootstrapOperationEvent, BootstrapRequestEvent, BootstrappedAccount } from './types';

/** Bootstrap over DTLS is PSK only for now: certificate and raw-key devices bootstrap over PSK or plain CoAP. */
export interface BootstrapDtlsOptions extends Omit<DtlsServerOptions, 'psk' | 'ecdsa' | 'clientCa' | 'clientRawPublicKey'> {
  /** UDP port for DTLS (default 5784; 0 picks a free one) */
  port?: number;
  /** address to bind (default: the plain CoAP address) */
  address?: string;
  /** the devices' bootstrap PSKs: each identity may bootstrap only as its endpoint */
  credentials?: readonly PskCredential[];
}

export interface LwM2MBootstrapServerOptions {
  /** UDP port (default 5783; 0 picks a free one) */
  port?: number;
  /** address to bind (default all IPv4 addresses) */
  address?: string;
  /** Bootstrap over DTLS with pre-shared keys, on a port of its own */
  dtls?: BootstrapDtlsOptions;
  /** refuse Bootstrap-Requests over plain CoAP (default false) */
  requireSecurity?: boolean;
  /** configurations by endpoint name; `*` is for every endpoint without one of its own */
  configs?: Record<string, BootstrapConfig>;
  /** asked first for each Bootstrap-Request (a flow or a database decides); undefined falls back to the table */
  configFor?: (endpoint: string, request: BootstrapRequestEvent) => BootstrapConfig | undefined | Promise<BootstrapConfig | undefined>;
  /** ms each request to the device may take (default 10 s) */
  requestTimeout?: number;
  /** ms a whole bootstrap may take, from the request to Finish (default 60 s) */
  sessionTimeout?: number;
  /** bootstraps under way at once; more are refused with 5.03 until some end (default 1,000) */
  maxSessions?: number;
  model?: ObjectModel;
  timing?: Partial<CoapTiming>;
  /** bytes of receive and send buffer asked of the kernel for each socket (default 4 MiB; 0: the system's default) */
  socketBufferSize?: number;
  /** where rate-limited log lines about bad input go (default nowhere) */
  logger?: Logger;
}

interface Session {
  readonly controller: AbortController;
  readonly timer: NodeJS.Timeout;
}

/** Events: bootstrapRequest, operation, bootstrapFinished, bootstrapFailed, error. */
export class LwM2MBootstrapServer extends EventEmitter {
  readonly model: ObjectModel;
  private readonly options: LwM2MBootstrapServerOptions;
  private readonly sockets: ServerEndpoints;
  private readonly log: RateLimitedLog;
  private readonly psks = new PskTable();
  private readonly table = new Map<string, BootstrapConfig>();
  private readonly sessions = new Map<string, Session>();
  private listening = false;
  private closed = false;

  constructor(options: LwM2MBootstrapServerOptions = {}) {
    super();
    this.options = { ...options };
    this.model = options.model ?? defaultModel();
    this.log = new RateLimitedLog(options.logger);
    if (options.configFor !== undefined && typeof options.configFor !== 'function') throw new TypeError('configFor must be a function (endpoint, request) => configuration');
    for (const [endpoint, config] of Object.entries(options.configs ?? {})) this.setConfig(endpoint, config);
    if (options.dtls) this.psks.replaceAll(options.dtls.credentials ?? []);
    this.sockets = new ServerEndpoints(
      {
        timing: options.timing,
        socketBufferSize: options.socketBufferSize,
        dtls: options.dtls && { ...options.dtls, psk: (identity) => this.psks.key(identity) },
        log: this.log,
        fail: (error) => this.fail(error),
      },
      (request) => this.receive(request),
    );
  }

  async listen(): Promise<AddressInfo> {
    if (this.listening || this.closed) throw new Error(this.closed ? 'the bootstrap server is closed' : 'the bootstrap server is already listening');
    this.listening = true;
    const plain = { port: this.options.port ?? 5783, address: this.options.address ?? '0.0.0.0' };
    return this.sockets.listen(plain, this.options.dtls && { port: this.options.dtls.port ?? 5784, address: this.options.dtls.address ?? plain.address });
  }

  address(): AddressInfo {
    return this.sockets.plain.address();
  }

  secureAddress(): AddressInfo | undefined {
    return this.sockets.dtls?.address();
  }

  /** Stops: bootstraps under way end (as failed), the sockets close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const endpoint of [...this.sessions.keys()]) this.endSession(endpoint, 'the bootstrap server was closed');
    await this.sockets.close();
  }

  /** Sets (or with undefined removes) the configuration of one endpoint, or of every other under `*`. */
  setConfig(endpoint: string, config: BootstrapConfig | undefined): void {
    if (typeof endpoint !== 'string' || endpoint === '') throw new TypeError('the endpoint of a bootstrap configuration must be a name or "*"');
    if (config === undefined || config === null) {
      this.table.delete(endpoint);
      return;
    }
    this.table.set(endpoint, checkConfig(config, endpoint));
  }

  config(endpoint: string): BootstrapConfig | undefined {
    return this.table.get(endpoint);
  }

  configs(): Record<string, BootstrapConfig> {
    return Object.fromEntries(this.table);
  }

  /** Replaces the devices' bootstrap PSKs. */
  setCredentials(credentials: readonly PskCredential[]): void {
    this.psks.replaceAll(credentials);
  }

  /** Endpoints whose bootstrap is under way. */
  get active(): string[] {
    return [...this.sessions.keys()];
  }

  // --- requests from devices ---

  private async receive(request: IncomingRequest): Promise<OutgoingResponse> {
    const resource = request.path.join('/');
    if (resource === 'bs' && request.method === 'POST') return this.bootstrapRequest(request, false);
    if (resource === 'bspack' && request.method === 'GET') return this.bootstrapRequest(request, true);
    if (resource === 'bs' || resource === 'bspack') return { code: '4.05' };
    return { code: '4.04' };
  }

  /** Bootstrap-Request, or with `pack` Bootstrap-Pack-Request: checks, finds the configuration, starts the bootstrap. */
  private async bootstrapRequest(request: IncomingRequest, pack: boolean): Promise<OutgoingResponse> {
    const { peer } = request;
    let endpoint = '';
    try {
      const query = parseBootstrapQuery(request.query);
      endpoint = query.endpoint;
      this.checkSecurity(request, endpoint);
      const event: BootstrapRequestEvent = { endpoint, address: peer.address, port: peer.port };
      if (peer.identity !== undefined) event.identity = peer.identity;
      if (query.preferredFormat !== undefined) event.preferredFormat = query.preferredFormat;
      this.emit('bootstrapRequest', event);
      // a new request restarts: whatever the device did before, it starts over
      this.endSession(endpoint, 'a new Bootstrap-Request replaced this one');
      // each bootstrap holds a timer and requests in flight: a flood of names must not hold more
      const limit = this.options.maxSessions ?? 1000;
      if (this.sessions.size >= limit) throw new RefusedRequest('5.03', `${limit} bootstraps are under way; try again later`);
      const config = await this.configOf(endpoint, event);
      return pack ? this.answerPack(endpoint, event, config) : this.startSequence(request, endpoint, event, config);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      // a query refused for another parameter still names the device, for whoever reads the event
      if (endpoint === '') endpoint = request.query.find((item) => item.startsWith('ep='))?.slice(3) ?? '';
      const code = error instanceof RegistrationRequestError ? error.coapCode : error instanceof RefusedRequest ? error.code : '5.00';
      this.log.warn(`refused a Bootstrap-Request from ${peer.address}:${peer.port}: ${reason}`);
      this.failed({ endpoint, reason, operation: pack ? 'pack' : undefined, code });
      return { code, payload: Buffer.from(reason.slice(0, 200)) };
    }
  }

  /** A bootstrap PSK binds its identity to one endpoint; an endpoint with a PSK must use it. */
  private checkSecurity(request: IncomingRequest, endpoint: string): void {
    const identity = request.peer.identity;
    if (identity !== undefined) {
      if (this.psks.endpointOf(identity) !== endpoint) throw new RefusedRequest('4.00', `the PSK identity ${identity} may not bootstrap as ${endpoint}`);
    } else if (this.options.requireSecurity) {
      throw new RefusedRequest('4.00', 'this bootstrap server accepts requests over DTLS only');
    } else if (this.psks.hasEndpoint(endpoint)) {
      throw new RefusedRequest('4.00', `${endpoint} has a bootstrap PSK: it must bootstrap over DTLS`);
    }
  }

  /** The hook's answer, else the endpoint's own entry, else `*`. */
  private async configOf(endpoint: string, event: BootstrapRequestEvent): Promise<BootstrapConfig> {
    let fromHook: BootstrapConfig | undefined;
    if (this.options.configFor) {
      try {
        fromHook = await this.options.configFor(endpoint, event);
      } catch (error) {
        throw new RefusedRequest('5.00', `the configuration hook failed for ${endpoint}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (fromHook !== undefined && fromHook !== null) {
      try {
        return checkConfig(fromHook, endpoint);
      } catch (error) {
        throw new RefusedRequest('5.00', (error as Error).message);
      }
    }
    const config = this.table.get(endpoint) ?? this.table.get('*');
    if (!config) throw new RefusedRequest('4.00', `no bootstrap configuration for the endpoint ${endpoint} (and no "*" default)`);
    return config;
  }

  private startSequence(request: IncomingRequest, endpoint: string, event: BootstrapRequestEvent, config: BootstrapConfig): OutgoingResponse {
    const { peer } = request;
    const coap = this.sockets.for(peer.identity);
    const controller = new AbortController();
    const timeout = this.options.sessionTimeout ?? 60_000;
    const timer = setTimeout(() => this.endSession(endpoint, `the bootstrap did not finish within ${timeout / 1000} s`), timeout);
    const session: Session = { controller, timer };
    this.sessions.set(endpoint, session);
    const run = (): void => {
      runSequence(
        {
          endpoint,
          deviceAddress: peer.address,
          preferredFormat: event.preferredFormat,
          config,
          model: this.model,
          signal: controller.signal,
          send: (params) => coap.request(peer, { ...params, timeout: this.options.requestTimeout ?? 10_000 }),
          report: (operation) => this.emit('operation', operation satisfies BootstrapOperationEvent),
        },
        (accounts) => this.handOver(endpoint, accounts),
      ).then(
        ({ accounts }) => {
          if (this.sessions.get(endpoint) !== session) return;
          this.forget(endpoint, session);
          this.emit('bootstrapFinished', { endpoint, servers: accounts.map(describe), via: 'sequence' } satisfies BootstrapFinishedEvent);
        },
        (error: unknown) => {
          if (this.sessions.get(endpoint) !== session) return; // ended already (timeout, replaced), and told
          this.forget(endpoint, session);
          const failure = error instanceof BootstrapFailure ? error : new BootstrapFailure(error instanceof Error ? error.message : String(error));
          this.failed({ endpoint, reason: failure.message, operation: failure.operation, path: failure.path, code: failure.code });
        },
      );
    };
    // the device must have the 2.04 before the first request reaches it
    return { code: '2.04', onSent: run };
  }

  /** Bootstrap-Pack: the whole configuration in one SenML CBOR answer. */
  private answerPack(endpoint: string, event: BootstrapRequestEvent, config: BootstrapConfig): OutgoingResponse {
    const accounts = planAccounts(config, endpoint, event.address, ASSUMED_BOOTSTRAP_INSTANCES);
    const values: CompositeValue = {};
    for (const account of accounts) {
      values[`/0/${account.securityInstance}`] = account.security0;
      values[`/1/${account.serverInstance}`] = account.server1;
    }
    for (const [path, resources] of Object.entries(config.writes ?? {})) values[path] = resources as CompositeValue[string];
    const payload = encodeComposite(ContentFormat.SENML_CBOR, values, this.model);
    this.handOver(endpoint, accounts);
    this.emit('operation', { endpoint, operation: 'pack', path: '/bspack', code: '2.05' } satisfies BootstrapOperationEvent);
    return {
      code: '2.05',
      payload,
      contentFormat: ContentFormat.SENML_CBOR,
      onSent: () => this.emit('bootstrapFinished', { endpoint, servers: accounts.map(describe), via: 'pack' } satisfies BootstrapFinishedEvent),
    };
  }

  /** The keys of accounts that point at an in-process LwM2M server go into its PSK table. */
  private handOver(endpoint: string, accounts: readonly PlannedAccount[]): void {
    for (const account of accounts) {
      if (account.target && account.identity !== undefined && account.key) account.target.setCredential({ identity: account.identity, key: account.key, endpoint });
    }
  }

  /** Ends a bootstrap under way, as failed with `reason`. */
  private endSession(endpoint: string, reason: string): void {
    const session = this.sessions.get(endpoint);
    if (!session) return;
    this.forget(endpoint, session);
    session.controller.abort(reason);
    this.failed({ endpoint, reason });
  }

  private forget(endpoint: string, session: Session): void {
    clearTimeout(session.timer);
    if (this.sessions.get(endpoint) === session) this.sessions.delete(endpoint);
  }

  private failed(event: BootstrapFailedEvent): void {
    for (const key of ['operation', 'path', 'code'] as const) if (event[key] === undefined) delete event[key];
    this.emit('bootstrapFailed', event);
  }

  /** Errors are events for whoever listens; without a listener they are warnings, never a crash. */
  private fail(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error instanceof Error ? error : new Error(String(error)), { type: 'LwM2MBootstrapServerWarning' });
  }
}

/** A Bootstrap-Request refused with this response code. */
class RefusedRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function describe(account: PlannedAccount): BootstrappedAccount {
  const described: BootstrappedAccount = { uri: account.uri, shortServerId: account.shortServerId, security: account.security, generated: account.generated };
  if (account.identity !== undefined) described.identity = account.identity;
  return described;
}
