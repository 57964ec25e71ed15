/**
 * A real Redis for tests: Debian's `redis-server`, on a free port of 127.0.0.1, keeping nothing on
 * disk (`--save '' --appendonly no`), in a temporary directory of its own. Tests that use it fail
 * (not skip) when redis-server is missing: CI installs it (.ci/run).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freeTcpPort } from './ports';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Stops the server (its data is gone: nothing is saved). */
  stop(): Promise<void>;
  /** Stops the server and starts a new one on the same port: empty, or holding what `snapshot` gave. */
  restart(snapshot?: Buffer): Promise<void>;
  /** What the server holds now, as an RDB file (SAVE) for `restart`. */
  snapshot(): Promise<Buffer>;
}

const REDIS_SERVER = '/usr/bin/redis-server';
/** servers still running: killed when the test process exits, whatever happened */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts a redis-server and resolves once it answers PING. */
export async function startRedis(): Promise<TestRedis> {
  assert.ok(fs.existsSync(REDIS_SERVER), `${REDIS_SERVER} is missing: install Debian's redis-server (apt-get install redis-server), as .ci/run does`);
  // a port that was free a moment ago may be taken before redis-server binds it: then another one
  let problem = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freeTcpPort();
    const started = await launch(port);
    if (typeof started === 'string') {
      problem = started;
      continue;
    }
    let child = started.child;
    let dir = started.dir;
    const stop = async (): Promise<void> => {
      await kill(child);
    };
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      stop,
      async restart(snapshot?: Buffer) {
        await stop();
        const again = await launch(port, snapshot);
        if (typeof again === 'string') assert.fail(`redis-server did not start again on port ${port}: ${again}`);
        ({ child, dir } = again);
      },
      async snapshot() {
        const reply = await command(port, 'SAVE');
        assert.ok(reply.startsWith('+OK'), `SAVE was answered ${reply}`);
        return fs.readFileSync(path.join(dir, 'dump.rdb'));
      },
    };
  }
  return assert.fail(`redis-server did not start: ${problem}`);
}

/** A running redis-server on `port` (loading `snapshot`, an RDB file, when given), or why it did not start. */
async function launch(port: number, snapshot?: Buffer): Promise<{ child: ChildProcess; dir: string } | string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-redis-'));
  // automatic saves are off (--save ''), but a dump.rdb in --dir is still loaded at start
  if (snapshot) fs.writeFileSync(path.join(dir, 'dump.rdb'), snapshot);
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let exited = false;
  child.once('exit', () => {
    exited = true;
    running.delete(child);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  child.once('error', (error) => {
    output += error.message;
  });
  const deadline = Date.now() + 30_000;
  while (!exited && Date.now() < deadline) {
    if (await answersPing(port)) return { child, dir };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await kill(child);
  return exited ? `exited: ${output.trim()}` : `no answer to PING within 30 s: ${output.trim()}`;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** PING over a plain TCP connection: "+PONG" means the server is ready for commands. */
async function answersPing(port: number): Promise<boolean> {
  return (await command(port, 'PING')).startsWith('+PONG');
}

/** One inline command over a plain TCP connection: its first reply line, or '' when none came. */
function command(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const finish = (answer: string): void => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(10_000, () => finish(''));
    socket.once('error', () => finish(''));
    socket.once('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply);
    });
  });
}
