/**
 * Where a coap:// or coaps:// URI points: its host, without the brackets of an IPv6 literal, and
 * its port, 5683 or 5684 when the URI names none (RFC 7252 §6.1, §6.2).
 */
export function coapTarget(url: URL): { host: string; port: number; secure: boolean } {
  const secure = url.protocol === 'coaps:';
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : secure ? 5684 : 5683, secure };
}

/** A `coap://` or `coaps://` URI as host, port (default 5683 / 5684) and whether it is DTLS; TypeError otherwise. */
export function parseCoapUri(uri: unknown, what = 'server'): { host: string; port: number; secure: boolean } {
  let url: URL;
  try {
    url = new URL(String(uri));
  } catch {
    throw new TypeError(`${what} must be a URI such as coap://127.0.0.1:5683, not ${JSON.stringify(uri)}`);
  }
  if (url.protocol !== 'coap:' && url.protocol !== 'coaps:') throw new TypeError(`${what} URI scheme ${url.protocol} is not supported; use coap:// or coaps://`);
  const target = coapTarget(url);
  if (!target.host) throw new TypeError(`${what} URI ${String(uri)} has no host`);
  return target;
}
