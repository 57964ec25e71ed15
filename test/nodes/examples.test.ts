/**
 * Every example flow loads in Node-RED and runs: its simulated devices register and data arrives
 * at its debug nodes. Each has ports of its own, so that it can be imported beside the demo (and
 * the other examples) as it is; the runtime tests move every port to a free one.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { LwM2MServer } from '../../lib';
import { bootstrapPorts, devicesByServer, devicesByServerNode, examples, fullDeploy, importCopy, nodeProblems, onFreePorts, readFlow, root, serverPorts, viaBootstrap, type FlowNode } from '../helpers/flows';
import { helper } from '../helpers/node-red';
import { NODES, takeCredentials } from '../helpers/palette';

interface ServerNode {
  ready: Promise<void>;
  server: LwM2MServer;
}


describe('example flows', function () {
  this.timeout(60_000);

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(() => helper.unload());

  it('there are the examples the palette promises, and every non-config node appears in one', () => {
    for (const name of ['Device telemetry to debug.json', 'Remote management.json', 'Send data.json', 'Registration dashboard.json', 'Secure devices (DTLS).json', 'Firmware update.json', 'Configure the fleet.json', 'Zero-touch provisioning.json']) assert.ok(examples.includes(name), name);
    const used = new Set(examples.flatMap((file) => readFlow(`examples/${file}`).map((node) => node.type)));
    const palette = Object.keys((JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes);
    assert.equal(palette.length, 12);
    for (const type of palette.filter((type) => type !== 'lwm2m-server')) assert.ok(used.has(type), `${type} is in an example`);
  });

  it('each example has a server on ports of its own, named by them, that its devices use; the README lists them', () => {
    const owner = new Map<number, string>([[5684, "the default DTLS port (the demo's, once DTLS is ticked)"]]);
    for (const port of serverPorts(readFlow('demo/flows.json'))) owner.set(port, 'the demo');
    assert.ok(owner.has(5683), 'the demo listens on 5683');
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8').split('\n');
    for (const file of examples) {
      const flow = readFlow(`examples/${file}`);
      const servers = flow.filter((node) => node.type === 'lwm2m-server');
      assert.equal(servers.length, 1, `${file} has one server node`);
      const ports = serverPorts(flow);
      const bootstrap = bootstrapPorts(flow);
      for (const port of [...ports, ...bootstrap]) {
        assert.ok(!owner.has(port), `${file}: port ${port} is also ${owner.get(port)}`);
        owner.set(port, file);
      }
      const [coap, dtls] = ports;
      assert.match(String(servers[0]!.name), new RegExp(`:${coap}\\b`), `${file}: the server's name says its port`);
      if (dtls) assert.match(String(servers[0]!.name), new RegExp(`DTLS :${dtls}\\b`), `${file}: the server's name says its DTLS port`);
      const [bsCoap, bsDtls] = bootstrap;
      const own = [`coap://127.0.0.1:${coap}`, ...(dtls ? [`coaps://127.0.0.1:${dtls}`] : []), ...(bsCoap ? [`coap://127.0.0.1:${bsCoap}`] : []), ...(bsDtls ? [`coaps://127.0.0.1:${bsDtls}`] : [])];
      const uris = [...devicesByServer(flow).keys()];
      assert.ok(uris.length > 0, `${file} has simulated devices`);
      for (const uri of uris) assert.ok(own.includes(uri), `${file}: a device-sim registers with ${uri}, not with its own server (${own.join(', ')})`);
      const name = file.replace(/\.json$/, '');
      const line = readme.find((text) => text.startsWith(`- "${name}"`));
      assert.ok(line, `the README lists "${name}"`);
      for (const port of [...ports, ...bootstrap]) assert.match(line, new RegExp(`\\b${port}\\b`), `the README gives "${name}" port ${port}`);
    }
  });

  it('the demo is the telemetry example on 5683 (as the README says)', () => {
    // what differs on purpose: ids, the tab's label, ports, and the server's name (which says the port)
    const same = (flow: FlowNode[], prefix: string, port: number) =>
      JSON.parse(JSON.stringify(flow).replaceAll(`"${prefix}-`, '"').replaceAll(String(port), 'PORT')).map((node: FlowNode) => ({ ...node, label: undefined, name: node.type === 'lwm2m-server' ? undefined : node.name }));
    assert.deepEqual(same(readFlow('demo/flows.json'), 'demo', 5683), same(readFlow('examples/Device telemetry to debug.json'), 'telemetry', 5690));
  });

  for (const file of examples) {
    it(`"${file}" loads and runs: its devices register and its debug nodes get data`, async () => {
      const flow = await onFreePorts(readFlow(`examples/${file}`));
      const credentials = takeCredentials(flow);
      const expected = flow.filter((node) => node.type === 'lwm2m-device-sim').reduce((sum, node) => sum + Number(node.count ?? 1), 0);
      const debugs = flow.filter((node) => node.type === 'debug').map((node) => node.id);
      // a debug fed by an event node (register-in, notify-in, send-in) must get data by itself
      const fedByEvents = flow
        .filter((node) => /^lwm2m-(register|notify|send)-in$/.test(node.type))
        .flatMap((node) => (node.wires as string[][]).flat())
        .filter((id) => debugs.includes(id));
      await helper.load(NODES, flow, credentials);
      const serverNode = helper.getNode(flow.find((node) => node.type === 'lwm2m-server')!.id) as ServerNode;
      await serverNode.ready;
      const received = new Set<string>();
      for (const id of debugs) helper.getNode(id).on('input', () => received.add(id));
      const deadline = Date.now() + 30_000;
      while (serverNode.server.registrations().length < expected || received.size === 0 || !fedByEvents.every((id) => received.has(id))) {
        if (Date.now() > deadline) assert.fail(`${serverNode.server.registrations().length} of ${expected} registered, debug messages at ${[...received].join(', ') || 'none'}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(serverNode.server.registrations().length, expected);
      // devices pointed at coaps:// (or bootstrapped) registered over DTLS, each bound to its PSK identity
      if (flow.some((node) => node.type === 'lwm2m-device-sim' && (viaBootstrap(node) || String(node.serverUri).startsWith('coaps:')))) {
        for (const registration of serverNode.server.registrations()) assert.equal(registration.identity, registration.endpoint);
      }
    });
  }

  it('"Firmware update.json" updates every simulated device, five at a time: exactly fw-sim-12 fails, its integrity check (Update Result 5), and the summary says so', async () => {
    const flow = await onFreePorts(readFlow('examples/Firmware update.json'));
    await helper.load(NODES, flow, takeCredentials(flow));
    const byName = (name: string) => flow.find((node) => node.name === name)!.id;
    const results: Array<Record<string, unknown>> = [];
    let busy = 0;
    let most = 0;
    const started = new Set<string>();
    helper.getNode(byName('progress')).on('input', (msg: { payload: { endpoint: string; phase: string } }) => {
      if (msg.payload.phase !== 'checking' || started.has(msg.payload.endpoint)) return;
      started.add(msg.payload.endpoint);
      most = Math.max(most, ++busy);
    });
    // the inject fires by itself, five seconds after the deploy
    const summary = await new Promise<Record<string, unknown>>((resolve) =>
      helper.getNode(byName('result per device, then the summary')).on('input', (msg: { event: string; payload: Record<string, unknown> }) => {
        if (msg.event === 'summary') resolve(msg.payload);
        else {
          busy--;
          results.push(msg.payload);
        }
      }),
    );
    const names = Array.from({ length: 12 }, (_, index) => `fw-sim-${index + 1}`);
    assert.deepEqual(results.map((outcome) => outcome.endpoint).sort(), [...names].sort(), 'every device has its result');
    const failed = results.filter((outcome) => !outcome.success);
    assert.deepEqual(failed.map((outcome) => [outcome.endpoint, outcome.failure, outcome.result, outcome.resultName]), [['fw-sim-12', 'DOWNLOAD_FAILED', 5, 'integrity check failure']]);
    for (const outcome of results.filter((outcome) => outcome.success)) assert.equal(outcome.version, '2.0', String(outcome.endpoint));
    assert.deepEqual([summary.total, summary.succeeded, summary.failed, summary.failures], [12, 11, 1, { 'fw-sim-12': 'DOWNLOAD_FAILED' }]);
    assert.equal(most, 5, 'five at a time');
    assert.deepEqual(nodeProblems(helper), [], 'no node warned or reported an error');
  });

  it('"Configure the fleet" writes the APN name and the SSID to every sim-*: one result per device, a summary of 5 ok, and the devices hold the values', async () => {
    const flow = await onFreePorts(readFlow('examples/Configure the fleet.json'));
    const credentials = takeCredentials(flow);
    await helper.load(NODES, flow, credentials);
    const serverNode = helper.getNode('cfg-server') as ServerNode;
    await serverNode.ready;
    const each: Array<Record<string, unknown>> = [];
    helper.getNode('cfg-each').on('input', (msg: Record<string, unknown>) => each.push(msg));
    const summary = await new Promise<Record<string, unknown>>((resolve) => helper.getNode('cfg-summary').on('input', resolve));
    assert.deepEqual((summary.payload as { ok: number; failed: number; skipped: number }).ok, 5, JSON.stringify(summary.payload));
    assert.deepEqual(each.map((msg) => msg.endpoint).sort(), ['sim-1', 'sim-2', 'sim-3', 'sim-4', 'sim-5']);
    for (const endpoint of ['sim-1', 'sim-5']) {
      assert.equal(await serverNode.server.read(endpoint, '/11/0/1'), 'iot.example.net');
      assert.equal(await serverNode.server.read(endpoint, '/12/0/5'), 'fleet-wifi');
    }
  });

  it('the demo and every example, imported one after the other as new tabs, run side by side: each server starts, each device registers with its own', async () => {
    // one move of ports for all: an example on the demo's port would collide here as it does for a user
    const moved = new Map<string, string>();
    let flow = await onFreePorts(readFlow('demo/flows.json'), moved);
    const credentials = takeCredentials(flow);
    await helper.load(NODES, flow, credentials);
    for (const file of ['(the demo)', ...examples]) {
      if (file !== '(the demo)') {
        // import (fresh ids, as the editor's import does beside existing nodes), then a full deploy
        const imported = importCopy(await onFreePorts(readFlow(`examples/${file}`), moved));
        Object.assign(credentials, takeCredentials(imported));
        flow = [...flow, ...imported];
        await fullDeploy(helper, flow, credentials);
      }
      const expected = devicesByServerNode(flow);
      for (const id of expected.keys()) {
        const node = helper.getNode(id) as ServerNode;
        await node.ready.catch((error: Error) => assert.fail(`after adding ${file}: the server node ${id} did not start: ${error.message}`));
      }
      assert.equal([...expected.values()].flat().length, [...devicesByServer(flow).values()].flat().length, 'every device-sim points at one server of the flow');
      for (const [id, endpoints] of expected) {
        const node = helper.getNode(id) as ServerNode;
        const deadline = Date.now() + 30_000;
        const registered = () => node.server.registrations().map((registration) => registration.endpoint).sort();
        while (registered().length < endpoints.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(registered(), endpoints, `after adding ${file}: the devices registered with the server node ${id}`);
      }
    }
    assert.deepEqual(nodeProblems(helper), [], 'no node warned or reported an error');
  });
});
