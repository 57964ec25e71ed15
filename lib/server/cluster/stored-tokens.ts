/**
 * The stored observations by token, read from the store at most once per `maxAge` ms however
 * often it is asked: a notification from an address no registration has (a device whose load
 * balancer session moved it to this instance, from a new port) is looked up here, and such
 * notifications must not make each its own read of the whole table.
 */
import type { ObservationRecord } from '../types';

export class StoredTokens {
  private snapshot: { at: number; byToken: Map<string, ObservationRecord> } | undefined;
  private loading: Promise<Map<string, ObservationRecord>> | undefined;

  constructor(
    private readonly load: () => Promise<ObservationRecord[]>,
    private readonly maxAge = 2000,
  ) {}

  /** The stored observation with this token, if any. Rejects when the store cannot be read. */
  async find(token: Buffer): Promise<ObservationRecord | undefined> {
    return (await this.current()).get(token.toString('hex'));
  }

  private current(): Promise<Map<string, ObservationRecord>> {
    if (this.snapshot && Date.now() - this.snapshot.at < this.maxAge) return Promise.resolve(this.snapshot.byToken);
    this.loading ??= this.load()
      .then((records) => {
        const byToken = new Map(records.map((record) => [record.token, record]));
        this.snapshot = { at: Date.now(), byToken };
        return byToken;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}
