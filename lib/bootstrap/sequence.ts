/**
 * One bootstrap of one device, server side: Discover (learn the client's version and its own
 * bootstrap account), Read of the Server object (1.1+), Delete, the writes, Finish. Each step is
 * a request over the transport the device's Bootstrap-Request came on.
 */
import { ContentFormat, decode, decodeLinks, encode, formatLinkFormat, type InstanceValue, type Link } from '../content';
import type { ObjectModel } from '../model';
import type { LwM2MVersion } from '../protocol';
import type { CoapResponse, RequestParams } from '../transport/endpoint';
import { CoapError } from '../transport/errors';
import { planAccounts, type PlannedAccount } from './config';
import type { BootstrapConfig, BootstrapOperation, BootstrapOperationEvent } from './types';

/** Why a bootstrap ended without success: the step, the path and the client's answer. */
export class BootstrapFailure extends Error {
  override readonly name = 'BootstrapFailure';
  constructor(
    message: string,
    readonly operation?: BootstrapOperation,
    readonly path?: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface SequenceContext {
  endpoint: string;
  deviceAddress: string;
  /** the `pct=` of the Bootstrap-Request */
  preferredFormat?: number;
  config: BootstrapConfig;
  model: ObjectModel;
  /** sends one request to the device */
  send(params: RequestParams): Promise<CoapResponse>;
  report(event: BootstrapOperationEvent): void;
  /** aborted when the bootstrap timed out or a new Bootstrap-Request replaced it */
  signal: AbortSignal;
}

export interface SequenceResult {
  accounts: PlannedAccount[];
  version: LwM2MVersion;
}

/** Where a client keeps its bootstrap account when it did not say (no Discover): /0/0, as most do. */
export const ASSUMED_BOOTSTRAP_INSTANCES: ReadonlySet<number> = new Set([0]);

/** Formats a bootstrap server may write in, by client version. */
const WRITE_FORMATS: Record<LwM2MVersion, readonly number[]> = {
  '1.0': [ContentFormat.TLV],
  '1.1': [ContentFormat.TLV, ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON],
  '1.2': [ContentFormat.TLV, ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.LWM2M_CBOR],
};

/** The client's `pct` when its version allows it, else TLV for 1.0 and SenML CBOR after. */
export function writeFormat(version: LwM2MVersion, preferred: number | undefined): number {
  if (preferred !== undefined && WRITE_FORMATS[version].includes(preferred)) return preferred;
  return version === '1.0' ? ContentFormat.TLV : ContentFormat.SENML_CBOR;
}

/**
 * Runs the sequence; resolves with the accounts written once the client accepted Finish, or
 * rejects with a BootstrapFailure. `beforeFinish` runs just before Finish is sent (the keys go to
 * the LwM2M server then, so the device finds them when it registers).
 */
export async function runSequence(context: SequenceContext, beforeFinish: (accounts: PlannedAccount[]) => void): Promise<SequenceResult> {
  const { config } = context;
  let version: LwM2MVersion = context.preferredFormat !== undefined ? '1.1' : '1.0';
  const bootstrapInstances = new Set<number>();
  let discovered = false;
  let hasAcl = false;

  if (config.discover !== false) {
    // Bootstrap-Discover came with 1.1: a 1.0 client may refuse it with any 4.xx
    const response = await step(context, 'discover', '/', { method: 'GET', accept: ContentFormat.LINK }, (code) => code === '2.05' || code.startsWith('4.'));
    if (response.code === '2.05') {
      const links = parseLinks(response.payload);
      context.report({ endpoint: context.endpoint, operation: 'discover', path: '/', code: response.code, value: formatLinkFormat(links) });
      version = versionOf(links) ?? '1.0';
      for (const id of bootstrapAccountIds(links)) bootstrapInstances.add(id);
      hasAcl = links.some((link) => link.uri === '/2' || link.uri.startsWith('/2/'));
      discovered = true;
    } else {
      context.report({ endpoint: context.endpoint, operation: 'discover', path: '/', code: response.code });
    }
  }
  const format = writeFormat(version, context.preferredFormat);

  if (config.read !== false && version !== '1.0') {
    // what the device has now (Server accounts, and access rights when it has an ACL object):
    // informative, so an answer of "nothing there" does not stop the bootstrap
    for (const objectId of hasAcl ? ['1', '2'] : ['1']) {
      const path = `/${objectId}`;
      const response = await step(context, 'read', path, { method: 'GET', path: [objectId], accept: format }, (code) => code === '2.05' || code.startsWith('4.'));
      let value: unknown;
      if (response.code === '2.05') {
        try {
          value = decode(response.contentFormat ?? format, path, response.payload, context.model);
        } catch {
          value = undefined;
        }
      }
      context.report({ endpoint: context.endpoint, operation: 'read', path, code: response.code, value });
    }
  }

  for (const path of config.delete ?? []) {
    // the client's own bootstrap account stays whatever the configuration says
    if (bootstrapInstances.has(Number(/^\/0\/(\d+)$/.exec(path)?.[1] ?? NaN))) continue;
    const response = await step(context, 'delete', path, { method: 'DELETE', path: segments(path) }, (code) => code === '2.02');
    context.report({ endpoint: context.endpoint, operation: 'delete', path, code: response.code });
  }

  const accounts = planAccounts(config, context.endpoint, context.deviceAddress, discovered ? bootstrapInstances : ASSUMED_BOOTSTRAP_INSTANCES);
  const writes: Array<[string, InstanceValue]> = [];
  for (const account of accounts) {
    writes.push([`/0/${account.securityInstance}`, account.security0], [`/1/${account.serverInstance}`, account.server1]);
  }
  for (const [path, resources] of Object.entries(config.writes ?? {})) writes.push([path, resources as InstanceValue]);
  for (const [path, value] of writes) {
    let payload: Buffer;
    try {
      payload = encode(format, path, value, context.model);
    } catch (error) {
      throw new BootstrapFailure(`cannot encode ${path}: ${error instanceof Error ? error.message : String(error)}`, 'write', path);
    }
    const response = await step(context, 'write', path, { method: 'PUT', path: segments(path), payload, contentFormat: format }, (code) => code === '2.04');
    context.report({ endpoint: context.endpoint, operation: 'write', path, code: response.code });
  }

  beforeFinish(accounts);
  const finish = await step(context, 'finish', '/bs', { method: 'POST', path: ['bs'] }, (code) => code === '2.04');
  context.report({ endpoint: context.endpoint, operation: 'finish', path: '/bs', code: finish.code });
  return { accounts, version };
}

/** One request; an answer `expected` refuses (or none) ends the bootstrap with the reason. */
async function step(context: SequenceContext, operation: BootstrapOperation, path: string, params: RequestParams, expected: (code: string) => boolean): Promise<CoapResponse> {
  if (context.signal.aborted) throw new BootstrapFailure(String(context.signal.reason ?? 'cancelled'), operation, path);
  let response: CoapResponse;
  try {
    response = await context.send(params);
  } catch (error) {
    // ended meanwhile (timed out, replaced, closed): that was told already
    if (context.signal.aborted) throw new BootstrapFailure(String(context.signal.reason ?? 'cancelled'), operation, path);
    const timeout = error instanceof CoapError && error.kind === 'TIMEOUT';
    const code = timeout ? 'timeout' : 'error';
    context.report({ endpoint: context.endpoint, operation, path, code });
    throw new BootstrapFailure(`${operation} ${path}: ${timeout ? 'the device did not answer' : error instanceof Error ? error.message : String(error)}`, operation, path, code);
  }
  if (context.signal.aborted) throw new BootstrapFailure(String(context.signal.reason ?? 'cancelled'), operation, path);
  if (!expected(response.code)) {
    context.report({ endpoint: context.endpoint, operation, path, code: response.code });
    const detail = response.payload.length > 0 ? `: ${response.payload.toString('utf8').slice(0, 200)}` : '';
    throw new BootstrapFailure(`${operation} ${path} was answered ${response.code}${detail}`, operation, path, response.code);
  }
  return response;
}

function segments(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

function parseLinks(payload: Buffer): Link[] {
  try {
    return decodeLinks(payload);
  } catch (error) {
    throw new BootstrapFailure(`discover: the answer is not a link format: ${error instanceof Error ? error.message : String(error)}`, 'discover', '/', '2.05');
  }
}

/** `</>;lwm2m=1.1` names the version; a 1.0 client sends no such link. */
function versionOf(links: readonly Link[]): LwM2MVersion | undefined {
  const root = links.find((link) => link.uri === '/');
  const announced = root?.attributes.lwm2m;
  if (announced === undefined) return undefined;
  const text = String(announced).replace(/"/g, '');
  if (text === '1.0' || text === '1.1' || text === '1.2') return text;
  return text.startsWith('1.') ? '1.2' : undefined;
}

/** Security instances without a Short Server ID are the client's bootstrap account: never written over. */
function bootstrapAccountIds(links: readonly Link[]): number[] {
  const ids: number[] = [];
  for (const link of links) {
    const match = /^\/0\/(\d+)$/.exec(link.uri);
    if (match && link.attributes.ssid === undefined) ids.push(Number(match[1]));
  }
  return ids;
}
