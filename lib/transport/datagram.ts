/**
 * What a CoAP endpoint needs of its transport: a UDP socket, or a DTLS layer that looks like one
 * (it delivers and takes plaintext datagrams per peer, and names the peer's PSK identity); and
 * creating and binding the UDP socket under either.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { DtlsAuthentication } from './dtls/credentials';
import { lookup as dnsLookup } from 'node:dns';
import { isIP, isIPv6, type AddressInfo } from 'node:net';

export interface DatagramInfo {
  address: string;
  port: number;
  /** the identity of the DTLS session the datagram came over: PSK identity, certificate CN or raw public key identity */
  identity?: string;
  /** how the DTLS peer authenticated */
  authentication?: DtlsAuthentication;
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

/**
 * Bytes asked of the kernel for each socket's receive and send buffer. The kernel's default
 * (~208 KB on Linux, ~125 registrations) drops bursts: a storm of registrations or a fleet's
 * notifications arriving at once then waits for retransmissions seconds later. Linux caps the
 * request at net.core.rmem_max / wmem_max.
 */
export const DEFAULT_SOCKET_BUFFER_SIZE = 4 * 1024 * 1024;

/** The buffer sizes a socket got, as the kernel reports them (Linux reports twice the bytes granted: the other half is its bookkeeping). */
export interface SocketBufferSizes {
  receive: number;
  send: number;
  /** what was asked for each */
  requested: number;
}

/**
 * Most datagrams go to the IP address a peer sent from: dgram's default lookup answers those on
 * the next tick, a deferred call per datagram sent. This one answers IP literals at once and
 * leaves names to the DNS.
 */
function lookupLiteral(hostname: string, options: unknown, callback: (error: Error | null, address: string, family: number) => void): void {
  const family = isIP(hostname);
  if (family !== 0) callback(null, hostname, family);
  else dnsLookup(hostname, options as never, callback as never);
}

/** A UDP socket that answers IP literals without a deferred DNS lookup. */
export function createUdpSocket(type: 'udp4' | 'udp6'): Socket {
  return createSocket({ type, lookup: lookupLiteral as never });
}

/**
 * Asks the kernel for `size` bytes of receive and send buffer on a bound socket and reports what it
 * got: the kernel may give less (Linux silently caps at net.core.rmem_max / wmem_max), and a
 * platform that refuses keeps its default. 0 leaves the defaults alone.
 */
export function sizeSocketBuffers(socket: Socket, size = DEFAULT_SOCKET_BUFFER_SIZE): SocketBufferSizes {
  if (size > 0) {
    try {
      socket.setRecvBufferSize(size);
    } catch {
      // refused: the default stays, and the report below says what it is
    }
    try {
      socket.setSendBufferSize(size);
    } catch {
      // as above
    }
  }
  return { receive: socket.getRecvBufferSize(), send: socket.getSendBufferSize(), requested: size };
}

/** Whether the kernel gave less receive buffer than asked (Linux reports twice what it grants, other systems what they grant). */
export function bufferCapped(sizes: SocketBufferSizes): boolean {
  return sizes.requested > 0 && sizes.receive < sizes.requested * (process.platform === 'linux' ? 2 : 1);
}

/**
 * A UDP socket bound to `port` (0: any free one) on `address`, IPv6 when the address is, with
 * `bufferSize` bytes of receive and send buffer asked of the kernel. Rejects with the bind error.
 */
export async function bindUdpSocket(port: number, address?: string, bufferSize = DEFAULT_SOCKET_BUFFER_SIZE): Promise<{ socket: Socket; buffers: SocketBufferSizes }> {
  const socket = createUdpSocket(address && isIPv6(address) ? 'udp6' : 'udp4');
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
  return { socket, buffers: sizeSocketBuffers(socket, bufferSize) };
}
