import { formatName } from './formats';

/**
 * The one error every codec throws: a payload that does not decode, or a value that cannot be
 * encoded. `format` is the content format number, `reason` says what is wrong, `path` where.
 */
export class ContentFormatError extends Error {
  override readonly name = 'ContentFormatError';
  constructor(
    readonly format: number,
    readonly operation: 'encode' | 'decode',
    readonly reason: string,
    readonly path?: string,
  ) {
    super(`Cannot ${operation} ${formatName(format)}${path ? ` at ${path}` : ''}: ${reason}`);
  }
}
