import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { ContentFormat, LwM2MClient, encode, encodePaths } from '../../lib';
import { serializeMessage, pathOptions, queryOptions, uintOption, OptionNumber, type CoapMessage } from '../../lib/transport/message';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';

/** Valid device-management requests the mutations start from. */
function seeds(): CoapMessage[] {
  const request = (code: string, path: string[], extra: Partial<CoapMessage> = {}): CoapMessage => ({
    type: 'CON',
    code,
    messageId: 1,
    token: Buffer.from([1, 2, 3, 4]),
    options: pathOptions(path),
    payload: Buffer.alloc(0),
    ...extra,
  });
  return [
    request('0.01', ['3', '0'], { options: [...pathOptions(['3', '0']), uintOption(OptionNumber.ACCEPT, ContentFormat.TLV)] }),
    request('0.01', ['3303', '0', '5700'], { options: [uintOption(OptionNumber.OBSERVE, 0), ...pathOptions(['3303', '0', '5700'])] }),
    request('0.03', ['3', '0', '14'], { options: [...pathOptions(['3', '0', '14']), uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.TLV)], payload: encode(ContentFormat.TLV, '/3/0/14', '+01:00') }),
    request('0.02', ['3303', '0'], { options: [...pathOptions(['3303', '0']), uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.SENML_CBOR)], payload: encode(ContentFormat.SENML_CBOR, '/3303/0', { 5700: 3.5 }) }),
    request('0.05', [], { options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.SENML_JSON)], payload: encodePaths(ContentFormat.SENML_JSON, ['/3/0/0', '/3303/0']) }),
    request('0.03', ['3303', '0', '5700'], { options: [...pathOptions(['3303', '0', '5700']), ...queryOptions(['pmin=1', 'st=0.5'])] }),
    request('0.02', ['3303'], { options: [...pathOptions(['3303']), uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.SENML_JSON)], payload: encode(ContentFormat.SENML_JSON, '/3303', { 9: { 5700: 1 } }) }),
  ];
}

interface PacedResult {
  unanswered: number[];
  retransmissions: number;
}

/**
 * Sends `count` Confirmable datagrams (message id = index) with at most WINDOW unanswered at a time,
 * as a CoAP client would: paced by the answers, not by the clock, so a busy machine slows the run
 * down instead of overflowing the client's socket buffer (~90 small datagrams on loopback; libuv
 * reads 32 per loop turn). A request unanswered for RETRANSMIT_MS is sent again, like a CoAP
 * retransmission; after MAX_TRIES sends it counts as unanswered.
 */
async function sendPaced(socket: Socket, port: number, count: number, make: (index: number) => Buffer): Promise<PacedResult> {
  const WINDOW = 16;
  const RETRANSMIT_MS = 1000;
  const MAX_TRIES = 10;
  const outstanding = new Map<number, { datagram: Buffer; sentAt: number; tries: number }>();
  const unanswered: number[] = [];
  let retransmissions = 0;
  let wake: (() => void) | undefined;
  const onMessage = (datagram: Buffer): void => {
    const type = datagram.length >= 4 ? (datagram[0]! >> 4) & 3 : -1;
    if (type !== 2 && type !== 3) return; // only an ACK or a Reset answers a CON (notifications may come too)
    if (outstanding.delete(datagram.readUInt16BE(2))) wake?.();
  };
  const send = (id: number, datagram: Buffer): void => {
    outstanding.set(id, { datagram, sentAt: Date.now(), tries: (outstanding.get(id)?.tries ?? 0) + 1 });
    socket.send(datagram, port, '127.0.0.1');
  };
  const retransmit = setInterval(() => {
    const now = Date.now();
    for (const [id, entry] of outstanding) {
      if (now - entry.sentAt < RETRANSMIT_MS) continue;
      if (entry.tries >= MAX_TRIES) {
        outstanding.delete(id);
        unanswered.push(id);
        wake?.();
      } else {
        retransmissions++;
        send(id, entry.datagram);
      }
    }
  }, RETRANSMIT_MS / 4);
  socket.on('message', onMessage);
  const room = (limit: number): Promise<void> =>
    outstanding.size <= limit ? Promise.resolve() : new Promise<void>((resolve) => { wake = resolve; }).then(() => room(limit));
  try {
    for (let i = 0; i < count; i++) {
      await room(WINDOW - 1);
      send(i, make(i));
    }
    await room(0);
  } finally {
    clearInterval(retransmit);
    socket.off('message', onMessage);
  }
  return { unanswered, retransmissions };
}

describe('LwM2MClient under hostile input (loopback)', () => {
  let server: FakeServer;
  let device: LwM2MClient;
  let raw: Socket;

  before(async () => {
    server = new FakeServer();
    const uri = await server.start();
    device = new LwM2MClient({ endpoint: 'fuzz-1', server: uri, timing: FAST_TIMING, requestTimeout: 1000, objects: { 3303: { 0: { 5700: 20 } } } });
    await device.start();
    raw = createSocket('udp4');
    await new Promise<void>((resolve) => raw.bind(0, '127.0.0.1', resolve));
  });

  after(async () => {
    raw.close();
    await device.stop();
    await server.close();
  });

  it('answers or resets every one of 10,000 mutated requests, never crashes, and still serves afterwards', async () => {
    const errors: unknown[] = [];
    device.on('error', (error) => errors.push(error));
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    let seed = 99;
    const random = (n: number) => ((seed = (seed * 48271) % 2147483647) % n);
    const bases = seeds().map((message) => serializeMessage(message));
    const port = device.address().port;
    let result: PacedResult;
    try {
      result = await sendPaced(raw, port, 10_000, (i) => {
        const base = bases[i % bases.length]!;
        const datagram = Buffer.from(base);
        datagram.writeUInt16BE(i & 0xffff, 2); // a fresh message id, so deduplication does not hide the work
        for (let flips = random(3) + 1; flips > 0; flips--) {
          const at = 4 + random(datagram.length - 4); // keep the header: the request must reach the client
          datagram[at] = random(256);
        }
        return random(4) === 0 ? datagram.subarray(0, 4 + random(datagram.length - 4)) : datagram;
      });
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught, []);
    assert.deepEqual(errors, []);
    // every request is a CON with its own message id: each must get its ACK or Reset (retransmissions
    // cover datagrams the kernel dropped; a request the client took in but never answered stays unanswered)
    assert.deepEqual(result.unanswered, [], `unanswered message ids (after ${result.retransmissions} retransmissions)`);
    const response = await server.request('fuzz-1', { method: 'GET', path: ['3', '0', '0'] });
    assert.equal(response.code, '2.05');
    assert.equal(response.payload.toString(), 'node-red-lwm2m');
    assert.ok(device.registered);
  });
});
