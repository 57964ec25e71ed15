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

/** The config node's PSK table: a JSON list of `{ endpoint, identity, key }` rows. */
export function pskTable(json: unknown): PskCredential[] {
  if (json === undefined || json === null || json === '') return [];
  let rows: unknown;
  try {
    rows = JSON.parse(String(json));
  } catch {
    throw new Error('the PSK table is not valid JSON');
  }
  if (!Array.isArray(rows)) throw new Error('the PSK table must be a list');
  return rows.map((row: { endpoint?: unknown; identity?: unknown; key?: unknown }, index) => {
    const endpoint = String(row?.endpoint ?? '').trim();
    if (!endpoint) throw new Error(`row ${index + 1} of the PSK table has no endpoint`);
    const identity = String(row.identity ?? '').trim() || endpoint;
    return { endpoint, identity, key: pskKey(row.key, endpoint) };
  });
}
