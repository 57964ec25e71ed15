/**
 * The Node-RED the node tests run in: this checkout's (a development dependency), or another one
 * installed in LWM2M_NODE_RED_DIR (CI runs the tests again under Node-RED 5 on Node 22 that way).
 */
import * as path from 'node:path';

const from = process.env.LWM2M_NODE_RED_DIR ? { paths: [path.resolve(process.env.LWM2M_NODE_RED_DIR)] } : undefined;

const nodeRedPackage = require.resolve('node-red/package.json', from);

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require(require.resolve('node-red-node-test-helper', from));
helper.init(require.resolve('node-red', from));

/** The Node-RED version the tests run in. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const nodeRedVersion: string = require(nodeRedPackage).version;

/** A core node of that Node-RED, e.g. `common/25-catch.js`. */
export function coreNode(file: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(require.resolve(`@node-red/nodes/core/${file}`, { paths: [path.dirname(nodeRedPackage)] }));
}
