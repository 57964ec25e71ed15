/**
 * The rest of each node's events, operations and statuses, in a real Node-RED runtime: every
 * registration event through register-in, Read-Composite and Discover, partial and composite
 * writes, Observe-Composite, every device-sim action, the statuses a Status node sees, and errors
 * from each operation node at a Catch node.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { boundUdpSocket, freeUdpPort } from '../helpers/ports';
import { Devices, NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, until, type Message } from '../helpers/palette';

type ServerNode = { ready: Promise<void>; server: { registrations(): Array<{ endpoint: string }>; read(endpoint: string, path: string): Promise<unknown> } };
const serverNode = () => helper.getNode('srv') as ServerNode;
const serverNodeObservations = () => (serverNode().server as unknown as { observations(): unknown[] }).observations().length;
const errorOf = (msg: Message) => msg.error as { message: string; code: string };

describe(`Node-RED nodes: every event, operation and status (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(30_000);
  const devices = new Devices();

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  it('register-in reports register, sleep, awake, update (with what changed) and expire; switched-off events stay out; status counts devices', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(
        port,
        [
          { id: 'all', type: 'lwm2m-register-in', server: 'srv', endpoint: 'q-*', wires: [['allOut']] },
          { id: 'some', type: 'lwm2m-register-in', server: 'srv', endpoint: 'q-*', update: false, sleep: false, wires: [['someOut']] },
          { id: 'allOut', type: 'helper' },
          { id: 'someOut', type: 'helper' },
        ],
        { awakeTime: '0.3' },
      ),
    );
    await serverNode().ready;
    const events: string[] = [];
    const switchedOff: string[] = [];
    node('allOut').on('input', (msg) => events.push(String(msg.event)));
    node('someOut').on('input', (msg) => switchedOff.push(String(msg.event)));

    const counted = statusOf('all', (status) => status.text === '1 device');
    const registered = messageWhere('allOut', (msg) => msg.event === 'register');
    const device = await devices.start('q-1', port, { binding: 'UQ', version: '1.0', lifetime: 60, queueQuietTime: 60_000 });
    const registration = (await registered).payload as Record<string, unknown>;
    assert.equal(registration.queueMode, true);
    assert.equal(registration.lifetime, 60);
    assert.equal((await counted).fill, 'green');

    await messageWhere('allOut', (msg) => msg.event === 'sleep');
    const awake = messageWhere('allOut', (msg) => msg.event === 'awake');
    const updated = messageWhere('allOut', (msg) => msg.event === 'update');
    await device.update({ lifetime: 2 });
    await awake;
    const update = await updated;
    assert.deepEqual(update.changes, ['lifetime']);
    assert.equal((update.payload as Record<string, unknown>).lifetime, 2);

    // gone without a De-register: it expires after its lifetime and the grace of 5 s
    const none = statusOf('all', (status) => status.text === '0 devices');
    const expired = messageWhere('allOut', (msg) => msg.event === 'expire');
    const expiredToo = messageWhere('someOut', (msg) => msg.event === 'expire');
    await device.stop({ deregister: false });
    devices.forget(device);
    assert.equal((await expired).endpoint, 'q-1');
    await expiredToo;
    await none;

    assert.deepEqual(events.filter((event) => event !== 'sleep' && event !== 'awake'), ['register', 'update', 'expire']);
    assert.ok(events.includes('sleep') && events.includes('awake'));
    assert.deepEqual(switchedOff.filter((event) => event !== 'awake'), ['register', 'expire'], 'update and sleep are switched off');
  });

  it('read does Read-Composite and Discover; a failed read shows a red status and goes to Catch, the next success clears it', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [
        { id: 'readC', type: 'lwm2m-read', server: 'srv', operation: 'readComposite', path: '/3303/0/5700, /3/0/0', wires: [['readOut']] },
        { id: 'readD', type: 'lwm2m-read', server: 'srv', operation: 'discover', path: '/3303/0', wires: [['readOut']] },
      ]),
    );
    await serverNode().ready;
    await devices.start('sim-rc', port);

    let result = nextMessage('readOut');
    node('readC').receive({ endpoint: 'sim-rc' });
    let msg = await result;
    assert.deepEqual(msg.payload, { '/3303/0/5700': 21.5, '/3/0/0': 'node-red-lwm2m' });
    assert.deepEqual(msg.path, ['/3303/0/5700', '/3/0/0']);
    assert.equal(msg.topic, 'sim-rc');

    result = nextMessage('readOut');
    node('readD').receive({ endpoint: 'sim-rc' });
    msg = await result;
    const links = msg.payload as Array<{ uri: string }>;
    assert.deepEqual(links.map((link) => link.uri).sort(), ['/3303/0', '/3303/0/5700']);

    const red = statusOf('read', (status) => status.fill === 'red');
    const caught = nextMessage('caught');
    node('read').receive({ endpoint: 'sim-absent' });
    assert.equal(errorOf(await caught).code, 'NOT_REGISTERED');
    assert.deepEqual({ ...(await red), source: undefined }, { fill: 'red', shape: 'ring', text: 'not registered', source: undefined });
    const cleared = statusOf('read', (status) => !status.text);
    node('read').receive({ endpoint: 'sim-rc' });
    await cleared;
  });

  it('write does a partial update and a Write-Composite; execute of a resource that is not executable goes to Catch', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [
        { id: 'writeU', type: 'lwm2m-write', server: 'srv', operation: 'update', path: '/3303/0', wires: [['wOut']] },
        { id: 'writeC', type: 'lwm2m-write', server: 'srv', operation: 'writeComposite', wires: [['wOut']] },
        { id: 'x', type: 'lwm2m-execute', server: 'srv', path: '/3/0/0', wires: [['wOut']] },
        { id: 'wOut', type: 'helper' },
      ]),
    );
    await serverNode().ready;
    const device = await devices.start('sim-wc', port, { version: '1.1', objects: { 3303: { 0: { 5700: 21.5, 5750: 'indoor' } } } });

    let result = nextMessage('wOut');
    node('writeU').receive({ endpoint: 'sim-wc', payload: { 5750: 'outdoor' } });
    assert.equal((await result).coapCode, '2.04');
    assert.equal(device.get('/3303/0/5750'), 'outdoor');
    assert.equal(device.get('/3303/0/5700'), 21.5, 'a partial update leaves the other resources');

    result = nextMessage('wOut');
    node('writeC').receive({ endpoint: 'sim-wc', payload: { '/3303/0/5750': 'cellar', '/3/0/14': '+03:00' } });
    const msg = await result;
    assert.equal(msg.coapCode, '2.04');
    assert.equal(device.get('/3303/0/5750'), 'cellar');
    assert.equal(device.get('/3/0/14'), '+03:00');

    let caught = nextMessage('caught');
    node('writeC').receive({ endpoint: 'sim-wc', payload: 'not an object' });
    assert.match(errorOf(await caught).message, /Write-Composite needs msg.payload/);

    caught = nextMessage('caught');
    const red = statusOf('x', (status) => status.fill === 'red');
    node('x').receive({ endpoint: 'sim-wc' });
    const failed = await caught;
    assert.equal(errorOf(failed).code, 'METHOD_NOT_ALLOWED');
    assert.equal(failed.coapCode, '4.05');
    assert.equal((await red).text, 'method not allowed');
  });

  it('observe does an Observe-Composite of two paths; status counts its observations; an unregistered endpoint goes to Catch', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [
        { id: 'o', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700,/3/0/9', pmin: '0', wires: [['oOut']] },
        { id: 'oOut', type: 'helper' },
      ]),
    );
    await serverNode().ready;
    const device = await devices.start('sim-oc', port, { version: '1.1' });

    const observing = statusOf('o', (status) => status.text === 'observing 1');
    let result = nextMessage('oOut');
    node('o').receive({ endpoint: 'sim-oc' });
    const first = await result;
    assert.deepEqual(Object.keys(first.payload as object).sort(), ['/3/0/9', '/3303/0/5700']);
    assert.equal((first.payload as Record<string, unknown>)['/3303/0/5700'], 21.5);
    assert.deepEqual(first.path, ['/3303/0/5700', '/3/0/9']);
    await observing;

    result = nextMessage('oOut');
    device.set('/3303/0/5700', 24);
    const notified = await result;
    assert.equal((notified.payload as Record<string, unknown>)['/3303/0/5700'], 24);
    assert.equal(notified.topic, 'sim-oc');

    const cleared = statusOf('o', (status) => !status.text);
    result = nextMessage('oOut');
    node('o').receive({ endpoint: 'sim-oc', action: 'cancel' });
    assert.equal(((await result).payload as string[]).length, 1);
    await cleared;
    await until(() => device.observationCount === 0);

    const caught = nextMessage('caught');
    node('o').receive({ endpoint: 'sim-nobody' });
    assert.equal(errorOf(await caught).code, 'NOT_REGISTERED');
  });

  it('observe counts the observations in force: a device that registers anew (no De-register) does not add to the count', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [
        { id: 'auto', type: 'lwm2m-observe', server: 'srv', endpoint: 'sim-re*', path: '/3303/0/5700', autoObserve: true, wires: [['autoOut']] },
        { id: 'autoOut', type: 'helper' },
      ]),
    );
    await serverNode().ready;
    const observedOnce = statusOf('auto', (status) => status.text === 'observing 1');
    const first = await devices.start('sim-re', port);
    await observedOnce;
    // the device reboots: gone without a De-register, then a new Register of the same endpoint
    await first.stop({ deregister: false });
    devices.forget(first);
    for (let round = 0; round < 3; round++) {
      const again = await devices.start('sim-re', port);
      await until(() => serverNodeObservations() === 1 && serverNode().server.registrations().length === 1);
      // a notification of the new observation: by then the node has counted it
      const notified = messageWhere('autoOut', (msg) => msg.payload === 30 + round);
      again.set('/3303/0/5700', 30 + round);
      await notified;
      await again.stop({ deregister: false });
      devices.forget(again);
    }
    const log = (helper.getNode('statusLog') as unknown as { context(): { global: { get(key: string): Array<{ text?: string; source: { id: string } }> } } }).context().global.get('statuses');
    const counts = log.filter((status) => status.source.id === 'auto' && status.text).map((status) => status.text);
    assert.ok(counts.length >= 4, counts.join(', '));
    assert.deepEqual([...new Set(counts)], ['observing 1'], `the observe node's statuses: ${counts.join(', ')}`);
  });

  it('device-sim: status counts its devices; send, update, deregister and register act on them; a Reboot comes out with its arguments', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [
        { id: 'sim', type: 'lwm2m-device-sim', serverUri: `coap://127.0.0.1:${port}`, endpoint: 'sim-{n}', count: 2, objects: 'temperature', wires: [['simOut']] },
        { id: 'sendIn', type: 'lwm2m-send-in', server: 'srv', wires: [['sendOut']] },
        { id: 'reboot', type: 'lwm2m-execute', server: 'srv', path: '/3/0/4', args: "0='soft'", wires: [[]] },
        { id: 'simOut', type: 'helper' },
        { id: 'sendOut', type: 'helper' },
      ]),
    );
    await serverNode().ready;
    await statusOf('sim', (status) => status.text === '2/2 registered');
    assert.deepEqual(serverNode().server.registrations().map((registration) => registration.endpoint).sort(), ['sim-1', 'sim-2']);

    const sent = nextMessage('sendOut');
    node('sim').receive({ endpoint: 'sim-2', action: 'send', path: '/3303/0/5700' });
    const send = await sent;
    assert.equal(send.endpoint, 'sim-2');
    assert.deepEqual(Object.keys(send.payload as object), ['/3303/0/5700']);

    const updated = messageWhere('out', (msg) => msg.event === 'update');
    node('sim').receive({ endpoint: 'sim-1', action: 'update' });
    assert.equal((await updated).endpoint, 'sim-1');

    const deregistered = messageWhere('out', (msg) => msg.event === 'deregister');
    const half = statusOf('sim', (status) => status.text === '1/2 registered');
    node('sim').receive({ endpoint: 'sim-1', action: 'deregister' });
    assert.equal((await deregistered).endpoint, 'sim-1');
    await half;

    const registered = messageWhere('out', (msg) => msg.event === 'register');
    const whole = statusOf('sim', (status) => status.text === '2/2 registered');
    node('sim').receive({ endpoint: 'sim-1', action: 'register' });
    assert.equal((await registered).endpoint, 'sim-1');
    await whole;

    const executed = nextMessage('simOut');
    node('reboot').receive({ endpoint: 'sim-2' });
    const execute = await executed;
    assert.deepEqual({ event: execute.event, endpoint: execute.endpoint, path: execute.path, payload: execute.payload }, { event: 'execute', endpoint: 'sim-2', path: '/3/0/4', payload: "0='soft'" });

    const caught = nextMessage('caught');
    node('sim').receive({ endpoint: 'sim-9', action: 'update' });
    assert.match(errorOf(await caught).message, /simulates no device sim-9/);
  });

  it('a server node that cannot bind its port shows why on the nodes that use it', async () => {
    const blocker = await boundUdpSocket();
    try {
      const { port } = blocker.address() as AddressInfo;
      await helper.load(NODES, paletteFlow(port));
      const shown = statusOf('read', (status) => status.fill === 'red');
      await serverNode().ready.catch(() => undefined);
      assert.deepEqual({ ...(await shown), source: undefined }, { fill: 'red', shape: 'ring', text: 'EADDRINUSE', source: undefined });
    } finally {
      blocker.close();
    }
  });
});
