#!/usr/bin/env node
/*
 * `npm run validate`: the Flow Library scorecard (`node-red-dev validate`) for this package.
 *
 * Two of its checks (P08 similar package names, N01 unique node names) need the catalogue at
 * catalogue.nodered.org. node-red-dev stops at the first network error, so without internet no
 * check after P04 would run. This script loads itself into node-red-dev as a preload: an
 * unreachable catalogue is then answered as empty, and those two checks are reported as "not
 * checked", while every other check runs as usual. With internet nothing is changed.
 * Exits non-zero when a check fails. Not part of `npm test`: some checks (latest Node-RED, latest
 * versions of dependencies) change with what is published, not with this code.
 */
'use strict';
const NODE_RED_DEV = 'node-red-dev@0.1.6';
const CATALOGUE = 'https://catalogue.nodered.org/';
const OFFLINE_MARK = '[validate] catalogue unreachable';
const UNCHECKED = {
  'No similar named packages found': 'P08 similar package names: not checked, catalogue.nodered.org is unreachable',
  'Nodes all have unique names': 'N01 unique node names: not checked, catalogue.nodered.org is unreachable',
};

if (require.main === module) runScorecard();
else answerCatalogueWhenOffline();

/** The wrapper: runs node-red-dev with this file preloaded, and marks the checks it could not make. */
function runScorecard() {
  const { spawn } = require('node:child_process');
  const path = require('node:path');
  const root = path.resolve(__dirname, '..');
  const preload = `--require ${JSON.stringify(__filename)}`;
  const child = spawn('npx', ['--yes', NODE_RED_DEV, 'validate', '--path', root], {
    cwd: root,
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${preload}`.trim() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let offline = false;
  let warnings = 0; // node-red-dev prints failed checks as warnings and still exits 0
  const relay = (stream, out) => {
    let rest = '';
    stream.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) {
        if (line.includes(OFFLINE_MARK)) {
          offline = true;
          continue;
        }
        if (/Unknown user config "nodedir"/.test(line)) continue;
        if (/Warning:|^ *(P|N|D)\d\d /.test(line)) warnings += 1;
        const check = Object.keys(UNCHECKED).find((text) => line.includes(text));
        out.write(offline && check ? `⏭  ${UNCHECKED[check]}\n` : `${line}\n`);
      }
    });
    stream.on('end', () => rest && out.write(`${rest}\n`));
  };
  relay(child.stdout, process.stdout);
  relay(child.stderr, process.stderr);
  child.on('exit', (code) => process.exit(code || (warnings > 0 ? 1 : 0)));
}

/** The preload: wraps axios.get so an unreachable catalogue reads as an empty one. */
function answerCatalogueWhenOffline() {
  const Module = require('node:module');
  const load = Module._load;
  Module._load = function (request, ...rest) {
    const exported = load.call(this, request, ...rest);
    if (request !== 'axios' || exported.lwm2mOffline) return exported;
    const get = exported.get.bind(exported);
    exported.get = (url, ...options) =>
      get(url, ...options).catch((error) => {
        if (!String(url).startsWith(CATALOGUE) || error.response) throw error;
        // on stdout, where node-red-dev writes its results, so the mark comes before the check's line
        process.stdout.write(`${OFFLINE_MARK} (${error.code ?? error.message})\n`);
        return { data: { modules: [] } };
      });
    exported.lwm2mOffline = true;
    return exported;
  };
}
