/**
 * What the server's store keeps of a request, an observation and a queued request, and back:
 * requests as data (no tokens, timers or callbacks), so that a restarted server can repeat them.
 */
import type { RequestParams } from '../transport/endpoint';
import type { StoredRequest } from './types';

export function storedRequest(params: RequestParams): StoredRequest {
  const stored: StoredRequest = { method: params.method, path: [...(params.path ?? [])] };
  if (params.query && params.query.length > 0) stored.query = [...params.query];
  if (params.accept !== undefined) stored.accept = params.accept;
  if (params.contentFormat !== undefined) stored.contentFormat = params.contentFormat;
  if (params.payload && params.payload.length > 0) stored.payload = params.payload.toString('base64');
  return stored;
}

export function requestParams(stored: StoredRequest): RequestParams {
  const params: RequestParams = { method: stored.method, path: stored.path };
  if (stored.query) params.query = stored.query;
  if (stored.accept !== undefined) params.accept = stored.accept;
  if (stored.contentFormat !== undefined) params.contentFormat = stored.contentFormat;
  if (stored.payload !== undefined) params.payload = Buffer.from(stored.payload, 'base64');
  return params;
}
