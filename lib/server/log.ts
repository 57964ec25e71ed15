/**
 * Log lines about bad input, rate-limited: a flood of malformed datagrams must not become a flood
 * of log lines. At most `burst` lines per `window` ms; the rest are counted and summarised.
 */
export type LogLevel = 'warn' | 'info';
export type LogFunction = (level: LogLevel, message: string) => void;

/** A console-like logger: `console`, pino, winston or a Node-RED node all have these methods. */
export interface LoggerObject {
  warn?(message: string): void;
  info?(message: string): void;
  log?(message: string): void;
}

/** Where log lines go: a function `(level, message)`, or an object with `warn`/`info` (or `log`) methods. */
export type Logger = LogFunction | LoggerObject;

/**
 * The logger option as a function, checked when the server is made: a wrong logger must fail
 * there, with a clear message, not later inside a socket handler.
 */
export function toLogFunction(logger: unknown): LogFunction | undefined {
  if (logger === undefined || logger === null) return undefined;
  if (typeof logger === 'function') return logger as LogFunction;
  if (typeof logger === 'object') {
    const target = logger as Record<string, unknown>;
    const pick = (level: LogLevel) => [target[level], target.log].find((method) => typeof method === 'function') as ((message: string) => void) | undefined;
    if (pick('warn') || pick('info')) {
      return (level, message) => pick(level)?.call(logger, message);
    }
  }
  throw new TypeError('logger must be a function (level, message) or an object with warn/info (or log) methods, such as console');
}

export class RateLimitedLog {
  private windowStart = 0;
  private written = 0;
  private suppressed = 0;
  private readonly logger: LogFunction | undefined;

  constructor(
    logger: Logger | undefined,
    private readonly burst = 10,
    private readonly window = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.logger = toLogFunction(logger);
  }

  warn(message: string): void {
    if (!this.logger) return;
    const now = this.now();
    if (now - this.windowStart >= this.window) {
      if (this.suppressed > 0) this.write(`${this.suppressed} more lines like these were left out in the last ${Math.round(this.window / 1000)} s`);
      this.windowStart = now;
      this.written = 0;
      this.suppressed = 0;
    }
    if (this.written < this.burst) {
      this.written++;
      this.write(message);
    } else {
      this.suppressed++;
    }
  }

  /** The user's logger runs inside socket handlers: whatever it throws must not take the server down. */
  private write(message: string): void {
    try {
      this.logger!('warn', message);
    } catch {
      // a logger that fails loses its line, nothing more
    }
  }
}
