/**
 * What a bootstrap server hands a device: its LwM2M server accounts (Security and Server object
 * instances), what it deletes first, and any other instances it writes.
 */
import type { PskCredential } from '../server/types';

/** Security modes a bootstrap configuration can give (raw public keys and certificates are not issued by bootstrap yet). */
export type SecurityModeName = 'psk' | 'nosec';

/** An in-process LwM2M server: it takes the PSK a bootstrap issues, and knows the URI devices reach it at. */
export interface AccountTarget {
  /** adds or replaces the credential of one endpoint; the endpoint's old key stops working */
  setCredential(credential: PskCredential): void;
  /** `coap[s]://host:port` a device at `deviceAddress` reaches this server at */
  uriFor(deviceAddress: string, secure: boolean): string;
}

/** One LwM2M server account: a Security (0) and a Server (1) instance with the same Short Server ID. */
export interface ServerAccount {
  /** `coap://host:port` or `coaps://host:port`; optional when `server` is given (its address is used) */
  uri?: string;
  /** Short Server ID, 1..65534 (default 1, 2, … in the order of the accounts) */
  shortServerId?: number;
  /** registration lifetime in seconds (default 300) */
  lifetime?: number;
  /** binding, e.g. `U` or `UQ` (default `U`) */
  binding?: string;
  defaultPmin?: number;
  defaultPmax?: number;
  /** `psk` or `nosec`; default: `psk` for a coaps:// URI or when `psk` is given, else `nosec` */
  security?: SecurityModeName;
  /** the PSK for a `psk` account; without it a new one is generated at every bootstrap (identity: the endpoint name) */
  psk?: { identity: string; key: Buffer };
  /** the in-process server this account points at: generated (and given) keys are put into its PSK table */
  server?: AccountTarget;
}

/** The configuration of one endpoint (or of every endpoint, under `*`). */
export interface BootstrapConfig {
  servers: ServerAccount[];
  /** paths deleted before the writes (default `['/0', '/1']`; a client never deletes its bootstrap account) */
  delete?: string[];
  /** other instances to write: `{ '/11/0': { 0: 'internet' } }` (instance path → resource values) */
  writes?: Record<string, Record<number, unknown>>;
  /** Bootstrap-Discover first (default true) */
  discover?: boolean;
  /** Bootstrap-Read of the Server object (1) from LwM2M 1.1 clients (default true) */
  read?: boolean;
}

export type BootstrapOperation = 'discover' | 'read' | 'delete' | 'write' | 'finish' | 'pack';

export interface BootstrapRequestEvent {
  endpoint: string;
  address: string;
  port: number;
  /** the PSK identity of a DTLS session */
  identity?: string;
  /** the Content-Format the client prefers (`pct=`), when it named one */
  preferredFormat?: number;
}

export interface BootstrapOperationEvent {
  endpoint: string;
  operation: BootstrapOperation;
  path: string;
  /** the client's CoAP response code, e.g. `2.02`; `timeout` when it never answered */
  code: string;
  /** what the client answered: the links of a Discover (link format text), the decoded Server object of a Read */
  value?: unknown;
}

export interface BootstrappedAccount {
  uri: string;
  shortServerId: number;
  security: SecurityModeName;
  /** the PSK identity written (never the key) */
  identity?: string;
  /** whether the key was generated in this bootstrap */
  generated: boolean;
}

export interface BootstrapFinishedEvent {
  endpoint: string;
  servers: BootstrappedAccount[];
  /** `sequence` (Discover … Finish) or `pack` (LwM2M 1.2 Bootstrap-Pack-Request) */
  via: 'sequence' | 'pack';
}

export interface BootstrapFailedEvent {
  endpoint: string;
  reason: string;
  /** the operation that failed, when one did */
  operation?: BootstrapOperation;
  path?: string;
  code?: string;
}
