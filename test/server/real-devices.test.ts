/**
 * What running the server against real LwM2M clients showed, as byte-level tests with a raw CoAP
 * device that answers the way those clients do: OMA JSON with the instance as base name, TLV for
 * writes to 1.0 devices, Create without an id (the device picks it), an empty instance that keeps
 * its header, and the API traps found on the way (DTLS without credentials, console-like loggers,
 * composite requests a device drops).
 */
import assert from 'node:assert/strict';
import {
  CoapEndpoint,
  ContentFormat,
  LwM2MClient,
  LwM2MError,
  LwM2MServer,
  decode,
  type IncomingRequest,
  type OutgoingResponse,
} from '../../lib';
import { OptionNumber } from '../../lib/transport/message';
import { FAST_TIMING } from '../helpers/fake-server';

const once = <T>(emitter: NodeJS.EventEmitter, event: string) => new Promise<T>((resolve) => emitter.once(event, resolve));

describe('LwM2MServer against what real devices do', function () {
  this.timeout(30_000);
  let server: LwM2MServer;
  let device: CoapEndpoint;
  let requests: IncomingRequest[];
  /** how the raw device answers; the default is 2.05 "raw" */
  let answer: (request: IncomingRequest) => OutgoingResponse | Promise<OutgoingResponse>;
  const logged: string[] = [];

  beforeEach(async () => {
    logged.length = 0;
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 2000, logger: (_level, line) => logged.push(line) });
    await server.listen();
    requests = [];
    answer = () => ({ code: '2.05', contentFormat: ContentFormat.TEXT, payload: Buffer.from('raw') });
    device = new CoapEndpoint({ timing: FAST_TIMING });
    device.setRequestHandler((request) => {
      requests.push(request);
      return answer(request);
    });
    await device.listen(0, '127.0.0.1');
  });

  afterEach(async () => {
    await device.close();
    await server.close();
  });

  const register = async (endpoint: string, version: string, links: string) => {
    const peer = { address: '127.0.0.1', port: server.address().port };
    const response = await device.request(peer, { method: 'POST', path: ['rd'], query: [`ep=${endpoint}`, 'lt=60', `lwm2m=${version}`], contentFormat: ContentFormat.LINK, payload: Buffer.from(links) });
    assert.equal(response.code, '2.01');
  };
  const location = (...segments: string[]) => segments.map((segment) => ({ number: OptionNumber.LOCATION_PATH, value: Buffer.from(segment) }));

  describe('writes to a 1.0 device that announces OMA JSON', () => {
    beforeEach(() => register('json-1', '1.0', '</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>'));

    it('a plain write() goes in TLV, which every 1.0 client takes', async () => {
      answer = () => ({ code: '2.04' });
      await server.write('json-1', '/3/0/14', '+02:00');
      const write = requests.at(-1)!;
      assert.equal(write.method, 'PUT');
      assert.equal(write.contentFormat, ContentFormat.TLV);
      assert.equal(decode(ContentFormat.TLV, '/3/0/14', write.payload), '+02:00');
      // reads still use what the device announced
      answer = () => ({ code: '2.05', contentFormat: ContentFormat.OMA_JSON, payload: Buffer.from('{"bn":"/3/0/","e":[{"n":"14","sv":"+01:00"}]}') });
      assert.equal(await server.read('json-1', '/3/0/14'), '+01:00');
      assert.equal(requests.at(-1)!.accept, ContentFormat.OMA_JSON);
    });

    it('OMA JSON, when asked for, names the instance as base name and the resource in "n", which strict 1.0 clients require', async () => {
      // a strict 1.0 client: a resource path as base name is "not found" (4.04), as the real one answered
      answer = (request) => {
        const document = JSON.parse(request.payload.toString()) as { bn?: string };
        return { code: document.bn === '/3/0/' ? '2.04' : '4.04' };
      };
      await server.write('json-1', '/3/0/14', '+02:00', { format: ContentFormat.OMA_JSON });
      assert.equal(requests.at(-1)!.payload.toString(), '{"bn":"/3/0/","e":[{"n":"14","sv":"+02:00"}]}');
      await server.write('json-1', '/3/0/13', 1367491215, { format: ContentFormat.OMA_JSON });
      assert.equal(requests.at(-1)!.payload.toString(), '{"bn":"/3/0/","e":[{"n":"13","v":1367491215}]}');
    });
  });

  describe('Create', () => {
    it('without an id, to a device that takes TLV: the resources alone, and the id from the Location-Path', async () => {
      await register('tlv-1', '1.0', '</3/0>,</3303/0>');
      answer = () => ({ code: '2.01', options: location('3303', '7') });
      assert.equal(await server.create('tlv-1', '/3303', { 5700: 1.5 }), '/3303/7');
      const create = requests.at(-1)!;
      assert.equal(create.method, 'POST');
      assert.deepEqual(create.path, ['3303']);
      assert.equal(create.contentFormat, ContentFormat.TLV);
      assert.equal(create.payload[0]! >> 6, 3, 'the payload starts with a resource, not an object instance header');
      assert.deepEqual(decode(ContentFormat.TLV, '/3303/0', create.payload), { 5700: 1.5 });
    });

    it('without an id, to a device that takes TLV although it prefers SenML: TLV, so the device picks the id', async () => {
      await register('mixed-1', '1.1', '</>;rt="oma.lwm2m";ct="112 11542",</3/0>,</3303/0>');
      answer = () => ({ code: '2.01', options: location('3303', '1') });
      assert.equal(await server.create('mixed-1', '/3303', { 5700: 2 }), '/3303/1');
      assert.equal(requests.at(-1)!.contentFormat, ContentFormat.TLV);
    });

    it('without an id, to a device without TLV: the id is picked from a Discover, not from a stale registration', async () => {
      // registered with /3303/0 only; since then the device made /3303/1 itself
      await register('senml-1', '1.1', '</>;rt="oma.lwm2m";ct=112,</3/0>,</3303/0>');
      answer = (request) => {
        if (request.method === 'GET') return { code: '2.05', contentFormat: ContentFormat.LINK, payload: Buffer.from('</3303>,</3303/0>,</3303/0/5700>,</3303/1>,</3303/1/5700>') };
        return { code: '2.01', options: location('3303', '2') };
      };
      assert.equal(await server.create('senml-1', '/3303', { 5700: 3 }), '/3303/2');
      const [discover, create] = requests.slice(-2);
      assert.equal(discover!.accept, ContentFormat.LINK);
      assert.equal(create!.contentFormat, ContentFormat.SENML_CBOR);
      assert.deepEqual(decode(ContentFormat.SENML_CBOR, '/3303', create!.payload), { 2: { 5700: 3 } });
    });

    it('without an id, when the device refuses Discover: the id is picked from the registration', async () => {
      await register('nodisc-1', '1.1', '</>;rt="oma.lwm2m";ct=110,</3/0>,</3303/0>,</3303/1>');
      answer = (request) => (request.method === 'GET' ? { code: '4.05' } : { code: '2.01', options: location('3303', '2') });
      assert.equal(await server.create('nodisc-1', '/3303', { 5700: 4 }), '/3303/2');
      assert.deepEqual(decode(ContentFormat.SENML_JSON, '/3303', requests.at(-1)!.payload), { 2: { 5700: 4 } });
    });

    it('an empty instance keeps its instance header (TLV) or its name (SenML)', async () => {
      await register('empty-1', '1.1', '</>;rt="oma.lwm2m";ct="110 11542",</3/0>');
      answer = () => ({ code: '2.01', options: location('3303', '42') });
      assert.equal(await server.create('empty-1', '/3303/42', {}, { format: ContentFormat.TLV }), '/3303/42');
      assert.deepEqual(requests.at(-1)!.payload, Buffer.from([0x00, 42]));
      assert.equal(await server.create('empty-1', '/3303/42', {}, { format: ContentFormat.SENML_JSON }), '/3303/42');
      assert.equal(requests.at(-1)!.payload.toString(), '[{"bn":"/3303/","n":"42"}]');
    });

    it('says so when a device creates without telling the id', async () => {
      await register('noloc-1', '1.0', '</3/0>,</3303/0>');
      answer = () => ({ code: '2.01' });
      assert.equal(await server.create('noloc-1', '/3303', { 5700: 1 }), '/3303');
      assert.ok(logged.some((line) => /without a Location-Path/.test(line)), logged.join('\n'));
    });
  });

  it('an empty instance created through LwM2MClient exists afterwards with the id asked for', async () => {
    const client = new LwM2MClient({ endpoint: 'sim-empty', version: '1.2', server: `coap://127.0.0.1:${server.address().port}`, timing: FAST_TIMING, objects: { 3303: { 0: { 5700: 1 } } } });
    client.on('error', () => undefined);
    const registered = once(server, 'register');
    await client.start();
    await registered;
    try {
      for (const [index, format] of [ContentFormat.TLV, ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.LWM2M_CBOR].entries()) {
        const id = 40 + index;
        assert.equal(await server.create('sim-empty', `/3303/${id}`, {}, { format }), `/3303/${id}`);
        assert.deepEqual(await server.read('sim-empty', `/3303/${id}`, { format }), {});
        await server.delete('sim-empty', `/3303/${id}`);
      }
    } finally {
      await client.stop();
    }
  });

  it('a composite request the device drops ends in TIMEOUT that says the device did not answer FETCH', async () => {
    await register('nofetch-1', '1.1', '</>;rt="oma.lwm2m";ct=110,</3/0>');
    // the device never answers FETCH or iPATCH (its message layer acknowledges, nothing more comes)
    answer = () => new Promise<OutgoingResponse>(() => undefined);
    const silent = await server.readComposite('nofetch-1', ['/3/0/0'], { timeout: 1500 }).catch((error: unknown) => error);
    assert.ok(silent instanceof LwM2MError);
    assert.equal(silent.code, 'TIMEOUT');
    assert.match(silent.message, /did not answer FETCH/);
    const patch = await server.writeComposite('nofetch-1', { '/3/0/14': '+01:00' }, { timeout: 1500 }).catch((error: unknown) => error);
    assert.match((patch as Error).message, /did not answer IPATCH/);
  });
});

describe('LwM2MServer options found as traps', () => {
  it('DTLS without credentials starts, and takes them later with setCredentials', async () => {
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', dtls: { port: 0 } });
    await server.listen();
    try {
      server.setCredentials([{ identity: 'late-id', key: Buffer.from('late-secret'), endpoint: 'late' }]);
      const client = new LwM2MClient({
        endpoint: 'late',
        server: `coaps://127.0.0.1:${server.secureAddress()!.port}`,
        psk: { identity: 'late-id', key: Buffer.from('late-secret') },
        timing: FAST_TIMING,
        objects: { 3303: { 0: { 5700: 1 } } },
      });
      client.on('error', () => undefined);
      const registered = once(server, 'register');
      await client.start();
      await registered;
      assert.equal(server.registration('late')?.identity, 'late-id');
      await client.stop();
    } finally {
      await server.close();
    }
    assert.throws(() => new LwM2MServer({ dtls: { credentials: 'none' as never } }), /credentials must be an array/);
  });

  it('takes a console-like logger, and a logger that throws does not take the server down', async () => {
    const lines: string[] = [];
    const consoleLike = { warn: (line: string) => lines.push(`warn ${line}`), info: (line: string) => lines.push(`info ${line}`) };
    const throwing = { warn: () => { throw new Error('logger broke'); } };
    const servers = [new LwM2MServer({ port: 0, address: '127.0.0.1', logger: consoleLike }), new LwM2MServer({ port: 0, address: '127.0.0.1', logger: throwing })];
    const client = new CoapEndpoint({ timing: FAST_TIMING });
    await client.listen(0, '127.0.0.1');
    try {
      for (const server of servers) {
        await server.listen();
        const peer = { address: '127.0.0.1', port: server.address().port };
        // bad input the server logs: a request to a path it does not have
        assert.equal((await client.request(peer, { method: 'GET', path: ['nothing'] })).code, '4.04');
        // and it still serves
        const registered = await client.request(peer, { method: 'POST', path: ['rd'], query: ['ep=after-log', 'lt=60'], contentFormat: ContentFormat.LINK, payload: Buffer.from('</3/0>') });
        assert.equal(registered.code, '2.01');
      }
      assert.ok(lines.some((line) => /^warn .*no such resource/.test(line)), lines.join('\n'));
    } finally {
      await client.close();
      await Promise.all(servers.map((server) => server.close()));
    }
  });

  it('refuses a logger it cannot use when it is made, not inside a socket handler', () => {
    assert.throws(() => new LwM2MServer({ logger: 'console' as never }), /logger must be a function/);
    assert.throws(() => new LwM2MServer({ logger: {} as never }), /logger must be a function/);
  });
});
