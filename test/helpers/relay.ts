/**
 * A UDP relay between one client and a server on 127.0.0.1, to play the network in between:
 * what the client sends passes through `fromClient` (which may drop, copy or change it); what
 * the server sends goes back to the client as it is (`fromServer` sees it on the way).
 */
import type { Socket } from 'node:dgram';
import { boundUdpSocket } from './ports';

export async function udpRelay(serverPort: number, fromClient: (datagram: Buffer) => Buffer[], fromServer?: (datagram: Buffer) => void): Promise<Socket> {
  const relay = await boundUdpSocket();
  let client: { address: string; port: number } | undefined;
  relay.on('message', (datagram, from) => {
    if (from.port === serverPort) {
      fromServer?.(datagram);
      if (client) relay.send(datagram, client.port, client.address);
      return;
    }
    client = { address: from.address, port: from.port };
    for (const out of fromClient(datagram)) relay.send(out, serverPort, '127.0.0.1');
  });
  return relay;
}
