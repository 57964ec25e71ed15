/**
 * The public API of the LwM2M core: paths, the object model and the content-format codecs.
 * Nothing here knows about Node-RED.
 */
export { LwM2MPath, PathError, parsePath, formatPath, comparePaths, pathContains, MAX_ID, type PathLevel } from './path';
export * from './model';
export * from './content';
export * from './client';
export * from './transport';
export * from './server';
export * from './bootstrap';
export { FIRMWARE_RESULT_NAMES, FIRMWARE_PROTOCOLS, type LwM2MVersion, type NotificationAttributes } from './protocol';
