/** Turns the compact bundled specs into ObjectDefinitions, once. */
import { parseRangeEnumeration } from '../range';
import type { ObjectDefinition, ResourceDefinition } from '../types';
import { CORE_OBJECTS } from './core';
import type { ObjectSpec, ResourceSpec } from './define';
import { IPSO_OBJECTS } from './ipso';
import { OMA_OBJECTS } from './oma';

let cache: readonly ObjectDefinition[] | undefined;

export function bundledDefinitions(): readonly ObjectDefinition[] {
  return (cache ??= [...CORE_OBJECTS, ...OMA_OBJECTS, ...IPSO_OBJECTS].map(toDefinition));
}

function toDefinition(spec: ObjectSpec): ObjectDefinition {
  const version = spec.version ?? '1.0';
  // Objects 0..1023 are OMA's own ("oma"), 2048.. are external ("ext"), as in the registry's URNs.
  const urn = `urn:oma:lwm2m:${spec.id < 1024 ? 'oma' : 'ext'}:${spec.id}${version === '1.0' ? '' : `:${version}`}`;
  return {
    id: spec.id,
    name: spec.name,
    description: spec.description,
    version,
    lwm2mVersion: spec.lwm2m ?? '1.0',
    urn,
    multiple: spec.multiple,
    mandatory: spec.mandatory,
    resources: new Map(spec.resources.map((resource) => [resource.id, toResource(resource)])),
  };
}

function toResource(spec: ResourceSpec): ResourceDefinition {
  const rangeEnumeration = spec.range ?? '';
  return {
    id: spec.id,
    name: spec.name,
    operations: spec.ops,
    multiple: spec.multiple ?? false,
    mandatory: spec.mandatory ?? false,
    type: spec.type,
    rangeEnumeration,
    ...parseRangeEnumeration(rangeEnumeration),
    units: spec.units ?? '',
    description: spec.description ?? '',
  };
}
