/**
 * Which endpoint a DTLS peer may act as. A PSK identity is bound to its endpoint by the PSK table;
 * a raw public key by the raw key table (the session's identity is then that endpoint); a
 * certificate names its endpoint in its subject CN, which is the session's identity.
 */
import type { Peer } from '../transport/endpoint';
import { PskTable } from './psk-table';
import { RawKeyTable } from './raw-key-table';
import type { RegistrationRecord } from './types';

type Authenticated = Pick<Peer, 'identity' | 'authentication'>;

export class DeviceIdentities {
  readonly psks = new PskTable();
  readonly rawKeys = new RawKeyTable();

  /** The endpoint a peer's session allows it to be; undefined over plain CoAP or for an identity bound to nothing. */
  endpointOf(peer: Authenticated): string | undefined {
    if (peer.identity === undefined) return undefined;
    return (peer.authentication ?? 'psk') === 'psk' ? this.psks.endpointOf(peer.identity) : peer.identity;
  }

  /** Whether an endpoint has a PSK or raw public key, so that it may not use plain CoAP. */
  hasKey(endpoint: string): boolean {
    return this.psks.hasEndpoint(endpoint) || this.rawKeys.hasEndpoint(endpoint);
  }

  /** Whether a request comes over the kind of session, with the identity, that a registration was made over. */
  sameSession(peer: Authenticated, record: Pick<RegistrationRecord, 'identity' | 'authentication'>): boolean {
    return peer.identity === record.identity && (peer.identity === undefined || kind(peer) === (record.authentication ?? 'psk'));
  }
}

/** How a session authenticated, as the registration record keeps it (nothing for a PSK, the most common). */
export function recordedAuthentication(peer: Authenticated): Pick<RegistrationRecord, 'authentication'> {
  const authentication = kind(peer);
  return peer.identity === undefined || authentication === 'psk' ? {} : { authentication };
}

/** Who a peer says it is, for messages: "the PSK identity x", "the certificate of CN x", "the raw public key of x". */
export function describeIdentity(peer: Authenticated): string {
  const identity = peer.identity ?? '';
  switch (kind(peer)) {
    case 'certificate':
      return `the certificate of CN ${identity}`;
    case 'rawPublicKey':
      return `the raw public key of ${identity}`;
    default:
      return `the PSK identity ${identity}`;
  }
}

/** One string per session identity, distinct across kinds (a PSK identity may equal another device's CN). */
export function sessionKey(peer: Authenticated): string {
  return `${kind(peer)}:${peer.identity ?? ''}`;
}

function kind(peer: Authenticated): NonNullable<Peer['authentication']> {
  return peer.authentication ?? 'psk';
}
