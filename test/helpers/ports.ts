import { createSocket, type Socket } from 'node:dgram';
import * as net from 'node:net';

/** A UDP socket bound to a free port on 127.0.0.1; the caller closes it. */
export async function boundUdpSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

/** A UDP port on 127.0.0.1 that was free a moment ago (for flows that need a fixed port). */
export async function freeUdpPort(): Promise<number> {
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
