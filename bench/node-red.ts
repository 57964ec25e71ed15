/**
 * Node-RED (the development dependency) embedded in the bench's process as a user runs it, with
 * this package installed (a link) in a throw-away user directory; not under
 * node-red-node-test-helper, whose sinon spies on every node call would be measured too.
 */
import * as fs from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import * as path from 'node:path';

export interface EmbeddedNodeRed {
  init(server: unknown, settings: object): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): unknown };
  events: { once(event: string, listener: () => void): void };
  runtime: { flows: { setFlows(options: { flows: { flows: object[] }; deploymentType: 'full' | 'nodes' }): Promise<unknown> } };
}

/** Node-RED in this process, with this package in a throw-away user directory whose flows.json holds `flow`; resolves once the flows have started. */
export async function startNodeRed(flow: object[]): Promise<{ red: EmbeddedNodeRed; userDir: string }> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-bench-flow-'));
  const root = path.resolve(__dirname, '../..');
  fs.mkdirSync(path.join(userDir, 'node_modules', '@lwm2m-red'), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, 'node_modules', '@lwm2m-red', 'node-red-lwm2m'), 'dir');
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const red = require('node-red') as EmbeddedNodeRed;
  red.init(createServer(), {
    userDir,
    flowFile: 'flows.json',
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: false,
    logging: { console: { level: 'error' } },
    telemetry: { enabled: false },
  });
  let timer: NodeJS.Timeout | undefined;
  const started = new Promise<void>((resolve, reject) => {
    red.events.once('flows:started', resolve);
    timer = setTimeout(() => reject(new Error(`the flows did not start within 30 s (see ${userDir})`)), 30_000);
  });
  await red.start();
  await started.finally(() => clearTimeout(timer));
  return { red, userDir };
}

/**
 * What the editor's Deploy button does: `flow` (the nodes, each with the credentials typed or
 * imported since the last deploy inline, as the editor sends them) replaces the running flows,
 * all of them (`full`) or the changed nodes only (`nodes`). Node-RED takes the credentials out
 * and keeps them in flows_cred.json (unencrypted here: `credentialSecret: false`). Resolves once
 * the nodes to replace have stopped; the new ones are starting.
 */
export async function deploy(red: EmbeddedNodeRed, flow: object[], type: 'full' | 'nodes' = 'full'): Promise<void> {
  await red.runtime.flows.setFlows({ flows: { flows: flow }, deploymentType: type });
}
