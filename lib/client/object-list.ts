/**
 * The list of objects and instances a client shows: in Register and Update (never the Security
 * object) and in a Bootstrap-Discover answer (everything, Security and Server instances with the
 * account they belong to).
 */
import type { Link, LinkAttributeValue } from '../content';
import type { LwM2MVersion } from '../protocol';
import type { ObjectTree } from './tree';

/** Objects never listed in Register: Security and OSCORE hold keys. */
const HIDDEN_FROM_SERVERS = new Set([0, 21]);

export interface ObjectListOptions {
  /** the first link (`</>;rt="oma.lwm2m"`, `</>;lwm2m=1.1`), if any */
  root?: Link;
  /** list Security (0) and OSCORE (21) too (only a bootstrap server may see them) */
  everything?: boolean;
  /** only this object */
  objectId?: number;
  /** `ver` on object links (default true; a Bootstrap-Discover lists objects and instances plain) */
  versions?: boolean;
  /** extra attributes of an instance link (`ssid`, `uri`) */
  instanceAttributes?: (objectId: number, instanceId: number) => Record<string, LinkAttributeValue>;
}

/** `</oid>` (with `ver`, or when it has no instance) and `</oid/iid>` links, objects in ascending order. */
export function objectList(tree: ObjectTree, version: LwM2MVersion, options: ObjectListOptions = {}): Link[] {
  const links: Link[] = options.root ? [options.root] : [];
  const objectIds = options.objectId === undefined ? tree.objectIds() : [options.objectId];
  for (const oid of objectIds) {
    if (!options.everything && HIDDEN_FROM_SERVERS.has(oid)) continue;
    const instances = tree.instanceIds(oid);
    const announced = options.versions === false ? undefined : announcedVersion(oid, tree.objectDefinition(oid)?.version, version);
    const versioned: Record<string, string> = announced ? { ver: announced } : {};
    if (instances.length === 0 || announced) links.push({ uri: `/${oid}`, attributes: versioned });
    for (const iid of instances) links.push({ uri: `/${oid}/${iid}`, attributes: options.instanceAttributes?.(oid, iid) ?? {} });
  }
  return links;
}

/**
 * The `ver` a client announces for an object: none from a 1.0 client, whose server knows only the
 * first versions; OMA's core objects (0–7) are versioned with the enabler, so a client announces
 * them at most at its own LwM2M version (a 1.1 client has Server 1.1, not the model's 1.2).
 */
export function announcedVersion(objectId: number, modelVersion: string | undefined, lwm2m: LwM2MVersion): string | undefined {
  if (!modelVersion || lwm2m === '1.0') return undefined;
  const [major, minor] = modelVersion.split('.').map(Number);
  const [ownMajor, ownMinor] = lwm2m.split('.').map(Number);
  const newer = major! > ownMajor! || (major === ownMajor && minor! > ownMinor!);
  const version = objectId <= 7 && newer ? lwm2m : modelVersion;
  return version === '1.0' ? undefined : version;
}
