/**
 * A node's typedInput settings, read per message. A literal setting (type `str`, or one of the
 * node's option lists) wins unless it is empty, then `msg.<name>` is used (DESIGN.md, message
 * contract); `msg`, `flow`, `global`, `env` and `jsonata` settings are looked up by Node-RED.
 */
import type { Node, NodeDef, NodeMessage, Red } from './red';

const LOOKED_UP = new Set(['msg', 'flow', 'global', 'env', 'jsonata']);

/** Content formats by the names the editor offers. */
const FORMATS: Record<string, number | undefined> = {
  auto: undefined,
  text: 0,
  opaque: 42,
  'senml-json': 110,
  'senml-cbor': 112,
  tlv: 11542,
  'oma-json': 11543,
  'lwm2m-cbor': 11544,
};
const FORMAT_NUMBERS = new Set(Object.values(FORMATS).filter((format) => format !== undefined));

export class Settings {
  constructor(
    private readonly red: Red,
    private readonly node: Node,
    private readonly config: NodeDef,
  ) {}

  /** The setting's value for this message; undefined when neither the node nor the message has one. */
  async value(msg: NodeMessage, name: string): Promise<unknown> {
    const type = this.typeOf(name);
    const setting = this.config[name];
    if (!LOOKED_UP.has(type)) return setting !== undefined && setting !== '' ? setting : msg[name];
    return this.evaluate(String(setting ?? ''), type, msg);
  }

  /**
   * A typedInput of any type (msg, flow, global, str, num, bool, json, bin, env, jsonata), evaluated
   * by Node-RED as its core nodes do; a node saved before the setting existed reads `fallback`.
   */
  async typed(msg: NodeMessage, name: string, fallback: { type: string; value: string }): Promise<unknown> {
    const saved = this.config[`${name}Type`] !== undefined;
    const type = saved ? String(this.config[`${name}Type`]) : fallback.type;
    const setting = saved ? String(this.config[name] ?? '') : fallback.value;
    return this.evaluate(setting, type, msg);
  }

  /** Node-RED's own evaluation of a typedInput, as a promise. */
  private evaluate(setting: string, type: string, msg: NodeMessage): Promise<unknown> {
    return new Promise((resolve, reject) => {
      try {
        this.red.util.evaluateNodeProperty(setting, type, this.node, msg, (error, result) => (error ? reject(error) : resolve(result)));
      } catch (error) {
        reject(error);
      }
    });
  }

  /** A setting that must be a non-empty text, such as the endpoint. */
  async text(msg: NodeMessage, name: string): Promise<string> {
    const value = await this.value(msg, name);
    if (value === undefined || value === null || value === '') throw new Error(`no ${name}: ${this.emptyHint(name)}`);
    if (typeof value === 'object') throw new Error(`${name} must be text, not ${Array.isArray(value) ? 'an array' : 'an object'} (from ${this.source(name)})`);
    return String(value);
  }

  /**
   * The device(s) to act on: one endpoint name, or a fleet (a pattern with `*`, a list). See
   * targetOf; errors name where the setting came from.
   */
  async target(msg: NodeMessage, name = 'endpoint'): Promise<Target> {
    const value = await this.value(msg, name);
    if (value === undefined || value === null || value === '') throw new Error(`no ${name}: ${this.emptyHint(name)}`);
    return targetOf(value, this.source(name));
  }

  /**
   * A number of at least `min` from the node, else the message; undefined when neither has one
   * (the caller's default applies). For the fleet settings: concurrency, ttl.
   */
  async number(msg: NodeMessage, name: string, min: number): Promise<number | undefined> {
    const value = await this.value(msg, name);
    if (value === undefined || value === null || value === '') return undefined;
    const number = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    if (!Number.isFinite(number) || number < min) throw new Error(`${name} must be a number of at least ${min}, not ${JSON.stringify(value)} (from ${this.source(name)})`);
    return number;
  }

  /** One or more paths: an array, or a comma-separated text. */
  async paths(msg: NodeMessage, name = 'path'): Promise<string[]> {
    const paths = pathsOf(await this.value(msg, name));
    if (paths.length === 0) throw new Error(`no ${name}: ${this.emptyHint(name)}`);
    return paths;
  }

  /** The content format: a name from FORMATS or its number; `auto` (or nothing) leaves it to the server. */
  async format(msg: NodeMessage): Promise<number | undefined> {
    return formatOf(await this.value(msg, 'format'));
  }

  /** One of `allowed`, or `fallback` when neither the node nor the message names one. */
  async choice<T extends string>(msg: NodeMessage, name: string, allowed: readonly T[], fallback: T): Promise<T> {
    const value = await this.value(msg, name);
    if (value === undefined || value === null || value === '') return fallback;
    if (!allowed.includes(value as T)) throw new Error(`${name} must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}`);
    return value as T;
  }

  /** Whether the setting is a literal (not looked up per message), as auto-observe needs. */
  isLiteral(name: string): boolean {
    return !LOOKED_UP.has(this.typeOf(name));
  }

  private typeOf(name: string): string {
    return String(this.config[`${name}Type`] || 'str');
  }

  /** Where the setting is read from, for error messages: `msg.device`, `flow.target`, ... */
  private source(name: string): string {
    const type = this.typeOf(name);
    if (!LOOKED_UP.has(type)) return `the node or msg.${name}`;
    if (type === 'jsonata') return 'the JSONata expression';
    return `${type}.${String(this.config[name] ?? '')}`;
  }

  private emptyHint(name: string): string {
    return LOOKED_UP.has(this.typeOf(name)) ? `${this.source(name)} is empty` : `set one on the node or in msg.${name}`;
  }
}

/** `msg.<name>` as a non-empty text, for settings a node does not offer. */
export function messageText(msg: NodeMessage, name: string): string {
  const value = msg[name];
  if (value === undefined || value === null || value === '' || typeof value === 'object') throw new Error(`no ${name}: set msg.${name}`);
  return String(value);
}

/**
 * Who a message is for: `one` device (a plain name: today's single-device behaviour), or a
 * `fleet`: `entries` are names or patterns with `*`, matched against the registrations when the
 * job starts. `label` is how the target reads in a topic or a status (`sim-*`, `a,b`).
 */
export type Target = { kind: 'one'; endpoint: string } | { kind: 'fleet'; entries: string[]; label: string };

/**
 * The endpoint setting as a target:
 * - an array (from msg, flow, global, JSONata) is a list, even of one name, so a flow that builds
 *   it gets the same messages (one per device and a summary) however many it holds;
 * - text starting with `[` is a JSON array of names (e.g. from an HTTP body);
 * - text with a comma is a list: `sim-1, sim-2` (names are trimmed; endpoint names in practice
 *   have no commas, and a name that has one can still be given in an array);
 * - text with `*` is a pattern (`sim-*`; `*` alone is every registered device);
 * - any other text is one device's name.
 * List entries may be patterns too (`sim-*, dev-1`).
 */
export function targetOf(value: unknown, source = 'the endpoint'): Target {
  if (Array.isArray(value)) return fleetOf(value, source);
  if (typeof value === 'object' && value !== null) throw new Error(`endpoint must be text or an array of names, not an object (from ${source})`);
  const text = String(value).trim();
  if (text.startsWith('[')) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch {
      throw new Error(`endpoint ${JSON.stringify(text)} starts with [ but is not a JSON array of names (from ${source})`);
    }
    if (!Array.isArray(list)) throw new Error(`endpoint ${JSON.stringify(text)} is not a JSON array of names (from ${source})`);
    return fleetOf(list, source);
  }
  if (text.includes(',')) return { kind: 'fleet', entries: text.split(',').map((entry) => entry.trim()).filter(Boolean), label: text };
  if (text.includes('*')) return { kind: 'fleet', entries: [text], label: text };
  if (text === '') throw new Error(`no endpoint: ${source} is empty`);
  return { kind: 'one', endpoint: text };
}

function fleetOf(list: unknown[], source: string): Target {
  const entries = list.map((entry) => {
    if (typeof entry !== 'string' && typeof entry !== 'number') throw new Error(`an endpoint list holds names, not ${JSON.stringify(entry)} (from ${source})`);
    return String(entry).trim();
  });
  return { kind: 'fleet', entries: entries.filter(Boolean), label: entries.join(',') };
}

/** Paths from a setting or a message: an array, or a comma-separated string. */
export function pathsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return value.split(',').map((path) => path.trim()).filter(Boolean);
  return [];
}

/** A content format by name (`senml-cbor`) or number (112); undefined for auto. */
export function formatOf(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '' || value === 'auto') return undefined;
  const format = typeof value === 'number' || /^\d+$/.test(String(value)) ? Number(value) : FORMATS[String(value)];
  if (format === undefined || !FORMAT_NUMBERS.has(format)) throw new Error(`unknown format ${JSON.stringify(value)}: use one of ${Object.keys(FORMATS).join(', ')} or its number`);
  return format;
}
