export type CoapErrorKind = 'TIMEOUT' | 'RESET' | 'CLOSED' | 'TOO_LARGE' | 'PROTOCOL';

/** A request that got no usable response: no answer in time, a Reset, the endpoint closed, or a broken exchange. */
export class CoapError extends Error {
  override readonly name = 'CoapError';
  constructor(
    readonly kind: CoapErrorKind,
    message: string,
  ) {
    super(message);
  }
}
