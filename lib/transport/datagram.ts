/**
 * What a CoAP endpoint needs of its transport: a UDP socket, or a DTLS layer that looks like one
 * (it delivers and takes plaintext datagrams per peer, and names the peer's PSK identity).
 */
import type { AddressInfo } from 'node:net';

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
