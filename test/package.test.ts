import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { FakeServer } from './helpers/fake-server';
import { freeTcpPort, freeUdpPort } from './helpers/ports';

const root = path.resolve(__dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** The README's script between `<!-- name -->` and `<!-- /name -->`. */
function readmeScript(name: string): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = new RegExp(`<!-- ${name} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\`\\s*<!-- /${name} -->`).exec(readme);
  assert.ok(block, `README has the ${name} script`);
  return block[1]!;
}

/** A node process running `args`, with its stdout and stderr gathered as they come. */
function started(args: string[], env?: NodeJS.ProcessEnv): { child: ChildProcess; readonly output: string } {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  const run = { child, output: '' };
  child.stdout!.on('data', (chunk) => (run.output += chunk));
  child.stderr!.on('data', (chunk) => (run.output += chunk));
  return run;
}

/** A README script made to load this checkout instead of the installed package. */
const fromCheckout = (script: string) => script.replace("require('@lwm2m-red/node-red-lwm2m')", `require(${JSON.stringify(root)})`);

describe('package', () => {
  it('is the scoped Apache-2.0 Node-RED package the palette registry expects', () => {
    assert.equal(pkg.name, '@lwm2m-red/node-red-lwm2m');
    assert.equal(pkg.license, 'Apache-2.0');
    assert.ok(pkg.repository?.url, 'repository');
    assert.ok(pkg.keywords.includes('node-red') && pkg.keywords.includes('lwm2m'));
    assert.equal(pkg['node-red'].version, '>=4.0.0');
    assert.equal(typeof pkg['node-red'].nodes, 'object');
    assert.equal(pkg.engines.node, '>=18.5');
    // built before packing: installing the package runs no script of ours
    assert.equal(pkg.scripts.prepack, 'npm run build');
    for (const script of ['prepare', 'preinstall', 'install', 'postinstall']) assert.equal(pkg.scripts[script], undefined, script);
  });

  it('gives every node an editor in the LwM2M category, labels, and help with what it does, its messages and an example', () => {
    const types = Object.keys(pkg['node-red'].nodes);
    assert.equal(types.length, 12);
    for (const type of types) {
      assert.equal(pkg['node-red'].nodes[type], `dist/nodes/${type}.js`);
      const editor = fs.readFileSync(path.join(root, 'nodes', `${type}.html`), 'utf8');
      assert.match(editor, new RegExp(`registerType\\('${type}'`), type);
      assert.match(editor, type === 'lwm2m-server' ? /category: 'config'/ : /category: 'LwM2M'/, `${type} category`);
      const labels = JSON.parse(fs.readFileSync(path.join(root, 'locales', 'en-US', `${type}.json`), 'utf8'));
      for (const key of editor.match(new RegExp(`${type}\\.label\\.[A-Za-z]+`, 'g')) ?? []) {
        assert.ok(key.split('.').reduce((at: Record<string, unknown> | undefined, part) => at?.[part] as Record<string, unknown> | undefined, labels), `${key} has a text`);
      }
      const help = fs.readFileSync(path.join(root, 'locales', 'en-US', `${type}.html`), 'utf8');
      assert.match(help, new RegExp(`data-help-name="${type}"`));
      assert.match(help, /^\s*<script[^>]*>\s*<p>[^<]{20,}/, `${type} help starts with what it does`);
      assert.match(help, /<h3>(Inputs|Outputs|Properties)<\/h3>/, `${type} help names its messages or properties`);
      assert.match(help, /<h3>Example<\/h3>\s*<p>(?:(?!<\/p>)[\s\S]){20,}<\/p>/, `${type} help has an example`);
    }
  });

  it('has the device explorer as a Node-RED plugin: its editor adds the "LwM2M" sidebar tab, and every text it shows is in its en-US catalog', () => {
    assert.deepEqual(pkg['node-red'].plugins, { 'lwm2m-explorer': 'dist/nodes/lwm2m-explorer.js' });
    const editor = fs.readFileSync(path.join(root, 'nodes', 'lwm2m-explorer.html'), 'utf8');
    assert.match(editor, /src="resources\/@lwm2m-red\/node-red-lwm2m\/lwm2m-explorer\.js"/);
    assert.match(editor, /src="resources\/@lwm2m-red\/node-red-lwm2m\/lwm2m-explorer-trace\.js"/);
    assert.match(editor, /RED\.plugins\.registerPlugin\('lwm2m-explorer'/);
    // the tab, and its Trace panel
    const script = ['lwm2m-explorer.js', 'lwm2m-explorer-trace.js'].map((file) => fs.readFileSync(path.join(root, 'resources', file), 'utf8')).join('\n');
    assert.match(script, /RED\.sidebar\.addTab\(\{\s*id: 'lwm2m-explorer',[\s\S]*?enableOnEdit: false/);
    const catalog = JSON.parse(fs.readFileSync(path.join(root, 'locales', 'en-US', 'lwm2m-explorer.json'), 'utf8')) as { explorer: Record<string, unknown> };
    const has = (key: string) => typeof key.split('.').reduce((at: Record<string, unknown> | undefined, part) => at?.[part] as Record<string, unknown> | undefined, catalog.explorer) === 'string';
    const literal = [...script.matchAll(/\btext\('([A-Za-z.]+)'\)/g), ...script.matchAll(/\btext\('([A-Za-z.]+)', \{/g)].map((match) => match[1]!).filter((key) => !key.endsWith('.'));
    assert.ok(literal.length > 40, `${literal.length} texts`);
    // the keys the script puts together: actions, panels, a device's details, copy choices, form fields
    const composed = [
      ...[...script.matchAll(/button\(row, '([a-z-]+)'/g)].map((match) => `actions.${match[1]}`),
      ...[...script.matchAll(/addPanel\(\{ id: '([a-z]+)'/g)].map((match) => `panels.${match[1]}`),
      ...['version', 'binding', 'security', 'address', 'lastSeen', 'registeredAt'].map((name) => `device.${name}`),
      ...['read', 'observe', 'write', 'execute'].map((kind) => `copy.${kind}`),
      ...['string', 'opaque', 'objlnk', 'multiple'].map((kind) => `form.placeholder.${kind}`),
      ...['pmin', 'pmax', 'gt', 'lt', 'st'].map((name) => `form.attributes.${name}`),
    ];
    assert.ok(composed.includes('actions.copy') && composed.includes('panels.devices'));
    for (const key of [...literal, ...composed]) assert.ok(has(key), `explorer.${key} has a text`);
  });

  it('gives each node in the palette an icon of its own that Node-RED can show', () => {
    const fontAwesome = fs.readFileSync(path.join(path.dirname(require.resolve('@node-red/editor-client/package.json')), 'public', 'vendor', 'font-awesome', 'css', 'font-awesome.min.css'), 'utf8');
    const icons = new Map<string, string>();
    for (const type of Object.keys(pkg['node-red'].nodes).filter((type) => type !== 'lwm2m-server')) {
      const editor = fs.readFileSync(path.join(root, 'nodes', `${type}.html`), 'utf8');
      const icon = /\bicon: '([^']+)'/.exec(editor)?.[1];
      assert.ok(icon, `${type} names an icon`);
      const awesome = /^font-awesome\/(fa-[a-z0-9-]+)$/.exec(icon);
      // Node-RED's own Font Awesome 4.7, or an SVG of ours next to the compiled node (icons/)
      if (awesome) assert.ok(fontAwesome.includes(`.${awesome[1]}:before`), `${type}: ${icon} is in Node-RED's Font Awesome`);
      else assert.ok(fs.existsSync(path.join(root, 'icons', icon)), `${type}: icons/${icon}`);
      icons.set(type, icon);
    }
    assert.equal(new Set(icons.values()).size, icons.size, `one icon per node: ${JSON.stringify(Object.fromEntries(icons))}`);
  });

  it('packs the library, the nodes with their editors, locales and icons, and the examples, without tests or benchmarks', () => {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{ files: Array<{ path: string }> }>;
    const files = packed!.files.map((file) => file.path);
    for (const type of Object.keys(pkg['node-red'].nodes)) {
      for (const file of [`dist/nodes/${type}.js`, `dist/nodes/${type}.html`, `dist/nodes/locales/en-US/${type}.json`, `dist/nodes/locales/en-US/${type}.html`]) assert.ok(files.includes(file), file);
    }
    assert.ok(files.includes('dist/lib/index.js') && files.includes('dist/nodes/icons/lwm2m.svg') && files.includes('resources/lwm2m-editor.js'));
    // the device explorer plugin: runtime, editor, catalog and its sidebar's script
    for (const name of Object.keys(pkg['node-red'].plugins)) {
      for (const file of [`dist/nodes/${name}.js`, `dist/nodes/${name}.html`, `dist/nodes/locales/en-US/${name}.json`, `resources/${name}.js`]) assert.ok(files.includes(file), file);
    }
    assert.ok(files.some((file) => file.startsWith('examples/')));
    assert.deepEqual(files.filter((file) => /^dist\/(test|bench)\//.test(file)), []);
    // source maps would point at TypeScript sources the package does not ship
    assert.deepEqual(files.filter((file) => file.endsWith('.map')), []);
    assert.ok(files.includes('dist/lib/index.d.ts'));
  });

  it('loads its main entry, the public API, without Node-RED', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const api = require(root);
    for (const name of ['encode', 'decode', 'encodeComposite', 'decodeComposite', 'decodeRecords', 'LwM2MPath', 'ObjectModel', 'ContentFormat', 'ContentFormatError', 'LwM2MClient', 'CoapEndpoint', 'randomWalk']) {
      assert.ok(api[name], name);
    }
    assert.equal(api.ContentFormat.LWM2M_CBOR, 11544);
    assert.equal(path.relative(root, require.resolve(root)), path.join('dist', 'lib', 'index.js'));
  });

  it('has a console tour of the data layer that shows every format round-tripping', () => {
    assert.equal(pkg.scripts['demo:console'], 'node dist/demo/data-layer.js');
    const output = execFileSync(process.execPath, [path.join(root, 'dist', 'demo', 'data-layer.js')], { encoding: 'utf8' });
    assert.equal((output.match(/decodes back unchanged/g) ?? []).length, 5, output);
    assert.doesNotMatch(output, /DIFFERENTLY/);
    assert.match(output, /Values that do not fit the model are refused: Cannot encode TLV/);
  });

  it('keeps Node-RED out of the protocol core', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.ts')) files.push(full);
      }
    };
    walk(path.join(root, 'lib'));
    assert.ok(files.length > 10);
    for (const file of files) assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /from ['"](node-red|@node-red\/)/, file);
  });

  it("runs the README's Library use script: the device registers, then de-registers on SIGINT", async () => {
    const code = readmeScript('library-use');
    assert.ok(code.trim().split('\n').length <= 10, 'ten lines');
    const server = new FakeServer();
    const uri = await server.start();
    try {
      // the same script, pointed at the test's server and at this checkout instead of the installed package
      const run = started(['-e', fromCheckout(code).replace('coap://127.0.0.1:5683', uri)]);
      const { child } = run;
      const register = await server.waitFor((request) => request.path === '/rd');
      assert.ok(register.query.includes('ep=sim-1'));
      while (!run.output.includes('registered as rd/1')) await new Promise((resolve) => setTimeout(resolve, 20));
      const written = await server.request('sim-1', { method: 'PUT', path: ['3', '0', '14'], contentFormat: 0, payload: Buffer.from('+01:00') });
      assert.equal(written.code, '2.04');
      while (!run.output.includes('server wrote /3/0/14 +01:00')) await new Promise((resolve) => setTimeout(resolve, 20));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      assert.equal(await exited, 0, run.output);
      assert.equal(server.requests.at(-1)?.method, 'DELETE');
    } finally {
      await server.close();
    }
  });

  it("runs the README's server example: a device registers, is read and observed", async () => {
    const run = started(['-e', fromCheckout(readmeScript('server-use')).replace('port: 5683', "port: 0, address: '127.0.0.1'")]);
    const { child } = run;
    const { LwM2MClient } = require(root) as typeof import('../lib');
    let device: InstanceType<typeof LwM2MClient> | undefined;
    try {
      while (!/UDP port (\d+)/.test(run.output)) await new Promise((resolve) => setTimeout(resolve, 20));
      const port = Number(/UDP port (\d+)/.exec(run.output)![1]);
      device = new LwM2MClient({ endpoint: 'readme-dev', server: `coap://127.0.0.1:${port}`, objects: { 3303: { 0: { 5700: 19 } } } });
      await device.start();
      while (!/battery \d+ %/.test(run.output)) await new Promise((resolve) => setTimeout(resolve, 20));
      while (device.observationCount === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      device.set('/3303/0/5700', 23.5);
      while (!run.output.includes('readme-dev /3303/0/5700 23.5')) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.match(run.output, /readme-dev registered from/);
    } finally {
      await device?.stop();
      child.kill();
    }
  });

  it("runs the README's firmware example: a device that registers is updated once, with its progress and outcome printed", async function () {
    this.timeout(60_000);

    // the same script, on a free port, with a package made up here instead of the file
    const script = fromCheckout(readmeScript('firmware-use'))
      .replace('port: 5683', "port: 0, address: '127.0.0.1'")
      .replace("fs.readFileSync('meter-2.1.bin')", 'Buffer.alloc(5000, 7)')
      .replace(/server\.listen\(\);\s*$/, "server.listen().then(({ port }) => console.log('UDP port', port));");
    assert.match(script, /Buffer\.alloc\(5000, 7\)/);
    const run = started(['-e', script]);
    const { child } = run;
    const { LwM2MClient } = require(root) as typeof import('../lib');
    let device: InstanceType<typeof LwM2MClient> | undefined;
    try {
      while (!/UDP port (\d+)/.test(run.output)) {
        if (child.exitCode !== null) assert.fail(run.output);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const port = Number(/UDP port (\d+)/.exec(run.output)![1]);
      let installed = 0;
      device = new LwM2MClient({
        endpoint: 'readme-fw',
        server: `coap://127.0.0.1:${port}`,
        firmware: { downloadTime: 10, updateTime: 10, rebootTime: 50, install: async (data) => (installed++, data.length === 5000 && data.every((byte) => byte === 7) ? '2.1' : false) },
      });
      device.on('error', () => undefined);
      let registrations = 0;
      device.on('registered', () => registrations++);
      await device.start();
      while (!run.output.includes('readme-fw updated to 2.1')) {
        if (child.exitCode !== null) assert.fail(run.output);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.match(run.output, /readme-fw downloading 100 %/);
      assert.match(run.output, /readme-fw succeeded/);
      assert.equal(device.get('/3/0/3'), '2.1');
      // it registered again after its reboot, and was not updated a second time
      while (registrations < 2) await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(installed, 1);
      assert.equal(run.output.match(/readme-fw checking/g)?.length, 1, run.output);
    } finally {
      await device?.stop();
      child.kill();
    }
  });

  it('`npm start` runs Node-RED with the palette and the demo flow: the simulated devices register', async function () {
    this.timeout(60_000);
    assert.equal(pkg.scripts.start, 'node scripts/start.js');
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-demo-'));
    const httpPort = await freeTcpPort();
    const coapPort = String(await freeUdpPort());
    const run = started([path.join(root, 'scripts', 'start.js')], { ...process.env, LWM2M_DEMO_DIR: userDir, PORT: String(httpPort), LWM2M_DEMO_COAP_PORT: coapPort });
    const { child } = run;
    try {
      while (!['sim-1', 'sim-2', 'sim-3'].every((name) => run.output.includes(`endpoint: '${name}'`))) {
        if (child.exitCode !== null) assert.fail(`Node-RED exited: ${run.output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const response = await fetch(`http://127.0.0.1:${httpPort}/nodes`, { headers: { Accept: 'application/json' } });
      const sets = (await response.json()) as Array<{ module: string; types: string[] }>;
      const ours = sets.filter((set) => set.module === '@lwm2m-red/node-red-lwm2m').flatMap((set) => set.types);
      for (const type of ['lwm2m-server', 'lwm2m-register-in', 'lwm2m-observe', 'lwm2m-notify-in', 'lwm2m-send-in', 'lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-trace', 'lwm2m-firmware', 'lwm2m-bootstrap', 'lwm2m-device-sim']) {
        assert.ok(ours.includes(type), `${type} is in the palette: ${ours.join(', ')}`);
      }
      assert.doesNotMatch(run.output, /\[error\]/);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await exited;
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });
});

