/**
 * The layers of DESIGN.md, checked on the sources: the server and the client share only what lies
 * below both (transport, content, model, path, protocol). (That lib/ keeps Node-RED out is checked
 * in package.test.ts.)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

/** Every module a TypeScript file under `folder` imports, with the file that imports it. */
function importsUnder(folder: string): Array<{ file: string; from: string }> {
  const found: Array<{ file: string; from: string }> = [];
  const walk = (directory: string) => {
    for (const entry of fs.readdirSync(directory, { withFileTypes: true })) {
      const full = path.join(directory, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) {
        const text = fs.readFileSync(full, 'utf8');
        for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"]([^'"]+)['"]/g)) {
          const specifier = match[1]!;
          // relative imports as paths from the project root (lib/client/…), packages as they are
          const from = specifier.startsWith('.') ? path.relative(root, path.resolve(path.dirname(full), specifier)) : specifier;
          found.push({ file: path.relative(root, full), from });
        }
      }
    }
  };
  walk(path.join(root, folder));
  return found;
}

describe('layers', () => {
  it('lib/server never imports lib/client, and lib/client never imports lib/server', () => {
    const server = importsUnder('lib/server').filter(({ from }) => from.startsWith('lib/client'));
    const client = importsUnder('lib/client').filter(({ from }) => from.startsWith('lib/server'));
    assert.deepEqual([...server, ...client], []);
    // the check sees real imports: the server does import the layers below it
    assert.ok(importsUnder('lib/server').some(({ from }) => from === 'lib/protocol'));
  });
});
