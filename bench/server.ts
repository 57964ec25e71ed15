/**
 * The LwM2M server under load from many simulated devices, on loopback. The server runs in this
 * process (so its heap is what `heapUsed` after GC shows); the devices are a child process
 * (bench/server-devices) with bare UDP sockets and pre-built CoAP datagrams, so that the server is
 * the bottleneck. They talk over IPC for control only.
 *
 * Measured in one run, each rate beside a raw UDP echo rate between the same two processes (the
 * same number of sockets, the same number of datagrams outstanding, datagrams of Update size):
 *
 * - registrations/s (fresh endpoint names), then de-registrations/s (the same registrations);
 * - updates/s (each device updating its registration);
 * - notifications/s (devices the server observes sending Confirmable notifications; `notify` events counted);
 * - reads/s (server → devices: `server.read(endpoint, '/3/0/0', { format: 0 })`, a window of reads in flight);
 * - updates, notifications and reads per second again with the CoAP trace on (`setTrace({ size: 1000 })`,
 *   every message in and out decoded into an entry and kept in the ring buffer), right after the
 *   same workload with the trace off (the rows above);
 * - heap per idle registration: --registrations (100,000) devices from distinct addresses and ports
 *   (127.0.0.2, 127.0.0.3, … ports 12000–31999), heap after GC before and after, divided by the count;
 * - the heap during --soak seconds at the highest uplink rate (updates or notifications, whichever
 *   was faster; or --soak-load update|notify|mixed), sampled after GC every 10 s.
 *
 * "server CPU" is this process (server, echo socket, GC threads: it can pass 100 % of one core);
 * "devices CPU" the load generator. A row whose devices CPU is near 100 % measured the generator,
 * not the server: that is the case for the raw UDP baseline.
 *
 *   node --expose-gc dist/bench/server.js [--devices 1000] [--registrations 100000] [--seconds 5] [--soak 60] [--window 64] [--soak-load mixed]
 *
 * The figures are never asserted; it exits non-zero only when something fails functionally
 * (devices or registrations missing, observations not established, reads failing, server errors).
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { ContentFormat, LwM2MServer, type NotifyEvent } from '../lib';
import type { RunResult } from './server-devices';
import { heapAfterGc } from '../test/helpers/heap';
import { Generator } from './generator';

interface Settings {
  devices: number;
  registrations: number;
  seconds: number;
  soak: number;
  window: number;
  soakLoad?: 'update' | 'notify' | 'mixed';
}

const USAGE = `usage: node --expose-gc dist/bench/server.js [options]
  --devices <n>        simulated devices (sockets) for the rate tests (default 1000)
  --registrations <n>  idle registrations from distinct source ports for the heap test (default 100000)
  --seconds <s>        duration of each rate test (default 5)
  --soak <s>           duration of the sustained-load heap test (default 60; 0 skips it)
  --window <n>         requests outstanding in total during a rate test, raw UDP included (default 64)
  --soak-load <kind>   update, notify or mixed (default: whichever of update and notify was faster)
  --help               this text`;

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { devices: 1000, registrations: 100_000, seconds: 5, soak: 60, window: 64 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const soakLoad = /^--soak-load(?:=(.*))?$/.exec(argv[i]!);
    if (soakLoad) {
      const kind = soakLoad[1] ?? argv[++i];
      if (kind !== 'update' && kind !== 'notify' && kind !== 'mixed') throw new Error(`--soak-load is update, notify or mixed, not ${kind}\n${USAGE}`);
      settings.soakLoad = kind;
      continue;
    }
    const match = /^--(devices|registrations|seconds|soak|window)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const name = match[1] as 'devices' | 'registrations' | 'seconds' | 'soak' | 'window';
    const raw = match[2] ?? argv[++i];
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0 || (value === 0 && name !== 'soak')) throw new Error(`--${name} needs a positive number, not ${raw}\n${USAGE}`);
    settings[name] = name === 'seconds' || name === 'soak' ? value : Math.floor(value);
  }
  return settings;
}

/** the targets, as ratios to the raw UDP echo rate: printed, never asserted */
const UPLINK = 0.6;
const DOWNLINK = 0.5;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

/** One line of the table: a rate, the CPU of both processes while it was measured, and the datagrams the kernel dropped at the server's socket. */
interface Row {
  name: string;
  rate: number;
  /** the ratio to raw UDP the server should reach, when there is one */
  target?: number;
  cpu: number;
  generatorCpu: number;
  drops: number | undefined;
  note: string;
}

/** What a phase measured in this process: CPU of the server and datagrams the kernel dropped on its socket. */
async function measured<T>(port: number, work: () => Promise<T>): Promise<{ value: T; cpu: number; drops: number | undefined; ms: number }> {
  const dropsBefore = socketDrops(port);
  const cpuStart = process.cpuUsage();
  const began = performance.now();
  const value = await work();
  const ms = performance.now() - began;
  const used = process.cpuUsage(cpuStart);
  const dropsAfter = socketDrops(port);
  return { value, cpu: ((used.user + used.system) / 1000 / ms) * 100, drops: dropsBefore === undefined || dropsAfter === undefined ? undefined : dropsAfter - dropsBefore, ms };
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const failures: string[] = [];
  console.log(
    `bench/server: ${settings.devices} devices, ${settings.registrations} idle registrations, ${settings.seconds} s per rate, ${settings.soak} s soak, ${settings.window} requests in flight; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`,
  );

  const server = new LwM2MServer({ port: 0, address: '127.0.0.1', requestTimeout: 10_000 });
  const serverErrors: unknown[] = [];
  server.on('error', (error) => serverErrors.push(error));
  let notifications = 0;
  server.on('notify', (_event: NotifyEvent) => notifications++);
  const { port } = await server.listen();
  /** runs `work` with the CoAP trace on (1,000 entries kept), then switches it off again */
  let traceEntries = 0;
  const traced = async <T>(work: () => Promise<T>): Promise<T> => {
    server.setTrace({ size: 1000 });
    try {
      return await work();
    } finally {
      traceEntries = Math.max(traceEntries, server.trace.entries().length);
      server.setTrace({ size: 0 });
    }
  };

  const echo = createSocket('udp4');
  echo.on('message', (message, peer) => echo.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  const echoPort = echo.address().port;

  const devices = await Generator.start();
  const window = settings.window;
  const rows: Row[] = [];

  // --- baseline: raw UDP echo, same processes, sockets and window; datagrams the size of an Update ---
  const updateSize = 4 + 8 + 3 + 9; // header, token, Uri-Path rd, Uri-Path <8-character id>
  const raw = await measured(echoPort, () => devices.run({ cmd: 'echo', port: echoPort, seconds: settings.seconds, window, sockets: settings.devices, size: updateSize }));
  const rawRate = raw.value.ok / (raw.value.elapsedMs / 1000);
  rows.push({ name: 'raw UDP echo (baseline)', rate: rawRate, cpu: raw.cpu, generatorCpu: raw.value.cpu, drops: raw.drops, note: `${updateSize}-byte datagrams, lost ${raw.value.lost}` });
  echo.close();

  // --- the devices register (and stay registered) ---
  const registeredDevices = await devices.run({ cmd: 'devices', serverPort: port, devices: settings.devices, window, lifetime: 86400 });
  await pause(100);
  if (server.registrations().length !== settings.devices) failures.push(`${server.registrations().length} of ${settings.devices} devices registered`);

  // --- registrations/s with fresh names, then their de-registrations ---
  const registering = await measured(port, () => devices.run({ cmd: 'register', seconds: settings.seconds, window }));
  rows.push(rateRow('registrations/s (new endpoint names)', registering, UPLINK));
  const created = server.registrations().length - settings.devices;
  const deregistering = await measured(port, () => devices.run({ cmd: 'deregister', window }));
  rows.push(rateRow('de-registrations/s', deregistering, UPLINK, `${deregistering.value.ok} of ${created}`));
  await pause(100);
  if (server.registrations().length !== settings.devices) failures.push(`${server.registrations().length} registrations after the de-registrations, not ${settings.devices}`);

  // --- updates/s ---
  const updating = await measured(port, () => devices.run({ cmd: 'update', seconds: settings.seconds, window }));
  rows.push(rateRow('updates/s', updating, UPLINK));
  const tracedUpdates = await traced(() => measured(port, () => devices.run({ cmd: 'update', seconds: settings.seconds, window })));
  rows.push(tracedRow(rateRow('updates/s, CoAP trace on (1,000 kept)', tracedUpdates, undefined), rows.at(-1)!));

  // --- the server observes every device; then notifications/s ---
  let observeFailures = 0;
  await inParallel(settings.devices, window, async (n) => {
    try {
      await server.observe(`dev-${n}`, '/3303/0/5700', undefined, { format: ContentFormat.TEXT });
    } catch {
      observeFailures++;
    }
  });
  if (observeFailures > 0 || server.observations().length !== settings.devices) failures.push(`${server.observations().length} of ${settings.devices} observations established`);
  const before = notifications;
  const notifying = await measured(port, () => devices.run({ cmd: 'notify', seconds: settings.seconds, window }));
  const events = notifications - before;
  rows.push({
    ...rateRow('notifications/s (CON, device → server)', notifying, UPLINK),
    rate: Math.min(events, notifying.value.ok) / (notifying.value.elapsedMs / 1000),
  });
  rows.at(-1)!.note = `${events} notify events, ${notifying.value.ok} ACKs in ${settings.seconds} s` + (notifying.value.lost ? `, lost ${notifying.value.lost}` : '');
  const notifyRow = rows.at(-1)!;
  const beforeTraced = notifications;
  const tracedNotifying = await traced(() => measured(port, () => devices.run({ cmd: 'notify', seconds: settings.seconds, window })));
  const tracedEvents = notifications - beforeTraced;
  rows.push(
    tracedRow(
      { ...rateRow('notifications/s, CoAP trace on (1,000 kept)', tracedNotifying, undefined), rate: Math.min(tracedEvents, tracedNotifying.value.ok) / (tracedNotifying.value.elapsedMs / 1000) },
      notifyRow,
    ),
  );

  // --- reads/s, server → devices; then the same with the CoAP trace on ---
  const readFor = async (): Promise<{ reads: number; errors: number; first: unknown }> => {
    const counts = { reads: 0, errors: 0, first: undefined as unknown };
    const deadline = performance.now() + settings.seconds * 1000;
    let next = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (performance.now() < deadline) {
          try {
            await server.read(`dev-${next++ % settings.devices}`, '/3/0/0', { format: ContentFormat.TEXT });
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
  for (const trace of [false, true]) {
    const reading = trace ? await traced(() => measured(port, readFor)) : await measured(port, readFor);
    const { reads, errors, first } = reading.value;
    const row: Row = {
      name: trace ? 'reads/s, CoAP trace on (1,000 kept)' : 'reads/s (server → device)',
      rate: reads / (reading.ms / 1000),
      target: trace ? undefined : DOWNLINK,
      cpu: reading.cpu,
      generatorCpu: Number.NaN,
      drops: reading.drops,
      note: errors ? `${errors} failed: ${String(first)}` : `${reads} reads`,
    };
    rows.push(trace ? tracedRow(row, rows.at(-1)!) : row);
    if (errors > 0) failures.push(`${errors} reads failed${trace ? ' with the trace on' : ''}, the first: ${String(first)}`);
  }

  // --- heap per idle registration ---
  await pause(500);
  const heapBefore = heapAfterGc();
  const countBefore = server.registrations().length;
  const massRun = await measured(port, () => devices.run({ cmd: 'mass', count: settings.registrations, window, lifetime: 86400 }));
  await pause(500);
  const heapAfter = heapAfterGc();
  const added = server.registrations().length - countBefore;
  if (added !== settings.registrations) failures.push(`${added} of ${settings.registrations} idle registrations made it (${massRun.value.other} failed)`);
  const perRegistration = (heapAfter - heapBefore) / Math.max(1, added);
  rows.push({
    name: `registrations/s from ${massRun.value.detail?.addresses ?? '?'} addresses × distinct ports`,
    rate: massRun.value.ok / (massRun.value.elapsedMs / 1000),
    target: UPLINK,
    cpu: massRun.cpu,
    generatorCpu: massRun.value.cpu,
    drops: massRun.drops,
    note: `${massRun.value.ok} in ${(massRun.value.elapsedMs / 1000).toFixed(1)} s (a socket bound and closed each)`,
  });

  // --- sustained load: the highest uplink rate for --soak seconds, heap after GC every 10 s ---
  const soakKind = settings.soakLoad ?? (notifyRateOf(rows) > updateRateOf(rows) ? 'notify' : 'update');
  const samples: Array<{ at: number; heap: number }> = [];
  let soak: Awaited<ReturnType<typeof measured<RunResult>>> | undefined;
  if (settings.soak > 0) {
    const began = performance.now();
    samples.push({ at: 0, heap: heapAfterGc() });
    const sampler = setInterval(() => samples.push({ at: (performance.now() - began) / 1000, heap: heapAfterGc() }), 10_000);
    soak = await measured(port, () => devices.run({ cmd: soakKind, seconds: settings.soak, window }));
    clearInterval(sampler);
    samples.push({ at: (performance.now() - began) / 1000, heap: heapAfterGc() });
  }

  devices.stop();
  await server.close();

  // --- report ---
  const fmt = (rate: number) => `${Math.round(rate).toLocaleString('en-US')}/s`;
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(2)} KB`;
  const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
  const signedMb = (bytes: number) => {
    const rounded = Math.round(bytes / 104857.6) / 10;
    return `${rounded > 0 ? '+' : rounded < 0 ? '−' : '±'}${Math.abs(rounded).toFixed(1)} MB`;
  };
  const table: string[][] = [['figure', 'rate', '× raw UDP', 'target', 'server CPU', 'devices CPU', 'drops', 'notes']];
  for (const row of rows) {
    table.push([
      row.name,
      fmt(row.rate),
      row === rows[0] ? 'baseline' : `${(row.rate / rawRate).toFixed(2)}×`,
      row.target === undefined ? '—' : `≥ ${row.target}×`,
      `${row.cpu.toFixed(0)} %`,
      Number.isNaN(row.generatorCpu) ? '—' : `${row.generatorCpu.toFixed(0)} %`,
      String(row.drops ?? 'n/a'),
      row.note,
    ]);
  }
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  for (const line of table) console.log(line.map((cell, column) => (column === line.length - 1 ? cell : column === 1 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  '));
  if (raw.value.cpu > 90) console.log(`(during the raw UDP baseline the device process used ${raw.value.cpu.toFixed(0)} % of a core and this process ${raw.cpu.toFixed(0)} %: it is bounded by Node's dgram on both sides)`);
  console.log(`heap per idle registration (${added} registrations, after gc): ${Math.round(perRegistration)} bytes = ${kb(perRegistration)}, target ≤ 1 KB (heap ${mb(heapBefore)} → ${mb(heapAfter)})`);
  if (soak) {
    const soakRate = soak.value.ok / (soak.value.elapsedMs / 1000);
    const what = soakKind === 'notify' ? 'notifications' : soakKind === 'update' ? 'updates' : `updates and notifications (${soak.value.detail?.updates ?? 0} + ${soak.value.detail?.notifications ?? 0})`;
    console.log(`soak: ${what} for ${settings.soak} s at ${fmt(soakRate)} (${(soakRate / rawRate).toFixed(2)}× raw UDP), lost ${soak.value.lost}, server CPU ${soak.cpu.toFixed(0)} %, drops ${soak.drops ?? 'n/a'}`);
    console.log(`soak heap after gc: ${samples.map((sample) => `${sample.at.toFixed(0)} s ${mb(sample.heap)}`).join(', ')}; last − first ${signedMb(samples.at(-1)!.heap - samples[0]!.heap)} (target: flat)`);
  }
  console.log(`devices registered: ${registeredDevices.detail?.registered ?? 0} of ${settings.devices}; observations: ${settings.devices - observeFailures}; server errors: ${serverErrors.length}; trace entries kept: ${traceEntries} (of 1,000)`);
  if (traceEntries !== 1000) failures.push(`the trace kept ${traceEntries} entries, not 1,000`);
  if (serverErrors.length > 0) failures.push(`the server reported ${serverErrors.length} errors, the first: ${String(serverErrors[0])}`);
  for (const failure of failures) console.log(`FAILED: ${failure}`);
  process.exitCode = failures.length > 0 ? 1 : 0;
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

function rateRow(name: string, run: { value: RunResult; cpu: number; drops: number | undefined }, target: number | undefined, note?: string): Row {
  const extra = [run.value.other ? `${run.value.other} error answers` : '', run.value.lost ? `lost ${run.value.lost}` : ''].filter(Boolean).join(', ');
  return {
    name,
    rate: run.value.ok / (run.value.elapsedMs / 1000),
    target,
    cpu: run.cpu,
    generatorCpu: run.value.cpu,
    drops: run.drops,
    note: [note ?? `${run.value.ok} in ${(run.value.elapsedMs / 1000).toFixed(1)} s`, extra].filter(Boolean).join(', '),
  };
}

function updateRateOf(rows: ReadonlyArray<{ name: string; rate: number }>): number {
  return rows.find((row) => row.name.startsWith('updates/s'))?.rate ?? 0;
}

function notifyRateOf(rows: ReadonlyArray<{ name: string; rate: number }>): number {
  return rows.find((row) => row.name.startsWith('notifications/s'))?.rate ?? 0;
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
