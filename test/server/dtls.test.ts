/**
 * The LwM2M server over DTLS with PSK, against libcoap's DTLS clients (OpenSSL and GnuTLS builds,
 * Debian libcoap3-bin): each completes a handshake over each cipher suite and registers; a wrong
 * key, an unknown identity and an identity bound to another endpoint register nothing; plain CoAP
 * is refused where the policy says so.
 */
import assert from 'node:assert/strict';
import { LwM2MServer, type PskCredential } from '../../lib';
import type { CipherSuiteName } from '../../lib/transport/dtls/constants';
import { COAPS_CLIENTS, coapsRequest, responseCode } from '../helpers/coaps-client';

const SUITES: CipherSuiteName[] = ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS_PSK_WITH_AES_128_GCM_SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'];
const CREDENTIALS: PskCredential[] = COAPS_CLIENTS.map((client) => ({ identity: `${client}-id`, key: Buffer.from(`${client}-secret`), endpoint: `dev-${client}` }));
const OBJECTS = '</1/0>,</3/0>,</3303/0>';

describe('LwM2M server over DTLS (PSK) with libcoap clients', function () {
  this.timeout(60_000);
  const servers: LwM2MServer[] = [];
  const logs: string[] = [];

  async function start(options: { cipherSuites?: CipherSuiteName[]; requireSecurity?: boolean } = {}): Promise<{ server: LwM2MServer; coaps: string; coap: string }> {
    const server = new LwM2MServer({
      port: 0,
      address: '127.0.0.1',
      requireSecurity: options.requireSecurity,
      dtls: { port: 0, credentials: CREDENTIALS, cipherSuites: options.cipherSuites, timing: { initialTimeout: 300 } },
      logger: (_level, message) => logs.push(message),
    });
    servers.push(server);
    await server.listen();
    return { server, coaps: `coaps://127.0.0.1:${server.secureAddress()!.port}`, coap: `coap://127.0.0.1:${server.address().port}` };
  }

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
    logs.length = 0;
  });

  for (const suite of SUITES) {
    it(`each libcoap client registers over ${suite} and gets 2.01`, async () => {
      const { server, coaps } = await start({ cipherSuites: [suite] });
      for (const [index, client] of COAPS_CLIENTS.entries()) {
        const { identity, key, endpoint } = CREDENTIALS[index]!;
        const registered = new Promise((resolve) => server.once('register', resolve));
        const output = await coapsRequest(client, `${coaps}/rd?ep=${endpoint}&lt=60&lwm2m=1.1`, { identity, key: key.toString(), method: 'post', payload: OBJECTS });
        assert.equal(responseCode(output), '2.01', `${client} over ${suite}:\n${output}`);
        await registered;
        const registration = server.registration(endpoint);
        assert.equal(registration?.identity, identity);
        assert.ok(registration?.objects.some((object) => object.objectId === 3303));
      }
      assert.equal(server.registrations().length, 2);
    });
  }

  it('a wrong key fails the handshake with bad_record_mac and registers nothing', async () => {
    const { server, coaps } = await start();
    for (const [index, client] of COAPS_CLIENTS.entries()) {
      const { identity, endpoint } = CREDENTIALS[index]!;
      const output = await coapsRequest(client, `${coaps}/rd?ep=${endpoint}&lt=60`, { identity, key: 'not-the-key', method: 'post', payload: OBJECTS, wait: 3 });
      assert.equal(responseCode(output), undefined, output);
      assert.match(output, /bad record mac/i, `${client} reports the alert`);
    }
    assert.equal(server.registrations().length, 0);
    assert.ok(logs.some((line) => /does not authenticate: wrong key/.test(line)), logs.join('\n'));
  });

  it('an unknown identity fails the handshake with unknown_psk_identity', async () => {
    const { server, coaps } = await start();
    for (const client of COAPS_CLIENTS) {
      const output = await coapsRequest(client, `${coaps}/rd?ep=stranger&lt=60`, { identity: 'stranger', key: 'whatever', method: 'post', payload: OBJECTS, wait: 3 });
      assert.equal(responseCode(output), undefined, output);
      assert.match(output, /unknown.psk.identity|Alert '115'/i, `${client} reports the alert:\n${output}`);
    }
    assert.equal(server.registrations().length, 0);
  });

  it('an identity may register only as its own endpoint (4.03 otherwise), and a bound endpoint not over plain CoAP', async () => {
    const { server, coaps, coap } = await start();
    const { identity, key } = CREDENTIALS[0]!;
    let output = await coapsRequest('coap-client-openssl', `${coaps}/rd?ep=${CREDENTIALS[1]!.endpoint}&lt=60`, { identity, key: key.toString(), method: 'post', payload: OBJECTS });
    assert.equal(responseCode(output), '4.03', output);
    output = await coapsRequest('coap-client-gnutls', `${coap}/rd?ep=${CREDENTIALS[0]!.endpoint}&lt=60`, { identity, key: key.toString(), method: 'post', payload: OBJECTS });
    assert.equal(responseCode(output), '4.03', output);
    output = await coapsRequest('coap-client-gnutls', `${coap}/rd?ep=unbound&lt=60`, { identity, key: key.toString(), method: 'post', payload: OBJECTS });
    assert.equal(responseCode(output), '2.01', 'an endpoint without a PSK may still use plain CoAP');
    assert.deepEqual(server.registrations().map((registration) => [registration.endpoint, registration.identity]), [['unbound', undefined]]);
  });

  it('with requireSecurity every plain CoAP registration gets 4.03', async () => {
    const { server, coap } = await start({ requireSecurity: true });
    const output = await coapsRequest('coap-client-openssl', `${coap}/rd?ep=plain&lt=60`, { identity: 'x', key: 'y', method: 'post', payload: OBJECTS });
    assert.equal(responseCode(output), '4.03', output);
    assert.equal(server.registrations().length, 0);
  });
});
