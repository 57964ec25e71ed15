/** The data types a resource can have (OMA DDF `<Type>`); `none` is for executable resources. */
export const RESOURCE_TYPES = [
  'String',
  'Integer',
  'Unsigned Integer',
  'Float',
  'Boolean',
  'Opaque',
  'Time',
  'Objlnk',
  'Corelnk',
  'none',
] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

/** The operations a resource allows (OMA DDF `<Operations>`); '' is a resource with none. */
export const OPERATIONS = ['R', 'W', 'RW', 'E', ''] as const;
export type Operations = (typeof OPERATIONS)[number];

/** A numeric range from a `<RangeEnumeration>` such as `0..100` or `-40..85`. */
export interface NumericRange {
  readonly min: number;
  readonly max: number;
}

export interface ResourceDefinition {
  readonly id: number;
  readonly name: string;
  readonly operations: Operations;
  readonly multiple: boolean;
  readonly mandatory: boolean;
  readonly type: ResourceType;
  /** The `<RangeEnumeration>` text as written, '' when there is none. */
  readonly rangeEnumeration: string;
  /** Parsed from rangeEnumeration when it is a numeric range (`min..max`); for strings and opaques it bounds the length. */
  readonly range?: NumericRange;
  /** Parsed from rangeEnumeration when it lists values (`0,1,2` or `"a","b"`). */
  readonly enumeration?: ReadonlyArray<number | string>;
  readonly units: string;
  readonly description: string;
}

export interface ObjectDefinition {
  readonly id: number;
  readonly name: string;
  readonly description: string;
  /** The object version (`<ObjectVersion>`), '1.0' when the definition gives none. */
  readonly version: string;
  /** The LwM2M enabler version the object was written for (`<LWM2MVersion>`), '1.0' when none. */
  readonly lwm2mVersion: string;
  readonly urn: string;
  readonly multiple: boolean;
  readonly mandatory: boolean;
  readonly resources: ReadonlyMap<number, ResourceDefinition>;
}
