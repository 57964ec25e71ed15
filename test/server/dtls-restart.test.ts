/**
 * LwM2MServer with a FileStore and `dtls.sessionSecret` across a restart on the same DTLS port: a
 * device's next Update after the restart goes over the DTLS session it had, without a handshake
 * (PSK, PSK with connection IDs, certificates). With another secret or a tampered file nothing is
 * restored, the server says why, and the device handshakes again and goes on. The store file holds
 * no key material in the clear. A RedisStore keeps each instance's sessions apart.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStore, LwM2MClient, LwM2MServer, MemoryStore, RedisStore, type LwM2MClientOptions, type LwM2MServerOptions, type PskCredential, type RegistrationStore } from '../../lib';
import { keyBlockLength } from '../../lib/transport/dtls/cipher';
import type { DtlsClient } from '../../lib/transport/dtls/client';
import { keyBlock } from '../../lib/transport/dtls/prf';
import { openDtlsState } from '../../lib/transport/dtls/connection-store';
import { sessionStoreKey } from '../../lib/transport/dtls/session-store';
import type { DtlsServer } from '../../lib/transport/dtls/server';
import { FAST_TIMING } from '../helpers/fake-server';
import { testPki } from '../helpers/pki';
import { freeUdpPort } from '../helpers/ports';
import { startRedis, type TestRedis } from '../helpers/redis';
import { until } from '../helpers/wait';

/** until() for a condition that must be awaited. */
async function untilAsync(condition: () => Promise<boolean>, what: string, timeout = 60_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
const CREDENTIALS: PskCredential[] = [{ identity: 'id-sensor', key: KEY, endpoint: 'sensor' }];
const DTLS_TIMING = { initialTimeout: 300, maxTimeout: 2000, maxRetransmissions: 6 };
const SECRET = 'a secret the operator keeps in the node credentials';
const CN = 'urn:imei:000000000000001';

describe('LwM2MServer: DTLS sessions across a restart (dtls.sessionSecret)', function () {
  this.timeout(90_000);
  let dir: string;
  let file: string;
  let dtlsPort: number;
  const servers: LwM2MServer[] = [];
  const devices: LwM2MClient[] = [];
  const errors: Error[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lwm2m-dtls-restart-'));
    file = path.join(dir, 'registrations.json');
    dtlsPort = await freeUdpPort();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop().catch(() => undefined)));
    await Promise.all(servers.splice(0).map((server) => server.close()));
    await fs.rm(dir, { recursive: true, force: true });
    errors.length = 0;
  });

  type Dtls = Partial<NonNullable<LwM2MServerOptions['dtls']>>;

  async function startServer(dtls: Dtls = {}, store: RegistrationStore = new FileStore(file, { delay: 10 })): Promise<{ server: LwM2MServer; handshakes: () => number }> {
    const server = new LwM2MServer({
      port: 0,
      address: '127.0.0.1',
      timing: FAST_TIMING,
      requestTimeout: 3000,
      store,
      dtls: { port: dtlsPort, address: '127.0.0.1', credentials: CREDENTIALS, timing: DTLS_TIMING, sessionSecret: SECRET, ...dtls },
    });
    server.on('error', (error: Error) => errors.push(error));
    servers.push(server);
    await server.listen();
    let handshakes = 0;
    (server as unknown as { dtls: DtlsServer }).dtls.on('session', () => handshakes++);
    return { server, handshakes: () => handshakes };
  }

  async function stop(server: LwM2MServer): Promise<void> {
    servers.splice(servers.indexOf(server), 1);
    await server.close();
  }

  /** A started device, and how many handshakes its DTLS client made. */
  async function startDevice(security: Partial<LwM2MClientOptions> = {}, endpoint = 'sensor'): Promise<{ device: LwM2MClient; handshakes: () => number }> {
    const device = new LwM2MClient({
      endpoint,
      server: `coaps://127.0.0.1:${dtlsPort}`,
      psk: { identity: 'id-sensor', key: KEY },
      timing: FAST_TIMING,
      retry: { initialDelay: 100, maxDelay: 400 },
      requestTimeout: 1500,
      lifetime: 30,
      objects: { 3303: { 0: { 5700: 21.5 } } },
      ...security,
      dtls: { timing: DTLS_TIMING, ...security.dtls },
    });
    device.on('error', () => undefined);
    devices.push(device);
    await device.start();
    const dtls = (device as unknown as { dtls: DtlsClient }).dtls;
    let handshakes = 1;
    dtls.on('connected', () => handshakes++);
    return { device, handshakes: () => handshakes };
  }

  function nextUpdate(server: LwM2MServer): Promise<unknown> {
    return new Promise((resolve) => server.once('update', resolve));
  }

  const cases: Array<[string, Dtls, () => Partial<LwM2MClientOptions>, string]> = [
    ['PSK', {}, () => ({}), 'sensor'],
    ['PSK with a connection ID', {}, () => ({ dtls: { connectionId: true } }), 'sensor'],
    [
      'a certificate (ECDHE-ECDSA)',
      { ecdsa: { key: testPki().server.key, chain: testPki().server.cert }, clientCa: testPki().ca, credentials: [] },
      () => ({ psk: undefined, certificate: { certificate: testPki().client.cert, key: testPki().client.key, server: testPki().ca } }),
      CN,
    ],
  ];
  for (const [what, dtls, security, endpoint] of cases) {
    it(`${what}: the device's next Update after the restart is accepted over its session, no new handshake`, async () => {
      const first = await startServer(dtls);
      const { device, handshakes } = await startDevice(security(), endpoint);
      assert.equal(first.server.registration(endpoint)?.lifetime, 30);
      if (what.includes('connection ID')) assert.ok((device as unknown as { dtls: DtlsClient }).dtls.connectionId, 'a connection ID was negotiated');
      await stop(first.server);

      const second = await startServer(dtls);
      assert.deepEqual((second.server as unknown as { dtls: DtlsServer }).dtls.counts, { sessions: 1, handshakes: 0 }, 'the session came back');
      const updated = nextUpdate(second.server);
      await device.update({ lifetime: 45 });
      await updated;
      assert.equal(second.server.registration(endpoint)?.lifetime, 45);
      assert.equal(handshakes(), 1, 'the device did not handshake again');
      assert.equal(second.handshakes(), 0, 'nor did the server see a handshake');
      // downlink over the restored session too
      assert.equal(await second.server.read(endpoint, '/3303/0/5700'), 21.5);
      assert.deepEqual(errors, []);

      // and once more: the state saved by the second server carries on to a third
      await stop(second.server);
      const third = await startServer(dtls);
      const again = nextUpdate(third.server);
      await device.update({ lifetime: 50 });
      await again;
      assert.equal(handshakes(), 1);
      assert.equal(third.handshakes(), 0);
    });
  }

  for (const damage of ['another secret', 'a tampered file'] as const) {
    it(`with ${damage} nothing is restored, the server warns, and the device handshakes again and goes on`, async () => {
      const first = await startServer();
      const { device, handshakes } = await startDevice();
      await stop(first.server);
      let dtls: Dtls = {};
      if (damage === 'another secret') dtls = { sessionSecret: 'not the same secret' };
      else {
        const data = JSON.parse(await fs.readFile(file, 'utf8')) as { dtls: string };
        const bytes = Buffer.from(data.dtls, 'base64');
        bytes[bytes.length - 20] ^= 0x40;
        data.dtls = bytes.toString('base64');
        await fs.writeFile(file, JSON.stringify(data));
      }

      const second = await startServer(dtls);
      assert.equal(errors.length, 1, errors.map(String).join('\n'));
      assert.equal(errors[0]!.name, 'SessionStoreError');
      assert.match(errors[0]!.message, /DTLS sessions in the store were not restored .*do not authenticate.*sessionSecret/);
      assert.deepEqual((second.server as unknown as { dtls: DtlsServer }).dtls.counts, { sessions: 0, handshakes: 0 });
      assert.ok(second.server.registration('sensor'), 'the registration itself came back');
      const updated = nextUpdate(second.server);
      void device.update({ lifetime: 45 }).catch(() => undefined);
      await updated;
      assert.equal(second.server.registration('sensor')?.lifetime, 45);
      await until(() => handshakes() === 2, 'the second handshake');
      assert.equal(second.handshakes(), 1);
    });
  }

  it('the store file holds no key material in the clear', async () => {
    const first = await startServer();
    await startDevice();
    const dtls = (first.server as unknown as { dtls: DtlsServer }).dtls;
    const [state] = dtls.exportConnections();
    assert.ok(state);
    const block = keyBlock(state.masterSecret, state.clientRandom, state.serverRandom, keyBlockLength(state.cipherSuite));
    // CCM_8: client key, server key (16 bytes each), client and server salt (4 each)
    const secrets = [state.masterSecret, block, block.subarray(0, 16), block.subarray(16, 32), KEY, ...dtls.exportSessions().map((session) => session.masterSecret)];
    await stop(first.server);
    const text = await fs.readFile(file, 'utf8');
    assert.match(text, /"dtls":"/, 'the sessions were saved');
    for (const secret of secrets) {
      for (const encoded of [secret.toString('hex'), secret.toString('hex').toUpperCase(), secret.toString('base64'), secret.toString('base64url')]) {
        assert.ok(!text.includes(encoded), `${encoded} is in the store file`);
      }
      assert.ok(!(await fs.readFile(file)).includes(secret), 'nor as raw bytes');
    }
  });

  it('a session begun after the start is saved shortly after, so a crash (no close) keeps it', async () => {
    const store = new MemoryStore();
    const first = await startServer({}, store);
    const { device, handshakes } = await startDevice();
    // saved within the save delay after the session began, not only at close
    const key = sessionStoreKey(SECRET);
    const savedConnections = async () => {
      const sealed = await store.loadDtlsState();
      return sealed ? openDtlsState(sealed, key).connections.length : 0;
    };
    await untilAsync(async () => (await savedConnections()) === 1, 'the new session to be saved');
    // what a crash now would leave behind: a copy of the store as it is (the first server's close writes to the original only)
    const crashed = new MemoryStore();
    crashed.saveDtlsState((await store.loadDtlsState())!);
    for (const record of await store.load()) crashed.save(record);
    await stop(first.server);

    const second = await startServer({}, crashed);
    assert.equal((second.server as unknown as { dtls: DtlsServer }).dtls.counts.sessions, 1);
    const updated = nextUpdate(second.server);
    await device.update({ lifetime: 45 });
    await updated;
    assert.equal(handshakes(), 1);
  });

  it('without a store that keeps DTLS sessions the secret is said to do nothing', async () => {
    const warnings: string[] = [];
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', logger: (_level, message) => warnings.push(message), dtls: { port: 0, address: '127.0.0.1', credentials: CREDENTIALS, sessionSecret: SECRET } });
    servers.push(server);
    await server.listen();
    assert.ok(warnings.some((line) => /sessionSecret is set, but this store keeps no DTLS sessions/.test(line)), warnings.join('\n'));
  });
});

describe('FileStore: the sealed DTLS state', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lwm2m-dtls-state-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('is kept in the file (format 3), read back by the next store, and replaced by a later save', async () => {
    const file = path.join(dir, 'store.json');
    const first = new FileStore(file, { delay: 0 });
    assert.equal(await first.loadDtlsState(), undefined);
    first.saveDtlsState(Buffer.from('sealed one'));
    first.saveDtlsState(Buffer.from('sealed two'));
    await first.close();
    const data = JSON.parse(await fs.readFile(file, 'utf8')) as { version: number; dtls: string };
    assert.equal(data.version, 3);
    assert.equal(Buffer.from(data.dtls, 'base64').toString(), 'sealed two');
    const second = new FileStore(file);
    assert.equal((await second.loadDtlsState())?.toString(), 'sealed two');
    await second.close();
  });

  it('reads a version 2 file (no DTLS state) and writes it as version 3', async () => {
    const file = path.join(dir, 'store.json');
    await fs.writeFile(file, '{"format":"lwm2m-registrations","version":2,"registrations":[],"observations":[],"queue":[]}\n');
    const store = new FileStore(file, { delay: 0 });
    assert.deepEqual(await store.load(), []);
    assert.equal(await store.loadDtlsState(), undefined);
    store.saveDtlsState(Buffer.from('x'));
    await store.close();
    assert.equal((JSON.parse(await fs.readFile(file, 'utf8')) as { version: number }).version, 3);
  });

  it('refuses a "dtls" member that is not base64 as a corrupt store', async () => {
    const file = path.join(dir, 'store.json');
    await fs.writeFile(file, '{"format":"lwm2m-registrations","version":3,"registrations":[],"observations":[],"queue":[],"dtls":{"not":"base64"}}\n');
    const store = new FileStore(file, { onError: () => undefined });
    await assert.rejects(store.loadDtlsState(), /"dtls" is not base64/);
    await store.close();
  });
});

describe('RedisStore: the sealed DTLS state, per instance', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  const stores: RedisStore[] = [];
  const servers: LwM2MServer[] = [];
  let prefixes = 0;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    for (const store of stores.splice(0)) await store.close();
  });
  const open = (prefix: string): RedisStore => {
    const store = new RedisStore({ url: redis.url, prefix, onError: () => undefined });
    stores.push(store);
    return store;
  };

  it('keeps each owner’s blob apart under the prefix, read back by the next store', async () => {
    const prefix = `dtls${prefixes++}:`;
    const first = open(prefix);
    assert.equal(await first.loadDtlsState('node-a'), undefined);
    first.saveDtlsState(Buffer.from('sealed a'), 'node-a');
    first.saveDtlsState(Buffer.from('sealed b'), 'node-b');
    first.saveDtlsState(Buffer.from('sealed alone'));
    assert.equal((await first.loadDtlsState('node-a'))?.toString(), 'sealed a', 'a change not yet written is seen');
    await first.flush();
    const second = open(prefix);
    assert.equal((await second.loadDtlsState('node-a'))?.toString(), 'sealed a');
    assert.equal((await second.loadDtlsState('node-b'))?.toString(), 'sealed b');
    assert.equal((await second.loadDtlsState())?.toString(), 'sealed alone');
    assert.equal(await open(`other${prefix}`).loadDtlsState('node-a'), undefined);
  });

  it('an LwM2MServer instance restarted under its name takes up its DTLS sessions: no handshake', async () => {
    const prefix = `dtls${prefixes++}:`;
    const dtlsPort = await freeUdpPort();
    const start = async (): Promise<{ server: LwM2MServer; handshakes: () => number }> => {
      const server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, instance: 'node-a', store: open(prefix), dtls: { port: dtlsPort, address: '127.0.0.1', credentials: CREDENTIALS, timing: DTLS_TIMING, sessionSecret: SECRET } });
      servers.push(server);
      await server.listen();
      let handshakes = 0;
      (server as unknown as { dtls: DtlsServer }).dtls.on('session', () => handshakes++);
      return { server, handshakes: () => handshakes };
    };
    const first = await start();
    const device = new LwM2MClient({ endpoint: 'sensor', server: `coaps://127.0.0.1:${dtlsPort}`, psk: { identity: 'id-sensor', key: KEY }, dtls: { timing: DTLS_TIMING }, timing: FAST_TIMING, retry: { initialDelay: 100, maxDelay: 400 }, requestTimeout: 1500, lifetime: 30, objects: { 3303: { 0: { 5700: 21.5 } } } });
    device.on('error', () => undefined);
    try {
      await device.start();
      let handshakes = 1;
      (device as unknown as { dtls: DtlsClient }).dtls.on('connected', () => handshakes++);
      servers.splice(servers.indexOf(first.server), 1);
      await first.server.close();
      const second = await start();
      assert.equal((second.server as unknown as { dtls: DtlsServer }).dtls.counts.sessions, 1);
      const updated = new Promise((resolve) => second.server.once('update', resolve));
      await device.update({ lifetime: 45 });
      await updated;
      assert.equal(handshakes, 1);
      assert.equal(second.handshakes(), 0);
    } finally {
      await device.stop().catch(() => undefined);
    }
  });
});
