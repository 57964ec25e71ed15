/**
 * The parameters of Register and Update (LwM2M 1.1 §6.1 / 1.2 §6.1), and of Bootstrap-Request: the Uri-Query items and the
 * object list in the payload, checked the way the specification asks, with the response code each
 * refusal gets (4.00, or 4.12 for an LwM2M version the server does not support).
 */
import { parseLinkFormat, ContentFormatError, type Link } from '../content';
import { LwM2MPath, PathError } from '../path';
import type { LwM2MVersion, RegistrationRecord } from './types';

export class RegistrationRequestError extends Error {
  override readonly name = 'RegistrationRequestError';
  constructor(
    readonly coapCode: '4.00' | '4.03' | '4.12',
    message: string,
  ) {
    super(message);
  }
}

const bad = (message: string) => new RegistrationRequestError('4.00', message);

export const SUPPORTED_VERSIONS: readonly LwM2MVersion[] = ['1.0', '1.1', '1.2'];
export const DEFAULT_LIFETIME = 86400;
const VERSION = /^[0-9]+\.[0-9]+$/;
// U: UDP, S: SMS, N: non-IP, T: TCP, M: MQTT, H: HTTP (1.2); Q: queue mode (written into the binding by 1.0)
const BINDING = /^[USNTMHQ]+$/;
const MAX_LIFETIME = 0xffffffff;

/** What a Register sets: these fields of the registration. */
export type RegisterParams = Pick<RegistrationRecord, 'endpoint' | 'lifetime' | 'version' | 'binding' | 'queueMode' | 'sms'>;

/** What an Update may change. */
export type UpdateParams = Partial<Pick<RegistrationRecord, 'lifetime' | 'binding' | 'queueMode' | 'sms'>>;

/** Splits `name=value` items; a name given twice is refused (which one would count?). */
function queryMap(query: readonly string[]): Map<string, string | true> {
  const map = new Map<string, string | true>();
  for (const item of query) {
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    if (map.has(name)) throw bad(`the query parameter ${name} is given twice`);
    map.set(name, eq < 0 ? true : item.slice(eq + 1));
  }
  return map;
}

function text(map: Map<string, string | true>, name: string): string | undefined {
  const value = map.get(name);
  if (value === undefined) return undefined;
  if (value === true || value === '') throw bad(`the query parameter ${name} needs a value`);
  return value;
}

function lifetimeOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) < 1 || Number(value) > MAX_LIFETIME) throw bad(`lifetime lt=${value} is not a whole number of seconds from 1 to ${MAX_LIFETIME}`);
  return Number(value);
}

function bindingOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!BINDING.test(value) || new Set(value).size !== value.length) throw bad(`binding b=${value} is not a binding mode (letters of U, S, N, T, M, H, Q, each once)`);
  return value;
}

function queueFlag(map: Map<string, string | true>): boolean | undefined {
  const q = map.get('Q');
  if (q === undefined) return undefined;
  if (q !== true) throw bad('the queue mode parameter Q takes no value');
  return true;
}

/** Register: `ep` is mandatory; `lt` defaults to 86400, `lwm2m` to 1.0, `b` to U. Unknown parameters are ignored. */
export function parseRegisterQuery(query: readonly string[]): RegisterParams {
  const map = queryMap(query);
  const endpoint = text(map, 'ep');
  if (endpoint === undefined) throw bad('Register needs the endpoint client name (ep=)');
  if (endpoint.length > 255) throw bad('the endpoint client name is longer than 255 characters');
  const versionText = text(map, 'lwm2m') ?? '1.0';
  if (!VERSION.test(versionText)) throw bad(`lwm2m=${versionText} is not a version number`);
  if (!SUPPORTED_VERSIONS.includes(versionText as LwM2MVersion)) {
    throw new RegistrationRequestError('4.12', `LwM2M ${versionText} is not supported; this server speaks ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const version = versionText as LwM2MVersion;
  const binding = bindingOf(text(map, 'b')) ?? 'U';
  const queue = queueFlag(map);
  const params: RegisterParams = {
    endpoint,
    lifetime: lifetimeOf(text(map, 'lt')) ?? DEFAULT_LIFETIME,
    version,
    binding,
    queueMode: queue ?? binding.includes('Q'),
  };
  const sms = text(map, 'sms');
  if (sms !== undefined) params.sms = sms;
  return params;
}

/** Bootstrap-Request (`/bs`) and Bootstrap-Pack-Request (`/bspack`): `ep` is mandatory, `pct` (1.1+) a Content-Format number. */
export function parseBootstrapQuery(query: readonly string[]): { endpoint: string; preferredFormat?: number } {
  const map = queryMap(query);
  const endpoint = text(map, 'ep');
  if (endpoint === undefined) throw bad('a Bootstrap-Request needs the endpoint client name (ep=)');
  if (endpoint.length > 255) throw bad('the endpoint client name is longer than 255 characters');
  const pct = text(map, 'pct');
  if (pct !== undefined && (!/^[0-9]{1,5}$/.test(pct) || Number(pct) > 65535)) throw bad(`pct=${pct} is not a Content-Format number`);
  return pct === undefined ? { endpoint } : { endpoint, preferredFormat: Number(pct) };
}

/** Update: only what changed; an `ep` or `lwm2m` in an Update is refused (they cannot change). */
export function parseUpdateQuery(query: readonly string[]): UpdateParams {
  const map = queryMap(query);
  if (map.has('ep') || map.has('lwm2m')) throw bad('an Update cannot change the endpoint name or the LwM2M version; register again');
  const update: UpdateParams = {};
  const lifetime = lifetimeOf(text(map, 'lt'));
  if (lifetime !== undefined) update.lifetime = lifetime;
  const binding = bindingOf(text(map, 'b'));
  if (binding !== undefined) {
    update.binding = binding;
    update.queueMode = queueFlag(map) ?? binding.includes('Q');
  } else if (queueFlag(map)) {
    update.queueMode = true;
  }
  const sms = text(map, 'sms');
  if (sms !== undefined) update.sms = sms;
  return update;
}

export interface RegisteredObject {
  objectId: number;
  instanceId?: number;
  /** `ver=` of the object, when given */
  version?: string;
}

export interface ObjectList {
  /** the alternate root path without trailing slash ('' for `/`) */
  rootPath: string;
  /** Content-Formats the client announced on its root link (`ct=`) */
  contentFormats: number[];
  objects: RegisteredObject[];
}

/**
 * Reads the object list of a Register/Update payload. Links outside the root path, and the
 * Security object (/0), which a client must not list, are left out; a malformed list is 4.00.
 */
export function parseObjectList(payload: Buffer): ObjectList {
  let links: Link[];
  try {
    const body = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    links = parseLinkFormat(body);
  } catch (error) {
    throw bad(`the object list is not valid CoRE link format: ${error instanceof ContentFormatError ? error.reason : (error as Error).message}`);
  }
  const root = links.find((link) => link.attributes.rt === 'oma.lwm2m');
  let rootPath = '';
  if (root) {
    if (!root.uri.startsWith('/') || /[?#]/.test(root.uri)) throw bad(`the root path "${root.uri}" is not an absolute path`);
    rootPath = root.uri.replace(/\/+$/, '');
  }
  const ct = root?.attributes.ct;
  const contentFormats = Array.isArray(ct) ? ct : typeof ct === 'number' ? [ct] : [];
  const objects: RegisteredObject[] = [];
  for (const link of links) {
    if (link === root) continue;
    if (!link.uri.startsWith(rootPath + '/')) continue; // not an LwM2M object: a client may list other resources
    let path: LwM2MPath;
    try {
      path = LwM2MPath.parse(link.uri.slice(rootPath.length));
    } catch (error) {
      throw bad(`the object list holds "${link.uri}": ${error instanceof PathError ? error.reason : String(error)}`);
    }
    if (path.level !== 'object' && path.level !== 'instance') throw bad(`the object list holds ${link.uri}, which is neither an object nor an instance`);
    if (path.objectId === 0) continue;
    const entry: RegisteredObject = { objectId: path.objectId! };
    if (path.instanceId !== undefined) entry.instanceId = path.instanceId;
    const version = link.attributes.ver;
    if (version !== undefined) entry.version = String(version);
    objects.push(entry);
  }
  return { rootPath, contentFormats, objects };
}
