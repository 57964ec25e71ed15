/**
 * cbor-x (a devDependency) set up as a plain RFC 8949 codec: the oracle of the CBOR differential
 * tests and the baseline of bench/codecs use the same options.
 */
import { FLOAT32_OPTIONS, type Options } from 'cbor-x';

/**
 * cbor-x's defaults add its own extensions; these options turn them off so that both sides speak
 * plain CBOR:
 * - useRecords: false — no record structures (tag 105 / 0xdfff), maps are written as maps;
 * - mapsAsObjects: false — decode maps as Map (integer keys stay numbers, SenML labels and LwM2M ids
 *   are integers) and, with useTag259ForMaps: false, write a Map without the "explicit map" tag 259;
 * - tagUint8Array: false — a Uint8Array is a plain byte string, not tag 64 (Buffers never are);
 * - structuredClone: false — no value sharing (tags 28/29); pack: false, bundleStrings: false — no
 *   packed or bundled strings (tags 51/6, 0xdff9);
 * - useFloat32: NEVER — a non-integral number is written as a double, never rounded to a single
 *   (a second encoder below writes singles, for float32-exact values only);
 * - variableMapSize: true — the shortest map header (RFC 8949 preferred serialization);
 * - copyBuffers: true — byte strings come back as copies, not views of the encoded bytes.
 * What cbor-x still does on its own is value-driven: an integral number within 32 bits is an
 * integer, any other number a double; a bigint is always an 8-byte integer (major 0/1, info 27);
 * tag 1 decodes to a Date (its tag handlers are process-wide, so that cannot be turned off).
 */
export const PLAIN_CBORX: Options & { useTag259ForMaps: boolean } = {
  useRecords: false,
  mapsAsObjects: false,
  useTag259ForMaps: false,
  tagUint8Array: false,
  structuredClone: false,
  pack: false,
  bundleStrings: false,
  useFloat32: FLOAT32_OPTIONS.NEVER,
  variableMapSize: true,
  copyBuffers: true,
};
