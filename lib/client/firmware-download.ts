/**
 * Pull delivery of a firmware package: fetches a Package URI as a device would. coap:// and
 * coaps:// are a GET with Block2; a URI naming the LwM2M server the client is registered with goes
 * over the client's own socket (and DTLS session), any other host over a temporary socket (with a
 * temporary DTLS session under the client's PSK) that is closed afterwards. http:// and https://
 * use Node's fetch. A failure is a DownloadFailure carrying the Update Result it means.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CoapEndpoint, type Peer } from '../transport/endpoint';
import { DtlsClient } from '../transport/dtls/client';
import type { CipherSuiteName, DtlsTiming } from '../transport/dtls/constants';
import { CoapError } from '../transport/errors';
import type { CoapTiming } from '../transport/timing';
import { coapTarget } from '../transport/uri';
import { FirmwareResult } from '../protocol';

export class DownloadFailure extends Error {
  override readonly name = 'DownloadFailure';
  constructor(
    readonly result: number,
    message: string,
  ) {
    super(message);
  }
}

export interface DownloadContext {
  /** the client's endpoint and the server it registered with, while it has them */
  own(): { endpoint: CoapEndpoint; server: Peer; secure: boolean } | undefined;
  /** the client's PSK, for a coaps:// host other than its server */
  psk?: { identity: string | Buffer; key: Buffer };
  dtls?: { cipherSuites?: CipherSuiteName[]; timing?: Partial<DtlsTiming> };
  timing?: Partial<CoapTiming>;
  /** ms the whole download may take */
  timeout: number;
  /** bytes the package may have at most (the simulated flash) */
  maxSize: number;
  /** aborted when the download is cancelled or the client stops */
  signal: AbortSignal;
}

/** Fetches `url` (already checked to be coap, coaps, http or https with a host). */
export async function download(url: URL, context: DownloadContext): Promise<Buffer> {
  try {
    const scheme = url.protocol.slice(0, -1);
    if (scheme === 'http' || scheme === 'https') return await httpGet(url, context);
    return await coapGet(url, scheme === 'coaps', context);
  } catch (error) {
    if (error instanceof DownloadFailure) throw error;
    if (error instanceof CoapError && error.kind === 'TOO_LARGE') throw new DownloadFailure(FirmwareResult.NOT_ENOUGH_FLASH, error.message);
    throw new DownloadFailure(FirmwareResult.CONNECTION_LOST, `download of ${url.href} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function coapGet(url: URL, secure: boolean, context: DownloadContext): Promise<Buffer> {
  const { host, port } = coapTarget(url);
  const params = { method: 'GET' as const, ...uriOptions(url), timeout: context.timeout };
  const own = context.own();
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((entry) => entry.address);
  if (addresses.length === 0) throw new Error(`${host} has no address`);

  let response;
  if (own && own.secure === secure && own.server.port === port && addresses.includes(own.server.address)) {
    // the LwM2M server serves the package itself: ask it over the registration's socket and session
    response = await own.endpoint.request(own.server, params);
  } else {
    const address = addresses[0]!;
    const endpoint = new CoapEndpoint({ timing: context.timing, maxBodySize: context.maxSize });
    endpoint.on('error', () => undefined); // a send error ends the request as a timeout
    // closed once, by a cancel or at the end, and always waited for: the caller may count sockets next
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= endpoint.close());
    const abort = (): void => void close();
    context.signal.addEventListener('abort', abort, { once: true });
    try {
      if (secure) {
        if (!context.psk) throw new DownloadFailure(FirmwareResult.CONNECTION_LOST, `no PSK to open a DTLS session with ${host}:${port}`);
        const dtls = new DtlsClient({ host: address, port, identity: context.psk.identity, key: context.psk.key, cipherSuites: context.dtls?.cipherSuites, timing: context.dtls?.timing });
        dtls.on('error', () => undefined);
        endpoint.use(dtls, true);
      } else {
        await endpoint.listen(0, isIP(address) === 6 ? '::' : '0.0.0.0');
      }
      if (context.signal.aborted) throw new Error('the download was cancelled');
      response = await endpoint.request({ address, port }, params);
    } finally {
      context.signal.removeEventListener('abort', abort);
      await close();
    }
  }
  if (response.code === '4.04') throw new DownloadFailure(FirmwareResult.INVALID_URI, `${url.href} was answered 4.04`);
  if (response.code !== '2.05') throw new DownloadFailure(FirmwareResult.CONNECTION_LOST, `${url.href} was answered ${response.code}`);
  if (response.payload.length > context.maxSize) throw new DownloadFailure(FirmwareResult.NOT_ENOUGH_FLASH, `the package has ${response.payload.length} bytes, more than ${context.maxSize}`);
  return response.payload;
}

/** Uri-Path and Uri-Query of a coap(s) URI, percent-decoded (RFC 7252 §6.4). */
function uriOptions(url: URL): { path: string[]; query: string[] } {
  try {
    const path = url.pathname.split('/').filter((segment) => segment !== '').map(decodeURIComponent);
    const query = url.search ? url.search.slice(1).split('&').filter((item) => item !== '').map(decodeURIComponent) : [];
    return { path, query };
  } catch {
    throw new DownloadFailure(FirmwareResult.INVALID_URI, `${url.href} has a broken percent-encoding`);
  }
}

async function httpGet(url: URL, context: DownloadContext): Promise<Buffer> {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  context.signal.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(abort, context.timeout);
  try {
    const response = await fetch(url, { signal: controller.signal });
    if (response.status === 404) throw new DownloadFailure(FirmwareResult.INVALID_URI, `${url.href} was answered 404`);
    if (response.status !== 200 || !response.body) {
      void response.body?.cancel().catch(() => undefined);
      throw new DownloadFailure(FirmwareResult.CONNECTION_LOST, `${url.href} was answered ${response.status}`);
    }
    const announced = Number(response.headers.get('content-length') ?? NaN);
    if (announced > context.maxSize) {
      void response.body.cancel().catch(() => undefined);
      throw new DownloadFailure(FirmwareResult.NOT_ENOUGH_FLASH, `the package has ${announced} bytes, more than ${context.maxSize}`);
    }
    // read it in parts, so a body larger than the flash is cut off rather than held whole
    const reader = response.body.getReader();
    const parts: Buffer[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > context.maxSize) {
        void reader.cancel().catch(() => undefined);
        throw new DownloadFailure(FirmwareResult.NOT_ENOUGH_FLASH, `the package is larger than ${context.maxSize} bytes`);
      }
      parts.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
    return Buffer.concat(parts, size);
  } finally {
    clearTimeout(timer);
    context.signal.removeEventListener('abort', abort);
  }
}
