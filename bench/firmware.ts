/**
 * Firmware update on loopback: the server (LwM2MServer) in this process, the devices (LwM2MClient
 * with the Firmware Update object, fast download and update times) in a child process
 * (bench/firmware-devices), so that the server's CPU and memory are its own. Measured in one run:
 *
 * - raw UDP echo: `--devices` lock-step loops of block-sized datagrams from the child to an echo
 *   socket here (the baseline: block-wise transfer is lock-step too, one block in flight per device);
 * - push: `--size` bytes to `--devices` devices at once (Block1 writes of /5/0/0) by the library's
 *   updateFirmwareFleet, in bytes/s from the start of the campaign until the last device is Downloaded;
 * - pull: the same, each device fetching the package the server serves (Block2 GETs of /fw/…), by
 *   updateFirmwareFleet (one published package for all) and by updateFirmware per device (each
 *   publishes the same Buffer under a name of its own, as the lwm2m-firmware node runs);
 * - memory during a pull campaign to `--devices` and to `--campaign` devices at once, both ways,
 *   each on a fresh server: heap and Buffers (after GC) before, at the peak and after, beside the
 *   package's size and the size × devices a copy per device would take;
 * - for each, the onProgress calls per block the devices downloaded: 1 when each block is told to
 *   its own device only.
 *
 *   node dist/bench/firmware.js [--size 1048576] [--devices 10] [--campaign 100] [--seconds 3]
 *
 * Never asserts a speed; exits non-zero only when something fails (an update does not succeed,
 * the child process fails).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import os from 'node:os';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LwM2MServer, type FirmwareOutcome, type FirmwareProgress } from '../lib';
import type { Answer, Command } from './firmware-devices';
import { sizeSocketBuffers } from '../lib/transport/datagram';

interface Settings {
  size: number;
  devices: number;
  campaign: number;
  seconds: number;
}

const USAGE = `usage: node dist/bench/firmware.js [options]
  --size <bytes>     the package (default 1048576)
  --devices <n>      devices updated at once for the push and pull rates (default 10)
  --campaign <n>     devices of the pull campaign whose memory is measured (default 100)
  --seconds <s>      duration of the raw UDP echo (default 3)`;

function readSettings(argv: readonly string[]): Settings {
  const settings: Settings = { size: 1024 * 1024, devices: 10, campaign: 100, seconds: 3 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const match = /^--(size|devices|campaign|seconds)(?:=(.*))?$/.exec(argv[i]!);
    if (!match) throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    const name = match[1] as keyof Settings;
    const value = Number(match[2] ?? argv[++i]);
    if (!(value > 0)) throw new Error(`--${name} needs a positive number\n${USAGE}`);
    settings[name] = name === 'seconds' ? value : Math.ceil(value);
  }
  return settings;
}

/** the Block1 size of a push; the devices ask for the same Block2 size when they pull */
const BLOCK = 1024;
/** a block's datagram: the payload and about 20 bytes of CoAP header, token and options */
const DATAGRAM = BLOCK + 20;
/** the devices: no simulated delays, so the transfer is what is measured */
const FIRMWARE = { downloadTime: 0, updateTime: 10 };

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** live memory: the V8 heap and the Buffers outside it (a package is a Buffer), after two GCs */
function liveMemory(): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const rate = (bytes: number, ms: number) => `${((bytes / 1024 / 1024) * (1000 / ms)).toFixed(2)} MB/s`;

/** The child process of devices: one command at a time. */
class Devices {
  private constructor(private readonly child: ChildProcess) {}

  static start(): Promise<Devices> {
    const child = fork(path.join(__dirname, 'firmware-devices.js'), { stdio: 'inherit' });
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(new Devices(child)));
      child.once('exit', (code) => reject(new Error(`the device process exited with ${code}`)));
    });
  }

  run<T extends Answer['type']>(command: Command, type: T): Promise<Extract<Answer, { type: T }>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the device process exited with ${code} during ${command.cmd}`));
      this.child.once('message', (answer: Answer) => {
        this.child.off('exit', onExit);
        if (answer.type === type) resolve(answer as Extract<Answer, { type: T }>);
        else reject(new Error(`the device process failed in ${command.cmd}: ${answer.type === 'failed' ? answer.error : answer.type}`));
      });
      this.child.once('exit', onExit);
      this.child.send(command);
    });
  }

  stop(): Promise<number | null> {
    return new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.disconnect();
    });
  }
}

interface Campaign {
  outcomes: FirmwareOutcome[];
  /** ms from the start until the last device was Downloaded */
  downloadMs: number;
  /** ms of the whole campaign (Execute, reboot, checks included) */
  totalMs: number;
  /** CPU of this process over the campaign, % of one core */
  cpu: number;
  /** onProgress calls during the download */
  progressCalls: number;
  /** live memory: before the package was made, the highest sample during the campaign, after it */
  memory?: { before: number; peak: number; after: number };
}

/**
 * `fleet`: the library's updateFirmwareFleet (one published package for every device);
 * `each`: updateFirmware per device, all started at once (each publishes the same Buffer under a
 * name of its own), as the lwm2m-firmware node runs a campaign.
 */
type Style = 'fleet' | 'each';

async function campaign(server: LwM2MServer, endpoints: string[], size: number, delivery: 'push' | 'pull', style: Style, measureMemory = false): Promise<Campaign> {
  const before = measureMemory ? liveMemory() : 0;
  const pkg = randomBytes(size);
  let peak = measureMemory ? liveMemory() : 0;
  // a GC'd sample costs tens of ms with a big heap: twice a second, so the sampling does not make the campaign
  const sampler = measureMemory ? setInterval(() => (peak = Math.max(peak, liveMemory())), 500) : undefined;
  const began = performance.now();
  const cpuStart = process.cpuUsage();
  let downloaded = began;
  let progressCalls = 0;
  const options = {
    delivery,
    blockSize: BLOCK,
    onProgress: (progress: FirmwareProgress) => {
      if (progress.phase === 'downloading') progressCalls++;
      if (progress.phase === 'downloaded') downloaded = performance.now();
    },
  };
  try {
    const outcomes =
      style === 'fleet'
        ? await server.updateFirmwareFleet(endpoints, { package: pkg }, { ...options, concurrency: endpoints.length })
        : await Promise.all(endpoints.map((endpoint) => server.updateFirmware(endpoint, { package: pkg }, options)));
    const totalMs = performance.now() - began;
    const used = process.cpuUsage(cpuStart);
    const result: Campaign = { outcomes, downloadMs: downloaded - began, totalMs, cpu: ((used.user + used.system) / 1000 / totalMs) * 100, progressCalls };
    if (measureMemory) {
      clearInterval(sampler);
      peak = Math.max(peak, liveMemory());
      result.memory = { before, peak, after: 0 };
    }
    return result;
  } finally {
    clearInterval(sampler);
  }
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2));
  const { size, devices: count, campaign: campaignSize, seconds } = settings;
  console.log(`bench/firmware: a ${mb(size)} package, ${count} devices at once, a ${campaignSize}-device pull campaign for memory; blocks of ${BLOCK} bytes; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}`);
  const failures: string[] = [];
  const check = (name: string, result: Campaign) => {
    const failed = result.outcomes.filter((outcome) => !outcome.success);
    if (failed.length > 0) failures.push(`${name}: ${failed.length} of ${result.outcomes.length} devices failed, the first: ${failed[0]!.message}`);
  };
  const devices = await Devices.start();

  // --- baseline: raw UDP lock-step echo between the two processes ---
  const echo = createSocket('udp4');
  echo.on('message', (message, peer) => echo.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  // the baseline's socket gets the buffer the server's sockets get, or a burst costs it datagrams ours would not lose
  sizeSocketBuffers(echo);
  const raw = await devices.run({ cmd: 'echo', port: echo.address().port, loops: count, size: DATAGRAM, seconds }, 'echo');
  await new Promise<void>((resolve) => echo.close(resolve));
  const rawRate = (raw.rounds * BLOCK) / raw.elapsedMs; // payload bytes per ms

  // --- push and pull to the same devices ---
  const server = new LwM2MServer({ port: 0, address: '127.0.0.1', requestTimeout: 30_000 });
  // each update listens to the server's events while it runs: many at once pass Node's default of 10
  server.setMaxListeners(count + 10);
  const { port } = await server.listen();
  const uri = `coap://127.0.0.1:${port}`;
  await devices.run({ cmd: 'devices', server: uri, prefix: 'bench', count, firmware: FIRMWARE }, 'devices');
  const endpoints = Array.from({ length: count }, (_, index) => `bench-${index + 1}`);
  const rates: Array<[string, Campaign]> = [];
  for (const [name, delivery, style] of [
    [`push (Block1), updateFirmwareFleet`, 'push', 'fleet'],
    [`pull (Block2 from the server), updateFirmwareFleet`, 'pull', 'fleet'],
    [`pull, updateFirmware per device (as the node runs)`, 'pull', 'each'],
  ] as const) {
    const result = await campaign(server, endpoints, size, delivery, style);
    check(name, result);
    rates.push([name, result]);
  }
  await devices.run({ cmd: 'stop' }, 'stopped');
  await server.close();

  // --- memory during a pull campaign to many devices at once, both ways, each on a fresh server
  // (the server's bounded caches, filled by one campaign, would hide the next one's growth) ---
  // with `--devices` too: growth that does not scale with the devices is not per device
  const memory: Array<[string, number, Campaign]> = [];
  for (const [name, style] of [
    ['updateFirmwareFleet', 'fleet'],
    ['updateFirmware per device (as the node runs)', 'each'],
  ] as const) {
    for (const devicesAtOnce of [count, campaignSize]) {
      const fresh = new LwM2MServer({ port: 0, address: '127.0.0.1', requestTimeout: 30_000 });
      fresh.setMaxListeners(devicesAtOnce + 10);
      const { port: freshPort } = await fresh.listen();
      await devices.run({ cmd: 'devices', server: `coap://127.0.0.1:${freshPort}`, prefix: 'fleet', count: devicesAtOnce, firmware: FIRMWARE }, 'devices');
      const fleet = Array.from({ length: devicesAtOnce }, (_, index) => `fleet-${index + 1}`);
      const result = await campaign(fresh, fleet, size, 'pull', style, true);
      result.memory!.after = liveMemory();
      check(`the ${devicesAtOnce}-device pull campaign (${name})`, result);
      memory.push([name, devicesAtOnce, result]);
      await devices.run({ cmd: 'stop' }, 'stopped');
      await fresh.close();
    }
  }
  const childExit = await devices.stop();
  if (childExit !== 0) failures.push(`the device process ended with ${childExit}`);

  // --- report ---
  const blocks = Math.ceil(size / BLOCK);
  const table = [
    ['raw UDP echo, lock-step (baseline)', rate(raw.rounds * BLOCK, raw.elapsedMs), '', `${count} loops of ${DATAGRAM}-byte datagrams for ${seconds} s${raw.lost ? `, ${raw.lost} lost` : ''}`],
    ...rates.map(([name, result]) => [
      `${name}, ${count} devices at once`,
      rate(size * count, result.downloadMs),
      `${((size * count) / result.downloadMs / rawRate).toFixed(2)}× raw UDP`,
      `downloads ${(result.downloadMs / 1000).toFixed(2)} s, whole update ${(result.totalMs / 1000).toFixed(2)} s, server CPU ${result.cpu.toFixed(0)} %, ${(result.progressCalls / (blocks * count)).toFixed(1)} progress calls per block`,
    ]),
  ];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  for (const line of table) console.log(line.map((cell, column) => (column === 1 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd());
  console.log(`(bytes of package per second, ${mb(size)} × ${count} devices, until the last device is Downloaded; the echo counts ${BLOCK} payload bytes per round trip)`);
  for (const [name, devicesAtOnce, result] of memory) {
    const { before, peak, after } = result.memory!;
    const growth = peak - before;
    console.log(
      `pull campaign to ${devicesAtOnce} devices at once, ${name}: memory (heap + Buffers, after GC) ${mb(before)} before, ${mb(peak)} at the peak, ${mb(after)} after: ` +
        `growth ${mb(growth)} (the package is ${mb(size)}; a copy per device would be ${mb(size * devicesAtOnce)}); took ${(result.totalMs / 1000).toFixed(2)} s at ${result.cpu.toFixed(0)} % server CPU, ` +
        `${(result.progressCalls / (blocks * devicesAtOnce)).toFixed(1)} progress calls per block`,
    );
  }
  console.log(`(besides the package, the growth is mostly the server's deduplication cache: up to maxExchanges, 10,000, answered requests kept for EXCHANGE_LIFETIME, 247 s; a ${mb(size)} campaign to any number of devices fills it)`);
  for (const failure of failures) console.log(`FAILED: ${failure}`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
