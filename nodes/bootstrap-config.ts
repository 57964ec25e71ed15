/**
 * The lwm2m-bootstrap node's configurations: the editor's table rows and `msg.payload` turned into
 * the library's BootstrapConfig, and the keys of the rows as the node's credentials keep them.
 * Whether a configuration is valid beyond that is the library's to say (setConfig throws a
 * TypeError that names the problem).
 */
import type { BootstrapConfig, ServerAccount } from '../lib';
import { pskKey } from './psk';

/** A row of the editor's table: one endpoint (or `*`), one server account. */
export interface ConfigRow {
  endpoint: string;
  /** `server`: the node's lwm2m-server node; `uri`: any LwM2M server by URI */
  target: 'server' | 'uri';
  uri?: string;
  security: 'nosec' | 'psk';
  /** for PSK: a new key at every bootstrap (identity: the endpoint name); else identity and key are given */
  generate?: boolean;
  /** for PSK without generate: the identity (empty: the endpoint name; not for `*`) */
  identity?: string;
  lifetime?: number | string;
  binding?: string;
}

/** An lwm2m-server node as a configuration needs it: its LwM2MServer, once it listens. */
export interface TargetServer {
  /** the server node's id and name, for messages */
  label: string;
  /** the LwM2MServer, after `ready` */
  server: ServerAccount['server'];
  /** whether it listens for DTLS (a PSK account needs that) */
  secure(): boolean;
}

/**
 * The rows of the node's `configs` setting, checked for what the editor also checks: an endpoint
 * given once, a target, a PSK that can be handed on.
 */
export function rowsOf(value: unknown): ConfigRow[] {
  if (value === undefined || value === null || value === '') return [];
  if (!Array.isArray(value)) throw new Error('the configurations must be a list of rows');
  const seen = new Set<string>();
  return value.map((raw, index) => {
    const row = (raw ?? {}) as Partial<ConfigRow>;
    const endpoint = String(row.endpoint ?? '').trim();
    const where = `row ${index + 1}${endpoint ? ` (${endpoint})` : ''}`;
    if (!endpoint) throw new Error(`${where} of the configurations has no endpoint: a name, or * for every device`);
    if (/[\s&?#"<>\\]/.test(endpoint)) throw new Error(`${where}: an endpoint name has no spaces and none of & ? # " < > \\`);
    if (seen.has(endpoint)) throw new Error(`${where}: ${endpoint} has two rows; one row per endpoint`);
    seen.add(endpoint);
    const target = row.target === 'uri' ? 'uri' : 'server';
    const security = row.security === 'psk' ? 'psk' : 'nosec';
    const uri = String(row.uri ?? '').trim();
    if (target === 'uri' && !uri) throw new Error(`${where}: no server URI (coap://host:port or coaps://host:port)`);
    const generate = security === 'psk' && row.generate !== false;
    if (generate && target === 'uri') throw new Error(`${where}: a generated key reaches only the server node of this flow; for a server by URI give the identity and key`);
    if (security === 'psk' && !generate && endpoint === '*' && !String(row.identity ?? '').trim()) {
      throw new Error(`${where}: every device would share one PSK identity; generate keys, or give each device a row of its own`);
    }
    return { endpoint, target, uri, security, generate, identity: String(row.identity ?? '').trim(), lifetime: row.lifetime, binding: row.binding };
  });
}

/** Where a row's or a message's key comes from: the rows keep theirs in the node's credentials. */
export interface RowKeys {
  /** password: `{ "<endpoint>": "<hex key>" }`, the stored keys of the rows with given PSKs */
  configKeys?: string;
  /** password: the keys typed in the editor since the last deploy (folded into configKeys) */
  configChanges?: string;
}

/** The keys of the rows that need one (PSK, not generated), by endpoint; and the credentials to keep. */
export function rowKeys(rows: readonly ConfigRow[], credentials: RowKeys): { keys: Map<string, Buffer>; folded: { configKeys: string } } {
  const stored = keyMap(credentials.configKeys, 'the stored keys of the configurations');
  const changes = keyMap(credentials.configChanges, 'the keys typed in the configurations');
  const keys = new Map<string, Buffer>();
  for (const row of rows) {
    if (row.security !== 'psk' || row.generate) continue;
    const text = changes[row.endpoint] ?? stored[row.endpoint];
    if (text === undefined || text === '') throw new Error(`the configuration of ${row.endpoint} has no PSK key: type it in the table, or tick "generate"`);
    keys.set(row.endpoint, pskKey(text, `the configuration of ${row.endpoint}`));
  }
  return { keys, folded: { configKeys: JSON.stringify(Object.fromEntries([...keys].map(([endpoint, key]) => [endpoint, key.toString('hex')]))) } };
}

/** A row as the library's configuration; `target` is the node's server node (needed for a `server` row). */
export function rowConfig(row: ConfigRow, key: Buffer | undefined, target: TargetServer | undefined): BootstrapConfig {
  const account: ServerAccount = { security: row.security, ...accountDetails(row, `the configuration of ${row.endpoint}`) };
  if (row.target === 'uri') account.uri = row.uri;
  else {
    if (!target) throw new Error(`the configuration of ${row.endpoint} points at the server node, but the bootstrap node has none: choose one`);
    if (row.security === 'psk' && !target.secure()) throw new Error(`the configuration of ${row.endpoint} is PSK, but the server node ${target.label} has DTLS off: tick DTLS in it`);
    account.server = target.server;
  }
  if (row.security === 'psk' && !row.generate) account.psk = { identity: row.identity || row.endpoint, key: key! };
  return { servers: [account] };
}

/** Lifetime and binding of a row or a message's account: empty keeps the library's default. */
function accountDetails(given: { lifetime?: unknown; binding?: unknown }, where: string): Pick<ServerAccount, 'lifetime' | 'binding'> {
  const details: Pick<ServerAccount, 'lifetime' | 'binding'> = {};
  if (given.lifetime !== undefined && given.lifetime !== null && given.lifetime !== '') {
    const lifetime = Number(given.lifetime);
    if (!Number.isInteger(lifetime) || lifetime < 1) throw new Error(`${where}: the lifetime must be a whole number of seconds ≥ 1, not ${JSON.stringify(given.lifetime)}`);
    details.lifetime = lifetime;
  }
  if (given.binding !== undefined && given.binding !== null && given.binding !== '') details.binding = String(given.binding);
  return details;
}

/**
 * `msg.payload` as a configuration: the library's shape, with what JSON can carry:
 * - `psk.key` as hex text (or a Buffer, or a Buffer as JSON: `{ type: "Buffer", data: [...] }`);
 * - `server: true` (the node's server node) or `server: "<id of an lwm2m-server node>"`;
 * - one account may stand for the list: `{ server: true, security: "psk" }` is `{ servers: [that] }`.
 * An account with a server node and no `security` is PSK when that server has DTLS, else NoSec.
 * `serverNode` finds a server node by id (`true`: the node's own) once it listens; it throws when there is none.
 */
export async function messageConfig(payload: unknown, endpoint: string, serverNode: (id: true | string) => Promise<TargetServer>): Promise<BootstrapConfig> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || Buffer.isBuffer(payload)) {
    throw new Error(`msg.payload must be a bootstrap configuration ({ servers: [{ uri or server, security, psk, lifetime, binding }] }), or null to remove the one of ${endpoint}`);
  }
  const given = payload as Record<string, unknown>;
  const single = given.servers === undefined && (given.uri !== undefined || given.server !== undefined);
  const { servers: list, ...rest } = single ? { servers: [given] } : given;
  if (!Array.isArray(list)) throw new Error('msg.payload.servers must be a list of server accounts');
  const servers: ServerAccount[] = [];
  for (const [index, raw] of list.entries()) {
    const where = `msg.payload.servers[${index}]`;
    if (typeof raw !== 'object' || raw === null) throw new Error(`${where} must be an object`);
    const { server, psk, ...account } = raw as Record<string, unknown>;
    const result = { ...account } as ServerAccount;
    if (server !== undefined && server !== false && server !== null) {
      if (server !== true && typeof server !== 'string') throw new Error(`${where}.server must be true (this node's server node) or the id of an lwm2m-server node`);
      const target = await serverNode(server);
      result.server = target.server;
      result.security ??= target.secure() ? 'psk' : 'nosec';
      if (result.security === 'psk' && !target.secure()) throw new Error(`${where} is PSK, but the server node ${target.label} has DTLS off`);
    }
    if (psk !== undefined && psk !== null) {
      const { identity, key } = psk as { identity?: unknown; key?: unknown };
      result.psk = { identity: identity === undefined || identity === '' ? endpoint : String(identity), key: keyOf(key, where) };
    }
    servers.push(result);
  }
  if (single) for (const key of ['uri', 'server', 'security', 'psk', 'lifetime', 'binding', 'shortServerId', 'defaultPmin', 'defaultPmax']) delete (rest as Record<string, unknown>)[key];
  return { ...(rest as Omit<BootstrapConfig, 'servers'>), servers };
}

function keyOf(value: unknown, where: string): Buffer {
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  const json = value as { type?: unknown; data?: unknown };
  if (json && typeof json === 'object' && json.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data as number[]);
  if (typeof value === 'string') return pskKey(value, where);
  throw new Error(`${where}.psk.key must be the key as hex text or a Buffer`);
}

function keyMap(text: unknown, what: string): Record<string, string> {
  if (text === undefined || text === null || text === '') return {};
  let map: unknown;
  try {
    map = JSON.parse(String(text));
  } catch {
    throw new Error(`${what} are not valid JSON`);
  }
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${what} must be an object of endpoint: key`);
  return map as Record<string, string>;
}
