/**
 * Events about bad input, rate-limited: a flood of garbage datagrams must not become a flood of
 * events (and of messages in a flow). At most `burst` events pass per window; the window starts at
 * the first event after a quiet spell, and when it ends with events held back, one summary tells
 * how many. Memory stays constant whatever arrives: a counter and one timer.
 */
export interface EventLimiterOptions {
  /** events passed per window (default 10) */
  burst?: number;
  /** ms of a window (default 1000) */
  window?: number;
}

export class EventLimiter<T> {
  private readonly burst: number;
  private readonly window: number;
  private passed = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  /**
   * @param pass gets each event let through
   * @param summarize gets the number held back, once per window that held any back
   */
  constructor(
    private readonly pass: (event: T) => void,
    private readonly summarize: (count: number) => void,
    options: EventLimiterOptions = {},
  ) {
    this.burst = Math.max(1, Math.floor(options.burst ?? 10));
    this.window = Math.max(1, options.window ?? 1000);
  }

  /** Passes the event made by `make`, or counts it; `make` is not called for an event held back, so a flood costs no objects. */
  offer(make: () => T): void {
    if (this.closed) return;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.endWindow(), this.window);
      this.timer.unref();
    }
    if (this.passed < this.burst) {
      this.passed++;
      this.pass(make());
    } else {
      this.suppressed++;
    }
  }

  /** Stops: no summary is told after this, and no timer is left behind. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private endWindow(): void {
    this.timer = undefined;
    const count = this.suppressed;
    this.passed = 0;
    this.suppressed = 0;
    if (count > 0) this.summarize(count);
  }
}
