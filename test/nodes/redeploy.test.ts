/**
 * A full redeploy of the demo flow (what the editor's Deploy and Ctrl-C of `npm start` do): the
 * simulated devices de-register with the server of the same runtime before it closes, so nothing
 * waits for a De-register timeout, nothing is logged as a warning, and the devices come back.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LwM2MServer } from '../../lib';
import { FakeServer } from '../helpers/fake-server';
import { helper } from '../helpers/node-red';
import { NODES, takeCredentials } from '../helpers/palette';
import { freeUdpPort } from '../helpers/ports';

const root = path.resolve(__dirname, '../../..');

interface LogEntry {
  level: number;
  msg?: unknown;
  type?: string;
  id?: string;
}

interface Runtime {
  _redNodes: { setFlows(flow: object[], credentials: object, type: string): Promise<unknown> };
  _events: { once(event: string, listener: () => void): void };
}

/** The demo flow on `port` of 127.0.0.1 (the demo itself listens on 5683 of every address). */
export function demoFlow(port: number): Array<Record<string, unknown>> {
  const text = fs.readFileSync(path.join(root, 'demo', 'flows.json'), 'utf8').replace(/"5683"/g, `"${port}"`).replace(/:5683"/g, `:${port}"`);
  const flow = JSON.parse(text) as Array<Record<string, unknown>>;
  for (const node of flow) if (node.type === 'lwm2m-server') node.address = '127.0.0.1';
  return flow;
}

/** Warnings and errors the runtime logged (the test helper spies on its log) since `from`. */
function problems(from: number): LogEntry[] {
  const log = helper.log() as { args: Array<[LogEntry]>; WARN: number };
  return log.args.slice(from).map(([entry]) => entry).filter((entry) => entry.level <= log.WARN);
}

async function until(condition: () => boolean, what: () => string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`waited ${ms / 1000} s for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('redeploying the demo flow', function () {
  this.timeout(60_000);

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(() => helper.unload());

  it('de-registers its simulated devices with its own server before that closes: no timeouts, no warnings, devices back', async () => {
    const flow = demoFlow(await freeUdpPort());
    const credentials = takeCredentials(flow);
    const serverId = String(flow.find((node) => node.type === 'lwm2m-server')!.id);
    const devices = flow.filter((node) => node.type === 'lwm2m-device-sim').reduce((sum, node) => sum + Number(node.count ?? 1), 0);
    await helper.load(NODES, flow, credentials);
    const serverOf = () => (helper.getNode(serverId) as { server: LwM2MServer; ready: Promise<void> } | null);
    const before = serverOf()!;
    await before.ready;
    await until(() => before.server.registrations().length === devices, () => `${devices} registrations`);

    const deregistered: string[] = [];
    before.server.on('deregister', (registration: { endpoint: string }) => deregistered.push(registration.endpoint));
    const logged = (helper.log() as { args: unknown[] }).args.length;
    const runtime = helper as unknown as Runtime;
    const started = new Promise<void>((resolve) => runtime._events.once('flows:started', resolve));
    const began = Date.now();
    await runtime._redNodes.setFlows(demoFlow(Number(flow.find((node) => node.type === 'lwm2m-server')!.port)), credentials, 'full');
    const stopped = Date.now();
    await started;
    const after = serverOf()!;
    assert.notEqual(after, before, 'a full deploy makes a new server node');
    await after.ready;
    await until(() => after.server.registrations().length === devices, () => `${devices} registrations after the redeploy`);
    const back = Date.now();
    // figures for a report (LWM2M_TIMINGS=1), not asserted: a de-register timeout shows as ≥ 5 s
    if (process.env.LWM2M_TIMINGS) console.log(`      full redeploy: stopped in ${stopped - began} ms, devices back after ${back - began} ms`);

    assert.deepEqual(deregistered.sort(), Array.from({ length: devices }, (_, i) => `sim-${i + 1}`), 'each device de-registered with the old server before it closed');
    assert.deepEqual(problems(logged), [], 'nothing warned during the redeploy');
  });

  it('gives devices of a server outside the runtime a short De-register: an unanswered one ends after 2 s with one warning for the node', async () => {
    const remote = new FakeServer();
    const uri = await remote.start();
    try {
      await helper.load(NODES, [
        { id: 't1', type: 'tab' },
        { id: 'far', type: 'lwm2m-device-sim', z: 't1', serverUri: uri, endpoint: 'far-{n}', count: 2, objects: 'temperature', wires: [[]] },
      ]);
      await until(() => remote.registrations().length === 2, () => 'two registrations with the remote server');
      remote.behaviour = (request) => (request.method === 'DELETE' ? 'drop' : undefined);
      const logged = (helper.log() as { args: unknown[] }).args.length;
      const began = Date.now();
      // a deploy without the device-sim (helper.unload() would stop the log spy first)
      await (helper as unknown as Runtime)._redNodes.setFlows([{ id: 't1', type: 'tab' }], {}, 'full');
      const took = Date.now() - began;
      const warnings = problems(logged);
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.match(String(warnings[0]!.msg), /^far-\d and 1 more: no response from 127\.0\.0\.1:\d+ within 2 s$/);
      assert.ok(took >= 1900, `the devices waited for their De-register (${took} ms)`);
    } finally {
      await remote.close();
    }
  });
});
