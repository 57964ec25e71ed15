/**
 * The Node-RED nodes in a real Node-RED runtime (node-red-node-test-helper), with a simulated
 * device (LwM2MClient) registering to the server node over loopback.
 */
import assert from 'node:assert/strict';
import { LwM2MServer } from '../../lib';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, nextMessage, node, paletteFlow as flow, type TestNode } from '../helpers/palette';

describe(`Node-RED nodes (Node-RED ${nodeRedVersion}, Node.js ${process.version})`, function () {
  this.timeout(20_000);
  const devices = new Devices();
  const startDevice = (endpoint: string, port: number) => devices.start(endpoint, port);

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));

  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  it('register-in emits a message for register and deregister of matching devices', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    await node('srv').ready;
    const out = node('out');
    const registered = nextMessage(out);
    const device = await startDevice('sim-1', port);
    const msg = await registered;
    assert.equal(msg.event, 'register');
    assert.equal(msg.topic, 'sim-1');
    assert.equal(msg.endpoint, 'sim-1');
    const payload = msg.payload as Record<string, unknown>;
    assert.equal(payload.endpoint, 'sim-1');
    assert.equal(payload.version, '1.1');
    assert.ok((payload.objects as Array<{ objectId: number }>).some((object) => object.objectId === 3303));
    const deregistered = nextMessage(out);
    await device.stop();
    devices.forget(device);
    assert.equal((await deregistered).event, 'deregister');
  });

  it('register-in leaves out endpoints the filter does not match', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    await node('srv').ready;
    const out = node('out');
    const seen: string[] = [];
    out.on('input', (msg) => seen.push(String(msg.endpoint)));
    await startDevice('other-1', port);
    await startDevice('sim-2', port);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(seen, ['sim-2']);
  });

  it('read gives the value in msg.payload, from msg.endpoint', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    await node('srv').ready;
    await startDevice('sim-3', port);
    const result = nextMessage('readOut');
    node('read').receive({ endpoint: 'sim-3' });
    const msg = await result;
    assert.equal(msg.payload, 21.5);
    assert.equal(msg.coapCode, '2.05');
    assert.equal(msg.topic, 'sim-3/3303/0/5700');
  });

  it('read keys instance values by resource names when asked', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port, [{ id: 'named', type: 'lwm2m-read', server: 'srv', path: '/3303/0', names: true, wires: [['readOut']] }]));
    await node('srv').ready;
    await startDevice('sim-names', port);
    const result = nextMessage('readOut');
    node('named').receive({ endpoint: 'sim-names' });
    assert.deepEqual((await result).payload, { 'Sensor Value': 21.5 });
  });

  it('read errors reach a Catch node with msg.error { message, code }', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    await node('srv').ready;
    await startDevice('sim-4', port);
    const caught = node('caught');
    let result = nextMessage(caught);
    node('read').receive({ endpoint: 'nobody' });
    let msg = await result;
    assert.equal((msg.error as { code: string }).code, 'NOT_REGISTERED');
    assert.match((msg.error as { message: string }).message, /nobody is not registered/);
    result = nextMessage(caught);
    node('read').receive({ payload: 'no endpoint anywhere' });
    msg = await result;
    assert.match((msg.error as { message: string }).message, /no endpoint/);
  });

  it('a read node without a path takes msg.path, and a missing resource is NOT_FOUND with coapCode 4.04', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port, [{ id: 'read2', type: 'lwm2m-read', server: 'srv', wires: [['readOut']] }]));
    await node('srv').ready;
    await startDevice('sim-5', port);
    const caught = nextMessage('caught');
    node('read2').receive({ endpoint: 'sim-5', path: '/3/0/99' });
    const msg = await caught;
    // Node-RED builds the Catch node's msg.error itself (message, code, source, stack); the response code rides in msg.coapCode
    const error = msg.error as { message: string; code: string };
    assert.equal(error.code, 'NOT_FOUND');
    assert.match(error.message, /4\.04 Not Found/);
    assert.equal(msg.coapCode, '4.04');
    const ok = nextMessage('readOut');
    node('read2').receive({ endpoint: 'sim-5', path: '/3/0/0' });
    assert.equal((await ok).payload, 'node-red-lwm2m');
  });

  it('takes endpoint, path, operation, format and arguments from typedInputs: msg, flow, env', async () => {
    const port = await freeUdpPort();
    process.env.LWM2M_TEST_OPERATION = 'read';
    await helper.load(
      NODES,
      flow(port, [
        {
          id: 'typed', type: 'lwm2m-read', server: 'srv', wires: [['readOut']],
          endpoint: 'device', endpointType: 'msg', path: 'target', pathType: 'flow', operation: 'LWM2M_TEST_OPERATION', operationType: 'env', format: 'fmt', formatType: 'msg',
        },
        { id: 'typedX', type: 'lwm2m-execute', server: 'srv', endpoint: 'sim-typed', endpointType: 'str', path: '/3/0/4', pathType: 'str', args: 'how', argsType: 'msg', wires: [['readOut']] },
        { id: 'typedW', type: 'lwm2m-write', server: 'srv', endpoint: 'sim-typed', path: '/3/0/14', operation: 'op', operationType: 'msg', format: 'auto', formatType: 'choice', wires: [['readOut']] },
      ]),
    );
    await node('srv').ready;
    const device = await startDevice('sim-typed', port);
    const typed = node('typed');
    typed.context().flow.set('target', '/3303/0');
    const out = node('readOut');
    const caught = node('caught');

    // TLV from msg.fmt: the instance, keyed by resource id
    let result = nextMessage(out);
    typed.receive({ device: 'sim-typed', fmt: 'tlv' });
    let msg = await result;
    assert.deepEqual(msg.payload, { 5700: 21.5 });
    assert.equal(msg.endpoint, 'sim-typed');
    assert.equal(msg.path, '/3303/0');

    // text cannot carry an instance, so the device refuses: the format really reached it
    let failed = nextMessage(caught);
    typed.receive({ device: 'sim-typed', fmt: 'text' });
    assert.equal(((await failed).error as { code: string }).code, 'NOT_ACCEPTABLE');

    failed = nextMessage(caught);
    typed.receive({ device: 'sim-typed', fmt: 'xml' });
    assert.match(((await failed).error as { message: string }).message, /unknown format "xml"/);

    failed = nextMessage(caught);
    typed.receive({ fmt: 'tlv' });
    assert.match(((await failed).error as { message: string }).message, /no endpoint: msg\.device is empty/);

    process.env.LWM2M_TEST_OPERATION = 'discover';
    result = nextMessage(out);
    typed.receive({ device: 'sim-typed' });
    assert.ok(Array.isArray((await result).payload), 'discover from env gives links');
    delete process.env.LWM2M_TEST_OPERATION;

    // the operation from msg.op, the value from msg.payload
    result = nextMessage(out);
    node('typedW').receive({ op: 'write', payload: '+01:00' });
    assert.equal((await result).coapCode, '2.04');
    assert.equal(device.get('/3/0/14'), '+01:00');
    failed = nextMessage(caught);
    node('typedW').receive({ op: 'erase', payload: 'x' });
    assert.match(((await failed).error as { message: string }).message, /operation must be one of write, update/);

    // execute arguments from msg.how reach the device's execute handler
    const executed = new Promise<string>((resolve) => device.once('execute', (event: { args: string }) => resolve(event.args)));
    device.on('reboot', () => undefined);
    result = nextMessage(out);
    node('typedX').receive({ how: "0='soft'", payload: 1700000000000 });
    assert.equal((await result).coapCode, '2.04');
    assert.equal(await executed, "0='soft'");
  });

  it('redeploys 50 times on the same port: no EADDRINUSE, devices register each time, open handles stay flat', async () => {
    const port = await freeUdpPort();
    const handles = () => process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap' || name === 'Timeout').length;
    let baseline = 0;
    for (let round = 0; round < 50; round++) {
      if (round === 1) baseline = handles();
      await helper.load(NODES, flow(port));
      await node('srv').ready;
      const registered = nextMessage('out');
      const device = await startDevice(`sim-r${round}`, port);
      assert.equal((await registered).endpoint, `sim-r${round}`);
      await device.stop({ deregister: false });
      devices.forget(device);
      await helper.unload();
    }
    assert.ok(handles() <= baseline, `UDP sockets and timers after 50 redeploys: ${handles()}, after the first: ${baseline}`);
  });

  it('write replaces a value, writes attributes, creates and deletes an instance', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      flow(port, [
        { id: 'w', type: 'lwm2m-write', server: 'srv', wires: [['wOut']] },
        { id: 'wOut', type: 'helper' },
      ]),
    );
    await node('srv').ready;
    const device = await startDevice('sim-w', port);
    const w = node('w');
    const out = node('wOut');
    let result = nextMessage(out);
    w.receive({ endpoint: 'sim-w', path: '/3/0/14', payload: '+05:00' });
    assert.equal((await result).coapCode, '2.04');
    assert.equal(device.get('/3/0/14'), '+05:00');
    result = nextMessage(out);
    w.receive({ endpoint: 'sim-w', path: '/3303/0/5700', operation: 'writeAttributes', attributes: { pmin: 2, pmax: 20 } });
    await result;
    const links = await (helper.getNode('srv') as { server: { discover(e: string, p: string): Promise<Array<{ attributes: object }>> } }).server.discover('sim-w', '/3303/0/5700');
    assert.deepEqual(links[0]!.attributes, { pmin: 2, pmax: 20 });
    result = nextMessage(out);
    w.receive({ endpoint: 'sim-w', path: '/3303/4', operation: 'create', payload: { 5700: 1.5 } });
    const created = await result;
    assert.equal(created.coapCode, '2.01');
    assert.equal(created.payload, '/3303/4');
    assert.equal(device.get('/3303/4/5700'), 1.5);
    result = nextMessage(out);
    w.receive({ endpoint: 'sim-w', path: '/3303/4', operation: 'delete' });
    assert.equal((await result).coapCode, '2.02');
    assert.equal(device.get('/3303/4'), undefined);
    const caught = nextMessage('caught');
    w.receive({ endpoint: 'sim-w', path: '/3/0/0', payload: 'read-only' });
    assert.equal(((await caught).error as { code: string }).code, 'METHOD_NOT_ALLOWED');
  });

  it('execute runs a resource with arguments', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port, [{ id: 'x', type: 'lwm2m-execute', server: 'srv', path: '/3/0/4', wires: [['xOut']] }, { id: 'xOut', type: 'helper' }]));
    await node('srv').ready;
    const device = await startDevice('sim-x', port);
    const rebooted = new Promise((resolve) => device.once('reboot', resolve));
    const result = nextMessage('xOut');
    node('x').receive({ endpoint: 'sim-x' });
    assert.equal((await result).coapCode, '2.04');
    await rebooted;
  });

  it('observe emits the first value and each notification; notify-in sees them too; cancel ends it', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      flow(port, [
        { id: 'o', type: 'lwm2m-observe', server: 'srv', path: '/3303/0/5700', pmin: '0', wires: [['oOut']] },
        { id: 'n', type: 'lwm2m-notify-in', server: 'srv', endpoint: 'sim-*', path: '/3303', wires: [['nOut']] },
        { id: 'oOut', type: 'helper' },
        { id: 'nOut', type: 'helper' },
      ]),
    );
    await node('srv').ready;
    const device = await startDevice('sim-o', port);
    const o = node('o');
    const out = node('oOut');
    let result = nextMessage(out);
    o.receive({ endpoint: 'sim-o' });
    assert.equal((await result).payload, 21.5);
    result = nextMessage(out);
    const notified = nextMessage('nOut');
    device.set('/3303/0/5700', 25);
    assert.equal((await result).payload, 25);
    const fromNotifyIn = await notified;
    assert.equal(fromNotifyIn.payload, 25);
    assert.equal(fromNotifyIn.topic, 'sim-o/3303/0/5700');
    result = nextMessage(out);
    o.receive({ endpoint: 'sim-o', action: 'cancel' });
    assert.equal(((await result).payload as string[]).length, 1);
    assert.equal(device.observationCount, 0);
  });

  it('notify-in keys an observed instance by resource names when asked', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      flow(port, [
        { id: 'o2', type: 'lwm2m-observe', server: 'srv', path: '/3303/0', wires: [[]] },
        { id: 'n2', type: 'lwm2m-notify-in', server: 'srv', names: true, wires: [['nOut2']] },
        { id: 'nOut2', type: 'helper' },
      ]),
    );
    await node('srv').ready;
    const device = await startDevice('sim-n2', port);
    node('o2').receive({ endpoint: 'sim-n2' });
    while (device.observationCount === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const notified = nextMessage('nOut2');
    device.set('/3303/0/5700', 26);
    assert.deepEqual((await notified).payload, { 'Sensor Value': 26 });
  });

  it('auto-observe observes every matching device that registers', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      flow(port, [
        { id: 'auto', type: 'lwm2m-observe', server: 'srv', endpoint: 'sim-*', path: '/3303/0/5700', autoObserve: true, wires: [['aOut']] },
        { id: 'aOut', type: 'helper' },
      ]),
    );
    await node('srv').ready;
    const device = await startDevice('sim-auto', port);
    const other = await startDevice('else-1', port);
    while (device.observationCount === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const result = nextMessage('aOut');
    device.set('/3303/0/5700', 30);
    const msg = await result;
    assert.equal(msg.endpoint, 'sim-auto');
    assert.equal(msg.payload, 30);
    assert.equal(other.observationCount, 0, 'the filter leaves other devices alone');
  });

  it('send-in emits a Send with the latest values and every record', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port, [{ id: 's', type: 'lwm2m-send-in', server: 'srv', wires: [['sOut']] }, { id: 'sOut', type: 'helper' }]));
    await node('srv').ready;
    const device = await startDevice('sim-s', port);
    const result = nextMessage('sOut');
    await device.send(['/3303/0/5700']);
    const msg = await result;
    assert.deepEqual(msg.payload, { '/3303/0/5700': 21.5 });
    assert.deepEqual(msg.records, [{ path: '/3303/0/5700', value: 21.5 }]);
    assert.equal(msg.endpoint, 'sim-s');
  });

  it('device-sim runs a fleet that registers with the server node; the flow reads it, writes it, and sees the writes', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      flow(port, [
        { id: 'sim', type: 'lwm2m-device-sim', serverUri: `coap://127.0.0.1:${port}`, endpoint: 'sim-{n}', count: 3, objects: 'temperature,light', wires: [['simOut']] },
        { id: 'w2', type: 'lwm2m-write', server: 'srv', path: '/3311/0/5850', wires: [[]] },
        { id: 'simOut', type: 'helper' },
      ]),
    );
    const srv = helper.getNode('srv') as TestNode & { server: { registrations(): Array<{ endpoint: string }>; read(e: string, p: string): Promise<unknown> } };
    await srv.ready;
    while (srv.server.registrations().length < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(srv.server.registrations().map((registration) => registration.endpoint).sort(), ['sim-1', 'sim-2', 'sim-3']);
    const value = (await srv.server.read('sim-2', '/3303/0/5700')) as number;
    assert.ok(value >= -10 && value <= 40, `a plausible temperature: ${value}`);
    // the flow sets a value on one device, then the server reads it
    node('sim').receive({ endpoint: 'sim-1', path: '/3303/0/5700', payload: 33.3 });
    assert.equal(await srv.server.read('sim-1', '/3303/0/5700'), 33.3);
    // a write from the server comes out of the sim node
    const written = nextMessage('simOut');
    node('w2').receive({ endpoint: 'sim-3', payload: true });
    const msg = await written;
    assert.deepEqual({ endpoint: msg.endpoint, event: msg.event, path: msg.path, payload: msg.payload }, { endpoint: 'sim-3', event: 'write', path: '/3311/0/5850', payload: true });
  });

  it('device-sim with the APN profile and WiFi objects reports a write of the APN and of the SSID, and a read gets the new values', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      flow(port, [
        { id: 'sim', type: 'lwm2m-device-sim', serverUri: `coap://127.0.0.1:${port}`, endpoint: 'sim-net', count: 1, objects: 'apn,wifi', wires: [['simOut']] },
        { id: 'wApn', type: 'lwm2m-write', server: 'srv', path: '/11/0/1', wires: [['wOut']] },
        { id: 'wSsid', type: 'lwm2m-write', server: 'srv', path: '/12/0/5', wires: [['wOut']] },
        { id: 'rNet', type: 'lwm2m-read', server: 'srv', operation: 'readComposite', path: '/11/0/1,/12/0/5', wires: [['rOut']] },
        { id: 'simOut', type: 'helper' },
        { id: 'wOut', type: 'helper' },
        { id: 'rOut', type: 'helper' },
      ]),
    );
    const srv = helper.getNode('srv') as TestNode & { server: { registrations(): Array<{ endpoint: string; objects: Array<{ objectId: number }> }> } };
    await srv.ready;
    while (srv.server.registrations().length < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    const ids = srv.server.registrations()[0]!.objects.map((object) => object.objectId);
    assert.ok(ids.includes(11) && ids.includes(12), `the device registers objects 11 and 12: ${ids.join(', ')}`);
    // the defaults first, so the writes below are seen to change something
    const before = nextMessage('rOut');
    node('rNet').receive({ endpoint: 'sim-net' });
    assert.deepEqual((await before).payload, { '/11/0/1': 'internet', '/12/0/5': 'node-red-lwm2m' });

    const reported: Array<Record<string, unknown>> = [];
    const bothReported = new Promise<void>((resolve) =>
      node('simOut').on('input', (msg) => {
        reported.push({ endpoint: msg.endpoint, event: msg.event, path: msg.path, payload: msg.payload, topic: msg.topic });
        if (reported.length === 2) resolve();
      }),
    );
    const apnWritten = nextMessage('wOut');
    node('wApn').receive({ endpoint: 'sim-net', payload: 'iot.fleet.example' });
    assert.equal((await apnWritten).coapCode, '2.04');
    const ssidWritten = nextMessage('wOut');
    node('wSsid').receive({ endpoint: 'sim-net', payload: 'plant-floor-2' });
    assert.equal((await ssidWritten).coapCode, '2.04');
    await bothReported;
    assert.deepEqual(reported, [
      { endpoint: 'sim-net', event: 'write', path: '/11/0/1', payload: 'iot.fleet.example', topic: 'sim-net/11/0/1' },
      { endpoint: 'sim-net', event: 'write', path: '/12/0/5', payload: 'plant-floor-2', topic: 'sim-net/12/0/5' },
    ]);

    const after = nextMessage('rOut');
    node('rNet').receive({ endpoint: 'sim-net' });
    assert.deepEqual((await after).payload, { '/11/0/1': 'iot.fleet.example', '/12/0/5': 'plant-floor-2' });
  });

  it('device-sim de-registers its devices when the flow is stopped', async () => {
    // a server outside the flow, so it is still there to hear the De-register
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1' });
    const { port } = await server.listen();
    try {
      await helper.load(NODES, [
        { id: 'f1', type: 'tab' },
        { id: 'sim', z: 'f1', type: 'lwm2m-device-sim', serverUri: `coap://127.0.0.1:${port}`, endpoint: 'gone', count: 1, objects: 'temperature', wires: [[]] },
      ]);
      while (server.registrations().length < 1) await new Promise((resolve) => setTimeout(resolve, 20));
      const deregistered = new Promise((resolve) => server.once('deregister', resolve));
      await helper.unload();
      await deregistered;
      assert.equal(server.registrations().length, 0);
    } finally {
      await server.close();
    }
  });

  it('write takes its value from the value field, evaluated per message; a node saved without one writes msg.payload', async () => {
    const port = await freeUdpPort();
    const write = (id: string, path: string, value?: [string, string], extra: object = {}) => ({
      id,
      type: 'lwm2m-write',
      server: 'srv',
      path,
      ...(value ? { value: value[1], valueType: value[0] } : {}),
      ...extra,
      wires: [['wOut']],
    });
    await helper.load(
      NODES,
      flow(port, [
        write('wFlow', '/3311/0/5851', ['flow', 'dimmer']),
        write('wNum', '/3311/0/5851', ['num', '42']),
        write('wBool', '/3311/0/5850', ['bool', 'true']),
        write('wStr', '/3311/0/5750', ['str', 'porch']),
        write('wMsg', '/3311/0/5750', ['msg', 'room']),
        write('wJson', '/3311/0', ['json', '{"5750":"garden","5851":7}'], { operation: 'update' }),
        write('wExpr', '/3311/0/5851', ['jsonata', 'payload.level * 2']),
        write('wOld', '/3311/0/5750'),
        { id: 'wOut', type: 'helper' },
      ]),
    );
    await node('srv').ready;
    const light = await devices.start('sim-light', port, { objects: { 3311: { 0: { 5850: false, 5851: 0, 5750: 'hall' } } } });
    // each message carries a payload the node must not write
    const send = async (id: string, msg: Record<string, unknown> = {}) => {
      const done = nextMessage('wOut');
      node(id).receive({ endpoint: 'sim-light', payload: 'not this', ...msg });
      return done;
    };
    node('wFlow').context().flow.set('dimmer', 17);
    await send('wFlow');
    assert.equal(light.get('/3311/0/5851'), 17);
    await send('wNum');
    assert.equal(light.get('/3311/0/5851'), 42);
    await send('wBool');
    assert.equal(light.get('/3311/0/5850'), true);
    const out = await send('wStr');
    assert.equal(light.get('/3311/0/5750'), 'porch');
    assert.equal(out.payload, 'not this', 'the message goes on unchanged');
    await send('wMsg', { room: 'attic' });
    assert.equal(light.get('/3311/0/5750'), 'attic');
    await send('wJson');
    assert.deepEqual([light.get('/3311/0/5750'), light.get('/3311/0/5851')], ['garden', 7]);
    await send('wExpr', { payload: { level: 21 } });
    assert.equal(light.get('/3311/0/5851'), 42);
    await send('wOld', { payload: 'from payload' });
    assert.equal(light.get('/3311/0/5750'), 'from payload');
    // a value that is not there is an error naming where it was looked for, not a write of nothing
    const caught = nextMessage('caught');
    node('wMsg').receive({ endpoint: 'sim-light' });
    assert.match((((await caught).error) as { message: string }).message, /no value to write: msg\.room is undefined/);
    assert.equal(light.get('/3311/0/5750'), 'from payload');
  });

});
