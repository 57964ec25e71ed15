/**
 * The LwM2M server over DTLS with a real mbedTLS client (Debian libmbedtls-dev, mbedTLS 2.28), the
 * DTLS stack of much device firmware: test/peers/mbedtls-coaps-client.c, compiled here with `cc`,
 * does a PSK handshake and sends a Register. It registers over each PSK suite with the extensions
 * mbedTLS offers, also when its ClientHello records say 0xfe00; a wrong key registers nothing; and
 * the server logs what it drops, and drops nothing from a client that succeeds.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Socket } from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LwM2MServer, type PskCredential } from '../../lib';
import { ContentType, DTLS_1_2, HandshakeType } from '../../lib/transport/dtls/constants';
import { writeHandshake } from '../../lib/transport/dtls/handshake';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { boundUdpSocket } from '../helpers/ports';
import { udpRelay } from '../helpers/relay';
import { until } from '../helpers/wait';

const SOURCE = path.resolve(__dirname, '../../../test/peers/mbedtls-coaps-client.c');
const KEY = Buffer.from('6d626564746c732d736563726574', 'hex');
const CREDENTIALS: PskCredential[] = [{ identity: 'mbedtls-id', key: KEY, endpoint: 'dev-mbedtls' }];
/** our suite names and mbedTLS's for the same suite */
const SUITES = [
  ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS-PSK-WITH-AES-128-CCM-8'],
  ['TLS_PSK_WITH_AES_128_GCM_SHA256', 'TLS-PSK-WITH-AES-128-GCM-SHA256'],
  ['TLS_PSK_WITH_AES_128_CBC_SHA256', 'TLS-PSK-WITH-AES-128-CBC-SHA256'],
] as const;

interface Run {
  code: number | null;
  output: string;
}

function exec(file: string, args: string[], timeout: number): Promise<Run & { error?: Error }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, output: `${stdout}${stderr}`, ...(error && typeof error.code !== 'number' ? { error } : {}) });
    });
  });
}

/** Compiles the client; without mbedTLS or a compiler the suite fails with what to install. */
async function compile(directory: string): Promise<string> {
  const binary = path.join(directory, 'mbedtls-coaps-client');
  const result = await exec('cc', ['-O1', '-o', binary, SOURCE, '-lmbedtls', '-lmbedx509', '-lmbedcrypto'], 120_000);
  if (result.code !== 0) {
    throw new Error(
      `could not compile the mbedTLS test peer (${result.error?.message ?? `cc exited with ${result.code}`}). ` +
        `Install mbedTLS and a C compiler: apt-get install libmbedtls-dev gcc libc6-dev\n${result.output}`,
    );
  }
  return binary;
}

/** A copy of the datagram whose ClientHello records carry `version` as their record version. */
function withClientHelloVersion(datagram: Buffer, version: number): Buffer {
  return Buffer.concat(
    parseRecords(datagram).map((record) => {
      const hello = record.type === ContentType.HANDSHAKE && record.epoch === 0 && record.fragment[0] === HandshakeType.CLIENT_HELLO;
      return writeRecord(record.type, hello ? version : record.version, record.epoch, record.sequence, record.fragment);
    }),
  );
}

describe('LwM2M server over DTLS (PSK) with an mbedTLS 2.28 client', function () {
  this.timeout(90_000);
  let directory: string;
  let client: string;
  const servers: LwM2MServer[] = [];
  const sockets: Socket[] = [];
  const logs: string[] = [];

  before(async () => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-mbedtls-'));
    client = await compile(directory);
  });

  after(() => {
    if (directory) fs.rmSync(directory, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await Promise.all(servers.splice(0).map((server) => server.close()));
    logs.length = 0;
  });

  async function start(cipherSuites?: Array<(typeof SUITES)[number][0]>): Promise<{ server: LwM2MServer; port: number }> {
    const server = new LwM2MServer({
      port: 0,
      address: '127.0.0.1',
      dtls: { port: 0, address: '127.0.0.1', credentials: CREDENTIALS, cipherSuites, timing: { initialTimeout: 500 } },
      logger: (_level, message) => logs.push(message),
    });
    servers.push(server);
    await server.listen();
    return { server, port: server.secureAddress()!.port };
  }

  /** Runs the mbedTLS client: a Register as dev-mbedtls, with the given key and options. */
  function register(port: number, options: string[] = [], key = KEY): Promise<Run> {
    const args = ['127.0.0.1', String(port), 'mbedtls-id', key.toString('hex'), '--ep', 'dev-mbedtls', '--lt', '60', '--timeout', '40', ...options];
    return exec(client, args, 60_000);
  }

  async function registersOver(server: LwM2MServer, port: number, suite: string, options: string[] = []): Promise<void> {
    const registered = new Promise((resolve) => server.once('register', resolve));
    const run = await register(port, ['--suite', suite, ...options]);
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, new RegExp(`^suite ${suite}$`, 'm'), run.output);
    assert.match(run.output, /^code 2\.01$/m, run.output);
    await registered;
    const registration = server.registration('dev-mbedtls');
    assert.equal(registration?.identity, 'mbedtls-id');
    assert.deepEqual(registration?.objects.map((object) => object.objectId).sort(), [1, 3]);
  }

  for (const [suite, name] of SUITES) {
    it(`registers over ${suite} (mbedTLS offering encrypt_then_mac and extended master secret): 2.01, bound to its identity, nothing dropped`, async () => {
      const { server, port } = await start([suite]);
      await registersOver(server, port, name);
      assert.deepEqual(logs, [], 'nothing logged: no drops, no failed handshakes');
    });
  }

  it('registers when mbedTLS also asks for truncated_hmac and max_fragment_length and offers no extended master secret (CBC): the server ignores what it does not do', async () => {
    const { server, port } = await start();
    await registersOver(server, port, 'TLS-PSK-WITH-AES-128-CBC-SHA256', ['--trunc-hmac', '--mfl', '512', '--no-ems']);
    assert.deepEqual(logs, []);
  });

  it('registers when the ClientHello records say 0xfe00 (as reported from mbedTLS firmware)', async () => {
    const { server, port } = await start();
    const relay = await udpRelay(port, (datagram) => [withClientHelloVersion(datagram, 0xfe00)]);
    sockets.push(relay);
    await registersOver(server, relay.address().port, 'TLS-PSK-WITH-AES-128-CCM-8');
    assert.deepEqual(logs, []);
  });

  it('a wrong key fails the handshake on both sides and registers nothing', async () => {
    const { server, port } = await start();
    const run = await register(port, [], Buffer.from('00112233445566778899', 'hex'));
    assert.equal(run.code, 2, run.output);
    assert.match(run.output, /^error -0x[0-9a-f]{4} handshake: /m, run.output);
    assert.doesNotMatch(run.output, /^code /m);
    assert.equal(server.registrations().length, 0);
    assert.ok(logs.some((line) => /DTLS handshake with 127\.0\.0\.1:\d+ failed: .*wrong key/.test(line)), logs.join('\n'));
  });

  it('logs a dropped datagram with its reason: a record version 0xfe00 on what is not a ClientHello', async () => {
    const { port } = await start();
    const socket = await boundUdpSocket();
    sockets.push(socket);
    const keyExchange = writeHandshake(HandshakeType.CLIENT_KEY_EXCHANGE, 1, Buffer.from('000a6d626564746c732d6964', 'hex'));
    socket.send(writeRecord(ContentType.HANDSHAKE, 0xfe00, 0, 1, keyExchange), port, '127.0.0.1');
    socket.send(writeRecord(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 7, Buffer.alloc(24)), port, '127.0.0.1');
    const from = `127.0.0.1:${socket.address().port}`;
    await until(() => logs.length >= 2, 'two log lines');
    assert.match(logs[0]!, new RegExp(`^DTLS: dropped a datagram from ${from}: record version 0xfe00 on a handshake record \\(ClientKeyExchange, epoch 0, sequence 1\\)`), logs.join('\n'));
    assert.match(logs[1]!, new RegExp(`^DTLS: dropped a datagram from ${from}: an application data record \\(epoch 1, sequence 7\\) without a DTLS session`), logs.join('\n'));
  });
});
