/**
 * libcoap's DTLS clients (`coap-client-openssl`, `coap-client-gnutls`, Debian libcoap3-bin) as PSK
 * peers: one request, and what the client printed (its log at -v 6 shows the response line, e.g.
 * `v:1 t:ACK c:2.01 ...`, and DTLS alerts it received).
 */
import { execFile } from 'node:child_process';

export const COAPS_CLIENTS = ['coap-client-openssl', 'coap-client-gnutls'] as const;

export interface CoapsRequest {
  identity: string;
  key: string;
  method?: 'get' | 'post' | 'put' | 'delete';
  payload?: string;
  /** seconds coap-client waits (default 5) */
  wait?: number;
}

/** Runs one request; resolves with stdout and stderr together. */
export function coapsRequest(client: (typeof COAPS_CLIENTS)[number], uri: string, request: CoapsRequest): Promise<string> {
  const args = ['-v', '6', '-B', String(request.wait ?? 5), '-m', request.method ?? 'get'];
  if (request.identity) args.push('-u', request.identity, '-k', request.key);
  if (request.payload !== undefined) args.push('-e', request.payload);
  args.push(uri);
  return new Promise((resolve) => {
    execFile(client, args, { timeout: ((request.wait ?? 5) + 5) * 1000, env: { ...process.env, LC_ALL: 'C' } }, (_error, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
}

/** The response code coap-client printed (`c:2.01`), if any. */
export function responseCode(output: string): string | undefined {
  return /t:(?:ACK|CON|NON) c:(\d\.\d\d)/.exec(output)?.[1];
}
