/**
 * The lwm2m-firmware node in a real Node-RED runtime, with simulated devices (LwM2MClient with the
 * Firmware Update object) on loopback: a single push with its progress and result, a pull, a
 * pattern over several devices with a concurrency limit and a summary, a failing device among
 * others, cancel, closing during an update, invalid input at a Catch node, and the statuses.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { FirmwareOptions, LwM2MClient, LwM2MServer } from '../../lib';
import { coreNode, helper, nodeRedVersion } from '../helpers/node-red';
import { nodeProblems } from '../helpers/flows';
import { freeUdpPort } from '../helpers/ports';
import { Devices, NODES, messageWhere, nextMessage, node, paletteFlow, statusOf, until, type Message } from '../helpers/palette';

const WITH_COMPLETE = [...NODES, coreNode('common/24-complete.js')];
const serverOf = () => (helper.getNode('srv') as { ready: Promise<void>; server: LwM2MServer });
const errorOf = (msg: Message) => msg.error as { message: string; code: string };
const payloadOf = <T = Record<string, unknown>>(msg: Message) => msg.payload as T;
/** a package with a recognisable content */
const firmware = (size: number) => Buffer.from(Array.from({ length: size }, (_, index) => index % 251));
/** what a device checks the package it got against: a package damaged on the way fails with Update Result 5 */
const integrity = (pkg: Buffer) => ({ expect: { size: pkg.length, sha256: createHash('sha256').update(pkg).digest('hex') } });

/** The firmware node `fw` (its two outputs to `progress` and `results`), a Complete node on it → `completed`. */
function flow(port: number, settings: Record<string, unknown> = {}): object[] {
  return paletteFlow(port, [
    { id: 'fw', type: 'lwm2m-firmware', server: 'srv', endpoint: '', delivery: 'auto', concurrency: '', ...settings, wires: [['progress'], ['results']] },
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
  const fast: FirmwareOptions = { downloadTime: 20, updateTime: 20, rebootTime: 50 };
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
    const pkg = firmware(256 * 1024);
    const device = await start('fw-1', port, { version: '2.0', ...integrity(pkg) });
    const progress = collect('progress');
    const results = collect('results');
    const completed = nextMessage('completed');
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
    const pkg = firmware(64 * 1024);
    // the device downloads the package from the server's /fw/… by Block2, and checks what it got
    await start('fw-2', port, { ...integrity(pkg), version: '2.1' });
    const progress = collect('progress');
    const result = nextMessage('results');
    node('fw').receive({ endpoint: 'fw-2', payload: pkg, delivery: 'pull', version: '2.1' });
    const outcome = payloadOf(await result);
    assert.equal(outcome.success, true, String(outcome.message));
    assert.equal(outcome.delivery, 'pull');
    assert.equal(outcome.version, '2.1');
    assert.ok(progress.every((msg) => payloadOf(msg).delivery === undefined || payloadOf(msg).delivery === 'pull'));
    // the blocks the server served, thinned out as for a push
    const fractions = progress.filter((msg) => payloadOf(msg).phase === 'downloading').map((msg) => payloadOf<{ progress?: number }>(msg).progress).filter((value): value is number => value !== undefined && value > 0);
    assert.ok(fractions.length >= 3 && fractions.length < 30, `pull progress: ${fractions.join(', ')}`);
    assert.ok(progress.some((msg) => payloadOf(msg).phase === 'downloaded'));
    const packages = (serverOf().server as unknown as { packages: { size: number } }).packages;
    await until(() => packages.size === 0);
  });

  it('a pattern updates every registered device it matches, `concurrency` at a time, and ends with a summary; others are left alone', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port, { endpoint: 'fw-a-*', concurrency: 2 }));
    await serverOf().ready;
    const names = ['fw-a-1', 'fw-a-2', 'fw-a-3', 'fw-a-4', 'fw-a-5', 'fw-a-6'];
    for (const name of names) await start(name, port, { version: '3.1' });
    const other = await start('fw-other', port, { version: '3.1' });
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
    assert.equal(summary.endpoint, 'fw-a-*');
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
    await start('fw-b-2', port, { fail: 5 });
    await start('fw-b-3', port, { fail: 8 });
    await start('fw-b-4', port);
    const results = collect('results');
    const caught = collect('caught');
    const completed = nextMessage('completed');
    node('fw').receive({ endpoint: ['fw-b-1', 'fw-b-2', 'fw-b-absent', 'fw-b-3', 'fw-b-4'], payload: firmware(4096), campaign: 'spring' });
    await completed;

    const byDevice = Object.fromEntries(results.filter((msg) => msg.event === 'result').map((msg) => [msg.endpoint, payloadOf(msg)]));
    assert.deepEqual(Object.keys(byDevice).sort(), ['fw-b-1', 'fw-b-2', 'fw-b-3', 'fw-b-4', 'fw-b-absent']);
    assert.equal(byDevice['fw-b-1']!.success, true);
    assert.equal(byDevice['fw-b-4']!.success, true);
    // the download ends with the integrity check failing; the install fails after Execute
    const integrityFailed = byDevice['fw-b-2']!;
    assert.deepEqual([integrityFailed.success, integrityFailed.failure, integrityFailed.result, integrityFailed.resultName], [false, 'DOWNLOAD_FAILED', 5, 'integrity check failure']);
    assert.match(String(integrityFailed.message), /fw-b-2/);
    const installFailed = byDevice['fw-b-3']!;
    assert.deepEqual([installFailed.success, installFailed.failure, installFailed.result, installFailed.resultName], [false, 'UPDATE_FAILED', 8, 'firmware update failed']);
    assert.equal(byDevice['fw-b-absent']!.failure, 'NOT_REGISTERED');
    const summary = payloadOf(results.at(-1)!);
    assert.equal(results.at(-1)!.event, 'summary');
    assert.equal(results.at(-1)!.topic, 'fw-b-1,fw-b-2,fw-b-absent,fw-b-3,fw-b-4');
    assert.deepEqual([summary.total, summary.succeeded, summary.failed], [5, 2, 3]);
    assert.deepEqual(summary.failures, { 'fw-b-2': 'DOWNLOAD_FAILED', 'fw-b-absent': 'NOT_REGISTERED', 'fw-b-3': 'UPDATE_FAILED' });
    assert.equal(caught.length, 0, 'a failed device is not an error of the node');
    // results keep the input's other properties, not its package
    assert.ok(results.every((msg) => msg.campaign === 'spring'));
    const end = await statusOf('fw', (status) => status.text === '2/5 updated, 3 failed');
    assert.deepEqual([end.fill, end.shape], ['red', 'dot']);
  });

  it('msg.action "cancel" cancels the running update (Cancel on the device) and the devices not yet started; each gets its result', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port));
    await serverOf().ready;
    // a download that would take a minute: the update is cancelled while the device downloads
    const first = await start('fw-c-1', port, { downloadTime: 60_000 });
    await start('fw-c-2', port);
    await start('fw-c-3', port);
    const results = collect('results');
    const downloading = messageWhere('progress', (msg) => msg.endpoint === 'fw-c-1' && payloadOf(msg).state === 1);
    // the cancel message completes at once; the update's message once every device has its result
    const completed = messageWhere('completed', (msg) => msg.action === undefined);
    // one at a time, as msg.concurrency asks (the node has no setting)
    node('fw').receive({ endpoint: 'fw-c-*', payload: firmware(2048), concurrency: 1 });
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

  it('a pattern that matches no registered device gives a summary of zeros and a yellow status, as the fleet jobs of read and write do', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, flow(port));
    await serverOf().ready;
    await start('fw-f-1', port);
    const progress = collect('progress');
    const result = nextMessage('results');
    node('fw').receive({ endpoint: 'nothing-*', payload: firmware(16) });
    const summary = await result;
    assert.equal(summary.event, 'summary');
    assert.deepEqual(payloadOf(summary), { total: 0, succeeded: 0, failed: 0, failures: {}, outcomes: [], duration: payloadOf(summary).duration });
    const status = await statusOf('fw', (status) => status.text === 'no matching devices');
    assert.equal(status.fill, 'yellow');
    assert.deepEqual(progress, []);
  });

  it('device-sims with the firmware object play the devices: the version, a failure and the speed set in their editor; their output tells State and Update Result', async () => {
    const port = await freeUdpPort();
    const sim = { type: 'lwm2m-device-sim', serverUri: `coap://127.0.0.1:${port}`, lifetime: 60, objects: 'firmware', fwDownloadTime: '0.05', fwUpdateTime: '0.05' };
    await helper.load(
      WITH_COMPLETE,
      [
        ...flow(port, { endpoint: 'fw-sim-*', version: '4.2' }),
        { id: 'fleet', ...sim, z: 'f1', endpoint: 'fw-sim-{n}', count: 3, fwVersion: '4.2', wires: [['deviceSide']] },
        { id: 'broken', ...sim, z: 'f1', endpoint: 'fw-sim-9', count: 1, fwVersion: '4.2', fwFail: '6', wires: [['deviceSide']] },
        { id: 'deviceSide', z: 'f1', type: 'helper' },
      ],
    );
    await serverOf().ready;
    await statusOf('fleet', (status) => status.text === '3/3 registered');
    await statusOf('broken', (status) => status.text === '1/1 registered');
    const deviceSide = collect('deviceSide');
    const results = collect('results');
    const completed = nextMessage('completed');
    node('fw').receive({ payload: firmware(8 * 1024) });
    await completed;

    const byDevice = Object.fromEntries(results.filter((msg) => msg.event === 'result').map((msg) => [msg.endpoint, payloadOf(msg)]));
    for (const name of ['fw-sim-1', 'fw-sim-2', 'fw-sim-3']) assert.deepEqual([byDevice[name]!.success, byDevice[name]!.version], [true, '4.2'], name);
    assert.deepEqual([byDevice['fw-sim-9']!.failure, byDevice['fw-sim-9']!.result, byDevice['fw-sim-9']!.resultName], ['DOWNLOAD_FAILED', 6, 'unsupported package type']);
    // the device side, State by State: Downloading, Downloaded, Updating, then Idle with success
    const moves = (endpoint: string) =>
      deviceSide.filter((msg) => msg.event === 'firmware' && msg.endpoint === endpoint).map((msg) => payloadOf<{ stateName: string; resultName: string }>(msg)).map((move) => `${move.stateName}/${move.resultName}`);
    assert.deepEqual(moves('fw-sim-1'), ['downloading/initial', 'downloaded/initial', 'updating/initial', 'idle/success']);
    assert.deepEqual(moves('fw-sim-9'), ['downloading/initial', 'idle/unsupported package type']);
    const move = deviceSide.find((msg) => msg.event === 'firmware')!;
    assert.equal(move.path, '/5/0');
    assert.equal(move.topic, `${String(move.endpoint)}/5/0`);
    // each updated device rebooted and registered again: counted once
    await statusOf('fleet', (status) => status.text === '3/3 registered' && status.fill === 'green');
    assert.equal((await serverOf().server.read('fw-sim-2', '/3/0/3')) as string, '4.2');
  });

  it('a device-sim with a failure to simulate that is no Update Result says so and starts no device', async () => {
    const port = await freeUdpPort();
    await helper.load(WITH_COMPLETE, [...flow(port), { id: 'bad', z: 'f1', type: 'lwm2m-device-sim', serverUri: `coap://127.0.0.1:${port}`, endpoint: 'fw-bad', objects: 'firmware', fwFail: '12', wires: [[]] }]);
    await serverOf().ready;
    // told as the node is made (before a Status node listens): in the log, as the editor shows it
    const problems = nodeProblems(helper).filter((entry) => entry.id === 'bad');
    assert.deepEqual(problems.map((entry) => entry.msg), ['the firmware failure to simulate must be an Update Result from 2 to 9, not 12']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(serverOf().server.registrations().length, 0);
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
      [{ endpoint: 'fw-e-1', url: 'ftp://example.com/fw.bin' }, /scheme ftp is none a device downloads from/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', url: 'coap://127.0.0.1/fw.bin', delivery: 'push' }, /can only be pulled/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', payload: firmware(16), delivery: 'fast' }, /msg.delivery must be one of auto, push, pull/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-1', payload: firmware(16), action: 'reboot' }, /msg.action must be update \(or none\) or cancel/, 'BAD_REQUEST'],
      [{ endpoint: 'fw-e-*', payload: firmware(16), concurrency: 'lots' }, /concurrency must be a number of at least 1, not "lots"/, 'BAD_REQUEST'],
      [{ endpoint: '["fw-e-1"', payload: firmware(16) }, /not a JSON array of names/, 'BAD_REQUEST'],
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
