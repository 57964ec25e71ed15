/**
 * A full redeploy of the demo flow (what the editor's Deploy and Ctrl-C of `npm start` do): the
 * simulated devices de-register with the server of the same runtime before it closes, so nothing
 * waits for a De-register timeout, nothing is logged as a warning, and the devices come back.
 */
import assert from 'node:assert/strict';
import type { LwM2MServer } from '../../lib';
import { FakeServer } from '../helpers/fake-server';
import { fullDeploy, logLength, nodeProblems, onFreePorts, readFlow } from '../helpers/flows';
import { helper } from '../helpers/node-red';
import { NODES, takeCredentials } from '../helpers/palette';
import { until } from '../helpers/wait';

/** The texts a node has shown as its status, in order (the test helper spies on every node's status()). */
function statusTexts(id: string): string[] {
  const node = helper.getNode(id) as { status: { getCalls(): Array<{ thisValue: unknown; args: Array<{ text?: string } | undefined> }> } };
  return node.status.getCalls().filter((call) => call.thisValue === node).map((call) => String(call.args[0]?.text));
}

describe('redeploying the demo flow', function () {
  this.timeout(60_000);

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(() => helper.unload());

  it('de-registers its simulated devices with its own server before that closes: no timeouts, no warnings, devices back', async () => {
    const flow = await onFreePorts(readFlow('demo/flows.json'));
    const credentials = takeCredentials(flow);
    const serverId = String(flow.find((node) => node.type === 'lwm2m-server')!.id);
    const sims = flow.filter((node) => node.type === 'lwm2m-device-sim');
    const devices = sims.reduce((sum, node) => sum + Number(node.count ?? 1), 0);
    await helper.load(NODES, flow, credentials);
    const serverOf = () => (helper.getNode(serverId) as { server: LwM2MServer; ready: Promise<void> } | null);
    const before = serverOf()!;
    await before.ready;
    // registered as the devices see it (the server registers a device before its answer reaches it;
    // a device stopped before that cannot de-register)
    for (const sim of sims) await until(() => statusTexts(sim.id).at(-1) === `${sim.count}/${sim.count} registered`, () => `${sim.id} to show all registered`);
    assert.equal(before.server.registrations().length, devices);

    const deregistered: string[] = [];
    before.server.on('deregister', (registration: { endpoint: string }) => deregistered.push(registration.endpoint));
    const logged = logLength(helper);
    const began = Date.now();
    await fullDeploy(helper, flow, credentials);
    const deployed = Date.now();
    const after = serverOf()!;
    assert.notEqual(after, before, 'a full deploy makes a new server node');
    await after.ready;
    await until(() => after.server.registrations().length === devices, () => `${devices} registrations after the redeploy`);
    const back = Date.now();
    // figures for a report (LWM2M_TIMINGS=1), not asserted: a de-register timeout shows as ≥ 5 s
    if (process.env.LWM2M_TIMINGS) console.log(`      full redeploy: flows started again after ${deployed - began} ms, devices back after ${back - began} ms`);

    assert.deepEqual(deregistered.sort(), Array.from({ length: devices }, (_, i) => `sim-${i + 1}`), 'each device de-registered with the old server before it closed');
    assert.deepEqual(nodeProblems(helper, logged), [], 'no node warned during the redeploy');
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
      const logged = logLength(helper);
      const began = Date.now();
      // a deploy without the device-sim (helper.unload() would stop the log spy first)
      await fullDeploy(helper, [{ id: 't1', type: 'tab' }]);
      const took = Date.now() - began;
      const warnings = nodeProblems(helper, logged);
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.match(String(warnings[0]!.msg), /^far-\d and 1 more: no response from 127\.0\.0\.1:\d+ within 2 s$/);
      assert.ok(took >= 1900, `the devices waited for their De-register (${took} ms)`);
    } finally {
      await remote.close();
    }
  });
});
