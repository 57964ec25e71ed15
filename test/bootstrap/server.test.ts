/**
 * LwM2MBootstrapServer as a device sees it: a scripted device (a bare CoapEndpoint on loopback)
 * sends the Bootstrap-Request and answers what the server sends, so every step, format and refusal
 * can be checked, including devices that misbehave. Real LwM2MClients are in sequence.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  CoapEndpoint,
  ContentFormat,
  DtlsClient,
  LwM2MBootstrapServer,
  LwM2MServer,
  decode,
  decodeComposite,
  encode,
  type BootstrapConfig,
  type BootstrapFailedEvent,
  type BootstrapFinishedEvent,
  type BootstrapOperationEvent,
  type IncomingRequest,
  type OutgoingResponse,
  type Peer,
} from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';
import { boundUdpSocket } from '../helpers/ports';

interface Seen {
  method: string;
  path: string;
  contentFormat?: number;
  accept?: number;
  payload: Buffer;
}

/** A device that answers the bootstrap server as told (default: a willing 1.1 client). */
class ScriptedDevice {
  readonly endpoint = new CoapEndpoint({ timing: FAST_TIMING });
  readonly seen: Seen[] = [];
  answer: (request: IncomingRequest) => OutgoingResponse | Promise<OutgoingResponse> | 'drop' | undefined = () => undefined;

  constructor(
    readonly name: string,
    readonly version: '1.0' | '1.1' | '1.2' = '1.1',
  ) {
    this.endpoint.setRequestHandler((request) => {
      const path = '/' + request.path.join('/');
      this.seen.push({ method: request.method, path, contentFormat: request.contentFormat, accept: request.accept, payload: request.payload });
      const scripted = this.answer(request);
      if (scripted === 'drop') return new Promise<OutgoingResponse>(() => undefined);
      if (scripted) return scripted;
      return this.willing(request, path);
    });
  }

  private willing(request: IncomingRequest, path: string): OutgoingResponse {
    if (request.method === 'GET' && path === '/') {
      const root = this.version === '1.0' ? '' : `</>;lwm2m=${this.version},`;
      return { code: '2.05', contentFormat: ContentFormat.LINK, payload: Buffer.from(`${root}</0/0>;uri="coap://127.0.0.1:5783",</0/1>;ssid=9,</1/0>;ssid=9,</3/0>`) };
    }
    if (request.method === 'GET' && path === '/1') return { code: '2.05', contentFormat: ContentFormat.TLV, payload: encode(ContentFormat.TLV, '/1', { 0: { 0: 9, 1: 300, 7: 'U' } }) };
    if (request.method === 'DELETE') return { code: '2.02' };
    if (request.method === 'PUT') return { code: '2.04' };
    if (request.method === 'POST' && path === '/bs') return { code: '2.04' };
    return { code: '4.05' };
  }

  async listen(): Promise<void> {
    await this.endpoint.listen(0, '127.0.0.1');
  }

  request(to: Peer, query: string[] = [`ep=${this.name}`], path = 'bs', method: 'POST' | 'GET' = 'POST', accept?: number) {
    return this.endpoint.request(to, { method, path: [path], query, accept, timeout: 5000 });
  }

  close(): Promise<void> {
    return this.endpoint.close();
  }
}

function collect(server: LwM2MBootstrapServer) {
  const operations: BootstrapOperationEvent[] = [];
  const finished: BootstrapFinishedEvent[] = [];
  const failed: BootstrapFailedEvent[] = [];
  server.on('operation', (event) => operations.push(event));
  server.on('bootstrapFinished', (event) => finished.push(event));
  server.on('bootstrapFailed', (event) => failed.push(event));
  return { operations, finished, failed };
}

const NOSEC: BootstrapConfig = { servers: [{ uri: 'coap://127.0.0.1:5683', shortServerId: 101, lifetime: 120 }] };

describe('LwM2MBootstrapServer', function () {
  this.timeout(30_000);
  let server: LwM2MBootstrapServer;
  let device: ScriptedDevice;
  let at: Peer;

  async function start(options: ConstructorParameters<typeof LwM2MBootstrapServer>[0] = {}, version: '1.0' | '1.1' | '1.2' = '1.1'): Promise<void> {
    server = new LwM2MBootstrapServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 2000, ...options });
    const { port } = await server.listen();
    at = { address: '127.0.0.1', port };
    device = new ScriptedDevice('dev-1', version);
    await device.listen();
  }

  afterEach(async () => {
    await device?.close();
    await server?.close();
  });

  it('runs Discover, Read /1, Delete /0 and /1, the writes and Finish for a 1.1 client, in SenML CBOR', async () => {
    await start({ configs: { '*': NOSEC } });
    const events = collect(server);
    const requested = once(server, 'bootstrapRequest');
    const response = await device.request(at, ['ep=dev-1']);
    assert.equal(response.code, '2.04');
    assert.deepEqual((await requested)[0], { endpoint: 'dev-1', address: '127.0.0.1', port: device.endpoint.address().port });
    const [done] = (await once(server, 'bootstrapFinished')) as [BootstrapFinishedEvent];
    assert.deepEqual(
      device.seen.map(({ method, path }) => `${method} ${path}`),
      ['GET /', 'GET /1', 'DELETE /0', 'DELETE /1', 'PUT /0/1', 'PUT /1/0', 'POST /bs'],
      'the Security instance avoids /0/0, the device’s bootstrap account (no ssid in its Discover)',
    );
    assert.equal(device.seen[0]!.accept, ContentFormat.LINK);
    const security = device.seen[4]!;
    assert.equal(security.contentFormat, ContentFormat.SENML_CBOR);
    assert.deepEqual(decode(ContentFormat.SENML_CBOR, '/0/1', security.payload), { 0: 'coap://127.0.0.1:5683', 1: false, 2: 3, 3: Buffer.alloc(0), 4: Buffer.alloc(0), 5: Buffer.alloc(0), 10: 101 });
    assert.deepEqual(decode(ContentFormat.SENML_CBOR, '/1/0', device.seen[5]!.payload), { 0: 101, 1: 120, 2: 0, 3: 0, 6: false, 7: 'U' });
    assert.deepEqual(done, { endpoint: 'dev-1', servers: [{ uri: 'coap://127.0.0.1:5683', shortServerId: 101, security: 'nosec', generated: false }], via: 'sequence' });
    assert.deepEqual(
      events.operations.map(({ operation, path, code }) => `${operation} ${path} ${code}`),
      ['discover / 2.05', 'read /1 2.05', 'delete /0 2.02', 'delete /1 2.02', 'write /0/1 2.04', 'write /1/0 2.04', 'finish /bs 2.04'],
    );
    assert.deepEqual(events.failed, []);
  });

  it('writes TLV to a 1.0 client (no lwm2m= in its Discover) and does not Read', async () => {
    await start({ configs: { 'dev-1': NOSEC } }, '1.0');
    await device.request(at);
    await once(server, 'bootstrapFinished');
    assert.deepEqual(device.seen.map(({ method, path }) => `${method} ${path}`), ['GET /', 'DELETE /0', 'DELETE /1', 'PUT /0/1', 'PUT /1/0', 'POST /bs']);
    const security = device.seen.find((seen) => seen.path === '/0/1')!;
    assert.equal(security.contentFormat, ContentFormat.TLV);
    assert.equal((decode(ContentFormat.TLV, '/0/1', security.payload) as Record<string, unknown>)[0], 'coap://127.0.0.1:5683');
  });

  it('reads the ACL object (2) too when the device has one', async () => {
    await start({ configs: { '*': NOSEC } });
    const events = collect(server);
    device.answer = (request) => {
      if (request.method === 'GET' && request.path.length === 0) return { code: '2.05', contentFormat: ContentFormat.LINK, payload: Buffer.from('</>;lwm2m=1.1,</0/0>,</2/0>,</3/0>') };
      if (request.method === 'GET' && request.path[0] === '2') return { code: '2.05', contentFormat: ContentFormat.TLV, payload: encode(ContentFormat.TLV, '/2', { 0: { 0: 3, 1: 0, 3: 101 } }) };
      return undefined;
    };
    await device.request(at);
    await once(server, 'bootstrapFinished');
    assert.deepEqual(device.seen.slice(0, 3).map(({ method, path }) => `${method} ${path}`), ['GET /', 'GET /1', 'GET /2']);
    assert.deepEqual(events.operations.find((event) => event.path === '/2')!.value, { 0: { 0: 3, 1: 0, 3: 101 } });
  });

  it('takes a 1.0 client that refuses Discover with 4.00 for what it is: writes TLV', async () => {
    await start({ configs: { '*': NOSEC } }, '1.0');
    device.answer = (request) => (request.method === 'GET' ? { code: '4.00' } : undefined);
    await device.request(at);
    await once(server, 'bootstrapFinished');
    assert.deepEqual(
      device.seen.map(({ method, path }) => `${method} ${path}`),
      ['GET /', 'DELETE /0', 'DELETE /1', 'PUT /0/1', 'PUT /1/0', 'POST /bs'],
      'without a Discover, /0/0 is taken for the bootstrap account, as most clients keep it',
    );
    assert.equal(device.seen[3]!.contentFormat, ContentFormat.TLV);
  });

  it('writes in the pct the client prefers when its version has that format', async () => {
    await start({ configs: { '*': NOSEC } }, '1.2');
    await device.request(at, ['ep=dev-1', `pct=${ContentFormat.LWM2M_CBOR}`]);
    await once(server, 'bootstrapFinished');
    assert.equal(device.seen.find((seen) => seen.method === 'PUT')!.contentFormat, ContentFormat.LWM2M_CBOR);
  });

  it('writes extra instances, deletes what the configuration says, and never deletes the bootstrap account', async () => {
    await start({ configs: { '*': { ...NOSEC, delete: ['/', '/0/0', '/11'], writes: { '/11/0': { 0: 'internet' } } } } });
    await device.request(at);
    await once(server, 'bootstrapFinished');
    const steps = device.seen.map(({ method, path }) => `${method} ${path}`);
    assert.deepEqual(steps.filter((step) => step.startsWith('DELETE')), ['DELETE /', 'DELETE /11'], '/0/0 is the bootstrap account: skipped');
    const apn = device.seen.find((seen) => seen.path === '/11/0')!;
    assert.equal((decode(ContentFormat.SENML_CBOR, '/11/0', apn.payload) as Record<string, unknown>)[0], 'internet');
  });

  it('generates a PSK per bootstrap, hands it to the LwM2M server before Finish, and a new bootstrap replaces it', async () => {
    const lwm2m = new LwM2MServer({ port: 0, address: '127.0.0.1', dtls: { port: 0, address: '127.0.0.1' } });
    await lwm2m.listen();
    try {
      await start({ configs: { '*': { servers: [{ server: lwm2m, security: 'psk' }] } } });
      let keyAtFinish: Buffer | undefined;
      device.answer = (request) => {
        if (request.method === 'POST') keyAtFinish = lwm2m.credentials().find((credential) => credential.endpoint === 'dev-1')?.key;
        return undefined;
      };
      await device.request(at);
      const [done] = (await once(server, 'bootstrapFinished')) as [BootstrapFinishedEvent];
      assert.deepEqual(done.servers, [{ uri: `coaps://127.0.0.1:${lwm2m.secureAddress()!.port}`, shortServerId: 1, security: 'psk', identity: 'dev-1', generated: true }]);
      const written = decode(ContentFormat.SENML_CBOR, '/0/1', device.seen.find((seen) => seen.path === '/0/1')!.payload) as Record<string, unknown>;
      assert.equal(written[2], 0, 'security mode PSK');
      assert.deepEqual(written[3], Buffer.from('dev-1'));
      const key = written[5] as Buffer;
      assert.equal(key.length, 16);
      assert.deepEqual(keyAtFinish, key, 'the server had the key when Finish went out');
      assert.equal(JSON.stringify(done).includes(key.toString('hex')), false, 'no key in the event');

      device.seen.length = 0;
      await device.request(at);
      await once(server, 'bootstrapFinished');
      const renewed = (decode(ContentFormat.SENML_CBOR, '/0/1', device.seen.find((seen) => seen.path === '/0/1')!.payload) as Record<string, unknown>)[5] as Buffer;
      assert.notDeepEqual(renewed, key);
      assert.deepEqual(lwm2m.credentials(), [{ identity: 'dev-1', key: renewed, endpoint: 'dev-1' }]);
    } finally {
      await lwm2m.close();
    }
  });

  it('asks the configFor hook first, and falls back to the table when it has nothing', async () => {
    const asked: string[] = [];
    await start({
      configs: { '*': NOSEC },
      configFor: async (endpoint) => {
        asked.push(endpoint);
        return endpoint === 'dev-1' ? { servers: [{ uri: 'coap://192.0.2.7:5683', shortServerId: 7 }] } : undefined;
      },
    });
    await device.request(at);
    const [done] = (await once(server, 'bootstrapFinished')) as [BootstrapFinishedEvent];
    assert.equal(done.servers[0]!.uri, 'coap://192.0.2.7:5683');
    const other = new ScriptedDevice('dev-2');
    await other.listen();
    try {
      await other.request(at, ['ep=dev-2']);
      const [second] = (await once(server, 'bootstrapFinished')) as [BootstrapFinishedEvent];
      assert.equal(second.servers[0]!.uri, 'coap://127.0.0.1:5683');
    } finally {
      await other.close();
    }
    assert.deepEqual(asked, ['dev-1', 'dev-2']);
  });

  it('answers a Bootstrap-Pack-Request with every instance in SenML CBOR, and hands the key over', async () => {
    const lwm2m = new LwM2MServer({ port: 0, address: '127.0.0.1', dtls: { port: 0, address: '127.0.0.1' } });
    await lwm2m.listen();
    try {
      await start({ configs: { '*': { servers: [{ server: lwm2m, security: 'psk', shortServerId: 3 }], writes: { '/11/0': { 0: 'apn' } } } } });
      const finished = once(server, 'bootstrapFinished');
      const response = await device.request(at, ['ep=dev-1'], 'bspack', 'GET', ContentFormat.SENML_CBOR);
      assert.equal(response.code, '2.05');
      assert.equal(response.contentFormat, ContentFormat.SENML_CBOR);
      const pack = decodeComposite(ContentFormat.SENML_CBOR, response.payload);
      assert.equal(pack['/0/1/0'], `coaps://127.0.0.1:${lwm2m.secureAddress()!.port}`);
      assert.equal(pack['/0/1/10'], 3);
      assert.equal(pack['/1/0/0'], 3);
      assert.equal(pack['/11/0/0'], 'apn');
      assert.deepEqual(lwm2m.credentials()[0]!.key, pack['/0/1/5']);
      const [done] = (await finished) as [BootstrapFinishedEvent];
      assert.equal(done.via, 'pack');
      assert.deepEqual(device.seen, [], 'no requests to the device after a pack');
    } finally {
      await lwm2m.close();
    }
  });

  describe('refuses and fails with the reason', () => {
    it('an endpoint without a configuration: 4.00 and a bootstrapFailed naming it', async () => {
      await start({ configs: { known: NOSEC } });
      const events = collect(server);
      const response = await device.request(at, ['ep=stranger']);
      assert.equal(response.code, '4.00');
      assert.match(response.payload.toString(), /no bootstrap configuration for the endpoint stranger/);
      assert.equal(events.failed.length, 1);
      assert.equal(events.failed[0]!.endpoint, 'stranger');
      assert.match(events.failed[0]!.reason, /stranger/);
      assert.deepEqual(device.seen, []);
    });

    it('malformed queries, other methods and paths', async () => {
      const logged: string[] = [];
      await start({ configs: { '*': NOSEC }, logger: (_level, line) => logged.push(line) });
      const events = collect(server);
      assert.equal((await device.request(at, [])).code, '4.00', 'no ep');
      assert.equal((await device.request(at, ['ep=a', 'ep=b'])).code, '4.00', 'ep twice');
      assert.equal((await device.request(at, ['ep=a', 'pct=json'])).code, '4.00', 'pct not a number');
      assert.equal((await device.request(at, ['ep=a'], 'bs', 'GET')).code, '4.05');
      assert.equal((await device.request(at, ['ep=a'], 'rd')).code, '4.04');
      assert.equal(events.failed.length, 3);
      assert.match(events.failed[0]!.reason, /needs the endpoint client name/);
      assert.ok(logged.length > 0);
      assert.deepEqual(device.seen, []);
    });

    it('a write answered 4.xx: bootstrapFailed with the step, never Finish', async () => {
      await start({ configs: { '*': NOSEC } });
      const events = collect(server);
      device.answer = (request) => (request.method === 'PUT' && request.path[0] === '1' ? { code: '4.00', payload: Buffer.from('no such binding') } : undefined);
      await device.request(at);
      const [failure] = (await once(server, 'bootstrapFailed')) as [BootstrapFailedEvent];
      assert.deepEqual({ ...failure, reason: undefined }, { endpoint: 'dev-1', operation: 'write', path: '/1/0', code: '4.00', reason: undefined });
      assert.match(failure.reason, /write \/1\/0 was answered 4.00: no such binding/);
      assert.equal(device.seen.some((seen) => seen.path === '/bs'), false);
      assert.deepEqual(events.finished, []);
    });

    it('a Finish answered 4.06 (inconsistent configuration)', async () => {
      await start({ configs: { '*': NOSEC } });
      device.answer = (request) => (request.method === 'POST' ? { code: '4.06', payload: Buffer.from('no server account') } : undefined);
      await device.request(at);
      const [failure] = (await once(server, 'bootstrapFailed')) as [BootstrapFailedEvent];
      assert.equal(failure.operation, 'finish');
      assert.equal(failure.code, '4.06');
    });

    it('a device that stops answering: the step times out', async () => {
      await start({ configs: { '*': NOSEC }, requestTimeout: 500 });
      const events = collect(server);
      device.answer = (request) => (request.method === 'PUT' ? 'drop' : undefined);
      await device.request(at);
      const [failure] = (await once(server, 'bootstrapFailed')) as [BootstrapFailedEvent];
      assert.equal(failure.operation, 'write');
      assert.equal(failure.code, 'timeout');
      assert.ok(events.operations.some((event) => event.code === 'timeout'));
    });

    it('a bootstrap that outlasts sessionTimeout, and a second Bootstrap-Request that restarts', async () => {
      await start({ configs: { '*': NOSEC }, sessionTimeout: 1500, requestTimeout: 10_000, timing: { ackTimeout: 2000, ackRandomFactor: 1, maxRetransmit: 4 } });
      let stall = true;
      // every answer late, none too late: only the whole bootstrap outlasts its time
      device.answer = (request) => (stall && request.method === 'DELETE' ? new Promise((resolve) => setTimeout(() => resolve({ code: '2.02' }), 1000)) : undefined);
      await device.request(at);
      const [timedOut] = (await once(server, 'bootstrapFailed')) as [BootstrapFailedEvent];
      assert.match(timedOut.reason, /did not finish within 1.5 s/);
      assert.deepEqual(server.active, []);

      await device.request(at);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(server.active, ['dev-1']);
      stall = false;
      const events = collect(server);
      const replaced = once(server, 'bootstrapFailed');
      const finished = once(server, 'bootstrapFinished');
      await device.request(at);
      assert.match(((await replaced) as [BootstrapFailedEvent])[0].reason, /a new Bootstrap-Request replaced this one/);
      await finished;
      assert.equal(events.finished.length, 1);
      assert.equal(events.failed.length, 1);
    });

    it('an invalid configuration is refused when it is set, with the reason', () => {
      server = new LwM2MBootstrapServer({ port: 0 });
      assert.throws(() => server.setConfig('*', { servers: [] }), /servers must be a list of at least one/);
      assert.throws(() => server.setConfig('*', { servers: [{ uri: 'http://x' }] }), /servers\[0\]\.uri URI scheme http: is not supported; use coap:\/\/ or coaps:\/\//);
      assert.throws(() => server.setConfig('*', { servers: [{ uri: 'coap://x', security: 'psk' }] }), /does not fit the URI/);
      assert.throws(() => server.setConfig('*', { servers: [{ uri: 'coap://x' }, { uri: 'coap://y', shortServerId: 1 }] }), /shortServerId 1 is used by another account/);
      assert.throws(() => server.setConfig('*', { servers: [{ uri: 'coap://x' }], delete: ['/0/'] }), /delete: Invalid LwM2M path/);
      assert.throws(() => server.setConfig('*', { servers: [{ uri: 'coap://x' }], writes: { '/1/0': { 0: 1 } } }), /describe it in servers/);
      assert.throws(() => server.setConfig('', NOSEC), /must be a name or "\*"/);
      server.setConfig('a', NOSEC);
      assert.equal(server.config('a')!.servers[0]!.shortServerId, 101);
      server.setConfig('a', undefined);
      assert.deepEqual(server.configs(), {});
    });

    it('more bootstraps at once than maxSessions: 5.03 until one ends', async () => {
      await start({ configs: { '*': NOSEC }, maxSessions: 2 });
      const stalled = new Set(['a', 'b']);
      const devices = ['a', 'b', 'c'].map((name) => new ScriptedDevice(name));
      try {
        for (const one of devices) {
          await one.listen();
          one.answer = (request) => (stalled.has(one.name) && request.method === 'GET' ? new Promise((resolve) => setTimeout(() => resolve({ code: '4.04' }), 300)) : undefined);
        }
        assert.equal((await devices[0]!.request(at, ['ep=a'])).code, '2.04');
        assert.equal((await devices[1]!.request(at, ['ep=b'])).code, '2.04');
        const refused = await devices[2]!.request(at, ['ep=c']);
        assert.equal(refused.code, '5.03');
        assert.match(refused.payload.toString(), /2 bootstraps are under way/);
        while (server.active.length > 0) await once(server, 'bootstrapFinished');
        assert.equal((await devices[2]!.request(at, ['ep=c'])).code, '2.04');
      } finally {
        for (const one of devices) await one.close();
      }
    });

    it('garbage datagrams: dropped, and the server goes on', async () => {
      await start({ configs: { '*': NOSEC } });
      const socket = await boundUdpSocket();
      try {
        for (const garbage of [Buffer.alloc(0), Buffer.from([0xff]), Buffer.from('hello world'), Buffer.from([0x40, 0x02, 0x00, 0x01, 0xbf, 0xff, 0xff])]) {
          socket.send(garbage, at.port, at.address);
        }
        assert.equal((await device.request(at)).code, '2.04');
        await once(server, 'bootstrapFinished');
      } finally {
        socket.close();
      }
    });
  });

  describe('over DTLS', () => {
    it('bootstraps with the endpoint’s bootstrap PSK, and refuses another endpoint name or plain CoAP for it', async () => {
      const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
      await start({ configs: { '*': NOSEC }, dtls: { port: 0, address: '127.0.0.1', credentials: [{ identity: 'bs-dev-1', key, endpoint: 'dev-1' }] } });
      const events = collect(server);
      assert.equal((await device.request(at)).code, '4.00', 'dev-1 has a bootstrap PSK: plain CoAP is refused');
      assert.match(events.failed[0]!.reason, /must bootstrap over DTLS/);

      const secure = new ScriptedDevice('dev-1');
      const dtls = new DtlsClient({ host: '127.0.0.1', port: server.secureAddress()!.port, identity: 'bs-dev-1', key });
      secure.endpoint.use(dtls, true);
      try {
        const to = { address: '127.0.0.1', port: server.secureAddress()!.port };
        assert.equal((await secure.request(to, ['ep=dev-2'])).code, '4.00');
        assert.match(events.failed[1]!.reason, /bs-dev-1 may not bootstrap as dev-2/);
        const requested = once(server, 'bootstrapRequest');
        assert.equal((await secure.request(to)).code, '2.04');
        assert.equal((await requested)[0].identity, 'bs-dev-1');
        await once(server, 'bootstrapFinished');
        assert.deepEqual(secure.seen.map(({ method, path }) => `${method} ${path}`), ['GET /', 'GET /1', 'DELETE /0', 'DELETE /1', 'PUT /0/1', 'PUT /1/0', 'POST /bs']);
      } finally {
        await secure.close();
      }
    });
  });
});
