/**
 * The deployment example of several instances (examples/cluster): start.sh runs Redis, nginx as
 * the UDP balancer and two Node-RED instances whose LwM2M servers share the Redis store. A device
 * of the library's client registers through nginx; then what a user of the cluster relies on:
 * both instances know it, either reads it, and when the instance it talks through stops, its next
 * Update through nginx carries on with the other one.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { LwM2MClient } from '../../lib';
import { INSTANCES, PROCESS_NAMES, get, logs, processRuns, startCluster, stopCluster, type Cluster, type InstanceName } from '../helpers/cluster';
import { until } from '../helpers/wait';

const TEMPERATURE = '/3303/0/5700';

/** A registration as the flow's GET /devices lists it, with the last registration event this instance emitted for it. */
interface ListedDevice {
  endpoint: string;
  /** the instance the device talks to */
  instance?: string;
  lastEventHere: { event: string } | null;
}

describe('examples/cluster: two Node-RED instances behind nginx, sharing Redis', function () {
  this.timeout(600_000);
  let cluster: Cluster | undefined;
  let device: LwM2MClient | undefined;
  const endpoint = `cluster-device-${process.pid}`;
  let temperature = 21.5;
  const seen = { registered: 0, updated: 0, reregistering: 0 };
  /** the instance the device's messages go through (nginx's choice) */
  let holder: InstanceName | undefined;
  const other = (instance: InstanceName): InstanceName => (instance === 'a' ? 'b' : 'a');

  const running = (): Cluster => cluster ?? assert.fail('the cluster did not start');
  const holding = (): InstanceName => holder ?? assert.fail('no instance was found holding the device');
  const withLogs = (message: string): string => `${message}\n${cluster ? logs(cluster.dir) : ''}`;

  /** The device as an instance lists it, if it does. */
  async function listed(instance: InstanceName): Promise<ListedDevice | undefined> {
    const { status, body } = await get(running(), instance, '/devices');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.instance, instance, 'the instance answering is the one asked');
    return (body.devices as ListedDevice[]).find((entry) => entry.endpoint === endpoint);
  }

  /** Resolves once `check` holds, asking one request at a time; fails naming `what` (with the logs) after 120 s. */
  async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(withLogs(`timed out waiting for ${what}`));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Reads the temperature through an instance's GET /read. */
  async function readThrough(instance: InstanceName) {
    return get(running(), instance, `/read?ep=${encodeURIComponent(endpoint)}&path=${encodeURIComponent(TEMPERATURE)}`);
  }

  before(async function () {
    cluster = await startCluster();
    device = new LwM2MClient({
      endpoint,
      server: `coap://127.0.0.1:${cluster.coapPort}`,
      localAddress: '127.0.0.1',
      // no Update of its own during the test: each one is sent by the test
      lifetime: 3600,
      objects: { 3303: { 0: { 5700: temperature } } },
    });
    for (const event of ['registered', 'updated', 'reregistering'] as const) device.on(event, () => seen[event]++);
    device.on('error', () => undefined);
    await device.start();
  });

  after(async function () {
    await device?.stop({ deregister: false });
    await stopCluster(cluster);
  });

  it('starts Redis, nginx and two Node-RED instances, each with the palette and its LwM2M server listening on its own port', async function () {
    const { instanceCoapPorts } = running();
    for (const name of PROCESS_NAMES) assert.ok(processRuns(running().pid(name)), `${name} runs`);
    for (const instance of INSTANCES) {
      const { status, body } = await get(running(), instance, '/lwm2m/servers');
      assert.equal(status, 200);
      const servers = body as unknown as Array<{ listening: boolean; port: number }>;
      assert.equal(servers.length, 1, JSON.stringify(servers));
      assert.deepEqual({ listening: servers[0]!.listening, port: servers[0]!.port }, { listening: true, port: instanceCoapPorts[instance] });
    }
  });

  it('a device registering through nginx reaches one instance, whose register-in emits the event', async function () {
    assert.equal(seen.registered, 1);
    await eventually(async () => {
      for (const instance of INSTANCES) if ((await listed(instance))?.lastEventHere?.event === 'register') holder = instance;
      return holder !== undefined;
    }, `an instance emitting the register event of ${endpoint}`);
  });

  it("the device sticks to that instance: nginx takes its Update there", async function () {
    const updates = seen.updated;
    await device!.update();
    await until(() => seen.updated > updates, () => withLogs('the Update answered'), 120_000);
    assert.equal(seen.reregistering, 0, 'the device did not have to register again');
    assert.equal((await listed(holding()))?.lastEventHere?.event, 'update', 'the instance holding the device received its Update');
  });

  it('reads the device through the instance it talks through', async function () {
    const { status, body } = await readThrough(holding());
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(body, { instance: holding(), endpoint, path: TEMPERATURE, value: temperature });
  });

  it('both instances know the registration (shared through Redis); the other emitted no event of its own', async function () {
    const elsewhere = other(holding());
    await eventually(async () => (await listed(elsewhere)) !== undefined, `instance ${elsewhere} listing ${endpoint}`);
    const there = await listed(elsewhere);
    assert.equal(there?.lastEventHere, null, `instance ${elsewhere} emitted no registration event for a device that talks through ${holding()}`);
    assert.equal(there?.instance, holding(), `instance ${elsewhere} knows which instance the device talks to`);
    assert.equal((await listed(holding()))?.instance, holding());
  });

  it('reads the device through the other instance too (the request travels to the instance holding it)', async function () {
    const elsewhere = other(holding());
    const { status, body } = await readThrough(elsewhere);
    assert.equal(status, 200, withLogs(JSON.stringify(body)));
    assert.deepEqual(body, { instance: elsewhere, endpoint, path: TEMPERATURE, value: temperature });
  });

  it("when that instance stops, the device's next Update through nginx is answered by the other one, without registering again", async function () {
    const stopped = holding();
    process.kill(running().pid(`node-red-${stopped}`), 'SIGTERM');
    await until(() => running().output().includes(`node-red ${stopped} stopped`), () => withLogs(`start.sh seeing node-red ${stopped} stop`), 120_000);
    const updates = seen.updated;
    await device!.update();
    // nginx finds the stopped instance gone from the device's datagrams: a few retransmissions
    await until(() => seen.updated > updates || seen.reregistering > 0, () => withLogs('the Update answered'), 300_000);
    assert.equal(seen.reregistering, 0, withLogs(`the device had to register again: instance ${other(stopped)} did not take its registration over`));
    assert.equal(seen.registered, 1);
    assert.equal((await listed(other(stopped)))?.instance, other(stopped), `instance ${other(stopped)} took the device over`);
  });

  it('reads the device through the instance left', async function () {
    const left = other(holding());
    temperature = 23.25;
    device!.set(TEMPERATURE, temperature);
    const { status, body } = await readThrough(left);
    assert.equal(status, 200, withLogs(JSON.stringify(body)));
    assert.deepEqual(body, { instance: left, endpoint, path: TEMPERATURE, value: temperature });
  });

  it('start.sh stops Redis, nginx and the instance left on SIGTERM, and frees the device port', async function () {
    const { child, coapPort } = running();
    const pids = PROCESS_NAMES.filter((name) => name !== `node-red-${holding()}`).map((name) => ({ name, pid: running().pid(name) }));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 143, 'start.sh exits as stopped by SIGTERM');
    for (const { name, pid } of pids) assert.ok(!processRuns(pid), `${name} (pid ${pid}) stopped`);
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(coapPort, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  });
});
