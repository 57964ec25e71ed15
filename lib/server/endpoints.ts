/**
 * The sockets of a server that devices talk to: plain CoAP, and CoAP over DTLS with pre-shared
 * keys on a port of its own. The LwM2M server and the bootstrap server both listen this way.
 */
import type { AddressInfo } from 'node:net';
import { bufferCapped, type SocketBufferSizes } from '../transport/datagram';
import { CoapEndpoint, type RequestHandler } from '../transport/endpoint';
import { DtlsServer, type DtlsDrop, type DtlsHandshakeFailure, type DtlsServerOptions } from '../transport/dtls/server';
import type { CoapTiming } from '../transport/timing';
import type { RateLimitedLog } from './log';
import type { BadDatagramEvent, HandshakeFailedEvent } from './events';

/** Where the sockets' bad input goes besides the log (the LwM2M server's events; see bad-input-events.ts). */
export interface BadInputSink {
  handshakeFailed(make: () => HandshakeFailedEvent): void;
  badDatagram(make: () => BadDatagramEvent): void;
}

export interface ServerEndpointsOptions {
  timing?: Partial<CoapTiming>;
  maxExchanges?: number;
  maxBodySize?: number;
  /** bytes of receive and send buffer asked of the kernel for each socket (default 4 MiB; 0: the system's default) */
  socketBufferSize?: number;
  /** DTLS server options; no DTLS port without them */
  dtls?: DtlsServerOptions;
  log: RateLimitedLog;
  fail: (error: unknown) => void;
  events?: BadInputSink;
}

export class ServerEndpoints {
  readonly plain: CoapEndpoint;
  readonly dtls: DtlsServer | undefined;
  readonly secure: CoapEndpoint | undefined;
  private readonly log: RateLimitedLog;

  constructor(options: ServerEndpointsOptions, handler: RequestHandler) {
    const { log, fail, events } = options;
    this.log = log;
    const settings = { timing: options.timing, maxExchanges: options.maxExchanges ?? 10_000, maxBodySize: options.maxBodySize, socketBufferSize: options.socketBufferSize };
    this.plain = new CoapEndpoint(settings);
    this.plain.setRequestHandler(handler);
    this.plain.on('malformed', ({ peer, reason, size }) => {
      log.warn(`dropped a malformed datagram from ${peer.address}:${peer.port}: ${reason}`);
      events?.badDatagram(() => ({ address: peer.address, port: peer.port, kind: 'malformedCoap', reason, size, secure: false }));
    });
    this.plain.on('error', fail);
    if (!options.dtls) return;
    const dtls = new DtlsServer({ socketBufferSize: options.socketBufferSize, ...options.dtls });
    dtls.on('error', fail);
    dtls.on('handshakeFailed', (failure: DtlsHandshakeFailure) => {
      log.warn(`DTLS handshake with ${failure.address}:${failure.port} failed: ${failure.reason}`);
      events?.handshakeFailed(() => ({ ...failure }));
    });
    // without a reason in the log, a device whose records the server drops just retries forever
    dtls.on('drop', ({ address, port, reason, size }: DtlsDrop) => {
      log.warn(`DTLS: dropped a datagram from ${address}:${port}: ${reason}`);
      events?.badDatagram(() => ({ address, port, kind: 'malformedDtls', reason, size, secure: true }));
    });
    this.dtls = dtls;
    this.secure = new CoapEndpoint({ ...settings, socket: dtls });
    this.secure.setRequestHandler(handler);
    this.secure.on('malformed', ({ peer, reason, size }) => {
      log.warn(`dropped a malformed datagram from ${peer.address}:${peer.port} (DTLS): ${reason}`);
      events?.badDatagram(() => ({ address: peer.address, port: peer.port, kind: 'malformedCoap', reason, size, secure: true }));
    });
  }

  /** Binds the plain port, then the DTLS port; when the second fails, the first is closed again. */
  async listen(plain: { port: number; address: string }, secure?: { port: number; address: string }): Promise<AddressInfo> {
    const address = await this.plain.listen(plain.port, plain.address);
    if (this.dtls && secure) {
      try {
        await this.dtls.listen(secure.port, secure.address);
      } catch (error) {
        await this.plain.close();
        throw error;
      }
    }
    const buffers = this.socketBuffers();
    for (const [name, sizes] of [['CoAP', buffers.plain], ['DTLS', buffers.secure]] as const) {
      // a burst beyond the buffer is dropped by the kernel and costs each device a retransmission
      if (sizes && bufferCapped(sizes)) this.log.warn(`the ${name} socket got ${sizes.receive} bytes of receive buffer of the ${sizes.requested} asked: raise net.core.rmem_max (and wmem_max) for large fleets`);
    }
    return address;
  }

  /** The sockets' buffer sizes as the kernel reports them (Linux: twice the bytes granted). */
  socketBuffers(): { plain?: SocketBufferSizes; secure?: SocketBufferSizes } {
    return { plain: this.plain.socketBuffers(), secure: this.dtls?.socketBuffers() };
  }

  /** The endpoint a request came in on answers on: DTLS when the peer has an identity. */
  for(identity: string | undefined): CoapEndpoint {
    return identity !== undefined && this.secure ? this.secure : this.plain;
  }

  /** `notify: false`: the DTLS sessions are not ended with close_notify (they were saved for a restart). */
  async close(options: { notify?: boolean } = {}): Promise<void> {
    await this.plain.close();
    if (this.secure) await this.secure.close();
    if (this.dtls) await new Promise<void>((resolve) => this.dtls!.close(resolve, options));
  }
}
