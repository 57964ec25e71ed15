/**
 * The DTLS server under hostile input, on real UDP sockets: garbage and truncated records are
 * dropped without harm, ClientHellos without a cookie create no state (heap flat), half-open
 * handshakes are capped and time out, and a real client (libcoap) still gets through afterwards.
 * Then what `openssl s_client` shows (a client without extended master secret, renegotiation),
 * and the session timeout and cap with our own client.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { CoapEndpoint } from '../../lib/transport/endpoint';
import { ContentType, DTLS_1_0, DTLS_1_2, ExtensionType, HandshakeType } from '../../lib/transport/dtls/constants';
import { parseClientHello, parseHandshakeFragments, parseHelloVerifyRequest, parseServerHello, writeClientHello, writeHandshake } from '../../lib/transport/dtls/handshake';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { DtlsServer, type DtlsDrop } from '../../lib/transport/dtls/server';
import { DtlsClient } from '../../lib/transport/dtls/client';
import { coapsRequest, responseCode } from '../helpers/coaps-client';
import { sClient, type SClientOptions } from '../helpers/tls-cli';
import { heapAfterGc } from '../helpers/heap';
import { boundUdpSocket } from '../helpers/ports';
import { udpRelay } from '../helpers/relay';

const KEY = Buffer.from('secret-key');

function clientHelloRecord(cookie: Buffer = Buffer.alloc(0), sequence = 0, messageSeq = 0, random: Buffer = randomBytes(32)): Buffer {
  const hello = writeClientHello({ version: DTLS_1_2, random, sessionId: Buffer.alloc(0), cookie, cipherSuites: [0xc0a8], extensions: [[23, Buffer.alloc(0)]] });
  return writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, sequence, writeHandshake(HandshakeType.CLIENT_HELLO, messageSeq, hello));
}

/** Waits until `condition` holds, but at most `ms`: the assertions that follow say what was missing. */
async function waitUntil(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** The handshake types in the next datagram the socket receives. */
function nextHandshake(socket: Socket, timeout = 10_000): Promise<number[]> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', listener);
      resolve([]);
    }, timeout);
    const listener = (datagram: Buffer) => {
      clearTimeout(timer);
      socket.off('message', listener);
      resolve(parseRecords(datagram).flatMap((record) => (record.type === ContentType.HANDSHAKE ? parseHandshakeFragments(record.fragment).map((fragment) => fragment.type) : [-record.type])));
    };
    socket.on('message', listener);
  });
}

describe('DTLS server under hostile input', function () {
  this.timeout(60_000);
  let server: DtlsServer;
  let port: number;
  let endpoint: CoapEndpoint;
  const sockets: Socket[] = [];

  beforeEach(async () => {
    server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), maxHandshakes: 5, handshakeTimeout: 5000, timing: { initialTimeout: 200 } });
    ({ port } = await server.listen(0, '127.0.0.1'));
    endpoint = new CoapEndpoint({ socket: server });
    endpoint.setRequestHandler(() => ({ code: '2.05', payload: Buffer.from('still here') }));
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await endpoint.close();
    await new Promise<void>((resolve) => server.close(resolve));
  });

  it('drops garbage, truncated and forged records, and a real client still gets through', async () => {
    const socket = await boundUdpSocket();
    sockets.push(socket);
    const valid = clientHelloRecord();
    for (let i = 0; i < 3000; i++) {
      let datagram: Buffer;
      if (i % 4 === 0) datagram = randomBytes(1 + Math.floor(Math.random() * 200));
      else if (i % 4 === 1) datagram = valid.subarray(0, Math.floor(Math.random() * valid.length));
      else if (i % 4 === 2) datagram = writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, i, randomBytes(30 + (i % 50)));
      else datagram = writeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, i, randomBytes(40));
      socket.send(datagram, port, '127.0.0.1');
      if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 });
    const output = await coapsRequest('coap-client-openssl', `coaps://127.0.0.1:${port}/x`, { identity: 'dev', key: KEY.toString() });
    assert.equal(responseCode(output), '2.05', output);
    assert.match(output, /still here/);
  });

  it('answers ClientHellos without a cookie statelessly: a flood leaves no state and a flat heap', async () => {
    const socket = await boundUdpSocket();
    sockets.push(socket);
    let answers = 0;
    socket.on('message', () => answers++);
    let sent = 0;
    // at most 32 unanswered at a time, so the flood reaches the server instead of the kernel's drop
    // counter (a loopback socket buffer holds ~90 small datagrams); a lost one stalls the window for 1 s at most
    const flood = async (count: number) => {
      for (let i = 0; i < count; i++) {
        for (let waits = 0; sent - answers >= 32 && waits < 1000; waits++) await new Promise((resolve) => setTimeout(resolve, 1));
        socket.send(clientHelloRecord(Buffer.alloc(0), i), port, '127.0.0.1');
        sent++;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    };
    await flood(2000); // warm-up
    const before = heapAfterGc();
    await flood(20_000);
    const growth = heapAfterGc() - before;
    assert.ok(answers > 0.9 * sent, `HelloVerifyRequests received: ${answers} of ${sent}`);
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 });
    assert.ok(growth < 1024 * 1024, `heap grew ${growth} bytes over 20,000 ClientHellos`);
  });

  it('caps half-open handshakes, and forgets them after the handshake deadline', async () => {
    const drops: string[] = [];
    server.on('drop', ({ reason }: DtlsDrop) => drops.push(reason));
    const peers: Socket[] = [];
    for (let i = 0; i < 8; i++) peers.push(await boundUdpSocket());
    sockets.push(...peers);
    /** Gets a cookie, then sends the ClientHello with it; resolves with the handshake types answered within `wait` ms. */
    const open = async (peer: Socket, wait: number): Promise<number[]> => {
      const random = randomBytes(32);
      let reply = nextHandshake(peer);
      peer.send(clientHelloRecord(Buffer.alloc(0), 0, 0, random), port, '127.0.0.1');
      const [verify] = await reply;
      assert.equal(verify, HandshakeType.HELLO_VERIFY_REQUEST);
      // the cookie from the HelloVerifyRequest, sent back in a second ClientHello
      const cookie = await new Promise<Buffer>((resolve) => {
        peer.once('message', (datagram: Buffer) => resolve(Buffer.from(parseHelloVerifyRequest(parseHandshakeFragments(parseRecords(datagram)[0]!.fragment)[0]!.body))));
        peer.send(clientHelloRecord(Buffer.alloc(0), 1, 0, random), port, '127.0.0.1');
      });
      reply = nextHandshake(peer, wait);
      peer.send(clientHelloRecord(cookie, 2, 1, random), port, '127.0.0.1');
      return reply;
    };
    // the first five get their ServerHello however long it takes; the three beyond the cap, at
    // once, get nothing within a second (well inside the 5 s handshake deadline of the first ones)
    const answered: number[][] = [];
    for (const peer of peers.slice(0, 5)) answered.push(await open(peer, 10_000));
    answered.push(...(await Promise.all(peers.slice(5).map((peer) => open(peer, 1000)))));
    const withServerHello = answered.map((types) => types.includes(HandshakeType.SERVER_HELLO));
    assert.deepEqual(withServerHello, [true, true, true, true, true, false, false, false], `answers: ${JSON.stringify(answered)}`);
    assert.equal(server.counts.handshakes, 5);
    assert.deepEqual(drops, Array(3).fill('a ClientHello while 5 handshakes are in progress, the most allowed'));
    await waitUntil(() => server.counts.handshakes === 0, 20_000);
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 });
  });
});

/** `openssl s_client` with the PSK of identity 'dev' (default cipher PSK-AES128-CCM8). */
function opensslClient(port: number, lines: string[], options: Partial<SClientOptions> = {}): Promise<string> {
  return sClient(port, lines, { credentials: ['-psk', KEY.toString('hex'), '-psk_identity', 'dev'], cipher: 'PSK-AES128-CCM8', ...options });
}

describe('DTLS server with openssl s_client, and its session limits', function () {
  this.timeout(30_000);
  let server: DtlsServer;
  let port: number;
  const received: string[] = [];
  const sessions: Array<{ identity: string; extendedMasterSecret: boolean; cipherSuite: string }> = [];
  const ended: string[] = [];

  async function start(options: { requireExtendedMasterSecret?: boolean; sessionTimeout?: number; maxSessions?: number } = {}): Promise<void> {
    server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), timing: { initialTimeout: 200 }, ...options });
    ({ port } = await server.listen(0, '127.0.0.1'));
    server.on('message', (data: Buffer) => received.push(data.toString().trim()));
    server.on('session', (session) => sessions.push(session));
    server.on('sessionEnded', ({ reason }: { reason: string }) => ended.push(reason));
  }

  afterEach(async () => {
    await new Promise<void>((resolve) => server.close(resolve));
    received.length = 0;
    sessions.length = 0;
    ended.length = 0;
  });

  it('serves a client without extended master secret (RFC 5246 master secret) over GCM', async () => {
    await start();
    const output = await opensslClient(port, ['hello without ems'], { ems: false, cipher: 'PSK-AES128-GCM-SHA256' });
    assert.match(output, /Extended master secret: no/, output);
    assert.deepEqual(sessions.map((session) => [session.cipherSuite, session.extendedMasterSecret]), [['TLS_PSK_WITH_AES_128_GCM_SHA256', false]]);
    await waitUntil(() => ended.length > 0, 5000); // its last datagrams may be read after its exit is seen
    assert.deepEqual(received, ['hello without ems']);
    assert.deepEqual(ended, ['closed by the client'], 's_client ends with close_notify');
  });

  it('with requireExtendedMasterSecret refuses such a client with handshake_failure', async () => {
    await start({ requireExtendedMasterSecret: true });
    const output = await opensslClient(port, ['never delivered'], { ems: false });
    assert.match(output, /handshake failure/i, output);
    assert.deepEqual(received, []);
    assert.deepEqual(sessions, []);
  });

  it('refuses renegotiation with a no_renegotiation warning; the session had carried data', async () => {
    await start();
    // 'R' must come in a read of its own (else it is data): send it once 'before' has arrived
    const output = await opensslClient(port, ['before', 'R'], {
      after: (index, output) => (index === 0 ? waitUntil(() => received.length > 0) : waitUntil(() => /no renegotiation/i.test(output()))),
    });
    assert.match(output, /RENEGOTIATING/, output);
    assert.match(output, /no renegotiation/i, output);
    assert.deepEqual(received, ['before']);
    assert.equal(sessions.length, 1, 'one handshake, no second one');
  });

  it('detects a handshake changed on the way: the Finished does not verify (decrypt_error)', async () => {
    await start();
    // a relay that adds an extension to every ClientHello: the cookie still matches (both hellos
    // carry it), but the server's transcript is no longer the client's. Without extended master
    // secret the keys still agree, so it is the Finished that tells.
    const relay = await udpRelay(port, (datagram) => [
      Buffer.concat(
        parseRecords(datagram).map((record) => {
          if (record.type !== ContentType.HANDSHAKE || record.epoch !== 0 || record.fragment[0] !== HandshakeType.CLIENT_HELLO) {
            return writeRecord(record.type, record.version, record.epoch, record.sequence, record.fragment);
          }
          const [fragment] = parseHandshakeFragments(record.fragment);
          const hello = parseClientHello(fragment!.body);
          const changed = writeClientHello({ ...hello, extensions: [...hello.extensions, [0xfafa, Buffer.alloc(0)]] });
          return writeRecord(record.type, record.version, 0, record.sequence, writeHandshake(HandshakeType.CLIENT_HELLO, fragment!.messageSeq, changed));
        }),
      ),
    ]);
    const failed: string[] = [];
    server.on('handshakeFailed', ({ reason }: { reason: string }) => failed.push(reason));
    try {
      const output = await opensslClient(relay.address().port, ['never delivered'], { ems: false });
      assert.match(output, /decrypt error/i, output);
      assert.deepEqual(received, []);
      assert.ok(failed.some((reason) => /Finished does not verify/.test(reason)), failed.join('; '));
    } finally {
      relay.close();
    }
  });

  it('sends its flight again with back-off while the client is silent', async () => {
    await start();
    const socket = await boundUdpSocket();
    try {
      const random = randomBytes(32);
      const cookie = await new Promise<Buffer>((resolve) => {
        socket.once('message', (datagram: Buffer) => resolve(Buffer.from(parseHelloVerifyRequest(parseHandshakeFragments(parseRecords(datagram)[0]!.fragment)[0]!.body))));
        socket.send(clientHelloRecord(Buffer.alloc(0), 0, 0, random), port, '127.0.0.1');
      });
      const arrivals: number[] = [];
      socket.on('message', (datagram: Buffer) => {
        const types = parseRecords(datagram).flatMap((record) => parseHandshakeFragments(record.fragment).map((fragment) => fragment.type));
        if (types.includes(HandshakeType.SERVER_HELLO)) arrivals.push(Date.now());
      });
      socket.send(clientHelloRecord(cookie, 1, 1, random), port, '127.0.0.1');
      await waitUntil(() => arrivals.length >= 4);
      // sent at 0, then after 200, 400 and 800 ms: a busy machine only makes the gaps longer, so
      // each gap is checked against its least (with 15% for the reading of one arrival being late)
      assert.ok(arrivals.length >= 4, `ServerHello flights: ${arrivals.length}`);
      const gaps = arrivals.slice(1, 4).map((at, index) => at - arrivals[index]!);
      assert.ok(gaps.every((gap, index) => gap >= 0.85 * 200 * 2 ** index), `gaps between flights: ${gaps.join(', ')} ms`);
    } finally {
      socket.close();
    }
  });

  it('fragments and reassembles handshake messages both ways when they do not fit the MTU', async () => {
    // a ServerHello cannot fit 60 bytes, nor a ClientKeyExchange with a 150-byte identity 120 bytes
    const identity = 'x'.repeat(150);
    server = new DtlsServer({ psk: (name) => (name === identity ? KEY : undefined), mtu: 60, timing: { initialTimeout: 200 } });
    ({ port } = await server.listen(0, '127.0.0.1'));
    server.on('message', (data: Buffer) => received.push(data.toString()));
    const client = new DtlsClient({ host: '127.0.0.1', port, identity, key: KEY, mtu: 120, timing: { initialTimeout: 200 } });
    const socket = (client as unknown as { socket: { send: (...args: unknown[]) => void } }).socket;
    const sizes: number[] = [];
    const send = socket.send.bind(socket);
    socket.send = (datagram: unknown, ...rest: unknown[]) => {
      sizes.push((datagram as Buffer).length);
      send(datagram, ...rest);
    };
    try {
      await client.connect();
      client.send(Buffer.from('after fragments'), port, '127.0.0.1');
      await waitUntil(() => received.length > 0);
      assert.deepEqual(received, ['after fragments']);
      assert.ok(sizes.every((size) => size <= 120), `client datagrams: ${sizes.join(', ')}`);
    } finally {
      await new Promise<void>((resolve) => client.close(resolve));
    }
  });

  it('forgets a session idle past sessionTimeout, and the least recently used one beyond maxSessions', async () => {
    // long enough that no session goes idle while the three connect on a busy machine
    await start({ sessionTimeout: 3000, maxSessions: 2 });
    const clients = ['a', 'b', 'c'].map(() => new DtlsClient({ host: '127.0.0.1', port, identity: 'dev', key: KEY, timing: { initialTimeout: 200 } }));
    try {
      for (const client of clients) {
        await client.connect();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(server.counts.sessions, 2);
      assert.deepEqual(ended, ['too many sessions']);
      await waitUntil(() => server.counts.sessions === 0, 20_000);
      assert.equal(server.counts.sessions, 0);
      assert.deepEqual(ended, ['too many sessions', 'idle too long', 'idle too long']);
    } finally {
      await Promise.all(clients.map((client) => new Promise<void>((resolve) => client.close(resolve))));
    }
  });
});

/**
 * The first ClientHello of mbedTLS 2.28.3 (Debian libmbedtls, test/peers/mbedtls-coaps-client.c
 * with --mfl 512 --trunc-hmac), as it came off the wire: record version 0xfeff, hello version
 * DTLS 1.2, TLS_PSK_WITH_AES_128_CCM_8 and the renegotiation SCSV, and the extensions
 * signature_algorithms, max_fragment_length, truncated_hmac, encrypt_then_mac,
 * extended_master_secret and session_ticket.
 */
const MBEDTLS_CLIENT_HELLO = Buffer.from(
  '16feff00000000000000000065010000590000000000000059fefd6b12f074b44dced48795f1e55c61d1f6f390054485412b' +
    'fdc1c3a5ef5e70c1fa00000004c0a800ff0100002b000d001200100603060105030501040304010303030100010001010004' +
    '0000001600000017000000230000',
  'hex',
);

/** The record with another record version (bytes 1-2 of the header). */
function withRecordVersion(record: Buffer, version: number): Buffer {
  const copy = Buffer.from(record);
  copy.writeUInt16BE(version, 1);
  return copy;
}

/** The next datagram the socket receives, as records. */
function nextRecords(socket: Socket): Promise<ReturnType<typeof parseRecords>> {
  return new Promise((resolve) => socket.once('message', (datagram: Buffer) => resolve(parseRecords(datagram))));
}

describe('DTLS server: record versions, and the reasons it gives for what it drops', function () {
  this.timeout(30_000);
  let server: DtlsServer;
  let port: number;
  let socket: Socket;
  const drops: DtlsDrop[] = [];

  beforeEach(async () => {
    server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined) });
    server.on('drop', (drop: DtlsDrop) => drops.push(drop));
    ({ port } = await server.listen(0, '127.0.0.1'));
    socket = await boundUdpSocket();
  });

  afterEach(async () => {
    socket.close();
    await new Promise<void>((resolve) => server.close(resolve));
    drops.length = 0;
  });

  /** The reason of the next drop. */
  function nextDrop(): Promise<DtlsDrop> {
    return new Promise((resolve) => server.once('drop', resolve));
  }

  for (const version of [0xfeff, 0xfe00]) {
    it(`answers a recorded mbedTLS ClientHello with record version 0x${version.toString(16)} with a HelloVerifyRequest, then with a ServerHello that ignores the extensions it does not do`, async () => {
      let reply = nextRecords(socket);
      socket.send(withRecordVersion(MBEDTLS_CLIENT_HELLO, version), port, '127.0.0.1');
      const [verify, ...more] = await reply;
      assert.equal(more.length, 0);
      // RFC 6347 §4.2.1: the HelloVerifyRequest's record says DTLS 1.0 and mirrors the record sequence
      assert.deepEqual([verify!.type, verify!.version, verify!.epoch, verify!.sequence], [ContentType.HANDSHAKE, DTLS_1_0, 0, 0]);
      const [fragment] = parseHandshakeFragments(verify!.fragment);
      assert.equal(fragment!.type, HandshakeType.HELLO_VERIFY_REQUEST);
      assert.equal(fragment!.messageSeq, 0);
      const cookie = parseHelloVerifyRequest(fragment!.body);
      assert.ok(cookie.length > 0);

      // mbedTLS's second ClientHello: the same hello with the cookie, message_seq 1, record sequence 1
      const hello = parseClientHello(parseHandshakeFragments(parseRecords(MBEDTLS_CLIENT_HELLO)[0]!.fragment)[0]!.body);
      const withCookie = writeClientHello({ ...hello, cookie, extensions: [...hello.extensions] });
      reply = nextRecords(socket);
      socket.send(writeRecord(ContentType.HANDSHAKE, version, 0, 1, writeHandshake(HandshakeType.CLIENT_HELLO, 1, withCookie)), port, '127.0.0.1');
      const flight = await reply;
      const messages = flight.flatMap((record) => parseHandshakeFragments(record.fragment));
      assert.deepEqual(
        messages.map((message) => message.type),
        [HandshakeType.SERVER_HELLO, HandshakeType.SERVER_HELLO_DONE],
      );
      assert.ok(flight.every((record) => record.version === DTLS_1_2));
      const serverHello = parseServerHello(messages[0]!.body);
      assert.equal(serverHello.version, DTLS_1_2);
      // max_fragment_length, truncated_hmac, encrypt_then_mac and session_ticket are not answered, so not used
      assert.deepEqual([...serverHello.extensions.keys()].sort((a, b) => a - b), [ExtensionType.EXTENDED_MASTER_SECRET, ExtensionType.RENEGOTIATION_INFO]);
      assert.equal(server.counts.handshakes, 1);
      assert.deepEqual(drops, []);
    });
  }

  it('drops a record version 0xfe00 on anything but a ClientHello, and one without 0xfe on a ClientHello, and says why', async () => {
    const keyExchange = writeHandshake(HandshakeType.CLIENT_KEY_EXCHANGE, 1, Buffer.from('0003646576', 'hex'));
    const cases: Array<[Buffer, RegExp]> = [
      [writeRecord(ContentType.HANDSHAKE, 0xfe00, 0, 1, keyExchange), /^record version 0xfe00 on a handshake record \(ClientKeyExchange, epoch 0, sequence 1\): not DTLS 1\.2 or 1\.0/],
      [writeRecord(ContentType.CHANGE_CIPHER_SPEC, 0xfe00, 0, 2, Buffer.from([1])), /^record version 0xfe00 on a ChangeCipherSpec record \(epoch 0, sequence 2\)/],
      [writeRecord(ContentType.APPLICATION_DATA, DTLS_1_0, 1, 3, Buffer.alloc(24)), /^record version 0xfeff on an application data record \(epoch 1, sequence 3\): not DTLS 1\.2$/],
      [withRecordVersion(MBEDTLS_CLIENT_HELLO, 0x0303), /^record version 0x0303 on a handshake record \(ClientHello, epoch 0, sequence 0\)/],
    ];
    for (const [datagram, reason] of cases) {
      const dropped = nextDrop();
      socket.send(datagram, port, '127.0.0.1');
      const drop = await dropped;
      assert.match(drop.reason, reason);
      assert.deepEqual([drop.address, drop.port], ['127.0.0.1', socket.address().port]);
    }
    // none of them was answered: the first reply is the HelloVerifyRequest to a ClientHello sent after them
    const reply = nextRecords(socket);
    socket.send(MBEDTLS_CLIENT_HELLO, port, '127.0.0.1');
    const [verify] = await reply;
    assert.equal(parseHandshakeFragments(verify!.fragment)[0]!.type, HandshakeType.HELLO_VERIFY_REQUEST);
    assert.equal(drops.length, cases.length);
  });

  it('gives a reason for each datagram it drops: not DTLS, a truncated tail, an unknown epoch, no session, a malformed or fragmented ClientHello, a flight without a handshake', async () => {
    const hello = parseHandshakeFragments(parseRecords(MBEDTLS_CLIENT_HELLO)[0]!.fragment)[0]!.body;
    const alert = writeRecord(ContentType.ALERT, DTLS_1_2, 0, 9, Buffer.from([2, 40]));
    const cases: Array<[Buffer, RegExp[]]> = [
      [Buffer.from('hello'), [/^not a DTLS record \(5 bytes\)$/]],
      [Buffer.concat([alert, Buffer.from([0x16, 0xfe])]), [/^an alert record \(epoch 0, sequence 9\) without a handshake in progress$/, /^2 bytes after the last whole record$/]],
      [writeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 2, 1, Buffer.alloc(24)), [/^an application data record \(epoch 2, sequence 1\): this server never goes beyond epoch 1$/]],
      [writeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 1, Buffer.alloc(24)), [/^an application data record \(epoch 1, sequence 1\) without a DTLS session/]],
      [writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 1, Buffer.from([1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 9, 1])), [/^a handshake record \(ClientHello, epoch 0, sequence 1\): handshake fragment beyond its message$/]],
      [writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 1, writeHandshake(HandshakeType.CLIENT_HELLO, 0, hello, 0, 40)), [/^a fragmented ClientHello/]],
      [writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 1, writeHandshake(HandshakeType.CLIENT_HELLO, 0, hello.subarray(0, 50))), [/^a malformed ClientHello: /]],
      [writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 1, writeHandshake(HandshakeType.CLIENT_KEY_EXCHANGE, 1, Buffer.from('0003646576', 'hex'))), [/^a handshake record \(ClientKeyExchange, epoch 0, sequence 1\) without a handshake in progress/]],
      [writeRecord(ContentType.CHANGE_CIPHER_SPEC, DTLS_1_2, 0, 2, Buffer.from([1])), [/^a ChangeCipherSpec record \(epoch 0, sequence 2\) without a handshake in progress$/]],
    ];
    for (const [datagram, reasons] of cases) {
      const before = drops.length;
      socket.send(datagram, port, '127.0.0.1');
      while (drops.length < before + reasons.length) await nextDrop();
      assert.deepEqual(
        drops.slice(before).map((drop) => reasons.some((reason) => reason.test(drop.reason)) && drop.port === socket.address().port),
        reasons.map(() => true),
        drops.slice(before).map((drop) => drop.reason).join('; '),
      );
    }
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 });
  });

  it('builds no reason when nobody listens for drops (a flood of garbage costs no strings)', async () => {
    server.removeAllListeners('drop');
    // count the reasons built, by wrapping the private drop() the server reports through
    let built = 0;
    const internals = server as unknown as { drop(address: string, port: number, reason: string | (() => string)): void };
    const drop = internals.drop.bind(server);
    internals.drop = (address, port, reason) => drop(address, port, typeof reason === 'string' ? reason : () => (built++, reason()));
    const bad = writeRecord(ContentType.HANDSHAKE, 0xfe00, 0, 1, writeHandshake(HandshakeType.CLIENT_KEY_EXCHANGE, 1, Buffer.alloc(5)));
    /** sends the bad record, then a ClientHello: once that is answered, the record before it was handled */
    const sendBad = async () => {
      const reply = nextRecords(socket);
      socket.send(bad, port, '127.0.0.1');
      socket.send(MBEDTLS_CLIENT_HELLO, port, '127.0.0.1');
      await reply;
    };
    await sendBad();
    assert.equal(built, 0);
    server.on('drop', () => undefined);
    await sendBad();
    assert.equal(built, 1);
  });
});
