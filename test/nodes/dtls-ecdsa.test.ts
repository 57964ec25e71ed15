/**
 * The README's security section as it stands: its openssl commands make the keys, and its
 * certificate, raw public key and connection ID flows run in Node-RED with those keys pasted in,
 * each device registering with the security it was given. And what a user gets for a bad key.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, nodeRedVersion } from '../helpers/node-red';
import { freeUdpPort } from '../helpers/ports';
import { NODES, nextMessage, paletteFlow, takeCredentials } from '../helpers/palette';

const README = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');

function readmeBlock(marker: string, language: string): string {
  const block = new RegExp(`<!-- ${marker} -->\\s*\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(README)?.[1];
  assert.ok(block, `README has the ${marker} block`);
  return block;
}

interface RunningServer {
  ready: Promise<void>;
  server: { dtls?: { session(address: string, port: number): { connectionId?: string; authentication: string } | undefined } };
}

describe(`Node-RED nodes over DTLS with certificates, raw public keys and connection IDs (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(30_000);
  let keys: string;

  before(function (done) {
    this.timeout(60_000);
    // the README's commands, as a user would paste them into a shell
    keys = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-keys-'));
    execFileSync('sh', ['-e', '-c', readmeBlock('make-keys', 'sh')], { cwd: keys, stdio: ['ignore', 'ignore', 'pipe'] });
    helper.startServer(done);
  });
  after((done) => {
    fs.rmSync(keys, { recursive: true, force: true });
    helper.stopServer(done);
  });
  afterEach(() => helper.unload());

  /** Loads a README flow on free ports with the PEM files pasted where it names them; resolves with the first registration. */
  async function runReadmeFlow(marker: string): Promise<{ payload: Record<string, unknown>; server: RunningServer }> {
    const [port, dtlsPort] = [await freeUdpPort(), await freeUdpPort()];
    const text = readmeBlock(marker, 'json')
      .replace(/<([\w.-]+\.(?:key|pem|pub))>/g, (_, file: string) => JSON.stringify(fs.readFileSync(path.join(keys, file), 'utf8')).slice(1, -1))
      .replace(/"5683"/g, `"${port}"`)
      .replace(/"5684"/g, `"${dtlsPort}"`)
      .replace(/:5684"/g, `:${dtlsPort}"`);
    const flow = JSON.parse(text) as Array<Record<string, unknown>>;
    const credentials = takeCredentials(flow);
    for (const entry of flow) if (entry.type !== 'lwm2m-server') entry.z = 'readme';
    await helper.load(NODES, [{ id: 'readme', type: 'tab' }, ...flow], credentials);
    // a handshake and a Register take round trips: the debug node is listened to well before
    const registered = nextMessage('dbg');
    const server = helper.getNode('srv') as unknown as RunningServer;
    const message = await registered;
    await server.ready;
    return { payload: message.payload as Record<string, unknown>, server };
  }

  it("runs the README's certificate flow: the device registers as its certificate's CN", async () => {
    const { payload } = await runReadmeFlow('dtls-certificate-flow');
    assert.deepEqual([payload.endpoint, payload.security, payload.identity], ['urn:imei:490154203237518', 'certificate', 'urn:imei:490154203237518']);
  });

  it("runs the README's raw public key flow: the device registers as the endpoint its key is listed under", async () => {
    const { payload } = await runReadmeFlow('dtls-rpk-flow');
    assert.deepEqual([payload.endpoint, payload.security, payload.identity], ['rpk-1', 'rawPublicKey', 'rpk-1']);
  });

  it("runs the README's connection ID flow: the device's session has a connection ID", async () => {
    const { payload, server } = await runReadmeFlow('dtls-cid-flow');
    assert.deepEqual([payload.endpoint, payload.security], ['nbiot-1', 'psk']);
    const session = server.server.dtls?.session(String(payload.address), Number(payload.port));
    assert.match(session?.connectionId ?? '', /^[0-9a-f]{12}$/, 'a 6-byte connection ID');
  });

  it('a server key that is not PEM stops the server with a message that says which setting', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, paletteFlow(port, [], { dtls: true, dtlsPort: await freeUdpPort() }), { srv: { dtlsKey: 'not a key', dtlsCa: fs.readFileSync(path.join(keys, 'ca.pem'), 'utf8') } });
    await (helper.getNode('srv') as unknown as RunningServer).ready.then(
      () => assert.fail('the server started'),
      (error: Error) => assert.match(error.message, /DTLS: the server key is not valid PEM/),
    );
  });

  it('a raw public key without the endpoint before it stops the server, saying which key', async () => {
    const port = await freeUdpPort();
    const table = fs.readFileSync(path.join(keys, 'rpk-device.pub'), 'utf8');
    await helper.load(NODES, paletteFlow(port, [], { dtls: true, dtlsPort: await freeUdpPort() }), { srv: { dtlsKey: fs.readFileSync(path.join(keys, 'rpk-server.key'), 'utf8'), rawPublicKeys: table } });
    await (helper.getNode('srv') as unknown as RunningServer).ready.then(
      () => assert.fail('the server started'),
      (error: Error) => assert.match(error.message, /key 1 has no endpoint on the line before it/),
    );
  });
});
