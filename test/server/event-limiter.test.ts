/**
 * EventLimiter: at most `burst` events per window pass, the rest are counted and told once when
 * the window ends; a quiet window tells nothing; after close nothing more is told.
 */
import assert from 'node:assert/strict';
import { EventLimiter } from '../../lib/server/event-limiter';

describe('EventLimiter', () => {
  it('passes the burst, counts the rest, and tells the count once at the end of the window', async () => {
    const passed: number[] = [];
    let made = 0;
    const summary = new Promise<number>((resolve) => {
      const limiter = new EventLimiter<number>((event) => passed.push(event), resolve, { burst: 3, window: 50 });
      for (let i = 0; i < 10; i++) limiter.offer(() => (made++, i));
    });
    assert.equal(await summary, 7);
    assert.deepEqual(passed, [0, 1, 2]);
    assert.equal(made, 3, 'an event held back is never built');
  });

  it('starts a new window, with a burst of its own, after the last one ended', async () => {
    const passed: string[] = [];
    const summaries: number[] = [];
    let windowEnded: () => void = () => undefined;
    const limiter = new EventLimiter<string>((event) => passed.push(event), (count) => {
      summaries.push(count);
      windowEnded();
    }, { burst: 2, window: 30 });
    limiter.offer(() => 'a');
    limiter.offer(() => 'b');
    limiter.offer(() => 'c');
    await new Promise<void>((resolve) => (windowEnded = resolve));
    limiter.offer(() => 'd');
    assert.deepEqual(passed, ['a', 'b', 'd']);
    assert.deepEqual(summaries, [1]);
    limiter.close();
  });

  it('after close: nothing passes, no summary comes, no timer keeps the process alive', async () => {
    const passed: number[] = [];
    const summaries: number[] = [];
    const limiter = new EventLimiter<number>((event) => passed.push(event), (count) => summaries.push(count), { burst: 1, window: 20 });
    limiter.offer(() => 1);
    limiter.offer(() => 2);
    limiter.close();
    limiter.offer(() => 3);
    // a later limiter's summary proves the closed one's window would have ended by then
    await new Promise<number>((resolve) => {
      const later = new EventLimiter<number>(() => undefined, resolve, { burst: 1, window: 40 });
      later.offer(() => 0);
      later.offer(() => 0);
    });
    assert.deepEqual(passed, [1]);
    assert.deepEqual(summaries, []);
  });
});
