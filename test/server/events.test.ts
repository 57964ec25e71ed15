/**
 * The server's events beyond registrations and values, over real UDP on 127.0.0.1: why each
 * observation ended (observationEnded, once per observation, for every reason the server knows),
 * failed DTLS handshakes (handshakeFailed with the identity and the alert), and bad datagrams
 * (badDatagram, rate-limited, with an eventsSuppressed count after a flood).
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { LwM2MServer, type BadDatagramEvent, type EventsSuppressedEvent, type HandshakeFailedEvent, type ObservationEndedEvent } from '../../lib';
import { failingHandshake } from '../helpers/dtls-peer';
import { CoapEndpoint, type IncomingRequest } from '../../lib/transport/endpoint';
import { OptionNumber } from '../../lib/transport/message';
import { FAST_TIMING } from '../helpers/fake-server';

const KEY = Buffer.from('0123456789abcdef', 'hex');
const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };

async function until(condition: () => boolean, what: string, timeout = 20_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A device of a few lines on our CoAP endpoint: it registers, answers every Observe with a value
 * and keeps the request, so a test can notify (or end the observation) as it likes.
 */
class RawDevice {
  readonly endpoint = new CoapEndpoint({ timing: FAST_TIMING });
  readonly observed: IncomingRequest[] = [];
  location = '';

  constructor(
    private readonly name: string,
    private readonly serverPort: number,
  ) {
    this.endpoint.setRequestHandler((request) => {
      if (request.observe === 0) this.observed.push(request);
      return { code: '2.05', payload: Buffer.from('21.5'), contentFormat: 0, observe: request.observe === 0 ? 1 : undefined };
    });
  }

  get server() {
    return { address: '127.0.0.1', port: this.serverPort };
  }

  async register(lifetime = 60): Promise<void> {
    const response = await this.endpoint.request(this.server, {
      method: 'POST',
      path: ['rd'],
      query: [`ep=${this.name}`, `lt=${lifetime}`, 'lwm2m=1.1'],
      contentFormat: 40,
      payload: Buffer.from('</3303/0>'),
    });
    assert.equal(response.code, '2.01');
    this.location = response.options.filter((option) => option.number === OptionNumber.LOCATION_PATH).map((option) => option.value.toString()).join('/');
  }

  async deregister(): Promise<void> {
    const response = await this.endpoint.request(this.server, { method: 'DELETE', path: this.location.split('/') });
    assert.equal(response.code, '2.02');
  }

  /** A notification of the latest observation: a value with Observe, or a final answer without. */
  notify(code: string, observe: number | undefined): void {
    void this.endpoint.notify(this.observed.at(-1)!, { code, payload: Buffer.from(code.startsWith('2.') ? '22' : ''), contentFormat: code.startsWith('2.') ? 0 : undefined, observe }, false);
  }
}

describe('LwM2MServer events: observationEnded, handshakeFailed, badDatagram', function () {
  this.timeout(60_000);
  let server: LwM2MServer;
  const devices: RawDevice[] = [];
  const ended: ObservationEndedEvent[] = [];

  const device = async (name: string, lifetime?: number): Promise<RawDevice> => {
    const raw = new RawDevice(name, server.address().port);
    devices.push(raw);
    await raw.endpoint.listen(0, '127.0.0.1');
    const registered = new Promise((resolve) => server.once('register', resolve));
    await raw.register(lifetime);
    await registered;
    return raw;
  };

  const endedOf = (id: string) => ended.filter((event) => event.id === id);

  beforeEach(async () => {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, expiryGrace: 0 });
    server.on('error', () => undefined);
    server.on('observationEnded', (event) => ended.push(event));
    await server.listen();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((raw) => raw.endpoint.close()));
    await server.close();
    ended.length = 0;
  });

  describe('observationEnded', () => {
    it('cancelled: by cancelObservation, once, with the endpoint and paths', async () => {
      await device('c1');
      const observation = await server.observe('c1', '/3303/0/5700');
      await server.cancelObservation(observation);
      assert.deepEqual(endedOf(observation.id), [
        { id: observation.id, endpoint: 'c1', registrationId: observation.registrationId, paths: ['/3303/0/5700'], composite: false, reason: 'cancelled' },
      ]);
      await assert.rejects(server.cancelObservation(observation), /no observation/);
      assert.equal(ended.length, 1, 'a second cancel ends nothing');
    });

    it('replaced: a new observation of the same path on the same registration ends the old one; another path does not', async () => {
      await device('r1');
      const first = await server.observe('r1', '/3303/0/5700');
      const other = await server.observe('r1', '/3303/0/5701');
      const second = await server.observe('r1', '/3303/0/5700');
      assert.deepEqual(endedOf(first.id).map((event) => event.reason), ['replaced']);
      assert.equal(endedOf(other.id).length, 0);
      assert.equal(endedOf(second.id).length, 0);
      assert.deepEqual(server.observations('r1').map((observation) => observation.id).sort(), [other.id, second.id].sort());
    });

    it('reregistered: a new Register of the device ends the observations of its old registration', async () => {
      const raw = await device('rr1');
      const observation = await server.observe('rr1', '/3303/0/5700');
      const registered = new Promise((resolve) => server.once('register', resolve));
      await raw.register();
      await registered;
      assert.deepEqual(endedOf(observation.id).map((event) => event.reason), ['reregistered']);
      assert.deepEqual(server.observations('rr1'), []);
    });

    it('deregistered: a De-register ends the observations, before the deregister event', async () => {
      const raw = await device('d1');
      const observation = await server.observe('d1', '/3303/0/5700');
      const seenAtDeregister = new Promise<number>((resolve) => server.once('deregister', () => resolve(endedOf(observation.id).length)));
      await raw.deregister();
      assert.equal(await seenAtDeregister, 1);
      assert.deepEqual(endedOf(observation.id).map((event) => event.reason), ['deregistered']);
    });

    it('expired: the registration outlived its lifetime', async () => {
      await device('e1', 1);
      const observation = await server.observe('e1', '/3303/0/5700');
      await new Promise((resolve) => server.once('expire', resolve));
      assert.deepEqual(endedOf(observation.id).map((event) => event.reason), ['expired']);
    });

    it('error: the device notifies 4.04 (the resource went away), with the coapCode', async () => {
      const raw = await device('x1');
      const observation = await server.observe('x1', '/3303/0/5700');
      const notified = new Promise((resolve) => server.once('notify', resolve));
      raw.notify('2.05', 2);
      await notified;
      raw.notify('4.04', undefined);
      await until(() => endedOf(observation.id).length > 0, 'observationEnded');
      assert.deepEqual(
        endedOf(observation.id).map(({ reason, coapCode }) => ({ reason, coapCode })),
        [{ reason: 'error', coapCode: '4.04' }],
      );
      assert.deepEqual(server.observations('x1'), []);
    });

    it('ended: the device answers 2.05 without Observe: it stopped observing', async () => {
      const raw = await device('n1');
      const observation = await server.observe('n1', '/3303/0/5700');
      raw.notify('2.05', undefined);
      await until(() => endedOf(observation.id).length > 0, 'observationEnded');
      assert.deepEqual(
        endedOf(observation.id).map(({ reason, coapCode }) => ({ reason, coapCode })),
        [{ reason: 'ended', coapCode: '2.05' }],
      );
      // a later notification under the token is not news any more
      raw.notify('4.04', undefined);
      await server.observe('n1', '/3303/0/5701'); // a round trip after it
      assert.equal(endedOf(observation.id).length, 1);
    });

    it('closed: the server closes, and every observation ends once', async () => {
      await device('z1');
      const a = await server.observe('z1', '/3303/0/5700');
      const b = await server.observe('z1', '/3303/0/5701');
      await server.close();
      assert.deepEqual(endedOf(a.id).map((event) => event.reason), ['closed']);
      assert.deepEqual(endedOf(b.id).map((event) => event.reason), ['closed']);
      assert.equal(new Set(ended.map((event) => event.id)).size, ended.length, 'once per observation');
    });
  });

  describe('badDatagram', () => {
    let flood: Socket | undefined;
    afterEach(() => {
      flood?.close();
      flood = undefined;
    });

    it('a flood of garbage gives at most the burst per window, one eventsSuppressed count for the rest, and the server carries on', async () => {
      await server.close();
      server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, eventLimit: { burst: 5, window: 2000 } });
      server.on('error', () => undefined);
      const bad: BadDatagramEvent[] = [];
      const suppressed: EventsSuppressedEvent[] = [];
      server.on('badDatagram', (event) => bad.push(event));
      server.on('eventsSuppressed', (event) => suppressed.push(event));
      const { port } = await server.listen();
      flood = createSocket('udp4');
      await new Promise<void>((resolve) => flood!.bind(0, '127.0.0.1', resolve));
      const SENT = 200;
      // version 0 in the first byte: not CoAP; paced in groups so the loopback buffer keeps up
      for (let i = 0; i < SENT; i++) {
        await new Promise<void>((resolve, reject) => flood!.send(Buffer.from([0x00, i & 0xff, 0xff, 0xee, 0x01]), port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
        if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
      }
      const total = () => bad.length + suppressed.reduce((sum, event) => sum + event.count, 0);
      await until(() => total() >= SENT, 'every datagram accounted for');
      assert.equal(total(), SENT);
      assert.ok(suppressed.length >= 1, 'a summary');
      assert.ok(suppressed.every((event) => event.event === 'badDatagram' && event.window === 2000 && event.count > 0));
      // at most 5 per 2 s window: 200 datagrams in under 20 s give fewer than half as events
      assert.ok(bad.length < SENT / 2, `${bad.length} events`);
      const first = bad[0]!;
      assert.equal(first.kind, 'malformedCoap');
      assert.equal(first.size, 5);
      assert.equal(first.address, '127.0.0.1');
      assert.equal(first.port, flood.address().port);
      assert.equal(first.secure, false);
      assert.ok(first.reason.length > 0);
      // and the server still serves devices
      const raw = await device('after-flood');
      assert.ok(server.registration('after-flood'));
      assert.ok(raw.location.startsWith('rd/'));
    });

    it('requests the server refuses: an Update of an unknown registration, a path it does not serve', async () => {
      const bad: BadDatagramEvent[] = [];
      server.on('badDatagram', (event) => bad.push(event));
      const raw = new RawDevice('nobody', server.address().port);
      devices.push(raw);
      await raw.endpoint.listen(0, '127.0.0.1');
      assert.equal((await raw.endpoint.request(raw.server, { method: 'POST', path: ['rd', 'nothing'] })).code, '4.04');
      assert.equal((await raw.endpoint.request(raw.server, { method: 'GET', path: ['secret'] })).code, '4.04');
      await until(() => bad.length >= 2, 'two events');
      assert.deepEqual(bad.map(({ kind, port, secure }) => ({ kind, port, secure })), [
        { kind: 'refused', port: raw.endpoint.address().port, secure: false },
        { kind: 'refused', port: raw.endpoint.address().port, secure: false },
      ]);
      assert.match(bad[0]!.reason, /rd\/nothing/);
      assert.match(bad[1]!.reason, /GET \/secret/);
      assert.ok(bad.every((event) => event.size > 4), 'the datagram size');
    });
  });

  describe('handshakeFailed', () => {
    let secure: LwM2MServer;
    afterEach(() => secure?.close());

    const start = async (): Promise<number> => {
      secure = new LwM2MServer({
        port: 0,
        address: '127.0.0.1',
        dtls: { port: 0, credentials: [{ identity: 'dev-id', key: KEY, endpoint: 'dev' }], timing: DTLS_TIMING },
      });
      secure.on('error', () => undefined);
      await secure.listen();
      return secure.secureAddress()!.port;
    };

    it('a wrong PSK: the identity, and the alert sent', async () => {
      const port = await start();
      const failed = new Promise<HandshakeFailedEvent>((resolve) => secure.once('handshakeFailed', resolve));
      await failingHandshake(port, 'dev-id', Buffer.from('ffffffffffffffff', 'hex'));
      const event = await failed;
      assert.equal(event.identity, 'dev-id');
      assert.equal(event.address, '127.0.0.1');
      assert.ok(event.port > 0);
      assert.ok(event.alert === 'bad_record_mac' || event.alert === 'decrypt_error', String(event.alert));
      assert.match(event.reason, /wrong key/);
      assert.equal(secure.registrations().length, 0);
    });

    it('an unknown identity: unknown_psk_identity', async () => {
      const port = await start();
      const failed = new Promise<HandshakeFailedEvent>((resolve) => secure.once('handshakeFailed', resolve));
      await failingHandshake(port, 'stranger', KEY);
      const event = await failed;
      assert.equal(event.identity, 'stranger');
      assert.equal(event.alert, 'unknown_psk_identity');
      assert.match(event.reason, /unknown PSK identity "stranger"/);
    });

    it('garbage on the DTLS port is a badDatagram (malformedDtls, secure)', async () => {
      const port = await start();
      const bad = new Promise<BadDatagramEvent>((resolve) => secure.once('badDatagram', resolve));
      const socket = createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      socket.send(Buffer.from('not a DTLS record'), port, '127.0.0.1');
      const event = await bad;
      socket.close();
      assert.equal(event.kind, 'malformedDtls');
      assert.equal(event.secure, true);
      assert.equal(event.size, 17);
      assert.match(event.reason, /not a DTLS record/);
    });
  });
});
