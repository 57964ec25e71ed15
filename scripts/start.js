#!/usr/bin/env node
// `npm start`: Node-RED with this palette and the demo flow, in a user directory of its own
// (.demo/, git-ignored). The editor is at http://127.0.0.1:1880 (PORT to change it).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const userDir = path.resolve(process.env.LWM2M_DEMO_DIR || path.join(root, '.demo'));
const port = process.env.PORT || '1880';

// the palette runs from dist/: build it when it is missing or older than the sources
const built = path.join(root, 'dist', 'nodes', 'lwm2m-server.js');
/** The newest modification time of the files under `dir`. */
function newest(dir) {
  let time = 0;
  if (!fs.existsSync(dir)) return time;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    time = Math.max(time, entry.isDirectory() ? newest(full) : fs.statSync(full).mtimeMs);
  }
  return time;
}
const sources = Math.max(...['lib', 'nodes', 'icons', 'locales', 'demo'].map((dir) => newest(path.join(root, dir))));
if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < sources) {
  console.log('building dist/ ...');
  execFileSync(process.execPath, [path.join(__dirname, 'build.js')], { stdio: 'inherit' });
}

// Node-RED finds the palette as an installed module of the user directory
const link = path.join(userDir, 'node_modules', '@lwm2m-red', 'node-red-lwm2m');
fs.mkdirSync(path.dirname(link), { recursive: true });
if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
const dependencies = { '@lwm2m-red/node-red-lwm2m': `file:${root}` };

// FlowFuse Dashboard 2 (a development dependency, for the example "Fleet dashboard"): linked and
// listed in the same way when it is installed, so that example can be imported and run as it is
const dashboard = path.join(root, 'node_modules', '@flowfuse', 'node-red-dashboard');
const dashboardLink = path.join(userDir, 'node_modules', '@flowfuse', 'node-red-dashboard');
// a link to where the dashboard was (removed since, or this checkout moved) goes
if (fs.lstatSync(dashboardLink, { throwIfNoEntry: false })?.isSymbolicLink() && !fs.existsSync(dashboardLink)) fs.unlinkSync(dashboardLink);
if (fs.existsSync(path.join(dashboard, 'package.json'))) {
  fs.mkdirSync(path.dirname(dashboardLink), { recursive: true });
  if (!fs.existsSync(dashboardLink)) fs.symlinkSync(dashboard, dashboardLink, 'dir');
  dependencies['@flowfuse/node-red-dashboard'] = `file:${dashboard}`;
}
fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'lwm2m-demo', private: true, dependencies }, null, 2));

// settings of the demo: no welcome tour over the editor, credentials kept unencrypted (a demo has none)
const settings = path.join(userDir, 'settings.js');
if (!fs.existsSync(settings)) {
  fs.writeFileSync(settings, "module.exports = {\n  flowFile: 'flows.json',\n  credentialSecret: false,\n  editorTheme: { tours: false, projects: { enabled: false } },\n  telemetry: { enabled: false },\n};\n");
}

// the demo flow, unless the user has changed the flows since; LWM2M_DEMO_COAP_PORT moves its server off 5683
const flows = path.join(userDir, 'flows.json');
if (!fs.existsSync(flows)) {
  let flow = fs.readFileSync(path.join(root, 'demo', 'flows.json'), 'utf8');
  if (process.env.LWM2M_DEMO_COAP_PORT) flow = flow.replace(/"5683"/g, JSON.stringify(process.env.LWM2M_DEMO_COAP_PORT)).replace(/:5683"/g, `:${process.env.LWM2M_DEMO_COAP_PORT}"`);
  fs.writeFileSync(flows, flow);
}

const child = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', userDir, '--port', port, 'flows.json'], { stdio: 'inherit' });
const stop = (signal) => child.kill(signal);
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
