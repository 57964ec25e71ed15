import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bindUdpSocket, bufferCapped, DEFAULT_SOCKET_BUFFER_SIZE } from '../../lib/transport/datagram';
import { pooledRandomBytes, pooledRandomId } from '../../lib/transport/random-pool';
import { LwM2MServer } from '../../lib/server';

/** The kernel's ceiling for a socket's receive buffer (Linux), or undefined elsewhere. */
function rmemMax(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** What Linux reports for a request of `size` bytes: capped at rmem_max, then doubled for its bookkeeping. */
function expectedReport(size: number, max: number): number {
  return 2 * Math.min(size, max);
}

describe('UDP sockets (transport/datagram)', () => {
  const linux = process.platform === 'linux' && rmemMax() !== undefined;

  it('asks the kernel for 4 MiB of receive and send buffer by default and reports what it got', async function () {
    if (!linux) this.skip(); // the figures below are Linux's
    const { socket, buffers } = await bindUdpSocket(0, '127.0.0.1');
    try {
      assert.equal(buffers.requested, DEFAULT_SOCKET_BUFFER_SIZE);
      assert.equal(buffers.receive, expectedReport(DEFAULT_SOCKET_BUFFER_SIZE, rmemMax()!));
      assert.equal(buffers.receive, socket.getRecvBufferSize());
      assert.equal(bufferCapped(buffers), DEFAULT_SOCKET_BUFFER_SIZE > rmemMax()!);
    } finally {
      socket.close();
    }
  });

  it('0 leaves the system default; a size beyond net.core.rmem_max is capped and reported as capped', async function () {
    if (!linux) this.skip();
    const plain = await bindUdpSocket(0, '127.0.0.1', 0);
    const defaultSize = Number(readFileSync('/proc/sys/net/core/rmem_default', 'utf8').trim());
    plain.socket.close();
    assert.equal(plain.buffers.receive, defaultSize);
    assert.equal(bufferCapped(plain.buffers), false);
    const tooMuch = rmemMax()! + 1024 * 1024;
    const capped = await bindUdpSocket(0, '127.0.0.1', tooMuch);
    capped.socket.close();
    assert.equal(capped.buffers.receive, 2 * rmemMax()!);
    assert.equal(bufferCapped(capped.buffers), true);
  });

  it('the server reports its sockets\' buffers and warns in its log when the kernel gave less than asked', async function () {
    if (!linux) this.skip();
    const warnings: string[] = [];
    const size = rmemMax()! + 1024 * 1024;
    const server = new LwM2MServer({ port: 0, address: '127.0.0.1', socketBufferSize: size, dtls: { port: 0 }, logger: (level, message) => level === 'warn' && warnings.push(message) });
    await server.listen();
    try {
      const { plain, secure } = server.socketBuffers();
      assert.equal(plain?.receive, 2 * rmemMax()!);
      assert.equal(secure?.receive, 2 * rmemMax()!);
      assert.equal(warnings.length, 2, warnings.join('\n'));
      assert.match(warnings[0]!, /^the CoAP socket got \d+ bytes of receive buffer of the \d+ asked: raise net\.core\.rmem_max/);
      assert.match(warnings[1]!, /^the DTLS socket got/);
    } finally {
      await server.close();
    }
    const quiet: string[] = [];
    const small = new LwM2MServer({ port: 0, address: '127.0.0.1', socketBufferSize: 64 * 1024, logger: (level, message) => quiet.push(message) });
    await small.listen();
    try {
      assert.equal(small.socketBuffers().plain?.receive, expectedReport(64 * 1024, rmemMax()!));
      assert.deepEqual(quiet, []);
    } finally {
      await small.close();
    }
  });

  it('sends to IP literals and to names (the DNS lookup stays for names)', async () => {
    const receiver = await bindUdpSocket(0, '127.0.0.1');
    const sender = await bindUdpSocket(0, '127.0.0.1');
    try {
      const got: string[] = [];
      const both = new Promise<void>((resolve) => receiver.socket.on('message', (data) => got.push(data.toString()) === 2 && resolve()));
      const { port } = receiver.socket.address();
      sender.socket.send(Buffer.from('literal'), port, '127.0.0.1');
      sender.socket.send(Buffer.from('name'), port, 'localhost');
      await both;
      assert.deepEqual(got.sort(), ['literal', 'name']);
    } finally {
      receiver.socket.close();
      sender.socket.close();
    }
  });
});

describe('pooled random bytes (transport/random-pool)', () => {
  it('hands out fresh bytes across refills of the pool, never the same ones twice', () => {
    const seen = new Set<string>();
    // 40,000 ids of 6 bytes and tokens of 8: several refills of the 32 KiB pool
    for (let i = 0; i < 20_000; i++) {
      const id = pooledRandomId(6);
      assert.match(id, /^[A-Za-z0-9_-]{8}$/);
      seen.add(id);
      const token = pooledRandomBytes(8);
      assert.equal(token.length, 8);
      seen.add(token.toString('hex'));
    }
    assert.equal(seen.size, 40_000);
  });

  it('spreads its bytes evenly (no byte value more than twice as common as another)', () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 8192; i++) for (const byte of pooledRandomBytes(8)) counts[byte]!++;
    assert.ok(Math.max(...counts) < 2 * Math.min(...counts), `counts from ${Math.min(...counts)} to ${Math.max(...counts)}`);
  });

  it('refuses sizes it cannot serve', () => {
    assert.throws(() => pooledRandomBytes(257), RangeError);
    assert.throws(() => pooledRandomBytes(-1), RangeError);
  });
});
