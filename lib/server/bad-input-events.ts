/**
 * The server's `handshakeFailed` and `badDatagram` events, each kind through its own rate limit
 * (a flood of garbage must not hide the one wrong key that matters), with an `eventsSuppressed`
 * summary for what a window held back. Nothing is built while nobody listens.
 */
import { EventLimiter, type EventLimiterOptions } from './event-limiter';
import type { BadDatagramEvent, EventsSuppressedEvent, HandshakeFailedEvent } from './events';

export interface BadInputEmitter {
  emit(event: 'handshakeFailed' | 'badDatagram' | 'eventsSuppressed', payload: unknown): boolean;
  listenerCount(event: string): number;
}

export class BadInputEvents {
  private readonly handshakes: EventLimiter<HandshakeFailedEvent>;
  private readonly datagrams: EventLimiter<BadDatagramEvent>;

  constructor(
    private readonly target: BadInputEmitter,
    limit: EventLimiterOptions = {},
  ) {
    const window = limit.window ?? 1000;
    const summary = (event: EventsSuppressedEvent['event']) => (count: number) => {
      const suppressed: EventsSuppressedEvent = { event, count, window };
      this.target.emit('eventsSuppressed', suppressed);
    };
    this.handshakes = new EventLimiter((event) => this.target.emit('handshakeFailed', event), summary('handshakeFailed'), { ...limit, window });
    this.datagrams = new EventLimiter((event) => this.target.emit('badDatagram', event), summary('badDatagram'), { ...limit, window });
  }

  handshakeFailed(make: () => HandshakeFailedEvent): void {
    if (this.target.listenerCount('handshakeFailed') > 0 || this.target.listenerCount('eventsSuppressed') > 0) this.handshakes.offer(make);
  }

  badDatagram(make: () => BadDatagramEvent): void {
    if (this.target.listenerCount('badDatagram') > 0 || this.target.listenerCount('eventsSuppressed') > 0) this.datagrams.offer(make);
  }

  close(): void {
    this.handshakes.close();
    this.datagrams.close();
  }
}
