/**
 * The DTLS building blocks: the TLS 1.2 PRF against a known answer (computed with OpenSSL's
 * TLS1-PRF), record protection of the three PSK suites, the anti-replay window, handshake
 * reassembly, record framing and ClientHello parsing on bad input, and the stateless cookies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { keyBlockLength, protectionsFor } from '../../lib/transport/dtls/cipher';
import { CIPHER_SUITES, isEcdheSuite, ContentType, DTLS_1_2, type CipherSuiteName } from '../../lib/transport/dtls/constants';
import { CookieJar } from '../../lib/transport/dtls/cookie';
import { DecodeError, Reassembler, fragmentHandshake, parseClientHello, parseHandshakeFragments, writeClientHello } from '../../lib/transport/dtls/handshake';
import { prf, pskPremasterSecret } from '../../lib/transport/dtls/prf';
import { parseRecords, writeRecord } from '../../lib/transport/dtls/record';
import { ReplayWindow } from '../../lib/transport/dtls/replay';

// the PSK suites: the ECDHE-ECDSA ones are tested in dtls-ecdsa.test.ts
const SUITES = (Object.keys(CIPHER_SUITES) as CipherSuiteName[]).filter((suite) => !isEcdheSuite(suite));

describe('DTLS building blocks', () => {
  it('PRF with SHA-256 gives the known answer (OpenSSL TLS1-PRF)', () => {
    const out = prf(Buffer.from('9bbe436ba940f017b17652849a71db35', 'hex'), 'test label', Buffer.from('a0ba9f936cda311827a6f796ffd5198c', 'hex'), 48);
    assert.equal(out.toString('hex'), 'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af');
  });

  it('the PSK premaster secret is N zeros then the key, each with its length (RFC 4279 §2)', () => {
    assert.equal(pskPremasterSecret(Buffer.from('abc')).toString('hex'), '0003' + '000000' + '0003' + '616263');
  });

  for (const suite of SUITES) {
    it(`${suite}: what one side seals the other opens; a changed byte, sequence or type does not open`, () => {
      const block = randomBytes(keyBlockLength(suite));
      const server = protectionsFor(suite, block, true);
      const client = protectionsFor(suite, block, false);
      for (const length of [0, 1, 15, 16, 17, 31, 32, 33, 100, 1024]) {
        const plaintext = randomBytes(length);
        const sealed = client.write.seal(ContentType.APPLICATION_DATA, DTLS_1_2, 1, length, plaintext);
        assert.ok(sealed.length - plaintext.length <= client.write.overhead, `overhead at ${length}`);
        assert.deepEqual(server.read.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, length, sealed), plaintext);
        assert.equal(server.read.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, length + 1, sealed), undefined, 'another sequence number');
        assert.equal(server.read.open(ContentType.HANDSHAKE, DTLS_1_2, 1, length, sealed), undefined, 'another content type');
        const tampered = Buffer.from(sealed);
        tampered[tampered.length - 1]! ^= 1;
        assert.equal(server.read.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, length, tampered), undefined, 'a flipped bit');
        assert.equal(client.read.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, length, sealed), undefined, 'the other direction has other keys');
      }
      assert.equal(server.read.open(ContentType.APPLICATION_DATA, DTLS_1_2, 1, 0, Buffer.alloc(3)), undefined, 'too short');
    });
  }

  it('the replay window takes each sequence number once, and nothing 64 or more behind the highest', () => {
    const window = new ReplayWindow();
    for (const sequence of [5, 3, 4, 70, 10]) {
      assert.equal(window.fresh(sequence), true, `${sequence} is new`);
      window.mark(sequence);
      assert.equal(window.fresh(sequence), false, `${sequence} again`);
    }
    assert.equal(window.fresh(6), false, '6 is 64 behind 70');
    assert.equal(window.fresh(7), true);
    window.mark(1000);
    assert.equal(window.fresh(70), false);
    assert.equal(window.fresh(999), true);
  });

  it('reassembles fragments out of order and ignores duplicates and old messages', () => {
    const body = randomBytes(500);
    const fragments = fragmentHandshake(16, 3, body, 120).flatMap((record) => parseHandshakeFragments(record));
    assert.equal(fragments.length, 5);
    const reassembler = new Reassembler(3);
    const shuffled = [fragments[4]!, fragments[1]!, fragments[1]!, fragments[0]!, fragments[3]!];
    for (const fragment of shuffled) assert.deepEqual(reassembler.add(fragment), []);
    const done = reassembler.add(fragments[2]!);
    assert.equal(done.length, 1);
    assert.deepEqual(done[0]!.body, body);
    assert.deepEqual(reassembler.add(fragments[0]!), [], 'a retransmission of a delivered message');
    assert.equal(reassembler.expected, 4);
  });

  it('refuses malformed handshake data with DecodeError, never another error', () => {
    assert.throws(() => parseHandshakeFragments(Buffer.from([1, 0, 0])), DecodeError);
    const hello = writeClientHello({ version: DTLS_1_2, random: randomBytes(32), sessionId: Buffer.alloc(0), cookie: Buffer.alloc(0), cipherSuites: [0xc0a8], extensions: [[23, Buffer.alloc(0)]] });
    assert.deepEqual(parseClientHello(hello).cipherSuites, [0xc0a8]);
    // a hello may end before its extensions: that prefix is a valid hello without any
    const withoutExtensions = hello.length - 6;
    assert.equal(parseClientHello(hello.subarray(0, withoutExtensions)).extensions.size, 0);
    for (let cut = 0; cut < hello.length; cut++) if (cut !== withoutExtensions) assert.throws(() => parseClientHello(hello.subarray(0, cut)), DecodeError, `cut at ${cut}`);
    for (let i = 0; i < 2000; i++) {
      const mutated = Buffer.from(hello);
      mutated[Math.floor(Math.random() * mutated.length)] = Math.floor(Math.random() * 256);
      try {
        parseClientHello(mutated);
      } catch (error) {
        assert.ok(error instanceof DecodeError, String(error));
      }
    }
  });

  it('splits a datagram into records and drops a truncated tail', () => {
    const one = writeRecord(22, DTLS_1_2, 0, 7, Buffer.from('abc'));
    const two = writeRecord(23, DTLS_1_2, 1, 2 ** 40, Buffer.from('defg'));
    const records = parseRecords(Buffer.concat([one, two, two.subarray(0, 10)]));
    assert.deepEqual(
      records.map((record) => [record.type, record.epoch, record.sequence, record.fragment.toString()]),
      [
        [22, 0, 7, 'abc'],
        [23, 1, 2 ** 40, 'defg'],
      ],
    );
    assert.deepEqual(parseRecords(Buffer.alloc(5)), []);
  });

  it('a cookie verifies for its peer and hello only', () => {
    const jar = new CookieJar();
    const hello = randomBytes(40);
    const cookie = jar.make('127.0.0.1:5000', hello);
    assert.equal(jar.verify('127.0.0.1:5000', hello, cookie), true);
    assert.equal(jar.verify('127.0.0.1:5001', hello, cookie), false);
    assert.equal(jar.verify('127.0.0.1:5000', randomBytes(40), cookie), false);
    assert.equal(jar.verify('127.0.0.1:5000', hello, Buffer.alloc(3)), false);
  });
});
