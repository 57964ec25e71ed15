/**
 * LwM2M Security Modes 2 (Certificate) and 1 (Raw Public Key) end to end: LwM2MClient with its
 * certificate or raw key in the Security object (/0) registers with LwM2MServer over ECDHE-ECDSA;
 * the endpoint is bound to the certificate's CN or to the key's table entry, so another endpoint
 * is refused with 4.03 and nothing is registered; an unknown key or a server the device does not
 * recognise registers nothing; a PSK identity equal to a certificate's CN cannot touch that
 * device's registration.
 */
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { CoapEndpoint, LwM2MClient, LwM2MServer, type HandshakeFailedEvent, type LwM2MServerOptions } from '../../lib';
import { DtlsClient } from '../../lib/transport/dtls/client';
import type { DtlsServer } from '../../lib/transport/dtls/server';
import { FAST_TIMING } from '../helpers/fake-server';
import { testPki, type TestPki } from '../helpers/pki';
import { until } from '../helpers/wait';

const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };
const OBJECTS = { 3303: { 0: { 5700: 21.5, 5701: 'Cel', 5750: 'room' } } };

describe('LwM2M over DTLS with certificates and raw public keys', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let server: LwM2MServer;
  const devices: LwM2MClient[] = [];
  const failures: HandshakeFailedEvent[] = [];
  const retries: string[] = [];

  before(function () {
    this.timeout(60_000);
    pki = testPki();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop().catch(() => undefined)));
    await server?.close();
    failures.length = 0;
    retries.length = 0;
  });

  async function startServer(dtls: Partial<NonNullable<LwM2MServerOptions['dtls']>>): Promise<string> {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, dtls: { port: 0, address: '127.0.0.1', timing: DTLS_TIMING, ...dtls } });
    server.on('handshakeFailed', (failure: HandshakeFailedEvent) => failures.push(failure));
    await server.listen();
    return `coaps://127.0.0.1:${server.secureAddress()!.port}`;
  }

  function device(endpoint: string, security: Pick<ConstructorParameters<typeof LwM2MClient>[0], 'server' | 'certificate' | 'rawPublicKey' | 'psk'>): LwM2MClient {
    const client = new LwM2MClient({
      endpoint,
      ...security,
      dtls: { timing: DTLS_TIMING },
      timing: FAST_TIMING,
      retry: { initialDelay: 100, maxDelay: 400 },
      requestTimeout: 1500,
      lifetime: 30,
      objects: OBJECTS,
    });
    client.on('error', () => undefined);
    client.on('retry', ({ error }: { error: Error }) => retries.push(error.message));
    devices.push(client);
    return client;
  }

  const certificateServer = () => startServer({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca });
  const CN = 'urn:imei:000000000000001';

  it('mode 2: a device registers as the CN of its certificate; the registration says so, and the server manages it', async () => {
    const uri = await certificateServer();
    const client = device(CN, { server: uri, certificate: { certificate: pki.client.cert, key: pki.client.key, server: pki.ca } });
    await client.start();
    const registration = server.registration(CN);
    assert.equal(registration?.identity, CN);
    assert.equal(registration?.authentication, 'certificate');
    assert.equal(await server.read(CN, '/3303/0/5700'), 21.5);
    await server.write(CN, '/3303/0/5750', 'cellar');
    assert.equal(client.get('/3303/0/5750'), 'cellar');
    // the Security object holds the certificate mode: mode 2, our certificate, the server's (CA) certificate, our key
    assert.equal(client.get('/0/0/2'), 2);
    assert.deepEqual(client.get('/0/0/3'), new X509Certificate(pki.client.cert).raw);
    assert.deepEqual(client.get('/0/0/4'), new X509Certificate(pki.ca).raw);
    assert.ok(Buffer.isBuffer(client.get('/0/0/5')) && (client.get('/0/0/5') as Buffer).length > 0);
  });

  it('mode 2: a device that was given the server certificate itself (not its CA) pins its key and registers', async () => {
    const uri = await certificateServer();
    const client = device(CN, { server: uri, certificate: { certificate: pki.client.cert, key: pki.client.key, server: pki.server.cert } });
    await client.start();
    assert.equal(server.registration(CN)?.authentication, 'certificate');
  });

  it('mode 2: while a device is registered with its certificate, its endpoint may not register over plain CoAP', async () => {
    const uri = await certificateServer();
    const client = device(CN, { server: uri, certificate: { certificate: pki.client.cert, key: pki.client.key, server: pki.ca } });
    await client.start();
    const location = client.location;
    const impostor = device(CN, { server: `coap://127.0.0.1:${server.address().port}` });
    void impostor.start().catch(() => undefined);
    await until(() => retries.length > 0, 'the refused plain Register');
    assert.match(retries[0]!, /4\.03/);
    assert.equal(server.registration(CN)?.authentication, 'certificate');
    assert.equal(client.location, location);
  });

  it('mode 2: a certificate of another CN may not register as this endpoint (4.03), nothing is registered', async () => {
    const uri = await certificateServer();
    const client = device(CN, { server: uri, certificate: { certificate: pki.client2.cert, key: pki.client2.key, server: pki.ca } });
    void client.start().catch(() => undefined);
    await until(() => retries.length > 0, 'the refused Register');
    assert.match(retries[0]!, /4\.03/);
    assert.equal(server.registrations().length, 0);
  });

  it('mode 2: a device whose certificate is of another CA is refused in the handshake (unknown_ca), nothing is registered', async () => {
    const uri = await certificateServer();
    const client = device('foreign-device', { server: uri, certificate: { certificate: pki.otherCa.cert, key: pki.otherCa.key, server: pki.ca } });
    void client.start().catch(() => undefined);
    await until(() => failures.length > 0, 'the failed handshake');
    assert.equal(failures[0]!.alert, 'unknown_ca');
    assert.equal(server.registrations().length, 0);
  });

  it('mode 2: a device that pinned another server key refuses the server; nothing is registered', async () => {
    const uri = await certificateServer();
    // the device believes the server is the one holding client2's certificate
    const client = device(CN, { server: uri, certificate: { certificate: pki.client.cert, key: pki.client.key, server: pki.client2.cert } });
    void client.start().catch(() => undefined);
    await until(() => retries.length > 0 || failures.length > 0, 'the refused handshake');
    assert.equal(server.registrations().length, 0);
    assert.equal(client.registered, false);
  });

  const rawKeyServer = (endpoint = 'rpk-device') =>
    startServer({ ecdsa: { key: pki.rawServer.key }, rawPublicKeys: [{ endpoint, publicKey: createPublicKey(pki.rawClient.key).export({ type: 'spki', format: 'pem' }).toString() }] });
  const serverPublicKey = () => createPublicKey(pki.rawServer.key).export({ type: 'spki', format: 'pem' }).toString();

  it('mode 1: a device registers as the endpoint its raw public key is listed under', async () => {
    const uri = await rawKeyServer();
    const client = device('rpk-device', { server: uri, rawPublicKey: { key: pki.rawClient.key, server: serverPublicKey() } });
    await client.start();
    const registration = server.registration('rpk-device');
    assert.equal(registration?.identity, 'rpk-device');
    assert.equal(registration?.authentication, 'rawPublicKey');
    assert.equal(await server.read('rpk-device', '/3303/0/5700'), 21.5);
    assert.equal(client.get('/0/0/2'), 1);
    assert.deepEqual(client.get('/0/0/3'), pki.rawClient.spki);
    assert.deepEqual(client.get('/0/0/4'), pki.rawServer.spki);
    assert.deepEqual(server.rawPublicKeys().map((key) => key.endpoint), ['rpk-device']);
  });

  it('mode 1: a listed key may not register as another endpoint (4.03), and its endpoint not over plain CoAP', async () => {
    const uri = await rawKeyServer();
    const client = device('someone-else', { server: uri, rawPublicKey: { key: pki.rawClient.key, server: serverPublicKey() } });
    void client.start().catch(() => undefined);
    await until(() => retries.length > 0, 'the refused Register');
    assert.match(retries[0]!, /4\.03/);
    const plain = device('rpk-device', { server: `coap://127.0.0.1:${server.address().port}` });
    void plain.start().catch(() => undefined);
    await until(() => retries.length > 1, 'the refused plain Register');
    assert.match(retries[1]!, /4\.03/);
    assert.equal(server.registrations().length, 0);
  });

  it('mode 1: an unknown raw public key is refused in the handshake, nothing is registered', async () => {
    const uri = await rawKeyServer();
    // client2's certificate key, never listed
    const client = device('rpk-device', { server: uri, rawPublicKey: { key: pki.client2.key, server: serverPublicKey() } });
    void client.start().catch(() => undefined);
    await until(() => failures.length > 0, 'the failed handshake');
    assert.match(failures[0]!.alert ?? '', /access_denied|certificate_unknown/);
    assert.equal(server.registrations().length, 0);
  });

  it('setRawPublicKeys ends the sessions of keys it drops; the device is not let back in', async () => {
    const uri = await rawKeyServer();
    const client = device('rpk-device', { server: uri, rawPublicKey: { key: pki.rawClient.key, server: serverPublicKey() } });
    await client.start();
    const dtls = (server as unknown as { dtls: DtlsServer }).dtls;
    assert.equal(dtls.counts.sessions, 1);
    server.setRawPublicKeys([]);
    assert.equal(dtls.counts.sessions, 0);
    // the device's next Update needs a new handshake, and its key is no longer listed
    void client.update().catch(() => undefined);
    await until(() => failures.length > 0, 'the refused handshake');
    assert.match(failures[0]!.alert ?? '', /access_denied|certificate_unknown/);
    assert.equal(dtls.counts.sessions, 0);
  });

  it("a PSK identity equal to a certificate's CN cannot Update that device's registration", async () => {
    const uri = await startServer({ ecdsa: { key: pki.server.key, chain: pki.server.cert }, clientCa: pki.ca, credentials: [{ identity: CN, key: Buffer.from('psk-of-another'), endpoint: 'psk-device' }] });
    const client = device(CN, { server: uri, certificate: { certificate: pki.client.cert, key: pki.client.key, server: pki.ca } });
    await client.start();
    const location = client.location!;
    const port = server.secureAddress()!.port;
    const dtls = new DtlsClient({ host: '127.0.0.1', port, identity: CN, key: Buffer.from('psk-of-another'), timing: DTLS_TIMING });
    const endpoint = new CoapEndpoint({ socket: dtls, timing: FAST_TIMING });
    try {
      const response = await endpoint.request({ address: '127.0.0.1', port }, { method: 'POST', path: location.split('/').filter(Boolean), query: ['lt=99'] });
      assert.equal(response.code, '4.03');
      assert.equal(server.registration(CN)?.lifetime, 30);
    } finally {
      await endpoint.close();
      await new Promise<void>((resolve) => dtls.close(() => resolve()));
    }
  });
});
