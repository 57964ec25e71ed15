import assert from 'node:assert/strict';
import { ContentFormat, LwM2MClient, LwM2MPath, decode, decodeComposite, encodePaths, type CoapResponse } from '../../lib';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';

const EP = 'obs-1';

/** Collects notifications and lets a test wait for the next n. */
class Inbox {
  readonly items: CoapResponse[] = [];
  /** when each item arrived (Date.now()) */
  readonly arrivals: number[] = [];
  private waiter: { count: number; resolve: () => void } | undefined;

  push = (response: CoapResponse): void => {
    this.items.push(response);
    this.arrivals.push(Date.now());
    if (this.waiter && this.items.length >= this.waiter.count) {
      this.waiter.resolve();
      this.waiter = undefined;
    }
  };

  until(count: number): Promise<void> {
    if (this.items.length >= count) return Promise.resolve();
    return new Promise((resolve) => (this.waiter = { count, resolve }));
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('LwM2MClient observe, send and queue mode (loopback)', () => {
  let server: FakeServer;
  let uri: string;
  let device: LwM2MClient;

  beforeEach(async () => {
    server = new FakeServer();
    uri = await server.start();
    device = new LwM2MClient({
      endpoint: EP,
      server: uri,
      version: '1.2', // for edge and con
      timing: FAST_TIMING,
      requestTimeout: 1000,
      objects: { 3303: { 0: { 5700: 20, 5701: 'Cel' } }, 3342: { 0: { 5500: false } } },
    });
    device.on('error', () => undefined);
    await device.start();
  });

  afterEach(async () => {
    await device.stop();
    await server.close();
  });

  const observe = async (path: string, inbox: Inbox, accept?: number) => {
    const peer = server.peerOf(EP);
    return server.endpoint.observe(peer, { method: 'GET', path: path.split('/').filter(Boolean), accept }, inbox.push);
  };
  const attributes = (path: string, query: string[]) => server.request(EP, { method: 'PUT', path: path.split('/').filter(Boolean), query });

  it('notifies every change of an observed resource, with a growing Observe number', async () => {
    const inbox = new Inbox();
    const { response } = await observe('/3303/0/5700', inbox);
    assert.equal(response.code, '2.05');
    assert.equal(response.payload.toString(), '20');
    assert.equal(typeof response.observe, 'number');
    assert.equal(device.observationCount, 1);
    device.set('/3303/0/5700', 21);
    await inbox.until(1);
    device.set('/3303/0/5700', 22.5);
    await inbox.until(2);
    assert.deepEqual(inbox.items.map((item) => item.payload.toString()), ['21', '22.5']);
    assert.ok(inbox.items[0]!.observe! > response.observe!);
    assert.ok(inbox.items[1]!.observe! > inbox.items[0]!.observe!);
  });

  it('observes an instance in the requested format', async () => {
    const inbox = new Inbox();
    const { response } = await observe('/3303/0', inbox, ContentFormat.SENML_JSON);
    assert.equal(response.contentFormat, ContentFormat.SENML_JSON);
    device.set('/3303/0/5701', 'K');
    await inbox.until(1);
    assert.equal(inbox.items[0]!.contentFormat, ContentFormat.SENML_JSON);
    assert.deepEqual(decode(ContentFormat.SENML_JSON, '/3303/0', inbox.items[0]!.payload), { 5700: 20, 5701: 'K' });
  });

  it('honours st: small steps are not notified, a step of at least st is', async () => {
    assert.equal((await attributes('/3303/0/5700', ['st=2'])).code, '2.04');
    const inbox = new Inbox();
    await observe('/3303/0/5700', inbox);
    device.set('/3303/0/5700', 21);
    device.set('/3303/0/5700', 21.5);
    device.set('/3303/0/5700', 22.5);
    await inbox.until(1);
    await pause(100);
    assert.deepEqual(inbox.items.map((item) => item.payload.toString()), ['22.5']);
  });

  it('honours gt and lt: only crossings are notified', async () => {
    assert.equal((await attributes('/3303/0/5700', ['gt=30', 'lt=10'])).code, '2.04');
    const inbox = new Inbox();
    await observe('/3303/0/5700', inbox);
    // values a sensor reports over time (each one evaluated before the next)
    for (const value of [25, 29, 31, 35, 12, 9, 8]) {
      device.set('/3303/0/5700', value);
      await pause(30);
    }
    await inbox.until(3);
    await pause(100);
    // 31 crosses gt upwards, 12 crosses it downwards, 9 crosses lt
    assert.deepEqual(inbox.items.map((item) => item.payload.toString()), ['31', '12', '9']);
  });

  it('honours pmin: a change waits until pmin has passed since the last notification', async () => {
    assert.equal((await attributes('/3303/0/5700', ['pmin=1'])).code, '2.04');
    const inbox = new Inbox();
    const observed = Date.now(); // the first response (the last "notification") is sent after this
    await observe('/3303/0/5700', inbox);
    device.set('/3303/0/5700', 30);
    device.set('/3303/0/5700', 31);
    await inbox.until(1);
    await pause(100);
    // a lower bound only: a busy machine can make it later, never earlier (timers may fire 1 ms early)
    assert.ok(inbox.arrivals[0]! - observed >= 990, `held back by pmin: notified after ${inbox.arrivals[0]! - observed} ms`);
    assert.deepEqual(inbox.items.map((item) => item.payload.toString()), ['31'], 'only the latest value is sent when pmin expires');
  });

  it('honours pmax: a notification without any change', async () => {
    assert.equal((await attributes('/3303/0', ['pmax=1'])).code, '2.04');
    const inbox = new Inbox();
    await observe('/3303/0/5700', inbox);
    await inbox.until(1);
    assert.equal(inbox.items[0]!.payload.toString(), '20');
  });

  it('evaluates edge on a boolean: with edge=1 only false → true is notified', async () => {
    device.tree.set('/3342/0/5500', false);
    assert.equal((await attributes('/3342/0/5500', ['edge=1'])).code, '2.04');
    const inbox = new Inbox();
    await observe('/3342/0/5500', inbox);
    device.set('/3342/0/5500', true);
    await inbox.until(1);
    device.set('/3342/0/5500', false);
    await pause(50);
    device.set('/3342/0/5500', true);
    await inbox.until(2);
    await pause(100);
    assert.deepEqual(inbox.items.map((item) => item.payload.toString()), ['1', '1']);
  });

  it('sends confirmable notifications when con=1', async () => {
    assert.equal((await attributes('/3303/0/5700', ['con=1'])).code, '2.04');
    const inbox = new Inbox();
    await observe('/3303/0/5700', inbox);
    device.set('/3303/0/5700', 40);
    await inbox.until(1);
    assert.equal(inbox.items[0]!.type, 'CON');
    assert.equal((await attributes('/3303/0/5700', ['con=0'])).code, '2.04');
    device.set('/3303/0/5700', 41);
    await inbox.until(2);
    assert.equal(inbox.items[1]!.type, 'NON');
    assert.equal(device.observationCount, 1);
  });

  it('honours epmax: a value that changes behind the tree (a read handler) is sampled and notified', async () => {
    let reading = 5;
    device.tree.define(LwM2MPath.parse('/3303/0/5601'), { read: () => reading });
    assert.equal((await attributes('/3303/0/5601', ['epmax=1'])).code, '2.04');
    const inbox = new Inbox();
    const { response } = await observe('/3303/0/5601', inbox);
    assert.equal(response.payload.toString(), '5');
    reading = 6; // no change event: only sampling can see it
    await inbox.until(1);
    assert.equal(inbox.items[0]!.payload.toString(), '6');
  });

  it('honours epmin: changes are not evaluated more often than epmin', async () => {
    assert.equal((await attributes('/3303/0/5700', ['epmin=1'])).code, '2.04');
    const inbox = new Inbox();
    const observed = Date.now();
    await observe('/3303/0/5700', inbox);
    device.set('/3303/0/5700', 33);
    await inbox.until(1);
    assert.ok(inbox.arrivals[0]! - observed >= 990, `not evaluated within epmin of the start: notified after ${inbox.arrivals[0]! - observed} ms`);
    assert.equal(inbox.items[0]!.payload.toString(), '33');
  });

  it('observes several paths with Observe-Composite (FETCH)', async () => {
    const inbox = new Inbox();
    const peer = server.peerOf(EP);
    const paths = ['/3303/0/5700', '/3342/0'];
    const { response } = await server.endpoint.observe(
      peer,
      { method: 'FETCH', path: [], contentFormat: ContentFormat.SENML_CBOR, accept: ContentFormat.SENML_JSON, payload: encodePaths(ContentFormat.SENML_CBOR, paths) },
      inbox.push,
    );
    assert.equal(response.code, '2.05');
    assert.equal(typeof response.observe, 'number');
    assert.deepEqual(decodeComposite(ContentFormat.SENML_JSON, response.payload, undefined, { paths }), { '/3303/0/5700': 20, '/3342/0': { 5500: false } });
    device.set('/3342/0/5500', true);
    await inbox.until(1);
    assert.deepEqual(decodeComposite(ContentFormat.SENML_JSON, inbox.items[0]!.payload, undefined, { paths }), { '/3303/0/5700': 20, '/3342/0': { 5500: true } });

    // active cancel: FETCH with Observe=1, the same token and the same paths
    const cancel = await server.endpoint.request(peer, {
      method: 'FETCH',
      path: [],
      observe: 1,
      token: response.token,
      contentFormat: ContentFormat.SENML_CBOR,
      accept: ContentFormat.SENML_JSON,
      payload: encodePaths(ContentFormat.SENML_CBOR, paths),
    });
    assert.equal(cancel.code, '2.05');
    assert.equal(device.observationCount, 0);
  });

  it('cancels actively (GET with Observe=1) and passively (Reset)', async () => {
    const inbox = new Inbox();
    const observation = await observe('/3303/0/5700', inbox);
    assert.equal(device.observationCount, 1);
    const cancelled = new Promise((resolve) => device.once('cancel', resolve));
    observation.cancel(); // the observer forgets the token: the next notification is answered with RST
    device.set('/3303/0/5700', 50);
    await cancelled;
    assert.equal(device.observationCount, 0);

    // active cancel: a GET with Observe=1 and the observation's token
    const peer = server.peerOf(EP);
    const second = await observe('/3303/0/5700', inbox);
    assert.equal(device.observationCount, 1);
    const stranger = await server.endpoint.request(peer, { method: 'GET', path: ['3303', '0', '5700'], observe: 1, timeout: 2000 });
    assert.equal(stranger.code, '2.05');
    assert.equal(device.observationCount, 1, 'another token cancels nothing');
    const response = await server.endpoint.request(peer, { method: 'GET', path: ['3303', '0', '5700'], observe: 1, token: second.response.token, timeout: 2000 });
    assert.equal(response.code, '2.05');
    assert.equal(response.observe, undefined, 'the answer is a plain read');
    assert.equal(device.observationCount, 0);
    second.cancel();
  });

  it('observations end with a re-registration, and new ones work after it', async () => {
    const inbox = new Inbox();
    await observe('/3303/0/5700', inbox);
    await device.register();
    assert.equal(device.observationCount, 0);
    // a pmax notification needs the observation's timer: they still run after the re-registration
    assert.equal((await attributes('/3303/0/5700', ['pmax=1'])).code, '2.04');
    const again = new Inbox();
    await observe('/3303/0/5700', again);
    await again.until(1);
    assert.equal(again.items[0]!.payload.toString(), '20');
    assert.equal(inbox.items.length, 0);
  });

  it('ends an observation with 4.04 when its instance is deleted', async () => {
    device.addInstance(3303, { 5700: 1 }, 5);
    const inbox = new Inbox();
    await observe('/3303/5/5700', inbox);
    assert.equal((await server.request(EP, { method: 'DELETE', path: ['3303', '5'] })).code, '2.02');
    await pause(200);
    assert.equal(device.observationCount, 0);
  });

  it('sends values with Send (POST /dp) in SenML CBOR or JSON', async () => {
    await device.send(['/3303/0/5700', '/3/0/9']);
    const dp = await server.waitFor((request) => request.path === '/dp');
    assert.equal(dp.method, 'POST');
    assert.equal(dp.contentFormat, ContentFormat.SENML_CBOR);
    const values = decodeComposite(ContentFormat.SENML_CBOR, dp.payload);
    assert.equal(values['/3303/0/5700'], 20);
    assert.equal(values['/3/0/9'], device.get('/3/0/9'));

    await device.send(['/3342/0'], { format: ContentFormat.SENML_JSON });
    const json = server.requests.filter((request) => request.path === '/dp').at(-1)!;
    assert.equal(json.contentFormat, ContentFormat.SENML_JSON);
    assert.deepEqual(decodeComposite(ContentFormat.SENML_JSON, json.payload), { '/3342/0/5500': false });
  });

  it('rejects a Send the server refuses, with its code', async () => {
    server.behaviour = (request) => (request.path[0] === 'dp' ? { code: '4.03' } : undefined);
    await assert.rejects(device.send(['/3303/0/5700']), (error: { coapCode?: string }) => error.coapCode === '4.03');
    await assert.rejects(device.send(['/3303/0/5700'], { format: ContentFormat.TLV }), /cannot carry a Send/);
  });
});

describe('LwM2MClient queue mode (loopback)', () => {
  let server: FakeServer;
  let device: LwM2MClient;

  afterEach(async () => {
    await device?.stop();
    await server?.close();
  });

  it('sleeps after the quiet time, ignores requests while asleep, and wakes with an Update', async () => {
    server = new FakeServer();
    const uri = await server.start();
    device = new LwM2MClient({ endpoint: 'q-1', server: uri, binding: 'UQ', queueQuietTime: 300, timing: FAST_TIMING, requestTimeout: 1000 });
    device.on('error', () => undefined);
    await device.start();
    await new Promise((resolve) => device.once('sleep', resolve));
    assert.equal(device.sleeping, true);
    await assert.rejects(server.request('q-1', { method: 'GET', path: ['3', '0', '0'], timeout: 500 }), /no acknowledgement|no response/);

    const before = server.requests.length;
    const awake = new Promise((resolve) => device.once('awake', resolve));
    await device.wake();
    await awake;
    const update = await server.waitFor((request) => request.path.startsWith('/rd/'), before);
    assert.equal(update.method, 'POST');
    assert.equal((await server.request('q-1', { method: 'GET', path: ['3', '0', '0'] })).code, '2.05');
  });

  it('a notification due while asleep wakes the client: Update first, then the notification', async () => {
    server = new FakeServer();
    const uri = await server.start();
    device = new LwM2MClient({ endpoint: 'q-2', server: uri, binding: 'UQ', queueQuietTime: 300, timing: FAST_TIMING, requestTimeout: 1000, objects: { 3303: { 0: { 5700: 1 } } } });
    device.on('error', () => undefined);
    await device.start();
    const inbox: CoapResponse[] = [];
    const order: string[] = [];
    await server.endpoint.observe(server.peerOf('q-2'), { method: 'GET', path: ['3303', '0', '5700'] }, (notification) => {
      inbox.push(notification);
      order.push('notify');
    });
    await new Promise((resolve) => device.once('sleep', resolve));
    const before = server.requests.length;
    void server.waitFor((request) => request.path.startsWith('/rd/'), before).then(() => order.push('update'));
    device.set('/3303/0/5700', 2);
    while (inbox.length === 0) await pause(20);
    assert.deepEqual(order, ['update', 'notify']);
    assert.equal(inbox[0]!.payload.toString(), '2');
  });
});
