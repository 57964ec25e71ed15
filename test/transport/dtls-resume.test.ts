/**
 * Session resumption by session id (the abbreviated handshake, RFC 5246 §7.3 / RFC 6347) between
 * our DtlsServer and DtlsClient on 127.0.0.1, watched through a relay that reads the handshake
 * messages each way; a registration over a resumed session to the LwM2M server; the cases that
 * must fall back to a full handshake (unknown, expired, pushed out, identity ended, key changed);
 * and openssl s_client resuming with -sess_out / -sess_in.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LwM2MClient, LwM2MServer } from '../../lib';
import { DtlsClient, type DtlsClientOptions, type DtlsSession } from '../../lib/transport/dtls/client';
import { ContentType, HandshakeType } from '../../lib/transport/dtls/constants';
import { parseHandshakeFragments } from '../../lib/transport/dtls/handshake';
import { parseRecords } from '../../lib/transport/dtls/record';
import { DtlsServer, type DtlsServerOptions, type SessionInfo } from '../../lib/transport/dtls/server';
import { SessionCache } from '../../lib/transport/dtls/session-cache';
import { SessionStoreError, openSessions, sealSessions, sessionStoreKey } from '../../lib/transport/dtls/session-store';
import { CoapEndpoint } from '../../lib/transport/endpoint';
import { boundUdpSocket } from '../helpers/ports';

const KEY = Buffer.from('resume-secret');
const QUICK = { initialTimeout: 200, maxTimeout: 2000, maxRetransmissions: 6 };

/** What passed a relay, by direction: the plaintext handshake message types (epoch 0) and 'CCS'/'protected' for the rest. */
interface Observed {
  relay: Socket;
  port: number;
  fromClient: string[];
  fromServer: string[];
}

const NAMES: Record<number, string> = {
  [HandshakeType.CLIENT_HELLO]: 'ClientHello',
  [HandshakeType.SERVER_HELLO]: 'ServerHello',
  [HandshakeType.HELLO_VERIFY_REQUEST]: 'HelloVerifyRequest',
  [HandshakeType.SERVER_HELLO_DONE]: 'ServerHelloDone',
  [HandshakeType.CLIENT_KEY_EXCHANGE]: 'ClientKeyExchange',
};

function describeDatagram(datagram: Buffer): string[] {
  return parseRecords(datagram).flatMap((record) => {
    if (record.type === ContentType.CHANGE_CIPHER_SPEC) return ['ChangeCipherSpec'];
    if (record.type === ContentType.HANDSHAKE && record.epoch === 0) return parseHandshakeFragments(record.fragment).map((fragment) => NAMES[fragment.type] ?? `type ${fragment.type}`);
    if (record.type === ContentType.HANDSHAKE) return ['Finished (protected)'];
    return [record.type === ContentType.APPLICATION_DATA ? 'data' : 'alert'];
  });
}

/** A relay to the server that records what passes; `dropFromClient` may drop a client datagram (true). */
async function observe(serverPort: number, dropFromClient: (datagram: Buffer) => boolean = () => false): Promise<Observed> {
  const relay = await boundUdpSocket();
  const observed: Observed = { relay, port: relay.address().port, fromClient: [], fromServer: [] };
  let client: { address: string; port: number } | undefined;
  relay.on('message', (datagram, from) => {
    if (from.port === serverPort) {
      observed.fromServer.push(...describeDatagram(datagram));
      if (client) relay.send(datagram, client.port, client.address);
      return;
    }
    client = { address: from.address, port: from.port };
    if (dropFromClient(datagram)) return;
    observed.fromClient.push(...describeDatagram(datagram));
    relay.send(datagram, serverPort, '127.0.0.1');
  });
  return observed;
}

describe('DTLS session resumption (abbreviated handshake)', function () {
  this.timeout(30_000);
  const cleanups: Array<() => Promise<void> | void> = [];
  let server: DtlsServer;
  let port: number;
  const sessions: SessionInfo[] = [];
  let psk: (identity: string) => Buffer | undefined;

  async function start(options: Partial<DtlsServerOptions> = {}): Promise<void> {
    psk = (identity) => (identity === 'dev' || identity === 'other' ? KEY : undefined);
    server = new DtlsServer({ psk: (identity) => psk(identity), timing: QUICK, ...options });
    ({ port } = await server.listen(0, '127.0.0.1'));
    server.on('session', (session: SessionInfo) => sessions.push(session));
    server.on('message', (data: Buffer, info: { address: string; port: number }) => server.send(Buffer.concat([Buffer.from('echo '), data]), info.port, info.address));
    const started = server;
    cleanups.push(() => new Promise<void>((resolve) => started.close(resolve)));
  }

  function client(options: Partial<DtlsClientOptions> = {}, to = port): DtlsClient {
    const dtls = new DtlsClient({ host: '127.0.0.1', port: to, identity: 'dev', key: KEY, timing: QUICK, ...options });
    cleanups.push(() => new Promise<void>((resolve) => dtls.close(resolve)));
    return dtls;
  }

  /** A full handshake, then the session it gave the client. */
  async function firstSession(options: Partial<DtlsClientOptions> = {}): Promise<DtlsSession> {
    const dtls = client(options);
    await dtls.connect();
    assert.equal(dtls.resumed, false);
    const session = dtls.session;
    assert.ok(session, 'the server gave a session id');
    assert.equal(session.id.length, 32);
    await new Promise<void>((resolve) => dtls.close(resolve));
    return session;
  }

  /** Connects a new client offering `session`; resolves with whether it was resumed and an echo over it. */
  async function reconnect(session: DtlsSession, options: Partial<DtlsClientOptions> = {}, to = port): Promise<{ resumed: boolean; echo: string; client: DtlsClient }> {
    const dtls = client({ session, ...options }, to);
    const echo = new Promise<string>((resolve) => dtls.once('message', (data: Buffer) => resolve(data.toString())));
    dtls.send(Buffer.from('ping'));
    await dtls.connect();
    return { resumed: dtls.resumed, echo: await echo, client: dtls };
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    sessions.length = 0;
  });

  it('a second client with the session of the first gets the abbreviated handshake: no ClientKeyExchange, no ServerHelloDone, the server Finished first', async () => {
    await start();
    const full = await observe(port);
    cleanups.push(() => void full.relay.close());
    const session = await firstSession({ port: full.port });
    assert.deepEqual(full.fromClient.slice(0, 5), ['ClientHello', 'ClientHello', 'ClientKeyExchange', 'ChangeCipherSpec', 'Finished (protected)']);

    const abbreviated = await observe(port);
    cleanups.push(() => void abbreviated.relay.close());
    const { resumed, echo, client: second } = await reconnect(session, {}, abbreviated.port);
    assert.equal(resumed, true);
    assert.equal(echo, 'echo ping');
    assert.deepEqual(second.session?.id, session.id, 'the same session id is kept');
    assert.deepEqual(abbreviated.fromServer.slice(0, 4), ['HelloVerifyRequest', 'ServerHello', 'ChangeCipherSpec', 'Finished (protected)']);
    assert.deepEqual(abbreviated.fromClient.slice(0, 4), ['ClientHello', 'ClientHello', 'ChangeCipherSpec', 'Finished (protected)']);
    assert.ok(!abbreviated.fromClient.includes('ClientKeyExchange'), abbreviated.fromClient.join(', '));
    assert.ok(!abbreviated.fromServer.includes('ServerHelloDone'), abbreviated.fromServer.join(', '));
    assert.deepEqual(
      sessions.map((info) => [info.identity, info.resumed, info.extendedMasterSecret]),
      [
        ['dev', false, true],
        ['dev', true, true],
      ],
    );
  });

  it("when the client's Finished is lost the server sends its flight again, the client its Finished, and the session comes up", async () => {
    await start();
    const session = await firstSession();
    let dropped = 0;
    const lossy = await observe(port, (datagram) => {
      const lastFlight = describeDatagram(datagram);
      if (dropped === 0 && lastFlight[0] === 'ChangeCipherSpec') return ++dropped === 1;
      return false;
    });
    cleanups.push(() => void lossy.relay.close());
    const { resumed, echo } = await reconnect(session, {}, lossy.port);
    assert.equal(resumed, true);
    assert.equal(echo, 'echo ping');
    assert.equal(dropped, 1);
    assert.ok(lossy.fromServer.filter((name) => name === 'ServerHello').length >= 2, `the server repeated its flight: ${lossy.fromServer.join(', ')}`);
    assert.deepEqual(sessions.map((info) => info.resumed), [false, true]);
  });

  it('a session resumed carries a registration to the LwM2M server, bound to the same PSK identity', async () => {
    const lwm2m = new LwM2MServer({ port: 0, address: '127.0.0.1', dtls: { port: 0, credentials: [{ identity: 'dev', key: KEY, endpoint: 'resumer' }], timing: QUICK } });
    await lwm2m.listen();
    cleanups.push(() => lwm2m.close());
    const dtlsPort = lwm2m.secureAddress()!.port;
    const first = client({}, dtlsPort);
    await first.connect();
    const session = first.session!;
    await new Promise<void>((resolve) => first.close(resolve));

    const second = client({ session }, dtlsPort);
    const endpoint = new CoapEndpoint({ socket: second });
    cleanups.push(() => endpoint.close());
    const peer = { address: '127.0.0.1', port: dtlsPort };
    const registered = new Promise((resolve) => lwm2m.once('register', resolve));
    const response = await endpoint.request(peer, { method: 'POST', path: ['rd'], query: ['ep=resumer', 'lt=60', 'lwm2m=1.1'], contentFormat: 40, payload: Buffer.from('</1/0>,</3/0>'), timeout: 10_000 });
    assert.equal(response.code, '2.01');
    assert.equal(second.resumed, true);
    await registered;
    assert.equal(lwm2m.registration('resumer')?.identity, 'dev');

    // the identity stays bound: the resumed session may not register as another endpoint
    const other = await endpoint.request(peer, { method: 'POST', path: ['rd'], query: ['ep=someone-else', 'lt=60'], contentFormat: 40, payload: Buffer.from('</3/0>'), timeout: 10_000 });
    assert.equal(other.code, '4.03');

    // the credential removed and given again (same identity and key): the session id is gone with it
    assert.equal(lwm2m.removeCredential('resumer'), true);
    lwm2m.setCredential({ identity: 'dev', key: KEY, endpoint: 'resumer' });
    const third = client({ session }, dtlsPort);
    await third.connect();
    assert.equal(third.resumed, false);
    assert.ok(!third.session?.id.equals(session.id));
  });

  it('a resumed session negotiates connection IDs too: its records carry the new ID and the server finds them by it', async () => {
    await start();
    const session = await firstSession({ connectionId: true });
    const { resumed, echo, client: second } = await reconnect(session, { connectionId: true });
    assert.equal(resumed, true);
    assert.equal(echo, 'echo ping');
    assert.match(String(second.connectionId), /^[0-9a-f]{12}$/, 'the server gave the resumed session an ID');
    const info = sessions[sessions.length - 1]!;
    assert.equal(info.resumed, true);
    assert.equal(info.connectionId, second.connectionId);
  });

  it('an unknown session id gets a full handshake with a new id', async () => {
    await start();
    const made: DtlsSession = { id: randomBytes(32), masterSecret: randomBytes(48), cipherSuite: 'TLS_PSK_WITH_AES_128_CCM_8', extendedMasterSecret: true };
    const { resumed, echo, client: dtls } = await reconnect(made);
    assert.equal(resumed, false);
    assert.equal(echo, 'echo ping');
    assert.ok(dtls.session && !dtls.session.id.equals(made.id));
    assert.deepEqual(sessions.map((info) => info.resumed), [false]);
  });

  it('an expired session gets a full handshake', async () => {
    await start({ sessionCache: { lifetime: 300 } });
    const session = await firstSession();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const { resumed, echo } = await reconnect(session);
    assert.equal(resumed, false);
    assert.equal(echo, 'echo ping');
  });

  it('the cache is bounded: beyond maxEntries the least recently used session is forgotten', async () => {
    await start({ sessionCache: { maxEntries: 1 } });
    const dev = await firstSession();
    const other = await firstSession({ identity: 'other' });
    assert.equal((await reconnect(dev)).resumed, false, 'pushed out by the newer session');
    // that full handshake made a new session, pushing out the other one in turn
    assert.equal((await reconnect(other, { identity: 'other' })).resumed, false);
  });

  it('endIdentity (a credential removed or replaced) makes the identity`s session ids unusable', async () => {
    await start();
    const dev = await firstSession();
    const other = await firstSession({ identity: 'other' });
    server.endIdentity('dev');
    assert.equal((await reconnect(dev)).resumed, false);
    assert.equal((await reconnect(other, { identity: 'other' })).resumed, true, 'other identities keep theirs');
  });

  it('a key changed without endIdentity also makes the session unusable; an identity removed too', async () => {
    await start();
    const dev = await firstSession();
    const other = await firstSession({ identity: 'other' });
    const newKey = Buffer.from('a-new-key');
    psk = (identity) => (identity === 'dev' ? newKey : undefined);
    const { resumed, echo } = await reconnect(dev, { key: newKey });
    assert.equal(resumed, false);
    assert.equal(echo, 'echo ping');
    const failed = new Promise<Error>((resolve) => client({ identity: 'other', session: other }).connect().catch(resolve));
    assert.match((await failed).message, /unknown_psk_identity/);
  });

  it('a client that does not want resumption offers no session id', async () => {
    await start();
    const session = await firstSession();
    const { resumed } = await reconnect(session, { resumeSessions: false });
    assert.equal(resumed, false);
  });

  it('an LwM2MClient restarted with the dtlsSession of the one before resumes it and registers; the server reads its object over it', async () => {
    const lwm2m = new LwM2MServer({ port: 0, address: '127.0.0.1', requestTimeout: 5000, dtls: { port: 0, credentials: [{ identity: 'dev', key: KEY, endpoint: 'restarter' }], timing: QUICK } });
    await lwm2m.listen();
    cleanups.push(() => lwm2m.close());
    const uri = `coaps://127.0.0.1:${lwm2m.secureAddress()!.port}`;
    const device = (session?: DtlsSession) => {
      const client = new LwM2MClient({ endpoint: 'restarter', server: uri, psk: { identity: 'dev', key: KEY }, dtls: { timing: QUICK, session }, lifetime: 60, objects: { 3303: { 0: { 5700: 21.5 } } } });
      client.on('error', () => undefined);
      cleanups.push(() => client.stop());
      return client;
    };
    const before = device();
    await before.start();
    const session = before.dtlsSession;
    assert.ok(session);
    await before.stop();

    const after = device(session);
    const registered = new Promise((resolve) => lwm2m.once('register', resolve));
    await after.start();
    await registered;
    // a full handshake would have given a new random id
    assert.deepEqual(after.dtlsSession?.id, session.id);
    const read = await lwm2m.read('restarter', '/3303/0/5700');
    assert.equal(read, 21.5);
    assert.equal(lwm2m.registration('restarter')?.identity, 'dev');
  });

  it('sessions sealed (AES-256-GCM) by one server and opened by its successor are resumed there; a wrong secret or a changed byte does not open', async () => {
    await start();
    const session = await firstSession();
    const key = sessionStoreKey('the node credentials');
    const sealed = sealSessions(server.exportSessions(), key);
    assert.ok(!sealed.includes(session.masterSecret), 'no master secret in the clear');
    await new Promise<void>((resolve) => server.close(resolve));

    await start();
    assert.equal(server.importSessions(openSessions(sealed, key)), 1);
    const { resumed, echo } = await reconnect(session);
    assert.equal(resumed, true);
    assert.equal(echo, 'echo ping');

    assert.throws(() => openSessions(sealed, sessionStoreKey('another secret')), SessionStoreError);
    const changed = Buffer.from(sealed);
    changed[20] ^= 1;
    assert.throws(() => openSessions(changed, key), SessionStoreError);
    assert.throws(() => openSessions(Buffer.from('garbage'), key), SessionStoreError);
    // expired by the time of the import: left out
    const old = openSessions(sealed, key).map((entry) => ({ ...entry, createdAt: entry.createdAt - 25 * 3600_000 }));
    await start();
    assert.equal(server.importSessions(old), 0);
  });

  it('openssl s_client resumes a session it saved (-sess_out, then -sess_in): "Reused"', async () => {
    await start();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-resume-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'session.pem');
    const first = await opensslClient(port, ['-sess_out', file]);
    assert.match(first, /^New, TLSv1\.2, Cipher is PSK-AES128-CCM8/m, first);
    const second = await opensslClient(port, ['-sess_in', file]);
    assert.match(second, /^Reused, TLSv1\.2, Cipher is PSK-AES128-CCM8/m, second);
    const id = (output: string) => /Session-ID: ([0-9A-F]+)/.exec(output)?.[1];
    assert.equal(id(second), id(first));
    assert.ok(second.includes('echo resumed line'), second);
    assert.deepEqual(sessions.map((info) => [info.identity, info.resumed]), [
      ['dev', false],
      ['dev', true],
    ]);
  });
});

describe('SessionCache', () => {
  const entry = (identity: string, createdAt: number) => ({ id: randomBytes(32), masterSecret: randomBytes(48), cipherSuite: 'TLS_PSK_WITH_AES_128_CCM_8' as const, identity, extendedMasterSecret: true, keyCheck: randomBytes(32), createdAt });

  it('keeps at most maxEntries, pushing out the least recently used; a get renews the use, not the age', () => {
    let now = 1000;
    const cache = new SessionCache({ maxEntries: 2, lifetime: 100 }, () => now);
    const [a, b, c] = [entry('a', now), entry('b', now), entry('c', now)];
    cache.add(a);
    cache.add(b);
    assert.equal(cache.get(a.id), a);
    cache.add(c);
    assert.equal(cache.size, 2);
    assert.equal(cache.get(b.id), undefined, 'b was the least recently used');
    assert.equal(cache.get(a.id), a);
    now += 100;
    assert.equal(cache.get(a.id), undefined, 'expired however often used');
    assert.equal(cache.size, 1);
    cache.sweep();
    assert.equal(cache.size, 0);
  });

  it('forgets an identity`s sessions, and refuses nonsense limits', () => {
    const cache = new SessionCache();
    cache.add(entry('x', Date.now()));
    cache.add(entry('x', Date.now()));
    cache.add(entry('y', Date.now()));
    assert.equal(cache.forgetIdentity('x'), 2);
    assert.equal(cache.size, 1);
    assert.equal(cache.get(Buffer.alloc(0)), undefined);
    assert.throws(() => new SessionCache({ maxEntries: 0 }), RangeError);
    assert.throws(() => new SessionCache({ lifetime: -1 }), RangeError);
  });
});

/** s_client with the PSK, sending one line; resolves with its output once it has exited. */
function opensslClient(port: number, extra: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timers: NodeJS.Timeout[] = [];
    const child = spawn('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${port}`, '-psk', KEY.toString('hex'), '-psk_identity', 'dev', '-cipher', 'PSK-AES128-CCM8', ...extra]);
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.stdin.on('error', () => undefined);
    child.on('error', reject);
    child.on('close', () => {
      for (const timer of timers) clearTimeout(timer);
      resolve(output);
    });
    // the line once the handshake is through, then end of input: s_client sends close_notify and exits
    const waitForHandshake = setInterval(() => {
      if (!/Cipher is/.test(output)) return;
      clearInterval(waitForHandshake);
      child.stdin.write('resumed line\n');
      timers.push(setTimeout(() => child.stdin.end(), 1000));
    }, 50);
    timers.push(waitForHandshake as unknown as NodeJS.Timeout);
    timers.push(setTimeout(() => child.kill(), 15_000));
  });
}
