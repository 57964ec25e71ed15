/**
 * The Node-RED the node tests run in: this checkout's (a development dependency), or another one
 * installed in LWM2M_NODE_RED_DIR (CI runs the tests again under Node-RED 5 on Node 22 that way).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const from = process.env.LWM2M_NODE_RED_DIR ? { paths: [path.resolve(process.env.LWM2M_NODE_RED_DIR)] } : undefined;

const nodeRedPackage = require.resolve('node-red/package.json', from);

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require(require.resolve('node-red-node-test-helper', from));
helper.init(require.resolve('node-red', from));

const userDirs: string[] = [];

/**
 * Gives the test runtime a fresh user directory, as a started Node-RED always has one (server nodes
 * keep their store files there by default), and returns it. Every test starts with one of its own,
 * as on a fresh install: nothing an earlier test stored comes back. All are removed at exit.
 */
export function freshUserDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-node-test-'));
  userDirs.push(dir);
  helper.settings({ userDir: dir });
  return dir;
}

/** The test runtime's user directory now. */
export function userDir(): string {
  return (helper.settings() as { userDir: string }).userDir;
}

freshUserDir();
// a root hook (this module is loaded with the test files): before every test of the run
beforeEach(() => void freshUserDir());
process.on('exit', () => {
  for (const dir of userDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** The Node-RED version the tests run in. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const nodeRedVersion: string = require(nodeRedPackage).version;

/** A core node of that Node-RED, e.g. `common/25-catch.js`. */
export function coreNode(file: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(require.resolve(`@node-red/nodes/core/${file}`, { paths: [path.dirname(nodeRedPackage)] }));
}
