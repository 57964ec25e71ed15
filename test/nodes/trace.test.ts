/**
 * lwm2m-trace in Node-RED: a read through the flow comes out as trace messages (the GET and its
 * 2.05, decoded), filtered by endpoint, with the server node keeping no buffer; the server node's
 * Trace setting keeps messages; a bad setting is a clear error.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { LwM2MServer, TraceEntry } from '../../lib';
import { helper } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, nextMessage, node, paletteFlow, type Message } from '../helpers/palette';

interface ServerNode {
  ready: Promise<void>;
  server: LwM2MServer;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('lwm2m-trace node', function () {
  this.timeout(20_000);
  const devices = new Devices();

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  const traceFlow = (port: number, endpoint: string, server: object = {}) =>
    paletteFlow(port, [{ id: 'trace', type: 'lwm2m-trace', server: 'srv', endpoint, wires: [['traced']] }, { id: 'traced', type: 'helper' }], server);

  it('a read through the flow comes out as trace messages of that device only, with no trace buffer on the server', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, traceFlow(port, 'sim-t'));
    const serverNode = helper.getNode('srv') as unknown as ServerNode;
    await serverNode.ready;
    const traced: Message[] = [];
    node('traced').on('input', (msg) => traced.push(msg));
    assert.equal(serverNode.server.trace.size, 0);
    assert.equal(serverNode.server.trace.active, true, 'the trace node switched tracing on');
    await devices.start('other-1', port);
    await devices.start('sim-t', port);
    await until(() => traced.length >= 2, 'the Register and its 2.01');
    const result = nextMessage('readOut');
    node('read').receive({ endpoint: 'sim-t' });
    assert.equal((await result).payload, 21.5);
    await until(() => traced.some((msg) => (msg.payload as TraceEntry).code === '2.05'), 'the 2.05');
    assert.ok(traced.every((msg) => msg.topic === 'sim-t' && msg.endpoint === 'sim-t'), JSON.stringify(traced.map((msg) => msg.topic)));
    const entries = traced.map((msg) => msg.payload as TraceEntry);
    assert.deepEqual(entries.slice(0, 2).map((entry) => [entry.direction, entry.code]), [['in', 'POST'], ['out', '2.01']]);
    const get = entries.find((entry) => entry.code === 'GET')!;
    assert.equal(get.direction, 'out');
    assert.equal(get.options!['Uri-Path'], '/3303/0/5700');
    const content = entries.find((entry) => entry.code === '2.05')!;
    assert.equal(content.direction, 'in');
    assert.equal(content.token, get.token);
    assert.ok(content.payload, 'the 2.05 has its payload');
    assert.ok(['text', 'cbor', 'json', 'tlv'].includes(content.payload!.as), content.payload!.as);
    assert.deepEqual(serverNode.server.trace.entries(), [], 'nothing kept: streaming needs no buffer');
  });

  it("unfiltered, names a peer the server does not know by address:port; the server node's Trace setting keeps messages", async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, traceFlow(port, '', { trace: '20' }));
    const serverNode = helper.getNode('srv') as unknown as ServerNode;
    await serverNode.ready;
    assert.equal(serverNode.server.trace.size, 20);
    const traced: Message[] = [];
    node('traced').on('input', (msg) => traced.push(msg));
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      socket.send(Buffer.from([0x40, 0x01, 0x00, 0x07, 0xf0]), port, '127.0.0.1');
      await until(() => traced.length >= 2, 'the malformed datagram and its Reset');
      const [garbage, reset] = traced;
      assert.equal(garbage!.topic, `127.0.0.1:${socket.address().port}`);
      assert.equal(garbage!.endpoint, undefined);
      assert.equal((garbage!.payload as TraceEntry).malformed, 'reserved option nibble 15');
      assert.deepEqual([(reset!.payload as TraceEntry).direction, (reset!.payload as TraceEntry).type], ['out', 'RST']);
      // the flow gets copies: changing one leaves the kept entry as it was
      (garbage!.payload as TraceEntry).size = -1;
      assert.equal(serverNode.server.trace.entries()[0]!.size, 5);
    } finally {
      socket.close();
    }
    await devices.start('sim-k', port);
    await until(() => serverNode.server.trace.entries().some((entry) => entry.endpoint === 'sim-k' && entry.code === '2.01'), 'the 2.01 kept');
  });

  it('a Trace setting that is not a number of messages stops the server with a clear error', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { trace: 'lots' }));
    const serverNode = helper.getNode('srv') as unknown as ServerNode;
    await assert.rejects(serverNode.ready, /Trace: lots is not a number of messages from 0 to 100000/);
  });
});
