/**
 * LwM2M <NOTIFICATION> class attributes as an LwM2M Client needs them: parsing Write-Attributes,
 * checking where and in which combination they may be set, storing them per path with the
 * precedence rules, and deciding when an observation notifies.
 *
 * Spec references are to OMA LwM2M Core 1.1 §5.1.1 "Attributes Definitions and Rules" and §5.1.2
 * "Attributes Classification" (§7.3.1 / §7.3.2 in Core 1.2, which adds edge, con and hqmax), and to
 * the Write-Attributes operation of the Device Management and Service Enablement interface.
 */
import type { LwM2MPath } from '../path';
import type { NotificationAttributes } from '../protocol';

export type { NotificationAttributes };
export type AttributeName = keyof NotificationAttributes;

/** A refused attribute; the client answers the request with 4.00 Bad Request. */
export class AttributeError extends Error {
  override readonly name = 'AttributeError';
  constructor(
    reason: string,
    /** The attribute the reason is about, when there is one. */
    readonly attribute?: string,
  ) {
    super(reason);
  }
}

type Kind = 'period' | 'threshold' | 'step' | 'flag' | 'count';
const KINDS: Readonly<Record<AttributeName, Kind>> = {
  pmin: 'period',
  pmax: 'period',
  epmin: 'period',
  epmax: 'period',
  hqmax: 'count',
  gt: 'threshold',
  lt: 'threshold',
  st: 'step',
  edge: 'flag',
  con: 'flag',
};
export const ATTRIBUTE_NAMES = Object.keys(KINDS) as readonly AttributeName[];

function isAttributeName(name: string): name is AttributeName {
  return Object.prototype.hasOwnProperty.call(KINDS, name);
}

// The spec's grammar is 1*DIGIT ["." 1*DIGIT]; a leading "-" is accepted too, because negative
// thresholds (temperatures, RSSI) are needed and OMA's issue #563 points to [Cond_Attr], which allows them.
const DECIMAL = /^-?[0-9]+(\.[0-9]+)?$/;

/** Parses the text of one attribute value, or says why it is not a valid one. */
function parseValue(name: AttributeName, text: string): number {
  if (text === '') throw new AttributeError(`${name} has an empty value; to unset it, send "${name}" without "="`, name);
  const kind = KINDS[name];
  // edge and con are exactly "0" or "1"; periods and hqmax are 1*DIGIT, so "10.0" is no period either
  if (kind === 'flag' && text !== '0' && text !== '1') throw new AttributeError(`${name} must be 0 or 1 (got "${text}")`, name);
  if (!DECIMAL.test(text)) throw new AttributeError(`${name} value "${text}" is not a decimal number`, name);
  const value = Number(text);
  if ((kind === 'period' || kind === 'count') && text.includes('.')) {
    throw new AttributeError(`${name} must be a whole number${kind === 'period' ? ' of seconds' : ''} (got "${text}")`, name);
  }
  checkValue(name, value);
  return value;
}

/** Checks one attribute value against its own domain (the table in §5.1.2). */
function checkValue(name: AttributeName, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new AttributeError(`${name} value ${String(value)} is not a finite number`, name);
  }
  switch (KINDS[name]) {
    case 'period':
    case 'count': {
      const unit = KINDS[name] === 'period' ? 'a whole number of seconds' : 'a whole number';
      if (value < 0) throw new AttributeError(`${name} must not be negative (got ${value}); it is ${unit}`, name);
      if (!Number.isSafeInteger(value)) throw new AttributeError(`${name} must be ${unit} (got ${value})`, name);
      return;
    }
    case 'step':
      if (value < 0) throw new AttributeError(`st must not be negative (got ${value})`, name);
      return;
    case 'flag':
      if (value !== 0 && value !== 1) throw new AttributeError(`${name} must be 0 or 1 (got ${value})`, name);
      return;
    case 'threshold':
      return;
  }
}

/** Parse the Uri-Query items of a Write-Attributes request (e.g. ['pmin=10', 'gt=20.5', 'st']).
 *  `name=value` sets, bare `name` unsets ("removes") the attribute. Unknown names, bad numbers,
 *  negative periods/st, non-integer periods, edge/con not 0|1 → AttributeError with a clear reason. */
export function parseAttributeQuery(query: readonly string[]): { set: NotificationAttributes; unset: AttributeName[] } {
  const set: Record<string, number> = {};
  const unset: AttributeName[] = [];
  const seen = new Set<string>();
  for (const item of query) {
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    if (!isAttributeName(name)) {
      throw new AttributeError(
        name === '' ? `empty query item "${item}"` : `unknown notification attribute "${name}"`,
        name === '' ? undefined : name,
      );
    }
    // "pmin=1&pmin=5" or "pmin=1&pmin" has no single meaning
    if (seen.has(name)) throw new AttributeError(`${name} is given more than once`, name);
    seen.add(name);
    if (eq < 0) unset.push(name);
    else set[name] = parseValue(name, item.slice(eq + 1));
  }
  // the attributes are a required parameter of Write-Attributes
  if (seen.size === 0) throw new AttributeError('Write-Attributes needs at least one attribute');
  return { set: set as NotificationAttributes, unset };
}

// gt/lt/st/edge are assignable only at the Resource and Resource Instance levels; the others at all four (§5.1.2 table).
const RESOURCE_ONLY: ReadonlySet<AttributeName> = new Set(['gt', 'lt', 'st', 'edge']);
// "Numerical" resources; Time counts, being a signed integer of seconds (Appendix C)
const NUMERIC_TYPES: ReadonlySet<string> = new Set(['integer', 'unsignedinteger', 'float', 'time']);

/** 'Unsigned Integer', 'unsignedInteger' and 'unsigned_integer' all become 'unsignedinteger'. */
function normalType(type: string): string {
  return type.toLowerCase().replace(/[\s_-]/g, '');
}

/** Which attributes are allowed at which level: pmin/pmax/epmin/epmax/con/hqmax at object, instance, resource and resource-instance levels;
 *  gt/lt/st/edge only on a resource (or resource instance) — and only numeric resources for gt/lt/st, boolean for edge.
 *  Throws AttributeError when not allowed. `resourceType` is the model type of the resource when the path is a resource
 *  or resource instance ('integer' | 'unsignedInteger' | 'float' | 'boolean' | 'string' | ... , or the model's
 *  'Integer' | 'Unsigned Integer' | ...), else undefined; when it is undefined the type is not checked. */
export function checkAttributeLevel(path: LwM2MPath, attrs: NotificationAttributes, resourceType?: string): void {
  const type = resourceType === undefined ? undefined : normalType(resourceType);
  for (const name of definedNames(attrs)) {
    // Write-Attributes always names at least an Object: there is no root level
    if (path.isRoot()) throw new AttributeError(`${name} cannot be set on "/": Write-Attributes needs an Object ID`, name);
    const atResource = path.resourceId !== undefined;
    if (RESOURCE_ONLY.has(name) && !atResource) {
      throw new AttributeError(`${name} can only be set on a resource or resource instance, not on the ${path.level} ${path}`, name);
    }
    if (type === undefined || !atResource) continue;
    if ((name === 'gt' || name === 'lt' || name === 'st') && !NUMERIC_TYPES.has(type)) {
      throw new AttributeError(`${name} applies only to numeric resources; ${path} is of type ${resourceType}`, name);
    }
    if (name === 'edge' && type !== 'boolean') {
      throw new AttributeError(`edge applies only to Boolean resources; ${path} is of type ${resourceType}`, name);
    }
  }
}

/** Cross-attribute validity (§5.1.2): lt < gt; with st too, lt + 2*st < gt; pmax >= pmin; epmin < epmax.
 *  Also checks each value's own domain, since a set may be built by hand rather than parsed. Throws AttributeError. */
export function checkAttributeConsistency(attrs: NotificationAttributes): void {
  for (const name of definedNames(attrs)) checkValue(name, attrs[name]);
  const { gt, lt, st, pmin, pmax, epmin, epmax } = attrs;
  // the spec's two rules for "valid Change Value Conditions"; a Write-Attributes breaking them MUST be rejected
  if (gt !== undefined && lt !== undefined) {
    if (!(lt < gt)) throw new AttributeError(`lt (${lt}) must be less than gt (${gt})`, 'lt');
    if (st !== undefined && !(lt + 2 * st < gt)) {
      throw new AttributeError(`lt + 2*st (${lt} + 2*${st}) must be less than gt (${gt})`, 'st');
    }
  }
  // the spec says pmax "MUST be greater than or equal to" pmin (otherwise ignored); in one set we refuse it outright
  if (pmin !== undefined && pmax !== undefined && pmax !== 0 && pmax < pmin) {
    throw new AttributeError(`pmax (${pmax}) must be greater than or equal to pmin (${pmin})`, 'pmax');
  }
  if (epmin !== undefined && epmax !== undefined && !(epmin < epmax)) {
    throw new AttributeError(`epmax (${epmax}) must be greater than epmin (${epmin})`, 'epmax');
  }
}

function definedNames(attrs: NotificationAttributes): AttributeName[] {
  return ATTRIBUTE_NAMES.filter((name) => attrs[name] !== undefined);
}

/** A copy holding only the attributes that are set, so stored sets never alias callers' objects. */
function copyDefined(attrs: NotificationAttributes): NotificationAttributes {
  const copy: Record<string, number> = {};
  for (const name of definedNames(attrs)) copy[name] = attrs[name] as number;
  return copy as NotificationAttributes;
}

/**
 * Attributes stored per path (object, instance, resource, resource instance), as written by
 * Write-Attributes. Attribute values are LwM2M-Server specific (§5.1.1): keep one store per server.
 */
export class AttributeStore {
  private readonly byPath = new Map<string, { path: LwM2MPath; attrs: NotificationAttributes }>();

  /** Apply a parsed Write-Attributes to a path; validates the *merged* result with checkAttributeConsistency before
   *  committing (nothing changes on error). Checks the level rules that need no model (call checkAttributeLevel
   *  with the resource type first to check gt/lt/st/edge against the resource's type). */
  write(path: LwM2MPath, change: { set: NotificationAttributes; unset: readonly AttributeName[] }): void {
    checkAttributeLevel(path, change.set);
    for (const name of change.unset) {
      if (!isAttributeName(name)) throw new AttributeError(`unknown notification attribute "${String(name)}"`, name);
      if (change.set[name] !== undefined) throw new AttributeError(`${name} is both set and unset`, name);
    }
    const merged: NotificationAttributes = { ...this.own(path), ...copyDefined(change.set) };
    for (const name of change.unset) delete merged[name];
    checkAttributeConsistency(merged);
    const key = path.toString();
    if (definedNames(merged).length === 0) this.byPath.delete(key);
    else this.byPath.set(key, { path, attrs: merged });
  }

  /** Attributes attached exactly to this path (for Discover output). */
  own(path: LwM2MPath): NotificationAttributes {
    const entry = this.byPath.get(path.toString());
    return entry ? { ...entry.attrs } : {};
  }

  /** Effective attributes for an observation on `path`: start from `defaults` (the Server object's default pmin/pmax),
   *  then object, instance, resource, resource-instance levels, deeper levels overriding (§5.1.1 rules 1–5). */
  effective(path: LwM2MPath, defaults: { pmin?: number; pmax?: number } = {}): NotificationAttributes {
    const result = copyDefined({ pmin: defaults.pmin, pmax: defaults.pmax });
    const levels: LwM2MPath[] = [];
    for (let level = path; !level.isRoot(); level = level.parent()) levels.unshift(level);
    for (const level of levels) Object.assign(result, this.own(level));
    return result;
  }

  /** Forget the attributes on `path` and everything below it (on Delete of an instance). */
  clear(path: LwM2MPath): void {
    for (const [key, entry] of this.byPath) {
      if (path.contains(entry.path)) this.byPath.delete(key);
    }
  }
}

/**
 * Decide whether a new value of a single numeric or boolean resource satisfies the change-value
 * conditions (gt, lt, st, edge) compared with the last *notified* value.
 *
 * How combinations are evaluated (§5.1.2 "Notification Conditions"): the conditions are alternatives,
 * "Greater Than, Less Than, OR Step" — meeting any one of those that are set is enough. Only the
 * conditions that apply to the value's type count (gt/lt/st for numbers, edge for booleans); when
 * none of them is set, any change counts. The timing conditions are not decided here: a change that
 * meets these conditions still waits for pmin, and pmax notifies without any (see `schedule`).
 *
 * - gt: the value crossed the threshold, i.e. "value > gt" differs between last and next (either direction)
 * - lt: the same with "value < lt"
 * - st: |next - last| >= st (allowing for binary rounding of the difference)
 * - edge=1: false → true; edge=0: true → false
 * An unchanged value meets no condition. With nothing notified yet (`last` undefined) there is nothing
 * to compare with, so it counts as a change.
 */
export function changeConditionsMet(
  last: number | boolean | undefined,
  next: number | boolean,
  attrs: NotificationAttributes,
): boolean {
  if (last === undefined) return true;
  if (last === next) return false;
  if (typeof next === 'boolean' || typeof last === 'boolean') {
    // a value changing type is a change; edge only speaks about boolean → boolean transitions
    if (typeof next !== 'boolean' || typeof last !== 'boolean' || attrs.edge === undefined) return true;
    return next === (attrs.edge === 1);
  }
  const { gt, lt, st } = attrs;
  if (gt === undefined && lt === undefined && st === undefined) return true;
  return (
    (gt !== undefined && last > gt !== next > gt) ||
    (lt !== undefined && last < lt !== next < lt) ||
    (st !== undefined && Math.abs(next - last) >= st - roundingSlack(last, next))
  );
}

/** The rounding error of `next - last` in binary floating point, so that 0.1 → 0.3 counts as a step of 0.2. */
function roundingSlack(last: number, next: number): number {
  return 4 * Number.EPSILON * Math.max(Math.abs(last), Math.abs(next));
}

/** The pmax in force, in seconds, or undefined when there is none: 0 means "no maximum period",
 *  and a pmax below pmin MUST be ignored (§5.1.2). */
export function effectivePmax(attrs: NotificationAttributes): number | undefined {
  const { pmax } = attrs;
  if (pmax === undefined || pmax <= 0 || pmax < (attrs.pmin ?? 0)) return undefined;
  return pmax;
}

/** Timing decision for an observation, given the effective attributes, the time (ms) of the last
 *  notification (the initial Observe response counts as one), `now` (ms), and whether a change that met
 *  the change-value conditions is waiting.
 *
 *  - pmin: no notification sooner than pmin after the last one; a pending change is sent as soon as pmin expires.
 *  - pmax: a notification at the latest pmax after the last one, changed or not; ignored when 0 or below pmin.
 *  - epmax: the value must be evaluated at least every epmax; calling `schedule` is taken to be such an
 *    evaluation, so the epmax deadline counts from `now` (use `evaluationDelay` for epmin).
 *
 *  `nextCheckIn` is the ms from `now` until the observation must be looked at again, assuming that when
 *  `notifyNow` is true the caller sends the notification now (which restarts the pmin/pmax timers);
 *  undefined when nothing is due without a new change. */
export function schedule(
  attrs: NotificationAttributes,
  lastNotifiedAt: number,
  now: number,
  pendingChange: boolean,
): { notifyNow: boolean; nextCheckIn?: number } {
  const pmin = (attrs.pmin ?? 0) * 1000;
  const pmaxSeconds = effectivePmax(attrs);
  const pmax = pmaxSeconds === undefined ? undefined : pmaxSeconds * 1000;
  // a clock stepping back must not hold notifications forever
  const elapsed = Math.max(0, now - lastNotifiedAt);

  const notifyNow = (pendingChange && elapsed >= pmin) || (pmax !== undefined && elapsed >= pmax);
  // once sent, the timers restart from now and the pending change is gone
  const since = notifyNow ? 0 : elapsed;
  const deadlines: number[] = [];
  if (pendingChange && !notifyNow) deadlines.push(pmin - since);
  if (pmax !== undefined) deadlines.push(pmax - since);
  if (attrs.epmax !== undefined && attrs.epmax > 0) deadlines.push(attrs.epmax * 1000);
  return deadlines.length === 0 ? { notifyNow } : { notifyNow, nextCheckIn: Math.min(...deadlines) };
}

/** ms to wait before the value may be evaluated again (0: now), so that evaluations are at least
 *  epmin apart (§5.1.2: the Client MUST wait epmin between two evaluations of the reporting criteria). */
export function evaluationDelay(attrs: NotificationAttributes, lastEvaluatedAt: number, now: number): number {
  if (attrs.epmin === undefined) return 0;
  return Math.max(0, attrs.epmin * 1000 - Math.max(0, now - lastEvaluatedAt));
}
