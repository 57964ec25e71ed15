/**
 * LwM2MClient over DTLS (coaps://, PSK) with LwM2MServer: registration bound to the identity,
 * every device-management operation, observe, Send attributed by the session, Update and
 * De-register; a replayed or changed record is dropped, with a reason; after the server loses the session the client
 * handshakes again and registers anew.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:dgram';
import { LwM2MClient, LwM2MServer, type PskCredential } from '../../lib';
import { DtlsClient } from '../../lib/transport/dtls/client';
import { DtlsServer, type DtlsDrop } from '../../lib/transport/dtls/server';
import { FAST_TIMING } from '../helpers/fake-server';
import { freeUdpPort } from '../helpers/ports';
import { udpRelay } from '../helpers/relay';
import { until } from '../helpers/wait';

const KEY = Buffer.from('0123456789abcdef', 'hex');
const CREDENTIALS: PskCredential[] = [
  { identity: 'id-sensor', key: KEY, endpoint: 'sensor' },
  { identity: 'id-other', key: KEY, endpoint: 'other' },
];
const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };

describe('LwM2MClient ↔ LwM2MServer over DTLS (PSK)', function () {
  this.timeout(30_000);
  let server: LwM2MServer;
  const devices: LwM2MClient[] = [];

  async function startServer(dtlsPort = 0): Promise<string> {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, requireSecurity: true, dtls: { port: dtlsPort, address: '127.0.0.1', credentials: CREDENTIALS, timing: DTLS_TIMING } });
    await server.listen();
    return `coaps://127.0.0.1:${server.secureAddress()!.port}`;
  }

  function device(endpoint: string, uri: string, identity = `id-${endpoint}`): LwM2MClient {
    const client = new LwM2MClient({
      endpoint,
      server: uri,
      psk: { identity, key: KEY },
      dtls: { timing: DTLS_TIMING },
      timing: FAST_TIMING,
      retry: { initialDelay: 100, maxDelay: 400 },
      requestTimeout: 1500,
      lifetime: 30,
      objects: { 3303: { 0: { 5700: 21.5, 5701: 'Cel' } }, 3311: { 0: { 5850: false } } },
    });
    client.on('error', () => undefined);
    devices.push(client);
    return client;
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((client) => client.stop()));
    await server?.close();
  });

  it('registers bound to its identity; every operation, observe and Send go over the session', async () => {
    const uri = await startServer();
    const client = device('sensor', uri);
    await client.start();
    const registration = server.registration('sensor')!;
    assert.equal(registration.identity, 'id-sensor');
    assert.equal(registration.address, '127.0.0.1');

    assert.equal(await server.read('sensor', '/3303/0/5700'), 21.5);
    assert.deepEqual(await server.read('sensor', '/3303/0', { format: 11542 }), { 5700: 21.5, 5701: 'Cel' });
    assert.deepEqual(await server.readComposite('sensor', ['/3303/0/5700', '/3311/0/5850']), { '/3303/0/5700': 21.5, '/3311/0/5850': false });
    const links = await server.discover('sensor', '/3303/0');
    assert.ok(links.some((link) => link.uri === '/3303/0/5700'));
    await server.write('sensor', '/3311/0/5850', true);
    assert.equal(client.get('/3311/0/5850'), true);
    await server.writeComposite('sensor', { '/3/0/14': '+02:00', '/3311/0/5850': false });
    assert.equal(client.get('/3/0/14'), '+02:00');
    await server.writeAttributes('sensor', '/3303/0/5700', { pmin: 0, pmax: 30 });
    const rebooted = new Promise((resolve) => client.once('reboot', resolve));
    await server.execute('sensor', '/3/0/4');
    await rebooted;
    assert.equal(await server.create('sensor', '/3303', { 5700: 1.5 }), '/3303/1');
    assert.equal(client.get('/3303/1/5700'), 1.5);
    await server.delete('sensor', '/3303/1');
    assert.equal(client.get('/3303/1'), undefined);

    const observation = await server.observe('sensor', '/3303/0/5700');
    assert.equal(observation.value, 21.5);
    const notified = new Promise<unknown>((resolve) => server.once('notify', ({ value }) => resolve(value)));
    client.set('/3303/0/5700', 23.25);
    assert.equal(await notified, 23.25);
    await server.cancelObservation(observation.id);

    const sent = new Promise<{ endpoint: string; values: Record<string, unknown> }>((resolve) => server.once('send', resolve));
    await client.send(['/3303/0/5700']);
    const send = await sent;
    assert.equal(send.endpoint, 'sensor');
    assert.deepEqual(send.values, { '/3303/0/5700': 23.25 });

    const updated = new Promise((resolve) => server.once('update', resolve));
    await client.update({ lifetime: 40 });
    await updated;
    assert.equal(server.registration('sensor')!.lifetime, 40);
    const deregistered = new Promise((resolve) => server.once('deregister', resolve));
    await client.stop();
    await deregistered;
    assert.equal(server.registrations().length, 0);
  });

  it('an identity registering as another endpoint is refused with 4.03; so is plain CoAP', async () => {
    const uri = await startServer();
    const impostor = device('other', uri, 'id-sensor');
    const refused = new Promise<{ error: Error }>((resolve) => impostor.once('retry', resolve));
    void impostor.start().catch(() => undefined);
    const { error } = await refused;
    assert.match(error.message, /4\.03/);
    assert.equal(server.registrations().length, 0);

    const plain = new LwM2MClient({ endpoint: 'plain', server: `coap://127.0.0.1:${server.address().port}`, timing: FAST_TIMING, retry: { initialDelay: 100, maxDelay: 400 } });
    plain.on('error', () => undefined);
    devices.push(plain);
    const plainRefused = new Promise<{ error: Error }>((resolve) => plain.once('retry', resolve));
    void plain.start().catch(() => undefined);
    assert.match((await plainRefused).error.message, /4\.03/);
    assert.equal(server.registrations().length, 0);
  });

  it('after the server has lost the session (restart), the client handshakes again and registers anew', async () => {
    const port = await freeUdpPort();
    const uri = await startServer(port);
    const client = device('sensor', uri);
    await client.start();
    await server.close();
    // a new server on the same port knows neither the session nor the registration
    await startServer(port);
    const registered = new Promise((resolve) => server.once('register', resolve));
    void client.update().catch(() => undefined);
    await registered;
    assert.equal(server.registration('sensor')?.identity, 'id-sensor');
    assert.equal(await server.read('sensor', '/3303/0/5700'), 21.5);
  });
});

describe('DTLS records replayed on the wire', function () {
  this.timeout(20_000);
  const sockets: Socket[] = [];
  afterEach(() => sockets.splice(0).forEach((socket) => socket.close()));

  it('are dropped: each application record is delivered once', async () => {
    const server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), timing: DTLS_TIMING });
    const { port } = await server.listen(0, '127.0.0.1');
    const received: string[] = [];
    server.on('message', (data: Buffer) => received.push(data.toString()));
    const replayed: string[] = [];
    server.on('drop', ({ reason }: DtlsDrop) => {
      if (/^an application data record \(epoch 1, sequence \d+\) replayed or too old$/.test(reason)) replayed.push(reason);
    });
    // a relay that delivers every client datagram twice
    const relay = await udpRelay(port, (datagram) => [datagram, datagram]);
    sockets.push(relay);
    const client = new DtlsClient({ host: '127.0.0.1', port: relay.address().port, identity: 'dev', key: KEY, timing: DTLS_TIMING });
    await client.connect();
    for (let i = 0; i < 10; i++) client.send(Buffer.from(`datagram ${i}`), 0, '');
    await until(() => received.length >= 10, 'ten datagrams');
    // each copy is dropped, with a reason
    await until(() => replayed.length >= 10, 'ten replays dropped');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(received, Array.from({ length: 10 }, (_, i) => `datagram ${i}`));
    assert.equal(replayed.length, 10);
    await new Promise<void>((resolve) => client.close(resolve));
    await new Promise<void>((resolve) => server.close(resolve));
  });

  it('a changed record of an established session does not authenticate: dropped with a reason, and the session carries on', async () => {
    const server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), timing: DTLS_TIMING });
    const { port } = await server.listen(0, '127.0.0.1');
    const received: string[] = [];
    server.on('message', (data: Buffer) => received.push(data.toString()));
    const drops: string[] = [];
    server.on('drop', ({ reason }: DtlsDrop) => drops.push(reason));
    // the relay flips the last byte of each application data record's ciphertext while `tamper` is set
    let tamper = false;
    const relay = await udpRelay(port, (datagram) => {
      if (!tamper || datagram[0] !== 23) return [datagram];
      const changed = Buffer.from(datagram);
      changed[changed.length - 1]! ^= 1;
      return [changed];
    });
    sockets.push(relay);
    const client = new DtlsClient({ host: '127.0.0.1', port: relay.address().port, identity: 'dev', key: KEY, timing: DTLS_TIMING });
    await client.connect();
    tamper = true;
    client.send(Buffer.from('changed on the way'), 0, '');
    await until(() => drops.length >= 1, 'the changed record dropped');
    assert.match(drops[0]!, /^an application data record \(epoch 1, sequence \d+\) does not authenticate$/);
    tamper = false;
    client.send(Buffer.from('intact'), 0, '');
    await until(() => received.length >= 1, 'the intact datagram');
    assert.deepEqual(received, ['intact']);
    assert.equal(drops.length, 1);
    await new Promise<void>((resolve) => client.close(resolve));
    await new Promise<void>((resolve) => server.close(resolve));
  });
});
