/**
 * Value generators for simulated resources: each is asked for a new value every `interval` ms by
 * the client that runs it, and a changed value reaches observers like any other change.
 */
import type { ResourceDefinition } from '../model';
import type { ResourceValue } from '../content';

export interface GeneratorContext {
  /** the value before this step (undefined on the first) */
  previous: ResourceValue | undefined;
  /** ms since the generator started */
  elapsed: number;
  /** the model's definition of the resource, when known (for its range) */
  definition?: ResourceDefinition;
}

export interface ValueGenerator {
  readonly kind: string;
  /** ms between two values */
  readonly interval: number;
  next(context: GeneratorContext): ResourceValue;
}

export function isValueGenerator(value: unknown): value is ValueGenerator {
  return typeof value === 'object' && value !== null && typeof (value as ValueGenerator).next === 'function' && typeof (value as ValueGenerator).interval === 'number';
}

const DEFAULT_INTERVAL = 1000;

function checkInterval(interval: number | undefined): number {
  const ms = interval ?? DEFAULT_INTERVAL;
  if (!Number.isFinite(ms) || ms < 10) throw new RangeError(`a generator interval must be at least 10 ms, not ${interval}`);
  return ms;
}

function round(value: number, decimals: number | undefined): number {
  if (decimals === undefined) return value;
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

/** Integer resources get integers, whatever the generator computes. */
function fitNumber(value: number, definition: ResourceDefinition | undefined, decimals: number | undefined): number {
  if (definition?.type === 'Integer' || definition?.type === 'Unsigned Integer' || definition?.type === 'Time') return Math.round(value);
  return round(value, decimals);
}

export function constant(value: ResourceValue, options: { interval?: number } = {}): ValueGenerator {
  return { kind: 'constant', interval: checkInterval(options.interval), next: () => value };
}

export interface RandomWalkOptions {
  /** bounds; default: the resource's range from the model, else 0..100 */
  min?: number;
  max?: number;
  /** largest change per step; default 2% of the range */
  step?: number;
  /** first value; default the middle of the range */
  start?: number;
  decimals?: number;
  interval?: number;
  /** a seeded source in [0, 1) for reproducible runs; default Math.random */
  random?: () => number;
}

/** A value that drifts by at most `step` per interval and never leaves [min, max]. */
export function randomWalk(options: RandomWalkOptions = {}): ValueGenerator {
  const interval = checkInterval(options.interval);
  const random = options.random ?? Math.random;
  return {
    kind: 'randomWalk',
    interval,
    next({ previous, definition }) {
      const min = options.min ?? definition?.range?.min ?? 0;
      const max = options.max ?? definition?.range?.max ?? 100;
      if (!(max >= min)) throw new RangeError(`random walk bounds ${min}..${max} are empty`);
      const step = options.step ?? (max - min) * 0.02;
      const start = typeof previous === 'number' ? previous : (options.start ?? (min + max) / 2);
      const moved = typeof previous === 'number' ? start + (random() * 2 - 1) * step : start;
      return fitNumber(Math.min(max, Math.max(min, moved)), definition, options.decimals ?? 2);
    },
  };
}

export interface SineOptions {
  min?: number;
  max?: number;
  /** ms for one full cycle; default one minute */
  period?: number;
  decimals?: number;
  interval?: number;
}

/** A smooth oscillation between min and max, e.g. a day's temperature compressed into `period`. */
export function sine(options: SineOptions = {}): ValueGenerator {
  const interval = checkInterval(options.interval);
  const period = options.period ?? 60_000;
  if (!(period > 0)) throw new RangeError(`a sine period must be positive, not ${period}`);
  return {
    kind: 'sine',
    interval,
    next({ elapsed, definition }) {
      const min = options.min ?? definition?.range?.min ?? 0;
      const max = options.max ?? definition?.range?.max ?? 100;
      const middle = (min + max) / 2;
      return fitNumber(middle + ((max - min) / 2) * Math.sin((2 * Math.PI * elapsed) / period), definition, options.decimals ?? 2);
    },
  };
}

/** Values from your own function. */
export function callback(fn: (context: GeneratorContext) => ResourceValue, options: { interval?: number } = {}): ValueGenerator {
  return { kind: 'callback', interval: checkInterval(options.interval), next: fn };
}
