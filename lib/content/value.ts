/**
 * The JSON-friendly value shapes of the message contract (see DESIGN.md):
 * - a single resource (or resource instance) is a scalar: number (Integer, Float, Time in seconds),
 *   bigint (an Integer beyond ±2^53), string (String, Corelnk, Objlnk as "3:0"), boolean, Buffer (Opaque);
 * - a multiple-instance resource is `{ "<riid>": scalar }`;
 * - an object instance is `{ "<rid>": scalar | { "<riid>": scalar } }`;
 * - an object is `{ "<iid>": instance }`.
 */
import type { LwM2MPath } from '../path';

export type ResourceValue = number | bigint | string | boolean | Buffer;
export type MultipleResourceValue = { [resourceInstanceId: string]: ResourceValue };
export type InstanceValue = { [resourceId: string]: ResourceValue | MultipleResourceValue };
export type ObjectValue = { [instanceId: string]: InstanceValue };
/** Everything below the root: the value of an object, instance, resource or resource instance. */
export type LwM2MValue = ResourceValue | MultipleResourceValue | InstanceValue | ObjectValue;
/** A whole device, as in a read of `/`: `{ "<oid>": object }`. */
export type RootValue = { [objectId: string]: ObjectValue };
/** Composite operations: `{ "/3/0/9": 95, "/3303/0": { ... } }`. */
export type CompositeValue = { [path: string]: LwM2MValue };

/** One resource or resource instance value with its full path, and the time it was taken (SenML). */
export interface ResourceRecord {
  readonly path: LwM2MPath;
  readonly value: ResourceValue;
  /** Seconds since the Unix epoch, when the payload gave a time. */
  readonly time?: number;
}

/** True for the scalars a resource (instance) holds, false for the nested id maps. */
export function isResourceValue(value: unknown): value is ResourceValue {
  const type = typeof value;
  return type === 'number' || type === 'bigint' || type === 'string' || type === 'boolean' || Buffer.isBuffer(value);
}

/** True for a plain `{ id: ... }` map (not a Buffer, array, Date or class instance). */
export function isIdMap(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** An Objlnk value: `"<object id>:<instance id>"`, both 0..65535 (`"65535:65535"` is the null link). */
export interface ObjectLink {
  readonly objectId: number;
  readonly instanceId: number;
}

const OBJLNK = /^(\d{1,5}):(\d{1,5})$/;

/** Parses `"3:0"`; undefined when the text is not an object link. */
export function parseObjectLink(text: string): ObjectLink | undefined {
  const match = OBJLNK.exec(text);
  if (!match) return undefined;
  const objectId = Number(match[1]);
  const instanceId = Number(match[2]);
  if (objectId > 65535 || instanceId > 65535) return undefined;
  return { objectId, instanceId };
}

export function formatObjectLink(link: ObjectLink): string {
  return `${link.objectId}:${link.instanceId}`;
}
