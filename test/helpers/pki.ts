/**
 * A test PKI made with the openssl CLI in a temporary directory, once per run (cached): a CA, a
 * server certificate (CN and subjectAltName localhost / 127.0.0.1), client certificates with a CN,
 * an expired one, one not yet valid, a self-signed one, one from another CA, one with a P-384 key,
 * one without a CN, an intermediate CA and a client under it, and raw P-256 keys.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Issued {
  /** PEM files */
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** the certificate's key as SubjectPublicKeyInfo DER */
  spki: Buffer;
}

export interface TestPki {
  dir: string;
  caFile: string;
  ca: string;
  /** the CA file of the other CA (the one `otherCa` is issued by) */
  otherCaFile: string;
  server: Issued;
  client: Issued;
  /** a second client of the same CA */
  client2: Issued;
  expired: Issued;
  notYetValid: Issued;
  selfSigned: Issued;
  otherCa: Issued;
  p384: Issued;
  noCn: Issued;
  /** a client certificate under an intermediate CA; its cert holds leaf then intermediate */
  chained: Issued;
  /** the intermediate CA's certificate: PEM, and its file */
  intermediate: string;
  intermediateFile: string;
  /** raw P-256 keys (no certificate): key PEM and SPKI DER */
  rawServer: { key: string; keyFile: string; spki: Buffer; spkiPemFile: string };
  rawClient: { key: string; keyFile: string; spki: Buffer; spkiPemFile: string };
}

let cached: TestPki | undefined;

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function spkiOf(keyPem: string): Buffer {
  return createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
}

const CA_CONFIG = `[ca]
default_ca = testca
[testca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = optional
[leaf]
basicConstraints = CA:FALSE
[intermediate]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
`;

export function testPki(): TestPki {
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dtls-pki-'));
  const file = (name: string) => path.join(dir, name);
  const read = (name: string) => fs.readFileSync(file(name), 'utf8');
  fs.writeFileSync(file('ca.cnf'), CA_CONFIG);
  fs.writeFileSync(file('index.txt'), '');
  fs.writeFileSync(file('serial'), '1000\n');
  fs.writeFileSync(file('leaf.ext'), 'basicConstraints = CA:FALSE\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n');

  const newKey = (name: string, curve = 'P-256') => openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-out', `${name}.key`]);
  const newCa = (name: string, subject: string) => {
    newKey(name);
    openssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '3650', '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  };
  const issued = (name: string): Issued => ({ certFile: file(`${name}.pem`), keyFile: file(`${name}.key`), cert: read(`${name}.pem`), key: read(`${name}.key`), spki: spkiOf(read(`${name}.key`)) });
  /** a certificate for `name` signed by `ca` with `openssl x509 -req` */
  const sign = (name: string, subject: string, ca: string, curve = 'P-256') => {
    newKey(name, curve);
    openssl(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(Math.floor(Math.random() * 1e9)), '-days', '365', '-sha256', '-extfile', 'leaf.ext', '-out', `${name}.pem`]);
    return issued(name);
  };
  /** a certificate with given dates (openssl ca: x509 -req cannot set them in OpenSSL 3.0) */
  const signDated = (name: string, subject: string, start: string, end: string) => {
    newKey(name);
    openssl(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${name}.csr`, '-out', `${name}.pem`, '-startdate', start, '-enddate', end, '-extensions', 'leaf', '-notext']);
    return issued(name);
  };

  newCa('ca', '/CN=Test LwM2M CA');
  newCa('other-ca', '/CN=Another CA');
  const server = sign('server', '/CN=localhost', 'ca');
  const client = sign('client', '/CN=urn:imei:000000000000001', 'ca');
  const client2 = sign('client2', '/CN=urn:imei:000000000000002', 'ca');
  const expired = signDated('expired', '/CN=expired-device', '20200101000000Z', '20210101000000Z');
  const notYetValid = signDated('future', '/CN=future-device', '20990101000000Z', '20991231000000Z');
  newKey('self');
  openssl(dir, ['req', '-x509', '-new', '-key', 'self.key', '-out', 'self.pem', '-days', '365', '-subj', '/CN=self-signed-device']);
  const selfSigned = issued('self');
  const otherCa = sign('foreign', '/CN=foreign-device', 'other-ca');
  const p384 = sign('p384', '/CN=p384-device', 'ca', 'P-384');
  const noCn = sign('nocn', '/O=No Common Name', 'ca');
  // an intermediate CA under the CA, and a client under it: the client sends leaf + intermediate
  newKey('intermediate');
  openssl(dir, ['req', '-new', '-key', 'intermediate.key', '-out', 'intermediate.csr', '-subj', '/CN=Intermediate CA']);
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', 'intermediate.csr', '-out', 'intermediate.pem', '-days', '365', '-extensions', 'intermediate', '-notext']);
  const leaf = sign('chained', '/CN=urn:imei:000000000000003', 'intermediate');
  fs.writeFileSync(file('chained-full.pem'), leaf.cert + read('intermediate.pem'));
  const chained = { ...leaf, certFile: file('chained-full.pem'), cert: read('chained-full.pem') };
  const raw = (name: string) => {
    newKey(name);
    openssl(dir, ['pkey', '-in', `${name}.key`, '-pubout', '-out', `${name}.pub.pem`]);
    return { key: read(`${name}.key`), keyFile: file(`${name}.key`), spki: spkiOf(read(`${name}.key`)), spkiPemFile: file(`${name}.pub.pem`) };
  };
  cached = {
    dir,
    caFile: file('ca.pem'),
    ca: read('ca.pem'),
    otherCaFile: file('other-ca.pem'),
    server,
    client,
    client2,
    expired,
    notYetValid,
    selfSigned,
    otherCa,
    p384,
    noCn,
    chained,
    intermediate: read('intermediate.pem'),
    intermediateFile: file('intermediate.pem'),
    rawServer: raw('raw-server'),
    rawClient: raw('raw-client'),
  };
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return cached;
}
