/**
 * LwM2MClient with DTLS connection IDs (RFC 9146) behind a "NAT" that rebinds it to a new source
 * port mid-session, with LwM2MServer: the registration and its observations follow the session
 * without a handshake, uplink (notification, Update) and downlink (a read) keep working. Without
 * connection IDs the same rebinding loses the downlink and costs a handshake. A tampered record
 * from a new address, or one with an ID nobody issued, moves nothing and registers nothing.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { LwM2MClient, LwM2MServer, type PskCredential } from '../../lib';
import { ContentType, DTLS_1_2 } from '../../lib/transport/dtls/constants';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import type { DtlsDrop, DtlsServer, SessionMove } from '../../lib/transport/dtls/server';
import { udpBalancer, type Balancer } from '../helpers/balancer';
import { FAST_TIMING } from '../helpers/fake-server';
import { heapAfterGc } from '../helpers/heap';
import { boundUdpSocket } from '../helpers/ports';
import { udpRelay } from '../helpers/relay';
import { until } from '../helpers/wait';

const KEY = Buffer.from('0123456789abcdef', 'hex');
const CREDENTIALS: PskCredential[] = [{ identity: 'id-sensor', key: KEY, endpoint: 'sensor' }];
const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };

describe('LwM2M over DTLS with connection IDs: a device behind a rebinding NAT', function () {
  this.timeout(60_000);
  let server: LwM2MServer;
  let dtls: DtlsServer;
  const devices: LwM2MClient[] = [];
  const balancers: Balancer[] = [];
  const sockets: Socket[] = [];
  const drops: DtlsDrop[] = [];
  const moves: SessionMove[] = [];
  let handshakes = 0;

  async function startServer(): Promise<number> {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, requireSecurity: true, dtls: { port: 0, address: '127.0.0.1', credentials: CREDENTIALS, timing: DTLS_TIMING } });
    await server.listen();
    // the DtlsServer under the LwM2M server: to count handshakes and see what it drops and moves
    dtls = (server as unknown as { dtls: DtlsServer }).dtls;
    dtls.on('session', () => handshakes++);
    dtls.on('drop', (drop: DtlsDrop) => drops.push(drop));
    dtls.on('sessionMoved', (move: SessionMove) => moves.push(move));
    return server.secureAddress()!.port;
  }

  function device(port: number, connectionId: boolean): LwM2MClient {
    const client = new LwM2MClient({
      endpoint: 'sensor',
      server: `coaps://127.0.0.1:${port}`,
      psk: { identity: 'id-sensor', key: KEY },
      dtls: { timing: DTLS_TIMING, connectionId },
      timing: FAST_TIMING,
      retry: { initialDelay: 100, maxDelay: 400 },
      requestTimeout: 1500,
      lifetime: 30,
      objects: { 3303: { 0: { 5700: 21.5, 5701: 'Cel' } } },
    });
    client.on('error', () => undefined);
    devices.push(client);
    return client;
  }

  function nextNotification(): Promise<unknown> {
    return new Promise((resolve) => server.once('notify', ({ value }) => resolve(value)));
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((client) => client.stop()));
    for (const socket of sockets.splice(0)) socket.close();
    for (const balancer of balancers.splice(0)) await balancer.close();
    await server?.close();
    drops.length = 0;
    moves.length = 0;
    handshakes = 0;
  });

  it('keeps working after the NAT gives it a new port: the notification moves the registration and its observation, a read reaches the new port, an Update goes through, one handshake in all', async () => {
    const port = await startServer();
    const nat = await udpBalancer(port);
    balancers.push(nat);
    const client = device(nat.port, true);
    await client.start();
    const before = server.registration('sensor')!.port;
    await server.observe('sensor', '/3303/0/5700');

    nat.point(port); // the NAT binding changes: the server sees the device from a new port
    const notified = nextNotification();
    client.set('/3303/0/5700', 30.5);
    assert.equal(await notified, 30.5, 'the notification from the new port is accepted');
    const after = server.registration('sensor')!.port;
    assert.notEqual(after, before, 'the registration moved with the session');
    assert.deepEqual(moves.map((move) => [move.from.port, move.to.port, move.identity]), [[before, after, 'id-sensor']]);

    assert.equal(await server.read('sensor', '/3303/0/5700'), 30.5, 'downlink reaches the device at its new port');
    const again = nextNotification();
    client.set('/3303/0/5700', 31);
    assert.equal(await again, 31, 'the observation listens at the new port');
    const updated = new Promise((resolve) => server.once('update', resolve));
    await client.update({ lifetime: 40 });
    await updated;
    assert.equal(server.registration('sensor')!.lifetime, 40);
    assert.equal(handshakes, 1, 'no new handshake');
    assert.equal(server.registrations().length, 1);
  });

  it('without connection IDs the same rebinding loses the downlink, and the device needs a new handshake', async () => {
    const port = await startServer();
    const nat = await udpBalancer(port);
    balancers.push(nat);
    const client = device(nat.port, false);
    await client.start();
    nat.point(port);
    // the server still sends to the old binding, which the NAT no longer has
    await assert.rejects(server.read('sensor', '/3303/0/5700'), 'the read is lost');
    // the device's next record arrives from a port without a session: dropped, so it handshakes again
    const updated = new Promise((resolve) => server.once('update', resolve));
    void client.update({ lifetime: 45 }).catch(() => undefined);
    await until(() => drops.some((drop) => /without a DTLS session/.test(drop.reason)), 'the record from the new port to be dropped');
    await until(() => handshakes >= 2, 'a second handshake');
    await updated;
    assert.equal(await server.read('sensor', '/3303/0/5700'), 21.5);
    assert.equal(moves.length, 0);
  });

  it('a tampered record from a new address, and records with an ID nobody issued, move nothing and register nothing; the heap stays flat', async () => {
    const port = await startServer();
    const captured: Buffer[] = [];
    let withhold = false;
    const relay = await udpRelay(port, (datagram) => {
      captured.push(datagram);
      return withhold ? [] : [datagram];
    });
    sockets.push(relay);
    const client = device(relay.address().port, true);
    await client.start();
    const home = server.registration('sensor')!.port;
    assert.equal(home, relay.address().port);

    // the device's next record, kept back from the server, with one ciphertext byte flipped, sent from another port
    withhold = true;
    const seen = captured.length;
    client.set('/3303/0/5700', 40); // nobody observes: send a Send instead
    void client.send(['/3303/0/5700']).catch(() => undefined);
    await until(() => captured.slice(seen).some((datagram) => parseRecords(datagram, 6)[0]?.type === ContentType.TLS12_CID), 'a tls12_cid record the relay keeps back');
    withhold = false;
    const unseen = captured.slice(seen).find((datagram) => parseRecords(datagram, 6)[0]?.type === ContentType.TLS12_CID)!;
    const tampered = Buffer.from(unseen);
    tampered[tampered.length - 2]! ^= 0x80;
    const attacker = await boundUdpSocket();
    sockets.push(attacker);
    attacker.send(tampered, port, '127.0.0.1');
    await until(() => drops.some((drop) => drop.port === attacker.address().port), 'the tampered record to be dropped');
    assert.match(drops.find((drop) => drop.port === attacker.address().port)!.reason, /does not authenticate: the session stays/);

    const heapBefore = heapAfterGc();
    for (let i = 0; i < 2000; i++) {
      attacker.send(writeRecord(ContentType.TLS12_CID, DTLS_1_2, 1, i, randomBytes(48), randomBytes(6)), port, '127.0.0.1');
      if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => drops.filter((drop) => /did not issue/.test(drop.reason)).length >= 1900, 'the records with unknown IDs to be dropped');
    const growth = heapAfterGc() - heapBefore;
    assert.ok(growth < 4 * 1024 * 1024, `heap grew by ${growth} bytes`);

    assert.equal(moves.length, 0, 'the session did not move');
    assert.equal(server.registration('sensor')!.port, home, 'the registration did not move');
    assert.equal(server.registrations().length, 1, 'nothing else registered');
    assert.deepEqual(dtls.counts, { sessions: 1, handshakes: 0 });
    let attackerGot = 0;
    attacker.on('message', () => attackerGot++);
    assert.equal(await server.read('sensor', '/3303/0/5700'), 40, 'downlink still goes to the device');
    assert.equal(attackerGot, 0);
    assert.equal(handshakes, 1);
  });
});
