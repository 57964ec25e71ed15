/**
 * Where the server keeps what must survive a restart of its process: registrations, the
 * observations in force and the requests waiting for sleeping devices. Implementations:
 * `NoStore` (keeps nothing), `MemoryStore` (across a new server in the same process), `FileStore`
 * (one JSON file), `RedisStore` (a Redis server, shared by several instances).
 */
import type { ClusterBus } from './cluster/bus';
import type { ObservationRecord, QueuedRequestRecord, RegistrationRecord } from './types';

/**
 * What a server keeps so that it survives a restart. Reads happen once, when the server starts
 * listening; writes return at once and may happen later (`flush` waits for them). All methods are
 * safe to call in any order; errors are reported, never thrown into the server's request path.
 */
export interface RegistrationStore {
  /** The stored registrations. A missing store is empty; a corrupt one rejects with StoreError (the server then starts empty and logs it). */
  load(): Promise<RegistrationRecord[]>;
  /** Stores (or replaces, by id) a registration. */
  save(record: RegistrationRecord): void;
  /** Forgets a registration by id (its observations and queued requests are removed by the server, one by one). */
  remove(id: string): void;

  /** The stored observations. */
  loadObservations(): Promise<ObservationRecord[]>;
  /** Stores (or replaces, by id) an observation. */
  saveObservation(record: ObservationRecord): void;
  removeObservation(id: string): void;

  /** The stored requests waiting for sleeping devices, in the order they were queued (by `queuedAt`). */
  loadQueue(): Promise<QueuedRequestRecord[]>;
  /** Stores (or replaces, by id) a queued request. */
  saveQueued(record: QueuedRequestRecord): void;
  removeQueued(id: string): void;

  /** Resolves when everything saved/removed so far is durably written. */
  flush(): Promise<void>;
  /** Flushes and releases timers/handles; the store is not used afterwards. */
  close(): Promise<void>;

  /**
   * The DTLS server's sessions, sealed (AES-256-GCM under a key from `dtls.sessionSecret`: the
   * store never sees them in the clear), so that a restarted server goes on with them without
   * handshakes. Optional: a store without these keeps no DTLS sessions. `save` replaces what was
   * saved before; `load` resolves undefined when nothing was. `owner` is the server's instance
   * name, when several share the store (each has connections of its own); absent: the only server.
   */
  saveDtlsState?(sealed: Buffer, owner?: string): void;
  loadDtlsState?(owner?: string): Promise<Buffer | undefined>;

  /** A store several server instances can share gives them a bus to talk over (a server named `instance` joins it). */
  cluster?(): ClusterBus;
}

/** A store that could not be read, was not valid, or could not be written. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    /** the store: a file (absolute path), or a Redis URL without its password */
    readonly file: string,
    /** what went wrong, without the store's name */
    readonly reason: string,
    options?: { cause?: unknown; transient?: boolean },
  ) {
    super(`Registration store ${file}: ${reason}`, options);
    this.transient = options?.transient === true;
  }

  /** the store could not be reached (a server that is down): it may come back by itself, so trying again makes sense */
  readonly transient: boolean;
}

/**
 * What a server made without a store uses: nothing is kept, since nothing could read it back. The
 * server's own maps are the registrations; a copy of each (a MemoryStore) would only double the
 * heap per registration.
 */
export class NoStore implements RegistrationStore {
  async load(): Promise<RegistrationRecord[]> {
    return [];
  }

  save(): void {}

  remove(): void {}

  async loadObservations(): Promise<ObservationRecord[]> {
    return [];
  }

  saveObservation(): void {}

  removeObservation(): void {}

  async loadQueue(): Promise<QueuedRequestRecord[]> {
    return [];
  }

  saveQueued(): void {}

  removeQueued(): void {}

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}
