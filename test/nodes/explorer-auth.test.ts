/**
 * The explorer's routes behind Node-RED's own adminAuth: Node-RED started as `npm start` does, with
 * a read-only user and an administrator. Without a token nothing is answered; the read-only user
 * may list and read but is refused anything that changes a device.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freeTcpPort, freeUdpPort } from '../helpers/ports';

const root = path.resolve(__dirname, '../../..');

// users checked by functions: no password hashes needed in a test
const SETTINGS = `module.exports = {
  flowFile: 'flows.json',
  credentialSecret: false,
  editorTheme: { tours: false, projects: { enabled: false } },
  telemetry: { enabled: false },
  adminAuth: {
    type: 'credentials',
    users: (username) => Promise.resolve(({ viewer: { username: 'viewer', permissions: 'read' }, admin: { username: 'admin', permissions: '*' } })[username] || null),
    authenticate: (username, password) => Promise.resolve(password === 'secret-' + username ? ({ viewer: { username: 'viewer', permissions: 'read' }, admin: { username: 'admin', permissions: '*' } })[username] || null : null),
  },
};
`;

describe('the explorer routes with adminAuth on', function () {
  this.timeout(120_000);
  let nodeRed: ChildProcess;
  let userDir: string;
  let base: string;
  let output = '';

  before(async () => {
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-auth-'));
    fs.writeFileSync(path.join(userDir, 'settings.js'), SETTINGS);
    const port = await freeTcpPort();
    base = `http://127.0.0.1:${port}`;
    nodeRed = spawn(process.execPath, [path.join(root, 'scripts', 'start.js')], {
      env: { ...process.env, LWM2M_DEMO_DIR: userDir, PORT: String(port), LWM2M_DEMO_COAP_PORT: String(await freeUdpPort()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nodeRed.stdout!.on('data', (chunk) => (output += chunk));
    nodeRed.stderr!.on('data', (chunk) => (output += chunk));
    // the demo's three simulated devices register
    while (!['sim-1', 'sim-2', 'sim-3'].every((name) => output.includes(`endpoint: '${name}'`))) {
      if (nodeRed.exitCode !== null) assert.fail(`Node-RED exited: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  after(async () => {
    if (nodeRed && nodeRed.exitCode === null) {
      const exited = new Promise((resolve) => nodeRed.once('exit', resolve));
      nodeRed.kill('SIGINT');
      await exited;
    }
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  /** A bearer token of a user, as the editor's login gets one. */
  async function token(username: 'viewer' | 'admin'): Promise<string> {
    const response = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: username === 'viewer' ? 'read' : '*', username, password: `secret-${username}` }),
    });
    assert.equal(response.status, 200, `login of ${username}`);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  const call = (method: 'GET' | 'POST', route: string, bearer?: string, body?: object) =>
    fetch(`${base}${route}`, {
      method,
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const device = '/lwm2m/servers/demo-server/devices/sim-1';

  it('answers nobody without a token', async () => {
    assert.equal((await call('GET', '/lwm2m/servers')).status, 401);
    assert.equal((await call('POST', `${device}/read`, undefined, { path: '/3/0/9' })).status, 401);
    assert.equal((await call('POST', `${device}/execute`, undefined, { path: '/3/0/4' })).status, 401);
  });

  it('lets a read-only user list and read, and refuses it every change', async () => {
    const viewer = await token('viewer');
    const servers = (await (await call('GET', '/lwm2m/servers', viewer)).json()) as Array<{ id: string; devices: number }>;
    assert.deepEqual(servers.map((server) => [server.id, server.devices]), [['demo-server', 3]]);
    const read = await call('POST', `${device}/read`, viewer, { path: '/3/0/9' });
    assert.equal(read.status, 200);
    assert.equal(typeof ((await read.json()) as { value: unknown }).value, 'number');
    for (const [operation, body] of [
      ['write', { path: '/3/0/14', value: '+05:00' }],
      ['execute', { path: '/3/0/4' }],
      ['observe', { path: '/3303/0/5700' }],
      ['write-attributes', { path: '/3303/0/5700', attributes: { pmin: 5 } }],
      ['create', { path: '/3303', value: {} }],
      ['delete', { path: '/3303/0' }],
    ] as const) {
      // Node-RED answers a missing permission with 401, as it does a missing token
      assert.equal((await call('POST', `${device}/${operation}`, viewer, body)).status, 401, operation);
    }
    // nothing was written: the administrator reads the old offset
    const admin = await token('admin');
    const offset = (await (await call('POST', `${device}/read`, admin, { path: '/3/0/14' })).json()) as { value: unknown };
    assert.notEqual(offset.value, '+05:00');
  });

  it('lets an administrator change a device', async () => {
    const admin = await token('admin');
    assert.equal((await call('POST', `${device}/write`, admin, { path: '/3/0/14', value: '+05:00' })).status, 200);
    assert.deepEqual(await (await call('POST', `${device}/read`, admin, { path: '/3/0/14' })).json(), { path: '/3/0/14', value: '+05:00' });
  });
});
