/** Our own DTLS client as a peer whose handshake must fail (a wrong key, an unknown identity). */
import assert from 'node:assert/strict';
import { DtlsClient } from '../../lib/transport/dtls/client';

/** short retransmissions: a refused handshake ends in a second or two */
const FAST_DTLS = { initialTimeout: 200, maxTimeout: 1000, maxRetransmissions: 4 };

/** Runs one PSK handshake that the server must refuse; fails the test if it succeeds. */
export async function failingHandshake(port: number, identity: string, key: Buffer): Promise<void> {
  const client = new DtlsClient({ host: '127.0.0.1', port, identity, key, timing: FAST_DTLS });
  client.on('error', () => undefined);
  client.on('handshakeFailed', () => undefined);
  await client.connect().then(
    () => assert.fail('the handshake should fail'),
    () => undefined,
  );
  await new Promise<void>((resolve) => client.close(resolve));
}
