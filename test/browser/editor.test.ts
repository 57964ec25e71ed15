/**
 * The editor in a real browser: Node-RED started as `npm start` does, opened in headless Chromium
 * (Debian's `chromium`, driven by playwright-core). The palette shows the LwM2M nodes; a read
 * node's edit dialog suggests the registered endpoints and the chosen device's paths first; a node
 * dropped from the palette takes the flow's only server node; invalid paths and endpoints are red.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { coapsRequest, responseCode } from '../helpers/coaps-client';
import { freeUdpPort } from '../helpers/ports';
import { launchChromium, startDemo, stopDemo, type Demo } from '../helpers/demo';

const root = path.resolve(__dirname, '../../..');
const PALETTE = ['lwm2m-register-in', 'lwm2m-observe', 'lwm2m-notify-in', 'lwm2m-send-in', 'lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-trace', 'lwm2m-firmware', 'lwm2m-bootstrap', 'lwm2m-device-sim'];


// the fields are typedInputs: Node-RED hides the original input and shows its own beside it
const ENDPOINT_INPUT = '#node-input-endpoint + .red-ui-typedInput-container input.red-ui-typedInput-input';
const PATH_INPUT = '#node-input-path + .red-ui-typedInput-container input.red-ui-typedInput-input';

/** The path completions shown: each one's path, name, type and operations, and whether the device registered it. */
function completions(page: Page): Promise<Array<{ path: string; name: string; detail?: string; registered: boolean }>> {
  return page.$$eval('.red-ui-autoComplete-container .lwm2m-path-completion', (items) =>
    items.map((item) => {
      const text = (selector: string) => item.querySelector(selector)?.textContent ?? undefined;
      const detail = text('.lwm2m-path-detail');
      return { path: text('.lwm2m-path-path') ?? '', name: text('.lwm2m-path-name') ?? '', ...(detail !== undefined ? { detail } : {}), registered: item.classList.contains('lwm2m-path-registered') };
    }),
  );
}

/** Types into a field as a user does; Node-RED validates on the field's change (or keyup). */
async function change(page: Page, selector: string, text: string): Promise<void> {
  await page.fill(selector, text);
  await page.dispatchEvent(selector, 'change');
}

/**
 * Drags a node type from the palette into the workspace, `at` from the workspace's bottom centre.
 * LwM2M is the palette's last category: it is scrolled into view first; jQuery UI's draggable
 * follows the mouse, so the mouse is pressed, moved in steps and released over the workspace.
 */
async function dragFromPalette(page: Page, type: string, at: { x: number; y: number }): Promise<void> {
  const paletteNode = page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
  await paletteNode.scrollIntoViewIfNeeded();
  const source = await paletteNode.boundingBox();
  const chart = await page.locator('#red-ui-workspace-chart').boundingBox();
  assert.ok(source && chart);
  await page.mouse.move(source.x + source.width / 2, source.y + source.height / 2);
  await page.mouse.down();
  await page.mouse.move(chart.x + chart.width / 2 + at.x, chart.y + chart.height + at.y, { steps: 20 });
  await page.mouse.up();
}

/** The ids of the read nodes in the editor's flows. */
function readNodes(page: Page): Promise<string[]> {
  return page.evaluate(() => (globalThis as unknown as { RED: { nodes: { filterNodes(filter: object): Array<{ id: string }> } } }).RED.nodes.filterNodes({ type: 'lwm2m-read' }).map((node) => node.id));
}

describe('the editor in headless Chromium', function () {
  this.timeout(120_000);
  let demo: Demo | undefined;
  let browser: Browser;
  let page: Page;

  before(async () => {
    demo = await startDemo({ prefix: 'lwm2m-editor-' });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`http://127.0.0.1:${demo.port}/`);
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="lwm2m-read"]', { timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    await stopDemo(demo);
  });

  it('shows the LwM2M nodes in the palette under "LwM2M", and the server as a config node', async () => {
    const found = await page.evaluate((types) => {
      const page = globalThis as unknown as { RED: { nodes: { getType(type: string): { category: string } | undefined } }; document: { querySelector(selector: string): unknown } };
      return types.map((type) => ({ type, category: page.RED.nodes.getType(type)?.category, shown: page.document.querySelector(`.red-ui-palette-node[data-palette-type="${type}"]`) !== null }));
    }, PALETTE);
    for (const entry of found) {
      assert.equal(entry.category, 'LwM2M', entry.type);
      assert.equal(entry.shown, true, `${entry.type} is in the palette`);
    }
    const server = await page.evaluate(() => (globalThis as unknown as { RED: { nodes: { getType(type: string): { category: string } | undefined } } }).RED.nodes.getType('lwm2m-server')?.category);
    assert.equal(server, 'config');
    const header = await page.textContent('#red-ui-palette-header-LwM2M');
    assert.match(header ?? '', /LwM2M/i);
    fs.mkdirSync(path.join(root, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test', 'artifacts', 'demo-flow.png') });
  });

  it("a read node's edit dialog suggests the registered endpoints, then the chosen device's own paths with type and operations", async () => {
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      red.editor.edit(red.nodes.node('demo-read'));
    });
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'visible' });
    await page.fill(ENDPOINT_INPUT, '');
    await page.click(ENDPOINT_INPUT);
    await page.keyboard.type('sim');
    await page.waitForSelector('.red-ui-autoComplete-container li:has-text("sim-1")', { timeout: 10_000 });
    const endpoints = await page.$$eval('.red-ui-autoComplete-container li', (items) => items.map((item) => item.textContent?.trim()));
    assert.deepEqual(endpoints, ['sim-1', 'sim-2', 'sim-3']);
    await page.click('.red-ui-autoComplete-container li:has-text("sim-2")');
    assert.equal(await page.inputValue(ENDPOINT_INPUT), 'sim-2');

    // every path: sim-2's registration (temperature, connectivity, location, and Server and
    // Device) comes first, each resource with its type and operations; then the rest of the model
    await page.fill(PATH_INPUT, '');
    await page.click(PATH_INPUT);
    await page.keyboard.type('/');
    await page.waitForSelector('.red-ui-autoComplete-container .lwm2m-path-completion', { timeout: 10_000 });
    const all = await completions(page);
    const registered = all.filter((item) => item.registered);
    assert.ok(registered.length > 0, 'the device\'s own paths are offered');
    assert.deepEqual(all.slice(0, registered.length), registered, 'and come first');
    const sensor = registered.find((item) => item.path === '/3303/0/5700');
    assert.deepEqual(sensor, { path: '/3303/0/5700', name: 'Sensor Value', detail: 'Float · R', registered: true });
    assert.equal(registered.find((item) => item.path === '/3/0/4')?.detail, 'E');
    assert.equal(registered.find((item) => item.path === '/3/0/14')?.detail, 'String · RW');
    assert.ok(!registered.some((item) => item.path.startsWith('/3311')), 'an object sim-2 does not have is not among its paths');
    assert.equal(all[registered.length]?.path, '/2', 'the model follows: Access Control, which sim-2 did not register');
    assert.ok(!all.some((item) => /^\/0(\/|$)/.test(item.path)), 'Security (/0) is never offered');

    await page.fill(PATH_INPUT, '');
    await page.keyboard.type('Battery');
    await page.waitForFunction(() => {
      const items = [...(globalThis as unknown as { document: { querySelectorAll(selector: string): Iterable<{ textContent: string | null }> } }).document.querySelectorAll('.red-ui-autoComplete-container .lwm2m-path-completion')];
      return items.length > 0 && items.every((item) => /Battery/.test(item.textContent ?? ''));
    }, undefined, { timeout: 10_000 });
    assert.deepEqual((await completions(page)).find((item) => item.path === '/3/0/9'), { path: '/3/0/9', name: 'Battery Level', detail: 'Integer · R', registered: true });
    await page.click('.red-ui-autoComplete-container li:has-text("/3/0/9")');
    assert.equal(await page.inputValue(PATH_INPUT), '/3/0/9');

    fs.mkdirSync(path.join(root, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test', 'artifacts', 'editor-read-node.png') });

    // the operation is a list or a msg property; Done saves each field with its type
    await page.evaluate(() => {
      const $ = (globalThis as unknown as { $: (selector: string) => { typedInput(method: string, value: string): void } }).$;
      $('#node-input-operation').typedInput('type', 'msg');
      $('#node-input-operation').typedInput('value', 'operation');
    });
    await page.click('#node-dialog-ok');
    await page.waitForSelector(PATH_INPUT, { state: 'detached' });
    const saved = await page.evaluate(() => {
      const node = (globalThis as unknown as { RED: { nodes: { node(id: string): Record<string, unknown> } } }).RED.nodes.node('demo-read');
      return { endpoint: node.endpoint, endpointType: node.endpointType, path: node.path, pathType: node.pathType, operation: node.operation, operationType: node.operationType, formatType: node.formatType };
    });
    assert.deepEqual(saved, { endpoint: 'sim-2', endpointType: 'str', path: '/3/0/9', pathType: 'str', operation: 'operation', operationType: 'msg', formatType: 'choice' });
  });

  it('a read node dropped from the palette into a flow with one server node uses that server', async () => {
    const before = await readNodes(page);
    await dragFromPalette(page, 'lwm2m-read', { x: 0, y: -120 });
    await page.waitForFunction((count) => {
      const red = (globalThis as unknown as { RED: { nodes: { filterNodes(filter: object): unknown[] } } }).RED;
      return red.nodes.filterNodes({ type: 'lwm2m-read' }).length > count;
    }, before.length, { timeout: 30_000 });
    const added = (await readNodes(page)).find((id) => !before.includes(id))!;
    const dropped = await page.evaluate((id) => {
      const red = (globalThis as unknown as { RED: { nodes: { node(id: string): { server: string; valid?: boolean; users?: Array<{ id: string }> } } } }).RED;
      return { server: red.nodes.node(id).server, users: red.nodes.node('demo-server').users!.map((user) => user.id) };
    }, added);
    assert.equal(dropped.server, 'demo-server');
    assert.ok(dropped.users.includes(added), 'counted among the server\'s users');

    // its edit dialog shows the server chosen, so the endpoint field suggests its devices
    await page.evaluate((id) => {
      const red = (globalThis as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      red.editor.edit(red.nodes.node(id));
    }, added);
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'visible' });
    assert.equal(await page.inputValue('select#node-input-server'), 'demo-server');
    await page.click(ENDPOINT_INPUT);
    await page.keyboard.type('sim-3');
    await page.waitForSelector('.red-ui-autoComplete-container li:has-text("sim-3")', { timeout: 10_000 });
    await page.click('#node-dialog-cancel');
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'detached' });
  });

  it('an imported read node without a server gets the only one when its dialog opens', async () => {
    // imported as data (as from a file), so no onadd has run: the node has no server
    const imported = await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { nodes: { import(nodes: object[], options: object): void; node(id: string): { server: string } } } }).RED;
      red.nodes.import([{ id: 'imported-read', type: 'lwm2m-read', z: 'demo-tab', x: 520, y: 480, server: '', path: '/3/0/9', wires: [[]] }], { generateIds: false, addFlow: false });
      return red.nodes.node('imported-read').server;
    });
    assert.equal(imported, '');
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      red.editor.edit(red.nodes.node('imported-read'));
    });
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'visible' });
    await page.waitForFunction(() => (globalThis as unknown as { $: (selector: string) => { val(): string } }).$('#node-input-server').val() === 'demo-server', undefined, { timeout: 10_000 });
    await page.click('#node-dialog-ok');
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'detached' });
    const server = await page.evaluate(() => (globalThis as unknown as { RED: { nodes: { node(id: string): { server: string } } } }).RED.nodes.node('imported-read').server);
    assert.equal(server, 'demo-server');
  });

  it('marks an invalid path or endpoint red, as Node-RED marks its own fields, and only text is checked', async () => {
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      red.editor.edit(red.nodes.node('imported-read'));
    });
    await page.waitForSelector(PATH_INPUT, { state: 'visible' });
    const pathMarked = () => page.$eval('#node-input-path + .red-ui-typedInput-container', (element) => element.classList.contains('input-error'));
    const endpointMarked = () => page.$eval('#node-input-endpoint + .red-ui-typedInput-container', (element) => element.classList.contains('input-error'));
    assert.equal(await pathMarked(), false, '/3/0/9 is a path');
    await change(page, PATH_INPUT, '/abc');
    await page.waitForSelector('#node-input-path + .red-ui-typedInput-container.input-error', { timeout: 10_000 });
    for (const bad of ['3/0/9', '/3/0/9/1/2', '/70000', '/3/00', '/3/0/9, /3/0/10']) {
      await change(page, PATH_INPUT, bad);
      assert.equal(await pathMarked(), true, `${bad} is marked`);
    }
    for (const good of ['/3/0/9', '/3303', '', '/65535/0/1/2']) {
      await change(page, PATH_INPUT, good);
      assert.equal(await pathMarked(), false, `${JSON.stringify(good)} is not marked`);
    }
    // several paths are fine for Read-Composite
    await page.evaluate(() => (globalThis as unknown as { $: (selector: string) => { typedInput(method: string, value: string): void } }).$('#node-input-operation').typedInput('value', 'readComposite'));
    await change(page, PATH_INPUT, '/3/0/9, /3303/0/5700');
    assert.equal(await pathMarked(), false, 'a list for Read-Composite');
    // a msg property is Node-RED's to check, not a path
    await change(page, PATH_INPUT, '/abc');
    assert.equal(await pathMarked(), true);
    await page.evaluate(() => (globalThis as unknown as { $: (selector: string) => { typedInput(method: string, value: string): void } }).$('#node-input-path').typedInput('type', 'msg'));
    await change(page, PATH_INPUT, 'topic');
    assert.equal(await pathMarked(), false, 'msg.topic');

    assert.equal(await endpointMarked(), false, 'empty: msg.endpoint');
    await change(page, ENDPOINT_INPUT, 'sim 1');
    assert.equal(await endpointMarked(), true, 'a space');
    await change(page, ENDPOINT_INPUT, 'urn:imei:490154203237518');
    assert.equal(await endpointMarked(), false);
    await change(page, ENDPOINT_INPUT, 'a&b');
    assert.equal(await endpointMarked(), true, '&');
    // a pattern or a list of devices (fleet jobs), each name checked
    for (const good of ['sim-*', 'sim-1, sim-2', 'sim-1,dev-*', '["sim-1","sim-2"]']) {
      await change(page, ENDPOINT_INPUT, good);
      assert.equal(await endpointMarked(), false, `${good} is not marked`);
    }
    for (const bad of ['sim-1,,sim-2', 'sim 1, sim-2', 'sim-1, a&b', '["sim-1"', '{"a":1}']) {
      await change(page, ENDPOINT_INPUT, bad);
      assert.equal(await endpointMarked(), true, `${bad} is marked`);
    }
    await change(page, ENDPOINT_INPUT, 'a&b');
    // concurrency is a whole number of at least 1 (or empty), the wait for sleepers at least 0
    const marked = (selector: string) => page.$eval(selector, (element) => element.classList.contains('input-error'));
    for (const [field, value, wrong] of [
      ['#node-input-concurrency', '0', true],
      ['#node-input-concurrency', '2.5', true],
      ['#node-input-concurrency', '3', false],
      ['#node-input-concurrency', '', false],
      ['#node-input-ttl', '-1', true],
      ['#node-input-ttl', '0', false],
    ] as const) {
      await change(page, field, value);
      assert.equal(await marked(field), wrong, `${field} ${JSON.stringify(value)}`);
    }
    fs.mkdirSync(path.join(root, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test', 'artifacts', 'editor-invalid-endpoint.png') });
    await page.click('#node-dialog-cancel');
    await page.waitForSelector(PATH_INPUT, { state: 'detached' });
  });

  it("the firmware node's dialog: devices (a pattern or list), package URI, version, delivery auto/push/pull, parallel; the device-sim's firmware options show with its firmware object", async () => {
    type Jq = (selector: string) => { typedInput(method: string, value?: string): string; val(): string; is(test: string): boolean };
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { nodes: { import(nodes: object[], options: object): void; node(id: string): unknown }; editor: { edit(node: unknown): void } } }).RED;
      red.nodes.import([{ id: 'imported-fw', type: 'lwm2m-firmware', z: 'demo-tab', x: 520, y: 540, server: '', wires: [[], []] }], { generateIds: false, addFlow: false });
      red.editor.edit(red.nodes.node('imported-fw'));
    });
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'visible' });
    await page.waitForFunction(() => (globalThis as unknown as { $: (selector: string) => { val(): string } }).$('#node-input-server').val() === 'demo-server', undefined, { timeout: 10_000 });
    const fields = await page.evaluate(() => {
      const $ = (globalThis as unknown as { $: Jq }).$;
      return {
        delivery: [$('#node-input-delivery').typedInput('type'), $('#node-input-delivery').typedInput('value')],
        typed: ['endpoint', 'url', 'version'].map((field) => $(`#node-input-${field}`).typedInput('type')),
        labels: [...(globalThis as unknown as { document: { querySelectorAll(selector: string): Array<{ textContent: string | null }> } }).document.querySelectorAll('#dialog-form label span')].map((label) => label.textContent),
      };
    });
    assert.deepEqual(fields.delivery, ['choice', 'auto']);
    assert.deepEqual(fields.typed, ['str', 'str', 'str']);
    for (const label of ['Devices', 'Package URI', 'Version', 'Delivery', 'Parallel']) assert.ok(fields.labels.includes(label), `${label}: ${fields.labels.join(', ')}`);
    // the delivery choices
    await page.click('#node-input-delivery + .red-ui-typedInput-container .red-ui-typedInput-option-trigger');
    await page.waitForSelector('.red-ui-typedInput-options a:has-text("push (Block1 write)")', { state: 'visible' });
    const choices = await page.evaluate(() =>
      (globalThis as unknown as { $: (selector: string) => { map(each: (index: number, item: { textContent: string | null }) => string | undefined): { get(): string[] } } })
        .$('.red-ui-typedInput-options:visible a')
        .map((_, item) => item.textContent?.trim())
        .get(),
    );
    assert.deepEqual(choices, ['auto (else msg.delivery)', 'push (Block1 write)', 'pull (device downloads)']);
    await page.keyboard.press('Escape');
    const endpointMarked = () => page.$eval('#node-input-endpoint + .red-ui-typedInput-container', (element) => element.classList.contains('input-error'));
    for (const [value, wrong] of [['fw-sim-*', false], ['fw-sim-1, fw-sim-2', false], ['fw sim', true], ['', false]] as const) {
      await change(page, ENDPOINT_INPUT, value);
      assert.equal(await endpointMarked(), wrong, JSON.stringify(value));
    }
    for (const [value, wrong] of [['0', true], ['5', false], ['', false]] as const) {
      await change(page, '#node-input-concurrency', value);
      assert.equal(await page.$eval('#node-input-concurrency', (element) => element.classList.contains('input-error')), wrong, `parallel ${JSON.stringify(value)}`);
    }
    await page.click('#node-dialog-cancel');
    await page.waitForSelector(ENDPOINT_INPUT, { state: 'detached' });
    // not part of what the next test deploys
    await page.evaluate(() => (globalThis as unknown as { RED: { nodes: { remove(id: string): void } } }).RED.nodes.remove('imported-fw'));

    // the device-sim: firmware rows only with the firmware object, every Update Result by name
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      red.editor.edit(red.nodes.node('demo-sim'));
    });
    await page.waitForSelector('#node-input-fwFail', { state: 'attached' });
    assert.equal(await page.isVisible('#node-input-fwFail'), false, 'hidden without the firmware object');
    await page.check('.lwm2m-sim-object[value="firmware"]');
    await page.waitForSelector('#node-input-fwFail', { state: 'visible' });
    const failures = await page.$$eval('#node-input-fwFail option', (options) => options.map((option) => [(option as unknown as { value: string }).value, option.textContent]));
    assert.deepEqual(failures[0], ['', 'no failure: updates succeed']);
    assert.deepEqual(failures[4], ['5', '5: integrity check failure']);
    assert.equal(failures.length, 9);
    assert.ok(await page.isVisible('#node-input-fwVersion') && (await page.isVisible('#node-input-fwDownloadTime')) && (await page.isVisible('#node-input-fwUpdateTime')));
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#node-input-fwFail', { state: 'detached' });
  });

  it("the server node's editor takes DTLS and a PSK table; deployed, the keys never come back to the editor, and a row left empty keeps its key", async () => {
    type Red = {
      editor: { editConfig(name: string, type: string, id: string): void };
      nodes: { node(id: string): Record<string, unknown>; dirty(): boolean };
      actions: { invoke(name: string, ...args: unknown[]): void };
    };
    const openServer = async () => {
      await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.editor.editConfig('', 'lwm2m-server', 'demo-server'));
      await page.waitForSelector('#node-config-input-dtls', { state: 'visible' });
    };
    const deploy = async () => {
      // the editor ignores a deploy while a dialog's shade is still up
      await page.waitForSelector('#red-ui-header-shade', { state: 'hidden' });
      // skip the checks that ask for confirmation (nodes other tests left unfinished): this test's deploy is what matters
      await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.actions.invoke('core:deploy-flows', true));
      await page.waitForFunction(() => !(globalThis as unknown as { RED: Red }).RED.nodes.dirty(), null, { timeout: 60_000 });
    };
    const dtlsPort = await freeUdpPort();
    await openServer();
    await page.check('#node-config-input-dtls');
    await page.waitForSelector('#node-config-input-dtlsPort', { state: 'visible' });
    await page.fill('#node-config-input-dtlsPort', String(dtlsPort));
    await page.click('.node-input-psk-container-row .red-ui-editableList-addButton');
    await page.fill('.lwm2m-psk-endpoint', 'secure-1');
    await page.fill('.lwm2m-psk-key', '64656d6f');
    fs.mkdirSync(path.join(root, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test', 'artifacts', 'editor-server-dtls.png') });
    await page.click('#node-config-dialog-ok');
    const saved = await page.evaluate(() => {
      const node = (globalThis as unknown as { RED: Red }).RED.nodes.node('demo-server');
      const credentials = (node.credentials ?? {}) as { psk?: string; pskChanges?: string };
      return { dtls: node.dtls, dtlsPort: node.dtlsPort, psk: credentials.psk, pskChanges: credentials.pskChanges };
    });
    assert.equal(saved.dtls, true);
    assert.equal(Number(saved.dtlsPort), dtlsPort);
    assert.deepEqual(JSON.parse(saved.psk ?? 'null'), [{ endpoint: 'secure-1', identity: '' }], 'the rows hold no key');
    assert.deepEqual(JSON.parse(saved.pskChanges ?? 'null'), { 'secure-1': '64656d6f' }, 'the typed key goes as a password credential');
    await deploy();

    // what the runtime gives the editor: rows and has_ flags, never a key
    const credentials = async () =>
      page.evaluate(async () => (await fetch('credentials/lwm2m-server/demo-server', { headers: { Accept: 'application/json' } })).json() as Promise<Record<string, unknown>>);
    const register = async () => {
      // the server binds its DTLS port once the deploy has started it
      for (let attempt = 0; attempt < 20; attempt++) {
        const output = await coapsRequest('coap-client-openssl', `coaps://127.0.0.1:${dtlsPort}/rd?ep=secure-1&lt=60&lwm2m=1.1`, { identity: 'secure-1', key: 'demo', method: 'post', payload: '</3/0>', wait: 3 });
        if (responseCode(output)) return responseCode(output);
      }
      return undefined;
    };
    assert.equal(await register(), '2.01', 'the key typed in the editor works');
    const first = await credentials();
    assert.equal(first.has_pskKeys, true);
    assert.equal(first.has_pskChanges, false, 'the runtime folded the typed keys into pskKeys');
    assert.deepEqual(JSON.parse(String(first.psk)), [{ endpoint: 'secure-1', identity: 'secure-1' }]);
    assert.doesNotMatch(JSON.stringify(first), /64656d6f/);

    // open again: the key field is empty ("unchanged"); save as it is, and deploy a change beside it
    await openServer();
    assert.equal(await page.inputValue('.lwm2m-psk-key'), '');
    assert.equal(await page.getAttribute('.lwm2m-psk-key', 'placeholder'), 'key: unchanged');
    await page.fill('#node-config-input-requestTimeout', '11');
    await page.click('#node-config-dialog-ok');
    await deploy();
    assert.doesNotMatch(JSON.stringify(await credentials()), /64656d6f/);
    assert.equal(await register(), '2.01', 'the row left empty kept its key');
  });

  it("a bootstrap node dropped from the palette: its table takes a * row (the server node, PSK, generated keys) and a named row by URI with a given key; deployed, the flow has the table and no key, the key is a credential", async () => {
    type Red = {
      editor: { edit(node: unknown): void };
      nodes: { node(id: string): Record<string, unknown>; filterNodes(filter: object): Array<{ id: string }>; dirty(): boolean };
      actions: { invoke(name: string, ...args: unknown[]): void };
    };
    const bootstrapNodes = () => page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.nodes.filterNodes({ type: 'lwm2m-bootstrap' }).map((node) => node.id));
    const before = await bootstrapNodes();
    // the palette is shaded while a deploy is under way
    await page.waitForSelector('#red-ui-palette-shade', { state: 'hidden', timeout: 30_000 });
    await dragFromPalette(page, 'lwm2m-bootstrap', { x: 150, y: -200 });
    await page.waitForFunction((count) => (globalThis as unknown as { RED: Red }).RED.nodes.filterNodes({ type: 'lwm2m-bootstrap' }).length > count, before.length, { timeout: 30_000 });
    const id = (await bootstrapNodes()).find((entry) => !before.includes(entry))!;
    assert.equal(await page.evaluate((id) => (globalThis as unknown as { RED: Red }).RED.nodes.node(id).server, id), 'demo-server', "it takes the flow's only server node");

    await page.evaluate((id) => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.editor.edit(red.nodes.node(id));
    }, id);
    await page.waitForSelector('#node-input-configs-list .lwm2m-bs-endpoint', { state: 'visible' });
    const port = await freeUdpPort();
    await page.fill('#node-input-port', String(port));
    // the new node's row: every device to the server node, PSK, a new key at every bootstrap
    const first = page.locator('#node-input-configs-list li').nth(0);
    assert.equal(await first.locator('.lwm2m-bs-endpoint').inputValue(), '*');
    assert.equal(await first.locator('.lwm2m-bs-target').inputValue(), 'server');
    assert.equal(await first.locator('.lwm2m-bs-security').inputValue(), 'psk');
    assert.equal(await first.locator('.lwm2m-bs-generate').isChecked(), true);
    assert.equal(await first.locator('.lwm2m-bs-key').isVisible(), false, 'no key to give when it is generated');
    // a second row: one device to another server by URI, with its own identity and key
    await page.click('.lwm2m-bs-configs-row .red-ui-editableList-addButton');
    const second = page.locator('#node-input-configs-list li').nth(1);
    await second.locator('.lwm2m-bs-endpoint').fill('dev-uri');
    await second.locator('.lwm2m-bs-target').selectOption('uri');
    await second.locator('.lwm2m-bs-uri').fill('coaps://192.0.2.1:5684');
    await second.locator('.lwm2m-bs-security').selectOption('psk');
    await second.locator('.lwm2m-bs-generate').uncheck();
    await second.locator('.lwm2m-bs-identity').fill('dev-uri-id');
    await second.locator('.lwm2m-bs-key').fill('6b65792d6f662d646576');
    await second.locator('.lwm2m-bs-lifetime').fill('120');
    fs.mkdirSync(path.join(root, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test', 'artifacts', 'editor-bootstrap.png') });
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#node-input-configs-list', { state: 'detached' });
    const saved = await page.evaluate((id) => {
      const node = (globalThis as unknown as { RED: Red }).RED.nodes.node(id);
      return { configs: node.configs, port: node.port, valid: node.valid, changes: (node.credentials as { configChanges?: string } | undefined)?.configChanges };
    }, id);
    const table = [
      { endpoint: '*', target: 'server', security: 'psk', generate: true, lifetime: 300, binding: 'U' },
      { endpoint: 'dev-uri', target: 'uri', uri: 'coaps://192.0.2.1:5684', security: 'psk', generate: false, identity: 'dev-uri-id', lifetime: 120, binding: 'U' },
    ];
    assert.deepEqual(saved.configs, table);
    assert.equal(saved.valid, true);
    assert.deepEqual(JSON.parse(saved.changes ?? 'null'), { 'dev-uri': '6b65792d6f662d646576' }, 'the typed key goes as a password credential');

    await page.waitForSelector('#red-ui-header-shade', { state: 'hidden' });
    await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.actions.invoke('core:deploy-flows', true));
    await page.waitForFunction(() => !(globalThis as unknown as { RED: Red }).RED.nodes.dirty(), null, { timeout: 60_000 });
    // what the runtime saved: the table in the flow, without the key; the key among the credentials, which never come back
    const flows = await page.evaluate(async () => (await fetch('flows', { headers: { Accept: 'application/json', 'Node-RED-API-Version': 'v1' } })).json() as Promise<Array<Record<string, unknown>>>);
    const deployed = flows.find((node) => node.id === id)!;
    assert.deepEqual(deployed.configs, table);
    assert.equal(deployed.server, 'demo-server');
    assert.doesNotMatch(JSON.stringify(flows), /6b65792d6f662d646576/);
    // the started node folds the typed key into its stored credentials: on a busy machine a moment after the deploy answered
    const credentialsOf = () => page.evaluate(async (id) => (await fetch(`credentials/lwm2m-bootstrap/${id}`, { headers: { Accept: 'application/json' } })).json() as Promise<Record<string, unknown>>, id);
    let credentials = await credentialsOf();
    for (const deadline = Date.now() + 30_000; credentials.has_configKeys !== true && Date.now() < deadline; credentials = await credentialsOf()) await page.waitForTimeout(200);
    assert.equal(credentials.has_configKeys, true);
    assert.doesNotMatch(JSON.stringify(credentials), /6b65792d6f662d646576/);
    const stored = fs.readFileSync(path.join(demo!.userDir, 'flows.json'), 'utf8');
    assert.doesNotMatch(stored, /6b65792d6f662d646576/, 'the flow file holds no key');

    // opened again: the key field is empty and says the key is kept
    await page.evaluate((id) => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.editor.edit(red.nodes.node(id));
    }, id);
    await page.waitForSelector('#node-input-configs-list .lwm2m-bs-key', { state: 'attached' });
    const key = page.locator('#node-input-configs-list li').nth(1).locator('.lwm2m-bs-key');
    assert.equal(await key.inputValue(), '');
    assert.equal(await key.getAttribute('placeholder'), 'key: unchanged');
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#node-input-configs-list', { state: 'detached' });
  });

  it("the device-sim's dialog offers a bootstrap server instead of a server, with its own PSK for coaps://", async () => {
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } } }).RED;
      red.editor.edit(red.nodes.node('demo-sim'));
    });
    await page.waitForSelector('#node-input-connect', { state: 'visible' });
    assert.equal(await page.inputValue('#node-input-connect'), 'server', 'a device-sim from before bootstrap knows a server');
    assert.equal(await page.isVisible('#node-input-bootstrapUri'), false);
    await page.selectOption('#node-input-connect', 'bootstrap');
    await page.waitForSelector('#node-input-bootstrapUri', { state: 'visible' });
    assert.equal(await page.isVisible('#node-input-serverUri'), false);
    assert.equal(await page.isVisible('#node-input-bsKey'), false, 'no PSK for coap://');
    await change(page, '#node-input-bootstrapUri', 'coaps://127.0.0.1:5784');
    await page.waitForSelector('#node-input-bsKey', { state: 'visible' });
    assert.ok(await page.isVisible('#node-input-bsIdentity'));
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#node-input-connect', { state: 'detached' });
  });

  it("the device-sim's Security for coaps:// shows PSK fields, or key, certificate and server PEM fields; the server node's DTLS rows take its key, certificate, CA and raw keys", async () => {
    type Red = { editor: { edit(node: unknown): void; editConfig(name: string, type: string, id: string): void }; nodes: { node(id: string): unknown } };
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.editor.edit(red.nodes.node('demo-sim'));
    });
    await page.waitForSelector('#node-input-connect', { state: 'visible' });
    await page.selectOption('#node-input-connect', 'server');
    await change(page, '#node-input-serverUri', 'coaps://127.0.0.1:5684');
    await page.waitForSelector('#node-input-security', { state: 'visible' });
    const visible = async () =>
      Object.fromEntries(await Promise.all(['key', 'identity', 'deviceKey', 'deviceCertificate', 'serverCertificate', 'connectionId'].map(async (id) => [id, await page.isVisible(`#node-input-${id}`)] as const)));
    await page.selectOption('#node-input-security', 'psk');
    assert.deepEqual(await visible(), { key: true, identity: true, deviceKey: false, deviceCertificate: false, serverCertificate: false, connectionId: true });
    await page.selectOption('#node-input-security', 'certificate');
    assert.deepEqual(await visible(), { key: false, identity: false, deviceKey: true, deviceCertificate: true, serverCertificate: true, connectionId: true });
    assert.equal((await page.textContent('label[for="node-input-deviceCertificate"]'))?.trim(), 'Certificate', 'the label comes from the locale');
    await page.selectOption('#node-input-security', 'rpk');
    assert.deepEqual(await visible(), { key: false, identity: false, deviceKey: true, deviceCertificate: false, serverCertificate: true, connectionId: true });
    await change(page, '#node-input-serverUri', 'coap://127.0.0.1:5683');
    assert.equal(await page.isVisible('#node-input-security'), false, 'no security for coap://');
    assert.equal(await page.isVisible('#node-input-deviceKey'), false);
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#node-input-connect', { state: 'detached' });

    await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.editor.editConfig('', 'lwm2m-server', 'demo-server'));
    await page.waitForSelector('#node-config-input-dtls', { state: 'attached' });
    const pemRows = ['dtlsKey', 'dtlsCertificate', 'dtlsCa', 'rawPublicKeys'];
    if (!(await page.isChecked('#node-config-input-dtls'))) {
      for (const id of pemRows) assert.equal(await page.isVisible(`#node-config-input-${id}`), false, `${id} hidden without DTLS`);
      await page.check('#node-config-input-dtls');
    }
    for (const id of pemRows) assert.ok(await page.isVisible(`#node-config-input-${id}`), `${id} shown with DTLS`);
    assert.equal((await page.textContent('label[for="node-config-input-dtlsCa"]'))?.trim(), 'Device CA');
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('#node-config-input-dtls', { state: 'detached' });
  });

  it("the trace node's dialog takes the flow's only server and an endpoint filter; the server node's Trace field takes a number of messages", async () => {
    type Red = { editor: { edit(node: unknown): void; editConfig(name: string, type: string, id: string): void }; nodes: { import(nodes: object[], options: object): void; node(id: string): unknown } };
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.nodes.import([{ id: 'imported-trace', type: 'lwm2m-trace', z: 'demo-tab', x: 520, y: 560, server: '', endpoint: '', wires: [[]] }], { generateIds: false, addFlow: false });
      red.editor.edit(red.nodes.node('imported-trace'));
    });
    await page.waitForSelector('#node-input-endpoint', { state: 'visible' });
    await page.waitForFunction(() => (globalThis as unknown as { $: (selector: string) => { val(): string } }).$('#node-input-server').val() === 'demo-server', undefined, { timeout: 10_000 });
    assert.equal((await page.textContent('label[for="node-input-endpoint"]'))?.trim(), 'Endpoint', 'the label comes from the locale');
    const marked = (selector: string) => page.$eval(selector, (element) => element.classList.contains('input-error'));
    for (const [value, wrong] of [['sim 1', true], ['sim-*', false], ['', false], ['a&b', true], ['thermostat', false]] as const) {
      await change(page, '#node-input-endpoint', value);
      assert.equal(await marked('#node-input-endpoint'), wrong, `endpoint ${JSON.stringify(value)}`);
    }
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#node-input-endpoint', { state: 'detached' });
    assert.deepEqual(await page.evaluate(() => {
      const node = (globalThis as unknown as { RED: Red }).RED.nodes.node('imported-trace') as { server: string; endpoint: string };
      return [node.server, node.endpoint];
    }), ['demo-server', 'thermostat']);

    await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.editor.editConfig('', 'lwm2m-server', 'demo-server'));
    await page.waitForSelector('#node-config-input-trace', { state: 'visible' });
    assert.equal((await page.textContent('label[for="node-config-input-trace"]'))?.trim(), 'Trace');
    for (const [value, wrong] of [['lots', true], ['-1', true], ['1.5', true], ['100001', true], ['500', false], ['0', false]] as const) {
      await change(page, '#node-config-input-trace', value);
      assert.equal(await marked('#node-config-input-trace'), wrong, `trace ${JSON.stringify(value)}`);
    }
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('#node-config-input-trace', { state: 'detached' });
  });

  it("the server node's Store: file for a node saved without it, Redis fields only for redis with the URL checked and the password hidden; observe's \"observe again\" ticked for a node saved without it", async () => {
    type Red = {
      editor: { edit(node: unknown): void; editConfig(name: string, type: string, id: string): void };
      nodes: { import(nodes: object[], options: object): void; node(id: string): Record<string, unknown>; remove(id: string): void; getType(type: string): { defaults: Record<string, { value: unknown }> } };
    };
    // what a node new from the palette gets
    assert.deepEqual(
      await page.evaluate(() => {
        const red = (globalThis as unknown as { RED: Red }).RED;
        return [red.nodes.getType('lwm2m-server').defaults.store!.value, red.nodes.getType('lwm2m-observe').defaults.reobserve!.value];
      }),
      ['file', true],
    );
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.nodes.import([{ id: 'imported-srv', type: 'lwm2m-server', port: '5799', address: '' }], { generateIds: false, addFlow: false });
      // as a node of a deployed flow saved before the setting existed
      delete red.nodes.node('imported-srv').store;
      red.editor.editConfig('', 'lwm2m-server', 'imported-srv');
    });
    await page.waitForSelector('#node-config-input-store', { state: 'visible' });
    assert.equal(await page.inputValue('#node-config-input-store'), 'file');
    assert.equal((await page.textContent('label[for="node-config-input-store"]'))?.trim(), 'Store');
    const options = await page.$$eval('#node-config-input-store option', (items) => items.map((item) => [(item as unknown as { value: string }).value, item.textContent]));
    assert.deepEqual(options, [
      ['file', 'a file in the user directory (survives a restart)'],
      ['memory', 'memory only (forgotten on a restart or full deploy)'],
      ['redis', 'Redis (shared by several Node-RED instances)'],
    ]);
    assert.equal(await page.isVisible('#node-config-input-redisUrl'), false, 'no Redis fields for a file');
    await page.selectOption('#node-config-input-store', 'redis');
    for (const field of ['redisUrl', 'redisPassword', 'redisPrefix', 'instance']) assert.ok(await page.isVisible(`#node-config-input-${field}`), field);
    assert.equal(await page.getAttribute('#node-config-input-redisPassword', 'type'), 'password');
    assert.equal(await page.getAttribute('#node-config-input-redisPrefix', 'placeholder'), 'lwm2m:', 'an empty prefix is lwm2m:');
    const marked = () => page.$eval('#node-config-input-redisUrl', (element) => element.classList.contains('input-error'));
    for (const [value, wrong] of [['', true], ['127.0.0.1:6379', true], ['http://127.0.0.1:6379', true], ['redis://127.0.0.1:6379/0', false], ['rediss://cache.example:6380', false]] as const) {
      await change(page, '#node-config-input-redisUrl', value);
      assert.equal(await marked(), wrong, `Redis URL ${JSON.stringify(value)}`);
    }
    await change(page, '#node-config-input-redisUrl', 'nonsense');
    await page.selectOption('#node-config-input-store', 'memory');
    assert.equal(await page.isVisible('#node-config-input-redisUrl'), false, 'no Redis fields for memory');
    assert.equal(await marked(), false, 'the URL matters only for redis');
    await page.click('#node-config-dialog-cancel');
    await page.waitForSelector('#node-config-input-store', { state: 'detached' });

    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.nodes.import([{ id: 'imported-observe', type: 'lwm2m-observe', z: 'demo-tab', x: 520, y: 600, server: 'demo-server', path: '/3303/0/5700', wires: [[], []] }], { generateIds: false, addFlow: false });
      delete red.nodes.node('imported-observe').reobserve;
      red.editor.edit(red.nodes.node('imported-observe'));
    });
    await page.waitForSelector('#node-input-reobserve', { state: 'visible' });
    assert.equal(await page.isChecked('#node-input-reobserve'), true);
    await page.uncheck('#node-input-reobserve');
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#node-input-reobserve', { state: 'detached' });
    assert.equal(await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.nodes.node('imported-observe').reobserve), false);
    // not part of what a later deploy holds
    await page.evaluate(() => {
      const red = (globalThis as unknown as { RED: Red }).RED;
      red.nodes.remove('imported-observe');
      red.nodes.remove('imported-srv');
    });
  });
});
