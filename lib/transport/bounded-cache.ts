/**
 * A map whose entries expire after `ttl` ms and which never holds more than `maxEntries`: the
 * memory bound for everything a CoAP endpoint remembers about other peers. Insertion order is
 * age order, so expiry and eviction only ever look at the front; no timers are needed.
 */
export class BoundedCache<V> {
  private readonly entries = new Map<string, { at: number; value: V }>();

  constructor(
    private readonly maxEntries: number,
    private readonly ttl: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.now() - entry.at > this.ttl) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Stores a value; re-setting a key moves it to the back (it is fresh again). */
  set(key: string, value: V): void {
    this.entries.delete(key);
    this.sweep();
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { at: this.now(), value });
  }

  /** Replaces the value without refreshing its age. */
  update(key: string, value: V): void {
    const entry = this.entries.get(key);
    if (entry) entry.value = value;
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  private sweep(): void {
    const limit = this.now() - this.ttl;
    for (const [key, entry] of this.entries) {
      if (entry.at >= limit) break;
      this.entries.delete(key);
    }
  }
}
