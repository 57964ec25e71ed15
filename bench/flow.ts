/**
 * Notifications through a Node-RED flow: devices (bench/server-devices.js, a child process) send
 * notifications to the lwm2m-server node; an lwm2m-observe node (auto-observe) observes each
 * device as it registers; lwm2m-notify-in hands every notification to a function node that counts
 * them. Printed beside a raw UDP echo rate between the same two processes, measured in the same run.
 *
 * Node-RED (the development dependency) runs embedded in this process as a user runs it, with
 * this package in its user directory (bench/node-red.ts).
 *
 *   node dist/bench/flow.js [--devices 200] [--seconds 5] [--window 64]
 *
 * Never asserts a speed; exits non-zero only when the flow does not work (devices not observed).
 */
import { createSocket } from 'node:dgram';
import * as fs from 'node:fs';
import os from 'node:os';
import { Generator } from './generator';
import { startNodeRed } from './node-red';
import { sizeSocketBuffers } from '../lib/transport/datagram';

interface Settings {
  devices: number;
  seconds: number;
  window: number;
}

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { devices: 200, seconds: 5, window: 64 };
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(devices|seconds|window)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${argv[i]}; usage: node dist/bench/flow.js [--devices 200] [--seconds 5] [--window 64]`);
    const value = Number(match[2] ?? argv[++i]);
    if (!(value > 0)) throw new Error(`--${match[1]} needs a positive number`);
    settings[match[1] as keyof Settings] = value;
  }
  return settings;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  console.log(`bench/flow: ${settings.devices} devices, ${settings.seconds} s, ${settings.window} in flight; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`);
  const devices = await Generator.start();

  // baseline: raw UDP echo between the two processes
  const echo = createSocket('udp4');
  echo.on('message', (message, peer) => echo.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  // the baseline's socket gets the buffer the server's sockets get, or a burst costs it datagrams ours would not lose
  sizeSocketBuffers(echo);
  const raw = await devices.run({ cmd: 'echo', port: echo.address().port, seconds: settings.seconds, window: settings.window, sockets: settings.devices, size: 24 });
  const rawRate = raw.ok / (raw.elapsedMs / 1000);
  echo.close();

  // the flow
  const flow = [
    { id: 'f', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', port: 0, address: '127.0.0.1', requestTimeout: 10 },
    { id: 'obs', z: 'f', type: 'lwm2m-observe', server: 'srv', autoObserve: true, endpoint: 'dev-*', path: '/3303/0/5700', format: 'text', wires: [[]] },
    { id: 'in', z: 'f', type: 'lwm2m-notify-in', server: 'srv', endpoint: '', path: '', wires: [['count']] },
    { id: 'count', z: 'f', type: 'function', func: "context.set('n', (context.get('n') || 0) + 1);\nreturn null;", outputs: 1, wires: [[]] },
  ];
  const { red, userDir } = await startNodeRed(flow);
  let serverNode: { ready: Promise<void>; server: { address(): { port: number }; observations(): unknown[] } } | undefined;
  for (let waited = 0; !serverNode && waited < 20_000; waited += 50) {
    serverNode = red.nodes.getNode('srv') as typeof serverNode;
    if (!serverNode) await pause(50);
  }
  if (!serverNode) throw new Error('the flow did not start: no lwm2m-server node');
  await serverNode.ready;
  const port = serverNode.server.address().port;
  await devices.run({ cmd: 'devices', serverPort: port, devices: settings.devices, window: settings.window, lifetime: 86400 });
  const deadline = Date.now() + 30_000;
  while (serverNode.server.observations().length < settings.devices && Date.now() < deadline) await pause(50);
  const observed = serverNode.server.observations().length;

  const counter = red.nodes.getNode('count') as { context(): { get(key: string): number | undefined } };
  const before = counter.context().get('n') ?? 0;
  const cpuStart = process.cpuUsage();
  const notified = await devices.run({ cmd: 'notify', seconds: settings.seconds, window: settings.window });
  await pause(200); // the last ones through the flow
  const counted = (counter.context().get('n') ?? 0) - before;
  const cpu = process.cpuUsage(cpuStart);
  const rate = counted / (notified.elapsedMs / 1000);
  const cpuPercent = ((cpu.user + cpu.system) / 1000 / notified.elapsedMs) * 100;

  console.log(`raw UDP echo (baseline)                         ${Math.round(rawRate).toLocaleString('en')}/s`);
  console.log(`notifications through notify-in → function      ${Math.round(rate).toLocaleString('en')}/s  (${(rate / rawRate).toFixed(2)}× raw UDP), Node-RED process CPU ${cpuPercent.toFixed(0)} %`);
  console.log(`devices observed: ${observed} of ${settings.devices}; notifications sent ${notified.ok}, counted ${counted}, lost ${notified.lost}`);

  devices.stop();
  await red.stop();
  fs.rmSync(userDir, { recursive: true, force: true });
  if (observed !== settings.devices || counted === 0) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
