/**
 * The lwm2m-firmware node in a real Node-RED runtime, with simulated devices (LwM2MClient with the
 * Firmware Update object) on loopback: a single push with its progress and result, a pull, a
 * pattern over several devices with a concurrency limit and a summary, a failing device among
 * others, cancel, closing during an update, invalid input at a Catch node, and the statuses.
 */
import assert from 'node:assert/strict';
import type { FirmwareOptions, LwM2MClient, LwM2MServer } from '../../lib';
import { coreNode, helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, until, type Message } from '../helpers/palette';

const WITH_COMPLETE = [...NODES, coreNode('common/24-complete.js')];
const serverOf = () => (helper.getNode('srv') as { ready: Promise<void>; server: LwM2MServer });
const errorOf = (msg: Message) => msg.error as { message: string; code: string };
const payloadOf = <T = Record<string, unknown>>(msg: Message) => msg.payload as T;
/** a package with a recognisable content */
const firmware = (size: number) => Buffer.from(Array.from({ length: size }, (_, index) => index % 251));

/** The firmware node `fw` (its two outputs to `progress` and `results`), a Complete node on it → `completed`. */
function flow(port: number, settings: Record<string, unknown> = {}): object[] {
  return paletteFlow(port, [
    { id: 'fw', type: 'lwm2m-firmware', server: 'srv', endpoint: '', delivery: 'auto', concurrency: 5, ...settings, wires: [['progress'], ['results']] },
    { id: 'done', type: 'complete', scope: ['fw'], uncaught: false, wires: [['completed']] },
    { id: 'progress', type: 'helper' },
    { id: 'results', type: 'helper' },
    { id: 'completed', type: 'helper' },
  ]);
}

/** Every message of a helper node from now on. */
function collect(id: string): Message[] {
  const messages: Message[] = [];
  node(id).on('input', (msg) => messages.push(msg));
  return messages;
}

describe(`Node-RED nodes: lwm2m-firmware (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(60_000);
  const devices = new Devices();
  const fast: FirmwareOptions = { downloadTime: 20, updateTime: 20 };
  const start = (endpoint: string, port: number, options: FirmwareOptions = {}): Promise<LwM2MClient> => devices.start(endpoint, port, { firmware: { ...fast, ...options } });

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  afterEach(async () => {
    await devices.stopAll();
    await helper.unload();
  });

  it('pushes a package to one device: progress in steps (download thinned out), the result with the version, the % and the end in its status', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port, { version: '2.0' }));
    await serverOf().ready;
    const device = await start('fw-1', port, { install: async () => '2.0' });
    const progress = collect('progress');
    const results = collect('results');
    const completed = nextMessage('completed');
    const pkg = firmware(256 * 1024);
    node('fw').receive({ endpoint: 'fw-1', payload: pkg });
    await completed;

    assert.equal(results.length, 1, 'one result, no summary for a single device');
    const [result] = results as [Message];
    assert.equal(result.endpoint, 'fw-1');
    assert.equal(result.topic, 'fw-1');
    assert.equal(result.event, 'result');
    assert.deepEqual(payloadOf(result), { endpoint: 'fw-1', success: true, delivery: 'push', result: 1, resultName: 'success', message: 'fw-1 updated to 2.0 (push)', version: '2.0' });
    assert.equal(device.get('/3/0/3'), '2.0');

    for (const msg of progress) {
      assert.equal(msg.endpoint, 'fw-1');
      assert.equal(msg.topic, 'fw-1');
      assert.equal(msg.event, 'progress');
    }
    const phases = progress.map((msg) => payloadOf<{ phase: string }>(msg).phase);
    const order = ['checking', 'downloading', 'downloaded', 'updating', 'verifying', 'succeeded'];
    assert.deepEqual([...new Set(phases)], order, `phases in order: ${phases.join(', ')}`);
    assert.equal(phases.at(-1), 'succeeded');
    // 256 Block1 writes, told in 10 % steps (and once a second when slower), never 256 messages
    const downloading = progress.filter((msg) => payloadOf(msg).phase === 'downloading').map((msg) => payloadOf<{ progress?: number; state?: number }>(msg));
    const fractions = downloading.map((payload) => payload.progress).filter((value): value is number => value !== undefined);
    assert.ok(fractions.length >= 5, `download progress told: ${fractions.join(', ')}`);
    assert.ok(fractions.length < 40, `download progress thinned out: ${fractions.length} messages for 256 blocks`);
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b), 'progress only grows');
    assert.ok(fractions.every((value) => value >= 0 && value <= 1));
    const downloaded = progress.find((msg) => payloadOf(msg).phase === 'downloaded')!;
    assert.equal(payloadOf(downloaded).progress, 1);
    assert.equal(payloadOf(downloaded).state, 2);
    const succeeded = payloadOf(progress.at(-1)!);
    assert.equal(succeeded.result, 1);
    assert.equal(succeeded.delivery, 'push');

    const percent = await statusOf('fw', (status) => /^\d+ %$/.test(status.text ?? ''));
    assert.equal(percent.fill, 'blue');
    const end = await statusOf('fw', (status) => status.text === 'updated to 2.0');
    assert.deepEqual([end.fill, end.shape], ['green', 'dot']);
  });

  it('pull: msg.delivery asks for it (the node is on auto); the server serves the package and stops serving it afterwards', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port));
    await serverOf().ready;
    await start('fw-2', port);
    const progress = collect('progress');
    const result = nextMessage('results');
    node('fw').receive({ endpoint: 'fw-2', payload: firmware(8 * 1024), delivery: 'pull' });
    const outcome = payloadOf(await result);
    assert.equal(outcome.success, true, String(outcome.message));
    assert.equal(outcome.delivery, 'pull');
    assert.ok(progress.every((msg) => payloadOf(msg).delivery === undefined || payloadOf(msg).delivery === 'pull'));
    assert.ok(progress.some((msg) => payloadOf(msg).phase === 'downloaded'));
    const packages = (serverOf().server as unknown as { packages: { size: number } }).packages;
    await until(() => packages.size === 0);
  });

  it('a pattern updates every registered device it matches, `concurrency` at a time, and ends with a summary; others are left alone', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port, { endpoint: 'fw-a-*', concurrency: 2 }));
    await serverOf().ready;
    const names = ['fw-a-1', 'fw-a-2', 'fw-a-3', 'fw-a-4', 'fw-a-5', 'fw-a-6'];
    for (const name of names) await start(name, port, { install: async () => '3.1' });
    const other = await start('fw-other', port, { install: async () => '3.1' });
    const progress = collect('progress');
    const results = collect('results');
    // devices between their first step and their result
    const busy = new Set<string>();
    let most = 0;
    node('progress').on('input', (msg) => {
      if (payloadOf(msg).phase === 'checking') busy.add(String(msg.endpoint));
      most = Math.max(most, busy.size);
    });
    node('results').on('input', (msg) => busy.delete(String(msg.endpoint)));
    const completed = nextMessage('completed');
    node('fw').receive({ payload: firmware(16 * 1024), version: '3.1', endpoint: 'ignored: the node has its own' });
    await completed;

    assert.equal(most, 2, 'two devices at a time');
    const perDevice = results.filter((msg) => msg.event === 'result');
    assert.deepEqual(perDevice.map((msg) => msg.endpoint).sort(), names);
    assert.ok(perDevice.every((msg) => payloadOf(msg).success === true));
    assert.ok(!progress.some((msg) => msg.endpoint === 'fw-other'));
    assert.notEqual(other.get('/3/0/3'), '3.1');
    const summary = results.at(-1)!;
    assert.equal(results.length, names.length + 1);
    assert.equal(summary.event, 'summary');
    assert.equal(summary.topic, 'fw-a-*');
    assert.deepEqual(summary.endpoint, names);
    const { outcomes, duration, ...counts } = payloadOf<{ outcomes: Array<{ endpoint: string; success: boolean; version?: string }>; duration: number }>(summary);
    assert.deepEqual(counts, { total: 6, succeeded: 6, failed: 0, failures: {} });
    assert.deepEqual(outcomes.map((outcome) => [outcome.endpoint, outcome.success, outcome.version]), names.map((name) => [name, true, '3.1']));
    assert.ok(duration >= 0);
    const end = await statusOf('fw', (status) => status.text === '6/6 updated, 0 failed');
    assert.deepEqual([end.fill, end.shape], ['green', 'dot']);
    await statusOf('fw', (status) => status.text === '0/6 updated, 0 failed');
  });

  it('a device that fails is a result (failure, Update Result) and the others go on; a name that is not registered too; the status turns red', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port));
    await serverOf().ready;
    await start('fw-b-1', port);
    await start('fw-b-2', port, { install: async () => false });
    await start('fw-b-3', port);
    const results = collect('results');
    const caught = collect('caught');
    const completed = nextMessage('completed');
    node('fw').receive({ endpoint: ['fw-b-1', 'fw-b-2', 'fw-b-absent', 'fw-b-3'], payload: firmware(4096) });
    await completed;

    const byDevice = Object.fromEntries(results.filter((msg) => msg.event === 'result').map((msg) => [msg.endpoint, payloadOf(msg)]));
    assert.deepEqual(Object.keys(byDevice).sort(), ['fw-b-1', 'fw-b-2', 'fw-b-3', 'fw-b-absent']);
    assert.equal(byDevice['fw-b-1']!.success, true);
    assert.equal(byDevice['fw-b-3']!.success, true);
    const failedOne = byDevice['fw-b-2']!;
    assert.equal(failedOne.success, false);
    assert.equal(failedOne.failure, 'UPDATE_FAILED');
    assert.equal(failedOne.result, 8);
    assert.equal(failedOne.resultName, 'firmware update failed');
    assert.match(String(failedOne.message), /fw-b-2/);
    assert.equal(byDevice['fw-b-absent']!.failure, 'NOT_REGISTERED');
    const summary = payloadOf(results.at(-1)!);
    assert.equal(results.at(-1)!.event, 'summary');
    assert.equal(results.at(-1)!.topic, 'fw-b-1,fw-b-2,fw-b-absent,fw-b-3');
    assert.deepEqual([summary.total, summary.succeeded, summary.failed], [4, 2, 2]);
    assert.deepEqual(summary.failures, { 'fw-b-2': 'UPDATE_FAILED', 'fw-b-absent': 'NOT_REGISTERED' });
    assert.equal(caught.length, 0, 'a failed device is not an error of the node');
    const end = await statusOf('fw', (status) => status.text === '2/4 updated, 2 failed');
    assert.deepEqual([end.fill, end.shape], ['red', 'dot']);
  });

  it('msg.action "cancel" cancels the running update (Cancel on the device) and the devices not yet started; each gets its result', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port, { concurrency: 1 }));
    await serverOf().ready;
    // a download that would take a minute: the update is cancelled while the device downloads
    const first = await start('fw-c-1', port, { downloadTime: 60_000 });
    await start('fw-c-2', port);
    await start('fw-c-3', port);
    const results = collect('results');
    const downloading = messageWhere('progress', (msg) => msg.endpoint === 'fw-c-1' && payloadOf(msg).state === 1);
    // the cancel message completes at once; the update's message once every device has its result
    const completed = messageWhere('completed', (msg) => msg.action === undefined);
    node('fw').receive({ endpoint: 'fw-c-*', payload: firmware(2048) });
    await downloading;
    node('fw').receive({ action: 'cancel' });
    await completed;

    const perDevice = results.filter((msg) => msg.event === 'result').map((msg) => payloadOf<{ endpoint: string; success: boolean; failure: string; message: string }>(msg));
    assert.deepEqual(perDevice.map((outcome) => [outcome.endpoint, outcome.success, outcome.failure]), [
      ['fw-c-1', false, 'CANCELLED'],
      ['fw-c-2', false, 'CANCELLED'],
      ['fw-c-3', false, 'CANCELLED'],
    ]);
    assert.match(perDevice[0]!.message, /cancelled during downloading/);
    assert.match(perDevice[1]!.message, /before it started/);
    // the device was told: Idle, Update Result 10 (cancelled)
    await until(() => first.get('/5/0/3') === 0 && first.get('/5/0/5') === 10);
    const summary = payloadOf(results.at(-1)!);
    assert.deepEqual([summary.total, summary.succeeded, summary.failed], [3, 0, 3]);
    await statusOf('fw', (status) => status.text === 'cancelling');
    const end = await statusOf('fw', (status) => status.text === '0/3 updated, 3 failed');
    assert.equal(end.fill, 'red');
  });

  it('a redeploy (close) during an update cancels it and does not wait for it', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port));
    await serverOf().ready;
    const device = await start('fw-d-1', port, { downloadTime: 60_000 });
    const downloading = messageWhere('progress', (msg) => payloadOf(msg).state === 1);
    node('fw').receive({ endpoint: 'fw-d-1', payload: firmware(2048) });
    await downloading;
    const began = Date.now();
    await helper.unload();
    // bounded by the node's own wait (6 s), never by the download's timeout (30 min)
    assert.ok(Date.now() - began < 20_000);
    await until(() => device.get('/5/0/3') === 0);
  });

  it('input it cannot act on goes to Catch with a clear message, and nothing is sent', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port));
    await serverOf().ready;
    await start('fw-e-1', port);
    const sent = [...collect('progress'), ...collect('results')];
    const cases: Array<[Message, RegExp, string]> = [
      [{ endpoint: 'fw-e-1', payload: 1700000000000 }, /no firmware: msg.payload must be the package as a Buffer .*it is number/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', payload: Buffer.alloc(0) }, /empty \(0 bytes\)/, 'BAD_REQUEST'],
      [{ payload: firmware(16) }, /no endpoint: set one on the node or in msg.endpoint/, 'BAD_REQUEST'],
      [{ endpoint: 'nothing-*', payload: firmware(16) }, /no registered device matches nothing-\*/, 'NOT_REGISTERED'],
      [{ endpoint: 'fw-e-1', url: 'ftp://example.com/fw.bin' }, /scheme ftp is none a device downloads from/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', url: 'coap://127.0.0.1/fw.bin', delivery: 'push' }, /can only be pulled/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', payload: firmware(16), delivery: 'fast' }, /msg.delivery must be one of auto, push, pull/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', payload: firmware(16), action: 'reboot' }, /msg.action must be update \(or none\) or cancel/, 'BAD_REQUEST'],
    ];
    for (const [msg, message, code] of cases) {
      const caught = nextMessage('caught');
      node('fw').receive(msg);
      const error = errorOf(await caught);
      assert.match(error.message, message);
      assert.equal(error.code, code);
    }
    const red = await statusOf('fw', (status) => status.fill === 'red');
    assert.equal(red.shape, 'ring');
    assert.deepEqual(sent, []);
  });
});
