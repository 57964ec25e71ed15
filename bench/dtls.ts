/**
 * What DTLS costs, on loopback: the servers run in this process, the clients in a child process
 * (bench/dtls-clients), so that each side's CPU is its own. Measured in one run:
 *
 * - raw UDP echo: datagrams of about the size of a DTLS-protected CoAP request, `--window`
 *   outstanding, from `--clients` sockets to a bare echo socket here (the baseline);
 * - CoAP GET requests/s from `--clients` CoapEndpoints to a CoapEndpoint here, `--window` outstanding;
 * - the same over DTLS (PSK) sessions established beforehand, once per cipher suite;
 * - the same over CCM_8 sessions with connection IDs (RFC 9146: tls12_cid records), beside CCM_8 without;
 * - DTLS handshakes/s: `--concurrent` loops of a fresh DtlsClient connecting and closing; then
 *   the same with each client resuming its loop's session (the abbreviated handshake, RFC 5246 §7.3);
 *   then full ECDHE-ECDSA handshakes (P-256) with client certificates (LwM2M mode 2) and with raw
 *   public keys (mode 1), beside the PSK ones. The certificates are the test PKI's (openssl CLI).
 *
 * Each test runs half a second unmeasured first (the JIT, the heap growing), then `--seconds`.
 * "server CPU" is this process, "clients CPU" the child, each in % of one core over the measured
 * seconds; "others" the rest of the machine in that time (a busy machine skews a row). A row whose
 * clients CPU is near 100 % measured the clients as much as the server.
 *
 *   node dist/bench/dtls.js [--seconds 5] [--window 64] [--clients 16] [--concurrent 16]
 *
 * Never asserts a speed; exits non-zero only when something fails (a request or handshake fails,
 * a test gets no answers at all, the child process fails or does not end).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import os from 'node:os';
import * as path from 'node:path';
import { DtlsServer, type DtlsDrop, type SessionInfo } from '../lib/transport/dtls/server';
import type { CipherSuiteName } from '../lib/transport/dtls/constants';
import { CoapEndpoint } from '../lib/transport/endpoint';
import type { Command, Report, RunResult } from './dtls-clients';
import { sizeSocketBuffers } from '../lib/transport/datagram';
import { testPki } from '../test/helpers/pki';

interface Settings {
  seconds: number;
  window: number;
  clients: number;
  concurrent: number;
}

const USAGE = `usage: node dist/bench/dtls.js [options]
  --seconds <s>      duration of each test (default 5)
  --window <n>       requests (datagrams) outstanding in total (default 64)
  --clients <n>      client sockets / DTLS sessions sharing the window (default 16)
  --concurrent <n>   handshakes in parallel (default 16)`;

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { seconds: 5, window: 64, clients: 16, concurrent: 16 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const match = /^--(seconds|window|clients|concurrent)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const name = match[1] as keyof Settings;
    const value = Number(match[2] ?? argv[++i]);
    if (!(value > 0)) throw new Error(`--${name} needs a positive number\n${USAGE}`);
    settings[name] = name === 'seconds' ? value : Math.ceil(value);
  }
  return settings;
}

const SUITES: CipherSuiteName[] = ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS_PSK_WITH_AES_128_GCM_SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'];
const PSK = { identity: 'bench-device', key: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex') };
/** a GET of /3303/0/5700 is 24 bytes; in a CCM_8 record 53; the response 18 and 47 */
const ECHO_SIZE = 60;
const PAYLOAD = Buffer.from('21.5');

const shortName = (suite: string) => suite.replace('TLS_PSK_WITH_AES_128_', '');
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The result of a child's run, with this process's CPU and the whole machine's over the same measured span. */
type Measured = RunResult & { serverCpu: number; machineCpu: number };

/** CPU time of all cores, busy and in all, ms: other processes on the machine skew a run, this shows when. */
function machineTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  return { busy, total };
}

/** The parent's handle on the child process: one command at a time. */
class Clients {
  private constructor(private readonly child: ChildProcess) {}

  static start(): Promise<Clients> {
    const child = fork(path.join(__dirname, 'dtls-clients.js'), { stdio: 'inherit' });
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(new Clients(child)));
      child.once('exit', (code) => reject(new Error(`the client process exited with ${code}`)));
    });
  }

  /** `atEnd`: called when the measured span ends, while the clients are still connected */
  run(command: Command, atEnd?: () => void): Promise<Measured> {
    return new Promise((resolve, reject) => {
      let cpuStart = process.cpuUsage();
      let machineStart = machineTimes();
      let began = performance.now();
      let serverCpu = Number.NaN;
      let machineCpu = Number.NaN;
      const onMessage = (message: Report) => {
        if (message.type === 'begin') {
          cpuStart = process.cpuUsage();
          machineStart = machineTimes();
          began = performance.now();
        } else if (message.type === 'end') {
          const used = process.cpuUsage(cpuStart);
          serverCpu = ((used.user + used.system) / 1000 / (performance.now() - began)) * 100;
          const machine = machineTimes();
          machineCpu = ((machine.busy - machineStart.busy) / Math.max(1, machine.total - machineStart.total)) * os.cpus().length * 100;
          atEnd?.();
        } else if (message.type === 'done' || message.type === 'failed') {
          this.child.off('message', onMessage);
          this.child.off('exit', onExit);
          if (message.type === 'done') resolve({ ...message.result, serverCpu, machineCpu });
          else reject(new Error(`the client process failed in ${command.cmd}: ${message.error}`));
        }
      };
      const onExit = (code: number | null) => reject(new Error(`the client process exited with ${code} during ${command.cmd}`));
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(command);
    });
  }

  /** Disconnects; the child then ends by itself (code 0) when it closed everything it opened, else with 3 after 2 s. */
  stop(): Promise<number | null> {
    return new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.disconnect();
    });
  }
}

interface Row {
  name: string;
  result: Measured;
  /** the rate to compare with, and what it is */
  versus?: { rate: number; name: string };
  note?: string;
}

const rateOf = (result: RunResult) => result.ok / (result.elapsedMs / 1000);

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const { seconds, window, clients: sockets, concurrent } = settings;
  const failures: string[] = [];
  console.log(
    `bench/dtls: ${seconds} s per test, ${window} outstanding over ${sockets} clients, ${concurrent} concurrent handshakes; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`,
  );

  const pki = testPki(); // before any measurement: openssl takes a moment
  const clients = await Clients.start();
  const rows: Row[] = [];
  /** a test's functional check: some answers, no failures */
  const check = (name: string, result: RunResult) => {
    if (result.ok === 0) failures.push(`${name}: no answers at all`);
    if (result.failed > 0) failures.push(`${name}: ${result.failed} failed, the first: ${result.firstError}`);
  };

  // --- baseline: raw UDP echo between the two processes ---
  const echo = createSocket('udp4');
  echo.on('message', (message, peer) => echo.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  // the baseline's socket gets the buffer the server's sockets get, or a burst costs it datagrams ours would not lose
  sizeSocketBuffers(echo);
  const raw = await clients.run({ cmd: 'echo', port: echo.address().port, seconds, window, sockets, size: ECHO_SIZE });
  await new Promise<void>((resolve) => echo.close(resolve));
  rows.push({ name: 'raw UDP echo (baseline)', result: raw, note: `${ECHO_SIZE}-byte datagrams${raw.failed ? `, ${raw.failed} lost` : ''}` });
  check('raw UDP echo', { ...raw, failed: 0 }); // a datagram lost by the kernel is not a failure of ours
  const rawRate = rateOf(raw);

  // --- CoAP over plain UDP ---
  const serverErrors: unknown[] = [];
  const handler = () => ({ code: '2.05', contentFormat: 0, payload: PAYLOAD });
  const plain = new CoapEndpoint();
  plain.on('error', (error) => serverErrors.push(error));
  plain.setRequestHandler(handler);
  const plainPort = (await plain.listen(0, '127.0.0.1')).port;
  const coap = await clients.run({ cmd: 'coap', port: plainPort, seconds, window, clients: sockets });
  await plain.close();
  rows.push({ name: 'CoAP requests, plain UDP', result: coap, versus: { rate: rawRate, name: 'raw UDP' } });
  check('CoAP over plain UDP', coap);
  const coapRate = rateOf(coap);

  // --- CoAP over DTLS, one suite at a time (the server offers all three; each client only one) ---
  let sessions = 0;
  const handshakeFailures: string[] = [];
  // one server for all: PSK clients offer only PSK suites, so the ECDHE-ECDSA credentials change nothing for them
  const dtlsServer = new DtlsServer({
    psk: (identity) => (identity === PSK.identity ? PSK.key : undefined),
    ecdsa: { key: pki.server.key, chain: pki.server.cert },
    clientCa: pki.ca,
    clientRawPublicKey: (spki) => (spki.equals(pki.rawClient.spki) ? 'bench-raw-key' : undefined),
  });
  dtlsServer.on('error', (error) => serverErrors.push(error));
  let resumedSessions = 0;
  const identities = new Map<string, number>();
  dtlsServer.on('session', (session: SessionInfo) => {
    sessions++;
    if (session.resumed) resumedSessions++;
    const who = `${session.authentication} ${session.identity}`;
    identities.set(who, (identities.get(who) ?? 0) + 1);
  });
  dtlsServer.on('handshakeFailed', (failure: { reason: string }) => handshakeFailures.push(failure.reason));
  // a ClientHello beyond the handshake cap is a drop, not a failed handshake, but the bench counts it as one
  dtlsServer.on('drop', ({ reason }: DtlsDrop) => {
    if (/handshakes are in progress/.test(reason)) handshakeFailures.push(reason);
  });
  const dtlsPort = (await dtlsServer.listen(0, '127.0.0.1')).port;
  const secure = new CoapEndpoint({ socket: dtlsServer });
  secure.on('error', (error) => serverErrors.push(error));
  secure.setRequestHandler(handler);
  const dtls = { identity: PSK.identity, key: PSK.key.toString('hex') };
  let sessionsDuringCoap = 0;
  let ccm8Rate = Number.NaN;
  for (const suite of SUITES) {
    const result = await clients.run({ cmd: 'coap', port: dtlsPort, seconds, window, clients: sockets, dtls: { ...dtls, suite } }, () => {
      sessionsDuringCoap = Math.max(sessionsDuringCoap, dtlsServer.counts.sessions);
    });
    if (result.cipherSuite !== suite) failures.push(`CoAP over DTLS: ${result.cipherSuite} negotiated, not ${suite}`);
    rows.push({ name: `CoAP requests over DTLS (${shortName(result.cipherSuite ?? suite)})`, result, versus: { rate: coapRate, name: 'plain CoAP' } });
    check(`CoAP over DTLS (${shortName(suite)})`, result);
    if (suite === 'TLS_PSK_WITH_AES_128_CCM_8') ccm8Rate = rateOf(result);
  }
  // connection IDs: every record carries the server's ID (found by it, not by address) and an inner type
  const withCid = await clients.run({ cmd: 'coap', port: dtlsPort, seconds, window, clients: sockets, dtls: { ...dtls, suite: 'TLS_PSK_WITH_AES_128_CCM_8', connectionId: true } });
  if (withCid.withConnectionId !== sockets) failures.push(`CoAP over DTLS with connection IDs: ${withCid.withConnectionId ?? 0} of ${sockets} sessions negotiated one`);
  rows.push({ name: 'CoAP requests over DTLS with connection IDs (CCM_8)', result: withCid, versus: { rate: ccm8Rate, name: 'CCM_8 without' }, note: "the clients' records in tls12_cid (they ask for no ID back)" });
  check('CoAP over DTLS with connection IDs', withCid);
  await pause(100); // the clients' close_notify arrive
  const sessionsAfterCoap = dtlsServer.counts.sessions;

  // --- handshakes/s: a fresh client each time, connect() then close() ---
  const sessionsBefore = sessions;
  const handshakes = await clients.run({ cmd: 'handshakes', port: dtlsPort, seconds, concurrent, dtls });
  await pause(200); // the last close_notify arrive
  const countsAfter = dtlsServer.counts;
  rows.push({
    name: `DTLS handshakes (${concurrent} concurrent)`,
    result: handshakes,
    note: `${shortName(handshakes.cipherSuite ?? '?')}; the server saw ${sessions - sessionsBefore} sessions (warm-up included), counts afterwards ${JSON.stringify(countsAfter)}`,
  });
  check('DTLS handshakes', handshakes);

  // --- resumed handshakes/s: the same loops, each client offering the session of its loop's first ---
  const resumedBefore = sessions;
  const resumed = await clients.run({ cmd: 'handshakes', port: dtlsPort, seconds, concurrent, dtls, resume: true });
  await pause(200);
  rows.push({
    name: `DTLS handshakes resumed (${concurrent} concurrent)`,
    result: resumed,
    versus: { rate: rateOf(handshakes), name: 'full handshakes' },
    note: `${shortName(resumed.cipherSuite ?? '?')}; the server saw ${sessions - resumedBefore} sessions, ${resumedSessions} of them resumed (warm-up included)`,
  });
  check('DTLS resumed handshakes', resumed);

  // --- full ECDHE-ECDSA handshakes/s: a client certificate (mode 2), then a raw public key (mode 1) ---
  const ecdsaModes = [
    { name: 'certificates', authentication: 'certificate', identity: 'urn:imei:000000000000001', dtls: { ecdsa: { key: pki.client.key, chain: pki.client.cert }, serverCa: pki.ca } },
    { name: 'raw public keys', authentication: 'rawPublicKey', identity: 'bench-raw-key', dtls: { ecdsa: { key: pki.rawClient.key }, serverPublicKey: pki.server.spki.toString('hex') } },
  ];
  for (const mode of ecdsaModes) {
    const before = identities.get(`${mode.authentication} ${mode.identity}`) ?? 0;
    const result = await clients.run({ cmd: 'handshakes', port: dtlsPort, seconds, concurrent, dtls: mode.dtls });
    await pause(200);
    const seen = (identities.get(`${mode.authentication} ${mode.identity}`) ?? 0) - before;
    if (seen === 0) failures.push(`ECDHE-ECDSA handshakes with ${mode.name}: no session authenticated as ${mode.authentication} ${mode.identity}`);
    rows.push({
      name: `ECDHE-ECDSA handshakes, ${mode.name} (${concurrent} concurrent)`,
      result,
      versus: { rate: rateOf(handshakes), name: 'PSK handshakes' },
      note: `${(result.cipherSuite ?? '?').replace('TLS_ECDHE_ECDSA_WITH_AES_128_', 'ECDHE_ECDSA ')}, P-256; the server saw ${seen} sessions as ${mode.authentication} ${mode.identity} (warm-up included)`,
    });
    check(`ECDHE-ECDSA handshakes with ${mode.name}`, result);
  }

  await secure.close();
  await new Promise<void>((resolve) => dtlsServer.close(resolve));
  const childExit = await clients.stop();
  if (childExit !== 0) failures.push(`the client process ended with ${childExit}${childExit === 3 ? ': something was still open 2 s after the last test' : ''}`);

  // --- report ---
  const table = rows.map((row) => {
    const rate = rateOf(row.result);
    return [
      row.name,
      `${Math.round(rate).toLocaleString('en-US')}/s`,
      row.versus ? `(${(rate / row.versus.rate).toFixed(2)}× ${row.versus.name})` : '',
      `server CPU ${row.result.serverCpu.toFixed(0)} %, clients CPU ${row.result.cpu.toFixed(0)} %, others ${Math.max(0, row.result.machineCpu - row.result.serverCpu - row.result.cpu).toFixed(0)} %`,
      [row.note, row.result.slow ? `${row.result.slow} took over 1 s (retransmitted)` : ''].filter(Boolean).join('; '),
    ];
  });
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  for (const line of table) console.log(line.map((cell, column) => (column === 1 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd());
  console.log(`(CPU in % of one core over the measured seconds, of ${os.cpus().length} cores; "others": the rest of the machine, which skews a row when high)`);
  const clientBound = rows.filter((row) => row.result.cpu >= 90).map((row) => row.name);
  if (clientBound.length > 0) console.log(`(clients CPU ≥ 90 %, so bounded by the client process as much as by the server: ${clientBound.join('; ')})`);
  console.log(`DTLS sessions at the server: ${sessionsDuringCoap} during the CoAP tests, ${sessionsAfterCoap} after their clients closed; handshake failures at the server: ${handshakeFailures.length}${handshakeFailures.length ? ` (the first: ${handshakeFailures[0]})` : ''}`);

  if (handshakeFailures.length > 0) failures.push(`the DTLS server reported ${handshakeFailures.length} failed handshakes, the first: ${handshakeFailures[0]}`);
  if (serverErrors.length > 0) failures.push(`the servers reported ${serverErrors.length} errors, the first: ${String(serverErrors[0])}`);
  for (const failure of failures) console.log(`FAILED: ${failure}`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
