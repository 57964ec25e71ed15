/**
 * What the server knows about a registered device. Kept small and flat (strings and numbers) so
 * that 100,000 of them fit in little memory and a store can write them as JSON as they are.
 */
import type { LwM2MVersion } from '../protocol';

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
  /** the PSK identity of the DTLS session it registered over; absent for plain CoAP (NoSec) */
  identity?: string;
}

/** A device's PSK: its identity and key, and the one endpoint name it may register as. */
export interface PskCredential {
  identity: string;
  key: Buffer;
  endpoint: string;
}
