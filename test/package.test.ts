import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

describe('package', () => {
  it('is the scoped Apache-2.0 Node-RED package the palette registry expects', () => {
    assert.equal(pkg.name, '@lwm2m-red/node-red-lwm2m');
    assert.equal(pkg.license, 'Apache-2.0');
    assert.ok(pkg.repository?.url, 'repository');
    assert.ok(pkg.keywords.includes('node-red') && pkg.keywords.includes('lwm2m'));
    assert.equal(pkg['node-red'].version, '>=4.0.0');
    assert.equal(typeof pkg['node-red'].nodes, 'object');
    assert.equal(pkg.engines.node, '>=18.5');
    assert.equal(pkg.scripts.prepare, 'npm run build');
  });

  it('loads its main entry, the public API, without Node-RED', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const api = require(root);
    for (const name of ['encode', 'decode', 'encodeComposite', 'decodeComposite', 'decodeRecords', 'LwM2MPath', 'ObjectModel', 'ContentFormat', 'ContentFormatError']) {
      assert.ok(api[name], name);
    }
    assert.equal(api.ContentFormat.LWM2M_CBOR, 11544);
    assert.equal(path.relative(root, require.resolve(root)), path.join('dist', 'lib', 'index.js'));
  });

  it('has an `npm start` demo that runs and shows every format round-tripping', () => {
    assert.equal(pkg.scripts.start, 'node dist/demo/data-layer.js');
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
});
