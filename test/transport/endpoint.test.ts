import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { once } from 'node:events';
import { BoundedCache } from '../../lib/transport/bounded-cache';
import {
  CoapEndpoint,
  type CoapResponse,
  type EndpointOptions,
  type IncomingRequest,
  type OutgoingResponse,
  type Peer,
} from '../../lib/transport/endpoint';
import { CoapError } from '../../lib/transport/errors';
import {
  decodeBlock,
  encodeBlock,
  getOption,
  getUintOption,
  OptionNumber,
  parseMessage,
  pathOptions,
  serializeMessage,
  stringOptions,
  uintOption,
  type CoapMessage,
  type CoapOption,
  type MessageType,
} from '../../lib/transport/message';
import { DEFAULT_TIMING, maxTransmitWait } from '../../lib/transport/timing';
import { hex } from '../helpers/bytes';
import { boundUdpSocket } from '../helpers/ports';

const LOCALHOST = '127.0.0.1';
const EMPTY = Buffer.alloc(0);
/** Retransmission timing short enough for tests that wait for a timeout; jitter off so copies are predictable. */
const FAST = { ackTimeout: 10, ackRandomFactor: 1, maxRetransmit: 3, piggybackDelay: 10 };
/** For exchanges that should succeed: failures still end in about 1.5 s instead of 93. */
const QUICK = { ackTimeout: 100, ackRandomFactor: 1, maxRetransmit: 3 };
/** How long a raw peer waits for an expected datagram before the test fails (never hit by a passing test). */
const RECEIVE_LIMIT = 3000;

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function bindSocket(): Promise<Socket> {
  const socket = await boundUdpSocket();
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

function addressOf(socket: Socket): Peer {
  const { address, port } = socket.address();
  return { address, port };
}

interface Datagram {
  bytes: Buffer;
  from: Peer;
  /** undefined when the bytes are not a CoAP message */
  message?: CoapMessage;
}

/** A plain UDP socket that queues what it receives: a hand-driven peer, or a tap on an endpoint's socket. */
class RawPeer {
  private readonly queue: Datagram[] = [];
  private readonly waiters: Array<(datagram: Datagram) => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('message', (bytes, info) => {
      let message: CoapMessage | undefined;
      try {
        message = parseMessage(bytes);
      } catch {
        message = undefined;
      }
      const datagram = { bytes, from: { address: info.address, port: info.port }, message };
      const waiter = this.waiters.shift();
      if (waiter) waiter(datagram);
      else this.queue.push(datagram);
    });
  }

  static async create(): Promise<RawPeer> {
    return new RawPeer(await bindSocket());
  }

  get peer(): Peer {
    return addressOf(this.socket);
  }

  /** Datagrams received and not yet taken. */
  get queued(): number {
    return this.queue.length;
  }

  next(): Promise<Datagram> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiter = (datagram: Datagram): void => {
        clearTimeout(timer);
        resolve(datagram);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no datagram within ${RECEIVE_LIMIT} ms`));
      }, RECEIVE_LIMIT);
      this.waiters.push(waiter);
    });
  }

  /** The next datagram, which must be a CoAP message. */
  async nextMessage(): Promise<CoapMessage> {
    const datagram = await this.next();
    assert.ok(datagram.message, `not a CoAP message: ${datagram.bytes.toString('hex')}`);
    return datagram.message;
  }

  /** Everything queued so far, one message per message id (a retransmitted copy is dropped). */
  drainDistinct(): CoapMessage[] {
    const seen = new Set<number>();
    const messages: CoapMessage[] = [];
    for (const { message } of this.queue.splice(0)) {
      if (!message || seen.has(message.messageId)) continue;
      seen.add(message.messageId);
      messages.push(message);
    }
    return messages;
  }

  send(data: CoapMessage | Buffer, to: Peer): Promise<void> {
    const bytes = Buffer.isBuffer(data) ? data : serializeMessage(data);
    return new Promise((resolve, reject) => this.socket.send(bytes, to.port, to.address, (error) => (error ? reject(error) : resolve())));
  }
}

async function listening(options: EndpointOptions = {}): Promise<{ endpoint: CoapEndpoint; peer: Peer }> {
  const endpoint = new CoapEndpoint(options);
  cleanups.push(() => endpoint.close());
  const { address, port } = await endpoint.listen(0, LOCALHOST);
  return { endpoint, peer: { address, port } };
}

/** An endpoint on a socket of ours, with a tap that sees every datagram the endpoint receives. */
async function tapped(options: EndpointOptions = {}): Promise<{ endpoint: CoapEndpoint; peer: Peer; inbox: RawPeer }> {
  const socket = await bindSocket();
  const endpoint = new CoapEndpoint({ ...options, socket });
  cleanups.push(() => endpoint.close());
  return { endpoint, peer: addressOf(socket), inbox: new RawPeer(socket) };
}

function coap(fields: Partial<CoapMessage> & { type: MessageType; code: string; messageId: number }): CoapMessage {
  return { token: EMPTY, options: [], payload: EMPTY, ...fields };
}

function empty(type: MessageType, messageId: number): CoapMessage {
  return coap({ type, code: '0.00', messageId });
}

/** The event's arguments, or a failure when it does not come within RECEIVE_LIMIT (so a missing event fails instead of hanging). */
function nextEvent<T extends unknown[]>(emitter: CoapEndpoint, name: string): Promise<T> {
  return once(emitter, name, { signal: AbortSignal.timeout(RECEIVE_LIMIT) }).then(
    (args) => args as T,
    () => {
      throw new Error(`no '${name}' event within ${RECEIVE_LIMIT} ms`);
    },
  );
}

/** The promise's value, or a failure when it does not settle within RECEIVE_LIMIT. */
async function settled<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${RECEIVE_LIMIT} ms`)), RECEIVE_LIMIT);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise with its resolve function outside, for handlers the test releases by hand. */
/** A raw peer that observes a new server endpoint with `token` (hex), past the first response; the server's side of it. */
async function rawObserver(token: string): Promise<{ server: { endpoint: CoapEndpoint; peer: Peer }; raw: RawPeer; request: IncomingRequest }> {
  const server = await listening({ timing: QUICK });
  const raw = await RawPeer.create();
  const origin = deferred<IncomingRequest>();
  server.endpoint.setRequestHandler((request) => {
    origin.resolve(request);
    return { code: '2.05', observe: 1 };
  });
  await raw.send(coap({ type: 'CON', code: '0.01', messageId: 1, token: hex(token), options: [uintOption(OptionNumber.OBSERVE, 0)] }), server.peer);
  await raw.nextMessage();
  return { server, raw, request: await origin.promise };
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function rejectsWithKind(promise: Promise<unknown>, kind: CoapError['kind']): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CoapError, `expected a CoapError, got ${String(error)}`);
    assert.equal(error.kind, kind);
    return true;
  });
}

function block(message: { options: readonly CoapOption[] }, number: number) {
  const value = getOption(message, number);
  assert.ok(value, `no option ${number}`);
  return decodeBlock(value);
}

describe('CoapEndpoint (transport/endpoint)', () => {
  describe('requests and responses between two endpoints', () => {
    it('GET with path, query and Accept gets a piggybacked 2.05 with payload and Content-Format', async () => {
      const server = await listening();
      const client = await tapped({ timing: QUICK });
      const seen: IncomingRequest[] = [];
      server.endpoint.setRequestHandler((request) => {
        seen.push(request);
        return { code: '2.05', payload: Buffer.from('{"v":21.5}'), contentFormat: 11543 };
      });

      const response = await client.endpoint.request(server.peer, { method: 'GET', path: ['3303', '0', '5700'], query: ['a=1', 'b'], accept: 11543 });

      assert.equal(response.code, '2.05');
      assert.deepEqual(response.payload, Buffer.from('{"v":21.5}'));
      assert.equal(response.contentFormat, 11543);
      assert.equal(response.token.length, 8);
      assert.deepEqual(response.peer, server.peer);
      assert.equal(seen.length, 1);
      const [request] = seen;
      assert.equal(request!.method, 'GET');
      assert.equal(request!.type, 'CON');
      assert.deepEqual(request!.path, ['3303', '0', '5700']);
      assert.deepEqual(request!.query, ['a=1', 'b']);
      assert.equal(request!.accept, 11543);
      assert.equal(request!.contentFormat, undefined);
      assert.equal(request!.observe, undefined);
      assert.deepEqual(request!.peer, client.peer);
      assert.deepEqual(request!.token, response.token);
      // piggybacked: the answer came as the ACK of the request's message id
      const ack = await client.inbox.nextMessage();
      assert.equal(ack.type, 'ACK');
      assert.equal(ack.code, '2.05');
      assert.equal(ack.messageId, request!.messageId);
      assert.deepEqual(ack.token, request!.token);
    });

    it('delivers a request payload with its Content-Format and answers a handler without payload', async () => {
      const server = await listening();
      const client = await listening({ timing: QUICK });
      let received: IncomingRequest | undefined;
      server.endpoint.setRequestHandler((request) => {
        received = request;
        return { code: '2.04' };
      });
      const response = await client.endpoint.request(server.peer, { method: 'PUT', path: ['1', '0', '1'], payload: Buffer.from('300'), contentFormat: 0 });
      assert.equal(response.code, '2.04');
      assert.deepEqual(response.payload, EMPTY);
      assert.equal(response.contentFormat, undefined);
      assert.equal(received?.method, 'PUT');
      assert.deepEqual(received?.payload, Buffer.from('300'));
      assert.equal(received?.contentFormat, 0);
    });

    it('answers an async handler that is quick enough on the ACK', async () => {
      const server = await listening({ timing: { piggybackDelay: 5000 } });
      const client = await tapped({ timing: QUICK });
      server.endpoint.setRequestHandler(async () => ({ code: '2.05', payload: Buffer.from('later') }));
      const response = await client.endpoint.request(server.peer, { method: 'GET', path: ['x'] });
      assert.deepEqual(response.payload, Buffer.from('later'));
      const ack = await client.inbox.nextMessage();
      assert.equal(ack.type, 'ACK');
      assert.equal(ack.code, '2.05');
    });

    it('answers a NON request with a NON response carrying the token', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      server.endpoint.setRequestHandler((request) => ({ code: '2.05', payload: Buffer.from(request.type) }));
      await raw.send(coap({ type: 'NON', code: '0.01', messageId: 0x1111, token: hex('0102'), options: pathOptions(['a']) }), server.peer);
      const response = await raw.nextMessage();
      assert.equal(response.type, 'NON');
      assert.equal(response.code, '2.05');
      assert.deepEqual(response.token, hex('0102'));
      assert.deepEqual(response.payload, Buffer.from('NON'));

      // and the endpoint's own NON request resolves with it
      const client = await listening({ timing: QUICK });
      const answer = await client.endpoint.request(server.peer, { method: 'GET', confirmable: false, timeout: RECEIVE_LIMIT });
      assert.deepEqual(answer.payload, Buffer.from('NON'));
    });

    it('does not take a piggybacked response whose token is not the request\'s', async () => {
      const client = await listening({ timing: QUICK });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET', path: ['x'], timeout: 300 });
      const request = await raw.nextMessage();
      await raw.send(coap({ type: 'ACK', code: '2.05', messageId: request.messageId, token: hex('deadbeef'), payload: Buffer.from('someone else') }), client.peer);
      await assert.rejects(pending, (error: CoapError) => error.kind === 'TIMEOUT');
    });

    it('answers 4.04 without a handler, 4.05 to an unknown method code and 5.00 when the handler fails', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 1, token: hex('01') }), server.peer);
      const notFound = await raw.nextMessage();
      assert.equal(notFound.code, '4.04');
      assert.equal(notFound.messageId, 1);

      server.endpoint.setRequestHandler(() => ({ code: '2.05' }));
      await raw.send(coap({ type: 'CON', code: '0.09', messageId: 2, token: hex('02') }), server.peer);
      const notAllowed = await raw.nextMessage();
      assert.equal(notAllowed.type, 'ACK');
      assert.equal(notAllowed.code, '4.05');

      server.endpoint.setRequestHandler(() => {
        throw new Error('boom');
      });
      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 3, token: hex('03') }), server.peer);
      const failed = await raw.nextMessage();
      assert.equal(failed.code, '5.00');
      assert.deepEqual(failed.payload, Buffer.from('boom'));

      server.endpoint.setRequestHandler(async () => Promise.reject(new Error('async boom')));
      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 4, token: hex('04') }), server.peer);
      const asyncFailed = await raw.nextMessage();
      assert.equal(asyncFailed.code, '5.00');
      assert.deepEqual(asyncFailed.payload, Buffer.from('async boom'));
    });
  });

  describe('deduplication', () => {
    it('runs the handler once for a repeated CON and sends both copies the same response bytes', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return { code: '2.05', payload: Buffer.from(`call ${calls}`) };
      });
      const request = coap({ type: 'CON', code: '0.02', messageId: 0x4242, token: hex('aabb'), options: pathOptions(['dup']), payload: Buffer.from('x') });
      await raw.send(request, server.peer);
      const first = await raw.next();
      await raw.send(request, server.peer);
      const second = await raw.next();
      assert.equal(calls, 1);
      assert.deepEqual(second.bytes, first.bytes);
      assert.equal(first.message?.type, 'ACK');
      assert.equal(first.message?.messageId, 0x4242);
      assert.deepEqual(first.message?.payload, Buffer.from('call 1'));

      // a new message id is a new request
      await raw.send({ ...request, messageId: 0x4243 }, server.peer);
      const third = await raw.nextMessage();
      assert.equal(calls, 2);
      assert.deepEqual(third.payload, Buffer.from('call 2'));
    });

    it('does not confuse equal message ids from different peers', async () => {
      const server = await listening();
      const one = await RawPeer.create();
      const two = await RawPeer.create();
      let calls = 0;
      server.endpoint.setRequestHandler(() => ({ code: '2.05', payload: Buffer.from(String(++calls)) }));
      const request = coap({ type: 'CON', code: '0.01', messageId: 7, token: hex('07') });
      await one.send(request, server.peer);
      assert.deepEqual((await one.nextMessage()).payload, Buffer.from('1'));
      await two.send(request, server.peer);
      assert.deepEqual((await two.nextMessage()).payload, Buffer.from('2'));
    });
  });

  describe('retransmission', () => {
    it('retransmits a CON request until the peer answers', async () => {
      const client = await listening({ timing: { ...FAST, maxRetransmit: 4 } });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET', path: ['slow'], timeout: RECEIVE_LIMIT });
      const first = await raw.next();
      const second = await raw.next(); // the first copy is ignored
      assert.deepEqual(second.bytes, first.bytes, 'a retransmission is the same datagram');
      const request = second.message!;
      assert.equal(request.type, 'CON');
      assert.deepEqual(stringOptions(request, OptionNumber.URI_PATH), ['slow']);
      await raw.send(coap({ type: 'ACK', code: '2.05', messageId: request.messageId, token: request.token, payload: Buffer.from('finally') }), second.from);
      const response = await pending;
      assert.equal(response.code, '2.05');
      assert.deepEqual(response.payload, Buffer.from('finally'));
    });

    it('gives up with TIMEOUT after maxRetransmit retransmissions (maxRetransmit + 1 copies)', async () => {
      const client = await listening({ timing: FAST });
      const raw = await RawPeer.create();
      // a long overall timeout, so the retransmission count alone decides when to give up
      await rejectsWithKind(client.endpoint.request(raw.peer, { method: 'POST', path: ['void'], timeout: RECEIVE_LIMIT }), 'TIMEOUT');
      // a NON request behind the retransmissions marks the end of what the endpoint sent
      await rejectsWithKind(client.endpoint.request(raw.peer, { method: 'GET', path: ['marker'], confirmable: false, timeout: 1 }), 'TIMEOUT');
      const copies: Buffer[] = [];
      for (;;) {
        const datagram = await raw.next();
        if (datagram.message?.type === 'NON') break;
        copies.push(datagram.bytes);
      }
      assert.equal(copies.length, FAST.maxRetransmit + 1);
      for (const copy of copies) assert.deepEqual(copy, copies[0]);
    });

    it('rejects with RESET when the peer answers with a Reset', async () => {
      const client = await listening({ timing: QUICK });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET', path: ['reset'] });
      const { message, from } = await raw.next();
      await raw.send(empty('RST', message!.messageId), from);
      await rejectsWithKind(pending, 'RESET');
    });

    it('ignores an ACK or RST for another message id', async () => {
      const client = await listening({ timing: QUICK });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET' });
      const { message, from } = await raw.next();
      const request = message!;
      await raw.send(empty('RST', (request.messageId + 1) % 0x10000), from);
      await raw.send(coap({ type: 'ACK', code: '2.05', messageId: (request.messageId + 2) % 0x10000, token: request.token, payload: Buffer.from('wrong') }), from);
      await raw.send(coap({ type: 'ACK', code: '2.05', messageId: request.messageId, token: request.token, payload: Buffer.from('right') }), from);
      assert.deepEqual((await pending).payload, Buffer.from('right'));
    });

    it('stops retransmitting once an empty ACK came, and ends at the deadline if no separate response follows', async () => {
      const client = await listening({ timing: { ...FAST, ackTimeout: 40, maxRetransmit: 8 } });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'POST', path: ['later'], timeout: 1000 });
      const { message, from } = await raw.next();
      await raw.send(empty('ACK', message!.messageId), from);
      await assert.rejects(pending, (error: unknown) => {
        assert.ok(error instanceof CoapError && error.kind === 'TIMEOUT', String(error));
        assert.match(error.message, /^no response from 127\.0\.0\.1:\d+ within 1 s$/);
        return true;
      });
      // unacknowledged, copies would go out at 40, 120, 280 and 600 ms; one may cross the ACK, no more
      assert.ok(raw.queued <= 1, `${raw.queued} retransmissions after the ACK`);
    });

    it('ends at the deadline when it comes before the retransmissions run out, with the time it was given', async () => {
      const client = await listening({ timing: { ...FAST, ackTimeout: 200, maxRetransmit: 4 } });
      const raw = await RawPeer.create();
      await assert.rejects(client.endpoint.request(raw.peer, { method: 'GET', path: ['deadline'], timeout: 500 }), (error: unknown) => {
        assert.ok(error instanceof CoapError && error.kind === 'TIMEOUT', String(error));
        assert.match(error.message, /within 0\.5 s$/);
        return true;
      });
      // first copy at 0, retransmissions at 200 and 600 ms: the deadline at 500 ms came before the second
      const copies = [await raw.next()];
      while (raw.queued > 0) copies.push(await raw.next());
      assert.ok(copies.length <= 2, `${copies.length} copies for a 500 ms deadline`);
    });

    it('never retransmits a NON request; it ends at its deadline', async () => {
      const client = await listening({ timing: { ...FAST, ackTimeout: 10 } });
      const raw = await RawPeer.create();
      await rejectsWithKind(client.endpoint.request(raw.peer, { method: 'GET', path: ['non'], confirmable: false, timeout: 300 }), 'TIMEOUT');
      const first = await raw.next();
      assert.equal(first.message?.type, 'NON');
      assert.equal(raw.queued, 0, 'a NON request was sent again');
    });

    it('maxTransmitWait follows RFC 7252 §4.8.2', () => {
      assert.equal(maxTransmitWait(DEFAULT_TIMING), 93_000);
      assert.equal(maxTransmitWait({ ...DEFAULT_TIMING, ackTimeout: 10, ackRandomFactor: 1, maxRetransmit: 3 }), 150);
    });
  });

  describe('separate responses', () => {
    it('sends an empty ACK when the handler is slow, then a CON response that the client ACKs', async () => {
      const server = await tapped({ timing: { piggybackDelay: 10, ackTimeout: 100 } });
      const client = await tapped({ timing: QUICK });
      const release = deferred<OutgoingResponse>();
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return release.promise;
      });
      const pending = client.endpoint.request(server.peer, { method: 'GET', path: ['slow'], timeout: RECEIVE_LIMIT });

      const request = await server.inbox.nextMessage();
      assert.equal(request.type, 'CON');
      // whatever the client retransmitted meanwhile, the first thing it receives is the empty ACK
      const ack = await client.inbox.nextMessage();
      assert.deepEqual([ack.type, ack.code, ack.messageId, ack.token.length], ['ACK', '0.00', request.messageId, 0]);

      release.resolve({ code: '2.05', payload: Buffer.from('separate'), contentFormat: 0 });
      const response = await pending;
      assert.equal(response.code, '2.05');
      assert.deepEqual(response.payload, Buffer.from('separate'));
      assert.equal(response.contentFormat, 0);
      assert.equal(calls, 1);

      let separate: CoapMessage;
      do separate = await client.inbox.nextMessage();
      while (separate.code === '0.00'); // repeated empty ACKs for retransmitted requests
      assert.equal(separate.type, 'CON');
      assert.deepEqual(separate.token, request.token);
      assert.notEqual(separate.messageId, request.messageId);
      // the client acknowledged the separate response
      let clientAck: CoapMessage;
      do clientAck = await server.inbox.nextMessage();
      while (clientAck.type === 'CON' && clientAck.code === '0.01'); // retransmitted requests
      assert.deepEqual([clientAck.type, clientAck.code, clientAck.messageId], ['ACK', '0.00', separate.messageId]);
    });

    it('repeats the empty ACK for a duplicate of a request that is still being handled separately', async () => {
      const server = await listening({ timing: { piggybackDelay: 10, ackTimeout: 100 } });
      const raw = await RawPeer.create();
      const release = deferred<OutgoingResponse>();
      server.endpoint.setRequestHandler(() => release.promise);
      const request = coap({ type: 'CON', code: '0.01', messageId: 0x0500, token: hex('5e'), options: pathOptions(['s']) });
      await raw.send(request, server.peer);
      const ack = await raw.next();
      assert.deepEqual(ack.bytes, serializeMessage(empty('ACK', 0x0500)));
      await raw.send(request, server.peer);
      assert.deepEqual((await raw.next()).bytes, ack.bytes);

      release.resolve({ code: '2.05', payload: Buffer.from('done') });
      const response = await raw.nextMessage();
      assert.equal(response.type, 'CON');
      assert.equal(response.code, '2.05');
      assert.deepEqual(response.token, hex('5e'));
      assert.deepEqual(response.payload, Buffer.from('done'));
      await raw.send(empty('ACK', response.messageId), server.peer);
    });

    it('a request made by the endpoint resolves with a separate response, which it acknowledges', async () => {
      const client = await listening({ timing: QUICK });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'POST', path: ['exec'], timeout: RECEIVE_LIMIT });
      const { message, from } = await raw.next();
      const request = message!;
      await raw.send(empty('ACK', request.messageId), from);
      await raw.send(coap({ type: 'CON', code: '2.04', messageId: 0x7777, token: request.token, payload: Buffer.from('ok') }), from);
      const response = await pending;
      assert.equal(response.code, '2.04');
      assert.deepEqual(response.payload, Buffer.from('ok'));
      let ack: CoapMessage;
      do ack = await raw.nextMessage();
      while (ack.type === 'CON'); // a retransmission that crossed our empty ACK
      assert.deepEqual([ack.type, ack.code, ack.messageId], ['ACK', '0.00', 0x7777]);
    });

    it('accepts a NON separate response', async () => {
      const client = await listening({ timing: QUICK });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET', timeout: RECEIVE_LIMIT });
      const { message, from } = await raw.next();
      await raw.send(empty('ACK', message!.messageId), from);
      await raw.send(coap({ type: 'NON', code: '2.05', messageId: 0x7778, token: message!.token, payload: Buffer.from('non') }), from);
      assert.deepEqual((await pending).payload, Buffer.from('non'));
    });
  });

  describe('Block2 (large responses)', () => {
    it('reassembles a 3000-byte response exactly, calling the handler once', async () => {
      const server = await listening();
      const client = await listening({ timing: QUICK });
      const body = randomBytes(3000);
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return { code: '2.05', payload: body, contentFormat: 42 };
      });
      const response = await client.endpoint.request(server.peer, { method: 'GET', path: ['big'] });
      assert.equal(response.code, '2.05');
      assert.equal(response.payload.length, 3000);
      assert.deepEqual(response.payload, body);
      assert.equal(response.contentFormat, 42);
      assert.equal(calls, 1, 'the later blocks come from the kept body');
    });

    it('cuts blocks of maxPayload (256) bytes and answers a block past the end with an error', async () => {
      const server = await listening({ maxPayload: 256 });
      const raw = await RawPeer.create();
      const body = randomBytes(3000);
      server.endpoint.setRequestHandler(() => ({ code: '2.05', payload: body }));
      const get = (messageId: number, options: CoapOption[] = []) =>
        raw.send(coap({ type: 'CON', code: '0.01', messageId, token: hex('b2'), options: [...pathOptions(['big']), ...options] }), server.peer);

      await get(1);
      const first = await raw.nextMessage();
      assert.equal(first.code, '2.05');
      assert.deepEqual(block(first, OptionNumber.BLOCK2), { num: 0, more: true, szx: 4 });
      assert.equal(getUintOption(first, OptionNumber.SIZE2), 3000);
      assert.deepEqual(first.payload, body.subarray(0, 256));

      await get(2, [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 5, more: false, szx: 4 }) }]);
      const middle = await raw.nextMessage();
      assert.deepEqual(block(middle, OptionNumber.BLOCK2), { num: 5, more: true, szx: 4 });
      assert.deepEqual(middle.payload, body.subarray(1280, 1536));

      await get(3, [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 11, more: false, szx: 4 }) }]);
      const last = await raw.nextMessage();
      assert.deepEqual(block(last, OptionNumber.BLOCK2), { num: 11, more: false, szx: 4 });
      assert.deepEqual(last.payload, body.subarray(2816));

      // asking for smaller blocks than the server's is honoured
      await get(4, [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 3, more: false, szx: 2 }) }]);
      const small = await raw.nextMessage();
      assert.deepEqual(block(small, OptionNumber.BLOCK2), { num: 3, more: true, szx: 2 });
      assert.deepEqual(small.payload, body.subarray(192, 256));

      await get(5, [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 12, more: false, szx: 4 }) }]);
      const beyond = await raw.nextMessage();
      assert.equal(beyond.code.charAt(0), '4', `block past the end answered ${beyond.code}`);
      assert.equal(beyond.code, '4.02');
      assert.equal(getOption(beyond, OptionNumber.BLOCK2), undefined);
    });

    it('the requesting endpoint fetches 256-byte blocks from a server with maxPayload 256', async () => {
      const server = await tapped({ maxPayload: 256 });
      const client = await listening({ timing: QUICK });
      const body = randomBytes(3000);
      server.endpoint.setRequestHandler(() => ({ code: '2.05', payload: body }));
      const response = await client.endpoint.request(server.peer, { method: 'GET', path: ['big'] });
      assert.deepEqual(response.payload, body);
      const nums: number[] = [];
      for (const request of server.inbox.drainDistinct()) {
        const value = getOption(request, OptionNumber.BLOCK2);
        nums.push(value ? decodeBlock(value).num : 0);
        assert.deepEqual(stringOptions(request, OptionNumber.URI_PATH), ['big']);
      }
      assert.deepEqual(nums, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    });

    it('does not split a response that fits in one block', async () => {
      const server = await listening({ maxPayload: 256 });
      const raw = await RawPeer.create();
      server.endpoint.setRequestHandler(() => ({ code: '2.05', payload: Buffer.alloc(256, 1) }));
      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 9, token: hex('09') }), server.peer);
      const response = await raw.nextMessage();
      assert.equal(getOption(response, OptionNumber.BLOCK2), undefined);
      assert.equal(response.payload.length, 256);
    });
  });

  describe('Block1 (large request bodies)', () => {
    it('sends a 5000-byte PUT in blocks; the handler sees the whole body once; intermediate answers are 2.31', async () => {
      const server = await listening();
      const client = await tapped({ timing: QUICK });
      const body = randomBytes(5000);
      const bodies: Buffer[] = [];
      server.endpoint.setRequestHandler((request) => {
        bodies.push(request.payload);
        return { code: '2.04' };
      });
      const response = await client.endpoint.request(server.peer, { method: 'PUT', path: ['fw'], payload: body, contentFormat: 42 });
      assert.equal(response.code, '2.04');
      assert.equal(bodies.length, 1);
      assert.deepEqual(bodies[0], body);

      const answers = client.inbox.drainDistinct();
      assert.deepEqual(
        answers.map((answer) => answer.code),
        ['2.31', '2.31', '2.31', '2.31', '2.04'],
      );
      answers.forEach((answer, num) => assert.deepEqual(block(answer, OptionNumber.BLOCK1), { num, more: num < 4, szx: 6 }));
    });

    it('follows a server that asks for smaller blocks', async () => {
      const server = await tapped({ maxPayload: 256 });
      const client = await listening({ timing: QUICK });
      const body = randomBytes(2000);
      const bodies: Buffer[] = [];
      server.endpoint.setRequestHandler((request) => {
        bodies.push(request.payload);
        return { code: '2.04' };
      });
      const response = await client.endpoint.request(server.peer, { method: 'POST', path: ['big'], payload: body });
      assert.equal(response.code, '2.04');
      assert.deepEqual(bodies, [body]);
      const blocks = server.inbox.drainDistinct().map((request) => ({ ...block(request, OptionNumber.BLOCK1), length: request.payload.length }));
      // 1024 bytes first, then 256-byte blocks from byte 1024 on (num 4 = 1024 / 256)
      assert.deepEqual(blocks, [
        { num: 0, more: true, szx: 6, length: 1024 },
        { num: 4, more: true, szx: 4, length: 256 },
        { num: 5, more: true, szx: 4, length: 256 },
        { num: 6, more: true, szx: 4, length: 256 },
        { num: 7, more: false, szx: 4, length: 208 },
      ]);
    });

    it('answers 4.08 to a block that is out of order', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return { code: '2.04' };
      });
      const put = (messageId: number, num: number, more: boolean) =>
        raw.send(
          coap({
            type: 'CON',
            code: '0.03',
            messageId,
            token: hex('b1'),
            options: [...pathOptions(['5', '0', '0']), { number: OptionNumber.BLOCK1, value: encodeBlock({ num, more, szx: 2 }) }],
            payload: Buffer.alloc(64, num),
          }),
          server.peer,
        );
      await put(1, 2, true);
      assert.equal((await raw.nextMessage()).code, '4.08');

      // a block skipped in the middle of a transfer
      await put(2, 0, true);
      assert.equal((await raw.nextMessage()).code, '2.31');
      await put(3, 2, false);
      assert.equal((await raw.nextMessage()).code, '4.08');
      // the transfer is forgotten: continuing it fails too
      await put(4, 1, false);
      assert.equal((await raw.nextMessage()).code, '4.08');
      assert.equal(calls, 0);

      // a complete transfer afterwards works
      await put(5, 0, true);
      assert.equal((await raw.nextMessage()).code, '2.31');
      await put(6, 1, false);
      const done = await raw.nextMessage();
      assert.equal(done.code, '2.04');
      assert.deepEqual(block(done, OptionNumber.BLOCK1), { num: 1, more: false, szx: 2 });
      assert.equal(calls, 1);
    });

    it('answers 4.13 when the announced body (Size1) is larger than maxBodySize', async () => {
      const server = await tapped({ maxBodySize: 4000 });
      const client = await listening({ timing: QUICK });
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return { code: '2.04' };
      });
      const response = await client.endpoint.request(server.peer, { method: 'PUT', path: ['fw'], payload: randomBytes(5000) });
      assert.equal(response.code, '4.13');
      assert.equal(getUintOption(response, OptionNumber.SIZE1), 4000);
      assert.equal(calls, 0);
      // refused at the first block, from the announced size
      const blocks = server.inbox.drainDistinct();
      assert.equal(blocks.length, 1);
      assert.equal(getUintOption(blocks[0]!, OptionNumber.SIZE1), 5000);
      assert.equal(block(blocks[0]!, OptionNumber.BLOCK1).num, 0);
    });

    it('answers 4.13 when the blocks received grow past maxBodySize', async () => {
      const server = await listening({ maxBodySize: 1000 });
      const raw = await RawPeer.create();
      server.endpoint.setRequestHandler(() => ({ code: '2.04' }));
      const put = (messageId: number, num: number) =>
        raw.send(
          coap({
            type: 'CON',
            code: '0.02',
            messageId,
            token: hex('b3'),
            options: [{ number: OptionNumber.BLOCK1, value: encodeBlock({ num, more: true, szx: 5 }) }],
            payload: Buffer.alloc(512, num),
          }),
          server.peer,
        );
      await put(1, 0);
      assert.equal((await raw.nextMessage()).code, '2.31');
      await put(2, 1);
      const tooLarge = await raw.nextMessage();
      assert.equal(tooLarge.code, '4.13');
      assert.equal(getUintOption(tooLarge, OptionNumber.SIZE1), 1000);
    });

    it('refuses locally to send a body larger than its own maxBodySize', async () => {
      const client = await listening({ maxBodySize: 100 });
      const raw = await RawPeer.create();
      await rejectsWithKind(client.endpoint.request(raw.peer, { method: 'PUT', payload: Buffer.alloc(101) }), 'TOO_LARGE');
      assert.equal(raw.queued, 0);
    });
  });

  describe('Observe', () => {
    async function observed() {
      const server = await listening({ timing: QUICK });
      const client = await listening({ timing: QUICK });
      const origin = deferred<IncomingRequest>();
      server.endpoint.setRequestHandler((request) => {
        origin.resolve(request);
        return { code: '2.05', payload: Buffer.from('v0'), observe: 1, contentFormat: 0 };
      });
      const notifications: CoapResponse[] = [];
      const waiting: Array<{ count: number; resolve(): void }> = [];
      const observation = await client.endpoint.observe(server.peer, { method: 'GET', path: ['3', '0', '9'] }, (notification) => {
        notifications.push(notification);
        for (const waiter of waiting.filter((w) => notifications.length >= w.count)) waiter.resolve();
      });
      const received = (count: number) =>
        new Promise<void>((resolve) => (notifications.length >= count ? resolve() : waiting.push({ count, resolve })));
      return { server, client, origin: await origin.promise, observation, notifications, received };
    }

    it('delivers NON and CON notifications in order; after cancel() the next one is reset', async () => {
      const { server, client, origin, observation, notifications, received } = await observed();
      assert.equal(origin.observe, 0, 'the request carries Observe: 0');
      assert.equal(observation.response.code, '2.05');
      assert.equal(observation.response.observe, 1);
      assert.deepEqual(observation.response.payload, Buffer.from('v0'));

      assert.equal(await server.endpoint.notify(origin, { code: '2.05', payload: Buffer.from('v1'), observe: 2 }, false), 'sent');
      assert.equal(await server.endpoint.notify(origin, { code: '2.05', payload: Buffer.from('v2'), observe: 3, contentFormat: 0 }, true), 'acknowledged');
      await received(2);
      assert.deepEqual(
        notifications.map((n) => [n.payload.toString(), n.observe, n.code]),
        [
          ['v1', 2, '2.05'],
          ['v2', 3, '2.05'],
        ],
      );
      assert.deepEqual(notifications[1]!.token, origin.token);
      assert.deepEqual(notifications[1]!.peer, server.peer);
      assert.equal(notifications[1]!.contentFormat, 0);

      observation.cancel();
      const reset = nextEvent<[{ peer: Peer; token: Buffer }]>(server.endpoint, 'reset');
      assert.equal(await server.endpoint.notify(origin, { code: '2.05', payload: Buffer.from('v3'), observe: 4 }, false), 'sent');
      const [event] = await reset;
      assert.deepEqual(event.token, origin.token);
      assert.equal(event.peer.port, client.peer.port);
      // a CON notification to the cancelled observation ends as 'reset' as well
      assert.equal(await server.endpoint.notify(origin, { code: '2.05', payload: Buffer.from('v4'), observe: 5 }, true), 'reset');
      assert.equal(notifications.length, 2, 'nothing delivered after cancel()');
    });

    it('a final response without Observe ends the observation', async () => {
      const { server, origin, notifications, received } = await observed();
      await server.endpoint.notify(origin, { code: '2.05', payload: Buffer.from('v1'), observe: 2 }, true);
      await received(1);
      assert.equal(await server.endpoint.notify(origin, { code: '4.04' }, true), 'acknowledged');
      const reset = nextEvent<[{ peer: Peer; token: Buffer }]>(server.endpoint, 'reset');
      await server.endpoint.notify(origin, { code: '2.05', payload: Buffer.from('v3'), observe: 4 }, false);
      const [event] = await reset;
      assert.deepEqual(event.token, origin.token);
      assert.equal(notifications[0]!.payload.toString(), 'v1');
      assert.equal(notifications[1]!.code, '4.04', 'the listener is told that the observation ended');
      assert.equal(notifications.length, 2);
    });

    it('a CON notification that is never acknowledged ends as timeout after maxRetransmit + 1 copies', async () => {
      const server = await listening({ timing: FAST });
      const raw = await RawPeer.create();
      const origin = deferred<IncomingRequest>();
      server.endpoint.setRequestHandler((request) => {
        origin.resolve(request);
        return { code: '2.05', payload: Buffer.from('v0'), observe: 7 };
      });
      await raw.send(
        coap({ type: 'CON', code: '0.01', messageId: 0x0101, token: hex('0b5e'), options: [uintOption(OptionNumber.OBSERVE, 0), ...pathOptions(['t'])] }),
        server.peer,
      );
      const first = await raw.nextMessage();
      assert.equal(getUintOption(first, OptionNumber.OBSERVE), 7);
      const request = await origin.promise;
      assert.equal(await server.endpoint.notify(request, { code: '2.05', payload: Buffer.from('v1'), observe: 8 }, true), 'timeout');
      // NON marker: the end of what the server sent
      assert.equal(await server.endpoint.notify(request, { code: '2.05', payload: Buffer.from('end'), observe: 9 }, false), 'sent');
      const copies: CoapMessage[] = [];
      for (;;) {
        const message = await raw.nextMessage();
        if (message.type === 'NON') break;
        copies.push(message);
      }
      assert.equal(copies.length, FAST.maxRetransmit + 1);
      for (const copy of copies) {
        assert.equal(copy.type, 'CON');
        assert.equal(copy.messageId, copies[0]!.messageId);
        assert.deepEqual(copy.token, hex('0b5e'));
        assert.deepEqual(copy.payload, Buffer.from('v1'));
        assert.equal(getUintOption(copy, OptionNumber.OBSERVE), 8);
      }
    });

    it('a peer that answers a notification with RST is reported by the reset event', async () => {
      const { server, raw, request } = await rawObserver('0c');
      const outcome = server.endpoint.notify(request, { code: '2.05', observe: 2 }, true);
      const notification = await raw.nextMessage();
      const reset = nextEvent<[{ peer: Peer; token: Buffer }]>(server.endpoint, 'reset');
      await raw.send(empty('RST', notification.messageId), server.peer);
      assert.equal(await outcome, 'reset');
      const [event] = await reset;
      assert.deepEqual(event.token, hex('0c'));
      assert.deepEqual(event.peer, raw.peer);
    });
  });

  describe('malformed and unexpected datagrams', () => {
    it('reports malformed datagrams, resets readable CONs, and keeps answering', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      server.endpoint.setRequestHandler(() => ({ code: '2.05', payload: Buffer.from('alive') }));
      const reasons: string[] = [];
      server.endpoint.on('malformed', ({ peer, reason }: { peer: Peer; reason: string }) => {
        assert.deepEqual(peer, raw.peer);
        reasons.push(reason);
      });
      const malformed = async (bytes: Buffer): Promise<void> => {
        const event = nextEvent(server.endpoint, 'malformed');
        await raw.send(bytes, server.peer);
        await event;
      };

      // unreadable headers: reported, not answered (checked by the next answer being the RST below)
      await malformed(hex('0b ad c0 ff ee 13 37 42 99'));
      await malformed(hex('40 01'));
      await malformed(hex('50 01 12 36 ff')); // a NON is not reset
      await malformed(hex('40 01 12 34 b5 61')); // CON, truncated option
      assert.deepEqual(await raw.nextMessage(), empty('RST', 0x1234));
      await malformed(hex('48 01 12 35 aa')); // CON, truncated token
      assert.deepEqual(await raw.nextMessage(), empty('RST', 0x1235));
      await malformed(hex('4f 01 12 37 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00')); // CON, token length 15
      assert.deepEqual(await raw.nextMessage(), empty('RST', 0x1237));
      // well-formed but broken inside: a Block1 option with SZX 7
      await malformed(serializeMessage(coap({ type: 'CON', code: '0.03', messageId: 0x1238, token: hex('01'), options: [{ number: OptionNumber.BLOCK1, value: hex('0f') }], payload: Buffer.from('x') })));
      assert.deepEqual(await raw.nextMessage(), empty('RST', 0x1238));
      assert.equal(reasons.length, 7);

      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 0x2000, token: hex('aa') }), server.peer);
      const answer = await raw.nextMessage();
      assert.equal(answer.type, 'ACK');
      assert.equal(answer.messageId, 0x2000);
      assert.deepEqual(answer.payload, Buffer.from('alive'));
    });

    it('answers a CoAP ping (empty CON) with RST and ignores an empty NON', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return { code: '2.05' };
      });
      await raw.send(empty('NON', 0x0a0a), server.peer);
      await raw.send(empty('CON', 0xabcd), server.peer);
      const pong = await raw.next();
      assert.deepEqual(pong.bytes, hex('70 00 ab cd'));
      assert.equal(calls, 0);
    });

    it('resets a response whose token it does not know', async () => {
      const server = await listening();
      const raw = await RawPeer.create();
      await raw.send(coap({ type: 'CON', code: '2.05', messageId: 0x4321, token: hex('de ad be ef'), payload: Buffer.from('?') }), server.peer);
      assert.deepEqual(await raw.nextMessage(), empty('RST', 0x4321));
      // an unknown ACK (nothing to reject) is ignored; a NON response is reset too
      await raw.send(coap({ type: 'ACK', code: '2.05', messageId: 0x4322, token: hex('01') }), server.peer);
      await raw.send(coap({ type: 'NON', code: '2.05', messageId: 0x4323, token: hex('02') }), server.peer);
      assert.deepEqual(await raw.nextMessage(), empty('RST', 0x4323));
    });
  });

  describe('setReceiving', () => {
    it('drops everything while off and answers again when back on', async () => {
      const server = await listening();
      const client = await listening({ timing: FAST });
      let calls = 0;
      server.endpoint.setRequestHandler(() => {
        calls++;
        return { code: '2.05', payload: Buffer.from('awake') };
      });
      server.endpoint.setReceiving(false);
      await rejectsWithKind(client.endpoint.request(server.peer, { method: 'GET' }), 'TIMEOUT');
      assert.equal(calls, 0);

      server.endpoint.setReceiving(true);
      const response = await client.endpoint.request(server.peer, { method: 'GET', timeout: RECEIVE_LIMIT });
      assert.deepEqual(response.payload, Buffer.from('awake'));
      assert.equal(calls, 1);
    });

    it('a request sent while not receiving misses its answer', async () => {
      const client = await listening({ timing: FAST });
      const raw = await RawPeer.create();
      client.endpoint.setReceiving(false);
      const pending = client.endpoint.request(raw.peer, { method: 'GET' });
      const { message, from } = await raw.next();
      await raw.send(coap({ type: 'ACK', code: '2.05', messageId: message!.messageId, token: message!.token }), from);
      await rejectsWithKind(pending, 'TIMEOUT');
    });
  });

  describe('close', () => {
    it('rejects pending requests with CLOSED, can be called twice, and refuses new work', async () => {
      const client = await listening({ timing: QUICK });
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET', path: ['never'] });
      const nonPending = client.endpoint.request(raw.peer, { method: 'GET', confirmable: false, timeout: 60_000 });
      await raw.next();
      await raw.next();
      const closed = nextEvent(client.endpoint, 'close');
      await client.endpoint.close();
      await closed;
      await rejectsWithKind(pending, 'CLOSED');
      await rejectsWithKind(nonPending, 'CLOSED');
      await client.endpoint.close();
      await rejectsWithKind(client.endpoint.request(raw.peer, { method: 'GET' }), 'CLOSED');
      await assert.rejects(client.endpoint.listen(0, LOCALHOST));
      assert.throws(() => client.endpoint.address());
    });

    it('settles CON notifications still waiting for an ACK', async () => {
      const { server, raw, request } = await rawObserver('0d');
      const outcome = server.endpoint.notify(request, { code: '2.05', observe: 2 }, true);
      await raw.nextMessage();
      await server.endpoint.close();
      assert.equal(await settled(outcome), 'timeout');
      assert.equal(await server.endpoint.notify(request, { code: '2.05', observe: 3 }, true), 'timeout');
    });

    it('leaves a socket it was given open', async () => {
      const socket = await bindSocket();
      const endpoint = new CoapEndpoint({ socket });
      await endpoint.close();
      const raw = await RawPeer.create();
      await new Promise<void>((resolve, reject) => socket.send(hex('40 00 00 01'), raw.peer.port, LOCALHOST, (error) => (error ? reject(error) : resolve())));
      assert.deepEqual((await raw.next()).bytes, hex('40 00 00 01'));
    });

    it('a listen() that a close() overtakes closes the socket it bound and rejects', async () => {
      const sockets = (): number => process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;
      const before = sockets();
      const endpoint = new CoapEndpoint();
      const listening = endpoint.listen(0, LOCALHOST);
      await endpoint.close();
      await assert.rejects(listening, /closed/);
      const deadline = Date.now() + RECEIVE_LIMIT;
      while (sockets() !== before) {
        if (Date.now() > deadline) assert.fail(`${sockets()} UDP sockets, not ${before}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    });

    it('refuses to listen twice and reports a port in use', async () => {
      const first = await listening();
      await assert.rejects(first.endpoint.listen(0, LOCALHOST), /already listening/);
      const second = new CoapEndpoint();
      cleanups.push(() => second.close());
      await assert.rejects(second.listen(first.peer.port, LOCALHOST), /EADDRINUSE/);
    });
  });

  describe('detach', () => {
    it('closes its own socket, fails pending requests with CLOSED, and works again on a new socket', async () => {
      const client = await listening({ timing: QUICK });
      const oldPort = client.peer.port;
      const raw = await RawPeer.create();
      const pending = client.endpoint.request(raw.peer, { method: 'GET', path: ['never'] });
      await raw.next();
      let closed = false;
      client.endpoint.once('close', () => (closed = true));
      await client.endpoint.detach();
      await rejectsWithKind(pending, 'CLOSED');
      assert.equal(closed, false, 'the endpoint itself stays open');
      assert.throws(() => client.endpoint.address(), /not listening/);
      // the old port is free again: the socket really closed
      const probe = new CoapEndpoint();
      cleanups.push(() => probe.close());
      await probe.listen(oldPort, LOCALHOST);

      const server = await listening({ timing: QUICK });
      server.endpoint.setRequestHandler(() => ({ code: '2.05', payload: Buffer.from('again') }));
      await client.endpoint.listen(0, LOCALHOST);
      const response = await client.endpoint.request(server.peer, { method: 'GET', path: ['x'] });
      assert.equal(response.payload.toString(), 'again');
      await client.endpoint.detach();
      await client.endpoint.detach(); // twice (and without a socket) is harmless
    });

    it('leaves a socket it was given (not owned) open, and takes another with use()', async () => {
      const socket = await bindSocket();
      const endpoint = new CoapEndpoint({ socket });
      cleanups.push(() => endpoint.close());
      await endpoint.detach();
      const raw = await RawPeer.create();
      await new Promise<void>((resolve, reject) => socket.send(hex('40 00 00 01'), raw.peer.port, LOCALHOST, (error) => (error ? reject(error) : resolve())));
      assert.deepEqual((await raw.next()).bytes, hex('40 00 00 01'));
      const other = await bindSocket();
      endpoint.use(other, false);
      assert.equal(endpoint.address().port, other.address().port);
    });

    it('drops the answer of a handler that finishes after the detach', async () => {
      const { endpoint, peer } = await listening({ timing: { ...QUICK, piggybackDelay: 5000 } });
      const release = deferred<void>();
      const started = deferred<void>();
      endpoint.setRequestHandler(async () => {
        started.resolve();
        await release.promise;
        return { code: '2.05' };
      });
      const raw = await RawPeer.create();
      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 7, token: hex('0a') }), peer);
      await started.promise;
      await endpoint.detach();
      await endpoint.listen(0, LOCALHOST);
      release.resolve();
      // a request sent next gets its answer; the old one's never comes on the new socket
      await raw.send(coap({ type: 'CON', code: '0.01', messageId: 8, token: hex('0b') }), { address: LOCALHOST, port: endpoint.address().port });
      const next = await raw.nextMessage();
      assert.equal(next.messageId, 8);
    });
  });
});

describe('BoundedCache (transport/bounded-cache)', () => {
  it('keeps evicting the oldest after many re-sets behind a long-lived entry, with a bounded slot list', () => {
    const cache = new BoundedCache<number>(100, 1e9);
    cache.set('first', 0);
    for (let i = 0; i < 50_000; i++) cache.set(`churn-${i % 10}`, i); // re-sets: stale slots pile up behind 'first'
    const slots = (cache as unknown as { order: string[]; head: number }).order.length - (cache as unknown as { head: number }).head;
    assert.ok(slots <= 2 * 100 + 1024 + 1, `slot list stays bounded (${slots})`);
    assert.equal(cache.get('first'), 0);
    for (let i = 0; i < 89; i++) cache.set(`fill-${i}`, i); // 100 entries now
    cache.set('one-more', 1);
    assert.equal(cache.get('first'), undefined, 'the oldest went first');
    assert.equal(cache.get('churn-0'), 49_990);
    assert.equal(cache.size, 100);
  });

  function clock() {
    let now = 1000;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  }

  it('returns a value until its ttl has passed', () => {
    const time = clock();
    const cache = new BoundedCache<string>(10, 100, time.now);
    cache.set('a', 'A');
    assert.equal(cache.get('a'), 'A');
    time.advance(100);
    assert.equal(cache.get('a'), 'A', 'exactly ttl old is still valid');
    time.advance(1);
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.size, 0, 'an expired entry is dropped when read');
  });

  it('sweeps expired entries on set', () => {
    const time = clock();
    const cache = new BoundedCache<number>(10, 100, time.now);
    cache.set('old1', 1);
    cache.set('old2', 2);
    time.advance(50);
    cache.set('young', 3);
    time.advance(51);
    cache.set('new', 4);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('young'), 3);
    assert.equal(cache.get('new'), 4);
    assert.equal(cache.get('old1'), undefined);
  });

  it('evicts the oldest entry beyond maxEntries', () => {
    const time = clock();
    const cache = new BoundedCache<number>(3, 1_000_000, time.now);
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) {
      cache.set(key, i);
      time.advance(1);
    }
    assert.equal(cache.size, 3);
    assert.equal(cache.get('a'), undefined);
    assert.deepEqual(['b', 'c', 'd'].map((key) => cache.get(key)), [1, 2, 3]);
  });

  it('set on an existing key refreshes its age and its place in the eviction order', () => {
    const time = clock();
    const cache = new BoundedCache<string>(3, 100, time.now);
    cache.set('a', 'A');
    cache.set('b', 'B');
    cache.set('c', 'C');
    time.advance(60);
    cache.set('a', 'A2');
    assert.equal(cache.size, 3, 're-setting does not grow the cache');
    cache.set('d', 'D'); // evicts b, the oldest now
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a'), 'A2');
    time.advance(60);
    assert.equal(cache.get('c'), undefined, 'c is 120 ms old');
    assert.equal(cache.get('a'), 'A2', 'a was refreshed 60 ms ago');
  });

  it('update replaces the value without refreshing the age; delete and clear remove', () => {
    const time = clock();
    const cache = new BoundedCache<string>(3, 100, time.now);
    cache.set('a', 'A');
    time.advance(80);
    cache.update('a', 'A2');
    cache.update('missing', 'X');
    assert.equal(cache.get('a'), 'A2');
    assert.equal(cache.get('missing'), undefined);
    time.advance(30);
    assert.equal(cache.get('a'), undefined);
    cache.set('b', 'B');
    cache.set('c', 'C');
    assert.equal(cache.delete('b'), true);
    assert.equal(cache.delete('b'), false);
    assert.equal(cache.get('b'), undefined);
    cache.clear();
    assert.equal(cache.size, 0);
  });
});
