/**
 * Where the server keeps its registrations so that they survive a restart: in memory only
 * (`MemoryStore`: across a new server in the same process), or in one JSON file (`FileStore`). A
 * server made without a store keeps nothing (`NoStore`).
 *
 * The file is a small JSON object with a format name and version, one registration per line:
 *
 * ```json
 * {"format":"lwm2m-registrations","version":1,"registrations":[
 * {"id":"a1","endpoint":"dev-1","lifetime":86400,...},
 * {"id":"a2","endpoint":"dev-2","lifetime":300,...}
 * ]}
 * ```
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { LwM2MVersion, RegistrationRecord } from './types';

/** Where the server keeps registrations so they survive a restart. All methods must be safe to call in any order; errors are reported, never thrown into the server's request path. */
export interface RegistrationStore {
  /** Everything stored, read once when the server starts listening. A missing store is empty; a corrupt one rejects with StoreError (the server then starts empty and logs it). */
  load(): Promise<RegistrationRecord[]>;
  /** Stores (or replaces, by id) a registration. Returns at once; writing may happen later. */
  save(record: RegistrationRecord): void;
  /** Forgets a registration by id. Returns at once. */
  remove(id: string): void;
  /** Resolves when everything saved/removed so far is durably written. */
  flush(): Promise<void>;
  /** Flushes and releases timers/handles; the store is not used afterwards. */
  close(): Promise<void>;
}

/** A store file that could not be read, was not valid, or could not be written. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    /** the store file (absolute path) */
    readonly file: string,
    /** what went wrong, without the file name */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`Registration store ${file}: ${reason}`, options);
  }
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

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}

/**
 * In memory only: registrations survive a restart of the server within one process (a new server given the same store), not of the process. Records are copied on save and on load, so later
 * changes to an object the caller holds do not change what is stored. After `close()`, `save` and
 * `remove` are ignored.
 */
export class MemoryStore implements RegistrationStore {
  private readonly records = new Map<string, RegistrationRecord>();
  private closed = false;

  async load(): Promise<RegistrationRecord[]> {
    return Array.from(this.records.values(), (record) => ({ ...record }));
  }

  save(record: RegistrationRecord): void {
    if (!this.closed) this.records.set(record.id, { ...record });
  }

  remove(id: string): void {
    if (!this.closed) this.records.delete(id);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface FileStoreOptions {
  /** ms to gather changes before one write (default 200) */
  delay?: number;
  /** called with a StoreError when a write fails (default: process.emitWarning) — the store keeps the data in memory and retries on the next change/flush */
  onError?: (error: StoreError) => void;
}

/** The `format` member of a store file. */
export const STORE_FORMAT = 'lwm2m-registrations';
/** The `version` of the store file format this code reads and writes. */
export const STORE_VERSION = 1;

/** records serialised per `write` call: keeps the event loop free while 100,000 are written */
const CHUNK = 1000;
/** invalid records reported one by one on load; the rest are counted in one more report */
const MAX_RECORD_REPORTS = 10;

let instances = 0;

/** What the first read of the file found. */
type Opened =
  | { kind: 'ok' }
  /** the file exists but is not a store: load rejected; the first write keeps a copy at `${file}.corrupt` */
  | { kind: 'corrupt'; error: StoreError }
  /** the file could not be read (other than missing): nothing is written over it; read again on the next write */
  | { kind: 'unreadable'; error: StoreError };

/**
 * One JSON file, rewritten atomically: the new content goes to a temporary file in the same
 * directory, is fsync'ed, then renamed over the old one (and the directory fsync'ed where the
 * platform allows), so a crash leaves either the old or the new file, never a half-written one.
 * Changes within `delay` ms are written together; at most one write is in flight; a change during
 * a write schedules one more.
 *
 * - The delay is counted from the first unwritten change (not restarted by later ones), so under a
 *   steady stream of changes the file is rewritten about once per `delay` plus the write time.
 * - The in-memory map is the source of truth; the file is read once (by `load()`, or by the first
 *   write if `save`/`remove` come first — changes made before the read win over the file).
 * - A failed write is reported to `onError`; the data stays in memory and is written by the next
 *   change or `flush()`. `flush()` and `close()` never reject.
 * - After `close()`, `save` and `remove` are ignored (the first such call is reported to `onError`).
 * - One process per file: leftover temporary files of any process are deleted on the first read.
 */
export class FileStore implements RegistrationStore {
  /** the store file, as an absolute path */
  readonly file: string;
  private readonly dir: string;
  private readonly temp: string;
  private readonly delay: number;
  private readonly onError: (error: StoreError) => void;

  private readonly records = new Map<string, RegistrationRecord>();
  /** ids removed before the file was read, so that the read does not bring them back */
  private removedBeforeRead: Set<string> | undefined = new Set();
  private opened: Promise<Opened> | undefined;
  private corruptKept = false;

  /** count of save/remove calls; `written` is the count the file reflects */
  private changes = 0;
  private written = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<boolean> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private reportedClosed = false;

  constructor(file: string, options: FileStoreOptions = {}) {
    if (typeof file !== 'string' || file === '') throw new TypeError('FileStore: file must be a non-empty path');
    const delay = options.delay ?? 200;
    if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) throw new TypeError(`FileStore: delay must be a number >= 0, not ${String(delay)}`);
    this.file = path.resolve(file);
    this.dir = path.dirname(this.file);
    this.temp = `${this.file}.${process.pid}-${instances++}.tmp`;
    this.delay = delay;
    this.onError = options.onError ?? ((error) => process.emitWarning(error));
  }

  async load(): Promise<RegistrationRecord[]> {
    const opened = await this.open();
    if (opened.kind !== 'ok') throw opened.error;
    return Array.from(this.records.values(), (record) => ({ ...record }));
  }

  save(record: RegistrationRecord): void {
    if (this.ignoreAfterClose(record?.id)) return;
    this.records.set(record.id, { ...record });
    this.changed();
  }

  remove(id: string): void {
    if (this.ignoreAfterClose(id)) return;
    this.records.delete(id);
    this.removedBeforeRead?.add(id);
    this.changed();
  }

  async flush(): Promise<void> {
    const target = this.changes;
    while (this.written < target) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      // failed: reported to onError; the changes stay pending for the next change or flush
      if (!(await this.write())) return;
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      await this.flush();
      await this.opened;
    })();
    return this.closing;
  }

  private ignoreAfterClose(id: unknown): boolean {
    if (!this.closed) return false;
    if (!this.reportedClosed) {
      this.reportedClosed = true;
      this.report(new StoreError(this.file, `the store is closed: change to registration ${JSON.stringify(id)} ignored`));
    }
    return true;
  }

  private changed(): void {
    this.changes++;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.writing || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, this.delay);
  }

  /** Starts a write now (none may be in flight); resolves true once it is durable, false if it failed (reported). */
  private write(): Promise<boolean> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const before = this.changes;
    const run = this.writeFile()
      .catch((error: unknown) => {
        this.report(new StoreError(this.file, `write failed: ${messageOf(error)}`, { cause: error }));
        return false;
      })
      .then((ok) => {
        this.writing = undefined;
        // changes during the write get one more; after a failure only if something changed meanwhile
        if (this.written < this.changes && (ok || this.changes !== before)) this.schedule();
        return ok;
      });
    this.writing = run;
    return run;
  }

  private async writeFile(): Promise<boolean> {
    const opened = await this.open();
    if (opened.kind === 'unreadable') {
      this.opened = undefined; // read again next time
      this.report(new StoreError(this.file, `not written, the existing file could not be read: ${opened.error.reason}`, { cause: opened.error }));
      return false;
    }
    // snapshot: records are replaced on save, never changed in place, so the references stay valid
    const generation = this.changes;
    const records = Array.from(this.records.values());

    if (opened.kind === 'corrupt' && !this.corruptKept) {
      this.corruptKept = true;
      await fs.copyFile(this.file, `${this.file}.corrupt`).catch((error: unknown) => {
        if (codeOf(error) !== 'ENOENT') this.report(new StoreError(this.file, `could not keep a copy of the invalid file: ${messageOf(error)}`, { cause: error }));
      });
    }

    let handle: fs.FileHandle | undefined;
    try {
      await fs.mkdir(this.dir, { recursive: true });
      handle = await fs.open(this.temp, 'w');
      await writeAll(handle, `{"format":${JSON.stringify(STORE_FORMAT)},"version":${STORE_VERSION},"registrations":[`);
      for (let start = 0; start < records.length; start += CHUNK) {
        const end = Math.min(start + CHUNK, records.length);
        let text = start === 0 ? '\n' : ',\n';
        for (let i = start; i < end; i++) text += (i === start ? '' : ',\n') + JSON.stringify(records[i]);
        await writeAll(handle, text);
      }
      await writeAll(handle, '\n]}\n');
      await handle.sync();
      await handle.close();
      handle = undefined;
      await fs.rename(this.temp, this.file);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await fs.unlink(this.temp).catch(() => undefined);
      this.report(new StoreError(this.file, `could not write ${records.length} registration${records.length === 1 ? '' : 's'} (kept in memory, retried on the next change or flush): ${messageOf(error)}`, { cause: error }));
      return false;
    }
    await syncDirectory(this.dir);
    this.written = generation;
    return true;
  }

  /** The one read of the file (shared by load and the first write), merged under the changes made before it. */
  private open(): Promise<Opened> {
    this.opened ??= this.read();
    return this.opened;
  }

  private async read(): Promise<Opened> {
    await this.removeLeftovers();
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (error) {
      const code = codeOf(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return this.merge([]);
      return { kind: 'unreadable', error: new StoreError(this.file, `could not be read: ${messageOf(error)}`, { cause: error }) };
    }
    let records: RegistrationRecord[];
    try {
      records = this.parse(text);
    } catch (error) {
      if (error instanceof StoreError) return { kind: 'corrupt', error };
      throw error;
    }
    return this.merge(records);
  }

  private merge(records: RegistrationRecord[]): Opened {
    const removed = this.removedBeforeRead;
    this.removedBeforeRead = undefined;
    // the in-memory map only holds what was saved before the read: that is newer than the file
    for (const record of records) if (!this.records.has(record.id) && !removed?.has(record.id)) this.records.set(record.id, record);
    return { kind: 'ok' };
  }

  /** Parses and validates the file; invalid records are skipped and reported. */
  private parse(text: string): RegistrationRecord[] {
    if (text.trim() === '') throw new StoreError(this.file, 'the file is empty (not a registration store)');
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new StoreError(this.file, `not valid JSON (truncated or corrupt?): ${messageOf(error)}`, { cause: error });
    }
    if (!isObject(data) || data.format !== STORE_FORMAT) throw new StoreError(this.file, `not a registration store (expected "format": "${STORE_FORMAT}")`);
    if (data.version !== STORE_VERSION) {
      const newer = typeof data.version === 'number' && data.version > STORE_VERSION;
      throw new StoreError(this.file, newer ? `written in format version ${data.version}, newer than this version reads (${STORE_VERSION})` : `unknown format version ${JSON.stringify(data.version)}`);
    }
    if (!Array.isArray(data.registrations)) throw new StoreError(this.file, '"registrations" is not an array');

    const records: RegistrationRecord[] = [];
    const seen = new Set<string>();
    let invalid = 0;
    data.registrations.forEach((item: unknown, index: number) => {
      const result = checkRecord(item);
      let problem = typeof result === 'string' ? result : undefined;
      if (typeof result !== 'string') {
        if (seen.has(result.id)) problem = 'duplicate id (the first one is kept)';
        else {
          seen.add(result.id);
          records.push(result);
        }
      }
      if (problem === undefined) return;
      invalid++;
      if (invalid <= MAX_RECORD_REPORTS) {
        const id = isObject(item) && typeof item.id === 'string' ? ` (id ${JSON.stringify(item.id)})` : '';
        this.report(new StoreError(this.file, `registration #${index}${id} skipped: ${problem}`));
      }
    });
    if (invalid > MAX_RECORD_REPORTS) this.report(new StoreError(this.file, `${invalid - MAX_RECORD_REPORTS} more invalid registrations skipped (${invalid} in all)`));
    return records;
  }

  /** Deletes temporary files a crashed writer left next to the store file. */
  private async removeLeftovers(): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return; // no directory: nothing left over
    }
    const base = path.basename(this.file);
    const leftover = new RegExp(`^${escapeRegExp(base)}\\.\\d+(?:-\\d+)?\\.tmp$`);
    for (const name of names) {
      if (!leftover.test(name)) continue;
      await fs.unlink(path.join(this.dir, name)).catch((error: unknown) => {
        if (codeOf(error) !== 'ENOENT') this.report(new StoreError(this.file, `could not delete the leftover temporary file ${name}: ${messageOf(error)}`, { cause: error }));
      });
    }
  }

  private report(error: StoreError): void {
    try {
      this.onError(error);
    } catch (thrown) {
      process.emitWarning(thrown instanceof Error ? thrown : new Error(String(thrown)), { type: 'StoreWarning', detail: `onError of ${this.file} threw` });
    }
  }
}

// --- validation of stored records ---

type FieldCheck<K extends keyof RegistrationRecord> = { expected: string; test: (value: unknown) => boolean } & ({} extends Pick<RegistrationRecord, K> ? { optional: true } : { optional?: never });

const VERSIONS: Record<LwM2MVersion, true> = { '1.0': true, '1.1': true, '1.2': true };

const isString = (value: unknown): boolean => typeof value === 'string';
const nonEmpty = (value: unknown): boolean => typeof value === 'string' && value !== '';
const finite = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
const string: { expected: string; test: (value: unknown) => boolean } = { expected: 'a string', test: isString };
const time = { expected: 'a finite number (ms since the epoch)', test: finite };

/** Every field of RegistrationRecord (the type makes this list complete) and what it must hold. */
const FIELDS: { [K in keyof RegistrationRecord]-?: FieldCheck<K> } = {
  id: { expected: 'a non-empty string', test: nonEmpty },
  endpoint: { expected: 'a non-empty string', test: nonEmpty },
  lifetime: { expected: 'a finite number >= 0', test: (value) => finite(value) && (value as number) >= 0 },
  version: { expected: `one of ${Object.keys(VERSIONS).join(', ')}`, test: (value) => typeof value === 'string' && Object.hasOwn(VERSIONS, value) },
  binding: string,
  queueMode: { expected: 'a boolean', test: (value) => typeof value === 'boolean' },
  sms: { ...string, optional: true },
  objectLinks: string,
  address: string,
  port: { expected: 'an integer 0..65535', test: (value) => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535 },
  rootPath: string,
  registeredAt: time,
  updatedAt: time,
  identity: { ...string, optional: true },
};
const FIELD_NAMES = Object.keys(FIELDS) as Array<keyof RegistrationRecord>;

/** The record with exactly the known fields (unknown ones are dropped), or why it is invalid. */
function checkRecord(item: unknown): RegistrationRecord | string {
  if (!isObject(item)) return 'not an object';
  const record: Record<string, unknown> = {};
  for (const name of FIELD_NAMES) {
    const check: { expected: string; test: (value: unknown) => boolean; optional?: boolean } = FIELDS[name];
    const value = Object.hasOwn(item, name) ? item[name] : undefined;
    if (value === undefined) {
      if (check.optional) continue;
      return `field "${name}" is missing`;
    }
    if (!check.test(value)) return `field "${name}" must be ${check.expected}, not ${describe(value)}`;
    record[name] = value;
  }
  return record as unknown as RegistrationRecord;
}

// --- helpers ---

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function codeOf(error: unknown): string | undefined {
  return isObject(error) && typeof error.code === 'string' ? error.code : undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function writeAll(handle: fs.FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

/** Makes the rename durable; not possible on every platform (Windows cannot open a directory), so errors are ignored. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // not supported here
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
