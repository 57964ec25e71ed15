/** Bytes from spaced hex as the specification prints them: `C8 00 14 4F ...`. */
export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`not hex: ${text}`);
  return Buffer.from(clean, 'hex');
}
