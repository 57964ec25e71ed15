/**
 * Security modes 1 and 2 in the server node's credentials, all PEM pasted in the editor: the
 * server's own P-256 key, its certificate chain (without one it presents a raw public key), the CA
 * client certificates must chain to, and the devices' raw public keys, each under its endpoint:
 *
 *   sensor-1
 *   -----BEGIN PUBLIC KEY-----
 *   …
 *   -----END PUBLIC KEY-----
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import type { DtlsOptions, RawPublicKeyCredential } from '../lib';

export interface EcdsaCredentials {
  /** the server's private key (PEM) */
  dtlsKey?: string;
  /** its certificate chain (PEM, leaf first); empty: a raw public key */
  dtlsCertificate?: string;
  /** CA certificates (PEM) of the devices' certificates */
  dtlsCa?: string;
  /** the devices' raw public keys, each PEM block after a line naming its endpoint */
  rawPublicKeys?: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g;

/** What of DtlsOptions the credentials give; throws an Error a user can act on. */
export function ecdsaSettings(credentials: EcdsaCredentials): Pick<DtlsOptions, 'ecdsa' | 'clientCa' | 'rawPublicKeys'> {
  const key = credentials.dtlsKey?.trim() ?? '';
  const chain = credentials.dtlsCertificate?.trim() ?? '';
  const ca = credentials.dtlsCa?.trim() ?? '';
  const rawPublicKeys = parseRawPublicKeys(credentials.rawPublicKeys ?? '');
  if (key === '') {
    if (chain !== '' || ca !== '' || rawPublicKeys.length > 0) throw new Error('DTLS: certificates and raw public keys need the server key (PEM) too');
    return {};
  }
  check('the server key', () => {
    const details = createPrivateKey(key).asymmetricKeyDetails;
    if (details?.namedCurve !== 'prime256v1') throw new Error(`it is not an EC key on P-256 (${details?.namedCurve ?? 'no curve'})`);
  });
  if (chain !== '') check('the server certificate', () => certificates(chain));
  if (ca !== '') check('the CA of device certificates', () => certificates(ca));
  for (const { endpoint, publicKey } of rawPublicKeys) check(`the raw public key of ${endpoint}`, () => createPublicKey(publicKey));
  return {
    ecdsa: chain === '' ? { key } : { key, chain },
    ...(ca === '' ? {} : { clientCa: ca }),
    rawPublicKeys,
  };
}

/** Runs a parse; its failure becomes an error naming the setting. */
function check(what: string, parse: () => unknown): void {
  try {
    parse();
  } catch (error) {
    throw new Error(`DTLS: ${what} is not valid PEM: ${(error as Error).message}`);
  }
}

/** Every certificate of a PEM text (at least one). */
function certificates(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks) throw new Error('no -----BEGIN CERTIFICATE----- block');
  return blocks.map((block) => new X509Certificate(block));
}

/** The raw public key list: each PEM block with the endpoint named on the line before it. */
export function parseRawPublicKeys(text: string): RawPublicKeyCredential[] {
  const keys: RawPublicKeyCredential[] = [];
  let rest = 0;
  for (const match of text.matchAll(PEM_BLOCK)) {
    const before = text.slice(rest, match.index).split('\n').map((line) => line.trim()).filter((line) => line !== '');
    const endpoint = before[before.length - 1];
    if (endpoint === undefined) throw new Error(`DTLS raw public keys: key ${keys.length + 1} has no endpoint on the line before it`);
    if (before.length > 1) throw new Error(`DTLS raw public keys: "${before[0]}" is neither an endpoint before a key nor a key`);
    keys.push({ endpoint, publicKey: match[0] });
    rest = match.index! + match[0].length;
  }
  const trailing = text.slice(rest).trim();
  if (trailing !== '') throw new Error(`DTLS raw public keys: "${trailing.split('\n')[0]}" has no PEM key after it`);
  return keys;
}
