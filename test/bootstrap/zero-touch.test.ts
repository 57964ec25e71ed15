/**
 * Zero-touch provisioning end to end on loopback: an LwM2MClient that knows only its bootstrap
 * server is given an account by LwM2MBootstrapServer and registers at LwM2MServer, for each LwM2M
 * version, NoSec and PSK (keys generated), by sequence and by Bootstrap-Pack; then key renewal
 * through the Bootstrap-Request Trigger, and the fall-back to bootstrap after failed registrations.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  DtlsClient,
  LwM2MBootstrapServer,
  LwM2MClient,
  LwM2MServer,
  type BootstrapConfig,
  type BootstrapFailedEvent,
  type BootstrapFinishedEvent,
  type LwM2MClientOptions,
  type Registration,
} from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';
import { freeUdpPort } from '../helpers/ports';

describe('zero-touch provisioning: LwM2MClient ↔ LwM2MBootstrapServer ↔ LwM2MServer', function () {
  this.timeout(60_000);
  let lwm2m: LwM2MServer;
  let bootstrap: LwM2MBootstrapServer;
  const devices: LwM2MClient[] = [];
  const bootstrapKey = Buffer.from('b0075742'.repeat(4), 'hex');

  async function start(config: (server: LwM2MServer) => BootstrapConfig, bootstrapDtls = false): Promise<void> {
    lwm2m = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, dtls: { port: 0, address: '127.0.0.1' } });
    await lwm2m.listen();
    bootstrap = new LwM2MBootstrapServer({
      port: 0,
      address: '127.0.0.1',
      timing: FAST_TIMING,
      requestTimeout: 3000,
      configs: { '*': config(lwm2m) },
      dtls: bootstrapDtls ? { port: 0, address: '127.0.0.1', credentials: [{ identity: 'bs-secure-1', key: bootstrapKey, endpoint: 'secure-1' }] } : undefined,
    });
    await bootstrap.listen();
  }

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop({ deregister: false })));
    await bootstrap?.close();
    await lwm2m?.close();
  });

  const device = (endpoint: string, options: Partial<LwM2MClientOptions> = {}): LwM2MClient => {
    const client = new LwM2MClient({
      endpoint,
      bootstrap: `coap://127.0.0.1:${bootstrap.address().port}`,
      timing: FAST_TIMING,
      requestTimeout: 2000,
      retry: { initialDelay: 100, maxDelay: 500 },
      ...options,
    } as LwM2MClientOptions);
    client.on('error', () => undefined);
    devices.push(client);
    return client;
  };

  const registered = (endpoint: string): Promise<Registration> =>
    new Promise((resolve) => {
      const existing = lwm2m.registration(endpoint);
      if (existing) return resolve(existing);
      const listener = (registration: Registration) => {
        if (registration.endpoint !== endpoint) return;
        lwm2m.off('register', listener);
        resolve(registration);
      };
      lwm2m.on('register', listener);
    });

  for (const version of ['1.0', '1.1', '1.2'] as const) {
    it(`a ${version} client with only a bootstrap URI: NoSec account, then registered over plain CoAP`, async () => {
      await start((server) => ({ servers: [{ server, security: 'nosec', lifetime: 90 }] }));
      const finished = once(bootstrap, 'bootstrapFinished');
      const client = device(`plain-${version}`, { version });
      await client.start();
      const [done] = (await finished) as [BootstrapFinishedEvent];
      assert.equal(done.endpoint, `plain-${version}`);
      const registration = await registered(`plain-${version}`);
      assert.equal(registration.version, version);
      assert.equal(registration.lifetime, 90);
      assert.equal(registration.identity, undefined);
      assert.equal(client.registered, true);
    });

    it(`a ${version} client: a generated PSK, then registered over DTLS with it`, async () => {
      await start((server) => ({ servers: [{ server, security: 'psk' }] }));
      const client = device(`secure-${version}`, { version });
      await client.start();
      const registration = await registered(`secure-${version}`);
      assert.equal(registration.identity, `secure-${version}`);
      assert.equal(lwm2m.credentials().length, 1);
      // the Security object stays out of the server's reach
      await assert.rejects(lwm2m.read(`secure-${version}`, '/0/1'), /4\.0[134]/);
    });
  }

  it('a 1.2 client by Bootstrap-Pack-Request registers over DTLS', async () => {
    await start((server) => ({ servers: [{ server, security: 'psk' }] }));
    const finished = once(bootstrap, 'bootstrapFinished');
    const client = device('pack-1', { version: '1.2', bootstrapPack: true });
    await client.start();
    assert.equal(((await finished) as [BootstrapFinishedEvent])[0].via, 'pack');
    assert.equal((await registered('pack-1')).identity, 'pack-1');
    // the pack's /0/0 did not overwrite the device's bootstrap account (also /0/0): it can bootstrap again
    const again = once(bootstrap, 'bootstrapFinished');
    const reregistered = new Promise<Registration>((resolve) => lwm2m.once('register', resolve));
    await lwm2m.execute('pack-1', '/1/0/9');
    assert.equal(((await again) as [BootstrapFinishedEvent])[0].via, 'pack');
    assert.equal((await reregistered).identity, 'pack-1');
  });

  it('bootstraps over DTLS with its bootstrap PSK', async () => {
    await start((server) => ({ servers: [{ server, security: 'psk' }] }), true);
    const requested = once(bootstrap, 'bootstrapRequest');
    const client = device('secure-1', {
      bootstrap: `coaps://127.0.0.1:${bootstrap.secureAddress()!.port}`,
      bootstrapPsk: { identity: 'bs-secure-1', key: bootstrapKey },
    });
    await client.start();
    assert.equal(((await requested) as [{ identity?: string }])[0].identity, 'bs-secure-1');
    assert.equal((await registered('secure-1')).identity, 'secure-1');
  });

  it('renews the key when the server executes the Bootstrap-Request Trigger (/1/0/9); the old key is refused', async () => {
    await start((server) => ({ servers: [{ server, security: 'psk' }] }));
    const client = device('renew-1');
    await client.start();
    await registered('renew-1');
    const oldKey = lwm2m.credentials()[0]!.key;

    const finished = once(bootstrap, 'bootstrapFinished');
    const reregistered = new Promise<Registration>((resolve) => lwm2m.once('register', resolve));
    await lwm2m.execute('renew-1', '/1/0/9');
    await finished;
    const again = await reregistered;
    assert.equal(again.endpoint, 'renew-1');
    assert.equal(again.identity, 'renew-1');
    const newKey = lwm2m.credentials()[0]!.key;
    assert.notDeepEqual(newKey, oldKey, 'a new key was issued');
    assert.equal(await lwm2m.read('renew-1', '/3/0/0'), 'node-red-lwm2m', 'the device answers over its new session');

    const stale = new DtlsClient({ host: '127.0.0.1', port: lwm2m.secureAddress()!.port, identity: 'renew-1', key: oldKey, timing: { initialTimeout: 200, maxRetransmissions: 2 } });
    stale.on('error', () => undefined);
    try {
      await assert.rejects(stale.connect(), /bad_record_mac/);
    } finally {
      await new Promise<void>((resolve) => stale.close(() => resolve()));
    }
  });

  it('falls back to bootstrap after failed registrations at a server that does not answer', async () => {
    await start((server) => ({ servers: [{ server, security: 'nosec' }] }));
    const silent = await freeUdpPort();
    const client = device('fallback-1', { server: `coap://127.0.0.1:${silent}`, bootstrapAfterFailures: 2, requestTimeout: 500 });
    const bootstrapping = once(client, 'bootstrapping');
    await client.start();
    assert.deepEqual(((await bootstrapping) as [{ reason: string }])[0], { reason: 'registration failed' });
    assert.equal((await registered('fallback-1')).endpoint, 'fallback-1');
  });

  it('an endpoint the bootstrap server has no configuration for: the device keeps trying, both sides say why', async () => {
    await start((server) => ({ servers: [{ server, security: 'nosec' }] }));
    bootstrap.setConfig('*', undefined);
    const serverSide = once(bootstrap, 'bootstrapFailed');
    const client = device('unknown-1');
    const deviceSide = once(client, 'bootstrapFailed');
    void client.start().catch(() => undefined);
    assert.match(((await serverSide) as [BootstrapFailedEvent])[0].reason, /no bootstrap configuration for the endpoint unknown-1/);
    assert.match(((await deviceSide) as [{ reason: string }])[0].reason, /4\.00/);
    assert.equal(lwm2m.registration('unknown-1'), undefined);
    // configured now: the next attempt succeeds
    bootstrap.setConfig('unknown-1', { servers: [{ server: lwm2m, security: 'nosec' }] });
    assert.equal((await registered('unknown-1')).endpoint, 'unknown-1');
  });
});
