/**
 * The client's side of Observe and Observe-Composite: which observer watches which paths, and when
 * a notification goes out. A change in the tree (or a timer: pmin expiring over a pending change,
 * pmax, epmax) re-evaluates the observations it concerns against their attributes.
 */
import { LwM2MPath } from '../path';
import type { CoapEndpoint, IncomingRequest, OutgoingResponse } from '../transport/endpoint';
import { peerKey, type Peer } from '../transport/endpoint';
import { changeConditionsMet, evaluationDelay, schedule, type AttributeStore, type NotificationAttributes } from './attributes';

/** RFC 7641 §4.5: an observer that only gets NON notifications must still be checked at least daily. */
const CONFIRMABLE_AT_LEAST_EVERY = 24 * 3600 * 1000;

export interface Observation {
  readonly key: string;
  readonly origin: IncomingRequest;
  readonly paths: readonly LwM2MPath[];
  readonly composite: boolean;
  readonly format: number;
  sequence: number;
  /** the value last notified (st is measured from it) */
  lastScalar: number | boolean | undefined;
  /** the value at the last evaluation (gt/lt crossings and edges happen between evaluations) */
  seenScalar: number | boolean | undefined;
  seenPayload: Buffer;
  lastNotifiedAt: number;
  lastEvaluatedAt: number;
  lastConfirmableAt: number;
  pending: boolean;
  timer?: NodeJS.Timeout;
  busy: boolean;
  again: boolean;
}

export interface ObservationHost {
  endpoint: CoapEndpoint;
  attributes: AttributeStore;
  /** the Server object's default pmin/pmax */
  defaults(): { pmin?: number; pmax?: number };
  /** reads and encodes the observed value(s); rejects with a ClientError when they are gone */
  render(observation: Observation): Promise<{ payload: Buffer; value: unknown }>;
  /** responds for a failed render (e.g. 4.04 when the instance was deleted) */
  failure(error: unknown): OutgoingResponse;
  /** resolves when a notification may be sent (a sleeping queue-mode client wakes up first) */
  ready(): Promise<void>;
  onError(error: unknown): void;
}

export class Observations {
  private readonly byKey = new Map<string, Observation>();
  private closed = false;

  constructor(
    private readonly host: ObservationHost,
    private readonly maxObservations = 256,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  list(): Observation[] {
    return [...this.byKey.values()];
  }

  static key(peer: Peer, token: Buffer): string {
    return `${peerKey(peer)}#${token.toString('hex')}`;
  }

  /** Whether another observation can be accepted (the caller answers without Observe when not). */
  hasRoom(origin: IncomingRequest): boolean {
    return this.byKey.size < this.maxObservations || this.byKey.has(Observations.key(origin.peer, origin.token));
  }

  /** Starts (or restarts, for the same token) an observation whose first response is `payload`. */
  add(origin: IncomingRequest, paths: readonly LwM2MPath[], composite: boolean, format: number, payload: Buffer, value: unknown): Observation {
    const key = Observations.key(origin.peer, origin.token);
    this.stop(key);
    const now = Date.now();
    const observation: Observation = {
      key,
      origin,
      paths,
      composite,
      format,
      sequence: nextSequence(),
      lastScalar: scalarOf(value),
      seenScalar: scalarOf(value),
      seenPayload: payload,
      lastNotifiedAt: now,
      lastEvaluatedAt: now,
      lastConfirmableAt: now,
      pending: false,
      busy: false,
      again: false,
    };
    this.byKey.set(key, observation);
    this.arm(observation, schedule(this.attributesOf(observation), now, now, false).nextCheckIn);
    return observation;
  }

  /** Active or passive cancel: by token from that peer. */
  cancel(peer: Peer, token: Buffer): boolean {
    return this.stop(Observations.key(peer, token));
  }

  /** A value under (or above) `path` changed: re-evaluate the observations that see it. */
  changed(path: LwM2MPath): void {
    for (const observation of this.byKey.values()) {
      if (observation.paths.some((observed) => observed.contains(path) || path.contains(observed))) void this.evaluate(observation);
    }
  }

  /** Attributes changed (Write-Attributes): re-time every observation. */
  retime(): void {
    for (const observation of this.byKey.values()) void this.evaluate(observation);
  }

  /** Ends every observation (they belong to a registration that is gone). */
  clear(): void {
    for (const key of [...this.byKey.keys()]) this.stop(key);
  }

  /** Ends every observation for good: no timer is armed after this. */
  close(): void {
    this.closed = true;
    this.clear();
  }

  private stop(key: string): boolean {
    const observation = this.byKey.get(key);
    if (!observation) return false;
    clearTimeout(observation.timer);
    this.byKey.delete(key);
    return true;
  }

  private attributesOf(observation: Observation): NotificationAttributes {
    // a composite observation uses the attributes of its paths only for timing; the first path's are taken
    return this.host.attributes.effective(observation.paths[0] ?? LwM2MPath.ROOT, this.host.defaults());
  }

  private arm(observation: Observation, delay: number | undefined): void {
    clearTimeout(observation.timer);
    observation.timer = undefined;
    if (delay === undefined || this.closed) return;
    observation.timer = setTimeout(() => void this.evaluate(observation), Math.max(0, delay));
  }

  /** Reads the value, decides whether to notify now, and arms the next timer. */
  private async evaluate(observation: Observation): Promise<void> {
    if (observation.busy) {
      observation.again = true;
      return;
    }
    observation.busy = true;
    try {
      do {
        observation.again = false;
        await this.evaluateOnce(observation);
      } while (observation.again && this.byKey.get(observation.key) === observation);
    } catch (error) {
      this.host.onError(error);
    } finally {
      observation.busy = false;
    }
  }

  private async evaluateOnce(observation: Observation): Promise<void> {
    if (this.byKey.get(observation.key) !== observation) return;
    const attrs = this.attributesOf(observation);
    // epmin: the value is not evaluated more often than that; come back when it has passed
    const wait = evaluationDelay(attrs, observation.lastEvaluatedAt, Date.now());
    if (wait > 0) {
      this.arm(observation, wait);
      return;
    }
    observation.lastEvaluatedAt = Date.now();
    let rendered: { payload: Buffer; value: unknown };
    try {
      rendered = await this.host.render(observation);
    } catch (error) {
      // the observed value is gone (deleted instance): tell the observer and end the observation
      this.stop(observation.key);
      await this.host.ready();
      await this.host.endpoint.notify(observation.origin, this.host.failure(error), false);
      return;
    }
    if (this.byKey.get(observation.key) !== observation) return;
    const scalar = scalarOf(rendered.value);
    // a write of the same value is not a change: compare what the observer would receive
    if (!rendered.payload.equals(observation.seenPayload)) {
      if (observation.composite || conditionsMet(observation, scalar, attrs)) observation.pending = true;
      observation.seenScalar = scalar;
      observation.seenPayload = rendered.payload;
    }
    const now = Date.now();
    const decision = schedule(attrs, observation.lastNotifiedAt, now, observation.pending);
    if (decision.notifyNow) {
      const confirmable = attrs.con === 1 || now - observation.lastConfirmableAt >= CONFIRMABLE_AT_LEAST_EVERY;
      observation.pending = false;
      observation.lastNotifiedAt = now;
      observation.lastScalar = scalar;
      observation.sequence = nextSequence();
      if (confirmable) observation.lastConfirmableAt = now;
      this.arm(observation, decision.nextCheckIn);
      await this.host.ready();
      const outcome = await this.host.endpoint.notify(
        observation.origin,
        { code: '2.05', payload: rendered.payload, contentFormat: observation.format, observe: observation.sequence },
        confirmable,
      );
      // RFC 7641 §4.5: an observer that does not acknowledge (or rejects) a notification is removed
      if (outcome === 'timeout' || outcome === 'reset') this.stop(observation.key);
      return;
    }
    this.arm(observation, decision.nextCheckIn);
  }
}

/**
 * Change conditions of a single resource: gt/lt crossings and boolean edges happen between two
 * evaluations, while st is the distance from the last notified value (LwM2M 1.1 §5.1.2).
 */
function conditionsMet(observation: Observation, scalar: number | boolean | undefined, attrs: NotificationAttributes): boolean {
  if (typeof scalar === 'number') {
    const threshold = attrs.gt !== undefined || attrs.lt !== undefined;
    const step = attrs.st !== undefined;
    if (!threshold && !step) return true;
    return (
      (threshold && changeConditionsMet(numberOrUndefined(observation.seenScalar), scalar, { gt: attrs.gt, lt: attrs.lt })) ||
      (step && changeConditionsMet(numberOrUndefined(observation.lastScalar), scalar, { st: attrs.st }))
    );
  }
  if (typeof scalar === 'boolean' && attrs.edge !== undefined) return changeConditionsMet(observation.seenScalar, scalar, { edge: attrs.edge });
  return true;
}

function numberOrUndefined(value: number | boolean | undefined): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

/** The Observe option value: 24 bits that grow with time, so a restarted client still counts up (RFC 7641 §4.4). */
let lastSequence = 0;
function nextSequence(): number {
  const candidate = Math.floor(Date.now() / 32) % 0x1000000;
  lastSequence = candidate > lastSequence || lastSequence - candidate > 0x800000 ? candidate : (lastSequence + 1) % 0x1000000;
  return lastSequence;
}

function scalarOf(value: unknown): number | boolean | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}
