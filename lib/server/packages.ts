/**
 * Files the server serves to devices on its own CoAP (and DTLS) port, e.g. firmware packages that
 * devices pull: each under `/fw/<random name>`, block-wise (the endpoint slices Block2 from the one
 * buffer, so a hundred devices pulling one package share its bytes). The name is unguessable; over
 * DTLS only the identities the file was published for may fetch it.
 */
import { pooledRandomId } from '../transport/random-pool';
import { networkInterfaces } from 'node:os';
import { isIPv6 } from 'node:net';
import { ContentFormat } from '../content';
import { peerKey, type IncomingRequest, type OutgoingResponse, type Peer } from '../transport/endpoint';
import { sessionKey } from './device-identity';

export const PACKAGE_PATH = 'fw';

/** Told for each block a peer fetched: how far it is. */
export type PackageProgress = (peer: Peer, served: number, total: number) => void;

/** A file the server serves until it is released. */
export interface PublishedPackage {
  /** `/fw/<name>` */
  readonly path: string;
  readonly size: number;
  /** lets a DTLS session's identity fetch it (a PSK identity, or with `authentication` a certificate's or raw key's; plain CoAP needs only the path) */
  allow(identity: string, authentication?: Peer['authentication']): void;
  /** listens to the blocks peers fetch: all of them, or those of one peer (address and port) */
  onProgress(listener: PackageProgress, from?: { address: string; port: number }): () => void;
  /** stops serving it */
  release(): void;
}

interface Entry {
  payload: Buffer;
  contentFormat: number;
  identities: Set<string>;
  listeners: Set<PackageProgress>;
  /** listeners of one peer each, by address:port: a fleet's block costs one call, not one per device */
  byPeer: Map<string, Set<PackageProgress>>;
}

export class PackageServer {
  private readonly entries = new Map<string, Entry>();

  get size(): number {
    return this.entries.size;
  }

  publish(payload: Buffer, contentFormat: number = ContentFormat.OPAQUE): PublishedPackage {
    const name = pooledRandomId(12);
    const entry: Entry = { payload, contentFormat, identities: new Set(), listeners: new Set(), byPeer: new Map() };
    this.entries.set(name, entry);
    return {
      path: `/${PACKAGE_PATH}/${name}`,
      size: payload.length,
      allow: (identity, authentication) => entry.identities.add(sessionKey({ identity, authentication })),
      onProgress: (listener, from) => {
        if (!from) {
          entry.listeners.add(listener);
          return () => entry.listeners.delete(listener);
        }
        const key = peerKey(from);
        let set = entry.byPeer.get(key);
        if (!set) entry.byPeer.set(key, (set = new Set()));
        set.add(listener);
        return () => {
          set!.delete(listener);
          if (set!.size === 0 && entry.byPeer.get(key) === set) entry.byPeer.delete(key);
        };
      },
      release: () => {
        this.entries.delete(name);
        entry.listeners.clear();
        entry.byPeer.clear();
      },
    };
  }

  /** The answer to a request under `/fw/`. */
  serve(request: IncomingRequest, name: string | undefined): OutgoingResponse {
    const entry = name === undefined ? undefined : this.entries.get(name);
    if (!entry) return { code: '4.04', payload: Buffer.from('no such package (it is served only while an update uses it)') };
    if (request.method !== 'GET') return { code: '4.05' };
    if (request.peer.identity !== undefined && !entry.identities.has(sessionKey(request.peer))) return { code: '4.03', payload: Buffer.from('not published for this identity') };
    return { code: '2.05', contentFormat: entry.contentFormat, payload: entry.payload };
  }

  /** A block of a response went out: tells the package's listeners. */
  served(peer: Peer, path: readonly string[], served: number, total: number): void {
    if (path.length !== 2 || path[0] !== PACKAGE_PATH) return;
    const entry = this.entries.get(path[1]!);
    if (!entry) return;
    for (const listener of entry.listeners) listener(peer, served, total);
    const own = entry.byPeer.size > 0 ? entry.byPeer.get(peerKey(peer)) : undefined;
    if (own) for (const listener of own) listener(peer, served, total);
  }

  clear(): void {
    this.entries.clear();
  }
}

/**
 * The host a device reaches this server at, for URIs handed to it: the configured one, else the
 * bound address, else (bound to every address) the local address on the device's own network, or
 * loopback for a device on this machine.
 */
export function hostFor(device: string, bound: string, configured?: string): string {
  const host = configured ?? (isWildcard(bound) ? localAddressFacing(device) : bound);
  return isIPv6(host) ? `[${host}]` : host;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '';
}

/** The local interface address on the same network as `device`, loopback for a local device, else the first external one. */
function localAddressFacing(device: string): string {
  const plain = device.startsWith('::ffff:') ? device.slice(7) : device;
  if (plain === '::1') return '::1';
  if (plain.startsWith('127.')) return '127.0.0.1';
  const candidates = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const v6 = isIPv6(plain);
  const family = v6 ? 'IPv6' : 'IPv4';
  for (const candidate of candidates) {
    if (candidate.internal || candidate.family !== family) continue;
    if (sameNetwork(plain, candidate.address, candidate.netmask, v6)) return candidate.address;
  }
  return candidates.find((candidate) => !candidate.internal && candidate.family === family)?.address ?? (v6 ? '::1' : '127.0.0.1');
}

function sameNetwork(a: string, b: string, mask: string, v6: boolean): boolean {
  if (v6) return false; // link-local and prefixes vary too much: the fallback picks the first external address
  const bytes = (text: string) => text.split('.').map(Number);
  const [x, y, m] = [bytes(a), bytes(b), bytes(mask)];
  return x.length === 4 && x.every((part, index) => (part & m[index]!) === (y[index]! & m[index]!));
}
