/**
 * The registrations the server holds, indexed by id, endpoint name and peer address, with their
 * expiry. One sweep a second finds the expired ones: cheaper than a timer per device when there
 * are 100,000 of them.
 */
import { peerKey, type Peer } from '../transport/endpoint';
import type { RegistrationRecord } from './types';

export class Registry {
  private readonly byId = new Map<string, RegistrationRecord>();
  private readonly byEndpoint = new Map<string, string>();
  private readonly byPeer = new Map<string, string>();

  get size(): number {
    return this.byId.size;
  }

  get(id: string): RegistrationRecord | undefined {
    return this.byId.get(id);
  }

  byEndpointName(endpoint: string): RegistrationRecord | undefined {
    const id = this.byEndpoint.get(endpoint);
    return id === undefined ? undefined : this.byId.get(id);
  }

  byAddress(peer: Peer): RegistrationRecord | undefined {
    const id = this.byPeer.get(peerKey(peer));
    return id === undefined ? undefined : this.byId.get(id);
  }

  all(): IterableIterator<RegistrationRecord> {
    return this.byId.values();
  }

  /** Adds a registration; one for the same endpoint is replaced (and returned). */
  add(record: RegistrationRecord): RegistrationRecord | undefined {
    const previous = this.byEndpointName(record.endpoint);
    if (previous) this.remove(previous.id);
    this.byId.set(record.id, record);
    this.byEndpoint.set(record.endpoint, record.id);
    this.byPeer.set(peerKey(record), record.id);
    return previous;
  }

  /** Moves a registration to a new address (an Update from elsewhere: NAT rebinding). */
  move(record: RegistrationRecord, peer: Peer): void {
    const old = peerKey(record);
    if (this.byPeer.get(old) === record.id) this.byPeer.delete(old);
    record.address = peer.address;
    record.port = peer.port;
    this.byPeer.set(peerKey(peer), record.id);
  }

  remove(id: string): RegistrationRecord | undefined {
    const record = this.byId.get(id);
    if (!record) return undefined;
    this.byId.delete(id);
    if (this.byEndpoint.get(record.endpoint) === id) this.byEndpoint.delete(record.endpoint);
    const key = peerKey(record);
    if (this.byPeer.get(key) === id) this.byPeer.delete(key);
    return record;
  }

  /** Registrations whose lifetime (plus `grace` ms) ran out before `now`. */
  expired(now: number, grace: number): RegistrationRecord[] {
    const gone: RegistrationRecord[] = [];
    for (const record of this.byId.values()) {
      if (record.updatedAt + record.lifetime * 1000 + grace < now) gone.push(record);
    }
    return gone;
  }

  clear(): void {
    this.byId.clear();
    this.byEndpoint.clear();
    this.byPeer.clear();
  }
}
