/**
 * A UDP load balancer for tests, shaped like nginx `stream` with sticky sessions: each client
 * (address and port) gets a session with an upstream socket of its own, bound to a fresh port, to
 * the target the balancer points at when the session starts; the server's answers and requests go
 * back through the session. `point(port)` moves every client: sessions start anew, so the server
 * sees its clients from new ports (as after a failover).
 */
import { createSocket, type Socket } from 'node:dgram';
import { boundUdpSocket } from './ports';

export interface Balancer {
  /** the port clients send to */
  port: number;
  /** Sends every client (new and existing) to the server at `port` from now on. */
  point(port: number): void;
  close(): Promise<void>;
}

export async function udpBalancer(target: number): Promise<Balancer> {
  const front = await boundUdpSocket();
  const sessions = new Map<string, Socket>();
  let current = target;
  const session = (address: string, port: number): Socket => {
    const key = `${address}:${port}`;
    let upstream = sessions.get(key);
    if (!upstream) {
      upstream = createSocket('udp4');
      upstream.bind(0, '127.0.0.1');
      upstream.on('message', (datagram) => front.send(datagram, port, address));
      upstream.on('error', () => undefined);
      sessions.set(key, upstream);
    }
    return upstream;
  };
  front.on('message', (datagram, from) => session(from.address, from.port).send(datagram, current, '127.0.0.1'));
  const endSessions = () => {
    for (const upstream of sessions.values()) upstream.close();
    sessions.clear();
  };
  return {
    port: front.address().port,
    point(port) {
      current = port;
      endSessions();
    },
    async close() {
      endSessions();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}
