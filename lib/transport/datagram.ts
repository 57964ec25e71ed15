/**
 * What a CoAP endpoint needs of its transport: a UDP socket, or a DTLS layer that looks like one
 * (it delivers and takes plaintext datagrams per peer, and names the peer's PSK identity); and
 * binding the UDP socket under either.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6, type AddressInfo } from 'node:net';

export interface DatagramInfo {
  address: string;
  port: number;
  /** the PSK identity of the DTLS session the datagram came over */
  identity?: string;
}

export interface DatagramSocket {
  on(event: 'message', listener: (data: Buffer, info: DatagramInfo) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  off(event: 'message', listener: (data: Buffer, info: DatagramInfo) => void): this;
  off(event: 'error', listener: (error: Error) => void): this;
  send(data: Buffer, port: number, address: string): void;
  address(): AddressInfo;
  close(callback?: () => void): void;
}

/** A UDP socket bound to `port` (0: any free one) on `address`; IPv6 when the address is. Rejects with the bind error. */
export async function bindUdpSocket(port: number, address?: string): Promise<Socket> {
  const socket = createSocket({ type: address && isIPv6(address) ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind(port, address, () => {
      socket.removeAllListeners('error');
      resolve();
    });
  });
  return socket;
}
