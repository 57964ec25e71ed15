/**
 * The events of an LwM2MServer beyond registrations and values: why an observation ended, and the
 * security and bad-input events (failed DTLS handshakes, dropped datagrams) that used to reach only
 * the log. LwM2MServerEvents maps every event name to its listener, for typed `on`/`off`.
 */
import type { NotifyEvent, Registration, SendEvent } from './server';
import type { TraceEntry } from './trace';
import type { LwM2MValue } from '../content';
import type { LwM2MError } from './errors';

/**
 * Why an observation ended:
 * - `cancelled`: by the server's user (cancelObservation)
 * - `replaced`: a new observation of the same path(s) on the same registration took its place (a
 *   device keeps one observation per path, as Wakaama and Anjay do)
 * - `reregistered`: the device registered anew, which ends its old registration's observations
 * - `deregistered`, `expired`: its registration ended
 * - `error`: the device sent an error response code instead of a notification (e.g. 4.04 when
 *   the observed instance was deleted); `coapCode` says which
 * - `ended`: the device sent a final success response without Observe: it stopped observing
 * - `closed`: the server closed
 */
export type ObservationEndReason = 'cancelled' | 'replaced' | 'reregistered' | 'deregistered' | 'expired' | 'error' | 'ended' | 'closed';

export interface ObservationEndedEvent {
  /** the observation's id (Observation.id) */
  id: string;
  endpoint: string;
  registrationId: string;
  paths: string[];
  composite: boolean;
  reason: ObservationEndReason;
  /** the device's response code, for `error` and `ended` */
  coapCode?: string;
}

export interface HandshakeFailedEvent {
  address: string;
  port: number;
  /** the PSK identity the client named, when it got that far */
  identity?: string;
  reason: string;
  /** the DTLS alert sent (or received from the client), e.g. `unknown_psk_identity`, `bad_record_mac`, `protocol_version` */
  alert?: string;
}

/** What a bad datagram was: unreadable, or a request the server refused as nonsense or unauthorised. */
export type BadDatagramKind = 'malformedCoap' | 'malformedDtls' | 'refused';

export interface BadDatagramEvent {
  address: string;
  port: number;
  kind: BadDatagramKind;
  reason: string;
  /** bytes of the datagram */
  size: number;
  /** whether it came over DTLS (a decrypted message, or a DTLS record) */
  secure: boolean;
}

/** How many events of a kind were held back by the rate limit in the window that just ended. */
export interface EventsSuppressedEvent {
  event: 'badDatagram' | 'handshakeFailed';
  count: number;
  /** ms the window lasted */
  window: number;
}

/**
 * The outcome of a request that was waiting for a sleeping device when the server restarted: its
 * caller is gone, so it is told here. `error` is set when it failed (the device answered with an
 * error, did not wake up in time, or its registration ended); `value` is a Read's decoded answer.
 */
export interface QueuedRequestEvent {
  id: string;
  endpoint: string;
  /** what the request did: `Write /3/0/14` */
  operation: string;
  /** ms since the epoch */
  queuedAt: number;
  code?: string;
  contentFormat?: number;
  payload?: Buffer;
  value?: LwM2MValue;
  error?: LwM2MError;
}

/**
 * A registration changed on another instance sharing the store. Registration events (`register`,
 * `update`, `deregister`, `expire`) come from the instance the device's message reached, once in
 * the whole cluster; every other instance gets this instead, to keep its view of the fleet.
 */
export interface ClusterRegistrationEvent {
  kind: 'register' | 'update' | 'deregister' | 'expire';
  registration: Registration;
  /** the instance the device talks to */
  instance: string;
}

/** A store that could not be read at listen was read later: what it held is served from now on. */
export interface StoreLoadedEvent {
  /** registrations the server holds now */
  registrations: number;
}

/** Listener types by event name. */
export interface LwM2MServerEvents {
  /** `previous`: the registration this one replaced, when the device registered anew */
  register: (registration: Registration, previous?: Registration) => void;
  /** `changes`: what the Update changed (`lifetime`, `binding`, `queueMode`, `sms`, `objects`, `address`) */
  update: (registration: Registration, changes: string[]) => void;
  deregister: (registration: Registration) => void;
  expire: (registration: Registration) => void;
  awake: (registration: Registration) => void;
  sleep: (registration: Registration) => void;
  notify: (event: NotifyEvent) => void;
  send: (event: SendEvent) => void;
  observationEnded: (event: ObservationEndedEvent) => void;
  /** a request queued before a restart was sent (or failed) */
  queuedRequest: (event: QueuedRequestEvent) => void;
  clusterRegistration: (event: ClusterRegistrationEvent) => void;
  storeLoaded: (event: StoreLoadedEvent) => void;
  handshakeFailed: (event: HandshakeFailedEvent) => void;
  badDatagram: (event: BadDatagramEvent) => void;
  eventsSuppressed: (event: EventsSuppressedEvent) => void;
  /** every CoAP message in and out; a listener switches the trace on by itself */
  trace: (entry: TraceEntry) => void;
  error: (error: unknown) => void;
}
