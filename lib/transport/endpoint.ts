/**
 * A CoAP endpoint on one UDP socket: it answers requests (with deduplication, block-wise transfer
 * both ways and Observe notifications) and sends requests from the same socket (with
 * retransmission, separate responses and block-wise transfer). Both the LwM2M client and server
 * sit on it, because LwM2M needs both roles on one address: devices behind NAT are reached only at
 * the address they registered from.
 */
import { bindUdpSocket, type DatagramInfo, type DatagramSocket, type SocketBufferSizes } from './datagram';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { BoundedCache } from './bounded-cache';
import { pooledRandomBytes } from './random-pool';
import { CoapError } from './errors';
import {
  CoapFormatError,
  METHODS,
  OptionNumber,
  blockSize,
  decodeBlock,
  encodeBlock,
  getOption,
  getUintOption,
  methodOf,
  parseMessage,
  pathOptions,
  peekHeader,
  queryOptions,
  serializeMessage,
  stringOptions,
  szxFor,
  uintOption,
  type BlockOption,
  type CoapMessage,
  type CoapOption,
  type Method,
  type MessageType,
} from './message';
import { DEFAULT_TIMING, maxTransmitWait, type CoapTiming } from './timing';

export interface Peer {
  address: string;
  port: number;
  /** the session's identity, when the peer came over DTLS: the PSK identity, a certificate's CN, or what a raw public key is bound to */
  identity?: string;
  /** how that session authenticated (absent: with a PSK) */
  authentication?: DatagramInfo['authentication'];
}

export function peerKey(peer: Peer): string {
  return `${peer.address}:${peer.port}`;
}

/** A request received by this endpoint, with its block-wise body already reassembled. */
export interface IncomingRequest {
  peer: Peer;
  method: Method;
  type: MessageType;
  token: Buffer;
  messageId: number;
  path: string[];
  query: string[];
  options: CoapOption[];
  payload: Buffer;
  contentFormat?: number;
  accept?: number;
  observe?: number;
  /** bytes of the datagram (of the last block, for a block-wise body); absent for a request not read from a socket */
  size?: number;
}

export interface OutgoingResponse {
  code: string;
  payload?: Buffer;
  contentFormat?: number;
  observe?: number;
  options?: CoapOption[];
  /** called once the response has been handed to the socket (e.g. to announce a registration only then) */
  onSent?: () => void;
}

export type RequestHandler = (request: IncomingRequest) => OutgoingResponse | Promise<OutgoingResponse>;

export interface RequestParams {
  method: Method;
  path?: readonly string[];
  query?: readonly string[];
  payload?: Buffer;
  contentFormat?: number;
  accept?: number;
  observe?: number;
  options?: readonly CoapOption[];
  confirmable?: boolean;
  /** the token to use (e.g. an observation's, to cancel it actively); default a fresh random one */
  token?: Buffer;
  /** ms to wait for the whole response, block-wise parts included; default MAX_TRANSMIT_WAIT */
  timeout?: number;
  /** Block1 block size for this request's body (16..1024; default the endpoint's maxPayload); the peer may ask for smaller */
  blockSize?: number;
  /** told after each Block1 block the peer acknowledged, and once the whole body was taken: bytes of the body it has so far */
  onProgress?: (sent: number, total: number) => void;
}

export interface CoapResponse {
  code: string;
  /** the message type it came in: ACK (piggybacked), CON or NON */
  type: MessageType;
  payload: Buffer;
  options: CoapOption[];
  contentFormat?: number;
  observe?: number;
  token: Buffer;
  peer: Peer;
}

export interface EndpointOptions {
  /** use this socket (or a DTLS layer) instead of creating one; it is not closed by `close()` */
  socket?: DatagramSocket;
  timing?: Partial<CoapTiming>;
  /** largest payload sent in one message before block-wise transfer; rounded down to a block size */
  maxPayload?: number;
  /** largest reassembled body accepted, in either direction (4.13 beyond it) */
  maxBodySize?: number;
  /** requests remembered for deduplication and block-wise state */
  maxExchanges?: number;
  /** bytes of receive and send buffer asked of the kernel for a socket `listen()` binds (default 4 MiB; 0: the system's default) */
  socketBufferSize?: number;
}

export type NotificationOutcome = 'sent' | 'acknowledged' | 'reset' | 'timeout';

/**
 * Sees every datagram the endpoint takes from or hands to its socket, as it is on the wire
 * (retransmissions and malformed datagrams included): a CoAP trace. It must not throw.
 */
export type TrafficTap = (direction: 'in' | 'out', datagram: Buffer, peer: Peer) => void;

interface Transmission {
  peer: Peer;
  datagram: Buffer;
  timer?: NodeJS.Timeout;
  onAck(message: CoapMessage): void;
  onReset(): void;
  onTimeout(): void;
}

interface PendingResponse {
  answered(message: CoapMessage): void;
  fail(error: Error): void;
}

interface Block1Assembly {
  chunks: Buffer[];
  size: number;
  next: number;
}

const EMPTY = Buffer.alloc(0);
const MAX_MESSAGE_ID = 0x10000;

export class CoapEndpoint extends EventEmitter {
  readonly timing: CoapTiming;
  private socket: DatagramSocket | undefined;
  private ownsSocket: boolean;
  private handler: RequestHandler | undefined;
  private readonly maxSzx: number;
  private readonly maxBodySize: number;
  private readonly socketBufferSize: number | undefined;
  private buffers: SocketBufferSizes | undefined;
  private nextMessageId = Math.floor(Math.random() * MAX_MESSAGE_ID);
  private closed = false;
  private receiving = true;
  /** unset unless someone traces: then the only cost per datagram is this one check */
  private tap: TrafficTap | undefined;

  /** our Confirmable messages awaiting ACK/RST, by peer + message id */
  private readonly transmissions = new Map<string, Transmission>();
  /** our requests awaiting a response, by peer + token */
  private readonly pending = new Map<string, PendingResponse>();
  /** client-side observations: notification listeners by peer + token */
  private readonly observers = new Map<string, (response: CoapResponse) => void>();
  /** asked before a response nobody waits for is answered with a Reset: true keeps quiet */
  private unmatched: ((peer: Peer, token: Buffer, reset: () => void) => boolean) | undefined;
  /** requests received, by peer + message id: the response to repeat for a duplicate (undefined while in progress) */
  private readonly received: BoundedCache<{ datagram?: Buffer }>;
  /** notifications sent, by peer + message id, to match a Reset to its observation */
  private readonly notified: BoundedCache<Buffer>;
  private readonly block1: BoundedCache<Block1Assembly>;
  private readonly block2: BoundedCache<OutgoingResponse>;
  private readonly separateTimers = new Set<NodeJS.Timeout>();

  constructor(options: EndpointOptions = {}) {
    super();
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.maxSzx = szxFor(options.maxPayload ?? 1024);
    this.maxBodySize = options.maxBodySize ?? 8 * 1024 * 1024;
    this.socketBufferSize = options.socketBufferSize;
    const maxExchanges = options.maxExchanges ?? 1000;
    this.received = new BoundedCache(maxExchanges, this.timing.exchangeLifetime);
    this.notified = new BoundedCache(maxExchanges, this.timing.exchangeLifetime);
    this.block1 = new BoundedCache(Math.max(4, maxExchanges >> 6), this.timing.exchangeLifetime);
    this.block2 = new BoundedCache(Math.max(4, maxExchanges >> 6), this.timing.exchangeLifetime);
    this.ownsSocket = options.socket === undefined;
    if (options.socket) this.attach(options.socket);
  }

  /** Binds a new socket (port 0 = any free port); resolves with the bound address. */
  async listen(port = 0, address?: string): Promise<AddressInfo> {
    if (this.socket) throw new Error('the endpoint is already listening');
    if (this.closed) throw new Error('the endpoint is closed');
    const { socket, buffers } = await bindUdpSocket(port, address, this.socketBufferSize);
    if (this.closed || this.socket) {
      // closed (or given another socket) while binding: this one would never be closed
      socket.close();
      throw new Error(this.closed ? 'the endpoint is closed' : 'the endpoint is already listening');
    }
    this.ownsSocket = true;
    this.buffers = buffers;
    this.attach(socket as unknown as DatagramSocket);
    return socket.address();
  }

  /** The buffer sizes of the socket `listen()` bound, as the kernel reports them; undefined for a socket given to the endpoint. */
  socketBuffers(): SocketBufferSizes | undefined {
    return this.socket ? this.buffers : undefined;
  }

  /** Runs on this socket (e.g. a DTLS client) instead of binding one; `owned`: close it with the endpoint. */
  use(socket: DatagramSocket, owned: boolean): void {
    if (this.socket) throw new Error('the endpoint already has a socket');
    if (this.closed) throw new Error('the endpoint is closed');
    this.ownsSocket = owned;
    this.attach(socket);
  }

  address(): AddressInfo {
    if (!this.socket) throw new Error('the endpoint is not listening');
    return this.socket.address();
  }

  /** Off: every datagram is dropped unread, as by a device whose radio sleeps (queue mode). */
  setReceiving(on: boolean): void {
    this.receiving = on;
  }

  /** Installs (or, with undefined, removes) the one tap that sees every datagram in and out. */
  setTap(tap: TrafficTap | undefined): void {
    this.tap = tap;
  }

  /** Whether a tap is installed. */
  get tapped(): boolean {
    return this.tap !== undefined;
  }

  setRequestHandler(handler: RequestHandler): void {
    this.handler = handler;
  }

  /**
   * Sends a request and resolves with the (reassembled) response; rejects with CoapError. A body
   * that fits one datagram and an answer without Block2, the common case, is one exchange with
   * its options built once; block-wise bookkeeping starts only when a body or an answer needs it.
   */
  async request(peer: Peer, params: RequestParams): Promise<CoapResponse> {
    const timeout = params.timeout ?? maxTransmitWait(this.timing);
    const deadline = Date.now() + timeout;
    const token = params.token ?? newToken();
    const body = params.payload ?? EMPTY;
    if (body.length > this.maxBodySize) throw new CoapError('TOO_LARGE', `a request body of ${body.length} bytes is larger than ${this.maxBodySize}`);
    const base = requestOptions(params);
    const szx = params.blockSize === undefined ? this.maxSzx : Math.min(szxFor(params.blockSize), this.maxSzx);
    let response: CoapMessage;
    if (body.length <= blockSize(szx)) {
      const options = params.observe === undefined ? base : [...base, uintOption(OptionNumber.OBSERVE, params.observe)];
      response = await this.exchange(peer, token, params, options, body, deadline);
    } else {
      response = await this.sendBlock1(peer, token, params, base, body, szx, deadline);
    }
    // the last block is answered with the final response, not 2.31: the whole body has arrived
    if (params.onProgress && response.code.startsWith('2.')) params.onProgress(body.length, body.length);
    const block2 = getOption(response, OptionNumber.BLOCK2);
    const payload = block2 ? await this.fetchBlock2(peer, params, base, body, response, block2, deadline) : response.payload;
    return toResponse(response, payload, peer);
  }

  /** Block1: sends the body in parts, each acknowledged with 2.31 Continue; resolves with the final response. */
  private async sendBlock1(peer: Peer, token: Buffer, params: RequestParams, base: CoapOption[], body: Buffer, firstSzx: number, deadline: number): Promise<CoapMessage> {
    const observe = params.observe !== undefined ? [uintOption(OptionNumber.OBSERVE, params.observe)] : [];
    let szx = firstSzx;
    let offset = 0;
    for (;;) {
      const size = blockSize(szx);
      const more = offset + size < body.length;
      const options = [...base, ...observe, { number: OptionNumber.BLOCK1, value: encodeBlock({ num: offset / size, more, szx }) }];
      if (offset === 0) options.push(uintOption(OptionNumber.SIZE1, body.length));
      const response = await this.exchange(peer, token, params, options, body.subarray(offset, offset + size), deadline);
      if (response.code !== '2.31') return response;
      const ack = getOption(response, OptionNumber.BLOCK1);
      const acknowledged = ack ? decodeBlock(ack) : undefined;
      offset += size;
      params.onProgress?.(Math.min(offset, body.length), body.length);
      // the server may ask for smaller blocks: continue at the same byte offset with its size
      if (acknowledged && acknowledged.szx < szx) szx = acknowledged.szx;
      if (offset >= body.length) return response;
    }
  }

  /** Block2: fetches the remaining parts of a large response; resolves with the whole body. */
  private async fetchBlock2(peer: Peer, params: RequestParams, base: CoapOption[], body: Buffer, first: CoapMessage, firstBlock: Buffer, deadline: number): Promise<Buffer> {
    const parts = [first.payload];
    let total = first.payload.length;
    let block = decodeBlock(firstBlock);
    while (block.more) {
      const next: BlockOption = { num: block.num + 1, more: false, szx: block.szx };
      const options = [...base, { number: OptionNumber.BLOCK2, value: encodeBlock(next) }];
      const part = await this.exchange(peer, newToken(), params, options, params.method === 'FETCH' ? body : EMPTY, deadline);
      if (part.code !== first.code) throw new CoapError('PROTOCOL', `block ${next.num} of the response came back as ${part.code}`);
      const value = getOption(part, OptionNumber.BLOCK2);
      if (!value) throw new CoapError('PROTOCOL', `block ${next.num} of the response has no Block2 option`);
      block = decodeBlock(value);
      total += part.payload.length;
      if (total > this.maxBodySize) throw new CoapError('TOO_LARGE', `the response is larger than ${this.maxBodySize} bytes`);
      parts.push(part.payload);
    }
    return Buffer.concat(parts, total);
  }

  /**
   * Starts an observation: resolves with the first response; later notifications with the same
   * token from the same peer go to `listener` until `cancel()` (which forgets them; the peer is
   * told by a Reset on the next one, RFC 7641 §3.6).
   */
  async observe(
    peer: Peer,
    params: Omit<RequestParams, 'observe'>,
    listener: (notification: CoapResponse) => void,
  ): Promise<{ response: CoapResponse; cancel(): void }> {
    const response = await this.request(peer, { ...params, observe: 0 });
    const key = `${peerKey(peer)}#${response.token.toString('hex')}`;
    // a response without Observe means the server serves but does not observe
    if (response.observe !== undefined) this.observers.set(key, listener);
    return {
      response,
      cancel: () => {
        // another listener may have taken the token over (an adopted observation): that one stays
        if (this.observers.get(key) === listener) this.observers.delete(key);
      },
    };
  }

  /**
   * Listens for the notifications of an observation this endpoint did not start (one started before
   * a restart, its token read back from a store), as if `observe` had started it.
   */
  adoptObservation(peer: Peer, token: Buffer, listener: (notification: CoapResponse) => void): () => void {
    const key = `${peerKey(peer)}#${token.toString('hex')}`;
    this.observers.set(key, listener);
    return () => {
      if (this.observers.get(key) === listener) this.observers.delete(key);
    };
  }

  /**
   * Asks `handler` about each response (a notification) with a token nobody waits for, before it is
   * answered with a Reset (RFC 7641 §3.6): `true` takes it over, e.g. because its observation is
   * about to be adopted, so that the peer's next one (a retransmission) is heard; the handler then
   * calls `reset()` if it turns out nobody wants it after all.
   */
  setUnmatchedHandler(handler: (peer: Peer, token: Buffer, reset: () => void) => boolean): void {
    this.unmatched = handler;
  }

  /**
   * Sends a notification for an observation started by `origin`. A Reset from the observer (to
   * this or any earlier notification) is also emitted as `reset` with `{ peer, token }`.
   */
  notify(origin: IncomingRequest, response: OutgoingResponse, confirmable: boolean): Promise<NotificationOutcome> {
    if (this.closed || !this.socket) return Promise.resolve('timeout');
    const message = this.responseMessage(origin, response, undefined);
    message.type = confirmable ? 'CON' : 'NON';
    message.messageId = this.takeMessageId();
    const datagram = serializeMessage(message);
    this.notified.set(`${peerKey(origin.peer)}/${message.messageId}`, origin.token);
    if (!confirmable) {
      this.send(datagram, origin.peer);
      return Promise.resolve('sent');
    }
    return new Promise((resolve) => {
      this.transmit(origin.peer, message.messageId, datagram, {
        onAck: () => resolve('acknowledged'),
        onReset: () => resolve('reset'),
        onTimeout: () => resolve('timeout'),
      });
    });
  }

  /** Stops everything: pending requests reject with CLOSED, timers are cleared, the own socket closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.release('the endpoint was closed');
    this.emit('close');
  }

  /**
   * Lets go of the socket (closing it when owned) but stays usable: `listen()` or `use()` give it a
   * new one, e.g. when a client moves from plain CoAP to DTLS or to a new key. Exchanges under way
   * end as by `close()`: they belonged to the old transport and its peer.
   */
  async detach(): Promise<void> {
    if (this.closed || !this.socket) return;
    await this.release('the endpoint changed its transport');
  }

  private async release(reason: string): Promise<void> {
    const transmissions = [...this.transmissions.values()];
    for (const transmission of transmissions) clearTimeout(transmission.timer);
    this.transmissions.clear();
    for (const timer of this.separateTimers) clearTimeout(timer);
    this.separateTimers.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const waiter of pending) waiter.fail(new CoapError('CLOSED', reason));
    // the rest (CON notifications, separate responses) would never settle: no ACK can arrive any more
    for (const transmission of transmissions) transmission.onTimeout();
    this.observers.clear();
    this.received.clear();
    this.notified.clear();
    this.block1.clear();
    this.block2.clear();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.off('message', this.onDatagram);
      socket.off('error', this.onSocketError);
      if (this.ownsSocket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
  }

  // --- sending ---

  private attach(socket: DatagramSocket): void {
    this.socket = socket;
    socket.on('message', this.onDatagram);
    socket.on('error', this.onSocketError);
  }

  private readonly onSocketError = (error: Error): void => {
    this.emit('error', error);
  };

  private takeMessageId(): number {
    this.nextMessageId = (this.nextMessageId + 1) % MAX_MESSAGE_ID;
    return this.nextMessageId;
  }

  private send(datagram: Buffer, peer: Peer): void {
    // no callback: it costs a request object per datagram; a send error comes as the socket's
    // 'error' event instead, and the exchange it belonged to ends as a timeout
    if (!this.socket) return;
    if (this.tap !== undefined) this.tap('out', datagram, peer);
    this.socket.send(datagram, peer.port, peer.address);
  }

  /** Sends a Confirmable message and retransmits it with exponential back-off until ACK or RST. */
  private transmit(peer: Peer, messageId: number, datagram: Buffer, handlers: Pick<Transmission, 'onAck' | 'onReset' | 'onTimeout'>): void {
    const key = `${peerKey(peer)}/${messageId}`;
    const { ackTimeout, ackRandomFactor, maxRetransmit } = this.timing;
    let wait = ackTimeout * (1 + Math.random() * (ackRandomFactor - 1));
    let attempts = 0;
    const transmission: Transmission = {
      peer,
      datagram,
      onAck: (message) => {
        clearTimeout(transmission.timer);
        this.transmissions.delete(key);
        handlers.onAck(message);
      },
      onReset: () => {
        clearTimeout(transmission.timer);
        this.transmissions.delete(key);
        handlers.onReset();
      },
      onTimeout: () => {
        this.transmissions.delete(key);
        handlers.onTimeout();
      },
    };
    const fire = (): void => {
      if (this.closed) return;
      if (attempts > maxRetransmit) {
        transmission.onTimeout();
        return;
      }
      attempts++;
      this.send(datagram, peer);
      transmission.timer = setTimeout(fire, wait);
      wait *= 2;
    };
    this.transmissions.set(key, transmission);
    fire();
  }

  /**
   * One request/response exchange (one block); resolves with the response message. One object and
   * one timer per exchange: the timer retransmits a Confirmable request until it is acknowledged,
   * then waits for the separate response, and ends the exchange at its deadline either way.
   */
  private exchange(peer: Peer, token: Buffer, params: RequestParams, options: CoapOption[], payload: Buffer, deadline: number): Promise<CoapMessage> {
    if (this.closed || !this.socket) return Promise.reject(new CoapError('CLOSED', 'the endpoint is closed'));
    const confirmable = params.confirmable !== false;
    const messageId = this.takeMessageId();
    const datagram = serializeMessage({ type: confirmable ? 'CON' : 'NON', code: METHODS[params.method], messageId, token, options, payload });
    const where = peerKey(peer);
    const seconds = (params.timeout ?? maxTransmitWait(this.timing)) / 1000;
    const exchange = new RequestExchange(this.exchanges, peer, where, `${where}/${messageId}`, `${where}#${token.toString('hex')}`, token, datagram, deadline, seconds, confirmable);
    return new Promise<CoapMessage>((resolve, reject) => {
      exchange.resolvePromise = resolve;
      exchange.rejectPromise = reject;
      this.pending.set(exchange.tokenKey, exchange);
      if (confirmable) this.transmissions.set(exchange.messageKey, exchange);
      this.send(datagram, peer);
      exchange.start(this.timing);
    });
  }

  /** What a RequestExchange needs of its endpoint. */
  private readonly exchanges: ExchangeHost = {
    pending: this.pending,
    transmissions: this.transmissions,
    resend: (datagram, peer) => {
      if (!this.closed) this.send(datagram, peer);
    },
  };

  // --- receiving ---

  private readonly onDatagram = (datagram: Buffer, info: DatagramInfo): void => {
    if (this.closed || !this.receiving) return;
    const peer: Peer = info.identity === undefined ? { address: info.address, port: info.port } : { address: info.address, port: info.port, identity: info.identity };
    if (info.identity !== undefined && info.authentication !== undefined && info.authentication !== 'psk') peer.authentication = info.authentication;
    if (this.tap !== undefined) this.tap('in', datagram, peer);
    let message: CoapMessage;
    try {
      message = parseMessage(datagram);
    } catch (error) {
      // RFC 7252 §4.2: a Confirmable message that cannot be parsed is rejected with a Reset
      const header = peekHeader(datagram);
      if (header?.type === 'CON') this.sendEmpty('RST', header.messageId, peer);
      this.emit('malformed', { peer, reason: error instanceof CoapFormatError ? error.message : String(error), size: datagram.length });
      return;
    }
    try {
      this.dispatch(message, peer, datagram.length);
    } catch (error) {
      this.emit('malformed', { peer, reason: (error as Error).message, size: datagram.length });
      if (message.type === 'CON') {
        const reset = serializeMessage({ type: 'RST', code: '0.00', messageId: message.messageId, token: EMPTY, options: [], payload: EMPTY });
        // a retransmission of the same broken request gets the same Reset
        this.received.update(`${peerKey(peer)}/${message.messageId}`, { datagram: reset });
        this.send(reset, peer);
      }
    }
  };

  private dispatch(message: CoapMessage, peer: Peer, size: number): void {
    const key = `${peerKey(peer)}/${message.messageId}`;
    if (message.type === 'ACK' || message.type === 'RST') {
      const transmission = this.transmissions.get(key);
      if (message.type === 'RST') {
        const token = this.notified.get(key);
        if (token) {
          this.notified.delete(key);
          this.emit('reset', { peer, token });
        }
        transmission?.onReset();
      } else {
        transmission?.onAck(message);
      }
      return;
    }
    if (message.code === '0.00') {
      // CoAP ping (or an empty NON): answer with a Reset
      if (message.type === 'CON') this.sendEmpty('RST', message.messageId, peer);
      return;
    }
    if (message.code.charAt(0) === '0') {
      this.onRequest(message, peer, key, size);
      return;
    }
    this.onResponse(message, peer);
  }

  /** A separate response or a notification. */
  private onResponse(message: CoapMessage, peer: Peer): void {
    const tokenKey = `${peerKey(peer)}#${message.token.toString('hex')}`;
    const waiter = this.pending.get(tokenKey);
    const observer = waiter ? undefined : this.observers.get(tokenKey);
    if (!waiter && !observer) {
      const reset = () => this.sendEmpty('RST', message.messageId, peer);
      if (!this.unmatched?.(peer, message.token, reset)) reset();
      return;
    }
    if (message.type === 'CON') this.sendEmpty('ACK', message.messageId, peer);
    if (waiter) waiter.answered(message);
    else if (observer && getOption(message, OptionNumber.OBSERVE) !== undefined) observer(toResponse(message, message.payload, peer));
    else if (observer) {
      // a final response without Observe (e.g. 4.04 when the resource went away) ends the observation
      this.observers.delete(tokenKey);
      observer(toResponse(message, message.payload, peer));
    }
  }

  private onRequest(message: CoapMessage, peer: Peer, key: string, size: number): void {
    const method = methodOf(message.code);
    const seen = this.received.get(key);
    if (seen) {
      // a duplicate: repeat the response, or ignore it while the first copy is still being handled
      if (seen.datagram) this.send(seen.datagram, peer);
      return;
    }
    this.received.set(key, {});
    if (!method) {
      this.answer(message, peer, key, { code: '4.05' });
      return;
    }
    const request: IncomingRequest = {
      peer,
      method,
      type: message.type,
      token: message.token,
      messageId: message.messageId,
      path: stringOptions(message, OptionNumber.URI_PATH),
      query: stringOptions(message, OptionNumber.URI_QUERY),
      options: message.options,
      payload: message.payload,
      contentFormat: getUintOption(message, OptionNumber.CONTENT_FORMAT),
      accept: getUintOption(message, OptionNumber.ACCEPT),
      observe: getUintOption(message, OptionNumber.OBSERVE),
      size,
    };
    const block1Value = getOption(message, OptionNumber.BLOCK1);
    let block1: BlockOption | undefined;
    if (block1Value) {
      block1 = decodeBlock(block1Value);
      const outcome = this.collectBlock1(request, block1);
      if (outcome) {
        this.answer(message, peer, key, outcome);
        return;
      }
    }
    const block2Value = getOption(message, OptionNumber.BLOCK2);
    const block2 = block2Value ? decodeBlock(block2Value) : undefined;
    if (block2 && block2.num > 0) {
      const cached = this.block2.get(this.block2Key(request));
      if (cached) {
        this.answer(message, peer, key, this.sliceBlock2(cached, block2, request));
        return;
      }
      // a later block of a GET/FETCH can be made again; of anything else, running the handler twice would act twice
      if (request.method !== 'GET' && request.method !== 'FETCH') {
        this.answer(message, peer, key, { code: '4.08', payload: Buffer.from('the earlier blocks of this response are gone; ask again from block 0') });
        return;
      }
    }
    this.handle(request, message, peer, key, (response) => {
      let out = response;
      if (block1) out = { ...out, options: [...(out.options ?? []), { number: OptionNumber.BLOCK1, value: encodeBlock({ ...block1, more: false }) }] };
      return this.sliceBlock2(out, block2, request);
    });
  }

  /** Calls the handler, piggybacking its answer on the ACK when it comes quickly, else answering separately. */
  private handle(request: IncomingRequest, message: CoapMessage, peer: Peer, key: string, finish: (response: OutgoingResponse) => OutgoingResponse): void {
    const handler = this.handler;
    if (!handler) {
      this.answer(message, peer, key, { code: '4.04' });
      return;
    }
    let separate = false;
    let timer: NodeJS.Timeout | undefined;
    const socket = this.socket;
    const respond = (response: OutgoingResponse): void => {
      if (timer) {
        clearTimeout(timer);
        this.separateTimers.delete(timer);
      }
      // closed, or detached since: the answer belongs to a transport that is gone
      if (this.closed || this.socket !== socket) return;
      // the final form may differ (a block of it, or an error about the block asked for): only the handler's own answer reports onSent
      const final = finish(response);
      if (!separate) {
        this.answer(message, peer, key, final);
      } else {
        const out = this.responseMessage(request, final, undefined);
        out.type = 'CON';
        out.messageId = this.takeMessageId();
        this.transmit(peer, out.messageId, serializeMessage(out), { onAck() {}, onReset() {}, onTimeout() {} });
      }
      final.onSent?.();
    };
    let result: OutgoingResponse | Promise<OutgoingResponse>;
    try {
      result = handler(request);
    } catch (error) {
      respond(internalError(error));
      return;
    }
    if (!(result instanceof Promise)) {
      respond(result);
      return;
    }
    if (message.type === 'CON') {
      timer = setTimeout(() => {
        this.separateTimers.delete(timer!);
        separate = true;
        const ack = serializeMessage({ type: 'ACK', code: '0.00', messageId: message.messageId, token: EMPTY, options: [], payload: EMPTY });
        this.received.update(key, { datagram: ack });
        this.send(ack, peer);
      }, this.timing.piggybackDelay);
      this.separateTimers.add(timer);
    }
    result.then(respond, (error) => respond(internalError(error)));
  }

  /** Sends the response to a request (piggybacked on the ACK, or as NON) and remembers it for duplicates. */
  private answer(message: CoapMessage, peer: Peer, key: string, response: OutgoingResponse): void {
    const out = this.responseMessage({ token: message.token }, response, message);
    let datagram: Buffer;
    try {
      datagram = serializeMessage(out);
    } catch (error) {
      datagram = serializeMessage(this.responseMessage({ token: message.token }, internalError(error), message));
    }
    this.received.update(key, { datagram });
    this.send(datagram, peer);
  }

  private responseMessage(origin: { token: Buffer }, response: OutgoingResponse, request: CoapMessage | undefined): CoapMessage {
    const options: CoapOption[] = [...(response.options ?? [])];
    if (response.observe !== undefined) options.push(uintOption(OptionNumber.OBSERVE, response.observe % 0x1000000));
    if (response.contentFormat !== undefined) options.push(uintOption(OptionNumber.CONTENT_FORMAT, response.contentFormat));
    const piggybacked = request?.type === 'CON';
    return {
      type: piggybacked ? 'ACK' : 'NON',
      code: response.code,
      messageId: piggybacked ? request.messageId : this.takeMessageId(),
      token: origin.token,
      options,
      payload: response.payload ?? EMPTY,
    };
  }

  /** An empty ACK or Reset: four bytes, written directly (one goes out for every Confirmable notification). */
  private sendEmpty(type: 'ACK' | 'RST', messageId: number, peer: Peer): void {
    const datagram = Buffer.allocUnsafe(4);
    datagram[0] = type === 'ACK' ? 0x60 : 0x70; // version 1, type 2 (ACK) or 3 (RST), no token
    datagram[1] = 0; // code 0.00
    datagram.writeUInt16BE(messageId, 2);
    this.send(datagram, peer);
  }

  // --- block-wise, server side ---

  /** Adds one Block1 part; returns the response to send now, or undefined when the body is complete. */
  private collectBlock1(request: IncomingRequest, block: BlockOption): OutgoingResponse | undefined {
    const key = resourceKey(request, request.method);
    const size = blockSize(block.szx);
    let assembly = this.block1.get(key);
    if (block.num === 0) {
      assembly = { chunks: [], size: 0, next: 0 };
      const announced = getUintOption(request, OptionNumber.SIZE1);
      if (announced !== undefined && announced > this.maxBodySize) return tooLarge(this.maxBodySize);
      this.block1.set(key, assembly);
    }
    if (!assembly || block.num * size !== assembly.size || (block.more && request.payload.length !== size)) {
      // a part out of order, or the first part missing
      this.block1.delete(key);
      return { code: '4.08', payload: Buffer.from('block-wise transfer incomplete or out of order') };
    }
    assembly.size += request.payload.length;
    if (assembly.size > this.maxBodySize) {
      this.block1.delete(key);
      return tooLarge(this.maxBodySize);
    }
    assembly.chunks.push(request.payload);
    if (block.more) {
      const szx = Math.min(block.szx, this.maxSzx);
      return { code: '2.31', options: [{ number: OptionNumber.BLOCK1, value: encodeBlock({ num: block.num, more: true, szx }) }] };
    }
    this.block1.delete(key);
    request.payload = Buffer.concat(assembly.chunks, assembly.size);
    return undefined;
  }

  private block2Key(request: IncomingRequest): string {
    const body = request.method === 'FETCH' ? request.payload.toString('base64') : '';
    return `${resourceKey(request, request.method === 'FETCH' ? 'FETCH' : 'GET')}|${request.accept ?? ''}|${body}`;
  }

  /** Cuts a response into the requested block; the whole body is kept for the following block requests. */
  private sliceBlock2(response: OutgoingResponse, requested: BlockOption | undefined, request: IncomingRequest): OutgoingResponse {
    const payload = response.payload ?? EMPTY;
    const szx = Math.min(requested?.szx ?? this.maxSzx, this.maxSzx);
    const size = blockSize(szx);
    if (payload.length <= size && !requested?.num) return response;
    const num = requested?.num ?? 0;
    if (num * size >= payload.length && num > 0) return { code: '4.02', payload: Buffer.from('no such block') };
    if (num === 0 && (request.method === 'GET' || request.method === 'FETCH')) this.block2.set(this.block2Key(request), { ...response, observe: undefined });
    const more = (num + 1) * size < payload.length;
    // who is downloading what, block by block (e.g. a firmware package's progress per device)
    if (this.listenerCount('blockServed') > 0) this.emit('blockServed', { peer: request.peer, path: request.path, served: Math.min((num + 1) * size, payload.length), total: payload.length });
    const options = [...(response.options ?? []), { number: OptionNumber.BLOCK2, value: encodeBlock({ num, more, szx }) }];
    if (num === 0) options.push(uintOption(OptionNumber.SIZE2, payload.length));
    return { ...response, observe: num === 0 ? response.observe : undefined, options, payload: payload.subarray(num * size, (num + 1) * size) };
  }
}

interface ExchangeHost {
  readonly pending: Map<string, PendingResponse>;
  readonly transmissions: Map<string, Transmission>;
  resend(datagram: Buffer, peer: Peer): void;
}

/**
 * A request of ours awaiting its response: it is its own entry in the endpoint's `pending` (by
 * token) and, while Confirmable and unacknowledged, in `transmissions` (by Message ID). Methods on
 * the prototype and one timer, instead of a closure per callback and a timer per purpose: the
 * downlink of a fleet creates thousands of these a second.
 */
class RequestExchange implements Transmission, PendingResponse {
  timer: NodeJS.Timeout | undefined;
  resolvePromise: (message: CoapMessage) => void = ignore;
  rejectPromise: (error: Error) => void = ignore;
  private settled = false;
  private acknowledged: boolean;
  private attempts = 1;
  private wait = 0;
  private armedForDeadline = false;
  private maxRetransmit = 0;

  constructor(
    private readonly host: ExchangeHost,
    readonly peer: Peer,
    private readonly where: string,
    readonly messageKey: string,
    readonly tokenKey: string,
    private readonly token: Buffer,
    readonly datagram: Buffer,
    private readonly deadline: number,
    /** the time the whole request was given, for the error that says it ran out */
    private readonly seconds: number,
    confirmable: boolean,
  ) {
    // a NON request is never acknowledged: only the deadline ends it
    this.acknowledged = !confirmable;
  }

  /** Arms the timer after the first transmission. */
  start(timing: CoapTiming): void {
    if (this.settled) return;
    this.maxRetransmit = timing.maxRetransmit;
    this.wait = timing.ackTimeout * (1 + Math.random() * (timing.ackRandomFactor - 1));
    this.arm();
  }

  private arm(): void {
    const left = this.deadline - Date.now();
    const delay = this.acknowledged ? left : Math.min(this.wait, left);
    // a timer armed for the deadline ends the exchange when it fires: the event loop's clock can
    // lag Date.now() under load, so the timer may fire a little before Date.now() reaches it
    this.armedForDeadline = delay >= left;
    this.timer = setTimeout(RequestExchange.fire, Math.max(0, delay), this);
  }

  private static fire(exchange: RequestExchange): void {
    exchange.onTimer();
  }

  private onTimer(): void {
    if (this.settled) return;
    if (this.armedForDeadline || Date.now() >= this.deadline) {
      this.fail(new CoapError('TIMEOUT', `no response from ${this.where} within ${Number(this.seconds.toFixed(1))} s`));
      return;
    }
    if (this.acknowledged) {
      this.arm();
      return;
    }
    if (this.attempts > this.maxRetransmit) {
      this.onTimeout();
      return;
    }
    this.attempts++;
    this.host.resend(this.datagram, this.peer);
    this.wait *= 2;
    this.arm();
  }

  /** An ACK to our request: empty (a separate response follows) or with the response piggybacked. */
  onAck(message: CoapMessage): void {
    if (this.settled) return;
    this.acknowledged = true;
    this.host.transmissions.delete(this.messageKey);
    // a piggybacked response must carry the request's token; one that does not answers something else
    if (message.code !== '0.00' && message.token.equals(this.token)) this.answered(message);
  }

  onReset(): void {
    this.fail(new CoapError('RESET', `${this.where} rejected the request with a Reset`));
  }

  onTimeout(): void {
    this.fail(new CoapError('TIMEOUT', `no acknowledgement from ${this.where} after ${this.maxRetransmit} retransmissions`));
  }

  /** The response arrived (piggybacked or separate). */
  answered(message: CoapMessage): void {
    if (this.settle()) this.resolvePromise(message);
  }

  fail(error: Error): void {
    if (this.settle()) this.rejectPromise(error);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    if (this.host.pending.get(this.tokenKey) === this) this.host.pending.delete(this.tokenKey);
    if (this.host.transmissions.get(this.messageKey) === this) this.host.transmissions.delete(this.messageKey);
    return true;
  }
}

function ignore(): void {}

/** A request's options but Observe and the block options: Uri-Path, Uri-Query, the caller's, Content-Format, Accept. */
function requestOptions(params: RequestParams): CoapOption[] {
  const options: CoapOption[] = [];
  if (params.path) options.push(...pathOptions(params.path));
  if (params.query) options.push(...queryOptions(params.query));
  if (params.options) options.push(...params.options);
  if (params.contentFormat !== undefined) options.push(uintOption(OptionNumber.CONTENT_FORMAT, params.contentFormat));
  if (params.accept !== undefined) options.push(uintOption(OptionNumber.ACCEPT, params.accept));
  return options;
}

/** What a block-wise transfer is about: the peer, the method and the URI (tokens may differ per block). */
function resourceKey(request: IncomingRequest, method: string): string {
  return `${peerKey(request.peer)}|${method}|${request.path.join('/')}?${request.query.join('&')}`;
}

/** Random tokens (RFC 7252 §5.3.1: hard to guess for an off-path attacker), 8 bytes each. */
function newToken(): Buffer {
  return pooledRandomBytes(8);
}

function toResponse(message: CoapMessage, payload: Buffer, peer: Peer): CoapResponse {
  return {
    code: message.code,
    type: message.type,
    payload,
    options: message.options,
    contentFormat: getUintOption(message, OptionNumber.CONTENT_FORMAT),
    observe: getUintOption(message, OptionNumber.OBSERVE),
    token: message.token,
    peer,
  };
}

function internalError(error: unknown): OutgoingResponse {
  return { code: '5.00', payload: Buffer.from(error instanceof Error ? error.message : String(error)) };
}

function tooLarge(limit: number): OutgoingResponse {
  return { code: '4.13', options: [uintOption(OptionNumber.SIZE1, limit)], payload: Buffer.from(`the body is larger than ${limit} bytes`) };
}
