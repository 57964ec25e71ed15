/**
 * The palette with DTLS: a server node whose devices and keys are in its credentials accepts a
 * PSK registration (libcoap's OpenSSL client), refuses plain CoAP when told to, and says clearly
 * when its PSK table is wrong.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { coapsRequest, responseCode } from '../helpers/coaps-client';
import { NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, takeCredentials, until, type Message } from '../helpers/palette';

const TABLE = JSON.stringify([{ endpoint: 'sim-secure', identity: 'secure-id', key: Buffer.from('secure-key').toString('hex') }]);

describe(`Node-RED nodes over DTLS (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(30_000);

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(() => helper.unload());

  it('a server node with PSK credentials registers a device over DTLS; register-in shows its identity', async () => {
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    await helper.load(NODES, paletteFlow(port, [], { dtls: true, dtlsPort, requireSecurity: true }), { srv: { psk: TABLE } });
    const serverNode = helper.getNode('srv') as { ready: Promise<void> };
    await serverNode.ready;
    const registered = messageWhere('out', (msg: Message) => msg.event === 'register');
    const output = await coapsRequest('coap-client-openssl', `coaps://127.0.0.1:${dtlsPort}/rd?ep=sim-secure&lt=60&lwm2m=1.1`, {
      identity: 'secure-id',
      key: 'secure-key',
      method: 'post',
      payload: '</3/0>',
    });
    assert.equal(responseCode(output), '2.01', output);
    const payload = (await registered).payload as Record<string, unknown>;
    assert.equal(payload.security, 'psk');
    assert.equal(payload.identity, 'secure-id');
    const plain = await coapsRequest('coap-client-openssl', `coap://127.0.0.1:${port}/rd?ep=sim-plain&lt=60`, { identity: '', key: '', method: 'post', payload: '</3/0>' });
    assert.equal(responseCode(plain), '4.03', 'plain CoAP is refused');
  });

  it('device-sim fleets register over DTLS with their PSK; the flow reads them; a wrong key registers nothing', async () => {
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    const key = Buffer.from('fleet-key').toString('hex');
    const table = JSON.stringify([
      { endpoint: 'sim-1', key },
      { endpoint: 'sim-2', key },
      { endpoint: 'sim-bad', key },
    ]);
    const uri = `coaps://127.0.0.1:${dtlsPort}`;
    await helper.load(
      NODES,
      paletteFlow(
        port,
        [
          { id: 'fleet', type: 'lwm2m-device-sim', serverUri: uri, endpoint: 'sim-{n}', count: 2, objects: 'temperature', wires: [[]] },
          { id: 'wrong', type: 'lwm2m-device-sim', serverUri: uri, endpoint: 'sim-bad', count: 1, objects: 'temperature', wires: [[]] },
        ],
        { dtls: true, dtlsPort, requireSecurity: true },
      ),
      { srv: { psk: table }, fleet: { key }, wrong: { key: Buffer.from('another-key').toString('hex') } },
    );
    const server = (helper.getNode('srv') as unknown as { ready: Promise<void>; server: { registrations(): Array<{ endpoint: string; identity?: string }> } });
    await server.ready;
    await statusOf('fleet', (status) => status.text === '2/2 registered');
    const result = nextMessage('readOut');
    node('read').receive({ endpoint: 'sim-2' });
    const msg = await result;
    assert.equal(typeof msg.payload, 'number');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(
      server.server.registrations().map((registration) => [registration.endpoint, registration.identity]).sort(),
      [
        ['sim-1', 'sim-1'],
        ['sim-2', 'sim-2'],
      ],
    );
  });

  it('keeps PSK keys as password credentials: keys in the rows move out, keys typed in a redeploy join the stored ones', async () => {
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    const hex = (text: string) => Buffer.from(text).toString('hex');
    // an older flow: the key inside the row of the text credential
    const legacy = JSON.stringify([{ endpoint: 'sim-old', identity: 'old-id', key: hex('old-key') }]);
    const flow = paletteFlow(port, [], { dtls: true, dtlsPort });
    await helper.load(NODES, flow, { srv: { psk: legacy } });
    type ServerNode = { ready: Promise<void> };
    await (helper.getNode('srv') as ServerNode).ready;
    const runtimeCredentials = (helper as { credentials: { get(id: string): Record<string, string> | undefined } }).credentials;
    const stored = runtimeCredentials.get('srv')!;
    assert.deepEqual(JSON.parse(stored.psk!), [{ endpoint: 'sim-old', identity: 'old-id' }], 'the text credential the editor sees holds no key');
    assert.deepEqual(JSON.parse(stored.pskKeys!), { 'old-id': hex('old-key') });
    assert.equal(stored.pskChanges, undefined);
    const register = (endpoint: string, identity: string, key: string) =>
      coapsRequest('coap-client-openssl', `coaps://127.0.0.1:${dtlsPort}/rd?ep=${endpoint}&lt=60&lwm2m=1.1`, { identity, key, method: 'post', payload: '</3/0>' });
    assert.equal(responseCode(await register('sim-old', 'old-id', 'old-key')), '2.01');

    // a redeploy from the editor: a new row with its typed key; the old row's key field left empty ('__PWRD__' keeps pskKeys)
    const rows = JSON.stringify([{ endpoint: 'sim-old', identity: 'old-id' }, { endpoint: 'sim-new', identity: 'new-id' }]);
    const redeployed = flow.map((entry) =>
      (entry as { id: string }).id === 'srv' ? { ...entry, credentials: { psk: rows, pskKeys: '__PWRD__', pskChanges: JSON.stringify({ 'new-id': hex('new-key') }) } } : entry,
    );
    const runtime = (helper as unknown as { _redNodes: { setFlows(flow: object[], credentials: null, type: string): Promise<unknown> } })._redNodes;
    const before = helper.getNode('srv');
    await runtime.setFlows(redeployed, null, 'full');
    // setFlows resolves once the old flows stopped; the new ones start after it
    await until(() => helper.getNode('srv') !== null && helper.getNode('srv') !== before);
    await (helper.getNode('srv') as ServerNode).ready;
    const after = runtimeCredentials.get('srv')!;
    assert.deepEqual(JSON.parse(after.pskKeys!), { 'old-id': hex('old-key'), 'new-id': hex('new-key') }, 'the typed key joined the stored one');
    assert.equal(after.pskChanges, undefined, 'the typed keys were folded into pskKeys');
    assert.ok(!after.psk!.includes(hex('new-key')) && !after.psk!.includes(hex('old-key')));
    assert.equal(responseCode(await register('sim-old', 'old-id', 'old-key')), '2.01', 'the unchanged row kept its key');
    assert.equal(responseCode(await register('sim-new', 'new-id', 'new-key')), '2.01');
  });

  it('a row whose key was never given stops the DTLS server with a message that says which', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { dtls: true, dtlsPort: await freeUdpPort() }), { srv: { psk: JSON.stringify([{ endpoint: 'sim-nokey', identity: '' }]) } });
    await (helper.getNode('srv') as { ready: Promise<void> }).ready.then(
      () => assert.fail('the server started'),
      (error: Error) => assert.match(error.message, /the PSK of sim-nokey \(identity sim-nokey\) has no key/),
    );
  });

  it("runs the README's DTLS flow: the simulated device registers over DTLS with its identity", async () => {
    const readme = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
    const block = /<!-- dtls-flow -->\s*```json\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'README has the DTLS flow');
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    const flow = JSON.parse(block.replace(/"5683"/g, `"${port}"`).replace(/"5684"/g, `"${dtlsPort}"`).replace(/:5684"/g, `:${dtlsPort}"`)) as Array<Record<string, unknown>>;
    const credentials = takeCredentials(flow);
    for (const entry of flow) if (entry.type !== 'lwm2m-server') entry.z = 'readme';
    await helper.load(NODES, [{ id: 'readme', type: 'tab' }, ...flow], credentials);
    const server = helper.getNode('srv') as unknown as { ready: Promise<void>; server: { registrations(): Array<{ endpoint: string; identity?: string }> } };
    await server.ready;
    const registered = nextMessage('dbg');
    const payload = (await registered).payload as Record<string, unknown>;
    assert.deepEqual([payload.endpoint, payload.security, payload.identity], ['secure-1', 'psk', 'secure-1']);
  });

  it('a PSK table with a key that is not hex stops the server, and the nodes that use it say why', async () => {
    const port = await freeUdpPort();
    const bad = JSON.stringify([{ endpoint: 'sim-1', key: 'not hex' }]);
    await helper.load(NODES, paletteFlow(port, [], { dtls: true, dtlsPort: await freeUdpPort() }), { srv: { psk: bad } });
    await (helper.getNode('srv') as { ready: Promise<void> }).ready.then(
      () => assert.fail('the server started'),
      (error: Error) => assert.match(error.message, /the PSK key of sim-1 must be hex/),
    );
    // a node that uses the server says why it cannot act
    const caught = nextMessage('caught');
    node('read').receive({ endpoint: 'sim-1' });
    assert.match((((await caught).error as { message: string }).message), /the LwM2M server is not running: the PSK key of sim-1 must be hex/);
    assert.equal(((await caught).error as { code: string }).code, 'SERVER_NOT_RUNNING');
    assert.equal((await statusOf('read', (status) => status.fill === 'red')).text, 'server not running');
  });
});
