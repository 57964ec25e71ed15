#!/usr/bin/env node
// Builds dist/: a clean TypeScript compile, then copies the non-TypeScript files Node-RED needs
// next to the compiled nodes (editor .html, icons, locales) once those exist.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });

/** Copies every file under `from` whose name passes `keep` to the same relative place under `to`. */
function copyTree(from, to, keep) {
  if (!fs.existsSync(from)) return;
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(source, target, keep);
    else if (keep(entry.name)) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(source, target);
    }
  }
}

const notTypeScript = (name) => !name.endsWith('.ts');
copyTree(path.join(root, 'nodes'), path.join(dist, 'nodes'), notTypeScript);
copyTree(path.join(root, 'icons'), path.join(dist, 'nodes', 'icons'), () => true);
copyTree(path.join(root, 'locales'), path.join(dist, 'nodes', 'locales'), () => true);
