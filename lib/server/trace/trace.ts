/**
 * The server's CoAP trace: every message in and out of its sockets as a TraceEntry, kept in a ring
 * buffer of the last `size` and handed to a listener (the server's `trace` event). Off, it costs
 * nothing: no tap is installed on the endpoints, so no datagram is looked at twice.
 */
import type { ResourceLookup } from '../../model/model';
import { peerKey, type CoapEndpoint, type Peer } from '../../transport/endpoint';
import type { CoapMessage } from '../../transport/message';
import { lwm2mPathOf, traceEntry, type TraceEntry } from './entry';
import { RingBuffer } from './ring-buffer';

export interface TraceSource {
  endpoint: CoapEndpoint;
  /** the endpoint runs over DTLS: its peers have PSK identities */
  secure: boolean;
}

/** Who a peer is, as far as the server knows. */
export interface PeerIdentity {
  endpoint?: string;
  identity?: string;
}

export interface TraceHooks {
  /** the endpoint name (and, over DTLS, the PSK identity) of a peer */
  whois(peer: Peer, secure: boolean): PeerIdentity;
  model: ResourceLookup;
  /** told every entry, while tracing */
  onEntry(entry: TraceEntry): void;
}

export interface TraceFilter {
  /** only this device's entries */
  endpoint?: string;
  /** only the latest `limit` (after the endpoint filter) */
  limit?: number;
}

/** requests remembered to decode their responses by path (TLV needs the path); the oldest go first */
const REQUEST_PATHS = 1024;
/** largest buffer: the entries are bounded objects, but a million of them would still be hundreds of MB */
export const MAX_TRACE_SIZE = 100_000;

export class CoapTrace {
  private readonly buffer = new RingBuffer<TraceEntry>(0);
  private streaming = false;
  private installed = false;
  /** the LwM2M path of requests we sent, by peer and token, for their responses */
  private readonly requestPaths = new Map<string, string>();

  constructor(
    private readonly sources: readonly TraceSource[],
    private readonly hooks: TraceHooks,
  ) {}

  /** How many entries the buffer keeps (0: none). */
  get size(): number {
    return this.buffer.capacity;
  }

  /** Whether messages are being traced: the buffer keeps some, or someone listens. */
  get active(): boolean {
    return this.installed;
  }

  /** The kept entries, oldest first (the objects themselves: treat them as read-only). */
  entries(filter: TraceFilter = {}): TraceEntry[] {
    let entries = this.buffer.toArray();
    if (filter.endpoint !== undefined) entries = entries.filter((entry) => entry.endpoint === filter.endpoint);
    if (filter.limit !== undefined) entries = filter.limit > 0 ? entries.slice(-filter.limit) : [];
    return entries;
  }

  clear(): void {
    this.buffer.clear();
  }

  /** Keeps the last `size` entries (0: keeps none); tracing runs while size > 0 or streaming. */
  setSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_TRACE_SIZE) throw new RangeError(`the trace size is a whole number from 0 to ${MAX_TRACE_SIZE}, not ${size}`);
    this.buffer.resize(size);
    this.update();
  }

  /** Hands every entry to onEntry even with no buffer (someone listens to the server's trace event). */
  setStreaming(on: boolean): void {
    this.streaming = on;
    this.update();
  }

  private update(): void {
    const wanted = this.streaming || this.buffer.capacity > 0;
    if (wanted === this.installed) return;
    this.installed = wanted;
    if (!wanted) this.requestPaths.clear();
    for (const source of this.sources) source.endpoint.setTap(wanted ? (direction, datagram, peer) => this.record(direction, datagram, peer, source.secure) : undefined);
  }

  private record(direction: 'in' | 'out', datagram: Buffer, peer: Peer, secure: boolean): void {
    try {
      const known = this.hooks.whois(peer, secure);
      const { entry, message } = traceEntry(datagram, {
        time: Date.now(),
        direction,
        peer,
        identity: known.identity,
        endpoint: known.endpoint,
        model: this.hooks.model,
        requestPath: (response) => this.requestPaths.get(tokenKey(peer, response)),
      });
      if (message) this.remember(direction, message, peer, entry);
      this.buffer.push(entry);
      this.hooks.onEntry(entry);
    } catch {
      // a trace must never disturb the traffic it watches; an entry that cannot be made is left out
    }
  }

  /** Requests we send: their path, for the response; a Register: the endpoint name it gives. */
  private remember(direction: 'in' | 'out', message: CoapMessage, peer: Peer, entry: TraceEntry): void {
    if (!message.code.startsWith('0.') || message.code === '0.00') return;
    if (direction === 'out') {
      const path = lwm2mPathOf(message);
      if (path === undefined) return;
      const key = tokenKey(peer, message);
      this.requestPaths.delete(key);
      this.requestPaths.set(key, path);
      if (this.requestPaths.size > REQUEST_PATHS) this.requestPaths.delete(this.requestPaths.keys().next().value!);
    } else if (message.code === '0.02' && entry.options?.['Uri-Path'] === '/rd' && (entry.identity === undefined || entry.endpoint === undefined)) {
      // a Register names its endpoint before the server knows it (or anew, from an address it knew as another);
      // over DTLS the endpoint bound to the identity is the one the server goes by
      const ep = (entry.options['Uri-Query'] as string[] | undefined)?.find((item) => item.startsWith('ep='));
      if (ep !== undefined) entry.endpoint = ep.slice(3);
    }
  }
}

function tokenKey(peer: Peer, message: CoapMessage): string {
  return `${peerKey(peer)}#${message.token.toString('hex')}`;
}
