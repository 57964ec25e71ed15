export { CoapEndpoint, type TrafficTap, type Peer, type IncomingRequest, type OutgoingResponse, type RequestParams, type CoapResponse, type EndpointOptions } from './endpoint';
export { CoapError, type CoapErrorKind } from './errors';
export { OptionNumber, type CoapOption } from './message';
export { DEFAULT_TIMING, type CoapTiming } from './timing';
export { DtlsServer, type DtlsDrop, type DtlsServerOptions, type SessionInfo } from './dtls/server';
export { DtlsClient, type DtlsClientOptions, type DtlsSession } from './dtls/client';
export type { CipherSuiteName, DtlsTiming } from './dtls/constants';
export type { DatagramSocket, DatagramInfo } from './datagram';
export { coapTarget } from './uri';
