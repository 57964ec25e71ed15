import assert from 'node:assert/strict';
import {
  ClientError,
  ContentFormat,
  LwM2MClient,
  decode,
  decodeComposite,
  encode,
  encodeComposite,
  encodePaths,
  parseLinkFormat,
  type CompositeValue,
} from '../../lib';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';

const EP = 'dm-1';

describe('LwM2MClient device management (loopback)', () => {
  let server: FakeServer;
  let device: LwM2MClient;
  const executed: string[] = [];

  before(async () => {
    server = new FakeServer();
    const uri = await server.start();
    device = new LwM2MClient({
      endpoint: EP,
      server: uri,
      timing: FAST_TIMING,
      requestTimeout: 1000,
      objects: {
        3303: { 0: { 5700: 21.5, 5701: 'Cel', 5601: 20, 5602: 25 } },
        3311: { 0: { 5850: false, 5851: 40 } },
        3341: { 0: { 5527: 'hello' } },
        // a custom object without a model definition, with an execute handler taking arguments
        32769: {
          0: {
            1: 'custom',
            2: { execute: (args: string) => void executed.push(args) },
            3: { read: () => { throw new Error('sensor unplugged'); } },
            4: { value: 'locked', write: () => { throw new ClientError('4.03', 'this value is locked'); } },
          },
        },
      },
    });
    device.on('error', () => undefined);
    await device.start();
  });

  after(async () => {
    await device.stop();
    await server.close();
  });

  const get = (path: string, accept?: number) => server.request(EP, { method: 'GET', path: path.split('/').filter(Boolean), accept });

  describe('Read', () => {
    it('reads a single resource as text/plain by default, an opaque as opaque', async () => {
      const response = await get('/3/0/0');
      assert.equal(response.code, '2.05');
      assert.equal(response.contentFormat, ContentFormat.TEXT);
      assert.equal(response.payload.toString(), 'node-red-lwm2m');
    });

    // LwM2M CBOR is a 1.2 format: the versions tests below read it from a 1.2 client
    for (const format of [ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.OMA_JSON]) {
      it(`reads an instance, an object and a multiple resource in ${format}`, async () => {
        const instance = await get('/3303/0', format);
        assert.equal(instance.code, '2.05');
        assert.equal(instance.contentFormat, format);
        assert.deepEqual(decode(format, '/3303/0', instance.payload), { 5700: 21.5, 5701: 'Cel', 5601: 20, 5602: 25 });

        const object = await get('/3311', format);
        assert.deepEqual(decode(format, '/3311', object.payload), { 0: { 5850: false, 5851: 40 } });

        const multiple = await get('/3/0/6', format);
        assert.deepEqual(decode(format, '/3/0/6', multiple.payload), device.get('/3/0/6'));
      });
    }

    it('reads a resource instance', async () => {
      const response = await get('/3/0/7/1', ContentFormat.TEXT);
      assert.equal(response.code, '2.05');
      assert.equal(response.payload.toString(), '5000');
    });

    it('reads an instance in the preferred format (SenML CBOR) without Accept, leaving out what cannot be read', async () => {
      const response = await get('/3/0');
      assert.equal(response.contentFormat, ContentFormat.SENML_CBOR);
      const value = decode(ContentFormat.SENML_CBOR, '/3/0', response.payload) as Record<string, unknown>;
      assert.equal(value[0], 'node-red-lwm2m');
      assert.ok(!('4' in value), 'Reboot (executable) is not read');
      assert.equal(typeof value[13], 'number', 'Current Time comes from its read handler');
    });

    it('answers 4.06 for a format it cannot produce', async () => {
      assert.equal((await get('/3/0', ContentFormat.TEXT)).code, '4.06', 'text/plain cannot carry an instance');
      assert.equal((await get('/3/0/0', 50)).code, '4.06', 'application/json is not an LwM2M format');
      assert.equal((await get('/3/0/6', ContentFormat.OPAQUE)).code, '4.06');
    });

    it('answers 4.04 for what does not exist and 4.05 for an executable', async () => {
      assert.equal((await get('/3/1')).code, '4.04');
      assert.equal((await get('/3/0/99')).code, '4.04');
      assert.equal((await get('/3/0/7/9')).code, '4.04');
      assert.equal((await get('/7')).code, '4.04');
      assert.equal((await get('/3/0/4')).code, '4.05');
    });

    it('answers 4.01 for the Security object, which no management server may see', async () => {
      const response = await get('/0/0');
      assert.equal(response.code, '4.01');
    });

    it('answers 5.00 when a read handler throws, the code of a ClientError from a write handler, and keeps serving', async () => {
      const failed = await get('/32769/0/3');
      assert.equal(failed.code, '5.00');
      assert.equal(failed.payload.toString(), 'sensor unplugged');
      const refused = await server.request(EP, { method: 'PUT', path: ['32769', '0', '4'], contentFormat: ContentFormat.TEXT, payload: Buffer.from('open') });
      assert.equal(refused.code, '4.03');
      assert.equal(device.get('/32769/0/4'), 'locked');
      assert.equal((await get('/32769/0/1')).payload.toString(), 'custom');
    });

    it('answers 4.04 for paths that are not LwM2M paths, and keeps serving', async () => {
      assert.equal((await get('/foo')).code, '4.04');
      assert.equal((await get('/3/0/0/0/0')).code, '4.04');
      assert.equal((await get('/3/0/0')).code, '2.05');
    });
  });

  describe('Discover', () => {
    it('lists an object with its version, instances, resources and dim', async () => {
      const response = await get('/3', ContentFormat.LINK);
      assert.equal(response.code, '2.05');
      assert.equal(response.contentFormat, ContentFormat.LINK);
      const links = parseLinkFormat(response.payload.toString());
      assert.deepEqual(links[0], { uri: '/3', attributes: { ver: '1.2' } });
      assert.deepEqual(links[1], { uri: '/3/0', attributes: {} });
      assert.deepEqual(links.find((link) => link.uri === '/3/0/6')?.attributes, { dim: 2 });
      assert.ok(links.some((link) => link.uri === '/3/0/4'), 'executables are listed');
    });

    it('shows attributes written with Write-Attributes', async () => {
      const written = await server.request(EP, { method: 'PUT', path: ['3303', '0', '5700'], query: ['pmin=2', 'pmax=30', 'st=0.5'] });
      assert.equal(written.code, '2.04');
      const instance = parseLinkFormat((await get('/3303/0', ContentFormat.LINK)).payload.toString());
      assert.deepEqual(instance.find((link) => link.uri === '/3303/0/5700')?.attributes, { pmin: 2, pmax: 30, st: 0.5 });
      const resource = parseLinkFormat((await get('/3303/0/5700', ContentFormat.LINK)).payload.toString());
      assert.deepEqual(resource, [{ uri: '/3303/0/5700', attributes: { pmin: 2, pmax: 30, st: 0.5 } }]);
      // unset them again
      assert.equal((await server.request(EP, { method: 'PUT', path: ['3303', '0', '5700'], query: ['pmin', 'pmax', 'st'] })).code, '2.04');
      assert.deepEqual(parseLinkFormat((await get('/3303/0/5700', ContentFormat.LINK)).payload.toString())[0]!.attributes, {});
    });

    it('refuses bad attributes with 4.00', async () => {
      const put = (path: string[], query: string[]) => server.request(EP, { method: 'PUT', path, query });
      assert.equal((await put(['3303', '0', '5700'], ['pmin=abc'])).code, '4.00');
      assert.equal((await put(['3303', '0', '5701'], ['gt=5'])).code, '4.00', 'gt on a string resource');
      assert.equal((await put(['3303', '0'], ['gt=5'])).code, '4.00', 'gt on an instance');
      assert.equal((await put(['3303', '0', '5700'], ['lt=10', 'gt=5'])).code, '4.00', 'lt above gt');
      assert.equal((await put(['3303', '0', '5700'], ['colour=red'])).code, '4.00');
      assert.equal((await put(['3303', '9'], ['pmin=1'])).code, '4.04');
    });
  });

  describe('Write', () => {
    it('replaces a resource (PUT) in text and TLV', async () => {
      const text = await server.request(EP, { method: 'PUT', path: ['3', '0', '14'], contentFormat: ContentFormat.TEXT, payload: Buffer.from('+02:00') });
      assert.equal(text.code, '2.04');
      assert.equal(device.get('/3/0/14'), '+02:00');
      const tlv = await server.request(EP, { method: 'PUT', path: ['3', '0', '15'], contentFormat: ContentFormat.TLV, payload: encode(ContentFormat.TLV, '/3/0/15', 'Europe/Berlin') });
      assert.equal(tlv.code, '2.04');
      assert.equal(device.get('/3/0/15'), 'Europe/Berlin');
    });

    it('updates an instance partially (POST) and replaces it (PUT)', async () => {
      const events: Array<{ path: string }> = [];
      device.on('write', (event) => events.push(event));
      const update = await server.request(EP, {
        method: 'POST',
        path: ['3311', '0'],
        contentFormat: ContentFormat.SENML_JSON,
        payload: encode(ContentFormat.SENML_JSON, '/3311/0', { 5850: true }),
      });
      assert.equal(update.code, '2.04');
      assert.deepEqual(device.get('/3311/0'), { 5850: true, 5851: 40 });
      const replace = await server.request(EP, {
        method: 'PUT',
        path: ['3311', '0'],
        contentFormat: ContentFormat.SENML_CBOR,
        payload: encode(ContentFormat.SENML_CBOR, '/3311/0', { 5850: false }),
      });
      assert.equal(replace.code, '2.04');
      assert.deepEqual(device.get('/3311/0'), { 5850: false }, 'an optional writable resource not given is removed by a replace');
      assert.deepEqual(events.map((event) => event.path), ['/3311/0', '/3311/0']);
      device.set('/3311/0/5851', 40);
    });

    it('refuses a write to a read-only resource with 4.05 and changes nothing', async () => {
      const response = await server.request(EP, { method: 'PUT', path: ['3', '0', '0'], contentFormat: ContentFormat.TEXT, payload: Buffer.from('evil') });
      assert.equal(response.code, '4.05');
      assert.equal(device.get('/3/0/0'), 'node-red-lwm2m');
      const instance = await server.request(EP, {
        method: 'POST',
        path: ['3', '0'],
        contentFormat: ContentFormat.SENML_JSON,
        payload: encode(ContentFormat.SENML_JSON, '/3/0', { 14: '+05:00', 0: 'evil' }),
      });
      assert.equal(instance.code, '4.05');
      assert.notEqual(device.get('/3/0/14'), '+05:00', 'all or nothing');
    });

    it('answers 4.00 for a value of the wrong type or a malformed payload, 4.15 for an unknown format', async () => {
      const put = (path: string[], contentFormat: number | undefined, payload: Buffer) => server.request(EP, { method: 'PUT', path, contentFormat, payload });
      assert.equal((await put(['3', '0', '13'], ContentFormat.TEXT, Buffer.from('yesterday'))).code, '4.00');
      assert.equal((await put(['3', '0', '14'], ContentFormat.TLV, Buffer.from([0xff, 0x01]))).code, '4.00');
      assert.equal((await put(['3', '0', '14'], ContentFormat.SENML_JSON, Buffer.from('{not json'))).code, '4.00');
      assert.equal((await put(['3', '0', '14'], 50, Buffer.from('"x"'))).code, '4.15');
      assert.equal((await put(['3', '0', '14'], undefined, Buffer.from('x'))).code, '4.00');
      assert.equal((await put(['3'], ContentFormat.TLV, Buffer.from([0xc1, 0x0e, 0x41]))).code, '4.05', 'no write on a whole object');
      assert.equal((await put(['3', '0', '99'], ContentFormat.TEXT, Buffer.from('1'))).code, '4.04');
    });

    it('writes several resources at once with Write-Composite (iPATCH)', async () => {
      const values: CompositeValue = { '/3/0/14': '+01:00', '/3311/0/5851': 77 };
      const events: Array<{ path: string; value: unknown }> = [];
      const onWrite = (event: { path: string; value: unknown }) => events.push(event);
      device.on('write', onWrite);
      const response = await server.request(EP, { method: 'IPATCH', path: [], contentFormat: ContentFormat.SENML_CBOR, payload: encodeComposite(ContentFormat.SENML_CBOR, values) });
      device.off('write', onWrite);
      assert.equal(response.code, '2.04');
      assert.equal(device.get('/3/0/14'), '+01:00');
      assert.equal(device.get('/3311/0/5851'), 77);
      // one write event per path written, with its new value
      assert.deepEqual(events, [
        { path: '/3/0/14', value: '+01:00' },
        { path: '/3311/0/5851', value: 77 },
      ]);
      const refused = await server.request(EP, {
        method: 'IPATCH',
        path: [],
        contentFormat: ContentFormat.SENML_JSON,
        payload: encodeComposite(ContentFormat.SENML_JSON, { '/3/0/14': '+09:00', '/3/0/1': 'x' }),
      });
      assert.equal(refused.code, '4.05');
      assert.equal(device.get('/3/0/14'), '+01:00', 'nothing was written');
    });

    it('reads several paths with Read-Composite (FETCH)', async () => {
      const response = await server.request(EP, {
        method: 'FETCH',
        path: [],
        contentFormat: ContentFormat.SENML_JSON,
        accept: ContentFormat.SENML_CBOR,
        payload: encodePaths(ContentFormat.SENML_JSON, ['/3/0/0', '/3303/0/5700', '/3311/0']),
      });
      assert.equal(response.code, '2.05');
      assert.equal(response.contentFormat, ContentFormat.SENML_CBOR);
      const values = decodeComposite(ContentFormat.SENML_CBOR, response.payload, undefined, { paths: ['/3/0/0', '/3303/0/5700', '/3311/0'] });
      assert.equal(values['/3/0/0'], 'node-red-lwm2m');
      assert.equal(typeof values['/3303/0/5700'], 'number');
      assert.deepEqual(values['/3311/0'], device.get('/3311/0'));
    });
  });

  describe('Execute, Create, Delete', () => {
    it('executes Reboot, and a custom resource with arguments', async () => {
      const reboot = new Promise((resolve) => device.once('reboot', resolve));
      const response = await server.request(EP, { method: 'POST', path: ['3', '0', '4'] });
      assert.equal(response.code, '2.04');
      await reboot;
      const custom = await server.request(EP, { method: 'POST', path: ['32769', '0', '2'], contentFormat: ContentFormat.TEXT, payload: Buffer.from("0='on',1") });
      assert.equal(custom.code, '2.04');
      assert.deepEqual(executed, ["0='on',1"]);
      // the reboot re-registers: wait for it so later tests talk to the new registration
      await new Promise((resolve) => device.once('registered', resolve));
    });

    it('refuses malformed arguments (4.00) and execute on a value (4.05)', async () => {
      assert.equal((await server.request(EP, { method: 'POST', path: ['32769', '0', '2'], payload: Buffer.from('on please') })).code, '4.00');
      assert.equal((await server.request(EP, { method: 'POST', path: ['3', '0', '9'] })).code, '4.05');
      assert.equal((await server.request(EP, { method: 'POST', path: ['3', '0', '77'] })).code, '4.04');
    });

    it('creates an instance (2.01 with its location), tells the server in an Update, and deletes it (2.02)', async () => {
      const before = server.requests.length;
      const created = await server.request(EP, {
        method: 'POST',
        path: ['3303'],
        contentFormat: ContentFormat.SENML_JSON,
        payload: encode(ContentFormat.SENML_JSON, '/3303', { 7: { 5700: 18, 5701: 'Cel' } }),
      });
      assert.equal(created.code, '2.01');
      assert.deepEqual(created.options.filter((option) => option.number === 8).map((option) => option.value.toString()), ['3303', '7']);
      assert.deepEqual(device.get('/3303/7'), { 5700: 18, 5701: 'Cel' });
      const update = await server.waitFor((request) => request.path.startsWith('/rd/') && request.payload.toString().includes('</3303/7>'), before);
      assert.ok(update);

      // TLV without an instance id: the client picks the first free one
      const tlv = await server.request(EP, { method: 'POST', path: ['3303'], contentFormat: ContentFormat.TLV, payload: encode(ContentFormat.TLV, '/3303/1', { 5700: 5 }) });
      assert.equal(tlv.code, '2.01');
      assert.deepEqual(tlv.options.filter((option) => option.number === 8).map((option) => option.value.toString()), ['3303', '1']);

      assert.equal((await server.request(EP, { method: 'DELETE', path: ['3303', '7'] })).code, '2.02');
      assert.equal(device.get('/3303/7'), undefined);
      assert.equal((await server.request(EP, { method: 'DELETE', path: ['3303', '7'] })).code, '4.04');
      assert.equal((await server.request(EP, { method: 'DELETE', path: ['3303', '1'] })).code, '2.02');
    });

    it('refuses to create what exists or what it does not support, and to delete the Device', async () => {
      const payload = encode(ContentFormat.SENML_JSON, '/3303', { 0: { 5700: 1 } });
      assert.equal((await server.request(EP, { method: 'POST', path: ['3303'], contentFormat: ContentFormat.SENML_JSON, payload })).code, '4.00');
      assert.equal((await server.request(EP, { method: 'POST', path: ['3304'], contentFormat: ContentFormat.SENML_JSON, payload: encode(ContentFormat.SENML_JSON, '/3304', { 0: { 5700: 1 } }) })).code, '4.04');
      assert.equal((await server.request(EP, { method: 'DELETE', path: ['3', '0'] })).code, '4.05');
      assert.equal((await server.request(EP, { method: 'DELETE', path: ['3303'] })).code, '4.05');
    });

    it('answers 4.05 for requests that are no LwM2M operation', async () => {
      assert.equal((await server.request(EP, { method: 'POST', path: [] })).code, '4.05');
      assert.equal((await server.request(EP, { method: 'PATCH', path: ['3', '0'] })).code, '4.05');
      assert.equal((await server.request(EP, { method: 'FETCH', path: ['3'], contentFormat: ContentFormat.SENML_JSON, payload: Buffer.from('[]') })).code, '4.05');
      assert.equal((await get('/3/0/0')).code, '2.05', 'still serving');
    });
  });
});

describe('LwM2MClient versions (loopback)', () => {
  let server: FakeServer;
  let uri: string;
  const devices: LwM2MClient[] = [];

  before(async () => {
    server = new FakeServer();
    uri = await server.start();
  });

  after(async () => {
    await Promise.all(devices.map((device) => device.stop()));
    await server.close();
  });

  const start = async (endpoint: string, version: '1.0' | '1.1' | '1.2') => {
    const device = new LwM2MClient({ endpoint, server: uri, version, timing: FAST_TIMING, requestTimeout: 1000, objects: { 3303: { 0: { 5700: 1 } } } });
    devices.push(device);
    await device.start();
    return device;
  };

  it('a 1.0 client speaks TLV, text, opaque and OMA JSON only, and knows no composite operations', async () => {
    await start('v10', '1.0');
    const read = (accept: number) => server.request('v10', { method: 'GET', path: ['3303', '0'], accept });
    assert.equal((await read(ContentFormat.TLV)).code, '2.05');
    assert.equal((await read(ContentFormat.OMA_JSON)).code, '2.05');
    assert.equal((await read(ContentFormat.SENML_JSON)).code, '4.06');
    assert.equal((await read(ContentFormat.LWM2M_CBOR)).code, '4.06');
    const instance = await server.request('v10', { method: 'GET', path: ['3303', '0'] });
    assert.equal(instance.contentFormat, ContentFormat.TLV, 'TLV is its preferred format');
    const senmlWrite = await server.request('v10', { method: 'PUT', path: ['3', '0', '14'], contentFormat: ContentFormat.SENML_JSON, payload: encode(ContentFormat.SENML_JSON, '/3/0/14', '+01:00') });
    assert.equal(senmlWrite.code, '4.15');
    const fetch = await server.request('v10', { method: 'FETCH', path: [], contentFormat: ContentFormat.SENML_JSON, payload: encodePaths(ContentFormat.SENML_JSON, ['/3/0/0']) });
    assert.equal(fetch.code, '4.05');
    assert.equal((await server.request('v10', { method: 'PUT', path: ['3303', '0', '5700'], query: ['pmin=1'] })).code, '2.04');
  });

  it('a 1.1 client refuses the 1.2 attributes and LwM2M CBOR', async () => {
    const device = await start('v11', '1.1');
    assert.equal((await server.request('v11', { method: 'PUT', path: ['3303', '0', '5700'], query: ['con=1'] })).code, '4.00');
    assert.equal((await server.request('v11', { method: 'GET', path: ['3303', '0'], accept: ContentFormat.LWM2M_CBOR })).code, '4.06');
    await assert.rejects(device.send(['/3303/0/5700'], { format: ContentFormat.LWM2M_CBOR }), /cannot carry a Send in LwM2M 1.1/);
  });

  it('a 1.2 client reads in LwM2M CBOR, no longer in OMA JSON, and sends in LwM2M CBOR', async () => {
    const device = await start('v12', '1.2');
    assert.equal((await server.request('v12', { method: 'GET', path: ['3303', '0'], accept: ContentFormat.LWM2M_CBOR })).code, '2.05');
    assert.equal((await server.request('v12', { method: 'GET', path: ['3303', '0'], accept: ContentFormat.OMA_JSON })).code, '4.06');
    await device.send(['/3303/0/5700'], { format: ContentFormat.LWM2M_CBOR });
    const dp = server.requests.filter((request) => request.path === '/dp').at(-1)!;
    assert.deepEqual(decodeComposite(ContentFormat.LWM2M_CBOR, dp.payload), { '/3303/0/5700': 1 });
  });

  it('refuses a preferred format its version does not have', () => {
    assert.throws(() => new LwM2MClient({ endpoint: 'x', server: uri, version: '1.0', preferredFormat: ContentFormat.SENML_CBOR }), /not a format of LwM2M 1.0/);
  });
});
