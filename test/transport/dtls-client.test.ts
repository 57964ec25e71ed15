/**
 * DtlsClient: its wire behaviour against a hand-driven UDP peer (hello, cookie, retransmission,
 * alerts, garbage), and whole sessions against independent DTLS servers: libcoap 4.3.1's
 * coap-server-openssl and coap-server-gnutls (CoAP over DTLS, with a CoapEndpoint on top) and
 * `openssl s_server` with extended_master_secret switched off (the RFC 5246 master secret).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DtlsClient, type DtlsClientOptions } from '../../lib/transport/dtls/client';
import { CIPHER_SUITES, isEcdheSuite, ContentType, DTLS_1_0, DTLS_1_2, ExtensionType, HandshakeType, type CipherSuiteName } from '../../lib/transport/dtls/constants';
import { parseClientHello, parseHandshakeFragments, parseServerHello, writeHandshake, writeHelloVerifyRequest, type ClientHello, type ServerHello } from '../../lib/transport/dtls/handshake';
import { parseRecords, writeRecord, type DtlsRecord } from '../../lib/transport/dtls/record';
import { CoapEndpoint, type Peer } from '../../lib/transport/endpoint';
import { CoapError } from '../../lib/transport/errors';
import { freeUdpPort } from '../helpers/ports';
import { boundUdpSocket } from '../helpers/ports';

const HOST = '127.0.0.1';
const KEY_TEXT = 'lwm2m-red-psk-key';
const KEY = Buffer.from(KEY_TEXT);
const IDENTITY = 'lwm2m-red-test';
// the PSK suites: the ECDHE-ECDSA ones are tested in dtls-ecdsa.test.ts
const SUITES = (Object.keys(CIPHER_SUITES) as CipherSuiteName[]).filter((suite) => !isEcdheSuite(suite));
/** handshakes on loopback: a lost server is noticed in 200+400+800+1600 ms, not minutes */
const QUICK = { initialTimeout: 200, maxRetransmissions: 3 };
const COAP_QUICK = { ackTimeout: 200, ackRandomFactor: 1, maxRetransmit: 3 };
/** how long a hand-driven peer waits for an expected datagram (never reached when the test passes) */
const RECEIVE_LIMIT = 3000;

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function newClient(options: Partial<DtlsClientOptions> & { port: number }): DtlsClient {
  const client = new DtlsClient({ host: HOST, identity: IDENTITY, key: KEY, ...options });
  cleanups.push(() => closeClient(client));
  return client;
}

function closeClient(client: DtlsClient): Promise<void> {
  return new Promise((resolve) => client.close(resolve));
}

function newEndpoint(client: DtlsClient): CoapEndpoint {
  const endpoint = new CoapEndpoint({ socket: client, timing: COAP_QUICK });
  cleanups.push(() => endpoint.close());
  return endpoint;
}

/** Rejects when `promise` takes longer than `ms`: waits on events must end even when the event never comes. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** A deterministic byte source, so the "random" garbage is the same on every run. */
function prng(seed: number) {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  return {
    int: (below: number) => next() % below,
    bytes: (length: number) => Buffer.from(Array.from({ length }, () => next() & 0xff)),
  };
}

async function bindSocket(): Promise<Socket> {
  const socket = await boundUdpSocket();
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

interface Received {
  data: Buffer;
  from: RemoteInfo;
  at: number;
}

/** A UDP socket that plays the server by hand: it queues what it receives. */
class RawPeer {
  private readonly queue: Received[] = [];
  private readonly waiters: Array<(received: Received) => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('message', (data, from) => {
      const received = { data, from, at: performance.now() };
      const waiter = this.waiters.shift();
      if (waiter) waiter(received);
      else this.queue.push(received);
    });
  }

  static async create(): Promise<RawPeer> {
    return new RawPeer(await bindSocket());
  }

  get port(): number {
    return this.socket.address().port;
  }

  get pending(): number {
    return this.queue.length;
  }

  next(): Promise<Received> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return within(new Promise<Received>((resolve) => this.waiters.push(resolve)), RECEIVE_LIMIT, 'a datagram from the client');
  }

  send(data: Buffer, to: RemoteInfo): void {
    this.socket.send(data, to.port, to.address);
  }
}

/** The one ClientHello a datagram of the client carries, with its record and handshake headers. */
function clientHelloIn(datagram: Buffer): { record: DtlsRecord; messageSeq: number; hello: ClientHello } {
  const records = parseRecords(datagram);
  assert.equal(records.length, 1);
  const record = records[0]!;
  assert.equal(record.type, ContentType.HANDSHAKE);
  assert.equal(record.epoch, 0);
  const fragments = parseHandshakeFragments(record.fragment);
  assert.equal(fragments.length, 1);
  const fragment = fragments[0]!;
  assert.equal(fragment.type, HandshakeType.CLIENT_HELLO);
  assert.equal(fragment.offset, 0);
  assert.equal(fragment.body.length, fragment.length, 'a ClientHello fits one record');
  return { record, messageSeq: fragment.messageSeq, hello: parseClientHello(fragment.body) };
}

function helloVerifyRequest(cookie: Buffer, messageSeq = 0): Buffer {
  return writeRecord(ContentType.HANDSHAKE, DTLS_1_0, 0, 0, writeHandshake(HandshakeType.HELLO_VERIFY_REQUEST, messageSeq, writeHelloVerifyRequest(DTLS_1_0, cookie)));
}

function alert(level: number, description: number, sequence = 1): Buffer {
  return writeRecord(ContentType.ALERT, DTLS_1_2, 0, sequence, Buffer.from([level, description]));
}

describe('DtlsClient against a hand-driven peer', () => {
  it('offers the PSK suites with extended_master_secret and renegotiation_info, and repeats its ClientHello with the cookie', async () => {
    const peer = await RawPeer.create();
    const client = newClient({ port: peer.port, timing: { initialTimeout: 10_000 } });
    const failures: Error[] = [];
    client.on('handshakeFailed', (error: Error) => failures.push(error));
    const connecting = client.connect();

    const first = await peer.next();
    const hello1 = clientHelloIn(first.data);
    assert.equal(hello1.record.sequence, 0);
    assert.equal(hello1.messageSeq, 0);
    assert.equal(hello1.hello.version, DTLS_1_2);
    assert.equal(hello1.hello.cookie.length, 0);
    assert.equal(hello1.hello.sessionId.length, 0);
    assert.deepEqual(hello1.hello.cipherSuites, [0xc0a8, 0x00a8, 0x00ae], 'all three, CCM_8 first');
    assert.deepEqual(hello1.hello.extensions.get(ExtensionType.EXTENDED_MASTER_SECRET), Buffer.alloc(0));
    assert.deepEqual(hello1.hello.extensions.get(ExtensionType.RENEGOTIATION_INFO), Buffer.from([0]));

    const cookie = Buffer.from('0123456789abcdef0123');
    peer.send(helloVerifyRequest(cookie), first.from);
    const hello2 = clientHelloIn((await peer.next()).data);
    assert.equal(hello2.record.sequence, 1, 'a new record sequence number');
    assert.equal(hello2.messageSeq, 1, 'the second ClientHello is message 1');
    assert.deepEqual(hello2.hello.cookie, cookie);
    assert.deepEqual(hello2.hello.random, hello1.hello.random, 'the same random in both ClientHellos');
    assert.deepEqual(hello2.hello.cipherSuites, hello1.hello.cipherSuites);

    peer.send(alert(2, 40), first.from);
    await assert.rejects(connecting, /waiting for ServerHello: the server sent a fatal handshake_failure alert \(40\)/);
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.message, /handshake_failure/);
    assert.equal(client.connected, false);
    assert.equal(client.cipherSuite, undefined);
  });

  it('retransmits its flight with doubling, capped timeouts and new sequence numbers, then gives up and starts afresh', async () => {
    const peer = await RawPeer.create();
    const client = newClient({ port: peer.port, cipherSuites: ['TLS_PSK_WITH_AES_128_CCM_8'], timing: { initialTimeout: 100, maxTimeout: 150, maxRetransmissions: 3 } });
    const start = performance.now();
    client.send(Buffer.from('waits for the handshake')); // starts it
    const connecting = client.connect();

    const sent: Received[] = [];
    for (let i = 0; i < 4; i++) sent.push(await peer.next());
    const hellos = sent.map((received) => clientHelloIn(received.data));
    assert.deepEqual(
      hellos.map((hello) => hello.record.sequence),
      [0, 1, 2, 3],
    );
    assert.deepEqual(
      hellos.map((hello) => hello.messageSeq),
      [0, 0, 0, 0],
      'the same message, retransmitted',
    );
    for (const hello of hellos) assert.deepEqual(hello.record.fragment, hellos[0]!.record.fragment);
    assert.deepEqual(hellos[0]!.hello.cipherSuites, [CIPHER_SUITES.TLS_PSK_WITH_AES_128_CCM_8]);
    // timers never fire early: 100 ms, then doubled to 200 but capped at 150, twice
    const gaps = sent.slice(1).map((received, i) => received.at - sent[i]!.at);
    assert.ok(gaps[0]! >= 98, `first gap ${gaps[0]}`);
    assert.ok(gaps[1]! >= 148 && gaps[2]! >= 148, `gaps ${gaps.join(', ')}`);

    await assert.rejects(connecting, /waiting for ServerHello: timed out, no answer to 4 transmissions/);
    const elapsed = performance.now() - start;
    // 100 + 150 + 150 + 150 = 550 ms; without the cap it would be 100 + 200 + 400 + 800 = 1500: the
    // bound between leaves a busy machine 650 ms of late timers
    assert.ok(elapsed >= 545 && elapsed < 1200, `gave up after ${elapsed} ms`);
    assert.equal(peer.pending, 0, 'nothing after giving up');

    // the queued datagram went with the failed handshake; the next send starts a new association
    client.send(Buffer.from('again'));
    const fresh = clientHelloIn((await peer.next()).data);
    assert.equal(fresh.record.sequence, 0);
    assert.equal(fresh.messageSeq, 0);
    assert.notDeepEqual(fresh.hello.random, hellos[0]!.hello.random);
  });

  it('drops garbage from the server address and datagrams from other addresses without throwing, and carries on', async () => {
    const peer = await RawPeer.create();
    const stranger = await bindSocket();
    const client = newClient({ port: peer.port, timing: { initialTimeout: 10_000 } });
    const events: string[] = [];
    for (const event of ['message', 'handshakeFailed', 'connected', 'disconnected', 'error']) client.on(event, () => events.push(event));
    const connecting = client.connect();
    const { from } = await peer.next();

    const random = prng(0x5eed);
    const garbage: Buffer[] = [Buffer.alloc(0), Buffer.from([ContentType.HANDSHAKE])];
    for (let i = 0; i < 40; i++) garbage.push(random.bytes(1 + random.int(300)));
    const serverHello = writeHandshake(HandshakeType.SERVER_HELLO, 0, random.bytes(70));
    garbage.push(
      writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 5, serverHello).subarray(0, 40), // truncated record
      Buffer.concat([writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 6, Buffer.alloc(0)), Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff])]), // a header promising 64 KiB
      writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 8, serverHello.subarray(0, 30)), // a fragment longer than its record
      writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 9, Buffer.from([HandshakeType.SERVER_HELLO, 0, 0, 10, 0, 0, 0, 0, 8, 0, 0, 5, 1, 2, 3, 4, 5])), // fragment beyond its message
      writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 11, writeHandshake(HandshakeType.SERVER_HELLO_DONE, 40, Buffer.alloc(0))), // far ahead of the expected message
      writeRecord(ContentType.CHANGE_CIPHER_SPEC, DTLS_1_2, 0, 12, Buffer.from([1])), // before any key exchange
      writeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 0, 13, Buffer.from('plaintext application data')),
      writeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 0, random.bytes(40)), // epoch 1 before there are keys
      writeRecord(ContentType.ALERT, DTLS_1_2, 1, 1, random.bytes(26)),
      writeRecord(ContentType.ALERT, DTLS_1_2, 0, 14, Buffer.from([2])), // an alert cut short
      writeRecord(ContentType.ALERT, DTLS_1_2, 0, 15, Buffer.from([1, 100])), // warning no_renegotiation: nothing to do
      writeRecord(99, DTLS_1_2, 0, 16, random.bytes(10)),
      writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 7, 17, serverHello), // an epoch that does not exist
    );
    for (const datagram of garbage) peer.send(datagram, from);
    // a fatal alert from anyone but the server means nothing
    stranger.send(alert(2, 40), from.port, from.address);

    // still in the handshake, and still able to take the next real step
    const cookie = Buffer.from('cookie-after-garbage');
    peer.send(helloVerifyRequest(cookie), from);
    // with a 10 s retransmission timer, the next datagram is the answer to the cookie
    const hello = clientHelloIn((await peer.next()).data);
    assert.deepEqual(hello.hello.cookie, cookie);
    assert.equal(hello.messageSeq, 1);
    assert.deepEqual(events, []);
    assert.equal(client.connected, false);

    // a message that is whole and in sequence but does not parse is the server's fault, not garbage:
    // its message_seq is used up, so dropping it would only stall the handshake until the timeout
    peer.send(writeRecord(ContentType.HANDSHAKE, DTLS_1_2, 0, 20, writeHandshake(HandshakeType.SERVER_HELLO, 1, Buffer.from([1, 2, 3]))), from);
    await assert.rejects(connecting, /waiting for ServerHello: malformed ServerHello/);
    const [record] = parseRecords((await peer.next()).data);
    assert.equal(record?.type, ContentType.ALERT);
    assert.deepEqual(record?.fragment, Buffer.from([2, 50]), 'a fatal decode_error alert');
    assert.deepEqual(events, ['handshakeFailed']);
  });
});

// ---------------------------------------------------------------------------------------------------
// Independent servers
// ---------------------------------------------------------------------------------------------------

const LIBCOAP = { openssl: '/usr/bin/coap-server-openssl', gnutls: '/usr/bin/coap-server-gnutls' } as const;
type Backend = keyof typeof LIBCOAP;

function udpPortFree(port: number): Promise<boolean> {
  const socket = createSocket('udp4');
  return new Promise((resolve) => {
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, HOST, () => socket.close(() => resolve(true)));
  });
}

/** Sends a CoAP GET / to the plain CoAP port every 50 ms until the server answers: then its DTLS port is bound as well. */
function waitForCoap(port: number, child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const finish = (error?: Error) => {
      clearInterval(interval);
      clearTimeout(timer);
      child.off('exit', onExit);
      socket.close();
      if (error) reject(error);
      else resolve();
    };
    const onExit = () => finish(new Error('the server exited'));
    child.once('exit', onExit);
    socket.on('message', () => finish());
    socket.on('error', () => undefined); // port unreachable while it starts
    const probe = () => socket.send(Buffer.from([0x40, 0x01, 0x12, 0x34]), port, HOST, () => undefined);
    const interval = setInterval(probe, 50);
    const timer = setTimeout(() => finish(new Error('the server did not answer within 5 s')), 5000);
    socket.bind(0, HOST, probe);
  });
}

/**
 * `coap-server-<backend> -A 127.0.0.1 -p <base> -k <key> -v 0`: libcoap 4.3.1 serves plain CoAP on
 * <base> and DTLS on <base>+1, any PSK identity with the key of -k (identity hint "CoAP" by default).
 */
class LibcoapServer {
  private child: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly binary: string,
    readonly basePort: number,
  ) {}

  get dtlsPort(): number {
    return this.basePort + 1;
  }

  get peer(): Peer {
    return { address: HOST, port: this.dtlsPort };
  }

  static async start(binary: string): Promise<LibcoapServer> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const base = await freeUdpPort();
      if (!(await udpPortFree(base + 1))) continue;
      const server = new LibcoapServer(binary, base);
      try {
        await server.spawn();
        return server;
      } catch (error) {
        lastError = error;
        await server.stop();
      }
    }
    throw new Error(`could not start ${binary}: ${String(lastError)}`);
  }

  private async spawn(): Promise<void> {
    const child = spawn(this.binary, ['-A', HOST, '-p', String(this.basePort), '-k', KEY_TEXT, '-v', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    this.child = child;
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString('latin1')));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString('latin1')));
    try {
      await waitForCoap(this.basePort, child);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.output}`);
    }
  }

  /** SIGKILL: the server dies holding our session; SIGTERM: libcoap closes its sessions (close_notify) first. */
  async restart(signal: NodeJS.Signals): Promise<void> {
    await this.stop(signal);
    await this.spawn();
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const hard = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(hard);
  }
}

/** Until the event loop has gone round once more: timers started now are counted, handles closed now are gone. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

function countResources(): { udp: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return { udp: info.filter((name) => name === 'UDPWrap').length, timers: info.filter((name) => name === 'Timeout').length };
}

/**
 * A UDP relay between the client and a server: records the server's ServerHellos and the
 * application data records it relays, and optionally, before each datagram of the server, sends
 * the client garbage (from the server's address, as far as the client can tell) and afterwards
 * the same datagram again (a replay).
 */
class Relay {
  readonly serverHellos: ServerHello[] = [];
  applicationRecords = 0;
  private client: RemoteInfo | undefined;
  private readonly random = prng(0xdead);

  private constructor(
    readonly socket: Socket,
    private readonly target: number,
    private readonly garbage: boolean,
  ) {
    socket.on('message', (data, from) => {
      if (from.port !== target) {
        this.client = from;
        socket.send(data, target, HOST);
        return;
      }
      if (!this.client) return;
      this.inspect(data);
      if (this.garbage) for (const junk of this.junkFor(data)) socket.send(junk, this.client.port, this.client.address);
      socket.send(data, this.client.port, this.client.address);
      if (this.garbage) socket.send(data, this.client.port, this.client.address);
    });
  }

  static async create(target: number, garbage: boolean): Promise<Relay> {
    return new Relay(await bindSocket(), target, garbage);
  }

  get port(): number {
    return this.socket.address().port;
  }

  private inspect(datagram: Buffer): void {
    for (const record of parseRecords(datagram)) {
      if (record.epoch === 1 && record.type === ContentType.APPLICATION_DATA) this.applicationRecords++;
      if (record.epoch !== 0 || record.type !== ContentType.HANDSHAKE) continue;
      for (const fragment of parseHandshakeFragments(record.fragment)) {
        if (fragment.type === HandshakeType.SERVER_HELLO && fragment.body.length === fragment.length) this.serverHellos.push(parseServerHello(fragment.body));
      }
    }
  }

  /** What an attacker or a broken network could add without the keys. */
  private junkFor(real: Buffer): Buffer[] {
    const junk = [this.random.bytes(1 + this.random.int(200)), Buffer.alloc(0), real.subarray(0, real.length >> 1), real.subarray(0, 12)];
    // the server's encrypted records with one bit flipped (records in the clear would be believed: nothing protects them before Finished)
    for (const record of parseRecords(real)) {
      if (record.epoch !== 1) continue;
      const forged = Buffer.from(record.fragment);
      forged[forged.length - 1]! ^= 1;
      junk.push(writeRecord(record.type, record.version, record.epoch, record.sequence, forged));
    }
    return junk;
  }
}

const working: Record<Backend, CipherSuiteName[]> = { openssl: [], gnutls: [] };

for (const backend of Object.keys(LIBCOAP) as Backend[]) {
  describe(`DtlsClient against libcoap's coap-server-${backend}`, function () {
    let server: LibcoapServer;

    before(async function () {
      if (!existsSync(LIBCOAP[backend])) this.skip();
      server = await LibcoapServer.start(LIBCOAP[backend]);
    });

    after(async () => {
      await server?.stop();
    });

    for (const suite of SUITES) {
      it(`${suite}: a GET / sent before connect() waits for the handshake and returns 2.05 (or the server refuses the suite outright)`, async () => {
        const client = newClient({ port: server.dtlsPort, cipherSuites: [suite], timing: QUICK });
        const endpoint = newEndpoint(client);
        const outcome = new Promise<{ connected?: { cipherSuite: string }; failed?: Error }>((resolve) => {
          client.once('connected', (connected: { cipherSuite: string }) => resolve({ connected }));
          client.once('handshakeFailed', (failed: Error) => resolve({ failed }));
        });
        const request = endpoint.request(server.peer, { method: 'GET', timeout: 8000 });
        request.catch(() => undefined);
        const { connected, failed } = await within(outcome, 8000, 'the handshake');

        if (failed) {
          // refused in the ServerHello flight: the suite is not enabled there. A bug of ours in the suite's
          // record protection would show as a timeout or an alert after our Finished instead.
          assert.match(failed.message, /waiting for ServerHello: the server sent a fatal handshake_failure alert \(40\)/);
          assert.equal(client.connected, false);
          await endpoint.close();
          await assert.rejects(request, (error: unknown) => error instanceof CoapError && error.kind === 'CLOSED');
          return;
        }
        assert.deepEqual(connected, { cipherSuite: suite });
        const response = await request;
        assert.equal(response.code, '2.05');
        assert.match(response.payload.toString('utf8'), /This is a test server made with libcoap/);
        assert.equal(client.connected, true);
        assert.equal(client.cipherSuite, suite);
        // and a second request over the same session
        const time = await endpoint.request(server.peer, { method: 'GET', path: ['time'], timeout: 5000 });
        assert.equal(time.code, '2.05');
        working[backend].push(suite);
      });
    }

    it('a wrong key: connect() rejects within the retransmission budget and nothing is delivered', async () => {
      const client = newClient({ port: server.dtlsPort, key: Buffer.from('not-the-key'), timing: { initialTimeout: 100, maxRetransmissions: 3 } });
      const messages: Buffer[] = [];
      client.on('message', (data: Buffer) => messages.push(data));
      client.send(Buffer.from([0x40, 0x01, 0x00, 0x01])); // a CoAP GET / waiting for the session
      const start = performance.now();
      // the server cannot open our Finished and drops it silently (DTLS), so we time out after it
      await assert.rejects(client.connect(), /waiting for the server's Finished: timed out/);
      const elapsed = performance.now() - start;
      // within the budget (100 + 200 + 400 + 800 ms), with room for a busy machine; it does not hang
      assert.ok(elapsed < 2 * (100 + 200 + 400 + 800) + 2000, `rejected after ${elapsed} ms`);
      assert.equal(client.connected, false);
      assert.deepEqual(messages, []);
    });

    it('rehandshake(): after the server restarted and lost the session, a request times out, then rehandshake() brings 2.05 back', async () => {
      const client = newClient({ port: server.dtlsPort, timing: QUICK });
      const endpoint = newEndpoint(client);
      await client.connect();
      assert.equal((await endpoint.request(server.peer, { method: 'GET', timeout: 5000 })).code, '2.05');

      await server.restart('SIGKILL'); // no close_notify: the new process does not know us
      await assert.rejects(endpoint.request(server.peer, { method: 'GET', timeout: 1500 }), (error: unknown) => error instanceof CoapError && error.kind === 'TIMEOUT');
      assert.equal(client.connected, true, 'nothing told the client');

      const connected = once(client, 'connected');
      await client.rehandshake();
      assert.deepEqual((await connected)[0], { cipherSuite: 'TLS_PSK_WITH_AES_128_CCM_8' });
      assert.equal((await endpoint.request(server.peer, { method: 'GET', timeout: 5000 })).code, '2.05');
    });

    it("rehandshake() while the server still holds the session; and after the server's close_notify the next request handshakes by itself", async () => {
      const client = newClient({ port: server.dtlsPort, timing: QUICK });
      const endpoint = newEndpoint(client);
      let handshakes = 0;
      client.on('connected', () => handshakes++);
      await client.connect();
      await client.rehandshake();
      assert.equal(handshakes, 2);
      assert.equal((await endpoint.request(server.peer, { method: 'GET', timeout: 5000 })).code, '2.05');

      const disconnected = once(client, 'disconnected');
      await server.restart('SIGTERM'); // libcoap sends close_notify to its sessions on the way out
      assert.deepEqual(await within(disconnected, 5000, "the server's close_notify"), [undefined]);
      assert.equal(client.connected, false);
      assert.equal((await endpoint.request(server.peer, { method: 'GET', timeout: 5000 })).code, '2.05');
      assert.equal(handshakes, 3);
    });

    it('keeps the newest 64 datagrams sent before the session is up', async () => {
      const client = newClient({ port: server.dtlsPort, timing: QUICK });
      const answered = new Set<number>();
      client.on('message', (data: Buffer) => answered.add(data.readUInt16BE(2)));
      // 70 CON GET / with message ids 1..70 (libcoap answers each with a piggybacked 2.05)
      for (let id = 1; id <= 70; id++) client.send(Buffer.from([0x40, 0x01, 0x00, id]));
      await client.connect();
      await within(
        new Promise<void>((resolve) => {
          const check = () => (answered.size >= 64 ? resolve() : setTimeout(check, 10));
          check();
        }),
        5000,
        '64 answers',
      );
      assert.deepEqual(
        [...answered].sort((a, b) => a - b),
        Array.from({ length: 64 }, (_, i) => i + 7),
      );
    });

    it('close() leaves no UDP socket and no timer behind', async () => {
      await settle(); // mocha starts its own timeout timer once the test function has returned its promise
      const before = countResources();
      const client = new DtlsClient({ host: HOST, port: server.dtlsPort, identity: IDENTITY, key: KEY, timing: QUICK });
      const endpoint = new CoapEndpoint({ socket: client, timing: COAP_QUICK });
      assert.equal((await endpoint.request(server.peer, { method: 'GET', timeout: 5000 })).code, '2.05');
      // a handshake in progress as well: its retransmission timer must go too
      const other = new DtlsClient({ host: HOST, port: server.dtlsPort, identity: IDENTITY, key: KEY, timing: QUICK });
      const pending = other.connect();
      const during = countResources();
      assert.ok(during.udp >= before.udp + 2, 'the sockets were counted');
      await endpoint.close();
      await closeClient(client);
      await closeClient(other);
      await assert.rejects(pending, /closed/);
      await settle(); // like dgram's own close(), the callback comes before the loop's close phase releases the handle
      assert.deepEqual(countResources(), before);
    });
  });
}

describe('DtlsClient through a relay that adds garbage and replays (coap-server-openssl)', function () {
  let server: LibcoapServer;

  before(async function () {
    if (!existsSync(LIBCOAP.openssl)) this.skip();
    server = await LibcoapServer.start(LIBCOAP.openssl);
  });

  after(async () => {
    await server?.stop();
  });

  it('completes the handshake and the exchange, each response delivered once', async () => {
    const relay = await Relay.create(server.dtlsPort, true);
    const client = newClient({ port: relay.port, timing: QUICK });
    const endpoint = newEndpoint(client);
    let delivered = 0;
    client.on('message', () => delivered++);
    const peer = { address: HOST, port: relay.port };
    assert.equal((await endpoint.request(peer, { method: 'GET', timeout: 8000 })).code, '2.05');
    assert.equal((await endpoint.request(peer, { method: 'GET', path: ['time'], timeout: 5000 })).code, '2.05');
    assert.equal(client.cipherSuite, 'TLS_PSK_WITH_AES_128_CCM_8');
    assert.ok(relay.applicationRecords >= 2);
    assert.equal(delivered, relay.applicationRecords, 'the replayed copies and the forged records were dropped');
    assert.ok(relay.serverHellos.length >= 1);
    for (const hello of relay.serverHellos) assert.ok(hello.extensions.has(ExtensionType.EXTENDED_MASTER_SECRET), 'libcoap agrees to the RFC 7627 master secret');
  });
});

describe('DtlsClient against openssl s_server without extended_master_secret', function () {
  const OPENSSL = '/usr/bin/openssl';

  for (const suite of SUITES) {
    it(`${suite}: falls back to the RFC 5246 master secret and exchanges data both ways`, async function () {
      if (!existsSync(OPENSSL)) this.skip();
      const dir = await fs.mkdtemp(join(tmpdir(), 'dtls-client-'));
      cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
      const config = join(dir, 'openssl.cnf');
      // OpenSSL 3 has no command-line switch for it; the SSL_CONF "Options" command turns it off
      await fs.writeFile(config, 'openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = defaults\n[defaults]\nOptions = -ExtendedMasterSecret\n');
      const port = await freeUdpPort();
      const ciphers: Partial<Record<CipherSuiteName, string>> = { TLS_PSK_WITH_AES_128_CCM_8: 'PSK-AES128-CCM8', TLS_PSK_WITH_AES_128_GCM_SHA256: 'PSK-AES128-GCM-SHA256', TLS_PSK_WITH_AES_128_CBC_SHA256: 'PSK-AES128-CBC-SHA256' };
      const child = spawn(OPENSSL, ['s_server', '-dtls1_2', '-listen', '-accept', `${HOST}:${port}`, '-nocert', '-psk', KEY.toString('hex'), '-psk_hint', 'hint', '-cipher', ciphers[suite]!], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, OPENSSL_CONF: config, LC_ALL: 'C' },
      });
      cleanups.push(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      });
      child.stdin!.on('error', () => undefined);
      let output = '';
      const seen = (pattern: RegExp, what: string) =>
        within(
          new Promise<void>((resolve) => {
            const check = () => {
              if (!pattern.test(output)) return;
              child.stdout!.off('data', check);
              resolve();
            };
            child.stdout!.on('data', check);
            check();
          }),
          5000,
          `${what} (s_server said: ${output})`,
        );
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
      await seen(/ACCEPT/, 's_server listening');

      const relay = await Relay.create(port, false);
      const client = newClient({ port: relay.port, cipherSuites: [suite], timing: QUICK });
      await client.connect();
      assert.equal(client.cipherSuite, suite);
      assert.equal(relay.serverHellos.length, 1);
      assert.equal(relay.serverHellos[0]!.extensions.has(ExtensionType.EXTENDED_MASTER_SECRET), false);

      client.send(Buffer.from('ping from the client\n'));
      await seen(/ping from the client/, 's_server received our data');
      const message = once(client, 'message');
      child.stdin!.write('pong from s_server\n');
      const [data, info] = (await within(message, 5000, "s_server's data")) as [Buffer, { address: string; port: number; authentication?: string }];
      assert.equal(data.toString(), 'pong from s_server\n');
      assert.deepEqual(info, { address: HOST, port: relay.port, authentication: 'psk' });
    });
  }
});

describe('DtlsClient with the independent servers', () => {
  it('has CCM_8 working with at least one libcoap backend, and every suite with at least one', function () {
    if (!existsSync(LIBCOAP.openssl) && !existsSync(LIBCOAP.gnutls)) this.skip();
    assert.ok(working.openssl.includes('TLS_PSK_WITH_AES_128_CCM_8') || working.gnutls.includes('TLS_PSK_WITH_AES_128_CCM_8'), JSON.stringify(working));
    for (const suite of SUITES) assert.ok(working.openssl.includes(suite) || working.gnutls.includes(suite), `${suite}: ${JSON.stringify(working)}`);
  });
});
