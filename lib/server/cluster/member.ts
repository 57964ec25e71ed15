/**
 * One server instance among several sharing a store: what it tells the others and what it does
 * for them. The instance whose socket a device talks to (the registration's `instance`) is the only
 * one that sends to the device; the others forward their requests to it and hear the answers and
 * the notifications of their observations through it.
 */
import { pooledRandomId } from '../../transport/random-pool';
import type { CoapResponse, Peer, RequestParams } from '../../transport/endpoint';
import { LwM2MError } from '../errors';
import type { RegistrationRecord } from '../types';
import type { ClusterBus, ClusterMessage, ExpiryClaim } from './bus';
import { fromWireError, fromWireParams, fromWireResponse, toWireError, toWireParams, toWireResponse } from './wire';

/** What a member needs of its server. */
export interface ClusterHost {
  /** Sends a request to the device of registration `id` from this instance's socket (or queues it while the device sleeps). */
  deliver(id: string, operation: string, params: RequestParams, ttl: number, success: string[]): Promise<CoapResponse>;
  /** Starts an observation from this instance's socket (queued while the device sleeps); `listener` hears its notifications. */
  observeHere(id: string, operation: string, params: RequestParams, ttl: number, listener: (response: CoapResponse) => void): Promise<{ response: CoapResponse; cancel(): void }>;
  /** Listens on this instance's socket for the notifications with `token` of registration `id`'s device; undefined when it is not registered. */
  adoptHere(id: string, token: Buffer, listener: (response: CoapResponse) => void): (() => void) | undefined;
  /** Another instance registered or updated a device (or took it over). */
  shared(record: RegistrationRecord, from: string): void;
  /** Another instance ended a registration. */
  ended(id: string, reason: 'deregister' | 'expire', from: string): void;
  /** Another instance (re)started: what it passed on before is to be asked for again. */
  rejoined(instance: string): void;
  /** Messages may have been missed: read the store again. */
  resync(): void;
  warn(message: string): void;
}

interface Waiting {
  resolve(response: CoapResponse): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  peer: Peer;
  /** `Read /3/0/9 on dev-1`, for messages */
  what: string;
  onProgress?: (sent: number, total: number) => void;
}

/** An observation this instance's socket holds for another instance. */
interface Relay {
  registrationId: string;
  cancel(): void;
}

/** ms beyond the request's own time an instance waits for another's answer (Redis and the other instance's turn) */
const MARGIN = 5000;

export class ClusterMember {
  /** requests forwarded to other instances, by request id */
  private readonly waiting = new Map<string, Waiting>();
  /** observations held here for others, by key (`<origin>/<observation id>`) */
  private readonly relays = new Map<string, Relay>();
  /** observations of this instance held by others: their notifications' listeners, by key */
  private readonly listeners = new Map<string, { listener: (response: CoapResponse) => void; peer: Peer }>();
  /** messages that came before the server had read the store */
  private early: ClusterMessage[] | undefined = [];
  private leaving = false;

  constructor(
    readonly instance: string,
    private readonly bus: ClusterBus,
    private readonly host: ClusterHost,
  ) {}

  /** Starts hearing the others; what they say is held until `start()`. */
  join(): Promise<void> {
    return this.bus.join(this.instance, {
      receive: (message) => {
        if (this.early) this.early.push(message);
        else this.handle(message);
      },
      lost: (reason) => this.lost(reason),
      resync: () => this.host.resync(),
      warn: (message) => this.host.warn(message),
    });
  }

  /** The server has read the store: handle what came meanwhile, and from now on as it comes. */
  start(): void {
    const early = this.early ?? [];
    this.early = undefined;
    for (const message of early) this.handle(message);
    this.bus.broadcast({ t: 'hello', from: this.instance });
  }

  /** Tells the others a registration is new or changed. */
  share(record: RegistrationRecord): void {
    this.bus.broadcast({ t: 'reg', from: this.instance, record: { ...record } });
  }

  /** Tells the others a registration ended here. */
  shareEnd(id: string, reason: 'deregister' | 'expire'): void {
    this.bus.broadcast({ t: 'end', from: this.instance, id, reason });
  }

  claimExpiry(id: string, updatedAt: number): Promise<ExpiryClaim> {
    return this.bus.claimExpiry(id, updatedAt);
  }

  isAlive(instance: string): Promise<boolean> {
    return this.bus.isAlive(instance);
  }

  /**
   * Sends a request through the instance holding the device's socket; resolves with the device's
   * response. When that instance is not running, this one sends it itself: a device that talks to
   * the server directly (no load balancer in between) answers wherever the request comes from.
   */
  forward(record: RegistrationRecord, operation: string, params: RequestParams, ttl: number, success: string[]): Promise<CoapResponse> {
    const rid = pooledRandomId(8);
    const message: ClusterMessage = { t: 'req', from: this.instance, rid, id: record.id, operation, params: toWireParams(params), ttl, success };
    return this.ask(record, operation, rid, message, ttl + (params.timeout ?? 0), () => this.host.deliver(record.id, operation, params, ttl, success), params.onProgress);
  }

  /** Starts an observation through the instance holding the device's socket; its notifications come to `listener`. */
  async observe(record: RegistrationRecord, key: string, operation: string, params: RequestParams, ttl: number, listener: (response: CoapResponse) => void): Promise<{ response: CoapResponse; cancel(): void }> {
    const owner = record.instance!;
    const peer = { address: record.address, port: record.port };
    // notifications may come right behind the first answer: listen before asking
    this.listeners.set(key, { listener, peer });
    const rid = pooledRandomId(8);
    let here: (() => void) | undefined;
    const observeHere = async () => {
      this.listeners.delete(key);
      const started = await this.host.observeHere(record.id, operation, params, ttl, listener);
      here = started.cancel;
      return started.response;
    };
    try {
      const response = await this.ask(record, operation, rid, { t: 'obs', from: this.instance, rid, id: record.id, key, operation, params: toWireParams(params), ttl }, ttl + (params.timeout ?? 0), observeHere);
      return { response, cancel: () => (here ? here() : this.unlisten(owner, key, listener)) };
    } catch (error) {
      this.unlisten(owner, key, listener);
      throw error;
    }
  }

  /** Asks the instance holding the device's socket to pass on the notifications with `token` (the device moved there). */
  adopt(record: RegistrationRecord, key: string, token: Buffer, listener: (response: CoapResponse) => void): () => void {
    const owner = record.instance!;
    let here: (() => void) | undefined;
    let cancelled = false;
    this.listeners.set(key, { listener, peer: { address: record.address, port: record.port } });
    this.bus.send(owner, { t: 'adopt', from: this.instance, id: record.id, key, token: token.toString('hex') }).then(
      (heard) => {
        if (heard || cancelled || this.listeners.get(key)?.listener !== listener) return;
        // that instance is not running: listen here, where a device talking to the server directly sends
        this.listeners.delete(key);
        here = this.host.adoptHere(record.id, token, listener);
      },
      (error: Error) => this.host.warn(`could not ask instance ${owner} for the notifications of ${record.endpoint}: ${error.message}`),
    );
    return () => {
      cancelled = true;
      if (here) here();
      else this.unlisten(owner, key, listener);
    };
  }

  /** This instance no longer holds the device's socket (it moved, or its registration ended): it stops passing on notifications. */
  dropRelays(registrationId: string): void {
    for (const [key, relay] of this.relays) {
      if (relay.registrationId !== registrationId) continue;
      relay.cancel();
      this.relays.delete(key);
    }
  }

  /** The server is closing: observations it ends now stay with the others (a restart finds them in the store), so nothing is sent. */
  closing(): void {
    this.leaving = true;
  }

  async leave(): Promise<void> {
    this.leaving = true;
    for (const waiting of this.waiting.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new LwM2MError('SERVER_NOT_RUNNING', 'the server was closed'));
    }
    this.waiting.clear();
    for (const relay of this.relays.values()) relay.cancel();
    this.relays.clear();
    this.listeners.clear();
    await this.bus.leave();
  }

  /** Answers awaited from other instances cannot come: their callers learn it now, not at their timeout. */
  private lost(reason: string): void {
    for (const [rid, waiting] of [...this.waiting]) {
      this.settle(rid, new LwM2MError('INTERNAL', `${waiting.what}: ${reason}, so the answer of the instance that holds the device's connection cannot arrive (the request may have been sent)`));
    }
  }

  private unlisten(owner: string, key: string, listener: (response: CoapResponse) => void): void {
    if (this.listeners.get(key)?.listener !== listener) return;
    this.listeners.delete(key);
    if (this.leaving) return;
    this.bus.send(owner, { t: 'unobs', from: this.instance, key }).catch(() => undefined); // an owner gone holds nothing to cancel
  }

  private ask(record: RegistrationRecord, operation: string, rid: string, message: ClusterMessage, time: number, ownerGone: () => Promise<CoapResponse>, onProgress?: (sent: number, total: number) => void): Promise<CoapResponse> {
    const owner = record.instance!;
    const what = `${operation} on ${record.endpoint}`;
    if (this.leaving) return Promise.reject(new LwM2MError('SERVER_NOT_RUNNING', 'the server was closed'));
    return new Promise<CoapResponse>((resolve, reject) => {
      const waiting: Waiting = {
        resolve,
        reject,
        peer: { address: record.address, port: record.port },
        what,
        onProgress,
        timer: setTimeout(() => {
          this.waiting.delete(rid);
          reject(new LwM2MError('TIMEOUT', `${what}: instance ${owner}, which holds the device's connection, did not answer within ${Math.round((time + MARGIN) / 1000)} s`));
        }, time + MARGIN),
      };
      this.waiting.set(rid, waiting);
      this.bus.send(owner, message).then(
        (heard) => {
          if (heard || !this.waiting.has(rid)) return;
          clearTimeout(waiting.timer);
          ownerGone().then(
            (response) => this.settle(rid, response),
            (error: Error) => this.settle(rid, error),
          );
        },
        (error: Error) => this.settle(rid, new LwM2MError('INTERNAL', `${what}: cannot reach instance ${owner} through Redis: ${error.message}`)),
      );
    });
  }

  private settle(rid: string, outcome: CoapResponse | Error): void {
    const waiting = this.waiting.get(rid);
    if (!waiting) return;
    this.waiting.delete(rid);
    clearTimeout(waiting.timer);
    if (outcome instanceof Error) waiting.reject(outcome);
    else waiting.resolve(outcome);
  }

  private handle(message: ClusterMessage): void {
    try {
      switch (message.t) {
        case 'hello':
          this.host.rejoined(message.from);
          return;
        case 'reg':
          this.host.shared(message.record, message.from);
          return;
        case 'end':
          this.host.ended(message.id, message.reason, message.from);
          return;
        case 'req':
          this.serveRequest(message);
          return;
        case 'obs':
          this.serveObserve(message);
          return;
        case 'adopt':
          this.serveAdopt(message);
          return;
        case 'unobs':
          this.dropRelay(message.key);
          return;
        case 'res': {
          const waiting = this.waiting.get(message.rid);
          if (!waiting) return; // given up already
          if (message.progress) waiting.onProgress?.(message.progress[0], message.progress[1]);
          else if (message.error) this.settle(message.rid, fromWireError(message.error));
          else if (message.response) this.settle(message.rid, fromWireResponse(message.response, waiting.peer));
          return;
        }
        case 'note': {
          const listening = this.listeners.get(message.key);
          listening?.listener(fromWireResponse(message.response, listening.peer));
          return;
        }
      }
    } catch (error) {
      this.host.warn(`ignored a message from instance ${message.from} (${message.t}): ${(error as Error).message}`);
    }
  }

  private reply(to: string, message: ClusterMessage): void {
    this.bus.send(to, message).catch((error: Error) => this.host.warn(`could not answer instance ${to}: ${error.message}`));
  }

  private serveRequest(message: Extract<ClusterMessage, { t: 'req' }>): void {
    const params = fromWireParams(message.params);
    if (message.params.progress) params.onProgress = (sent, total) => this.reply(message.from, { t: 'res', from: this.instance, rid: message.rid, progress: [sent, total] });
    this.host.deliver(message.id, message.operation, params, message.ttl, Array.isArray(message.success) ? message.success : []).then(
      (response) => this.reply(message.from, { t: 'res', from: this.instance, rid: message.rid, response: toWireResponse(response) }),
      (error: unknown) => this.reply(message.from, { t: 'res', from: this.instance, rid: message.rid, error: toWireError(error) }),
    );
  }

  private relay(to: string, key: string): (response: CoapResponse) => void {
    return (response) => {
      // a final answer (no Observe) ends the observation: the endpoint forgot it already
      if (response.observe === undefined) this.relays.delete(key);
      this.bus.send(to, { t: 'note', from: this.instance, key, response: toWireResponse(response) }).catch((error: Error) => this.host.warn(`could not pass a notification on to instance ${to}: ${error.message}`));
    };
  }

  private serveObserve(message: Extract<ClusterMessage, { t: 'obs' }>): void {
    this.dropRelay(message.key);
    this.host.observeHere(message.id, message.operation, fromWireParams(message.params), message.ttl, this.relay(message.from, message.key)).then(
      ({ response, cancel }) => {
        this.relays.set(message.key, { registrationId: message.id, cancel });
        this.reply(message.from, { t: 'res', from: this.instance, rid: message.rid, response: toWireResponse(response) });
      },
      (error: unknown) => this.reply(message.from, { t: 'res', from: this.instance, rid: message.rid, error: toWireError(error) }),
    );
  }

  private serveAdopt(message: Extract<ClusterMessage, { t: 'adopt' }>): void {
    // the old relay of the key first: its cancel forgets the token, which the new one listens for
    this.dropRelay(message.key);
    const cancel = this.host.adoptHere(message.id, Buffer.from(message.token, 'hex'), this.relay(message.from, message.key));
    if (cancel) this.relays.set(message.key, { registrationId: message.id, cancel });
  }

  private dropRelay(key: string): void {
    this.relays.get(key)?.cancel();
    this.relays.delete(key);
  }
}
