export { CoapTrace, MAX_TRACE_SIZE, type TraceFilter, type TraceHooks, type TraceSource, type PeerIdentity } from './trace';
export type { TraceEntry } from './entry';
export type { TracedPayload } from './payload';
export { RingBuffer } from './ring-buffer';
