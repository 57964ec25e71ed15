/**
 * A store in a Redis server, which several server instances can share. One hash per table, each
 * field a record's id and its value the record's JSON:
 *
 * ```text
 * lwm2m:registrations  a1 → {"id":"a1","endpoint":"dev-1","lifetime":86400,...}
 * lwm2m:observations   o1 → {"id":"o1","registrationId":"a1","token":"8a1f…",...}
 * lwm2m:queue          q1 → {"id":"q1","registrationId":"a1","operation":"Write /3/0/14",...}
 * lwm2m:dtls           node-a → AgF3…   (each instance's DTLS sessions, sealed, base64)
 * ```
 *
 * Changes are gathered per table and id (the latest wins) and sent on the next turn of the event
 * loop as one pipeline (HSET with many fields, HDEL with many ids): 10,000 saves in one tick are
 * one round trip, and nothing the server does waits for Redis.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { ClusterBus } from './cluster/bus';
import { RedisBus } from './cluster/redis-bus';
import { StoreError } from './store';
import { RECORD_NAMES, TABLES, inQueueOrder, isObject, parseRecord, type StoredRecords, type Table } from './store-records';
import type { QueuedRequestRecord } from './types';
import { TableStore } from './table-store';

export interface RedisStoreOptions {
  /** `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS) */
  url: string;
  /** the password, overriding the URL's */
  password?: string;
  /** put before each key (default `lwm2m:`): several fleets can share one Redis */
  prefix?: string;
  /** called with a StoreError for a record skipped on load, a lost or regained connection, a failed write (default: process.emitWarning) */
  onError?: (error: StoreError) => void;
  /** ms to wait for Redis when it is needed and not connected (default 5000): a load then rejects, a flush gives up */
  connectTimeout?: number;
}

/** records per HSET/HDEL and per HSCAN step: no single command keeps Redis busy for long */
const CHUNK = 1000;
/** invalid records reported one by one on load; the rest are counted in one more report */
const MAX_RECORD_REPORTS = 10;
/** how long close() waits for an unreachable Redis before giving up on what is not yet written */
const CLOSE_WAIT = 2000;
/** a command without an answer for this long fails (a hung Redis must not hang flush() or close()) */
const COMMAND_TIMEOUT = 10_000;

/** the field of the DTLS state of a server without an instance name */
const DEFAULT_OWNER = 'default';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A change waiting to be written: the record's JSON, or null for a removal. */
type Changes = { [T in Table]: Map<string, string | null> };

/**
 * - Loads wait for Redis up to `connectTimeout`, then reject with a StoreError; the caller decides
 *   whether to try again. They read with HSCAN, never HGETALL, so a large table does not block
 *   Redis; a value that is not JSON or not a valid record is skipped and reported.
 * - Changes wait in memory, one per table and id, so what waits is bounded by the number of
 *   records, however long Redis is away. One write is in flight at a time; a write that fails puts
 *   its changes back (unless a newer change to the same id came meanwhile).
 * - ioredis reconnects on its own. A lost connection is reported once, its return once, and then
 *   everything changed meanwhile is written. A write without an answer for 10 s counts as a lost
 *   connection: the store connects again. Commands are never queued inside ioredis
 *   (`enableOfflineQueue: false`, `maxRetriesPerRequest: 0`, no resending after a reconnect), so
 *   its queues cannot grow and an old write is never replayed after a newer one.
 * - `flush()` and `close()` never reject: a flush that cannot write reports it (once per outage)
 *   and resolves with the changes still waiting; `close()` waits at most 2 s for an unreachable
 *   Redis, reports what stays unwritten, and ends the connection. After `close()`, changes are
 *   ignored (the first one is reported).
 */
export class RedisStore extends TableStore {
  /** the Redis URL without its password: names the store in errors */
  readonly url: string;
  /** what every key of this store starts with */
  readonly prefix: string;
  private readonly redis: Redis;
  private readonly keys: { [T in Table]: string };
  /** a hash of the sealed DTLS sessions: a field per server instance (each has its own connections) */
  private readonly dtlsKey: string;
  private pendingDtls = new Map<string, string>();
  private readonly connectTimeout: number;
  private readonly onError: (error: StoreError) => void;

  private pending: Changes = emptyChanges();
  /** count of changes; `written` is the count Redis has acknowledged */
  private changes = 0;
  private written = 0;
  private immediate: NodeJS.Immediate | undefined;
  private writing: Promise<boolean> | undefined;
  /** changes in the write in flight */
  private sending = 0;
  /** loads and writes take turns, so that a load sees no half-applied write */
  private turn: Promise<unknown> = Promise.resolve();

  /** the connection was ready and has not been lost since */
  private up = false;
  /** a loss (or an unreachable Redis) was reported and its return not yet */
  private outage = false;
  /** a write failed for another reason than the connection (reported once until a write succeeds) */
  private failing = false;
  private lastError: string | undefined;
  private readonly readyWaiters = new Set<() => void>();

  private closed = false;
  private closing: Promise<void> | undefined;
  private reportedClosed = false;

  constructor(options: RedisStoreOptions) {
    super();
    if (!isObject(options)) throw new TypeError('RedisStore: options must be an object with a url');
    const { url, password, prefix = 'lwm2m:', onError, connectTimeout = 5000 } = options;
    this.url = publicUrl(url);
    if (password !== undefined && typeof password !== 'string') throw new TypeError('RedisStore: password must be a string');
    if (typeof prefix !== 'string') throw new TypeError('RedisStore: prefix must be a string');
    if (onError !== undefined && typeof onError !== 'function') throw new TypeError('RedisStore: onError must be a function');
    if (typeof connectTimeout !== 'number' || !Number.isFinite(connectTimeout) || connectTimeout <= 0) {
      throw new TypeError(`RedisStore: connectTimeout must be a number > 0, not ${String(connectTimeout)}`);
    }
    this.prefix = prefix;
    this.keys = { registrations: `${prefix}registrations`, observations: `${prefix}observations`, queue: `${prefix}queue` };
    this.dtlsKey = `${prefix}dtls`;
    this.connectTimeout = connectTimeout;
    this.onError = onError ?? ((error) => process.emitWarning(error));

    const settings: RedisOptions = {
      lazyConnect: true,
      connectTimeout,
      commandTimeout: COMMAND_TIMEOUT,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // keep trying, at most every 2 s: the store decides what waits meanwhile
      retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    };
    // ioredis prefers the URL's password to the option's: the option goes into the URL
    this.redis = new Redis(password === undefined ? url : withPassword(url, password), settings);
    this.redis.on('error', (error: unknown) => {
      this.lastError = messageOf(error);
    });
    this.redis.on('ready', () => this.connected());
    this.redis.on('close', () => this.disconnected());
  }

  /** The queued requests in the order they were queued (by `queuedAt`, then by id). */
  override async loadQueue(): Promise<QueuedRequestRecord[]> {
    // HSCAN's order is arbitrary: ties in queuedAt go by id
    const records = (await this.read('queue')).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return inQueueOrder(records);
  }

  /** Resolves once Redis acknowledged every change made before the call, or after an attempt that failed (the changes still wait). */
  flush(): Promise<void> {
    return this.flushWithin(this.connectTimeout);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.immediate) clearImmediate(this.immediate);
      this.immediate = undefined;
      await this.flushWithin(Math.min(CLOSE_WAIT, this.connectTimeout));
      const unwritten = this.unwritten();
      if (unwritten > 0) this.report(`closed with ${changeCount(unwritten)} not written: ${this.lastError ?? 'Redis did not answer'}`);
      if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
      else this.redis.disconnect();
    })();
    return this.closing;
  }

  /**
   * A new ioredis client with this store's connection settings (URL, password, timeouts), e.g. to
   * subscribe to channels: pub/sub needs a connection of its own. `override` changes settings of
   * the copy; this store uses no command queue (`enableOfflineQueue: false`), which a subscriber
   * may want back. The caller owns the client and ends it (`quit()`).
   */
  duplicate(override?: Partial<RedisOptions>): Redis {
    return this.redis.duplicate(override);
  }

  /** A bus over this Redis for server instances sharing the store (pub/sub under the same prefix). */
  cluster(): ClusterBus {
    return new RedisBus(this);
  }

  protected drop(table: Table, id: string): void {
    this.change(table, id, null);
  }

  /** Under the instance's name (`owner`; without one, "default"): instances sharing the store keep their sessions apart. */
  saveDtlsState(sealed: Buffer, owner = DEFAULT_OWNER): void {
    if (this.ignoredAfterClose('dtls', owner)) return;
    this.pendingDtls.set(owner, sealed.toString('base64'));
    this.changes++;
    this.schedule();
  }

  async loadDtlsState(owner = DEFAULT_OWNER): Promise<Buffer | undefined> {
    const pending = this.pendingDtls.get(owner);
    if (pending !== undefined) return Buffer.from(pending, 'base64');
    try {
      await this.ready(this.connectTimeout);
    } catch (error) {
      throw new StoreError(this.url, `cannot reach Redis: ${messageOf(error)}`, { cause: error, transient: true });
    }
    let value: string | null;
    try {
      value = await this.inTurn(() => this.redis.hget(this.dtlsKey, owner));
    } catch (error) {
      throw new StoreError(this.url, `${this.dtlsKey} could not be read: ${messageOf(error)}`, { cause: error });
    }
    if (value === null) return undefined;
    if (!BASE64.test(value)) throw new StoreError(this.url, `${this.dtlsKey} field ${JSON.stringify(owner)} is not base64`);
    return Buffer.from(value, 'base64');
  }

  protected put<T extends Table>(table: T, record: StoredRecords[T]): void {
    const id: unknown = isObject(record) ? record.id : undefined;
    if (this.ignoredAfterClose(table, id)) return;
    if (typeof id !== 'string' || id === '') {
      this.report(`${RECORD_NAMES[table]} not saved: its id must be a non-empty string, not ${JSON.stringify(id) ?? String(id)}`);
      return;
    }
    let json: string;
    try {
      // the JSON is the copy: later changes to the caller's object change nothing stored
      json = JSON.stringify(record);
    } catch (error) {
      this.report(`${RECORD_NAMES[table]} ${JSON.stringify(id)} not saved: ${messageOf(error)}`, error);
      return;
    }
    this.change(table, id, json);
  }

  private change(table: Table, id: string, json: string | null): void {
    if (this.ignoredAfterClose(table, id)) return;
    this.pending[table].set(String(id), json);
    this.changes++;
    this.schedule();
  }

  private ignoredAfterClose(table: Table | 'dtls', id: unknown): boolean {
    if (!this.closed) return false;
    if (!this.reportedClosed) {
      this.reportedClosed = true;
      const what = table === 'dtls' ? `the DTLS sessions of ${JSON.stringify(id)}` : `${RECORD_NAMES[table]} ${JSON.stringify(id) ?? String(id)}`;
      this.report(`the store is closed: change to ${what} ignored`);
    }
    return true;
  }

  /** A write on the next turn of the event loop, unless one is due or running (it schedules the next) or Redis is known to be away (its return does). */
  private schedule(): void {
    if (this.immediate || this.writing || this.closed || this.outage) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      if (!this.outage) void this.write(this.connectTimeout);
    });
  }

  private async flushWithin(wait: number): Promise<void> {
    const target = this.changes;
    while (this.written < target) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      if (!(await this.write(wait))) return;
    }
  }

  /** Starts a write (none may be running); resolves true once Redis acknowledged it, false if it failed (its changes wait again). */
  private write(wait: number): Promise<boolean> {
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    const run = this.inTurn(() => this.send(wait)).then((ok) => {
      this.writing = undefined;
      if (ok && this.unwritten() > 0) this.schedule();
      return ok;
    });
    this.writing = run;
    return run;
  }

  private async send(wait: number): Promise<boolean> {
    try {
      await this.ready(wait);
    } catch (error) {
      if (!this.outage) {
        this.outage = true;
        this.report(`cannot reach Redis: ${messageOf(error)}; ${changeCount(this.unwritten())} wait until it is back`, error);
      }
      return false;
    }
    const generation = this.changes;
    const batch = this.pending;
    this.pending = emptyChanges();
    const dtls = this.pendingDtls;
    this.pendingDtls = new Map();
    this.sending = TABLES.reduce((sum, table) => sum + batch[table].size, 0) + dtls.size;
    const pipeline = this.redis.pipeline();
    const parts: Array<{ table: Table | 'dtls'; ids: string[] }> = [];
    if (dtls.size > 0) {
      pipeline.hset(this.dtlsKey, ...[...dtls].flat());
      parts.push({ table: 'dtls', ids: [...dtls.keys()] });
    }
    for (const table of TABLES) {
      const saved: string[] = [];
      const removed: string[] = [];
      for (const [id, json] of batch[table]) (json === null ? removed : saved).push(id);
      for (const ids of chunks(saved)) {
        pipeline.hset(this.keys[table], ...ids.flatMap((id) => [id, batch[table].get(id) as string]));
        parts.push({ table, ids });
      }
      for (const ids of chunks(removed)) {
        pipeline.hdel(this.keys[table], ...ids);
        parts.push({ table, ids });
      }
    }
    if (parts.length === 0) {
      this.written = generation;
      return true;
    }

    let results: Array<[Error | null, unknown]> | null;
    let thrown: unknown;
    try {
      results = await pipeline.exec();
    } catch (error) {
      results = null;
      thrown = error;
    }
    this.sending = 0;
    let failed = 0;
    let problem: unknown;
    parts.forEach((part, index) => {
      const error = results ? results[index]?.[0] : (thrown ?? new Error('no answer'));
      if (!error) return;
      problem ??= error;
      for (const id of part.ids) {
        // a newer change to the same id wins over the one that failed
        if (part.table === 'dtls') {
          if (!this.pendingDtls.has(id)) this.pendingDtls.set(id, dtls.get(id)!);
        } else if (!this.pending[part.table].has(id)) this.pending[part.table].set(id, batch[part.table].get(id) ?? null);
        failed++;
      }
    });
    if (failed === 0) {
      this.written = generation;
      this.failing = false;
      return true;
    }
    if (this.up && messageOf(problem).startsWith('Command timed out')) {
      // a Redis that does not answer is treated as lost: a new connection drops the unanswered
      // commands, which would otherwise pile up in ioredis's queue (disconnected() reports it)
      this.lastError = `no answer within ${COMMAND_TIMEOUT} ms`;
      this.redis.disconnect(true);
      return false;
    }
    // a lost connection was reported by disconnected(); anything else once until a write succeeds
    if (this.up && !this.failing) {
      this.failing = true;
      this.report(`write failed: ${messageOf(problem)}; ${changeCount(failed)} wait for the next attempt`, problem);
    }
    return false;
  }

  protected async read<T extends Table>(table: T): Promise<StoredRecords[T][]> {
    try {
      await this.ready(this.connectTimeout);
    } catch (error) {
      // the rejection is the report of this outage; its end will be reported
      this.outage = true;
      throw new StoreError(this.url, `cannot reach Redis: ${messageOf(error)}`, { cause: error, transient: true });
    }
    return this.inTurn(() => this.scan(table));
  }

  /** Every valid record of a table, with the changes not yet written applied on top. */
  private async scan<T extends Table>(table: T): Promise<StoredRecords[T][]> {
    const key = this.keys[table];
    const values = new Map<string, string>();
    try {
      const type = await this.redis.type(key);
      if (type !== 'hash' && type !== 'none') {
        this.report(`${key} is a ${type}, not a hash: no ${RECORD_NAMES[table]} can be read from it (nor written to it)`);
      } else {
        let cursor = '0';
        do {
          const [next, flat] = await this.redis.hscan(key, cursor, 'COUNT', CHUNK);
          // HSCAN may return a field twice (while Redis resizes the hash): the map keeps one
          for (let index = 0; index + 1 < flat.length; index += 2) values.set(flat[index], flat[index + 1]);
          cursor = next;
        } while (cursor !== '0');
      }
    } catch (error) {
      throw new StoreError(this.url, `${key} could not be read: ${messageOf(error)}`, { cause: error });
    }

    const records = new Map<string, StoredRecords[T]>();
    const skipped = new Skipped(table, (reason) => this.report(reason));
    for (const [id, json] of values) {
      const record = parseRecord(table, id, json);
      if (typeof record === 'string') skipped.add(id, record);
      else records.set(id, record);
    }
    for (const [id, json] of this.pending[table]) {
      const record = json === null ? null : parseRecord(table, id, json);
      if (record === null) records.delete(id);
      else if (typeof record === 'string') {
        records.delete(id);
        skipped.add(id, `${record} (not yet written)`);
      } else records.set(id, record);
    }
    skipped.done();
    return Array.from(records.values());
  }

  /** Runs `task` after every load and write started before it. */
  private inTurn<R>(task: () => Promise<R>): Promise<R> {
    const run = this.turn.then(task);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** Resolves when the connection is ready; rejects after `wait` ms (naming the last connection error) or when the store is closed. */
  private ready(wait: number): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve();
    if (this.redis.status === 'end') return Promise.reject(new Error('the connection is closed'));
    if (this.redis.status === 'wait') this.redis.connect().catch(() => undefined); // failures arrive as 'error' events
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.readyWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.readyWaiters.delete(done);
        reject(new Error(`${this.lastError ?? 'no connection'} (not ready within ${wait} ms)`));
      }, wait);
      this.readyWaiters.add(done);
    });
  }

  private connected(): void {
    this.up = true;
    this.lastError = undefined;
    if (this.outage) {
      this.outage = false;
      this.report(`Redis is reachable again: ${changeCount(this.unwritten())} waiting are written now`);
    }
    for (const waiter of [...this.readyWaiters]) waiter();
    if (this.unwritten() > 0 && !this.closed) this.schedule();
  }

  private disconnected(): void {
    if (!this.up) return;
    this.up = false;
    if (this.closed || this.outage) return;
    this.outage = true;
    this.report(`lost the connection to Redis: ${this.lastError ?? 'closed by the server'}; changes wait in memory until it is back`);
  }

  /** changes waiting, or in a write not yet acknowledged */
  private unwritten(): number {
    return TABLES.reduce((sum, table) => sum + this.pending[table].size, 0) + this.pendingDtls.size + this.sending;
  }

  private report(reason: string, cause?: unknown): void {
    const error = new StoreError(this.url, reason, cause === undefined ? undefined : { cause });
    try {
      this.onError(error);
    } catch (thrown) {
      process.emitWarning(thrown instanceof Error ? thrown : new Error(String(thrown)), { type: 'StoreWarning', detail: `onError of ${this.url} threw` });
    }
  }
}

/** Reports invalid records of one load: the first few one by one, then how many more. */
class Skipped {
  private count = 0;
  constructor(
    private readonly table: Table,
    private readonly report: (reason: string) => void,
  ) {}

  add(id: string, problem: string): void {
    this.count++;
    if (this.count <= MAX_RECORD_REPORTS) this.report(`${RECORD_NAMES[this.table]} ${JSON.stringify(id)} skipped: ${problem}`);
  }

  done(): void {
    if (this.count > MAX_RECORD_REPORTS) this.report(`${this.count - MAX_RECORD_REPORTS} more invalid ${RECORD_NAMES[this.table]}s skipped (${this.count} in all)`);
  }
}

/** The URL as errors show it: checked, and without its password. */
/** A URL as it may be shown: a password in it replaced by `***`. */
export function withoutPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
}

function publicUrl(url: unknown): string {
  if (typeof url !== 'string' || url === '') throw new TypeError('RedisStore: url must be a redis:// URL');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`RedisStore: url is not a URL: ${JSON.stringify(withoutPassword(url))}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new TypeError(`RedisStore: url must start with redis:// or rediss://, not ${parsed.protocol}//`);
  parsed.password = '';
  return parsed.href;
}

function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.href;
}

function emptyChanges(): Changes {
  return { registrations: new Map(), observations: new Map(), queue: new Map() };
}

function* chunks(ids: string[]): Generator<string[]> {
  for (let start = 0; start < ids.length; start += CHUNK) yield ids.slice(start, start + CHUNK);
}

function changeCount(count: number): string {
  return `${count} change${count === 1 ? '' : 's'}`;
}

function messageOf(error: unknown): string {
  if (error instanceof Error && error.message) return error.message;
  // a refused connection to a name with several addresses is an AggregateError without a message
  if (isObject(error) && typeof error.code === 'string') return error.code;
  return String(error);
}
