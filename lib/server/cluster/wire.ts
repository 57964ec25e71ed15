/**
 * CoAP requests, responses and errors as JSON, for the messages server instances exchange over
 * Redis: Buffers as base64 (tokens hex), callbacks left out (progress travels as messages).
 */
import type { CoapResponse, Peer, RequestParams } from '../../transport/endpoint';
import { CoapError, type CoapErrorKind } from '../../transport/errors';
import type { CoapOption, Method, MessageType } from '../../transport/message';
import { LwM2MError, type LwM2MErrorCode } from '../errors';

export interface WireOption {
  n: number;
  v: string;
}

export interface WireParams {
  method: Method;
  path?: string[];
  query?: string[];
  payload?: string;
  contentFormat?: number;
  accept?: number;
  observe?: number;
  options?: WireOption[];
  confirmable?: boolean;
  token?: string;
  timeout?: number;
  blockSize?: number;
  /** the caller wants progress messages (a Block1 write) */
  progress?: boolean;
}

export interface WireResponse {
  code: string;
  type: MessageType;
  payload: string;
  options: WireOption[];
  contentFormat?: number;
  observe?: number;
  token: string;
}

export type WireError = { kind: 'coap'; coap: CoapErrorKind; message: string } | { kind: 'lwm2m'; code: LwM2MErrorCode; message: string; coapCode?: string };

const options = (list: readonly CoapOption[]): WireOption[] => list.map((option) => ({ n: option.number, v: option.value.toString('base64') }));
const fromOptions = (list: readonly WireOption[]): CoapOption[] => list.map((option) => ({ number: option.n, value: Buffer.from(option.v, 'base64') }));

export function toWireParams(params: RequestParams): WireParams {
  const wire: WireParams = { method: params.method };
  if (params.path) wire.path = [...params.path];
  if (params.query) wire.query = [...params.query];
  if (params.payload) wire.payload = params.payload.toString('base64');
  if (params.contentFormat !== undefined) wire.contentFormat = params.contentFormat;
  if (params.accept !== undefined) wire.accept = params.accept;
  if (params.observe !== undefined) wire.observe = params.observe;
  if (params.options) wire.options = options(params.options);
  if (params.confirmable !== undefined) wire.confirmable = params.confirmable;
  if (params.token) wire.token = params.token.toString('hex');
  if (params.timeout !== undefined) wire.timeout = params.timeout;
  if (params.blockSize !== undefined) wire.blockSize = params.blockSize;
  if (params.onProgress) wire.progress = true;
  return wire;
}

export function fromWireParams(wire: WireParams): RequestParams {
  const params: RequestParams = { method: wire.method };
  if (wire.path) params.path = wire.path;
  if (wire.query) params.query = wire.query;
  if (wire.payload !== undefined) params.payload = Buffer.from(wire.payload, 'base64');
  if (wire.contentFormat !== undefined) params.contentFormat = wire.contentFormat;
  if (wire.accept !== undefined) params.accept = wire.accept;
  if (wire.observe !== undefined) params.observe = wire.observe;
  if (wire.options) params.options = fromOptions(wire.options);
  if (wire.confirmable !== undefined) params.confirmable = wire.confirmable;
  if (wire.token !== undefined) params.token = Buffer.from(wire.token, 'hex');
  if (wire.timeout !== undefined) params.timeout = wire.timeout;
  if (wire.blockSize !== undefined) params.blockSize = wire.blockSize;
  return params;
}

export function toWireResponse(response: CoapResponse): WireResponse {
  const wire: WireResponse = { code: response.code, type: response.type, payload: response.payload.toString('base64'), options: options(response.options), token: response.token.toString('hex') };
  if (response.contentFormat !== undefined) wire.contentFormat = response.contentFormat;
  if (response.observe !== undefined) wire.observe = response.observe;
  return wire;
}

/** The response as if it had come from `peer` to this instance's socket. */
export function fromWireResponse(wire: WireResponse, peer: Peer): CoapResponse {
  const response: CoapResponse = { code: wire.code, type: wire.type, payload: Buffer.from(wire.payload, 'base64'), options: fromOptions(wire.options), token: Buffer.from(wire.token, 'hex'), peer };
  if (wire.contentFormat !== undefined) response.contentFormat = wire.contentFormat;
  if (wire.observe !== undefined) response.observe = wire.observe;
  return response;
}

export function toWireError(error: unknown): WireError {
  if (error instanceof CoapError) return { kind: 'coap', coap: error.kind, message: error.message };
  if (error instanceof LwM2MError) return { kind: 'lwm2m', code: error.code, message: error.message, ...(error.coapCode ? { coapCode: error.coapCode } : {}) };
  return { kind: 'lwm2m', code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** The error as the instance that met it threw it: a CoapError stays one, so the caller words it as for a local request. */
export function fromWireError(wire: WireError): Error {
  return wire.kind === 'coap' ? new CoapError(wire.coap, wire.message) : new LwM2MError(wire.code, wire.message, wire.coapCode);
}
