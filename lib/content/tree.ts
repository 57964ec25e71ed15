/**
 * Between the nested values of the message contract and flat lists of resource records, which is
 * what every codec reads and writes. `flatten` checks a value's shape and types against the model
 * on the way in; `nest` rebuilds the nested value from decoded records on the way out.
 */
import type { ResourceLookup } from '../model/model';
import { LwM2MPath, MAX_ID } from '../path';
import { ContentFormatError } from './error';
import { definitionAt, describe, fitValue, typeForEncoding, type ValueType } from './typing';
import {
  isIdMap,
  isResourceValue,
  type CompositeValue,
  type LwM2MValue,
  type ResourceRecord,
} from './value';

/** A record whose value has been checked against its type. */
export interface TypedRecord extends ResourceRecord {
  readonly type: ValueType;
}

/**
 * What a value flattens to: its resource values, the multiple-instance resources that have no
 * instance, and the object instances that have no resource (a Create of an empty instance must
 * still name the instance).
 */
export interface FlatValue {
  readonly records: TypedRecord[];
  readonly emptyResources: LwM2MPath[];
  readonly emptyInstances: LwM2MPath[];
}

/** What a decoder yields: records in payload order, and multiple-instance resources (and object instances) given empty. */
export interface DecodedRecords {
  readonly records: ResourceRecord[];
  readonly emptyResources: readonly LwM2MPath[];
  readonly emptyInstances?: readonly LwM2MPath[];
  /** Set by decoders that already refused repeated paths, so nothing needs to pick the latest. */
  readonly unique?: boolean;
}

/** Flattens the value of `path` (any level) into typed records, refusing shapes and types that do not fit. */
export function flatten(format: number, path: LwM2MPath, value: unknown, model: ResourceLookup): FlatValue {
  const flat: FlatValue = { records: [], emptyResources: [], emptyInstances: [] };
  new Flattener(format, model, flat).visit(path, value);
  return flat;
}

/** Flattens a composite value `{ "/3/0/9": 95, "/3303/0": {...} }`. */
export function flattenComposite(format: number, values: CompositeValue, model: ResourceLookup): FlatValue {
  if (!isIdMap(values)) throw new ContentFormatError(format, 'encode', `a composite value must be an object keyed by paths, not ${describe(values)}`);
  const entries = Object.entries(values).map(([key, value]): [LwM2MPath, unknown] => {
    try {
      return [LwM2MPath.parse(key), value];
    } catch (error) {
      throw new ContentFormatError(format, 'encode', (error as Error).message);
    }
  });
  // in path order a path is followed by what it contains, so neighbours show every overlap
  const sorted = entries.map(([path]) => path).sort((a, b) => a.compare(b));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i - 1].contains(sorted[i])) {
      throw new ContentFormatError(format, 'encode', `the paths ${sorted[i - 1]} and ${sorted[i]} overlap; give each value once`);
    }
  }
  const flat: FlatValue = { records: [], emptyResources: [], emptyInstances: [] };
  const flattener = new Flattener(format, model, flat);
  for (const [path, value] of entries) flattener.visit(path, value);
  return flat;
}

class Flattener {
  constructor(
    private readonly format: number,
    private readonly model: ResourceLookup,
    private readonly flat: FlatValue,
  ) {}

  visit(path: LwM2MPath, value: unknown): void {
    if (path.level === 'resource') return this.resource(path, value);
    if (path.level === 'resourceInstance') return this.resourceInstance(path, value);
    // root, object or instance: a map of ids one level down
    const children = this.idMap(path, value, ['object', 'object instance', 'resource'][path.length]);
    if (children.length === 0 && path.level === 'instance') this.flat.emptyInstances.push(path);
    for (const [id, child] of children) this.visit(path.child(id), child);
  }

  private resource(path: LwM2MPath, value: unknown): void {
    const definition = definitionAt(this.model, path);
    if (isIdMap(value)) {
      if (definition && !definition.multiple) {
        this.fail(path, `resource ${definition.id} (${definition.name}) is single-instance; give a value, not ${describe(value)}`);
      }
      const instances = this.idMap(path, value, 'resource instance');
      if (instances.length === 0) this.flat.emptyResources.push(path);
      for (const [id, instance] of instances) this.leaf(path.child(id), instance);
      return;
    }
    if (definition?.multiple) {
      this.fail(path, `resource ${definition.id} (${definition.name}) is multiple-instance; give { "<instance id>": value }, not ${describe(value)}`);
    }
    this.leaf(path, value);
  }

  private resourceInstance(path: LwM2MPath, value: unknown): void {
    const definition = definitionAt(this.model, path);
    if (definition && !definition.multiple) {
      this.fail(path, `resource ${definition.id} (${definition.name}) is single-instance, so it has no resource instances`);
    }
    this.leaf(path, value);
  }

  private leaf(path: LwM2MPath, value: unknown): void {
    this.flat.records.push(typedRecord(this.format, path, value, this.model));
  }

  private idMap(path: LwM2MPath, value: unknown, what: string): Array<[number, unknown]> {
    if (!isIdMap(value)) this.fail(path, `expected { "<${what} id>": ... } for ${path.level === 'root' ? 'the root' : `an ${path.level} path`}, not ${describe(value)}`);
    const entries: Array<[number, unknown]> = [];
    for (const key in value) {
      const id = idOf(key);
      if (id < 0) this.fail(path, `"${key}" is not a ${what} id (0..${MAX_ID})`);
      entries.push([id, value[key]]);
    }
    return entries;
  }

  private fail(path: LwM2MPath, reason: string): never {
    throw new ContentFormatError(this.format, 'encode', reason, path.toString());
  }
}

/** A resource (instance) value checked against its type: the model's, or one inferred from the value. */
export function typedRecord(format: number, path: LwM2MPath, value: unknown, model: ResourceLookup, time?: number): TypedRecord {
  const fail = (reason: string): never => {
    throw new ContentFormatError(format, 'encode', reason, path.toString());
  };
  const type = typeForEncoding(definitionAt(model, path), value);
  if (typeof type !== 'string') return fail(type.problem);
  const fitted = fitValue(type, value);
  if (!isResourceValue(fitted)) return fail(fitted.problem);
  return time === undefined ? { path, type, value: fitted } : { path, type, value: fitted, time };
}

/** The id a map key spells (`"0"`..`"65535"`, no sign or leading zero), or -1. */
function idOf(key: string): number {
  const length = key.length;
  if (length === 0 || length > 5 || (length > 1 && key.charCodeAt(0) === 0x30)) return -1;
  let id = 0;
  for (let i = 0; i < length; i++) {
    const digit = key.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    id = id * 10 + digit;
  }
  return id > MAX_ID ? -1 : id;
}

/**
 * Rebuilds the nested value of `base` from decoded records. A record outside `base`, or one that
 * clashes with another (a resource given both as single and multiple), is an error. When several
 * records give the same path (a SenML pack with history), the latest one wins.
 */
export function nest(
  format: number,
  base: LwM2MPath,
  decoded: DecodedRecords,
  model: ResourceLookup,
): LwM2MValue {
  const fail = (reason: string, at?: LwM2MPath): never => {
    throw new ContentFormatError(format, 'decode', reason, (at ?? base).toString());
  };
  const records = decoded.unique ? decoded.records : latestPerPath(decoded.records);
  const baseIds = base.ids;
  for (const record of records) {
    const ids = record.path.ids;
    for (let i = 0; i < baseIds.length; i++) {
      if (ids[i] !== baseIds[i]) fail(`the payload holds ${record.path}, which is outside the requested path`, record.path);
    }
    if (ids.length < 3) fail('a value must belong to a resource or resource instance path', record.path);
  }
  const empties = [...decoded.emptyResources, ...(decoded.emptyInstances ?? [])].filter((path) => base.contains(path) || path.contains(base));

  if (base.level === 'resourceInstance') {
    if (records.length !== 1 || !records[0].path.equals(base)) fail('the payload holds no value for this resource instance');
    return records[0].value;
  }
  if (base.level === 'resource') {
    const single = records.find((record) => record.path.equals(base));
    if (single) {
      if (records.length > 1) fail('the resource is given both as a single value and with instances');
      return single.value;
    }
    if (records.length === 0 && empties.length === 0 && !definitionAt(model, base)?.multiple) {
      fail('the payload holds no value for this resource');
    }
  }

  const root: Record<string, unknown> = {};
  for (const path of empties) {
    if (path.length > base.length) ensureMap(root, path.ids, base.length, path.length, fail, path);
  }
  for (const record of records) {
    const ids = record.path.ids;
    const parent = ensureMap(root, ids, baseIds.length, ids.length - 1, fail, record.path);
    const key = ids[ids.length - 1];
    if (isIdMap(parent[key])) fail('the resource is given both as a single value and with instances', record.path);
    parent[key] = record.value;
  }
  return root as LwM2MValue;
}

/** The nested map for ids[from..to), made where missing. */
function ensureMap(
  root: Record<string, unknown>,
  ids: readonly number[],
  from: number,
  to: number,
  fail: (reason: string, at?: LwM2MPath) => never,
  at: LwM2MPath,
): Record<string, unknown> {
  let node = root;
  for (let i = from; i < to; i++) {
    const child = node[ids[i]];
    if (child === undefined) node = node[ids[i]] = {};
    else if (isIdMap(child)) node = child;
    else fail('the resource is given both as a single value and with instances', at);
  }
  return node;
}

/** Keeps one record per path: the latest by time (a record without time counts as now); ties go to the later one. */
export function latestPerPath(records: readonly ResourceRecord[]): ResourceRecord[] {
  const byPath = new Map<string, ResourceRecord>();
  for (const record of records) {
    const key = record.path.toString();
    const previous = byPath.get(key);
    if (!previous || (record.time ?? Infinity) >= (previous.time ?? Infinity)) {
      // delete first so the surviving record takes the later position, like a plain overwrite
      byPath.delete(key);
      byPath.set(key, record);
    }
  }
  return [...byPath.values()];
}

/**
 * Groups decoded records into a composite value. With `paths` (those a Read-Composite asked for),
 * each key is a requested path holding the value found under it; without, each key is a resource
 * path (resource instances folded into their resource).
 */
export function groupComposite(
  format: number,
  decoded: DecodedRecords,
  model: ResourceLookup,
  paths?: readonly LwM2MPath[],
): CompositeValue {
  // one pass to put every record under its key, then one nest per key
  type Group = { key: LwM2MPath; records: ResourceRecord[]; emptyResources: LwM2MPath[]; emptyInstances: LwM2MPath[]; unique?: boolean };
  const groups = new Map<string, Group>();
  const newGroup = (key: LwM2MPath): Group => ({ key, records: [], emptyResources: [], emptyInstances: [], unique: decoded.unique });
  if (paths) for (const key of paths) groups.set(key.toString(), newGroup(key));
  const groupOf = (path: LwM2MPath) => {
    if (paths) {
      const key = paths.find((candidate) => candidate.contains(path));
      if (!key) throw new ContentFormatError(format, 'decode', `the payload holds ${path}, which no requested path contains`);
      return groups.get(key.toString())!;
    }
    const key = path.length === 4 ? path.parent() : path;
    const text = key.toString();
    let group = groups.get(text);
    if (!group) groups.set(text, (group = newGroup(key)));
    return group;
  };
  for (const record of decoded.records) groupOf(record.path).records.push(record);
  for (const path of decoded.emptyResources) groupOf(path).emptyResources.push(path);
  for (const path of decoded.emptyInstances ?? []) groupOf(path).emptyInstances.push(path);

  const result: CompositeValue = {};
  for (const [text, group] of groups) {
    if (group.records.length === 0 && group.emptyResources.length === 0 && group.emptyInstances.length === 0) continue; // nothing there: leave the key out
    result[text] = nest(format, group.key, group, model);
  }
  return result;
}

/** Type of a scalar being decoded: the model's when known, else undefined (the format decides). */
export function modelType(model: ResourceLookup, path: LwM2MPath): ValueType | undefined {
  const type = definitionAt(model, path)?.type;
  return type === undefined || type === 'none' ? undefined : type;
}
