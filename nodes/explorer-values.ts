/**
 * What the device explorer (the editor's "LwM2M" sidebar) shows of a device, as JSON: its object
 * tree from the registration with the model's names, and values that survive JSON both ways
 * (opaque bytes as `{ "$opaque": "<hex>" }`, 64-bit integers as numbers while exact).
 */
import type { ObjectModel, Registration, ResourceDefinition } from '../lib';

export interface ResourceNode {
  id: number;
  name: string;
  type: string;
  /** `R`, `RW`, `E`, ... as in the model */
  operations: string;
  multiple: boolean;
  mandatory: boolean;
  units?: string;
  description?: string;
}

export interface ObjectNode {
  id: number;
  /** the model's name; absent for an object the model does not know */
  name?: string;
  /** the object version the device announced (`ver=`), else the model's */
  version?: string;
  multiple?: boolean;
  mandatory?: boolean;
  /** the instances the device announced, ascending */
  instances: number[];
  known: boolean;
  resources: ResourceNode[];
}

export interface DeviceTree {
  endpoint: string;
  objects: ObjectNode[];
}

function resourceNode(resource: ResourceDefinition): ResourceNode {
  return {
    id: resource.id,
    name: resource.name,
    type: resource.type,
    operations: resource.operations,
    multiple: resource.multiple,
    mandatory: resource.mandatory,
    ...(resource.units ? { units: resource.units } : {}),
    ...(resource.description ? { description: resource.description } : {}),
  };
}

/**
 * The device's objects and instances as it registered them, each with the model's definition (the
 * version it announced). Security (/0) is never listed: only a bootstrap server may touch it.
 */
export function deviceTree(model: ObjectModel, registration: Registration): DeviceTree {
  const byId = new Map<number, ObjectNode>();
  for (const entry of registration.objects) {
    if (entry.objectId === 0) continue;
    let node = byId.get(entry.objectId);
    if (!node) {
      const definition = model.object(entry.objectId, entry.version);
      node = definition
        ? {
            id: entry.objectId,
            name: definition.name,
            version: entry.version ?? definition.version,
            multiple: definition.multiple,
            mandatory: definition.mandatory,
            instances: [],
            known: true,
            resources: [...definition.resources.values()].sort((a, b) => a.id - b.id).map(resourceNode),
          }
        : { id: entry.objectId, ...(entry.version ? { version: entry.version } : {}), instances: [], known: false, resources: [] };
      byId.set(entry.objectId, node);
    }
    if (entry.instanceId !== undefined && !node.instances.includes(entry.instanceId)) node.instances.push(entry.instanceId);
  }
  const objects = [...byId.values()].sort((a, b) => a.id - b.id);
  for (const object of objects) object.instances.sort((a, b) => a - b);
  return { endpoint: registration.endpoint, objects };
}

/** A value read from a device, as JSON: Buffers as `{ $opaque: hex }`, bigints as numbers while exact, else strings. */
export function toJsonValue(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return { $opaque: value.toString('hex') };
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) out[key] = toJsonValue(inner);
    return out;
  }
  return value;
}

/** Thrown for a value the explorer cannot turn into an LwM2M value. */
export class ValueError extends Error {}

/** A value the explorer sends, back to what the library writes: `{ $opaque: hex }` becomes a Buffer. */
export function fromJsonValue(value: unknown, at = 'value'): unknown {
  if (value === null || value === undefined) throw new ValueError(`${at} is missing`);
  if (Array.isArray(value)) throw new ValueError(`${at}: a list is not an LwM2M value (use { "<id>": value })`);
  if (typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  if ('$opaque' in record) {
    const hex = record.$opaque;
    if (typeof hex !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new ValueError(`${at}: opaque bytes must be given as an even number of hex digits`);
    return Buffer.from(hex, 'hex');
  }
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(record)) out[key] = fromJsonValue(inner, `${at}.${key}`);
  return out;
}
