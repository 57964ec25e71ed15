/**
 * Stateless cookies for the HelloVerifyRequest (RFC 6347 §4.2.1): an HMAC of the peer's address
 * and its ClientHello under a secret that changes every few minutes (the previous one still
 * verifies), so a ClientHello from a spoofed address gets one small answer and creates no state.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const COOKIE_LENGTH = 16;

export class CookieJar {
  private secret = randomBytes(32);
  private previous = this.secret;
  private rotatedAt = Date.now();

  constructor(private readonly lifetime = 5 * 60_000) {}

  /** The cookie for this peer and ClientHello (its parts without the cookie). */
  make(peer: string, helloParameters: Buffer): Buffer {
    this.rotate();
    return this.mac(this.secret, peer, helloParameters);
  }

  verify(peer: string, helloParameters: Buffer, cookie: Buffer): boolean {
    if (cookie.length !== COOKIE_LENGTH) return false;
    this.rotate();
    return timingSafeEqual(cookie, this.mac(this.secret, peer, helloParameters)) || timingSafeEqual(cookie, this.mac(this.previous, peer, helloParameters));
  }

  private rotate(): void {
    if (Date.now() - this.rotatedAt < this.lifetime) return;
    this.previous = this.secret;
    this.secret = randomBytes(32);
    this.rotatedAt = Date.now();
  }

  private mac(secret: Buffer, peer: string, helloParameters: Buffer): Buffer {
    return createHmac('sha256', secret).update(peer).update(helloParameters).digest().subarray(0, COOKIE_LENGTH);
  }
}
