/**
 * Pre-shared keys as the nodes keep them: in the config node's credentials (never in the flow), as
 * hex, the way LwM2M tools show a PSK. Parsing gives clear errors for the editor's status.
 */
import type { PskCredential } from '../lib';

/** A key written as hex (`0x` optional, spaces and colons allowed). */
export function pskKey(text: unknown, whose: string): Buffer {
  const hex = String(text ?? '').trim().replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (hex === '' || hex.length % 2 !== 0 || !/^[0-9a-f]+$/i.test(hex)) throw new Error(`the PSK key of ${whose} must be hex, e.g. 73656372657431`);
  return Buffer.from(hex, 'hex');
}

/**
 * The server node's PSKs, as its credentials keep them: `psk` (text) lists the rows the editor shows,
 * `{ endpoint, identity }`; `pskKeys` (password, never sent to the editor) maps each identity to its
 * hex key; `pskChanges` (password) holds the keys typed in the editor since the last deploy, which
 * the node folds into `pskKeys`. Rows of older flows carry their key themselves; they still load,
 * and are folded the same way.
 */
export interface PskCredentials {
  psk?: string;
  pskKeys?: string;
  pskChanges?: string;
}

/**
 * The PSK table, and the credentials to keep: rows without keys, every key in `pskKeys`, no pending
 * changes. `where` names the editor's table, for the error of a row without a key.
 */
export function pskTable(credentials: PskCredentials, where = "the server node's Devices table"): { table: PskCredential[]; folded: PskCredentials } {
  const rows = parseJson(credentials.psk, [], 'the PSK table');
  if (!Array.isArray(rows)) throw new Error('the PSK table must be a list');
  const keys = keyMap(credentials.pskKeys, 'the stored PSK keys');
  const changes = keyMap(credentials.pskChanges, 'the PSK keys typed in the editor');
  const table = rows.map((row: { endpoint?: unknown; identity?: unknown; key?: unknown }, index) => {
    const endpoint = String(row?.endpoint ?? '').trim();
    if (!endpoint) throw new Error(`row ${index + 1} of the PSK table has no endpoint`);
    const identity = String(row.identity ?? '').trim() || endpoint;
    const text = changes[identity] ?? (row.key !== undefined && row.key !== '' ? row.key : undefined) ?? keys[identity];
    if (text === undefined) throw new Error(`the PSK of ${endpoint} (identity ${identity}) has no key: type it in ${where}`);
    return { endpoint, identity, key: pskKey(text, endpoint) };
  });
  const folded: PskCredentials = {
    psk: JSON.stringify(table.map(({ endpoint, identity }) => ({ endpoint, identity }))),
    pskKeys: JSON.stringify(Object.fromEntries(table.map(({ identity, key }) => [identity, key.toString('hex')]))),
  };
  return { table, folded };
}

function parseJson(text: unknown, empty: unknown, what: string): unknown {
  if (text === undefined || text === null || text === '') return empty;
  try {
    return JSON.parse(String(text));
  } catch {
    throw new Error(`${what} is not valid JSON`);
  }
}

function keyMap(text: unknown, what: string): Record<string, unknown> {
  const map = parseJson(text, {}, what);
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${what} must be an object of identity: key`);
  return map as Record<string, unknown>;
}
