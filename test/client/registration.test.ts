import assert from 'node:assert/strict';
import { LwM2MClient, parseLinkFormat, type LwM2MClientOptions } from '../../lib';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';

describe('LwM2MClient registration (loopback)', () => {
  let server: FakeServer;
  let uri: string;
  const clients: LwM2MClient[] = [];

  const client = (options: Partial<LwM2MClientOptions> = {}): LwM2MClient => {
    const device = new LwM2MClient({ endpoint: 'reg-1', server: uri, timing: FAST_TIMING, requestTimeout: 1000, retry: { initialDelay: 50, maxDelay: 400 }, ...options });
    device.on('error', () => undefined);
    clients.push(device);
    return device;
  };

  beforeEach(async () => {
    server = new FakeServer();
    uri = await server.start();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((device) => device.stop({ deregister: false })));
    await server.close();
  });

  it('registers with endpoint name, lifetime, version, binding and the object list (no /0)', async () => {
    const device = client({ lifetime: 120, objects: { 3303: { 0: { 5700: 20 } } } });
    await device.start();
    assert.equal(device.registered, true);
    assert.equal(device.location, 'rd/1');
    const register = server.requests[0]!;
    assert.equal(register.method, 'POST');
    assert.equal(register.path, '/rd');
    assert.deepEqual(register.query, ['ep=reg-1', 'lt=120', 'lwm2m=1.1', 'b=U']);
    assert.equal(register.contentFormat, 40);
    const links = parseLinkFormat(register.payload.toString());
    assert.deepEqual(links[0], { uri: '/', attributes: { rt: 'oma.lwm2m', ct: 112 } });
    const uris = links.map((link) => link.uri);
    assert.ok(uris.includes('/1/0') && uris.includes('/3/0') && uris.includes('/3303/0'), uris.join(' '));
    assert.ok(!uris.some((target) => target === '/0' || target.startsWith('/0/')), 'the Security object is never listed');
    // a 1.1 client has the Device object of 1.1, whatever version the bundled model holds
    assert.equal(links.find((link) => link.uri === '/3')?.attributes.ver, '1.1');
  });

  it('announces the core objects at the versions of its LwM2M version: none in 1.0, 1.1 in 1.1, 1.2 in 1.2', async () => {
    const announced = async (version: '1.0' | '1.1' | '1.2') => {
      const device = client({ endpoint: `ver-${version}`, version, objects: { 3303: { 0: { 5700: 20 } } } });
      const before = server.requests.length;
      await device.start();
      const links = parseLinkFormat(server.requests[before]!.payload.toString());
      await device.stop({ deregister: false });
      return Object.fromEntries(links.filter((link) => link.attributes.ver !== undefined).map((link) => [link.uri, link.attributes.ver]));
    };
    assert.deepEqual(await announced('1.0'), {}, 'a 1.0 client announces no object versions: Server 1.0, Device 1.0');
    const v11 = await announced('1.1');
    assert.equal(v11['/1'], '1.1');
    assert.equal(v11['/3'], '1.1');
    const v12 = await announced('1.2');
    assert.equal(v12['/1'], '1.2');
    assert.equal(v12['/3'], '1.2');
    // objects beyond OMA's core keep the version of their model
    assert.equal(v12['/3303'], v11['/3303']);
  });

  it('speaks LwM2M 1.0: lwm2m=1.0, queue mode in the binding (UQ), TLV preferred, no root link', async () => {
    const device = client({ version: '1.0', binding: 'UQ', queueQuietTime: 60_000 });
    await device.start();
    const register = server.requests[0]!;
    assert.deepEqual(register.query, ['ep=reg-1', 'lt=300', 'lwm2m=1.0', 'b=UQ']);
    assert.ok(!register.payload.toString().includes('</>'));
  });

  it('uses the Q parameter for queue mode from LwM2M 1.1 on', async () => {
    const device = client({ version: '1.2', binding: 'UQ', queueQuietTime: 60_000 });
    await device.start();
    assert.deepEqual(server.requests[0]!.query, ['ep=reg-1', 'lt=300', 'lwm2m=1.2', 'b=U', 'Q']);
  });

  it('retries Register with growing delays while the server does not answer', async () => {
    let dropped = 0;
    server.behaviour = (request) => (request.path[0] === 'rd' && dropped++ < 2 ? 'drop' : undefined);
    const device = client({ requestTimeout: 250 });
    const retries: Array<{ attempt: number; delay: number; error: { kind?: string } }> = [];
    device.on('retry', (retry) => retries.push(retry));
    await device.start();
    assert.equal(device.registered, true);
    assert.deepEqual(retries.map((retry) => retry.attempt), [1, 2]);
    assert.ok(retries[1]!.delay > retries[0]!.delay * 1.1, `back-off grows: ${retries.map((retry) => retry.delay)}`);
    assert.equal(retries[0]!.error.kind, 'TIMEOUT');
  });

  it('retries Register after an error response too, and reports the code', async () => {
    let refused = 0;
    server.behaviour = (request) => (request.path[0] === 'rd' && refused++ < 1 ? { code: '5.03' } : undefined);
    const device = client();
    const retries: Array<{ error: { coapCode?: string } }> = [];
    device.on('retry', (retry) => retries.push(retry));
    await device.start();
    assert.equal(retries[0]!.error.coapCode, '5.03');
  });

  it('sends a periodic Update before the lifetime runs out, carrying only what changed (nothing)', async () => {
    const device = client({ lifetime: 1 });
    await device.start();
    const update = await server.waitFor((request) => request.path === '/rd/1');
    assert.equal(update.method, 'POST');
    assert.deepEqual(update.query, []);
    assert.equal(update.payload.length, 0);
  });

  it('sends new parameters and a new object list in an Update when they change', async () => {
    const device = client();
    await device.start();
    await device.update({ lifetime: 60 });
    const lifetimeUpdate = server.requests.at(-1)!;
    assert.equal(lifetimeUpdate.path, '/rd/1');
    assert.deepEqual(lifetimeUpdate.query, ['lt=60']);
    assert.equal(device.get('/1/0/1'), 60, 'the Server object follows');

    const before = server.requests.length;
    device.addInstance(3303, { 5700: 1 });
    const objectsUpdate = await server.waitFor((request) => request.path === '/rd/1' && request.payload.length > 0, before);
    assert.deepEqual(objectsUpdate.query, []);
    assert.ok(objectsUpdate.payload.toString().includes('</3303/0>'));
  });

  it('registers again when the server answers 4.04 to an Update', async () => {
    const device = client();
    await device.start();
    server.behaviour = (request) => (request.path.join('/') === 'rd/1' ? { code: '4.04' } : undefined);
    const reregistering = new Promise((resolve) => device.once('reregistering', resolve));
    await device.update();
    await reregistering;
    assert.equal(device.location, 'rd/2');
    assert.equal(server.requests.filter((request) => request.path === '/rd').length, 2);
  });

  it('the server changing /1/0/1 (Lifetime) leads to an Update with the new lifetime', async () => {
    const device = client();
    await device.start();
    const response = await server.request('reg-1', { method: 'PUT', path: ['1', '0', '1'], contentFormat: 0, payload: Buffer.from('77') });
    assert.equal(response.code, '2.04');
    const update = await server.waitFor((request) => request.path === '/rd/1' && request.query.includes('lt=77'));
    assert.ok(update);
  });

  it('executing Registration Update Trigger (/1/0/8) sends an Update', async () => {
    const device = client();
    await device.start();
    const before = server.requests.length;
    assert.equal((await server.request('reg-1', { method: 'POST', path: ['1', '0', '8'] })).code, '2.04');
    await server.waitFor((request) => request.path === '/rd/1', before);
    assert.ok(device.registered);
  });

  it('executing Disable (/1/0/4) de-registers, and the client registers again after Disable Timeout (/1/0/5)', async () => {
    const device = client();
    await device.start();
    assert.equal((await server.request('reg-1', { method: 'PUT', path: ['1', '0', '5'], contentFormat: 0, payload: Buffer.from('1') })).code, '2.04');
    const before = server.requests.length;
    assert.equal((await server.request('reg-1', { method: 'POST', path: ['1', '0', '4'] })).code, '2.04');
    const deregister = await server.waitFor((request) => request.method === 'DELETE', before);
    assert.equal(deregister.path, '/rd/1');
    await server.waitFor((request) => request.path === '/rd', before);
    await new Promise((resolve) => device.once('registered', resolve));
    assert.equal(device.location, 'rd/2');
  });

  it('deregister() and register() leave and rejoin while the client keeps running; a stopped client cannot start again', async () => {
    const device = client();
    await device.start();
    await device.deregister();
    assert.equal(device.registered, false);
    assert.equal(server.requests.at(-1)!.method, 'DELETE');
    assert.deepEqual(server.registrations(), []);
    await device.register();
    assert.equal(device.location, 'rd/2');
    assert.deepEqual(server.registrations(), ['reg-1']);
    await device.stop();
    await assert.rejects(device.start(), /cannot start again/);
  });

  it('de-registers on stop and closes its socket', async () => {
    const device = client();
    await device.start();
    const deregistered = new Promise((resolve) => device.once('deregistered', resolve));
    await device.stop();
    await deregistered;
    const last = server.requests.at(-1)!;
    assert.equal(last.method, 'DELETE');
    assert.equal(last.path, '/rd/1');
    assert.deepEqual(server.registrations(), []);
    assert.throws(() => device.address(), /not listening/);
    await device.stop(); // twice is harmless
  });

  it('stop does not wait long for a server that no longer answers the De-register', async () => {
    const device = client({ timing: undefined, deregisterTimeout: 300 });
    await device.start();
    server.behaviour = (request) => (request.method === 'DELETE' ? 'drop' : undefined);
    const warnings: unknown[] = [];
    device.on('error', (error) => warnings.push(error));
    const began = Date.now();
    await device.stop();
    assert.ok(Date.now() - began < 3000, 'stop returned although the De-register got no answer');
    assert.match(String(warnings[0]), /TIMEOUT|no response|no acknowledgement/i);
  });

  it('a sleeping queue-mode client wakes up for its periodic Update', async () => {
    const device = client({ binding: 'UQ', queueQuietTime: 200, lifetime: 2 });
    const events: string[] = [];
    for (const name of ['sleep', 'awake', 'updated', 'retry']) device.on(name, () => events.push(name));
    await device.start();
    await new Promise((resolve) => device.once('updated', resolve));
    assert.deepEqual(events.slice(0, 3), ['sleep', 'awake', 'updated']);
    assert.ok(!events.includes('retry'), 'the Update was answered the first time');
  });

  it('stop before the first registration rejects start and leaves nothing running', async () => {
    let seen!: () => void;
    const registerSeen = new Promise<void>((resolve) => (seen = resolve));
    server.behaviour = () => {
      seen();
      return 'drop';
    };
    const device = client({ requestTimeout: 5000 });
    const started = device.start();
    await registerSeen;
    await device.stop();
    await assert.rejects(started, /stopped before it registered/);
  });

  it('refuses bad settings with a clear message', () => {
    assert.throws(() => new LwM2MClient({ endpoint: '', server: uri }), /endpoint must be a non-empty name/);
    assert.throws(() => new LwM2MClient({ endpoint: 'a&b', server: uri }), /endpoint/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', server: 'http://x' }), /scheme http: is not supported/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', server: 'nonsense' }), /server must be a URI/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', server: uri, lifetime: 0 }), /lifetime/);
    assert.throws(() => new LwM2MClient({ endpoint: 'x', server: uri, version: '2.0' as never }), /version/);
  });
});
