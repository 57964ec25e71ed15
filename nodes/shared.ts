/**
 * What the LwM2M nodes share: the message shapes of registrations and errors, the endpoint filter,
 * and finding the server config node a node is attached to.
 */
import { LwM2MError, type Registration } from '../lib';
import type { NodeMessage } from './red';

/** The registration as `msg.payload`: plain data, JSON-friendly. */
export function registrationPayload(registration: Registration): Record<string, unknown> {
  return {
    endpoint: registration.endpoint,
    id: registration.id,
    lifetime: registration.lifetime,
    version: registration.version,
    binding: registration.binding,
    queueMode: registration.queueMode,
    address: registration.address,
    port: registration.port,
    rootPath: registration.rootPath || '/',
    objects: registration.objects.map((object) => ({ ...object })),
    contentFormats: [...registration.contentFormats],
    registeredAt: new Date(registration.registeredAt).toISOString(),
    updatedAt: new Date(registration.updatedAt).toISOString(),
    expiresAt: new Date(registration.expiresAt).toISOString(),
    awake: registration.awake,
    ...(registration.sms !== undefined ? { sms: registration.sms } : {}),
  };
}

/** `msg.error` of the message contract: `{ message, code, coapCode }`. */
export function errorInfo(error: unknown): { message: string; code: string; coapCode?: string } {
  if (error instanceof LwM2MError) return { message: error.message, code: error.code, ...(error.coapCode ? { coapCode: error.coapCode } : {}) };
  return { message: error instanceof Error ? error.message : String(error), code: 'BAD_REQUEST' };
}

/** An Error for done(): it carries msg.error's fields so a Catch node sees the same. */
export function failure(msg: NodeMessage, error: unknown): Error {
  const info = errorInfo(error);
  msg.error = info;
  if (info.coapCode) msg.coapCode = info.coapCode;
  return Object.assign(new Error(info.message), info);
}

/** Endpoint filter: empty or `*` matches all; `*` inside matches any run of characters. */
export function endpointFilter(pattern: string | undefined): (endpoint: string) => boolean {
  const text = (pattern ?? '').trim();
  if (text === '' || text === '*') return () => true;
  const expression = new RegExp(`^${text.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (endpoint) => expression.test(endpoint);
}
