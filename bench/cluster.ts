/**
 * Several instances sharing a Redis store (a real redis-server, started here): what forwarding
 * costs. Two LwM2MServer instances, `a` and `b`, and --devices simulated devices (LwM2MClient, in
 * this process) registered on `b`. Measured in one run, each for --seconds with --window reads in
 * flight:
 *
 * - reads/s made on `b`, which sends them from its own socket (the baseline);
 * - reads/s made on `a`, forwarded over Redis pub/sub to `b`, which sends them and answers back;
 * - Redis PING round trips/s over one connection with the same window (the floor of a forwarded
 *   request's two messages through Redis);
 * - the time until `a` sees a registration made on `b` (median and worst of --devices).
 *
 * Everything shares this process's one thread (servers, devices, the Redis client side), so the
 * ratio forwarded ÷ local is what matters. Never asserted; exits non-zero only when a read fails
 * or a registration is not seen.
 *
 *   node dist/bench/cluster.js [--devices 50] [--seconds 5] [--window 32]
 */
import { Redis } from 'ioredis';
import { LwM2MClient, LwM2MServer, RedisStore, type ClusterRegistrationEvent } from '../lib';
import { startRedis } from '../test/helpers/redis';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const DEVICES = Number(args.get('devices') ?? 50);
const SECONDS = Number(args.get('seconds') ?? 5);
const WINDOW = Number(args.get('window') ?? 32);

/** Runs `once` with `window` calls in flight for `seconds`; the completed calls per second. */
async function rate(once: (index: number) => Promise<unknown>): Promise<number> {
  const end = Date.now() + SECONDS * 1000;
  let done = 0;
  const lane = async (first: number) => {
    for (let index = first; Date.now() < end; index += WINDOW) {
      await once(index);
      done++;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: WINDOW }, (_, first) => lane(first)));
  return done / ((Date.now() - started) / 1000);
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const servers: LwM2MServer[] = [];
  const devices: LwM2MClient[] = [];
  try {
    const instance = async (name: string) => {
      const server = new LwM2MServer({ port: 0, address: '127.0.0.1', store: new RedisStore({ url: redis.url, prefix: 'bench:' }), instance: name });
      server.on('error', (error) => console.error(String(error)));
      servers.push(server);
      await server.listen();
      return server;
    };
    const a = await instance('a');
    const b = await instance('b');
    const seenAt = new Map<string, number>();
    a.on('clusterRegistration', (event: ClusterRegistrationEvent) => {
      if (event.kind === 'register') seenAt.set(event.registration.endpoint, Date.now());
    });
    const delays: number[] = [];
    for (let index = 0; index < DEVICES; index++) {
      const endpoint = `cluster-${index}`;
      const device = new LwM2MClient({ endpoint, server: `coap://127.0.0.1:${b.address().port}`, lifetime: 600, objects: { 3303: { 0: { 5700: index } } } });
      device.on('error', () => undefined);
      devices.push(device);
      const registered = new Promise<number>((resolve) => b.once('register', () => resolve(Date.now())));
      await device.start();
      const at = await registered;
      const deadline = Date.now() + 10_000;
      while (!seenAt.has(endpoint)) {
        if (Date.now() > deadline) throw new Error(`instance a did not see ${endpoint} within 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      delays.push(seenAt.get(endpoint)! - at);
    }
    delays.sort((x, y) => x - y);

    const read = (server: LwM2MServer) => (index: number) => server.read(`cluster-${index % DEVICES}`, '/3303/0/5700', { format: 0 });
    const local = await rate(read(b));
    const forwarded = await rate(read(a));
    const ping = new Redis(redis.url);
    const pings = await rate(() => ping.ping());
    ping.disconnect();

    const row = (figure: string, value: string, note = '') => console.log(`${figure.padEnd(46)} ${value.padStart(12)}  ${note}`);
    console.log(`several instances on one Redis (Node ${process.version}, ${DEVICES} devices on b, ${WINDOW} reads in flight, ${SECONDS} s each)`);
    row('reads/s made on b (local, the baseline)', `${Math.round(local).toLocaleString('en')}/s`);
    row('reads/s made on a (forwarded to b)', `${Math.round(forwarded).toLocaleString('en')}/s`, `${(forwarded / local).toFixed(2)}× local`);
    row('Redis PING round trips/s (one connection)', `${Math.round(pings).toLocaleString('en')}/s`);
    row('a sees a registration on b after (median/max)', `${delays[Math.floor(delays.length / 2)]} / ${delays[delays.length - 1]} ms`);
  } finally {
    for (const device of devices) await device.stop({ deregister: false }).catch(() => undefined);
    for (const server of servers) await server.close();
    await redis.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
