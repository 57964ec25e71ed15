/**
 * The anti-replay window of RFC 6347 §4.1.2.6: a record whose sequence number was already seen, or
 * is older than the 64 numbers before the highest seen, is dropped. Marked only after the record
 * authenticated, so forged records cannot move the window.
 */
const WINDOW = 64;

export class ReplayWindow {
  private highest = -1;
  /** bit i set: highest - i was seen */
  private seen = 0n;

  /** The highest sequence number marked so far (-1 before any). */
  get newest(): number {
    return this.highest;
  }

  /** True when a record with this sequence number may be processed. */
  fresh(sequence: number): boolean {
    if (sequence > this.highest) return true;
    const offset = this.highest - sequence;
    if (offset >= WINDOW) return false;
    return (this.seen & (1n << BigInt(offset))) === 0n;
  }

  /** What the window has seen, to carry it across a restart (seen: bit i is highest - i). */
  state(): { newest: number; seen: bigint } {
    return { newest: this.highest, seen: this.seen };
  }

  /** Takes up a state() of an earlier window: a record seen before the restart stays refused. */
  restore(state: { newest: number; seen: bigint }): void {
    this.highest = state.newest;
    this.seen = state.seen & ((1n << BigInt(WINDOW)) - 1n);
  }

  mark(sequence: number): void {
    if (sequence > this.highest) {
      const shift = sequence - this.highest;
      this.seen = shift >= WINDOW ? 1n : ((this.seen << BigInt(shift)) | 1n) & ((1n << BigInt(WINDOW)) - 1n);
      this.highest = sequence;
    } else {
      this.seen |= 1n << BigInt(this.highest - sequence);
    }
  }
}
