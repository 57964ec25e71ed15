/**
 * Many simulated devices in one process: starts N LwM2MClients (default 1,000), each on its own
 * UDP socket, that register to a local CoAP peer (a child process), then stay registered while the
 * process idles. Prints start-up time, heap per client and CPU while idle, each beside the same
 * figure for N bare UDP sockets that do one echo round trip (the baseline, measured in this run).
 *
 *   node --expose-gc dist/bench/clients.js [--clients 1000] [--idle 10] [--batch 100]
 *
 * The figures are never asserted; it exits non-zero only when a client fails to register or drops
 * its registration.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import os from 'node:os';
import path from 'node:path';
import { LwM2MClient } from '../lib';
import { heapAfterGc } from '../test/helpers/heap';

interface Settings {
  clients: number;
  idleSeconds: number;
  batch: number;
}

const USAGE = 'usage: node dist/bench/clients.js [--clients <n>] [--idle <seconds>] [--batch <n>]';

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { clients: 1000, idleSeconds: 10, batch: 100 };
  for (let i = 0; i < argv.length; i++) {
    const match = /^--(clients|idle|batch)(?:=(.*))?$/.exec(argv[i]!);
    if (argv[i] === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const raw = match[2] ?? argv[++i];
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${match[1]} needs a positive number, not ${raw}\n${USAGE}`);
    if (match[1] === 'clients') settings.clients = Math.floor(value);
    else if (match[1] === 'idle') settings.idleSeconds = value;
    else settings.batch = Math.floor(value);
  }
  return settings;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU time (user + system) used by this process during `ms`, as a percentage of one core. */
async function idleCpu(ms: number): Promise<number> {
  const start = process.cpuUsage();
  const began = process.hrtime.bigint();
  await pause(ms);
  const used = process.cpuUsage(start);
  const elapsed = Number(process.hrtime.bigint() - began) / 1000;
  return ((used.user + used.system) / elapsed) * 100;
}

function startPeer(): Promise<{ child: ChildProcess; coapPort: number; echoPort: number }> {
  const child = fork(path.join(__dirname, 'registration-peer.js'), { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', (message: { coapPort: number; echoPort: number }) => resolve({ child, ...message }));
    child.once('exit', (code) => reject(new Error(`the registration peer exited with ${code}`)));
  });
}

function askCount(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (message: { count: number }) => resolve(message.count));
    child.send('count');
  });
}

/** The baseline: N bound UDP sockets, each doing one round trip with the peer's echo socket. */
async function baseline(settings: Settings, echoPort: number): Promise<{ startMs: number; heapPerSocket: number; idleCpu: number; close(): Promise<void> }> {
  const heapBefore = heapAfterGc();
  const sockets: Socket[] = [];
  const began = performance.now();
  for (let offset = 0; offset < settings.clients; offset += settings.batch) {
    const batch = Array.from({ length: Math.min(settings.batch, settings.clients - offset) }, async () => {
      const socket = createSocket('udp4');
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      await new Promise<void>((resolve) => {
        socket.once('message', () => resolve());
        socket.send(Buffer.alloc(200), echoPort, '127.0.0.1');
      });
    });
    await Promise.all(batch);
  }
  const startMs = performance.now() - began;
  const heapPerSocket = (heapAfterGc() - heapBefore) / settings.clients;
  const cpu = await idleCpu(settings.idleSeconds * 1000);
  return {
    startMs,
    heapPerSocket,
    idleCpu: cpu,
    close: () => Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve())))).then(() => undefined),
  };
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const peer = await startPeer();
  const server = `coap://127.0.0.1:${peer.coapPort}`;
  console.log(`bench/clients: ${settings.clients} clients, batches of ${settings.batch}, ${settings.idleSeconds} s idle; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`);

  const raw = await baseline(settings, peer.echoPort);
  await raw.close();

  const heapBefore = heapAfterGc();
  const rssBefore = process.memoryUsage().rss;
  const clients: LwM2MClient[] = [];
  let failures = 0;
  const began = performance.now();
  for (let offset = 0; offset < settings.clients; offset += settings.batch) {
    const batch = Array.from({ length: Math.min(settings.batch, settings.clients - offset) }, (_, n) => {
      const client = new LwM2MClient({ endpoint: `bench-${offset + n}`, server, localAddress: '127.0.0.1', lifetime: 600 });
      client.on('error', () => failures++);
      clients.push(client);
      return client.start();
    });
    await Promise.all(batch);
  }
  const startMs = performance.now() - began;
  const heapPerClient = (heapAfterGc() - heapBefore) / settings.clients;
  const rssPerClient = (process.memoryUsage().rss - rssBefore) / settings.clients;
  const cpu = await idleCpu(settings.idleSeconds * 1000);

  const registered = await askCount(peer.child);
  const stillRegistered = clients.filter((client) => client.registered).length;

  const stopBegan = performance.now();
  await Promise.all(clients.map((client) => client.stop()));
  const stopMs = performance.now() - stopBegan;
  const left = await askCount(peer.child);
  peer.child.send('stop');

  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  const rows: Array<[string, string, string]> = [
    ['start-up (all registered)', `${startMs.toFixed(0)} ms (${((settings.clients / startMs) * 1000).toFixed(0)} clients/s)`, `${raw.startMs.toFixed(0)} ms for one UDP echo each`],
    ['heap per client (after gc)', kb(heapPerClient), `${kb(raw.heapPerSocket)} per bare socket`],
    ['rss per client', kb(rssPerClient), '—'],
    [`CPU while idle (${settings.idleSeconds} s)`, `${cpu.toFixed(2)} % of one core`, `${raw.idleCpu.toFixed(2)} % with bare sockets`],
    ['de-register and stop all', `${stopMs.toFixed(0)} ms`, '—'],
  ];
  const width = Math.max(...rows.map((row) => row[0].length));
  console.log(`${'figure'.padEnd(width)}  ${'LwM2MClient'.padEnd(34)}  baseline`);
  for (const [name, value, base] of rows) console.log(`${name.padEnd(width)}  ${value.padEnd(34)}  ${base}`);
  console.log(`registered at the peer: ${registered} of ${settings.clients}; clients that think they are registered: ${stillRegistered}; left after stop: ${left}; client errors: ${failures}`);
  if (registered !== settings.clients || stillRegistered !== settings.clients || left !== 0) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
