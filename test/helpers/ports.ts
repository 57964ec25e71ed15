import { createSocket, type Socket } from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';

/** A UDP socket bound to a free port on 127.0.0.1; the caller closes it. */
export async function boundUdpSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

/**
 * Where freeUdpPort looks: from 20000 up to the ephemeral range the kernel hands out to sockets
 * bound to port 0 (Linux: /proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default; 49152
 * and up elsewhere). A port from that range could be taken by any client socket bound meanwhile:
 * a flow's simulated devices start in the same deploy as its server, and bind before it does.
 */
function fixedPortRange(): [number, number] {
  let ephemeral = 32768;
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (low > 0) ephemeral = Math.min(ephemeral, low);
  } catch {
    // not Linux: 32768 is below the ephemeral ranges of macOS and Windows
  }
  return [20000, ephemeral];
}

/** ports freeUdpPort handed out in this process: not handed out twice */
const handedOut = new Set<number>();

/**
 * A UDP port on 127.0.0.1 that was free a moment ago (for flows that need a fixed port), outside
 * the ephemeral range (fixedPortRange), and not handed out before in this process; a port from the
 * ephemeral range only when there is no other.
 */
export async function freeUdpPort(): Promise<number> {
  const [from, to] = fixedPortRange();
  for (let attempt = 0; attempt < 100 && to - from > 1000; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (handedOut.has(port)) continue;
    const socket = createSocket('udp4');
    const bound = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    if (!bound) continue; // taken
    handedOut.add(port);
    return port;
  }
  const socket = await boundUdpSocket();
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for Node-RED's editor). */
export async function freeTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
