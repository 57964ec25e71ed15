/**
 * Zero-touch provisioning at scale: N simulated devices (LwM2MClient, default 100) that know only
 * the bootstrap server start at once, bootstrap (Request, Discover, Read, Delete, Write /0 and /1,
 * Finish) and register with the LwM2MServer over DTLS with the key the bootstrap generated for
 * each. The baseline, measured in the same run: the same N devices registering directly with that
 * server over DTLS, their keys already in its table. Everything runs in this process on loopback.
 *
 *   node dist/bench/bootstrap.js [--devices 100] [--rounds 5]
 *
 * Each round runs the three cases one after the other (direct, bootstrap over DTLS, bootstrap over
 * plain CoAP), each with fresh clients; the figure is the median round. Rates are devices per
 * second from the first start() until the last device is registered.
 *
 * Then the same N devices in the "Zero-touch provisioning" example flow, in Node-RED embedded
 * (bench/bootstrap-flow.ts): bootstraps over DTLS and registrations over DTLS beside the flow's
 * devices registering directly over DTLS, one run each.
 *
 * Never asserted; it exits non-zero only when a device fails to register.
 */
import os from 'node:os';
import { LwM2MBootstrapServer, LwM2MClient, LwM2MServer, type BootstrapConfig, type PskCredential } from '../lib';
import { flowBench, flowReport } from './bootstrap-flow';

interface Settings {
  devices: number;
  rounds: number;
}

const USAGE = 'usage: node dist/bench/bootstrap.js [--devices <n>] [--rounds <n>]';
const HOST = '127.0.0.1';

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { devices: 100, rounds: 5 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help') {
      console.log(USAGE);
      process.exit(0);
    }
    const match = /^--(devices|rounds)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const raw = match[2] ?? argv[++i];
    const value = Number(raw);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`--${match[1]} needs a whole number > 0, not ${raw}\n${USAGE}`);
    settings[match[1] as keyof Settings] = value;
  }
  return settings;
}

type Case = 'direct' | 'bootstrap (DTLS)' | 'bootstrap (CoAP)';
const CASES: Case[] = ['direct', 'bootstrap (DTLS)', 'bootstrap (CoAP)'];

interface Outcome {
  ms: number;
  registered: number;
}

const names = (count: number) => Array.from({ length: count }, (_, n) => `bench-${n + 1}`);
const keyOf = (endpoint: string) => Buffer.from(`key of ${endpoint}`);

/** ms after which the devices of a case that have not registered are stopped (they count as failed) */
const GIVE_UP = 120_000;

/** Starts the clients at once; resolves when all are registered (or failed), with the time taken. */
async function run(clients: LwM2MClient[], server: LwM2MServer): Promise<Outcome> {
  const began = performance.now();
  const giveUp = setTimeout(() => clients.forEach((client) => void client.stop()), GIVE_UP);
  const results = await Promise.allSettled(clients.map((client) => client.start()));
  clearTimeout(giveUp);
  const ms = performance.now() - began;
  const registered = results.filter((result) => result.status === 'fulfilled').length;
  for (const result of results) if (result.status === 'rejected') console.error(`  a device failed: ${(result.reason as Error).message}`);
  if (server.registrations().length < registered) console.error(`  the server has ${server.registrations().length} registrations, the devices say ${registered}`);
  await Promise.all(clients.map((client) => client.stop()));
  return { ms, registered };
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  console.log(`bench/bootstrap: ${settings.devices} devices at once, ${settings.rounds} rounds; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`);
  const endpoints = names(settings.devices);
  const server = new LwM2MServer({ port: 0, address: HOST, dtls: { port: 0 } });
  await server.listen();
  const serverUri = `coaps://${HOST}:${server.secureAddress()!.port}`;
  // every device may bootstrap over DTLS with a bootstrap key of its own, or over plain CoAP
  const bootstrapKeys: PskCredential[] = endpoints.map((endpoint) => ({ endpoint, identity: endpoint, key: Buffer.from(`bootstrap key of ${endpoint}`) }));
  const config: BootstrapConfig = { servers: [{ server, security: 'psk' }] };
  const bootstrap = new LwM2MBootstrapServer({ port: 0, address: HOST, dtls: { port: 0, credentials: bootstrapKeys }, configs: { '*': config } });
  await bootstrap.listen();
  const bootstrapUri = { 'bootstrap (DTLS)': `coaps://${HOST}:${bootstrap.secureAddress()!.port}`, 'bootstrap (CoAP)': `coap://${HOST}:${bootstrap.address().port}` };
  let failedBootstraps = 0;
  bootstrap.on('bootstrapFailed', () => failedBootstraps++);

  const clientsFor = (kind: Case): LwM2MClient[] => {
    if (kind === 'direct') {
      // the keys a bootstrap would have handed over, put into the server's table beforehand
      for (const endpoint of endpoints) server.setCredential({ endpoint, identity: endpoint, key: keyOf(endpoint) });
    } else {
      for (const endpoint of endpoints) server.removeCredential(endpoint);
    }
    // an endpoint with a bootstrap PSK may bootstrap only over DTLS
    bootstrap.setCredentials(kind === 'bootstrap (DTLS)' ? bootstrapKeys : []);
    return endpoints.map((endpoint, index) => {
      const client =
        kind === 'direct'
          ? new LwM2MClient({ endpoint, server: serverUri, psk: { identity: endpoint, key: keyOf(endpoint) }, localAddress: HOST, lifetime: 600 })
          : new LwM2MClient({
              endpoint,
              bootstrap: bootstrapUri[kind],
              ...(kind === 'bootstrap (DTLS)' ? { bootstrapPsk: { identity: endpoint, key: bootstrapKeys[index]!.key } } : {}),
              localAddress: HOST,
              lifetime: 600,
            });
      client.on('error', () => undefined);
      return client;
    });
  };

  const figures = new Map<Case, Outcome[]>(CASES.map((kind) => [kind, []]));
  for (let round = 1; round <= settings.rounds; round++) {
    for (const kind of CASES) {
      const outcome = await run(clientsFor(kind), server);
      figures.get(kind)!.push(outcome);
      if (outcome.registered !== settings.devices) process.exitCode = 1;
    }
  }
  await bootstrap.close();
  await server.close();

  const median = (outcomes: Outcome[]) => [...outcomes].sort((a, b) => a.ms - b.ms)[Math.floor(outcomes.length / 2)]!;
  const rate = (outcome: Outcome) => (outcome.registered / outcome.ms) * 1000;
  const direct = rate(median(figures.get('direct')!));
  const rows = CASES.map((kind) => {
    const outcome = median(figures.get(kind)!);
    const name = kind === 'direct' ? 'registrations over DTLS, keys known (baseline)' : `${kind === 'bootstrap (DTLS)' ? 'bootstraps over DTLS' : 'bootstraps over plain CoAP'}, then registration over DTLS`;
    return [name, `${rate(outcome).toFixed(0)} devices/s`, `${outcome.ms.toFixed(0)} ms for ${outcome.registered}`, kind === 'direct' ? '' : `${(rate(outcome) / direct).toFixed(2)}× direct`];
  });
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) console.log(`${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padStart(widths[1]!)}  ${row[2]!.padEnd(widths[2]!)}  ${row[3]}`);
  console.log(`(median of ${settings.rounds} rounds; bootstraps that failed and were retried: ${failedBootstraps})`);

  const { lines, ok } = flowReport(await flowBench(settings.devices));
  console.log('');
  for (const line of lines) console.log(line);
  if (!ok) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
