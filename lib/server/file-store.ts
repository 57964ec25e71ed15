/**
 * A store in one JSON file: a format name and version, then one record per line in three tables.
 *
 * ```json
 * {"format":"lwm2m-registrations","version":2,"registrations":[
 * {"id":"a1","endpoint":"dev-1","lifetime":86400,...}
 * ],"observations":[
 * {"id":"o1","registrationId":"a1","endpoint":"dev-1","paths":["/3303/0/5700"],"token":"8a1f…",...}
 * ],"queue":[
 * {"id":"q1","registrationId":"a1","endpoint":"dev-1","operation":"Write /3/0/14",...}
 * ],"dtls":"AgF3…"}
 * ```
 *
 * `dtls` (version 3, optional) is the DTLS server's sessions, sealed (AES-256-GCM, base64): the
 * file never holds a DTLS key in the clear. Version 1 files (registrations only) and version 2
 * files (no `dtls`) are read as well; the first write makes them version 3.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { StoreError } from './store';
import { RECORD_NAMES, TABLES, checkRecord, copyRecord, isObject, type StoredRecords, type Table } from './store-records';
import { TableStore } from './table-store';

export interface FileStoreOptions {
  /** ms to gather changes before one write (default 200) */
  delay?: number;
  /** called with a StoreError when a write fails (default: process.emitWarning) — the store keeps the data in memory and retries on the next change/flush */
  onError?: (error: StoreError) => void;
}

/** The `format` member of a store file. */
export const STORE_FORMAT = 'lwm2m-registrations';
/** The `version` of the store file format this code writes; it reads this one and every older one. */
export const STORE_VERSION = 3;

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

type Tables = { [T in Table]: Map<string, StoredRecords[T]> };

/**
 * One JSON file, rewritten atomically: the new content goes to a temporary file in the same
 * directory, is fsync'ed, then renamed over the old one (and the directory fsync'ed where the
 * platform allows), so a crash leaves either the old or the new file, never a half-written one.
 * Changes within `delay` ms are written together; at most one write is in flight; a change during
 * a write schedules one more.
 *
 * - The delay is counted from the first unwritten change (not restarted by later ones), so under a
 *   steady stream of changes the file is rewritten about once per `delay` plus the write time.
 * - The in-memory maps are the source of truth; the file is read once (by the first load, or by the
 *   first write if changes come first — changes made before the read win over the file).
 * - A failed write is reported to `onError`; the data stays in memory and is written by the next
 *   change or `flush()`. `flush()` and `close()` never reject.
 * - After `close()`, changes are ignored (the first one is reported to `onError`).
 * - One process per file: leftover temporary files of any process are deleted on the first read.
 */
export class FileStore extends TableStore {
  /** the store file, as an absolute path */
  readonly file: string;
  private readonly dir: string;
  private readonly temp: string;
  private readonly delay: number;
  private readonly onError: (error: StoreError) => void;

  private readonly tables: Tables = { registrations: new Map(), observations: new Map(), queue: new Map() };
  /** ids removed before the file was read, so that the read does not bring them back */
  private removedBeforeRead: { [T in Table]: Set<string> } | undefined = { registrations: new Set(), observations: new Set(), queue: new Set() };
  private opened: Promise<Opened> | undefined;
  /** the sealed DTLS sessions; set before the read, it wins over the file's */
  private dtlsState: Buffer | undefined;
  private dtlsSavedBeforeRead = false;
  private corruptKept = false;

  /** count of changes; `written` is the count the file reflects */
  private changes = 0;
  private written = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<boolean> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private reportedClosed = false;

  constructor(file: string, options: FileStoreOptions = {}) {
    super();
    if (typeof file !== 'string' || file === '') throw new TypeError('FileStore: file must be a non-empty path');
    const delay = options.delay ?? 200;
    if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) throw new TypeError(`FileStore: delay must be a number >= 0, not ${String(delay)}`);
    this.file = path.resolve(file);
    this.dir = path.dirname(this.file);
    this.temp = `${this.file}.${process.pid}-${instances++}.tmp`;
    this.delay = delay;
    this.onError = options.onError ?? ((error) => process.emitWarning(error));
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

  saveDtlsState(sealed: Buffer): void {
    if (this.ignoreAfterClose('dtls', undefined)) return;
    this.dtlsState = Buffer.from(sealed);
    if (this.removedBeforeRead) this.dtlsSavedBeforeRead = true;
    this.changed();
  }

  async loadDtlsState(): Promise<Buffer | undefined> {
    const opened = await this.open();
    if (opened.kind !== 'ok') throw opened.error;
    return this.dtlsState && Buffer.from(this.dtlsState);
  }

  protected async read<T extends Table>(table: T): Promise<StoredRecords[T][]> {
    const opened = await this.open();
    if (opened.kind !== 'ok') throw opened.error;
    return Array.from(this.tables[table].values(), (record) => copyRecord(table, record));
  }

  protected put<T extends Table>(table: T, record: StoredRecords[T]): void {
    if (this.ignoreAfterClose(table, record?.id)) return;
    (this.tables[table] as Map<string, StoredRecords[T]>).set(record.id, copyRecord(table, record));
    this.changed();
  }

  protected drop(table: Table, id: string): void {
    if (this.ignoreAfterClose(table, id)) return;
    this.tables[table].delete(id);
    this.removedBeforeRead?.[table].add(id);
    this.changed();
  }

  private ignoreAfterClose(table: Table | 'dtls', id: unknown): boolean {
    if (!this.closed) return false;
    if (!this.reportedClosed) {
      this.reportedClosed = true;
      const what = table === 'dtls' ? 'the DTLS sessions' : `${RECORD_NAMES[table]} ${JSON.stringify(id)}`;
      this.report(new StoreError(this.file, `the store is closed: change to ${what} ignored`));
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
    const snapshot = TABLES.map((table) => [table, Array.from<StoredRecords[Table]>(this.tables[table].values())] as const);
    const dtls = this.dtlsState;

    if (opened.kind === 'corrupt' && !this.corruptKept) {
      this.corruptKept = true;
      await fs.copyFile(this.file, `${this.file}.corrupt`).catch((error: unknown) => {
        if (codeOf(error) !== 'ENOENT') this.report(new StoreError(this.file, `could not keep a copy of the invalid file: ${messageOf(error)}`, { cause: error }));
      });
    }

    let handle: fs.FileHandle | undefined;
    const count = snapshot.reduce((sum, [, records]) => sum + records.length, 0);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      handle = await fs.open(this.temp, 'w');
      await writeAll(handle, `{"format":${JSON.stringify(STORE_FORMAT)},"version":${STORE_VERSION}`);
      for (const [table, records] of snapshot) {
        await writeAll(handle, `,${JSON.stringify(table)}:[`);
        for (let start = 0; start < records.length; start += CHUNK) {
          const end = Math.min(start + CHUNK, records.length);
          let text = start === 0 ? '\n' : ',\n';
          for (let i = start; i < end; i++) text += (i === start ? '' : ',\n') + JSON.stringify(records[i]);
          await writeAll(handle, text);
        }
        await writeAll(handle, '\n]');
      }
      if (dtls) await writeAll(handle, `,"dtls":${JSON.stringify(dtls.toString('base64'))}`);
      await writeAll(handle, '}\n');
      await handle.sync();
      await handle.close();
      handle = undefined;
      await fs.rename(this.temp, this.file);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await fs.unlink(this.temp).catch(() => undefined);
      this.report(new StoreError(this.file, `could not write ${count} record${count === 1 ? '' : 's'} (kept in memory, retried on the next change or flush): ${messageOf(error)}`, { cause: error }));
      return false;
    }
    await syncDirectory(this.dir);
    this.written = generation;
    return true;
  }

  /** The one read of the file (shared by the loads and the first write), merged under the changes made before it. */
  private open(): Promise<Opened> {
    this.opened ??= this.readFile();
    return this.opened;
  }

  private async readFile(): Promise<Opened> {
    await this.removeLeftovers();
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (error) {
      const code = codeOf(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return this.merge(undefined);
      return { kind: 'unreadable', error: new StoreError(this.file, `could not be read: ${messageOf(error)}`, { cause: error }) };
    }
    let data: Record<string, unknown>;
    try {
      data = this.parse(text);
    } catch (error) {
      if (error instanceof StoreError) return { kind: 'corrupt', error };
      throw error;
    }
    return this.merge(data);
  }

  private merge(data: Record<string, unknown> | undefined): Opened {
    const removed = this.removedBeforeRead;
    this.removedBeforeRead = undefined;
    if (!this.dtlsSavedBeforeRead && typeof data?.dtls === 'string') this.dtlsState = Buffer.from(data.dtls, 'base64');
    for (const table of TABLES) {
      const map = this.tables[table] as Map<string, StoredRecords[Table]>;
      // the in-memory map only holds what was saved before the read: that is newer than the file
      for (const record of data ? this.records(table, data[table]) : []) if (!map.has(record.id) && !removed?.[table].has(record.id)) map.set(record.id, record);
    }
    return { kind: 'ok' };
  }

  /** Parses the file and checks its header and the shape of its tables. */
  private parse(text: string): Record<string, unknown> {
    if (text.trim() === '') throw new StoreError(this.file, 'the file is empty (not a registration store)');
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new StoreError(this.file, `not valid JSON (truncated or corrupt?): ${messageOf(error)}`, { cause: error });
    }
    if (!isObject(data) || data.format !== STORE_FORMAT) throw new StoreError(this.file, `not a registration store (expected "format": "${STORE_FORMAT}")`);
    if (data.version !== 1 && data.version !== 2 && data.version !== STORE_VERSION) {
      const newer = typeof data.version === 'number' && data.version > STORE_VERSION;
      throw new StoreError(this.file, newer ? `written in format version ${data.version}, newer than this version reads (${STORE_VERSION})` : `unknown format version ${JSON.stringify(data.version)}`);
    }
    for (const table of TABLES) {
      // version 1 has registrations only
      if (data.version === 1 && table !== 'registrations') continue;
      if (!Array.isArray(data[table])) throw new StoreError(this.file, `"${table}" is not an array`);
    }
    if (data.dtls !== undefined && (typeof data.dtls !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data.dtls))) throw new StoreError(this.file, '"dtls" is not base64');
    return data;
  }

  /** The valid records of one table; invalid ones are skipped and reported. */
  private records<T extends Table>(table: T, items: unknown): StoredRecords[T][] {
    if (!Array.isArray(items)) return [];
    const records: StoredRecords[T][] = [];
    const seen = new Set<string>();
    let invalid = 0;
    items.forEach((item: unknown, index: number) => {
      const result = checkRecord(table, item);
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
        this.report(new StoreError(this.file, `${RECORD_NAMES[table]} #${index}${id} skipped: ${problem}`));
      }
    });
    if (invalid > MAX_RECORD_REPORTS) this.report(new StoreError(this.file, `${invalid - MAX_RECORD_REPORTS} more invalid ${RECORD_NAMES[table]}s skipped (${invalid} in all)`));
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
