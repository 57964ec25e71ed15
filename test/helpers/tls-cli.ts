/**
 * Command-line TLS clients as DTLS peers: `openssl s_client -dtls1_2` (OpenSSL 3.0) and
 * `gnutls-cli --udp` (GnuTLS 3.7, Debian gnutls-bin). Each sends lines one by one, each in a read
 * of its own, then ends its input; resolves with everything it printed once it has exited,
 * whatever the child does (exits early after a failed handshake, cannot start, ...). The caller
 * gives the credentials and the cipher (s_client) or priority string (gnutls-cli).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface SClientOptions {
  /** s_client arguments for the credentials, e.g. ['-psk', hex, '-psk_identity', 'dev'] */
  credentials: string[];
  /** an OpenSSL cipher name, e.g. 'PSK-AES128-CCM8' or 'ECDHE-ECDSA-AES128-CCM8' */
  cipher: string;
  /** false: without extended master secret (RFC 7627), through an OpenSSL config file */
  ems?: boolean;
  /**
   * Resolves once line `index` has had its effect, so the next line (or the end of input) goes out
   * in a read of its own even when s_client is slow to run; default: 400 ms.
   */
  after?: (index: number, output: () => string) => Promise<void>;
}

export function sClient(port: number, lines: string[], options: SClientOptions): Promise<string> {
  const env = { ...process.env };
  let configDir: string | undefined;
  if (options.ems === false) {
    configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-openssl-'));
    const config = path.join(configDir, 'no-ems.cnf');
    fs.writeFileSync(config, 'openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = sys\n[sys]\nOptions = -ExtendedMasterSecret\n');
    env.OPENSSL_CONF = config;
  }
  const args = ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${port}`, ...options.credentials, '-cipher', options.cipher];
  return lineClient('openssl', args, lines, { env, after: options.after }).finally(() => {
    if (configDir) fs.rmSync(configDir, { recursive: true, force: true });
  });
}

export interface GnutlsCliOptions {
  /** gnutls-cli arguments for the credentials, e.g. ['--x509certfile', f, '--x509keyfile', k, '--x509cafile', ca] */
  credentials: string[];
  /** a GnuTLS priority string, e.g. 'NORMAL:-VERS-ALL:+VERS-DTLS1.2' */
  priority: string;
  after?: SClientOptions['after'];
}

/** `gnutls-cli --udp` (DTLS; the version comes from the priority string). */
export function gnutlsCli(port: number, lines: string[], options: GnutlsCliOptions): Promise<string> {
  const args = ['--udp', '--port', String(port), '--priority', options.priority, ...options.credentials, '127.0.0.1'];
  return lineClient('gnutls-cli', args, lines, { env: { ...process.env }, after: options.after });
}

function lineClient(command: string, args: string[], lines: string[], options: { env: NodeJS.ProcessEnv; after: SClientOptions['after'] }): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const later = (action: () => void, ms: number): void => void timers.push(setTimeout(action, ms));
    const settle = (error?: Error): void => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      // a failed `after` leaves the client waiting for input: it must not outlive the test
      if (error && running()) child.kill('SIGKILL');
      if (error) reject(error);
      else resolve(output);
    };
    const child = spawn(command, args, { env: options.env });
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    // the client may quit (a refused handshake) while we still write: EPIPE then is expected, not a failure
    child.stdin.on('error', () => undefined);
    child.on('error', settle); // could not start (or be killed)
    // 'close' comes after 'exit' and after its output pipes ended: nothing of the output is missed
    child.on('close', () => settle());
    const running = (): boolean => child.exitCode === null && child.signalCode === null;
    const after = options.after ?? (() => new Promise<void>((resolve) => later(resolve, 400)));
    let index = 0;
    const next = (): void => {
      if (!running()) return;
      if (index < lines.length) {
        child.stdin.write(`${lines[index]}\n`);
        after(index++, () => output).then(next, settle);
      } else {
        // end of input: the client says close_notify and exits (killed only if it does not)
        child.stdin.end();
        later(() => child.kill(), 2000);
        later(() => child.kill('SIGKILL'), 5000);
      }
    };
    later(next, 600);
  });
}
