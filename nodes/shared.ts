/**
 * What the LwM2M nodes share: the message shapes of registrations and errors, the endpoint filter,
 * and finding the server config node a node is attached to.
 */
import {
  LwM2MError,
  type BadDatagramEvent,
  type EventsSuppressedEvent,
  type HandshakeFailedEvent,
  type LwM2MServer,
  type NotifyEvent,
  type ObservationEndedEvent,
  type Registration,
  type RequestOptions,
  type ResourceLookup,
} from '../lib';
import type { Node, NodeDef, NodeMessage, NodeStatus, Red, Send } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { Settings, type Target } from './settings';

/** The registration as `msg.payload`: plain data, JSON-friendly. */
export function registrationPayload(registration: Registration): Record<string, unknown> {
  return {
    endpoint: registration.endpoint,
    id: registration.id,
    lifetime: registration.lifetime,
    version: registration.version,
    binding: registration.binding,
    queueMode: registration.queueMode,
    address: registration.address,
    port: registration.port,
    rootPath: registration.rootPath || '/',
    objects: registration.objects.map((object) => ({ ...object })),
    contentFormats: [...registration.contentFormats],
    registeredAt: new Date(registration.registeredAt).toISOString(),
    updatedAt: new Date(registration.updatedAt).toISOString(),
    expiresAt: new Date(registration.expiresAt).toISOString(),
    awake: registration.awake,
    security: registration.identity === undefined ? 'none' : registration.authentication ?? 'psk',
    ...(registration.identity !== undefined ? { identity: registration.identity } : {}),
    ...(registration.sms !== undefined ? { sms: registration.sms } : {}),
    // with several Node-REDs sharing a Redis store: the one the device talks to
    ...(registration.instance !== undefined ? { instance: registration.instance } : {}),
  };
}

/** `msg.error` of the message contract: `{ message, code, coapCode }`. */
export function errorInfo(error: unknown): { message: string; code: string; coapCode?: string } {
  if (error instanceof LwM2MError) return { message: error.message, code: error.code, ...(error.coapCode ? { coapCode: error.coapCode } : {}) };
  return { message: error instanceof Error ? error.message : String(error), code: 'BAD_REQUEST' };
}

/**
 * An Error for done(). Node-RED builds the Catch node's msg.error from it (message and code), so
 * the device's response code is put in msg.coapCode as well.
 */
export function failure(msg: NodeMessage, error: unknown): Error & { code: string; statusText: string } {
  const info = errorInfo(error);
  msg.error = info;
  if (info.coapCode) msg.coapCode = info.coapCode;
  return Object.assign(new Error(info.message), info, { statusText: info.code.toLowerCase().replace(/_/g, ' ') });
}

/** The server config node this node uses; without one the node shows why and does nothing. */
export function serverOf(red: Red, node: Node, config: NodeDef): unknown {
  const server = red.nodes.getNode(String(config.server));
  if (!server) node.status({ fill: 'red', shape: 'ring', text: 'no server' });
  return server ?? undefined;
}

/** Endpoint filter: empty or `*` matches all; `*` inside matches any run of characters. */
export function endpointFilter(pattern: string | undefined): (endpoint: string) => boolean {
  const text = (pattern ?? '').trim();
  if (text === '' || text === '*') return () => true;
  const expression = new RegExp(`^${text.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (endpoint) => expression.test(endpoint);
}

/**
 * What a message asks of each device: `run` sends the request and fills in the device's message
 * (payload, coapCode, ...), as the single-device nodes always did. Settings are evaluated once per
 * input message, before the job is built; `path` is the `msg.path` of every message of the job.
 */
export interface DeviceJob {
  path?: string | string[];
  run(endpoint: string, msg: NodeMessage, options: RequestOptions): Promise<void>;
}

/** per message when neither the node nor msg.concurrency says */
export const DEFAULT_CONCURRENCY = 5;
/** s a fleet job waits for a sleeping queue-mode device when neither the node nor msg.ttl says (the server's own queue default) */
export const DEFAULT_TTL = 60;

/** The concurrency and ttl settings of a message: the node's, else msg.concurrency / msg.ttl. */
export async function fleetSettings(msg: NodeMessage, settings: Settings): Promise<{ concurrency: number; ttl: number | undefined }> {
  const concurrency = await settings.number(msg, 'concurrency', 1);
  const ttl = await settings.number(msg, 'ttl', 0);
  return { concurrency: Math.floor(concurrency ?? DEFAULT_CONCURRENCY), ttl };
}

/**
 * Runs one message's job: on one device exactly as the nodes always did (the result is `msg`,
 * an error goes to done()), or on a fleet through `fleet`.
 */
export async function runTarget(fleet: Fleet, target: Target, job: DeviceJob, msg: NodeMessage, send: Send, settings: Settings, finish?: (summary: FleetSummary) => NodeStatus | undefined): Promise<'one' | 'fleet'> {
  const { concurrency, ttl } = await fleetSettings(msg, settings);
  if (target.kind === 'one') {
    // the ttl is the server's queue's: how long the request waits for a sleeping device
    await job.run(target.endpoint, msg, ttl !== undefined ? { ttl: ttl * 1000 } : {});
    return 'one';
  }
  await fleet.run(target, job, msg, send, { concurrency, ttl: (ttl ?? DEFAULT_TTL) * 1000, finish });
  return 'fleet';
}

/**
 * Wires a node that acts on each message (read, write, execute): it finds its server, registers
 * as its user, and per message builds the job with `prepare` and runs it on the device (the
 * message is sent on success, an error goes to done() for Catch nodes with a short status) or on
 * every device of a pattern or list (see Fleet).
 */
export function actionNode(red: Red, node: Node, config: NodeDef, prepare: (msg: NodeMessage, serverNode: ServerConfigNode, settings: Settings) => Promise<DeviceJob>): void {
  const serverNode = serverOf(red, node, config) as ServerConfigNode | undefined;
  if (!serverNode) return;
  const settings = new Settings(red, node, config);
  const fleet = new Fleet(red, node, serverNode.server);
  serverNode.register(node);
  onInput(node, serverNode, async (msg, send) => {
    const target = await settings.target(msg);
    const job = await prepare(msg, serverNode, settings);
    if ((await runTarget(fleet, target, job, msg, send, settings)) === 'fleet') return;
    node.status({});
    send(msg);
  });
  node.on('close', (_removed, done) => {
    fleet.close();
    serverNode.deregister(node, done);
  });
}

/** The summary of a fleet job: counts, and the endpoints of each outcome. */
export interface FleetSummary {
  ok: number;
  failed: number;
  skipped: number;
  endpoints: { ok: string[]; failed: string[]; skipped: string[] };
  /** why each failed device failed */
  errors: Record<string, { message: string; code: string; coapCode?: string }>;
}

/** Whether an endpoint is one of a list's entries (names, or patterns with `*`). */
export function entriesMatcher(entries: readonly string[]): (endpoint: string) => boolean {
  const names = new Set(entries.filter((entry) => !entry.includes('*')));
  const patterns = entries.filter((entry) => entry.includes('*')).map(endpointFilter);
  return (endpoint) => names.has(endpoint) || patterns.some((matches) => matches(endpoint));
}

const byName = new Intl.Collator('en', { numeric: true });

/** Waiting in line for one of `size` slots, first come first served. */
class Slots {
  private free: number;
  private readonly line: Array<() => void> = [];
  constructor(size: number) {
    this.free = size;
  }
  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.line.push(resolve));
  }
  give(): void {
    const next = this.line.shift();
    if (next) next();
    else this.free++;
  }
}

const WAKE_EVENTS = ['awake', 'register', 'deregister', 'expire'] as const;

/**
 * A node's fleet jobs: the operation on every device a pattern or list names, at most
 * `concurrency` requests in flight per message. Each device's outcome is sent on the first output
 * as it comes (the result; or `msg.error` when it failed; or `msg.skipped` when it slept through
 * the ttl), then `{ ok, failed, skipped, endpoints, errors }` on the second output.
 *
 * A sleeping queue-mode device does not hold a slot while it sleeps: its request waits (at most
 * the ttl) until the server hears from it, then takes a slot like any other. The server's own
 * queue would also wait, but holding a slot, so five sleepers could stall an awake fleet.
 */
export class Fleet {
  private closed = false;
  /** per endpoint, the checks of the jobs waiting for it to wake */
  private readonly sleepers = new Map<string, Set<() => void>>();
  private readonly onEvent = (registration: Registration) => {
    for (const check of [...(this.sleepers.get(registration.endpoint) ?? [])]) check();
  };

  constructor(
    private readonly red: Red,
    private readonly node: Node,
    private readonly server: LwM2MServer,
  ) {}

  /** The endpoints a target names now: list entries as given, each pattern's registered matches by name. */
  endpoints(entries: readonly string[]): string[] {
    const found = new Set<string>();
    let registered: string[] | undefined;
    for (const entry of entries) {
      if (!entry.includes('*')) {
        found.add(entry);
        continue;
      }
      // the registrations by name, once for all the patterns of the list
      registered ??= this.server.registrations().map((registration) => registration.endpoint).sort(byName.compare);
      for (const endpoint of registered.filter(endpointFilter(entry))) found.add(endpoint);
    }
    return [...found];
  }

  async run(
    target: Extract<Target, { kind: 'fleet' }>,
    job: DeviceJob,
    msg: NodeMessage,
    send: Send,
    options: { concurrency: number; ttl: number; finish?: (summary: FleetSummary) => NodeStatus | undefined },
  ): Promise<void> {
    const endpoints = this.endpoints(target.entries);
    const summary: FleetSummary = { ok: 0, failed: 0, skipped: 0, endpoints: { ok: [], failed: [], skipped: [] }, errors: {} };
    const slots = new Slots(Math.max(1, options.concurrency));
    let shown = 0;
    // a status per device would flood the editor's comms for a big fleet: at most 4 a second
    const progress = () => {
      const done = summary.ok + summary.failed + summary.skipped;
      if (done > 0 && done < endpoints.length && Date.now() - shown < 250) return;
      shown = Date.now();
      this.node.status({ fill: 'blue', shape: 'dot', text: `${done}/${endpoints.length} done` });
    };
    if (endpoints.length > 0) progress();
    const topic = (endpoint: string) => `${endpoint}${typeof job.path === 'string' ? job.path : ''}`;

    /** The device's message, made when its turn comes (not for the whole fleet at once). */
    const messageFor = (endpoint: string): NodeMessage => {
      const out = messageBase(this.red, msg);
      Object.assign(out, { endpoint, topic: topic(endpoint) });
      if (job.path !== undefined) out.path = Array.isArray(job.path) ? [...job.path] : job.path;
      return out;
    };

    const device = async (endpoint: string): Promise<void> => {
      // the ttl counts from when the device is first found asleep, not from the job's start
      let deadline: number | undefined;
      let out: NodeMessage;
      for (;;) {
        if (this.asleep(endpoint)) {
          deadline ??= Date.now() + options.ttl;
          if (!(await this.woken(endpoint, deadline))) {
            if (this.closed) return;
            out = messageFor(endpoint);
            // no payload: a flow that does not look at msg.skipped or msg.error must not take the input's for a result
            delete out.payload;
            const why = options.ttl === 0 ? 'not waited for (ttl 0)' : `did not wake up within ${Math.round(options.ttl / 1000)} s`;
            out.skipped = { reason: 'asleep', message: `${endpoint} is asleep (queue mode) and ${why}` };
            summary.skipped++;
            summary.endpoints.skipped.push(endpoint);
            break;
          }
        }
        await slots.take();
        if (this.closed) return slots.give();
        // it fell asleep while waiting for its turn: wait for it again, without the slot
        if (this.asleep(endpoint)) {
          slots.give();
          continue;
        }
        out = messageFor(endpoint);
        try {
          await job.run(endpoint, out, { ttl: deadline === undefined ? options.ttl : Math.max(1, deadline - Date.now()) });
          summary.ok++;
          summary.endpoints.ok.push(endpoint);
        } catch (error) {
          if (this.closed) return;
          const info = errorInfo(error);
          delete out.payload;
          out.error = info;
          if (info.coapCode) out.coapCode = info.coapCode;
          summary.failed++;
          summary.endpoints.failed.push(endpoint);
          summary.errors[endpoint] = info;
        } finally {
          slots.give();
        }
        break;
      }
      send([out, null]);
      progress();
    };
    await Promise.all(endpoints.map(device));
    if (this.closed) return;
    // the lists in the target's order (a pattern's matches by name), not in the order they finished
    const order = new Map(endpoints.map((endpoint, index) => [endpoint, index]));
    const inOrder = (list: string[]) => list.sort((a, b) => order.get(a)! - order.get(b)!);
    inOrder(summary.endpoints.ok);
    inOrder(summary.endpoints.skipped);
    summary.errors = Object.fromEntries(inOrder(summary.endpoints.failed).map((endpoint) => [endpoint, summary.errors[endpoint]!]));

    const result = messageBase(this.red, msg);
    Object.assign(result, { endpoint: target.label, topic: topic(target.label), payload: summary });
    if (job.path !== undefined) result.path = job.path;
    this.node.status(options.finish?.(summary) ?? summaryStatus(summary, endpoints.length));
    send([null, result]);
  }

  /** Ends the waits for sleeping devices; nothing more is sent for the jobs under way. */
  close(): void {
    this.closed = true;
    for (const checks of [...this.sleepers.values()]) for (const check of [...checks]) check();
  }

  private asleep(endpoint: string): boolean {
    const registration = this.server.registration(endpoint);
    return registration !== undefined && registration.queueMode && !registration.awake;
  }

  /** Resolves true once the device is no longer asleep (awake, or gone: its request then fails), false at the deadline or on close. */
  private woken(endpoint: string, deadline: number): Promise<boolean> {
    if (this.closed || deadline <= Date.now()) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (woke: boolean) => {
        clearTimeout(timer);
        const checks = this.sleepers.get(endpoint);
        checks?.delete(check);
        if (checks?.size === 0) this.sleepers.delete(endpoint);
        if (this.sleepers.size === 0) for (const event of WAKE_EVENTS) this.server.off(event, this.onEvent);
        resolve(woke);
      };
      const check = () => {
        if (this.closed) finish(false);
        else if (!this.asleep(endpoint)) finish(true);
      };
      const timer = setTimeout(() => finish(false), deadline - Date.now());
      // one listener per event for all of the node's sleepers, not one per device
      if (this.sleepers.size === 0) for (const event of WAKE_EVENTS) this.server.on(event, this.onEvent);
      const checks = this.sleepers.get(endpoint) ?? new Set();
      checks.add(check);
      this.sleepers.set(endpoint, checks);
    });
  }
}

/**
 * The input message as the start of a message about one device (or a summary): a copy without the
 * input's own outcome (an input from a Catch node carries its error) and without what `drop` names.
 */
export function messageBase(red: Red, msg: NodeMessage, drop: readonly string[] = []): NodeMessage {
  const base: NodeMessage = { ...msg };
  for (const key of ['error', 'coapCode', 'skipped', ...drop]) delete base[key];
  return red.util.cloneMessage(base);
}

/** `5 ok, 1 failed, 2 skipped`: green when all went well, red when none did, else yellow. */
export function summaryStatus(summary: FleetSummary, total: number): NodeStatus {
  if (total === 0) return { fill: 'yellow', shape: 'ring', text: 'no matching devices' };
  const text = [`${summary.ok} ok`, ...(summary.failed ? [`${summary.failed} failed`] : []), ...(summary.skipped ? [`${summary.skipped} skipped`] : [])].join(', ');
  if (summary.ok === total) return { fill: 'green', shape: 'dot', text };
  return { fill: summary.ok === 0 ? 'red' : 'yellow', shape: 'ring', text };
}

/**
 * Runs `handle` for each input message: a server that could not start is reported first, and an
 * error goes to done() (for Catch nodes) with a short status; nothing is sent for it.
 */
export function onInput(node: Node, serverNode: ServerConfigNode, handle: (msg: NodeMessage, send: Send) => Promise<void>): void {
  node.on('input', async (msg, send, done) => {
    try {
      if (serverNode.failure) throw new LwM2MError('SERVER_NOT_RUNNING', `the LwM2M server is not running: ${serverNode.failure.message}`);
      await handle(msg, send);
      done();
    } catch (error) {
      const problem = failure(msg, error);
      node.status({ fill: 'red', shape: 'ring', text: problem.statusText });
      done(problem);
    }
  });
}

/**
 * The "resource names" option: instance values keyed by the model's resource names instead of ids
 * (`{ "Sensor Value": 21.5 }` for `{ "5700": 21.5 }`); ids the model does not know stay ids.
 */
export function withResourceNames(model: ResourceLookup, path: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value)) return value;
  const ids = path.split('/').filter(Boolean).map(Number);
  const rename = (objectId: number, instance: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(instance).map(([rid, item]) => [model.resource(objectId, Number(rid))?.name ?? rid, item]));
  if (path.startsWith('/') && ids.length === 2) return rename(ids[0]!, value as Record<string, unknown>);
  if (path.startsWith('/') && ids.length === 1) {
    return Object.fromEntries(Object.entries(value as Record<string, Record<string, unknown>>).map(([iid, instance]) => [iid, rename(ids[0]!, instance)]));
  }
  return value;
}

/** `{ path: value }` of a composite, each value with resource names. */
export function compositeWithResourceNames(model: ResourceLookup, values: unknown): unknown {
  return Object.fromEntries(Object.entries(values as Record<string, unknown>).map(([path, value]) => [path, withResourceNames(model, path, value)]));
}

/** The message of a notification, as observe and notify-in send it. */
/** An observation that ended, as a message shaped like its notifications: `payload` says why. */
export function observationEndedMessage(event: ObservationEndedEvent): NodeMessage {
  const { composite, paths } = event;
  return {
    topic: `${event.endpoint}${composite ? '' : paths[0]}`,
    endpoint: event.endpoint,
    path: composite ? [...paths] : paths[0],
    event: 'observationEnded',
    observation: event.id,
    payload: { reason: event.reason, ...(event.coapCode !== undefined ? { coapCode: event.coapCode } : {}) },
  };
}

export type SecurityEventName = 'handshakeFailed' | 'badDatagram' | 'eventsSuppressed';

/**
 * A security or bad-input event of the server as a message: `topic` is the endpoint when the event
 * names one (a PSK identity bound to an endpoint), else the peer's address, or `eventsSuppressed`.
 */
export function securityEventMessage(server: LwM2MServer, event: SecurityEventName, detail: HandshakeFailedEvent | BadDatagramEvent | EventsSuppressedEvent): NodeMessage {
  const payload = { ...detail };
  if (event === 'eventsSuppressed') return { topic: event, event, payload };
  const { address, identity } = detail as HandshakeFailedEvent;
  const endpoint = identity === undefined ? undefined : server.credentials().find((credential) => credential.identity === identity)?.endpoint;
  return { topic: endpoint ?? address, ...(endpoint !== undefined ? { endpoint } : {}), event, payload };
}

export function notificationMessage(event: NotifyEvent, model: ResourceLookup, names: boolean): NodeMessage {
  const { composite, paths } = event.observation;
  let payload = event.value as unknown;
  if (names) payload = composite ? compositeWithResourceNames(model, payload) : withResourceNames(model, paths[0]!, payload);
  return {
    topic: `${event.endpoint}${composite ? '' : paths[0]}`,
    endpoint: event.endpoint,
    path: composite ? [...paths] : paths[0],
    payload,
    observation: event.observation.id,
    sequence: event.sequence,
  };
}
