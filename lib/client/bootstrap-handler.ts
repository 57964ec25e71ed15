/**
 * The client side of the Bootstrap interface's server-initiated operations: answers what a
 * bootstrap server sends after a Bootstrap-Request (Discover, Read, Delete, Write, Finish). Only
 * here may the Security object (0) be read in a Discover and written; the bootstrap account itself
 * is never deleted nor turned into a server account.
 */
import {
  ContentFormat,
  ContentFormatError,
  VALUE_FORMATS,
  canonicalFormat,
  decode,
  encode,
  encodeLinks,
  formatName,
  isIdMap,
  type LinkAttributeValue,
  type LwM2MValue,
} from '../content';
import { LwM2MPath, PathError } from '../path';
import type { IncomingRequest, OutgoingResponse } from '../transport/endpoint';
import { isBootstrapInstance, shortServerIdOf } from './accounts';
import type { AttributeStore } from './attributes';
import { badRequest, notAcceptable, notAllowed, notFound, unsupportedFormat } from './errors';
import { errorResponse, formatsOf, type LwM2MVersion } from './management';
import { objectList } from './object-list';
import type { InstanceSpec, ObjectTree } from './tree';

export interface BootstrapHandlerContext {
  tree: ObjectTree;
  attributes?: AttributeStore;
  version: LwM2MVersion;
  /** the format of a Bootstrap-Read without Accept */
  preferredFormat: number;
  /** on Bootstrap-Finish: why the configuration cannot be used, or undefined when it can */
  check(): string | undefined;
  /** once the answer to Bootstrap-Finish is sent: undefined when accepted (2.04), else the problem (4.06) */
  finished(problem: string | undefined): void;
}

/** Handles one request from the bootstrap server; never throws (every failure is an error response). */
export async function handleBootstrap(context: BootstrapHandlerContext, request: IncomingRequest): Promise<OutgoingResponse> {
  try {
    return await route(context, request);
  } catch (error) {
    return errorResponse(error);
  }
}

async function route(context: BootstrapHandlerContext, request: IncomingRequest): Promise<OutgoingResponse> {
  if (request.path.length === 1 && request.path[0] === 'bs') {
    if (request.method !== 'POST') throw notAllowed(`${request.method} /bs is not a bootstrap operation; Bootstrap-Finish is POST /bs`);
    return finish(context);
  }
  const path = parsePath(request);
  switch (request.method) {
    case 'GET':
      return request.accept === ContentFormat.LINK ? discover(context, path) : read(context, request, path);
    case 'PUT':
      return write(context, request, path);
    case 'DELETE':
      return remove(context, path);
    default:
      throw notAllowed(`${request.method} ${path} is not a bootstrap operation`);
  }
}

function parsePath(request: IncomingRequest): LwM2MPath {
  if (request.path.length === 0) return LwM2MPath.ROOT;
  const text = '/' + request.path.join('/');
  try {
    return LwM2MPath.parse(text);
  } catch (error) {
    if (error instanceof PathError) throw badRequest(`${text} is not an LwM2M path`);
    throw error;
  }
}

/** Objects a bootstrap server may write: those the client has, and always Security and Server. */
function supports(tree: ObjectTree, objectId: number): boolean {
  return objectId === 0 || objectId === 1 || tree.objectIds().includes(objectId);
}

// --- Bootstrap-Finish ---

function finish(context: BootstrapHandlerContext): OutgoingResponse {
  const problem = context.check();
  if (problem) return { code: '4.06', payload: Buffer.from(problem.slice(0, 200), 'utf8'), onSent: () => context.finished(problem) };
  return { code: '2.04', onSent: () => context.finished(undefined) };
}

// --- Bootstrap-Discover ---

/** `</>;lwm2m=1.1,</0/0>;uri="…",</0/1>;ssid=101;uri="…",</1/0>;ssid=101,</3/0>,…` (no root link from a 1.0 client). */
function discover(context: BootstrapHandlerContext, path: LwM2MPath): OutgoingResponse {
  const { tree, version } = context;
  if (path.instanceId !== undefined) throw badRequest('Bootstrap-Discover applies to "/" or an object');
  if (path.objectId !== undefined && !tree.objectIds().includes(path.objectId)) throw notFound(`object ${path.objectId} is not supported by this client`);
  const links = objectList(tree, version, {
    root: version === '1.0' ? undefined : { uri: '/', attributes: { lwm2m: version } },
    everything: true,
    versions: false,
    objectId: path.objectId,
    instanceAttributes: (oid, iid) => accountAttributes(context, oid, iid),
  });
  return { code: '2.05', contentFormat: ContentFormat.LINK, payload: encodeLinks(links) };
}

/** `ssid` of Security (not the bootstrap account's) and Server instances; `uri` of Security instances from 1.1 on. */
function accountAttributes(context: BootstrapHandlerContext, objectId: number, instanceId: number): Record<string, LinkAttributeValue> {
  const { tree, version } = context;
  const attributes: Record<string, LinkAttributeValue> = {};
  if (objectId === 1) {
    const ssid = shortServerIdOf(tree, 1, instanceId);
    if (ssid !== undefined) attributes.ssid = ssid;
  } else if (objectId === 0) {
    const ssid = isBootstrapInstance(tree, instanceId) ? undefined : shortServerIdOf(tree, 0, instanceId);
    if (ssid !== undefined) attributes.ssid = ssid;
    const uri = tree.get(`/0/${instanceId}/0`);
    if (version !== '1.0' && typeof uri === 'string' && uri !== '') attributes.uri = uri;
  }
  return attributes;
}

// --- Bootstrap-Read ---

async function read(context: BootstrapHandlerContext, request: IncomingRequest, path: LwM2MPath): Promise<OutgoingResponse> {
  const { tree, version } = context;
  if (version === '1.0') throw notAllowed('Bootstrap-Read needs LwM2M 1.1 or later');
  if (path.objectId !== 1 && path.objectId !== 2) throw badRequest('Bootstrap-Read applies to the Server (1) and Access Control (2) objects only');
  if (path.resourceId !== undefined) throw badRequest('Bootstrap-Read applies to an object or an instance');
  if (!tree.has(path)) throw notFound(`${path} does not exist`);
  const format = canonicalFormat(request.accept ?? context.preferredFormat);
  if (!VALUE_FORMATS.includes(format) || !formatsOf(version).has(format)) throw notAcceptable(`${formatName(format)} is not a format of LwM2M ${version} this client can answer in`);
  const value = await tree.read(path, 'server');
  try {
    return { code: '2.05', contentFormat: format, payload: encode(format, path, value, tree.model) };
  } catch (error) {
    if (error instanceof ContentFormatError) throw notAcceptable(`${path} cannot be given in ${formatName(format)}: ${error.reason}`);
    throw error;
  }
}

// --- Bootstrap-Write ---

async function write(context: BootstrapHandlerContext, request: IncomingRequest, path: LwM2MPath): Promise<OutgoingResponse> {
  const { tree, version } = context;
  if (path.isRoot()) throw notAllowed('Bootstrap-Write applies to an object, an instance or a resource, not "/"');
  const objectId = path.objectId!;
  if (!supports(tree, objectId)) throw notFound(`object ${objectId} is not supported by this client`);
  if (request.contentFormat === undefined) throw badRequest('a Bootstrap-Write needs a Content-Format option');
  const format = canonicalFormat(request.contentFormat);
  if (!VALUE_FORMATS.includes(format) || !formatsOf(version).has(format)) throw unsupportedFormat(`${formatName(request.contentFormat)} is not a format of LwM2M ${version} this client reads`);
  let value: LwM2MValue;
  try {
    value = decode(format, path, request.payload, tree.model);
  } catch (error) {
    if (error instanceof ContentFormatError) throw badRequest(`the payload is not valid ${formatName(format)} for ${path}: ${error.reason}`);
    throw error;
  }
  if (path.instanceId === undefined) {
    if (!isIdMap(value)) throw badRequest(`a Bootstrap-Write on ${path} needs instances`);
    for (const [iid, instance] of Object.entries(value)) await writeInstance(tree, objectId, Number(iid), instance);
  } else if (path.resourceId === undefined) {
    await writeInstance(tree, objectId, path.instanceId, value);
  } else {
    await writeResource(tree, path, value);
  }
  return { code: '2.04' };
}

/**
 * Creates an instance, or replaces it when present. The bootstrap account is updated in place and
 * stays a bootstrap account.
 */
export async function writeInstance(tree: ObjectTree, objectId: number, instanceId: number, value: unknown): Promise<void> {
  if (!isIdMap(value)) throw badRequest(`the value of /${objectId}/${instanceId} must hold resources`);
  const path = LwM2MPath.of(objectId, instanceId);
  if (objectId === 0 && tree.has(path) && isBootstrapInstance(tree, instanceId)) {
    if (value[1] !== undefined && value[1] !== true) throw badRequest(`/0/${instanceId} is the Bootstrap-Server account; write a server account to another instance`);
    await tree.write(path, value as LwM2MValue, 'update', 'local');
    return;
  }
  if (!tree.has(path)) {
    tree.addInstance(objectId, instanceId, value as InstanceSpec, 'server');
    return;
  }
  if (objectId !== 0 && objectId !== 1) {
    await tree.write(path, value as LwM2MValue, 'replace', 'local');
    return;
  }
  // Security and Server instances are plain data: the new one replaces the old one whole
  const old = tree.get(path) as InstanceSpec;
  tree.removeInstance(objectId, instanceId);
  try {
    tree.addInstance(objectId, instanceId, value as InstanceSpec, 'server');
  } catch (error) {
    tree.addInstance(objectId, instanceId, old, 'local');
    throw error;
  }
}

async function writeResource(tree: ObjectTree, path: LwM2MPath, value: LwM2MValue): Promise<void> {
  const objectId = path.objectId!;
  const instanceId = path.instanceId!;
  const instance = LwM2MPath.of(objectId, instanceId);
  if (!tree.has(instance)) {
    if (path.resourceInstanceId !== undefined) throw notFound(`${instance} does not exist`);
    tree.addInstance(objectId, instanceId, { [path.resourceId!]: value as InstanceSpec[number] }, 'server');
    return;
  }
  if (objectId === 0 && path.resourceId === 1 && value !== true && isBootstrapInstance(tree, instanceId)) {
    throw badRequest(`/0/${instanceId} is the Bootstrap-Server account; it stays one`);
  }
  await tree.write(path, value, 'replace', 'local');
}

// --- Bootstrap-Delete ---

/**
 * `/` deletes every Security instance but the bootstrap account and every Server and Access Control
 * instance; an object path deletes its instances (the bootstrap account stays); an instance path
 * deletes that instance. The bootstrap account and the Device object are never deleted.
 */
function remove(context: BootstrapHandlerContext, path: LwM2MPath): OutgoingResponse {
  const { tree } = context;
  if (path.resourceId !== undefined) throw badRequest('Bootstrap-Delete applies to "/", an object or an instance');
  if (path.isRoot()) {
    for (const oid of [0, 1, 2]) removeAll(context, oid);
    return { code: '2.02' };
  }
  const objectId = path.objectId!;
  if (!supports(tree, objectId)) throw notFound(`object ${objectId} is not supported by this client`);
  if (objectId === 3) throw badRequest('the Device object (3) is not deleted by a bootstrap server');
  if (path.instanceId === undefined) {
    removeAll(context, objectId);
    return { code: '2.02' };
  }
  if (objectId === 0 && isBootstrapInstance(tree, path.instanceId)) throw badRequest(`${path} is the Bootstrap-Server account; it is never deleted`);
  removeInstance(context, objectId, path.instanceId);
  return { code: '2.02' };
}

function removeAll(context: Pick<BootstrapHandlerContext, 'tree' | 'attributes'>, objectId: number): void {
  for (const iid of context.tree.instanceIds(objectId)) {
    if (objectId === 0 && isBootstrapInstance(context.tree, iid)) continue;
    removeInstance(context, objectId, iid);
  }
}

/** Deleting what is not there is no error: the bootstrap server wants it gone, and it is. */
function removeInstance(context: Pick<BootstrapHandlerContext, 'tree' | 'attributes'>, objectId: number, instanceId: number): void {
  if (context.tree.removeInstance(objectId, instanceId)) context.attributes?.clear(LwM2MPath.of(objectId, instanceId));
}

// --- Bootstrap-Pack (LwM2M 1.2) ---

/**
 * Applies the records of a Bootstrap-Pack (`{ '/0/1/0': 'coap://…', '/1/0/0': 101, … }`): the
 * server accounts the client had (Security but the bootstrap account, Server) are deleted, then
 * each instance named is written as by a Bootstrap-Write. Every path is checked before anything
 * changes; a ClientError says what is wrong.
 */
export async function applyBootstrapPack(context: Pick<BootstrapHandlerContext, 'tree' | 'attributes'>, values: Record<string, unknown>): Promise<void> {
  const { tree } = context;
  const instances = new Map<string, { objectId: number; instanceId: number; resources: Record<number, unknown> }>();
  for (const [text, value] of Object.entries(values)) {
    let path: LwM2MPath;
    try {
      path = LwM2MPath.parse(text);
    } catch {
      throw badRequest(`${text} is not an LwM2M path`);
    }
    if (path.resourceId === undefined) throw badRequest(`the Bootstrap-Pack record ${path} is not a resource`);
    if (!supports(tree, path.objectId!)) throw notFound(`object ${path.objectId} is not supported by this client`);
    const key = `/${path.objectId}/${path.instanceId}`;
    const entry = instances.get(key) ?? { objectId: path.objectId!, instanceId: path.instanceId!, resources: {} };
    if (path.resourceInstanceId === undefined) entry.resources[path.resourceId] = value;
    else entry.resources[path.resourceId] = { ...(isIdMap(entry.resources[path.resourceId]) ? (entry.resources[path.resourceId] as object) : {}), [path.resourceInstanceId]: value };
    instances.set(key, entry);
  }
  // a pack cannot know which Security id the bootstrap account has here; ids only order the
  // instances (the Short Server ID links an account), so a server account moves out of its way
  const packed = [...instances.values()];
  const taken = new Set(packed.filter((entry) => entry.objectId === 0).map((entry) => entry.instanceId));
  for (const entry of packed) {
    if (entry.objectId !== 0 || entry.resources[1] === true || !tree.has(LwM2MPath.of(0, entry.instanceId)) || !isBootstrapInstance(tree, entry.instanceId)) continue;
    let free = 0;
    while (taken.has(free) || (tree.has(LwM2MPath.of(0, free)) && isBootstrapInstance(tree, free))) free++;
    taken.add(free);
    entry.instanceId = free;
  }
  for (const oid of [0, 1]) removeAll(context, oid);
  for (const { objectId, instanceId, resources } of packed) await writeInstance(tree, objectId, instanceId, resources);
}
