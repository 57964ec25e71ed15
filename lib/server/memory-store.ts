/**
 * A store in memory only: what it keeps survives a restart of the server within one process (a new
 * server given the same store), not of the process. Records are copied on save and on load, so later
 * changes to an object the caller holds do not change what is stored. After `close()`, changes are
 * ignored.
 */
import { copyRecord, type StoredRecords, type Table } from './store-records';
import { TableStore } from './table-store';

export class MemoryStore extends TableStore {
  private readonly tables: { [T in Table]: Map<string, StoredRecords[T]> } = { registrations: new Map(), observations: new Map(), queue: new Map() };
  private closed = false;
  private dtlsState: Buffer | undefined;

  saveDtlsState(sealed: Buffer): void {
    if (!this.closed) this.dtlsState = Buffer.from(sealed);
  }

  async loadDtlsState(): Promise<Buffer | undefined> {
    return this.dtlsState && Buffer.from(this.dtlsState);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }

  protected async read<T extends Table>(table: T): Promise<StoredRecords[T][]> {
    return Array.from(this.tables[table].values(), (record) => copyRecord(table, record));
  }

  protected put<T extends Table>(table: T, record: StoredRecords[T]): void {
    if (!this.closed) (this.tables[table] as Map<string, StoredRecords[T]>).set(record.id, copyRecord(table, record));
  }

  protected drop(table: Table, id: string): void {
    if (!this.closed) this.tables[table].delete(id);
  }
}
