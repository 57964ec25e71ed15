/**
 * Bootstrap configurations: checked when they are set (a mistake is a TypeError then, not a
 * failed device later), and turned into the Security and Server instances one bootstrap writes.
 */
import { randomBytes } from 'node:crypto';
import type { InstanceValue } from '../content';
import { LwM2MPath, PathError } from '../path';
import { SECURITY_MODE } from '../protocol';
import { parseCoapUri } from '../transport/uri';
import type { AccountTarget, BootstrapConfig, SecurityModeName, ServerAccount } from './types';


/** Bytes of a generated PSK: 128 bits, what the AES-128 suites use. */
const GENERATED_KEY_BYTES = 16;

const MAX_SHORT_SERVER_ID = 65534;

/** Checks a configuration; returns a copy with its defaults filled in. */
export function checkConfig(config: unknown, where: string): BootstrapConfig {
  const fail = (problem: string): never => {
    throw new TypeError(`bootstrap configuration for ${where}: ${problem}`);
  };
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return fail('must be an object with a servers list');
  const given = config as Partial<BootstrapConfig>;
  if (!Array.isArray(given.servers) || given.servers.length === 0) return fail('servers must be a list of at least one LwM2M server account');
  const used = new Set<number>();
  const servers = given.servers.map((account, index) => checkAccount(account, index, used, fail));
  const deletes = given.delete ?? ['/0', '/1'];
  if (!Array.isArray(deletes)) fail('delete must be a list of paths such as "/0"');
  for (const path of deletes) parsePathIn(path, 'delete', fail);
  const writes = given.writes ?? {};
  if (typeof writes !== 'object' || writes === null || Array.isArray(writes)) fail('writes must map instance paths to resource values, e.g. { "/11/0": { "0": "internet" } }');
  for (const [path, resources] of Object.entries(writes)) {
    const at = parsePathIn(path, 'writes', fail);
    if (at.level !== 'instance') fail(`writes: ${path} is not an instance path such as /11/0`);
    if (at.objectId === 0 || at.objectId === 1) fail(`writes: ${path} belongs to the server accounts; describe it in servers`);
    if (typeof resources !== 'object' || resources === null || Array.isArray(resources)) fail(`writes: ${path} must map resource ids to values`);
  }
  for (const flag of ['discover', 'read'] as const) {
    if (given[flag] !== undefined && typeof given[flag] !== 'boolean') fail(`${flag} must be true or false`);
  }
  return { servers, delete: [...deletes], writes: { ...writes }, discover: given.discover ?? true, read: given.read ?? true };
}

function checkAccount(account: unknown, index: number, used: Set<number>, fail: (problem: string) => never): ServerAccount {
  const name = `servers[${index}]`;
  if (typeof account !== 'object' || account === null) return fail(`${name} must be an object`);
  const given = account as ServerAccount;
  const target = given.server;
  if (target !== undefined && (typeof target.setCredential !== 'function' || typeof target.uriFor !== 'function')) {
    fail(`${name}.server must be an LwM2M server (with setCredential and uriFor)`);
  }
  if (given.uri === undefined && target === undefined) fail(`${name} needs a uri (coap://host:port or coaps://host:port) or a server`);
  let secureUri: boolean | undefined;
  if (given.uri !== undefined) {
    try {
      secureUri = parseCoapUri(given.uri, `${name}.uri`).secure;
    } catch (error) {
      fail((error as Error).message);
    }
  }
  const ssid = given.shortServerId ?? firstFree(used);
  if (!Number.isInteger(ssid) || ssid < 1 || ssid > MAX_SHORT_SERVER_ID) fail(`${name}.shortServerId must be a whole number 1..${MAX_SHORT_SERVER_ID}, not ${ssid}`);
  if (used.has(ssid)) fail(`${name}.shortServerId ${ssid} is used by another account`);
  used.add(ssid);
  const security = given.security ?? (secureUri === false ? 'nosec' : given.psk || secureUri ? 'psk' : 'nosec');
  if (security !== 'psk' && security !== 'nosec') fail(`${name}.security must be "psk" or "nosec", not ${JSON.stringify(security)}`);
  if (secureUri !== undefined && secureUri !== (security === 'psk')) {
    fail(`${name}: security ${security} does not fit the URI ${given.uri} (PSK needs coaps://, NoSec coap://)`);
  }
  if (given.psk !== undefined) {
    if (security !== 'psk') fail(`${name}.psk is given but the account is NoSec`);
    if (typeof given.psk.identity !== 'string' || given.psk.identity === '') fail(`${name}.psk.identity must be a non-empty string`);
    if (!Buffer.isBuffer(given.psk.key) || given.psk.key.length === 0) fail(`${name}.psk.key must be a non-empty Buffer`);
  }
  const lifetime = given.lifetime ?? 300;
  if (!Number.isInteger(lifetime) || lifetime < 1) fail(`${name}.lifetime must be a whole number of seconds ≥ 1, not ${lifetime}`);
  const binding = given.binding ?? 'U';
  if (typeof binding !== 'string' || !/^[UTSNQ]+$/.test(binding)) fail(`${name}.binding must be a binding such as U or UQ, not ${JSON.stringify(binding)}`);
  for (const period of ['defaultPmin', 'defaultPmax'] as const) {
    const value = given[period];
    if (value !== undefined && (!Number.isInteger(value) || value < 0)) fail(`${name}.${period} must be a whole number of seconds ≥ 0`);
  }
  return { ...given, shortServerId: ssid, security, lifetime, binding, psk: given.psk && { identity: given.psk.identity, key: Buffer.from(given.psk.key) } };
}

function firstFree(used: ReadonlySet<number>): number {
  let id = 1;
  while (used.has(id)) id++;
  return id;
}

function parsePathIn(path: unknown, field: string, fail: (problem: string) => never): LwM2MPath {
  try {
    return LwM2MPath.parse(path as string);
  } catch (error) {
    return fail(`${field}: ${error instanceof PathError ? error.message : String(error)}`);
  }
}

/** One account as a bootstrap writes it: instance ids, values, and the credential to hand on. */
export interface PlannedAccount {
  securityInstance: number;
  serverInstance: number;
  shortServerId: number;
  uri: string;
  security: SecurityModeName;
  identity?: string;
  key?: Buffer;
  generated: boolean;
  target?: AccountTarget;
  security0: InstanceValue;
  server1: InstanceValue;
}

/**
 * The accounts of a configuration for one device. Security instances take the ids the device's
 * bootstrap account does not (`taken`); keys are generated now when the account has none.
 */
export function planAccounts(config: BootstrapConfig, endpoint: string, deviceAddress: string, taken: ReadonlySet<number>): PlannedAccount[] {
  let nextSecurity = 0;
  const freeSecurity = (): number => {
    while (taken.has(nextSecurity)) nextSecurity++;
    return nextSecurity++;
  };
  return config.servers.map((account, index) => {
    const security = account.security!;
    const uri = account.uri ?? account.server!.uriFor(deviceAddress, security === 'psk');
    const generated = security === 'psk' && !account.psk;
    const identity = security === 'psk' ? account.psk?.identity ?? endpoint : undefined;
    const key = security === 'psk' ? account.psk?.key ?? randomBytes(GENERATED_KEY_BYTES) : undefined;
    const ssid = account.shortServerId!;
    const security0: InstanceValue = {
      0: uri,
      1: false,
      2: SECURITY_MODE[security],
      3: Buffer.from(identity ?? ''),
      4: Buffer.alloc(0),
      5: key ?? Buffer.alloc(0),
      10: ssid,
    };
    const server1: InstanceValue = { 0: ssid, 1: account.lifetime!, 2: account.defaultPmin ?? 0, 3: account.defaultPmax ?? 0, 6: false, 7: account.binding! };
    return { securityInstance: freeSecurity(), serverInstance: index, shortServerId: ssid, uri, security, identity, key, generated, target: account.server, security0, server1 };
  });
}
