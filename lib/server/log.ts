/**
 * Log lines about bad input, rate-limited: a flood of malformed datagrams must not become a flood
 * of log lines. At most `burst` lines per `window` ms; the rest are counted and summarised.
 */
export type Logger = (level: 'warn' | 'info', message: string) => void;

export class RateLimitedLog {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger | undefined,
    private readonly burst = 10,
    private readonly window = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(message: string): void {
    if (!this.logger) return;
    const now = this.now();
    if (now - this.windowStart >= this.window) {
      if (this.suppressed > 0) this.logger('warn', `${this.suppressed} more lines like these were left out in the last ${Math.round(this.window / 1000)} s`);
      this.windowStart = now;
      this.written = 0;
      this.suppressed = 0;
    }
    if (this.written < this.burst) {
      this.written++;
      this.logger('warn', message);
    } else {
      this.suppressed++;
    }
  }
}
