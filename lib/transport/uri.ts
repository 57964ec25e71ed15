/**
 * Where a coap:// or coaps:// URI points: its host, without the brackets of an IPv6 literal, and
 * its port, 5683 or 5684 when the URI names none (RFC 7252 §6.1, §6.2).
 */
export function coapTarget(url: URL): { host: string; port: number; secure: boolean } {
  const secure = url.protocol === 'coaps:';
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : secure ? 5684 : 5683, secure };
}
