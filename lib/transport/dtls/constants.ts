/** Numbers of DTLS 1.2 (RFC 6347, RFC 5246) and its PSK cipher suites (RFC 4279, 5487, 6655). */

export const DTLS_1_2 = 0xfefd;
/** RFC 6347 §4.2.1: a HelloVerifyRequest carries DTLS 1.0 whatever version is negotiated */
export const DTLS_1_0 = 0xfeff;

export const enum ContentType {
  CHANGE_CIPHER_SPEC = 20,
  ALERT = 21,
  HANDSHAKE = 22,
  APPLICATION_DATA = 23,
  /** RFC 9146: a protected record that carries a connection ID; its real type is inside */
  TLS12_CID = 25,
}

export const enum HandshakeType {
  HELLO_REQUEST = 0,
  CLIENT_HELLO = 1,
  SERVER_HELLO = 2,
  HELLO_VERIFY_REQUEST = 3,
  CERTIFICATE = 11,
  SERVER_KEY_EXCHANGE = 12,
  CERTIFICATE_REQUEST = 13,
  SERVER_HELLO_DONE = 14,
  CERTIFICATE_VERIFY = 15,
  CLIENT_KEY_EXCHANGE = 16,
  FINISHED = 20,
}

export const enum AlertLevel {
  WARNING = 1,
  FATAL = 2,
}

export const AlertDescription = {
  close_notify: 0,
  unexpected_message: 10,
  bad_record_mac: 20,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_expired: 45,
  certificate_unknown: 46,
  illegal_parameter: 47,
  unknown_ca: 48,
  access_denied: 49,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  insufficient_security: 71,
  internal_error: 80,
  no_renegotiation: 100,
  unsupported_extension: 110,
  unknown_psk_identity: 115,
} as const;
export type AlertName = keyof typeof AlertDescription;

export function alertName(code: number): string {
  return (Object.keys(AlertDescription) as AlertName[]).find((name) => AlertDescription[name] === code) ?? `alert ${code}`;
}

export const enum ExtensionType {
  /** RFC 8422: the curves a client can do ECDHE on (we: secp256r1 only) */
  SUPPORTED_GROUPS = 10,
  EC_POINT_FORMATS = 11,
  SIGNATURE_ALGORITHMS = 13,
  /** RFC 7250: the certificate types a client can send / take from the server */
  CLIENT_CERTIFICATE_TYPE = 19,
  SERVER_CERTIFICATE_TYPE = 20,
  EXTENDED_MASTER_SECRET = 23,
  /** RFC 9146 (not the drafts' 53 or mbedTLS 2.x's 254) */
  CONNECTION_ID = 54,
  RENEGOTIATION_INFO = 0xff01,
}

/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746): a client's "I do secure renegotiation". */
export const EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;

export type CipherSuiteName =
  | 'TLS_PSK_WITH_AES_128_CCM_8'
  | 'TLS_PSK_WITH_AES_128_GCM_SHA256'
  | 'TLS_PSK_WITH_AES_128_CBC_SHA256'
  | 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8'
  | 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256';

export const CIPHER_SUITES: Record<CipherSuiteName, number> = {
  TLS_PSK_WITH_AES_128_CCM_8: 0xc0a8,
  TLS_PSK_WITH_AES_128_GCM_SHA256: 0x00a8,
  TLS_PSK_WITH_AES_128_CBC_SHA256: 0x00ae,
  TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: 0xc0ae, // RFC 7251
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 0xc02b, // RFC 5289
};

/** Whether a suite authenticates with ECDSA keys (ECDHE-ECDSA) rather than a pre-shared key. */
export function isEcdheSuite(suite: CipherSuiteName): boolean {
  return suite.startsWith('TLS_ECDHE_ECDSA_');
}

export function cipherSuiteName(id: number): CipherSuiteName | undefined {
  return (Object.keys(CIPHER_SUITES) as CipherSuiteName[]).find((name) => CIPHER_SUITES[name] === id);
}

/** Bytes of the record header: type, version, epoch, sequence number (48 bits), length. */
export const RECORD_HEADER = 13;
/** Bytes of the handshake header: type, length, message_seq, fragment_offset, fragment_length. */
export const HANDSHAKE_HEADER = 12;

/** Flight retransmission (RFC 6347 §4.2.4): both the client and the server use it. */
export interface DtlsTiming {
  /** ms before a flight is first sent again (RFC 6347: 1 s) */
  initialTimeout: number;
  /** the doubling stops here (RFC 6347: 60 s) */
  maxTimeout: number;
  /** sends of a flight before the handshake is given up */
  maxRetransmissions: number;
}

export const DEFAULT_DTLS_TIMING: DtlsTiming = { initialTimeout: 1000, maxTimeout: 60_000, maxRetransmissions: 6 };
