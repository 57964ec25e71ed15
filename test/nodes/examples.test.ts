/**
 * Every example flow loads in Node-RED and runs: its simulated devices register and data arrives
 * at its debug nodes. Each runs on a free UDP port instead of 5683.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { freeUdpPort } from '../helpers/ports';
import { helper } from '../helpers/node-red';
import { NODES, takeCredentials } from '../helpers/palette';


const root = path.resolve(__dirname, '../../..');
const examples = fs.readdirSync(path.join(root, 'examples')).filter((file) => file.endsWith('.json'));

interface FlowNode {
  id: string;
  type: string;
  z?: string;
  count?: string;
  [key: string]: unknown;
}

describe('example flows', function () {
  this.timeout(30_000);

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(() => helper.unload());

  it('there are the examples the palette promises, and every non-config node appears in one', () => {
    for (const name of ['Device telemetry to debug.json', 'Remote management.json', 'Send data.json', 'Registration dashboard.json', 'Secure devices (DTLS).json']) assert.ok(examples.includes(name), name);
    const used = new Set(examples.flatMap((file) => (JSON.parse(fs.readFileSync(path.join(root, 'examples', file), 'utf8')) as FlowNode[]).map((node) => node.type)));
    const palette = Object.keys((JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes);
    assert.equal(palette.length, 9);
    for (const type of palette.filter((type) => type !== 'lwm2m-server')) assert.ok(used.has(type), `${type} is in an example`);
  });

  for (const file of examples) {
    it(`"${file}" loads and runs: its devices register and its debug nodes get data`, async () => {
      const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
      const text = fs
        .readFileSync(path.join(root, 'examples', file), 'utf8')
        .replace(/"5683"/g, `"${port}"`)
        .replace(/:5683"/g, `:${port}"`)
        .replace(/"5684"/g, `"${dtlsPort}"`)
        .replace(/:5684"/g, `:${dtlsPort}"`);
      const flow = JSON.parse(text) as FlowNode[];
      const credentials = takeCredentials(flow);
      const expected = flow.filter((node) => node.type === 'lwm2m-device-sim').reduce((sum, node) => sum + Number(node.count ?? 1), 0);
      const debugs = flow.filter((node) => node.type === 'debug').map((node) => node.id);
      // a debug fed by an event node (register-in, notify-in, send-in) must get data by itself
      const fedByEvents = flow
        .filter((node) => /^lwm2m-(register|notify|send)-in$/.test(node.type))
        .flatMap((node) => (node.wires as string[][]).flat())
        .filter((id) => debugs.includes(id));
      await helper.load(NODES, flow, credentials);
      const serverNode = helper.getNode(flow.find((node) => node.type === 'lwm2m-server')!.id) as { ready: Promise<void>; server: { registrations(): unknown[] } };
      await serverNode.ready;
      const received = new Set<string>();
      for (const id of debugs) helper.getNode(id).on('input', () => received.add(id));
      const deadline = Date.now() + 20_000;
      while (serverNode.server.registrations().length < expected || received.size === 0 || !fedByEvents.every((id) => received.has(id))) {
        if (Date.now() > deadline) assert.fail(`${serverNode.server.registrations().length} of ${expected} registered, debug messages at ${[...received].join(', ') || 'none'}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(serverNode.server.registrations().length, expected);
      // devices pointed at coaps:// registered over DTLS, each bound to its PSK identity
      if (flow.some((node) => node.type === 'lwm2m-device-sim' && String(node.serverUri).startsWith('coaps:'))) {
        for (const registration of serverNode.server.registrations() as Array<{ endpoint: string; identity?: string }>) assert.equal(registration.identity, registration.endpoint);
      }
    });
  }
});
