/**
 * Test harness that drives libcoap's command-line tools (Debian `libcoap3-bin`, libcoap 4.3.1:
 * `coap-client-notls`, `coap-server-notls`, `coap-rd-notls`) over loopback, so our CoAP/LwM2M code can
 * be checked against an independent implementation.
 *
 * ## How coap-client is run (all verified against 4.3.1 on Debian)
 *
 * `[stdbuf -oL -eL] coap-client-notls -v 6 -o <tmpfile> -B <s> [-m method] [-A n] [-t n] [-f <tmpfile>]
 *  [-s n] [-b n] [-N] [-T token] [-O num,value]... [-U] [extraArgs] <uri>` with `LC_ALL=C`.
 *
 * - `-v 6` (INFO): coap-client itself prints, on stdout, the request it sends and every PDU handed to
 *   its response handler (each observe notification, each Block2 block, 4.xx/5.xx responses) through
 *   libcoap's `coap_show_pdu()`, one line per PDU without a timestamp:
 *     `v:1 t:ACK c:2.05 i:e908 {01} [ Content-Format:application/link-format, Max-Age:60 ] :: '<payload>'`
 *   - `t:` type, `c:` method name (GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH) or code `2.05`,
 *     `i:` message id (hex), `{..}` token (hex), `[ ..]` options joined by `,` each as ` Name:value`.
 *   - option values: Content-Format/Accept as a media type name (`application/octet-stream`) or a decimal
 *     number when libcoap has no name for it (11542, 11543, ...); Uri-Port/Max-Age/Observe/Size1/Size2/
 *     Hop-Limit decimal; Block1/Block2 `num/M|_/size`; ETag/If-Match/Echo/Request-Tag `0x<hex>`;
 *     Uri-Path, Uri-Query, Location-Path, Location-Query, Proxy-Uri, Proxy-Scheme as readable text;
 *     any other option `\xHH` for every byte.
 *   - payload, when Content-Format is absent, 0, 40, 41 or 50 AND the first byte is printable: quoted
 *     readable text, each non-printable byte as `\xHH` (upper-case hex; a literal backslash is NOT
 *     escaped, so `\x41` in the text is ambiguous). Otherwise (every other Content-Format, including
 *     senml+json, TLV, LwM2M JSON/CBOR, or a non-printable first byte):
 *       `... ] :: binary data length N` then a line `<<hex>>` then a line `<<. h e l l o >>` (char view).
 *   - the debug buffer is ~2056 bytes: a readable payload with many escapes is cut off (no closing quote).
 * - `-o <tmpfile>`: the received 2.xx payloads go to a file instead of stdout, so stdout holds only log
 *   lines; the file (the exact bytes of every 2.xx payload, concatenated in order) is then used to
 *   resolve the `\xHH` ambiguity and cut-off lines byte-exactly. 4.xx/5.xx payloads are NOT written to
 *   it (coap-client prints `4.04 Not Found` on stderr instead), they are decoded from the log line.
 * - `-v 7` would also log every datagram (`sent N bytes` / `received N bytes`, retransmissions, empty
 *   ACKs it sends for CON notifications, a duplicate "PDU presented by app" copy); the parser copes with
 *   it (pass `verbosity: 7`), but 6 is the default because it shows exactly what the client processed.
 * - `-B <s>` wait time (default here 10 s instead of libcoap's 90 s). `-B` also cuts an observation
 *   short, so with `observeSeconds` we pass `-B timeoutSeconds + observeSeconds`.
 * - `-f <tmpfile>` for payloads (binary safe); `-O num,0x<hex>` for Buffers/numbers (`num,` = empty).
 * - `stdbuf -oL` (when /usr/bin/stdbuf exists): coap-client's stdout is a pipe, hence block-buffered;
 *   line buffering makes `onResponse` fire as each notification arrives and keeps the output if the
 *   harness has to kill the process. `LC_ALL=C` pins isprint() to ASCII 0x20..0x7e.
 *
 * ## libcoap 4.3.1 quirks tests must know
 * - exit code is 0 after a 4.xx/5.xx response, after a timeout and after an RST: look at `responses`,
 *   `timedOut` (the INFO line `timeout`) and `reset` (stderr `ALRT got RST for mid=0x....`).
 * - an ICMP port unreachable only logs `WARN ... ICMP: Connection refused`; the client keeps
 *   retransmitting until `-B` expires (result: `timedOut`, `connectionRefused`).
 * - coap-client adds `Uri-Port` (option 7, critical) for a non-default port; `-U` (noUriHostPort) stops it.
 * - `-T tk` is the *initial* token: coap-client increments its last byte before the first request, so
 *   the token on the wire is 'tl' (the bytes of the text, not hex; without -T the token is 0x01).
 *   `-s` sends Observe:0.
 * - observe: `-s n` counts from the first response; when it elapses coap-client sends a CON
 *   `GET` with `Observe:1` (same token) to deregister and exits at once without waiting for the answer
 *   (the server's reply then meets ICMP port unreachable). It never sends RST to end an observation.
 *   It ACKs CON notifications with an empty ACK.
 * - block-wise: coap-client handles Block2 itself (every block is shown; this harness reassembles them,
 *   see `blocks`). The follow-up Block2 requests carry a different token than the first request
 *   (libcoap's "stateless" token, e.g. 0x02000000000002 after 0x01), although the -v 6 log shows every
 *   block with the application's token: a server must not require the same token across blocks.
 *   With `-b size` it asks for that Block2 size and splits a request body into Block1 (only the first
 *   request block is logged; the 2.31 Continue answers are not). Without -b, coap-client sends bodies
 *   up to 1024 bytes in one datagram, and coap-server-notls / coap-rd-notls answer with 1024-byte
 *   Block2 blocks above 1024 bytes of body.
 * - servers started with a port that is already taken do NOT exit: UDP binds anyway (SO_REUSEADDR) and
 *   only the TCP bind logs `ALRT coap_socket_bind_tcp: bind: Address already in use` + `CRIT cannot
 *   create TCP endpoint`; `startTool` watches for that and retries on another port.
 *
 * ## coap-rd-notls 4.3.1 (examples/coap-rd.c): what it really does
 * - `POST /rd?<query>` with any payload → 2.01 Created, Location-Path `rd` + one segment:
 *   - `<h>` if `h=` is in the query (`<h>-<ins>` with `ins=`); re-POSTing the same `h` replaces the old
 *     entry (server logs `WARN coap_add_resource: Duplicate uri_path 'rd/x', old resource deleted`);
 *   - else `<mid>-<ticks>` in hex, e.g. `rd/8901-2a6` (request message id, no leading zeros; ticks).
 *   `ep`, `lt`, `lwm2m`, `b`, `d`, `et` are IGNORED (no endpoint name stored, no lifetime expiry). `rt=` and
 *   `ins=` become link attributes; every entry gets `A=""` (source address is a FIXME for IPv4).
 * - `GET /rd/<loc>` → 2.05, Content-Format 40, the exact registration payload (`lookup()`), 4.04 when
 *   unknown. A body sent block-wise (Block1, i.e. > 1024 bytes) is answered 2.01 but only its first
 *   1024-byte block is stored.
 * - `POST /rd/<loc>` (LwM2M Update) → 4.05 Method Not Allowed. `PUT /rd/<loc>` → 5.01 Not Implemented.
 * - `DELETE /rd/<loc>` → the process ABORTS (`free(): double free detected in tcache 2`, SIGABRT; the
 *   handler frees the entry and then coap_delete_resource() frees it again via the release-userdata
 *   handler). No response is sent; the client sees ICMP refused and times out. Every entry is lost.
 * - `GET /rd` → 2.05 with an empty link-format body (Max-Age 196607). `/rd-lookup/ep`, `/rd-lookup/res`
 *   → 4.04: there is no lookup interface. The only listing is `GET /.well-known/core`:
 *   `</rd>;ins="default";rt="core.rd";ct=40,</rd/8901-2a6>;A="",</rd/node2-i1>;A="";ins="i1"`,
 *   silently cut at one datagram (1144 bytes of payload, mid-link, no Block2 even when asked with -b).
 *   `registrations()` parses that (and optionally GETs each entry's payload) and throws when it is full.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where the libcoap tools live (override with LIBCOAP_BIN_DIR). */
export const LIBCOAP_BIN_DIR = process.env.LIBCOAP_BIN_DIR ?? '/usr/bin';
export const COAP_CLIENT_BIN = path.join(LIBCOAP_BIN_DIR, 'coap-client-notls');
export const COAP_SERVER_BIN = path.join(LIBCOAP_BIN_DIR, 'coap-server-notls');
export const COAP_RD_BIN = path.join(LIBCOAP_BIN_DIR, 'coap-rd-notls');
const STDBUF_BIN = '/usr/bin/stdbuf';

/** True when coap-client-notls exists. Tests must FAIL (not skip) without it: CI installs libcoap3-bin. */
export const LIBCOAP_AVAILABLE: boolean = fs.existsSync(COAP_CLIENT_BIN);

const HOST = '127.0.0.1';
const DEFAULT_TIMEOUT_SECONDS = 10;
const MAX_CAPTURE = 1 << 20;

// ---------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------

export type CoapMethod = 'get' | 'post' | 'put' | 'delete' | 'fetch' | 'patch' | 'ipatch';

export interface CoapClientOptions {
  method?: CoapMethod;
  /** -A */
  accept?: number;
  /** -t */
  contentFormat?: number;
  /** Sent via a temp file (-f) so binary payloads survive. */
  payload?: Buffer | string;
  /** -s <duration>: observe for that long (counted from the first response), collecting every notification. */
  observeSeconds?: number;
  /** -b: Block1/Block2 size (16..1024, power of two). */
  blockSize?: number;
  /** -N */
  nonConfirmable?: boolean;
  /**
   * -T: the *initial* token, as the bytes of this text (not hex); coap-client 4.3.1 increments its last
   * byte before the first request ('tk' sends 'tl').
   */
  token?: string;
  /** -O num,value. Numbers are sent as minimal big-endian uints, Buffers as hex; strings as text. */
  options?: Array<[number, Buffer | string | number]>;
  /** -B: how long coap-client waits for the (first) response. Default 10 s. */
  timeoutSeconds?: number;
  /** -U: do not add Uri-Host / Uri-Port options. */
  noUriHostPort?: boolean;
  /** coap-client -v level; 6 (default) or 7 (also logs every datagram). */
  verbosity?: 6 | 7;
  /** Stops the client (SIGINT, then SIGKILL) e.g. to end an open-ended observation early. */
  signal?: AbortSignal;
  /** Called for every complete response as it arrives (payload decoded from the log line alone). */
  onResponse?: (response: CoapClientResponse) => void;
  extraArgs?: string[];
}

export interface CoapOptionValue {
  number: number;
  value: Buffer;
  /** libcoap's name for the option ('Uri-Path', 'Content-Format', or the number as text). */
  name?: string;
  /** The value as libcoap printed it. */
  text?: string;
}

export interface CoapClientResponse {
  /** '2.05', '4.04', ... */
  code: string;
  payload: Buffer;
  contentFormat?: number;
  observe?: number;
  options: CoapOptionValue[];
  /** Of the (first) PDU: 'CON' | 'NON' | 'ACK' | 'RST'. */
  type: string;
  messageId: number;
  token: Buffer;
  /** Number of Block2 blocks the payload was assembled from (1 when not block-wise). */
  blocks: number;
  /** The payload may be incomplete (a cut-off log line the -o file could not fill in, or missing blocks). */
  truncated: boolean;
}

export interface CoapClientResult {
  responses: CoapClientResponse[];
  stderr: string;
  exitCode: number | null;
  /** Set when the process ended on a signal (e.g. killed by the harness). */
  signal: NodeJS.Signals | null;
  stdout: string;
  /** Every PDU line found in the log, requests included. */
  pdus: LoggedPdu[];
  /** coap-client gave up waiting (-B expired): it logs INFO "timeout" and still exits 0. */
  timedOut: boolean;
  /** coap-client received an RST (stderr "got RST"). */
  reset: boolean;
  /** An ICMP port unreachable was reported (nobody listening). */
  connectionRefused: boolean;
  /** The harness had to stop the process (time limit or abort signal). */
  killed: boolean;
  /** The command line that was run (for failure messages). */
  command: string[];
}

export interface LoggedPdu {
  /** 'sent'/'received' when the log says so (-v 7) or the code makes it clear (method = sent). */
  direction: 'sent' | 'received' | 'app' | 'unknown';
  type: string;
  /** Method name ('GET', 'iPATCH'), response code ('2.05') or '0.00'. */
  code: string;
  messageId: number;
  token: Buffer;
  options: CoapOptionValue[];
  payload: Buffer;
  payloadFormat: 'none' | 'text' | 'binary';
  /** Display form of a text payload (between the quotes), used to align with the -o file. */
  payloadText?: string;
  /** Declared length of a binary payload. */
  payloadLength?: number;
  payloadTruncated: boolean;
  /** The log lines this PDU was parsed from. */
  lines: string[];
}

// ---------------------------------------------------------------------------------------------------
// libcoap's names (coap_debug.c) and value formats
// ---------------------------------------------------------------------------------------------------

const OPTION_NUMBERS: Record<string, number> = {
  'If-Match': 1,
  'Uri-Host': 3,
  ETag: 4,
  'If-None-Match': 5,
  Observe: 6,
  'Uri-Port': 7,
  'Location-Path': 8,
  Oscore: 9,
  'Uri-Path': 11,
  'Content-Format': 12,
  'Content-Type': 12,
  'Max-Age': 14,
  'Uri-Query': 15,
  'Hop-Limit': 16,
  Accept: 17,
  'Q-Block1': 19,
  'Location-Query': 20,
  Block2: 23,
  Block1: 27,
  Size2: 28,
  'Q-Block2': 31,
  'Proxy-Uri': 35,
  'Proxy-Scheme': 39,
  Size1: 60,
  Echo: 252,
  'No-Response': 258,
  'Request-Tag': 292,
};

/** Media type names printed by libcoap for Content-Format / Accept (others are printed as numbers). */
export const LIBCOAP_CONTENT_FORMAT_NAMES: Record<string, number> = {
  'text/plain': 0,
  'application/cose; cose-type="cose-encrypt0"': 16,
  'application/cose; cose-type="cose-mac0"': 17,
  'application/cose; cose-type="cose-sign1"': 18,
  'application/ace+cbor': 19,
  'application/link-format': 40,
  'application/xml': 41,
  'application/octet-stream': 42,
  'application/rdf+xml': 43,
  'application/exi': 47,
  'application/json': 50,
  'application/cbor': 60,
  'application/cwt': 61,
  'application/dcaf+cbor': 75,
  'application/cose; cose-type="cose-encrypt"': 96,
  'application/cose; cose-type="cose-mac"': 97,
  'application/cose; cose-type="cose-sign"': 98,
  'application/cose-key': 101,
  'application/cose-key-set': 102,
  'application/senml+json': 110,
  'application/sensml+json': 111,
  'application/senml+cbor': 112,
  'application/sensml+cbor': 113,
  'application/senml-exi': 114,
  'application/sensml-exi': 115,
  'application/coap-group+json': 256,
  'application/dots+cbor': 271,
  'application/missing-blocks+cbor-seq': 272,
  'application/senml+xml': 310,
  'application/sensml+xml': 311,
  'application/oscore': 10001,
};

const UINT_OPTIONS = new Set([6, 7, 14, 16, 28, 60]);
const HEX_OPTIONS = new Set([1, 4, 252, 258, 292]);
const BLOCK_OPTIONS = new Set([19, 23, 27, 31]);
const MEDIA_TYPE_OPTIONS = new Set([12, 17]);
const OPTION_SPLIT = new RegExp(
  `,(?= (?:${Object.keys(OPTION_NUMBERS)
    .map((n) => n.replace(/[-+]/g, '\\$&'))
    .join('|')}|\\d+):)`,
);

function encodeUint(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0) throw new Error(`not an unsigned integer: ${value}`);
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
}

function decodeUint(value: Buffer): number {
  let n = 0;
  for (const b of value) n = n * 256 + b;
  return n;
}

/** Reverses libcoap's print_readable(): `\xHH` (upper-case hex) is a byte, anything else is itself. */
export function decodeReadable(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === 'x' && /^[0-9A-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      out.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else {
      out.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(out);
}

function parseMediaType(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  return LIBCOAP_CONTENT_FORMAT_NAMES[text];
}

function parseOptionValue(num: number, text: string): Buffer {
  if (MEDIA_TYPE_OPTIONS.has(num)) {
    const cf = parseMediaType(text);
    return cf === undefined ? Buffer.from(text, 'latin1') : encodeUint(cf);
  }
  if (BLOCK_OPTIONS.has(num)) {
    const m = /^(\d+)\/([M_])\/(?:(\d+)|BERT.*)$/.exec(text);
    if (m) {
      const szx = m[3] === undefined ? 7 : Math.log2(Number(m[3])) - 4;
      return encodeUint(Number(m[1]) * 16 + (m[2] === 'M' ? 8 : 0) + szx);
    }
  }
  if (UINT_OPTIONS.has(num) && /^\d*$/.test(text)) return text === '' ? Buffer.alloc(0) : encodeUint(Number(text));
  if (HEX_OPTIONS.has(num) && /^0x(?:[0-9a-fA-F]{2})*$/.test(text)) return Buffer.from(text.slice(2), 'hex');
  if (num === 258 && /^\d+$/.test(text)) return encodeUint(Number(text));
  return decodeReadable(text);
}

function parseOptions(text: string): CoapOptionValue[] {
  if (text.trim() === '') return [];
  const result: CoapOptionValue[] = [];
  for (const part of text.split(OPTION_SPLIT)) {
    const item = part.startsWith(' ') ? part.slice(1) : part;
    const colon = item.indexOf(':');
    if (colon < 0) continue; // tolerate garbage (e.g. a cut-off line)
    const name = item.slice(0, colon);
    const valueText = item.slice(colon + 1);
    const num = OPTION_NUMBERS[name] ?? (/^\d+$/.test(name) ? Number(name) : undefined);
    if (num === undefined) continue;
    result.push({ number: num, name, text: valueText, value: parseOptionValue(num, valueText) });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Log parser
// ---------------------------------------------------------------------------------------------------

const PDU_LINE = new RegExp(
  '^(?:[A-Z][a-z]{2} +\\d+ [\\d:.]+ [A-Z]{3,4} +)?' + // optional "Nov 25 14:10:51.242 DEBG " prefix
    'v:1 t:(CON|NON|ACK|RST|\\?\\?\\?) c:(\\S+) i:([0-9a-fA-F]{1,4}) \\{([0-9a-fA-F]*)\\} \\[(.*)$',
);
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'FETCH', 'PATCH', 'iPATCH']);

/**
 * Incremental parser for coap-client -v 6 / -v 7 output. Unknown lines are ignored; PDU lines become
 * `LoggedPdu`s (a binary payload's `<<hex>>` line is attached to the PDU line before it).
 */
export class CoapClientLogParser {
  readonly pdus: LoggedPdu[] = [];
  timedOut = false;
  connectionRefused = false;
  private direction: LoggedPdu['direction'] | undefined;
  private datagramLogging = false;
  private awaitingHex: LoggedPdu | undefined;
  private awaitingCharView = false;

  constructor(private readonly onPdu?: (pdu: LoggedPdu) => void) {}

  push(rawLine: string): void {
    const line = rawLine.replace(/\r$/, '');
    if (this.awaitingHex) {
      const pdu = this.awaitingHex;
      this.awaitingHex = undefined;
      const m = /^<<([0-9a-fA-F]*)(>>)?$/.exec(line);
      if (m) {
        const hex = m[1].length % 2 ? m[1].slice(0, -1) : m[1];
        pdu.payload = Buffer.from(hex, 'hex');
        pdu.payloadTruncated = !m[2] || pdu.payload.length !== pdu.payloadLength;
        pdu.lines.push(line);
        this.awaitingCharView = true;
        this.emit(pdu);
        return;
      }
      pdu.payloadTruncated = true;
      this.emit(pdu);
    }
    if (this.awaitingCharView) {
      this.awaitingCharView = false;
      if (line.startsWith('<<')) return;
    }
    const m = PDU_LINE.exec(line);
    if (!m) {
      if (/\breceived \d+ bytes$/.test(line)) this.direction = 'received';
      else if (/\bsent \d+ bytes$/.test(line)) this.direction = 'sent';
      else if (/PDU presented by app|app version of/.test(line)) this.direction = 'app';
      else this.direction = undefined;
      // -v 7 logs each datagram after "sent/received N bytes"; any other PDU line there is an app-level
      // copy ("PDU presented by app", "Client app version of updated PDU") and must not count twice.
      if (this.direction === 'sent' || this.direction === 'received') this.datagramLogging = true;
      if (/ INFO +timeout$/.test(line)) this.timedOut = true;
      if (/ICMP: Connection refused/.test(line)) this.connectionRefused = true;
      return;
    }
    const [, type, code, mid, token, rest] = m;
    const split = splitRest(rest);
    const pdu: LoggedPdu = {
      direction: this.direction ?? this.inferDirection(code),
      type,
      code,
      messageId: parseInt(mid, 16),
      token: Buffer.from(token.length % 2 ? token.slice(0, -1) : token, 'hex'),
      options: parseOptions(split.options),
      payload: Buffer.alloc(0),
      payloadFormat: 'none',
      payloadTruncated: split.truncated,
      lines: [line],
    };
    this.direction = undefined;
    if (split.binaryLength !== undefined) {
      pdu.payloadFormat = 'binary';
      pdu.payloadLength = split.binaryLength;
      this.awaitingHex = pdu;
      return;
    }
    if (split.text !== undefined) {
      pdu.payloadFormat = 'text';
      pdu.payloadText = split.text;
      pdu.payload = decodeReadable(split.text);
      // A line this long was probably cut off by libcoap's ~2056-byte debug buffer.
      if (line.length >= 2040) pdu.payloadTruncated = true;
    }
    this.emit(pdu);
  }

  private inferDirection(code: string): LoggedPdu['direction'] {
    if (this.datagramLogging) return 'app';
    if (METHODS.has(code)) return 'sent';
    return /^[1-7]\.\d\d$/.test(code) ? 'received' : 'unknown';
  }

  /** Call at the end of the output (flushes a binary PDU whose hex line never came). */
  end(): void {
    if (this.awaitingHex) {
      this.awaitingHex.payloadTruncated = true;
      this.emit(this.awaitingHex);
      this.awaitingHex = undefined;
    }
  }

  private emit(pdu: LoggedPdu): void {
    this.pdus.push(pdu);
    this.onPdu?.(pdu);
  }
}

function splitRest(rest: string): { options: string; text?: string; binaryLength?: number; truncated: boolean } {
  if (rest === ' ]') return { options: '', truncated: false };
  const binary = /^(.*) \] :: binary data length (\d+)$/.exec(rest);
  if (binary) return { options: binary[1], binaryLength: Number(binary[2]), truncated: false };
  const marker = rest.indexOf(" ] :: '");
  if (marker >= 0) {
    const body = rest.slice(marker + 7);
    const closed = body.endsWith("'");
    return { options: rest.slice(0, marker), text: closed ? body.slice(0, -1) : body, truncated: !closed };
  }
  if (rest.endsWith(' ]')) return { options: rest.slice(0, -2), truncated: false };
  return { options: rest, truncated: true };
}

/** Parses a whole coap-client log (stdout). */
export function parseCoapClientLog(stdout: string): CoapClientLogParser {
  const parser = new CoapClientLogParser();
  for (const line of stdout.split('\n')) parser.push(line);
  parser.end();
  return parser;
}

/** A key identifying a received response PDU (class 2..5, not 2.31 Continue), or undefined for anything else. */
function responseKey(pdu: LoggedPdu): string | undefined {
  if (pdu.direction === 'sent' || pdu.direction === 'app') return undefined;
  if (!/^[2-5]\.\d\d$/.test(pdu.code) || pdu.code === '2.31') return undefined;
  return `${pdu.type} ${pdu.messageId} ${pdu.lines[0]}`;
}

/** PDUs that are responses the client received: class 2..5, not 2.31 Continue, without -v 7 duplicates. */
export function receivedResponsePdus(pdus: LoggedPdu[]): LoggedPdu[] {
  const seen = new Set<string>();
  const out: LoggedPdu[] = [];
  for (const pdu of pdus) {
    const key = responseKey(pdu);
    if (key === undefined || seen.has(key)) continue; // not a response, or a retransmission logged again at -v 7
    seen.add(key);
    out.push(pdu);
  }
  return out;
}

function blockOf(pdu: LoggedPdu): { num: number; more: boolean; size?: number } | undefined {
  const opt = pdu.options.find((o) => o.number === 23);
  if (!opt) return undefined;
  const v = decodeUint(opt.value);
  const szx = v & 7;
  return { num: v >> 4, more: (v & 8) !== 0, size: szx === 7 ? undefined : 1 << (szx + 4) };
}

function toResponse(pdus: LoggedPdu[], complete: boolean): CoapClientResponse {
  const first = pdus[0];
  const last = pdus[pdus.length - 1];
  const cf = first.options.find((o) => o.number === 12);
  const obs = first.options.find((o) => o.number === 6);
  return {
    code: last.code,
    payload: Buffer.concat(pdus.map((p) => p.payload)),
    contentFormat: cf ? decodeUint(cf.value) : undefined,
    observe: obs ? decodeUint(obs.value) : undefined,
    options: first.options,
    type: first.type,
    messageId: first.messageId,
    token: first.token,
    blocks: pdus.length,
    truncated: !complete || pdus.some((p) => p.payloadTruncated),
  };
}

/** Joins Block2 blocks (num 0..n, last without M) into one response; everything else passes through. */
export class ResponseAssembler {
  private pending: LoggedPdu[] = [];

  constructor(private readonly out: (response: CoapClientResponse) => void) {}

  add(pdu: LoggedPdu): void {
    const block = blockOf(pdu);
    if (!block) {
      this.flush();
      this.out(toResponse([pdu], true));
      return;
    }
    if (block.num === 0) this.flush();
    else if (this.pending.length === 0 || blockOf(this.pending[this.pending.length - 1])?.num !== block.num - 1) {
      this.flush();
      this.out(toResponse([pdu], false)); // a block out of sequence: report it as it is
      return;
    }
    this.pending.push(pdu);
    if (!block.more) {
      const blocks = this.pending;
      this.pending = [];
      this.out(toResponse(blocks, true));
    }
  }

  /** Emits an unfinished block sequence (marked truncated). */
  flush(): void {
    if (this.pending.length) {
      const blocks = this.pending;
      this.pending = [];
      this.out(toResponse(blocks, false));
    }
  }
}

export function assembleResponses(pdus: LoggedPdu[]): CoapClientResponse[] {
  const responses: CoapClientResponse[] = [];
  const assembler = new ResponseAssembler((r) => responses.push(r));
  for (const pdu of receivedResponsePdus(pdus)) assembler.add(pdu);
  assembler.flush();
  return responses;
}

/**
 * Walks `display` (print_readable output) against `file` from `pos`; returns the end position, or
 * undefined when they disagree. Deterministic: a printable byte must appear as itself, any other byte
 * as `\xHH`. With `prefix`, `display` may stop early (cut-off log line).
 */
function walkReadable(display: string, file: Buffer, pos: number, prefix: boolean): number | undefined {
  let i = 0;
  let p = pos;
  while (i < display.length) {
    if (p >= file.length) return undefined;
    const b = file[p];
    if (b >= 0x20 && b <= 0x7e) {
      if (display.charCodeAt(i) !== b) return undefined;
      i += 1;
    } else {
      const escape = `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`;
      if (display.slice(i, i + 4) !== escape) return prefix && escape.startsWith(display.slice(i)) ? p : undefined;
      i += 4;
    }
    p += 1;
  }
  return p;
}

/**
 * Replaces the payloads of the received 2.xx PDUs by the exact bytes coap-client wrote to its -o file
 * (the 2.xx payloads concatenated in arrival order), after checking that each agrees with its log line.
 * Stops at the first disagreement; the remaining payloads keep their log-decoded value.
 */
export function alignPayloadsWithOutput(pdus: LoggedPdu[], file: Buffer): void {
  const candidates = receivedResponsePdus(pdus).filter((p) => p.code.startsWith('2.') && p.payloadFormat !== 'none');
  let pos = 0;
  for (let k = 0; k < candidates.length; k++) {
    const pdu = candidates[k];
    const isLast = k === candidates.length - 1;
    let end: number | undefined;
    if (pdu.payloadFormat === 'binary') {
      const length = pdu.payloadLength ?? pdu.payload.length;
      const slice = file.subarray(pos, pos + length);
      if (slice.length === length && slice.subarray(0, pdu.payload.length).equals(pdu.payload)) end = pos + length;
    } else if (pdu.payloadText !== undefined) {
      if (!pdu.payloadTruncated) end = walkReadable(pdu.payloadText, file, pos, false);
      else if (walkReadable(pdu.payloadText, file, pos, true) !== undefined) {
        const block = blockOf(pdu);
        if (isLast) end = file.length;
        else if (block?.more && block.size) end = pos + block.size <= file.length ? pos + block.size : undefined;
      }
    }
    if (end === undefined) return;
    pdu.payload = Buffer.from(file.subarray(pos, end));
    pdu.payloadTruncated = false;
    pos = end;
  }
}

// ---------------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of children) {
        try {
          c.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
}

function toolEnv(): NodeJS.ProcessEnv {
  // LIBC_FATAL_STDERR_: glibc's abort messages ("double free detected") go to stderr, not /dev/tty.
  return { ...process.env, LC_ALL: 'C', LIBC_FATAL_STDERR_: '1' };
}

function missing(binary: string): Error {
  return new Error(`${binary} not found: install Debian's libcoap3-bin (apt-get install libcoap3-bin)`);
}

function optionArg(num: number, value: Buffer | string | number): string {
  if (typeof value === 'number') value = encodeUint(value);
  if (typeof value === 'string' && !/^0[xX]/.test(value) && !value.includes('\0')) return `${num},${value}`;
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return bytes.length ? `${num},0x${bytes.toString('hex')}` : `${num},`;
}

/** Line splitter for a stream read as latin1 (one char per byte). */
function lineReader(onLine: (line: string) => void): { push(chunk: string): void; end(): void } {
  let rest = '';
  return {
    push(chunk) {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        onLine(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    },
    end() {
      if (rest) onLine(rest);
      rest = '';
    },
  };
}

/**
 * Runs coap-client-notls once against `uri` (e.g. 'coap://127.0.0.1:40000/3/0?pmin=1') and resolves
 * when it exits. Never hangs: SIGINT (then SIGKILL) after the -B wait + observe time + 5 s.
 */
export async function coapClient(uri: string, options: CoapClientOptions = {}): Promise<CoapClientResult> {
  if (!LIBCOAP_AVAILABLE) throw missing(COAP_CLIENT_BIN);
  const timeoutSeconds = Math.max(1, Math.ceil(options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS));
  const observeSeconds =
    options.observeSeconds === undefined ? undefined : Math.max(1, Math.ceil(options.observeSeconds));
  const waitSeconds = timeoutSeconds + (observeSeconds ?? 0);
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'libcoap-client-'));
  try {
    const outFile = path.join(dir, 'out');
    const args = ['-v', String(options.verbosity ?? 6), '-o', outFile, '-B', String(waitSeconds)];
    if (options.method) args.push('-m', options.method);
    if (options.accept !== undefined) args.push('-A', String(options.accept));
    if (options.contentFormat !== undefined) args.push('-t', String(options.contentFormat));
    if (options.payload !== undefined) {
      const payloadFile = path.join(dir, 'payload');
      await fs.promises.writeFile(payloadFile, options.payload);
      args.push('-f', payloadFile);
    }
    if (observeSeconds !== undefined) args.push('-s', String(observeSeconds));
    if (options.blockSize !== undefined) args.push('-b', String(options.blockSize));
    if (options.nonConfirmable) args.push('-N');
    if (options.token !== undefined) args.push('-T', options.token);
    for (const [num, value] of options.options ?? []) args.push('-O', optionArg(num, value));
    if (options.noUriHostPort) args.push('-U');
    args.push(...(options.extraArgs ?? []), uri);
    const command = fs.existsSync(STDBUF_BIN)
      ? [STDBUF_BIN, '-oL', '-eL', COAP_CLIENT_BIN, ...args]
      : [COAP_CLIENT_BIN, ...args];

    const assembler = options.onResponse ? new ResponseAssembler(options.onResponse) : undefined;
    const seen = new Set<string>();
    const parser = new CoapClientLogParser((pdu) => {
      const key = responseKey(pdu);
      if (!assembler || key === undefined || seen.has(key)) return;
      seen.add(key);
      assembler.add(pdu);
    });

    const { exitCode, signal, stdout, stderr, killed } = await new Promise<{
      exitCode: number | null;
      signal: NodeJS.Signals | null;
      stdout: string;
      stderr: string;
      killed: boolean;
    }>((resolve, reject) => {
      const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: toolEnv() });
      track(child);
      let out = '';
      let err = '';
      let killed = false;
      const lines = lineReader((line) => parser.push(line));
      child.stdout!.setEncoding('latin1');
      child.stderr!.setEncoding('latin1');
      child.stdout!.on('data', (chunk: string) => {
        if (out.length < MAX_CAPTURE * 8) out += chunk;
        lines.push(chunk);
      });
      child.stderr!.on('data', (chunk: string) => {
        if (err.length < MAX_CAPTURE) err += chunk;
      });
      let hardKill: NodeJS.Timeout | undefined;
      const stop = () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        killed = true;
        child.kill('SIGINT'); // coap-client quits its loop and flushes its output
        hardKill = setTimeout(() => child.kill('SIGKILL'), 2000);
      };
      const limit = setTimeout(stop, (waitSeconds + 5) * 1000);
      const onAbort = () => stop();
      if (options.signal?.aborted) setImmediate(stop);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      child.once('error', (e) => {
        clearTimeout(limit);
        options.signal?.removeEventListener('abort', onAbort);
        reject((e as NodeJS.ErrnoException).code === 'ENOENT' ? missing(command[0]) : e);
      });
      child.once('close', (code, sig) => {
        clearTimeout(limit);
        if (hardKill) clearTimeout(hardKill);
        options.signal?.removeEventListener('abort', onAbort);
        lines.end();
        parser.end();
        assembler?.flush();
        resolve({ exitCode: code, signal: sig, stdout: out, stderr: err, killed });
      });
    });

    let file = Buffer.alloc(0);
    try {
      file = await fs.promises.readFile(outFile);
    } catch {
      // no 2.xx payload was received
    }
    alignPayloadsWithOutput(parser.pdus, file);
    return {
      responses: assembleResponses(parser.pdus),
      stderr,
      exitCode,
      signal,
      stdout,
      pdus: parser.pdus,
      timedOut: parser.timedOut,
      reset: /got RST/.test(stderr) || /got RST/.test(stdout),
      connectionRefused: parser.connectionRefused,
      killed,
      command,
    };
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** The Location-Path options of a response joined with '/', e.g. 'rd/8901-2a6'. */
export function locationPath(response: CoapClientResponse): string {
  return response.options
    .filter((o) => o.number === 8)
    .map((o) => o.value.toString('utf8'))
    .join('/');
}

/** A port that is free for both UDP and TCP on 127.0.0.1 right now (libcoap servers bind both). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, HOST, () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, HOST, () => server.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
  throw new Error('no free UDP+TCP port found on 127.0.0.1');
}

/** Sends a CON GET /.well-known/core every 100 ms until something answers with the same message id. */
function waitForCoap(port: number, child: ChildProcess, timeoutMs: number): Promise<'ready' | 'exited' | 'timeout'> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const mids = new Set<number>();
    let done = false;
    const finish = (result: 'ready' | 'exited' | 'timeout') => {
      if (done) return;
      done = true;
      clearInterval(interval);
      clearTimeout(timer);
      child.off('exit', onExit);
      socket.close();
      resolve(result);
    };
    const onExit = () => finish('exited');
    child.once('exit', onExit);
    socket.on('message', (msg) => {
      if (msg.length >= 4 && mids.has(msg.readUInt16BE(2))) finish('ready');
    });
    socket.on('error', () => undefined); // ICMP refused while the server is starting
    const send = () => {
      const mid = Math.floor(Math.random() * 0x10000);
      mids.add(mid);
      // ver 1, CON, TKL 0, GET, mid, Uri-Path ".well-known" (delta 11, len 11), Uri-Path "core"
      const packet = Buffer.concat([
        Buffer.from([0x40, 0x01, mid >> 8, mid & 0xff, 0xbb]),
        Buffer.from('.well-known'),
        Buffer.from([0x04]),
        Buffer.from('core'),
      ]);
      socket.send(packet, port, HOST, () => undefined);
    };
    const interval = setInterval(send, 100);
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    if (child.exitCode !== null || child.signalCode !== null) finish('exited');
    else socket.bind(0, HOST, send);
  });
}

export interface LibcoapProcess {
  port: number;
  /** 'coap://127.0.0.1:<port>' */
  uri: string;
  pid: number | undefined;
  /** False once the process has exited (e.g. coap-rd 4.3.1 after a DELETE). */
  readonly running: boolean;
  /** Resolves when the process exits. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything the process wrote to stdout and stderr so far (capped at 1 MiB). */
  output(): string;
  /** Kills the process (SIGTERM, SIGKILL after 2 s) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

const BIND_FAILURE = /Address already in use|cannot create (?:UDP|TCP) endpoint|cannot create endpoint/i;

/** Starts a libcoap server tool on a free port of 127.0.0.1 and resolves once it answers CoAP requests. */
export async function startTool(binary: string, extraArgs: string[] = []): Promise<LibcoapProcess> {
  if (!fs.existsSync(binary)) throw missing(binary);
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn(binary, ['-A', HOST, '-p', String(port), ...extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: toolEnv(),
    });
    track(child);
    let output = '';
    const capture = (chunk: string) => {
      output += chunk;
      if (output.length > MAX_CAPTURE) output = output.slice(-MAX_CAPTURE);
    };
    child.stdout!.setEncoding('latin1');
    child.stderr!.setEncoding('latin1');
    child.stdout!.on('data', capture);
    child.stderr!.on('data', capture);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const state = await Promise.race([waitForCoap(port, child, 5000), spawnError]);
    if (state instanceof Error) throw state;
    if (state === 'ready') await new Promise((r) => setTimeout(r, 50)); // let a bind error reach us
    const running = () => child.exitCode === null && child.signalCode === null;
    const stop = async (): Promise<void> => {
      if (running()) {
        child.kill('SIGTERM');
        const hard = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exit;
        clearTimeout(hard);
      }
    };
    if (state === 'ready' && running() && !BIND_FAILURE.test(output)) {
      return {
        port,
        uri: `coap://${HOST}:${port}`,
        pid: child.pid,
        get running() {
          return running();
        },
        exit,
        output: () => output,
        stop,
      };
    }
    await stop();
    const how = running() ? '' : ` (exit ${JSON.stringify(await exit)})`;
    lastError = `${path.basename(binary)} on port ${port}: ${state}${how}\n${output}`;
    if (!BIND_FAILURE.test(output)) break; // not a port race: retrying will not help
  }
  throw new Error(`could not start ${binary}: ${lastError}`);
}

/** Starts coap-server-notls (libcoap's example server: /, /time (observable), /async, /example_data). */
export function startCoapServer(extraArgs: string[] = []): Promise<LibcoapProcess> {
  return startTool(COAP_SERVER_BIN, extraArgs);
}

// ---------------------------------------------------------------------------------------------------
// coap-rd
// ---------------------------------------------------------------------------------------------------

export interface LinkFormatEntry {
  /** The target without the angle brackets, e.g. '/rd/8901-2a6'. */
  target: string;
  /** Attribute values without quotes; a flag attribute (e.g. 'obs') maps to ''. */
  attributes: Record<string, string>;
  /** The link as it appeared. */
  raw: string;
}

/** Splits RFC 6690 link-format on commas outside quotes and angle brackets. */
export function parseLinkFormat(text: string): LinkFormatEntry[] {
  const links: string[] = [];
  let current = '';
  let quoted = false;
  let inTarget = false;
  for (const ch of text) {
    if (ch === '"' && !inTarget) quoted = !quoted;
    else if (ch === '<' && !quoted) inTarget = true;
    else if (ch === '>' && !quoted) inTarget = false;
    if (ch === ',' && !quoted && !inTarget) {
      links.push(current);
      current = '';
    } else current += ch;
  }
  if (current.trim()) links.push(current);
  const result: LinkFormatEntry[] = [];
  for (const link of links) {
    const raw = link.trim();
    const m = /^<([^>]*)>(.*)$/s.exec(raw);
    if (!m) continue;
    const attributes: Record<string, string> = {};
    for (const param of splitParams(m[2])) {
      const eq = param.indexOf('=');
      if (eq < 0) attributes[param.trim()] = '';
      else attributes[param.slice(0, eq).trim()] = param.slice(eq + 1).trim().replace(/^"(.*)"$/s, '$1');
    }
    result.push({ target: m[1], attributes, raw });
  }
  return result;
}

function splitParams(text: string): string[] {
  const params: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === ';' && !quoted) {
      if (current.trim()) params.push(current);
      current = '';
    } else current += ch;
  }
  if (current.trim()) params.push(current);
  return params;
}

export interface RdRegistration {
  /** The `ep` attribute when the RD keeps one (coap-rd 4.3.1 does not: undefined there). */
  endpoint?: string;
  /** Without leading slash, as in Location-Path: 'rd/8901-2a6'. */
  location: string;
  /** The link from /.well-known/core, e.g. '</rd/8901-2a6>;A=""'. */
  raw: string;
  attributes: Record<string, string>;
  /** The registered link-format body (GET /rd/<loc>), only with `{ payload: true }`. */
  payload?: string;
}

export interface CoapRd extends LibcoapProcess {
  /**
   * The entries currently registered, from GET /.well-known/core (coap-rd 4.3.1 has no /rd-lookup).
   * Throws when coap-rd is no longer running (4.3.1 aborts on DELETE /rd/<loc>) and when the listing
   * filled a whole datagram (4.3.1 cuts /.well-known/core at 1144 bytes, ~50 short entries, without
   * Block2): use `lookup()` then.
   */
  registrations(options?: { payload?: boolean }): Promise<RdRegistration[]>;
  /** The registered link-format body of one entry ('rd/8901-2a6'), or undefined when it answers 4.04. */
  lookup(location: string): Promise<string | undefined>;
}

/** Starts coap-rd-notls (CoRE resource directory) on a free port of 127.0.0.1. */
export async function startCoapRd(extraArgs: string[] = []): Promise<CoapRd> {
  const rd = await startTool(COAP_RD_BIN, extraArgs);
  const ensureRunning = async () => {
    if (!rd.running) {
      const { code, signal } = await rd.exit;
      throw new Error(
        `coap-rd is not running (exit code ${code}, signal ${signal}); note that coap-rd 4.3.1 aborts ` +
          `(double free) on DELETE /rd/<location>. Its output:\n${rd.output()}`,
      );
    }
  };
  const registrations = async (options: { payload?: boolean } = {}): Promise<RdRegistration[]> => {
    await ensureRunning();
    const result = await coapClient(`${rd.uri}/.well-known/core`, { timeoutSeconds: 5 });
    const response = result.responses[result.responses.length - 1];
    if (!response || response.code !== '2.05') {
      await ensureRunning();
      const code = response?.code ?? 'no response';
      throw new Error(`GET /.well-known/core on coap-rd failed: ${code}\n${result.stdout}${result.stderr}`);
    }
    if (response.payload.length >= 1100 && response.blocks === 1) {
      throw new Error(
        `coap-rd's /.well-known/core filled a whole datagram (${response.payload.length} bytes): libcoap 4.3.1 ` +
          `cuts it there without Block2, so the list is incomplete; register fewer entries or use lookup()`,
      );
    }
    const entries: RdRegistration[] = parseLinkFormat(response.payload.toString('utf8'))
      .filter((link) => /^\/rd\/./.test(link.target))
      .map((link) => ({
        endpoint: link.attributes.ep,
        location: link.target.replace(/^\//, ''),
        raw: link.raw,
        attributes: link.attributes,
      }));
    if (options.payload) {
      for (const entry of entries) entry.payload = await lookup(entry.location);
    }
    return entries;
  };
  const lookup = async (location: string): Promise<string | undefined> => {
    await ensureRunning();
    const result = await coapClient(`${rd.uri}/${location.replace(/^\//, '')}`, { timeoutSeconds: 5 });
    const response = result.responses[result.responses.length - 1];
    if (response?.code === '2.05') return response.payload.toString('utf8');
    if (response?.code === '4.04') return undefined;
    await ensureRunning();
    const code = response?.code ?? 'no response';
    throw new Error(`GET /${location} on coap-rd failed: ${code}\n${result.stdout}${result.stderr}`);
  };
  return Object.defineProperties({ registrations, lookup }, Object.getOwnPropertyDescriptors(rd)) as CoapRd;
}
