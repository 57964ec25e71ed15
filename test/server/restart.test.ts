import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStore, LwM2MClient, LwM2MServer, type Registration } from '../../lib';
import { FAST_TIMING } from '../helpers/fake-server';

describe('LwM2MServer with a file store across a restart', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lwm2m-restart-'));
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('brings registrations back: the device keeps working without registering again', async () => {
    const file = path.join(dir, 'registrations.json');
    const first = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
    const { port } = await first.listen();
    const device = new LwM2MClient({ endpoint: 'survivor', server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, lifetime: 60, objects: { 3303: { 0: { 5700: 12.5 } } } });
    device.on('error', () => undefined);
    const registered = new Promise<Registration>((resolve) => first.once('register', resolve));
    await device.start();
    const before = await registered;
    await first.close(); // flushes the store

    const second = new LwM2MServer({ port, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
    await second.listen();
    try {
      const restored = second.registration('survivor')!;
      assert.ok(restored, 'the registration came back');
      assert.equal(restored.id, before.id);
      assert.equal(restored.port, device.address().port);
      assert.ok(restored.objects.some((object) => object.objectId === 3303));
      // downlink works at once, and the device's next Update is accepted as it is
      assert.equal(await second.read('survivor', '/3303/0/5700'), 12.5);
      let reregistered = false;
      device.on('reregistering', () => (reregistered = true));
      const updated = new Promise<Registration>((resolve) => second.once('update', resolve));
      await device.update();
      assert.equal((await updated).id, before.id);
      assert.equal(reregistered, false);
      assert.equal(device.location, `rd/${before.id}`);
    } finally {
      await device.stop();
      await second.close();
    }
  });

  it('does not bring back registrations that expired while the server was down', async () => {
    const file = path.join(dir, 'registrations.json');
    const first = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, store: new FileStore(file, { delay: 10 }) });
    const { port } = await first.listen();
    const device = new LwM2MClient({ endpoint: 'short', server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, lifetime: 1 });
    device.on('error', () => undefined);
    await device.start();
    await device.stop({ deregister: false });
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const second = new LwM2MServer({ port: 0, address: '127.0.0.1', timing: FAST_TIMING, expiryGrace: 0, store: new FileStore(file, { delay: 10 }) });
    await second.listen();
    try {
      assert.equal(second.registrations().length, 0);
    } finally {
      await second.close();
    }
    const stored = JSON.parse(await fs.readFile(file, 'utf8')) as { registrations: unknown[] };
    assert.deepEqual(stored.registrations, [], 'and the store forgets it');
  });
});
