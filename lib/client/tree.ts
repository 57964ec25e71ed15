/**
 * The object tree of a client: objects → instances → resources (single or multiple), typed by the
 * object model. Values live here; custom read/write/execute handlers and value generators hang off
 * individual resources. Every change is announced as a `change` event with the path that changed,
 * which is what drives notifications.
 */
import { EventEmitter } from 'node:events';
import {
  isIdMap,
  isResourceValue,
  type InstanceValue,
  type LwM2MValue,
  type MultipleResourceValue,
  type ObjectValue,
  type ResourceValue,
} from '../content';
import { describe, fitValue, inferType } from '../content/typing';
import type { ObjectDefinition, ObjectModel, ResourceDefinition } from '../model';
import { LwM2MPath, MAX_ID } from '../path';
import { badRequest, notAllowed, notFound } from './errors';
import { isValueGenerator, type ValueGenerator } from './generators';

export type ResourceContent = ResourceValue | MultipleResourceValue;

/** Who is asking: the server is held to the model's access rights, local code is not. */
export type Actor = 'server' | 'local';

export interface ResourceHandlers {
  /** computes the value on every read (instead of the stored one) */
  read?: (path: LwM2MPath) => ResourceContent | Promise<ResourceContent>;
  /** called with the checked value when the server writes; throw a ClientError to refuse */
  write?: (value: ResourceContent, path: LwM2MPath) => void | Promise<void>;
  /** called when the server executes the resource, with its argument text */
  execute?: (args: string, path: LwM2MPath) => void | Promise<void>;
}

export interface ResourceOptions extends ResourceHandlers {
  value?: ResourceContent;
  generator?: ValueGenerator;
}

/** What an instance is built from: per resource id, a value, a generator, or options with handlers. */
export type InstanceSpec = Record<number | string, ResourceContent | ValueGenerator | ResourceOptions>;

export interface Resource extends ResourceHandlers {
  readonly id: number;
  readonly definition?: ResourceDefinition;
  value?: ResourceContent;
  generator?: ValueGenerator;
}

const OPTION_KEYS = new Set(['value', 'generator', 'read', 'write', 'execute']);

function isResourceOptions(value: unknown): value is ResourceOptions {
  if (!isIdMap(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => OPTION_KEYS.has(key));
}

function checkId(id: number | string, what: string): number {
  const number = typeof id === 'number' ? id : Number(id);
  if (!Number.isInteger(number) || number < 0 || number > MAX_ID || (typeof id === 'string' && String(number) !== id)) {
    throw new RangeError(`${what} ${JSON.stringify(id)} is not an id 0..${MAX_ID}`);
  }
  return number;
}

export class ObjectTree extends EventEmitter {
  private readonly objects = new Map<number, Map<number, Map<number, Resource>>>();

  constructor(readonly model: ObjectModel) {
    super();
  }

  // --- structure ---

  /** Declares an object the client supports, even with no instance yet (it is listed in Register). */
  addObject(objectId: number): void {
    checkId(objectId, 'object id');
    if (!this.objects.has(objectId)) this.objects.set(objectId, new Map());
  }

  /** Adds an instance (the lowest free id when none is given) and returns its id. */
  addInstance(objectId: number, instanceId: number | undefined, spec: InstanceSpec = {}, actor: Actor = 'local'): number {
    this.addObject(objectId);
    const instances = this.objects.get(objectId)!;
    const definition = this.model.object(objectId);
    const id = instanceId ?? this.freeInstanceId(objectId);
    checkId(id, 'instance id');
    if (instances.has(id)) throw badRequest(`/${objectId}/${id} already exists`);
    if (definition && !definition.multiple && instances.size > 0) throw badRequest(`object ${objectId} (${definition.name}) allows only one instance`);
    const resources = new Map<number, Resource>();
    for (const [key, content] of Object.entries(spec)) {
      const rid = checkId(key, 'resource id');
      resources.set(rid, this.buildResource(objectId, rid, content, actor));
    }
    instances.set(id, resources);
    this.emit('structure', LwM2MPath.of(objectId, id));
    this.emit('change', LwM2MPath.of(objectId, id));
    return id;
  }

  /** Adds (or replaces) one resource of an existing instance, e.g. an executable with its handler. */
  define(path: LwM2MPath, content: ResourceContent | ValueGenerator | ResourceOptions): void {
    const resources = this.objects.get(path.objectId!)?.get(path.instanceId!);
    if (!resources || path.resourceId === undefined || path.resourceInstanceId !== undefined) throw new RangeError(`define needs a resource path in an existing instance, not ${path}`);
    resources.set(path.resourceId, this.buildResource(path.objectId!, path.resourceId, content, 'local'));
    this.emit('change', path);
  }

  /** The lowest instance id not in use in an object. */
  freeInstanceId(objectId: number): number {
    const instances = this.objects.get(objectId);
    let id = 0;
    while (instances?.has(id)) id++;
    return id;
  }

  removeInstance(objectId: number, instanceId: number): boolean {
    const removed = this.objects.get(objectId)?.delete(instanceId) ?? false;
    if (removed) this.emit('structure', LwM2MPath.of(objectId, instanceId));
    return removed;
  }

  objectIds(): number[] {
    return [...this.objects.keys()].sort((a, b) => a - b);
  }

  instanceIds(objectId: number): number[] {
    return [...(this.objects.get(objectId)?.keys() ?? [])].sort((a, b) => a - b);
  }

  resourceIds(objectId: number, instanceId: number): number[] {
    return [...(this.objects.get(objectId)?.get(instanceId)?.keys() ?? [])].sort((a, b) => a - b);
  }

  objectDefinition(objectId: number): ObjectDefinition | undefined {
    return this.model.object(objectId);
  }

  /** The resource at a resource or resource-instance path, if it exists. */
  resource(path: LwM2MPath): Resource | undefined {
    if (path.resourceId === undefined) return undefined;
    return this.objects.get(path.objectId!)?.get(path.instanceId!)?.get(path.resourceId);
  }

  /** True when the path names something that exists in the tree. */
  has(path: LwM2MPath): boolean {
    if (path.objectId === undefined) return true;
    const instances = this.objects.get(path.objectId);
    if (!instances) return false;
    if (path.instanceId === undefined) return true;
    const resources = instances.get(path.instanceId);
    if (!resources) return false;
    if (path.resourceId === undefined) return true;
    const resource = resources.get(path.resourceId);
    if (!resource) return false;
    if (path.resourceInstanceId === undefined) return true;
    return isIdMap(resource.value) && String(path.resourceInstanceId) in resource.value;
  }

  // --- values ---

  /** The stored value at any path (no read handlers run); undefined when absent. */
  get(path: LwM2MPath | string): LwM2MValue | undefined {
    const at = LwM2MPath.from(path);
    if (!this.has(at) || at.objectId === undefined) return undefined;
    if (at.instanceId === undefined) {
      const object: ObjectValue = {};
      for (const iid of this.instanceIds(at.objectId)) object[iid] = this.get(LwM2MPath.of(at.objectId, iid)) as InstanceValue;
      return object;
    }
    if (at.resourceId === undefined) {
      const instance: InstanceValue = {};
      for (const [rid, resource] of this.objects.get(at.objectId)!.get(at.instanceId)!) {
        if (resource.value !== undefined) instance[rid] = copy(resource.value);
      }
      return instance;
    }
    const value = this.resource(at)!.value;
    if (at.resourceInstanceId === undefined) return value === undefined ? undefined : copy(value);
    return (value as MultipleResourceValue)[at.resourceInstanceId];
  }

  /**
   * Sets a resource (or resource instance) value, checked against the model's type, and announces
   * the change. Creating a missing resource in an existing instance is allowed.
   */
  set(path: LwM2MPath | string, value: unknown): void {
    const at = LwM2MPath.from(path);
    if (at.resourceId === undefined) throw new RangeError(`set needs a resource path, not ${at}`);
    const resources = this.objects.get(at.objectId!)?.get(at.instanceId!);
    if (!resources) throw notFound(`${at.parent().level === 'instance' ? at.parent() : at.parent().parent()} does not exist`);
    let resource = resources.get(at.resourceId);
    if (!resource) {
      resource = { id: at.resourceId, definition: this.model.resource(at.objectId!, at.resourceId) };
      resources.set(at.resourceId, resource);
    }
    if (at.resourceInstanceId !== undefined) {
      const single = this.checkValue(resource, at, value, true) as ResourceValue;
      const map: MultipleResourceValue = isIdMap(resource.value) ? { ...resource.value } : {};
      map[at.resourceInstanceId] = single;
      resource.value = map;
    } else {
      resource.value = this.checkValue(resource, at, value, false);
    }
    this.emit('change', at);
  }

  /** Deletes a resource instance (or a whole optional resource) from an instance. */
  unset(path: LwM2MPath): boolean {
    const resource = this.resource(path);
    if (!resource) return false;
    if (path.resourceInstanceId !== undefined) {
      if (!isIdMap(resource.value) || !(String(path.resourceInstanceId) in resource.value)) return false;
      const map = { ...resource.value };
      delete map[path.resourceInstanceId];
      resource.value = map;
    } else {
      this.objects.get(path.objectId!)!.get(path.instanceId!)!.delete(path.resourceId!);
    }
    this.emit('change', path);
    return true;
  }

  /**
   * Reads a path, running read handlers. For the server, resources it may not read (write-only,
   * executable) are left out of instances and refused when asked for directly.
   */
  async read(path: LwM2MPath, actor: Actor = 'server'): Promise<LwM2MValue> {
    if (!this.has(path)) throw notFound(`${path} does not exist`);
    if (path.objectId === undefined) throw notAllowed('reading the root is not supported; read an object');
    if (path.instanceId === undefined) {
      const object: ObjectValue = {};
      for (const iid of this.instanceIds(path.objectId)) object[iid] = (await this.read(LwM2MPath.of(path.objectId, iid), actor)) as InstanceValue;
      return object;
    }
    if (path.resourceId === undefined) {
      const instance: InstanceValue = {};
      for (const [rid, resource] of this.objects.get(path.objectId)!.get(path.instanceId)!) {
        if (actor === 'server' && !readable(resource)) continue;
        const value = await this.readResource(resource, LwM2MPath.of(path.objectId, path.instanceId, rid));
        if (value !== undefined) instance[rid] = value;
      }
      return instance;
    }
    const resource = this.resource(path)!;
    if (actor === 'server' && !readable(resource)) throw notAllowed(`${path} (${describeResource(resource)}) cannot be read`);
    const value = await this.readResource(resource, path.resourceInstanceId === undefined ? path : path.parent());
    if (value === undefined) throw notFound(`${path} has no value`);
    if (path.resourceInstanceId === undefined) return value;
    const single = isIdMap(value) ? (value as MultipleResourceValue)[path.resourceInstanceId] : undefined;
    if (single === undefined) throw notFound(`${path} does not exist`);
    return single;
  }

  private async readResource(resource: Resource, path: LwM2MPath): Promise<ResourceContent | undefined> {
    if (resource.read) return this.checkValue(resource, path, await resource.read(path), false);
    return resource.value === undefined ? undefined : copy(resource.value);
  }

  /**
   * Writes a decoded value at an instance, resource or resource-instance path. `replace` replaces
   * (an instance's writable resources not given are removed when optional; a multiple resource's
   * instances are all replaced), `update` merges. Everything is checked before anything changes.
   */
  async write(path: LwM2MPath, value: LwM2MValue, mode: 'replace' | 'update', actor: Actor = 'server'): Promise<void> {
    if (path.instanceId === undefined) throw notAllowed(`writing a whole object (${path}) is not allowed; write an instance`);
    if (!this.has(path.resourceId === undefined ? path : LwM2MPath.of(path.objectId!, path.instanceId))) throw notFound(`${path} does not exist`);
    const changes: Array<{ path: LwM2MPath; resource: Resource; value: ResourceContent }> = [];
    const plan = (resourcePath: LwM2MPath, content: unknown): void => {
      const resource = this.resource(resourcePath) ?? this.missingResource(resourcePath, actor);
      if (actor === 'server' && !writable(resource)) throw notAllowed(`${resourcePath} (${describeResource(resource)}) is not writable`);
      let next = this.checkValue(resource, resourcePath, content, false);
      if (mode === 'update' && isIdMap(next) && isIdMap(resource.value)) next = { ...resource.value, ...next };
      changes.push({ path: resourcePath, resource, value: next });
    };
    if (path.resourceId === undefined) {
      if (!isIdMap(value)) throw badRequest(`the value for instance ${path} must hold resources`);
      for (const [rid, content] of Object.entries(value)) plan(LwM2MPath.of(path.objectId!, path.instanceId, checkId(rid, 'resource id')), content);
    } else if (path.resourceInstanceId !== undefined) {
      const resourcePath = path.parent();
      const resource = this.resource(resourcePath) ?? this.missingResource(resourcePath, actor);
      if (actor === 'server' && !writable(resource)) throw notAllowed(`${resourcePath} (${describeResource(resource)}) is not writable`);
      const single = this.checkValue(resource, path, value, true) as ResourceValue;
      changes.push({ path: resourcePath, resource, value: { ...(isIdMap(resource.value) ? resource.value : {}), [path.resourceInstanceId]: single } });
    } else {
      plan(path, value);
    }
    for (const change of changes) await change.resource.write?.(change.value, change.path);
    const instance = this.objects.get(path.objectId!)!.get(path.instanceId)!;
    for (const change of changes) {
      if (!instance.has(change.resource.id)) instance.set(change.resource.id, change.resource);
      change.resource.value = change.value;
    }
    if (mode === 'replace' && path.resourceId === undefined) {
      const given = new Set(changes.map((change) => change.resource.id));
      for (const [rid, resource] of instance) {
        if (!given.has(rid) && writable(resource) && resource.definition && !resource.definition.mandatory) instance.delete(rid);
      }
    }
    for (const change of changes) this.emit('change', change.path);
  }

  /** Runs an executable resource's handler. */
  async execute(path: LwM2MPath, args: string, actor: Actor = 'server'): Promise<void> {
    if (path.resourceId === undefined || path.resourceInstanceId !== undefined) throw notAllowed(`only a resource can be executed, not ${path}`);
    const resource = this.resource(path);
    if (!resource) throw notFound(`${path} does not exist`);
    if (actor === 'server' && !executable(resource)) throw notAllowed(`${path} (${describeResource(resource)}) is not executable`);
    await resource.execute?.(args, path);
    this.emit('execute', path, args);
  }

  // --- building and checking ---

  private missingResource(path: LwM2MPath, actor: Actor): Resource {
    const definition = this.model.resource(path.objectId!, path.resourceId!);
    if (!definition && this.model.object(path.objectId!)) throw notFound(`object ${path.objectId} has no resource ${path.resourceId}`);
    if (actor === 'server' && definition && !definition.operations.includes('W')) throw notAllowed(`${path} (${definition.name}) is not writable`);
    return { id: path.resourceId!, definition };
  }

  private buildResource(objectId: number, resourceId: number, content: ResourceContent | ValueGenerator | ResourceOptions, actor: Actor): Resource {
    const definition = this.model.resource(objectId, resourceId);
    if (!definition && this.model.object(objectId) && actor === 'server') throw notFound(`object ${objectId} has no resource ${resourceId}`);
    const resource: Resource = { id: resourceId, definition };
    const path = LwM2MPath.of(objectId, 0, resourceId);
    if (isValueGenerator(content)) {
      resource.generator = content;
    } else if (isResourceOptions(content)) {
      Object.assign(resource, { read: content.read, write: content.write, execute: content.execute, generator: content.generator });
      if (content.value !== undefined) resource.value = this.checkValue(resource, path, content.value, false);
    } else {
      if (definition?.type === 'none') throw badRequest(`resource ${resourceId} (${definition.name}) is executable and holds no value`);
      resource.value = this.checkValue(resource, path, content, false);
    }
    return resource;
  }

  /** Checks a value against the resource's model type and multiplicity; throws 4.00 when it does not fit. */
  private checkValue(resource: Resource, path: LwM2MPath, value: unknown, single: boolean): ResourceContent {
    const definition = resource.definition;
    const multiple = !single && (definition ? definition.multiple : isIdMap(value));
    if (definition?.type === 'none') throw badRequest(`${path} (${definition.name}) is executable and holds no value`);
    if (multiple) {
      if (!isIdMap(value)) throw badRequest(`${path} is a multiple-instance resource: give { "<instance id>": value }, not ${describe(value)}`);
      const map: MultipleResourceValue = {};
      for (const [riid, item] of Object.entries(value)) map[checkId(riid, 'resource instance id')] = this.checkScalar(resource, path, item);
      return map;
    }
    if (definition?.multiple === false && single) throw badRequest(`${path.parent()} (${definition.name}) is a single-instance resource`);
    return this.checkScalar(resource, path, value);
  }

  private checkScalar(resource: Resource, path: LwM2MPath, value: unknown): ResourceValue {
    if (!isResourceValue(value) && !(value instanceof Date) && !(value instanceof Uint8Array)) throw badRequest(`${describe(value)} is not a resource value for ${path}`);
    const type = resource.definition?.type ?? (isResourceValue(value) ? inferType(value) : 'Opaque');
    if (type === 'none') throw badRequest(`${path} is executable and holds no value`);
    const fitted = fitValue(type, value);
    if (typeof fitted === 'object' && !Buffer.isBuffer(fitted)) throw badRequest(`${path}: ${fitted.problem}`);
    return fitted;
  }
}

function copy(value: ResourceContent): ResourceContent {
  return isIdMap(value) ? { ...value } : value;
}

export function readable(resource: Resource): boolean {
  return !resource.definition || resource.definition.operations.includes('R');
}

export function writable(resource: Resource): boolean {
  return !resource.definition || resource.definition.operations.includes('W');
}

export function executable(resource: Resource): boolean {
  return resource.definition ? resource.definition.operations === 'E' : resource.execute !== undefined;
}

function describeResource(resource: Resource): string {
  return resource.definition ? `${resource.definition.name}, operations "${resource.definition.operations || 'none'}"` : 'custom resource';
}
