import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ContentFormat,
  FirmwareResult,
  FirmwareState,
  LwM2MClient,
  ObjectModel,
  callback,
  apnInstance,
  connectivityInstance,
  constant,
  decode,
  locationInstance,
  ipsoInstance,
  randomWalk,
  sine,
  wifiInstance,
  type CoapResponse,
} from '../../lib';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';
import { until } from '../helpers/wait';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('value generators', () => {
  const model = ObjectModel.bundled();
  const definition = model.resource(3303, 5700);

  it('random walk stays inside its bounds and moves by at most its step', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const walk = randomWalk({ min: -5, max: 5, step: 0.5, random });
    let previous: number | undefined;
    for (let i = 0; i < 5000; i++) {
      const value = walk.next({ previous, elapsed: i * 1000, definition }) as number;
      assert.ok(value >= -5 && value <= 5, `${value} out of bounds`);
      if (previous !== undefined) assert.ok(Math.abs(value - previous) <= 0.5 + 1e-9, `step ${value - previous}`);
      previous = value;
    }
  });

  it('random walk takes its bounds from the model range, and gives integers to integer resources', () => {
    const battery = model.resource(3, 9)!; // Integer 0..100
    const walk = randomWalk({ step: 30 });
    let previous: number | undefined;
    for (let i = 0; i < 500; i++) {
      const value = walk.next({ previous, elapsed: 0, definition: battery }) as number;
      assert.ok(Number.isInteger(value) && value >= 0 && value <= 100, String(value));
      previous = value;
    }
  });

  it('sine swings between min and max over its period', () => {
    const wave = sine({ min: 10, max: 30, period: 1000 });
    const at = (elapsed: number) => wave.next({ previous: undefined, elapsed, definition }) as number;
    assert.equal(at(0), 20);
    assert.equal(at(250), 30);
    assert.equal(at(750), 10);
  });

  it('constant and callback give what they are told; bad intervals are refused', () => {
    assert.equal(constant(7).next({ previous: undefined, elapsed: 0 }), 7);
    assert.equal(callback(({ elapsed }) => elapsed * 2).next({ previous: undefined, elapsed: 21 }), 42);
    assert.throws(() => constant(1, { interval: 0 }), /at least 10 ms/);
    assert.throws(() => sine({ period: -1 }), /period/);
  });

  it('builds an instance of any IPSO object with its mandatory resources', () => {
    const spec = ipsoInstance(model, 3303);
    assert.ok(5700 in spec && spec[5701] === 'Cel');
    const light = ipsoInstance(model, 3311, { 5851: 80 });
    assert.equal(light[5850], false);
    assert.equal(light[5851], 80);
    assert.throws(() => ipsoInstance(model, 9999), /not in the model/);
  });
});

describe('LwM2MClient simulation (loopback)', () => {
  let server: FakeServer;
  let uri: string;
  const clients: LwM2MClient[] = [];

  beforeEach(async () => {
    server = new FakeServer();
    uri = await server.start();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((device) => device.stop()));
    await server.close();
  });

  const start = async (endpoint: string, options: Partial<ConstructorParameters<typeof LwM2MClient>[0]> = {}) => {
    const device = new LwM2MClient({ endpoint, server: uri, timing: FAST_TIMING, requestTimeout: 2000, ...options });
    device.on('error', () => undefined);
    clients.push(device);
    await device.start();
    return device;
  };

  it('a generator changes the value, and observers are notified', async () => {
    const model = ObjectModel.bundled();
    let ticks = 0;
    const device = await start('gen-1', {
      objects: { 3303: { 0: { ...ipsoInstance(model, 3303), 5700: callback(() => ++ticks, { interval: 20 }) } } },
    });
    const notifications: CoapResponse[] = [];
    await server.endpoint.observe(server.peerOf('gen-1'), { method: 'GET', path: ['3303', '0', '5700'] }, (response) => notifications.push(response));
    await until(() => notifications.length >= 2, 'two notifications');
    const values = notifications.map((response) => Number(response.payload.toString()));
    assert.ok(values[1]! > values[0]!, `values grow: ${values}`);
    assert.equal(device.get('/3303/0/5700'), ticks);
  });

  it('ready-made Connectivity Monitoring (4) and Location (6) instances read back in TLV with their model types', async () => {
    await start('ready-1', { objects: { 4: { 0: connectivityInstance({ ipAddress: '10.1.2.3' }) }, 6: { 0: locationInstance({ latitude: 48.1, longitude: 11.6 }) } } });
    const connectivity = await server.request('ready-1', { method: 'GET', path: ['4', '0'], accept: ContentFormat.TLV });
    assert.equal(connectivity.code, '2.05');
    const monitoring = decode(ContentFormat.TLV, '/4/0', connectivity.payload) as Record<string, unknown>;
    assert.deepEqual(monitoring[4], { 0: '10.1.2.3' });
    assert.ok((monitoring[2] as number) <= -60 && (monitoring[2] as number) >= -110, 'signal strength in dBm');
    const location = decode(ContentFormat.TLV, '/6/0', (await server.request('ready-1', { method: 'GET', path: ['6', '0'], accept: ContentFormat.TLV })).payload) as Record<string, number>;
    assert.ok(Math.abs(location[0]! - 48.1) <= 0.01 && Math.abs(location[1]! - 11.6) <= 0.01, `near the start: ${location[0]}, ${location[1]}`);
    assert.ok(Math.abs(location[5]! - Date.now() / 1000) < 5, 'the timestamp is now');
  });

  it('ready-made APN profile (11) and WiFi (12) instances read back in TLV; the WiFi Status follows a written Enable', async () => {
    await start('ready-2', { objects: { 11: { 0: apnInstance({ apn: 'iot.example' }) }, 12: { 0: wifiInstance({ ssid: 'plant-3' }) } } });
    const read = async (path: string) =>
      decode(ContentFormat.TLV, path, (await server.request('ready-2', { method: 'GET', path: path.split('/').slice(1), accept: ContentFormat.TLV })).payload) as Record<string, unknown>;
    const apn = await read('/11/0');
    assert.deepEqual([apn[0], apn[1], apn[3], apn[4], apn[24]], ['internet', 'iot.example', true, 3, 1]);
    assert.ok(typeof apn[13] === 'number' && typeof (apn[9] as Record<string, number>)[0] === 'number', 'counters and connection times are numbers');
    const wifi = await read('/12/0');
    assert.deepEqual([wifi[0], wifi[1], wifi[3], wifi[5], wifi[8], wifi[9]], ['wlan0', true, 1, 'plant-3', 1, 6]);
    // the WPA key is write-only: taken, never read back
    const key = await server.request('ready-2', { method: 'PUT', path: ['12', '0', '18'], contentFormat: ContentFormat.TEXT, payload: Buffer.from('correct horse') });
    assert.equal(key.code, '2.04');
    assert.equal((await server.request('ready-2', { method: 'GET', path: ['12', '0', '18'] })).code, '4.05');
    assert.ok(!('18' in (await read('/12/0'))));
    const disabled = await server.request('ready-2', { method: 'PUT', path: ['12', '0', '1'], contentFormat: ContentFormat.TEXT, payload: Buffer.from('0') });
    assert.equal(disabled.code, '2.04');
    assert.deepEqual([(await read('/12/0'))[1], (await read('/12/0'))[3]], [false, 0]);
  });

  it('firmware update by package (Block1): Idle → Downloading → Downloaded → Updating → Idle, result 1', async () => {
    const installed: Buffer[] = [];
    const device = await start('fw-1', {
      firmware: {
        downloadTime: 20,
        updateTime: 20,
        install: async (pkg) => {
          installed.push(pkg);
          return '2.0.0';
        },
      },
    });
    const states: number[] = [];
    device.tree.on('change', (path) => {
      if (path.toString() === '/5/0/3') states.push(device.get('/5/0/3') as number);
    });
    const pkg = randomBytes(100_000);
    const write = await server.request('fw-1', { method: 'PUT', path: ['5', '0', '0'], contentFormat: ContentFormat.OPAQUE, payload: pkg, timeout: 20_000 });
    assert.equal(write.code, '2.04');
    await until(() => device.get('/5/0/3') === FirmwareState.DOWNLOADED, 'Downloaded');
    assert.equal((await server.request('fw-1', { method: 'POST', path: ['5', '0', '2'] })).code, '2.04');
    await until(() => device.get('/5/0/5') === FirmwareResult.SUCCESS, 'result 1');
    assert.deepEqual(states, [FirmwareState.DOWNLOADING, FirmwareState.DOWNLOADED, FirmwareState.UPDATING, FirmwareState.IDLE]);
    assert.equal(installed.length, 1);
    assert.ok(installed[0]!.equals(pkg), 'the package arrived whole through Block1');
    assert.equal(device.get('/3/0/3'), '2.0.0', 'the Device object shows the new firmware version');
  });

  it('firmware update by Package URI, with the results for a bad URI, a bad scheme and a failed update', async () => {
    let fail = true;
    const fetched: string[] = [];
    const download = async (uri: string) => {
      fetched.push(uri);
      return Buffer.from('image');
    };
    const device = await start('fw-2', { firmware: { downloadTime: 20, updateTime: 20, rebootTime: 20, download, install: async () => !fail } });
    const writeUri = (value: string) => server.request('fw-2', { method: 'PUT', path: ['5', '0', '1'], contentFormat: ContentFormat.TEXT, payload: Buffer.from(value) });

    assert.equal((await writeUri('not a uri')).code, '2.04');
    await until(() => device.get('/5/0/5') === FirmwareResult.INVALID_URI, 'result 7');
    assert.equal((await writeUri('ftp://example.com/fw.bin')).code, '2.04');
    await until(() => device.get('/5/0/5') === FirmwareResult.UNSUPPORTED_PROTOCOL, 'result 9');

    assert.equal((await server.request('fw-2', { method: 'POST', path: ['5', '0', '2'] })).code, '4.05', 'Update needs state Downloaded');

    assert.equal((await writeUri('coap://example.com/fw.bin')).code, '2.04');
    await until(() => device.get('/5/0/3') === FirmwareState.DOWNLOADED, 'Downloaded');
    assert.equal((await writeUri('coap://example.com/other.bin')).code, '4.00', 'no new URI while one is downloaded');
    await server.request('fw-2', { method: 'POST', path: ['5', '0', '2'] });
    await until(() => device.get('/5/0/5') === FirmwareResult.UPDATE_FAILED, 'result 8');
    assert.equal(device.get('/5/0/3'), FirmwareState.DOWNLOADED, 'a failed update goes back to Downloaded');
    fail = false;
    const rebooted = new Promise((resolve) => device.once('registered', resolve));
    await server.request('fw-2', { method: 'POST', path: ['5', '0', '2'] });
    await until(() => device.get('/5/0/5') === FirmwareResult.SUCCESS, 'result 1');
    await rebooted; // a successful update reboots the device
    assert.deepEqual(fetched, ['coap://example.com/fw.bin'], 'the download option fetched the one good URI');

    // an empty URI resets the machine
    assert.equal((await writeUri('')).code, '2.04');
    assert.equal(device.get('/5/0/3'), FirmwareState.IDLE);
    assert.equal(device.get('/5/0/5'), FirmwareResult.INITIAL);
  });

  it('stop leaves no socket, timer or pending work behind', async () => {
    const count = () => {
      const resources = process.getActiveResourcesInfo();
      return { sockets: resources.filter((name) => name === 'UDPWrap').length, timers: resources.filter((name) => name === 'Timeout').length };
    };
    await pause(1); // mocha arms its own test timer once the test is running: count after it
    const before = count();
    const device = new LwM2MClient({
      endpoint: 'clean-1',
      server: uri,
      timing: FAST_TIMING,
      binding: 'UQ',
      queueQuietTime: 60_000,
      firmware: { downloadTime: 60_000 },
      objects: { 3303: { 0: { 5700: randomWalk({ interval: 50 }) } } },
    });
    device.on('error', () => undefined);
    await device.start();
    const observation = await server.endpoint.observe(server.peerOf('clean-1'), { method: 'GET', path: ['3303', '0', '5700'] }, () => undefined);
    assert.equal((await server.request('clean-1', { method: 'PUT', path: ['3303', '0', '5700'], query: ['pmax=30'] })).code, '2.04');
    assert.equal((await server.request('clean-1', { method: 'PUT', path: ['5', '0', '1'], contentFormat: 0, payload: Buffer.from(`${uri}/fw`) })).code, '2.04');
    const during = count();
    assert.ok(during.sockets > before.sockets && during.timers > before.timers, 'the running client holds a socket and timers');
    await device.stop();
    observation.cancel();
    await pause(20);
    assert.deepEqual(count(), before);
  });

  it('runs 200 clients in one process, each on its own socket, and stops them all cleanly', async () => {
    const fleet = await Promise.all(Array.from({ length: 200 }, (_, n) => start(`fleet-${n}`, { lifetime: 600 })));
    assert.equal(server.registrations().length, 200);
    const ports = new Set(fleet.map((device) => device.address().port));
    assert.equal(ports.size, 200);
    // every one answers
    const answers = await Promise.all(fleet.slice(0, 20).map((device) => server.request(device.endpointName, { method: 'GET', path: ['3', '0', '2'] })));
    assert.ok(answers.every((answer) => answer.code === '2.05'));
    await Promise.all(clients.splice(0).map((device) => device.stop()));
    assert.equal(server.registrations().length, 0, 'all de-registered');
  });
});
