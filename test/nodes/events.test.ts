/**
 * The server's events in flows: register-in answers an input with the current registrations and,
 * with "security and error events", sends failed DTLS handshakes and bad datagrams (rate-limited);
 * observe and notify-in, with "observation ends", tell when an observation ends and why; observe
 * observes again after a device registered anew.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { LwM2MServer, TraceEntry } from '../../lib';
import { failingHandshake } from '../helpers/dtls-peer';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, messageWhere, node, paletteFlow as flow, until, type Message } from '../helpers/palette';

describe(`Node-RED nodes and the server's events (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(30_000);
  const devices = new Devices();

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));

  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  /** Every message a helper node receives from now on. */
  const collect = (id: string): Message[] => {
    const seen: Message[] = [];
    node(id).on('input', (msg) => seen.push(msg));
    return seen;
  };

  describe('register-in', () => {
    it('answers any input with the registrations its filter matches, sorted, on the same message', async () => {
      const port = await freeUdpPort();
      await helper.load(NODES, flow(port));
      await node('srv').ready;
      for (const endpoint of ['sim-10', 'other-1', 'sim-2']) await devices.start(endpoint, port);
      await until(() => (helper.getNode('srv') as unknown as { server: { registrations(): unknown[] } }).server.registrations().length === 3);
      const listed = messageWhere('out', (msg) => msg.event === 'list');
      node('reg').receive({ payload: 'now', keep: 'me' });
      const msg = await listed;
      assert.equal(msg.topic, 'registrations');
      assert.equal(msg.keep, 'me', 'the input message travels on');
      const payload = msg.payload as Array<Record<string, unknown>>;
      assert.deepEqual(
        payload.map((registration) => registration.endpoint),
        ['sim-2', 'sim-10'],
      );
      // the same shape as a register event's payload
      assert.equal(payload[0]!.version, '1.1');
      assert.equal(payload[0]!.security, 'none');
      assert.ok((payload[0]!.objects as Array<{ objectId: number }>).some((object) => object.objectId === 3303));
      assert.equal(typeof payload[0]!.expiresAt, 'string');
    });

    it('an empty list when nothing matches', async () => {
      const port = await freeUdpPort();
      await helper.load(NODES, flow(port));
      await node('srv').ready;
      const listed = messageWhere('out', (msg) => msg.event === 'list');
      node('reg').receive({});
      assert.deepEqual((await listed).payload, []);
    });

    it('with security and error events: bad datagrams, bounded, then an eventsSuppressed count; off by default', async () => {
      const port = await freeUdpPort();
      await helper.load(
        NODES,
        flow(port, [
          { id: 'sec', type: 'lwm2m-register-in', server: 'srv', securityEvents: true, wires: [['secOut']] },
          { id: 'secOut', type: 'helper' },
        ]),
      );
      await node('srv').ready;
      const secure = collect('secOut');
      const plain = collect('out');
      const socket = createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const SENT = 40;
      try {
        for (let i = 0; i < SENT; i++) {
          await new Promise<void>((resolve, reject) => socket.send(Buffer.from([0x00, i, 0x01]), port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
          if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
        }
        const bad = () => secure.filter((msg) => msg.event === 'badDatagram');
        const suppressed = () => secure.filter((msg) => msg.event === 'eventsSuppressed');
        const accounted = () => bad().length + suppressed().reduce((sum, msg) => sum + (msg.payload as { count: number }).count, 0);
        await until(() => accounted() >= SENT);
        assert.equal(accounted(), SENT);
        assert.ok(bad().length <= SENT / 2, `${bad().length} badDatagram messages`);
        assert.ok(suppressed().length >= 1);
        const first = bad()[0]!;
        assert.equal(first.topic, '127.0.0.1');
        const payload = first.payload as Record<string, unknown>;
        assert.equal(payload.kind, 'malformedCoap');
        assert.equal(payload.size, 3);
        assert.equal(payload.port, socket.address().port);
        assert.deepEqual(
          Object.keys(suppressed()[0]!.payload as object).sort(),
          ['count', 'event', 'window'],
        );
        assert.equal(suppressed()[0]!.topic, 'eventsSuppressed');
        assert.deepEqual(plain, [], 'the node without the option sends nothing of it');
      } finally {
        socket.close();
      }
    });

    it('with security and error events: a DTLS handshake with a wrong key, topic the endpoint of the identity', async () => {
      const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
      const table = JSON.stringify([{ endpoint: 'sim-secure', identity: 'secure-id', key: Buffer.from('secure-key').toString('hex') }]);
      await helper.load(
        NODES,
        flow(
          port,
          [
            { id: 'sec', type: 'lwm2m-register-in', server: 'srv', securityEvents: true, wires: [['secOut']] },
            { id: 'secOut', type: 'helper' },
          ],
          { dtls: true, dtlsPort },
        ),
        { srv: { psk: table } },
      );
      await node('srv').ready;
      const failed = messageWhere('secOut', (msg) => msg.event === 'handshakeFailed');
      await failingHandshake(dtlsPort, 'secure-id', Buffer.from('wrong-key'));
      const msg = await failed;
      assert.equal(msg.topic, 'sim-secure');
      assert.equal(msg.endpoint, 'sim-secure');
      const payload = msg.payload as Record<string, unknown>;
      assert.equal(payload.identity, 'secure-id');
      assert.equal(payload.address, '127.0.0.1');
      assert.ok(payload.alert === 'bad_record_mac' || payload.alert === 'decrypt_error', String(payload.alert));
    });
  });

  describe('observation ends', () => {
    it('observe tells when its observation ends: cancelled by a message, and the device de-registering', async () => {
      const port = await freeUdpPort();
      await helper.load(
        NODES,
        flow(port, [
          { id: 'o', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', observationEnds: true, wires: [['oOut'], []] },
          { id: 'quiet', type: 'lwm2m-observe', server: 'srv', path: '/3303/0', wires: [['quietOut'], []] },
          { id: 'oOut', type: 'helper' },
          { id: 'quietOut', type: 'helper' },
        ]),
      );
      await node('srv').ready;
      const device = await devices.start('sim-e1', port);
      const quiet = collect('quietOut');
      let started = messageWhere('oOut', (msg) => msg.payload === 21.5);
      node('o').receive({ endpoint: 'sim-e1' });
      await started;
      let ended = messageWhere('oOut', (msg) => msg.event === 'observationEnded');
      node('o').receive({ endpoint: 'sim-e1', action: 'cancel' });
      let msg = await ended;
      assert.deepEqual(
        { topic: msg.topic, endpoint: msg.endpoint, path: msg.path, payload: msg.payload },
        { topic: 'sim-e1/3303/0/5700', endpoint: 'sim-e1', path: '/3303/0/5700', payload: { reason: 'cancelled' } },
      );
      assert.equal(typeof msg.observation, 'string');

      started = messageWhere('oOut', (msg) => msg.payload === 21.5);
      node('o').receive({ endpoint: 'sim-e1' });
      await started;
      node('quiet').receive({ endpoint: 'sim-e1' });
      await until(() => quiet.length > 0);
      ended = messageWhere('oOut', (msg) => msg.event === 'observationEnded');
      await device.stop();
      devices.forget(device);
      msg = await ended;
      assert.deepEqual(msg.payload, { reason: 'deregistered' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(
        quiet.filter((entry) => entry.event === 'observationEnded'),
        [],
        'without the option, no such message',
      );
    });

    it('observe: the device notifies an error (the observed instance was deleted), with coapCode', async () => {
      const port = await freeUdpPort();
      await helper.load(
        NODES,
        flow(port, [
          { id: 'o', type: 'lwm2m-observe', server: 'srv', path: '/3303/1', observationEnds: true, wires: [['oOut'], []] },
          { id: 'oOut', type: 'helper' },
        ]),
      );
      await node('srv').ready;
      await devices.start('sim-e2', port, { objects: { 3303: { 0: { 5700: 21.5 }, 1: { 5700: 7 } } } });
      const started = messageWhere('oOut', (msg) => msg.event === undefined);
      node('o').receive({ endpoint: 'sim-e2' });
      await started;
      const ended = messageWhere('oOut', (msg) => msg.event === 'observationEnded');
      const server = (helper.getNode('srv') as unknown as { server: { delete(endpoint: string, path: string): Promise<void> } }).server;
      await server.delete('sim-e2', '/3303/1');
      const msg = await ended;
      assert.equal(msg.topic, 'sim-e2/3303/1');
      assert.deepEqual(msg.payload, { reason: 'error', coapCode: '4.04' });
    });

    it('observe again (on for a node saved without the option): a device that registers anew is observed again with the same path, attributes and format; the end is sent before', async () => {
      const port = await freeUdpPort();
      await helper.load(
        NODES,
        flow(port, [
          { id: 'again', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', format: 'fmt', formatType: 'msg', pmin: '1', observationEnds: true, wires: [['againOut'], []] },
          { id: 'once', type: 'lwm2m-observe', server: 'srv', path: '/3303/0', reobserve: false, observationEnds: true, wires: [['onceOut'], []] },
          { id: 'againOut', type: 'helper' },
          { id: 'onceOut', type: 'helper' },
        ]),
      );
      await node('srv').ready;
      const server = (helper.getNode('srv') as unknown as { server: LwM2MServer }).server;
      const device = await devices.start('sim-again', port);
      const againOut = collect('againOut');
      const onceOut = collect('onceOut');
      node('again').receive({ endpoint: 'sim-again', fmt: 'senml-json', attributes: { pmax: 30 } });
      node('once').receive({ endpoint: 'sim-again' });
      await until(() => againOut.length === 1 && onceOut.length === 1, 'both first values', 20_000);
      const first = String(againOut[0]!.observation);

      // what the device is asked after it registers anew
      const requests: TraceEntry[] = [];
      server.on('trace', (entry) => entry.direction === 'out' && entry.code !== undefined && !/^\d/.test(entry.code) && requests.push(entry));
      const attributes: string[] = [];
      device.on('attributes', ({ path, query }: { path: string; query: string[] }) => attributes.push(`${path}?${[...query].sort().join('&')}`));
      await device.register();

      await until(() => againOut.length === 3, () => `an end and a first value again, not ${JSON.stringify(againOut)}`, 20_000);
      assert.deepEqual(
        againOut.slice(1).map((msg) => ({ event: msg.event, payload: msg.payload, path: msg.path, topic: msg.topic, coapCode: msg.coapCode })),
        [
          { event: 'observationEnded', payload: { reason: 'reregistered' }, path: '/3303/0/5700', topic: 'sim-again/3303/0/5700', coapCode: undefined },
          { event: undefined, payload: 21.5, path: '/3303/0/5700', topic: 'sim-again/3303/0/5700', coapCode: '2.05' },
        ],
      );
      assert.equal(againOut[1]!.observation, first);
      const second = String(againOut[2]!.observation);
      assert.notEqual(second, first, 'a new observation');
      assert.deepEqual(attributes, ['/3303/0/5700?pmax=30&pmin=1'], 'the attributes written again');
      const observe = requests.find((entry) => entry.code === 'GET' && entry.options?.Observe === 0);
      assert.equal(observe?.options?.['Uri-Path'], '/3303/0/5700');
      assert.equal(observe?.options?.Accept, 'application/senml+json', "the message's format again");

      // notifications flow again; the node without the option sent its end and nothing more
      device.set('/3303/0/5700', 30);
      await until(() => againOut.length === 4, 'a notification of the new observation', 20_000);
      assert.deepEqual([againOut[3]!.payload, againOut[3]!.observation], [30, second]);
      assert.deepEqual(
        onceOut.slice(1).map((msg) => [msg.event, msg.payload]),
        [['observationEnded', { reason: 'reregistered' }]],
      );
      assert.deepEqual(
        server.observations('sim-again').map((observation) => observation.paths),
        [['/3303/0/5700']],
      );
    });

    it('observe again that fails is an error for Catch naming the device and path', async () => {
      const port = await freeUdpPort();
      await helper.load(NODES, flow(port, [{ id: 'again', type: 'lwm2m-observe', server: 'srv', path: '/3303/1/5700', wires: [['againOut'], []] }, { id: 'againOut', type: 'helper' }]));
      await node('srv').ready;
      const before = await devices.start('sim-gone', port, { objects: { 3303: { 0: { 5700: 21.5 }, 1: { 5700: 7 } } } });
      const started = messageWhere('againOut', (msg) => msg.payload === 7);
      node('again').receive({ endpoint: 'sim-gone' });
      await started;
      // the device comes back without that instance (another client of the same endpoint)
      await before.stop({ deregister: false });
      devices.forget(before);
      const caught = messageWhere('caught', (msg) => msg.endpoint === 'sim-gone');
      await devices.start('sim-gone', port);
      const msg = await caught;
      assert.equal(msg.path, '/3303/1/5700');
      assert.equal(msg.topic, 'sim-gone/3303/1/5700');
      assert.match(String((msg.error as { message: string }).message), /^observing \/3303\/1\/5700 of sim-gone again after it registered anew failed: .*4\.04/);
    });

    it('notify-in tells when an observation under its filters ends, whoever started it', async () => {
      const port = await freeUdpPort();
      await helper.load(
        NODES,
        flow(port, [
          { id: 'o', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', wires: [['oOut'], []] },
          { id: 'n', type: 'lwm2m-notify-in', server: 'srv', endpoint: 'sim-*', path: '/3303', observationEnds: true, wires: [['nOut']] },
          { id: 'otherPath', type: 'lwm2m-notify-in', server: 'srv', path: '/3311', observationEnds: true, wires: [['otherOut']] },
          { id: 'otherDevice', type: 'lwm2m-notify-in', server: 'srv', endpoint: 'else-*', observationEnds: true, wires: [['otherOut']] },
          { id: 'oOut', type: 'helper' },
          { id: 'nOut', type: 'helper' },
          { id: 'otherOut', type: 'helper' },
        ]),
      );
      await node('srv').ready;
      const other = collect('otherOut');
      const device = await devices.start('sim-e3', port);
      const started = messageWhere('oOut', (msg) => msg.payload === 21.5);
      node('o').receive({ endpoint: 'sim-e3' });
      await started;
      const ended = messageWhere('nOut', (msg) => msg.event === 'observationEnded');
      await device.stop();
      devices.forget(device);
      const msg = await ended;
      assert.deepEqual(
        { topic: msg.topic, endpoint: msg.endpoint, path: msg.path, payload: msg.payload },
        { topic: 'sim-e3/3303/0/5700', endpoint: 'sim-e3', path: '/3303/0/5700', payload: { reason: 'deregistered' } },
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(other, [], 'the filters leave other paths and devices out');
    });
  });
});
