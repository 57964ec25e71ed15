/**
 * The baseline of bench/server: a minimal LwM2M registration server written the way a Node.js user
 * would write one with node-coap (`coap` 1.5, a devDependency: a baseline, never a runtime
 * dependency of ours). It does what the bench asks of our LwM2MServer and no more:
 *
 * - POST /rd?ep=…&lt=… stores { endpoint, id, address, port, lifetime, links } in a Map and answers
 *   2.01 with Location-Path rd/<id>; POST /rd/<id> updates the lifetime and the address (2.04);
 *   DELETE /rd/<id> removes it (2.02). Registrations never expire here (ours keep an expiry);
 * - reads: `coap.request({ hostname, port, pathname, method: 'GET', accept: 'text/plain', agent })`,
 *   resolving with the payload; observations: the same with `observe: true`, each notification a
 *   'data' event of the response stream.
 *
 * The server and the agent share one socket: the devices registered from behind that port, and a
 * device (like one behind NAT) only hears the address it registered with. node-coap's
 * `server.listen(socket)` and `new Agent({ socket })` are its way of doing that.
 */
import { createSocket, type Socket } from 'node:dgram';
import * as coap from 'coap';
import { sizeSocketBuffers } from '../lib/transport/datagram';

export interface NodeCoapRegistration {
  endpoint: string;
  id: string;
  address: string;
  port: number;
  lifetime: number;
  links: string;
}

/** ms a read or an observe may wait for its answer, as our server's `requestTimeout` in the bench (node-coap alone would wait its exchange lifetime, 247 s) */
const REQUEST_TIMEOUT = 10_000;

export class NodeCoapLwM2MServer {
  /** by registration id */
  readonly registrations = new Map<string, NodeCoapRegistration>();
  private readonly idByEndpoint = new Map<string, string>();
  private nextId = 0;

  private constructor(
    private readonly socket: Socket,
    private readonly server: coap.Server,
    private readonly agent: coap.Agent,
  ) {}

  /** Binds a socket on `address` (a free port), asks the kernel for `bufferSize` bytes of receive and send buffer, and serves on it. */
  static async listen(options: { address: string; bufferSize: number }): Promise<NodeCoapLwM2MServer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, options.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    sizeSocketBuffers(socket, options.bufferSize);
    const server = coap.createServer();
    const instance = new NodeCoapLwM2MServer(socket, server, new coap.Agent({ socket }));
    server.on('request', (request: coap.IncomingMessage, response: coap.OutgoingMessage) => instance.handle(request, response));
    await new Promise<void>((resolve) => server.listen(socket, () => resolve()));
    return instance;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** the buffer sizes the kernel granted (Linux reports twice what was set, its bookkeeping included) */
  bufferSizes(): { receive: number; send: number } {
    return { receive: this.socket.getRecvBufferSize(), send: this.socket.getSendBufferSize() };
  }

  registrationOf(endpoint: string): NodeCoapRegistration | undefined {
    const id = this.idByEndpoint.get(endpoint);
    return id === undefined ? undefined : this.registrations.get(id);
  }

  private handle(request: coap.IncomingMessage, response: coap.OutgoingMessage): void {
    const [path = '', query = ''] = request.url.split('?');
    const segments = path.split('/').filter(Boolean);
    const answer = (code: string) => {
      response.code = code;
      response.end();
    };
    if (segments[0] !== 'rd' || segments.length > 2) return answer('4.04');
    const params = new URLSearchParams(query);
    if (segments.length === 1) {
      if (request.method !== 'POST') return answer('4.05');
      const endpoint = params.get('ep');
      if (!endpoint) return answer('4.00');
      const previous = this.idByEndpoint.get(endpoint);
      if (previous !== undefined) this.registrations.delete(previous);
      const id = (this.nextId++).toString(16).padStart(8, '0');
      this.registrations.set(id, {
        endpoint,
        id,
        address: request.rsinfo.address,
        port: request.rsinfo.port,
        lifetime: Number(params.get('lt') ?? 86400),
        links: request.payload.toString('utf8'),
      });
      this.idByEndpoint.set(endpoint, id);
      response.setOption('Location-Path', [Buffer.from('rd'), Buffer.from(id)]);
      return answer('2.01');
    }
    const registration = this.registrations.get(segments[1]!);
    if (!registration) return answer('4.04');
    if (request.method === 'POST') {
      const lifetime = params.get('lt');
      if (lifetime !== null) registration.lifetime = Number(lifetime);
      registration.address = request.rsinfo.address;
      registration.port = request.rsinfo.port;
      return answer('2.04');
    }
    if (request.method === 'DELETE') {
      this.registrations.delete(registration.id);
      this.idByEndpoint.delete(registration.endpoint);
      return answer('2.02');
    }
    return answer('4.05');
  }

  /** GET `path` on the device, text/plain: the payload as text. */
  read(endpoint: string, path: string): Promise<string> {
    return this.request(endpoint, path, false).then((response) => response.payload.toString('utf8'));
  }

  /** GET with Observe on `path`: resolves once the device accepted; `onValue` gets the first value and every notification after it. */
  async observe(endpoint: string, path: string, onValue: (payload: Buffer) => void): Promise<void> {
    const response = await this.request(endpoint, path, true);
    if (response.headers.Observe === undefined) throw new Error(`${endpoint} answered ${path} without Observe`);
    response.on('data', onValue);
  }

  private request(endpoint: string, path: string, observe: boolean): Promise<coap.IncomingMessage> {
    const registration = this.registrationOf(endpoint);
    if (!registration) return Promise.reject(new Error(`${endpoint} is not registered`));
    return new Promise((resolve, reject) => {
      const request = coap.request({
        hostname: registration.address,
        port: registration.port,
        pathname: path,
        method: 'GET',
        accept: 'text/plain',
        observe: observe || undefined,
        agent: this.agent,
      });
      const timer = setTimeout(() => reject(new Error(`no answer from ${endpoint} in ${REQUEST_TIMEOUT} ms`)), REQUEST_TIMEOUT);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      request.on('response', (response: coap.IncomingMessage) => {
        clearTimeout(timer);
        if (response.code === '2.05') resolve(response);
        else reject(new Error(`${endpoint} answered ${path} with ${response.code}`));
      });
      request.on('error', fail);
      request.on('timeout', fail);
      request.end();
    });
  }

  /** Stops serving and closes the socket (node-coap leaves a socket it was given open). */
  close(): Promise<void> {
    this.server.close();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
