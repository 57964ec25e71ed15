/**
 * The server's CoAP trace over real sockets: a device registers and is read, and the trace holds
 * every message with its options by name and its payload decoded; DTLS sessions name their
 * identity; the ring buffer keeps exactly the last N; off, nothing is recorded and no tap is
 * installed; malformed datagrams are recorded (with why) and break nothing. Also the entry
 * builder on crafted messages, and the ring buffer alone.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { ContentFormat, LwM2MClient, LwM2MServer, RingBuffer, type LwM2MServerOptions, type PskCredential, type TraceEntry } from '../../lib';
import { defaultModel } from '../../lib/model';
import { traceEntry } from '../../lib/server/trace/entry';
import { HEX_LIMIT } from '../../lib/server/trace/payload';
import { encodeBlock, serializeMessage, uintOption, OptionNumber, type CoapMessage } from '../../lib/transport/message';
import { FAST_TIMING } from '../helpers/fake-server';

const KEY = Buffer.from('0123456789abcdef', 'hex');
const CREDENTIALS: PskCredential[] = [{ identity: 'id-sensor', key: KEY, endpoint: 'sensor' }];
const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };
const OBJECTS = { 3303: { 0: { 5700: 21.5, 5701: 'Cel' } } };

async function until(condition: () => boolean, what: string, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The endpoints' taps, read from outside (they are the server's private parts). */
function tapped(server: LwM2MServer): boolean[] {
  const sockets = (server as unknown as { sockets: { plain: { tapped: boolean }; secure?: { tapped: boolean } } }).sockets;
  return [sockets.plain.tapped, ...(sockets.secure ? [sockets.secure.tapped] : [])];
}

const isJson = (entries: TraceEntry[]) => assert.deepEqual(JSON.parse(JSON.stringify(entries)), entries, 'entries are plain JSON');

describe('CoAP trace of the server', function () {
  this.timeout(30_000);
  const servers: LwM2MServer[] = [];
  const devices: LwM2MClient[] = [];
  const sockets: Socket[] = [];

  async function startServer(options: Partial<LwM2MServerOptions> = {}): Promise<LwM2MServer> {
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, ...options });
    server.on('error', () => undefined);
    servers.push(server);
    await server.listen();
    return server;
  }

  async function register(server: LwM2MServer, endpoint: string, options: { psk?: boolean } = {}): Promise<LwM2MClient> {
    const uri = options.psk ? `coaps://127.0.0.1:${server.secureAddress()!.port}` : `coap://127.0.0.1:${server.address().port}`;
    const client = new LwM2MClient({
      endpoint,
      server: uri,
      timing: FAST_TIMING,
      requestTimeout: 2000,
      objects: OBJECTS,
      ...(options.psk ? { psk: { identity: `id-${endpoint}`, key: KEY }, dtls: { timing: DTLS_TIMING } } : {}),
    });
    client.on('error', () => undefined);
    devices.push(client);
    const registered = new Promise((resolve) => server.once('register', resolve));
    await client.start();
    await registered;
    return client;
  }

  async function udp(): Promise<Socket> {
    const socket = createSocket('udp4');
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return socket;
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await Promise.all(servers.splice(0).map((server) => server.close()));
    for (const socket of sockets.splice(0)) socket.close();
  });

  it('holds the Register in, its 2.01 out, the GET out with Uri-Path and Accept by name, and the 2.05 in decoded', async () => {
    const server = await startServer({ trace: 100 });
    assert.equal(server.trace.size, 100);
    assert.equal(server.trace.active, true);
    const device = await register(server, 'dev1');
    const value = await server.read('dev1', '/3303/0', { format: ContentFormat.TLV });
    assert.deepEqual(value, { 5700: 21.5, 5701: 'Cel' });
    const entries = server.trace.entries();
    isJson(entries);
    const port = device.address().port;

    const registerIn = entries.find((entry) => entry.direction === 'in' && entry.code === 'POST')!;
    assert.ok(registerIn, 'the Register is in the trace');
    assert.equal(registerIn.type, 'CON');
    assert.equal(registerIn.endpoint, 'dev1');
    assert.deepEqual(registerIn.peer, { address: '127.0.0.1', port });
    assert.equal(registerIn.options!['Uri-Path'], '/rd');
    assert.ok((registerIn.options!['Uri-Query'] as string[]).includes('ep=dev1'));
    assert.equal(registerIn.options!['Content-Format'], 'application/link-format');
    assert.equal(registerIn.payload!.as, 'link');
    assert.match(registerIn.payload!.value as string, /<\/3303\/0>/);
    assert.equal(registerIn.identity, undefined);

    const created = entries.find((entry) => entry.direction === 'out' && entry.code === '2.01')!;
    assert.equal(created.type, 'ACK');
    assert.equal(created.messageId, registerIn.messageId);
    assert.equal(created.token, registerIn.token);
    assert.equal(created.endpoint, 'dev1');
    assert.equal(created.options!['Location-Path'], `/rd/${server.registration('dev1')!.id}`);

    const get = entries.find((entry) => entry.direction === 'out' && entry.code === 'GET')!;
    assert.equal(get.type, 'CON');
    assert.equal(get.endpoint, 'dev1');
    assert.equal(get.options!['Uri-Path'], '/3303/0');
    assert.equal(get.options!['Accept'], 'application/vnd.oma.lwm2m+tlv');
    assert.equal(get.payload, undefined);
    assert.match(get.token!, /^[0-9a-f]{16}$/);

    const content = entries.find((entry) => entry.direction === 'in' && entry.code === '2.05')!;
    assert.equal(content.type, 'ACK');
    assert.equal(content.token, get.token);
    assert.equal(content.messageId, get.messageId);
    assert.equal(content.endpoint, 'dev1');
    assert.equal(content.options!['Content-Format'], 'application/vnd.oma.lwm2m+tlv');
    assert.deepEqual(content.payload, { as: 'tlv', value: { 5700: 21.5, 5701: 'Cel' } });
    assert.ok(content.size > 4 + 8 + 10, `size ${content.size}`);
    assert.ok(entries.indexOf(registerIn) < entries.indexOf(created) && entries.indexOf(created) < entries.indexOf(get) && entries.indexOf(get) < entries.indexOf(content), 'in the order they went');
    for (const entry of entries) assert.ok(Math.abs(entry.time - Date.now()) < 60_000, 'time is ms since the epoch');
  });

  it('decodes SenML JSON and SenML CBOR answers as JSON values, and filters by endpoint', async () => {
    const server = await startServer({ trace: 100 });
    await register(server, 'dev1');
    await register(server, 'dev2');
    await server.read('dev1', '/3303/0/5700', { format: ContentFormat.SENML_JSON });
    await server.read('dev2', '/3303/0/5700', { format: ContentFormat.SENML_CBOR });
    const json = server.trace.entries({ endpoint: 'dev1' }).find((entry) => entry.code === '2.05')!;
    assert.equal(json.payload!.as, 'json');
    assert.deepEqual(json.payload!.value, [{ bn: '/3303/0/5700', v: 21.5 }]);
    const dev2 = server.trace.entries({ endpoint: 'dev2' });
    assert.ok(dev2.length >= 4 && dev2.every((entry) => entry.endpoint === 'dev2'));
    const cbor = dev2.find((entry) => entry.code === '2.05')!;
    assert.equal(cbor.payload!.as, 'cbor');
    assert.equal(cbor.options!['Content-Format'], 'application/senml+cbor');
    // SenML CBOR labels are integers: -2 base name, 2 value
    assert.deepEqual(cbor.payload!.value, [{ '-2': '/3303/0/5700', '2': 21.5 }]);
    assert.deepEqual(server.trace.entries({ endpoint: 'dev2', limit: 2 }), dev2.slice(-2));
    isJson(server.trace.entries());
  });

  it('names the DTLS identity (and the endpoint bound to it) of a device over DTLS, both ways', async () => {
    const server = await startServer({ trace: 100, dtls: { port: 0, address: '127.0.0.1', credentials: CREDENTIALS, timing: DTLS_TIMING } });
    assert.deepEqual(tapped(server), [true, true]);
    await register(server, 'sensor', { psk: true });
    await server.read('sensor', '/3303/0/5700', { format: ContentFormat.TEXT });
    const entries = server.trace.entries();
    const registerIn = entries.find((entry) => entry.direction === 'in' && entry.code === 'POST')!;
    assert.equal(registerIn.identity, 'id-sensor');
    assert.equal(registerIn.endpoint, 'sensor');
    const get = entries.find((entry) => entry.direction === 'out' && entry.code === 'GET')!;
    assert.equal(get.identity, 'id-sensor');
    assert.equal(get.endpoint, 'sensor');
    const content = entries.find((entry) => entry.direction === 'in' && entry.code === '2.05')!;
    assert.equal(content.identity, 'id-sensor');
    assert.deepEqual(content.payload, { as: 'text', value: '21.5' });
    // DTLS records themselves are not CoAP messages: only the plaintext is traced
    assert.ok(entries.every((entry) => entry.malformed === undefined));
  });

  it('keeps exactly the last N entries, the same ones the trace event streamed', async () => {
    const server = await startServer({ trace: 5 });
    const streamed: TraceEntry[] = [];
    server.on('trace', (entry: TraceEntry) => streamed.push(entry));
    await register(server, 'dev1');
    for (let i = 0; i < 4; i++) await server.read('dev1', '/3303/0/5700', { format: ContentFormat.TEXT });
    assert.ok(streamed.length >= 10, `${streamed.length} entries streamed`);
    assert.equal(server.trace.entries().length, 5);
    assert.deepEqual(server.trace.entries(), streamed.slice(-5));
    server.setTrace({ size: 2 });
    assert.deepEqual(server.trace.entries(), streamed.slice(-2), 'shrinking keeps the latest');
    server.trace.clear();
    assert.deepEqual(server.trace.entries(), []);
    assert.throws(() => server.setTrace({ size: -1 }), RangeError);
    assert.throws(() => server.setTrace({ size: 1.5 }), RangeError);
  });

  it('off (the default), records nothing and installs no tap; a trace listener switches it on and its removal off again', async () => {
    const server = await startServer({ dtls: { port: 0, address: '127.0.0.1', credentials: CREDENTIALS, timing: DTLS_TIMING } });
    assert.equal(server.trace.size, 0);
    assert.equal(server.trace.active, false);
    assert.deepEqual(tapped(server), [false, false]);
    await register(server, 'dev1');
    await server.read('dev1', '/3303/0/5700', { format: ContentFormat.TEXT });
    assert.deepEqual(server.trace.entries(), []);
    assert.deepEqual(tapped(server), [false, false]);

    const streamed: TraceEntry[] = [];
    const listener = (entry: TraceEntry) => streamed.push(entry);
    server.on('trace', listener);
    assert.deepEqual(tapped(server), [true, true]);
    await server.read('dev1', '/3303/0/5700', { format: ContentFormat.TEXT });
    assert.deepEqual(streamed.map((entry) => [entry.direction, entry.code]), [['out', 'GET'], ['in', '2.05']]);
    assert.deepEqual(server.trace.entries(), [], 'streaming needs no buffer');
    server.off('trace', listener);
    assert.deepEqual(tapped(server), [false, false]);
    assert.equal(server.trace.active, false);
    await server.read('dev1', '/3303/0/5700', { format: ContentFormat.TEXT });
    assert.equal(streamed.length, 2);
  });

  it('records malformed datagrams with why, and undecodable payloads as hex with the decode error; the server goes on', async () => {
    const server = await startServer({ trace: 100 });
    const socket = await udp();
    const port = server.address().port;
    const send = (datagram: Buffer) => socket.send(datagram, port, '127.0.0.1');
    const resets: Buffer[] = [];
    socket.on('message', (message) => resets.push(message));
    send(Buffer.from([0x40, 0x01])); // shorter than a header
    send(Buffer.from([0x40, 0x01, 0x12, 0x34, 0xf0])); // CON GET, reserved option nibble 15
    // a Send with a SenML CBOR payload that is not CBOR, and a Register whose links are not UTF-8
    const post = (messageId: number, path: string[], query: string[], format: number, payload: Buffer): CoapMessage => ({
      type: 'CON',
      code: '0.02',
      messageId,
      token: Buffer.from([messageId & 0xff]),
      options: [...path.map((segment) => ({ number: OptionNumber.URI_PATH, value: Buffer.from(segment) })), uintOption(OptionNumber.CONTENT_FORMAT, format), ...query.map((item) => ({ number: OptionNumber.URI_QUERY, value: Buffer.from(item) }))],
      payload,
    });
    send(serializeMessage(post(0x100, ['dp'], [], ContentFormat.SENML_CBOR, Buffer.from([0xff, 0x00]))));
    send(serializeMessage(post(0x101, ['rd'], ['ep=bad', 'lt=60'], ContentFormat.LINK, Buffer.from([0xc3, 0x28]))));
    await until(() => server.trace.entries().filter((entry) => entry.direction === 'out').length >= 3, 'the answers');
    const entries = server.trace.entries();
    isJson(entries);
    const short = entries.find((entry) => entry.size === 2)!;
    assert.equal(short.malformed, 'not a CoAP 1 message');
    assert.equal(short.type, undefined);
    assert.deepEqual(short.payload, { as: 'hex', value: '4001' });
    const nibble = entries.find((entry) => entry.size === 5)!;
    assert.equal(nibble.malformed, 'reserved option nibble 15');
    assert.equal(nibble.type, 'CON');
    assert.equal(nibble.messageId, 0x1234);
    const reset = entries.find((entry) => entry.direction === 'out' && entry.type === 'RST')!;
    assert.equal(reset.messageId, 0x1234);
    const sendIn = entries.find((entry) => entry.options?.['Uri-Path'] === '/dp')!;
    assert.equal(sendIn.payload!.as, 'hex');
    assert.equal(sendIn.payload!.value, 'ff00');
    assert.match(sendIn.payload!.error!, /CBOR/);
    const badRegister = entries.find((entry) => entry.options?.['Uri-Path'] === '/rd')!;
    assert.equal(badRegister.endpoint, 'bad', 'a Register names its endpoint');
    assert.deepEqual([badRegister.payload!.as, badRegister.payload!.value], ['hex', 'c328']);
    assert.match(badRegister.payload!.error!, /UTF-8/);
    // the server still serves
    await register(server, 'dev1');
    assert.equal(await server.read('dev1', '/3303/0/5700', { format: ContentFormat.TEXT }), 21.5);
  });

  it('names a Register by its ep=, also when its address was registered as another endpoint', async () => {
    const server = await startServer({ trace: 100 });
    const socket = await udp();
    const port = server.address().port;
    for (const [messageId, ep] of [[1, 'first'], [2, 'second']] as const) {
      const registered = new Promise((resolve) => server.once('register', resolve));
      const links = Buffer.from('</3303/0>');
      socket.send(serializeMessage({ type: 'CON', code: '0.02', messageId, token: Buffer.from([messageId]), options: [{ number: OptionNumber.URI_PATH, value: Buffer.from('rd') }, uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.LINK), { number: OptionNumber.URI_QUERY, value: Buffer.from(`ep=${ep}`) }], payload: links }), port, '127.0.0.1');
      await registered;
    }
    const registers = server.trace.entries().filter((entry) => entry.code === 'POST');
    assert.deepEqual(registers.map((entry) => entry.endpoint), ['first', 'second']);
    const created = server.trace.entries().filter((entry) => entry.code === '2.01');
    assert.deepEqual(created.map((entry) => entry.endpoint), ['first', 'second']);
  });
});

describe('trace entries of crafted messages', () => {
  const peer = { address: '127.0.0.1', port: 5683 };
  const entryOf = (message: CoapMessage, requestPath?: string) =>
    traceEntry(serializeMessage(message), { time: 1, direction: 'in', peer, model: defaultModel(), requestPath: () => requestPath }).entry;

  it('names every option: blocks, sizes, ETag, Observe, legacy and unknown formats, unknown options', () => {
    const entry = entryOf({
      type: 'ACK',
      code: '2.05',
      messageId: 7,
      token: Buffer.from('0102', 'hex'),
      options: [
        { number: OptionNumber.ETAG, value: Buffer.from('cafe', 'hex') },
        uintOption(OptionNumber.OBSERVE, 12),
        uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.LEGACY_TLV),
        uintOption(OptionNumber.MAX_AGE, 60),
        { number: OptionNumber.BLOCK2, value: encodeBlock({ num: 2, more: true, szx: 6 }) },
        uintOption(OptionNumber.SIZE2, 5000),
        { number: 2048, value: Buffer.from('ab', 'hex') },
      ],
      payload: Buffer.alloc(1024, 1),
    });
    assert.deepEqual(entry.options, {
      ETag: 'cafe',
      Observe: 12,
      'Content-Format': 'application/vnd.oma.lwm2m+tlv (1542)',
      'Max-Age': 60,
      Block2: { num: 2, more: true, size: 1024 },
      Size2: 5000,
      'Option 2048': 'ab',
    });
    assert.equal(entry.code, '2.05');
    assert.equal(entry.token, '0102');
    // one block of a larger body is not decoded alone
    assert.equal(entry.payload!.as, 'hex');
    assert.match(entry.payload!.note!, /block 2/);
    assert.equal(entry.payload!.truncated, true);
    assert.equal((entry.payload!.value as string).length, HEX_LIMIT * 2);
    assert.equal(entry.size, 4 + 2 + 19 + 1 + 1024); // header, token, options, payload marker, payload
  });

  it('shows opaque as bounded hex, CBOR bytes, tags and big integers as JSON, TLV as an entry tree without a path', () => {
    const opaque = entryOf({ type: 'ACK', code: '2.05', messageId: 1, token: Buffer.alloc(0), options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.OPAQUE)], payload: Buffer.alloc(2000, 0xab) });
    assert.deepEqual([opaque.payload!.as, (opaque.payload!.value as string).length, opaque.payload!.truncated, opaque.payload!.error], ['hex', HEX_LIMIT * 2, true, undefined]);
    // LwM2M CBOR: { 3: { 0: { 1: h'0102', 2: 2^64-1, 3: tag 1(5) } } }
    const cbor = Buffer.from('a103a100a3014201020' + '21bffffffffffffffff' + '03c105', 'hex');
    const decoded = entryOf({ type: 'ACK', code: '2.05', messageId: 2, token: Buffer.alloc(0), options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.LWM2M_CBOR)], payload: cbor });
    assert.deepEqual(decoded.payload, { as: 'cbor', value: { 3: { 0: { 1: { hex: '0102' }, 2: '18446744073709551615', 3: { tag: 1, value: 5 } } } } });
    // TLV of /3/0 resources 0 (string) and 9 (integer)
    const tlv = Buffer.from('c8000441434d45c10964', 'hex');
    const message = { type: 'ACK' as const, code: '2.05', messageId: 3, token: Buffer.alloc(0), options: [uintOption(OptionNumber.CONTENT_FORMAT, ContentFormat.TLV)], payload: tlv };
    assert.deepEqual(entryOf(message, '/3/0').payload, { as: 'tlv', value: { 0: 'ACME', 9: 100 } });
    assert.deepEqual(entryOf(message).payload, {
      as: 'tlv',
      value: [
        { kind: 'resource', id: 0, hex: '41434d45' },
        { kind: 'resource', id: 9, hex: '64' },
      ],
    });
    // TLV that does not fit the path: the tree, and why the values did not decode
    const wrong = entryOf(message, '/3/0/9');
    assert.equal(wrong.payload!.as, 'tlv');
    assert.ok(wrong.payload!.error);
    const broken = entryOf({ ...message, payload: Buffer.from('c80004', 'hex') });
    assert.equal(broken.payload!.as, 'hex');
    assert.match(broken.payload!.error!, /TLV/);
  });

  it('a request shows its method, and text without a Content-Format as text', () => {
    const entry = entryOf({ type: 'NON', code: '0.04', messageId: 9, token: Buffer.alloc(0), options: [{ number: OptionNumber.URI_PATH, value: Buffer.from('rd') }, { number: OptionNumber.URI_PATH, value: Buffer.from('x1') }], payload: Buffer.from('why') });
    assert.deepEqual([entry.type, entry.code, entry.options, entry.payload], ['NON', 'DELETE', { 'Uri-Path': '/rd/x1' }, { as: 'text', value: 'why' }]);
  });

  it('never throws on random and mutated datagrams, and every entry is plain JSON', () => {
    // a seeded generator: the same datagrams every run
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const formats = [undefined, 0, 40, 42, 50, 60, 110, 112, 11542, 11543, 11544, 1542, 9999];
    for (let i = 0; i < 3000; i++) {
      const format = formats[i % formats.length];
      const payload = Buffer.from(Array.from({ length: Math.floor(random() * 40) + 1 }, () => Math.floor(random() * 256)));
      const options = [{ number: OptionNumber.URI_PATH, value: Buffer.from('3') }, ...(format === undefined ? [] : [uintOption(OptionNumber.CONTENT_FORMAT, format)])];
      const datagram = serializeMessage({ type: 'ACK', code: i % 2 ? '2.05' : '0.03', messageId: i, token: Buffer.from([i & 0xff]), options, payload });
      // flip a few bytes anywhere, header included
      for (let flips = Math.floor(random() * 3); flips > 0; flips--) datagram[Math.floor(random() * datagram.length)] = Math.floor(random() * 256);
      const { entry } = traceEntry(datagram, { time: 1, direction: 'in', peer, model: defaultModel(), requestPath: () => '/3/0' });
      assert.deepEqual(JSON.parse(JSON.stringify(entry)), entry);
      assert.equal(entry.size, datagram.length);
    }
  });
});

describe('RingBuffer', () => {
  it('keeps the last N in order, resizes keeping the latest, and a capacity of 0 keeps nothing', () => {
    const ring = new RingBuffer<number>(3);
    for (let i = 1; i <= 10; i++) ring.push(i);
    assert.deepEqual(ring.toArray(), [8, 9, 10]);
    assert.equal(ring.size, 3);
    ring.resize(2);
    assert.deepEqual(ring.toArray(), [9, 10]);
    ring.resize(4);
    ring.push(11);
    assert.deepEqual(ring.toArray(), [9, 10, 11]);
    ring.push(12);
    ring.push(13);
    assert.deepEqual(ring.toArray(), [10, 11, 12, 13]);
    ring.resize(0);
    ring.push(14);
    assert.deepEqual(ring.toArray(), []);
    assert.throws(() => new RingBuffer(-1), RangeError);
  });
});
