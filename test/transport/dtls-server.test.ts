/**
 * The DTLS server under hostile input, on real UDP sockets: garbage and truncated records are
 * dropped without harm, ClientHellos without a cookie create no state (heap flat), half-open
 * handshakes are capped and time out, and a real client (libcoap) still gets through afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { CoapEndpoint } from '../../lib/transport/endpoint';
import { ContentType, DTLS_1_2, HandshakeType } from '../../lib/transport/dtls/constants';
import { parseHandshakeFragments, parseHelloVerifyRequest, writeClientHello, writeHandshake } from '../../lib/transport/dtls/handshake';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { DtlsServer } from '../../lib/transport/dtls/server';
import { coapsRequest, responseCode } from '../helpers/coaps-client';
import { heapAfterGc } from '../helpers/heap';

const KEY = Buffer.from('secret-key');

function clientHelloRecord(cookie: Buffer = Buffer.alloc(0), sequence = 0, messageSeq = 0, random: Buffer = randomBytes(32)): Buffer {
  const hello = writeClientHello({ version: DTLS_1_2, random, sessionId: Buffer.alloc(0), cookie, cipherSuites: [0xc0a8], extensions: [[23, Buffer.alloc(0)]] });
  return writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, sequence, writeHandshake(HandshakeType.CLIENT_HELLO, messageSeq, hello));
}

async function udpSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

/** The handshake types in the next datagram the socket receives. */
function nextHandshake(socket: Socket, timeout = 2000): Promise<number[]> {
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
    server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), maxHandshakes: 5, handshakeTimeout: 2500, timing: { initialTimeout: 200 } });
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
    const socket = await udpSocket();
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
    const socket = await udpSocket();
    sockets.push(socket);
    let answers = 0;
    socket.on('message', () => answers++);
    let sent = 0;
    // at most 200 unanswered at a time, so the flood reaches the server instead of the kernel's drop counter
    const flood = async (count: number) => {
      for (let i = 0; i < count; i++) {
        for (let waits = 0; sent - answers > 200 && waits < 50; waits++) await new Promise((resolve) => setTimeout(resolve, 1));
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
    const peers: Socket[] = [];
    for (let i = 0; i < 8; i++) peers.push(await udpSocket());
    sockets.push(...peers);
    const answered: number[][] = [];
    for (const peer of peers) {
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
      reply = nextHandshake(peer, 250);
      peer.send(clientHelloRecord(cookie, 2, 1, random), port, '127.0.0.1');
      answered.push(await reply);
    }
    const withServerHello = answered.filter((types) => types.includes(HandshakeType.SERVER_HELLO)).length;
    assert.equal(withServerHello, 5, `ServerHellos: ${JSON.stringify(answered)}`);
    assert.equal(server.counts.handshakes, 5);
    await new Promise((resolve) => setTimeout(resolve, 2700));
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 });
  });
});
