/**
 * What both sides of LwM2M share above the transport and below server and client: the enabler
 * versions and the notification attributes. Server and client import these from here, never from
 * each other.
 */

/** The Security Modes (/0/x/2) this project speaks: pre-shared key, raw public key, certificate and none. */
export const SECURITY_MODE = { psk: 0, rpk: 1, certificate: 2, nosec: 3 } as const;
export type SecurityName = keyof typeof SECURITY_MODE;
/** The other modes of the specification, named in errors */
export const UNSUPPORTED_SECURITY_MODES: Readonly<Record<number, string>> = { 4: 'Certificate with EST' };

/** The security name of a Security Mode value, when this project speaks it. */
export function securityName(mode: unknown): SecurityName | undefined {
  return (Object.keys(SECURITY_MODE) as SecurityName[]).find((name) => SECURITY_MODE[name] === mode);
}

/** The LwM2M enabler versions this project speaks. */
export type LwM2MVersion = '1.0' | '1.1' | '1.2';

/** Notification attributes (LwM2M 1.1 + 1.2's edge, con, hqmax). */
export interface NotificationAttributes {
  /** Minimum Period, seconds, integer >= 0 */
  pmin?: number;
  /** Maximum Period, seconds, integer >= 0 (0 means "no maximum period") */
  pmax?: number;
  /** Greater Than threshold */
  gt?: number;
  /** Less Than threshold */
  lt?: number;
  /** Step, >= 0 */
  st?: number;
  /** Minimum Evaluation Period, seconds */
  epmin?: number;
  /** Maximum Evaluation Period, seconds */
  epmax?: number;
  /** 1: notify on a false → true transition, 0: on true → false */
  edge?: 0 | 1;
  /** 1: send notifications as Confirmable messages */
  con?: 0 | 1;
  /** Maximum Historical Queue: notifications kept while offline */
  hqmax?: number;
}

/** Firmware Update (object 5) State, resource 3. */
export const FirmwareState = { IDLE: 0, DOWNLOADING: 1, DOWNLOADED: 2, UPDATING: 3 } as const;

/** Firmware Update (object 5) Update Result, resource 5. */
export const FirmwareResult = {
  INITIAL: 0,
  SUCCESS: 1,
  NOT_ENOUGH_FLASH: 2,
  OUT_OF_RAM: 3,
  CONNECTION_LOST: 4,
  INTEGRITY_FAILURE: 5,
  UNSUPPORTED_PACKAGE: 6,
  INVALID_URI: 7,
  UPDATE_FAILED: 8,
  UNSUPPORTED_PROTOCOL: 9,
  CANCELLED: 10,
  DEFERRED: 11,
} as const;

/** What each Update Result means, in words for messages. */
export const FIRMWARE_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: 'initial',
  1: 'success',
  2: 'not enough flash memory for the package',
  3: 'out of RAM during download',
  4: 'connection lost during download',
  5: 'integrity check failure',
  6: 'unsupported package type',
  7: 'invalid URI',
  8: 'firmware update failed',
  9: 'unsupported protocol',
  10: 'update cancelled',
  11: 'update deferred',
};

/** Package URI schemes by their id in resource 8 (Firmware Update Protocol Support). */
export const FIRMWARE_PROTOCOLS: Readonly<Record<string, number>> = { coap: 0, coaps: 1, http: 2, https: 3, 'coap+tcp': 4, 'coaps+tcp': 5 };
