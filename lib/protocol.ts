/**
 * What both sides of LwM2M share above the transport and below server and client: the enabler
 * versions and the notification attributes. Server and client import these from here, never from
 * each other.
 */

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
