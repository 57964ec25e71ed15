/**
 * RFC 9146 connection IDs between our DtlsClient and DtlsServer, on real UDP sockets: both sides
 * negotiate them, a client behind a "NAT" that gives it a new source port keeps its session (no
 * new handshake, the server's answers follow it), and without them the same rebinding costs a
 * handshake. Hostile input: records with an ID nobody issued, and records from a new address that
 * do not authenticate or are replays, move nothing and keep no state.
 */
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { protectionsFor } from '../../lib/transport/dtls/cipher';
import { unwrapInner, wrapInner } from '../../lib/transport/dtls/connection-id';
import type { Socket } from 'node:dgram';
import { AlertDescription, ContentType, DTLS_1_2, ExtensionType, HandshakeType } from '../../lib/transport/dtls/constants';
import { DtlsClient } from '../../lib/transport/dtls/client';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { parseHandshakeFragments, parseHelloVerifyRequest, parseServerHello, writeClientHello, writeHandshake, type ServerHello } from '../../lib/transport/dtls/handshake';
import { DtlsServer, type DtlsDrop, type SessionMove } from '../../lib/transport/dtls/server';
import { udpBalancer, type Balancer } from '../helpers/balancer';
import { heapAfterGc } from '../helpers/heap';
import { boundUdpSocket } from '../helpers/ports';
import { udpRelay } from '../helpers/relay';
import { until } from '../helpers/wait';

const KEY = Buffer.from('cid-secret');

describe('DTLS connection ID record protection (RFC 9146 §5)', () => {
  it('seals a tls12_cid record under additional data built as RFC 9146 lays it out (checked with a decipher of our own here)', () => {
    const block = Buffer.from(Array.from({ length: 40 }, (_, index) => index + 1));
    const { write } = protectionsFor('TLS_PSK_WITH_AES_128_CCM_8', block, false); // the client's key: bytes 1..16, salt 33..36
    const cid = Buffer.from('c1d2e3', 'hex');
    const inner = wrapInner(ContentType.APPLICATION_DATA, Buffer.from('payload'));
    const fragment = write.seal(ContentType.TLS12_CID, DTLS_1_2, 1, 5, inner, cid);
    const aad = Buffer.concat([
      Buffer.alloc(8, 0xff), // seq_num placeholder
      Buffer.from([25, cid.length, 25]), // tls12_cid, cid_length, tls12_cid
      Buffer.from('fefd', 'hex'), // version
      Buffer.from('0001', 'hex'), // epoch
      Buffer.from('000000000005', 'hex'), // sequence number
      cid,
      Buffer.from([0, inner.length]), // length of the inner plaintext
    ]);
    const decipher = createDecipheriv('aes-128-ccm', block.subarray(0, 16), Buffer.concat([block.subarray(32, 36), fragment.subarray(0, 8)]), { authTagLength: 8 });
    decipher.setAuthTag(fragment.subarray(fragment.length - 8));
    decipher.setAAD(aad, { plaintextLength: inner.length });
    const opened = Buffer.concat([decipher.update(fragment.subarray(8, fragment.length - 8)), decipher.final()]);
    assert.deepEqual(unwrapInner(opened), { type: ContentType.APPLICATION_DATA, content: Buffer.from('payload') });
    assert.equal(write.open(ContentType.TLS12_CID, DTLS_1_2, 1, 5, fragment, Buffer.from('c1d2e4', 'hex')), undefined, 'another ID does not authenticate');
  });

  it('unwraps the inner plaintext: content, real type, zero padding; all padding is refused', () => {
    assert.deepEqual(unwrapInner(Buffer.from([1, 2, 23, 0, 0, 0])), { type: 23, content: Buffer.from([1, 2]) });
    assert.equal(unwrapInner(Buffer.from([0, 0, 0])), undefined);
    assert.equal(unwrapInner(Buffer.alloc(0)), undefined);
  });
});

describe('DTLS connection IDs (RFC 9146)', function () {
  this.timeout(60_000);
  let server: DtlsServer;
  let port: number;
  const clients: DtlsClient[] = [];
  const sockets: Socket[] = [];
  const balancers: Balancer[] = [];
  const drops: DtlsDrop[] = [];
  const moves: SessionMove[] = [];
  let sessions = 0;

  async function start(options: { connectionId?: boolean } = {}): Promise<void> {
    server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), timing: { initialTimeout: 300 }, ...options });
    ({ port } = await server.listen(0, '127.0.0.1'));
    // an echo: what a client sends comes back to the address the server has for its session
    server.on('message', (data: Buffer, info: { address: string; port: number }) => server.send(Buffer.concat([Buffer.from('echo '), data]), info.port, info.address));
    server.on('drop', (drop: DtlsDrop) => drops.push(drop));
    server.on('sessionMoved', (move: SessionMove) => moves.push(move));
    server.on('session', () => sessions++);
  }

  function client(serverPort: number, options: { connectionId?: boolean; receiveConnectionIdLength?: number } = {}): DtlsClient {
    const made = new DtlsClient({ host: '127.0.0.1', port: serverPort, identity: 'dev', key: KEY, timing: { initialTimeout: 300 }, ...options });
    clients.push(made);
    return made;
  }

  /** Sends `text` and resolves with the next message the client gets (or undefined after `ms`). */
  function roundTrip(dtls: DtlsClient, text: string, ms = 20_000): Promise<string | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        dtls.off('message', listener);
        resolve(undefined);
      }, ms);
      const listener = (data: Buffer) => {
        clearTimeout(timer);
        dtls.off('message', listener);
        resolve(data.toString());
      };
      dtls.on('message', listener);
      dtls.send(Buffer.from(text));
    });
  }

  afterEach(async () => {
    for (const dtls of clients.splice(0)) await new Promise<void>((resolve) => dtls.close(resolve));
    for (const socket of sockets.splice(0)) socket.close();
    for (const balancer of balancers.splice(0)) await balancer.close();
    await new Promise<void>((resolve) => server.close(resolve));
    drops.length = 0;
    moves.length = 0;
    sessions = 0;
  });

  /** A ClientHello with `extensions`, answered through the cookie exchange: the ServerHello, or the alert the server sent. */
  async function helloWith(extensions: Array<[number, Buffer]>): Promise<ServerHello | { alert: number }> {
    const socket = await boundUdpSocket();
    sockets.push(socket);
    const random = randomBytes(32);
    const answer = (cookie: Buffer, sequence: number): Promise<Buffer> =>
      new Promise((resolve) => {
        socket.once('message', resolve);
        const hello = writeClientHello({ version: DTLS_1_2, random, sessionId: Buffer.alloc(0), cookie, cipherSuites: [0xc0a8], extensions });
        socket.send(writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, sequence, writeHandshake(HandshakeType.CLIENT_HELLO, sequence, hello)), port, '127.0.0.1');
      });
    const verify = parseRecords(await answer(Buffer.alloc(0), 0))[0]!;
    const cookie = parseHelloVerifyRequest(parseHandshakeFragments(verify.fragment)[0]!.body);
    const reply = parseRecords(await answer(cookie, 1))[0]!;
    if (reply.type === ContentType.ALERT) return { alert: reply.fragment[1]! };
    return parseServerHello(parseHandshakeFragments(reply.fragment)[0]!.body);
  }

  it('answers the connection_id extension (54) with a fresh 6-byte ID, ignores mbedTLS 2.x draft extension 254, refuses a malformed one with decode_error', async () => {
    await start();
    const offered = await helloWith([[ExtensionType.CONNECTION_ID, Buffer.from([0])]]);
    assert.ok('extensions' in offered);
    const id = offered.extensions.get(ExtensionType.CONNECTION_ID)!;
    assert.equal(id.length, 7);
    assert.equal(id[0], 6);
    const draft = await helloWith([[254, Buffer.from([2, 0xaa, 0xbb])]]);
    assert.ok('extensions' in draft);
    assert.deepEqual([...draft.extensions.keys()], [], 'no connection ID for a draft-only client');
    const malformed = await helloWith([[ExtensionType.CONNECTION_ID, Buffer.from([5, 1])]]);
    assert.deepEqual(malformed, { alert: AlertDescription.decode_error });
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 2 }, 'the two well-formed hellos hold a handshake each; the malformed one nothing');
  });

  it('negotiates an ID: the server issues 6 random bytes, the client puts them in its records, data flows both ways', async () => {
    await start();
    const first = client(port, { connectionId: true });
    const second = client(port, { connectionId: true });
    assert.equal(await roundTrip(first, 'one'), 'echo one');
    assert.equal(await roundTrip(second, 'two'), 'echo two');
    const [a, b] = [first, second].map((dtls) => server.session('127.0.0.1', dtls.address().port));
    assert.match(a!.connectionId!, /^[0-9a-f]{12}$/);
    assert.equal(first.connectionId, a!.connectionId);
    assert.equal(second.connectionId, b!.connectionId);
    assert.notEqual(a!.connectionId, b!.connectionId);
  });

  it('writes tls12_cid records with the ID both ways when the client asks for an ID of its own too', async () => {
    await start();
    const seen: number[] = [];
    const relay = await udpRelay(port, (datagram) => {
      seen.push(...parseRecords(datagram, 6).map((record) => record.type));
      return [datagram];
    });
    sockets.push(relay);
    const dtls = client(relay.address().port, { connectionId: true, receiveConnectionIdLength: 4 });
    assert.equal(await roundTrip(dtls, 'hello'), 'echo hello'); // the server's records carry our 4-byte ID: we parsed them
    assert.ok(seen.includes(ContentType.TLS12_CID), `record types the client sent: ${seen.join(', ')}`);
    assert.ok(!seen.includes(ContentType.APPLICATION_DATA), 'no application data outside tls12_cid');
  });

  for (const suite of ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS_PSK_WITH_AES_128_GCM_SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'] as const) {
    it(`protects tls12_cid records both ways with ${suite}`, async () => {
      await start();
      const dtls = new DtlsClient({ host: '127.0.0.1', port, identity: 'dev', key: KEY, cipherSuites: [suite], connectionId: true, receiveConnectionIdLength: 3 });
      clients.push(dtls);
      assert.equal(await roundTrip(dtls, 'x'.repeat(100)), `echo ${'x'.repeat(100)}`);
      assert.equal(dtls.cipherSuite, suite);
      assert.ok(dtls.connectionId);
    });
  }

  it('without the client offering, or with the server refusing (connectionId: false), sessions carry no ID and still work', async () => {
    await start({ connectionId: false });
    const offering = client(port, { connectionId: true });
    assert.equal(await roundTrip(offering, 'a'), 'echo a');
    assert.equal(offering.connectionId, undefined);
    assert.equal(server.session('127.0.0.1', offering.address().port)!.connectionId, undefined);
    await new Promise<void>((resolve) => server.close(resolve));
    await start();
    const plain = client(port);
    assert.equal(await roundTrip(plain, 'b'), 'echo b');
    assert.equal(server.session('127.0.0.1', plain.address().port)!.connectionId, undefined);
  });

  it('keeps the session through a NAT rebinding: the next record moves it, the answer reaches the new port, no new handshake', async () => {
    await start();
    const nat = await udpBalancer(port);
    balancers.push(nat);
    const dtls = client(nat.port, { connectionId: true });
    assert.equal(await roundTrip(dtls, 'before'), 'echo before');
    const before = [...(server as unknown as { connections: Map<string, unknown> }).connections.keys()];
    nat.point(port); // the NAT forgets the binding: the server sees the device from a new port
    assert.equal(await roundTrip(dtls, 'after'), 'echo after');
    assert.equal(sessions, 1, 'one handshake in all');
    assert.equal(moves.length, 1);
    assert.deepEqual(moves[0]!.from, { address: '127.0.0.1', port: Number(before[0]!.split(':')[1]) });
    assert.notEqual(moves[0]!.to.port, moves[0]!.from.port);
    assert.equal(moves[0]!.identity, 'dev');
    assert.ok(server.session('127.0.0.1', moves[0]!.to.port), 'the session is at the new address');
    assert.equal(server.session('127.0.0.1', moves[0]!.from.port), undefined, 'and no longer at the old one');
    assert.deepEqual(server.counts, { sessions: 1, handshakes: 0 });
  });

  it('without connection IDs the same rebinding loses the record, and only a new handshake brings the client back', async () => {
    await start();
    const nat = await udpBalancer(port);
    balancers.push(nat);
    const dtls = client(nat.port);
    assert.equal(await roundTrip(dtls, 'before'), 'echo before');
    nat.point(port);
    let answered = false;
    dtls.once('message', () => (answered = true));
    dtls.send(Buffer.from('after'));
    await until(() => drops.some((drop) => /without a DTLS session/.test(drop.reason)), 'the record from the new port to be dropped');
    assert.equal(answered, false, 'the record from the new port reached no session, so nothing answered');
    await dtls.rehandshake();
    assert.equal(await roundTrip(dtls, 'again'), 'echo again');
    assert.equal(sessions, 2, 'a second handshake');
    assert.equal(moves.length, 0);
  });

  it('drops records with an ID nobody issued (a flood keeps no state and a flat heap), and a tampered or replayed record from a new address moves nothing', async () => {
    await start();
    const captured: Buffer[] = [];
    let withhold = false;
    const relay = await udpRelay(port, (datagram) => {
      captured.push(datagram);
      return withhold ? [] : [datagram];
    });
    sockets.push(relay);
    const dtls = client(relay.address().port, { connectionId: true });
    assert.equal(await roundTrip(dtls, 'genuine'), 'echo genuine');
    const sessionPort = relay.address().port;
    const genuine = captured.find((datagram) => parseRecords(datagram, 6).some((record) => record.type === ContentType.TLS12_CID && record.sequence >= 1))!;
    assert.ok(genuine, 'a tls12_cid datagram of application data was captured');

    const attacker = await boundUdpSocket();
    sockets.push(attacker);
    // an ID nobody issued, many times: dropped, no state, heap flat
    const heapBefore = heapAfterGc();
    for (let i = 0; i < 3000; i++) {
      attacker.send(writeRecord(ContentType.TLS12_CID, DTLS_1_2, 1, i, randomBytes(40), randomBytes(6)), port, '127.0.0.1');
      if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => drops.filter((drop) => /did not issue/.test(drop.reason)).length >= 2900, 'the unknown-ID records to be dropped');
    const growth = heapAfterGc() - heapBefore;
    assert.ok(growth < 4 * 1024 * 1024, `heap grew by ${growth} bytes`);
    assert.deepEqual(server.counts, { sessions: 1, handshakes: 0 });

    // a record the server has not seen yet (the relay keeps it), with one ciphertext byte flipped, from the attacker's address
    withhold = true;
    const before = captured.length;
    dtls.send(Buffer.from('kept back'));
    await until(() => captured.length > before, 'the client record the relay keeps back');
    withhold = false;
    const unseen = captured.at(-1)!;
    const tampered = Buffer.from(unseen);
    tampered[tampered.length - 3]! ^= 0x01;
    drops.length = 0;
    attacker.send(tampered, port, '127.0.0.1');
    await until(() => drops.some((drop) => drop.port === attacker.address().port), 'the tampered record to be dropped');
    assert.match(drops.at(-1)!.reason, /does not authenticate: the session stays/);
    // a genuine record the server has seen, replayed from the attacker's address
    attacker.send(genuine, port, '127.0.0.1');
    await until(() => drops.filter((drop) => drop.port === attacker.address().port).length >= 2, 'the replayed record to be dropped');
    assert.match(drops.at(-1)!.reason, /replayed or too old/);
    assert.equal(moves.length, 0, 'nothing moved');
    assert.ok(server.session('127.0.0.1', sessionPort), 'the session is where it was');
    assert.equal(server.session('127.0.0.1', attacker.address().port), undefined);
    let attackerGot = 0;
    attacker.on('message', () => attackerGot++);
    // downlink still goes to the client's address, not the attacker's
    assert.equal(await roundTrip(dtls, 'still mine'), 'echo still mine');
    assert.equal(attackerGot, 0);
    assert.equal(sessions, 1);
  });
});
