/**
 * Record protection of the three PSK cipher suites: AES-128-CCM-8 and AES-128-GCM (AEAD, RFC 6655
 * and RFC 5288 nonces: a 4-byte implicit salt and the 8-byte epoch+sequence as explicit part) and
 * AES-128-CBC with HMAC-SHA256 (RFC 5246 §6.2.3.2, MAC-then-encrypt with an explicit random IV).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual, type CipherCCMTypes, type CipherGCMTypes } from 'node:crypto';
import type { CipherSuiteName } from './constants';

/** One direction's keys: seals what we send, or opens what we receive. */
export interface RecordProtection {
  /** how many bytes a sealed fragment may add to its plaintext */
  readonly overhead: number;
  /** with a `cid`, a tls12_cid record: the plaintext is its inner plaintext, the MAC or tag covers the RFC 9146 header */
  seal(type: number, version: number, epoch: number, sequence: number, plaintext: Buffer, cid?: Buffer): Buffer;
  /** the plaintext, or undefined when the record does not authenticate */
  open(type: number, version: number, epoch: number, sequence: number, fragment: Buffer, cid?: Buffer): Buffer | undefined;
}

interface SuiteParameters {
  macKey: number;
  key: number;
  iv: number;
  make(macKey: Buffer, key: Buffer, iv: Buffer): RecordProtection;
}

const SUITES: Record<CipherSuiteName, SuiteParameters> = {
  TLS_PSK_WITH_AES_128_CCM_8: { macKey: 0, key: 16, iv: 4, make: (_mac, key, salt) => new AeadProtection('aes-128-ccm', key, salt, 8) },
  TLS_PSK_WITH_AES_128_GCM_SHA256: { macKey: 0, key: 16, iv: 4, make: (_mac, key, salt) => new AeadProtection('aes-128-gcm', key, salt, 16) },
  TLS_PSK_WITH_AES_128_CBC_SHA256: { macKey: 32, key: 16, iv: 0, make: (mac, key) => new CbcHmacProtection(key, mac) },
  // the ECDHE-ECDSA suites protect records exactly as their PSK namesakes do
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: { macKey: 0, key: 16, iv: 4, make: (_mac, key, salt) => new AeadProtection('aes-128-ccm', key, salt, 8) },
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: { macKey: 0, key: 16, iv: 4, make: (_mac, key, salt) => new AeadProtection('aes-128-gcm', key, salt, 16) },
};

/** Bytes of key material the suite takes from the key block. */
export function keyBlockLength(suite: CipherSuiteName): number {
  const { macKey, key, iv } = SUITES[suite];
  return 2 * (macKey + key + iv);
}

/** Splits the key block (RFC 5246 §6.3) into the protection of each direction. */
export function protectionsFor(suite: CipherSuiteName, block: Buffer, isServer: boolean): { read: RecordProtection; write: RecordProtection } {
  const { macKey, key, iv, make } = SUITES[suite];
  let at = 0;
  const take = (length: number) => block.subarray(at, (at += length));
  const clientMac = take(macKey);
  const serverMac = take(macKey);
  const clientKey = take(key);
  const serverKey = take(key);
  const clientIv = take(iv);
  const serverIv = take(iv);
  const client = make(clientMac, clientKey, clientIv);
  const server = make(serverMac, serverKey, serverIv);
  return isServer ? { read: client, write: server } : { read: server, write: client };
}

/** epoch(2) + sequence(6): the 64-bit seq_num of DTLS. */
function sequenceBytes(epoch: number, sequence: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeUInt16BE(epoch, 0);
  out.writeUIntBE(sequence, 2, 6);
  return out;
}

/** Fills the 8-byte seq_num placeholder of RFC 9146 §5: all ones. */
const SEQ_NUM_PLACEHOLDER = Buffer.alloc(8, 0xff);

/**
 * What the MAC or the AEAD tag also covers: seq_num + type + version + length (RFC 5246); with a
 * connection ID, RFC 9146's form: placeholder, tls12_cid, cid length, tls12_cid, version, epoch,
 * sequence, the cid, then the inner plaintext's length.
 */
function additionalData(type: number, version: number, epoch: number, sequence: number, length: number, cid?: Buffer): Buffer {
  if (cid) {
    const out = Buffer.allocUnsafe(8 + 3 + 2 + 8 + cid.length + 2);
    SEQ_NUM_PLACEHOLDER.copy(out, 0);
    out[8] = type;
    out[9] = cid.length;
    out[10] = type;
    out.writeUInt16BE(version, 11);
    out.writeUInt16BE(epoch, 13);
    out.writeUIntBE(sequence, 15, 6);
    cid.copy(out, 21);
    out.writeUInt16BE(length, 21 + cid.length);
    return out;
  }
  const out = Buffer.allocUnsafe(13);
  out.writeUInt16BE(epoch, 0);
  out.writeUIntBE(sequence, 2, 6);
  out[8] = type;
  out.writeUInt16BE(version, 9);
  out.writeUInt16BE(length, 11);
  return out;
}

/**
 * OpenSSL's CCM needs its update() called even for no data, and Node skips the call for some empty
 * buffers (e.g. randomBytes(0)); a fresh empty Buffer always reaches it.
 */
function freshIfEmpty(data: Buffer): Buffer {
  return data.length === 0 ? Buffer.alloc(0) : data;
}

class AeadProtection implements RecordProtection {
  readonly overhead: number;

  constructor(
    private readonly algorithm: 'aes-128-ccm' | 'aes-128-gcm',
    private readonly key: Buffer,
    private readonly salt: Buffer,
    private readonly tagLength: number,
  ) {
    this.overhead = 8 + tagLength;
  }

  seal(type: number, version: number, epoch: number, sequence: number, plaintext: Buffer, cid?: Buffer): Buffer {
    const explicit = sequenceBytes(epoch, sequence);
    const nonce = Buffer.concat([this.salt, explicit]);
    const aad = additionalData(type, version, epoch, sequence, plaintext.length, cid);
    const cipher =
      this.algorithm === 'aes-128-ccm'
        ? createCipheriv(this.algorithm as CipherCCMTypes, this.key, nonce, { authTagLength: this.tagLength })
        : createCipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, { authTagLength: this.tagLength });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const body = Buffer.concat([cipher.update(freshIfEmpty(plaintext)), cipher.final()]);
    return Buffer.concat([explicit, body, cipher.getAuthTag()]);
  }

  open(type: number, version: number, epoch: number, sequence: number, fragment: Buffer, cid?: Buffer): Buffer | undefined {
    if (fragment.length < this.overhead) return undefined;
    const nonce = Buffer.concat([this.salt, fragment.subarray(0, 8)]);
    const body = fragment.subarray(8, fragment.length - this.tagLength);
    const tag = fragment.subarray(fragment.length - this.tagLength);
    const aad = additionalData(type, version, epoch, sequence, body.length, cid);
    try {
      const decipher =
        this.algorithm === 'aes-128-ccm'
          ? createDecipheriv(this.algorithm as CipherCCMTypes, this.key, nonce, { authTagLength: this.tagLength })
          : createDecipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, { authTagLength: this.tagLength });
      decipher.setAuthTag(tag);
      decipher.setAAD(aad, { plaintextLength: body.length });
      return Buffer.concat([decipher.update(freshIfEmpty(body)), decipher.final()]);
    } catch {
      return undefined;
    }
  }
}

const MAC_LENGTH = 32;
const BLOCK = 16;

/** CBC IVs from a pooled random buffer: one randomBytes call per 256 records instead of one each. */
let ivPool = Buffer.alloc(0);
let ivAt = 0;
function freshIv(): Buffer {
  if (ivAt + BLOCK > ivPool.length) {
    ivPool = randomBytes(BLOCK * 256);
    ivAt = 0;
  }
  return ivPool.subarray(ivAt, (ivAt += BLOCK)); // never handed out twice: the pool is replaced, not refilled
}

class CbcHmacProtection implements RecordProtection {
  readonly overhead = BLOCK + MAC_LENGTH + BLOCK; // IV, MAC, padding up to a block

  constructor(
    private readonly key: Buffer,
    private readonly macKey: Buffer,
  ) {}

  private mac(type: number, version: number, epoch: number, sequence: number, plaintext: Buffer, cid: Buffer | undefined): Buffer {
    return createHmac('sha256', this.macKey).update(additionalData(type, version, epoch, sequence, plaintext.length, cid)).update(plaintext).digest();
  }

  seal(type: number, version: number, epoch: number, sequence: number, plaintext: Buffer, cid?: Buffer): Buffer {
    const padLength = BLOCK - 1 - ((plaintext.length + MAC_LENGTH) % BLOCK);
    const data = Buffer.concat([plaintext, this.mac(type, version, epoch, sequence, plaintext, cid), Buffer.alloc(padLength + 1, padLength)]);
    const iv = freshIv();
    const cipher = createCipheriv('aes-128-cbc', this.key, iv).setAutoPadding(false);
    return Buffer.concat([iv, cipher.update(data), cipher.final()]);
  }

  open(type: number, version: number, epoch: number, sequence: number, fragment: Buffer, cid?: Buffer): Buffer | undefined {
    if (fragment.length < BLOCK + MAC_LENGTH + BLOCK || fragment.length % BLOCK !== 0) return undefined;
    const decipher = createDecipheriv('aes-128-cbc', this.key, fragment.subarray(0, BLOCK)).setAutoPadding(false);
    const data = Buffer.concat([decipher.update(fragment.subarray(BLOCK)), decipher.final()]);
    const padLength = data[data.length - 1]!;
    let goodPadding = padLength + 1 + MAC_LENGTH <= data.length;
    const end = goodPadding ? data.length - padLength - 1 : data.length - 1;
    for (let i = end; i < data.length - 1; i++) if (data[i] !== padLength) goodPadding = false;
    // the MAC is computed whatever the padding said, so a bad padding costs the same time as a bad MAC
    const macAt = Math.max(0, end - MAC_LENGTH);
    const plaintext = data.subarray(0, macAt);
    const expected = this.mac(type, version, epoch, sequence, plaintext, cid);
    const received = data.subarray(macAt, macAt + MAC_LENGTH);
    const goodMac = received.length === MAC_LENGTH && timingSafeEqual(expected, received);
    return goodPadding && goodMac ? plaintext : undefined;
  }
}
