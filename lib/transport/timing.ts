/** CoAP transmission parameters (RFC 7252 §4.8), per endpoint so tests and simulations can shorten them. */
export interface CoapTiming {
  /** ms before the first retransmission of a Confirmable message */
  ackTimeout: number;
  ackRandomFactor: number;
  maxRetransmit: number;
  /** ms a request's response (and its dedup entry) is remembered */
  exchangeLifetime: number;
  /** ms to wait for a request handler before sending an empty ACK and answering separately */
  piggybackDelay: number;
}

export const DEFAULT_TIMING: CoapTiming = Object.freeze({
  ackTimeout: 2000,
  ackRandomFactor: 1.5,
  maxRetransmit: 4,
  exchangeLifetime: 247_000,
  piggybackDelay: 1000,
});

/** ms from the first transmission of a Confirmable message until the sender gives up (MAX_TRANSMIT_WAIT). */
export function maxTransmitWait(timing: CoapTiming): number {
  return timing.ackTimeout * (2 ** (timing.maxRetransmit + 1) - 1) * timing.ackRandomFactor;
}
