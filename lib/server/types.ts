/**
 * What the server knows about a registered device. Kept small and flat (strings and numbers) so
 * that 100,000 of them fit in little memory and a store can write them as JSON as they are.
 */
import type { LwM2MVersion } from '../protocol';
import type { Method } from '../transport/message';

export type { LwM2MVersion };

export interface RegistrationRecord {
  /** the server-assigned registration id: the last segment of the location `rd/<id>` */
  id: string;
  /** the endpoint client name (`ep=`) */
  endpoint: string;
  /** registration lifetime in seconds (`lt=`, default 86400) */
  lifetime: number;
  /** LwM2M version the client speaks (`lwm2m=`, default 1.0) */
  version: LwM2MVersion;
  /** binding as registered (`b=`, default `U`), e.g. `U`, `UQ` (1.0), `N`, `T` */
  binding: string;
  /** queue mode: `Q` parameter (1.1+) or a `Q` in the 1.0 binding */
  queueMode: boolean;
  /** MSISDN (`sms=`), when given */
  sms?: string;
  /** the object list as sent (CoRE link format), so nothing of it is lost */
  objectLinks: string;
  /** the device's address and port: where downlink requests go (updated by every Update) */
  address: string;
  port: number;
  /** the alternate root path (`</lwm2m>;rt="oma.lwm2m"`), without trailing slash; '' for the default `/` */
  rootPath: string;
  /** ms since the epoch */
  registeredAt: number;
  /** ms since the epoch of the last Register or Update */
  updatedAt: number;
  /** the identity of the DTLS session it registered over (the PSK identity, or the endpoint of a certificate or raw public key); absent for plain CoAP (NoSec) */
  identity?: string;
  /** how that session authenticated, when not with a PSK */
  authentication?: 'rawPublicKey' | 'certificate';
  /** the server instance whose socket the device talks to (several instances sharing a store); absent with one instance */
  instance?: string;
}

/** A device's raw public key (Security Mode 1): PEM (a public key, or a private key it is taken from) or SubjectPublicKeyInfo DER, and the one endpoint it may register as. */
export interface RawPublicKeyCredential {
  endpoint: string;
  publicKey: string | Buffer;
}

/** A device's PSK: its identity and key, and the one endpoint name it may register as. */
export interface PskCredential {
  identity: string;
  key: Buffer;
  endpoint: string;
}

/**
 * A CoAP request as data (what a store keeps of a request to repeat or send later): the method, the
 * Uri-Path segments (the device's root path included), Uri-Query, the formats and the body.
 */
export interface StoredRequest {
  method: Method;
  path: string[];
  query?: string[];
  accept?: number;
  contentFormat?: number;
  /** the body, base64 */
  payload?: string;
}

/**
 * An observation in force, as a store keeps it: enough to match the device's next notification
 * after a restart (the token), to decode it (paths, composite) and to cancel it actively (the
 * request that started it).
 */
export interface ObservationRecord {
  id: string;
  registrationId: string;
  endpoint: string;
  /** LwM2M paths, e.g. `/3303/0/5700` */
  paths: string[];
  composite: boolean;
  /** the observation's CoAP token, hex */
  token: string;
  /** the GET or FETCH that started it (with Observe=0) */
  request: StoredRequest;
  /** the first response's content format and body (base64): the observation's first value */
  first: { contentFormat?: number; payload: string };
  /** ms since the epoch */
  startedAt: number;
  /** the server instance whose listeners hear its notifications (several instances sharing a store) */
  instance?: string;
}

/**
 * A request waiting for a sleeping queue-mode device, as a store keeps it. After a restart its
 * caller is gone: the server sends it when the device wakes and reports the outcome as a
 * `queuedRequest` event.
 */
export interface QueuedRequestRecord {
  id: string;
  registrationId: string;
  endpoint: string;
  /** what the request does, for messages: `Write /3/0/14` */
  operation: string;
  request: StoredRequest;
  /** the response codes that mean success */
  success: string[];
  /** ms since the epoch */
  queuedAt: number;
  /** ms since the epoch: after this it fails (the device did not wake in time) */
  expiresAt: number;
  /** the server instance that queued it (several instances sharing a store) */
  instance?: string;
}
