/**
 * Puts a client's CoAP endpoint on the transport an account needs: a DTLS session under the
 * account's PSK, raw public key or certificate for coaps://, a plain UDP socket for coap://. Used for the registration (the
 * client's main endpoint, moved when the account changes) and for each bootstrap attempt.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { DtlsClient, type DtlsSession } from '../transport/dtls/client';
import type { CipherSuiteName, DtlsTiming } from '../transport/dtls/constants';
import type { CoapEndpoint, Peer } from '../transport/endpoint';
import type { Connection } from './accounts';
import { parseCoapUri } from '../transport/uri';

export interface TransportOptions {
  cipherSuites?: CipherSuiteName[];
  dtlsTiming?: Partial<DtlsTiming>;
  /** offer RFC 9146 connection IDs on coaps:// */
  connectionId?: boolean;
  localAddress?: string;
  localPort?: number;
  /** bytes of socket buffer asked of the kernel (the DTLS client's; a plain endpoint has its own setting) */
  socketBufferSize?: number;
  /** a session to offer for resumption; ignored by a server that does not have it */
  dtlsSession?: DtlsSession;
}

/**
 * Resolves the connection's host and gives `endpoint` (which has no socket) a socket or DTLS
 * session for it. `wanted` is asked once the name is resolved: false (the client stopped meanwhile)
 * leaves the endpoint as it was and rejects.
 */
export async function openTransport(endpoint: CoapEndpoint, connection: Connection, options: TransportOptions, wanted: () => boolean = () => true): Promise<{ peer: Peer; dtls?: DtlsClient }> {
  const { host, port, secure } = parseCoapUri(connection.uri);
  const address = isIP(host) ? host : (await lookup(host)).address;
  if (!wanted()) throw new Error(`the connection to ${connection.uri} is no longer wanted`);
  const peer = { address, port };
  if (!secure) {
    await endpoint.listen(options.localPort ?? 0, options.localAddress ?? (isIP(address) === 6 ? '::' : '0.0.0.0'));
    return { peer };
  }
  if (!connection.psk && !connection.ecdsa) throw new Error(`${connection.uri} is coaps:// but the account has no PSK, raw public key or certificate`);
  const dtls = new DtlsClient({
    host: address,
    port,
    ...(connection.psk ? { identity: connection.psk.identity, key: connection.psk.key } : connection.ecdsa),
    cipherSuites: options.cipherSuites,
    timing: options.dtlsTiming,
    connectionId: options.connectionId,
    localAddress: options.localAddress,
    localPort: options.localPort,
    socketBufferSize: options.socketBufferSize,
    ...(options.dtlsSession ? { session: options.dtlsSession } : {}),
  });
  endpoint.use(dtls, true); // closed with the endpoint
  return { peer, dtls };
}
