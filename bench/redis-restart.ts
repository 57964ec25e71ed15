/**
 * The restart of bench/server on a Redis store: a store filled with `count` registration records
 * (RedisStore.save of each, then one flush), then a new RedisStore and a new LwM2MServer on the
 * same prefix, timed from their construction until `listen()` resolved (every record is loaded by
 * then); `server.registrations().length` must be `count`. Then some of the devices (`probes`,
 * bound sockets in this process, whose address and port their records hold) send an Update of
 * their old registration, without registering again: each must be answered 2.04 and written back
 * to Redis.
 *
 * Baselines, the same records in the same run: a raw HSCAN of the hash with ioredis (the bytes
 * only, nothing parsed or checked), and a new LwM2MServer on a FileStore holding them (its
 * `listen()` timed the same way). The file baseline runs before the Redis restart.
 */
import { createSocket, type Socket } from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { FileStore, LwM2MServer, RedisStore, type RegistrationRecord, type RegistrationStore, type StoreError } from '../lib';
import { OptionNumber, parseMessage, serializeMessage } from '../lib/transport/message';

export interface RestartSettings {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** registration records in the store */
  count: number;
  /** devices that send an Update after the restart (at most `count`) */
  probes: number;
}

export interface RestartResult {
  count: number;
  /** RedisStore.save × count, then flush() resolved */
  fillMs: number;
  /** the restart: new RedisStore + new LwM2MServer, until listen() resolved */
  listenMs: number;
  /** server.registrations().length right after listen() */
  loaded: number;
  /** baseline: the raw HSCAN of the hash (COUNT 1000), nothing parsed */
  hscan: { ms: number; fields: number };
  /** baseline: the same records in a FileStore (written by save × count and close), and a server restarted on it */
  file: { fillMs: number; listenMs: number; loaded: number; bytes: number };
  /** the devices' Updates after the restart: answered 2.04, and written back to Redis with a later updatedAt */
  probes: { sent: number; changed: number; writtenBack: number; ms: number };
  /** what the stores and servers reported (none is expected) */
  problems: string[];
}

const LINKS = '</>;rt="oma.lwm2m";ct=0,</1/0>,</3/0>,</3303/0>';
const LIFETIME = 86400;
/** a device's Update, sent again every second while unanswered, given up after this many sends */
const UPDATE_TRIES = 5;

export async function measureRestart(settings: RestartSettings): Promise<RestartResult> {
  const { url, count } = settings;
  const prefix = `bench-restart-${process.pid}:`;
  const problems: string[] = [];
  const report = (what: string) => (error: StoreError) => problems.push(`${what}: ${error.message}`);
  const probeSockets = await Promise.all(Array.from({ length: Math.min(settings.probes, count) }, () => boundSocket()));
  const records = registrationRecords(count, probeSockets);

  // --- fill ---
  const filler = new RedisStore({ url, prefix, onError: report('filling') });
  let began = performance.now();
  for (const record of records) filler.save(record);
  await filler.flush();
  const fillMs = performance.now() - began;
  await filler.close();

  // --- baseline: the raw HSCAN of the hash ---
  const raw = new Redis(url, { maxRetriesPerRequest: 1 });
  began = performance.now();
  let fields = 0;
  let cursor = '0';
  do {
    const [next, flat] = await raw.hscan(`${prefix}registrations`, cursor, 'COUNT', 1000);
    fields += flat.length / 2;
    cursor = next;
  } while (cursor !== '0');
  const hscan = { ms: performance.now() - began, fields };

  // --- baseline: a server restarted on a FileStore holding the same records ---
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-bench-restart-'));
  const file = path.join(dir, 'registrations.json');
  let fileResult: RestartResult['file'];
  try {
    const fileFiller = new FileStore(file, { onError: report('filling the file') });
    began = performance.now();
    for (const record of records) fileFiller.save(record);
    await fileFiller.close();
    const fileFillMs = performance.now() - began;
    const restarted = await restart(() => new FileStore(file, { onError: report('the file store') }), problems, 'the server on the file');
    fileResult = { fillMs: fileFillMs, listenMs: restarted.ms, loaded: restarted.server.registrations().length, bytes: fs.statSync(file).size };
    await restarted.server.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // --- the restart on Redis, then the devices' Updates without registering again ---
  let store: RedisStore | undefined;
  const restarted = await restart(() => (store = new RedisStore({ url, prefix, onError: report('the restarted server') })), problems, 'the restarted server');
  const loaded = restarted.server.registrations().length;
  const { port } = restarted.server.address();
  began = performance.now();
  const answers = await Promise.all(probeSockets.map((socket, n) => update(socket, port, records[n]!.id)));
  const probeMs = performance.now() - began;
  await store!.flush();
  const probeIds = records.slice(0, probeSockets.length).map((record) => record.id);
  const stored = probeIds.length > 0 ? await raw.hmget(`${prefix}registrations`, ...probeIds) : [];
  const writtenBack = stored.filter((json, n) => json !== null && (JSON.parse(json) as RegistrationRecord).updatedAt > records[n]!.updatedAt).length;
  await restarted.server.close();

  await raw.del(`${prefix}registrations`, `${prefix}observations`, `${prefix}queue`);
  raw.disconnect();
  for (const socket of probeSockets) socket.close();
  return {
    count,
    fillMs,
    listenMs: restarted.ms,
    loaded,
    hscan,
    file: fileResult,
    /** the devices' Updates after the restart: answered 2.04, and written back to Redis with a later updatedAt */
  probes: { sent: probeSockets.length, changed: answers.filter(Boolean).length, writtenBack, ms: probeMs },
    problems,
  };
}

/** A new server on a new store, timed from their construction until listen() resolved. */
async function restart(store: () => RegistrationStore, problems: string[], what: string): Promise<{ server: LwM2MServer; ms: number }> {
  const began = performance.now();
  const server = new LwM2MServer({ port: 0, address: '127.0.0.1', store: store() });
  server.on('error', (error) => problems.push(`${what}: ${String(error)}`));
  await server.listen();
  return { server, ms: performance.now() - began };
}

/**
 * Records as the server writes them for devices that registered with the bench's object list:
 * the first ones at the probe sockets' addresses, the others at distinct addresses of 127.16/12
 * and above (no socket there: nothing is sent to them).
 */
function registrationRecords(count: number, probes: readonly Socket[]): RegistrationRecord[] {
  const now = Date.now() - 1000; // an Update after the restart gives a later updatedAt
  return Array.from({ length: count }, (_, n) => {
    const probe = probes[n]?.address();
    return {
      id: `r${n.toString(36).padStart(7, '0')}`,
      endpoint: `restart-${String(n).padStart(7, '0')}`,
      lifetime: LIFETIME,
      version: '1.1',
      binding: 'U',
      queueMode: false,
      objectLinks: LINKS,
      address: probe?.address ?? `127.${16 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`,
      port: probe?.port ?? 5683,
      rootPath: '',
      registeredAt: now,
      updatedAt: now,
    };
  });
}

async function boundSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

/** A device's Update of registration `id` (CON POST /rd/<id>, no parameters): true once answered 2.04 Changed. */
function update(socket: Socket, serverPort: number, id: string): Promise<boolean> {
  const messageId = Math.floor(Math.random() * 0x10000);
  const token = Buffer.from(id.slice(-8).padStart(8, '0'));
  const datagram = serializeMessage({
    type: 'CON',
    code: '0.02',
    messageId,
    token,
    options: [
      { number: OptionNumber.URI_PATH, value: Buffer.from('rd') },
      { number: OptionNumber.URI_PATH, value: Buffer.from(id) },
    ],
    payload: Buffer.alloc(0),
  });
  return new Promise((resolve) => {
    let tries = 0;
    const finish = (changed: boolean): void => {
      clearInterval(timer);
      socket.off('message', onMessage);
      resolve(changed);
    };
    const onMessage = (answer: Buffer): void => {
      try {
        const message = parseMessage(answer);
        if (message.messageId === messageId && message.token.equals(token)) finish(message.code === '2.04');
      } catch {
        // not CoAP: not the answer
      }
    };
    const send = (): void => {
      if (tries++ >= UPDATE_TRIES) return finish(false);
      socket.send(datagram, serverPort, '127.0.0.1');
    };
    socket.on('message', onMessage);
    const timer = setInterval(send, 1000);
    send();
  });
}
