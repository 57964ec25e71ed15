/**
 * The cluster bus over Redis pub/sub, beside a RedisStore (same server, same key prefix):
 *
 * ```text
 * lwm2m:cluster     every instance subscribes: broadcasts (registration changes), batched per tick
 * lwm2m:to:<name>   instance <name> subscribes: forwarded requests, answers, relayed notifications
 * ```
 *
 * Two connections of its own: a subscriber (pub/sub needs one) and a publisher that never queues
 * (a message Redis cannot take now fails at once: the caller gets a clear error, not a late
 * delivery). An expiry claim is a Lua script on the registrations hash, so of the instances that
 * find a registration expired at the same moment exactly one removes it.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { parseRecord } from '../store-records';
import { parseMessages, type ClusterBus, type ClusterHandlers, type ClusterMessage, type ExpiryClaim } from './bus';

/** What the bus needs of its store: connections like the store's, and where registrations are kept. */
export interface RedisBusHost {
  readonly prefix: string;
  duplicate(override?: Partial<RedisOptions>): Redis;
}

/** ms to wait for Redis when joining, before going on and catching up once it is back (the store's load waits its own time after) */
const JOIN_WAIT = 2000;

// KEYS[1] the registrations hash, ARGV[1] the id, ARGV[2] the Update time the caller found expired
const CLAIM_EXPIRY = `
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return 0 end
local ok, record = pcall(cjson.decode, json)
if ok and type(record) == 'table' and tonumber(record.updatedAt) and tonumber(record.updatedAt) > tonumber(ARGV[2]) then return json end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`;

export class RedisBus implements ClusterBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly broadcastChannel: string;
  private readonly registrationsKey: string;
  private instance = '';
  private handlers: ClusterHandlers | undefined;
  private batch: ClusterMessage[] = [];
  private immediate: NodeJS.Immediate | undefined;
  /** the subscriber was ready once: a later 'ready' means it was away and messages may be lost */
  private heard = false;
  private left = false;
  /** the subscriber is connected: a 'close' now loses the others */
  private up = false;

  constructor(private readonly host: RedisBusHost) {
    this.broadcastChannel = `${host.prefix}cluster`;
    this.registrationsKey = `${host.prefix}registrations`;
    this.publisher = host.duplicate();
    this.subscriber = host.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: true });
    for (const client of [this.publisher, this.subscriber]) client.on('error', () => undefined); // reported as failed calls and by the store
    this.publisher.defineCommand('lwm2mClaimExpiry', { numberOfKeys: 1, lua: CLAIM_EXPIRY });
  }

  private direct(instance: string): string {
    return `${this.host.prefix}to:${instance}`;
  }

  async join(instance: string, handlers: ClusterHandlers): Promise<void> {
    this.instance = instance;
    this.handlers = handlers;
    this.subscriber.on('messageBuffer', (_channel: Buffer, data: Buffer) => this.received(data));
    this.subscriber.on('ready', () => {
      if (this.heard && !this.left) handlers.resync();
      this.heard = true;
      this.up = true;
    });
    this.subscriber.on('close', () => {
      if (!this.up || this.left) return;
      this.up = false;
      handlers.lost('the connection to Redis was lost');
    });
    const reachable = await this.connect(this.publisher);
    if (reachable) {
      const [, count] = (await this.publisher.pubsub('NUMSUB', this.direct(instance))) as [string, number];
      if (Number(count) > 0) throw new Error(`another server instance named ${JSON.stringify(instance)} is running on this Redis (key prefix ${JSON.stringify(this.host.prefix)}): give each instance a name of its own`);
    } else {
      handlers.warn(`cannot reach Redis to join the other instances; joining once it is back`);
    }
    this.subscriber.connect().catch(() => undefined);
    const subscribed = this.subscriber.subscribe(this.broadcastChannel, this.direct(instance));
    // with Redis away the subscription waits for it, and the first 'ready' after that catches up (resync)
    if (reachable) await subscribed;
    else {
      this.heard = true;
      subscribed.catch(() => undefined);
    }
  }

  private received(data: Buffer): void {
    const messages = parseMessages(data.toString('utf8'));
    if (typeof messages === 'string') {
      this.handlers?.warn(`ignored a cluster message: ${messages}`);
      return;
    }
    for (const message of messages) if (message.from !== this.instance) this.handlers?.receive(message);
  }

  broadcast(message: ClusterMessage): void {
    if (this.left) return;
    this.batch.push(message);
    this.immediate ??= setImmediate(() => this.publishBatch());
  }

  private publishBatch(): void {
    this.immediate = undefined;
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    this.publisher.publish(this.broadcastChannel, JSON.stringify(batch.length === 1 ? batch[0] : batch)).catch((error: Error) => {
      // the others miss these changes: they read the store again when their connection comes back, or expire what they missed
      this.handlers?.warn(`could not tell the other instances of ${batch.length} registration change(s): ${error.message}`);
    });
  }

  async send(instance: string, message: ClusterMessage): Promise<boolean> {
    const receivers = await this.publisher.publish(this.direct(instance), JSON.stringify(message));
    return receivers > 0;
  }

  async isAlive(instance: string): Promise<boolean> {
    const [, count] = (await this.publisher.pubsub('NUMSUB', this.direct(instance))) as [string, number];
    return Number(count) > 0;
  }

  async claimExpiry(id: string, updatedAt: number): Promise<ExpiryClaim> {
    const result = await (this.publisher as unknown as { lwm2mClaimExpiry(key: string, id: string, at: string): Promise<number | string> }).lwm2mClaimExpiry(this.registrationsKey, id, String(updatedAt));
    if (result === 1) return 'claimed';
    if (result === 0) return 'gone';
    // a newer record (an Update elsewhere), checked like any record read back; one that is not valid counts as gone
    const record = parseRecord('registrations', id, String(result));
    return typeof record === 'string' ? 'gone' : { newer: record };
  }

  async leave(): Promise<void> {
    if (this.left) return;
    if (this.immediate) clearImmediate(this.immediate);
    this.publishBatch();
    this.left = true;
    await Promise.all(
      [this.publisher, this.subscriber].map((client) => (client.status === 'ready' ? client.quit().then(() => undefined, () => client.disconnect()) : Promise.resolve(client.disconnect()))),
    );
  }

  /** Connects a lazy client; resolves whether it became ready within JOIN_WAIT (it goes on trying either way). */
  private connect(client: Redis): Promise<boolean> {
    if (client.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        client.off('ready', ready);
        resolve(false);
      }, JOIN_WAIT);
      const ready = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      client.once('ready', ready);
      if (client.status === 'wait') client.connect().catch(() => undefined);
    });
  }
}
