/**
 * Heap figures that mean live memory, not garbage waiting to be collected: gc() is made available
 * at run time (no --expose-gc needed on the command line) and run twice before each reading.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
