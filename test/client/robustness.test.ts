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

  it('answers or drops 10,000 mutated requests, never crashes, and still serves afterwards', async () => {
    const errors: unknown[] = [];
    device.on('error', (error) => errors.push(error));
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    let answers = 0;
    raw.on('message', () => answers++);
    let seed = 99;
    const random = (n: number) => ((seed = (seed * 48271) % 2147483647) % n);
    const bases = seeds().map((message) => serializeMessage(message));
    const port = device.address().port;
    try {
      for (let i = 0; i < 10_000; i++) {
        const base = bases[i % bases.length]!;
        const datagram = Buffer.from(base);
        datagram.writeUInt16BE(i & 0xffff, 2); // a fresh message id, so deduplication does not hide the work
        for (let flips = random(3) + 1; flips > 0; flips--) {
          const at = 4 + random(datagram.length - 4); // keep the header: the request must reach the client
          datagram[at] = random(256);
        }
        raw.send(random(4) === 0 ? datagram.subarray(0, 4 + random(datagram.length - 4)) : datagram, port, '127.0.0.1');
        // small bursts: a loopback socket buffer holds only ~90 datagrams, and a drop would look like a missing answer
        if (i % 40 === 39) await new Promise((resolve) => setTimeout(resolve, 4));
      }
      // wait until the answers stop coming
      for (let last = -1; last !== answers; ) {
        last = answers;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught, []);
    // every request gets a response or a Reset (a few may be lost to the kernel on a busy machine)
    assert.ok(answers >= 9_900, `answers to 10,000 requests: ${answers}`);
    const response = await server.request('fuzz-1', { method: 'GET', path: ['3', '0', '0'] });
    assert.equal(response.code, '2.05');
    assert.equal(response.payload.toString(), 'node-red-lwm2m');
    assert.ok(device.registered);
  });
});
