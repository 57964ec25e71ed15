/**
 * Requests for sleeping queue-mode devices: they wait, in order, per device, each with its own
 * time-to-live, and go out one after another when the device is heard from again.
 */
import { LwM2MError } from './errors';

interface Waiting {
  run: () => Promise<unknown>;
  resolve: (value: never) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class RequestQueue {
  private readonly queues = new Map<string, Waiting[]>();
  private readonly draining = new Set<string>();

  /** Number of requests waiting for a device. */
  size(id: string): number {
    return this.queues.get(id)?.length ?? 0;
  }

  enqueue<T>(id: string, run: () => Promise<T>, ttl: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiting: Waiting = {
        run,
        resolve: resolve as (value: never) => void,
        reject,
        timer: setTimeout(() => {
          const queue = this.queues.get(id);
          const index = queue?.indexOf(waiting) ?? -1;
          if (index >= 0) queue!.splice(index, 1);
          if (queue?.length === 0) this.queues.delete(id);
          reject(new LwM2MError('TIMEOUT', `${what}: the device did not wake up within ${Math.round(ttl / 1000)} s`));
        }, ttl),
      };
      const queue = this.queues.get(id);
      if (queue) queue.push(waiting);
      else this.queues.set(id, [waiting]);
    });
  }

  /** The device is reachable: send what waits for it, in order, one at a time. */
  release(id: string): void {
    if (this.draining.has(id) || !this.queues.has(id)) return;
    this.draining.add(id);
    void (async () => {
      try {
        for (let next = this.queues.get(id)?.shift(); next; next = this.queues.get(id)?.shift()) {
          clearTimeout(next.timer);
          try {
            next.resolve((await next.run()) as never);
          } catch (error) {
            next.reject(error as Error);
          }
        }
        this.queues.delete(id);
      } finally {
        this.draining.delete(id);
      }
    })();
  }

  /** The registration ended: everything waiting for it fails. */
  drop(id: string, error: Error): void {
    const queue = this.queues.get(id);
    this.queues.delete(id);
    for (const waiting of queue ?? []) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
  }

  clear(error: Error): void {
    for (const id of [...this.queues.keys()]) this.drop(id, error);
  }
}
