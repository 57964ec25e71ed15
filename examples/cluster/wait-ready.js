#!/usr/bin/env node
// start.sh's readiness checks, one at a time, each until it holds or its process is gone:
//   wait-ready.js redis PORT PID      Redis answers PING
//   wait-ready.js node-red PORT PID   Node-RED's LwM2M server node listens (the palette's admin route
//                                     /lwm2m/servers says so), or says why it cannot
// Exits 0 when ready; else prints why and exits 1.
'use strict';
const fs = require('node:fs');
const net = require('node:net');

const [kind, portText, pidText] = process.argv.slice(2);
const port = Number(portText);
const pid = Number(pidText);
const TIMEOUT_MS = Number(process.env.CLUSTER_START_TIMEOUT || 120) * 1000;

/** Whether `pid` still runs: not gone, and not a zombie its parent (start.sh, blocked on us) has yet to reap. */
function running() {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s*Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true; // no /proc: kill(pid, 0) is all we know
  }
}

function redisPong() {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const finish = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}

/** true once the server node listens; a string when it failed (why); false while Node-RED is still starting. */
async function serverListening() {
  let response;
  try {
    response = await fetch(`http://127.0.0.1:${port}/lwm2m/servers`, { signal: AbortSignal.timeout(5000) });
  } catch {
    return false; // not listening yet
  }
  // the route is the palette's: a 404 while Node-RED loads, or for good when the palette is missing
  if (!response.ok) return false;
  const servers = await response.json();
  const failed = servers.find((server) => server.error);
  if (failed) return `its LwM2M server cannot run: ${failed.error}`;
  return servers.some((server) => server.listening);
}

async function main() {
  const check = kind === 'redis' ? redisPong : kind === 'node-red' ? serverListening : undefined;
  if (!check || !Number.isInteger(port) || !Number.isInteger(pid)) {
    console.error('usage: wait-ready.js redis|node-red PORT PID');
    process.exit(2);
  }
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const state = await check();
    if (state === true) return;
    if (typeof state === 'string') throw new Error(state);
    if (!running()) throw new Error('it exited');
    if (Date.now() > deadline) throw new Error(`not ready after ${TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
