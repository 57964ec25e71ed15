/**
 * node-coap (the `coap` package, written by others) as an independent peer of LwM2MServer: an LwM2M
 * device on one node-coap socket registers, updates and de-registers, answers reads in text, TLV and
 * SenML JSON, and notifies through node-coap's ObserveWriteStream; and node-coap as a plain CoAP
 * client. What node-coap does differently from our own message layer is said where a test meets it.
 */
import assert from 'node:assert/strict';
import { Agent, ObserveWriteStream, type CoapRequestParams, type IncomingMessage } from 'coap';
import { ContentFormat, LwM2MError, LwM2MServer, type NotifyEvent, type ObservationEndedEvent, type Registration, type TraceEntry } from '../../lib';
import { NodeCoapDevice } from '../helpers/node-coap-device';
import { until } from '../helpers/wait';

const LINKS = '</1/0>,</3/0>,</3303/0>';

/** /3/0/0 = 'node-coap device' as one TLV resource, written out by hand: type 0xC8 (resource, 8-bit id, 8-bit length), id 0, length 16 */
const MANUFACTURER = 'node-coap device';
const MANUFACTURER_TLV = Buffer.concat([Buffer.from([0xc8, 0x00, MANUFACTURER.length]), Buffer.from(MANUFACTURER)]);

describe('node-coap as a peer of LwM2MServer', function () {
  this.timeout(120_000);
  let server: LwM2MServer;
  let serverPort: number;
  let device: NodeCoapDevice;

  before(async () => {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1' });
    serverPort = (await server.listen()).port;
  });

  after(() => server.close());

  beforeEach(async () => {
    device = await NodeCoapDevice.start();
  });

  afterEach(() => device.close());

  /** Registers the device as `endpoint` and waits for the server's `register` event; resolves with its location and the registration. */
  const register = async (endpoint: string, lifetime = 60): Promise<{ location: string[]; registration: Registration }> => {
    let registration: Registration | undefined;
    const listener = (registered: Registration) => {
      if (registered.endpoint === endpoint) registration = registered;
    };
    server.on('register', listener);
    try {
      const response = await device.request(
        { port: serverPort, method: 'POST', pathname: '/rd', query: `ep=${endpoint}&lt=${lifetime}&lwm2m=1.1&b=U`, options: { 'Content-Format': 'application/link-format' } },
        LINKS,
      );
      assert.equal(response.code, '2.01', response.payload.toString());
      await until(() => registration !== undefined, `the register event of ${endpoint}`);
      return { location: NodeCoapDevice.locationPath(response), registration: registration! };
    } finally {
      server.off('register', listener);
    }
  };

  const notFound = (response: { statusCode: string; end(payload?: string): unknown }, diagnostic?: string): void => {
    response.statusCode = '4.04';
    response.end(diagnostic);
  };

  it('registers (2.01, Location-Path rd/<id>), updates (2.04) and de-registers (2.02) from its one socket; the server tells each', async () => {
    const { location, registration } = await register('nc-registration');
    assert.equal(location.length, 2, location.join('/'));
    assert.equal(location[0], 'rd');
    assert.equal(location[1], registration.id);
    assert.equal(registration.lifetime, 60);
    assert.equal(registration.version, '1.1');
    assert.equal(registration.binding, 'U');
    assert.deepEqual(registration.objects, [
      { objectId: 1, instanceId: 0 },
      { objectId: 3, instanceId: 0 },
      { objectId: 3303, instanceId: 0 },
    ]);
    // downlink goes where the device's requests came from: the socket its node-coap Server listens on
    assert.equal(registration.address, '127.0.0.1');
    assert.equal(registration.port, device.port);

    const updates: Array<{ registration: Registration; changes: string[] }> = [];
    const onUpdate = (updated: Registration, changes: string[]) => updates.push({ registration: updated, changes });
    server.on('update', onUpdate);
    const deregistered: Registration[] = [];
    const onDeregister = (gone: Registration) => deregistered.push(gone);
    server.on('deregister', onDeregister);
    try {
      const update = await device.request({ port: serverPort, method: 'POST', pathname: `/rd/${registration.id}`, query: 'lt=120' });
      assert.equal(update.code, '2.04');
      await until(() => updates.length === 1, 'the update event');
      assert.equal(updates[0]!.registration.endpoint, 'nc-registration');
      // same socket, so the address did not change
      assert.deepEqual(updates[0]!.changes, ['lifetime']);
      assert.equal(server.registration('nc-registration')!.lifetime, 120);

      const deregister = await device.request({ port: serverPort, method: 'DELETE', pathname: `/rd/${registration.id}` });
      assert.equal(deregister.code, '2.02');
      await until(() => deregistered.length === 1, 'the deregister event');
      assert.equal(deregistered[0]!.endpoint, 'nc-registration');
      assert.equal(deregistered[0]!.id, registration.id);
      assert.equal(server.registration('nc-registration'), undefined);
    } finally {
      server.off('update', onUpdate);
      server.off('deregister', onDeregister);
    }
  });

  it("reads values that node-coap's request handler answers in text/plain, TLV and SenML JSON", async () => {
    await register('nc-read');
    const requests: IncomingMessage[] = [];
    device.handler = (request, response) => {
      requests.push(request);
      const accept = request.headers.Accept;
      if (request.method === 'GET' && request.url === '/3/0/0' && accept === 'text/plain') {
        // node-coap writes Content-Format 0 as one zero byte, not as the empty option our writer uses
        response.setOption('Content-Format', 'text/plain');
        response.end(MANUFACTURER);
      } else if (request.method === 'GET' && request.url === '/3/0/0' && accept === 'application/vnd.oma.lwm2m+tlv') {
        response.setOption('Content-Format', 'application/vnd.oma.lwm2m+tlv');
        response.end(MANUFACTURER_TLV);
      } else if (request.method === 'GET' && request.url === '/3303/0/5700' && accept === 'application/senml+json') {
        response.setOption('Content-Format', 'application/senml+json');
        response.end(JSON.stringify([{ bn: '/3303/0/', n: '5700', v: 21.5 }]));
      } else {
        notFound(response);
      }
    };

    assert.equal(await server.read('nc-read', '/3/0/0', { format: ContentFormat.TEXT }), MANUFACTURER);
    assert.equal(await server.read('nc-read', '/3/0/0', { format: ContentFormat.TLV }), MANUFACTURER);
    assert.equal(await server.read('nc-read', '/3303/0/5700', { format: ContentFormat.SENML_JSON }), 21.5);
    assert.deepEqual(
      requests.map((request) => [request.method, request.url, request.headers.Accept]),
      [
        ['GET', '/3/0/0', 'text/plain'],
        ['GET', '/3/0/0', 'application/vnd.oma.lwm2m+tlv'],
        ['GET', '/3303/0/5700', 'application/senml+json'],
      ],
    );
  });

  it("turns node-coap's 4.04 into our NOT_FOUND error, for a read and for an observe", async () => {
    await register('nc-missing');
    device.handler = (_request, response) => notFound(response, 'no such resource here');
    const isNotFound = (error: unknown): boolean => {
      assert.ok(error instanceof LwM2MError, String(error));
      assert.equal(error.code, 'NOT_FOUND');
      assert.equal(error.coapCode, '4.04');
      assert.match(error.message, /4\.04 Not Found: no such resource here/);
      return true;
    };
    await assert.rejects(server.read('nc-missing', '/3/0/9', { format: ContentFormat.TEXT }), isNotFound);
    // to a GET with Observe=0 node-coap hands an ObserveWriteStream; ended without a write, it answers 4.04 without Observe
    await assert.rejects(server.observe('nc-missing', '/3303/0/5700', undefined, { format: ContentFormat.TEXT }), isNotFound);
    assert.deepEqual(server.observations('nc-missing'), []);
  });

  it("observes /3303/0/5700 through node-coap's ObserveWriteStream: every notification arrives in order; after the cancel, no notify, and node-coap ends its stream on our Reset", async () => {
    await register('nc-observe');
    let stream: ObserveWriteStream | undefined;
    let observeRequest: IncomingMessage | undefined;
    const cancels: IncomingMessage[] = [];
    device.handler = (request, response) => {
      if (request.method === 'GET' && request.url === '/3303/0/5700' && request.headers.Observe === 0) {
        assert.ok(response instanceof ObserveWriteStream, 'node-coap hands an ObserveWriteStream to a GET with Observe=0');
        observeRequest = request;
        stream = response;
        stream.setOption('Content-Format', 'text/plain');
        stream.write('20.5');
      } else if (request.method === 'GET' && request.url === '/3303/0/5700' && request.headers.Observe === 1) {
        // node-coap does not tie this deregistration to the stream of the same token: like most
        // node-coap devices, this one answers it and leaves its stream as it is
        cancels.push(request);
        response.setOption('Content-Format', 'text/plain');
        response.end('23');
      } else {
        notFound(response);
      }
    };
    const notifications: NotifyEvent[] = [];
    const onNotify = (event: NotifyEvent) => {
      if (event.endpoint === 'nc-observe') notifications.push(event);
    };
    const ended: ObservationEndedEvent[] = [];
    const onEnded = (event: ObservationEndedEvent) => {
      if (event.endpoint === 'nc-observe') ended.push(event);
    };
    const trace: TraceEntry[] = [];
    const onTrace = (entry: TraceEntry) => {
      if (entry.peer.port === device.port) trace.push(entry);
    };
    server.on('notify', onNotify);
    server.on('observationEnded', onEnded);
    server.on('trace', onTrace);
    try {
      const observation = await server.observe('nc-observe', '/3303/0/5700', undefined, { format: ContentFormat.TEXT });
      assert.equal(observation.value, 20.5);
      assert.ok(stream && observeRequest);
      const token = observeRequest._packet.token!.toString('hex');
      let finished = false;
      stream.on('finish', () => (finished = true));

      // one value at a time, each awaited: the test is about order and content, not about bursts
      const values = [21, 21.5, 22.25];
      const sequences: number[] = [];
      for (const [index, value] of values.entries()) {
        stream.write(String(value));
        sequences.push(stream._counter);
        await until(() => notifications.length === index + 1, () => `notification ${index + 1} (${notifications.length} so far)`);
      }
      assert.deepEqual(
        notifications.map((event) => event.value),
        values,
      );
      // node-coap numbers its first response Observe=1 and counts up by one; our event gives the number as sent
      assert.deepEqual(sequences, [2, 3, 4]);
      assert.deepEqual(
        notifications.map((event) => event.sequence),
        sequences,
      );
      for (const event of notifications) {
        assert.equal(event.observation.id, observation.id);
        assert.equal(event.contentFormat, ContentFormat.TEXT);
      }
      // to our Confirmable GET node-coap answers piggybacked, then notifies in Confirmable messages, each of which we acknowledge
      const fromDevice = trace.filter((entry) => entry.direction === 'in' && entry.token === token && entry.code === '2.05');
      assert.deepEqual(
        fromDevice.map((entry) => entry.type),
        ['ACK', 'CON', 'CON', 'CON'],
      );
      for (const notification of fromDevice.slice(1)) {
        assert.ok(
          trace.some((entry) => entry.direction === 'out' && entry.type === 'ACK' && entry.messageId === notification.messageId),
          `our ACK of notification ${notification.messageId}`,
        );
      }

      await server.cancelObservation(observation);
      assert.deepEqual(
        ended.map((event) => event.reason),
        ['cancelled'],
      );
      assert.deepEqual(server.observations('nc-observe'), []);
      // the proactive cancel: a GET with Observe=1, the observation's token, and the other options
      // of the GET that started it (RFC 7641 §3.6), so the Accept too
      assert.equal(cancels.length, 1);
      assert.equal(cancels[0]!._packet.token!.toString('hex'), token);
      assert.equal(cancels[0]!.headers.Accept, 'text/plain');
      assert.equal(finished, false, 'node-coap keeps its stream after the deregistration GET');

      // the device notifies once more: we no longer know the token and answer with a Reset, on
      // which node-coap ends the stream (its Reset handling for Confirmable notifications)
      const resetsBefore = device.received.filter((message) => message.type === 'RST').length;
      stream.write('30');
      await until(() => finished, "node-coap's stream to finish after our Reset");
      assert.equal(device.received.filter((message) => message.type === 'RST').length, resetsBefore + 1);
      assert.equal(notifications.length, values.length, 'no notify event after the cancel');
    } finally {
      server.off('notify', onNotify);
      server.off('observationEnded', onEnded);
      server.off('trace', onTrace);
    }
  });

  it('answers node-coap as a plain CoAP client: 4.04 for a resource it does not have, 4.05 for GET /rd, over CON and NON', async () => {
    // an Agent of its own (node-coap's global one is left alone): it binds a socket per burst of requests and closes it when none is left
    const client = new Agent({ type: 'udp4' });
    const get = (params: CoapRequestParams): Promise<IncomingMessage> =>
      new Promise((resolve, reject) => {
        const request = client.request({ hostname: '127.0.0.1', port: serverPort, method: 'GET', ...params });
        request.on('response', resolve);
        request.on('error', reject);
        request.on('timeout', reject);
        request.end();
      });
    try {
      const confirmable = await get({ pathname: '/nothing/here' });
      assert.equal(confirmable.code, '4.04');
      assert.equal(confirmable._packet.ack, true, 'piggybacked on the ACK');
      const nonConfirmable = await get({ pathname: '/nothing/here', confirmable: false });
      assert.equal(nonConfirmable.code, '4.04');
      assert.equal(nonConfirmable._packet.ack, false);
      assert.equal(nonConfirmable._packet.confirmable, false, 'a NON request gets a NON response');
      assert.equal((await get({ pathname: '/rd' })).code, '4.05');
    } finally {
      client.close();
    }
  });
});
