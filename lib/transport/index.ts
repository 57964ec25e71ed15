export { CoapEndpoint, type Peer, type IncomingRequest, type OutgoingResponse, type RequestParams, type CoapResponse, type EndpointOptions } from './endpoint';
export { CoapError, type CoapErrorKind } from './errors';
export { OptionNumber, type CoapOption } from './message';
export { DEFAULT_TIMING, type CoapTiming } from './timing';
