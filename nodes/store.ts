/**
 * The server node's Store setting made into the store its LwM2MServer keeps what must survive a
 * restart in: a file in the Node-RED user directory (the default, also for a node saved before the
 * setting existed, so a restart or a full deploy does not forget every device), Redis (shared by
 * several Node-RED instances), or nothing beyond the server's own memory.
 */
import * as path from 'node:path';
import { FileStore, RedisStore, type RegistrationStore } from '../lib';
import { withoutPassword } from '../lib/server/redis-store';

export { withoutPassword };
import type { NodeDef } from './red';

export type StoreKind = 'memory' | 'file' | 'redis';

/** The key prefix of a Redis store when the node names none. */
export const DEFAULT_REDIS_PREFIX = 'lwm2m:';

/** The server node's credentials this module reads: the Redis password (a password credential, never in the flow). */
export interface StoreCredentials {
  redisPassword?: string;
}

/** The kind of store a node's setting names; none (a node from before the setting) is `file`. */
export function storeKind(setting: unknown): StoreKind {
  if (setting === undefined || setting === null || setting === '') return 'file';
  if (setting === 'memory' || setting === 'file' || setting === 'redis') return setting;
  throw new Error(`Store: ${JSON.stringify(setting)} is not memory, file or redis`);
}

/** The store file of a server node: one per node id, so the node made again by a deploy finds it. */
export function storeFile(userDir: string | undefined, nodeId: string): string {
  return path.join(userDir ?? '.', 'lwm2m', `registrations-${nodeId}.json`);
}

/** A Redis URL as typed, checked: `redis://` or `rediss://` (TLS) with a host. */
export function redisUrl(setting: unknown): string {
  const text = String(setting ?? '').trim();
  if (text === '') throw new Error('Store: Redis needs a URL, e.g. redis://127.0.0.1:6379/0');
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    // shown below without a password it may hold
  }
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw new Error(`Store: the Redis URL must be redis://host:port/db or rediss://host:port/db, not ${JSON.stringify(withoutPassword(text))}`);
  }
  return text;
}


/**
 * The store for a server node's settings, or undefined for `memory` (the server then keeps its
 * registrations in its own maps only). Throws an Error starting with `Store:` for a setting that
 * cannot work; `warn` hears what goes wrong with the store later (a failed write, a lost connection).
 */
export function createStore(config: NodeDef, credentials: StoreCredentials, userDir: string | undefined, nodeId: string, warn: (message: string) => void): RegistrationStore | undefined {
  const onError = (error: Error) => warn(error.message);
  switch (storeKind(config.store)) {
    case 'memory':
      return undefined;
    case 'file':
      return new FileStore(storeFile(userDir, nodeId), { onError });
    case 'redis': {
      const url = redisUrl(config.redisUrl);
      const prefix = String(config.redisPrefix ?? '').trim() || DEFAULT_REDIS_PREFIX;
      const password = credentials.redisPassword ? String(credentials.redisPassword) : undefined;
      try {
        return new RedisStore({ url, prefix, onError, ...(password !== undefined ? { password } : {}) });
      } catch (error) {
        throw new Error(`Store: ${(error as Error).message}`, { cause: error });
      }
    }
  }
}
