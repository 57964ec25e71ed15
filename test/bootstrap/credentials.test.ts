/**
 * What a bootstrap relies on in the LwM2M server: one endpoint's PSK can be set, replaced and
 * removed at run time, and a replaced key stops working at once (its sessions end, a new handshake
 * with it is refused with an alert).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { DtlsClient, DtlsServer, LwM2MServer } from '../../lib';

describe('LwM2MServer PSKs set one at a time', function () {
  this.timeout(30_000);
  let server: LwM2MServer;
  const clients: DtlsClient[] = [];
  const oldKey = Buffer.from('11'.repeat(16), 'hex');
  const newKey = Buffer.from('22'.repeat(16), 'hex');

  beforeEach(async () => {
    server = new LwM2MServer({ port: 0, address: '127.0.0.1', dtls: { port: 0, address: '127.0.0.1', timing: { initialTimeout: 200 } } });
    await server.listen();
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) await new Promise<void>((resolve) => client.close(() => resolve()));
    await server.close();
  });

  const connect = (identity: string, key: Buffer): DtlsClient => {
    const client = new DtlsClient({ host: '127.0.0.1', port: server.secureAddress()!.port, identity, key, timing: { initialTimeout: 200, maxRetransmissions: 2 } });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  it('a replaced key: the session under the old one ends, and a handshake with it is refused with bad_record_mac', async () => {
    server.setCredential({ identity: 'dev-1', key: oldKey, endpoint: 'dev-1' });
    await connect('dev-1', oldKey).connect();
    const dtls = (server as unknown as { dtls: DtlsServer }).dtls;
    assert.equal(dtls.counts.sessions, 1);
    const ended = once(dtls, 'sessionEnded');
    server.setCredential({ identity: 'dev-1', key: newKey, endpoint: 'dev-1' });
    assert.match(((await ended) as [{ reason: string }])[0].reason, /closed by the server/);
    assert.equal(dtls.counts.sessions, 0);
    await assert.rejects(connect('dev-1', oldKey).connect(), /bad_record_mac/);
    await connect('dev-1', newKey).connect();
    assert.deepEqual(server.credentials(), [{ identity: 'dev-1', key: newKey, endpoint: 'dev-1' }]);
  });

  it('the same key again keeps the session; a new identity drops the old one', async () => {
    server.setCredential({ identity: 'dev-1', key: oldKey, endpoint: 'dev-1' });
    await connect('dev-1', oldKey).connect();
    const dtls = (server as unknown as { dtls: DtlsServer }).dtls;
    server.setCredential({ identity: 'dev-1', key: Buffer.from(oldKey), endpoint: 'dev-1' });
    assert.equal(dtls.counts.sessions, 1, 'nothing changed, nothing ended');
    server.setCredential({ identity: 'dev-1-v2', key: oldKey, endpoint: 'dev-1' });
    assert.equal(dtls.counts.sessions, 0);
    await assert.rejects(connect('dev-1', oldKey).connect(), /unknown_psk_identity/);
    assert.deepEqual(server.credentials().map(({ identity }) => identity), ['dev-1-v2']);
  });

  it('refuses an identity that belongs to another endpoint, and removes one endpoint’s key', async () => {
    server.setCredentials([{ identity: 'a', key: oldKey, endpoint: 'dev-a' }]);
    assert.throws(() => server.setCredential({ identity: 'a', key: newKey, endpoint: 'dev-b' }), /the PSK identity a belongs to dev-a, not dev-b/);
    assert.throws(() => server.setCredential({ identity: 'b', key: Buffer.alloc(0), endpoint: 'dev-b' }), /non-empty key/);
    await connect('a', oldKey).connect();
    assert.equal(server.removeCredential('dev-a'), true);
    assert.equal(server.removeCredential('dev-a'), false);
    assert.deepEqual(server.credentials(), []);
    await assert.rejects(connect('a', oldKey).connect(), /unknown_psk_identity/);
  });

  it('uriFor names the port a device reaches, plain or DTLS', () => {
    assert.equal(server.uriFor('127.0.0.1'), `coaps://127.0.0.1:${server.secureAddress()!.port}`);
    assert.equal(server.uriFor('127.0.0.1', false), `coap://127.0.0.1:${server.address().port}`);
  });
});
