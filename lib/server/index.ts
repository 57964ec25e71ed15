export {
  LwM2MServer,
  type LwM2MServerOptions,
  type Registration,
  type RequestOptions,
  type WriteOptions,
  type AttributeChanges,
  type Observation,
  type NotifyEvent,
  type SendEvent,
  type PskCredential,
  type RawPublicKeyCredential,
  type DtlsOptions,
} from './server';
export { LwM2MError, type LwM2MErrorCode } from './errors';
export { NoStore, StoreError, type RegistrationStore } from './store';
export { MemoryStore } from './memory-store';
export { FileStore, type FileStoreOptions } from './file-store';
export type { RegistrationRecord, ObservationRecord, QueuedRequestRecord, StoredRequest } from './types';
export { RedisStore, type RedisStoreOptions } from './redis-store';
export type { RegisteredObject } from './register-params';
export type { Logger } from './log';
export type {
  LwM2MServerEvents,
  ObservationEndedEvent,
  ObservationEndReason,
  HandshakeFailedEvent,
  BadDatagramEvent,
  BadDatagramKind,
  EventsSuppressedEvent,
  QueuedRequestEvent,
  ClusterRegistrationEvent,
  StoreLoadedEvent,
} from './events';
export type { ClusterBus, ClusterMessage, ClusterHandlers, ExpiryClaim } from './cluster/bus';
export type { EventLimiterOptions } from './event-limiter';
export { firmwareSourceProblem } from './firmware';
export type {
  FirmwareSource,
  FirmwareUpdateOptions,
  FirmwareFleetOptions,
  FirmwareProgress,
  FirmwarePhase,
  FirmwareOutcome,
  FirmwareFailure,
  FirmwareDelivery,
} from './firmware';
export type { PublishedPackage } from './packages';
export { CoapTrace, MAX_TRACE_SIZE, RingBuffer, type TraceEntry, type TracedPayload, type TraceFilter } from './trace';
