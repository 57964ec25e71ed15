/**
 * The LwM2M server under load from many simulated devices, on loopback, beside a minimal LwM2M
 * registration server built on node-coap (bench/node-coap-server) doing the same work in the same
 * run. Each server runs in this process in turn, ours first, never both at once, each on a port of
 * its own (so its heap is what `heapUsed` after GC shows); the devices are a child process
 * (bench/server-devices) with bare UDP sockets and pre-built CoAP datagrams, so that the server is
 * the bottleneck; they register anew with the second server. They talk over IPC for control only.
 *
 * Measured in one run, each rate beside a raw UDP echo rate between the same two processes (the
 * same number of sockets, the same number of datagrams outstanding, datagrams of Update size), and
 * beside node-coap's rate for the same work (the ratio ours ÷ node-coap, by rate and by rate per
 * server CPU):
 *
 * - registrations/s (fresh endpoint names), then de-registrations/s (the same registrations);
 * - updates/s (each device updating its registration);
 * - notifications/s (devices the server observes sending Confirmable notifications; our `notify`
 *   events, node-coap's 'data' events of the observe streams, counted);
 * - reads/s (server → devices: `server.read(endpoint, '/3/0/0', { format: 0 })`, node-coap's
 *   `coap.request` GET with Accept text/plain; --window reads in flight);
 * - ours only: updates, notifications and reads per second again with the CoAP trace on
 *   (`setTrace({ size: 1000 })`, every message in and out decoded into an entry and kept in the ring
 *   buffer), right after the same workload with the trace off (the rows above);
 * - heap per finished exchange, after GC: per update (the heap right after the updates less the
 *   heap before them) and per read (+0, +10 and +--heap-wait s after the reads): the state a server
 *   keeps per exchange (ours a bounded deduplication cache; node-coap caches every answer it sent,
 *   with its retransmission state, for its exchange lifetime, 247 s);
 * - ours only: the heap during --soak seconds at the highest uplink rate (updates or notifications,
 *   whichever was faster; or --soak-load update|notify|mixed), sampled after GC every 10 s;
 * - the registration storm, against a fresh instance of the server (so that its heap holds the
 *   storm and nothing else): --registrations/10, then up to /2, then up to --registrations (10,000,
 *   50,000, 100,000 by default) from distinct addresses and ports (127.0.0.2, 127.0.0.3, … ports
 *   12000–31999), --window in flight, each step timed with its retransmissions, given-up
 *   registrations and kernel drops at the server's socket; heap per registration after GC after
 *   each step, cumulative (the heap after the step less the heap before the storm ÷ registrations
 *   so far), and +10 and +--heap-wait s after the last;
 * - the Redis store (unless --no-redis): a real redis-server started by the bench
 *   (test/helpers/redis.ts); ours without a store (the memory: LwM2MServer's own maps, its
 *   default) and, right after it, ours with `store: new RedisStore({ url, prefix })` (a fresh
 *   prefix per instance) do registrations/s, de-registrations/s, updates/s, notifications/s and
 *   the storm with its heap per registration (+0 s); each Redis row is printed beside the same row
 *   without a store, with the ratio Redis ÷ memory (goal, never asserted: registrations/s ≥ 0.5×
 *   memory) and the CPU of redis-server meanwhile (its INFO cpu). The memory rows are measured
 *   again there, beside Redis in time, rather than taken from the rows above (minutes earlier: on
 *   a shared machine the CPU a phase gets drifts);
 * - the restart on Redis (bench/redis-restart.ts): a store filled with --restart registration
 *   records (RedisStore.save of each, one flush), then a new LwM2MServer on the same prefix, timed
 *   until `listen()` resolved with all of them loaded (goal ≤ 10 s), beside a raw HSCAN of the
 *   hash and a server restarted on a FileStore holding the same records; then 100 of the devices
 *   send an Update of their old registration (2.04 expected, without registering again) and the
 *   change must reach Redis.
 *
 * Socket buffers: our server's sockets (LwM2MServer's default socketBufferSize), node-coap's server
 * socket and the raw UDP echo socket ask the kernel for 4 MiB of receive and send buffer (capped by
 * net.core.rmem_max / wmem_max); with the kernel's default (~208 KB) a burst of 256 overflows it,
 * which the drops column and the lost counts would show. The load generator's sockets never hold
 * more than a few datagrams.
 *
 * "server CPU" is this process (server, echo socket, GC threads: it can pass 100 % of one core);
 * "devices CPU" the load generator. A row whose devices CPU is near 100 % measured the generator,
 * not the server: that is the case for the raw UDP baseline.
 *
 *   node --expose-gc dist/bench/server.js [--devices 1000] [--registrations 100000] [--seconds 5] [--soak 60] [--window 256] [--heap-wait 60] [--soak-load mixed] [--restart 100000] [--no-redis]
 *
 * --restart <n> sizes the restart on Redis (default 100,000 registrations); --no-redis skips the
 * Redis part (the Redis rows and the restart), e.g. where no redis-server is installed.
 *
 * The figures are never asserted; it exits non-zero only when something fails functionally
 * (devices or registrations missing, observations not established, reads failing, server or
 * store errors, registrations not loaded after the restart or not served without registering
 * again, redis-server missing without --no-redis), for any server.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import { ContentFormat, LwM2MServer, RedisStore, type NotifyEvent, type RegistrationStore, type StoreError } from '../lib';
import type { RunResult } from './server-devices';
import { heapAfterGc } from '../test/helpers/heap';
import { startRedis } from '../test/helpers/redis';
import { measureRestart, type RestartResult } from './redis-restart';
import { Generator } from './generator';
import { NodeCoapLwM2MServer } from './node-coap-server';
import { DEFAULT_SOCKET_BUFFER_SIZE, sizeSocketBuffers } from '../lib/transport/datagram';

interface Settings {
  devices: number;
  registrations: number;
  seconds: number;
  soak: number;
  window: number;
  heapWait: number;
  soakLoad?: 'update' | 'notify' | 'mixed';
  /** the Redis rows and the restart (--no-redis: false) */
  redis: boolean;
  /** registration records for the restart on Redis */
  restart: number;
}

const USAGE = `usage: node --expose-gc dist/bench/server.js [options]
  --devices <n>        simulated devices (sockets) for the rate tests (default 1000)
  --registrations <n>  the registration storm: n/10, then n/2, then n registrations in all, from distinct source ports (default 100000)
  --seconds <s>        duration of each rate test (default 5)
  --soak <s>           duration of the sustained-load heap test, our server only (default 60; 0 skips it)
  --window <n>         requests outstanding in total during a rate test and the storm, raw UDP included (default 256)
  --heap-wait <s>      the last heap sample after the reads and after the storm, after +0 and +10 s (default 60; 0: +0 only)
  --soak-load <kind>   update, notify or mixed (default: whichever of update and notify was faster)
  --restart <n>        registration records for the restart on Redis (default 100000)
  --no-redis           skips the Redis part: the Redis store's rows and the restart
  --help               this text`;

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { devices: 1000, registrations: 100_000, seconds: 5, soak: 60, window: 256, heapWait: 60, redis: true, restart: 100_000 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    if (argv[i] === '--no-redis') {
      settings.redis = false;
      continue;
    }
    const soakLoad = /^--soak-load(?:=(.*))?$/.exec(argv[i]!);
    if (soakLoad) {
      const kind = soakLoad[1] ?? argv[++i];
      if (kind !== 'update' && kind !== 'notify' && kind !== 'mixed') throw new Error(`--soak-load is update, notify or mixed, not ${kind}\n${USAGE}`);
      settings.soakLoad = kind;
      continue;
    }
    const match = /^--(devices|registrations|seconds|soak|window|heap-wait|restart)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const name = match[1] === 'heap-wait' ? 'heapWait' : (match[1] as 'devices' | 'registrations' | 'seconds' | 'soak' | 'window' | 'restart');
    const raw = match[2] ?? argv[++i];
    const value = Number(raw);
    const zeroAllowed = name === 'soak' || name === 'heapWait';
    if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) throw new Error(`--${match[1]} needs a positive number, not ${raw}\n${USAGE}`);
    settings[name] = name === 'seconds' || name === 'soak' || name === 'heapWait' ? value : Math.floor(value);
  }
  return settings;
}

/** the targets, as ratios to the raw UDP echo rate: printed, never asserted */
const UPLINK = 0.6;
const DOWNLINK = 0.5;
/** the goals of the Redis store: registrations/s as a ratio to those without a store, and the restart's seconds (printed, never asserted) */
const REDIS_REGISTRATIONS_GOAL = 0.5;
const RESTART_GOAL_SECONDS = 10;
/** devices that send an Update after the restart on Redis */
const RESTART_PROBES = 100;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (rate: number) => `${Math.round(rate).toLocaleString('en-US')}/s`;
const bytes = (value: number) => `${(Math.round(value) + 0).toLocaleString('en-US')} B`; // + 0: no "-0"
const count = (value: number) => value.toLocaleString('en-US');
const secondsOf = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Datagrams the kernel dropped on the UDP socket bound to this local port, for want of receive-buffer room (Linux; undefined elsewhere). */
function socketDrops(port: number): number | undefined {
  try {
    const wanted = port.toString(16).toUpperCase().padStart(4, '0');
    let drops = 0;
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length >= 13 && fields[1]!.split(':')[1] === wanted) drops += Number(fields[12]);
    }
    return drops;
  } catch {
    return undefined;
  }
}

function kernelSetting(name: string): number | undefined {
  try {
    return Number(readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** One line of the table: a rate, the CPU of both processes while it was measured, and the datagrams the kernel dropped at the server's socket. */
interface Row {
  name: string;
  /** the same workload for both servers has the same key: it pairs our row with node-coap's */
  key?: string;
  rate: number;
  /** the ratio to raw UDP the server should reach, when there is one */
  target?: number;
  cpu: number;
  generatorCpu: number;
  drops: number | undefined;
  /** the store's own process (redis-server) meanwhile, % of one core, when the server has one */
  storeCpu?: number;
  note: string;
}

/**
 * What a phase measured in this process: CPU of the server and datagrams the kernel dropped on its
 * socket; and, given `storeCpu` (CPU ms the store's process used so far), that process's CPU.
 */
async function measured<T>(port: number, work: () => Promise<T>, storeCpu?: () => Promise<number>): Promise<{ value: T; cpu: number; drops: number | undefined; ms: number; storeCpu?: number }> {
  const storeBefore = await storeCpu?.();
  const dropsBefore = socketDrops(port);
  const cpuStart = process.cpuUsage();
  const began = performance.now();
  const value = await work();
  const ms = performance.now() - began;
  const used = process.cpuUsage(cpuStart);
  const dropsAfter = socketDrops(port);
  const storeAfter = await storeCpu?.();
  return {
    value,
    cpu: ((used.user + used.system) / 1000 / ms) * 100,
    drops: dropsBefore === undefined || dropsAfter === undefined ? undefined : dropsAfter - dropsBefore,
    ms,
    storeCpu: storeBefore === undefined || storeAfter === undefined ? undefined : ((storeAfter - storeBefore) / ms) * 100,
  };
}

/** The server under test, ours or node-coap's, as the workloads see it. */
interface Subject {
  name: 'ours' | 'node-coap' | 'ours, memory' | 'ours, Redis store';
  port: number;
  /** CPU ms the store's own process (redis-server) used so far, when the server has one */
  storeCpu?: () => Promise<number>;
  registrationCount(): number;
  /** starts an observation of /3303/0/5700 on the device, text/plain */
  observe(endpoint: string): Promise<void>;
  /** notifications delivered to the application so far */
  notifications(): number;
  read(endpoint: string): Promise<unknown>;
  /** ours only: runs `work` with the CoAP trace on */
  traced?: <T>(work: () => Promise<T>) => Promise<T>;
  close(): Promise<void>;
}

interface HeapSample {
  /** seconds after the work ended */
  at: number;
  heap: number;
}

interface StormStep {
  /** registrations in all after this step */
  total: number;
  /** heap after GC after this step, less the heap before the storm, ÷ total */
  perRegistration: number;
  /** what this step added to the heap ÷ the registrations it added */
  marginal: number;
}

/** What one server's run produced. */
interface Outcome {
  rows: Row[];
  /** not measured in the 'store' scope */
  reads?: { count: number; before: number; samples: HeapSample[] };
  /** updates answered (all, the drain after the deadline included) and the heap after GC before and right after them */
  updates: { count: number; before: number; after: number };
  storm: { before: number; steps: StormStep[]; samples: HeapSample[]; registered: number };
  soak?: { kind: 'update' | 'notify' | 'mixed'; run: Awaited<ReturnType<typeof measured<RunResult>>>; samples: HeapSample[] };
  devicesRegistered: number;
  observeFailures: number;
}

/** When the heap is sampled after a piece of work: +0, +10 and +`wait` s (those within `wait`). */
function sampleTimes(wait: number): number[] {
  return [...new Set([0, 10, wait])].filter((at) => at <= wait).sort((a, b) => a - b);
}

/** Heap after GC at each of `sampleTimes(wait)`. */
async function heapSamples(wait: number): Promise<HeapSample[]> {
  const began = performance.now();
  const samples: HeapSample[] = [];
  for (const at of sampleTimes(wait)) {
    const due = began + at * 1000 - performance.now();
    if (due > 0) await pause(due);
    samples.push({ at, heap: heapAfterGc() });
  }
  return samples;
}

/** The storm's cumulative totals: a tenth, a half, all. */
function stormTotals(registrations: number): number[] {
  return [...new Set([Math.round(registrations / 10), Math.round(registrations / 2), registrations])].filter((total) => total > 0);
}

/**
 * Every workload against one kind of server: the devices register with an instance, then the rate
 * tests, the reads with their heap samples and (ours only) the soak; then the storm, with its heap
 * samples, against a fresh instance (its heap holds nothing but the storm; and node-coap's cache,
 * which it prunes every 123.5 s of what is older than 247 s, holds nothing the storm did not add).
 * The 'store' scope (a server on a store, beside the same server without one) leaves out what does
 * not touch the store: the trace, the reads, the soak and the later heap samples of the storm.
 */
async function runWorkloads(start: () => Promise<Subject>, devices: Generator, settings: Settings, failures: string[], scope: 'all' | 'store' = 'all'): Promise<Outcome> {
  const { window, seconds } = settings;
  const subject = await start();
  const fail = (what: string) => failures.push(`${subject.name}: ${what}`);
  const rows: Row[] = [];
  const traced = scope === 'all' ? subject.traced : undefined;
  const measure = <T>(port: number, work: () => Promise<T>) => measured(port, work, subject.storeCpu);

  // --- the devices register (and stay registered) with this server ---
  const registeredDevices = await devices.run({ cmd: 'devices', serverPort: subject.port, devices: settings.devices, window, lifetime: 86400 });
  await pause(100);
  if (subject.registrationCount() !== settings.devices) fail(`${subject.registrationCount()} of ${settings.devices} devices registered (lost ${registeredDevices.lost})`);

  // --- registrations/s with fresh names, then their de-registrations ---
  const registeredBefore = subject.registrationCount();
  const registering = await measure(subject.port, () => devices.run({ cmd: 'register', seconds, window }));
  rows.push(rateRow('registrations/s (new endpoint names)', 'register', registering, UPLINK));
  const created = subject.registrationCount() - registeredBefore;
  const deregistering = await measure(subject.port, () => devices.run({ cmd: 'deregister', window }));
  rows.push(rateRow('de-registrations/s', 'deregister', deregistering, UPLINK, `${deregistering.value.ok} of ${created}`));
  await pause(100);
  const left = subject.registrationCount() - registeredBefore;
  if (left !== 0) fail(`${left} of the ${created} new registrations left after the de-registrations (${deregistering.value.ok} answered 2.02, lost ${deregistering.value.lost})`);

  // --- updates/s, with the heap per finished update right after them ---
  const heapBeforeUpdates = heapAfterGc();
  const updating = await measure(subject.port, () => devices.run({ cmd: 'update', seconds, window }));
  const heapAfterUpdates = heapAfterGc();
  rows.push(rateRow('updates/s', 'update', updating, UPLINK));
  if (traced) {
    const tracedUpdates = await traced(() => measured(subject.port, () => devices.run({ cmd: 'update', seconds, window })));
    rows.push(tracedRow(rateRow('updates/s, CoAP trace on (1,000 kept)', undefined, tracedUpdates, undefined), rows.at(-1)!));
  }

  // --- the server observes every device; then notifications/s ---
  let observeFailures = 0;
  let firstObserveFailure: unknown;
  await inParallel(settings.devices, window, async (n) => {
    try {
      await subject.observe(`dev-${n}`);
    } catch (error) {
      observeFailures++;
      firstObserveFailure ??= error;
    }
  });
  if (observeFailures > 0) fail(`${settings.devices - observeFailures} of ${settings.devices} observations established, the first failure: ${String(firstObserveFailure)}`);
  const notifyRow = async (name: string, key: string | undefined, target: number | undefined): Promise<Row> => {
    const before = subject.notifications();
    const notifying = await measure(subject.port, () => devices.run({ cmd: 'notify', seconds, window }));
    const events = subject.notifications() - before;
    return {
      ...rateRow(name, key, notifying, target),
      rate: Math.min(events, notifying.value.ok) / (notifying.value.elapsedMs / 1000),
      note: `${events} notifications delivered, ${notifying.value.ok} ACKs in ${seconds} s` + (notifying.value.lost ? `, lost ${notifying.value.lost}` : ''),
    };
  };
  rows.push(await notifyRow('notifications/s (CON, device → server)', 'notify', UPLINK));
  if (traced) {
    const off = rows.at(-1)!;
    rows.push(tracedRow(await traced(() => notifyRow('notifications/s, CoAP trace on (1,000 kept)', undefined, undefined)), off));
  }

  // --- reads/s, server → devices, with the heap per finished read; then (ours) the same with the CoAP trace on ---
  const readFor = async (): Promise<{ reads: number; errors: number; first: unknown }> => {
    const counts = { reads: 0, errors: 0, first: undefined as unknown };
    const deadline = performance.now() + seconds * 1000;
    let next = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (performance.now() < deadline) {
          try {
            await subject.read(`dev-${next++ % settings.devices}`);
            counts.reads++;
          } catch (error) {
            counts.errors++;
            counts.first ??= error;
          }
        }
      }),
    );
    return counts;
  };
  const readRow = (reading: Awaited<ReturnType<typeof measured<Awaited<ReturnType<typeof readFor>>>>>, trace: boolean): Row => {
    const { reads, errors, first } = reading.value;
    if (errors > 0) fail(`${errors} reads failed${trace ? ' with the trace on' : ''}, the first: ${String(first)}`);
    return {
      name: trace ? 'reads/s, CoAP trace on (1,000 kept)' : 'reads/s (server → device)',
      key: trace ? undefined : 'read',
      rate: reads / (reading.ms / 1000),
      target: trace ? undefined : DOWNLINK,
      cpu: reading.cpu,
      generatorCpu: Number.NaN,
      drops: reading.drops,
      note: errors ? `${errors} failed: ${String(first)}` : `${reads} reads`,
    };
  };
  let reads: Outcome['reads'];
  if (scope === 'all') {
    const heapBeforeReads = heapAfterGc();
    const reading = await measured(subject.port, readFor);
    rows.push(readRow(reading, false));
    reads = { count: reading.value.reads, before: heapBeforeReads, samples: await heapSamples(settings.heapWait) };
    if (traced) {
      const off = rows.at(-1)!;
      rows.push(tracedRow(readRow(await traced(() => measured(subject.port, readFor)), true), off));
    }
  }

  // --- ours: sustained load, the highest uplink rate for --soak seconds, heap after GC every 10 s ---
  let soak: Outcome['soak'];
  if (subject.name === 'ours' && scope === 'all' && settings.soak > 0) {
    const kind = settings.soakLoad ?? (rateOf(rows, 'notify') > rateOf(rows, 'update') ? 'notify' : 'update');
    const began = performance.now();
    const samples: HeapSample[] = [{ at: 0, heap: heapAfterGc() }];
    const sampler = setInterval(() => samples.push({ at: (performance.now() - began) / 1000, heap: heapAfterGc() }), 10_000);
    const run = await measured(subject.port, () => devices.run({ cmd: kind, seconds: settings.soak, window }));
    clearInterval(sampler);
    samples.push({ at: (performance.now() - began) / 1000, heap: heapAfterGc() });
    soak = { kind, run, samples };
  }

  await subject.close();

  // --- the registration storm against a fresh instance, in cumulative steps, heap per registration after each ---
  await pause(500);
  const stormServer = await start();
  const heapBeforeStorm = heapAfterGc();
  let heapAfterStep = heapBeforeStorm;
  const steps: StormStep[] = [];
  let done = 0;
  /** the steps' durations added up: the time to reach each total (the heap readings between steps left out) */
  let stormMs = 0;
  let stormSamples: HeapSample[] = [];
  for (const total of stormTotals(settings.registrations)) {
    const run = await measured(stormServer.port, () => devices.run({ cmd: 'mass', serverPort: stormServer.port, count: total - done, first: done, window, lifetime: 86400 }), stormServer.storeCpu);
    const { ok, lost, other, elapsedMs, detail } = run.value;
    stormMs += elapsedMs;
    rows.push({
      name: `storm: registrations ${done.toLocaleString('en-US')} → ${total.toLocaleString('en-US')}`,
      key: `storm-${total}`,
      rate: ok / (elapsedMs / 1000),
      target: UPLINK,
      cpu: run.cpu,
      generatorCpu: run.value.cpu,
      drops: run.drops,
      storeCpu: run.storeCpu,
      note: `${ok} in ${(elapsedMs / 1000).toFixed(1)} s (${total.toLocaleString('en-US')} in ${(stormMs / 1000).toFixed(1)} s), ${detail?.retransmissions ?? 0} retransmitted, ${lost} given up${other ? `, ${other} refused` : ''}; ${detail?.addresses ?? '?'} addresses so far`,
    });
    await pause(500);
    const last = total === settings.registrations;
    const samples = last ? await heapSamples(scope === 'all' ? settings.heapWait : 0) : [{ at: 0, heap: heapAfterGc() }];
    steps.push({ total, perRegistration: (samples[0]!.heap - heapBeforeStorm) / total, marginal: (samples[0]!.heap - heapAfterStep) / (total - done) });
    heapAfterStep = samples[0]!.heap;
    if (last) stormSamples = samples;
    done = total;
  }
  const registered = stormServer.registrationCount();
  if (registered !== settings.registrations) fail(`${registered} of ${settings.registrations} storm registrations made it`);
  await stormServer.close();

  return {
    rows,
    reads,
    updates: { count: updating.value.answered ?? updating.value.ok, before: heapBeforeUpdates, after: heapAfterUpdates },
    storm: { before: heapBeforeStorm, steps, samples: stormSamples, registered },
    soak,
    devicesRegistered: registeredDevices.detail?.registered ?? 0,
    observeFailures,
  };
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const failures: string[] = [];
  console.log(
    `bench/server: ${settings.devices} devices, storm of ${stormTotals(settings.registrations).map((total) => total.toLocaleString('en-US')).join(' / ')} registrations, ${settings.seconds} s per rate, ${settings.soak} s soak, ${settings.window} requests in flight, heap samples ${sampleTimes(settings.heapWait).map((at) => `+${at}`).join('/')} s; ${settings.redis ? `Redis store rows and a restart of ${count(settings.restart)} registrations` : 'no Redis part (--no-redis)'}; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}; load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}`,
  );

  const echo = createSocket('udp4');
  echo.on('message', (message, peer) => echo.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  const granted = sizeSocketBuffers(echo);
  const echoPort = echo.address().port;

  const devices = await Generator.start();
  const window = settings.window;

  // --- baseline: raw UDP echo, same processes, sockets and window; datagrams the size of an Update ---
  const updateSize = 4 + 8 + 3 + 9; // header, token, Uri-Path rd, Uri-Path <8-character id>
  const raw = await measured(echoPort, () => devices.run({ cmd: 'echo', port: echoPort, seconds: settings.seconds, window, sockets: settings.devices, size: updateSize }));
  const rawRate = raw.value.ok / (raw.value.elapsedMs / 1000);
  const rawRow: Row = { name: 'raw UDP echo (baseline)', rate: rawRate, cpu: raw.cpu, generatorCpu: raw.value.cpu, drops: raw.drops, note: `${updateSize}-byte datagrams, lost ${raw.value.lost}` };
  echo.close();

  // --- our server ---
  const serverErrors: unknown[] = [];
  let traceEntries = 0;
  /** what the kernel gave our server's socket (LwM2MServer asks for 4 MiB by default) */
  let ourBuffers = { receive: 0, send: 0 };
  /** ours, without a store (LwM2MServer's default) or on `store` (whose process used `storeCpu` ms of CPU so far) */
  const startServer = async (name: 'ours' | 'ours, memory' | 'ours, Redis store', store?: RegistrationStore, storeCpu?: () => Promise<number>): Promise<Subject> => {
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', requestTimeout: 10_000, store });
    server.on('error', (error) => serverErrors.push(error));
    let notifications = 0;
    server.on('notify', (_event: NotifyEvent) => notifications++);
    const { port } = await server.listen();
    if (!store) ourBuffers = server.socketBuffers().plain ?? ourBuffers;
    return {
      name,
      port,
      storeCpu,
      registrationCount: () => server.registrations().length,
      observe: async (endpoint) => {
        await server.observe(endpoint, '/3303/0/5700', undefined, { format: ContentFormat.TEXT });
      },
      notifications: () => notifications,
      read: (endpoint) => server.read(endpoint, '/3/0/0', { format: ContentFormat.TEXT }),
      /** runs `work` with the CoAP trace on (1,000 entries kept), then switches it off again */
      traced: async (work) => {
        server.setTrace({ size: 1000 });
        try {
          return await work();
        } finally {
          traceEntries = Math.max(traceEntries, server.trace.entries().length);
          server.setTrace({ size: 0 });
        }
      },
      close: () => server.close(),
    };
  };
  const oursOutcome = await runWorkloads(() => startServer('ours'), devices, settings, failures);

  // --- ours without a store and then on a Redis store, the workloads that touch the store, one right after the other; then the restart ---
  let onRedis: RedisPart | undefined;
  const storeErrors: StoreError[] = [];
  if (settings.redis) {
    await pause(500);
    const redis = await startRedis().catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)} (--no-redis skips the Redis part)`);
    });
    const info = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const version = /redis_version:(\S+)/.exec(await info.info('server'))?.[1] ?? '?';
      /** CPU ms redis-server used so far (INFO cpu: its user and system seconds) */
      const redisCpu = async (): Promise<number> => {
        const text = await info.info('cpu');
        const seconds = (field: string) => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(text)?.[1]);
        return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000;
      };
      let instance = 0;
      const startOnRedis = () => startServer('ours, Redis store', new RedisStore({ url: redis.url, prefix: `bench-${++instance}:`, onError: (error) => storeErrors.push(error) }), redisCpu);
      const memory = await runWorkloads(() => startServer('ours, memory'), devices, settings, failures, 'store');
      await pause(500);
      const outcome = await runWorkloads(startOnRedis, devices, settings, failures, 'store');
      const restart = await measureRestart({ url: redis.url, count: settings.restart, probes: RESTART_PROBES });
      onRedis = { memory, outcome, restart, version };
    } finally {
      info.disconnect();
      await redis.stop();
    }
  }

  // --- node-coap's server, the same workloads, once ours is closed ---
  await pause(500);
  let nodeCoapBuffers = { receive: 0, send: 0 };
  const startNodeCoap = async (): Promise<Subject> => {
    const nodeCoap = await NodeCoapLwM2MServer.listen({ address: '127.0.0.1', bufferSize: DEFAULT_SOCKET_BUFFER_SIZE });
    nodeCoapBuffers = nodeCoap.bufferSizes();
    let notifications = 0;
    return {
      name: 'node-coap',
      port: nodeCoap.port,
      registrationCount: () => nodeCoap.registrations.size,
      observe: (endpoint) => nodeCoap.observe(endpoint, '/3303/0/5700', () => notifications++),
      notifications: () => notifications,
      read: (endpoint) => nodeCoap.read(endpoint, '/3/0/0'),
      close: () => nodeCoap.close(),
    };
  };
  const theirsOutcome = await runWorkloads(startNodeCoap, devices, settings, failures);

  devices.stop();

  // --- report ---
  const mib = (value: number) => `${(value / 1048576).toFixed(value % 1048576 === 0 ? 0 : 2)} MiB`;
  const mb = (value: number) => `${(value / 1048576).toFixed(1)} MB`;
  const signedMb = (value: number) => {
    const rounded = Math.round(value / 104857.6) / 10;
    return `${rounded > 0 ? '+' : rounded < 0 ? '−' : '±'}${Math.abs(rounded).toFixed(1)} MB`;
  };
  const theirs = new Map(theirsOutcome.rows.filter((row) => row.key).map((row) => [row.key!, row]));
  const table: string[][] = [['figure', 'server', 'rate', '× raw UDP', 'ours ÷ node-coap', 'target', 'server CPU', 'devices CPU', 'drops', 'notes']];
  const line = (row: Row, server: string, ratio: string, name = row.name) =>
    table.push([
      name,
      server,
      fmt(row.rate),
      row === rawRow ? 'baseline' : `${(row.rate / rawRate).toFixed(2)}×`,
      ratio,
      row.target === undefined || server !== 'ours' ? '' : `≥ ${row.target}×`,
      `${row.cpu.toFixed(0)} %`,
      Number.isNaN(row.generatorCpu) ? '—' : `${row.generatorCpu.toFixed(0)} %`,
      String(row.drops ?? 'n/a'),
      row.note,
    ]);
  line(rawRow, '', '');
  for (const row of oursOutcome.rows) {
    const other = row.key ? theirs.get(row.key) : undefined;
    line(row, 'ours', other ? `${(row.rate / other.rate).toFixed(2)}× (${(row.rate / row.cpu / (other.rate / other.cpu)).toFixed(2)}× per CPU)` : '');
    if (other) line(other, 'node-coap', '', '');
  }
  printTable(table, [2]);
  console.log("(ours ÷ node-coap: the rates' ratio, then the ratio of rate per server CPU: on a shared machine the share of CPU a server gets varies from phase to phase, the work per message does not)");
  if (raw.value.cpu > 90) console.log(`(during the raw UDP baseline the device process used ${raw.value.cpu.toFixed(0)} % of a core and this process ${raw.cpu.toFixed(0)} %: it is bounded by Node's dgram on both sides)`);
  const rmemMax = kernelSetting('rmem_max');
  const rmemDefault = kernelSetting('rmem_default');
  console.log(
    `socket buffers: our server's socket (LwM2MServer's default socketBufferSize), node-coap's server socket and the echo socket each asked for ${mib(DEFAULT_SOCKET_BUFFER_SIZE)} receive and send (net.core.rmem_max ${rmemMax === undefined ? 'n/a' : mib(rmemMax)}, rmem_default ${rmemDefault === undefined ? 'n/a' : `${Math.round(rmemDefault / 1024)} KiB`}); the kernel reports receive / send ${mib(ourBuffers.receive)} / ${mib(ourBuffers.send)} for ours, ${mib(nodeCoapBuffers.receive)} / ${mib(nodeCoapBuffers.send)} for node-coap's, ${mib(granted.receive)} / ${mib(granted.send)} for the echo socket (Linux reports twice what it grants, its bookkeeping included)`,
  );

  const perRead = ({ reads }: Outcome) =>
    !reads ? 'not measured' : `${reads.samples.map((sample) => `+${sample.at} s ${bytes((sample.heap - reads.before) / Math.max(1, reads.count))}`).join(', ')} (${reads.count.toLocaleString('en-US')} reads; heap ${mb(reads.before)} before)`;
  const perRegistration = (outcome: Outcome) => {
    const { storm } = outcome;
    const steps = storm.steps.map((step) => `${step.total.toLocaleString('en-US')}: ${bytes(step.perRegistration)} (the step alone ${bytes(step.marginal)})`).join(', ');
    const later = storm.samples.slice(1).map((sample) => `+${sample.at} s ${bytes((sample.heap - storm.before) / Math.max(1, storm.steps.at(-1)?.total ?? 1))}`).join(', ');
    return `${steps}${later ? `; after the last step ${later}` : ''} (heap ${mb(storm.before)} → ${mb(storm.samples[0]?.heap ?? Number.NaN)})`;
  };
  const perUpdate = (outcome: Outcome) =>
    `+0 s ${bytes((outcome.updates.after - outcome.updates.before) / Math.max(1, outcome.updates.count))} (${outcome.updates.count.toLocaleString('en-US')} updates; heap ${mb(outcome.updates.before)} before)`;
  console.log(
    "heap after GC per finished update, device → server (the heap right after the updates, less the heap before them, ÷ updates answered; ours' deduplication cache is bounded, 10,000 exchanges, and full before the updates; node-coap caches every answer, for 247 s):",
  );
  console.log(`  ours       ${perUpdate(oursOutcome)}`);
  console.log(`  node-coap  ${perUpdate(theirsOutcome)}`);
  console.log("heap after GC per finished read, server → device (the heap +n s after the reads, less the heap before them, ÷ reads; node-coap's agent lets go of a request once answered):");
  console.log(`  ours       ${perRead(oursOutcome)}`);
  console.log(`  node-coap  ${perRead(theirsOutcome)}`);
  console.log(
    "heap after GC per idle registration in the storm, cumulative (the heap after a step, less the heap before the storm, ÷ registrations so far; ours includes its deduplication cache filling up to its bound, 10,000 exchanges; node-coap's its cache of every answer, for 247 s); target for ours ≤ 1 KB:",
  );
  console.log(`  ours       ${perRegistration(oursOutcome)}`);
  console.log(`  node-coap  ${perRegistration(theirsOutcome)}`);
  const { soak } = oursOutcome;
  if (soak) {
    const soakRate = soak.run.value.ok / (soak.run.value.elapsedMs / 1000);
    const what = soak.kind === 'notify' ? 'notifications' : soak.kind === 'update' ? 'updates' : `updates and notifications (${soak.run.value.detail?.updates ?? 0} + ${soak.run.value.detail?.notifications ?? 0})`;
    console.log(`soak (ours): ${what} for ${settings.soak} s at ${fmt(soakRate)} (${(soakRate / rawRate).toFixed(2)}× raw UDP), lost ${soak.run.value.lost}, server CPU ${soak.run.cpu.toFixed(0)} %, drops ${soak.run.drops ?? 'n/a'}`);
    console.log(`soak heap after gc: ${soak.samples.map((sample) => `${sample.at.toFixed(0)} s ${mb(sample.heap)}`).join(', ')}; last − first ${signedMb(soak.samples.at(-1)!.heap - soak.samples[0]!.heap)} (target: flat)`);
  }
  if (onRedis) reportRedis(onRedis, failures);
  const outcomes: Array<[string, Outcome]> = [['ours', oursOutcome], ...(onRedis ? ([['ours, memory', onRedis.memory], ['ours, Redis store', onRedis.outcome]] as Array<[string, Outcome]>) : []), ['node-coap', theirsOutcome]];
  for (const [name, outcome] of outcomes) {
    console.log(`${name}: devices registered ${outcome.devicesRegistered} of ${settings.devices}; observations ${settings.devices - outcome.observeFailures}; storm registrations ${outcome.storm.registered} of ${settings.registrations}`);
  }
  if (onRedis) console.log(`ours, Redis store: store errors ${storeErrors.length}`);
  if (storeErrors.length > 0) failures.push(`ours, Redis store: the store reported ${storeErrors.length} errors, the first: ${storeErrors[0]!.message}`);
  console.log(`ours: server errors ${serverErrors.length}; trace entries kept ${traceEntries} (of 1,000); load average at the end ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}`);
  if (traceEntries !== 1000) failures.push(`ours: the trace kept ${traceEntries} entries, not 1,000`);
  if (serverErrors.length > 0) failures.push(`ours: the server reported ${serverErrors.length} errors, the first: ${String(serverErrors[0])}`);
  for (const failure of failures) console.log(`FAILED: ${failure}`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

/** The Redis part: ours without a store and on a Redis store (the 'store' scope of runWorkloads, one right after the other), and the restart. */
interface RedisPart {
  memory: Outcome;
  outcome: Outcome;
  restart: RestartResult;
  /** redis-server's version */
  version: string;
}

/**
 * The Redis store beside memory (the rows without a store with the same key, and the storm's heap
 * per registration at the same totals), then the restart; its functional failures join
 * `failures`.
 */
function reportRedis({ memory, outcome, restart, version }: RedisPart, failures: string[]): void {
  console.log(
    `Redis store beside memory (no store: LwM2MServer's own maps, its default), the same devices and workloads, memory measured again right before Redis; redis-server ${version} on loopback, started by the bench, nothing saved to disk; store: new RedisStore({ url, prefix }), a fresh prefix per server instance:`,
  );
  const byKey = new Map(memory.rows.filter((row) => row.key).map((row) => [row.key!, row]));
  const table: string[][] = [['figure', 'memory', 'Redis', 'Redis ÷ memory', 'goal', 'server CPU memory / Redis', 'redis-server CPU', 'drops', 'notes (Redis)']];
  for (const row of outcome.rows) {
    const base = row.key ? byKey.get(row.key) : undefined;
    if (!base) continue;
    table.push([
      row.name,
      fmt(base.rate),
      fmt(row.rate),
      `${(row.rate / base.rate).toFixed(2)}× (${(row.rate / row.cpu / (base.rate / base.cpu)).toFixed(2)}× per server CPU)`,
      row.key === 'register' ? `≥ ${REDIS_REGISTRATIONS_GOAL}×` : '',
      `${base.cpu.toFixed(0)} % / ${row.cpu.toFixed(0)} %`,
      row.storeCpu === undefined ? 'n/a' : `${row.storeCpu.toFixed(0)} %`,
      String(row.drops ?? 'n/a'),
      row.note,
    ]);
  }
  for (const step of outcome.storm.steps) {
    const base = memory.storm.steps.find((candidate) => candidate.total === step.total);
    if (!base) continue;
    table.push([`heap per idle registration, storm ${count(step.total)}`, bytes(base.perRegistration), bytes(step.perRegistration), `${(step.perRegistration / base.perRegistration).toFixed(2)}×`, '', '', '', '', `the step alone ${bytes(step.marginal)} (memory ${bytes(base.marginal)})`]);
  }
  printTable(table, [1, 2]);
  console.log("(server CPU: this process; redis-server's CPU is not in it. The heap rows: after GC, cumulative, as in the storm above, at +0 s)");

  const { file, hscan, probes } = restart;
  console.log(
    `restart on the Redis store, ${count(restart.count)} registrations (written by RedisStore.save of each and one flush in ${secondsOf(restart.fillMs)}): a new RedisStore and LwM2MServer on the same prefix, listen() resolved with ${count(restart.loaded)} of ${count(restart.count)} loaded in ${secondsOf(restart.listenMs)} (goal ≤ ${RESTART_GOAL_SECONDS} s)`,
  );
  console.log(
    `  baselines, the same records, this run: a raw HSCAN of the hash (ioredis, COUNT 1000, nothing parsed) ${secondsOf(hscan.ms)} for ${count(hscan.fields)} fields (the restart takes ${(restart.listenMs / hscan.ms).toFixed(1)}× that); a new LwM2MServer on a FileStore holding them (${(file.bytes / 1048576).toFixed(1)} MB, written in ${secondsOf(file.fillMs)}), listen() resolved with ${count(file.loaded)} loaded in ${secondsOf(file.listenMs)} (Redis ÷ file ${(restart.listenMs / file.listenMs).toFixed(2)}×)`,
  );
  console.log(
    `  after the restart ${count(probes.sent)} devices sent an Update of their registration from before it, without registering again: ${count(probes.changed)} answered 2.04 Changed (all answers within ${(probes.ms).toFixed(0)} ms), ${count(probes.writtenBack)} written back to Redis with the new updatedAt`,
  );
  const fail = (what: string) => failures.push(`ours, Redis store: ${what}`);
  if (restart.loaded !== restart.count) fail(`the restarted server loaded ${restart.loaded} of ${restart.count} registrations`);
  if (hscan.fields !== restart.count) fail(`the hash holds ${hscan.fields} of the ${restart.count} registrations written`);
  if (file.loaded !== restart.count) fail(`the server restarted on the FileStore loaded ${file.loaded} of ${restart.count} registrations`);
  if (probes.changed !== probes.sent) fail(`${probes.sent - probes.changed} of ${probes.sent} Updates after the restart were not answered 2.04`);
  if (probes.writtenBack !== probes.sent) fail(`${probes.sent - probes.writtenBack} of ${probes.sent} Updates after the restart did not reach Redis`);
  for (const problem of restart.problems) fail(`restart: ${problem}`);
}

/** Columns padded to their widest cell, those in `rightAligned` on the right; the last column not padded. */
function printTable(table: readonly string[][], rightAligned: readonly number[]): void {
  const widths = table[0]!.map((_, column) => Math.max(...table.map((cells) => cells[column]!.length)));
  for (const cells of table) {
    console.log(cells.map((cell, column) => (column === cells.length - 1 ? cell : rightAligned.includes(column) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd());
  }
}

/**
 * A row measured with the trace on, its note saying how it compares with the same workload with
 * the trace off: by rate, and by rate per server CPU (on a shared machine the share of CPU the
 * server gets varies between two phases; the work per message does not).
 */
function tracedRow(row: Row, off: Row): Row {
  const perCpu = row.rate / row.cpu / (off.rate / off.cpu);
  return { ...row, note: `${(row.rate / off.rate).toFixed(2)}× trace off, ${perCpu.toFixed(2)}× per server CPU; ${row.note}` };
}

function rateRow(name: string, key: string | undefined, run: { value: RunResult; cpu: number; drops: number | undefined; storeCpu?: number }, target: number | undefined, note?: string): Row {
  const extra = [run.value.other ? `${run.value.other} error answers` : '', run.value.lost ? `lost ${run.value.lost}` : ''].filter(Boolean).join(', ');
  return {
    name,
    key,
    rate: run.value.ok / (run.value.elapsedMs / 1000),
    target,
    cpu: run.cpu,
    generatorCpu: run.value.cpu,
    drops: run.drops,
    storeCpu: run.storeCpu,
    note: [note ?? `${run.value.ok} in ${(run.value.elapsedMs / 1000).toFixed(1)} s`, extra].filter(Boolean).join(', '),
  };
}

function rateOf(rows: readonly Row[], key: string): number {
  return rows.find((row) => row.key === key)?.rate ?? 0;
}

/** Runs `task(0 … count-1)` with at most `limit` at a time. */
async function inParallel(count: number, limit: number, task: (n: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
