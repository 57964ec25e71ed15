/**
 * LwM2M paths: `/`, `/3`, `/3/0`, `/3/0/7`, `/3/0/7/1` — object, object instance, resource and
 * resource instance ids, each 0..65535.
 */

export const MAX_ID = 65535;
const SLASH = 0x2f;
const ZERO = 0x30;

export type PathLevel = 'root' | 'object' | 'instance' | 'resource' | 'resourceInstance';
const LEVELS: readonly PathLevel[] = ['root', 'object', 'instance', 'resource', 'resourceInstance'];

/** A path that could not be parsed or built; `input` is what was given. */
export class PathError extends Error {
  override readonly name = 'PathError';
  constructor(
    readonly input: string,
    readonly reason: string,
  ) {
    super(`Invalid LwM2M path ${JSON.stringify(input)}: ${reason}`);
  }
}

/** An immutable, validated LwM2M path. Build with `LwM2MPath.parse` or `LwM2MPath.of`. */
export class LwM2MPath {
  static readonly ROOT = new LwM2MPath([]);

  /** The text form, made once on first use: paths are compared and used as keys often. */
  private text: string | undefined;

  private constructor(readonly ids: readonly number[]) {}

  /** Parses `/3/0/7/1`-style text; throws PathError with the reason when it is not a valid path. */
  static parse(text: string): LwM2MPath {
    if (typeof text !== 'string') throw new PathError(String(text), 'a path must be a string');
    if (text === '/') return LwM2MPath.ROOT;
    if (text.charCodeAt(0) !== SLASH) {
      throw new PathError(text, text === '' ? 'the path is empty' : 'a path must start with "/"');
    }
    // a hand-written scan: paths are parsed for every SenML record, so this is a hot loop
    const ids: number[] = [];
    let id = 0;
    let digits = 0;
    for (let i = 1; i <= text.length; i++) {
      const code = i < text.length ? text.charCodeAt(i) : SLASH;
      if (code === SLASH) {
        if (digits === 0 || (digits > 1 && text.charCodeAt(i - digits) === ZERO) || id > MAX_ID) {
          return LwM2MPath.explainInvalid(text);
        }
        ids.push(id);
        if (ids.length > 4) return LwM2MPath.explainInvalid(text);
        id = 0;
        digits = 0;
      } else if (code >= ZERO && code <= ZERO + 9 && digits < 6) {
        id = id * 10 + (code - ZERO);
        digits++;
      } else {
        return LwM2MPath.explainInvalid(text);
      }
    }
    const path = new LwM2MPath(ids);
    path.text = text;
    return path;
  }

  /** The slow, wordy check, run only for text the fast scan refused, to say what is wrong. */
  private static explainInvalid(text: string): never {
    const segments = text.slice(1).split('/');
    if (segments.length > 4) throw new PathError(text, 'a path has at most 4 segments (object/instance/resource/resource instance)');
    segments.forEach((segment, index) => parseId(text, segment, index));
    throw new PathError(text, 'not a valid path');
  }

  /** Builds a path from ids (`LwM2MPath.of(3, 0, 9)`); throws PathError when an id is out of range. */
  static of(...ids: number[]): LwM2MPath {
    if (ids.length > 4) throw new PathError(ids.join('/'), 'a path has at most 4 segments');
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
        throw new PathError('/' + ids.join('/'), `id ${id} is not an integer in 0..${MAX_ID}`);
      }
    }
    return ids.length === 0 ? LwM2MPath.ROOT : new LwM2MPath([...ids]);
  }

  /** Accepts a path or its text, for APIs that take either. */
  static from(path: LwM2MPath | string): LwM2MPath {
    return path instanceof LwM2MPath ? path : LwM2MPath.parse(path);
  }

  get level(): PathLevel {
    return LEVELS[this.ids.length];
  }
  get length(): number {
    return this.ids.length;
  }
  get objectId(): number | undefined {
    return this.ids[0];
  }
  get instanceId(): number | undefined {
    return this.ids[1];
  }
  get resourceId(): number | undefined {
    return this.ids[2];
  }
  get resourceInstanceId(): number | undefined {
    return this.ids[3];
  }
  isRoot(): boolean {
    return this.ids.length === 0;
  }

  /** This path with one more id appended (`/3/0` → `/3/0/9`). */
  child(id: number): LwM2MPath {
    if (this.ids.length >= 4 || !Number.isInteger(id) || id < 0 || id > MAX_ID) return LwM2MPath.of(...this.ids, id);
    const child = new LwM2MPath([...this.ids, id]);
    child.text = (this.ids.length === 0 ? '/' : this.toString() + '/') + id;
    return child;
  }
  /** The enclosing path (`/3/0/9` → `/3/0`); the root's parent is the root. */
  parent(): LwM2MPath {
    return this.ids.length === 0 ? this : new LwM2MPath(this.ids.slice(0, -1));
  }

  /** True when `other` is this path or lies below it (`/3` contains `/3/0/9`). */
  contains(other: LwM2MPath): boolean {
    if (other.ids.length < this.ids.length) return false;
    return this.ids.every((id, index) => other.ids[index] === id);
  }
  equals(other: LwM2MPath): boolean {
    return this.ids.length === other.ids.length && this.contains(other);
  }
  /** Orders paths id by id, a parent before its children (`/3` < `/3/0` < `/3/1` < `/4`). */
  compare(other: LwM2MPath): number {
    return comparePaths(this, other);
  }

  /** The ids of `descendant` below this path (`/3/0`.relative(`/3/0/7/1`) → [7, 1]). */
  relative(descendant: LwM2MPath): readonly number[] {
    if (!this.contains(descendant)) throw new PathError(descendant.toString(), `it is not inside ${this}`);
    return descendant.ids.slice(this.ids.length);
  }

  toString(): string {
    return (this.text ??= '/' + this.ids.join('/'));
  }
  toJSON(): string {
    return this.toString();
  }
}

function parseId(text: string, segment: string, index: number): number {
  const what = ['object id', 'object instance id', 'resource id', 'resource instance id'][index];
  if (segment === '') throw new PathError(text, `empty segment where the ${what} should be`);
  if (!/^[0-9]+$/.test(segment)) throw new PathError(text, `the ${what} "${segment}" is not a decimal number`);
  if (segment.length > 1 && segment.startsWith('0')) throw new PathError(text, `the ${what} "${segment}" has a leading zero`);
  const id = Number(segment);
  if (id > MAX_ID) throw new PathError(text, `the ${what} ${segment} is above ${MAX_ID}`);
  return id;
}

export function parsePath(text: string): LwM2MPath {
  return LwM2MPath.parse(text);
}

export function formatPath(path: LwM2MPath | readonly number[]): string {
  return path instanceof LwM2MPath ? path.toString() : LwM2MPath.of(...path).toString();
}

export function comparePaths(a: LwM2MPath, b: LwM2MPath): number {
  const shared = Math.min(a.ids.length, b.ids.length);
  for (let i = 0; i < shared; i++) {
    if (a.ids[i] !== b.ids[i]) return a.ids[i] - b.ids[i];
  }
  return a.ids.length - b.ids.length;
}

/** True when `inner` is `outer` or lies below it. */
export function pathContains(outer: LwM2MPath | string, inner: LwM2MPath | string): boolean {
  return LwM2MPath.from(outer).contains(LwM2MPath.from(inner));
}
