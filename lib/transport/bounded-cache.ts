/**
 * A map whose entries expire after `ttl` ms and which never holds more than `maxEntries`: the
 * memory bound for everything a CoAP endpoint remembers about other peers. Entries are also kept
 * in a first-in-first-out list, so expiry and eviction only look at its front; no timers are needed.
 *
 * Why not rely on a Map's insertion order: V8 leaves a hole for each entry deleted from the front
 * of a Map, and iterating from the front walks every hole, so a full cache would cost time in
 * proportion to its size on every insert. The list here is an array with a moving head.
 */
interface Entry<V> {
  at: number;
  value: V;
  /** which list slot is this entry's current one (a re-set entry has a newer slot) */
  slot: number;
}

export class BoundedCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  /** keys in insertion order from `head`; slots whose entry has moved or gone are skipped */
  private order: string[] = [];
  private head = 0;
  /** the slot number of order[0] (slots count up forever; the array is compacted now and then) */
  private base = 0;

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

  /** Stores a value; re-setting a key makes it fresh again (it moves to the back). */
  set(key: string, value: V): void {
    this.entries.delete(key);
    this.sweep();
    while (this.entries.size >= this.maxEntries && this.dropOldest());
    // re-set and deleted keys leave stale slots behind a long-lived front entry: rebuild before they pile up
    if (this.order.length - this.head > 2 * this.maxEntries + 1024) this.rebuild();
    this.entries.set(key, { at: this.now(), value, slot: this.base + this.order.length });
    this.order.push(key);
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
    this.order = [];
    this.head = 0;
    this.base = 0;
  }

  /** The live entry at the front of the list (its key is order[head]), stale slots skipped; undefined when empty. */
  private front(): Entry<V> | undefined {
    while (this.head < this.order.length) {
      const entry = this.entries.get(this.order[this.head]!);
      if (entry && entry.slot === this.base + this.head) return entry;
      this.advance();
    }
    return undefined;
  }

  private advance(): void {
    this.head++;
    // compact once the consumed part is large and most of the array
    if (this.head >= 1024 && this.head * 2 >= this.order.length) {
      this.order = this.order.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
  }

  private dropOldest(): boolean {
    if (!this.front()) return false;
    this.entries.delete(this.order[this.head]!);
    this.advance();
    return true;
  }

  /** A fresh list of the live keys; a Map iterates in insertion order, which is slot order. */
  private rebuild(): void {
    this.order = [...this.entries.keys()];
    this.order.forEach((key, index) => (this.entries.get(key)!.slot = index));
    this.head = 0;
    this.base = 0;
  }

  private sweep(): void {
    const limit = this.now() - this.ttl;
    for (let oldest = this.front(); oldest && oldest.at < limit; oldest = this.front()) {
      this.entries.delete(this.order[this.head]!);
      this.advance();
    }
  }
}
