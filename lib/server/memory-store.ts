/**
 * A store in memory only: what it keeps survives a restart of the server within one process (a new
 * server given the same store), not of the process. Records are copied on save and on load, so later
 * changes to an object the caller holds do not change what is stored. After `close()`, changes are
 * ignored.
 */
import type { RegistrationStore } from './store';
import { copyRecord, inQueueOrder, type StoredRecords, type Table } from './store-records';
import type { ObservationRecord, QueuedRequestRecord, RegistrationRecord } from './types';

export class MemoryStore implements RegistrationStore {
  private readonly tables: { [T in Table]: Map<string, StoredRecords[T]> } = { registrations: new Map(), observations: new Map(), queue: new Map() };
  private closed = false;

  async load(): Promise<RegistrationRecord[]> {
    return this.copies('registrations');
  }

  save(record: RegistrationRecord): void {
    this.put('registrations', record);
  }

  remove(id: string): void {
    this.drop('registrations', id);
  }

  async loadObservations(): Promise<ObservationRecord[]> {
    return this.copies('observations');
  }

  saveObservation(record: ObservationRecord): void {
    this.put('observations', record);
  }

  removeObservation(id: string): void {
    this.drop('observations', id);
  }

  async loadQueue(): Promise<QueuedRequestRecord[]> {
    return inQueueOrder(this.copies('queue'));
  }

  saveQueued(record: QueuedRequestRecord): void {
    this.put('queue', record);
  }

  removeQueued(id: string): void {
    this.drop('queue', id);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }

  private copies<T extends Table>(table: T): StoredRecords[T][] {
    return Array.from(this.tables[table].values(), (record) => copyRecord(table, record));
  }

  private put<T extends Table>(table: T, record: StoredRecords[T]): void {
    if (!this.closed) (this.tables[table] as Map<string, StoredRecords[T]>).set(record.id, copyRecord(table, record));
  }

  private drop(table: Table, id: string): void {
    if (!this.closed) this.tables[table].delete(id);
  }
}
