/**
 * The TLS 1.2 pseudo-random function with SHA-256 (RFC 5246 §5), and the secrets derived with it:
 * the PSK premaster secret (RFC 4279 §2), the master secret, its extended form (RFC 7627) and the
 * key block.
 */
import { createHash, createHmac } from 'node:crypto';

/** P_SHA256(secret, label + seed), `length` bytes. */
export function prf(secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'ascii'), seed]);
  const out = Buffer.alloc(length);
  let a = labelSeed;
  for (let filled = 0; filled < length; ) {
    a = createHmac('sha256', secret).update(a).digest();
    const block = createHmac('sha256', secret).update(a).update(labelSeed).digest();
    filled += block.copy(out, filled);
  }
  return out;
}

/** RFC 4279 §2: `uint16 N, N zero bytes, uint16 N, psk` (the "other secret" of plain PSK is zeros). */
export function pskPremasterSecret(psk: Buffer): Buffer {
  const out = Buffer.alloc(4 + 2 * psk.length);
  out.writeUInt16BE(psk.length, 0);
  out.writeUInt16BE(psk.length, 2 + psk.length);
  psk.copy(out, 4 + psk.length);
  return out;
}

export function masterSecret(premaster: Buffer, clientRandom: Buffer, serverRandom: Buffer): Buffer {
  return prf(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48);
}

/** RFC 7627: bound to the whole handshake up to ClientKeyExchange, not just the two randoms. */
export function extendedMasterSecret(premaster: Buffer, sessionHash: Buffer): Buffer {
  return prf(premaster, 'extended master secret', sessionHash, 48);
}

export function keyBlock(master: Buffer, clientRandom: Buffer, serverRandom: Buffer, length: number): Buffer {
  return prf(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), length);
}

/** verify_data of a Finished message: 12 bytes. */
export function finishedVerifyData(master: Buffer, fromServer: boolean, handshakeHash: Buffer): Buffer {
  return prf(master, fromServer ? 'server finished' : 'client finished', handshakeHash, 12);
}

/**
 * The running SHA-256 of the handshake messages; `digest()` leaves it running. With `keep`, the
 * messages themselves are kept too, for a CertificateVerify (signed over them, not their hash),
 * until `release()`.
 */
export class HandshakeHash {
  private readonly hash = createHash('sha256');
  private kept: Buffer[] | undefined;

  constructor(keep = false) {
    if (keep) this.kept = [];
  }

  update(message: Buffer): void {
    this.hash.update(message);
    this.kept?.push(message);
  }

  /** Every message so far, concatenated (empty unless kept). */
  transcript(): Buffer {
    return Buffer.concat(this.kept ?? []);
  }

  release(): void {
    this.kept = undefined;
  }

  digest(): Buffer {
    return this.hash.copy().digest();
  }
}
