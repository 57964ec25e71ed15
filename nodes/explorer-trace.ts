/**
 * The explorer's trace panel, live: while the server keeps a CoAP trace (its buffer size above 0),
 * each new entry goes to the editors over RED.comms, in batches (at most one publish per
 * BATCH_INTERVAL ms and BATCH_LIMIT entries each), so a busy fleet cannot flood the editor's socket.
 * With the trace off nothing listens: a `trace` listener would switch tracing on by itself.
 */
import type { LwM2MServer, TraceEntry } from '../lib';
import type { Comms } from './explorer-feed';

const BATCH_INTERVAL = 250;
const BATCH_LIMIT = 500;

export class TraceFeed {
  private pending: TraceEntry[] = [];
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private following = false;
  private readonly onEntry = (entry: TraceEntry) => this.queue(entry);

  constructor(
    private readonly server: LwM2MServer,
    private readonly topic: string,
    private readonly comms: Comms | undefined,
  ) {
    this.follow();
  }

  /** Listens while the server keeps a trace; call after its size changed. */
  follow(): void {
    const wanted = this.comms !== undefined && this.server.trace.size > 0;
    if (wanted === this.following) return;
    this.following = wanted;
    if (wanted) {
      this.server.on('trace', this.onEntry);
      return;
    }
    this.server.off('trace', this.onEntry);
    // what was traced while on still goes out, now
    if (this.timer) {
      clearTimeout(this.timer);
      this.flush();
    }
  }

  close(): void {
    if (this.following) this.server.off('trace', this.onEntry);
    this.following = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = [];
  }

  private queue(entry: TraceEntry): void {
    if (this.pending.length < BATCH_LIMIT) this.pending.push(entry);
    else this.dropped++;
    this.timer ??= setTimeout(() => this.flush(), BATCH_INTERVAL);
  }

  private flush(): void {
    this.timer = undefined;
    const entries = this.pending;
    const dropped = this.dropped;
    this.pending = [];
    this.dropped = 0;
    // dropped: entries left out of this batch (the panel can fetch them from the buffer)
    this.comms?.publish(this.topic, { entries, ...(dropped > 0 ? { dropped } : {}) }, false);
  }
}
