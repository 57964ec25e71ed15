/**
 * Flow files as the tests load them: the demo and the examples, moved to free ports (the ports a
 * user gets are checked as they are; tests never bind fixed ports), and imported as the editor's
 * "import copy" does, with fresh ids.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freeUdpPort } from './ports';

export const root = path.resolve(__dirname, '../../..');

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  [key: string]: unknown;
}

export const examples = fs.readdirSync(path.join(root, 'examples')).filter((file) => file.endsWith('.json')).sort();

export function readFlow(file: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(path.join(root, file), 'utf8')) as FlowNode[];
}

/** The UDP ports the flow's server nodes listen on: CoAP, and DTLS where it is on. */
export function serverPorts(flow: FlowNode[]): number[] {
  return flow.filter((node) => node.type === 'lwm2m-server').flatMap((node) => [Number(node.port || 5683), ...(node.dtls ? [Number(node.dtlsPort || 5684)] : [])]);
}

/** The UDP ports the flow's bootstrap nodes listen on: CoAP, and DTLS where it is on. */
export function bootstrapPorts(flow: FlowNode[]): number[] {
  return flow.filter((node) => node.type === 'lwm2m-bootstrap').flatMap((node) => [Number(node.port || 5783), ...(node.dtls ? [Number(node.dtlsPort || 5784)] : [])]);
}

/**
 * The flow with each of its servers' (and bootstrap servers') ports replaced by a free one (in
 * ports, URIs and names alike), on 127.0.0.1. Flows that share `moved` keep their relations: the
 * same port in two flows becomes the same free port in both (and collides as it would for a user).
 */
export async function onFreePorts(flow: FlowNode[], moved = new Map<string, string>()): Promise<FlowNode[]> {
  for (const port of [...serverPorts(flow), ...bootstrapPorts(flow)]) if (!moved.has(String(port))) moved.set(String(port), String(await freeUdpPort()));
  const pattern = new RegExp(`\\b(${[...moved.keys()].join('|')})\\b`, 'g');
  const text = moved.size === 0 ? JSON.stringify(flow) : JSON.stringify(flow).replace(pattern, (port) => moved.get(port)!);
  const copy = JSON.parse(text) as FlowNode[];
  for (const node of copy) if (node.type === 'lwm2m-server' || node.type === 'lwm2m-bootstrap') node.address = '127.0.0.1';
  return copy;
}

/**
 * The "Zero-touch provisioning" example (as imported: credentials inline) scaled to `count`
 * devices the way a user does it in the editor: the device-sim's count, and the bootstrap node's
 * Devices table extended to zt-1..zt-{count}, each row with the example's bootstrap key (the one
 * the device-sim's fleet shares; the identity left empty, so it is the endpoint name). Nothing else
 * changes: bootstrap over DTLS with Security ticked, `*` → the server node, PSK, keys generated.
 */
export function zeroTouchFleet(flow: FlowNode[], count: number): FlowNode[] {
  const copy = JSON.parse(JSON.stringify(flow)) as FlowNode[];
  const sim = copy.find((node) => node.type === 'lwm2m-device-sim' && node.connect === 'bootstrap')!;
  const bootstrap = copy.find((node) => node.type === 'lwm2m-bootstrap')!;
  const key = (sim.credentials as { bsKey: string }).bsKey;
  const endpoints = deviceNames(String(sim.endpoint), count);
  sim.count = String(count);
  sim.name = `${count} devices, bootstrap only`;
  bootstrap.credentials = {
    psk: JSON.stringify(endpoints.map((endpoint) => ({ endpoint, identity: '' }))),
    pskKeys: JSON.stringify(Object.fromEntries(endpoints.map((endpoint) => [endpoint, key]))),
  };
  return copy;
}

/**
 * What the editor's import of a flow beside others does ("import copy"): every node gets a fresh
 * id, and every reference to one (z, wires, a config node property, catch/status scopes) follows.
 */
export function importCopy(flow: FlowNode[]): FlowNode[] {
  const ids = new Map(flow.map((node) => [node.id, randomBytes(8).toString('hex')]));
  const map = (value: unknown): unknown => {
    if (typeof value === 'string') return ids.get(value) ?? value;
    if (Array.isArray(value)) return value.map(map);
    return value;
  };
  return flow.map((node) => {
    const copy: FlowNode = { ...node, id: ids.get(node.id)! };
    for (const [key, value] of Object.entries(node)) if (key !== 'id' && key !== 'credentials') copy[key] = map(value);
    return copy;
  });
}

/** The endpoint names a device-sim gives its devices (as its help says: `{n}` numbers them from 1). */
function deviceNames(pattern: string, count: number): string[] {
  if (count === 1 && !pattern.includes('{n}')) return [pattern];
  const template = pattern.includes('{n}') ? pattern : `${pattern}-{n}`;
  return Array.from({ length: count }, (_, index) => template.replaceAll('{n}', String(index + 1)));
}

/** Whether a device-sim's devices know only a bootstrap server. */
export function viaBootstrap(node: FlowNode): boolean {
  return node.type === 'lwm2m-device-sim' && node.connect === 'bootstrap';
}

/** The endpoint names of the flow's simulated devices, by the URI they connect to first (a server's, or a bootstrap server's). */
export function devicesByServer(flow: FlowNode[]): Map<string, string[]> {
  const byUri = new Map<string, string[]>();
  for (const node of flow.filter((entry) => entry.type === 'lwm2m-device-sim')) {
    const uri = String(viaBootstrap(node) ? node.bootstrapUri : node.serverUri);
    byUri.set(uri, [...(byUri.get(uri) ?? []), ...deviceNames(String(node.endpoint || 'sim-{n}'), Number(node.count ?? 1))]);
  }
  return byUri;
}

/**
 * The endpoints each server node of the flow should end up with: the devices of the device-sims
 * pointed at its ports, and those a bootstrap node of the flow sends to it (the device's row of the
 * bootstrap node's table, else its `*` row, pointing at the bootstrap node's server node).
 */
export function devicesByServerNode(flow: FlowNode[]): Map<string, string[]> {
  const byUri = devicesByServer(flow);
  const home = new Map<string, string[]>();
  const add = (id: string, endpoints: string[]) => home.set(id, [...(home.get(id) ?? []), ...endpoints]);
  const urisOf = (ports: number[]) => [`coap://127.0.0.1:${ports[0]}`, ...(ports[1] ? [`coaps://127.0.0.1:${ports[1]}`] : [])];
  for (const server of flow.filter((node) => node.type === 'lwm2m-server')) {
    home.set(server.id, []);
    for (const uri of urisOf(serverPorts([server]))) add(server.id, byUri.get(uri) ?? []);
  }
  for (const bootstrap of flow.filter((node) => node.type === 'lwm2m-bootstrap')) {
    const rows = (bootstrap.configs ?? []) as Array<{ endpoint: string; target?: string }>;
    for (const uri of urisOf(bootstrapPorts([bootstrap]))) {
      for (const endpoint of byUri.get(uri) ?? []) {
        const row = rows.find((entry) => entry.endpoint === endpoint) ?? rows.find((entry) => entry.endpoint === '*');
        if (row && row.target !== 'uri' && bootstrap.server) add(String(bootstrap.server), [endpoint]);
      }
    }
  }
  for (const [id, endpoints] of home) home.set(id, endpoints.sort());
  return home;
}

interface Runtime {
  _redNodes: { setFlows(flow: object[], credentials: object, type: string): Promise<unknown> };
  _events: { once(event: string, listener: () => void): void };
}

/**
 * A full deploy of `flow` into the test helper's runtime, as the editor's Deploy does; resolves
 * when the new flows have started. (helper.setFlows gives the start only 300 ms.)
 */
export async function fullDeploy(helper: unknown, flow: object[], credentials: object = {}): Promise<void> {
  const runtime = helper as Runtime;
  const started = new Promise<void>((resolve) => runtime._events.once('flows:started', resolve));
  await runtime._redNodes.setFlows(flow, credentials, 'full');
  await started;
}

export interface LogEntry {
  level: number;
  id?: string;
  type?: string;
  msg?: unknown;
}

/** Warnings and errors of nodes (entries with a node id) the test helper's log spy has seen, from entry `from` on. */
export function nodeProblems(helper: { log(): unknown }, from = 0): LogEntry[] {
  const log = helper.log() as { args: Array<[LogEntry]>; WARN: number };
  return log.args.slice(from).map(([entry]) => entry).filter((entry) => entry.level <= log.WARN && entry.id !== undefined);
}

/** How many entries the test helper's log spy has seen (to look at what comes after). */
export function logLength(helper: { log(): unknown }): number {
  return (helper.log() as { args: unknown[] }).args.length;
}
