/** Waiting in tests: on a condition, checked often, with a generous deadline that names what was awaited. */
import assert from 'node:assert/strict';

/**
 * Resolves once `condition()` holds (checked every 10 ms); fails naming `what` after `timeout` ms.
 * The deadline is generous on purpose: a busy machine slows everything, and a test must not depend
 * on spare CPU.
 */
export async function until(condition: () => boolean, what: string | (() => string) = 'a condition', timeout = 60_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
