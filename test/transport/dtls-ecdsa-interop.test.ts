/**
 * DtlsServer with ECDHE-ECDSA against command-line TLS clients over real UDP:
 * - `openssl s_client -dtls1_2` (OpenSSL 3.0) presenting a client certificate: the handshake
 *   completes over both suites, the certificate's CN is the session's identity, and data flows
 *   both ways; its reconnects resume the session, which keeps the identity; a client without a
 *   certificate, or with one of another CA, is refused with an alert s_client reports; s_client trusting another CA refuses our server. (OpenSSL 3.0 has no RFC 7250
 *   raw public keys: s_client cannot be a mode 1 peer.)
 * - `gnutls-cli --udp` (GnuTLS 3.7, Debian gnutls-bin) with a certificate and with a raw public key
 *   (RFC 7250 certificate types for both sides), over both suites; an unlisted raw key is refused.
 */
import assert from 'node:assert/strict';
import { ContentType, HandshakeType } from '../../lib/transport/dtls/constants';
import { parseHandshakeFragments } from '../../lib/transport/dtls/handshake';
import { parseRecords } from '../../lib/transport/dtls/record';
import { DtlsServer, type DtlsHandshakeFailure, type DtlsServerOptions, type SessionInfo } from '../../lib/transport/dtls/server';
import { testPki, type TestPki } from '../helpers/pki';
import { udpRelay } from '../helpers/relay';
import { createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gnutlsCli, sClient } from '../helpers/tls-cli';
import { until } from '../helpers/wait';

const CN = 'urn:imei:000000000000001';

interface Sizes {
  largest: number;
  certificateFragments: number;
}
const SUITES = [
  { openssl: 'ECDHE-ECDSA-AES128-CCM8', gnutls: 'AES-128-CCM-8', ours: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8' },
  { openssl: 'ECDHE-ECDSA-AES128-GCM-SHA256', gnutls: 'AES-128-GCM', ours: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256' },
] as const;

describe('DTLS server with ECDHE-ECDSA and command-line TLS clients', function () {
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

  /** (Re)starts the server, with `options` beside the credentials every test uses. */
  async function start(options: Partial<DtlsServerOptions> = {}): Promise<void> {
    if (server) await new Promise<void>((resolve) => server!.close(resolve));
    const started = new DtlsServer({
      ecdsa: { key: pki.server.key, chain: pki.server.cert },
      clientCa: pki.ca,
      clientRawPublicKey: (spki) => (spki.equals(pki.rawClient.spki) ? 'rpk-device' : undefined),
      timing: { initialTimeout: 300 },
      ...options,
    });
    server = started;
    ({ port } = await started.listen(0, '127.0.0.1'));
    started.on('session', (session: SessionInfo) => sessions.push(session));
    started.on('handshakeFailed', (failure: DtlsHandshakeFailure) => failures.push(failure));
    // an echo that names who it heard: what s_client prints back shows the data went both ways
    started.on('message', (data: Buffer, peer: { address: string; port: number; identity: string }) => {
      received.push({ text: data.toString().trim(), identity: peer.identity });
      started.send(Buffer.from(`echo to ${peer.identity}: ${data.toString().trim()}\n`), peer.port, peer.address);
    });
  }

  beforeEach(() => start());

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
    it(`s_client completes a handshake over ${suite.openssl}: the CN is the identity, and data flows both ways`, async () => {
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

  it('s_client -reconnect resumes the session: each resumed session keeps the CN and the certificate authentication', async () => {
    const output = await sClient(port, ['after the reconnects'], {
      credentials: [...withCertificate(pki.client.certFile, pki.client.keyFile, pki.caFile), '-reconnect'],
      cipher: SUITES[0].openssl,
      after: (_index, output) => until(() => /echo to /.test(output()), 'the echo at s_client'),
    });
    assert.match(output, /Reused, TLSv1\.2, Cipher is ECDHE-ECDSA-AES128-CCM8/, output);
    // one full handshake, then s_client's five reconnects, each offering the first session
    assert.deepEqual(
      sessions.map((session) => [session.resumed, session.identity, session.authentication]),
      [[false, CN, 'certificate'], ...Array(5).fill([true, CN, 'certificate'])],
    );
    assert.deepEqual(received, [{ text: 'after the reconnects', identity: CN }]);
  });

  it('refuses s_client without a certificate with handshake_failure', async () => {
    const output = await sClient(port, ['never delivered'], { credentials: ['-CAfile', pki.caFile], cipher: SUITES[0].openssl });
    assert.match(output, /alert handshake failure/i, output);
    await until(() => failures.length > 0, 'handshakeFailed');
    assert.equal(failures[0]!.alert, 'handshake_failure');
    assert.match(failures[0]!.reason, /sent no certificate/);
    assert.deepEqual(sessions, []);
    assert.deepEqual(received, []);
  });

  it("refuses s_client's certificate of another CA with unknown_ca", async () => {
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

  /** A relay in front of the server that watches the epoch 0 handshake: the largest datagram each way, and the Certificate fragments each way. */
  async function watchedPort(): Promise<{ port: number; seen: { client: Sizes; server: Sizes }; close: () => void }> {
    const seen = { client: { largest: 0, certificateFragments: 0 }, server: { largest: 0, certificateFragments: 0 } };
    const watch = (sizes: Sizes, datagram: Buffer) => {
      sizes.largest = Math.max(sizes.largest, datagram.length);
      for (const record of parseRecords(datagram)) {
        if (record.type !== ContentType.HANDSHAKE || record.epoch !== 0) continue;
        sizes.certificateFragments += parseHandshakeFragments(record.fragment).filter((fragment) => fragment.type === HandshakeType.CERTIFICATE).length;
      }
    };
    const relay = await udpRelay(
      port,
      (datagram) => {
        watch(seen.client, datagram);
        return [datagram];
      },
      (datagram) => watch(seen.server, datagram),
    );
    return { port: relay.address().port, seen, close: () => relay.close() };
  }

  it('s_client -mtu 256 with leaf and intermediate: its Certificate comes in fragments, ours goes in fragments, the chain verifies', async () => {
    await start({ mtu: 256 });
    const watched = await watchedPort();
    try {
      const output = await sClient(watched.port, ['small datagrams'], {
        // -cert takes the first certificate of the file (the leaf), -cert_chain what goes with it
        credentials: ['-cert', pki.chained.certFile, '-cert_chain', pki.intermediateFile, '-key', pki.chained.keyFile, '-CAfile', pki.caFile, '-verify_return_error', '-mtu', '256'],
        cipher: SUITES[1].openssl,
        after: (_index, output) => until(() => /echo to /.test(output()), 'the echo at s_client'),
      });
      assert.match(output, /Verification: OK/, output);
      assert.match(output, /echo to urn:imei:000000000000003: small datagrams/, output);
      // leaf and intermediate are ~900 bytes; our certificate ~450 (a retransmitted flight counts again)
      assert.ok(watched.seen.client.largest <= 256 && watched.seen.client.certificateFragments >= 3, `from s_client: ${JSON.stringify(watched.seen.client)}`);
      assert.ok(watched.seen.server.largest <= 256 && watched.seen.server.certificateFragments >= 2, `from the server: ${JSON.stringify(watched.seen.server)}`);
      assert.deepEqual(
        sessions.map((session) => [session.identity, session.authentication]),
        [['urn:imei:000000000000003', 'certificate']],
      );
    } finally {
      watched.close();
    }
  });

  describe('gnutls-cli --udp', () => {
    /** DTLS 1.2 and one cipher; with `rawKeys`, a raw public key for both sides (RFC 7250) */
    const priority = (cipher: string, rawKeys = false) => `NORMAL:-VERS-ALL:+VERS-DTLS1.2:-CIPHER-ALL:+${cipher}${rawKeys ? ':-CTYPE-ALL:+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK' : ''}`;
    /** gnutls-cli's raw key arguments: the private key, and the public key in a file of its own */
    const rawKey = (name: string, keyFile: string): string[] => {
      const publicFile = path.join(pki.dir, `${name}.gnutls-pub.pem`);
      fs.writeFileSync(publicFile, createPublicKey(fs.readFileSync(keyFile, 'utf8')).export({ type: 'spki', format: 'pem' }).toString());
      // --insecure: gnutls-cli can check a raw server key only by trust on first use; our side is what is tested
      return ['--rawpkkeyfile', keyFile, '--rawpkfile', publicFile, '--insecure'];
    };
    const echoed = (_index: number, output: () => string) => until(() => /echo to /.test(output()), 'the echo at gnutls-cli');

    for (const suite of SUITES) {
      it(`with a certificate over ${suite.gnutls}: it trusts ours, its CN is the identity, data flows both ways`, async () => {
        const output = await gnutlsCli(port, ['hello from gnutls'], {
          credentials: ['--x509certfile', pki.client.certFile, '--x509keyfile', pki.client.keyFile, '--x509cafile', pki.caFile],
          priority: priority(suite.gnutls),
          after: echoed,
        });
        assert.match(output, /The certificate is trusted/, output);
        assert.match(output, new RegExp(`\\(DTLS1\\.2-X\\.509\\)-\\(ECDHE-SECP256R1\\)-\\(ECDSA-SHA256\\)-\\(${suite.gnutls}\\)`), output);
        assert.match(output, new RegExp(`echo to ${CN}: hello from gnutls`), output);
        assert.deepEqual(
          sessions.map((session) => [session.identity, session.cipherSuite, session.authentication]),
          [[CN, suite.ours, 'certificate']],
        );
        assert.deepEqual(received, [{ text: 'hello from gnutls', identity: CN }]);
      });

      it(`with a raw public key over ${suite.gnutls}: both sides send raw keys, the listed key's identity is the session's`, async () => {
        const output = await gnutlsCli(port, ['hello from a raw key'], { credentials: rawKey('raw-client', pki.rawClient.keyFile), priority: priority(suite.gnutls, true), after: echoed });
        assert.match(output, /Certificate type: Raw Public Key/, output);
        assert.match(output, new RegExp(`\\(DTLS1\\.2-Raw Public Key\\)-\\(ECDHE-SECP256R1\\)-\\(ECDSA-SHA256\\)-\\(${suite.gnutls}\\)`), output);
        assert.match(output, /echo to rpk-device: hello from a raw key/, output);
        assert.deepEqual(
          sessions.map((session) => [session.identity, session.cipherSuite, session.authentication]),
          [['rpk-device', suite.ours, 'rawPublicKey']],
        );
        assert.deepEqual(received, [{ text: 'hello from a raw key', identity: 'rpk-device' }]);
      });
    }

    it('an unlisted raw public key is refused with access_denied; no session', async () => {
      const output = await gnutlsCli(port, ['never delivered'], { credentials: rawKey('unlisted', pki.client2.keyFile), priority: priority(SUITES[0].gnutls, true) });
      await until(() => failures.length > 0, 'handshakeFailed');
      assert.equal(failures[0]!.alert, 'access_denied');
      assert.match(output, /Received alert \[49\]: Access was denied/, output);
      assert.deepEqual(sessions, []);
      assert.deepEqual(received, []);
    });
  });
});
