/**
 * The server's registration interface and Send as a raw device sees them: libcoap's coap-client-notls
 * for the edge cases of Register/Update/De-register, and a bare CoapEndpoint for what needs a device
 * that answers (alternate root path, a new address, notifications out of order).
 */
import assert from 'node:assert/strict';
import {
  CoapEndpoint,
  ContentFormat,
  LwM2MServer,
  encodeComposite,
  type IncomingRequest,
  type NotifyEvent,
  type Registration,
} from '../../lib';
import { OptionNumber, encodeBlock } from '../../lib/transport/message';
import { FAST_TIMING } from '../helpers/fake-server';
import { LIBCOAP_AVAILABLE, coapClient, locationPath, type CoapClientOptions, type CoapClientResponse } from '../helpers/libcoap';

const LINKS = '</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>';

describe('LwM2MServer uplink edge cases', function () {
  this.timeout(30_000);
  let server: LwM2MServer;
  let base: string;
  const logged: string[] = [];

  before(() => assert.ok(LIBCOAP_AVAILABLE, 'libcoap3-bin is not installed (apt-get install -y libcoap3-bin)'));

  beforeEach(async () => {
    logged.length = 0;
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 2000, logger: (_level, line) => logged.push(line) });
    const { port } = await server.listen();
    base = `coap://127.0.0.1:${port}`;
  });

  afterEach(() => server.close());

  const send = async (path: string, options: CoapClientOptions = {}): Promise<CoapClientResponse> => {
    const result = await coapClient(base + path, { timeoutSeconds: 5, ...options });
    assert.equal(result.responses.length, 1, `${result.command.join(' ')}\n${result.stdout}\n${result.stderr}`);
    return result.responses[0]!;
  };
  const register = (query: string, payload: string = LINKS, extra: CoapClientOptions = {}) =>
    send(`/rd?${query}`, { method: 'post', contentFormat: ContentFormat.LINK, payload, ...extra });

  describe('with coap-client-notls as the device', () => {
    it('registers with the defaults: lifetime 86400, LwM2M 1.0, binding U; /0 is not listed', async () => {
      const response = await register('ep=raw-1', '</0/0>,</1/0>,</3/0>');
      assert.equal(response.code, '2.01');
      assert.match(locationPath(response), /^rd\/[\w-]+$/);
      const registration = server.registration('raw-1')!;
      assert.equal(registration.lifetime, 86400);
      assert.equal(registration.version, '1.0');
      assert.equal(registration.binding, 'U');
      assert.deepEqual(registration.objects, [{ objectId: 1, instanceId: 0 }, { objectId: 3, instanceId: 0 }]);
    });

    it('refuses bad Register queries with 4.00 and unsupported versions with 4.12', async () => {
      assert.equal((await register('lt=60')).code, '4.00', 'no endpoint name');
      assert.equal((await register('ep=x&lt=abc')).code, '4.00', 'lifetime not a number');
      assert.equal((await register('ep=x&lt=0')).code, '4.00', 'lifetime 0');
      assert.equal((await register('ep=x&b=XYZ')).code, '4.00', 'unknown binding');
      assert.equal((await register('ep=x&ep=y')).code, '4.00', 'ep twice');
      assert.equal((await register('ep=x&lwm2m=abc')).code, '4.00', 'not a version');
      const future = await register('ep=x&lwm2m=2.0');
      assert.equal(future.code, '4.12');
      assert.match(future.payload.toString(), /2.0 is not supported/);
      assert.equal((await register('ep=x&lwm2m=1.3')).code, '4.12');
      assert.equal(server.registrations().length, 0);
    });

    it('refuses a malformed object list and a non-link Content-Format with 4.00', async () => {
      assert.equal((await register('ep=x', '</3/0>,<broken')).code, '4.00');
      assert.equal((await register('ep=x', '</3/x>')).code, '4.00');
      assert.equal((await register('ep=x', '</3/0/1>')).code, '4.00', 'a resource is no object list entry');
      assert.equal((await register('ep=x', Buffer.from([0xff, 0xfe]).toString('latin1'))).code, '4.00');
      assert.equal((await register('ep=x', LINKS, { contentFormat: ContentFormat.SENML_JSON })).code, '4.00');
      assert.equal(server.registrations().length, 0);
    });

    it('updates (2.04), de-registers (2.02), and answers 4.04 for unknown ids', async () => {
      const location = locationPath(await register('ep=raw-2&lt=60&lwm2m=1.1'));
      const updates: string[][] = [];
      server.on('update', (_registration: Registration, changes: string[]) => updates.push(changes));
      assert.equal((await send(`/${location}?lt=90`, { method: 'post' })).code, '2.04');
      assert.equal(server.registration('raw-2')!.lifetime, 90);
      // coap-client speaks from a new port each run: the address is taken from the Update
      assert.ok(updates[0]!.includes('lifetime') && updates[0]!.includes('address'), updates[0]!.join());
      assert.equal((await send(`/${location}?lt=abc`, { method: 'post' })).code, '4.00');
      assert.equal((await send(`/${location}?ep=other`, { method: 'post' })).code, '4.00');
      assert.equal((await send('/rd/nonexistent', { method: 'post' })).code, '4.04');
      assert.equal((await send('/rd/nonexistent', { method: 'delete' })).code, '4.04');
      assert.equal((await send(`/${location}`, { method: 'delete' })).code, '2.02');
      assert.equal((await send(`/${location}`, { method: 'post' })).code, '4.04', 'gone after De-register');
      assert.equal(server.registrations().length, 0);
    });

    it('refuses a Send from a device that is not registered (4.03), and undecodable Send payloads (4.00, 4.15)', async () => {
      const payload = encodeComposite(ContentFormat.SENML_JSON, { '/3303/0/5700': 20 });
      assert.equal((await send('/dp', { method: 'post', contentFormat: ContentFormat.SENML_JSON, payload })).code, '4.03');
      assert.equal((await send('/dp', { method: 'get' })).code, '4.05');
      assert.equal((await send('/nothing/here')).code, '4.04');
      assert.equal((await send('/rd', { method: 'get' })).code, '4.05');
      assert.ok(logged.some((line) => /not registered/.test(line)), logged.join('\n'));
    });
  });

  describe('with a raw CoapEndpoint as the device', () => {
    let device: CoapEndpoint;
    let requests: IncomingRequest[];

    beforeEach(async () => {
      requests = [];
      device = new CoapEndpoint({ timing: FAST_TIMING });
      device.setRequestHandler((request) => {
        requests.push(request);
        return { code: '2.05', contentFormat: ContentFormat.TEXT, payload: Buffer.from('raw'), observe: request.observe === 0 ? 1 : undefined };
      });
      await device.listen(0, '127.0.0.1');
    });

    afterEach(() => device.close());

    const peer = () => ({ address: '127.0.0.1', port: server.address().port });
    const rawRegister = async (endpoint: string, links: string, query: string[] = []) => {
      const response = await device.request(peer(), { method: 'POST', path: ['rd'], query: [`ep=${endpoint}`, 'lt=60', 'lwm2m=1.1', ...query], contentFormat: ContentFormat.LINK, payload: Buffer.from(links) });
      assert.equal(response.code, '2.01');
      return response.options.filter((option) => option.number === OptionNumber.LOCATION_PATH).map((option) => option.value.toString());
    };

    it('prefixes every downlink URI with an alternate root path', async () => {
      await rawRegister('alt', '</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>,</lwm2m/3303/0>');
      const registration = server.registration('alt')!;
      assert.equal(registration.rootPath, '/lwm2m');
      assert.deepEqual(registration.objects.map((object) => object.objectId), [3, 3303]);
      assert.equal(await server.read('alt', '/3/0/0', { format: ContentFormat.TEXT }), 'raw');
      assert.deepEqual(requests.at(-1)!.path, ['lwm2m', '3', '0', '0']);
      assert.equal(requests.at(-1)!.peer.port, server.address().port, 'downlink leaves from the listening socket (NAT-friendly)');
    });

    it('sends downlink to the address of the latest Update', async () => {
      const location = await rawRegister('moving', '</3/0>');
      const elsewhere = new CoapEndpoint({ timing: FAST_TIMING });
      const seen: IncomingRequest[] = [];
      elsewhere.setRequestHandler((request) => {
        seen.push(request);
        return { code: '2.05', contentFormat: ContentFormat.TEXT, payload: Buffer.from('moved') };
      });
      await elsewhere.listen(0, '127.0.0.1');
      try {
        assert.equal((await elsewhere.request(peer(), { method: 'POST', path: location })).code, '2.04');
        assert.equal(server.registration('moving')!.port, elsewhere.address().port);
        assert.equal(await server.read('moving', '/3/0/0', { format: ContentFormat.TEXT }), 'moved');
        assert.equal(seen.length, 1);
      } finally {
        await elsewhere.close();
      }
    });

    it('matches notifications by token and peer, and drops an older one that arrives late', async () => {
      await rawRegister('order', '</3/0>');
      const observation = await server.observe('order', '/3/0/0', undefined, { format: ContentFormat.TEXT });
      const origin = requests.at(-1)!;
      const values: unknown[] = [];
      server.on('notify', (event: NotifyEvent) => values.push(event.value));
      const notify = (observe: number, text: string) => device.notify(origin, { code: '2.05', contentFormat: ContentFormat.TEXT, payload: Buffer.from(text), observe }, true);
      await notify(5, 'five');
      await notify(3, 'three'); // older than 5: stale
      await notify(6, 'six');
      assert.deepEqual(values, ['five', 'six']);
      // the same token from another socket is not this observation
      const stranger = new CoapEndpoint({ timing: FAST_TIMING });
      await stranger.listen(0, '127.0.0.1');
      try {
        const outcome = await stranger.notify({ ...origin, peer: peer() }, { code: '2.05', payload: Buffer.from('x'), observe: 7 }, true);
        assert.equal(outcome, 'reset');
      } finally {
        await stranger.close();
      }
      assert.deepEqual(values, ['five', 'six']);
      assert.equal(observation.endpoint, 'order');
    });

    it('accepts a Send from the registered address and emits it', async () => {
      await rawRegister('sender', '</3303/0>');
      const received = new Promise<{ values: unknown }>((resolve) => server.once('send', resolve));
      const response = await device.request(peer(), {
        method: 'POST',
        path: ['dp'],
        contentFormat: ContentFormat.SENML_CBOR,
        payload: encodeComposite(ContentFormat.SENML_CBOR, { '/3303/0/5700': 19.5 }),
      });
      assert.equal(response.code, '2.04');
      assert.deepEqual((await received).values, { '/3303/0/5700': 19.5 });
      const broken = await device.request(peer(), { method: 'POST', path: ['dp'], contentFormat: ContentFormat.SENML_CBOR, payload: Buffer.from([0xff, 0x00]) });
      assert.equal(broken.code, '4.00');
      const wrong = await device.request(peer(), { method: 'POST', path: ['dp'], contentFormat: ContentFormat.TLV, payload: Buffer.from([0xc1, 0x00, 0x01]) });
      assert.equal(wrong.code, '4.15');
    });

    it('refuses a Register that asks for a later Block2 block, without registering anything', async () => {
      const response = await device.request(peer(), {
        method: 'POST',
        path: ['rd'],
        query: ['ep=blk', 'lt=60'],
        contentFormat: ContentFormat.LINK,
        payload: Buffer.from('</3/0>'),
        options: [{ number: OptionNumber.BLOCK2, value: encodeBlock({ num: 1, more: false, szx: 0 }) }],
      });
      assert.equal(response.code, '4.08');
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(server.registration('blk'), undefined);
    });

    it('rate-limits its log lines about bad input', async () => {
      for (let i = 0; i < 30; i++) await device.request(peer(), { method: 'GET', path: ['nothing', String(i)] });
      assert.ok(logged.length <= 10, `${logged.length} lines for 30 bad requests`);
      assert.ok(logged.length >= 5);
    });
  });

  describe('requireSameAddress: Updates only from the registering address (plain CoAP)', () => {
    // two loopback addresses: the device on 127.0.0.1, another host on ::1, a dual-stack server on ::
    const endpoints: CoapEndpoint[] = [];
    const host = async (address: string) => {
      const endpoint = new CoapEndpoint({ timing: FAST_TIMING });
      endpoint.setRequestHandler(() => ({ code: '2.05', contentFormat: ContentFormat.TEXT, payload: Buffer.from(address) }));
      await endpoint.listen(0, address);
      endpoints.push(endpoint);
      return endpoint;
    };
    const servers: LwM2MServer[] = [];
    const start = async (requireSameAddress: boolean) => {
      const dual = new LwM2MServer({ port: 0, address: '::', timing: FAST_TIMING, requestTimeout: 2000, requireSameAddress, logger: (_level, line) => logged.push(line) });
      servers.push(dual);
      await dual.listen();
      return { dual, v4: { address: '127.0.0.1', port: dual.address().port }, v6: { address: '::1', port: dual.address().port } };
    };
    afterEach(async () => {
      await Promise.all(endpoints.splice(0).map((endpoint) => endpoint.close()));
      await Promise.all(servers.splice(0).map((each) => each.close()));
    });
    const registerFrom = async (device: CoapEndpoint, peer: { address: string; port: number }, endpoint: string) => {
      const response = await device.request(peer, { method: 'POST', path: ['rd'], query: [`ep=${endpoint}`, 'lt=60'], contentFormat: ContentFormat.LINK, payload: Buffer.from('</3/0>') });
      assert.equal(response.code, '2.01');
      return response.options.filter((option) => option.number === OptionNumber.LOCATION_PATH).map((option) => option.value.toString());
    };

    it('off (the default): another host that knows the registration id can move the device to itself', async () => {
      const { dual, v4, v6 } = await start(false);
      const device = await host('127.0.0.1');
      const other = await host('::1');
      const location = await registerFrom(device, v4, 'movable');
      assert.equal((await other.request(v6, { method: 'POST', path: location })).code, '2.04');
      assert.equal(dual.registration('movable')!.address, '::1');
      assert.equal(await dual.read('movable', '/3/0/0', { format: ContentFormat.TEXT }), '::1', 'the downlink now goes to the other host');
    });

    it('on: Update and De-register from another address get 4.03; the device itself may change its port', async () => {
      const { dual, v4, v6 } = await start(true);
      const device = await host('127.0.0.1');
      const other = await host('::1');
      const location = await registerFrom(device, v4, 'pinned');
      const registered = dual.registration('pinned')!;
      assert.equal((await other.request(v6, { method: 'POST', path: location })).code, '4.03');
      assert.equal((await other.request(v6, { method: 'DELETE', path: location })).code, '4.03');
      assert.equal(dual.registration('pinned')!.address, registered.address);
      assert.ok(logged.some((line) => /Update of pinned's registration from another address/.test(line)), logged.join('\n'));
      // the same device from a new socket (a new port, as after NAT rebinding on the same address)
      const moved = await host('127.0.0.1');
      assert.equal((await moved.request(v4, { method: 'POST', path: location })).code, '2.04');
      assert.equal(dual.registration('pinned')!.port, moved.address().port);
      assert.equal(await dual.read('pinned', '/3/0/0', { format: ContentFormat.TEXT }), '127.0.0.1');
      assert.equal((await moved.request(v4, { method: 'DELETE', path: location })).code, '2.02');
    });
  });
});
