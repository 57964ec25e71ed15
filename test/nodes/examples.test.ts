/**
 * Every example flow loads in Node-RED and runs: its simulated devices register and data arrives
 * at its debug nodes (or, in the Fleet dashboard, at its Dashboard 2 table and chart). Each has
 * ports of its own, so that it can be imported beside the demo (and the other examples) as it is;
 * the runtime tests move every port to a free one.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { LwM2MServer } from '../../lib';
import { bootstrapPorts, devicesByServer, devicesByServerNode, examples, fullDeploy, importCopy, nodeProblems, onFreePorts, readFlow, root, serverPorts, viaBootstrap, type FlowNode } from '../helpers/flows';
import { DASHBOARD, dashboardNodes, isDashboardType } from '../helpers/dashboard';
import { helper } from '../helpers/node-red';
import { messageWhere, NODES, PALETTE, takeCredentials, type Message } from '../helpers/palette';

/** The one example that draws with FlowFuse Dashboard 2 (a development dependency, not a dependency). */
const DASHBOARD_EXAMPLE = 'Fleet dashboard (FlowFuse Dashboard 2).json';
/** Node-RED's own nodes the examples use (the node tests load these). */
const CORE = ['tab', 'comment', 'inject', 'debug', 'function', 'change', 'catch', 'status'];
/** Where an example shows what happens: debug nodes, and the dashboard's widgets that display data. */
const DISPLAYS = ['debug', 'ui-table', 'ui-chart', 'ui-text'];

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
    for (const name of ['Device telemetry to debug.json', 'Remote management.json', 'Send data.json', 'Registration dashboard.json', 'Secure devices (DTLS).json', 'Firmware update.json', 'Configure the fleet.json', 'Zero-touch provisioning.json', DASHBOARD_EXAMPLE]) assert.ok(examples.includes(name), name);
    const used = new Set(examples.flatMap((file) => readFlow(`examples/${file}`).map((node) => node.type)));
    const palette = Object.keys((JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes);
    assert.equal(palette.length, 12);
    for (const type of palette.filter((type) => type !== 'lwm2m-server')) assert.ok(used.has(type), `${type} is in an example`);
  });

  it(`the examples use Node-RED's core nodes and this palette's; "${DASHBOARD_EXAMPLE}" also ${DASHBOARD}'s, which is installed (a development dependency)`, () => {
    for (const file of examples) {
      const types = new Set(readFlow(`examples/${file}`).map((node) => node.type));
      const others = [...types].filter((type) => !CORE.includes(type) && !PALETTE.includes(type));
      if (file !== DASHBOARD_EXAMPLE) assert.deepEqual(others, [], `${file} uses only core and LwM2M nodes`);
      else {
        assert.deepEqual(others.filter((type) => !isDashboardType(type)), [], `${file} uses only core, LwM2M and Dashboard 2 nodes`);
        for (const type of ['ui-base', 'ui-page', 'ui-group', 'ui-table', 'ui-chart', 'ui-button', 'ui-form']) assert.ok(types.has(type), `${file} has a ${type}`);
        // every ui-* type is one the installed dashboard registers (a missing package fails here)
        assert.equal(dashboardNodes([...types].map((type) => ({ type }))).length, others.length);
      }
    }
    const comment = readFlow(`examples/${DASHBOARD_EXAMPLE}`).find((node) => node.type === 'comment');
    assert.match(String(comment?.name), new RegExp(`${DASHBOARD}.*palette`), 'a comment says what to install, and where from');
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
      const debugs = flow.filter((node) => DISPLAYS.includes(node.type)).map((node) => node.id);
      // a debug (or a dashboard's table or chart) fed by an event node (register-in, notify-in, send-in) must get data by itself
      const fedByEvents = flow
        .filter((node) => /^lwm2m-(register|notify|send)-in$/.test(node.type))
        .flatMap((node) => (node.wires as string[][]).flat())
        .filter((id) => debugs.includes(id));
      await helper.load([...NODES, ...dashboardNodes(flow)], flow, credentials);
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

  it(`"${DASHBOARD_EXAMPLE}": a table row per device, a chart point per notification; the device chosen reads its battery and reboots, the form writes the Lifetime and the table shows it`, async () => {
    // the widgets' own messages stand in for the user's clicks here; the browser test clicks them in Chromium
    const flow = await onFreePorts(readFlow(`examples/${DASHBOARD_EXAMPLE}`));
    await helper.load([...NODES, ...dashboardNodes(flow)], flow);
    type Row = { endpoint: string; binding: string; lifetime: number; state: string; lastSeen: string };
    const tables: Row[][] = [];
    // copied out of the function node's sandbox (its arrays are of another realm)
    helper.getNode('fd-table').on('input', (msg: Message) => tables.push(JSON.parse(JSON.stringify(msg.payload)) as Row[]));
    const points = new Map<string, number[]>();
    helper.getNode('fd-chart').on('input', (msg: Message) => points.set(String(msg.endpoint), [...(points.get(String(msg.endpoint)) ?? []), msg.payload as number]));
    const choices = messageWhere('fd-device', (msg) => (msg.options as unknown[] | undefined)?.length === 4);
    const started = Date.now();
    await (helper.getNode('fd-server') as ServerNode).ready;
    const table = () => tables.at(-1) ?? [];
    const until = async (what: string, test: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!test()) {
        if (Date.now() > deadline) assert.fail(`${what}: table ${JSON.stringify(table())}, points ${JSON.stringify([...points])}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await until('every device registered', () => table().filter((row) => row.state === 'registered').length === 4);
    assert.deepEqual(table().map((row) => [row.endpoint, row.binding, row.lifetime, row.state]), [
      ['sensor-1', 'U', 60, 'registered'],
      ['sensor-2', 'U', 60, 'registered'],
      ['sensor-3', 'U', 60, 'registered'],
      ['tracker', 'U (queue mode)', 120, 'registered'],
    ]);
    for (const row of table()) assert.ok(Date.parse(row.lastSeen) >= started - 1000 && Date.parse(row.lastSeen) <= Date.now(), row.lastSeen);
    assert.deepEqual([...((await choices).options as Array<{ value: string }>)].map((option) => option.value), ['sensor-1', 'sensor-2', 'sensor-3', 'tracker']);

    // the temperature of each sensor (and not the tracker's, which has none) in the chart
    await until('two points of each sensor', () => ['sensor-1', 'sensor-2', 'sensor-3'].every((endpoint) => (points.get(endpoint)?.length ?? 0) >= 2));
    assert.deepEqual([...points.keys()].sort(), ['sensor-1', 'sensor-2', 'sensor-3']);
    for (const value of [...points.values()].flat()) assert.ok(typeof value === 'number' && value > -40 && value < 85, String(value));

    // sensor-2 chosen: Read battery shows its level; Reboot reboots it, and it registers again
    const flowContext = (helper.getNode('fd-choose') as unknown as { context(): { flow: { get(key: string): unknown } } }).context().flow;
    helper.getNode('fd-device').send({ payload: 'sensor-2' });
    await until('sensor-2 chosen', () => flowContext.get('device') === 'sensor-2');
    const battery = messageWhere('fd-battery', () => true);
    helper.getNode('fd-read-button').send({ payload: '' });
    assert.match(String((await battery).payload), /^sensor-2: \d{1,3} %$/);
    const rebooting = messageWhere('fd-toast', () => true);
    const registeredAgain = messageWhere('fd-table-rows', (msg) => msg.event === 'register' && msg.endpoint === 'sensor-2');
    helper.getNode('fd-reboot-button').send({ payload: '' });
    assert.equal((await rebooting).payload, 'sensor-2: rebooting (2.04)');
    await registeredAgain;

    // the form: sensor-3's Lifetime written, read back, and in the table with sensor-3's Update
    const readBack = messageWhere('fd-written', () => true);
    helper.getNode('fd-form').send({ payload: { endpoint: 'sensor-3', path: '/1/0/1', value: '90' } });
    assert.equal((await readBack).payload, 'sensor-3 /1/0/1 = 90');
    await until('sensor-3 updated its lifetime', () => table().find((row) => row.endpoint === 'sensor-3')?.lifetime === 90);

    // a failure is a notification that says which device and why
    const failure = messageWhere('fd-toast', () => true);
    helper.getNode('fd-form').send({ payload: { endpoint: 'nobody', path: '/1/0/1', value: '90' } });
    assert.match(String((await failure).payload), /^nobody: .*not registered/i);
  });

  it('the demo and every example, imported one after the other as new tabs, run side by side: each server starts, each device registers with its own', async () => {
    // one move of ports for all: an example on the demo's port would collide here as it does for a user
    const moved = new Map<string, string>();
    let flow = await onFreePorts(readFlow('demo/flows.json'), moved);
    const credentials = takeCredentials(flow);
    // the node types of every example are known from the start, as in a Node-RED with the dashboard installed
    await helper.load([...NODES, ...dashboardNodes(...examples.map((file) => readFlow(`examples/${file}`)))], flow, credentials);
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
