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
  /** Stops the server and starts a new, empty one on the same port. */
  restart(): Promise<void>;
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
    let child = started;
    const stop = async (): Promise<void> => {
      await kill(child);
    };
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      stop,
      async restart() {
        await stop();
        const again = await launch(port);
        if (typeof again === 'string') assert.fail(`redis-server did not start again on port ${port}: ${again}`);
        child = again;
      },
    };
  }
  return assert.fail(`redis-server did not start: ${problem}`);
}

/** A running redis-server on `port`, or why it did not start. */
async function launch(port: number): Promise<ChildProcess | string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-redis-'));
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
    if (await answersPing(port)) return child;
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
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}
