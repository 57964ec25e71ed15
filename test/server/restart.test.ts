import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { FileStore, LwM2MClient, LwM2MServer, type LwM2MClientOptions, type LwM2MError, type NotifyEvent, type QueuedRequestEvent, type Registration } from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';

describe('LwM2MServer with a file store across a restart', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lwm2m-restart-'));
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('brings registrations back: the device keeps working without registering again', async () => {
    const file = path.join(dir, 'registrations.json');
    const first = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
    const { port } = await first.listen();
    const device = new LwM2MClient({ endpoint: 'survivor', server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, lifetime: 60, objects: { 3303: { 0: { 5700: 12.5 } } } });
    device.on('error', () => undefined);
    const registered = new Promise<Registration>((resolve) => first.once('register', resolve));
    await device.start();
    const before = await registered;
    await first.close(); // flushes the store

    const second = new LwM2MServer({ port, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
    await second.listen();
    try {
      const restored = second.registration('survivor')!;
      assert.ok(restored, 'the registration came back');
      assert.equal(restored.id, before.id);
      assert.equal(restored.port, device.address().port);
      assert.ok(restored.objects.some((object) => object.objectId === 3303));
      // downlink works at once, and the device's next Update is accepted as it is
      assert.equal(await second.read('survivor', '/3303/0/5700'), 12.5);
      let reregistered = false;
      device.on('reregistering', () => (reregistered = true));
      const updated = new Promise<Registration>((resolve) => second.once('update', resolve));
      await device.update();
      assert.equal((await updated).id, before.id);
      assert.equal(reregistered, false);
      assert.equal(device.location, `rd/${before.id}`);
    } finally {
      await device.stop();
      await second.close();
    }
  });

  it('does not bring back registrations that expired while the server was down', async () => {
    const file = path.join(dir, 'registrations.json');
    const first = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
    const { port } = await first.listen();
    const device = new LwM2MClient({ endpoint: 'short', server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, lifetime: 1 });
    device.on('error', () => undefined);
    await device.start();
    await device.stop({ deregister: false });
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const second = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, expiryGrace: 0, store: new FileStore(file, { delay: 10 }) });
    await second.listen();
    try {
      assert.equal(second.registrations().length, 0);
    } finally {
      await second.close();
    }
    const stored = JSON.parse(await fs.readFile(file, 'utf8')) as { registrations: unknown[] };
    assert.deepEqual(stored.registrations, [], 'and the store forgets it');
  });

  describe('observations and queued requests', () => {
    let file: string;
    let port: number;
    const servers: LwM2MServer[] = [];
    const devices: LwM2MClient[] = [];

    /** A server on the test's port (the first picks it) with the file store. */
    const startServer = async (options: { expiryGrace?: number } = {}): Promise<LwM2MServer> => {
      const server = new LwM2MServer({ port, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, store: new FileStore(file, { delay: 10 }), ...options });
      server.on('error', () => undefined);
      servers.push(server);
      port = (await server.listen()).port;
      return server;
    };

    const startDevice = async (server: LwM2MServer, endpoint: string, options: Partial<LwM2MClientOptions> = {}): Promise<LwM2MClient> => {
      const device = new LwM2MClient({
        endpoint,
        server: `coap://127.0.0.1:${port}`,
        timing: FAST_TIMING,
        requestTimeout: 2000,
        objects: { 3303: { 0: { 5700: 21.5 } }, 3311: { 0: { 5850: false, 5851: 10 } } },
        ...options,
      });
      device.on('error', () => undefined);
      devices.push(device);
      const registered = once(server, 'register');
      await device.start();
      await registered;
      return device;
    };

    beforeEach(() => {
      file = path.join(dir, 'store.json');
      port = 0;
    });

    afterEach(async () => {
      for (const device of devices.splice(0)) await device.stop({ deregister: false });
      for (const server of servers.splice(0)) await server.close();
    });

    it('an observation goes on after a restart: the next notification reaches the new server, and it can be cancelled', async () => {
      const first = await startServer();
      const device = await startDevice(first, 'watched');
      const observation = await first.observe('watched', '/3303/0/5700');
      await first.close();

      const second = await startServer();
      const restored = second.observations('watched');
      assert.equal(restored.length, 1);
      assert.equal(restored[0]!.id, observation.id);
      assert.deepEqual(restored[0]!.paths, ['/3303/0/5700']);
      assert.equal(restored[0]!.value, 21.5, 'the first value comes back too');
      const notified = once(second, 'notify') as Promise<[NotifyEvent]>;
      device.set('/3303/0/5700', 30.25);
      const [event] = await notified;
      assert.equal(event.observation.id, observation.id);
      assert.equal(event.value, 30.25);

      assert.equal(device.observationCount, 1);
      await second.cancelObservation(observation.id);
      assert.equal(device.observationCount, 0, 'the cancel repeated the request with the stored token');
      await second.close();
      const stored = JSON.parse(await fs.readFile(file, 'utf8')) as { observations: unknown[] };
      assert.deepEqual(stored.observations, [], 'a cancelled observation leaves the store');
    });

    it('an Observe-Composite goes on after a restart', async () => {
      const first = await startServer();
      const device = await startDevice(first, 'composite', { version: '1.1' });
      const observation = await first.observeComposite('composite', ['/3303/0/5700', '/3311/0/5850']);
      await first.close();

      const second = await startServer();
      assert.deepEqual(second.observations('composite')[0]?.value, { '/3303/0/5700': 21.5, '/3311/0/5850': false });
      const notified = once(second, 'notify') as Promise<[NotifyEvent]>;
      device.set('/3311/0/5850', true);
      const [event] = await notified;
      assert.equal(event.observation.id, observation.id);
      assert.deepEqual(event.value, { '/3303/0/5700': 21.5, '/3311/0/5850': true });
    });

    it('forgets observations whose registration expired while the server was down', async () => {
      const first = await startServer();
      await startDevice(first, 'gone', { lifetime: 1 });
      await first.observe('gone', '/3303/0/5700');
      for (const device of devices.splice(0)) await device.stop({ deregister: false });
      await first.close();
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const second = await startServer({ expiryGrace: 0 });
      assert.equal(second.observations().length, 0);
      await second.close();
      const stored = JSON.parse(await fs.readFile(file, 'utf8')) as { observations: unknown[] };
      assert.deepEqual(stored.observations, []);
    });

    it('requests queued for a sleeping device go out when it wakes after a restart, and their outcome is an event', async () => {
      const first = await startServer();
      const device = await startDevice(first, 'sleeper', { binding: 'UQ', queueQuietTime: 200 });
      await Promise.all([once(device, 'sleep'), once(first, 'sleep')]);
      const write = first.write('sleeper', '/3311/0/5851', 42);
      const read = first.read('sleeper', '/3303/0/5700');
      const failed = (promise: Promise<unknown>) => assert.rejects(promise, (error: LwM2MError) => error.code === 'SERVER_NOT_RUNNING' && /stays in the store/.test(error.message));
      await Promise.all([first.close(), failed(write), failed(read)]);

      const outcomes: QueuedRequestEvent[] = [];
      const second = new LwM2MServer({ port, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, store: new FileStore(file, { delay: 10 }) });
      servers.push(second);
      second.on('queuedRequest', (event) => outcomes.push(event));
      await second.listen();
      assert.equal(second.registration('sleeper')!.awake, false, 'a restarted server has not heard from the device yet');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(outcomes.length, 0, 'nothing goes to a sleeping device');
      await device.wake();
      while (outcomes.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(outcomes.map((event) => [event.endpoint, event.operation, event.code, event.error]), [
        ['sleeper', 'Write /3311/0/5851', '2.04', undefined],
        ['sleeper', 'Read /3303/0/5700', '2.05', undefined],
      ]);
      assert.equal(outcomes[1]!.value, 21.5);
      assert.equal(device.get('/3311/0/5851'), 42);
      await second.close();
      assert.deepEqual(await new FileStore(file).loadQueue(), [], 'sent requests leave the store');
    });

    it('a queued request whose time to live ran out while the server was down fails as an event', async () => {
      const first = await startServer();
      const device = await startDevice(first, 'late', { binding: 'UQ', queueQuietTime: 200 });
      await Promise.all([once(device, 'sleep'), once(first, 'sleep')]);
      const write = first.write('late', '/3311/0/5851', 7, { ttl: 300 });
      await Promise.all([first.close(), write.catch(() => undefined)]);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const second = new LwM2MServer({ port, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
      servers.push(second);
      const outcome = once(second, 'queuedRequest') as Promise<[QueuedRequestEvent]>;
      await second.listen();
      const [event] = await outcome;
      assert.equal(event.operation, 'Write /3311/0/5851');
      assert.equal(event.error?.code, 'TIMEOUT');
      assert.match(event.error!.message, /server was down/);
      assert.equal(device.get('/3311/0/5851'), 10, 'never sent');
    });
  });
});
