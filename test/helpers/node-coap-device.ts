/**
 * An LwM2M device built on node-coap (the `coap` package), an independent CoAP implementation, as
 * a peer of our server in interop tests. Like a real device it has one UDP socket on 127.0.0.1: a
 * node-coap Server on it answers the LwM2M server's requests, and a node-coap Agent on the same
 * socket sends the device's own (Register, Update, De-register). node-coap lets both share one
 * socket: its Server ignores responses and its Agent ignores requests.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Agent, createServer, type CoapRequestParams, type IncomingMessage, type ObserveWriteStream, type OutgoingMessage, type Server } from 'coap';
import { parse as parsePacket } from 'coap-packet';

/** What node-coap's Server hands a request handler: an ObserveWriteStream when the request has Observe=0. */
export type DeviceResponse = OutgoingMessage | ObserveWriteStream;
export type DeviceHandler = (request: IncomingMessage, response: DeviceResponse) => void;

/** A datagram that reached the device's socket, as coap-packet (node-coap's parser) reads it. */
export interface WireMessage {
  type: 'CON' | 'NON' | 'ACK' | 'RST';
  code: string;
  messageId: number;
  /** hex */
  token: string;
  observe?: number;
}

export class NodeCoapDevice {
  /** answers the server's requests; by default 4.04 to everything */
  handler: DeviceHandler = (_request, response) => {
    response.statusCode = '4.04';
    response.end();
  };
  /** every datagram the device received, in order */
  readonly received: WireMessage[] = [];

  private constructor(
    readonly socket: Socket,
    readonly server: Server,
    readonly agent: Agent,
  ) {}

  static async start(): Promise<NodeCoapDevice> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const server = createServer();
    // an EventEmitter given to listen() is taken as the socket, which the server then never closes
    await new Promise<void>((resolve, reject) => server.listen(socket, (error) => (error ? reject(error) : resolve())));
    const agent = new Agent({ socket });
    const device = new NodeCoapDevice(socket, server, agent);
    server.on('request', (request: IncomingMessage, response: DeviceResponse) => device.handler(request, response));
    socket.on('message', (datagram: Buffer) => device.record(datagram));
    return device;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Sends a request from the device's socket and resolves with the response. */
  request(params: CoapRequestParams, payload?: string | Buffer): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const request = this.agent.request({ hostname: '127.0.0.1', ...params });
      request.on('response', resolve);
      request.on('error', reject);
      request.on('timeout', reject);
      request.end(payload);
    });
  }

  /** The Location-Path segments of a response (node-coap's `headers` keeps only the last one). */
  static locationPath(response: IncomingMessage): string[] {
    // node-coap has turned these option values into strings in place (its typings still say Buffer)
    return (response._packet.options ?? []).filter((option) => option.name === 'Location-Path').map((option) => String(option.value));
  }

  async close(): Promise<void> {
    // Agent.close() never calls back when the socket is not its own: it only stops its retransmissions
    this.agent.close();
    // clears the Server's response cache, whose entries hold retransmission timers
    this.server.close();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private record(datagram: Buffer): void {
    try {
      const packet = parsePacket(datagram);
      const observe = packet.options.find((option) => option.name === 'Observe');
      this.received.push({
        type: packet.reset ? 'RST' : packet.ack ? 'ACK' : packet.confirmable ? 'CON' : 'NON',
        code: packet.code,
        messageId: packet.messageId,
        token: packet.token.toString('hex'),
        observe: observe ? observe.value.reduce((value, byte) => value * 256 + byte, 0) : undefined,
      });
    } catch {
      // not CoAP: nothing to record
    }
  }
}
