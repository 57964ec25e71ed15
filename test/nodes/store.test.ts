/**
 * The server node's Store: a file in the user directory unless the node says otherwise (also for a
 * node saved before the setting existed), kept across a full deploy (the old node's close writes the
 * file before the new node reads it), memory only when asked, Redis with its URL checked and its
 * password in the credentials; a store that cannot be read shows on the nodes, and the server
 * starts without it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { FileStore, LwM2MServer, RedisStore } from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';
import { fullDeploy, nodeProblems } from '../helpers/flows';
import { helper, nodeRedVersion, userDir } from '../helpers/node-red';
import { freeTcpPort, freeUdpPort } from '../helpers/ports';
import { Devices, NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, until } from '../helpers/palette';
import { redisUrl, storeKind, withoutPassword } from '../../nodes/store';

type ServerNode = { server: LwM2MServer; ready: Promise<void>; failure?: Error; instance: string };

function serverNode(): ServerNode {
  return helper.getNode('srv') as ServerNode;
}

/** The store file of the base flow's server node `srv`. */
function storeFile(): string {
  return path.join(userDir(), 'lwm2m', 'registrations-srv.json');
}

/** The endpoints in the store file; none while it is missing or not (yet) valid. */
function storedEndpoints(): string[] {
  try {
    const data = JSON.parse(fs.readFileSync(storeFile(), 'utf8')) as { registrations: Array<{ endpoint: string }> };
    return data.registrations.map((record) => record.endpoint);
  } catch {
    return [];
  }
}

describe('the Store setting, without Node-RED', () => {
  it('reads a missing setting as file, takes memory, file and redis, and refuses anything else', () => {
    assert.equal(storeKind(undefined), 'file');
    assert.equal(storeKind(''), 'file');
    assert.equal(storeKind('memory'), 'memory');
    assert.equal(storeKind('redis'), 'redis');
    assert.throws(() => storeKind('disk'), /^Error: Store: "disk" is not memory, file or redis$/);
  });

  it('takes redis:// and rediss:// URLs with a host; refuses others without showing a password in them', () => {
    assert.equal(redisUrl(' redis://127.0.0.1:6379/0 '), 'redis://127.0.0.1:6379/0');
    assert.equal(redisUrl('rediss://cache.example:6380'), 'rediss://cache.example:6380');
    assert.throws(() => redisUrl(''), /Store: Redis needs a URL/);
    assert.throws(() => redisUrl('127.0.0.1:6379'), /must be redis:\/\/host:port\/db or rediss:\/\/host:port\/db, not "127\.0\.0\.1:6379"/);
    assert.throws(() => redisUrl('redis://'), /not "redis:\/\/"/);
    assert.throws(
      () => redisUrl('http://admin:hunter2@127.0.0.1:6379'),
      (error: Error) => error.message.endsWith('not "http://admin:***@127.0.0.1:6379"') && !error.message.includes('hunter2'),
    );
    assert.equal(withoutPassword('redis://:s3cret@host:6379/0'), 'redis://:***@host:6379/0');
    assert.equal(withoutPassword('redis://host:6379/0'), 'redis://host:6379/0');
  });
});

describe(`the server node's Store (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(60_000);
  const devices = new Devices();

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  it('a server node without a Store setting (saved before it existed) keeps its registrations in a file in the user directory', async () => {
    const port = await freeUdpPort();
    const flow = paletteFlow(port);
    assert.equal((flow[1] as { store?: string }).store, undefined, 'the base flow sets no store');
    await helper.load(NODES, flow);
    await serverNode().ready;
    await devices.start('sim-file', port);
    await until(() => storedEndpoints().includes('sim-file'), () => `sim-file in ${storeFile()}`);
    assert.equal(JSON.parse(fs.readFileSync(storeFile(), 'utf8')).format, 'lwm2m-registrations');
  });

  it('a full deploy keeps the registrations: the old node writes the file as it closes, the new one reads it, the device is read without registering again', async () => {
    const port = await freeUdpPort();
    const flow = paletteFlow(port, [], { store: 'file' });
    await helper.load(NODES, flow);
    const before = serverNode();
    await before.ready;
    const device = await devices.start('sim-kept', port, { lifetime: 600 });
    let registers = 0;
    device.on('registered', () => registers++);
    const id = before.server.registration('sim-kept')!.id;
    assert.equal(device.location, `rd/${id}`);

    // when each store closes and loads, and whether the file holds the device as it loads
    const order: string[] = [];
    const { load, close } = FileStore.prototype;
    FileStore.prototype.close = async function (this: FileStore) {
      await close.call(this);
      order.push('closed');
    };
    FileStore.prototype.load = function (this: FileStore) {
      const text = fs.existsSync(this.file) ? fs.readFileSync(this.file, 'utf8') : '';
      order.push(`load: the file ${text.includes('"sim-kept"') ? 'has' : 'lacks'} sim-kept`);
      return load.call(this);
    };
    try {
      await fullDeploy(helper, flow);
    } finally {
      FileStore.prototype.close = close;
      FileStore.prototype.load = load;
    }
    const after = serverNode();
    assert.notEqual(after, before, 'a full deploy makes a new server node');
    await after.ready;
    assert.deepEqual(order, ['closed', 'load: the file has sim-kept'], 'the old store closed (and flushed) before the new one loaded');
    assert.equal(after.server.registration('sim-kept')?.id, id, 'the same registration, from the file');

    const read = nextMessage('readOut');
    node('read').receive({ endpoint: 'sim-kept' });
    assert.equal((await read).payload, 21.5, 'the restored registration reaches the device');
    assert.equal(registers, 0, 'the device did not register again');
  });

  it('memory only (set explicitly): nothing is written to the user directory, and a full deploy forgets the devices', async () => {
    const port = await freeUdpPort();
    const flow = paletteFlow(port, [], { store: 'memory' });
    await helper.load(NODES, flow);
    await serverNode().ready;
    const registered = messageWhere('out', (msg) => msg.endpoint === 'sim-mem');
    await devices.start('sim-mem', port, { lifetime: 600 });
    await registered;
    await fullDeploy(helper, flow);
    await serverNode().ready;
    assert.deepEqual(serverNode().server.registrations(), []);
    assert.equal(fs.existsSync(path.join(userDir(), 'lwm2m')), false, 'no store folder in the user directory');
  });

  it('a Redis URL that is not redis:// or rediss:// stops the server: an error naming the setting (without the password in it), status "bad settings"', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { store: 'redis', redisUrl: 'http://admin:hunter2@127.0.0.1:6379' }));
    await assert.rejects(serverNode().ready, /Store: the Redis URL must be/);
    const status = await statusOf('reg', (status) => status.text === 'bad settings');
    assert.deepEqual({ fill: status.fill, shape: status.shape }, { fill: 'red', shape: 'ring' });
    const errors = nodeProblems(helper).filter((entry) => entry.id === 'srv');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.msg, 'Store: the Redis URL must be redis://host:port/db or rediss://host:port/db, not "http://admin:***@127.0.0.1:6379"');
    const caught = nextMessage('caught');
    node('read').receive({ endpoint: 'sim-1' });
    assert.match(String(((await caught).error as { message: string }).message), /not running: Store: the Redis URL/);
  });

  it('a store file that cannot be read: the server listens and starts without it, warns, and its nodes show "store: …" in yellow', async () => {
    fs.mkdirSync(path.dirname(storeFile()), { recursive: true });
    fs.writeFileSync(storeFile(), '{"format":"lwm2m-registrations","version":2,"registrations":[');
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port));
    await serverNode().ready;
    const status = await statusOf('reg', (status) => status.text?.startsWith('store:') === true);
    assert.equal(status.fill, 'yellow');
    assert.match(String(status.text), /^store: not valid JSON/);
    assert.ok(String(status.text).length <= 'store: '.length + 48, status.text);
    const warnings = nodeProblems(helper).filter((entry) => entry.id === 'srv');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]!.msg), /^Registration store .*registrations-srv\.json: not valid JSON/);
    // devices still register, and the store is written again (the invalid file kept beside it)
    const registered = messageWhere('out', (msg) => msg.endpoint === 'sim-after');
    await devices.start('sim-after', port);
    await registered;
    await until(() => storedEndpoints().includes('sim-after'), 'the store written again');
    assert.ok(fs.existsSync(`${storeFile()}.corrupt`));
  });

  it('the Instance setting names this Node-RED; empty, it is the host name and process id', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { instance: ' edge-1 ' }));
    assert.equal(serverNode().instance, 'edge-1');
    await helper.unload();
    await helper.load(NODES, paletteFlow(port));
    assert.match(serverNode().instance, new RegExp(`-${process.pid}$`));
  });

  it('Redis down at start: the nodes show "store: …" in yellow while the server serves devices, and turn green once Redis is up and read', async () => {
    const redisPort = await freeTcpPort();
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { store: 'redis', redisUrl: `redis://127.0.0.1:${redisPort}/0`, redisPrefix: `late-${process.pid}:`, instance: 'late' }));
    await serverNode().ready;
    const down = await statusOf('reg', (status) => status.text?.startsWith('store:') === true);
    assert.equal(down.fill, 'yellow');
    assert.match(String(down.text), /^store: cannot reach Redis/);
    await devices.start('sim-early', port, { lifetime: 600 });
    const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const registration = serverNode().server.registration('sim-early')!;
      assert.equal(registration.instance, 'late');
      await until(() => (serverNode() as ServerNode & { storeFailure?: Error }).storeFailure === undefined, 'the store read once Redis is up', 30_000);
      // what registered while Redis was down is written once it is up
      const check = new Redis(`redis://127.0.0.1:${redisPort}/0`);
      try {
        const deadline = Date.now() + 30_000;
        while ((await check.hexists(`late-${process.pid}:registrations`, registration.id)) === 0) {
          assert.ok(Date.now() < deadline, 'the registration was not written to Redis within 30 s');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        check.disconnect();
      }
    } finally {
      const exited = new Promise((resolve) => redis.once('exit', resolve));
      redis.kill();
      await exited;
    }
  });

  describe('in Redis (a real redis-server)', () => {
    let redis: ChildProcess | undefined;
    let redisPort = 0;
    const password = 'node-test-secret';

    before(async function () {
      redisPort = await freeTcpPort();
      redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', password], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      redis.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await until(() => output.includes('Ready to accept connections'), () => `redis-server to start: ${output}`, 30_000);
    });

    after(async () => {
      if (!redis || redis.exitCode !== null) return;
      const exited = new Promise((resolve) => redis!.once('exit', resolve));
      redis.kill();
      await exited;
    });

    it('a full deploy keeps the registrations in Redis; the password is a credential, not in the flow', async () => {
      const port = await freeUdpPort();
      const flow = paletteFlow(port, [], { store: 'redis', redisUrl: `redis://127.0.0.1:${redisPort}/0`, redisPrefix: `lwm2m-test-${process.pid}:` });
      const credentials = { srv: { redisPassword: password } };
      assert.doesNotMatch(JSON.stringify(flow), new RegExp(password));
      await helper.load(NODES, flow, credentials);
      const failure = await serverNode().ready.then(() => undefined, (error: Error) => error);
      assert.equal(failure, undefined);
      const device = await devices.start('sim-redis', port, { lifetime: 600 });
      const id = serverNode().server.registration('sim-redis')!.id;
      let registers = 0;
      device.on('registered', () => registers++);
      await fullDeploy(helper, flow, credentials);
      await serverNode().ready;
      await until(() => serverNode().server.registration('sim-redis')?.id === id, 'the registration back from Redis');
      const read = nextMessage('readOut');
      node('read').receive({ endpoint: 'sim-redis' });
      assert.equal((await read).payload, 21.5);
      assert.equal(registers, 0, 'the device did not register again');
    });

    it('beside another instance sharing the Redis: its devices count here, their events come out there only, and the flow reads them through it', async () => {
      const port = await freeUdpPort();
      const prefix = `lwm2m-pair-${process.pid}:`;
      const flow = paletteFlow(port, [], { store: 'redis', redisUrl: `redis://127.0.0.1:${redisPort}/0`, redisPrefix: prefix, instance: 'node-red' });
      await helper.load(NODES, flow, { srv: { redisPassword: password } });
      await serverNode().ready;
      const other = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new RedisStore({ url: `redis://127.0.0.1:${redisPort}/0`, password, prefix }), instance: 'other' });
      try {
        await other.listen();
        const events: unknown[] = [];
        node('out').on('input', (msg) => events.push(msg.event));
        const counted = statusOf('reg', (status) => status.text === '1 device');
        await devices.start('sim-elsewhere', other.address().port, { lifetime: 600 });
        await counted;
        assert.equal(serverNode().server.registration('sim-elsewhere')?.instance, 'other');
        const read = nextMessage('readOut');
        node('read').receive({ endpoint: 'sim-elsewhere' });
        assert.equal((await read).payload, 21.5);
        const listed = nextMessage('out');
        node('reg').receive({});
        assert.deepEqual(((await listed).payload as Array<{ endpoint: string; instance: string }>).map((entry) => [entry.endpoint, entry.instance]), [['sim-elsewhere', 'other']]);
        assert.deepEqual(events, ['list'], 'no register event here: the other instance emitted it');
      } finally {
        await devices.stopAll();
        await other.close();
      }
    });

    it('auto-observe at deploy observes the devices that talk to this Node-RED, not those of another instance (which observes its own)', async () => {
      const port = await freeUdpPort();
      const prefix = `lwm2m-auto-${process.pid}:`;
      const url = `redis://127.0.0.1:${redisPort}/0`;
      const other = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new RedisStore({ url, password, prefix }), instance: 'other' });
      // this Node-RED's instance before the deploy: its device's registration waits in Redis
      const before = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new RedisStore({ url, password, prefix }), instance: 'node-red' });
      try {
        await other.listen();
        await before.listen();
        await devices.start('sim-theirs', other.address().port, { lifetime: 600 });
        await devices.start('sim-ours', before.address().port, { lifetime: 600 });
        await before.close();
        const auto = { id: 'auto', type: 'lwm2m-observe', server: 'srv', autoObserve: true, endpoint: 'sim-*', path: '/3303/0/5700', wires: [[]] };
        await helper.load(NODES, paletteFlow(port, [auto], { store: 'redis', redisUrl: url, redisPrefix: prefix, instance: 'node-red' }), { srv: { redisPassword: password } });
        await serverNode().ready;
        const server = serverNode().server;
        assert.deepEqual(server.registrations().map((registration) => [registration.endpoint, registration.instance]).sort(), [['sim-ours', 'node-red'], ['sim-theirs', 'other']]);
        await until(() => server.observations('sim-ours').length === 1, 'sim-ours observed');
        await new Promise((resolve) => setTimeout(resolve, 500)); // a forwarded Observe of sim-theirs would be done by now
        assert.deepEqual(server.observations('sim-theirs'), []);
      } finally {
        await devices.stopAll();
        await other.close();
        await before.close();
      }
    });
  });
});
