/**
 * The lwm2m-bootstrap node in a real Node-RED runtime: simulated devices that know only the
 * bootstrap server get an account on the flow's server node and register there over DTLS with a
 * key of their own; a message sets or removes a configuration; bad input is an error for Catch;
 * the events come out without keys; the zero-touch example runs, its key renewal included, and
 * scaled to 100 devices.
 */
import assert from 'node:assert/strict';
import { LwM2MClient, type LwM2MBootstrapServer, type LwM2MServer } from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';
import { fullDeploy, logLength, nodeProblems, onFreePorts, readFlow, zeroTouchFleet } from '../helpers/flows';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, takeCredentials, until, type Message } from '../helpers/palette';

interface ServerNode {
  ready: Promise<void>;
  server: LwM2MServer;
}
interface BootstrapNode {
  ready: Promise<void>;
  bootstrap: LwM2MBootstrapServer;
  receive(msg: Message): void;
}

const hex = (text: string) => Buffer.from(text).toString('hex');
const BOOTSTRAP_KEY = hex('bootstrap-key');

/** Every message the node `id` receives from now on, as it comes. */
function collect(id: string): Message[] {
  const messages: Message[] = [];
  node(id).on('input', (msg) => messages.push(msg));
  return messages;
}

/** Every event the bootstrap node `bs` has sent since the flow started (its eventLog keeps them in the flow's context). */
function bootstrapEvents(): Message[] {
  return (helper.getNode('eventLog') as { context(): { flow: { get(key: string): Message[] | undefined } } }).context().flow.get('events') ?? [];
}

interface Ports {
  port: number;
  dtlsPort: number;
  bsPort: number;
  bsDtlsPort: number;
}

/** The base flow with a DTLS server node `srv` and a bootstrap node `bs` (events → `events`) beside it. */
async function bootstrapFlow(bootstrap: object, extra: (ports: Ports) => object[] = () => [], server: object = { dtls: true, requireSecurity: true }) {
  const ports: Ports = { port: await freeUdpPort(), dtlsPort: await freeUdpPort(), bsPort: await freeUdpPort(), bsDtlsPort: await freeUdpPort() };
  const flow = paletteFlow(
    ports.port,
    [{ id: 'bs', type: 'lwm2m-bootstrap', server: 'srv', address: '127.0.0.1', port: ports.bsPort, dtlsPort: ports.bsDtlsPort, configs: [], wires: [['events', 'eventLog']], ...bootstrap },
      { id: 'events', type: 'helper' },
      { id: 'eventLog', type: 'function', func: "const log = flow.get('events') || []; log.push(msg); flow.set('events', log); return null;", outputs: 0, wires: [] },
      ...extra(ports),
    ],
    { dtlsPort: ports.dtlsPort, ...server },
  );
  return { flow, ...ports };
}

describe(`lwm2m-bootstrap node (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(60_000);
  const devices: LwM2MClient[] = [];

  /** A device that knows only the bootstrap server at `uri`. */
  const bootstrapDevice = (endpoint: string, uri: string, options: object = {}) => {
    const device = new LwM2MClient({ endpoint, bootstrap: uri, timing: FAST_TIMING, objects: { 3303: { 0: { 5700: 21.5 } } }, ...options });
    device.on('error', () => undefined);
    devices.push(device);
    void device.start().catch(() => undefined);
    return device;
  };

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop().catch(() => undefined)));
    await helper.unload();
  });

  it('a device-sim fleet that knows only the bootstrap server (over DTLS) registers with the server node over DTLS, each with a key of its own; the events say so, without keys', async () => {
    const { flow, dtlsPort } = await bootstrapFlow(
      { dtls: true, requireSecurity: true, configs: [{ endpoint: '*', target: 'server', security: 'psk', generate: true, lifetime: 300, binding: 'U' }] },
      ({ bsDtlsPort }) => [{ id: 'fleet', type: 'lwm2m-device-sim', connect: 'bootstrap', bootstrapUri: `coaps://127.0.0.1:${bsDtlsPort}`, endpoint: 'sim-{n}', count: 3, objects: 'temperature', wires: [[]] }],
    );
    const rows = JSON.stringify(['sim-1', 'sim-2', 'sim-3'].map((endpoint) => ({ endpoint, identity: '' })));
    await helper.load(NODES, flow, { bs: { psk: rows, pskKeys: JSON.stringify({ 'sim-1': BOOTSTRAP_KEY, 'sim-2': BOOTSTRAP_KEY, 'sim-3': BOOTSTRAP_KEY }) }, fleet: { bsKey: BOOTSTRAP_KEY } });
    const serverNode = helper.getNode('srv') as ServerNode;
    await serverNode.ready;
    await (helper.getNode('bs') as BootstrapNode).ready;
    await statusOf('fleet', (status) => status.text === '3/3 registered');

    const registrations = serverNode.server.registrations().map((registration) => [registration.endpoint, registration.identity]).sort();
    assert.deepEqual(registrations, [['sim-1', 'sim-1'], ['sim-2', 'sim-2'], ['sim-3', 'sim-3']], 'each registered over DTLS as its own identity');
    const keys = serverNode.server.credentials();
    assert.deepEqual(keys.map((credential) => credential.endpoint).sort(), ['sim-1', 'sim-2', 'sim-3'], "the generated keys are in the server node's table");
    assert.equal(new Set(keys.map((credential) => credential.key.toString('hex'))).size, 3, 'a key of its own for each device');

    await until(() => bootstrapEvents().filter((msg) => msg.topic === 'bootstrapFinished').length === 3);
    const events = bootstrapEvents();
    for (const endpoint of ['sim-1', 'sim-2', 'sim-3']) {
      const mine = events.filter((msg) => msg.endpoint === endpoint);
      assert.equal(mine[0]?.topic, 'bootstrapRequest', `${endpoint}: the request comes first`);
      assert.equal((mine[0]!.payload as { identity?: string }).identity, endpoint, 'it asked over DTLS with its bootstrap identity');
      assert.ok(mine.some((msg) => msg.topic === 'operation' && (msg.payload as { operation: string }).operation === 'write'), `${endpoint}: its writes are told`);
      const finished = mine.find((msg) => msg.topic === 'bootstrapFinished')!.payload as { servers: Array<Record<string, unknown>> };
      assert.deepEqual(finished.servers.map(({ uri, security, identity, generated }) => ({ uri, security, identity, generated })), [{ uri: `coaps://127.0.0.1:${dtlsPort}`, security: 'psk', identity: endpoint, generated: true }]);
    }
    const everything = JSON.stringify(events);
    for (const key of [...keys.map((credential) => credential.key.toString('hex')), BOOTSTRAP_KEY]) {
      assert.ok(!everything.includes(key) && !everything.includes(JSON.stringify([...Buffer.from(key, 'hex')]).slice(1, -1)), 'no key in any event');
    }
    await statusOf('bs', (status) => /3 ok$/.test(status.text ?? ''));
    assert.deepEqual(nodeProblems(helper), [], 'no node warned or reported an error');
  });

  it('a message sets one configuration at run time (the server node by true, a key in hex); null removes it, and that device then fails to bootstrap', async () => {
    const { flow, bsPort } = await bootstrapFlow({});
    await helper.load(NODES, flow);
    const serverNode = helper.getNode('srv') as ServerNode;
    const bs = helper.getNode('bs') as BootstrapNode;
    await bs.ready;
    bs.receive({ endpoint: 'dev-a', payload: { server: true, psk: { identity: 'dev-a-id', key: hex('dev-a-key') }, lifetime: 120 } });
    await until(() => bs.bootstrap.config('dev-a') !== undefined);
    assert.equal(bs.bootstrap.config('dev-a')!.servers[0]!.security, 'psk', 'PSK, as the server node has DTLS');

    bootstrapDevice('dev-a', `coap://127.0.0.1:${bsPort}`);
    await until(() => serverNode.server.registration('dev-a') !== undefined);
    const registration = serverNode.server.registration('dev-a')!;
    assert.deepEqual([registration.identity, registration.lifetime], ['dev-a-id', 120]);
    assert.deepEqual(serverNode.server.credentials().map(({ endpoint, identity, key }) => [endpoint, identity, key.toString()]), [['dev-a', 'dev-a-id', 'dev-a-key']]);

    bs.receive({ endpoint: 'dev-a', payload: null });
    await until(() => bs.bootstrap.config('dev-a') === undefined);
    const failed = messageWhere('events', (msg) => msg.topic === 'bootstrapFailed' && msg.endpoint === 'dev-a');
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    bootstrapDevice('dev-a', `coap://127.0.0.1:${bsPort}`);
    assert.match(String(((await failed).payload as { reason: string }).reason), /configuration|dev-a/i);
    assert.ok(bootstrapEvents().some((msg) => msg.topic === 'bootstrapFinished' && msg.endpoint === 'dev-a'), 'the first bootstrap finished');
  });

  it('bad input is an error for Catch that says what is wrong, and sets nothing', async () => {
    const { flow } = await bootstrapFlow({});
    await helper.load(NODES, flow);
    const bs = helper.getNode('bs') as BootstrapNode;
    await bs.ready;
    const cases: Array<[Message, RegExp]> = [
      [{ payload: { server: true } }, /msg\.endpoint must name the device/],
      [{ endpoint: 'x', payload: 'coaps://somewhere' }, /msg\.payload must be a bootstrap configuration/],
      [{ endpoint: 'x' }, /msg\.payload must be a bootstrap configuration/],
      [{ endpoint: 'x', payload: { servers: [{ uri: 'http://127.0.0.1:1' }] } }, /coap:\/\/ or coaps:\/\//],
      [{ endpoint: 'x', payload: { servers: [] } }, /at least one/],
      [{ endpoint: 'x', payload: { server: true, psk: { identity: 'i', key: 'not hex' } } }, /must be hex/],
      [{ endpoint: 'x', payload: { server: 'nope' } }, /there is no lwm2m-server node nope/],
      [{ endpoint: 'x', payload: { servers: [{ uri: 'coap://127.0.0.1:5683', security: 'psk' }] } }, /PSK needs coaps/],
    ];
    for (const [msg, expected] of cases) {
      const caught = nextMessage('caught');
      bs.receive(msg);
      const error = (await caught).error as { message: string; source: { id: string } };
      assert.match(error.message, expected, JSON.stringify(msg));
      assert.equal(error.source.id, 'bs');
    }
    assert.deepEqual(bs.bootstrap.configs(), {}, 'nothing was set');
    assert.deepEqual(bootstrapEvents(), [], 'nothing was sent');
  });

  it('a PSK row pointing at a server node with DTLS off: the node says so in red, and a message gets the reason', async () => {
    const { flow } = await bootstrapFlow({ configs: [{ endpoint: '*', target: 'server', security: 'psk', generate: true }] }, () => [], {});
    await helper.load(NODES, flow);
    await (helper.getNode('srv') as ServerNode).ready;
    const bs = helper.getNode('bs') as BootstrapNode;
    await bs.ready.then(
      () => assert.fail('the bootstrap server started'),
      (error: Error) => assert.match(error.message, /the configuration of \* is PSK, but the server node srv has DTLS off: tick DTLS in it/),
    );
    assert.equal((await statusOf('bs', (status) => status.fill === 'red')).text, 'bad settings');
    const caught = nextMessage('caught');
    bs.receive({ endpoint: 'x', payload: null });
    assert.match(((await caught).error as { message: string }).message, /the bootstrap server is not running: .*DTLS off/);
  });

  it('a row that points at the server node when none is chosen, or a chosen one that is gone: the node says which', async () => {
    for (const [server, expected] of [
      ['', /the configuration of \* points at the server node, but the bootstrap node has none: choose one/],
      ['gone', /there is no lwm2m-server node gone/],
    ] as const) {
      const { flow } = await bootstrapFlow({ server, configs: [{ endpoint: '*', target: 'server', security: 'nosec' }] });
      await helper.load(NODES, flow);
      await (helper.getNode('bs') as BootstrapNode).ready.then(
        () => assert.fail('the bootstrap server started'),
        (error: Error) => assert.match(error.message, expected),
      );
      await helper.unload();
    }
  });

  it('a row with a given key keeps the key in the credentials (typed keys fold into the stored ones); a row by URI sends a device to that server with NoSec', async () => {
    const { flow, port, bsPort } = await bootstrapFlow({
      configs: [
        { endpoint: 'dev-b', target: 'server', security: 'psk', generate: false, identity: 'b-id', lifetime: 300, binding: 'U' },
        { endpoint: 'dev-c', target: 'uri', uri: 'coap://127.0.0.1:PORT', security: 'nosec', lifetime: 60, binding: 'U' },
      ],
    }, () => [], { dtls: true });
    const flowText = JSON.stringify(flow).replace('PORT', String(port));
    await helper.load(NODES, JSON.parse(flowText), { bs: { configChanges: JSON.stringify({ 'dev-b': hex('b-key') }) } });
    const serverNode = helper.getNode('srv') as ServerNode;
    await (helper.getNode('bs') as BootstrapNode).ready;
    const stored = (helper as { credentials: { get(id: string): Record<string, string> | undefined } }).credentials.get('bs')!;
    assert.deepEqual(JSON.parse(stored.configKeys!), { 'dev-b': hex('b-key') });
    assert.equal(stored.configChanges, undefined, 'the typed key joined the stored ones');
    assert.ok(!flowText.includes(hex('b-key')), 'the flow holds no key');

    bootstrapDevice('dev-b', `coap://127.0.0.1:${bsPort}`);
    bootstrapDevice('dev-c', `coap://127.0.0.1:${bsPort}`);
    await until(() => serverNode.server.registration('dev-b') !== undefined && serverNode.server.registration('dev-c') !== undefined);
    assert.equal(serverNode.server.registration('dev-b')!.identity, 'b-id');
    assert.equal(serverNode.server.registration('dev-c')!.identity, undefined, 'dev-c registered over plain CoAP');
    assert.equal(serverNode.server.registration('dev-c')!.lifetime, 60);
    assert.deepEqual(serverNode.server.credentials().map(({ endpoint, identity, key }) => [endpoint, identity, key.toString()]), [['dev-b', 'b-id', 'b-key']]);
  });

  it('closes its ports before a redeploy starts the next one (no EADDRINUSE)', async () => {
    const { flow } = await bootstrapFlow({ dtls: true, configs: [{ endpoint: '*', target: 'server', security: 'psk', generate: true }] });
    await helper.load(NODES, flow);
    const before = helper.getNode('bs') as BootstrapNode;
    await before.ready;
    await fullDeploy(helper, flow);
    const after = helper.getNode('bs') as BootstrapNode;
    assert.notEqual(after, before);
    await after.ready;
    assert.deepEqual(nodeProblems(helper), []);
  });

  it('"Zero-touch provisioning": the devices bootstrap and register over DTLS; "renew zt-1\'s key" bootstraps zt-1 again with a new key, and it registers anew', async () => {
    const flow = await onFreePorts(readFlow('examples/Zero-touch provisioning.json'));
    const credentials = takeCredentials(flow);
    await helper.load(NODES, flow, credentials);
    const serverNode = helper.getNode('zt-server') as ServerNode;
    await serverNode.ready;
    await (helper.getNode('zt-bootstrap') as BootstrapNode).ready;
    const endpoints = ['zt-1', 'zt-2', 'zt-3', 'zt-4'];
    await until(() => serverNode.server.registrations().length === 4);
    const bootstraps = collect('zt-bootstrap-debug');
    assert.deepEqual(serverNode.server.registrations().map((registration) => [registration.endpoint, registration.identity]).sort(), endpoints.map((endpoint) => [endpoint, endpoint]));
    const keyOf = (endpoint: string) => serverNode.server.credentials().find((credential) => credential.endpoint === endpoint)?.key.toString('hex');
    const first = keyOf('zt-1');
    assert.ok(first);
    const registeredBefore = serverNode.server.registration('zt-1')!.registeredAt;
    assert.deepEqual(nodeProblems(helper), [], 'no node warned or reported an error while the devices bootstrapped');
    const logged = logLength(helper);

    const executed = nextMessage('zt-trigger-debug');
    const again = messageWhere('zt-bootstrap-debug', (msg) => msg.topic === 'bootstrapFinished' && msg.endpoint === 'zt-1');
    const reregistered = messageWhere('zt-register-debug', (msg) => msg.event === 'register' && msg.endpoint === 'zt-1');
    node('zt-renew').receive({});
    assert.equal((await executed).coapCode, '2.04');
    await again;
    await reregistered;
    await until(() => (serverNode.server.registration('zt-1')?.registeredAt ?? 0) > registeredBefore);
    const renewed = keyOf('zt-1');
    assert.ok(renewed && renewed !== first, 'zt-1 has a new key');
    assert.equal(serverNode.server.registration('zt-1')!.identity, 'zt-1');
    assert.equal(serverNode.server.registrations().length, 4);
    assert.ok(!bootstraps.some((msg) => msg.endpoint !== 'zt-1' && msg.topic === 'bootstrapRequest'), 'only zt-1 bootstrapped again');
    // the server ends zt-1's old DTLS session when the new key arrives (before Finish); the device's
    // close_notify of that session comes after it and is no reason for a log line
    const problems = nodeProblems(helper, logged);
    assert.deepEqual(problems, [], 'no node warned or reported an error during the renewal');
  });

  it('"Zero-touch provisioning" scaled to 100 devices (count 100, zt-1..zt-100 in the bootstrap node\'s Devices table): all 100 bootstrap and register over DTLS, each with a key of its own', async function () {
    this.timeout(180_000);
    const flow = zeroTouchFleet(await onFreePorts(readFlow('examples/Zero-touch provisioning.json')), 100);
    const credentials = takeCredentials(flow);
    await helper.load(NODES, flow, credentials);
    const serverNode = helper.getNode('zt-server') as ServerNode;
    await serverNode.ready;
    await (helper.getNode('zt-bootstrap') as BootstrapNode).ready;
    const endpoints = Array.from({ length: 100 }, (_, index) => `zt-${index + 1}`).sort();
    const secured = () => serverNode.server.registrations().filter((registration) => registration.identity !== undefined);
    await until(() => secured().length === 100);
    assert.deepEqual(secured().map((registration) => [registration.endpoint, registration.identity]).sort(), endpoints.map((endpoint) => [endpoint, endpoint]), 'each registered over DTLS as its own identity');
    assert.equal(serverNode.server.registrations().length, 100, 'no registration without DTLS');
    const keys = serverNode.server.credentials();
    assert.deepEqual(keys.map((credential) => credential.endpoint).sort(), endpoints, "the generated keys are in the server node's table");
    assert.equal(new Set(keys.map((credential) => credential.key.toString('hex'))).size, 100, 'a key of its own for each device');
  });
});
