/**
 * A scripted bootstrap server for client tests: a CoapEndpoint (on plain UDP, or on a DtlsServer
 * as LwM2MServer does it) that records every Bootstrap-Request (POST /bs) and Bootstrap-Pack-Request
 * (GET /bspack), answers them as the test says, and sends Bootstrap-Discover, -Read, -Delete, -Write
 * and -Finish to the client over the same transport the request came from.
 */
import { ContentFormat, encode, parseLinkFormat, type Link } from '../../lib/content';
import { DtlsServer } from '../../lib/transport/dtls/server';
import { CoapEndpoint, type CoapResponse, type IncomingRequest, type OutgoingResponse, type Peer, type RequestParams } from '../../lib/transport/endpoint';
import type { CoapTiming } from '../../lib/transport/timing';
import { FAST_TIMING } from './fake-server';

/** How the server answers a /bs or /bspack request: a response, or 'drop' to stay silent. */
export type BootstrapAnswer = (request: IncomingRequest) => OutgoingResponse | 'drop';

/** A server account to write: Security and Server instance. */
export interface TestAccount {
  securityInstance: number;
  serverInstance: number;
  shortServerId: number;
  uri: string;
  psk?: { identity: string; key: Buffer };
  lifetime?: number;
  binding?: string;
}

export class ScriptedBootstrapServer {
  readonly endpoint: CoapEndpoint;
  /** every /bs and /bspack request, in order */
  readonly requests: IncomingRequest[] = [];
  /** default: 2.04 to a Bootstrap-Request, 4.04 to a Bootstrap-Pack-Request */
  answer: BootstrapAnswer = (request) => (request.method === 'POST' ? { code: '2.04' } : { code: '4.04' });
  /** run (after the answer is sent) for each Bootstrap-Request answered 2.04, with the client's peer */
  script: ((peer: Peer, request: IncomingRequest) => Promise<void>) | undefined;
  /** errors a script threw (a test checks it is empty) */
  readonly scriptErrors: unknown[] = [];
  private readonly dtls: DtlsServer | undefined;
  private waiters: Array<(request: IncomingRequest) => void> = [];

  constructor(options: { psk?: Record<string, Buffer>; timing?: Partial<CoapTiming> } = {}) {
    const timing = options.timing ?? FAST_TIMING;
    if (options.psk) {
      const keys = options.psk;
      this.dtls = new DtlsServer({ psk: (identity) => keys[identity], timing: { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 } });
      this.endpoint = new CoapEndpoint({ socket: this.dtls, timing });
    } else {
      this.endpoint = new CoapEndpoint({ timing });
    }
    this.endpoint.setRequestHandler((request) => this.handle(request));
  }

  /** Binds on 127.0.0.1 and returns the URI a client bootstraps from. */
  async start(): Promise<string> {
    if (this.dtls) {
      const { port } = await this.dtls.listen(0, '127.0.0.1');
      return `coaps://127.0.0.1:${port}`;
    }
    const { port } = await this.endpoint.listen(0, '127.0.0.1');
    return `coap://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    await this.endpoint.close();
    if (this.dtls) await new Promise<void>((resolve) => this.dtls!.close(() => resolve()));
  }

  /** The next /bs or /bspack request (or the one already received when `index` names it). */
  nextRequest(index = this.requests.length): Promise<IncomingRequest> {
    if (this.requests[index]) return Promise.resolve(this.requests[index]!);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.requests[index]) resolve(this.requests[index]!);
        else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  send(peer: Peer, params: RequestParams): Promise<CoapResponse> {
    return this.endpoint.request(peer, { timeout: 5000, ...params });
  }

  async discover(peer: Peer, path: string[] = []): Promise<{ code: string; links: Link[]; text: string }> {
    const response = await this.send(peer, { method: 'GET', path, accept: ContentFormat.LINK });
    const text = response.payload.toString('utf8');
    return { code: response.code, text, links: response.code === '2.05' ? parseLinkFormat(text) : [] };
  }

  async delete(peer: Peer, path: string): Promise<string> {
    return (await this.send(peer, { method: 'DELETE', path: segments(path) })).code;
  }

  async write(peer: Peer, path: string, value: unknown, format: number): Promise<CoapResponse> {
    return this.send(peer, { method: 'PUT', path: segments(path), contentFormat: format, payload: encode(format, path, value) });
  }

  async finish(peer: Peer): Promise<CoapResponse> {
    return this.send(peer, { method: 'POST', path: ['bs'] });
  }

  /** Delete /, write each account's Security and Server instance, Finish; the Finish answer. */
  async configure(peer: Peer, accounts: TestAccount[], format: number): Promise<CoapResponse> {
    const deleted = await this.delete(peer, '/');
    if (deleted !== '2.02') throw new Error(`Bootstrap-Delete / was answered ${deleted}`);
    for (const account of accounts) {
      for (const [path, value] of Object.entries(instancesOf(account))) {
        const written = await this.write(peer, path, value, format);
        if (written.code !== '2.04') throw new Error(`Bootstrap-Write ${path} was answered ${written.code}: ${written.payload.toString()}`);
      }
    }
    return this.finish(peer);
  }

  private handle(request: IncomingRequest): OutgoingResponse {
    const isRequest = (request.method === 'POST' && request.path.join('/') === 'bs') || (request.method === 'GET' && request.path.join('/') === 'bspack');
    if (!isRequest) return { code: '4.04' };
    this.requests.push(request);
    for (const waiter of this.waiters.splice(0)) waiter(request);
    const answer = this.answer(request);
    if (answer === 'drop') return new Promise<OutgoingResponse>(() => undefined) as never;
    const script = this.script;
    if (answer.code !== '2.04' || !script) return answer;
    return {
      ...answer,
      onSent: () => {
        script(request.peer, request).catch((error) => this.scriptErrors.push(error));
      },
    };
  }
}

/** The Security and Server instance values of an account, by instance path. */
export function instancesOf(account: TestAccount): Record<string, Record<number, unknown>> {
  const security = {
    0: account.uri,
    1: false,
    2: account.psk ? 0 : 3,
    3: account.psk ? Buffer.from(account.psk.identity) : Buffer.alloc(0),
    4: Buffer.alloc(0),
    5: account.psk ? account.psk.key : Buffer.alloc(0),
    10: account.shortServerId,
  };
  const server = { 0: account.shortServerId, 1: account.lifetime ?? 300, 6: false, 7: account.binding ?? 'U' };
  return { [`/0/${account.securityInstance}`]: security, [`/1/${account.serverInstance}`]: server };
}

function segments(path: string): string[] {
  return path.split('/').filter((segment) => segment !== '');
}
