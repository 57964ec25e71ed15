import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { LwM2MClient, LwM2MError, LwM2MServer, RedisStore, type ClusterRegistrationEvent, type NotifyEvent, type ObservationEndedEvent, type Registration } from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';
import { startRedis, type TestRedis } from '../helpers/redis';
import { udpBalancer, type Balancer } from '../helpers/balancer';

/** Two (or more) LwM2MServer instances on ports of their own, sharing one real Redis. */
describe('LwM2MServer: several instances sharing a Redis store', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  let prefix: string;
  let servers: LwM2MServer[];
  let devices: LwM2MClient[];
  let balancers: Balancer[];
  let run = 0;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });
  beforeEach(() => {
    prefix = `cluster${++run}:`;
    servers = [];
    devices = [];
    balancers = [];
  });
  afterEach(async () => {
    for (const device of devices) await device.stop({ deregister: false }).catch(() => undefined);
    for (const server of servers) await server.close();
    for (const balancer of balancers) await balancer.close();
  });

  const warnings: string[] = [];
  async function instance(name: string, options: { expiryGrace?: number; port?: number; awakeTime?: number } = {}): Promise<LwM2MServer> {
    const store = new RedisStore({ url: redis.url, prefix, onError: (error) => warnings.push(error.message) });
    const server = new LwM2MServer({ port: options.port ?? 0, address: '127.0.0.1', timing: FAST_TIMING, store, instance: name, requestTimeout: 5000, expiryGrace: options.expiryGrace, awakeTime: options.awakeTime, logger: (_level, message) => warnings.push(message) });
    server.on('error', (error) => warnings.push(String(error)));
    servers.push(server);
    await server.listen();
    return server;
  }

  function device(endpoint: string, port: number, lifetime = 60, queue?: { queueQuietTime: number }): LwM2MClient {
    // 5605 (Reset Min and Max Measured Values) is an Execute that does not reboot the device
    const objects = { 3303: { 0: { 5700: 21.5, 5605: { execute: () => undefined } } } };
    const client = new LwM2MClient({ endpoint, server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, lifetime, objects, ...(queue ? { binding: 'UQ' as const, ...queue } : {}) });
    client.on('error', () => undefined);
    devices.push(client);
    return client;
  }

  function counter(server: LwM2MServer, event: 'register' | 'update' | 'deregister' | 'expire'): { count: number } {
    const tally = { count: 0 };
    server.on(event, () => tally.count++);
    return tally;
  }

  function clusterEvent(server: LwM2MServer, kind: ClusterRegistrationEvent['kind'], endpoint: string): Promise<ClusterRegistrationEvent> {
    return new Promise((resolve) => {
      const listener = (event: ClusterRegistrationEvent) => {
        if (event.kind !== kind || event.registration.endpoint !== endpoint) return;
        server.off('clusterRegistration', listener);
        resolve(event);
      };
      server.on('clusterRegistration', listener);
    });
  }

  it('a device registered on B is seen by A at once, with its events emitted by B only', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const registersA = counter(a, 'register');
    const registersB = counter(b, 'register');
    const seen = clusterEvent(a, 'register', 'dev-1');
    await device('dev-1', b.address().port).start();
    const event = await seen;
    assert.equal(event.instance, 'b');
    assert.equal(a.registration('dev-1')?.instance, 'b');
    assert.equal(b.registration('dev-1')?.instance, 'b');
    assert.equal(a.registration('dev-1')?.id, b.registration('dev-1')?.id);
    assert.equal(registersB.count, 1);
    assert.equal(registersA.count, 0, 'A emits no register event for a device that registered on B');

    const updatesA = counter(a, 'update');
    const updated = clusterEvent(a, 'update', 'dev-1');
    const onB = once(b, 'update');
    await devices[0]!.update({ lifetime: 120 });
    await onB;
    assert.equal((await updated).registration.lifetime, 120);
    assert.equal(updatesA.count, 0);

    const gone = clusterEvent(a, 'deregister', 'dev-1');
    const deregistersA = counter(a, 'deregister');
    const deregistersB = counter(b, 'deregister');
    await devices[0]!.deregister();
    await gone;
    assert.equal(a.registration('dev-1'), undefined);
    assert.equal(b.registration('dev-1'), undefined);
    assert.equal(deregistersB.count, 1);
    assert.equal(deregistersA.count, 0);
  });

  it('A reads, writes, executes and observes a device whose socket B holds; errors come back typed', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const seen = clusterEvent(a, 'register', 'dev-2');
    const client = device('dev-2', b.address().port);
    await client.start();
    await seen;
    // B's socket sends: nothing goes out of A's
    const sentByA: string[] = [];
    a.on('trace', (entry) => {
      if (entry.direction === 'out') sentByA.push(entry.code ?? '');
    });

    assert.equal(await a.read('dev-2', '/3303/0/5700'), 21.5);
    await a.write('dev-2', '/3/0/14', '+01:00');
    assert.equal(client.get('/3/0/14'), '+01:00');
    assert.equal(await a.read('dev-2', '/3/0/14'), '+01:00');
    const executed = once(client, 'execute');
    await a.execute('dev-2', '/3303/0/5605', "0='all'");
    assert.deepEqual([(await executed)[0].path.toString(), (await executed)[0].args], ['/3303/0/5605', "0='all'"]);
    assert.deepEqual(sentByA, [], "nothing went out of A's socket");

    await assert.rejects(a.read('dev-2', '/3303/7/5700'), (error: unknown) => error instanceof LwM2MError && error.code === 'NOT_FOUND' && error.coapCode === '4.04');

    const observation = await a.observe('dev-2', '/3303/0/5700');
    assert.equal(observation.value, 21.5);
    assert.deepEqual(a.observations('dev-2').map((o) => o.id), [observation.id]);
    assert.deepEqual(b.observations('dev-2'), [], "the observation is A's: B only passes it on");
    let notifiedB = 0;
    b.on('notify', () => notifiedB++);
    const notified = once(a, 'notify') as Promise<[NotifyEvent]>;
    client.set('/3303/0/5700', 31.5);
    const [notification] = await notified;
    assert.equal(notification.value, 31.5);
    assert.equal(notification.observation.id, observation.id);
    assert.equal(notifiedB, 0);

    const ended = once(a, 'observationEnded') as Promise<[ObservationEndedEvent]>;
    await a.cancelObservation(observation);
    assert.equal((await ended)[0].reason, 'cancelled');
    assert.deepEqual(a.observations(), []);
  });

  it('failover: B stops, the device moves to A through the balancer, and goes on without registering again', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const balancer = await udpBalancer(b.address().port);
    balancers.push(balancer);
    const seen = clusterEvent(a, 'register', 'dev-3');
    const client = device('dev-3', balancer.port);
    await client.start();
    const registration = (await seen).registration;
    const observation = await a.observe('dev-3', '/3303/0/5700');

    await b.close();
    balancer.point(a.address().port);
    let reregistered = false;
    client.on('reregistering', () => (reregistered = true));
    const updated = once(a, 'update') as Promise<[Registration]>;
    await client.update();
    const [moved] = await updated;
    assert.equal(moved.id, registration.id);
    assert.equal(moved.instance, 'a');
    assert.equal(reregistered, false);

    // A now holds the device's socket: its observation is heard there
    const notified = once(a, 'notify') as Promise<[NotifyEvent]>;
    client.set('/3303/0/5700', 25);
    const [notification] = await notified;
    assert.equal(notification.observation.id, observation.id);
    assert.equal(notification.value, 25);
    assert.equal(await a.read('dev-3', '/3303/0/5700'), 25);

    // and the store says so: a new instance sees the device at A
    const c = await instance('c');
    assert.equal(c.registration('dev-3')?.instance, 'a');
  });

  it('failover before any Update: the first thing A hears of the moved device is a notification from a new port, found by its token', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const balancer = await udpBalancer(b.address().port);
    balancers.push(balancer);
    const seen = clusterEvent(a, 'register', 'dev-7');
    const client = device('dev-7', balancer.port);
    await client.start();
    await seen;
    const observation = await a.observe('dev-7', '/3303/0/5700');
    await b.close();
    balancer.point(a.address().port);
    const values: unknown[] = [];
    a.on('notify', (event) => {
      if (event.observation.id === observation.id) values.push(event.value);
    });
    // a notification held while its token is looked up is lost if it is not Confirmable: the device changes the value until one is heard
    for (let value = 1; values.length === 0; value++) {
      assert.ok(value < 100, 'no notification reached A');
      client.set('/3303/0/5700', value);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(a.registration('dev-7')?.instance, 'a');
    // the observation goes on: a later value is heard too
    const next = once(a, 'notify') as Promise<[NotifyEvent]>;
    client.set('/3303/0/5700', 500);
    assert.equal((await next)[0].value, 500);
  });

  it('failover takes up what the stopped instance had started: its observations are heard by the new holder', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const balancer = await udpBalancer(b.address().port);
    balancers.push(balancer);
    const client = device('dev-4', balancer.port);
    const registered = once(b, 'register');
    await client.start();
    await registered;
    const observation = await b.observe('dev-4', '/3303/0/5700');
    await b.close(); // B's observation stays in the store
    balancer.point(a.address().port);
    const updated = once(a, 'update');
    await client.update();
    await updated;
    // A reads B's observation from the store and listens for it
    while (!a.observations('dev-4').some((o) => o.id === observation.id)) await new Promise((resolve) => setTimeout(resolve, 20));
    const notified = once(a, 'notify') as Promise<[NotifyEvent]>;
    client.set('/3303/0/5700', 19);
    const [notification] = await notified;
    assert.equal(notification.observation.id, observation.id);
    assert.equal(notification.value, 19);
  });

  it('a block-wise write made on A goes out block by block from B, with its progress told to the caller on A', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const seen = clusterEvent(a, 'register', 'dev-10');
    const client = device('dev-10', b.address().port);
    await client.start();
    await seen;
    const long = 'x'.repeat(3000);
    const progress: Array<[number, number]> = [];
    await a.write('dev-10', '/3/0/14', long, { format: 0, blockSize: 512, onProgress: (sent, total) => progress.push([sent, total]) });
    assert.equal(client.get('/3/0/14'), long);
    assert.ok(progress.length >= 5, JSON.stringify(progress));
    assert.deepEqual(progress[progress.length - 1], [3000, 3000]);
  });

  it("A's observation of a device on B goes on after B restarts (B's socket forgot it; A asks again when B says hello)", async () => {
    const a = await instance('a');
    const b = await instance('b');
    const seen = clusterEvent(a, 'register', 'dev-8');
    const client = device('dev-8', b.address().port);
    await client.start();
    await seen;
    const observation = await a.observe('dev-8', '/3303/0/5700');
    const port = b.address().port;
    await b.close();
    await instance('b', { port });
    let notification: NotifyEvent | undefined;
    a.on('notify', (event) => (notification = event));
    // the adoption travels A → B after B's hello: the device changes the value until A hears one
    for (let value = 1; !notification; value++) {
      assert.ok(value < 100, 'no notification reached A');
      client.set('/3303/0/5700', value);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(notification.observation.id, observation.id);
  });

  it("A's observation of a device on B goes on after A restarts (A reads it back from the store and asks B for it again)", async () => {
    const a = await instance('a');
    const b = await instance('b');
    const seen = clusterEvent(a, 'register', 'dev-9');
    const client = device('dev-9', b.address().port);
    await client.start();
    await seen;
    const observation = await a.observe('dev-9', '/3303/0/5700');
    await a.close();
    const again = await instance('a');
    assert.deepEqual(again.observations('dev-9').map((o) => o.id), [observation.id]);
    const notified = once(again, 'notify') as Promise<[NotifyEvent]>;
    await new Promise((resolve) => setTimeout(resolve, 200)); // the adoption travels to B
    client.set('/3303/0/5700', 7);
    const [notification] = await notified;
    assert.equal(notification.observation.id, observation.id);
    assert.equal(notification.value, 7);
    assert.deepEqual(b.observations('dev-9'), []);
  });

  it('a request for a device whose instance stopped goes out from the asking instance (a device without a balancer answers it)', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const seen = clusterEvent(a, 'register', 'dev-5');
    await device('dev-5', b.address().port).start();
    await seen;
    await b.close();
    assert.equal(await a.read('dev-5', '/3303/0/5700'), 21.5);
  });

  it('a request from A for a sleeping queue-mode device on B waits on B and goes out when the device wakes', async () => {
    const a = await instance('a');
    const b = await instance('b', { awakeTime: 200 });
    const seen = clusterEvent(a, 'register', 'sleeper');
    const client = device('sleeper', b.address().port, 60, { queueQuietTime: 200 });
    await client.start();
    await seen;
    await Promise.all([once(client, 'sleep'), once(b, 'sleep')]);
    let written = false;
    const write = a.write('sleeper', '/3/0/14', '+05:00', { ttl: 20_000 }).then(() => (written = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(written, false, 'nothing goes to a sleeping device');
    await client.wake();
    await write;
    assert.equal(client.get('/3/0/14'), '+05:00');
  });

  it('Redis lost while a forwarded request waits: the caller learns it at once; B keeps serving its device from memory', async () => {
    const a = await instance('a');
    const b = await instance('b', { awakeTime: 200 });
    const seen = clusterEvent(a, 'register', 'cut-off');
    const client = device('cut-off', b.address().port, 60, { queueQuietTime: 200 });
    await client.start();
    await seen;
    await Promise.all([once(client, 'sleep'), once(b, 'sleep')]);
    const write = a.write('cut-off', '/3/0/14', '+03:00', { ttl: 30_000 });
    const failed = assert.rejects(write, (error: unknown) => error instanceof LwM2MError && error.code === 'INTERNAL' && /^Write \/3\/0\/14 on cut-off: the connection to Redis was lost/.test(error.message));
    await new Promise((resolve) => setTimeout(resolve, 200)); // the request is waiting on B
    await redis.stop();
    try {
      await failed;
      await client.wake();
      assert.equal(await b.read('cut-off', '/3303/0/5700'), 21.5);
    } finally {
      await redis.restart();
    }
  });

  it('expires a registration once in the whole cluster', async () => {
    const a = await instance('a', { expiryGrace: 0 });
    const b = await instance('b', { expiryGrace: 0 });
    const expiresA = counter(a, 'expire');
    const expiresB = counter(b, 'expire');
    const seen = clusterEvent(a, 'register', 'short');
    const client = device('short', b.address().port, 1);
    await client.start();
    const { registration } = await seen;
    await client.stop({ deregister: false });
    // both sweep every second; one claims the expiry, the other hears of it
    const gone = (server: LwM2MServer) => new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (!server.registration('short')) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    await Promise.all([gone(a), gone(b)]);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a second expire would have come by now
    assert.equal(expiresA.count + expiresB.count, 1);
    const check = new Redis(redis.url);
    try {
      assert.equal(await check.hexists(`${prefix}registrations`, registration.id), 0);
    } finally {
      check.disconnect();
    }
  });

  it('a registration that expired while every instance was down expires once the first one starts, and leaves Redis', async () => {
    const writer = new Redis(redis.url);
    try {
      const long = Date.now() - 3_600_000;
      await writer.hset(`${prefix}registrations`, 'old1', JSON.stringify({ id: 'old1', endpoint: 'stale', lifetime: 60, version: '1.1', binding: 'U', queueMode: false, objectLinks: '</3/0>', address: '127.0.0.1', port: 9, rootPath: '', registeredAt: long, updatedAt: long, instance: 'gone' }));
      const a = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new RedisStore({ url: redis.url, prefix }), instance: 'a' });
      servers.push(a);
      const expired = once(a, 'expire') as Promise<[Registration]>;
      await a.listen();
      assert.equal((await expired)[0].endpoint, 'stale');
      while ((await writer.hexists(`${prefix}registrations`, 'old1')) === 1) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(a.registration('stale'), undefined);
    } finally {
      writer.disconnect();
    }
  });

  it('refuses a second running instance of the same name', async () => {
    await instance('same');
    await assert.rejects(instance('same'), /another server instance named "same" is running/);
  });

  it('ignores foreign messages on the cluster channels', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const publisher = new Redis(redis.url);
    try {
      await publisher.publish(`${prefix}cluster`, 'not json');
      await publisher.publish(`${prefix}cluster`, JSON.stringify({ t: 'reg', from: 'x', record: { id: 'bad' } }));
      await publisher.publish(`${prefix}to:a`, JSON.stringify({ t: 'req', from: 'x', rid: '1', id: 'nope', operation: 'Read /3/0', params: { method: 'GET', path: ['3', '0'] }, ttl: 0, success: ['2.05'] }));
      await publisher.publish(`${prefix}cluster`, JSON.stringify({ t: 'what', from: 'x' }));
    } finally {
      publisher.disconnect();
    }
    const seen = clusterEvent(a, 'register', 'dev-6');
    await device('dev-6', b.address().port).start();
    await seen;
    assert.equal(await a.read('dev-6', '/3303/0/5700'), 21.5);
    assert.ok(warnings.some((warning) => warning.includes('ignored a registration from instance x')), warnings.join('\n'));
  });
});

describe('LwM2MServer with a Redis store that is down at start', function () {
  this.timeout(60_000);

  it('listens at once, serves devices, and takes in what Redis holds once it is up (storeLoaded); what registered meanwhile is written', async () => {
    const redis = await startRedis();
    // another instance's registration, in Redis when it comes back (written now: a write after the
    // restart could come after the server has read)
    const writer = new Redis(redis.url);
    const now = Date.now();
    await writer.hset('late:registrations', 'r1', JSON.stringify({ id: 'r1', endpoint: 'stored', lifetime: 600, version: '1.1', binding: 'U', queueMode: false, objectLinks: '</3/0>', address: '127.0.0.1', port: 9, rootPath: '', registeredAt: now, updatedAt: now, instance: 'gone' }));
    writer.disconnect();
    const snapshot = await redis.snapshot();
    await redis.stop();
    const errors: unknown[] = [];
    const store = new RedisStore({ url: redis.url, prefix: 'late:', connectTimeout: 500, onError: () => undefined });
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store, instance: 'late' });
    server.on('error', (error) => errors.push(error));
    try {
      const { port } = await server.listen();
      assert.equal(errors.length, 1, 'the unreadable store is reported once');
      assert.match(String(errors[0]), /cannot reach Redis/);
      const early = new LwM2MClient({ endpoint: 'early', server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, lifetime: 600, objects: { 3303: { 0: { 5700: 1 } } } });
      early.on('error', () => undefined);
      await early.start();
      assert.equal(await server.read('early', '/3303/0/5700'), 1);

      const loading = once(server, 'storeLoaded');
      await redis.restart(snapshot);
      const [loaded] = (await loading) as [{ registrations: number }];
      assert.equal(loaded.registrations, 2);
      assert.equal(server.registration('stored')?.instance, 'gone');
      const id = server.registration('early')!.id;
      const reader = new Redis(redis.url);
      while ((await reader.hexists('late:registrations', id)) === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      reader.disconnect();
      await early.stop();
    } finally {
      await server.close();
      await redis.stop();
    }
  });
});

describe('LwM2MServer: a device whose address changes (NAT rebinding)', function () {
  this.timeout(30_000);

  it('its observations follow it to the address of its Update', async () => {
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING });
    const { port } = await server.listen();
    const nat = await udpBalancer(port);
    const client = new LwM2MClient({ endpoint: 'roamer', server: `coap://127.0.0.1:${nat.port}`, timing: FAST_TIMING, lifetime: 60, objects: { 3303: { 0: { 5700: 1 } } } });
    client.on('error', () => undefined);
    try {
      await client.start();
      const before = server.registration('roamer')!.port;
      const observation = await server.observe('roamer', '/3303/0/5700');
      nat.point(port); // a new binding: the device's datagrams come from another port
      const updated = once(server, 'update') as Promise<[Registration, string[]]>;
      await client.update();
      const [registration, changes] = await updated;
      assert.ok(changes.includes('address'));
      assert.notEqual(registration.port, before);
      const notified = once(server, 'notify') as Promise<[NotifyEvent]>;
      client.set('/3303/0/5700', 2);
      const [notification] = await notified;
      assert.equal(notification.observation.id, observation.id);
      assert.equal(notification.value, 2);
    } finally {
      await client.stop({ deregister: false }).catch(() => undefined);
      await server.close();
      await nat.close();
    }
  });
});
