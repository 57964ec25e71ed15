import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ContentFormat,
  FirmwareState,
  LwM2MClient,
  LwM2MError,
  LwM2MServer,
  type LwM2MClientOptions,
  type NotifyEvent,
  type Registration,
  type SendEvent,
} from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function once<T>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (value: T) => resolve(value)));
}

describe('LwM2MServer with LwM2MClient (loopback)', () => {
  let server: LwM2MServer;
  let uri: string;
  const clients: LwM2MClient[] = [];

  const device = async (endpoint: string, options: Partial<LwM2MClientOptions> = {}): Promise<LwM2MClient> => {
    const client = new LwM2MClient({
      endpoint,
      server: uri,
      timing: FAST_TIMING,
      requestTimeout: 2000,
      objects: { 3303: { 0: { 5700: 21.5, 5701: 'Cel' } }, 3311: { 0: { 5850: false, 5851: 10 } } },
      ...options,
    });
    client.on('error', () => undefined);
    clients.push(client);
    const registered = once(server, 'register');
    await client.start();
    await registered;
    return client;
  };

  beforeEach(async () => {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, expiryGrace: 0 });
    server.on('error', () => undefined);
    const { port } = await server.listen();
    uri = `coap://127.0.0.1:${port}`;
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.stop()));
    await server.close();
  });

  describe('registration interface', () => {
    it('registers a device and announces it once the 2.01 has gone out', async () => {
      const registered = once<Registration>(server, 'register');
      const client = new LwM2MClient({ endpoint: 'r1', server: uri, timing: FAST_TIMING, lifetime: 120, version: '1.1', objects: { 3303: { 0: { 5700: 1 } } } });
      clients.push(client);
      await client.start();
      const registration = await registered;
      assert.equal(registration.endpoint, 'r1');
      assert.equal(registration.lifetime, 120);
      assert.equal(registration.version, '1.1');
      assert.equal(registration.binding, 'U');
      assert.equal(registration.queueMode, false);
      assert.equal(`rd/${registration.id}`, client.location);
      assert.equal(registration.port, client.address().port);
      assert.deepEqual(registration.contentFormats, [ContentFormat.SENML_CBOR]);
      assert.ok(registration.objects.some((object) => object.objectId === 3303 && object.instanceId === 0));
      assert.ok(!registration.objects.some((object) => object.objectId === 0));
      assert.deepEqual(server.registrations().map((entry) => entry.endpoint), ['r1']);
    });

    it('emits register only after the 2.01 has been handed to the socket', async () => {
      const socket = (server as unknown as { endpoint: { socket: { send: (...args: unknown[]) => void } } }).endpoint.socket;
      const order: string[] = [];
      const send = socket.send.bind(socket);
      socket.send = (datagram: unknown, ...rest: unknown[]) => {
        const bytes = datagram as Buffer;
        if (bytes[1] === 0x41) order.push('2.01 sent'); // code byte 2.01 = (2 << 5) | 1
        send(datagram, ...rest);
      };
      server.on('register', () => order.push('register event'));
      await device('ordered');
      assert.deepEqual(order, ['2.01 sent', 'register event']);
    });

    it('takes only what changed from an Update, and a new object list replaces the old one', async () => {
      const client = await device('u1');
      const updated = once<[Registration, string[]]>(server, 'update');
      const events: Array<[Registration, string[]]> = [];
      server.on('update', (registration: Registration, changes: string[]) => events.push([registration, changes]));
      await client.update({ lifetime: 77 });
      await updated;
      assert.deepEqual(events[0]![1], ['lifetime']);
      assert.equal(server.registration('u1')!.lifetime, 77);
      client.addInstance(3303, { 5700: 2 }, 4);
      while (events.length < 2) await pause(10);
      assert.deepEqual(events[1]![1], ['objects']);
      assert.ok(server.registration('u1')!.objects.some((object) => object.objectId === 3303 && object.instanceId === 4));
      assert.equal(server.registration('u1')!.lifetime, 77, 'unchanged parameters stay');
    });

    it('de-registers', async () => {
      const client = await device('d1');
      const gone = once<Registration>(server, 'deregister');
      await client.stop();
      assert.equal((await gone).endpoint, 'd1');
      assert.equal(server.registration('d1'), undefined);
      await assert.rejects(server.read('d1', '/3/0/0'), (error: LwM2MError) => error.code === 'NOT_REGISTERED');
    });

    it('the same endpoint registering again replaces the old registration and its observations', async () => {
      const client = await device('again');
      const first = server.registration('again')!;
      await server.observe('again', '/3303/0/5700');
      assert.equal(server.observations('again').length, 1);
      const second = once<[Registration, Registration | undefined]>(server, 'register');
      const events: unknown[] = [];
      server.on('register', (registration: Registration, previous?: Registration) => events.push([registration, previous]));
      await client.register();
      await second;
      const [now, previous] = events[0] as [Registration, Registration];
      assert.notEqual(now.id, first.id);
      assert.equal(previous.id, first.id);
      assert.equal(server.registrations().length, 1);
      assert.equal(server.observations('again').length, 0);
    });

    it('expires a registration after its lifetime and refuses downlink to it', async () => {
      const client = await device('exp', { lifetime: 1 });
      // the device falls silent without de-registering (its Updates stop)
      await client.stop({ deregister: false });
      const expired = await once<Registration>(server, 'expire');
      assert.equal(expired.endpoint, 'exp');
      assert.equal(server.registration('exp'), undefined);
      await assert.rejects(server.read('exp', '/3/0/0'), (error: LwM2MError) => error.code === 'NOT_REGISTERED');
    });
  });

  describe('device management', () => {
    for (const format of [ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.OMA_JSON, ContentFormat.LWM2M_CBOR]) {
      it(`reads and writes in ${format}`, async () => {
        const version = format === ContentFormat.LWM2M_CBOR ? '1.2' : '1.1';
        const client = await device(`f${format}`, { version });
        const ep = `f${format}`;
        assert.deepEqual(await server.read(ep, '/3303/0', { format }), { 5700: 21.5, 5701: 'Cel' });
        assert.equal(await server.read(ep, '/3303/0/5700', { format }), 21.5);
        assert.deepEqual(await server.read(ep, '/3311', { format }), { 0: { 5850: false, 5851: 10 } });
        assert.deepEqual(await server.read(ep, '/3/0/6', { format }), client.get('/3/0/6'));
        await server.write(ep, '/3311/0/5851', 55, { format });
        assert.equal(client.get('/3311/0/5851'), 55);
        await server.write(ep, '/3311/0', { 5850: true }, { format, mode: 'update' });
        assert.deepEqual(client.get('/3311/0'), { 5850: true, 5851: 55 });
        const observation = await server.observe(ep, '/3303/0', undefined, { format });
        assert.deepEqual(observation.value, { 5700: 21.5, 5701: 'Cel' });
        const notified = once<NotifyEvent>(server, 'notify');
        client.set('/3303/0/5700', 30);
        assert.deepEqual((await notified).value, { 5700: 30, 5701: 'Cel' });
        if (format === ContentFormat.SENML_JSON || format === ContentFormat.SENML_CBOR || format === ContentFormat.LWM2M_CBOR) {
          assert.deepEqual(await server.readComposite(ep, ['/3303/0/5700', '/3311/0/5851'], { format }), { '/3303/0/5700': 30, '/3311/0/5851': 55 });
          await server.writeComposite(ep, { '/3311/0/5851': 66 }, { format });
          assert.equal(client.get('/3311/0/5851'), 66);
          const composite = await server.observeComposite(ep, ['/3311/0/5851'], undefined, { format });
          const compositeNotified = once<NotifyEvent>(server, 'notify');
          client.set('/3311/0/5851', 67);
          assert.deepEqual((await compositeNotified).value, { '/3311/0/5851': 67 });
          await server.cancelObservation(composite);
        }
      });
    }

    it('reads a single resource in text', async () => {
      await device('t1');
      assert.equal(await server.read('t1', '/3/0/0', { format: ContentFormat.TEXT }), 'node-red-lwm2m');
      assert.equal(await server.read('t1', '/3/0/9', { format: ContentFormat.TEXT }), (await server.read('t1', '/3/0/9')) as number);
    });

    it('chooses the format the device announced when the caller gives none', async () => {
      // a 1.0 device announces nothing: TLV, the one format every 1.0 device has
      await device('auto10', { version: '1.0' });
      assert.deepEqual(server.registration('auto10')!.contentFormats, []);
      assert.deepEqual(await server.read('auto10', '/3303/0'), { 5700: 21.5, 5701: 'Cel' });
      // a 1.1 device that announces SenML JSON only is asked in SenML JSON
      await device('auto11', { preferredFormat: ContentFormat.SENML_JSON });
      assert.deepEqual(server.registration('auto11')!.contentFormats, [ContentFormat.SENML_JSON]);
      assert.deepEqual(await server.read('auto11', '/3303/0'), { 5700: 21.5, 5701: 'Cel' });
    });

    it('discovers, with attributes', async () => {
      await device('disc');
      await server.writeAttributes('disc', '/3303/0/5700', { pmin: 5, pmax: 50 });
      const links = await server.discover('disc', '/3303/0');
      assert.deepEqual(links.find((link) => link.uri === '/3303/0/5700')?.attributes, { pmin: 5, pmax: 50 });
      await server.writeAttributes('disc', '/3303/0/5700', { pmin: null, pmax: null });
      assert.deepEqual((await server.discover('disc', '/3303/0/5700'))[0]!.attributes, {});
    });

    it('reads and writes several paths at once (composite)', async () => {
      const client = await device('comp');
      const values = await server.readComposite('comp', ['/3303/0/5700', '/3311/0', '/3/0/0']);
      assert.deepEqual(values, { '/3303/0/5700': 21.5, '/3311/0': { 5850: false, 5851: 10 }, '/3/0/0': 'node-red-lwm2m' });
      await server.writeComposite('comp', { '/3311/0/5851': 99, '/3/0/14': '+02:00' });
      assert.equal(client.get('/3311/0/5851'), 99);
      assert.equal(client.get('/3/0/14'), '+02:00');
      const json = await server.readComposite('comp', ['/3311/0/5851'], { format: ContentFormat.SENML_JSON });
      assert.deepEqual(json, { '/3311/0/5851': 99 });
    });

    it('executes with arguments, creates and deletes', async () => {
      const executed: string[] = [];
      const client = await device('exec', { objects: { 3303: { 0: { 5700: 1 } }, 32769: { 0: { 1: { execute: (args: string) => void executed.push(args) } } } } });
      await server.execute('exec', '/32769/0/1', "0='go',1");
      assert.deepEqual(executed, ["0='go',1"]);
      assert.equal(await server.create('exec', '/3303/3', { 5700: 7 }), '/3303/3');
      assert.equal(client.get('/3303/3/5700'), 7);
      const picked = await server.create('exec', '/3303', { 5700: 8 }, { format: ContentFormat.TLV });
      assert.equal(picked, '/3303/1');
      await server.delete('exec', '/3303/3');
      assert.equal(client.get('/3303/3'), undefined);
    });

    it('reports device errors with code and coapCode', async () => {
      await device('err');
      const expect = async (promise: Promise<unknown>, code: string, coapCode?: string) => {
        await assert.rejects(promise, (error: LwM2MError) => {
          assert.ok(error instanceof LwM2MError, String(error));
          assert.equal(error.code, code, error.message);
          assert.equal(error.coapCode, coapCode);
          return true;
        });
      };
      await expect(server.read('err', '/3/0/99'), 'NOT_FOUND', '4.04');
      await expect(server.write('err', '/3/0/0', 'x'), 'METHOD_NOT_ALLOWED', '4.05');
      await expect(server.read('err', '/0/0'), 'UNAUTHORIZED', '4.01');
      await expect(server.read('err', '/3/0', { format: ContentFormat.TEXT }), 'NOT_ACCEPTABLE', '4.06');
      await expect(server.execute('err', '/3/0/9'), 'METHOD_NOT_ALLOWED', '4.05');
      await expect(server.read('nobody', '/3/0'), 'NOT_REGISTERED');
      await expect(server.read('err', '/3/x'), 'BAD_REQUEST');
      await expect(server.write('err', '/3/0/13', 'not a time'), 'BAD_REQUEST');
    });

    it('times out when the device does not answer', async () => {
      const client = await device('slow', { objects: { 32769: { 0: { 1: { read: () => new Promise<number>(() => undefined) } } } } });
      void client;
      await assert.rejects(server.read('slow', '/32769/0/1', { timeout: 500 }), (error: LwM2MError) => error.code === 'TIMEOUT');
    });

    it('writes a 1 MB firmware package with Block1 and reads a large value with Block2', async () => {
      const client = await device('fw', { firmware: { downloadTime: 10, updateTime: 10 }, objects: { 32770: { 0: { 0: randomBytes(5000) } } } });
      const pkg = randomBytes(1024 * 1024);
      await server.write('fw', '/5/0/0', pkg, { format: ContentFormat.OPAQUE, timeout: 60_000 });
      assert.ok((client.get('/5/0/0') as Buffer).equals(pkg));
      while (client.get('/5/0/3') !== FirmwareState.DOWNLOADED) await pause(10);
      const big = (await server.read('fw', '/32770/0/0', { format: ContentFormat.OPAQUE })) as Buffer;
      assert.ok(big.equals(client.get('/32770/0/0') as Buffer));
    });
  });

  describe('information reporting', () => {
    it('observes with attributes and emits each notification with its observation', async () => {
      const client = await device('obs');
      const observation = await server.observe('obs', '/3303/0/5700', { st: 1 });
      assert.equal(observation.value, 21.5);
      const notified: NotifyEvent[] = [];
      server.on('notify', (event: NotifyEvent) => notified.push(event));
      client.set('/3303/0/5700', 21.8); // below st: no notification
      await pause(50);
      client.set('/3303/0/5700', 23);
      while (notified.length < 1) await pause(10);
      assert.equal(notified[0]!.value, 23);
      assert.equal(notified[0]!.observation.id, observation.id);
      assert.equal(notified[0]!.endpoint, 'obs');
      await server.cancelObservation(observation);
      assert.equal(client.observationCount, 0, 'the active cancel reached the device');
      assert.equal(server.observations().length, 0);
    });

    it('observes several paths at once (Observe-Composite) and cancels', async () => {
      const client = await device('ocomp');
      const observation = await server.observeComposite('ocomp', ['/3303/0/5700', '/3311/0/5850']);
      assert.deepEqual(observation.value, { '/3303/0/5700': 21.5, '/3311/0/5850': false });
      const notification = once<NotifyEvent>(server, 'notify');
      client.set('/3311/0/5850', true);
      assert.deepEqual((await notification).value, { '/3303/0/5700': 21.5, '/3311/0/5850': true });
      await server.cancelObservation(observation.id);
      assert.equal(client.observationCount, 0);
    });

    it('observations end when the registration ends', async () => {
      const client = await device('obsend');
      await server.observe('obsend', '/3303/0/5700');
      await client.stop();
      while (server.registration('obsend')) await pause(10);
      assert.equal(server.observations().length, 0);
    });

    it('receives Send from a registered device', async () => {
      const client = await device('send');
      const received = once<SendEvent>(server, 'send');
      await client.send(['/3303/0/5700', '/3311/0']);
      const event = await received;
      assert.equal(event.endpoint, 'send');
      assert.deepEqual(event.values, { '/3303/0/5700': 21.5, '/3311/0/5850': false, '/3311/0/5851': 10 });
      assert.equal(event.records.length, 3);
    });
  });

  describe('queue mode', () => {
    it('holds requests for a sleeping device and sends them, in order, when it wakes with an Update', async () => {
      const client = await device('q', { binding: 'UQ', queueQuietTime: 200 });
      assert.equal(server.registration('q')!.queueMode, true);
      // the server counts a device asleep MAX_TRANSMIT_WAIT after its last message (700 ms with these timings)
      await Promise.all([once(client, 'sleep'), once(server, 'sleep')]);
      assert.equal(server.registration('q')!.awake, false);
      const order: string[] = [];
      const first = server.read('q', '/3/0/0').then((value) => order.push(`read ${value}`));
      const second = server.write('q', '/3311/0/5851', 42).then(() => order.push('write'));
      await pause(100);
      assert.deepEqual(order, [], 'nothing goes to a sleeping device');
      const awake = once<Registration>(server, 'awake');
      await client.wake();
      await awake;
      await Promise.all([first, second]);
      assert.deepEqual(order, ['read node-red-lwm2m', 'write']);
      assert.equal(client.get('/3311/0/5851'), 42);
    });

    it('fails a queued request with TIMEOUT when its time-to-live runs out', async () => {
      const client = await device('qt', { binding: 'UQ', queueQuietTime: 100 });
      await once(server, 'sleep');
      void client;
      await assert.rejects(server.read('qt', '/3/0/0', { ttl: 200 }), (error: LwM2MError) => error.code === 'TIMEOUT' && /did not wake up/.test(error.message));
    });
  });
});
