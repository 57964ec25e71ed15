/**
 * Firmware Update (5) of the simulated device over real sockets on 127.0.0.1: pull over CoAP (from
 * the registration server on the client's own socket, or from another host on a temporary one),
 * over CoAPS (the registration's DTLS session, or a temporary session under the same PSK) and over
 * HTTP; push with Block1; integrity, every simulated failure, Cancel, the delivery method, and the
 * reboot after a successful update. The tests wait on events and never on the clock.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContentFormat, FirmwareResult, FirmwareState, LwM2MClient, decode, type FirmwareOptions, type LwM2MClientOptions } from '../../lib';
import { DtlsServer } from '../../lib/transport/dtls/server';
import { CoapEndpoint, type IncomingRequest, type OutgoingResponse } from '../../lib/transport/endpoint';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';

const KEY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const DTLS_TIMING = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };
const QUICK: FirmwareOptions = { downloadTime: 10, updateTime: 10, rebootTime: 50 };
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Serves GET /fw/<name> from `files` (4.04 for other names); everything else goes to the default. */
function serveFiles(files: Record<string, Buffer>): (request: IncomingRequest) => OutgoingResponse | undefined {
  return (request) => {
    if (request.method !== 'GET' || request.path[0] !== 'fw') return undefined;
    const body = files[request.path.slice(1).join('/')];
    return body ? { code: '2.05', payload: body, contentFormat: ContentFormat.OPAQUE } : { code: '4.04' };
  };
}

/** Resolves once State and Update Result pass `test` (checked now and on every `firmware` event). */
function firmwareWhere(device: LwM2MClient, test: (state: number, result: number) => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!test(device.get('/5/0/3') as number, device.get('/5/0/5') as number)) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`gave up waiting for ${what}: State ${String(device.get('/5/0/3'))}, Update Result ${String(device.get('/5/0/5'))}`));
    }, 50_000);
    const cleanup = (): void => {
      clearTimeout(timer);
      device.off('firmware', check);
    };
    device.on('firmware', check);
    check();
  });
}

const idleWith = (device: LwM2MClient, result: number) => firmwareWhere(device, (state, now) => state === FirmwareState.IDLE && now === result, `Idle with result ${result}`);
const downloaded = (device: LwM2MClient) => firmwareWhere(device, (state) => state === FirmwareState.DOWNLOADED, 'Downloaded');

const udpSockets = (): number => process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;

/** A socket is gone a moment after its close callback (libuv closes the handle on the next turn). */
async function socketsBackTo(count: number, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (udpSockets() !== count) {
    if (Date.now() > deadline) assert.fail(`${what}: ${udpSockets()} UDP sockets, not ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A CoAP server that acknowledges at once and never answers: the client waits for a separate response. */
async function silentServer(onRequest: () => void = () => undefined): Promise<{ endpoint: CoapEndpoint; port: number }> {
  const endpoint = new CoapEndpoint({ timing: { ...FAST_TIMING, piggybackDelay: 10 } });
  endpoint.setRequestHandler(() => {
    onRequest();
    return new Promise<OutgoingResponse>(() => undefined);
  });
  const { port } = await endpoint.listen(0, '127.0.0.1');
  return { endpoint, port };
}

describe('LwM2MClient firmware update (object 5)', function () {
  this.timeout(60_000);
  let server: FakeServer;
  let uri: string;
  const clients: LwM2MClient[] = [];
  const closers: Array<() => Promise<void> | void> = [];

  beforeEach(async () => {
    server = new FakeServer();
    uri = await server.start();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((device) => device.stop()));
    for (const close of closers.splice(0)) await close();
    await server.close();
  });

  async function start(endpoint: string, firmware: FirmwareOptions, options: Partial<LwM2MClientOptions> = {}): Promise<LwM2MClient> {
    const device = new LwM2MClient({ endpoint, server: uri, timing: FAST_TIMING, requestTimeout: 2000, retry: { initialDelay: 100, maxDelay: 400 }, firmware: { ...QUICK, ...firmware }, ...options });
    device.on('error', () => undefined);
    clients.push(device);
    await device.start();
    return device;
  }

  const writeUri = (endpoint: string, value: string) =>
    server.request(endpoint, { method: 'PUT', path: ['5', '0', '1'], contentFormat: ContentFormat.TEXT, payload: Buffer.from(value) });
  const writePackage = (endpoint: string, pkg: Buffer) =>
    server.request(endpoint, { method: 'PUT', path: ['5', '0', '0'], contentFormat: ContentFormat.OPAQUE, payload: pkg, timeout: 50_000 });
  const execute = (endpoint: string, rid: number) => server.request(endpoint, { method: 'POST', path: ['5', '0', String(rid)] });
  const readText = async (endpoint: string, path: string): Promise<string> => {
    const response = await server.request(endpoint, { method: 'GET', path: path.split('/').slice(1), accept: ContentFormat.TEXT });
    assert.equal(response.code, '2.05', `read ${path}`);
    return response.payload.toString();
  };

  describe('pull over CoAP', () => {
    it('downloads 1 MB from the registration server over its own socket, installs it and reboots into the new version', async () => {
      const pkg = randomBytes(1024 * 1024);
      server.behaviour = serveFiles({ 'abc123': pkg });
      const installed: Buffer[] = [];
      const device = await start('pull-1', {
        expect: { size: pkg.length, sha256: sha256(pkg) },
        version: '2.0.0',
        rebootTime: 3000,
        install: async (data) => {
          installed.push(data);
          return true;
        },
      });
      const events: Array<{ state: number; result: number }> = [];
      device.on('firmware', (event) => events.push(event));
      const writes: string[] = [];
      device.on('write', ({ path }) => writes.push(path));

      assert.equal((await writeUri('pull-1', `${uri}/fw/abc123`)).code, '2.04');
      await downloaded(device);
      // the server's endpoint hands only the first GET to its handler and serves the other blocks itself
      const gets = server.requests.filter((request) => request.method === 'GET' && request.path === '/fw/abc123');
      assert.equal(gets.length, 1);
      assert.equal(gets[0]!.peer.port, server.peerOf('pull-1').port, 'over the registration socket');
      assert.equal(device.get('/5/0/6'), 'abc123', 'PkgName');
      assert.equal(device.get('/5/0/7'), '2.0.0', 'PkgVersion');
      assert.deepEqual(writes, ['/5/0/1'], 'the download is no device-management traffic');

      const registers = server.requests.length;
      const offline = new Promise<void>((resolve) => device.once('firmwareUpdated', () => resolve()));
      assert.equal((await execute('pull-1', 2)).code, '2.04');
      await offline;
      assert.equal(device.get('/5/0/3'), FirmwareState.IDLE);
      assert.equal(device.get('/5/0/5'), FirmwareResult.SUCCESS);
      // rebooting: the device hears nothing until it is back
      await assert.rejects(server.request('pull-1', { method: 'GET', path: ['3', '0', '3'], timeout: 500 }), /no (response|acknowledgement)/);
      const again = await server.waitFor((request) => request.method === 'POST' && request.path === '/rd', registers);
      assert.ok(again.query.includes('ep=pull-1'), 'a new Register');
      assert.ok(!server.requests.slice(registers).some((request) => request.method === 'DELETE'), 'no De-register before the reboot');
      assert.equal(await readText('pull-1', '/3/0/3'), '2.0.0');
      assert.equal(await readText('pull-1', '/5/0/3'), '0');
      assert.equal(await readText('pull-1', '/5/0/5'), '1');
      assert.equal(installed.length, 1);
      assert.ok(installed[0]!.equals(pkg), 'the package arrived whole');
      assert.deepEqual(events, [
        { state: FirmwareState.DOWNLOADING, result: 0 },
        { state: FirmwareState.DOWNLOADED, result: 0 },
        { state: FirmwareState.UPDATING, result: 0 },
        { state: FirmwareState.IDLE, result: 1 },
      ]);
    });

    it('downloads from another host:port on a temporary socket and closes it', async () => {
      const pkg = randomBytes(200_000);
      const files = new CoapEndpoint({ timing: FAST_TIMING });
      const peers: number[] = [];
      files.setRequestHandler((request) => {
        peers.push(request.peer.port);
        return serveFiles({ 'fw.bin': pkg })(request) ?? { code: '4.04' };
      });
      const { port } = await files.listen(0, '127.0.0.1');
      closers.push(() => files.close());
      const device = await start('pull-2', { expect: { sha256: sha256(pkg) } });
      const sockets = udpSockets();
      assert.equal((await writeUri('pull-2', `coap://127.0.0.1:${port}/fw/fw.bin`)).code, '2.04');
      await downloaded(device);
      assert.equal(peers.length, 1, 'one GET reached the handler (the endpoint serves the later blocks)');
      assert.notEqual(peers[0], device.address().port, 'not the registration socket');
      await socketsBackTo(sockets, 'the temporary socket is closed');
    });

    it('a URI answered 4.04 is result 7; no answer within downloadTimeout, or none at all, is result 4', async () => {
      server.behaviour = serveFiles({});
      const device = await start('pull-3', { downloadTimeout: 2000 });
      assert.equal((await writeUri('pull-3', `${uri}/fw/missing`)).code, '2.04');
      await idleWith(device, FirmwareResult.INVALID_URI);

      const { endpoint: silent, port } = await silentServer();
      closers.push(() => silent.close());
      assert.equal((await writeUri('pull-3', `coap://127.0.0.1:${port}/fw/x`)).code, '2.04');
      await idleWith(device, FirmwareResult.CONNECTION_LOST);

      const nobody = new CoapEndpoint();
      const { port: closed } = await nobody.listen(0, '127.0.0.1');
      await nobody.close();
      assert.equal((await writeUri('pull-3', '')).code, '2.04');
      assert.equal((await writeUri('pull-3', `coap://127.0.0.1:${closed}/fw/x`)).code, '2.04');
      await idleWith(device, FirmwareResult.CONNECTION_LOST);
    });

    it('stop() during a download from another host closes the temporary socket', async () => {
      let asked!: () => void;
      const reached = new Promise<void>((resolve) => (asked = resolve));
      const { endpoint: silent, port } = await silentServer(() => asked());
      closers.push(() => silent.close());
      const before = udpSockets();
      const device = await start('pull-4', {});
      assert.equal((await writeUri('pull-4', `coap://127.0.0.1:${port}/fw/x`)).code, '2.04');
      await reached;
      assert.equal(udpSockets(), before + 2, 'its own socket and the temporary one');
      await device.stop();
      // the download would wait 300 s for its answer: only the stop can close its socket this soon
      await socketsBackTo(before, 'after stop()');
    });

    it('integrity: a wrong SHA-256 or size is result 5; a package larger than the flash is result 2', async () => {
      const pkg = randomBytes(5000);
      server.behaviour = serveFiles({ a: pkg });
      const wrongHash = await start('int-1', { expect: { sha256: sha256(Buffer.from('something else')) } });
      assert.equal((await writeUri('int-1', `${uri}/fw/a`)).code, '2.04');
      await idleWith(wrongHash, FirmwareResult.INTEGRITY_FAILURE);
      assert.equal(wrongHash.get('/5/0/6'), '', 'no package kept');

      const wrongSize = await start('int-2', { expect: { size: pkg.length + 1, sha256: sha256(pkg) } });
      assert.equal((await writeUri('int-2', `${uri}/fw/a`)).code, '2.04');
      await idleWith(wrongSize, FirmwareResult.INTEGRITY_FAILURE);

      const small = await start('int-3', { flashSize: 4096 });
      assert.equal((await writeUri('int-3', `${uri}/fw/a`)).code, '2.04');
      await idleWith(small, FirmwareResult.NOT_ENOUGH_FLASH);

      // the same package, right checksum: it passes, so the checks above can fail only for their reason
      const right = await start('int-4', { expect: { size: pkg.length, sha256: sha256(pkg).toUpperCase() } });
      assert.equal((await writeUri('int-4', `${uri}/fw/a`)).code, '2.04');
      await downloaded(right);
    });
  });

  describe('pull over CoAPS', () => {
    async function dtlsFileServer(identity: string): Promise<{ dtls: DtlsServer; fake: FakeServer; port: number; sessions: string[] }> {
      const dtls = new DtlsServer({ psk: (id) => (id === identity ? KEY : undefined), timing: DTLS_TIMING });
      const { port } = await dtls.listen(0, '127.0.0.1');
      const sessions: string[] = [];
      dtls.on('session', (session: { identity: string; port: number }) => sessions.push(`${session.identity}@${session.port}`));
      const fake = new FakeServer();
      fake.endpoint.use(dtls, true);
      closers.push(() => fake.close());
      return { dtls, fake, port, sessions };
    }

    const secureDevice = async (endpoint: string, serverUri: string, firmware: FirmwareOptions): Promise<LwM2MClient> => {
      const device = new LwM2MClient({
        endpoint,
        server: serverUri,
        psk: { identity: 'id-fw', key: KEY },
        dtls: { timing: DTLS_TIMING },
        timing: FAST_TIMING,
        requestTimeout: 2000,
        retry: { initialDelay: 100, maxDelay: 400 },
        firmware: { ...QUICK, ...firmware },
      });
      device.on('error', () => undefined);
      clients.push(device);
      await device.start();
      return device;
    };

    it('downloads from the registration server over the existing DTLS session', async () => {
      const pkg = randomBytes(300_000);
      const { fake, port, sessions } = await dtlsFileServer('id-fw');
      fake.behaviour = serveFiles({ 'r4nd0m': pkg });
      const device = await secureDevice('secure-1', `coaps://127.0.0.1:${port}`, { expect: { sha256: sha256(pkg) } });
      assert.equal(sessions.length, 1);
      const write = await fake.request('secure-1', { method: 'PUT', path: ['5', '0', '1'], contentFormat: ContentFormat.TEXT, payload: Buffer.from(`coaps://127.0.0.1:${port}/fw/r4nd0m`) });
      assert.equal(write.code, '2.04');
      await downloaded(device);
      const gets = fake.requests.filter((request) => request.method === 'GET' && request.path === '/fw/r4nd0m');
      assert.equal(gets.length, 1);
      assert.ok(gets.every((request) => request.peer.identity === 'id-fw' && request.peer.port === fake.peerOf('secure-1').port), 'over the registration session');
      assert.deepEqual(sessions, [`id-fw@${device.address().port}`], 'no second handshake');
    });

    it('downloads from another coaps host with a temporary DTLS session under the same PSK', async () => {
      const pkg = randomBytes(50_000);
      const registrar = await dtlsFileServer('id-fw');
      const files = await dtlsFileServer('id-fw');
      files.fake.behaviour = serveFiles({ 'image.bin': pkg });
      const device = await secureDevice('secure-2', `coaps://127.0.0.1:${registrar.port}`, { expect: { sha256: sha256(pkg) } });
      const sockets = udpSockets();
      const write = await registrar.fake.request('secure-2', { method: 'PUT', path: ['5', '0', '1'], contentFormat: ContentFormat.TEXT, payload: Buffer.from(`coaps://127.0.0.1:${files.port}/fw/image.bin`) });
      assert.equal(write.code, '2.04');
      await downloaded(device);
      assert.equal(files.sessions.length, 1);
      assert.match(files.sessions[0]!, /^id-fw@/);
      assert.notEqual(files.sessions[0], `id-fw@${device.address().port}`, 'a socket of its own');
      assert.equal(registrar.sessions.length, 1, 'the registration session stays as it was');
      assert.equal(device.get('/5/0/6'), 'image.bin');
      await socketsBackTo(sockets, 'the temporary DTLS socket is closed');
    });
  });

  describe('pull over HTTP', () => {
    let http: Server;
    let base: string;
    const pkg = randomBytes(700_000);

    beforeEach(async () => {
      http = createServer((request, response) => {
        if (request.url === '/fw/app.bin') {
          response.writeHead(200, { 'content-type': 'application/octet-stream' });
          response.end(pkg);
        } else if (request.url === '/broken') {
          response.writeHead(500);
          response.end('oops');
        } else {
          response.writeHead(404);
          response.end();
        }
      });
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    });

    afterEach(async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    });

    it('downloads with fetch; 404 is result 7, 500 result 4, a closed port result 4', async () => {
      const device = await start('http-1', { expect: { sha256: sha256(pkg) }, version: '3.1' });
      assert.equal((await writeUri('http-1', `${base}/fw/app.bin`)).code, '2.04');
      await downloaded(device);
      assert.equal(device.get('/5/0/6'), 'app.bin');
      assert.equal((await writeUri('http-1', '')).code, '2.04', 'reset');
      assert.deepEqual([device.get('/5/0/3'), device.get('/5/0/5'), device.get('/5/0/6')], [FirmwareState.IDLE, FirmwareResult.INITIAL, '']);

      assert.equal((await writeUri('http-1', `${base}/nothing-here`)).code, '2.04');
      await idleWith(device, FirmwareResult.INVALID_URI);
      assert.equal((await writeUri('http-1', `${base}/broken`)).code, '2.04');
      await idleWith(device, FirmwareResult.CONNECTION_LOST);

      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      assert.equal((await writeUri('http-1', '')).code, '2.04');
      assert.equal((await writeUri('http-1', `http://127.0.0.1:${port}/fw/app.bin`)).code, '2.04');
      await idleWith(device, FirmwareResult.CONNECTION_LOST);
    });
  });

  describe('push', () => {
    it('a 1 MB package written with Block1 arrives whole and is checked', async () => {
      const pkg = randomBytes(1024 * 1024);
      const device = await start('push-1', { expect: { sha256: sha256(pkg) } });
      assert.equal((await writePackage('push-1', pkg)).code, '2.04');
      await downloaded(device);
      assert.ok((device.get('/5/0/0') as Buffer).equals(pkg));
      assert.equal((await writePackage('push-1', Buffer.alloc(0))).code, '2.04', 'an empty package resets');
      assert.deepEqual([device.get('/5/0/3'), device.get('/5/0/5')], [FirmwareState.IDLE, FirmwareResult.INITIAL]);

      const wrong = await start('push-2', { expect: { sha256: sha256(pkg) } });
      assert.equal((await writePackage('push-2', randomBytes(3000))).code, '2.04', 'the Write itself succeeds');
      await idleWith(wrong, FirmwareResult.INTEGRITY_FAILURE);
    });
  });

  describe('simulated failures', () => {
    for (const fail of [2, 3, 4, 5, 6] as const) {
      it(`fail: ${fail} ends a pull and a push download in Idle with result ${fail}`, async () => {
        server.behaviour = serveFiles({ ok: randomBytes(3000) });
        const device = await start(`fail-${fail}`, { fail });
        assert.equal((await writeUri(`fail-${fail}`, `${uri}/fw/ok`)).code, '2.04');
        await idleWith(device, fail);
        assert.equal((await writeUri(`fail-${fail}`, '')).code, '2.04', 'reset to result 0');
        assert.equal((await writePackage(`fail-${fail}`, randomBytes(3000))).code, '2.04', 'the Write itself succeeds');
        await idleWith(device, fail);
      });
    }

    for (const fail of [7, 9] as const) {
      it(`fail: ${fail} answers every Package URI with result ${fail}; a push still works`, async () => {
        server.behaviour = serveFiles({ ok: randomBytes(3000) });
        const device = await start(`fail-${fail}`, { fail });
        assert.equal((await writeUri(`fail-${fail}`, `${uri}/fw/ok`)).code, '2.04');
        await idleWith(device, fail);
        assert.equal(server.requests.filter((request) => request.method === 'GET').length, 0, 'nothing fetched');
        assert.equal((await writePackage(`fail-${fail}`, randomBytes(3000))).code, '2.04');
        await downloaded(device);
      });
    }

    it('fail: 8 makes every Update fail back to Downloaded with result 8', async () => {
      server.behaviour = serveFiles({ ok: randomBytes(3000) });
      let installs = 0;
      const device = await start('fail-8', {
        fail: 8,
        install: async () => {
          installs++;
          return true;
        },
      });
      assert.equal((await writeUri('fail-8', `${uri}/fw/ok`)).code, '2.04');
      await downloaded(device);
      for (let round = 0; round < 2; round++) {
        assert.equal((await execute('fail-8', 2)).code, '2.04');
        await firmwareWhere(device, (state, result) => state === FirmwareState.DOWNLOADED && result === FirmwareResult.UPDATE_FAILED, 'Downloaded with result 8');
      }
      assert.equal(installs, 0, 'nothing was installed');
      assert.equal(device.get('/3/0/3'), '1.0.0', 'the old firmware runs');
    });

    it('real URI problems: unparsable or hostless is result 7, an unoffered scheme result 9', async () => {
      const device = await start('uri-1', { protocols: ['coap'] });
      const cases: Array<[string, number]> = [
        ['not a uri', FirmwareResult.INVALID_URI],
        ['coap:///fw/x', FirmwareResult.INVALID_URI],
        ['ftp://127.0.0.1/fw.bin', FirmwareResult.UNSUPPORTED_PROTOCOL],
        ['http://127.0.0.1/fw.bin', FirmwareResult.UNSUPPORTED_PROTOCOL],
      ];
      for (const [value, result] of cases) {
        assert.equal((await writeUri('uri-1', value)).code, '2.04', value);
        assert.deepEqual([device.get('/5/0/3'), device.get('/5/0/5')], [FirmwareState.IDLE, result], value);
      }
      const protocols = await server.request('uri-1', { method: 'GET', path: ['5', '0', '8'], accept: ContentFormat.TLV });
      assert.deepEqual(decode(ContentFormat.TLV, '/5/0/8', protocols.payload), { 0: 0 });
    });
  });

  describe('state machine', () => {
    it('Cancel in Downloading and in Downloaded gives Idle with result 10; elsewhere 4.05', async () => {
      server.behaviour = serveFiles({ ok: randomBytes(3000) });
      const slow = await start('cancel-1', { downloadTime: 60_000 });
      assert.equal((await execute('cancel-1', 10)).code, '4.05', 'nothing to cancel in Idle');
      assert.equal((await writeUri('cancel-1', `${uri}/fw/ok`)).code, '2.04');
      assert.equal(slow.get('/5/0/3'), FirmwareState.DOWNLOADING);
      assert.equal((await writeUri('cancel-1', `${uri}/fw/ok`)).code, '4.00', 'no second URI while downloading');
      assert.equal((await execute('cancel-1', 10)).code, '2.04');
      assert.deepEqual([slow.get('/5/0/3'), slow.get('/5/0/5')], [FirmwareState.IDLE, FirmwareResult.CANCELLED]);

      const device = await start('cancel-2', {});
      assert.equal((await writeUri('cancel-2', `${uri}/fw/ok`)).code, '2.04');
      await downloaded(device);
      assert.equal((await execute('cancel-2', 10)).code, '2.04');
      assert.deepEqual([device.get('/5/0/3'), device.get('/5/0/5')], [FirmwareState.IDLE, FirmwareResult.CANCELLED]);
      assert.equal((await execute('cancel-2', 2)).code, '4.05', 'no package left to install');
    });

    it('delivery pull refuses a pushed package, push refuses a URI (4.05); resources 8 and 9 say so', async () => {
      const pullOnly = await start('only-pull', { delivery: 'pull' });
      assert.equal((await writePackage('only-pull', randomBytes(100))).code, '4.05');
      assert.equal(await readText('only-pull', '/5/0/9'), '0');
      assert.equal(pullOnly.get('/5/0/3'), FirmwareState.IDLE);

      const pushOnly = await start('only-push', { delivery: 'push' });
      assert.equal((await writeUri('only-push', `${uri}/fw/x`)).code, '4.05');
      assert.equal(await readText('only-push', '/5/0/9'), '1');
      assert.deepEqual(pushOnly.get('/5/0/8'), {}, 'no pull protocol');
      assert.equal((await writeUri('only-push', '')).code, '2.04', 'an empty URI still resets');
      assert.equal((await writePackage('only-push', randomBytes(100))).code, '2.04');
      await downloaded(pushOnly);

      const both = await start('both', {});
      assert.equal(await readText('both', '/5/0/9'), '2');
    });

    it('bad options are refused when the client is made', () => {
      const make = (firmware: unknown) => () => new LwM2MClient({ endpoint: 'bad', server: uri, firmware: firmware as FirmwareOptions });
      assert.throws(make({ fail: 1 }), /fail must be an Update Result from 2 to 9/);
      assert.throws(make({ fail: 10 }), /fail/);
      assert.throws(make({ delivery: 'carrier pigeon' }), /delivery/);
      assert.throws(make({ protocols: ['ftp'] }), /protocols/);
      assert.throws(make({ expect: { sha256: 'abc' } }), /sha256/);
      assert.throws(make({ expect: { size: -1 } }), /size/);
      assert.throws(make({ rebootTime: -5 }), /rebootTime/);
    });
  });
});
