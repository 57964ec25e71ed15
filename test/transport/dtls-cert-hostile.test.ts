/**
 * Clients a certificate-checking DtlsServer must refuse, each with the right alert (the one our
 * DtlsClient reports in its DtlsHandshakeError, and the server in `handshakeFailed`), and with no
 * session or handshake left behind: expired, not yet valid, self-signed, from another CA, without
 * a CN, an unknown raw key; through a relay that rewrites the client's messages: a tampered
 * signature, garbage DER, a P-384 key, a malformed Certificate message, no certificate, a wrong
 * CertificateVerify, an ECDH point off the curve. A few hundred refused handshakes leave the heap flat.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { DtlsClient, DtlsHandshakeError, type DtlsClientOptions } from '../../lib/transport/dtls/client';
import { HandshakeType } from '../../lib/transport/dtls/constants';
import { DtlsServer, type DtlsHandshakeFailure } from '../../lib/transport/dtls/server';
import { heapAfterGc } from '../helpers/heap';
import { certificateBody, firstCertificate, tamperingRelay } from '../helpers/dtls-tamper';
import { testPki, type TestPki } from '../helpers/pki';

const FAST = { initialTimeout: 300, maxTimeout: 1000, maxRetransmissions: 3 };

describe('DTLS ECDHE-ECDSA: hostile and broken client certificates', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let server: DtlsServer;
  let port: number;
  const failures: DtlsHandshakeFailure[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async function () {
    pki = testPki();
    server = new DtlsServer({
      ecdsa: { key: pki.server.key, chain: pki.server.cert },
      clientCa: pki.ca,
      clientRawPublicKey: (spki) => (spki.equals(pki.rawClient.spki) ? 'raw-device' : undefined),
      timing: FAST,
    });
    server.on('handshakeFailed', (failure: DtlsHandshakeFailure) => failures.push(failure));
    server.on('session', () => assert.fail('no hostile handshake may give a session'));
    ({ port } = await server.listen(0, '127.0.0.1'));
  });

  after(() => new Promise<void>((resolve) => server.close(resolve)));

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** Runs a handshake that must fail; returns the client's error and the server's report. */
  async function refused(options: Partial<DtlsClientOptions>, via = port): Promise<{ error: DtlsHandshakeError; failure: DtlsHandshakeFailure }> {
    const before = failures.length;
    const client = new DtlsClient({ host: '127.0.0.1', port: via, timing: FAST, serverCa: pki.ca, ...options });
    client.on('handshakeFailed', () => undefined);
    const error = await client.connect().then(
      () => assert.fail('the handshake should fail'),
      (error: unknown) => error,
    );
    await new Promise<void>((resolve) => client.close(resolve));
    assert.ok(error instanceof DtlsHandshakeError, `a DtlsHandshakeError, not ${String(error)}`);
    assert.equal(failures.length, before + 1, 'the server reported one failed handshake');
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 }, 'the refused handshake left nothing behind');
    return { error, failure: failures[failures.length - 1]! };
  }

  function certificate(issued: { key: string; cert: string }): Partial<DtlsClientOptions> {
    return { ecdsa: { key: issued.key, chain: issued.cert } };
  }

  const cases: Array<[string, () => Partial<DtlsClientOptions>, string, string | undefined]> = [
    ['an expired certificate', () => certificate(pki.expired), 'certificate_expired', 'expired-device'],
    ['a certificate not yet valid', () => certificate(pki.notYetValid), 'certificate_expired', 'future-device'],
    ['a self-signed certificate', () => certificate(pki.selfSigned), 'unknown_ca', 'self-signed-device'],
    ['a certificate of another CA', () => certificate(pki.otherCa), 'unknown_ca', 'foreign-device'],
    ['a certificate without a CN', () => certificate(pki.noCn), 'bad_certificate', undefined],
    ['an unknown raw public key (access_denied)', () => ({ ecdsa: { key: pki.client2.key }, serverPublicKey: pki.server.spki }), 'access_denied', undefined],
  ];
  for (const [what, options, alert, identity] of cases) {
    it(`refuses ${what} with ${alert}`, async () => {
      const { error, failure } = await refused(options());
      assert.equal(error.alert, alert);
      assert.equal(error.alertSentBy, 'server');
      assert.equal(failure.alert, alert);
      assert.equal(failure.identity, identity);
    });
  }

  /** A handshake of a good client whose `type` message the relay rewrites; returns the alert both sides name. */
  async function tampered(type: number, change: (body: Buffer) => Buffer, options: Partial<DtlsClientOptions> = certificate(pki.client)): Promise<string | undefined> {
    const relay = await tamperingRelay(port, type, change);
    cleanups.push(() => new Promise<void>((resolve) => relay.close(resolve)));
    const { error, failure } = await refused(options, relay.address().port);
    assert.equal(error.alert, failure.alert, 'the client got the alert the server sent');
    return failure.alert;
  }

  it('refuses a certificate whose signature was tampered with: bad_certificate', async () => {
    const alert = await tampered(HandshakeType.CERTIFICATE, (body) => {
      const { end } = firstCertificate(body);
      body[end - 1] ^= 0x01; // the last byte of the signature value
      return body;
    });
    assert.equal(alert, 'bad_certificate');
  });

  it('refuses garbage DER: bad_certificate', async () => {
    const alert = await tampered(HandshakeType.CERTIFICATE, (body) => {
      const { start, end } = firstCertificate(body);
      body.fill(0xa5, start, end);
      return body;
    });
    assert.equal(alert, 'bad_certificate');
  });

  it('refuses a certificate with a P-384 key: unsupported_certificate', async () => {
    const p384 = new X509Certificate(pki.p384.cert).raw;
    assert.equal(await tampered(HandshakeType.CERTIFICATE, () => certificateBody([p384])), 'unsupported_certificate');
  });

  it('refuses a malformed Certificate message: decode_error', async () => {
    assert.equal(await tampered(HandshakeType.CERTIFICATE, () => Buffer.from([0, 0, 10, 0, 0, 3, 1, 2, 3])), 'decode_error');
  });

  it('refuses a client that sends no certificate: handshake_failure', async () => {
    assert.equal(await tampered(HandshakeType.CERTIFICATE, () => certificateBody([])), 'handshake_failure');
  });

  it('refuses a CertificateVerify with a wrong signature: decrypt_error', async () => {
    const alert = await tampered(HandshakeType.CERTIFICATE_VERIFY, (body) => {
      body[body.length - 1] ^= 0x01;
      return body;
    });
    assert.equal(alert, 'decrypt_error');
  });

  it('refuses an ECDH point that is not on the curve: illegal_parameter', async () => {
    const alert = await tampered(HandshakeType.CLIENT_KEY_EXCHANGE, (body) => {
      body[body.length - 1] ^= 0x01; // y changed: (x, y) is off P-256
      return body;
    });
    assert.equal(alert, 'illegal_parameter');
  });

  it('a few hundred refused certificate handshakes leave no state and a flat heap', async function () {
    this.timeout(240_000);
    const bad = [pki.expired, pki.selfSigned, pki.otherCa];
    const round = async (count: number) => {
      for (let i = 0; i < count; i += 10) {
        await Promise.all(
          Array.from({ length: 10 }, async (_, j) => {
            const client = new DtlsClient({ host: '127.0.0.1', port, timing: FAST, serverCa: pki.ca, ...certificate(bad[(i + j) % bad.length]!) });
            client.on('handshakeFailed', () => undefined);
            await client.connect().then(
              () => assert.fail('the handshake should fail'),
              () => undefined,
            );
            await new Promise<void>((resolve) => client.close(resolve));
          }),
        );
      }
    };
    await round(50); // warm up: the JIT, the heap growing
    const before = failures.length;
    const heapBefore = heapAfterGc();
    await round(300);
    const growth = heapAfterGc() - heapBefore;
    assert.equal(failures.length - before, 300);
    assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 });
    assert.ok(growth < 8 * 1024 * 1024, `heap grew by ${growth} bytes`);
  });
});
