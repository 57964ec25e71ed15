/**
 * LwM2MClient's side of the Bootstrap interface, against a scripted bootstrap server (a CoapEndpoint
 * steered by each test) and a real LwM2MServer as the registration target, all over real UDP (and
 * DTLS) on 127.0.0.1: Bootstrap-Request, Discover, Read, Delete, Write and Finish in LwM2M 1.0 (TLV),
 * 1.1 (SenML CBOR) and the 1.2 Bootstrap-Pack; NoSec and PSK accounts; retries, the fallback from a
 * failing server, the Bootstrap-Request Trigger with a key renewal, and a clean stop.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { LwM2MClient, LwM2MError, LwM2MServer, type LwM2MClientOptions } from '../../lib';
import fc from 'fast-check';
import { ContentFormat, encode, encodeComposite } from '../../lib/content';
import { handleBootstrap } from '../../lib/client/bootstrap-handler';
import { LwM2MPath } from '../../lib/path';
import type { IncomingRequest } from '../../lib/transport/endpoint';
import { DtlsClient } from '../../lib/transport/dtls/client';
import { FAST_TIMING } from '../helpers/fake-server';
import { boundUdpSocket } from '../helpers/ports';
import { ScriptedBootstrapServer, instancesOf, type TestAccount } from '../helpers/scripted-bootstrap';
import { until } from '../helpers/wait';

const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };
const KEY_1 = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const KEY_2 = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
/** how long a test waits for an event before failing (never reached by a passing test) */
const EVENT_LIMIT = 20_000;

function nextEvent<T = unknown>(emitter: NodeJS.EventEmitter, name: string, test: (detail: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, listener);
      reject(new Error(`no '${name}' event within ${EVENT_LIMIT} ms`));
    }, EVENT_LIMIT);
    const listener = (detail: T): void => {
      if (!test(detail)) return;
      clearTimeout(timer);
      emitter.off(name, listener);
      resolve(detail);
    };
    emitter.on(name, listener);
  });
}

/** For assert.rejects: the device answered `code`. */
const answered = (code: string) => (error: unknown): boolean => error instanceof LwM2MError && error.coapCode === code;

const udpSockets = (): number => process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;
const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;

describe('LwM2MClient bootstrap (loopback)', function () {
  this.timeout(60_000);
  let server: LwM2MServer;
  let plainUri: string;
  let secureUri: string;
  const bootstrapServers: ScriptedBootstrapServer[] = [];
  const clients: LwM2MClient[] = [];

  beforeEach(async () => {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 3000, dtls: { port: 0, address: '127.0.0.1', credentials: [], timing: DTLS_TIMING } });
    server.on('error', () => undefined);
    await server.listen();
    plainUri = server.uriFor('127.0.0.1', false);
    secureUri = server.uriFor('127.0.0.1', true);
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.stop({ deregister: false })));
    await Promise.all(bootstrapServers.splice(0).map((bs) => bs.close()));
    await server.close();
  });

  async function bootstrapServer(options: ConstructorParameters<typeof ScriptedBootstrapServer>[0] = {}): Promise<{ bs: ScriptedBootstrapServer; uri: string }> {
    const bs = new ScriptedBootstrapServer(options);
    bootstrapServers.push(bs);
    return { bs, uri: await bs.start() };
  }

  function client(options: Partial<LwM2MClientOptions> & { endpoint: string }): LwM2MClient {
    const device = new LwM2MClient({
      timing: FAST_TIMING,
      dtls: { timing: DTLS_TIMING },
      requestTimeout: 1500,
      retry: { initialDelay: 50, maxDelay: 200 },
      ...options,
    });
    device.on('error', () => undefined);
    clients.push(device);
    return device;
  }

  /** Records every event of these names, in order. */
  function record(device: LwM2MClient, names: string[]): Array<{ name: string; detail: unknown }> {
    const events: Array<{ name: string; detail: unknown }> = [];
    for (const name of names) device.on(name, (detail: unknown) => events.push({ name, detail }));
    return events;
  }

  it('LwM2M 1.1: Bootstrap-Request with pct, Discover, Read, Delete, SenML CBOR Writes and Finish; then registers (NoSec)', async () => {
    const { bs, uri } = await bootstrapServer();
    const device = client({ endpoint: 'bs-11', bootstrap: uri, objects: { 3303: { 0: { 5700: 21 } } } });
    const events = record(device, ['bootstrapping', 'bootstrapped', 'bootstrapFailed', 'registered']);
    const started = device.start();

    const request = await bs.nextRequest();
    assert.equal(request.method, 'POST');
    assert.deepEqual(request.path, ['bs']);
    assert.deepEqual(request.query, ['ep=bs-11', 'pct=112']);
    const peer = request.peer;

    // Discover: the root link with the version, the bootstrap account (/0/0) with its URI but no ssid
    const discovered = await bs.discover(peer);
    assert.equal(discovered.code, '2.05');
    assert.deepEqual(discovered.links[0], { uri: '/', attributes: { lwm2m: '1.1' } });
    assert.deepEqual(discovered.links.find((link) => link.uri === '/0/0')?.attributes, { uri });
    assert.ok(discovered.links.some((link) => link.uri === '/3/0'));
    assert.ok(discovered.links.some((link) => link.uri === '/3303/0'));
    assert.ok(!discovered.links.some((link) => link.uri.startsWith('/1/')), 'no Server instance yet');
    assert.ok(!discovered.links.some((link) => link.attributes.ver !== undefined), `objects and instances are listed plain: ${discovered.text}`);
    assert.ok(discovered.links.some((link) => link.uri === '/1'), 'an object without instances is listed');
    const objectZero = await bs.discover(peer, ['0']);
    assert.ok(objectZero.links.every((link) => link.uri === '/' || link.uri.startsWith('/0')), objectZero.text);

    // Bootstrap-Read: the Server object yes, the Device object no
    const readServer = await bs.send(peer, { method: 'GET', path: ['1'], accept: ContentFormat.SENML_CBOR });
    assert.equal(readServer.code, '2.05');
    assert.equal((await bs.send(peer, { method: 'GET', path: ['3'], accept: ContentFormat.SENML_CBOR })).code, '4.00');
    assert.equal((await bs.send(peer, { method: 'GET', path: ['0', '0'], accept: ContentFormat.SENML_CBOR })).code, '4.00');

    const finish = await bs.configure(peer, [{ securityInstance: 1, serverInstance: 0, shortServerId: 101, uri: plainUri, lifetime: 60 }], ContentFormat.SENML_CBOR);
    assert.equal(finish.code, '2.04');
    await started;

    assert.equal(device.registered, true);
    assert.equal(device.bootstrapped, true);
    assert.equal(device.serverUri, plainUri);
    const registration = server.registration('bs-11')!;
    assert.ok(registration, 'registered with the server the bootstrap named');
    assert.equal(registration.lifetime, 60);
    assert.equal(registration.identity, undefined);
    assert.ok(!registration.objects.some((object) => object.objectId === 0), 'Register never lists /0');
    assert.deepEqual(
      events.map((event) => event.name),
      ['bootstrapping', 'bootstrapped', 'registered'],
    );
    assert.deepEqual(events[0]!.detail, { reason: 'no account' });
    assert.deepEqual(events[1]!.detail, { servers: [{ uri: plainUri, shortServerId: 101, security: 'nosec' }] });
    // the accounts stay out of reach of the management server
    await assert.rejects(server.read('bs-11', '/0/1'), answered('4.01'));
    assert.equal(await server.read('bs-11', '/1/0/0'), 101);
    assert.deepEqual(bs.scriptErrors, []);
  });

  it('LwM2M 1.0: no pct and no root link, 4.05 to a Read, TLV Writes of a PSK account; registers over DTLS', async () => {
    server.setCredential({ identity: 'bs-10-id', key: KEY_1, endpoint: 'bs-10' });
    const { bs, uri } = await bootstrapServer();
    const device = client({ endpoint: 'bs-10', bootstrap: uri, version: '1.0' });
    const started = device.start();
    const request = await bs.nextRequest();
    assert.deepEqual(request.query, ['ep=bs-10']);

    const discovered = await bs.discover(request.peer);
    assert.equal(discovered.code, '2.05');
    assert.ok(!discovered.links.some((link) => link.uri === '/'), `a 1.0 client has no </>;lwm2m link: ${discovered.text}`);
    assert.deepEqual(discovered.links.find((link) => link.uri === '/0/0')?.attributes, {}, 'no uri from a 1.0 client');
    assert.equal((await bs.send(request.peer, { method: 'GET', path: ['1'], accept: ContentFormat.TLV })).code, '4.05');

    const account: TestAccount = { securityInstance: 1, serverInstance: 0, shortServerId: 1, uri: secureUri, psk: { identity: 'bs-10-id', key: KEY_1 } };
    assert.equal((await bs.configure(request.peer, [account], ContentFormat.TLV)).code, '2.04');
    await started;
    assert.equal(server.registration('bs-10')?.identity, 'bs-10-id', 'registered over the DTLS session of the written PSK');
    assert.equal(device.serverUri, secureUri);
  });

  it('LwM2M 1.2 Bootstrap-Pack: GET /bspack with Accept SenML CBOR, applies the pack and registers; a broken pack is retried', async () => {
    const { bs, uri } = await bootstrapServer();
    const pack = encodeComposite(ContentFormat.SENML_CBOR, {
      '/0/3/0': plainUri,
      '/0/3/1': false,
      '/0/3/2': 3,
      '/0/3/3': Buffer.alloc(0),
      '/0/3/5': Buffer.alloc(0),
      '/0/3/10': 7,
      '/1/2/0': 7,
      '/1/2/1': 120,
      '/1/2/7': 'U',
    });
    let answered = 0;
    bs.answer = () => (answered++ === 0 ? { code: '2.05', contentFormat: ContentFormat.SENML_CBOR, payload: Buffer.from([0xff, 0x00]) } : { code: '2.05', contentFormat: ContentFormat.SENML_CBOR, payload: pack });
    const device = client({ endpoint: 'bs-12', bootstrap: uri, version: '1.2', bootstrapPack: true });
    const failed = nextEvent<{ reason: string }>(device, 'bootstrapFailed');
    await device.start();
    assert.match((await failed).reason, /not valid SenML CBOR/);
    const first = bs.requests[0]!;
    assert.equal(first.method, 'GET');
    assert.deepEqual(first.path, ['bspack']);
    assert.deepEqual(first.query, ['ep=bs-12']);
    assert.equal(first.accept, ContentFormat.SENML_CBOR);
    assert.equal(bs.requests.length, 2);
    assert.equal(server.registration('bs-12')?.lifetime, 120);
    assert.equal(device.get('/0/3/10'), 7);
    assert.equal(device.get('/0/0/1'), true, 'the bootstrap account stays');
    assert.deepEqual(device.get('/1/2/0'), 7);
    // the Server instance written by the pack has the standard behaviour: its Update Trigger works
    const updated = nextEvent(device, 'updated');
    await server.execute('bs-12', '/1/2/8');
    await updated;
  });

  it('Delete / keeps the bootstrap account and the Device; deleting the bootstrap account by path is refused; Write errors are typed', async () => {
    const { bs, uri } = await bootstrapServer();
    // a server account as well: then the bootstrap account is /0/1, and the server's stays /0/0 and /1/0
    const unreachable = await boundUdpSocket(); // takes the port, never answers
    try {
      const { port } = unreachable.address();
      const deadServer = `coap://127.0.0.1:${port}`;
      const device = client({ endpoint: 'bs-del', server: deadServer, bootstrap: uri, shortServerId: 9, bootstrapAfterFailures: 2, requestTimeout: 300 });
      const bootstrapping = nextEvent(device, 'bootstrapping');
      const started = device.start();
      assert.deepEqual(await bootstrapping, { reason: 'registration failed' });
      const { peer } = await bs.nextRequest();

      const before = await bs.discover(peer);
      assert.deepEqual(before.links.find((link) => link.uri === '/0/0')?.attributes, { ssid: 9, uri: deadServer });
      assert.deepEqual(before.links.find((link) => link.uri === '/0/1')?.attributes, { uri });
      assert.deepEqual(before.links.find((link) => link.uri === '/1/0')?.attributes, { ssid: 9 });

      assert.equal(await bs.delete(peer, '/0/1'), '4.00');
      assert.equal(await bs.delete(peer, '/3/0'), '4.00');
      assert.equal(await bs.delete(peer, '/0/1/0'), '4.00');
      assert.equal(await bs.delete(peer, '/4242'), '4.04');
      assert.equal(await bs.delete(peer, '/'), '2.02');
      const after = await bs.discover(peer);
      const instances = after.links.map((link) => link.uri).filter((target) => /^\/\d+\/\d+$/.test(target));
      assert.deepEqual(instances, ['/0/1', '/3/0'], after.text);
      assert.equal(await bs.delete(peer, '/0'), '2.02');
      assert.equal(device.get('/0/1/1'), true, 'DELETE /0 keeps the bootstrap account');

      // writes: unknown object 4.04, a broken payload 4.00, a format the client does not read 4.15,
      // turning the bootstrap account into a server account 4.00
      assert.equal((await bs.send(peer, { method: 'PUT', path: ['4242', '0'], contentFormat: ContentFormat.TLV, payload: Buffer.from([0xc1, 0x00, 0x01]) })).code, '4.04');
      assert.equal((await bs.send(peer, { method: 'PUT', path: ['0', '2'], contentFormat: ContentFormat.SENML_CBOR, payload: Buffer.from([0x99, 0x99]) })).code, '4.00');
      assert.equal((await bs.send(peer, { method: 'PUT', path: ['0', '2'], contentFormat: 50, payload: Buffer.from('{}') })).code, '4.15');
      assert.equal((await bs.send(peer, { method: 'PUT', path: ['0', '2'], payload: Buffer.from([0x80]) })).code, '4.00', 'no Content-Format');
      assert.equal((await bs.write(peer, '/0/1', { 0: uri, 1: false, 2: 3, 10: 5 }, ContentFormat.SENML_CBOR)).code, '4.00');
      assert.equal((await bs.write(peer, '/0/1/1', false, ContentFormat.TLV)).code, '4.00');
      assert.equal(device.get('/0/1/1'), true);
      // other methods are not bootstrap operations
      assert.equal((await bs.send(peer, { method: 'POST', path: ['3', '0', '4'] })).code, '4.05');
      assert.equal((await bs.send(peer, { method: 'GET', path: ['bs'] })).code, '4.05');

      // a resource write creates the instance it belongs to; an object write carries several instances
      assert.equal((await bs.write(peer, '/0/2/0', plainUri, ContentFormat.TLV)).code, '2.04');
      const security = instancesOf({ securityInstance: 2, serverInstance: 4, shortServerId: 44, uri: plainUri })['/0/2']!;
      assert.equal((await bs.write(peer, '/0/2', security, ContentFormat.TLV)).code, '2.04');
      const servers = { 4: { 0: 44, 1: 90, 7: 'U' }, 5: { 0: 55, 1: 90, 7: 'U' } };
      assert.equal((await bs.write(peer, '/1', servers, ContentFormat.SENML_CBOR)).code, '2.04');
      assert.equal((await bs.finish(peer)).code, '2.04');
      await started;
      assert.equal(server.registration('bs-del')?.lifetime, 90);
      assert.equal(device.serverUri, plainUri);
      assert.deepEqual(device.get('/1/5'), { 0: 55, 1: 90, 7: 'U' }, 'the other Server instance stays in the tree');
    } finally {
      unreachable.close();
    }
  });

  it('Finish with no usable account is answered 4.06 with the reason; the attempt fails and the retry succeeds', async () => {
    const { bs, uri } = await bootstrapServer();
    const finishes: Array<{ code: string; text: string }> = [];
    let attempt = 0;
    bs.script = async (peer) => {
      const mismatched = attempt++ === 0;
      const accounts: TestAccount[] = [{ securityInstance: 1, serverInstance: 0, shortServerId: 7, uri: plainUri }];
      await bs.delete(peer, '/');
      const [securityPath, securityValue] = Object.entries(instancesOf(accounts[0]!))[0]!;
      await bs.write(peer, securityPath, securityValue, ContentFormat.SENML_CBOR);
      await bs.write(peer, '/1/0', { 0: mismatched ? 8 : 7, 1: 300, 7: 'U' }, ContentFormat.SENML_CBOR);
      const finish = await bs.finish(peer);
      finishes.push({ code: finish.code, text: finish.payload.toString() });
    };
    const device = client({ endpoint: 'bs-406', bootstrap: uri });
    const failed = nextEvent<{ reason: string }>(device, 'bootstrapFailed');
    await device.start();
    assert.match((await failed).reason, /Bootstrap-Finish refused: .*Short Server ID 7/);
    await until(() => finishes.length === 2, 'the second Finish answer');
    assert.equal(finishes[0]!.code, '4.06');
    assert.match(finishes[0]!.text, /no Server instance \(1\) has the Short Server ID 7/);
    assert.equal(finishes[1]!.code, '2.04');
    assert.equal(bs.requests.length, 2);
    assert.ok(server.registration('bs-406'));
    assert.deepEqual(bs.scriptErrors, []);
  });

  it('an account in an unsupported Security Mode, coap:// with a PSK, or a certificate account with a broken key is refused at Finish with a clear reason', async () => {
    const { bs, uri } = await bootstrapServer();
    const reasons: string[] = [];
    let attempt = 0;
    bs.script = async (peer) => {
      const n = attempt++;
      await bs.delete(peer, '/');
      const security = { 0: n === 0 || n === 2 ? secureUri : plainUri, 1: false, 2: [4, 0, 2, 3][n]!, 3: Buffer.from('x'), 4: Buffer.from('y'), 5: Buffer.from('k'), 10: 1 };
      await bs.write(peer, '/0/1', security, ContentFormat.SENML_CBOR);
      await bs.write(peer, '/1/0', { 0: 1, 1: 300, 7: 'U' }, ContentFormat.SENML_CBOR);
      reasons.push((await bs.finish(peer)).payload.toString());
    };
    const device = client({ endpoint: 'bs-mode', bootstrap: uri });
    await device.start();
    await until(() => reasons.length === 4, 'the fourth Finish answer');
    assert.match(reasons[0]!, /Security Mode 4 \(Certificate with EST\) is not supported; use 0 \(PSK\), 1 \(Raw Public Key\), 2 \(Certificate\) or 3 \(NoSec\)/);
    assert.match(reasons[1]!, /coap:\/\/ but the Security Mode is 0 \(PSK\); it needs coaps:\/\//);
    assert.match(reasons[2]!, /the private key \(resource 5\) is not a private key/);
    assert.equal(reasons[3], '');
  });

  it('the Bootstrap-Request Trigger (/1/0/9) makes the device De-register, bootstrap again and register with its new key', async () => {
    server.setCredential({ identity: 'trig-id', key: KEY_1, endpoint: 'bs-trig' });
    const { bs, uri } = await bootstrapServer();
    let key = KEY_1;
    bs.script = async (peer) => {
      // a real bootstrap server hands the LwM2M server the key it writes
      server.setCredential({ identity: 'trig-id', key, endpoint: 'bs-trig' });
      const finish = await bs.configure(peer, [{ securityInstance: 1, serverInstance: 0, shortServerId: 1, uri: secureUri, psk: { identity: 'trig-id', key } }], ContentFormat.SENML_CBOR);
      assert.equal(finish.code, '2.04');
    };
    const device = client({ endpoint: 'bs-trig', bootstrap: uri });
    await device.start();
    assert.equal(server.registration('bs-trig')?.identity, 'trig-id');
    const firstLocation = device.location;

    key = KEY_2;
    const events = record(device, ['deregistered', 'bootstrapping', 'bootstrapped', 'registered']);
    const reregistered = nextEvent(device, 'registered');
    await server.execute('bs-trig', '/1/0/9');
    await reregistered;
    assert.deepEqual(
      events.map((event) => event.name),
      ['bootstrapping', 'deregistered', 'bootstrapped', 'registered'],
    );
    assert.deepEqual(events[0]!.detail, { reason: 'trigger' });
    assert.equal(server.registration('bs-trig')?.identity, 'trig-id');
    assert.notEqual(device.location, firstLocation, 'a new registration');
    assert.ok((device.get('/0/1/5') as Buffer).equals(KEY_2));
    assert.equal(bs.requests.length, 2);

    // the server now refuses the old key
    const { port } = server.secureAddress()!;
    const old = new DtlsClient({ host: '127.0.0.1', port, identity: 'trig-id', key: KEY_1, timing: { initialTimeout: 100, maxTimeout: 200, maxRetransmissions: 2 } });
    old.on('error', () => undefined);
    try {
      await assert.rejects(old.connect());
    } finally {
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
    // and still serves the device under the new one
    assert.equal(await server.read('bs-trig', '/1/0/0'), 1);
    assert.deepEqual(bs.scriptErrors, []);
  });

  it('a 1.0 client has no Bootstrap-Request Trigger; neither has a client without a bootstrap server', async () => {
    const { bs, uri } = await bootstrapServer();
    bs.script = async (peer) => void (await bs.configure(peer, [{ securityInstance: 1, serverInstance: 0, shortServerId: 1, uri: plainUri }], ContentFormat.TLV));
    const device = client({ endpoint: 'bs-10-trig', bootstrap: uri, version: '1.0' });
    await device.start();
    await assert.rejects(server.execute('bs-10-trig', '/1/0/9'), answered('4.04'));
    const plain = client({ endpoint: 'no-bs', server: plainUri });
    await plain.start();
    await assert.rejects(server.execute('no-bs', '/1/0/9'), answered('4.04'));
  });

  it('bootstraps from a coaps:// bootstrap server under its PSK', async () => {
    const { bs, uri } = await bootstrapServer({ psk: { 'bs-identity': KEY_2 } });
    assert.match(uri, /^coaps:/);
    bs.script = async (peer) => void (await bs.configure(peer, [{ securityInstance: 1, serverInstance: 0, shortServerId: 3, uri: plainUri }], ContentFormat.SENML_CBOR));
    const device = client({ endpoint: 'bs-dtls', bootstrap: uri, bootstrapPsk: { identity: 'bs-identity', key: KEY_2 } });
    await device.start();
    assert.equal(bs.requests[0]!.peer.identity, 'bs-identity', 'the Bootstrap-Request came over DTLS');
    assert.ok(server.registration('bs-dtls'));
    assert.deepEqual(bs.scriptErrors, []);
  });

  it('retries a Bootstrap-Request answered 4.03, one never answered, and one answered 2.05 with garbage, with back-off', async () => {
    const { bs, uri } = await bootstrapServer();
    let n = 0;
    bs.answer = () => {
      const attempt = n++;
      if (attempt === 0) return { code: '4.03', payload: Buffer.from('unknown endpoint') };
      if (attempt === 1) return 'drop';
      if (attempt === 2) return { code: '2.05', payload: Buffer.from([0xde, 0xad]) };
      return { code: '2.04' };
    };
    bs.script = async (peer) => void (await bs.configure(peer, [{ securityInstance: 1, serverInstance: 0, shortServerId: 1, uri: plainUri }], ContentFormat.SENML_CBOR));
    const device = client({ endpoint: 'bs-retry', bootstrap: uri, requestTimeout: 500 });
    const reasons: string[] = [];
    device.on('bootstrapFailed', ({ reason }: { reason: string }) => reasons.push(reason));
    await device.start();
    assert.equal(reasons.length, 3, reasons.join(' | '));
    assert.match(reasons[0]!, /answered 4\.03: unknown endpoint/);
    assert.match(reasons[1]!, /got no answer/);
    assert.match(reasons[2]!, /answered 2\.05/);
    assert.equal(bs.requests.length, 4);
    assert.ok(server.registration('bs-retry'));
  });

  it('an attempt without Bootstrap-Finish fails after bootstrapTimeout', async () => {
    const { bs, uri } = await bootstrapServer();
    let n = 0;
    bs.script = async (peer) => {
      if (n++ === 0) return; // says 2.04, then nothing
      await bs.configure(peer, [{ securityInstance: 1, serverInstance: 0, shortServerId: 1, uri: plainUri }], ContentFormat.SENML_CBOR);
    };
    const device = client({ endpoint: 'bs-slow', bootstrap: uri, bootstrapTimeout: 300 });
    const failed = nextEvent<{ reason: string }>(device, 'bootstrapFailed');
    await device.start();
    assert.match((await failed).reason, /no Bootstrap-Finish within 300 ms/);
  });

  it('stop() in the middle of a bootstrap rejects start() and leaves no socket or timer behind', async () => {
    const { bs, uri } = await bootstrapServer();
    await new Promise((resolve) => setTimeout(resolve, 1)); // mocha arms its own test timer once the test runs: count after it
    const before = { sockets: udpSockets(), timers: timers() };
    const device = client({ endpoint: 'bs-stop', bootstrap: uri });
    const started = device.start();
    await bs.nextRequest(); // answered 2.04; no Finish ever comes
    assert.ok(udpSockets() > before.sockets, 'the bootstrap has a socket');
    assert.ok(timers() > before.timers, 'and a timer (the Finish deadline)');
    assert.equal(device.bootstrapping, true);
    await device.stop();
    await assert.rejects(started, /stopped before it registered/);
    await until(() => udpSockets() === before.sockets && timers() === before.timers, 'the bootstrap socket and timers to go');
    assert.equal(device.bootstrapping, false);
  });

  it('stop() while the coaps:// bootstrap handshake runs leaves no socket behind', async () => {
    const silent = await boundUdpSocket(); // a "DTLS server" that never answers
    try {
      const before = udpSockets();
      const device = client({ endpoint: 'bs-stop-dtls', bootstrap: `coaps://127.0.0.1:${silent.address().port}`, bootstrapPsk: { identity: 'x', key: KEY_1 } });
      const started = device.start();
      const [message] = await once(silent, 'message');
      assert.ok((message as Buffer).length > 0, 'a ClientHello arrived');
      await device.stop();
      await assert.rejects(started, /stopped before it registered/);
      await until(() => udpSockets() === before, 'the DTLS socket to close');
    } finally {
      silent.close();
    }
  });

  it('refuses bad bootstrap settings with a clear TypeError', () => {
    assert.throws(() => new LwM2MClient({ endpoint: 'x' }), /needs server .* bootstrap .* or both/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', bootstrap: 'coaps://127.0.0.1' }), /coaps:\/\/ bootstrap needs bootstrapPsk/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', bootstrap: 'coap://127.0.0.1', bootstrapPsk: { identity: 'a', key: KEY_1 } }), /bootstrapPsk is for a coaps:\/\/ bootstrap/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', bootstrap: 'http://127.0.0.1' }), /bootstrap URI scheme http: is not supported/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', bootstrap: 'coap://127.0.0.1', bootstrapPack: true }), /bootstrapPack .* needs LwM2M 1\.2/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', server: 'coap://127.0.0.1', bootstrapPack: true, version: '1.2' }), /need a bootstrap server URI/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', bootstrap: 'coap://127.0.0.1', bootstrapAfterFailures: 0 }), /bootstrapAfterFailures/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', bootstrap: 'coap://127.0.0.1', bootstrapTimeout: -1 }), /bootstrapTimeout/);
    // a client that only bootstraps puts its bootstrap account at /0/0, without a Short Server ID, and has no Server instance
    const device = new LwM2MClient({ endpoint: 'x', bootstrap: 'coap://127.0.0.1' });
    assert.equal(device.get('/0/0/1'), true);
    assert.equal(device.get('/0/0/10'), undefined);
    assert.deepEqual(device.tree.instanceIds(1), []);
    assert.equal(device.get('/0/0/0'), 'coap://127.0.0.1');
  });
});

describe('bootstrap handler under hostile input', () => {
  it('answers every one of 3,000 random and mutated bootstrap requests with a 2.xx or 4.xx, and the bootstrap account survives', async () => {
    const device = new LwM2MClient({ endpoint: 'fuzz', server: 'coap://127.0.0.1:1', bootstrap: 'coap://127.0.0.1:2', objects: { 3303: { 0: { 5700: 1 } } } });
    const bootstrapInstance = 1;
    // valid Bootstrap-Writes, sent as they are or with one byte changed
    const writes = [
      { path: ['0', '5'], contentFormat: ContentFormat.TLV, payload: encode(ContentFormat.TLV, '/0/5', instancesOf({ securityInstance: 5, serverInstance: 5, shortServerId: 5, uri: 'coap://127.0.0.1:9' })['/0/5']) },
      { path: ['1', '5'], contentFormat: ContentFormat.SENML_CBOR, payload: encode(ContentFormat.SENML_CBOR, '/1/5', { 0: 5, 1: 60, 7: 'U' }) },
      { path: ['1'], contentFormat: ContentFormat.SENML_JSON, payload: encode(ContentFormat.SENML_JSON, '/1', { 6: { 0: 6, 1: 60, 7: 'UQ' } }) },
      { path: ['0', '1'], contentFormat: ContentFormat.LWM2M_CBOR, payload: encode(ContentFormat.LWM2M_CBOR, '/0/1', { 0: 'coap://x', 1: true }) },
      { path: ['3303', '0', '5700'], contentFormat: ContentFormat.TEXT, payload: Buffer.from('21.5') },
    ];
    const segment = fc.oneof(fc.constantFrom('', '0', '1', '2', '3', '5', '6', '3303', 'bs', 'bspack', '65535', '65536', 'x', '-1'), fc.nat(70000).map(String));
    const format = fc.option(fc.constantFrom(0, 40, 42, 50, 60, 110, 112, 11542, 11543, 11544, 65535), { nil: undefined });
    const random = fc.record({
      method: fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'FETCH', 'IPATCH'),
      path: fc.array(segment, { maxLength: 5 }),
      accept: format,
      contentFormat: format,
      payload: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
    });
    const write = fc.tuple(fc.constantFrom(...writes), fc.boolean(), fc.nat(200), fc.nat(255)).map(([base, mutate, at, byte]) => {
      const payload = Buffer.from(base.payload);
      if (mutate && payload.length > 0) payload[at % payload.length] = byte;
      return { method: 'PUT', path: base.path, accept: undefined, contentFormat: base.contentFormat as number | undefined, payload };
    });
    const finish = fc.constant({ method: 'POST', path: ['bs'], accept: undefined, contentFormat: undefined, payload: Buffer.alloc(0) });
    const request = fc.oneof(random, write, finish);
    const codes = new Map<string, number>();
    let finishes = 0;
    const context = {
      tree: device.tree,
      version: '1.2' as const,
      preferredFormat: ContentFormat.SENML_CBOR,
      check: () => (device.tree.instanceIds(1).length > 0 ? undefined : 'no Server instance'),
      finished: () => void finishes++,
    };
    const samples = fc.sample(request, { numRuns: 3000, seed: 20240611 });
    for (const sample of samples) {
      const incoming: IncomingRequest = {
        peer: { address: '127.0.0.1', port: 1 },
        type: 'CON',
        token: Buffer.alloc(0),
        messageId: 1,
        query: [],
        options: [],
        method: sample.method as IncomingRequest['method'],
        path: [...sample.path],
        accept: sample.accept,
        contentFormat: sample.contentFormat,
        payload: sample.payload,
      };
      const response = await handleBootstrap(context, incoming);
      assert.match(response.code, /^[24]\.\d\d$/, `${sample.method} /${sample.path.join('/')}: ${response.code} ${response.payload?.toString() ?? ''}`);
      codes.set(response.code, (codes.get(response.code) ?? 0) + 1);
      response.onSent?.();
      assert.equal(device.get(`/0/${bootstrapInstance}/1`), true, `the bootstrap account survives ${sample.method} /${sample.path.join('/')}`);
      assert.ok(device.tree.has(LwM2MPath.of(3, 0)), 'the Device instance survives');
    }
    // the mix reached the operations, not only the refusals
    for (const code of ['2.02', '2.04', '2.05', '4.00', '4.04', '4.05']) assert.ok((codes.get(code) ?? 0) > 0, `some ${code}: ${JSON.stringify([...codes])}`);
    assert.ok(finishes > 0);
  });
});
