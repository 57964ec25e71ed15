/**
 * Firmware update driven by the server (LwM2MServer.updateFirmware / updateFirmwareFleet) against
 * simulated devices (LwM2MClient with its Firmware Update object) over real UDP on 127.0.0.1: push
 * and pull of 1 MB, progress, the Update Result named in failures, cancellation, a device that
 * leaves, a queue-mode device, a campaign, DTLS; and libcoap downloading the server's pull URI.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  ClientError,
  CoapEndpoint,
  LwM2MClient,
  LwM2MServer,
  type FirmwareOptions,
  type FirmwareProgress,
  type LwM2MClientOptions,
  type PskCredential,
} from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';
import { LIBCOAP_AVAILABLE, coapClient } from '../helpers/libcoap';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const once = <T>(emitter: NodeJS.EventEmitter, event: string, test: (value: T) => boolean = () => true) =>
  new Promise<T>((resolve) => {
    const listener = (value: T) => {
      if (!test(value)) return;
      emitter.off(event, listener);
      resolve(value);
    };
    emitter.on(event, listener);
  });

describe('firmware update by the server (LwM2MClient devices, loopback)', function () {
  this.timeout(120_000);
  let server: LwM2MServer;
  const clients: LwM2MClient[] = [];
  const helpers: CoapEndpoint[] = [];
  const MB = randomBytes(1024 * 1024);

  /** A device-side download of a Package URI by CoAP Block2 (what a device's own downloader does). */
  const coapDownload = async (uri: string): Promise<Buffer> => {
    const fetcher = new CoapEndpoint({ timing: FAST_TIMING });
    helpers.push(fetcher);
    await fetcher.listen(0, '127.0.0.1');
    const url = new URL(uri);
    const response = await fetcher.request({ address: url.hostname, port: Number(url.port) }, { method: 'GET', path: url.pathname.slice(1).split('/'), timeout: 60_000 });
    if (response.code !== '2.05') throw new Error(`the download got ${response.code}`);
    return response.payload;
  };

  const start = async (options: Partial<ConstructorParameters<typeof LwM2MServer>[0]> = {}) => {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, requestTimeout: 5000, ...options });
    server.on('error', () => undefined);
    await server.listen();
  };

  const device = async (endpoint: string, firmware: FirmwareOptions | boolean, extra: Partial<LwM2MClientOptions> = {}): Promise<LwM2MClient> => {
    const client = new LwM2MClient({ endpoint, server: `coap://127.0.0.1:${server.address().port}`, timing: FAST_TIMING, requestTimeout: 5000, firmware, ...extra });
    client.on('error', () => undefined);
    clients.push(client);
    const registered = once(server, 'register', (registration: { endpoint: string }) => registration.endpoint === endpoint);
    await client.start();
    await registered;
    return client;
  };

  /** Nothing left behind by a finished job: no observation, no published package. */
  const assertClean = () => {
    assert.deepEqual(server.observations(), [], 'no observation is left');
    assert.equal((server as unknown as { packages: { size: number } }).packages.size, 0, 'no package is still served');
  };

  beforeEach(() => start());

  afterEach(async () => {
    await Promise.all(helpers.splice(0).map((helper) => helper.close()));
    await Promise.all(clients.splice(0).map((client) => client.stop({ deregister: false }).catch(() => undefined)));
    await server.close();
  });

  it('pushes 1 MB block by block with progress, executes Update and checks the version', async () => {
    let installed: Buffer | undefined;
    await device('push-1', { downloadTime: 20, updateTime: 20, install: async (pkg) => ((installed = pkg), '2.0.0') });
    const steps: FirmwareProgress[] = [];
    const outcome = await server.updateFirmware('push-1', { package: MB, version: '2.0.0' }, { onProgress: (step) => steps.push(step) });
    assert.deepEqual(outcome, { endpoint: 'push-1', success: true, delivery: 'push', result: 1, resultName: 'success', message: 'push-1 updated to 2.0.0 (push)', version: '2.0.0' });
    assert.equal(sha256(installed!), sha256(MB), 'the device installed the bytes sent');
    const phases = [...new Set(steps.map((step) => step.phase))];
    assert.deepEqual(phases, ['checking', 'downloading', 'downloaded', 'updating', 'verifying', 'succeeded']);
    const progress = steps.filter((step) => step.phase === 'downloading' && step.progress !== undefined).map((step) => step.progress!);
    assert.ok(progress.length >= 1024, `progress after each of the 1024 blocks: ${progress.length}`);
    assert.ok(progress.every((value, index) => index === 0 || value >= progress[index - 1]!), 'progress only grows');
    assert.equal(progress.at(-1), 1);
    assertClean();
  });

  it('pull: serves the package itself, the device downloads it block by block, progress follows the blocks served', async () => {
    let installed: Buffer | undefined;
    const uris: string[] = [];
    await device('pull-1', { downloadTime: 20, updateTime: 20, download: (uri) => (uris.push(uri), coapDownload(uri)), install: async (pkg) => ((installed = pkg), true) });
    const steps: FirmwareProgress[] = [];
    const outcome = await server.updateFirmware('pull-1', { package: MB }, { delivery: 'pull', onProgress: (step) => steps.push(step) });
    assert.equal(outcome.success, true, outcome.message);
    assert.equal(outcome.delivery, 'pull');
    assert.match(uris[0]!, new RegExp(`^coap://127\\.0\\.0\\.1:${server.address().port}/fw/[\\w-]{16}$`));
    assert.equal(sha256(installed!), sha256(MB));
    const served = steps.filter((step) => step.phase === 'downloading' && step.progress !== undefined && step.progress > 0);
    assert.ok(served.length >= 1024, `progress per block served: ${served.length}`);
    // the package is served only while the update needs it
    assert.equal((await coapDownload(uris[0]!).catch((error: Error) => error.message)), 'the download got 4.04');
    assertClean();
  });

  it('pull to a simulated device that downloads by itself, from its own socket, with its integrity check', async () => {
    const client = await device('self-1', { downloadTime: 20, updateTime: 20, rebootTime: 100, version: '4.0.0', expect: { size: MB.length, sha256: sha256(MB) } });
    const steps: FirmwareProgress[] = [];
    const outcome = await server.updateFirmware('self-1', { package: MB, version: '4.0.0' }, { delivery: 'pull', onProgress: (step) => steps.push(step) });
    assert.equal(outcome.success, true, outcome.message);
    assert.ok(steps.filter((step) => step.phase === 'downloading' && (step.progress ?? 0) > 0).length >= 1024, 'progress per block the device fetched');
    assert.equal(client.get('/3/0/3'), '4.0.0');
    assertClean();
  });

  it('names each Update Result a device fails with (2 to 9), and the devices stay usable', async () => {
    const cases: Array<{ fail: 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9; source: { package?: Buffer; uri?: string }; failure: string }> = [
      { fail: 2, source: { package: Buffer.from('image') }, failure: 'DOWNLOAD_FAILED' },
      { fail: 3, source: { package: Buffer.from('image') }, failure: 'DOWNLOAD_FAILED' },
      { fail: 4, source: { package: Buffer.from('image') }, failure: 'DOWNLOAD_FAILED' },
      { fail: 5, source: { package: Buffer.from('image') }, failure: 'DOWNLOAD_FAILED' },
      { fail: 6, source: { package: Buffer.from('image') }, failure: 'DOWNLOAD_FAILED' },
      { fail: 7, source: { uri: 'coap://127.0.0.1:9/fw/x' }, failure: 'DOWNLOAD_FAILED' },
      { fail: 8, source: { package: Buffer.from('image') }, failure: 'UPDATE_FAILED' },
      { fail: 9, source: { uri: 'coap://127.0.0.1:9/fw/x' }, failure: 'DOWNLOAD_FAILED' },
    ];
    for (const { fail } of cases) await device(`fail-${fail}`, { downloadTime: 20, updateTime: 20, fail });
    const outcomes = await Promise.all(cases.map(({ fail, source }) => server.updateFirmware(`fail-${fail}`, source)));
    assert.deepEqual(
      outcomes.map((outcome) => [outcome.endpoint, outcome.failure, outcome.result]),
      cases.map(({ fail, failure }) => [`fail-${fail}`, failure, fail]),
    );
    for (const outcome of outcomes) assert.match(outcome.message, new RegExp(`Update Result ${outcome.result}`));
    for (const { fail } of cases) assert.equal(typeof (await server.read(`fail-${fail}`, '/5/0/3')), 'number', `fail-${fail} still answers`);
    assertClean();
  });

  it('a pull URI the device cannot reach ends in Update Result 4 (no answer) or 7 (4.04)', async () => {
    await device('reach-1', { downloadTime: 20, updateTime: 20, downloadTimeout: 1500 });
    const silent = await server.updateFirmware('reach-1', { uri: 'coap://127.0.0.1:9/fw/nobody' });
    assert.deepEqual([silent.failure, silent.result], ['DOWNLOAD_FAILED', 4]);
    const missing = await server.updateFirmware('reach-1', { uri: `coap://127.0.0.1:${server.address().port}/fw/not-published` });
    assert.deepEqual([missing.failure, missing.result], ['DOWNLOAD_FAILED', 7]);
    assertClean();
  });

  it('libcoap downloads a published package by Block2 and gets the same bytes', async function () {
    assert.ok(LIBCOAP_AVAILABLE, 'libcoap3-bin is not installed (apt-get install -y libcoap3-bin)');
    const pkg = randomBytes(200 * 1024 + 123);
    const published = server.publish(pkg);
    try {
      const result = await coapClient(`coap://127.0.0.1:${server.address().port}${published.path}`, { timeoutSeconds: 30 });
      const [response] = result.responses;
      assert.equal(response?.code, '2.05', result.stdout + result.stderr);
      assert.ok(response!.blocks > 100, `blocks: ${response!.blocks}`);
      assert.equal(sha256(response!.payload), sha256(pkg));
      // a name nobody published, and a method other than GET
      assert.equal((await coapClient(`coap://127.0.0.1:${server.address().port}/fw/nothing-here`)).responses[0]?.code, '4.04');
      assert.equal((await coapClient(`coap://127.0.0.1:${server.address().port}${published.path}`, { method: 'put', payload: 'x' })).responses[0]?.code, '4.05');
    } finally {
      published.release();
    }
    assert.equal((await coapClient(`coap://127.0.0.1:${server.address().port}${published.path}`)).responses[0]?.code, '4.04', 'released: gone');
  });

  it('writes a URI the caller gives as it is, and the device pulls from there', async () => {
    const uris: string[] = [];
    await device('uri-1', { downloadTime: 20, updateTime: 20, download: async (uri) => (uris.push(uri), Buffer.from('from elsewhere')) });
    const outcome = await server.updateFirmware('uri-1', { uri: 'https://firmware.example/images/v2.bin' });
    assert.equal(outcome.success, true, outcome.message);
    assert.equal(outcome.delivery, 'pull');
    assert.deepEqual(uris, ['https://firmware.example/images/v2.bin']);
  });

  it('refuses clearly: no object 5, an empty package, neither or both sources, a URI of another scheme, a second update of the same device', async () => {
    await device('nofw-1', false);
    const none = await server.updateFirmware('nofw-1', { package: Buffer.from('x') });
    assert.deepEqual([none.success, none.failure], [false, 'NO_FIRMWARE_OBJECT']);
    assert.match(none.message, /has no Firmware Update object/);
    for (const [source, reason] of [
      [{ package: Buffer.alloc(0) }, /empty \(0 bytes\)/],
      [{}, /needs a package \(Buffer\) or a URI/],
      [{ package: Buffer.from('x'), uri: 'coap://a/b' }, /not both/],
      [{ uri: 'ftp://firmware.example/x' }, /scheme ftp/],
      [{ uri: 'not a uri' }, /is not a URI/],
    ] as const) {
      const outcome = await server.updateFirmware('nofw-1', source);
      assert.equal(outcome.failure, 'BAD_REQUEST');
      assert.match(outcome.message, reason);
    }
    assert.equal((await server.updateFirmware('nobody', { package: Buffer.from('x') })).failure, 'NOT_REGISTERED');

    await device('busy-1', { downloadTime: 300, updateTime: 20 });
    const first = server.updateFirmware('busy-1', { package: Buffer.from('first') });
    const second = await server.updateFirmware('busy-1', { package: Buffer.from('second') });
    assert.deepEqual([second.success, second.failure], [false, 'BUSY']);
    assert.equal((await first).success, true);
    assertClean();
  });

  it('a failed install names Update Result 8; a download the device cannot make names Update Result 4', async () => {
    await device('fail-8', { downloadTime: 20, updateTime: 20, install: async () => false });
    const failedUpdate = await server.updateFirmware('fail-8', { package: Buffer.from('image') });
    assert.deepEqual([failedUpdate.failure, failedUpdate.result, failedUpdate.resultName], ['UPDATE_FAILED', 8, 'firmware update failed']);
    assert.match(failedUpdate.message, /Update Result 8/);

    await device('fail-4', { downloadTime: 20, updateTime: 20, download: async () => Promise.reject(new Error('unreachable')) });
    const failedDownload = await server.updateFirmware('fail-4', { uri: 'coap://192.0.2.1/unreachable' });
    assert.deepEqual([failedDownload.failure, failedDownload.result], ['DOWNLOAD_FAILED', 4]);
    assert.match(failedDownload.message, /connection lost during download/);
    assertClean();
  });

  it('a device that answers 4.05 to Execute Update, and one whose package is too large for it (4.13)', async () => {
    let execute: LwM2MClient;
    execute = await device('exec-405', false, {
      objects: {
        5: {
          0: {
            0: { value: Buffer.alloc(0), write: () => void setTimeout(() => execute.set('/5/0/3', 2), 10) },
            2: {
              execute: () => {
                throw new ClientError('4.05', 'not now');
              },
            },
            3: 0,
            5: 0,
            9: 1,
          },
        },
      },
    });
    const refused = await server.updateFirmware('exec-405', { package: Buffer.from('image') });
    assert.deepEqual([refused.failure, refused.coapCode], ['REQUEST_FAILED', '4.05']);
    assert.match(refused.message, /Execute Update/);

    // a server that sends up to 16 MiB, a device that takes 8 MiB
    await server.close();
    await start({ maxBodySize: 16 * 1024 * 1024 });
    await device('big-1', { downloadTime: 20, updateTime: 20 });
    const tooLarge = await server.updateFirmware('big-1', { package: Buffer.alloc(9 * 1024 * 1024, 1) });
    assert.deepEqual([tooLarge.failure, tooLarge.coapCode], ['REQUEST_FAILED', '4.13']);
    assertClean();
  });

  it('cancels: the device runs Cancel and is back in Idle with Update Result 10', async () => {
    const client = await device('cancel-1', { downloadTime: 5000, updateTime: 20 });
    const controller = new AbortController();
    const outcome = server.updateFirmware('cancel-1', { package: Buffer.from('image') }, {
      signal: controller.signal,
      onProgress: (step) => step.phase === 'downloading' && step.state === 1 && controller.abort(),
    });
    const result = await outcome;
    assert.deepEqual([result.success, result.failure], [false, 'CANCELLED']);
    assert.equal(client.get('/5/0/3'), 0);
    assert.equal(client.get('/5/0/5'), 10);
    assertClean();
  });

  it('a device that de-registers during the download ends in NOT_REGISTERED, and nothing stays observed or served', async () => {
    const client = await device('leave-1', { downloadTime: 5000, updateTime: 20, download: (uri) => coapDownload(uri) });
    const outcome = server.updateFirmware('leave-1', { package: MB }, { delivery: 'pull', onProgress: (step) => step.phase === 'downloaded' || (step.state === 1 && void client.deregister()) });
    const result = await outcome;
    assert.deepEqual([result.success, result.failure], [false, 'NOT_REGISTERED']);
    assertClean();
  });

  it('follows a device that reboots into its new firmware and registers again', async () => {
    let client: LwM2MClient;
    client = await device('reboot-1', {
      downloadTime: 20,
      updateTime: 20,
      // a real device: installs, reboots (silent, then a new Register) and reports success afterwards
      install: async () => {
        void client.stop({ deregister: false }).then(async () => {
          const again = new LwM2MClient({
            endpoint: 'reboot-1',
            server: `coap://127.0.0.1:${server.address().port}`,
            timing: FAST_TIMING,
            objects: { 3: { 0: { 3: '3.0.0' } }, 5: { 0: { 3: 0, 5: 1, 9: 2 } } },
          });
          again.on('error', () => undefined);
          clients.push(again);
          await again.start();
        });
        return new Promise<never>(() => undefined); // it never answers from the old firmware
      },
    });
    const outcome = await server.updateFirmware('reboot-1', { package: Buffer.from('v3'), version: '3.0.0' }, { updateTimeout: 30_000 });
    assert.equal(outcome.success, true, outcome.message);
    assert.equal(outcome.version, '3.0.0');
    assertClean();
  });

  it('asks again for the version when the device reboots right after it reported success and answers only once it is back', async () => {
    await server.close();
    await start({ requestTimeout: 1000 });
    let client: LwM2MClient;
    const endpointOf = () => (client as unknown as { endpoint: CoapEndpoint }).endpoint;
    client = await device('silent-1', false, {
      objects: {
        5: {
          0: {
            0: { value: Buffer.alloc(0), write: () => void setTimeout(() => client.set('/5/0/3', 2), 10) },
            2: {
              execute: () => {
                setTimeout(() => {
                  client.set('/5/0/5', 1);
                  client.set('/5/0/3', 0);
                  // off the air at once, and back with an Update after the server's read has given up
                  endpointOf().setReceiving(false);
                  setTimeout(() => {
                    endpointOf().setReceiving(true);
                    void client.update();
                  }, 2500);
                }, 20);
              },
            },
            3: 0,
            5: 0,
            9: 1,
          },
        },
      },
    });
    const steps: FirmwareProgress[] = [];
    const outcome = await server.updateFirmware('silent-1', { package: Buffer.from('image'), version: '1.0.0' }, { onProgress: (step) => steps.push(step) });
    assert.equal(outcome.success, true, outcome.message);
    assert.equal(outcome.version, '1.0.0');
    assert.ok(steps.some((step) => step.phase === 'verifying'));
    assertClean();
  });

  it('updates a queue-mode device as it wakes', async () => {
    await server.close(); // beforeEach started one; left open, its socket keeps mocha from exiting
    await start({ awakeTime: 300 });
    const client = await device('queue-1', { downloadTime: 20, updateTime: 20, install: async () => '1.1.0' }, { binding: 'UQ', queueQuietTime: 200 });
    await once(server, 'sleep', (registration: { endpoint: string }) => registration.endpoint === 'queue-1');
    // the device wakes now and then on its own, as a real one does for its Updates
    const waking = setInterval(() => void client.update().catch(() => undefined), 400);
    try {
      const outcome = await server.updateFirmware('queue-1', { package: Buffer.from('image'), version: '1.1.0' });
      assert.equal(outcome.success, true, outcome.message);
    } finally {
      clearInterval(waking);
    }
    assertClean();
  });

  it('a campaign of 50 devices, 5 at a time, one failing: one outcome per device, never more than 5 at once', async () => {
    const endpoints = Array.from({ length: 50 }, (_, index) => `fleet-${index + 1}`);
    for (const endpoint of endpoints) {
      await device(endpoint, { downloadTime: 10, updateTime: 10, rebootTime: 50, install: async () => (endpoint === 'fleet-17' ? false : '2.0.0') });
    }
    const running = new Set<string>();
    let most = 0;
    const blocks = new Map<string, number>();
    const told: string[] = [];
    let listeners = 0;
    const outcomes = await server.updateFirmwareFleet(endpoints, { package: randomBytes(20_000), version: '2.0.0' }, {
      concurrency: 5,
      delivery: 'pull',
      onOutcome: (outcome) => told.push(outcome.endpoint),
      onProgress: ({ endpoint, phase, progress }) => {
        listeners = Math.max(listeners, server.listenerCount('register'), server.listenerCount('notify'));
        if (phase === 'succeeded' || phase === 'failed') running.delete(endpoint);
        else running.add(endpoint);
        most = Math.max(most, running.size);
        if (phase === 'downloading' && (progress ?? 0) > 0) blocks.set(endpoint, (blocks.get(endpoint) ?? 0) + 1);
      },
    });
    // one shared package: each device is told of the blocks it fetched itself (20 of 1024 bytes), not of the others'
    for (const endpoint of endpoints) assert.equal(blocks.get(endpoint), 20, `${endpoint}: ${blocks.get(endpoint)} progress steps`);
    assert.deepEqual(outcomes.map((outcome) => outcome.endpoint), endpoints);
    assert.deepEqual(outcomes.filter((outcome) => !outcome.success).map((outcome) => [outcome.endpoint, outcome.failure, outcome.result]), [['fleet-17', 'UPDATE_FAILED', 8]]);
    assert.ok(most <= 5 && most >= 2, `devices at once: ${most}`);
    assert.deepEqual([...told].sort(), [...endpoints].sort(), 'each outcome told as it ended');
    assert.equal(listeners, 1, 'one set of server listeners for all running jobs');
    assert.equal(server.listenerCount('register'), 0, 'and none once they ended');
    assertClean();
  });

  it('over DTLS: push, and pull of a coaps URI on the DTLS port, served only to the identity it is for', async () => {
    const credentials: PskCredential[] = [
      { identity: 'fw-id', key: Buffer.from('fw-secret'), endpoint: 'secure-fw' },
      { identity: 'other-id', key: Buffer.from('other-secret'), endpoint: 'other' },
    ];
    await server.close();
    await start({ dtls: { port: 0, credentials } });
    const uris: string[] = [];
    let fetched: Buffer | undefined;
    const client = await device(
      'secure-fw',
      {
        downloadTime: 20,
        updateTime: 20,
        // the device's own session carries the download (same server, same port)
        download: async (uri) => {
          uris.push(uri);
          const url = new URL(uri);
          const endpoint = (client as unknown as { endpoint: CoapEndpoint }).endpoint;
          const response = await endpoint.request({ address: url.hostname, port: Number(url.port) }, { method: 'GET', path: url.pathname.slice(1).split('/'), timeout: 60_000 });
          if (response.code !== '2.05') throw new Error(response.code);
          return (fetched = response.payload);
        },
      },
      { server: `coaps://127.0.0.1:${server.secureAddress()!.port}`, psk: { identity: 'fw-id', key: Buffer.from('fw-secret') } },
    );
    assert.equal((await server.updateFirmware('secure-fw', { package: MB }, { delivery: 'push' })).success, true);
    const pulled = await server.updateFirmware('secure-fw', { package: MB }, { delivery: 'pull' });
    assert.equal(pulled.success, true, pulled.message);
    assert.match(uris[0]!, new RegExp(`^coaps://127\\.0\\.0\\.1:${server.secureAddress()!.port}/fw/`));
    assert.equal(sha256(fetched!), sha256(MB));

    // another device's session may not fetch it
    const published = server.publish(Buffer.from('not for you'));
    published.allow('fw-id');
    const other = await device('other', false, { server: `coaps://127.0.0.1:${server.secureAddress()!.port}`, psk: { identity: 'other-id', key: Buffer.from('other-secret') } });
    const endpoint = (other as unknown as { endpoint: CoapEndpoint }).endpoint;
    const refused = await endpoint.request({ address: '127.0.0.1', port: server.secureAddress()!.port }, { method: 'GET', path: published.path.slice(1).split('/') });
    assert.equal(refused.code, '4.03');
    published.release();
  });
});
