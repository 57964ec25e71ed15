/**
 * The device explorer (the editor's "LwM2M" sidebar tab) in a real browser: Node-RED started as
 * `npm start` does with the demo flow (three simulated devices sim-1..3), opened in headless
 * Chromium. The tab lists the devices live, filters them, shows a device's objects with the
 * model's names, reads, writes, executes and observes resources, shows a device's error next to
 * the item with its CoAP code, and copies a ready node that Ctrl+I imports.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { launchChromium, startDemo, stopDemo, type Demo } from '../helpers/demo';

const root = path.resolve(__dirname, '../../..');
const ARTIFACTS = path.join(root, 'test', 'artifacts');

// what the functions run in the page use of the browser's globals (the project compiles without the DOM library)
interface PageElement {
  textContent: string | null;
  offsetParent: unknown;
  getAttribute(name: string): string | null;
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement> };
declare const navigator: { clipboard: { readText(): Promise<string> } };

type Red = {
  sidebar: { show(id: string): void };
  nodes: { filterNodes(filter: object): Array<Record<string, unknown>>; dirty(): boolean };
};

describe('the device explorer in headless Chromium', function () {
  this.timeout(180_000);
  let demo: Demo | undefined;
  let browser: Browser;
  let page: Page;

  /** A device's row in the list. */
  const device = (endpoint: string) => page.locator(`.lwm2m-x-device[data-endpoint="${endpoint}"]`);
  /** An object, instance or resource of a device's tree. */
  const item = (endpoint: string, itemPath: string) => device(endpoint).locator(`.lwm2m-x-node[data-path="${itemPath}"]`);
  /** The row itself (not its children). */
  const row = (endpoint: string, itemPath: string) => item(endpoint, itemPath).locator('> .lwm2m-x-row');
  const value = (endpoint: string, itemPath: string) => row(endpoint, itemPath).locator('.lwm2m-x-value');

  /** Opens the tree down to a resource: the object, then the instance. */
  async function open(endpoint: string, resourcePath: string): Promise<Locator> {
    const [, object, instance] = resourcePath.split('/');
    for (const part of [`/${object}`, `/${object}/${instance}`]) {
      if (!(await item(endpoint, part).locator('> .lwm2m-x-children').isVisible())) await row(endpoint, part).click();
    }
    const target = row(endpoint, resourcePath);
    await target.waitFor({ state: 'visible' });
    return target;
  }

  /** Selects a row (a click on a selected row would close it) and clicks one of its actions. */
  async function act(endpoint: string, itemPath: string, action: string): Promise<void> {
    const target = row(endpoint, itemPath);
    if (!(await target.evaluate((element) => (element as unknown as { classList: { contains(name: string): boolean } }).classList.contains('selected')))) await target.locator('.lwm2m-x-path').click();
    await target.locator(`.lwm2m-x-action-${action}`).click();
  }

  before(async () => {
    demo = await startDemo({ prefix: 'lwm2m-explorer-' });
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
    page = await context.newPage();
    await page.goto(`http://127.0.0.1:${demo.port}/`);
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="lwm2m-read"]', { timeout: 60_000 });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await stopDemo(demo);
  });

  it('is a plugin of the palette: the "LwM2M" sidebar tab lists the demo\'s server and its three devices, each with version, binding, security, address and lifetime left', async () => {
    const plugins = await page.evaluate(async () => (await fetch('plugins', { headers: { Accept: 'application/json' } })).json() as Promise<Array<{ id: string; module: string }>>);
    assert.ok(plugins.some((plugin) => plugin.id === '@lwm2m-red/node-red-lwm2m/lwm2m-explorer'), JSON.stringify(plugins));
    // the tab is in the sidebar with the catalog's label
    await page.waitForSelector('#red-ui-tab-lwm2m-explorer', { state: 'attached' });
    await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.sidebar.show('lwm2m-explorer'));
    // a wider sidebar, as a user would drag it, for the screenshots
    const separator = await page.locator('#red-ui-sidebar-separator').boundingBox();
    assert.ok(separator);
    await page.mouse.move(separator.x + separator.width / 2, separator.y + 200);
    await page.mouse.down();
    await page.mouse.move(separator.x - 260, separator.y + 200, { steps: 10 });
    await page.mouse.up();

    await page.waitForSelector('.lwm2m-explorer .lwm2m-x-device', { state: 'visible', timeout: 30_000 });
    // the demo's server node, its name from the flow (start.js moved its port)
    assert.match((await page.locator('.lwm2m-x-server option:checked').textContent()) ?? '', /^LwM2M server :\d+$/, 'the flow\'s only server is chosen');
    assert.equal(await page.locator('.lwm2m-x-show-devices').textContent(), ' Devices');
    await page.waitForFunction(() => document.querySelectorAll('.lwm2m-x-device').length === 3, undefined, { timeout: 30_000 });
    const endpoints = await page.$$eval('.lwm2m-x-device .lwm2m-x-endpoint', (names) => names.map((name) => name.textContent));
    assert.deepEqual(endpoints, ['sim-1', 'sim-2', 'sim-3']);
    const details = await device('sim-1').locator('.lwm2m-x-details').textContent();
    assert.match(details ?? '', /LwM2M 1\.1/);
    assert.match(details ?? '', /no security/);
    assert.match(details ?? '', /127\.0\.0\.1:\d+/);
    assert.match(details ?? '', /seen \d+ s ago/);
    assert.equal(await device('sim-1').locator('.lwm2m-x-state').textContent(), 'online');
    // lifetime 300 s, counting down in the browser
    const left = async () => Number(/(\d+) min (\d+) s/.exec((await device('sim-1').locator('.lwm2m-x-left').textContent()) ?? '')?.slice(1).reduce((min, s) => String(Number(min) * 60 + Number(s))));
    const first = await left();
    assert.ok(first > 200 && first <= 300, `lifetime left ${first}`);
    await page.waitForFunction((before) => {
      const text = document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-left')?.textContent ?? '';
      const match = /(\d+) min (\d+) s/.exec(text);
      return match !== null && Number(match[1]) * 60 + Number(match[2]) < before;
    }, first, { timeout: 10_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-devices.png') });
  });

  it('filters the devices', async () => {
    const filter = page.locator('.lwm2m-x-filter');
    await filter.click();
    await filter.pressSequentially('sim-2');
    await page.waitForFunction(() => [...document.querySelectorAll('.lwm2m-x-device')].filter((element) => element.offsetParent !== null).length === 1, undefined, { timeout: 10_000 });
    assert.equal(await device('sim-2').isVisible(), true);
    assert.equal(await device('sim-1').isVisible(), false);
    assert.equal(await page.locator('.lwm2m-x-count').textContent(), '1 of 3');
    await filter.fill('');
    await filter.press('Backspace');
    await page.waitForFunction(() => [...document.querySelectorAll('.lwm2m-x-device')].filter((element) => element.offsetParent !== null).length === 3, undefined, { timeout: 10_000 });
  });

  it('expands a device to /3/0/9 Battery Level with its type, operations and unit, and reads it: a number with its unit', async () => {
    await device('sim-1').locator('.lwm2m-x-device-row').click();
    await item('sim-1', '/3').waitFor({ state: 'visible', timeout: 10_000 });
    // the model's names; Security (/0) is not shown
    assert.equal(await row('sim-1', '/3').locator('.lwm2m-x-name').textContent(), 'Device');
    assert.equal(await row('sim-1', '/3303').locator('.lwm2m-x-name').textContent(), 'Temperature');
    assert.equal(await item('sim-1', '/0').count(), 0);
    const battery = await open('sim-1', '/3/0/9');
    assert.equal(await battery.locator('.lwm2m-x-name').textContent(), 'Battery Level');
    // the model's unit is "/100": a percentage, shown as %
    assert.equal(await battery.locator('.lwm2m-x-meta').textContent(), 'Integer · R · %');
    await act('sim-1', '/3/0/9', 'read');
    await page.waitForFunction(() => /^\d+ %$/.test(document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-node[data-path="/3/0/9"] > .lwm2m-x-row .lwm2m-x-value')?.textContent ?? ''), undefined, { timeout: 15_000 });
    const level = Number(/^(\d+) %$/.exec((await value('sim-1', '/3/0/9').textContent()) ?? '')![1]);
    assert.ok(level >= 20 && level <= 100, `battery ${level} %`);
  });

  it('writes /3/0/14 (UTC Offset) with an input by its type, and reads it back', async () => {
    await open('sim-1', '/3/0/14');
    await act('sim-1', '/3/0/14', 'write');
    const input = item('sim-1', '/3/0/14').locator('.lwm2m-x-form input.lwm2m-x-input');
    assert.equal(await input.getAttribute('data-type'), 'String');
    await input.fill('+02:00');
    await item('sim-1', '/3/0/14').locator('.lwm2m-x-submit').click();
    await item('sim-1', '/3/0/14').locator('.lwm2m-x-form').waitFor({ state: 'hidden', timeout: 15_000 });
    assert.equal(await item('sim-1', '/3/0/14').locator('> .lwm2m-x-error').isVisible(), false);
    // read back from the device (the value shown is cleared first, so the read is what shows)
    await value('sim-1', '/3/0/14').evaluate((element) => (element.textContent = ''));
    await act('sim-1', '/3/0/14', 'read');
    await page.waitForFunction(() => document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-node[data-path="/3/0/14"] > .lwm2m-x-row .lwm2m-x-value')?.textContent === '"+02:00"', undefined, { timeout: 15_000 });
    // a time resource is shown as a date
    await open('sim-1', '/3/0/13');
    await act('sim-1', '/3/0/13', 'read');
    await page.waitForFunction(() => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  \(\d+\)$/.test(document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-node[data-path="/3/0/13"] > .lwm2m-x-row .lwm2m-x-value')?.textContent ?? ''), undefined, { timeout: 15_000 });
  });

  it('executes Reboot /3/0/4, and the device registers again: the list shows its new registration', async () => {
    const before = await device('sim-1').getAttribute('data-registered-at');
    assert.ok(before);
    await open('sim-1', '/3/0/4');
    assert.equal(await row('sim-1', '/3/0/4').locator('.lwm2m-x-meta').textContent(), 'E');
    await act('sim-1', '/3/0/4', 'execute');
    await item('sim-1', '/3/0/4').locator('.lwm2m-x-submit').click();
    await page.waitForFunction((before) => {
      const registered = document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"]')?.getAttribute('data-registered-at');
      return registered && Date.parse(registered) > Date.parse(before);
    }, before, { timeout: 30_000 });
    assert.match((await value('sim-1', '/3/0/4').textContent()) ?? '', /^executed at /);
    // the same device row, its tree still open
    assert.equal(await page.locator('.lwm2m-x-device[data-endpoint="sim-1"]').count(), 1);
    assert.equal(await row('sim-1', '/3/0/9').isVisible(), true);
  });

  it("shows a device's error next to the item, with its CoAP code", async () => {
    // the model's Device object has ExtDevInfo (/3/0/22); the simulated device does not
    await open('sim-1', '/3/0/22');
    await act('sim-1', '/3/0/22', 'read');
    const error = item('sim-1', '/3/0/22').locator('> .lwm2m-x-error');
    await error.waitFor({ state: 'visible', timeout: 15_000 });
    assert.match((await error.textContent()) ?? '', /^4\.04 NOT_FOUND /);
    // bad input is refused in the browser before anything is sent
    await open('sim-1', '/3/0/13');
    await act('sim-1', '/3/0/13', 'attributes');
    await item('sim-1', '/3/0/13').locator('.lwm2m-x-submit').click();
    assert.equal(await item('sim-1', '/3/0/13').locator('> .lwm2m-x-error').textContent(), 'fill at least one attribute');
    await item('sim-1', '/3/0/13').locator('.lwm2m-x-form .red-ui-button:not(.lwm2m-x-submit)').click();
    await row('sim-1', '/3/0/22').locator('.lwm2m-x-path').click();
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-error.png') });
  });

  it('observes the temperature /3303/0/5700: two different values arrive in the tree; Cancel stops it', async () => {
    const temperature = await open('sim-1', '/3303/0/5700');
    assert.equal(await temperature.locator('.lwm2m-x-name').textContent(), 'Sensor Value');
    await act('sim-1', '/3303/0/5700', 'observe');
    await temperature.locator('.lwm2m-x-observed').waitFor({ state: 'visible', timeout: 15_000 });
    const shown = () => value('sim-1', '/3303/0/5700').textContent();
    await page.waitForFunction(() => /^-?\d+(\.\d+)?( |$)/.test(document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-node[data-path="/3303/0/5700"] > .lwm2m-x-row .lwm2m-x-value')?.textContent ?? ''), undefined, { timeout: 15_000 });
    const seen = [await shown()];
    // the simulated sensor changes every 5 s; each notification replaces the value shown
    for (let notification = 0; notification < 2; notification++) {
      await page.waitForFunction(
        (previous) => {
          const text = document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-node[data-path="/3303/0/5700"] > .lwm2m-x-row .lwm2m-x-value')?.textContent;
          return text !== previous && /^-?\d+(\.\d+)?( |$)/.test(text ?? '');
        },
        seen.at(-1),
        { timeout: 60_000 },
      );
      seen.push(await shown());
    }
    // each notification changed the value shown (the simulated sensor may come back to an earlier value: 21.25, 21.52, 21.25)
    assert.ok(seen[1] !== seen[0] && seen[2] !== seen[1], `each notification changed the value: ${seen.join(', ')}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-observe.png') });
    // the README's: the sidebar, taller, from the top of the list (values read and observed, an error)
    await page.setViewportSize({ width: 1400, height: 1300 });
    await page.locator('.lwm2m-x-list').evaluate((list) => ((list as unknown as { scrollTop: number }).scrollTop = 0));
    await row('sim-1', '/3303/0/5700').locator('.lwm2m-x-path').click();
    const sidebar = await page.locator('#red-ui-sidebar').boundingBox();
    assert.ok(sidebar);
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-sidebar.png'), clip: sidebar });
    await page.setViewportSize({ width: 1400, height: 900 });
    await act('sim-1', '/3303/0/5700', 'cancel');
    await temperature.locator('.lwm2m-x-observed').waitFor({ state: 'hidden', timeout: 15_000 });
    assert.equal(await temperature.locator('.lwm2m-x-action-observe').isVisible(), true, 'Observe is offered again');
  });

  it('the Trace panel: the CoAP messages of those operations, filtered by endpoint, each with its options and decoded payload; stopped and started again', async () => {
    // the demo's server keeps the last 1000 messages (its Trace setting)
    await page.locator('.lwm2m-x-show-trace').click();
    const filter = page.locator('.lwm2m-x-trace-filter');
    await filter.pressSequentially('sim-1');
    // the panel reloads once typing pauses: then only sim-1's messages show
    await page.waitForFunction(() => {
      const lines = [...document.querySelectorAll('.lwm2m-x-trace-row')];
      return lines.length > 0 && lines.every((line) => / sim-1|\dsim-1/.test(line.textContent ?? ''));
    }, undefined, { timeout: 15_000 });
    const rows = () => page.$$eval('.lwm2m-x-trace-row', (lines) => lines.map((line) => line.textContent ?? ''));
    const has = (pattern: RegExp) => async () => (await rows()).some((line) => pattern.test(line));
    // the reads, the write, the reboot and the registration after it, the observation and its notifications, all of sim-1
    const expected: Array<[string, RegExp]> = [
      ['the battery read', /sim-1CONGET\/3\/0\/9/],
      ['the write of the UTC offset', /sim-1CONPUT\/3\/0\/14/],
      ['the reboot', /sim-1CONPOST\/3\/0\/4/],
      ['the registration after the reboot', /sim-1CONPOST\/rd /],
      ['the observation', /sim-1CONGET\/3303\/0\/5700.*Observe 0/],
      ['the answers', /sim-1ACK2\.05/],
      ['a notification', /sim-1(CON|NON)2\.05Observe \d+/],
    ];
    for (const [what, pattern] of expected) {
      await page.waitForFunction(
        (source) => [...document.querySelectorAll('.lwm2m-x-trace-row')].some((line) => new RegExp(source).test(line.textContent ?? '')),
        pattern.source,
        { timeout: 15_000 },
      ).catch(async () => assert.fail(`${what}: no row like ${pattern} in\n${(await rows()).join('\n')}`));
      assert.ok(await has(pattern)(), what);
    }
    const shown = await rows();
    assert.deepEqual(shown.filter((line) => !/^\d\d:\d\d:\d\d\.\d{3}sim-1/.test(line)), [], 'only sim-1, each with its time');
    // a row opens to its options and payload, decoded by its Content-Format
    const answer = page.locator('.lwm2m-x-trace-row', { hasText: /ACK2\.05.*(tlv|senml|cbor|text)/ }).last();
    await answer.click();
    const details = JSON.parse((await page.locator('.lwm2m-x-trace-details').last().textContent()) ?? '{}') as { payload?: { as?: string; value?: unknown }; messageId?: number; token?: string };
    assert.equal(typeof details.messageId, 'number');
    assert.match(details.token ?? '', /^[0-9a-f]+$/);
    assert.ok(details.payload && details.payload.as && details.payload.value !== undefined, JSON.stringify(details));
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-trace.png') });
    const sidebar = await page.locator('#red-ui-sidebar').boundingBox();
    assert.ok(sidebar);
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-trace-sidebar.png'), clip: sidebar });
    // stopped: the panel offers to start it again, and does
    await page.locator('.lwm2m-x-trace-stop').click();
    await page.locator('.lwm2m-x-trace-off').waitFor({ state: 'visible', timeout: 10_000 });
    await page.locator('.lwm2m-x-trace-size').fill('500');
    await page.locator('.lwm2m-x-trace-start').click();
    await page.locator('.lwm2m-x-trace-off').waitFor({ state: 'hidden', timeout: 10_000 });
    const size = await page.evaluate(async () => ((await (await fetch('lwm2m/servers/demo-server/trace?limit=0')).json()) as { size: number }).size);
    assert.equal(size, 500);
    // stopping dropped what was kept; new messages arrive live while the panel shows: a read of sim-1's battery
    await page.waitForFunction(() => ![...document.querySelectorAll('.lwm2m-x-trace-row')].some((line) => /GET\/3\/0\/9/.test(line.textContent ?? '')), undefined, { timeout: 10_000 });
    await page.evaluate(() => fetch('lwm2m/servers/demo-server/devices/sim-1/read', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/3/0/9' }) }));
    await page.waitForFunction(() => [...document.querySelectorAll('.lwm2m-x-trace-row')].some((line) => /sim-1CONGET\/3\/0\/9/.test(line.textContent ?? '')), undefined, { timeout: 15_000 });
    await page.locator('.lwm2m-x-show-devices').click();
  });

  it('on an instance: writes several resources at once and reads them all; creates an instance, writes its attributes, discovers them, deletes it', async () => {
    await device('sim-2').locator('.lwm2m-x-device-row').click();
    await item('sim-2', '/3').waitFor({ state: 'visible', timeout: 10_000 });
    await open('sim-2', '/3/0/14');
    // Write on /3/0: an input per writable resource, by its type; the filled ones are written (a partial update)
    await act('sim-2', '/3/0', 'write');
    const form = item('sim-2', '/3/0').locator('> .lwm2m-x-form');
    assert.deepEqual(await form.locator('.lwm2m-x-field > span').allTextContents(), ['13 Current Time', '14 UTC Offset', '15 Timezone']);
    assert.deepEqual(await form.locator('.lwm2m-x-input').evaluateAll((inputs) => inputs.map((input) => [input.getAttribute('data-type'), input.getAttribute('type')])), [['Time', 'datetime-local'], ['String', 'text'], ['String', 'text']]);
    await form.locator('.lwm2m-x-input').nth(1).fill('+03:00');
    await form.locator('.lwm2m-x-input').nth(2).fill('Europe/Paris');
    await form.locator('.lwm2m-x-submit').click();
    await form.waitFor({ state: 'hidden', timeout: 15_000 });
    for (const resource of ['/3/0/14', '/3/0/15']) await value('sim-2', resource).evaluate((element) => (element.textContent = ''));
    // one read of the instance fills in every resource
    await act('sim-2', '/3/0', 'read');
    await page.waitForFunction(() => document.querySelector('.lwm2m-x-device[data-endpoint="sim-2"] .lwm2m-x-node[data-path="/3/0/15"] > .lwm2m-x-row .lwm2m-x-value')?.textContent === '"Europe/Paris"', undefined, { timeout: 15_000 });
    assert.equal(await value('sim-2', '/3/0/14').textContent(), '"+03:00"');
    assert.match((await value('sim-2', '/3/0/9').textContent()) ?? '', /^\d+ %$/);

    // Create on the Temperature object: the device announces the new instance (an Update), and the tree shows it
    await act('sim-2', '/3303', 'create');
    const create = item('sim-2', '/3303').locator('> .lwm2m-x-form');
    await create.locator('.lwm2m-x-instance').fill('7');
    await create.locator('.lwm2m-x-resources').fill('{"5700": 18.5, "5750": "outdoor"}');
    await create.locator('.lwm2m-x-submit').click();
    await row('sim-2', '/3303/7').waitFor({ state: 'visible', timeout: 30_000 });
    await open('sim-2', '/3303/7/5700');
    await act('sim-2', '/3303/7/5700', 'read');
    await page.waitForFunction(() => document.querySelector('.lwm2m-x-device[data-endpoint="sim-2"] .lwm2m-x-node[data-path="/3303/7/5700"] > .lwm2m-x-row .lwm2m-x-value')?.textContent === '18.5', undefined, { timeout: 15_000 });
    // Write-Attributes, then Discover shows them
    await act('sim-2', '/3303/7/5700', 'attributes');
    const attributes = item('sim-2', '/3303/7/5700').locator('> .lwm2m-x-form');
    await attributes.locator('.lwm2m-x-attr-pmin').fill('2');
    await attributes.locator('.lwm2m-x-attr-pmax').fill('20');
    await attributes.locator('.lwm2m-x-attr-st').fill('0.5');
    await attributes.locator('.lwm2m-x-submit').click();
    await attributes.waitFor({ state: 'hidden', timeout: 15_000 });
    await act('sim-2', '/3303/7/5700', 'discover');
    const links = item('sim-2', '/3303/7/5700').locator('.lwm2m-x-linklist');
    await links.waitFor({ state: 'visible', timeout: 15_000 });
    assert.match((await links.textContent()) ?? '', /^\/3303\/7\/5700 {2}pmin=2 pmax=20 st=0\.5$/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-instance.png') });
    // Delete, after a confirmation: the instance leaves the tree with the device's next Update
    await act('sim-2', '/3303/7', 'delete');
    await item('sim-2', '/3303/7').locator('> .lwm2m-x-form .lwm2m-x-submit').click();
    await item('sim-2', '/3303/7').waitFor({ state: 'detached', timeout: 30_000 });
    assert.equal(await row('sim-2', '/3303/0').isVisible(), true);
  });

  it('shows values as their type says: a unit, opaque bytes as hex and base64, a time as a date, a multiple resource by instance', async () => {
    const shown = await page.evaluate(() => {
      const explorer = (globalThis as unknown as { LwM2MExplorer: { valueText(value: unknown, resource?: object): string } }).LwM2MExplorer;
      return [
        explorer.valueText(87, { type: 'Integer', units: '/100' }),
        explorer.valueText(21.5, { type: 'Float', units: 'Cel' }),
        explorer.valueText({ $opaque: '48656c6c6f' }, { type: 'Opaque', units: '' }),
        explorer.valueText(1700000000, { type: 'Time', units: 's' }),
        explorer.valueText({ 0: 3800, 1: 5000 }, { type: 'Integer', units: 'mV', multiple: true }),
        explorer.valueText('+01:00', { type: 'String', units: '' }),
        explorer.valueText(true, { type: 'Boolean', units: '' }),
      ];
    });
    assert.deepEqual(shown, ['87 %', '21.5 Cel', '48 65 6c 6c 6f  (base64 SGVsbG8=)', '2023-11-14T22:13:20Z  (1700000000)', '0: 3800 mV, 1: 5000 mV', '"+01:00"', 'true']);
  });

  it('copies a ready observe node for a resource; Ctrl+I imports it with server, endpoint and path', async () => {
    await act('sim-1', '/3303/0/5700', 'copy');
    const menu = item('sim-1', '/3303/0/5700').locator('.lwm2m-x-form');
    assert.deepEqual(await menu.locator('button').allTextContents(), ['read node', 'observe node']);
    await menu.locator('.lwm2m-x-copy-observe').click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    const nodes = JSON.parse(copied) as Array<Record<string, unknown>>;
    assert.equal(nodes.length, 1);
    assert.deepEqual({ type: nodes[0]!.type, server: nodes[0]!.server, endpoint: nodes[0]!.endpoint, path: nodes[0]!.path, autoObserve: nodes[0]!.autoObserve }, { type: 'lwm2m-observe', server: 'demo-server', endpoint: 'sim-1', path: '/3303/0/5700', autoObserve: true });

    const before = await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.nodes.filterNodes({ type: 'lwm2m-observe' }).map((node) => node.id));
    await page.locator('#red-ui-workspace-chart').click({ position: { x: 300, y: 500 } });
    await page.keyboard.press('Control+i');
    const importText = page.locator('#red-ui-clipboard-dialog-import-text');
    await importText.waitFor({ state: 'visible', timeout: 10_000 });
    await importText.fill(copied);
    // the dialog checks its text on keyup only (fill types none): a key, as a user's typing would
    await importText.press('End');
    await page.locator('#red-ui-clipboard-dialog-ok').click();
    // the imported node follows the mouse until it is dropped
    await page.mouse.move(500, 520, { steps: 5 });
    await page.mouse.click(500, 520);
    await page.waitForFunction((count) => (globalThis as unknown as { RED: Red }).RED.nodes.filterNodes({ type: 'lwm2m-observe' }).length > count, before.length, { timeout: 10_000 });
    const imported = await page.evaluate((before) => (globalThis as unknown as { RED: Red }).RED.nodes.filterNodes({ type: 'lwm2m-observe' }).filter((node) => !before.includes(node.id as string)).map((node) => ({ server: node.server, endpoint: node.endpoint, path: node.path, valid: node.valid })), before);
    assert.deepEqual(imported, [{ server: 'demo-server', endpoint: 'sim-1', path: '/3303/0/5700', valid: true }]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-copy.png') });

    // deployed, it observes at once; the tab reads its devices again (the devices register anew
    // after a full deploy: on a busy machine after the tab's reload, so an open tree may close)
    await page.evaluate(() => (globalThis as unknown as { RED: { actions: { invoke(name: string, ...args: unknown[]): void } } }).RED.actions.invoke('core:deploy-flows', true));
    await page.waitForFunction(() => !(globalThis as unknown as { RED: Red }).RED.nodes.dirty(), null, { timeout: 60_000 });
    await page.waitForFunction(() => document.querySelectorAll('.lwm2m-x-device').length === 3, undefined, { timeout: 60_000 });
  });
  it('follows registrations live: devices added to the flow appear in the list (a queue-mode one awake), and removed they leave', async () => {
    type Editor = {
      nodes: { node(id: string): Record<string, unknown>; import(nodes: object[], options: object): void; remove(id: string): void; dirty(value?: boolean): boolean };
      actions: { invoke(name: string, ...args: unknown[]): void };
    };
    const deploy = async () => {
      // the editor ignores a deploy while a dialog's shade is up, or one is under way
      await page.waitForSelector('#red-ui-header-shade', { state: 'hidden' });
      await page.waitForSelector('#red-ui-palette-shade', { state: 'hidden', timeout: 30_000 });
      await page.evaluate(() => (globalThis as unknown as { RED: Editor }).RED.actions.invoke('core:deploy-flows', true));
      await page.waitForFunction(() => !(globalThis as unknown as { RED: Editor }).RED.nodes.dirty(), null, { timeout: 60_000 });
    };
    await page.evaluate(() => {
      const editor = (globalThis as unknown as { RED: Editor }).RED;
      const uri = String(editor.nodes.node('demo-sim').serverUri);
      editor.nodes.import(
        [
          { id: 'live-sim', type: 'lwm2m-device-sim', z: 'demo-tab', name: '', serverUri: uri, endpoint: 'live-1', count: '1', lifetime: '120', version: '1.1', binding: 'U', objects: 'temperature', x: 700, y: 600, wires: [[]] },
          { id: 'live-queue', type: 'lwm2m-device-sim', z: 'demo-tab', name: '', serverUri: uri, endpoint: 'live-q', count: '1', lifetime: '120', version: '1.1', binding: 'UQ', objects: 'temperature', x: 700, y: 660, wires: [[]] },
        ],
        { generateIds: false, addFlow: false },
      );
      // imported as data, the flow is not marked changed: the deploy would send nothing
      editor.nodes.dirty(true);
    });
    await deploy();
    await device('live-1').waitFor({ state: 'visible', timeout: 30_000 });
    await device('live-q').waitFor({ state: 'visible', timeout: 30_000 });
    assert.deepEqual(await page.$$eval('.lwm2m-x-device .lwm2m-x-endpoint', (names) => names.map((name) => name.textContent)), ['live-1', 'live-q', 'sim-1', 'sim-2', 'sim-3'], 'in order');
    // LwM2M 1.1: binding U, queue mode apart (the Q parameter)
    assert.equal(await device('live-q').locator('.lwm2m-x-binding').textContent(), 'U · queue mode');
    assert.equal(await device('live-1').locator('.lwm2m-x-binding').textContent(), 'U');
    // a queue-mode device is awake after it was heard from (asleep after the server's awake time, 93 s by default)
    assert.equal(await device('live-q').locator('.lwm2m-x-state').textContent(), 'awake');
    assert.equal(await device('live-1').locator('.lwm2m-x-state').textContent(), 'online');
    await page.evaluate(() => {
      const editor = (globalThis as unknown as { RED: Editor }).RED;
      editor.nodes.remove('live-sim');
      editor.nodes.remove('live-queue');
      editor.nodes.dirty(true);
    });
    await deploy();
    await device('live-1').waitFor({ state: 'detached', timeout: 30_000 });
    await device('live-q').waitFor({ state: 'detached', timeout: 30_000 });
    // the demo's own devices register anew after the full deploy: the list follows them
    await page.waitForFunction(() => document.querySelector('.lwm2m-x-count')?.textContent === '3 devices', undefined, { timeout: 60_000 });
  });

});

describe('the device explorer with adminAuth on', function () {
  this.timeout(180_000);
  let demo: Demo | undefined;
  let browser: Browser | undefined;
  let base = '';
  const editorApi = path.dirname(require.resolve('@node-red/editor-api/package.json'));
  // Node-RED's own hashing library, so the test needs nothing Node-RED does not bring
  const bcrypt = require(require.resolve('bcryptjs', { paths: [editorApi] })) as { hashSync(password: string, rounds: number): string };

  /** An access token of the editor's HTTP API for a user (the scope asked for is theirs). */
  async function token(username: string, password: string, scope: string): Promise<string> {
    const response = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
    });
    assert.equal(response.status, 200, `${username} logs in`);
    return ((await response.json()) as { access_token: string }).access_token;
  }
  const call = (method: string, url: string, bearer?: string, body?: unknown) =>
    fetch(`${base}/${url}`, { method, headers: { ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });

  before(async () => {
    const users = [
      { username: 'admin', password: bcrypt.hashSync('admin-secret', 8), permissions: '*' },
      { username: 'viewer', password: bcrypt.hashSync('viewer-secret', 8), permissions: 'read' },
    ];
    demo = await startDemo({
      prefix: 'lwm2m-explorer-',
      settings: `module.exports = {\n  flowFile: 'flows.json',\n  credentialSecret: false,\n  editorTheme: { tours: false, projects: { enabled: false } },\n  telemetry: { enabled: false },\n  adminAuth: { type: 'credentials', users: ${JSON.stringify(users)} },\n};\n`,
    });
    base = `http://127.0.0.1:${demo.port}`;
  });

  after(async () => {
    await browser?.close();
    await stopDemo(demo);
  });

  it('refuses a user without lwm2m-server.write what changes a device, and lets them look; the tab greys those actions out', async () => {
    const viewer = await token('viewer', 'viewer-secret', 'read');
    const admin = await token('admin', 'admin-secret', '*');
    assert.equal((await call('GET', 'lwm2m/servers')).status, 401, 'no token, nothing');
    assert.equal((await call('POST', `lwm2m/servers/demo-server/devices/sim-1/read`, undefined, { path: '/3/0/9' })).status, 401, 'no token, no read');
    assert.equal((await call('POST', `lwm2m/servers/demo-server/devices/sim-1/execute`, undefined, { path: '/3/0/4' })).status, 401, 'no token, no execute');
    const servers = (await (await call('GET', 'lwm2m/servers', viewer)).json()) as Array<{ id: string }>;
    assert.deepEqual(servers.map((server) => server.id), ['demo-server']);
    const sim1 = 'lwm2m/servers/demo-server/devices/sim-1';
    const read = await call('POST', `${sim1}/read`, viewer, { path: '/3/0/14' });
    assert.equal(read.status, 200, 'lwm2m-server.read: a read');
    const write = await call('POST', `${sim1}/write`, viewer, { path: '/3/0/14', value: '+05:00' });
    // Node-RED answers a missing permission with 401, as it does for its own routes
    assert.equal(write.status, 401, 'no lwm2m-server.write: no write');
    assert.equal((await call('POST', `${sim1}/execute`, viewer, { path: '/3/0/4' })).status, 401);
    assert.equal((await call('POST', `${sim1}/observe`, viewer, { path: '/3303/0/5700' })).status, 401);
    assert.equal((await call('POST', `${sim1}/write-attributes`, viewer, { path: '/3303/0/5700', attributes: { pmin: 5 } })).status, 401);
    assert.equal((await call('POST', `${sim1}/create`, viewer, { path: '/3303', value: {} })).status, 401);
    assert.equal((await call('POST', `${sim1}/delete`, viewer, { path: '/3303/0' })).status, 401);
    assert.equal(((await (await call('POST', `${sim1}/read`, viewer, { path: '/3/0/14' })).json()) as { value: unknown }).value, '+00:00', 'the refused write changed nothing');
    assert.equal((await call('POST', `${sim1}/write`, admin, { path: '/3/0/14', value: '+05:00' })).status, 200, '"*" may');

    // in the editor, logged in as the viewer: the tab lists the devices and reads, the rest is greyed out
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`${base}/`);
    await page.fill('#node-dialog-login-username', 'viewer');
    await page.fill('#node-dialog-login-password', 'viewer-secret');
    await page.click('#node-dialog-login-submit');
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="lwm2m-read"]', { timeout: 60_000 });
    await page.evaluate(() => (globalThis as unknown as { RED: Red }).RED.sidebar.show('lwm2m-explorer'));
    const sim = page.locator('.lwm2m-x-device[data-endpoint="sim-1"]');
    await sim.waitFor({ state: 'visible', timeout: 30_000 });
    await sim.locator('.lwm2m-x-device-row').click();
    for (const part of ['/3', '/3/0', '/3/0/14']) await sim.locator(`.lwm2m-x-node[data-path="${part}"] > .lwm2m-x-row .lwm2m-x-path`).click();
    const utc = sim.locator('.lwm2m-x-node[data-path="/3/0/14"] > .lwm2m-x-row');
    assert.equal(await utc.locator('.lwm2m-x-action-read').isDisabled(), false);
    assert.equal(await utc.locator('.lwm2m-x-action-write').isDisabled(), true);
    assert.equal(await utc.locator('.lwm2m-x-action-observe').isDisabled(), true);
    assert.match((await utc.locator('.lwm2m-x-action-write').getAttribute('title')) ?? '', /needs the lwm2m-server\.write permission/);
    await utc.locator('.lwm2m-x-action-read').click();
    await page.waitForFunction(() => document.querySelector('.lwm2m-x-device[data-endpoint="sim-1"] .lwm2m-x-node[data-path="/3/0/14"] > .lwm2m-x-row .lwm2m-x-value')?.textContent === '"+05:00"', undefined, { timeout: 15_000 });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-viewer.png') });
  });
});
