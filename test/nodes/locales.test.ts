/**
 * The translations of the editor texts (locales/<lang>/<type>.json) and help
 * (locales/<lang>/<type>.html) beside the en-US originals: the same keys, every placeholder kept,
 * the same help blocks with the same code; and Node-RED really serving them to an editor in that
 * language. Adding a language is adding its code to LANGUAGES.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freeTcpPort } from '../helpers/ports';

const LANGUAGES = ['de', 'ja'];

const root = path.resolve(__dirname, '../../..');
// the Node-RED the node tests run in (test/helpers/node-red.ts): this checkout's, or LWM2M_NODE_RED_DIR's
const RED_JS = require.resolve('node-red/red.js', process.env.LWM2M_NODE_RED_DIR ? { paths: [path.resolve(process.env.LWM2M_NODE_RED_DIR)] } : undefined);
const locales = path.join(root, 'locales');
const PACKAGE = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string; 'node-red': { nodes: object; plugins?: object } };
const MODULE = PACKAGE.name;
const NODE_RED = PACKAGE['node-red'];
/** the plugins (the device explorer): a catalog each, served apart from the nodes' (GET /plugins/messages) */
const PLUGINS = Object.keys(NODE_RED.plugins ?? {}).sort();
const files = (ext: string): string[] => fs.readdirSync(path.join(locales, 'en-US')).filter((name) => name.endsWith(ext)).sort();
const CATALOGS = files('.json');
const HELP = files('.html');

type Catalog = { [key: string]: string | Catalog };
/** The text of locales/<lang>/<file>; a missing translation is a failure that names the file. */
function read(lang: string, file: string): string {
  const at = path.join(locales, lang, file);
  assert.ok(fs.existsSync(at), `locales/${lang}/${file} is missing`);
  return fs.readFileSync(at, 'utf8');
}
const readCatalog = (lang: string, file: string): Catalog => JSON.parse(read(lang, file)) as Catalog;
const readHelp = (lang: string, file: string): string => read(lang, file);

/** Every leaf of a catalog by its key path (`label.name`), with its value. */
function leaves(catalog: Catalog, prefix = ''): Map<string, unknown> {
  const found = new Map<string, unknown>();
  for (const [key, value] of Object.entries(catalog)) {
    const at = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object') for (const [inner, leaf] of leaves(value, at)) found.set(inner, leaf);
    else found.set(at, value);
  }
  return found;
}

/** The placeholders Node-RED's i18next fills in: `__name__` and `{{name}}`. */
const placeholders = (text: string): string[] => [...new Set(text.match(/__[A-Za-z0-9_]+?__|\{\{[^}]+\}\}/g) ?? [])];

/** The help blocks of a help file, by their data-help-name, in order. */
const helpNames = (html: string): string[] => [...html.matchAll(/<script type="text\/html" data-help-name="([^"]+)">/g)].map((match) => match[1]!);

/** The distinct contents of the <code> elements: paths, property names, values, which stay as they are. */
const codes = (html: string): Set<string> => new Set([...html.matchAll(/<code>([\s\S]*?)<\/code>/g)].map((match) => match[1]!));

describe('translations of the editor texts and help', () => {
  it('en-US has a catalog and a help file for every node of the palette, and a catalog for every plugin', () => {
    const types = Object.keys(NODE_RED.nodes).sort();
    assert.deepEqual(CATALOGS, [...types, ...PLUGINS].sort().map((name) => `${name}.json`));
    assert.deepEqual(HELP, types.map((type) => `${type}.html`));
  });

  for (const lang of LANGUAGES) {
    describe(`locales/${lang}`, () => {
      for (const file of CATALOGS) {
        it(`${file} has every en-US key, translated, and no other key`, () => {
          const original = leaves(readCatalog('en-US', file));
          const translated = leaves(readCatalog(lang, file));
          for (const [key, value] of original) {
            assert.ok(translated.has(key), `${lang}/${file}: ${key} is missing`);
            const translation = translated.get(key);
            if (typeof value === 'string') {
              assert.equal(typeof translation, 'string', `${lang}/${file}: ${key} is not a string`);
              assert.notEqual((translation as string).trim(), '', `${lang}/${file}: ${key} is empty`);
            } else assert.equal(typeof translation, typeof value, `${lang}/${file}: ${key}`);
          }
          assert.deepEqual([...translated.keys()].filter((key) => !original.has(key)), [], `${lang}/${file}: keys en-US does not have`);
        });

        it(`${file} keeps every placeholder of en-US`, () => {
          const translated = leaves(readCatalog(lang, file));
          for (const [key, value] of leaves(readCatalog('en-US', file))) {
            if (typeof value !== 'string') continue;
            const translation = String(translated.get(key) ?? '');
            for (const placeholder of placeholders(value)) assert.ok(translation.includes(placeholder), `${lang}/${file}: ${key} lost ${placeholder}: ${translation}`);
          }
        });
      }

      for (const file of HELP) {
        it(`${file} has the help blocks of en-US, with their code unchanged`, () => {
          const original = readHelp('en-US', file);
          const translated = readHelp(lang, file);
          assert.deepEqual(helpNames(translated), helpNames(original), `${lang}/${file}: data-help-name blocks`);
          assert.equal(translated.match(/<\/script>/g)?.length, helpNames(original).length, `${lang}/${file}: every block closed`);
          assert.notEqual(translated, original, `${lang}/${file} is the English text`);
          const kept = codes(translated);
          assert.deepEqual([...codes(original)].filter((code) => !kept.has(code)), [], `${lang}/${file}: <code> the translation lost or changed`);
        });
      }
    });
  }
});

describe('Node-RED serves the translations to the editor', function () {
  this.timeout(120_000);
  let nodeRed: ChildProcess;
  let userDir: string;
  let base: string;
  let output = '';

  before(async () => {
    // Node-RED with an empty flow and this palette installed in its user directory, as `npm start`
    // sets it up but without its rebuild of dist/: what is served is the build under test
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-locales-'));
    const installed = path.join(userDir, 'node_modules', ...MODULE.split('/'));
    fs.mkdirSync(path.dirname(installed), { recursive: true });
    fs.symlinkSync(root, installed, 'dir');
    fs.writeFileSync(path.join(userDir, 'settings.js'), "module.exports = { flowFile: 'flows.json', credentialSecret: false, editorTheme: { tours: false }, telemetry: { enabled: false } };\n");
    fs.writeFileSync(path.join(userDir, 'flows.json'), '[]');
    const port = await freeTcpPort();
    base = `http://127.0.0.1:${port}`;
    nodeRed = spawn(process.execPath, [RED_JS, '--userDir', userDir, '--port', String(port), 'flows.json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    nodeRed.stdout!.on('data', (chunk) => (output += chunk));
    nodeRed.stderr!.on('data', (chunk) => (output += chunk));
    while (!output.includes('Started flows')) {
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
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  for (const lang of LANGUAGES) {
    it(`locales/${lang}: the catalog of every plugin, as the editor asks for it (GET /plugins/messages?lng=${lang})`, async () => {
      assert.ok(PLUGINS.length > 0);
      const response = await fetch(`${base}/plugins/messages?lng=${lang}`, { headers: { Accept: 'application/json' } });
      assert.equal(response.status, 200);
      const served = (await response.json()) as Record<string, Catalog>;
      for (const plugin of PLUGINS) {
        assert.deepEqual(served[`${MODULE}/${plugin}`], readCatalog(lang, `${plugin}.json`), `${plugin}: the ${lang} catalog`);
        assert.notDeepEqual(served[`${MODULE}/${plugin}`], readCatalog('en-US', `${plugin}.json`), `${plugin}: not the English one`);
      }
    });

    it(`locales/${lang}: the catalog of every node, as the editor asks for it (GET /nodes/<module>/<type>/messages?lng=${lang})`, async () => {
      for (const file of CATALOGS.filter((name) => !PLUGINS.includes(path.basename(name, '.json')))) {
        const type = path.basename(file, '.json');
        const response = await fetch(`${base}/nodes/${MODULE}/${type}/messages?lng=${lang}`, { headers: { Accept: 'application/json' } });
        assert.equal(response.status, 200, type);
        const served = (await response.json()) as Catalog;
        assert.deepEqual(served, readCatalog(lang, file), `${type}: the ${lang} catalog`);
        assert.notDeepEqual(served, readCatalog('en-US', file), `${type}: not the English one`);
      }
      // one value checked by hand: the catalog carries the translation, not a fallback
      const read = (await (await fetch(`${base}/nodes/${MODULE}/lwm2m-read/messages?lng=${lang}`, { headers: { Accept: 'application/json' } })).json()) as { 'lwm2m-read': { label: { path: string } } };
      assert.notEqual(read['lwm2m-read'].label.path, 'Path');
      assert.equal(read['lwm2m-read'].label.path, (readCatalog(lang, 'lwm2m-read.json')['lwm2m-read'] as { label: { path: string } }).label.path);
    });

    it(`locales/${lang}: the help of every node, in the node definitions an editor in ${lang} loads (GET /nodes, Accept-Language: ${lang})`, async () => {
      const response = await fetch(`${base}/nodes`, { headers: { Accept: 'text/html', 'Accept-Language': lang } });
      assert.equal(response.status, 200);
      const definitions = await response.text();
      for (const file of HELP) {
        assert.ok(definitions.includes(readHelp(lang, file).trim()), `${file}: the ${lang} help`);
        assert.ok(!definitions.includes(readHelp('en-US', file).trim()), `${file}: not the English help`);
      }
    });
  }
});
