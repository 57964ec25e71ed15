/**
 * The three kinds of record a store keeps, and the checks a record read back from a file or from
 * Redis must pass: a store is data from disk or from a shared server, so every field is checked and
 * anything else is dropped before the server sees it.
 */
import { METHODS } from '../transport/message';
import type { LwM2MVersion, ObservationRecord, QueuedRequestRecord, RegistrationRecord, StoredRequest } from './types';

/** The tables of a store, by the name each has in a store file. */
export interface StoredRecords {
  registrations: RegistrationRecord;
  observations: ObservationRecord;
  queue: QueuedRequestRecord;
}
export type Table = keyof StoredRecords;
export const TABLES: readonly Table[] = ['registrations', 'observations', 'queue'];
/** A table's name in messages: "registration", "observation", "queued request". */
export const RECORD_NAMES: { [T in Table]: string } = { registrations: 'registration', observations: 'observation', queue: 'queued request' };

interface Rule {
  expected: string;
  test: (value: unknown) => boolean;
}
interface Check extends Rule {
  optional?: boolean;
}
/** every field of R (the type makes the list complete), optional exactly where R's is */
type Schema<R> = { [K in keyof R]-?: Rule & ({} extends Pick<R, K> ? { optional: true } : { optional?: never }) };

const LWM2M_PATH = /^\/(\d+(\/\d+){0,3})?$/;
const VERSIONS: Record<LwM2MVersion, true> = { '1.0': true, '1.1': true, '1.2': true };

const isString = (value: unknown): boolean => typeof value === 'string';
const nonEmpty = (value: unknown): boolean => typeof value === 'string' && value !== '';
const finite = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
const string: Rule = { expected: 'a string', test: isString };
const id: Rule = { expected: 'a non-empty string', test: nonEmpty };
const time: Rule = { expected: 'a finite number (ms since the epoch)', test: finite };
const uint16 = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
const format: Rule = { expected: 'an integer 0..65535', test: uint16 };
const base64: Rule = { expected: 'base64 text', test: (value) => typeof value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(value) && value.length % 4 === 0 };
const strings: Rule = { expected: 'an array of strings', test: (value) => Array.isArray(value) && value.every(isString) };

const REGISTRATION: Schema<RegistrationRecord> = {
  id,
  endpoint: id,
  lifetime: { expected: 'a finite number >= 0', test: (value) => finite(value) && (value as number) >= 0 },
  version: { expected: `one of ${Object.keys(VERSIONS).join(', ')}`, test: (value) => typeof value === 'string' && Object.hasOwn(VERSIONS, value) },
  binding: string,
  queueMode: { expected: 'a boolean', test: (value) => typeof value === 'boolean' },
  sms: { ...string, optional: true },
  objectLinks: string,
  address: string,
  port: { expected: 'an integer 0..65535', test: uint16 },
  rootPath: string,
  registeredAt: time,
  updatedAt: time,
  identity: { ...string, optional: true },
  authentication: { expected: '"rawPublicKey" or "certificate"', test: (value) => value === 'rawPublicKey' || value === 'certificate', optional: true },
  instance: { ...string, optional: true },
};

const REQUEST: Schema<StoredRequest> = {
  method: { expected: `one of ${Object.keys(METHODS).join(', ')}`, test: (value) => typeof value === 'string' && Object.hasOwn(METHODS, value) },
  path: strings,
  query: { ...strings, optional: true },
  accept: { ...format, optional: true },
  contentFormat: { ...format, optional: true },
  payload: { ...base64, optional: true },
};
const request: Rule = { expected: 'a stored request (method, path, …)', test: (value) => typeof checkFields(REQUEST, value) !== 'string' };

const OBSERVATION: Schema<ObservationRecord> = {
  id,
  registrationId: id,
  endpoint: id,
  paths: { expected: 'a non-empty array of LwM2M paths', test: (value) => Array.isArray(value) && value.length > 0 && value.every((path) => typeof path === 'string' && LWM2M_PATH.test(path)) },
  composite: { expected: 'a boolean', test: (value) => typeof value === 'boolean' },
  token: { expected: 'a token: up to 8 bytes in hex', test: (value) => typeof value === 'string' && /^(?:[0-9a-f]{2}){0,8}$/.test(value) },
  request,
  first: {
    expected: 'the first response ({ payload, contentFormat })',
    test: (value) => isObject(value) && base64.test(value.payload) && (value.contentFormat === undefined || uint16(value.contentFormat)),
  },
  startedAt: time,
  instance: { ...string, optional: true },
};

const QUEUED: Schema<QueuedRequestRecord> = {
  id,
  registrationId: id,
  endpoint: id,
  operation: string,
  request,
  success: { expected: 'an array of response codes', test: (value) => Array.isArray(value) && value.every((code) => typeof code === 'string' && /^[2-5]\.\d\d$/.test(code)) },
  queuedAt: time,
  expiresAt: time,
  instance: { ...string, optional: true },
};

const SCHEMAS: { [T in Table]: Schema<StoredRecords[T]> } = { registrations: REGISTRATION, observations: OBSERVATION, queue: QUEUED };

/** The record with exactly the known fields (unknown ones are dropped, nested ones copied), or why it is invalid. */
export function checkRecord<T extends Table>(table: T, item: unknown): StoredRecords[T] | string {
  return checkFields(SCHEMAS[table] as Schema<StoredRecords[T]>, item);
}

/** Queued requests in the order they were queued: by `queuedAt`, ties in the order given (the sort is stable). */
export function inQueueOrder(records: QueuedRequestRecord[]): QueuedRequestRecord[] {
  return records.sort((a, b) => a.queuedAt - b.queuedAt);
}

/** A copy that shares nothing with `record` (stores keep copies, so that later changes to the caller's object change nothing stored). */
export function copyRecord<T extends Table>(table: T, record: StoredRecords[T]): StoredRecords[T] {
  return table === 'registrations' ? { ...record } : structuredClone(record);
}

function checkFields<R>(schema: Schema<R>, item: unknown): R | string {
  if (!isObject(item)) return 'not an object';
  const record: Record<string, unknown> = {};
  for (const name of Object.keys(schema) as Array<keyof R & string>) {
    const check: Check = schema[name];
    const value = Object.hasOwn(item, name) ? item[name] : undefined;
    if (value === undefined) {
      if (check.optional) continue;
      return `field "${name}" is missing`;
    }
    if (!check.test(value)) return `field "${name}" must be ${check.expected}, not ${describe(value)}`;
    record[name] = name === 'request' ? checkFields(REQUEST, value) : name === 'first' ? firstResponse(value as { payload: string; contentFormat?: number }) : copyValue(value);
  }
  return record as R;
}

function firstResponse(value: { payload: string; contentFormat?: number }): ObservationRecord['first'] {
  return value.contentFormat === undefined ? { payload: value.payload } : { contentFormat: value.contentFormat, payload: value.payload };
}

function copyValue(value: unknown): unknown {
  if (Array.isArray(value)) return [...value];
  if (isObject(value)) return { ...value };
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

/** A record read back as JSON text under field `id`, checked, or why it is not valid. */
export function parseRecord<T extends Table>(table: T, id: string, json: string): StoredRecords[T] | string {
  let item: unknown;
  try {
    item = JSON.parse(json);
  } catch (error) {
    return `not valid JSON: ${(error as Error).message}`;
  }
  const record = checkRecord(table, item);
  if (typeof record === 'string') return record;
  if (record.id !== id) return `the record under field ${JSON.stringify(id)} has id ${JSON.stringify(record.id)}`;
  return record;
}
