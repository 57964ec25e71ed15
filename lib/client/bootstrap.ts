/**
 * Client-initiated bootstrap: the client asks its Bootstrap-Server for accounts and keeps asking,
 * with growing delays, until it has a usable one.
 *
 * One attempt runs on a CoAP endpoint of its own (its own socket, or its own DTLS session under the
 * bootstrap account's PSK), so the registration's transport is untouched until the new account is
 * known:
 *   sequence: POST /bs?ep=…[&pct=…] → 2.04; the server then Discovers, Reads, Deletes and Writes
 *             over that same transport, and ends with Bootstrap-Finish (POST /bs), which the client
 *             accepts (2.04) only when it now has a usable account (else 4.06 and a later retry);
 *   pack:     (LwM2M 1.2) GET /bspack?ep=… → 2.05 with a SenML CBOR pack the client applies itself.
 */
import { EventEmitter } from 'node:events';
import { ContentFormat, ContentFormatError, canonicalFormat, decodeComposite, formatName } from '../content';
import type { LwM2MVersion } from '../protocol';
import { CoapEndpoint, type CoapResponse, type Peer, type RequestParams } from '../transport/endpoint';
import { DEFAULT_TIMING, type CoapTiming } from '../transport/timing';
import { bootstrapConnection } from './accounts';
import type { AttributeStore } from './attributes';
import { applyBootstrapPack, handleBootstrap } from './bootstrap-handler';
import { ClientError } from './errors';
import type { RetryPolicy } from './registration';
import { openTransport, type TransportOptions } from './transport';
import type { ObjectTree } from './tree';

/** Why a bootstrap attempt did not give the client a usable account. */
export class BootstrapError extends Error {
  override readonly name = 'BootstrapError';
}

export interface BootstrapSettings {
  endpoint: string;
  version: LwM2MVersion;
  /** announced as `pct=` (LwM2M 1.1 and later) */
  preferredFormat: number;
  /** LwM2M 1.2 Bootstrap-Pack-Request instead of Bootstrap-Request */
  pack: boolean;
  /** ms from the Bootstrap-Request to Bootstrap-Finish */
  timeout: number;
  /** ms to wait for the answer to the Bootstrap-Request or Bootstrap-Pack-Request */
  requestTimeout: number;
  retry: RetryPolicy;
  timing?: Partial<CoapTiming>;
  /** DTLS settings and local address of the attempts' sockets */
  transport: TransportOptions;
}

/**
 * Events: 'failed' ({ reason }) after each attempt that did not end with a usable account, before
 * the next one is scheduled.
 */
export class Bootstrapper extends EventEmitter {
  private stopped = false;
  /** endpoints of attempts under way or lingering (answering a repeated Bootstrap-Finish) */
  private readonly endpoints = new Set<CoapEndpoint>();
  private readonly lingerTimers = new Set<NodeJS.Timeout>();
  /** ends the attempt under way (stop, or the Finish deadline) */
  private abort: ((error: Error) => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;

  constructor(
    private readonly tree: ObjectTree,
    private readonly attributes: AttributeStore,
    private readonly settings: BootstrapSettings,
    /** why the tree holds no usable account now, or undefined when it does */
    private readonly check: () => string | undefined,
  ) {
    super();
  }

  /**
   * Bootstraps until an attempt succeeds and `accept` (which starts using the new account) does
   * not throw; resolves then. Rejects only when stopped.
   */
  async run(accept: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      this.throwIfStopped();
      try {
        await this.attempt();
        this.throwIfStopped();
        await accept();
        return;
      } catch (error) {
        this.throwIfStopped();
        this.emit('failed', { reason: error instanceof Error ? error.message : String(error) });
      }
      const { initialDelay, maxDelay } = this.settings.retry;
      await this.sleep(Math.min(maxDelay, initialDelay * 2 ** attempt) * (0.75 + Math.random() * 0.5));
    }
  }

  /** Ends any attempt and closes every socket it opened; `run()` rejects. Final. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.wakeUp?.();
    this.abort?.(stoppedError());
    for (const timer of this.lingerTimers) clearTimeout(timer);
    this.lingerTimers.clear();
    const endpoints = [...this.endpoints];
    this.endpoints.clear();
    await Promise.all(endpoints.map((endpoint) => endpoint.close()));
  }

  private throwIfStopped(): void {
    if (this.stopped) throw stoppedError();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      this.retryTimer = setTimeout(resolve, ms);
    });
  }

  private async attempt(): Promise<void> {
    const connection = bootstrapConnection(this.tree);
    const endpoint = new CoapEndpoint({ timing: this.settings.timing, socketBufferSize: this.settings.transport.socketBufferSize });
    endpoint.on('error', () => undefined); // a send error ends the exchange as a timeout
    this.endpoints.add(endpoint);
    let linger = false;
    try {
      const { peer } = await openTransport(endpoint, connection, this.settings.transport, () => !this.stopped);
      if (this.settings.pack) {
        await this.pack(endpoint, peer);
      } else {
        linger = true;
        await this.sequence(endpoint, peer);
      }
    } finally {
      this.abort = undefined;
      this.retire(endpoint, linger);
    }
  }

  /** Bootstrap-Request, then the server's operations, until Bootstrap-Finish. */
  private async sequence(endpoint: CoapEndpoint, peer: Peer): Promise<void> {
    const { endpoint: name, version, preferredFormat, timeout } = this.settings;
    let settle!: (problem: string | undefined) => void;
    const finished = new Promise<void>((resolve, reject) => {
      settle = (problem) => (problem === undefined ? resolve() : reject(new BootstrapError(`Bootstrap-Finish refused: ${problem}`)));
      this.abort = reject;
    });
    finished.catch(() => undefined); // awaited below; it may fail before the Bootstrap-Request is answered
    const context = { tree: this.tree, attributes: this.attributes, version, preferredFormat, check: this.check, finished: settle };
    endpoint.setRequestHandler((request) => handleBootstrap(context, request));
    const deadline = setTimeout(() => this.abort?.(new BootstrapError(`no Bootstrap-Finish within ${timeout} ms of the Bootstrap-Request`)), timeout);
    try {
      const query = [`ep=${name}`, ...(version === '1.0' ? [] : [`pct=${preferredFormat}`])];
      const response = await this.request(endpoint, peer, 'Bootstrap-Request', { method: 'POST', path: ['bs'], query });
      if (response.code !== '2.04') throw new BootstrapError(`the Bootstrap-Request was answered ${response.code}${diagnostic(response)}`);
      await finished;
    } finally {
      clearTimeout(deadline);
      this.abort = undefined;
    }
  }

  /** LwM2M 1.2 Bootstrap-Pack-Request: the whole configuration in one answer. */
  private async pack(endpoint: CoapEndpoint, peer: Peer): Promise<void> {
    const response = await this.request(endpoint, peer, 'Bootstrap-Pack-Request', {
      method: 'GET',
      path: ['bspack'],
      query: [`ep=${this.settings.endpoint}`],
      accept: ContentFormat.SENML_CBOR,
    });
    if (response.code !== '2.05') throw new BootstrapError(`the Bootstrap-Pack-Request was answered ${response.code}${diagnostic(response)}`);
    if (response.contentFormat !== undefined && canonicalFormat(response.contentFormat) !== ContentFormat.SENML_CBOR) {
      throw new BootstrapError(`the Bootstrap-Pack came in ${formatName(response.contentFormat)}, not SenML CBOR`);
    }
    let values: Record<string, unknown>;
    try {
      values = decodeComposite(ContentFormat.SENML_CBOR, response.payload, this.tree.model);
    } catch (error) {
      if (error instanceof ContentFormatError) throw new BootstrapError(`the Bootstrap-Pack is not valid SenML CBOR: ${error.reason}`);
      throw error;
    }
    try {
      await applyBootstrapPack({ tree: this.tree, attributes: this.attributes }, values);
    } catch (error) {
      if (error instanceof ClientError) throw new BootstrapError(`the Bootstrap-Pack cannot be applied: ${error.message}`);
      throw error;
    }
    const problem = this.check();
    if (problem) throw new BootstrapError(`the Bootstrap-Pack leaves no usable account: ${problem}`);
  }

  private async request(endpoint: CoapEndpoint, peer: Peer, what: string, params: RequestParams): Promise<CoapResponse> {
    const pending = endpoint.request(peer, { ...params, timeout: this.settings.requestTimeout });
    // stop() or the Finish deadline end the wait at once
    const aborted = new Promise<never>((_, reject) => {
      const previous = this.abort;
      this.abort = (error) => {
        previous?.(error);
        reject(error);
      };
    });
    try {
      return await Promise.race([pending, aborted]);
    } catch (error) {
      if (error instanceof BootstrapError) throw error;
      throw new BootstrapError(`the ${what} got no answer: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      pending.catch(() => undefined);
    }
  }

  /** Closes an attempt's endpoint; after a Bootstrap-Finish a little later, so a repeated Finish (our ACK lost) is answered again. */
  private retire(endpoint: CoapEndpoint, linger: boolean): void {
    // whatever still comes is too late to change the configuration
    endpoint.setRequestHandler(() => ({ code: '4.05', payload: Buffer.from('the bootstrap is over') }));
    const close = (): void => {
      this.endpoints.delete(endpoint);
      void endpoint.close();
    };
    if (!linger || this.stopped) return close();
    const timing = { ...DEFAULT_TIMING, ...this.settings.timing };
    const timer = setTimeout(() => {
      this.lingerTimers.delete(timer);
      close();
    }, 2 * timing.ackTimeout);
    this.lingerTimers.add(timer);
  }
}

function stoppedError(): BootstrapError {
  return new BootstrapError('the client was stopped during the bootstrap');
}

function diagnostic(response: CoapResponse): string {
  return response.payload.length > 0 ? `: ${response.payload.toString('utf8').slice(0, 100)}` : '';
}
