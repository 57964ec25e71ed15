export * from './types';
export { ModelError, parseDdf } from './ddf';
export { parseRangeEnumeration } from './range';
export { ObjectModel, defaultModel, type ResourceLookup, type FolderLoadResult } from './model';
