/**
 * The client side of the Registration interface: Register (retried with back-off while the server
 * does not answer), Update before the lifetime runs out or when parameters change, a new Register
 * when the server has forgotten us (4.04), and De-register.
 */
import { EventEmitter } from 'node:events';
import { CoapError } from '../transport/errors';
import type { CoapEndpoint, CoapResponse, Peer } from '../transport/endpoint';
import { OptionNumber, stringOptions } from '../transport/message';
import { ContentFormat } from '../content';
import type { LwM2MVersion } from './management';

export interface RegistrationParams {
  endpoint: string;
  lifetime: number;
  version: LwM2MVersion;
  binding: 'U' | 'UQ';
}

export interface RetryPolicy {
  /** ms before the first retry */
  initialDelay: number;
  /** ms between retries at most */
  maxDelay: number;
}

export class RegistrationError extends Error {
  override readonly name = 'RegistrationError';
  constructor(
    readonly operation: 'register' | 'update' | 'deregister',
    readonly coapCode: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Which Update parameters changed since the last successful Register/Update. */
interface PendingChanges {
  lifetime?: boolean;
  binding?: boolean;
  objects?: boolean;
}

export class Registration extends EventEmitter {
  /** the registration's location (`rd/5a3f`), once registered */
  location: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private changes: PendingChanges = {};
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private lastSuccess = 0;

  constructor(
    private readonly endpoint: CoapEndpoint,
    private readonly server: Peer,
    private readonly params: RegistrationParams,
    private readonly objectLinks: () => string,
    private readonly retry: RetryPolicy,
    private readonly timeout: number,
    /** ms De-register may take: stop() must end soon even when the server is gone */
    private readonly deregisterTimeout: number,
    /** called before anything is sent (a sleeping queue-mode client wakes its radio) */
    private readonly prepare: () => void = () => undefined,
  ) {
    super();
  }

  get registered(): boolean {
    return this.location !== undefined;
  }

  /** Registers now, then keeps the registration alive until `stop()`. Resolves on the first success. */
  start(): Promise<void> {
    this.stopped = false;
    return new Promise((resolve, reject) => {
      const onRegistered = (): void => {
        this.off('stopped', onStopped);
        resolve();
      };
      const onStopped = (): void => {
        this.off('registered', onRegistered);
        reject(new RegistrationError('register', undefined, 'the client was stopped before it registered'));
      };
      this.once('registered', onRegistered);
      this.once('stopped', onStopped);
      this.enqueue(() => this.register());
    });
  }

  /** Changes parameters; the next Update carries them (sent right away when `now`). */
  change(update: { lifetime?: number; binding?: 'U' | 'UQ'; objects?: boolean }, now = true): Promise<void> {
    if (update.lifetime !== undefined && update.lifetime !== this.params.lifetime) {
      this.params.lifetime = update.lifetime;
      this.changes.lifetime = true;
    }
    if (update.binding !== undefined && update.binding !== this.params.binding) {
      this.params.binding = update.binding;
      this.changes.binding = true;
    }
    if (update.objects) this.changes.objects = true;
    return now ? this.update() : Promise.resolve();
  }

  /** Sends an Update now (re-registering when the server no longer knows us). */
  update(): Promise<void> {
    return this.enqueue(() => (this.location ? this.sendUpdate() : this.register()));
  }

  /** De-registers (when registered) and stops all timers. */
  async stop(deregister: boolean): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.emit('stopped');
    const location = this.location;
    if (!deregister || !location) {
      this.location = undefined;
      return;
    }
    // an Update still in flight is not waited for: it is moot, and its answer is ignored once stopped
    this.location = undefined;
    this.prepare();
    try {
      const response = await this.request('DELETE', location.split('/'), [], undefined, this.deregisterTimeout);
      if (response.code !== '2.02') throw new RegistrationError('deregister', response.code, `De-register was answered ${response.code}`);
      this.emit('deregistered');
    } catch (error) {
      this.emit('error', error);
    }
  }

  private enqueue(operation: () => Promise<void>): Promise<void> {
    const next = this.chain.then(operation, operation);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private query(full: boolean): string[] {
    const { endpoint, lifetime, version, binding } = this.params;
    const queue = binding === 'UQ';
    // LwM2M 1.0 writes queue mode into the binding (UQ); 1.1 and later use the Q parameter
    const bindingText = version === '1.0' ? binding : 'U';
    const items: string[] = [];
    if (full) items.push(`ep=${endpoint}`);
    if (full || this.changes.lifetime) items.push(`lt=${lifetime}`);
    if (full) items.push(`lwm2m=${version}`);
    if (full || this.changes.binding) items.push(`b=${bindingText}`);
    if ((full || this.changes.binding) && queue && version !== '1.0') items.push('Q');
    return items;
  }

  private request(method: 'POST' | 'DELETE', path: string[], query: string[], payload?: Buffer, timeout = this.timeout): Promise<CoapResponse> {
    return this.endpoint.request(this.server, {
      method,
      path,
      query,
      payload,
      contentFormat: payload ? ContentFormat.LINK : undefined,
      timeout,
    });
  }

  private async register(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.prepare();
    try {
      const response = await this.request('POST', ['rd'], this.query(true), Buffer.from(this.objectLinks(), 'utf8'));
      if (response.code !== '2.01') throw new RegistrationError('register', response.code, `Register was answered ${response.code}${response.payload.length ? `: ${response.payload.toString('utf8').slice(0, 100)}` : ''}`);
      const location = stringOptions(response, OptionNumber.LOCATION_PATH);
      if (location.length === 0) throw new RegistrationError('register', response.code, 'Register was answered 2.01 without a Location-Path');
      if (this.stopped) return;
      this.location = location.join('/');
      this.changes = {};
      this.attempt = 0;
      this.lastSuccess = Date.now();
      this.scheduleUpdate();
      this.emit('registered', this.location);
    } catch (error) {
      if (this.stopped) return;
      this.location = undefined;
      this.retryLater(error, () => this.register());
    }
  }

  private async sendUpdate(): Promise<void> {
    if (this.stopped || !this.location) return;
    clearTimeout(this.timer);
    const objects = this.changes.objects;
    const sent = { ...this.changes };
    this.prepare();
    try {
      const response = await this.request('POST', this.location.split('/'), this.query(false), objects ? Buffer.from(this.objectLinks(), 'utf8') : undefined);
      if (response.code === '4.04') {
        // the server lost or dropped our registration: start over
        this.location = undefined;
        this.emit('reregistering');
        return this.register();
      }
      if (response.code !== '2.04') throw new RegistrationError('update', response.code, `Update was answered ${response.code}`);
      if (sent.lifetime) delete this.changes.lifetime;
      if (sent.binding) delete this.changes.binding;
      if (sent.objects) delete this.changes.objects;
      this.attempt = 0;
      this.lastSuccess = Date.now();
      this.scheduleUpdate();
      this.emit('updated');
    } catch (error) {
      if (this.stopped) return;
      // past the lifetime the server has dropped us: a new Register is what can still work
      const expired = Date.now() - this.lastSuccess > this.params.lifetime * 1000;
      if (expired) this.location = undefined;
      this.retryLater(error, () => (expired ? this.register() : this.sendUpdate()));
    }
  }

  /** Updates at 90 % of the lifetime, leaving room for retransmissions before the server gives up. */
  private scheduleUpdate(): void {
    clearTimeout(this.timer);
    const delay = Math.max(1000, this.params.lifetime * 1000 * 0.9);
    this.timer = setTimeout(() => void this.update().catch(() => undefined), delay);
  }

  private retryLater(error: unknown, operation: () => Promise<void>): void {
    const delay = Math.min(this.retry.maxDelay, this.retry.initialDelay * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt++;
    const reason = error instanceof CoapError || error instanceof RegistrationError ? error : new RegistrationError('register', undefined, String(error));
    this.emit('retry', { error: reason, attempt: this.attempt, delay: Math.round(delay) });
    // a listener may have stopped us (the client gives up on this server and bootstraps)
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.enqueue(operation).catch(() => undefined), delay);
  }
}
