/**
 * The client against libcoap (Debian libcoap3-bin 4.3.1), an implementation written by others:
 * coap-rd-notls as the registration peer, coap-client-notls driving device management and observe.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ContentFormat,
  FirmwareState,
  LwM2MClient,
  decode,
  encode,
  parseLinkFormat,

} from '../../lib';
import { FakeServer, FAST_TIMING } from '../helpers/fake-server';
import { LIBCOAP_AVAILABLE, coapClient, startCoapRd, type CoapClientOptions, type CoapClientResponse, type CoapRd } from '../helpers/libcoap';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('LwM2MClient against libcoap', function () {
  this.timeout(60_000);

  before(() => {
    // CI installs libcoap3-bin; a missing tool is a failure, never a skip
    assert.ok(LIBCOAP_AVAILABLE, 'libcoap3-bin is not installed (apt-get install -y libcoap3-bin)');
  });

  describe('registration with coap-rd-notls', () => {
    let rd: CoapRd | undefined;
    let device: LwM2MClient | undefined;

    afterEach(async () => {
      await device?.stop({ deregister: false });
      await rd?.stop();
    });

    it('registers (coap-rd lists it with our object list), updates, and de-registers', async () => {
      rd = await startCoapRd();
      device = new LwM2MClient({ endpoint: 'libcoap-rd-1', server: rd.uri, timing: FAST_TIMING, requestTimeout: 1500, retry: { initialDelay: 5000, maxDelay: 5000 } });
      const errors: unknown[] = [];
      device.on('error', (error) => errors.push(error));
      await device.start();
      const location = device.location!;
      assert.match(location, /^rd\/[\w-]+$/);

      const listed = await rd.registrations({ payload: true });
      const entry = listed.find((registration) => registration.location === location);
      assert.ok(entry, `coap-rd lists ${location}: ${listed.map((registration) => registration.location)}`);
      const links = parseLinkFormat(entry.payload!);
      assert.deepEqual(links[0], { uri: '/', attributes: { rt: 'oma.lwm2m', ct: 112 } });
      assert.ok(links.some((link) => link.uri === '/3/0'));

      // coap-rd is a CoRE resource directory, not an LwM2M server: it answers the LwM2M Update
      // (POST to the location) with 4.05, which the client reports and will retry
      const retry = new Promise<{ error: { operation?: string; coapCode?: string } }>((resolve) => device!.once('retry', resolve));
      await device.update();
      const refused = await retry;
      assert.equal(refused.error.operation, 'update');
      assert.equal(refused.error.coapCode, '4.05');

      // De-register is a DELETE of the location. coap-rd 4.3.1 aborts on any DELETE /rd/<loc> (a
      // double free); a fixed coap-rd answers 2.02 and drops the entry. Either way it got our DELETE.
      await device.stop();
      if (rd.running) {
        await pause(200);
      }
      if (rd.running) {
        const after = await rd.registrations();
        assert.ok(!after.some((registration) => registration.location === location), 'the registration is gone');
      } else {
        const { signal } = await rd.exit;
        assert.equal(signal, 'SIGABRT', 'coap-rd 4.3.1 aborts on the DELETE it received');
      }
    });
  });

  describe('device management and observe driven by coap-client-notls', () => {
    let server: FakeServer;
    let device: LwM2MClient;
    let base: string;
    const big = randomBytes(3000);

    before(async () => {
      server = new FakeServer();
      const uri = await server.start();
      device = new LwM2MClient({
        endpoint: 'libcoap-dm',
        server: uri,
        version: '1.2', // the formats of 1.2, LwM2M CBOR included (OMA JSON, 1.0/1.1 only, is read in the loopback tests)
        timing: FAST_TIMING,
        requestTimeout: 1500,
        firmware: { downloadTime: 20, updateTime: 20, rebootTime: 20 },
        objects: {
          3303: { 0: { 5700: 20, 5701: 'Cel' } },
          3311: { 0: { 5850: false } },
          // an opaque larger than one block
          32770: { 0: { 0: big } },
        },
      });
      device.on('error', () => undefined);
      await device.start();
      base = `coap://127.0.0.1:${device.address().port}`;
    });

    after(async () => {
      await device.stop();
      await server.close();
    });

    const run = async (path: string, options: CoapClientOptions = {}): Promise<CoapClientResponse> => {
      const result = await coapClient(base + path, { timeoutSeconds: 5, ...options });
      assert.equal(result.responses.length, 1, `one response to ${path}: ${result.command.join(' ')}\n${result.stdout}\n${result.stderr}`);
      return result.responses[0]!;
    };

    it('reads a resource as text/plain, and an instance in every LwM2M 1.2 format it asks for', async () => {
      const text = await run('/3/0/0');
      assert.equal(text.code, '2.05');
      assert.equal(text.payload.toString(), 'node-red-lwm2m');
      for (const format of [ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR]) {
        const response = await run('/3303/0', { accept: format });
        assert.equal(response.code, '2.05', `format ${format}`);
        assert.equal(response.contentFormat, format);
        assert.deepEqual(decode(format, '/3303/0', response.payload), device.get('/3303/0'), `format ${format}`);
      }
    });

    it('reads a value larger than a block with Block2, reassembled by coap-client', async () => {
      const response = await run('/32770/0/0', { accept: ContentFormat.OPAQUE });
      assert.equal(response.code, '2.05');
      assert.ok(response.blocks > 1, `came in ${response.blocks} blocks`);
      assert.ok(response.payload.equals(big));
    });

    it('writes (PUT) in text and SenML JSON, and refuses read-only resources', async () => {
      assert.equal((await run('/3/0/14', { method: 'put', contentFormat: 0, payload: '+03:00' })).code, '2.04');
      assert.equal(device.get('/3/0/14'), '+03:00');
      const senml = encode(ContentFormat.SENML_JSON, '/3311/0', { 5850: true });
      assert.equal((await run('/3311/0', { method: 'post', contentFormat: ContentFormat.SENML_JSON, payload: senml })).code, '2.04');
      assert.equal(device.get('/3311/0/5850'), true);
      assert.equal((await run('/3/0/0', { method: 'put', contentFormat: 0, payload: 'x' })).code, '4.05');
    });

    it('writes a firmware package block-wise (Block1) and executes the update', async () => {
      const pkg = randomBytes(5000);
      const write = await run('/5/0/0', { method: 'put', contentFormat: ContentFormat.OPAQUE, payload: pkg, blockSize: 256 });
      assert.equal(write.code, '2.04');
      assert.ok((device.get('/5/0/0') as Buffer).equals(pkg), 'the whole package arrived');
      while (device.get('/5/0/3') !== FirmwareState.DOWNLOADED) await pause(10);
      const rebooted = new Promise((resolve) => device.once('registered', resolve));
      assert.equal((await run('/5/0/2', { method: 'post' })).code, '2.04');
      while (device.get('/5/0/3') !== FirmwareState.IDLE) await pause(10);
      assert.equal(device.get('/5/0/5'), 1);
      await rebooted; // the new firmware runs after a reboot; the next tests talk to it again
    });

    it('executes a resource', async () => {
      const executed = new Promise<{ path: string; args: string }>((resolve) => device.once('execute', resolve));
      assert.equal((await run('/1/0/8', { method: 'post' })).code, '2.04');
      assert.deepEqual(await executed, { path: '/1/0/8', args: '' });
    });

    it('creates and deletes an instance', async () => {
      const payload = encode(ContentFormat.SENML_JSON, '/3303', { 4: { 5700: 1.5 } });
      const created = await run('/3303', { method: 'post', contentFormat: ContentFormat.SENML_JSON, payload });
      assert.equal(created.code, '2.01');
      assert.deepEqual(created.options.filter((option) => option.number === 8).map((option) => option.value.toString()), ['3303', '4']);
      assert.equal(device.get('/3303/4/5700'), 1.5);
      assert.equal((await run('/3303/4', { method: 'delete' })).code, '2.02');
      assert.equal(device.get('/3303/4'), undefined);
    });

    it('discovers an instance with the attributes written to it', async () => {
      assert.equal((await run('/3303/0/5700?pmin=1&pmax=60', { method: 'put' })).code, '2.04');
      const response = await run('/3303/0', { accept: ContentFormat.LINK });
      assert.equal(response.code, '2.05');
      assert.equal(response.contentFormat, ContentFormat.LINK);
      const links = parseLinkFormat(response.payload.toString());
      assert.deepEqual(links.find((link) => link.uri === '/3303/0/5700')?.attributes, { pmin: 1, pmax: 60 });
      assert.equal((await run('/3303/0/5700?pmin&pmax', { method: 'put' })).code, '2.04');
    });

    /** Observes `path` for `seconds`; `script` runs once the first response is in. */
    const observe = async (path: string, seconds: number, script: () => Promise<void>): Promise<string[]> => {
      let started!: () => void;
      const first = new Promise<void>((resolve) => (started = resolve));
      const result = coapClient(base + path, { observeSeconds: seconds, timeoutSeconds: 5, onResponse: () => started() });
      await first;
      await script();
      const { responses } = await result;
      assert.ok(responses.length > 0);
      for (let i = 1; i < responses.length; i++) assert.ok(responses[i]!.observe! > responses[i - 1]!.observe!, 'Observe numbers grow');
      return responses.map((response) => response.payload.toString());
    };

    const attributes = async (path: string, query: string) => assert.equal((await run(`${path}?${query}`, { method: 'put' })).code, '2.04');
    const reset = async () => {
      await attributes('/3303/0/5700', 'pmin&pmax&gt&lt&st');
      device.set('/3303/0/5700', 20);
      await pause(50);
    };

    it('observes with st: only steps of at least st are notified; coap-client cancels at the end', async () => {
      await reset();
      await attributes('/3303/0/5700', 'st=5');
      const payloads = await observe('/3303/0/5700', 2, async () => {
        for (const value of [21, 24, 26, 27, 31.5]) {
          device.set('/3303/0/5700', value);
          await pause(50);
        }
      });
      assert.deepEqual(payloads, ['20', '26', '31.5']);
      await pause(100);
      assert.equal(device.observationCount, 0, 'the GET with Observe=1 that coap-client sends at the end cancelled it');
    });

    it('observes with gt and lt: crossings only', async () => {
      await reset();
      await attributes('/3303/0/5700', 'gt=25&lt=15');
      const payloads = await observe('/3303/0/5700', 2, async () => {
        for (const value of [22, 26, 28, 24, 16, 14]) {
          device.set('/3303/0/5700', value);
          await pause(50);
        }
      });
      assert.deepEqual(payloads, ['20', '26', '24', '14']);
    });

    it('observes with pmin: changes are held back and the latest is sent when pmin ends', async () => {
      await reset();
      await attributes('/3303/0/5700', 'pmin=1');
      const payloads = await observe('/3303/0/5700', 2, async () => {
        device.set('/3303/0/5700', 30);
        await pause(100);
        device.set('/3303/0/5700', 31);
      });
      assert.deepEqual(payloads, ['20', '31']);
    });

    it('observes with pmax: notifications without any change', async () => {
      await reset();
      await attributes('/3303/0/5700', 'pmax=1');
      const payloads = await observe('/3303/0/5700', 3, async () => undefined);
      assert.ok(payloads.length >= 3, `pmax=1 over 3 s gave ${payloads.length} responses`);
      assert.ok(payloads.every((payload) => payload === '20'));
      await reset();
    });

    it('answers bad requests with the right 4.xx code and keeps running', async () => {
      assert.equal((await run('/foo')).code, '4.04');
      assert.equal((await run('/3/0/99')).code, '4.04');
      assert.equal((await run('/0/0')).code, '4.01');
      assert.equal((await run('/3/0/13', { method: 'put', contentFormat: 0, payload: 'noon' })).code, '4.00');
      assert.equal((await run('/3/0/14', { method: 'put', contentFormat: ContentFormat.TLV, payload: Buffer.from([0xc8]) })).code, '4.00');
      assert.equal((await run('/3/0/14', { method: 'put', contentFormat: 50, payload: '"x"' })).code, '4.15');
      assert.equal((await run('/3/0', { accept: 50 })).code, '4.06');
      assert.equal((await run('/3/0/9', { method: 'post' })).code, '4.05');
      const value = await run('/3/0/0');
      assert.equal(value.code, '2.05');
      assert.equal(device.registered, true);
    });
  });
});


