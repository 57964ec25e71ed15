/**
 * The load generator of bench/dtls: a child process, so that the server side in the parent is
 * measured without the clients' CPU. The parent sends one command at a time over IPC and gets
 * `begin` and `end` (the measured span, after a warm-up, so that both processes time the same
 * seconds) and then `done` with the result, or `failed`:
 *
 * - `echo`: the baseline, bare UDP sockets and `window` datagrams outstanding to an echo socket;
 * - `coap`: `clients` CoapEndpoints (plain UDP, or each on its own DtlsClient session, connected
 *   before the clock starts) with `window` GET requests outstanding in total;
 * - `handshakes`: `concurrent` loops of new DtlsClient → connect() → close(), with a PSK or with
 *   ECDHE-ECDSA (a certificate, or a raw public key).
 *
 * Counts only: never prints, never decides anything. Everything it opens is closed after each command.
 */
import { createSocket, type Socket } from 'node:dgram';
import { DtlsClient, type DtlsClientOptions, type DtlsSession } from '../lib/transport/dtls/client';
import type { CipherSuiteName } from '../lib/transport/dtls/constants';
import { CoapEndpoint } from '../lib/transport/endpoint';

export interface Psk {
  identity: string;
  /** hex, as IPC carries JSON */
  key: string;
}

/** ECDHE-ECDSA credentials as PEM (IPC carries JSON): our key, with a chain for certificate mode; the CA or the pinned key (SPKI DER, hex) the server is checked against */
export interface Ecdsa {
  ecdsa: { key: string; chain?: string };
  serverCa?: string;
  serverPublicKey?: string;
}

export type Command =
  | { cmd: 'echo'; port: number; seconds: number; window: number; sockets: number; size: number }
  | { cmd: 'coap'; port: number; seconds: number; window: number; clients: number; dtls?: Psk & { suite?: CipherSuiteName; connectionId?: boolean } }
  | { cmd: 'handshakes'; port: number; seconds: number; concurrent: number; dtls: Psk | Ecdsa; resume?: boolean };

export interface RunResult {
  /** exchanges (echoes, responses, handshakes) completed within the measured seconds */
  ok: number;
  /** requests or handshakes that failed (for echo: datagrams given up after a second of silence) */
  failed: number;
  firstError?: string;
  /** the measured span, ms */
  elapsedMs: number;
  /** CPU of this process during the measured span, % of one core */
  cpu: number;
  /** the suite the DTLS sessions negotiated */
  cipherSuite?: string;
  /** DTLS sessions whose records carried a connection ID (RFC 9146) */
  withConnectionId?: number;
  /** requests or handshakes that took over a second: a datagram was lost and retransmitted (CoAP ACK_TIMEOUT, DTLS flight timeout ≥ 1 s) */
  slow?: number;
}

export type Report = { type: 'ready' | 'begin' | 'end' } | { type: 'done'; result: RunResult } | { type: 'failed'; error: string };

const HOST = '127.0.0.1';
const PATH = ['3303', '0', '5700'];

const report = (message: Report) => process.send!(message);

/** ms of load before the clock starts: the first test would otherwise also measure the JIT and the heap growing */
const WARM_UP = 500;

/**
 * Times `seconds` after a warm-up, telling the parent when the measured span begins and ends.
 * Only what completes while `measuring()` counts; `over()` turns true at the deadline: work
 * started before it may finish, but is not counted.
 */
function clock(seconds: number): { measuring(): boolean; over(): boolean; result(ok: number, failed: number, firstError?: string): RunResult } {
  let state: 'warming up' | 'measuring' | 'over' = 'warming up';
  let began = 0;
  let cpuStart = process.cpuUsage();
  let cpu = 0;
  const begin = () => {
    state = 'measuring';
    report({ type: 'begin' });
    began = performance.now();
    cpuStart = process.cpuUsage();
    timer = setTimeout(finish, seconds * 1000);
  };
  const finish = () => {
    if (state === 'over') return;
    if (state === 'warming up') begin(); // the work ended early (e.g. every client failed): an empty span
    clearTimeout(timer);
    state = 'over';
    const used = process.cpuUsage(cpuStart);
    cpu = ((used.user + used.system) / 1000 / (performance.now() - began)) * 100;
    report({ type: 'end' });
  };
  let timer = setTimeout(begin, WARM_UP);
  return {
    measuring: () => state === 'measuring',
    over: () => state === 'over',
    result: (ok, failed, firstError) => {
      finish();
      return { ok, failed, ...(firstError ? { firstError } : {}), elapsedMs: seconds * 1000, cpu };
    },
  };
}

const closeSocket = (socket: { close(callback?: () => void): void }) => new Promise<void>((resolve) => socket.close(() => resolve()));

async function echo(command: Extract<Command, { cmd: 'echo' }>): Promise<RunResult> {
  const sockets: Socket[] = [];
  for (let n = 0; n < command.sockets; n++) {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
    await new Promise<void>((resolve) => socket.connect(command.port, HOST, resolve));
    sockets.push(socket);
  }
  const datagram = Buffer.alloc(command.size, 0x42);
  let next = 0;
  let inflight = 0;
  let ok = 0;
  let lost = 0;
  let heardAt = performance.now();
  const time = clock(command.seconds);
  await new Promise<void>((resolve) => {
    // keeps `window` datagrams outstanding in total, sent round-robin from the sockets
    const pump = () => {
      while (!time.over() && inflight < command.window) {
        sockets[next++ % sockets.length]!.send(datagram);
        inflight++;
      }
      if (time.over() && inflight === 0) done();
    };
    for (const socket of sockets) {
      socket.on('message', () => {
        heardAt = performance.now();
        if (time.measuring()) ok++;
        inflight--;
        pump();
      });
    }
    // a datagram lost (a full receive buffer): after a second of silence the window is refilled; after the deadline, given up
    const watchdog = setInterval(() => {
      if (inflight > 0 && performance.now() - heardAt > 1000) {
        lost += inflight;
        inflight = 0;
        heardAt = performance.now();
        pump();
      }
    }, 250);
    const done = () => {
      clearInterval(watchdog);
      resolve();
    };
    pump();
  });
  const result = time.result(ok, lost, lost ? `${lost} datagrams unanswered` : undefined);
  await Promise.all(sockets.map(closeSocket));
  return result;
}

interface Client {
  endpoint: CoapEndpoint;
  dtls?: DtlsClient;
}

async function openClient(port: number, dtls: (Psk & { suite?: CipherSuiteName; connectionId?: boolean }) | undefined): Promise<Client> {
  if (!dtls) {
    const endpoint = new CoapEndpoint();
    await endpoint.listen(0, HOST);
    return { endpoint };
  }
  const session = new DtlsClient({ host: HOST, port, identity: dtls.identity, key: Buffer.from(dtls.key, 'hex'), ...(dtls.suite ? { cipherSuites: [dtls.suite] } : {}), connectionId: dtls.connectionId ?? false });
  try {
    await session.connect();
  } catch (error) {
    await closeSocket(session);
    throw error;
  }
  return { endpoint: new CoapEndpoint({ socket: session }), dtls: session };
}

async function closeClient(client: Client): Promise<void> {
  await client.endpoint.close(); // on a DtlsClient it only lets go of it
  if (client.dtls) await closeSocket(client.dtls); // close_notify: the server forgets the session
}

async function coap(command: Extract<Command, { cmd: 'coap' }>): Promise<RunResult> {
  const opened = await Promise.allSettled(Array.from({ length: command.clients }, () => openClient(command.port, command.dtls)));
  const clients = opened.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const refused = opened.find((outcome) => outcome.status === 'rejected');
  if (refused) {
    await Promise.all(clients.map(closeClient)); // nothing may stay open, or this process would not end
    throw refused.reason;
  }
  const peer = { address: HOST, port: command.port };
  let ok = 0;
  let failed = 0;
  let slow = 0;
  let firstError: string | undefined;
  const time = clock(command.seconds);
  // `window` loops, each with one request outstanding, spread over the clients
  await Promise.all(
    Array.from({ length: command.window }, async (_, n) => {
      const client = clients[n % clients.length]!;
      while (!time.over()) {
        const sent = performance.now();
        try {
          const response = await client.endpoint.request(peer, { method: 'GET', path: PATH, timeout: 10_000 });
          if (response.code !== '2.05') throw new Error(`answered ${response.code}`);
          if (time.measuring()) ok++;
          if (performance.now() - sent > 1000) slow++;
        } catch (error) {
          failed++;
          firstError ??= String(error);
        }
      }
    }),
  );
  const result = { ...time.result(ok, failed, firstError), slow };
  const suite = clients[0]?.dtls?.cipherSuite;
  if (suite) result.cipherSuite = suite;
  if (command.dtls) result.withConnectionId = clients.filter((client) => client.dtls?.connectionId !== undefined).length;
  await Promise.all(clients.map(closeClient));
  return result;
}

/** The DtlsClient options for a PSK or for ECDHE-ECDSA credentials. */
function credentialsOf(dtls: Psk | Ecdsa): Partial<DtlsClientOptions> {
  if ('identity' in dtls) return { identity: dtls.identity, key: Buffer.from(dtls.key, 'hex') };
  return { ecdsa: dtls.ecdsa, ...(dtls.serverCa ? { serverCa: dtls.serverCa } : {}), ...(dtls.serverPublicKey ? { serverPublicKey: Buffer.from(dtls.serverPublicKey, 'hex') } : {}) };
}

async function handshakes(command: Extract<Command, { cmd: 'handshakes' }>): Promise<RunResult> {
  const credentials = credentialsOf(command.dtls);
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  let slow = 0;
  let cipherSuite: string | undefined;
  const time = clock(command.seconds);
  await Promise.all(
    Array.from({ length: command.concurrent }, async () => {
      // to resume: each loop's session of one full handshake, offered by every client after it
      let saved: DtlsSession | undefined;
      if (command.resume) {
        const first = new DtlsClient({ host: HOST, port: command.port, ...credentials });
        await first.connect();
        saved = first.session;
        await closeSocket(first);
      }
      while (!time.over()) {
        // a fresh client each time: a new socket (source port), so a new session at the server
        const session = new DtlsClient({ host: HOST, port: command.port, ...credentials, ...(saved ? { session: saved } : {}) });
        const started = performance.now();
        try {
          await session.connect();
          if (command.resume && !session.resumed) throw new Error('the server did not resume the session: a full handshake');
          cipherSuite ??= session.cipherSuite;
          if (time.measuring()) ok++;
          if (performance.now() - started > 1000) slow++;
        } catch (error) {
          failed++;
          firstError ??= String(error);
        }
        await closeSocket(session);
      }
    }),
  );
  return { ...time.result(ok, failed, firstError), slow, ...(cipherSuite ? { cipherSuite } : {}) };
}

function run(command: Command): Promise<RunResult> {
  switch (command.cmd) {
    case 'echo':
      return echo(command);
    case 'coap':
      return coap(command);
    case 'handshakes':
      return handshakes(command);
  }
}

process.on('message', (command: Command) => {
  run(command).then(
    (result) => report({ type: 'done', result }),
    (error: unknown) => report({ type: 'failed', error: String((error as Error)?.stack ?? error) }),
  );
});
// When the parent disconnects, this process should end by itself (every socket and timer closed);
// if something was left open, it ends anyway after 2 s, with a code the parent reports.
process.once('disconnect', () => setTimeout(() => process.exit(3), 2000).unref());
report({ type: 'ready' });
