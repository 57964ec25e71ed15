/**
 * The device explorer's runtime side (nodes/explorer-routes.ts, nodes/explorer-feed.ts): its admin
 * routes and RED.comms messages in a real Node-RED runtime with simulated devices over loopback.
 */
import assert from 'node:assert/strict';
import { helper } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, node, paletteFlow, until } from '../helpers/palette';
import { explorerRoutes } from '../../nodes/explorer-routes';
import type { Red } from '../../nodes/red';
import type { LwM2MServer } from '../../lib';

interface Published {
  topic: string;
  data: Record<string, unknown>;
}

/** What the runtime publishes to the editors (Node-RED's RED.comms.publish emits it on its events bus). */
function commsLog(): { log: Published[]; stop(): void } {
  // the Node-RED the helper runs: its util package's event bus
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { events } = require(require.resolve('@node-red/util', { paths: [require.resolve('node-red/package.json', process.env.LWM2M_NODE_RED_DIR ? { paths: [process.env.LWM2M_NODE_RED_DIR] } : undefined)] })) as {
    events: { on(name: string, listener: (event: Published) => void): void; off(name: string, listener: (event: Published) => void): void };
  };
  const log: Published[] = [];
  const listener = (event: Published) => {
    if (event.topic.startsWith('lwm2m/')) log.push(event);
  };
  events.on('comms', listener);
  return { log, stop: () => events.off('comms', listener) };
}

describe('the device explorer (runtime side)', function () {
  this.timeout(30_000);
  const devices = new Devices();
  let comms: ReturnType<typeof commsLog>;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(() => (comms = commsLog()));
  afterEach(async () => {
    comms.stop();
    await devices.stopAll();
    await helper.unload();
  });

  const get = async (url: string, status = 200): Promise<any> => (await helper.request().get(url).expect(status)).body;
  const post = async (url: string, body: object, status = 200): Promise<any> => (await helper.request().post(url).send(body).expect(status)).body;
  const start = async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port));
    await node('srv').ready;
    return port;
  };

  it('lists the deployed servers and their devices, and publishes registrations as they happen', async () => {
    const port = await start();
    assert.deepEqual(await get('/lwm2m/servers'), [{ id: 'srv', name: '', port, listening: true, devices: 0 }]);
    await devices.start('sim-a', port, { lifetime: 300 });
    await until(() => comms.log.some((entry) => entry.data.event === 'register'));
    const published = comms.log.find((entry) => entry.data.event === 'register')!;
    assert.equal(published.topic, 'lwm2m/devices/srv');
    assert.equal(published.data.endpoint, 'sim-a');
    const listed = (await get('/lwm2m/servers/srv/devices')) as Array<Record<string, unknown>>;
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.endpoint, 'sim-a');
    assert.equal(listed[0]!.lifetime, 300);
    assert.equal(listed[0]!.security, 'none');
    assert.ok(Date.parse(listed[0]!.lastSeen as string) >= Date.parse(listed[0]!.registeredAt as string));
    assert.deepEqual(published.data.device, listed[0]);
    assert.equal(((await get('/lwm2m/servers')) as Array<{ devices: number }>)[0]!.devices, 1);
    await devices.stopAll();
    await until(() => comms.log.some((entry) => entry.data.event === 'deregister'));
    assert.deepEqual(comms.log.find((entry) => entry.data.event === 'deregister')!.data, { event: 'deregister', endpoint: 'sim-a' });
    assert.deepEqual(await get('/lwm2m/servers/srv/devices'), []);
  });

  it("shows a device's objects and instances with the model's names, never Security, and objects the model lacks by id", async () => {
    const port = await start();
    await devices.start('sim-tree', port, { objects: { 3303: { 0: { 5700: 21.5 }, 2: { 5700: 19 } }, 32000: { 0: { 1: 5 } } } });
    const tree = await get('/lwm2m/servers/srv/devices/sim-tree/tree');
    assert.equal(tree.endpoint, 'sim-tree');
    assert.ok(!tree.objects.some((object: { id: number }) => object.id === 0));
    const device = tree.objects.find((object: { id: number }) => object.id === 3);
    assert.equal(device.name, 'Device');
    assert.deepEqual(device.instances, [0]);
    assert.deepEqual(device.resources.find((resource: { id: number }) => resource.id === 9), {
      id: 9,
      name: 'Battery Level',
      type: 'Integer',
      operations: 'R',
      multiple: false,
      mandatory: false,
      units: '/100',
      description: device.resources.find((resource: { id: number }) => resource.id === 9).description,
    });
    const temperature = tree.objects.find((object: { id: number }) => object.id === 3303);
    assert.deepEqual(temperature.instances, [0, 2]);
    assert.equal(temperature.resources.find((resource: { id: number }) => resource.id === 5700).name, 'Sensor Value');
    assert.deepEqual(tree.objects.find((object: { id: number }) => object.id === 32000), { id: 32000, instances: [0], known: false, resources: [] });
    assert.deepEqual(tree.observing, []);
    assert.deepEqual(await get('/lwm2m/servers/srv/devices/nobody/tree', 404), { message: 'nobody is not registered with this server', code: 'NOT_REGISTERED' });
    assert.equal((await get('/lwm2m/servers/nope/devices', 404)).code, 'NOT_FOUND');
  });

  it('reads, writes and reads back, executes, discovers, writes attributes, creates and deletes', async () => {
    const port = await start();
    const device = await devices.start('sim-ops', port, { objects: { 3303: { 0: { 5700: 21.5 } }, 3: { 0: { 9: 87, 14: '+01:00' } } } });
    const base = '/lwm2m/servers/srv/devices/sim-ops';
    assert.deepEqual(await post(`${base}/read`, { path: '/3/0/9' }), { path: '/3/0/9', value: 87 });
    assert.deepEqual(await post(`${base}/write`, { path: '/3/0/14', value: '+02:00' }), { path: '/3/0/14' });
    assert.deepEqual(await post(`${base}/read`, { path: '/3/0/14' }), { path: '/3/0/14', value: '+02:00' });
    const rebooted = new Promise((resolve) => device.once('reboot', resolve));
    assert.deepEqual(await post(`${base}/execute`, { path: '/3/0/4' }), { path: '/3/0/4' });
    await rebooted;
    await until(() => comms.log.filter((entry) => entry.data.event === 'register' && entry.data.endpoint === 'sim-ops').length === 2);
    const discovered = await post(`${base}/discover`, { path: '/3303/0' });
    assert.ok(discovered.links.some((link: { path: string }) => link.path === '/3303/0/5700'));
    assert.deepEqual(await post(`${base}/write-attributes`, { path: '/3303/0/5700', attributes: { pmin: 1, pmax: '30' } }), { path: '/3303/0/5700' });
    const linked = await post(`${base}/discover`, { path: '/3303/0/5700' });
    assert.deepEqual(linked.links[0], { path: '/3303/0/5700', attributes: { pmin: 1, pmax: 30 } });
    const created = await post(`${base}/create`, { path: '/3303', value: { 5700: 18 } });
    assert.match(created.path, /^\/3303\/\d+$/);
    assert.deepEqual(await post(`${base}/read`, { path: `${created.path}/5700` }), { path: `${created.path}/5700`, value: 18 });
    assert.deepEqual(await post(`${base}/delete`, { path: created.path }), { path: created.path });
    const gone = await post(`${base}/read`, { path: created.path }, 502);
    assert.equal(gone.code, 'NOT_FOUND');
    assert.equal(gone.coapCode, '4.04');
  });

  it('carries opaque values as hex both ways', async () => {
    const port = await start();
    // eDRX parameters for NB-S1 mode (/10/0/9) are opaque and writable
    await devices.start('sim-bytes', port, { objects: { 10: { 0: { 9: Buffer.from([0x01]) } } } });
    const base = '/lwm2m/servers/srv/devices/sim-bytes';
    assert.deepEqual(await post(`${base}/read`, { path: '/10/0/9' }), { path: '/10/0/9', value: { $opaque: '01' } });
    assert.deepEqual(await post(`${base}/write`, { path: '/10/0/9', value: { $opaque: '00ff10' } }), { path: '/10/0/9' });
    assert.deepEqual(await post(`${base}/read`, { path: '/10/0/9' }), { path: '/10/0/9', value: { $opaque: '00ff10' } });
    assert.match((await post(`${base}/write`, { path: '/10/0/9', value: { $opaque: 'xyz' } }, 400)).message, /hex digits/);
  });

  it('observes for the editor: the values come over RED.comms until cancelled, and a re-registration ends it', async () => {
    const port = await start();
    const device = await devices.start('sim-obs', port, { objects: { 3303: { 0: { 5700: 20 } } } });
    const base = '/lwm2m/servers/srv/devices/sim-obs';
    assert.deepEqual(await post(`${base}/observe`, { path: '/3303/0/5700' }), { path: '/3303/0/5700', value: 20 });
    assert.deepEqual((await get(`${base}/tree`)).observing, ['/3303/0/5700']);
    const notified = () => comms.log.filter((entry) => entry.topic === 'lwm2m/notify/srv').map((entry) => entry.data.value);
    device.set('/3303/0/5700', 21);
    await until(() => notified().includes(21));
    device.set('/3303/0/5700', 22);
    await until(() => notified().includes(22));
    assert.deepEqual(comms.log.find((entry) => entry.topic === 'lwm2m/notify/srv')!.data, { endpoint: 'sim-obs', path: '/3303/0/5700', value: 21, observed: true });
    assert.deepEqual(await post(`${base}/cancel`, { path: '/3303/0/5700' }), { path: '/3303/0/5700' });
    assert.equal((await post(`${base}/cancel`, { path: '/3303/0/5700' }, 404)).code, 'NOT_FOUND');
    // observed again, then the device re-registers (a reboot): the observation ends, and the editor is told
    await post(`${base}/observe`, { path: '/3303/0/5700' });
    await post(`${base}/execute`, { path: '/3/0/4' });
    await until(() => comms.log.some((entry) => entry.topic === 'lwm2m/observe-end/srv'));
    assert.deepEqual(comms.log.find((entry) => entry.topic === 'lwm2m/observe-end/srv')!.data, { endpoint: 'sim-obs', path: '/3303/0/5700', reason: 'reregistered' });
    assert.deepEqual((await get(`${base}/tree`)).observing, []);
  });

  it("watches a flow's observation of the same path instead of replacing it, and never cancels it", async () => {
    const port = await start();
    const device = await devices.start('sim-shared', port, { objects: { 3303: { 0: { 5700: 20 } } } });
    const server = (helper.getNode('srv') as { server: LwM2MServer }).server;
    const ended: string[] = [];
    server.on('observationEnded', (event) => ended.push(event.reason));
    const flows = await server.observe('sim-shared', '/3303/0/5700');
    const base = '/lwm2m/servers/srv/devices/sim-shared';
    assert.deepEqual(await post(`${base}/observe`, { path: '/3303/0/5700' }), { path: '/3303/0/5700', value: 20 });
    device.set('/3303/0/5700', 23);
    await until(() => comms.log.some((entry) => entry.topic === 'lwm2m/notify/srv' && entry.data.value === 23));
    await post(`${base}/cancel`, { path: '/3303/0/5700' });
    assert.deepEqual(ended, [], "the flow's observation goes on");
    assert.deepEqual(server.observations('sim-shared').map((observation) => observation.id), [flows.id]);
  });

  it("shows the server's CoAP trace of a device, sends new entries over RED.comms in batches, and switches it on and off", async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { trace: '100' }));
    await node('srv').ready;
    await devices.start('sim-trace', port);
    await post('/lwm2m/servers/srv/devices/sim-trace/read', { path: '/3/0/9' });
    const kept = await get('/lwm2m/servers/srv/trace?endpoint=sim-trace');
    assert.equal(kept.size, 100);
    const summary = kept.entries.map((entry: { direction: string; code: string; options?: Record<string, unknown> }) => `${entry.direction} ${entry.code} ${entry.options?.['Uri-Path'] ?? ''}`.trim());
    assert.ok(summary.includes('in POST /rd'), summary.join(', '));
    assert.ok(summary.includes('out GET /3/0/9'), summary.join(', '));
    assert.ok(summary.includes('in 2.05'), summary.join(', '));
    assert.ok(kept.entries.every((entry: { endpoint?: string }) => entry.endpoint === 'sim-trace'));
    assert.equal((await get('/lwm2m/servers/srv/trace?endpoint=sim-trace&limit=1')).entries.length, 1);
    // the same entries reached the editors, in batches
    const streamed = () => comms.log.filter((entry) => entry.topic === 'lwm2m/trace/srv').flatMap((entry) => entry.data.entries as Array<{ code: string }>);
    await until(() => streamed().some((entry) => entry.code === 'GET'));
    // off: nothing kept, nothing sent
    assert.deepEqual(await post('/lwm2m/servers/srv/trace', { size: 0, clear: true }), { size: 0 });
    const sent = streamed().length;
    await post('/lwm2m/servers/srv/devices/sim-trace/read', { path: '/3/0/9' });
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(streamed().length, sent);
    assert.deepEqual((await get('/lwm2m/servers/srv/trace')).entries, []);
    // on again from the panel
    assert.deepEqual(await post('/lwm2m/servers/srv/trace', { size: 50 }), { size: 50 });
    await post('/lwm2m/servers/srv/devices/sim-trace/read', { path: '/3/0/9' });
    assert.equal((await get('/lwm2m/servers/srv/trace')).entries.filter((entry: { code: string }) => entry.code === 'GET').length, 1);
    await until(() => streamed().length > sent);
    assert.match((await post('/lwm2m/servers/srv/trace', { size: -1 }, 400)).message, /size must be a whole number/);
    assert.match((await get('/lwm2m/servers/srv/trace?limit=x', 400)).message, /limit must be a whole number/);
  });

  it('refuses bad input with a clear error before anything is sent', async () => {
    const port = await start();
    await devices.start('sim-bad', port);
    const base = '/lwm2m/servers/srv/devices/sim-bad';
    assert.deepEqual(await post(`${base}/read`, {}, 400), { message: 'path is missing, e.g. "/3/0/9"', code: 'BAD_REQUEST' });
    assert.match((await post(`${base}/read`, { path: '3/0/9' }, 400)).message, /invalid path "3\/0\/9"/);
    assert.match((await post(`${base}/write`, { path: '/3/0/14', value: [1, 2] }, 400)).message, /a list is not an LwM2M value/);
    assert.match((await post(`${base}/write`, { path: '/3/0/14', value: 'x', mode: 'merge' }, 400)).message, /mode must be/);
    assert.match((await post(`${base}/write-attributes`, { path: '/3303/0/5700', attributes: { foo: 1 } }, 400)).message, /unknown attribute "foo"/);
    assert.match((await post(`${base}/write-attributes`, { path: '/3303/0/5700', attributes: { pmin: 'soon' } }, 400)).message, /pmin must be a number/);
    assert.match((await post(`${base}/execute`, { path: '/3/0/4', args: 5 }, 400)).message, /args must be a string/);
    assert.equal((await post('/lwm2m/servers/srv/devices/nobody/read', { path: '/3/0/9' }, 404)).code, 'NOT_REGISTERED');
  });

  it('guards reads with lwm2m-server.read and everything that changes a device with lwm2m-server.write', () => {
    const routes: Array<{ method: string; path: string; handlers: unknown[] }> = [];
    const guards = { read: () => undefined, write: () => undefined };
    const red = {
      nodes: { getNode: () => null },
      httpAdmin: {
        get: (route: string, ...handlers: unknown[]) => routes.push({ method: 'GET', path: route, handlers }),
        post: (route: string, ...handlers: unknown[]) => routes.push({ method: 'POST', path: route, handlers }),
      },
      auth: { needsPermission: (permission: string) => (permission === 'lwm2m-server.read' ? guards.read : permission === 'lwm2m-server.write' ? guards.write : assert.fail(permission)) },
    } as unknown as Red;
    explorerRoutes(red);
    const guardOf = (route: { handlers: unknown[] }) => (route.handlers[0] === guards.read ? 'read' : route.handlers[0] === guards.write ? 'write' : 'none');
    const table = Object.fromEntries(routes.map((route) => [`${route.method} ${route.path.replace('/lwm2m/servers/:id/devices/:endpoint', '…')}`, guardOf(route)]));
    assert.deepEqual(table, {
      'GET /lwm2m/servers': 'read',
      'GET /lwm2m/servers/:id/devices': 'read',
      'GET /lwm2m/servers/:id/trace': 'read',
      'POST /lwm2m/servers/:id/trace': 'write',
      'GET …/tree': 'read',
      'POST …/read': 'read',
      'POST …/discover': 'read',
      'POST …/write': 'write',
      'POST …/execute': 'write',
      'POST …/write-attributes': 'write',
      'POST …/observe': 'write',
      'POST …/cancel': 'write',
      'POST …/create': 'write',
      'POST …/delete': 'write',
    });
  });
});
