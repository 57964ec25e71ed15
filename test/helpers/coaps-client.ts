/**
 * libcoap's DTLS clients (`coap-client-openssl`, `coap-client-gnutls`, Debian libcoap3-bin) as PSK,
 * certificate or raw public key peers: one request, and what the client printed (its log at -v 6
 * shows the response line, e.g. `v:1 t:ACK c:2.01 ...`, and DTLS alerts it received).
 *
 * libcoap 4.3.1: `-c cert -j key -C ca` is certificate mode, and `-C` makes the client verify the
 * server's certificate chain (it prints the name it saw: `CN 'localhost' presented by server`);
 * `-M file` is raw public key mode (GnuTLS build only; the file holds the private key and the
 * PUBLIC KEY; the client is given no server key, so takes any), the OpenSSL build refuses it with
 * "RPK Support not available in OpenSSL".
 */
import { execFile } from 'node:child_process';

export const COAPS_CLIENTS = ['coap-client-openssl', 'coap-client-gnutls'] as const;

export interface CoapsRequest {
  /** PSK identity and key */
  identity?: string;
  key?: string;
  /** certificate mode: PEM files of our certificate, its key, and the CA the server's certificate must chain to */
  certificate?: { certFile: string; keyFile: string; caFile: string };
  /** raw public key mode: a PEM file holding our private key and our PUBLIC KEY */
  rawPublicKeyFile?: string;
  method?: 'get' | 'post' | 'put' | 'delete';
  payload?: string;
  /** seconds coap-client waits (default 5) */
  wait?: number;
}

/** Runs one request; resolves with stdout and stderr together. */
export function coapsRequest(client: (typeof COAPS_CLIENTS)[number], uri: string, request: CoapsRequest): Promise<string> {
  const args = ['-v', '6', '-B', String(request.wait ?? 5), '-m', request.method ?? 'get'];
  if (request.identity) args.push('-u', request.identity, '-k', request.key ?? '');
  if (request.certificate) args.push('-c', request.certificate.certFile, '-j', request.certificate.keyFile, '-C', request.certificate.caFile);
  if (request.rawPublicKeyFile !== undefined) args.push('-M', request.rawPublicKeyFile);
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
