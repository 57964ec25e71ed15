/**
 * LwM2M Security Modes 2 (Certificate) and 1 (Raw Public Key) against libcoap's DTLS clients
 * (Debian libcoap3-bin 4.3.1: coap-client-openssl, coap-client-gnutls) over ECDHE-ECDSA: a client
 * registers as its certificate's CN, or as the endpoint its raw key is listed under; another
 * endpoint gets 4.03; a certificate of another CA, or an unlisted key, fails the handshake; a
 * client that trusts another CA refuses our server. The OpenSSL build has no raw public keys at
 * all, which is asserted too, so that a libcoap that gains them makes this file ask for a test.
 * One server serves both modes; a server certificate under an intermediate CA verifies; a client
 * certificate under one works when the client sends the intermediate (GnuTLS build) or the server
 * lists it (OpenSSL build: leaf only).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LwM2MServer, type HandshakeFailedEvent, type LwM2MServerOptions } from '../../lib';
import { COAPS_CLIENTS, coapsRequest, responseCode } from '../helpers/coaps-client';
import { testPki, type TestPki } from '../helpers/pki';
import { until } from '../helpers/wait';

const OBJECTS = '</1/0>,</3/0>,</3303/0>';
const CN = 'urn:imei:000000000000001';
const CN2 = 'urn:imei:000000000000002';
/** seconds coap-client waits at most: generous, a busy machine may be slow, and it exits as soon as it has its answer or an alert */
const WAIT = 15;

/** the private key and the public key in one PEM file: what coap-client-gnutls -M reads */
function rawKeyFile(pki: TestPki, name: string, keyPem: string): string {
  const file = path.join(pki.dir, `${name}.rpk.pem`);
  const publicPem = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
  fs.writeFileSync(file, keyPem + publicPem);
  return file;
}

describe('LwM2M server over ECDHE-ECDSA with libcoap clients', function () {
  this.timeout(120_000);
  let pki: TestPki;
  let server: LwM2MServer | undefined;
  const failures: HandshakeFailedEvent[] = [];
  const logs: string[] = [];

  before(function () {
    this.timeout(60_000);
    pki = testPki();
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
    failures.length = 0;
    logs.length = 0;
  });

  async function start(dtls: Partial<NonNullable<LwM2MServerOptions['dtls']>>): Promise<{ server: LwM2MServer; coaps: string }> {
    const started = new LwM2MServer({
      port: 0,
      address: '127.0.0.1',
      dtls: { port: 0, address: '127.0.0.1', timing: { initialTimeout: 300 }, ...dtls },
      logger: (_level, message) => logs.push(message),
    });
    server = started;
    started.on('handshakeFailed', (failure: HandshakeFailedEvent) => failures.push(failure));
    await started.listen();
    return { server: started, coaps: `coaps://127.0.0.1:${started.secureAddress()!.port}` };
  }

  describe('certificates (mode 2): -c cert -j key -C ca', () => {
    const certificateServer = () => start({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca });
    const certificate = () => ({ certFile: pki.client.certFile, keyFile: pki.client.keyFile, caFile: pki.caFile });

    for (const client of COAPS_CLIENTS) {
      it(`${client} registers as its certificate's CN`, async () => {
        const { server, coaps } = await certificateServer();
        const registered = new Promise((resolve) => server.once('register', resolve));
        const output = await coapsRequest(client, `${coaps}/rd?ep=${CN}&lt=60&b=U`, { certificate: certificate(), method: 'post', payload: OBJECTS, wait: WAIT });
        assert.equal(responseCode(output), '2.01', output);
        await registered;
        const registration = server.registration(CN);
        assert.equal(registration?.authentication, 'certificate');
        assert.equal(registration?.identity, CN);
        assert.equal(registration?.binding, 'U');
        assert.ok(registration?.objects.some((object) => object.objectId === 3303));
        // it checked our certificate against the CA it was given (libcoap prints the CN it saw)
        assert.match(output, /CN 'localhost' presented by server/, output);
        assert.deepEqual(failures, []);
      });

      it(`${client}: a certificate may not register as another endpoint (4.03), nothing is registered`, async () => {
        const { server, coaps } = await certificateServer();
        const output = await coapsRequest(client, `${coaps}/rd?ep=${CN2}&lt=60&b=U`, { certificate: certificate(), method: 'post', payload: OBJECTS, wait: WAIT });
        assert.equal(responseCode(output), '4.03', output);
        assert.deepEqual(server.registrations(), []);
        assert.deepEqual(failures, [], 'the handshake itself succeeded');
      });

      it(`${client}: a certificate of another CA fails the handshake (unknown_ca), nothing is registered`, async () => {
        const { server, coaps } = await certificateServer();
        const output = await coapsRequest(client, `${coaps}/rd?ep=foreign-device&lt=60&b=U`, {
          certificate: { certFile: pki.otherCa.certFile, keyFile: pki.otherCa.keyFile, caFile: pki.caFile },
          method: 'post',
          payload: OBJECTS,
          wait: WAIT,
        });
        assert.equal(responseCode(output), undefined, output);
        assert.match(output, /unknown ca|CA is unknown/i, `${client} reports the alert:\n${output}`);
        await until(() => failures.length > 0, 'handshakeFailed');
        assert.equal(failures[0]!.alert, 'unknown_ca');
        assert.equal(failures[0]!.identity, 'foreign-device');
        assert.deepEqual(server.registrations(), []);
      });

      it(`${client} trusting another CA refuses our server's certificate, nothing is registered`, async () => {
        const { server, coaps } = await certificateServer();
        const output = await coapsRequest(client, `${coaps}/rd?ep=${CN}&lt=60&b=U`, { certificate: { ...certificate(), caFile: pki.otherCaFile }, method: 'post', payload: OBJECTS, wait: WAIT });
        assert.equal(responseCode(output), undefined, output);
        assert.match(output, /certificate verify failed|CA is unknown/i, output);
        assert.deepEqual(server.registrations(), []);
      });
    }
  });

  describe('raw public keys (mode 1): -M key file', () => {
    const rawKeyServer = () =>
      start({ ecdsa: { key: pki.rawServer.key }, rawPublicKeys: [{ endpoint: 'rpk-device', publicKey: createPublicKey(pki.rawClient.key).export({ type: 'spki', format: 'pem' }).toString() }] });

    it('coap-client-gnutls registers as the endpoint its key is listed under', async () => {
      const { server, coaps } = await rawKeyServer();
      const registered = new Promise((resolve) => server.once('register', resolve));
      const output = await coapsRequest('coap-client-gnutls', `${coaps}/rd?ep=rpk-device&lt=60&b=U`, { rawPublicKeyFile: rawKeyFile(pki, 'raw-client', pki.rawClient.key), method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '2.01', output);
      await registered;
      const registration = server.registration('rpk-device');
      assert.equal(registration?.authentication, 'rawPublicKey');
      assert.equal(registration?.identity, 'rpk-device');
      assert.deepEqual(failures, []);
    });

    it('coap-client-gnutls: a listed key may not register as another endpoint (4.03), nothing is registered', async () => {
      const { server, coaps } = await rawKeyServer();
      const output = await coapsRequest('coap-client-gnutls', `${coaps}/rd?ep=someone-else&lt=60&b=U`, { rawPublicKeyFile: rawKeyFile(pki, 'raw-client', pki.rawClient.key), method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '4.03', output);
      assert.deepEqual(server.registrations(), []);
    });

    it('coap-client-gnutls: an unlisted key fails the handshake, nothing is registered', async () => {
      const { server, coaps } = await rawKeyServer();
      const output = await coapsRequest('coap-client-gnutls', `${coaps}/rd?ep=rpk-device&lt=60&b=U`, { rawPublicKeyFile: rawKeyFile(pki, 'unlisted', pki.client2.key), method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), undefined, output);
      await until(() => failures.length > 0, 'handshakeFailed');
      assert.match(failures[0]!.alert ?? '', /access_denied|certificate_unknown/);
      assert.deepEqual(server.registrations(), []);
    });

    it('coap-client-openssl 4.3.1 has no raw public keys: it says so, and refuses -M before sending anything', async () => {
      const help = await new Promise<string>((resolve) => execFile('coap-client-openssl', ['-h'], { env: { ...process.env, LC_ALL: 'C' } }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`)));
      assert.match(help, /TLS Library: OpenSSL/, help);
      assert.match(help, /PSK, PKI, PKCS11, and no RPK support/, help);
      const { server, coaps } = await rawKeyServer();
      const sessions: unknown[] = [];
      (server as unknown as { dtls: NodeJS.EventEmitter }).dtls.on('session', (session) => sessions.push(session));
      const output = await coapsRequest('coap-client-openssl', `${coaps}/rd?ep=rpk-device&lt=60&b=U`, { rawPublicKeyFile: rawKeyFile(pki, 'raw-client', pki.rawClient.key), method: 'post', payload: OBJECTS, wait: WAIT });
      assert.match(output, /RPK Support not available in OpenSSL/, output);
      assert.equal(responseCode(output), undefined, output);
      assert.deepEqual(sessions, []);
      assert.deepEqual(failures, [], 'no handshake was even begun');
      assert.deepEqual(server.registrations(), []);
    });
  });

  describe('both modes on one server, and intermediate CAs', () => {
    const CHAINED_CN = 'urn:imei:000000000000003';
    const rawPublicKeys = () => [{ endpoint: 'rpk-device', publicKey: createPublicKey(pki.rawClient.key).export({ type: 'spki', format: 'pem' }).toString() }];

    it('serves certificate and raw-key devices side by side; coap-client-gnutls -M, which lists X.509 first for the server, gets our raw key', async () => {
      const { server, coaps } = await start({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca, rawPublicKeys: rawPublicKeys() });
      let output = await coapsRequest('coap-client-gnutls', `${coaps}/rd?ep=rpk-device&lt=60&b=U`, { rawPublicKeyFile: rawKeyFile(pki, 'raw-client', pki.rawClient.key), method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '2.01', output);
      assert.match(output, /CN 'RPK' presented by server/, output);
      output = await coapsRequest('coap-client-openssl', `${coaps}/rd?ep=${CN}&lt=60&b=U`, { certificate: { certFile: pki.client.certFile, keyFile: pki.client.keyFile, caFile: pki.caFile }, method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '2.01', output);
      output = await coapsRequest('coap-client-gnutls', `${coaps}/rd?ep=${CN2}&lt=60&b=U`, { certificate: { certFile: pki.client2.certFile, keyFile: pki.client2.keyFile, caFile: pki.caFile }, method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '2.01', output);
      assert.match(output, /CN 'localhost' presented by server/, output);
      assert.deepEqual(
        server
          .registrations()
          .map((registration) => [registration.endpoint, registration.authentication])
          .sort(),
        [
          ['rpk-device', 'rawPublicKey'],
          [CN, 'certificate'],
          [CN2, 'certificate'],
        ],
      );
      assert.deepEqual(failures, []);
    });

    for (const client of COAPS_CLIENTS) {
      it(`${client} verifies a server certificate under an intermediate CA (the server sends both) against the root alone`, async () => {
        // the chained test certificate serves as the server's: its subjectAltName names 127.0.0.1 too
        const { server, coaps } = await start({ ecdsa: { key: pki.chained.key, chain: pki.chained.cert }, clientCa: pki.ca });
        const output = await coapsRequest(client, `${coaps}/rd?ep=${CN}&lt=60&b=U`, { certificate: { certFile: pki.client.certFile, keyFile: pki.client.keyFile, caFile: pki.caFile }, method: 'post', payload: OBJECTS, wait: WAIT });
        assert.equal(responseCode(output), '2.01', output);
        // the OpenSSL build names each certificate of the chain it checked (libcoap prints the subjectAltName DNS name for a leaf)
        if (client === 'coap-client-openssl') assert.match(output, /CN 'Intermediate CA' presented by server \(CA\)/, output);
        assert.equal(server.registration(CN)?.authentication, 'certificate');
      });
    }

    it('coap-client-gnutls sends leaf and intermediate from its -c file: registers under the root CA alone', async () => {
      const { server, coaps } = await start({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca });
      const output = await coapsRequest('coap-client-gnutls', `${coaps}/rd?ep=${CHAINED_CN}&lt=60&b=U`, { certificate: { certFile: pki.chained.certFile, keyFile: pki.chained.keyFile, caFile: pki.caFile }, method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '2.01', output);
      assert.equal(server.registration(CHAINED_CN)?.authentication, 'certificate');
    });

    it('coap-client-openssl 4.3.1 sends the leaf only: unknown_ca under the root CA alone, registered once clientCa lists the intermediate', async () => {
      const certificate = { certFile: pki.chained.certFile, keyFile: pki.chained.keyFile, caFile: pki.caFile };
      let { server, coaps } = await start({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca });
      let output = await coapsRequest('coap-client-openssl', `${coaps}/rd?ep=${CHAINED_CN}&lt=60&b=U`, { certificate, method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), undefined, output);
      await until(() => failures.length > 0, 'handshakeFailed');
      assert.equal(failures[0]!.alert, 'unknown_ca');
      assert.deepEqual(server.registrations(), []);
      await server.close();
      ({ server, coaps } = await start({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca + pki.intermediate }));
      output = await coapsRequest('coap-client-openssl', `${coaps}/rd?ep=${CHAINED_CN}&lt=60&b=U`, { certificate, method: 'post', payload: OBJECTS, wait: WAIT });
      assert.equal(responseCode(output), '2.01', output);
      assert.equal(server.registration(CHAINED_CN)?.authentication, 'certificate');
    });
  });
});
