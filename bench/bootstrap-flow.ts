/**
 * Zero-touch provisioning in the example flow: `examples/Zero-touch provisioning.json` as a user
 * imports it, scaled to N devices the way a user would in the editor (the device-sim's count, the
 * bootstrap node's Devices table with zt-1..zt-N and the example's bootstrap key), on free ports,
 * deployed into Node-RED embedded (bench/node-red.ts) as the editor's Deploy sends it (the keys
 * inline; Node-RED keeps them in flows_cred.json). Nothing else changes: the devices bootstrap over
 * DTLS (Security ticked), `*` → the server node, PSK, keys generated; each then registers with the
 * server node over DTLS with its own key. The baseline, in the same run and the same Node-RED: the
 * same flow with the device-sim connecting to the server node over DTLS directly (its PSK; the
 * server node's Devices table holding it for every device).
 *
 * Each case is measured twice, one run each, in a runtime with nothing else running: the whole flow
 * deployed at once (what a user sees after the import), and the device-sim deployed ("modified
 * nodes") into the flow already running without it (devices arriving at servers that listen).
 * Times run from the deploy until the last device's registration over DTLS (with its PSK
 * identity) at the server node. Called by bench/bootstrap.ts.
 */
import * as fs from 'node:fs';
import type { LwM2MBootstrapServer, LwM2MServer } from '../lib';
import { onFreePorts, readFlow, zeroTouchFleet, type FlowNode } from '../test/helpers/flows';
import { deploy, startNodeRed, type EmbeddedNodeRed } from './node-red';

export const EXAMPLE = 'examples/Zero-touch provisioning.json';
/** ms after which a case whose devices have not all registered counts as failed */
const GIVE_UP = 120_000;

export type FlowCase = 'bootstrap' | 'direct';
export type Deploy = 'whole flow' | 'devices';

export interface FlowOutcome {
  /** ms from the deploy until the last registration over DTLS */
  ms: number;
  /** ms from the deploy until the server node and the bootstrap node listen (NaN when they listened before) */
  listening: number;
  /** ms from the deploy until the first registration over DTLS */
  first: number;
  /** registrations at the server node with a PSK identity */
  registered: number;
  /** distinct keys in the server node's table */
  keys: number;
  /** bootstrapFailed events of the bootstrap node (the device tries again) */
  failedBootstraps: number;
}

export interface FlowFigures {
  devices: number;
  nodeRed: string;
  outcomes: Record<Deploy, Record<FlowCase, FlowOutcome>>;
}

interface ServerNode {
  server: LwM2MServer;
  ready: Promise<void>;
}
interface BootstrapNode {
  bootstrap: LwM2MBootstrapServer;
  ready: Promise<void>;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The baseline: the scaled example with the device-sim connecting to the server node over DTLS
 * (coaps:// to its DTLS port, the fleet's one PSK, the example's bootstrap key; each device's
 * identity is its endpoint name) and that key in the server node's Devices table for every device.
 */
function directFleet(flow: FlowNode[], count: number): FlowNode[] {
  const copy = JSON.parse(JSON.stringify(flow)) as FlowNode[];
  const sim = copy.find((node) => node.type === 'lwm2m-device-sim')!;
  const server = copy.find((node) => node.type === 'lwm2m-server')!;
  const key = (sim.credentials as { bsKey: string }).bsKey;
  const endpoints = Array.from({ length: count }, (_, index) => String(sim.endpoint).replace(/\{n\}/g, String(index + 1)));
  Object.assign(sim, { name: `${count} devices, keys known`, connect: 'server', serverUri: `coaps://127.0.0.1:${server.dtlsPort}`, credentials: { identity: '', key } });
  server.credentials = {
    psk: JSON.stringify(endpoints.map((endpoint) => ({ endpoint, identity: '' }))),
    pskKeys: JSON.stringify(Object.fromEntries(endpoints.map((endpoint) => [endpoint, key]))),
  };
  return copy;
}

interface Nodes {
  server?: ServerNode;
  bootstrap?: BootstrapNode;
}

/** The flow's server node and bootstrap node, once Node-RED has them. */
function nodesOf(red: EmbeddedNodeRed, flow: FlowNode[]): Nodes {
  const id = (type: string) => flow.find((node) => node.type === type)?.id ?? '';
  return { server: (red.nodes.getNode(id('lwm2m-server')) as ServerNode | null) ?? undefined, bootstrap: (red.nodes.getNode(id('lwm2m-bootstrap')) as BootstrapNode | null) ?? undefined };
}

/**
 * Deploys `flow` into a runtime with nothing running (`whole flow`), or deploys it as changed
 * nodes into the same flow without its device-sim, running (`devices`); waits for `count`
 * registrations over DTLS at the server node, then stops everything.
 */
async function run(red: EmbeddedNodeRed, flow: FlowNode[], count: number, how: Deploy): Promise<FlowOutcome> {
  let listening = NaN;
  let began = 0;
  const isSim = (node: FlowNode) => node.type === 'lwm2m-device-sim';
  let running: Nodes = {};
  if (how === 'devices') {
    await deploy(red, flow.filter((node) => !isSim(node)));
    for (const since = Date.now(); !(running.server && running.bootstrap); await pause(5)) {
      if (Date.now() - since > GIVE_UP) throw new Error('the flow without its device-sim did not start');
      running = nodesOf(red, flow);
    }
    await Promise.all([running.server!.ready, running.bootstrap!.ready]);
    // as the editor sends a modified-nodes deploy: credentials only with the node whose credentials changed
    const added = flow.map((node) => {
      if (isSim(node)) return node;
      const { credentials: _unchanged, ...rest } = node;
      return rest as FlowNode;
    });
    began = Date.now();
    await deploy(red, added, 'nodes');
  } else {
    began = Date.now();
    await deploy(red, flow);
  }
  let nodes: Nodes = running;
  let failedBootstraps = 0;
  let watching = false;
  const secured = () => nodes.server?.server.registrations().filter((registration) => registration.identity !== undefined) ?? [];
  while (Date.now() - began < GIVE_UP) {
    if (!(nodes.server && nodes.bootstrap)) {
      nodes = nodesOf(red, flow);
      if (nodes.server && nodes.bootstrap && how === 'whole flow') void Promise.all([nodes.server.ready, nodes.bootstrap.ready]).then(() => (listening = Date.now() - began), () => undefined);
    }
    if (nodes.bootstrap && !watching) {
      watching = true;
      nodes.bootstrap.bootstrap.on('bootstrapFailed', () => failedBootstraps++);
    }
    if (secured().length >= count) break;
    await pause(5);
  }
  const now = nodesOf(red, flow);
  if (how === 'devices' && (now.server !== running.server || now.bootstrap !== running.bootstrap)) throw new Error('the modified-nodes deploy restarted the server or bootstrap node');
  const times = secured().map((registration) => registration.registeredAt - began);
  const keys = new Set(nodes.server?.server.credentials().map((credential) => credential.key.toString('hex'))).size;
  await deploy(red, []); // nothing running before the next case
  return { ms: times.length > 0 ? Math.max(...times) : NaN, first: times.length > 0 ? Math.min(...times) : NaN, listening, registered: times.length, keys, failedBootstraps };
}

/** Both cases, each deployed both ways, one run each, in one embedded Node-RED: the direct registrations first, then the bootstraps. */
export async function flowBench(devices: number): Promise<FlowFigures> {
  const bootstrapFlow = zeroTouchFleet(await onFreePorts(readFlow(EXAMPLE)), devices);
  const directFlow = directFleet(bootstrapFlow, devices);
  const { red, userDir } = await startNodeRed([]);
  try {
    const outcomes = {} as FlowFigures['outcomes'];
    for (const how of ['whole flow', 'devices'] as const) {
      const direct = await run(red, directFlow, devices, how);
      const bootstrap = await run(red, bootstrapFlow, devices, how);
      outcomes[how] = { direct, bootstrap };
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { devices, nodeRed: (require('node-red/package.json') as { version: string }).version, outcomes };
  } finally {
    await red.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

/** The figures as lines to print; `ok` is false when not every device registered over DTLS, or the bootstrapped ones share keys. */
export function flowReport({ devices, nodeRed, outcomes }: FlowFigures): { lines: string[]; ok: boolean } {
  const rate = (outcome: FlowOutcome) => (outcome.registered / outcome.ms) * 1000;
  const lines = [`in the "Zero-touch provisioning" example flow, ${devices} devices, Node-RED ${nodeRed} embedded, one run each; from the deploy until the last registration over DTLS:`];
  const cells: string[][] = [];
  for (const how of ['whole flow', 'devices'] as const) {
    const { bootstrap, direct } = outcomes[how];
    const where = how === 'whole flow' ? 'flow deployed' : 'device-sim added to the running flow';
    cells.push(
      [`${where}: bootstraps over DTLS, then registration over DTLS`, `${rate(bootstrap).toFixed(0)} devices/s`, `${bootstrap.ms.toFixed(0)} ms for ${bootstrap.registered}`, `${(rate(bootstrap) / rate(direct)).toFixed(2)}× direct`],
      [`${where}: registrations over DTLS, keys known (baseline)`, `${rate(direct).toFixed(0)} devices/s`, `${direct.ms.toFixed(0)} ms for ${direct.registered}`, ''],
    );
  }
  const widths = [0, 1, 2].map((column) => Math.max(...cells.map((row) => row[column]!.length)));
  for (const row of cells) lines.push(`${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padStart(widths[1]!)}  ${row[2]!.padEnd(widths[2]!)}  ${row[3]}`.trimEnd());
  const whole = outcomes['whole flow'];
  lines.push(
    `(flow deployed: the server and bootstrap node listen ${whole.bootstrap.listening.toFixed(0)} ms / ${whole.direct.listening.toFixed(0)} ms after the deploy, the first device registers after ${whole.bootstrap.first.toFixed(0)} ms / ${whole.direct.first.toFixed(0)} ms (bootstrap / direct);`,
    ` distinct keys at the server node: ${whole.bootstrap.keys} and ${outcomes.devices.bootstrap.keys} generated, ${whole.direct.keys} for the direct fleet, which shares one; bootstraps that failed and were retried: ${whole.bootstrap.failedBootstraps + outcomes.devices.bootstrap.failedBootstraps})`,
  );
  const all = Object.values(outcomes).flatMap((pair) => Object.values(pair));
  return { lines, ok: all.every((outcome) => outcome.registered === devices) && whole.bootstrap.keys === devices && outcomes.devices.bootstrap.keys === devices };
}
