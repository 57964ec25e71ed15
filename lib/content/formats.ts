/** CoAP Content-Format numbers of the LwM2M data formats (LwM2M 1.0–1.2). */
export const ContentFormat = {
  TEXT: 0,
  LINK: 40,
  OPAQUE: 42,
  SENML_JSON: 110,
  SENML_CBOR: 112,
  TLV: 11542,
  OMA_JSON: 11543,
  LWM2M_CBOR: 11544,
  /** Pre-registration numbers some LwM2M 1.0 devices still use; they decode as TEXT, TLV and OMA_JSON. */
  LEGACY_TEXT: 1541,
  LEGACY_TLV: 1542,
  LEGACY_JSON: 1543,
} as const;
export type ContentFormatNumber = (typeof ContentFormat)[keyof typeof ContentFormat];

const LEGACY: Readonly<Record<number, number>> = {
  [ContentFormat.LEGACY_TEXT]: ContentFormat.TEXT,
  [ContentFormat.LEGACY_TLV]: ContentFormat.TLV,
  [ContentFormat.LEGACY_JSON]: ContentFormat.OMA_JSON,
};

const NAMES: Readonly<Record<number, string>> = {
  [ContentFormat.TEXT]: 'text/plain',
  [ContentFormat.LINK]: 'CoRE link format',
  [ContentFormat.OPAQUE]: 'opaque',
  [ContentFormat.SENML_JSON]: 'SenML JSON',
  [ContentFormat.SENML_CBOR]: 'SenML CBOR',
  [ContentFormat.TLV]: 'TLV',
  [ContentFormat.OMA_JSON]: 'OMA JSON',
  [ContentFormat.LWM2M_CBOR]: 'LwM2M CBOR',
  [ContentFormat.LEGACY_TEXT]: 'text/plain (legacy 1541)',
  [ContentFormat.LEGACY_TLV]: 'TLV (legacy 1542)',
  [ContentFormat.LEGACY_JSON]: 'OMA JSON (legacy 1543)',
};

const MEDIA_TYPES: Readonly<Record<number, string>> = {
  [ContentFormat.TEXT]: 'text/plain;charset=utf-8',
  [ContentFormat.LINK]: 'application/link-format',
  [ContentFormat.OPAQUE]: 'application/octet-stream',
  [ContentFormat.SENML_JSON]: 'application/senml+json',
  [ContentFormat.SENML_CBOR]: 'application/senml+cbor',
  [ContentFormat.TLV]: 'application/vnd.oma.lwm2m+tlv',
  [ContentFormat.OMA_JSON]: 'application/vnd.oma.lwm2m+json',
  [ContentFormat.LWM2M_CBOR]: 'application/vnd.oma.lwm2m+cbor',
};

/** Maps the legacy numbers 1541/1542/1543 to their registered equivalents; others pass through. */
export function canonicalFormat(format: number): number {
  return LEGACY[format] ?? format;
}

export function isKnownFormat(format: number): boolean {
  return NAMES[format] !== undefined;
}

/** A readable name such as `TLV (11542)`, for messages. */
export function formatName(format: number): string {
  const name = NAMES[format];
  return name ? `${name} (${format})` : `content format ${format}`;
}

/** The media type registered for a format, if any. */
export function mediaType(format: number): string | undefined {
  return MEDIA_TYPES[canonicalFormat(format)];
}
