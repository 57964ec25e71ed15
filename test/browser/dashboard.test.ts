/**
 * The example "Fleet dashboard (FlowFuse Dashboard 2)" in a real browser: Node-RED started as
 * `npm start` does (which links the dashboard, a development dependency, into its user directory)
 * with the example's flow, /dashboard opened in headless Chromium. The table lists the simulated
 * devices, the chart draws their temperature, Read battery shows the chosen device's level, Reboot
 * reboots it, and the form writes a resource and shows what the device reads back.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { dashboardDir } from '../helpers/dashboard';
import { onFreePorts, readFlow } from '../helpers/flows';
import { launchChromium, startDemo, stopDemo, type Demo } from '../helpers/demo';

const root = path.resolve(__dirname, '../../..');
const EXAMPLE = 'examples/Fleet dashboard (FlowFuse Dashboard 2).json';
const ARTIFACTS = path.join(root, 'test', 'artifacts');
const SENSORS = ['sensor-1', 'sensor-2', 'sensor-3'];

/** The table's rows, each as the texts of its cells. */
function tableRows(page: Page): Promise<string[][]> {
  return page.$$eval('#nrdb-ui-widget-fd-table tbody tr', (rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent?.trim() ?? '')));
}

/** The chart's series (one per endpoint) and how many points each has, from the chart's ECharts instance. */
function chartSeries(page: Page): Promise<Array<{ name: string; points: number }>> {
  return page.evaluate(() => {
    // the dashboard hands its charts to end-to-end tests when window.Cypress is set (see addInitScript)
    const charts = (globalThis as unknown as { uiCharts?: Record<string, { chart?: { getOption(): { series?: Array<{ name: string; data?: unknown[] }> } } }> }).uiCharts;
    const series = charts?.['fd-chart']?.chart?.getOption().series ?? [];
    return series.map((entry) => ({ name: String(entry.name), points: entry.data?.length ?? 0 }));
  });
}

/** The value a ui-text widget shows. */
async function textOf(page: Page, id: string): Promise<string> {
  return ((await page.textContent(`#nrdb-ui-widget-${id} .nrdb-ui-text-value`)) ?? '').trim();
}

/** Waits until `test` holds, polling; fails with `what` and the last state seen. */
async function until<T>(what: string, probe: () => Promise<T>, test: (value: T) => boolean, timeout = 60_000): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (test(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}; last seen: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('the Fleet dashboard example in headless Chromium', function () {
  this.timeout(180_000);
  let demo: Demo | undefined;
  let browser: Browser;
  let page: Page;
  let base = '';

  before(async () => {
    // CI installs chromium, and npm ci the dashboard: either missing is a failure, never a skip
    dashboardDir();
    // the example as the flow of a fresh user directory (npm start keeps flows it finds), on a free port
    demo = await startDemo({ prefix: 'lwm2m-dashboard-', flows: await onFreePorts(readFlow(EXAMPLE)), ready: (output) => output.includes('Started flows') });
    base = `http://127.0.0.1:${demo.port}`;
    assert.match(demo.output(), /Dashboard 2\.0 \(v[\d.]+\) started at \/dashboard/, 'the dashboard started');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.addInitScript(() => ((globalThis as unknown as { Cypress: boolean }).Cypress = true));
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector('#nrdb-ui-widget-fd-table', { timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    await stopDemo(demo);
  });

  it('the table shows every simulated device: endpoint, binding, lifetime, state, and when it was last seen', async () => {
    const rows = await until('four devices in the table', () => tableRows(page), (found) => found.length === 4);
    assert.deepEqual(rows.map((cells) => cells.slice(0, 4)), [
      ['sensor-1', 'U', '60', 'registered'],
      ['sensor-2', 'U', '60', 'registered'],
      ['sensor-3', 'U', '60', 'registered'],
      ['tracker', 'U (queue mode)', '120', 'registered'],
    ]);
    // shown as a date and time (the browser's locale), with this year in it
    for (const cells of rows) assert.match(cells[4] ?? '', new RegExp(String(new Date().getFullYear())), `last seen: ${cells[4]}`);
  });

  it("the chart draws each sensor's temperature as notifications arrive", async () => {
    const series = await until('two points of each sensor in the chart', () => chartSeries(page), (found) => SENSORS.every((name) => (found.find((entry) => entry.name === name)?.points ?? 0) >= 2));
    assert.deepEqual(series.map((entry) => entry.name).sort(), SENSORS, 'one series per sensor, none for the tracker (it has no temperature)');
    const area = await page.$eval('#nrdb-ui-widget-fd-chart canvas', (canvas) => (canvas as unknown as { width: number; height: number }).width * (canvas as unknown as { height: number }).height);
    assert.ok(area > 0, 'the chart has a canvas to draw on');
  });

  it('a device chosen in the list: Read battery shows its level, Reboot reboots it', async () => {
    await page.click('#nrdb-ui-widget-fd-device .v-field');
    await page.click('.v-overlay .v-list-item:has-text("sensor-2")');
    await page.click('#nrdb-ui-widget-fd-read-button button');
    const battery = await until('the battery level shown', () => textOf(page, 'fd-battery'), (text) => text !== '');
    assert.match(battery, /^sensor-2: \d{1,3} %$/);

    await page.click('#nrdb-ui-widget-fd-reboot-button button');
    await page.waitForSelector('.v-snackbar:has-text("sensor-2: rebooting (2.04)")', { timeout: 30_000 });
  });

  it('the form writes a resource and shows the value the device reads back; the Lifetime reaches the table', async () => {
    const inputs = '#nrdb-ui-widget-fd-form input';
    await page.locator(inputs).nth(0).fill('sensor-3');
    await page.locator(inputs).nth(1).fill('/1/0/1');
    await page.locator(inputs).nth(2).fill('90');
    await page.click('#nrdb-ui-widget-fd-form button:has-text("Write")');
    assert.equal(await until('the value read back', () => textOf(page, 'fd-written'), (text) => text !== ''), 'sensor-3 /1/0/1 = 90');
    // the device sends an Update with its new lifetime; the table follows the registration events
    await until("sensor-3's new lifetime in the table", () => tableRows(page), (rows) => rows.find((cells) => cells[0] === 'sensor-3')?.[2] === '90');

    // the picture of the README (docs/dashboard.png is a copy of one): once Reboot's notification has gone
    await page.waitForSelector('.v-snackbar', { state: 'hidden', timeout: 30_000 });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  });

  it('the editor shows the example with every node known and valid (no red triangles)', async () => {
    const editor = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await editor.goto(`${base}/`);
      await editor.waitForSelector('.red-ui-palette-node[data-palette-type="ui-table"]', { timeout: 60_000 });
      const problems = await editor.evaluate(() => {
        const red = (globalThis as unknown as { RED: { nodes: { eachNode(each: (node: { id: string; type: string; valid?: boolean }) => void): void; eachConfig(each: (node: { id: string; type: string; valid?: boolean }) => void): void; getType(type: string): unknown } } }).RED;
        const found: string[] = [];
        const check = (node: { id: string; type: string; valid?: boolean }) => {
          if (!red.nodes.getType(node.type)) found.push(`${node.id}: unknown type ${node.type}`);
          else if (node.valid === false) found.push(`${node.id} (${node.type}) is invalid`);
        };
        red.nodes.eachNode(check);
        red.nodes.eachConfig(check);
        return found;
      });
      assert.deepEqual(problems, []);
    } finally {
      await editor.close();
    }
  });
});
