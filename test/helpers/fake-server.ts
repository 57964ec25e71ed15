/**
 * A minimal LwM2M server for client tests: it accepts Register/Update/De-register and Send on a
 * real UDP socket, records every request, and sends device-management requests to a client. Tests
 * steer it (drop requests, answer with an error code) to exercise the client's reactions.
 */
import { CoapEndpoint, type CoapResponse, type IncomingRequest, type OutgoingResponse, type Peer, type RequestParams } from '../../lib/transport/endpoint';
import { OptionNumber } from '../../lib/transport/message';
import type { CoapTiming } from '../../lib/transport/timing';

export interface RecordedRequest {
  method: string;
  path: string;
  query: string[];
  payload: Buffer;
  contentFormat?: number;
  peer: Peer;
}

export type Behaviour = (request: IncomingRequest) => OutgoingResponse | 'drop' | undefined;

export const FAST_TIMING: Partial<CoapTiming> = { ackTimeout: 100, ackRandomFactor: 1, maxRetransmit: 2 };

export class FakeServer {
  readonly endpoint: CoapEndpoint;
  readonly requests: RecordedRequest[] = [];
  /** answer differently: return 'drop' to ignore a request, a response to send it, undefined for the default */
  behaviour: Behaviour | undefined;
  private nextId = 1;
  private readonly registered = new Map<string, { endpoint: string; peer: Peer }>();
  private waiters: Array<{ test: (request: RecordedRequest) => boolean; resolve: (request: RecordedRequest) => void }> = [];

  constructor(timing: Partial<CoapTiming> = FAST_TIMING) {
    this.endpoint = new CoapEndpoint({ timing });
    this.endpoint.setRequestHandler((request) => this.handle(request));
  }

  async start(): Promise<string> {
    const { port } = await this.endpoint.listen(0, '127.0.0.1');
    return `coap://127.0.0.1:${port}`;
  }

  close(): Promise<void> {
    return this.endpoint.close();
  }

  /** Resolves with the first recorded request (past or future) that passes `test`. */
  waitFor(test: (request: RecordedRequest) => boolean, after = 0): Promise<RecordedRequest> {
    const seen = this.requests.slice(after).find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  /** The peer a client registered from, by endpoint name. */
  peerOf(endpoint: string): Peer {
    for (const entry of this.registered.values()) if (entry.endpoint === endpoint) return entry.peer;
    throw new Error(`${endpoint} is not registered`);
  }

  registrations(): string[] {
    return [...this.registered.values()].map((entry) => entry.endpoint);
  }

  /** Sends a device-management request to a registered client. */
  request(endpoint: string, params: RequestParams): Promise<CoapResponse> {
    return this.endpoint.request(this.peerOf(endpoint), { timeout: 5000, ...params });
  }

  private handle(request: IncomingRequest): OutgoingResponse | Promise<OutgoingResponse> {
    const recorded: RecordedRequest = {
      method: request.method,
      path: '/' + request.path.join('/'),
      query: request.query,
      payload: request.payload,
      contentFormat: request.contentFormat,
      peer: request.peer,
    };
    const custom = this.behaviour?.(request);
    if (custom === 'drop') return new Promise(() => undefined); // never answered: the client sees a timeout
    this.requests.push(recorded);
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.test(recorded)) return true;
      waiter.resolve(recorded);
      return false;
    });
    if (custom) return custom;
    return this.answer(request, recorded);
  }

  private answer(request: IncomingRequest, recorded: RecordedRequest): OutgoingResponse {
    if (recorded.method === 'POST' && recorded.path === '/rd') {
      const endpoint = request.query.find((item) => item.startsWith('ep='))?.slice(3) ?? '';
      // the same endpoint registering again replaces its old registration
      for (const [id, entry] of this.registered) if (entry.endpoint === endpoint) this.registered.delete(id);
      const id = String(this.nextId++);
      this.registered.set(id, { endpoint, peer: request.peer });
      return { code: '2.01', options: [{ number: OptionNumber.LOCATION_PATH, value: Buffer.from('rd') }, { number: OptionNumber.LOCATION_PATH, value: Buffer.from(id) }] };
    }
    const match = /^\/rd\/(\w+)$/.exec(recorded.path);
    if (match) {
      const entry = this.registered.get(match[1]!);
      if (!entry) return { code: '4.04' };
      if (recorded.method === 'DELETE') {
        this.registered.delete(match[1]!);
        return { code: '2.02' };
      }
      entry.peer = request.peer;
      return { code: '2.04' };
    }
    if (recorded.method === 'POST' && recorded.path === '/dp') return { code: '2.04' };
    return { code: '4.04' };
  }
}
