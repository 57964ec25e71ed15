/**
 * ECDHE-ECDSA between our DtlsClient and DtlsServer on 127.0.0.1 (LwM2M security modes 2 and 1):
 * certificates and raw public keys (RFC 7250) with both suites, application data both ways, the
 * identity and authentication each side reports, a chain through an intermediate CA, resumption
 * of a certificate session, a connection ID with one, PSK still working on a server with both,
 * and the options a client or server is refused with.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { DtlsClient, DtlsHandshakeError, type DtlsClientOptions } from '../../lib/transport/dtls/client';
import { CIPHER_SUITES, ContentType, DTLS_1_2, ExtensionType, HandshakeType, type CipherSuiteName } from '../../lib/transport/dtls/constants';
import { CertificateType, ecdheHelloExtensions, writeCertificateTypes } from '../../lib/transport/dtls/ecdhe';
import { parseHandshakeFragments, parseHelloVerifyRequest, parseServerHello, writeClientHello, writeHandshake } from '../../lib/transport/dtls/handshake';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { DtlsServer, type DtlsServerOptions, type SessionInfo } from '../../lib/transport/dtls/server';
import type { DatagramInfo } from '../../lib/transport/datagram';
import { testPki, type TestPki } from '../helpers/pki';
import { boundUdpSocket } from '../helpers/ports';

const QUICK = { initialTimeout: 300, maxTimeout: 2000, maxRetransmissions: 6 };
const SUITES: CipherSuiteName[] = ['TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'];
const PSK = Buffer.from('ecdsa-and-psk-secret');

describe('DTLS ECDHE-ECDSA: DtlsClient with DtlsServer', function () {
  this.timeout(30_000);
  let pki: TestPki;
  const cleanups: Array<() => Promise<void> | void> = [];

  before(function () {
    this.timeout(60_000);
    pki = testPki();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function startServer(options: Partial<DtlsServerOptions> = {}): Promise<{ server: DtlsServer; port: number; sessions: SessionInfo[]; messages: Array<{ data: string; info: DatagramInfo }> }> {
    const server = new DtlsServer({
      ecdsa: { key: pki.server.key, chain: pki.server.cert },
      clientCa: pki.ca,
      clientRawPublicKey: (spki) => (spki.equals(pki.rawClient.spki) ? 'raw-device' : undefined),
      timing: QUICK,
      ...options,
    });
    const sessions: SessionInfo[] = [];
    const messages: Array<{ data: string; info: DatagramInfo }> = [];
    server.on('session', (session: SessionInfo) => sessions.push(session));
    server.on('message', (data: Buffer, info: DatagramInfo) => {
      messages.push({ data: data.toString(), info });
      server.send(Buffer.from(`echo ${data.toString()}`), info.port, info.address);
    });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => new Promise<void>((resolve) => server.close(resolve)));
    return { server, port, sessions, messages };
  }

  function client(port: number, options: Partial<DtlsClientOptions>): DtlsClient {
    const dtls = new DtlsClient({ host: '127.0.0.1', port, timing: QUICK, ...options });
    dtls.on('handshakeFailed', () => undefined);
    cleanups.push(() => new Promise<void>((resolve) => dtls.close(resolve)));
    return dtls;
  }

  async function echo(dtls: DtlsClient, text: string): Promise<{ data: string; info: DatagramInfo }> {
    const answer = once(dtls, 'message') as Promise<[Buffer, DatagramInfo]>;
    dtls.send(Buffer.from(text));
    const [data, info] = await answer;
    return { data: data.toString(), info };
  }

  for (const suite of SUITES) {
    it(`${suite}, certificates: data both ways, the client's CN as identity`, async () => {
      const { server, port, sessions, messages } = await startServer();
      const dtls = client(port, { ecdsa: { key: pki.client.key, chain: pki.client.cert }, serverCa: pki.ca, serverName: 'localhost', cipherSuites: [suite] });
      await dtls.connect();
      assert.equal(dtls.cipherSuite, suite);
      assert.equal(dtls.serverAuthentication, 'certificate');
      const answer = await echo(dtls, 'hello');
      assert.equal(answer.data, 'echo hello');
      assert.equal(answer.info.authentication, 'certificate');
      assert.equal(messages[0]!.info.identity, 'urn:imei:000000000000001');
      assert.equal(messages[0]!.info.authentication, 'certificate');
      assert.equal(sessions.length, 1);
      assert.equal(sessions[0]!.cipherSuite, suite);
      assert.equal(sessions[0]!.authentication, 'certificate');
      assert.equal(sessions[0]!.extendedMasterSecret, true);
      assert.equal(server.counts.sessions, 1);
    });

    it(`${suite}, raw public keys both ways: data both ways, the identity clientRawPublicKey gives`, async () => {
      const { port, sessions, messages } = await startServer({ ecdsa: { key: pki.rawServer.key } });
      const dtls = client(port, { ecdsa: { key: pki.rawClient.key }, serverPublicKey: pki.rawServer.spki, cipherSuites: [suite] });
      await dtls.connect();
      assert.equal(dtls.serverAuthentication, 'rawPublicKey');
      assert.equal((await echo(dtls, 'raw')).data, 'echo raw');
      assert.equal(messages[0]!.info.identity, 'raw-device');
      assert.equal(messages[0]!.info.authentication, 'rawPublicKey');
      assert.equal(sessions[0]!.authentication, 'rawPublicKey');
      assert.equal(sessions[0]!.cipherSuite, suite);
    });
  }

  it('a raw-key client with a certificate server: the server key pinned, the client authenticated by its raw key', async () => {
    const { port, sessions } = await startServer();
    const dtls = client(port, { ecdsa: { key: pki.rawClient.key }, serverPublicKey: pki.server.spki });
    await dtls.connect();
    // the client lists a raw key first (it trusts no CA, only the key): the server, which has both, sends its raw key
    assert.equal(dtls.serverAuthentication, 'rawPublicKey');
    assert.equal((await echo(dtls, 'mixed')).data, 'echo mixed');
    assert.equal(sessions[0]!.authentication, 'rawPublicKey');
    assert.equal(sessions[0]!.identity, 'raw-device');
  });

  /** The certificate types a server with a chain answers a ClientHello listing `clientTypes` and `serverTypes` with. */
  async function chosenTypes(port: number, clientTypes: number[], serverTypes: number[]): Promise<{ client?: number; server?: number }> {
    // a socket of its own: the server's flight, sent again later, must not meet the next question
    const socket = await boundUdpSocket();
    cleanups.push(() => void socket.close());
    const random = randomBytes(32);
    const extensions: Array<[number, Buffer]> = [
      ...ecdheHelloExtensions(),
      [ExtensionType.CLIENT_CERTIFICATE_TYPE, writeCertificateTypes(clientTypes)],
      [ExtensionType.SERVER_CERTIFICATE_TYPE, writeCertificateTypes(serverTypes)],
    ];
    const hello = (cookie: Buffer, sequence: number) =>
      writeRecord(
        ContentType.HANDSHAKE,
        DTLS_1_2,
        0,
        sequence,
        writeHandshake(HandshakeType.CLIENT_HELLO, sequence, writeClientHello({ version: DTLS_1_2, random, sessionId: Buffer.alloc(0), cookie, cipherSuites: [CIPHER_SUITES.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8], extensions })),
      );
    const next = () => new Promise<Buffer>((resolve) => socket.once('message', resolve));
    let reply = next();
    socket.send(hello(Buffer.alloc(0), 0), port, '127.0.0.1');
    const cookie = parseHelloVerifyRequest(parseHandshakeFragments(parseRecords(await reply)[0]!.fragment)[0]!.body);
    reply = next();
    socket.send(hello(cookie, 1), port, '127.0.0.1');
    const messages = parseRecords(await reply).flatMap((record) => parseHandshakeFragments(record.fragment));
    const serverHello = parseServerHello(messages.find((message) => message.type === HandshakeType.SERVER_HELLO)!.body);
    return { client: serverHello.extensions.get(ExtensionType.CLIENT_CERTIFICATE_TYPE)?.[0], server: serverHello.extensions.get(ExtensionType.SERVER_CERTIFICATE_TYPE)?.[0] };
  }

  it('a client sending a raw key gets ours as a raw key when it lists that type, even after X.509 (as libcoap -M does)', async () => {
    const { port } = await startServer();
    const [X509, RAW] = [CertificateType.X509, CertificateType.RAW_PUBLIC_KEY];
    assert.deepEqual(await chosenTypes(port, [RAW], [X509, RAW]), { client: RAW, server: RAW });
    // otherwise the first type listed that we have: a certificate client keeps the order it gave
    assert.deepEqual(await chosenTypes(port, [X509], [X509, RAW]), { client: X509, server: X509 });
    assert.deepEqual(await chosenTypes(port, [X509], [RAW, X509]), { client: X509, server: RAW });
    assert.deepEqual(await chosenTypes(port, [RAW], [X509]), { client: RAW, server: X509 });
  });

  it('a client certificate under an intermediate CA the client sends along', async () => {
    const { sessions, port } = await startServer();
    const dtls = client(port, { ecdsa: { key: pki.chained.key, chain: pki.chained.cert }, serverCa: pki.ca });
    await dtls.connect();
    assert.equal((await echo(dtls, 'deep')).data, 'echo deep');
    assert.equal(sessions[0]!.identity, 'urn:imei:000000000000003');
  });

  it('resumes a certificate session: abbreviated handshake, same identity and authentication', async () => {
    const { port, sessions } = await startServer();
    const options = { ecdsa: { key: pki.client.key, chain: pki.client.cert }, serverCa: pki.ca };
    const first = client(port, options);
    await first.connect();
    const session = first.session;
    assert.ok(session, 'the full handshake gave a session to resume');
    await new Promise<void>((resolve) => first.close(resolve));
    const second = client(port, { ...options, session });
    await second.connect();
    assert.equal(second.resumed, true);
    assert.equal(second.serverAuthentication, 'certificate');
    assert.equal((await echo(second, 'again')).info.authentication, 'certificate');
    assert.equal(sessions.length, 2);
    assert.equal(sessions[1]!.resumed, true);
    assert.equal(sessions[1]!.identity, 'urn:imei:000000000000001');
    assert.equal(sessions[1]!.authentication, 'certificate');
  });

  it('a certificate session with a connection ID', async () => {
    const { port, sessions } = await startServer();
    const dtls = client(port, { ecdsa: { key: pki.client2.key, chain: pki.client2.cert }, serverCa: pki.ca, connectionId: true });
    await dtls.connect();
    assert.ok(dtls.connectionId, 'the server issued a connection ID');
    assert.equal(sessions[0]!.connectionId, dtls.connectionId);
    assert.equal((await echo(dtls, 'cid')).data, 'echo cid');
    assert.equal(sessions[0]!.identity, 'urn:imei:000000000000002');
  });

  it('a server with PSK and ECDHE-ECDSA: a PSK client still gets a PSK session, a certificate client its own', async () => {
    const { port, sessions, messages } = await startServer({ psk: (identity) => (identity === 'psk-device' ? PSK : undefined) });
    const pskClient = client(port, { identity: 'psk-device', key: PSK });
    await pskClient.connect();
    assert.equal(pskClient.cipherSuite, 'TLS_PSK_WITH_AES_128_CCM_8');
    assert.equal((await echo(pskClient, 'psk')).data, 'echo psk');
    const certClient = client(port, { ecdsa: { key: pki.client.key, chain: pki.client.cert }, serverCa: pki.ca });
    await certClient.connect();
    assert.equal((await echo(certClient, 'cert')).data, 'echo cert');
    assert.deepEqual(
      sessions.map((session) => [session.identity, session.authentication, session.cipherSuite]),
      [
        ['psk-device', 'psk', 'TLS_PSK_WITH_AES_128_CCM_8'],
        ['urn:imei:000000000000001', 'certificate', 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8'],
      ],
    );
    assert.equal(messages[0]!.info.authentication, 'psk');
  });

  it('a client whose server certificate does not name serverName fails with bad_certificate', async () => {
    const { port, server } = await startServer();
    const dtls = client(port, { ecdsa: { key: pki.client.key, chain: pki.client.cert }, serverCa: pki.ca, serverName: 'lwm2m.example.com' });
    const failed = once(server, 'handshakeFailed');
    const error = await dtls.connect().then(
      () => assert.fail('the handshake should fail'),
      (error: unknown) => error,
    );
    assert.ok(error instanceof DtlsHandshakeError);
    assert.equal(error.alert, 'bad_certificate');
    assert.equal(error.alertSentBy, 'client');
    const [failure] = (await failed) as [{ alert?: string }];
    assert.equal(failure.alert, 'bad_certificate');
    assert.equal(server.counts.sessions, 0);
  });

  it('a client pinning another server key fails with access_denied', async () => {
    const { port } = await startServer({ ecdsa: { key: pki.rawServer.key } });
    const dtls = client(port, { ecdsa: { key: pki.rawClient.key }, serverPublicKey: pki.rawClient.spki });
    const error = await dtls.connect().then(
      () => assert.fail('the handshake should fail'),
      (error: unknown) => error,
    );
    assert.ok(error instanceof DtlsHandshakeError);
    assert.equal(error.alert, 'access_denied');
  });

  it('a client trusting another CA fails with unknown_ca', async () => {
    const { port } = await startServer();
    const dtls = client(port, { ecdsa: { key: pki.client.key, chain: pki.client.cert }, serverCa: pki.otherCa.cert });
    const error = await dtls.connect().then(
      () => assert.fail('the handshake should fail'),
      (error: unknown) => error,
    );
    assert.ok(error instanceof DtlsHandshakeError);
    assert.equal(error.alert, 'unknown_ca');
  });

  it('refuses options that would trust anything or cannot work', () => {
    assert.throws(() => new DtlsClient({ host: '127.0.0.1', port: 1, ecdsa: { key: pki.client.key } }), TypeError);
    assert.throws(() => new DtlsClient({ host: '127.0.0.1', port: 1 }), TypeError);
    assert.throws(() => new DtlsClient({ host: '127.0.0.1', port: 1, ecdsa: { key: pki.p384.key }, serverCa: pki.ca }), TypeError);
    assert.throws(() => new DtlsClient({ host: '127.0.0.1', port: 1, ecdsa: { key: pki.client.key, chain: pki.client2.cert }, serverCa: pki.ca }), TypeError);
    assert.throws(() => new DtlsServer({ ecdsa: { key: pki.server.key, chain: pki.server.cert } }), TypeError);
    assert.throws(() => new DtlsServer({}), TypeError);
  });
});
