/**
 * Fleet jobs: read, write, execute and observe on every device of a pattern (`sim-*`) or a list,
 * in a real Node-RED runtime with simulated devices over loopback. One message per device on the
 * first output (a result, `msg.error` or `msg.skipped`), the summary on the second; a device that
 * fails does not stop the others, at most `concurrency` requests are in flight, a sleeping
 * queue-mode device is served when it wakes (or skipped with ttl 0), and no match is a summary of
 * zeros. A single endpoint name still gives one message, errors to Catch, and no summary.
 */
import assert from 'node:assert/strict';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, until, type Message } from '../helpers/palette';
import type { LwM2MClient } from '../../lib';
import { targetOf } from '../../nodes/settings';

type ServerNode = { ready: Promise<void>; server: { registration(endpoint: string): { awake: boolean } | undefined } };
const serverNode = () => helper.getNode('srv') as ServerNode;

interface Summary {
  ok: number;
  failed: number;
  skipped: number;
  endpoints: { ok: string[]; failed: string[]; skipped: string[] };
  errors: Record<string, { message: string; code: string; coapCode?: string }>;
}
const summaryOf = (msg: Message) => msg.payload as Summary;
const errorOf = (msg: Message) => msg.error as { message: string; code: string; coapCode?: string };

/** Every message a helper node receives, from now on. */
function collect(id: string): Message[] {
  const list: Message[] = [];
  node(id).on('input', (msg) => list.push(msg));
  return list;
}

/** A fleet node of `type` wired to devOut (per device) and sumOut (summary). */
function fleetNode(id: string, type: string, settings: Record<string, unknown>): object {
  return { id, type, server: 'srv', wires: [['devOut'], ['sumOut']], ...settings };
}
const OUTPUTS = [
  { id: 'devOut', type: 'helper' },
  { id: 'sumOut', type: 'helper' },
];

/** Per device message of a job, by endpoint, once all `count` have come. */
async function perDevice(list: Message[], count: number): Promise<Map<string, Message>> {
  await until(() => list.length >= count);
  return new Map(list.map((msg) => [String(msg.endpoint), msg]));
}

describe('the endpoint setting: one device, a pattern or a list', () => {
  it('reads a plain name as one device, text with * or commas and any array as a fleet', () => {
    assert.deepEqual(targetOf('sim-1'), { kind: 'one', endpoint: 'sim-1' });
    assert.deepEqual(targetOf(' urn:imei:490154203237518 '), { kind: 'one', endpoint: 'urn:imei:490154203237518' });
    assert.deepEqual(targetOf(42), { kind: 'one', endpoint: '42' });
    assert.deepEqual(targetOf('sim-*'), { kind: 'fleet', entries: ['sim-*'], label: 'sim-*' });
    assert.deepEqual(targetOf('*'), { kind: 'fleet', entries: ['*'], label: '*' });
    assert.deepEqual(targetOf('sim-1, sim-2 ,dev-*'), { kind: 'fleet', entries: ['sim-1', 'sim-2', 'dev-*'], label: 'sim-1, sim-2 ,dev-*' });
    assert.deepEqual(targetOf(['sim-1']), { kind: 'fleet', entries: ['sim-1'], label: 'sim-1' });
    assert.deepEqual(targetOf(['a,b', 'c']), { kind: 'fleet', entries: ['a,b', 'c'], label: 'a,b,c' }, 'an array entry is never split');
    assert.deepEqual(targetOf('["sim-1", "sim-2"]'), { kind: 'fleet', entries: ['sim-1', 'sim-2'], label: 'sim-1,sim-2' });
    assert.deepEqual(targetOf([]), { kind: 'fleet', entries: [], label: '' });
  });

  it('refuses what names no device clearly', () => {
    assert.throws(() => targetOf({ endpoint: 'sim-1' }), /endpoint must be text or an array of names, not an object/);
    assert.throws(() => targetOf('["sim-1"'), /starts with \[ but is not a JSON array of names/);
    assert.throws(() => targetOf('[1, {"a": 1}]'), /an endpoint list holds names, not \{"a":1\}/);
    assert.throws(() => targetOf([null]), /an endpoint list holds names, not null/);
  });
});

describe(`Node-RED nodes: fleet jobs on a pattern or list of devices (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(60_000);
  const devices = new Devices();

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  async function start(port: number, names: string[], options: (name: string, index: number) => Partial<Parameters<Devices['start']>[2]> = () => ({})): Promise<LwM2MClient[]> {
    return Promise.all(names.map((name, index) => devices.start(name, port, options(name, index))));
  }

  it('read sim-* gives one message per matching device as it comes and a summary on the second output; a single name still gives one message and no summary', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [fleetNode('fRead', 'lwm2m-read', { path: '/3303/0/5700' }), ...OUTPUTS]));
    await serverNode().ready;
    await start(port, ['sim-1', 'sim-2', 'sim-3', 'other-1'], (_name, index) => ({ objects: { 3303: { 0: { 5700: 20 + index } } } }));
    const perDeviceMessages = collect('devOut');
    const summaries = collect('sumOut');

    // one device, as always: the result on the first output, nothing on the second
    const single = nextMessage('devOut');
    node('fRead').receive({ endpoint: 'sim-2' });
    const one = await single;
    assert.equal(one.payload, 21);
    assert.equal(one.topic, 'sim-2/3303/0/5700');

    const progress = statusOf('fRead', (status) => /^\d\/3 done$/.test(status.text ?? ''));
    const finished = statusOf('fRead', (status) => status.text === '3 ok');
    const summary = nextMessage('sumOut');
    node('fRead').receive({ endpoint: 'sim-*', topic: 'input', payload: 'tick' });
    const result = await summary;
    assert.equal(summaries.length, 1, 'only the pattern has a summary');
    // the endpoints in the order of the target (a pattern's matches by name), not as they finished
    assert.deepEqual(summaryOf(result), { ok: 3, failed: 0, skipped: 0, endpoints: { ok: ['sim-1', 'sim-2', 'sim-3'], failed: [], skipped: [] }, errors: {} });
    assert.equal(result.endpoint, 'sim-*');
    assert.equal(result.path, '/3303/0/5700');
    assert.equal(result.topic, 'sim-*/3303/0/5700');

    // the single read's message, then the three of the pattern; other-1 does not match
    const byDevice = await perDevice(perDeviceMessages.slice(1), 3);
    assert.deepEqual([...byDevice.keys()].sort(), ['sim-1', 'sim-2', 'sim-3']);
    assert.equal(perDeviceMessages.length, 4);
    for (const [endpoint, msg] of byDevice) {
      assert.equal(msg.payload, 20 + Number(endpoint.slice(4)) - 1, `${endpoint}'s own value`);
      assert.equal(msg.topic, `${endpoint}/3303/0/5700`);
      assert.equal(msg.path, '/3303/0/5700');
      assert.equal(msg.coapCode, '2.05');
      assert.equal(msg.error, undefined);
    }
    await progress;
    assert.equal((await finished).fill, 'green');
  });

  it('write to a list (text with commas, an array in msg.endpoint): the listed devices are written, one not registered is reported on its own and not to Catch', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [
        fleetNode('fWrite', 'lwm2m-write', { endpoint: 'sim-1, sim-3,sim-absent', path: '/3303/0/5750' }),
        fleetNode('fWriteMsg', 'lwm2m-write', { path: '/3303/0/5750' }),
        ...OUTPUTS,
      ]),
    );
    await serverNode().ready;
    const [one, two, three] = await start(port, ['sim-1', 'sim-2', 'sim-3'], () => ({ objects: { 3303: { 0: { 5700: 21.5, 5750: 'unset' } } } }));
    const perDeviceMessages = collect('devOut');
    const caught = collect('caught');

    let summary = nextMessage('sumOut');
    node('fWrite').receive({ payload: 'kitchen' });
    let result = summaryOf(await summary);
    assert.equal(result.ok, 2);
    assert.equal(result.failed, 1);
    assert.equal(result.skipped, 0);
    assert.deepEqual(result.endpoints.ok, ['sim-1', 'sim-3']);
    assert.deepEqual(result.endpoints.failed, ['sim-absent']);
    assert.equal(result.errors['sim-absent']!.code, 'NOT_REGISTERED');
    assert.equal(one!.get('/3303/0/5750'), 'kitchen');
    assert.equal(two!.get('/3303/0/5750'), 'unset', 'not in the list');
    assert.equal(three!.get('/3303/0/5750'), 'kitchen');
    const byDevice = await perDevice(perDeviceMessages, 3);
    assert.equal(byDevice.get('sim-1')!.coapCode, '2.04');
    assert.equal(byDevice.get('sim-1')!.payload, 'kitchen');
    const absent = byDevice.get('sim-absent')!;
    assert.equal(errorOf(absent).code, 'NOT_REGISTERED');
    assert.match(errorOf(absent).message, /sim-absent/);
    assert.equal(absent.topic, 'sim-absent/3303/0/5750');
    const status = await statusOf('fWrite', (status) => status.text === '2 ok, 1 failed');
    assert.equal(status.fill, 'yellow');

    // an array is a list even of one name: the same messages, a summary too
    perDeviceMessages.length = 0;
    summary = nextMessage('sumOut');
    node('fWriteMsg').receive({ endpoint: ['sim-2'], payload: 'hall' });
    result = summaryOf(await summary);
    assert.deepEqual(result.endpoints.ok, ['sim-2']);
    assert.equal(two!.get('/3303/0/5750'), 'hall');
    assert.equal((await perDevice(perDeviceMessages, 1)).get('sim-2')!.coapCode, '2.04');

    // per-device failures never reached Catch: the first thing it sees is this single write's error
    const sentinel = nextMessage('caught');
    node('fWriteMsg').receive({ endpoint: 'sim-gone', payload: 'x' });
    assert.equal(errorOf(await sentinel).code, 'NOT_REGISTERED');
    assert.equal(caught.length, 1);
  });

  it('execute on a pattern runs on every matching device', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [fleetNode('fExec', 'lwm2m-execute', { endpoint: 'sim-*', path: '/3/0/12' }), ...OUTPUTS]));
    await serverNode().ready;
    const fleet = await start(port, ['sim-1', 'sim-2', 'sim-3', 'dev-1']);
    const executed: string[] = [];
    fleet.forEach((device, index) => device.on('execute', ({ path }: { path: string }) => executed.push(`${['sim-1', 'sim-2', 'sim-3', 'dev-1'][index]}${path}`)));
    const perDeviceMessages = collect('devOut');

    const summary = nextMessage('sumOut');
    node('fExec').receive({ payload: 1 });
    const result = summaryOf(await summary);
    assert.equal(result.ok, 3);
    assert.deepEqual(executed.sort(), ['sim-1/3/0/12', 'sim-2/3/0/12', 'sim-3/3/0/12']);
    const byDevice = await perDevice(perDeviceMessages, 3);
    for (const msg of byDevice.values()) assert.equal(msg.coapCode, '2.04');
  });

  it('observe a pattern starts one observation per device; notifications come from every device; cancel with the pattern ends them', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [fleetNode('fObs', 'lwm2m-observe', { path: '/3303/0/5700' }), ...OUTPUTS]));
    await serverNode().ready;
    const fleet = await start(port, ['sim-1', 'sim-2', 'sim-3']);
    const perDeviceMessages = collect('devOut');

    const summary = nextMessage('sumOut');
    const observing = statusOf('fObs', (status) => status.text === 'observing 3');
    node('fObs').receive({ endpoint: 'sim-*' });
    assert.equal(summaryOf(await summary).ok, 3);
    const started = await perDevice(perDeviceMessages, 3);
    for (const [endpoint, msg] of started) {
      assert.equal(msg.payload, 21.5);
      assert.equal(typeof msg.observation, 'string', `${endpoint}'s observation`);
    }
    assert.equal((await observing).fill, 'green');

    const notified = new Set<string>();
    const everyDevice = new Promise<void>((resolve) =>
      node('devOut').on('input', (msg) => {
        if (msg.sequence === undefined || msg.payload !== 30) return;
        notified.add(String(msg.endpoint));
        if (notified.size === 3) resolve();
      }),
    );
    fleet.forEach((device) => device.set('/3303/0/5700', 30));
    await everyDevice;
    assert.deepEqual([...notified].sort(), ['sim-1', 'sim-2', 'sim-3']);

    const cancelled = messageWhere('devOut', (msg) => msg.action === 'cancel');
    node('fObs').receive({ endpoint: 'sim-*', action: 'cancel' });
    assert.deepEqual([...((await cancelled).payload as string[])].sort(), [...started.values()].map((msg) => String(msg.observation)).sort());
  });

  it('a device that lacks the path and one that is gone (timeout) are reported per device while the others succeed', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [fleetNode('fRead', 'lwm2m-read', { endpoint: 'sim-*', path: '/3303/0/5700' }), ...OUTPUTS], { requestTimeout: 1 }));
    await serverNode().ready;
    await start(port, ['sim-1', 'sim-2']);
    await devices.start('sim-3', port, { objects: {} });
    const gone = await devices.start('sim-4', port);
    // stopped without De-register: still registered, but nobody answers
    await gone.stop({ deregister: false });
    devices.forget(gone);
    const perDeviceMessages = collect('devOut');

    const summary = nextMessage('sumOut');
    node('fRead').receive({ payload: 'tick' });
    const result = summaryOf(await summary);
    assert.deepEqual(result.endpoints.ok, ['sim-1', 'sim-2']);
    assert.deepEqual(result.endpoints.failed, ['sim-3', 'sim-4']);
    assert.equal(result.failed, 2);
    assert.deepEqual({ code: result.errors['sim-3']!.code, coapCode: result.errors['sim-3']!.coapCode }, { code: 'NOT_FOUND', coapCode: '4.04' });
    assert.equal(result.errors['sim-4']!.code, 'TIMEOUT');

    const byDevice = await perDevice(perDeviceMessages, 4);
    assert.equal(byDevice.get('sim-1')!.payload, 21.5);
    assert.equal(byDevice.get('sim-1')!.error, undefined);
    assert.equal(errorOf(byDevice.get('sim-3')!).code, 'NOT_FOUND');
    assert.equal(byDevice.get('sim-3')!.coapCode, '4.04');
    assert.equal(byDevice.get('sim-3')!.payload, undefined, "the input's payload is no result");
    assert.equal(byDevice.get('sim-3')!.topic, 'sim-3/3303/0/5700');
    assert.equal(errorOf(byDevice.get('sim-4')!).code, 'TIMEOUT');
    assert.equal((await statusOf('fRead', (status) => status.text === '2 ok, 2 failed')).fill, 'yellow');
  });

  it("at most the node's concurrency (else msg.concurrency, else 5) requests are in flight, and all of them are used", async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [fleetNode('fRead', 'lwm2m-read', { path: '/3303/0/5700' }), fleetNode('fRead3', 'lwm2m-read', { path: '/3303/0/5700', concurrency: '3' }), ...OUTPUTS], { requestTimeout: 10 }),
    );
    await serverNode().ready;
    let limit = 2;
    let inFlight = 0;
    let most = 0;
    let opened = false;
    // each read is held until `limit` are in flight at once, then 100 ms more: reads beyond the
    // limit, were they sent, would arrive meanwhile and show in `most`
    const read = async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      if (inFlight >= limit) opened = true;
      await until(() => opened);
      await new Promise((resolve) => setTimeout(resolve, 100));
      inFlight--;
      return 21.5;
    };
    const names = ['sim-1', 'sim-2', 'sim-3', 'sim-4', 'sim-5', 'sim-6', 'sim-7'];
    await start(port, names, () => ({ objects: { 3303: { 0: { 5700: { read } } } } }));

    let summary = nextMessage('sumOut');
    node('fRead').receive({ endpoint: 'sim-*', concurrency: 2 });
    assert.equal(summaryOf(await summary).ok, 7);
    assert.equal(most, 2);

    limit = 5;
    most = 0;
    opened = false;
    summary = nextMessage('sumOut');
    node('fRead').receive({ endpoint: 'sim-*' });
    assert.equal(summaryOf(await summary).ok, 7);
    assert.equal(most, 5);

    // the node's own setting wins over the message's
    limit = 3;
    most = 0;
    opened = false;
    summary = nextMessage('sumOut');
    node('fRead3').receive({ endpoint: 'sim-*', concurrency: 1 });
    assert.equal(summaryOf(await summary).ok, 7);
    assert.equal(most, 3);
  });

  it('a sleeping queue-mode device is served when it wakes; with ttl 0 it is skipped; for one device the ttl is the queue\'s; a bad concurrency is an error', async () => {
    const port = await freeUdpPort();
    await helper.load(
      NODES,
      paletteFlow(port, [fleetNode('fRead', 'lwm2m-read', { endpoint: 'q-*', path: '/3303/0/5700' }), fleetNode('fReadAny', 'lwm2m-read', { path: '/3303/0/5700' }), ...OUTPUTS], {
        awakeTime: '0.3',
      }),
    );
    await serverNode().ready;
    const sleeper = await devices.start('q-1', port, { binding: 'UQ', lifetime: 60, queueQuietTime: 60_000 });
    await devices.start('q-2', port);
    await until(() => serverNode().server.registration('q-1')?.awake === false);
    const perDeviceMessages = collect('devOut');

    // one device: the ttl is how long the server's queue keeps the request, then an error for Catch
    const timedOut = nextMessage('caught');
    node('fReadAny').receive({ endpoint: 'q-1', ttl: 1 });
    const timeout = errorOf(await timedOut);
    assert.equal(timeout.code, 'TIMEOUT');
    assert.match(timeout.message, /did not wake up within 1 s/);
    assert.equal(perDeviceMessages.length, 0);

    // ttl 0: not waited for
    let summary = nextMessage('sumOut');
    node('fRead').receive({ ttl: 0, payload: 'tick' });
    let result = summaryOf(await summary);
    assert.deepEqual({ ok: result.endpoints.ok, skipped: result.endpoints.skipped, failed: result.failed }, { ok: ['q-2'], skipped: ['q-1'], failed: 0 });
    let byDevice = await perDevice(perDeviceMessages, 2);
    assert.equal((byDevice.get('q-1')!.skipped as { reason: string }).reason, 'asleep');
    assert.equal(byDevice.get('q-1')!.error, undefined);
    assert.equal(byDevice.get('q-1')!.payload, undefined);
    assert.equal((await statusOf('fRead', (status) => status.text === '1 ok, 1 skipped')).fill, 'yellow');

    // the default ttl (60 s): q-2 answers at once, q-1 when it is heard from again
    perDeviceMessages.length = 0;
    summary = nextMessage('sumOut');
    const awakeAnswered = messageWhere('devOut', (msg) => msg.endpoint === 'q-2');
    node('fRead').receive({});
    assert.equal((await awakeAnswered).payload, 21.5);
    assert.equal(serverNode().server.registration('q-1')?.awake, false, 'still asleep when q-2 answered');
    await sleeper.update();
    result = summaryOf(await summary);
    assert.deepEqual(result.endpoints.ok, ['q-1', 'q-2']);
    byDevice = await perDevice(perDeviceMessages, 2);
    assert.equal(byDevice.get('q-1')!.payload, 21.5);
    assert.equal(byDevice.get('q-1')!.skipped, undefined);

    // a concurrency that is not a number is bad input: an error to Catch, nothing sent
    const caught = nextMessage('caught');
    node('fRead').receive({ concurrency: 'many' });
    assert.match(errorOf(await caught).message, /concurrency must be a number of at least 1/);
  });

  it('no device matching the pattern (or an empty list) gives a summary of zeros and a warning status, not an error', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [fleetNode('fRead', 'lwm2m-read', { path: '/3303/0/5700' }), ...OUTPUTS]));
    await serverNode().ready;
    await devices.start('sim-1', port);
    const caught = collect('caught');
    const none = { ok: 0, failed: 0, skipped: 0, endpoints: { ok: [], failed: [], skipped: [] }, errors: {} };

    let summary = nextMessage('sumOut');
    const warning = statusOf('fRead', (status) => status.text === 'no matching devices');
    node('fRead').receive({ endpoint: 'nothing-*' });
    assert.deepEqual((await summary).payload, none);
    assert.equal((await warning).fill, 'yellow');

    summary = nextMessage('sumOut');
    node('fRead').receive({ endpoint: [] });
    assert.deepEqual((await summary).payload, none);
    assert.equal(caught.length, 0);
  });
});
