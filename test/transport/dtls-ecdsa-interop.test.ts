/**
 * DtlsServer with ECDHE-ECDSA against `openssl s_client -dtls1_2` (OpenSSL 3.0) presenting a client
 * certificate: the handshake completes over both suites, the certificate's CN is the session's
 * identity, and data flows both ways; a client without a certificate, or with one of another CA,
 * is refused with an alert s_client reports; s_client trusting another CA refuses our server.
 * (OpenSSL 3.0 has no RFC 7250 raw public keys: s_client cannot be a mode 1 peer.)
 */
import assert from 'node:assert/strict';
import { DtlsServer, type DtlsHandshakeFailure, type SessionInfo } from '../../lib/transport/dtls/server';
import { testPki, type TestPki } from '../helpers/pki';
import { sClient } from '../helpers/s-client';
import { until } from '../helpers/wait';

const CN = 'urn:imei:000000000000001';
const SUITES = [
  { openssl: 'ECDHE-ECDSA-AES128-CCM8', ours: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8' },
  { openssl: 'ECDHE-ECDSA-AES128-GCM-SHA256', ours: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256' },
] as const;

describe('DTLS server with certificates and openssl s_client', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let server: DtlsServer | undefined;
  let port: number;
  const received: Array<{ text: string; identity: string }> = [];
  const sessions: SessionInfo[] = [];
  const failures: DtlsHandshakeFailure[] = [];

  before(function () {
    this.timeout(60_000);
    pki = testPki();
  });

  beforeEach(async () => {
    const started = new DtlsServer({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca, timing: { initialTimeout: 300 } });
    server = started;
    ({ port } = await started.listen(0, '127.0.0.1'));
    started.on('session', (session: SessionInfo) => sessions.push(session));
    started.on('handshakeFailed', (failure: DtlsHandshakeFailure) => failures.push(failure));
    // an echo that names who it heard: what s_client prints back shows the data went both ways
    started.on('message', (data: Buffer, peer: { address: string; port: number; identity: string }) => {
      received.push({ text: data.toString().trim(), identity: peer.identity });
      started.send(Buffer.from(`echo to ${peer.identity}: ${data.toString().trim()}\n`), peer.port, peer.address);
    });
  });

  afterEach(async () => {
    if (server) await new Promise<void>((resolve) => server!.close(resolve));
    server = undefined;
    received.length = 0;
    sessions.length = 0;
    failures.length = 0;
  });

  /** s_client's arguments for a client certificate, verifying ours against `caFile` */
  const withCertificate = (certFile: string, keyFile: string, caFile: string) => ['-cert', certFile, '-key', keyFile, '-CAfile', caFile, '-verify_return_error'];

  for (const suite of SUITES) {
    it(`completes a handshake over ${suite.openssl}: the CN is the identity, and data flows both ways`, async () => {
      const output = await sClient(port, ['hello over ecdsa'], {
        credentials: withCertificate(pki.client.certFile, pki.client.keyFile, pki.caFile),
        cipher: suite.openssl,
        // the end of input only once the echo is back
        after: (_index, output) => until(() => /echo to /.test(output()), 'the echo at s_client'),
      });
      assert.match(output, new RegExp(`Cipher is ${suite.openssl}`), output);
      assert.match(output, /Verification: OK/, output);
      assert.match(output, new RegExp(`echo to ${CN}: hello over ecdsa`), output);
      assert.deepEqual(
        sessions.map((session) => [session.identity, session.cipherSuite, session.authentication, session.extendedMasterSecret]),
        [[CN, suite.ours, 'certificate', true]],
      );
      assert.deepEqual(received, [{ text: 'hello over ecdsa', identity: CN }]);
      assert.deepEqual(failures, []);
    });
  }

  it('refuses a client without a certificate with handshake_failure', async () => {
    const output = await sClient(port, ['never delivered'], { credentials: ['-CAfile', pki.caFile], cipher: SUITES[0].openssl });
    assert.match(output, /alert handshake failure/i, output);
    await until(() => failures.length > 0, 'handshakeFailed');
    assert.equal(failures[0]!.alert, 'handshake_failure');
    assert.match(failures[0]!.reason, /sent no certificate/);
    assert.deepEqual(sessions, []);
    assert.deepEqual(received, []);
  });

  it('refuses a client certificate of another CA with unknown_ca', async () => {
    const output = await sClient(port, ['never delivered'], { credentials: withCertificate(pki.otherCa.certFile, pki.otherCa.keyFile, pki.caFile), cipher: SUITES[1].openssl });
    assert.match(output, /alert unknown ca/i, output);
    await until(() => failures.length > 0, 'handshakeFailed');
    assert.equal(failures[0]!.alert, 'unknown_ca');
    assert.deepEqual(sessions, []);
    assert.deepEqual(received, []);
  });

  it('s_client trusting another CA refuses our certificate; no session', async () => {
    const output = await sClient(port, ['never delivered'], { credentials: withCertificate(pki.client.certFile, pki.client.keyFile, pki.otherCaFile), cipher: SUITES[0].openssl });
    assert.match(output, /certificate verify failed/i, output);
    await until(() => failures.length > 0, 'handshakeFailed');
    assert.equal(failures[0]!.alert, 'unknown_ca', 'the alert s_client sent');
    assert.deepEqual(sessions, []);
    assert.deepEqual(received, []);
  });
});
