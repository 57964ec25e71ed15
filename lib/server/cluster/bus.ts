/**
 * How server instances sharing a store talk to each other: broadcasts (a registration changed)
 * and messages to one instance (a request forwarded to the instance holding the device's socket,
 * its answer, a relayed notification). `RedisStore.cluster()` gives one over Redis pub/sub.
 */
import type { RegistrationRecord } from '../types';
import type { WireError, WireParams, WireResponse } from './wire';

/** What one instance tells the others. `from` names the sender. */
export type ClusterMessage =
  /** a Register, an Update or a takeover on `from`: the registration as it is now */
  | { t: 'reg'; from: string; record: RegistrationRecord }
  /** `from` (re)started: observations passed on through it must be asked for again, since its socket forgot them */
  | { t: 'hello'; from: string }
  /** a registration ended on `from` (de-registered, or expired and claimed there) */
  | { t: 'end'; from: string; id: string; reason: 'deregister' | 'expire' }
  /** please send this request to the device of registration `id` (queued if it sleeps) and answer `rid` */
  | { t: 'req'; from: string; rid: string; id: string; operation: string; params: WireParams; ttl: number; success: string[] }
  /** please start this observation on your socket and relay its notifications to me as `key` */
  | { t: 'obs'; from: string; rid: string; id: string; key: string; operation: string; params: WireParams; ttl: number }
  /** please relay the notifications with this token to me as `key` (an observation whose device moved to you) */
  | { t: 'adopt'; from: string; id: string; key: string; token: string }
  /** stop relaying `key` */
  | { t: 'unobs'; from: string; key: string }
  /** the answer to `rid`: the device's response, an error, or progress of a block-wise write */
  | { t: 'res'; from: string; rid: string; response?: WireResponse; error?: WireError; progress?: [number, number] }
  /** a notification of the relayed observation `key` */
  | { t: 'note'; from: string; key: string; response: WireResponse };

export interface ClusterHandlers {
  /** a message from another instance (never one's own broadcasts) */
  receive(message: ClusterMessage): void;
  /** the connection to the others is lost: answers awaited from them cannot come */
  lost(reason: string): void;
  /** messages may have been missed (the connection to the others was lost and is back): read the store again */
  resync(): void;
  /** something went wrong that nobody asked about (a message that does not parse, a lost connection) */
  warn(message: string): void;
}

/** What an expiry claim found: the registration was claimed (expire it), is gone (someone else did), or is newer than thought (an Update elsewhere: as stored now). */
export type ExpiryClaim = 'claimed' | 'gone' | { newer: RegistrationRecord };

export interface ClusterBus {
  /** Starts hearing the others as `instance`; rejects when a running instance has that name. */
  join(instance: string, handlers: ClusterHandlers): Promise<void>;
  /** To every other instance (gathered per turn of the event loop). */
  broadcast(message: ClusterMessage): void;
  /** To one instance: resolves false when no instance of that name listens. Rejects when the bus is unreachable. */
  send(instance: string, message: ClusterMessage): Promise<boolean>;
  /** Whether an instance of that name listens now. Rejects when the bus is unreachable. */
  isAlive(instance: string): Promise<boolean>;
  /** Removes the stored registration `id` if its last Update is still `updatedAt`: of all instances trying, one gets `claimed`. */
  claimExpiry(id: string, updatedAt: number): Promise<ExpiryClaim>;
  /** Stops hearing and sending; what was broadcast before goes out first. */
  leave(): Promise<void>;
}

const TYPES = new Set(['hello', 'reg', 'end', 'req', 'obs', 'adopt', 'unobs', 'res', 'note']);

/** The messages of a datagram from the bus (one message or a batch), or why it is not one. */
export function parseMessages(text: string): ClusterMessage[] | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const list = Array.isArray(value) ? value : [value];
  for (const item of list) {
    if (typeof item !== 'object' || item === null) return 'not an object';
    const { t, from } = item as { t?: unknown; from?: unknown };
    if (typeof t !== 'string' || !TYPES.has(t)) return `unknown message type ${JSON.stringify(t)}`;
    if (typeof from !== 'string' || from === '') return 'no sender';
  }
  return list as ClusterMessage[];
}
