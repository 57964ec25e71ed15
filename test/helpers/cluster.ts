/**
 * examples/cluster/start.sh as a user runs it (Redis, nginx balancing UDP over two Node-RED
 * instances), on free ports of 127.0.0.1, with its logs in a temporary directory. start.sh stops
 * what it started; whatever is left at the end (or when the test process exits) is killed: start.sh
 * with its process group, each piece (in a session of its own) by its pid file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freeTcpPort, freeUdpPort } from './ports';
import { until } from './wait';

const root = path.resolve(__dirname, '../../..');
export const START_SCRIPT = path.join(root, 'examples', 'cluster', 'start.sh');

export type InstanceName = 'a' | 'b';
export const INSTANCES: readonly InstanceName[] = ['a', 'b'];

/** The processes start.sh starts, by the names of their pid files. */
export type ProcessName = 'redis' | 'nginx' | 'node-red-a' | 'node-red-b';
export const PROCESS_NAMES: readonly ProcessName[] = ['redis', 'nginx', 'node-red-a', 'node-red-b'];

export interface Cluster {
  /** start.sh */
  child: ChildProcess;
  /** its log directory */
  dir: string;
  /** where devices connect (nginx) */
  coapPort: number;
  /** each instance's own CoAP port (behind nginx) */
  instanceCoapPorts: Record<InstanceName, number>;
  /** each instance's HTTP port (editor, admin API, the flow's endpoints) */
  httpPorts: Record<InstanceName, number>;
  /** what start.sh printed so far */
  output(): string;
  /** a process's pid, from its pid file (there while start.sh runs it) */
  pid(name: ProcessName): number;
}

/** An HTTP answer of an instance: status and JSON body. */
export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** clusters not stopped yet: killed when the test process exits */
const running = new Set<{ child: ChildProcess; dir: string }>();
process.once('exit', () => {
  for (const cluster of running) killAll(cluster);
});

/** Kills start.sh's process group and every process whose pid file is still there (start.sh removes a file once its process stopped). */
function killAll({ child, dir }: { child: ChildProcess; dir: string }): void {
  const pids = [-child.pid!];
  for (const name of PROCESS_NAMES) {
    try {
      pids.push(Number(fs.readFileSync(path.join(dir, `${name}.pid`), 'utf8').trim()));
    } catch {
      // stopped and reaped
    }
  }
  for (const pid of pids.filter((pid) => Number.isInteger(pid) && pid !== 0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** Starts the cluster on free ports and resolves once start.sh says it is ready; fails with its output if it stops first. */
export async function startCluster(): Promise<Cluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-cluster-test-'));
  const coapPort = await freeUdpPort();
  const instanceCoapPorts = { a: await freeUdpPort(), b: await freeUdpPort() };
  const httpPorts = { a: await freeTcpPort(), b: await freeTcpPort() };
  const redisPort = await freeTcpPort();
  const child = spawn('bash', [START_SCRIPT, dir], {
    env: {
      ...process.env,
      CLUSTER_COAP_PORT: String(coapPort),
      CLUSTER_A_COAP_PORT: String(instanceCoapPorts.a),
      CLUSTER_B_COAP_PORT: String(instanceCoapPorts.b),
      CLUSTER_A_HTTP_PORT: String(httpPorts.a),
      CLUSTER_B_HTTP_PORT: String(httpPorts.b),
      CLUSTER_REDIS_PORT: String(redisPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // a process group of its own: stopping it stops everything it started
    detached: true,
  });
  const handle = { child, dir };
  running.add(handle);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const cluster: Cluster = {
    child,
    dir,
    coapPort,
    instanceCoapPorts,
    httpPorts,
    output: () => output,
    pid(name) {
      const file = path.join(dir, `${name}.pid`);
      assert.ok(fs.existsSync(file), `${file} is missing: start.sh does not run ${name}\n${output}`);
      return Number(fs.readFileSync(file, 'utf8').trim());
    },
  };
  try {
    // start.sh waits for each piece (at most 120 s each) and says when all are ready
    await until(() => output.includes('LwM2M cluster ready') || child.exitCode !== null || child.signalCode !== null, 'start.sh to say the cluster is ready', 400_000);
    assert.ok(output.includes('LwM2M cluster ready'), `start.sh stopped before the cluster was ready:\n${output}\n${logs(dir)}`);
  } catch (error) {
    await stopCluster(cluster);
    throw error;
  }
  return cluster;
}

/** Whether a process runs (not gone, not a zombie). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s*Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** GET on an instance's HTTP port; the body as JSON. */
export async function get(cluster: Cluster, instance: InstanceName, route: string): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${cluster.httpPorts[instance]}${route}`, { signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    assert.fail(`instance ${instance} answered GET ${route} with ${response.status} and no JSON: ${text.slice(0, 300)}`);
  }
  return { status: response.status, body };
}

/** The logs start.sh keeps, for failure messages. */
export function logs(dir: string): string {
  const files = ['node-red-a.log', 'node-red-b.log', 'redis.log', 'nginx/error.log', 'nginx/sessions.log'];
  return files
    .filter((file) => fs.existsSync(path.join(dir, file)))
    .map((file) => `--- ${file}\n${fs.readFileSync(path.join(dir, file), 'utf8').split('\n').slice(-40).join('\n')}`)
    .join('\n');
}

/**
 * Stops start.sh with SIGTERM as a service manager would (it stops what it started), waits for it
 * to exit, then kills anything of its group still there and removes its directory.
 */
export async function stopCluster(cluster: Cluster | undefined): Promise<void> {
  if (!cluster) return;
  const { child } = cluster;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    // its own limit is 15 s per process; a wedged script is killed with its group
    const late = setTimeout(() => killAll(cluster), 90_000);
    await exited;
    clearTimeout(late);
  }
  killAll(cluster);
  for (const handle of running) if (handle.child === child) running.delete(handle);
  fs.rmSync(cluster.dir, { recursive: true, force: true });
}
