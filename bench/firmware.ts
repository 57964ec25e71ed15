/**
 * Firmware update on loopback: the server (LwM2MServer) in this process, the devices (LwM2MClient
 * with the Firmware Update object, fast download and update times) in a child process
 * (bench/firmware-devices), so that the server's CPU and memory are its own. Measured in one run:
 *
 * - raw UDP echo: `--devices` lock-step loops of block-sized datagrams from the child to an echo
 *   socket here (the baseline: block-wise transfer is lock-step too, one block in flight per device);
 * - push: `--size` bytes to `--devices` devices at once (Block1 writes of /5/0/0), in bytes/s from
 *   the start of the campaign until the last device is Downloaded;
 * - pull: the same, each device fetching the package the server serves (Block2 GETs of /fw/…);
 * - memory during a pull campaign to `--campaign` devices at once: heap and Buffers (after GC)
 *   before, at the peak and after, beside the package's size and the size × devices a copy per
 *   device would take.
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
import { LwM2MServer, type FirmwareOutcome } from '../lib';
import type { Answer, Command } from './firmware-devices';

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
}

async function campaign(server: LwM2MServer, endpoints: string[], pkg: Buffer, delivery: 'push' | 'pull', onSample?: () => void): Promise<Campaign> {
  const began = performance.now();
  const cpuStart = process.cpuUsage();
  let downloaded = began;
  const sampler = onSample ? setInterval(onSample, 250) : undefined;
  try {
    const outcomes = await server.updateFirmwareFleet(endpoints, { package: pkg }, {
      delivery,
      concurrency: endpoints.length,
      blockSize: BLOCK,
      onProgress: (progress) => {
        if (progress.phase === 'downloaded') downloaded = performance.now();
      },
    });
    const totalMs = performance.now() - began;
    const used = process.cpuUsage(cpuStart);
    return { outcomes, downloadMs: downloaded - began, totalMs, cpu: ((used.user + used.system) / 1000 / totalMs) * 100 };
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
  const raw = await devices.run({ cmd: 'echo', port: echo.address().port, loops: count, size: DATAGRAM, seconds }, 'echo');
  await new Promise<void>((resolve) => echo.close(resolve));
  const rawRate = (raw.rounds * BLOCK) / raw.elapsedMs; // payload bytes per ms

  // --- push and pull to the same devices ---
  const server = new LwM2MServer({ port: 0, address: '127.0.0.1', requestTimeout: 30_000 });
  // each update listens to the server's events while it runs: a campaign of 100 at once passes Node's default of 10
  server.setMaxListeners(campaignSize + count + 10);
  const { port } = await server.listen();
  const uri = `coap://127.0.0.1:${port}`;
  await devices.run({ cmd: 'devices', server: uri, prefix: 'bench', count, firmware: FIRMWARE }, 'devices');
  const endpoints = Array.from({ length: count }, (_, index) => `bench-${index + 1}`);
  const pkg = randomBytes(size);
  const push = await campaign(server, endpoints, pkg, 'push');
  check('push', push);
  const pull = await campaign(server, endpoints, pkg, 'pull');
  check('pull', pull);
  await devices.run({ cmd: 'stop' }, 'stopped');

  // --- memory during a pull campaign to many devices at once ---
  await devices.run({ cmd: 'devices', server: uri, prefix: 'fleet', count: campaignSize, firmware: FIRMWARE }, 'devices');
  const fleet = Array.from({ length: campaignSize }, (_, index) => `fleet-${index + 1}`);
  const before = liveMemory();
  const fleetPackage = randomBytes(size);
  let peak = liveMemory();
  const pulled = await campaign(server, fleet, fleetPackage, 'pull', () => (peak = Math.max(peak, liveMemory())));
  check('the pull campaign', pulled);
  const after = liveMemory();
  await devices.run({ cmd: 'stop' }, 'stopped');
  await server.close();
  const childExit = await devices.stop();
  if (childExit !== 0) failures.push(`the device process ended with ${childExit}`);

  // --- report ---
  const total = size * count;
  const row = (name: string, result: Campaign) => {
    const bytesPerMs = total / result.downloadMs;
    return [
      name,
      rate(total, result.downloadMs),
      `${(bytesPerMs / rawRate).toFixed(2)}× raw UDP`,
      `downloads ${(result.downloadMs / 1000).toFixed(2)} s, whole update ${(result.totalMs / 1000).toFixed(2)} s, server CPU ${result.cpu.toFixed(0)} %`,
    ];
  };
  const table = [
    ['raw UDP echo, lock-step (baseline)', rate(raw.rounds * BLOCK, raw.elapsedMs), '', `${count} loops of ${DATAGRAM}-byte datagrams for ${seconds} s${raw.lost ? `, ${raw.lost} lost` : ''}`],
    row(`push (Block1), ${count} devices at once`, push),
    row(`pull (Block2 from the server), ${count} devices at once`, pull),
  ];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  for (const line of table) console.log(line.map((cell, column) => (column === 1 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd());
  console.log(`(bytes of package per second, ${mb(size)} × ${count} devices, until the last device is Downloaded; the echo counts ${BLOCK} payload bytes per round trip)`);
  const growth = peak - before;
  console.log(
    `memory (heap + Buffers, after GC) during a pull campaign to ${campaignSize} devices at once: ${mb(before)} before, ${mb(peak)} at the peak, ${mb(after)} after; ` +
      `growth ${mb(growth)} = ${(growth / size).toFixed(2)}× the package (${mb(size)}); a copy per device would be ${mb(size * campaignSize)}; ` +
      `${((growth - size) / campaignSize / 1024).toFixed(1)} KB per device besides the package; the campaign took ${(pulled.totalMs / 1000).toFixed(2)} s`,
  );
  for (const failure of failures) console.log(`FAILED: ${failure}`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
