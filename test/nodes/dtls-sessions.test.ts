/**
 * The server node's "Sessions kept" secret (credential dtlsSessionSecret): across a full deploy
 * (a new server node on the same DTLS port, the old one closed), a device's next Update goes over
 * the DTLS session it had, without a handshake. Without the secret the device handshakes again.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LwM2MClient, type LwM2MServer } from '../../lib';
import type { DtlsClient } from '../../lib/transport/dtls/client';
import type { DtlsServer } from '../../lib/transport/dtls/server';
import { FAST_TIMING } from '../helpers/fake-server';
import { fullDeploy } from '../helpers/flows';
import { helper, nodeRedVersion, userDir } from '../helpers/node-red';
import { NODES, paletteFlow } from '../helpers/palette';
import { freeUdpPort } from '../helpers/ports';
import { until } from '../helpers/wait';

const KEY = Buffer.from('sessions-kept-key');
const TABLE = JSON.stringify([{ endpoint: 'sim-kept', identity: 'kept-id', key: KEY.toString('hex') }]);
const DTLS_TIMING = { initialTimeout: 300, maxTimeout: 2000, maxRetransmissions: 6 };

type ServerNode = { server: LwM2MServer; ready: Promise<void> };

function serverNode(): ServerNode {
  return helper.getNode('srv') as ServerNode;
}

function storeFile(): string {
  return path.join(userDir(), 'lwm2m', 'registrations-srv.json');
}

describe(`Node-RED: DTLS sessions kept across a full deploy (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(60_000);
  const devices: LwM2MClient[] = [];

  before((done) => void helper.startServer(done));
  after((done) => void helper.stopServer(done));
  beforeEach(() => fs.rmSync(storeFile(), { force: true }));
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop().catch(() => undefined)));
    await helper.unload();
    fs.rmSync(storeFile(), { force: true });
  });

  for (const secret of ['a secret only this node knows', undefined]) {
    it(secret ? 'with the secret, the device goes on over its session after a full deploy: no handshake' : 'without it, the device handshakes again after a full deploy', async () => {
      const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
      const flow = paletteFlow(port, [], { dtls: true, dtlsPort, requireSecurity: true, store: 'file' });
      const credentials = { srv: { psk: TABLE, ...(secret ? { dtlsSessionSecret: secret } : {}) } };
      await helper.load(NODES, flow, credentials);
      const before = serverNode();
      await before.ready;

      const device = new LwM2MClient({
        endpoint: 'sim-kept',
        server: `coaps://127.0.0.1:${dtlsPort}`,
        psk: { identity: 'kept-id', key: KEY },
        dtls: { timing: DTLS_TIMING },
        timing: FAST_TIMING,
        retry: { initialDelay: 100, maxDelay: 400 },
        requestTimeout: 1500,
        lifetime: 60,
        objects: { 3303: { 0: { 5700: 21.5 } } },
      });
      device.on('error', () => undefined);
      devices.push(device);
      await device.start();
      let handshakes = 1;
      (device as unknown as { dtls: DtlsClient }).dtls.on('connected', () => handshakes++);

      await fullDeploy(helper, flow, credentials);
      const after = serverNode();
      assert.notEqual(after, before, 'a full deploy makes a new server node');
      await after.ready;
      let serverHandshakes = 0;
      (after.server as unknown as { dtls: DtlsServer }).dtls.on('session', () => serverHandshakes++);
      assert.ok(after.server.registration('sim-kept'), 'the registration came back from the file');

      const updated = new Promise((resolve) => after.server.once('update', resolve));
      void device.update({ lifetime: 90 }).catch(() => undefined);
      await updated;
      assert.equal(after.server.registration('sim-kept')?.lifetime, 90);
      if (secret) {
        assert.equal(handshakes, 1, 'the device did not handshake again');
        assert.equal(serverHandshakes, 0);
        assert.ok(!fs.readFileSync(storeFile(), 'utf8').includes(KEY.toString('hex')), 'no key in the store file');
      } else {
        await until(() => handshakes === 2, 'the device to handshake again');
        assert.equal(serverHandshakes, 1);
      }
    });
  }
});
