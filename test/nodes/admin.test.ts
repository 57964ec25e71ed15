/**
 * The admin routes the editor completes endpoints and paths from (nodes/admin.ts): in a real
 * Node-RED runtime with a device registered, and each behind the `lwm2m-server.read` permission.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, node, paletteFlow } from '../helpers/palette';
import { adminRoutes, type PathSuggestion } from '../../nodes/admin';
import type { Red } from '../../nodes/red';

const GREENHOUSE = path.resolve(__dirname, '../../../test/fixtures/models/32769-greenhouse.xml');

describe('the admin routes of the editor', function () {
  this.timeout(20_000);
  const devices = new Devices();
  let modelFolder: string;

  before((done) => {
    // a user models folder with one vendor object the bundled model does not have
    modelFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-models-'));
    fs.copyFileSync(GREENHOUSE, path.join(modelFolder, path.basename(GREENHOUSE)));
    helper.startServer(done);
  });
  after((done) => {
    fs.rmSync(modelFolder, { recursive: true, force: true });
    helper.stopServer(done);
  });
  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  const get = async (url: string): Promise<unknown> => (await helper.request().get(url).expect(200)).body;

  it('lists the endpoints registered with a server node, none for an unknown one', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port));
    await node('srv').ready;
    await devices.start('sim-admin', port);
    assert.deepEqual(await get('/lwm2m/servers/srv/endpoints'), ['sim-admin']);
    assert.deepEqual(await get('/lwm2m/servers/nope/endpoints'), []);
  });

  it("offers the server's model with its user models, each resource with type and operations, and never Security (/0)", async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { modelFolder }));
    await node('srv').ready;
    const paths = (await get('/lwm2m/servers/srv/paths')) as PathSuggestion[];
    const vent = paths.find((entry) => entry.path === '/32769/0/1');
    assert.deepEqual(vent, { path: '/32769/0/1', label: 'Greenhouse Controller / Vent Steps — /32769/0/1', detail: 'Integer · RW' });
    assert.deepEqual(
      paths.find((entry) => entry.path === '/3/0/4'),
      { path: '/3/0/4', label: 'Device / Reboot — /3/0/4', detail: 'E' },
    );
    assert.deepEqual(paths.filter((entry) => entry.path === '/0' || entry.path.startsWith('/0/')), []);
    // without a server node (or before it is deployed) the bundled model: no vendor object there
    const bundled = (await get('/lwm2m/model')) as PathSuggestion[];
    assert.ok(bundled.some((entry) => entry.path === '/3/0/9' && entry.label === 'Device / Battery Level — /3/0/9' && entry.detail === 'Integer · R'));
    assert.ok(!bundled.some((entry) => entry.path.startsWith('/32769')));
    assert.ok(!bundled.some((entry) => entry.path.startsWith('/0')));
    assert.deepEqual(await get('/lwm2m/servers/undeployed/paths'), bundled);
  });

  it("offers a device's registered objects and instances first, with their resources, then the rest of the model", async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { modelFolder }));
    await node('srv').ready;
    await devices.start('sim-paths', port, { objects: { 3303: { 0: { 5700: 21.5 }, 2: { 5700: 19 } }, 32769: { 5: { 0: 'east' } } } });
    const paths = (await get('/lwm2m/servers/srv/devices/sim-paths/paths')) as PathSuggestion[];
    const registered = paths.filter((entry) => entry.registered);
    assert.deepEqual(paths.slice(0, registered.length), registered, 'the registered paths come first');
    const registeredPaths = registered.map((entry) => entry.path);
    for (const expected of ['/3303', '/3303/0', '/3303/2', '/3303/2/5700', '/32769', '/32769/5', '/32769/5/1', '/3', '/3/0', '/3/0/9']) {
      assert.ok(registeredPaths.includes(expected), `${expected} in ${registeredPaths.join(' ')}`);
    }
    assert.ok(!registeredPaths.includes('/3303/1'), 'no instance the device does not have');
    assert.deepEqual(
      registered.find((entry) => entry.path === '/3303/2/5700'),
      { path: '/3303/2/5700', label: 'Temperature / Sensor Value — /3303/2/5700', detail: 'Float · R', registered: true },
    );
    assert.equal(registered.find((entry) => entry.path === '/32769/5/1')?.detail, 'Integer · RW');
    assert.ok(!paths.some((entry) => entry.path.startsWith('/0')), 'never Security');
    // then the objects the device did not register, from the model; each path once
    assert.ok(paths.slice(registered.length).some((entry) => entry.path === '/3311/0/5850'));
    assert.equal(new Set(paths.map((entry) => entry.path)).size, paths.length);
    // an endpoint that is not registered gets the server's model
    assert.deepEqual(await get('/lwm2m/servers/srv/devices/nobody/paths'), await get('/lwm2m/servers/srv/paths'));
  });

  it('guards every route with the lwm2m-server.read permission', () => {
    const routes: Array<{ path: string; handlers: unknown[] }> = [];
    const guard = () => undefined;
    const asked: string[] = [];
    const red = {
      nodes: { getNode: () => null },
      httpAdmin: { get: (route: string, ...handlers: unknown[]) => routes.push({ path: route, handlers }) },
      auth: {
        needsPermission: (permission: string) => {
          asked.push(permission);
          return guard;
        },
      },
    } as unknown as Red;
    adminRoutes(red);
    assert.deepEqual(
      routes.map((route) => route.path),
      ['/lwm2m/servers/:id/endpoints', '/lwm2m/model', '/lwm2m/servers/:id/paths', '/lwm2m/servers/:id/devices/:endpoint/paths'],
    );
    assert.deepEqual([...new Set(asked)], ['lwm2m-server.read']);
    for (const route of routes) assert.equal(route.handlers[0], guard, `${route.path} checks the permission first`);
  });
});
