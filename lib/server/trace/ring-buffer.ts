/**
 * A fixed number of the latest items: pushing into a full buffer drops the oldest. Memory is
 * bounded by the capacity whatever the rate; nothing is copied on push.
 */
export class RingBuffer<T> {
  private items: Array<T | undefined>;
  /** where the next item goes */
  private next = 0;
  private count = 0;

  constructor(capacity: number) {
    this.items = new Array<T | undefined>(checkedCapacity(capacity));
  }

  get capacity(): number {
    return this.items.length;
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.items.length === 0) return;
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.items.length;
    if (this.count < this.items.length) this.count++;
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = (this.next - this.count + this.items.length) % Math.max(1, this.items.length);
    for (let i = 0; i < this.count; i++) out.push(this.items[(start + i) % this.items.length] as T);
    return out;
  }

  /** Changes the capacity, keeping the latest items that fit. */
  resize(capacity: number): void {
    const keep = checkedCapacity(capacity);
    const kept = keep === 0 ? [] : this.toArray().slice(-keep);
    this.items = new Array<T | undefined>(keep);
    this.next = 0;
    this.count = 0;
    for (const item of kept) this.push(item);
  }

  clear(): void {
    this.items.fill(undefined);
    this.next = 0;
    this.count = 0;
  }
}

function checkedCapacity(capacity: number): number {
  if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`a ring buffer's capacity is a whole number ≥ 0, not ${capacity}`);
  return capacity;
}
