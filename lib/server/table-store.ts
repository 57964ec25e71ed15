/**
 * The part every store shares: the interface's nine per-table methods, each one line over three
 * table operations a store implements once (read a table, put a record, drop one by id).
 */
import type { RegistrationStore } from './store';
import { inQueueOrder, type StoredRecords, type Table } from './store-records';
import type { ObservationRecord, QueuedRequestRecord, RegistrationRecord } from './types';

export abstract class TableStore implements RegistrationStore {
  /** Copies of a table's records, in any order. */
  protected abstract read<T extends Table>(table: T): Promise<StoredRecords[T][]>;
  /** Stores (or replaces, by id) a copy of a record. */
  protected abstract put<T extends Table>(table: T, record: StoredRecords[T]): void;
  protected abstract drop(table: Table, id: string): void;
  abstract flush(): Promise<void>;
  abstract close(): Promise<void>;

  load(): Promise<RegistrationRecord[]> {
    return this.read('registrations');
  }

  save(record: RegistrationRecord): void {
    this.put('registrations', record);
  }

  remove(id: string): void {
    this.drop('registrations', id);
  }

  loadObservations(): Promise<ObservationRecord[]> {
    return this.read('observations');
  }

  saveObservation(record: ObservationRecord): void {
    this.put('observations', record);
  }

  removeObservation(id: string): void {
    this.drop('observations', id);
  }

  /** The queued requests in the order they were queued (by `queuedAt`; ties keep the table's order). */
  async loadQueue(): Promise<QueuedRequestRecord[]> {
    return inQueueOrder(await this.read('queue'));
  }

  saveQueued(record: QueuedRequestRecord): void {
    this.put('queue', record);
  }

  removeQueued(id: string): void {
    this.drop('queue', id);
  }
}
