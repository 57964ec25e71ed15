/**
 * LwM2M server accounts as the object tree holds them: a Security (0) instance and a Server (1)
 * instance linked by their Short Server ID (/0/x/10 = /1/y/0), and the Bootstrap-Server account,
 * a Security instance with Bootstrap-Server (/0/x/1) true and no Short Server ID. Which account the
 * client registers with, and whether a bootstrap left a usable one, is decided here.
 *
 * Security resources used: 0 URI, 1 Bootstrap-Server, 2 Security Mode (0 PSK, 1 Raw Public Key,
 * 2 Certificate, 3 NoSec), 3 PSK identity (or our public key or certificate), 4 the server's public
 * key or certificate, 5 PSK key (or our private key), 10 Short Server ID. Server resources: 0 Short Server ID, 1 Lifetime, 7 Binding.
 */
import { securityName, UNSUPPORTED_SECURITY_MODES, type SecurityName } from '../protocol';
import { parseCoapUri } from '../transport/uri';
import { ecdsaConnectionOf, type EcdsaConnection } from './ecdsa-keys';
import type { ObjectTree } from './tree';

export type { SecurityName };

/** Where and how to reach one server (or the bootstrap server). */
export interface Connection {
  uri: string;
  security: SecurityName;
  /** the PSK of a `psk` connection */
  psk?: { identity: Buffer; key: Buffer };
  /** our key and how the server is checked, for an `rpk` or `certificate` connection */
  ecdsa?: EcdsaConnection;
}

/** The account a client registers with. */
export interface ServerAccount extends Connection {
  securityInstance: number;
  serverInstance: number;
  shortServerId: number;
  /** seconds */
  lifetime: number;
  binding: 'U' | 'UQ';
}

/** What the `bootstrapped` event tells: never keys. */
export interface AccountSummary {
  uri: string;
  shortServerId: number;
  security: SecurityName;
}

/** True for a Security instance that describes a Bootstrap-Server. */
export function isBootstrapInstance(tree: ObjectTree, instanceId: number): boolean {
  return tree.get(`/0/${instanceId}/1`) === true;
}

/** The Security instance of the Bootstrap-Server account, if the client has one. */
export function bootstrapInstanceId(tree: ObjectTree): number | undefined {
  return tree.instanceIds(0).find((iid) => isBootstrapInstance(tree, iid));
}

/** How to reach the bootstrap server, from its Security instance; throws an Error saying what is wrong. */
export function bootstrapConnection(tree: ObjectTree): Connection {
  const iid = bootstrapInstanceId(tree);
  if (iid === undefined) throw new Error('the client has no Bootstrap-Server account (a Security instance with resource 1 true)');
  const connection = connectionOf(tree, iid);
  if (typeof connection === 'string') throw new Error(`the Bootstrap-Server account /0/${iid}: ${connection}`);
  return connection;
}

/**
 * The account to register with: of the complete accounts (Security and Server instance with the
 * same Short Server ID), the one with the lowest Short Server ID. Registering with several servers
 * at once is not supported; the other accounts stay in the tree. Without a usable account, the
 * problem says why (the text of a 4.06 answer to Bootstrap-Finish).
 */
export function chooseAccount(tree: ObjectTree, defaultLifetime: number): { account: ServerAccount } | { problem: string } {
  const pairs = completeAccounts(tree);
  if (pairs.length === 0) return { problem: noAccountReason(tree) };
  const { securityInstance, serverInstance, shortServerId } = pairs[0]!;
  const connection = connectionOf(tree, securityInstance);
  if (typeof connection === 'string') return { problem: `the account of Short Server ID ${shortServerId} (/0/${securityInstance}): ${connection}` };
  const lifetime = tree.get(`/1/${serverInstance}/1`);
  const bindingText = tree.get(`/1/${serverInstance}/7`);
  const binding = bindingOf(bindingText);
  if (!binding) return { problem: `the binding ${JSON.stringify(bindingText)} of /1/${serverInstance} has no UDP (U)` };
  return {
    account: {
      ...connection,
      securityInstance,
      serverInstance,
      shortServerId,
      lifetime: typeof lifetime === 'number' && Number.isInteger(lifetime) && lifetime >= 1 ? lifetime : defaultLifetime,
      binding,
    },
  };
}

/** The complete accounts the client has, for the `bootstrapped` event (keys left out). */
export function accountSummaries(tree: ObjectTree): AccountSummary[] {
  const summaries: AccountSummary[] = [];
  for (const { securityInstance, shortServerId } of completeAccounts(tree)) {
    const connection = connectionOf(tree, securityInstance);
    if (typeof connection !== 'string') summaries.push({ uri: connection.uri, shortServerId, security: connection.security });
  }
  return summaries;
}

/** Short Server ID of a Security or Server instance, when it holds a valid one. */
export function shortServerIdOf(tree: ObjectTree, objectId: 0 | 1, instanceId: number): number | undefined {
  const value = tree.get(`/${objectId}/${instanceId}/${objectId === 0 ? 10 : 0}`);
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65534 ? value : undefined;
}

/** Non-bootstrap Security instances with a matching Server instance, by ascending Short Server ID. */
function completeAccounts(tree: ObjectTree): Array<{ securityInstance: number; serverInstance: number; shortServerId: number }> {
  const servers = new Map<number, number>();
  for (const iid of tree.instanceIds(1)) {
    const ssid = shortServerIdOf(tree, 1, iid);
    if (ssid !== undefined && !servers.has(ssid)) servers.set(ssid, iid);
  }
  const pairs: Array<{ securityInstance: number; serverInstance: number; shortServerId: number }> = [];
  for (const iid of tree.instanceIds(0)) {
    if (isBootstrapInstance(tree, iid)) continue;
    const ssid = shortServerIdOf(tree, 0, iid);
    const server = ssid === undefined ? undefined : servers.get(ssid);
    if (server !== undefined && !pairs.some((pair) => pair.shortServerId === ssid)) pairs.push({ securityInstance: iid, serverInstance: server, shortServerId: ssid! });
  }
  return pairs.sort((a, b) => a.shortServerId - b.shortServerId);
}

function noAccountReason(tree: ObjectTree): string {
  const security = tree.instanceIds(0).filter((iid) => !isBootstrapInstance(tree, iid));
  if (security.length === 0) return 'no LwM2M server account: no Security instance other than the Bootstrap-Server account';
  const ssids = security.map((iid) => shortServerIdOf(tree, 0, iid)).filter((ssid) => ssid !== undefined);
  if (ssids.length === 0) return `no LwM2M server account: Security ${security.map((iid) => `/0/${iid}`).join(', ')} has no valid Short Server ID (resource 10)`;
  return `no LwM2M server account: no Server instance (1) has the Short Server ID ${ssids.join(' or ')} of a Security instance`;
}

/** The URI, security mode and PSK of a Security instance, or what is wrong with them. */
function connectionOf(tree: ObjectTree, instanceId: number): Connection | string {
  const uri = tree.get(`/0/${instanceId}/0`);
  const mode = tree.get(`/0/${instanceId}/2`);
  if (typeof uri !== 'string' || uri === '') return 'it has no server URI (resource 0)';
  let secure: boolean;
  try {
    secure = parseCoapUri(uri).secure;
  } catch (error) {
    return (error as Error).message;
  }
  const security = securityName(mode);
  if (!security) {
    const name = typeof mode === 'number' ? UNSUPPORTED_SECURITY_MODES[mode] : undefined;
    return `Security Mode ${String(mode)}${name ? ` (${name})` : ''} is not supported; use 0 (PSK), 1 (Raw Public Key), 2 (Certificate) or 3 (NoSec)`;
  }
  if (security === 'nosec') {
    if (secure) return `${uri} is coaps:// but the Security Mode is 3 (NoSec)`;
    return { uri, security };
  }
  if (!secure) return `${uri} is coap:// but the Security Mode is ${String(mode)} (${MODE_NAMES[security]}); it needs coaps://`;
  if (security !== 'psk') {
    const ecdsa = ecdsaConnectionOf(security, tree.get(`/0/${instanceId}/3`), tree.get(`/0/${instanceId}/4`), tree.get(`/0/${instanceId}/5`));
    return typeof ecdsa === 'string' ? ecdsa : { uri, security, ecdsa };
  }
  const identity = tree.get(`/0/${instanceId}/3`);
  const key = tree.get(`/0/${instanceId}/5`);
  if (!Buffer.isBuffer(identity) || identity.length === 0) return 'the PSK identity (resource 3) is empty';
  if (!Buffer.isBuffer(key) || key.length === 0) return 'the PSK (resource 5) is empty';
  return { uri, security, psk: { identity: Buffer.from(identity), key: Buffer.from(key) } };
}

const MODE_NAMES: Record<Exclude<SecurityName, 'nosec'>, string> = { psk: 'PSK', rpk: 'Raw Public Key', certificate: 'Certificate' };

/** `UQ` (queue mode) or `U`; anything without UDP is not a binding this client can use. */
function bindingOf(value: unknown): 'U' | 'UQ' | undefined {
  if (value === undefined) return 'U';
  if (typeof value !== 'string' || !value.includes('U')) return undefined;
  return value.includes('Q') ? 'UQ' : 'U';
}
