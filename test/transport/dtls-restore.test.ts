/**
 * Live DTLS connections handed from one DtlsServer to its successor on the same port (a restart of
 * the process): exported, sealed, the first closed without close_notify, the second imports them
 * and the client's next record is understood without a handshake, with and without connection IDs.
 * The successor never writes a sequence number the first may have used; expired, re-keyed,
 * malformed or tampered state is not taken.
 */
import assert from 'node:assert/strict';
import { DtlsClient, type DtlsClientOptions } from '../../lib/transport/dtls/client';
import { IMPORT_GAP, RECORDS_PER_MS, openDtlsState, resumedWriteSequence, sealDtlsState, type ConnectionState } from '../../lib/transport/dtls/connection-store';
import { DtlsServer, type DtlsServerOptions } from '../../lib/transport/dtls/server';
import { SessionStoreError, sessionStoreKey } from '../../lib/transport/dtls/session-store';
import { testPki } from '../helpers/pki';
import { until } from '../helpers/wait';

const KEY = Buffer.from('restore-secret');
const QUICK = { initialTimeout: 300, maxTimeout: 3000, maxRetransmissions: 6 };
const SEAL = sessionStoreKey('the node credentials');

describe('DTLS connections across a server restart', function () {
  this.timeout(60_000);
  const cleanups: Array<() => Promise<void> | void> = [];

  async function startServer(port = 0, options: Partial<DtlsServerOptions> = {}): Promise<DtlsServer> {
    const server = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), timing: QUICK, ...options });
    await server.listen(port, '127.0.0.1');
    server.on('message', (data: Buffer, info: { address: string; port: number }) => server.send(Buffer.concat([Buffer.from('echo '), data]), info.port, info.address));
    cleanups.push(() => new Promise<void>((resolve) => server.close(resolve)));
    return server;
  }

  function client(port: number, options: Partial<DtlsClientOptions> = {}): DtlsClient {
    const dtls = new DtlsClient({ host: '127.0.0.1', port, identity: 'dev', key: KEY, timing: QUICK, ...options });
    dtls.on('error', () => undefined);
    cleanups.push(() => new Promise<void>((resolve) => dtls.close(resolve)));
    return dtls;
  }

  function echo(dtls: DtlsClient, text: string): Promise<string> {
    const answer = new Promise<string>((resolve) => dtls.once('message', (data: Buffer) => resolve(data.toString())));
    dtls.send(Buffer.from(text));
    return answer;
  }

  /** Exports and seals the first server's state, closes it without close_notify, starts its successor on the same port with the state. */
  async function restart(first: DtlsServer, options: Partial<DtlsServerOptions> = {}): Promise<{ second: DtlsServer; before: ConnectionState[]; imported: number }> {
    const { port } = first.address();
    const sealed = sealDtlsState({ connections: first.exportConnections(), sessions: first.exportSessions() }, SEAL);
    await new Promise<void>((resolve) => first.close(resolve, { notify: false }));
    const state = openDtlsState(sealed, SEAL);
    const second = new DtlsServer({ psk: (identity) => (identity === 'dev' ? KEY : undefined), timing: QUICK, ...options });
    const imported = second.importConnections(state.connections);
    second.importSessions(state.sessions);
    await second.listen(port, '127.0.0.1');
    second.on('message', (data: Buffer, info: { address: string; port: number }) => second.send(Buffer.concat([Buffer.from('echo '), data]), info.port, info.address));
    cleanups.push(() => new Promise<void>((resolve) => second.close(resolve)));
    return { second, before: state.connections, imported };
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  for (const connectionId of [false, true]) {
    it(`the client's next record after the restart is answered without a handshake${connectionId ? ' (connection IDs)' : ''}; no close_notify reached it`, async () => {
      const first = await startServer();
      const dtls = client(first.address().port, { connectionId });
      let handshakes = 0;
      let disconnected = 0;
      dtls.on('connected', () => handshakes++);
      dtls.on('disconnected', () => disconnected++);
      assert.equal(await echo(dtls, 'one'), 'echo one');
      assert.equal(await echo(dtls, 'two'), 'echo two');
      assert.equal(connectionId, dtls.connectionId !== undefined);

      const { second, before, imported } = await restart(first);
      assert.equal(imported, 1);
      assert.deepEqual(second.counts, { sessions: 1, handshakes: 0 });
      let serverHandshakes = 0;
      second.on('session', () => serverHandshakes++);
      assert.equal(await echo(dtls, 'three'), 'echo three');
      assert.equal(await echo(dtls, 'four'), 'echo four');
      assert.equal(handshakes, 1, 'the client did not handshake again');
      assert.equal(serverHandshakes, 0, 'nor did the server see one');
      assert.equal(disconnected, 0, 'no close_notify on the restart');

      const [after] = second.exportConnections();
      assert.ok(after!.writeSequence >= before[0]!.writeSequence + IMPORT_GAP, 'the write sequence number jumped past what the first server may have used');
      assert.equal(after!.identity, 'dev');
      if (connectionId) assert.deepEqual(after!.readCid, before[0]!.readCid);
    });
  }

  it('a record the client sent before the restart stays a replay after it', async () => {
    const first = await startServer();
    const dtls = client(first.address().port);
    await echo(dtls, 'one');
    const { second } = await restart(first);
    const drops: string[] = [];
    second.on('drop', ({ reason }: { reason: string }) => drops.push(reason));
    const [state] = second.exportConnections();
    assert.ok(state!.replay.newest >= 1, 'the replay window came along');
    // the highest sequence number seen is refused again, the next one taken
    const fresh = (second as unknown as { connections: Map<string, { replay: { fresh(sequence: number): boolean } }> }).connections.values().next().value!;
    assert.equal(fresh.replay.fresh(state!.replay.newest), false);
    assert.equal(fresh.replay.fresh(state!.replay.newest + 1), true);
    assert.equal(await echo(dtls, 'two'), 'echo two');
  });

  it('each import of the same saved state starts past everything an earlier import can have sent', () => {
    const state = { writeSequence: 10, savedAt: 1_000_000 } as ConnectionState;
    const first = resumedWriteSequence(state, 1_000_500)!;
    assert.equal(first, 10 + IMPORT_GAP + 500 * RECORDS_PER_MS);
    // a run of 2 s after the first import sends fewer than 2000 * RECORDS_PER_MS records: the next import starts past them
    const second = resumedWriteSequence(state, 1_002_500)!;
    assert.ok(second >= first + 2000 * RECORDS_PER_MS);
    // a clock that went back: still past the saved number by the gap
    assert.equal(resumedWriteSequence(state, 0), 10 + IMPORT_GAP);
    // the sequence space used up: not restored
    assert.equal(resumedWriteSequence({ ...state, writeSequence: 2 ** 48 - 2 }, 1_000_000), undefined);
  });

  it('leaves out connections idle too long, older than the session lifetime, or whose PSK changed', async () => {
    const first = await startServer();
    const dtls = client(first.address().port);
    await echo(dtls, 'one');
    const connections = first.exportConnections();
    const idle = connections.map((state) => ({ ...state, lastActivity: Date.now() - 25 * 3600_000 }));
    const old = connections.map((state) => ({ ...state, createdAt: Date.now() - 25 * 3600_000 }));
    const probe = new DtlsServer({ psk: () => KEY });
    assert.equal(probe.importConnections(idle), 0);
    assert.equal(probe.importConnections(old), 0);
    assert.equal(new DtlsServer({ psk: () => Buffer.from('another key') }).importConnections(connections), 0);
    assert.equal(new DtlsServer({ psk: () => undefined }).importConnections(connections), 0);
    assert.equal(probe.importConnections(connections), 1);

    const { second, imported } = await restart(first, { psk: (identity) => (identity === 'dev' ? Buffer.from('replaced') : undefined) });
    assert.equal(imported, 0);
    assert.deepEqual(second.counts, { sessions: 0, handshakes: 0 });
  });

  it('a raw public key session comes back only while its key is still listed for its identity, as connection and as resumable session', async function () {
    this.timeout(90_000);
    const pki = testPki();
    const listed = (spki: Buffer) => (spki.equals(pki.rawClient.spki) ? 'rpk-dev' : undefined);
    const ecdsa = { ecdsa: { key: pki.rawServer.key }, clientRawPublicKey: listed };
    const first = await startServer(0, ecdsa);
    const dtls = client(first.address().port, { identity: undefined, key: undefined, ecdsa: { key: pki.rawClient.key }, serverPublicKey: pki.rawServer.spki });
    assert.equal(await echo(dtls, 'one'), 'echo one');
    const connections = first.exportConnections();
    const sessions = first.exportSessions();
    assert.deepEqual(connections[0]!.peerKey, pki.rawClient.spki, 'the client key is kept');
    // sealed and opened again, as a restart does
    const state = openDtlsState(sealDtlsState({ connections, sessions }, SEAL), SEAL);
    assert.deepEqual(state.sessions[0]!.peerKey, pki.rawClient.spki);
    const withKeys = (lookup: (spki: Buffer) => string | undefined) => new DtlsServer({ ecdsa: { key: pki.rawServer.key }, clientRawPublicKey: lookup });
    assert.equal(withKeys(listed).importConnections(state.connections), 1);
    assert.equal(withKeys(() => undefined).importConnections(state.connections), 0, 'the key was dropped while the server was down');
    assert.equal(withKeys(() => 'another-endpoint').importConnections(state.connections), 0, 'the key now stands for another endpoint');
    assert.equal(withKeys(listed).importConnections([{ ...state.connections[0]!, peerKey: pki.client2.spki }]), 0, 'a key the session was not made with');
    // the resumption cache: a dropped key is not resumed (a full handshake, refused), a listed one is
    const { second } = await restart(first, { ecdsa: { key: pki.rawServer.key }, clientRawPublicKey: () => undefined });
    assert.deepEqual(second.counts, { sessions: 0, handshakes: 0 });
    const again = client(second.address().port, { identity: undefined, key: undefined, ecdsa: { key: pki.rawClient.key }, serverPublicKey: pki.rawServer.spki, session: dtls.session });
    await assert.rejects(again.connect(), /access_denied/);
  });

  it('refuses malformed connection lists whole with a SessionStoreError, and a tampered or foreign blob', async () => {
    const first = await startServer();
    await echo(client(first.address().port), 'one');
    await echo(client(first.address().port), 'two');
    const good = first.exportConnections();
    assert.equal(good.length, 2);
    const server = new DtlsServer({ psk: () => KEY });
    const broken: unknown[] = [
      [good[0], { ...good[1], masterSecret: Buffer.alloc(10) }],
      [good[0], { ...good[1], cipherSuite: 'TLS_NULL' }],
      [good[0], { ...good[1], writeSequence: -1 }],
      [good[0], { ...good[1], port: 70000 }],
      [good[0], { ...good[1], replay: undefined }],
      [good[0], null],
      'not a list',
    ];
    for (const states of broken) {
      assert.throws(() => server.importConnections(states as ConnectionState[]), SessionStoreError);
      assert.deepEqual(server.counts, { sessions: 0, handshakes: 0 }, 'nothing taken of a partly good list');
    }
    const sealed = sealDtlsState({ connections: good, sessions: first.exportSessions() }, SEAL);
    assert.throws(() => openDtlsState(sealed, sessionStoreKey('another secret')), SessionStoreError);
    const changed = Buffer.from(sealed);
    changed[30] ^= 1;
    assert.throws(() => openDtlsState(changed, SEAL), SessionStoreError);
    assert.throws(() => openDtlsState(Buffer.alloc(0), SEAL), SessionStoreError);
    // the secrets are not in the blob
    for (const state of good) {
      for (const secret of [state.masterSecret, state.clientRandom, state.serverRandom]) {
        assert.ok(!sealed.includes(secret) && !sealed.toString('latin1').includes(secret.toString('hex')) && !sealed.toString('latin1').includes(secret.toString('base64')));
      }
    }
  });

  it('a plain close still ends each session with close_notify', async () => {
    const first = await startServer();
    const dtls = client(first.address().port);
    let disconnected = 0;
    dtls.on('disconnected', () => disconnected++);
    await echo(dtls, 'one');
    await new Promise<void>((resolve) => first.close(resolve));
    await until(() => disconnected > 0, 'the close_notify to reach the client', 10_000);
  });
});
