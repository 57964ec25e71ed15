/**
 * Node-RED as `npm start` runs it (scripts/start.js), in a user directory of its own, for the tests
 * that need a whole Node-RED: the browser tests and the adminAuth test. And the headless Chromium
 * the browser tests drive.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { freeTcpPort, freeUdpPort } from './ports';

const root = path.resolve(__dirname, '../../..');

/** Debian's chromium, which CI installs. */
export const CHROMIUM = '/usr/bin/chromium';

export interface Demo {
  child: ChildProcess;
  /** the editor's HTTP port */
  port: number;
  userDir: string;
  /** what Node-RED printed so far */
  output(): string;
}

export interface DemoOptions {
  /** the user directory's name prefix in the temporary folder */
  prefix?: string;
  /** a settings.js of the test's own (else start.js writes the demo's) */
  settings?: string;
  /** the flows to run (else start.js writes the demo flow, its server moved to a free port) */
  flows?: object[];
  /** when Node-RED is ready, from what it printed; default: the demo's three devices registered */
  ready?: (output: string) => boolean;
}

/** The demo flow's simulated devices have registered. */
export const demoRegistered = (output: string): boolean => ['sim-1', 'sim-2', 'sim-3'].every((name) => output.includes(`endpoint: '${name}'`));

/** Starts Node-RED as `npm start` does and waits until it is ready; fails with its output if it exits. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), options.prefix ?? 'lwm2m-demo-'));
  if (options.settings) fs.writeFileSync(path.join(userDir, 'settings.js'), options.settings);
  if (options.flows) fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(options.flows, null, 2));
  const port = await freeTcpPort();
  const child = spawn(process.execPath, [path.join(root, 'scripts', 'start.js')], {
    env: { ...process.env, LWM2M_DEMO_DIR: userDir, PORT: String(port), LWM2M_DEMO_COAP_PORT: String(await freeUdpPort()) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const ready = options.ready ?? demoRegistered;
  while (!ready(output)) {
    if (child.exitCode !== null) assert.fail(`Node-RED exited: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, port, userDir, output: () => output };
}

/** Stops Node-RED (SIGINT, as a user does) and removes its user directory. */
export async function stopDemo(demo: Demo | undefined): Promise<void> {
  if (!demo) return;
  if (demo.child.exitCode === null) {
    const exited = new Promise((resolve) => demo.child.once('exit', resolve));
    demo.child.kill('SIGINT');
    await exited;
  }
  fs.rmSync(demo.userDir, { recursive: true, force: true });
}

/** Headless Chromium; a missing browser is a failure, never a skip. */
export function launchChromium(): Promise<Browser> {
  assert.ok(fs.existsSync(CHROMIUM), 'Debian chromium is not installed (apt-get install -y chromium)');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}
