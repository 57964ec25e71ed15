import type { Operations, ResourceType } from '../types';

/**
 * The compact form our bundled object definitions are written in. Only `id`, `name`, `ops` and
 * `type` are required; everything else has the default most resources share.
 */
export interface ResourceSpec {
  readonly id: number;
  readonly name: string;
  readonly ops: Operations;
  readonly type: ResourceType;
  /** Multiple-instance resource (default false). */
  readonly multiple?: boolean;
  /** Mandatory resource (default false). */
  readonly mandatory?: boolean;
  /** The registry's RangeEnumeration text, e.g. '0..100', '0..255 bytes' or '1,2,3' (default ''). */
  readonly range?: string;
  /** Units, e.g. 'Cel', '%', 's' (default ''). */
  readonly units?: string;
  /** One short sentence in our own words (default ''). */
  readonly description?: string;
}

export interface ObjectSpec {
  readonly id: number;
  readonly name: string;
  /** Object version (default '1.0'). */
  readonly version?: string;
  /** LwM2M enabler version the object targets (default '1.0'). */
  readonly lwm2m?: string;
  readonly multiple: boolean;
  readonly mandatory: boolean;
  /** One or two short sentences in our own words. */
  readonly description: string;
  readonly resources: readonly ResourceSpec[];
}
