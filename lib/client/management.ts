/**
 * The Device Management and Information Reporting interfaces of a client: turns each CoAP request
 * from the server into an operation on the object tree and answers with the LwM2M response code.
 */
import type { LwM2MVersion } from '../protocol';
import {
  COMPOSITE_FORMATS,
  ContentFormat,
  ContentFormatError,
  VALUE_FORMATS,
  canonicalFormat,
  decode,
  decodeComposite,
  decodePaths,
  encode,
  encodeComposite,
  encodeLinks,
  formatName,
  isIdMap,
  type CompositeValue,
  type Link,
  type LinkAttributeValue,
  type LwM2MValue,
  type ObjectValue,
} from '../content';
import { LwM2MPath, PathError } from '../path';
import { OptionNumber, type CoapOption } from '../transport/message';
import type { IncomingRequest, OutgoingResponse } from '../transport/endpoint';
import { AttributeError, checkAttributeLevel, parseAttributeQuery, type AttributeStore, type NotificationAttributes } from './attributes';
import { ClientError, badRequest, notAcceptable, notAllowed, notFound, unauthorized, unsupportedFormat } from './errors';
import type { Observation, Observations } from './observations';
import { executable, type ObjectTree } from './tree';

export type { LwM2MVersion };

/** The data formats of each LwM2M version (1.2 dropped OMA JSON and added LwM2M CBOR). */
const FORMATS: Record<LwM2MVersion, ReadonlySet<number>> = {
  '1.0': new Set([ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.TLV, ContentFormat.OMA_JSON]),
  '1.1': new Set([ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.TLV, ContentFormat.OMA_JSON, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR]),
  '1.2': new Set([ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR]),
};

/** Attributes LwM2M 1.2 added; a 1.0 or 1.1 client does not know them. */
const ATTRIBUTES_SINCE_1_2 = ['edge', 'con', 'hqmax'];

export function formatsOf(version: LwM2MVersion): ReadonlySet<number> {
  return FORMATS[version];
}

/** Objects the server may never touch through Device Management (Security, OSCORE). */
const PROTECTED_OBJECTS = new Set([0, 21]);

export interface ManagementContext {
  tree: ObjectTree;
  attributes: AttributeStore;
  observations: Observations;
  version: LwM2MVersion;
  /** the format used when the server does not ask for one */
  preferredFormat: number;
  /** told the paths a Write-Composite changed (the request's own path is only "/") */
  onCompositeWrite?: (paths: LwM2MPath[]) => void;
}

/** Handles one request; never throws (every failure becomes an error response). */
export async function handleManagement(context: ManagementContext, request: IncomingRequest): Promise<OutgoingResponse> {
  try {
    return await route(context, request);
  } catch (error) {
    return errorResponse(error);
  }
}

export function errorResponse(error: unknown): OutgoingResponse {
  if (error instanceof ClientError) return diagnostic(error.coapCode, error.message);
  if (error instanceof AttributeError) return diagnostic('4.00', error.message);
  if (error instanceof PathError) return diagnostic('4.04', error.message);
  if (error instanceof ContentFormatError) return diagnostic(error.operation === 'encode' ? '4.06' : '4.00', error.message);
  return diagnostic('5.00', error instanceof Error ? error.message : String(error));
}

/** RFC 7252 §5.5.2: an error response may carry a short human-readable explanation. */
function diagnostic(code: string, message: string): OutgoingResponse {
  return { code, payload: Buffer.from(message.length > 200 ? message.slice(0, 199) + '…' : message, 'utf8') };
}

function parseRequestPath(request: IncomingRequest): LwM2MPath {
  if (request.path.length === 0) return LwM2MPath.ROOT;
  const text = '/' + request.path.join('/');
  try {
    return LwM2MPath.parse(text);
  } catch (error) {
    throw notFound(`${text} is not an LwM2M path on this client`);
  }
}

async function route(context: ManagementContext, request: IncomingRequest): Promise<OutgoingResponse> {
  const path = parseRequestPath(request);
  if (path.objectId !== undefined && PROTECTED_OBJECTS.has(path.objectId)) throw unauthorized(`object ${path.objectId} is not accessible to a management server`);
  switch (request.method) {
    case 'GET':
      if (request.accept === ContentFormat.LINK) return discover(context, path);
      if (request.observe === 0) return observe(context, request, [path], false);
      if (request.observe === 1) context.observations.cancel(request.peer, request.token);
      return read(context, request, path);
    case 'FETCH':
      if (context.version === '1.0') throw notAllowed('Read-Composite and Observe-Composite need LwM2M 1.1 or later');
      if (!path.isRoot()) throw notAllowed('Read-Composite and Observe-Composite use FETCH on "/"');
      return composite(context, request);
    case 'PUT':
      if (request.payload.length === 0 && request.contentFormat === undefined) {
        if (request.query.length === 0) throw badRequest('a PUT needs a payload (Write) or attributes in the query (Write-Attributes)');
        return writeAttributes(context, request, path);
      }
      return write(context, request, path, 'replace');
    case 'POST':
      return post(context, request, path);
    case 'IPATCH':
      if (context.version === '1.0') throw notAllowed('Write-Composite needs LwM2M 1.1 or later');
      if (!path.isRoot()) throw notAllowed('Write-Composite uses iPATCH on "/"');
      return writeComposite(context, request);
    case 'DELETE':
      return remove(context, path);
    default:
      throw notAllowed(`${request.method} is not an LwM2M operation`);
  }
}

// --- Read, Observe, Discover ---

/** The format of a response: the one asked for (4.06 when it cannot be produced), else a sensible default. */
function responseFormat(context: ManagementContext, accept: number | undefined, path: LwM2MPath, value: LwM2MValue): number {
  if (accept !== undefined) {
    const format = canonicalFormat(accept);
    if (!VALUE_FORMATS.includes(format)) throw notAcceptable(`${formatName(accept)} (${accept}) is not a format this client can answer a Read in`);
    if (!FORMATS[context.version].has(format)) throw notAcceptable(`${formatName(format)} is not a format of LwM2M ${context.version}`);
    return format;
  }
  if (path.resourceId !== undefined && !isIdMap(value)) return Buffer.isBuffer(value) ? ContentFormat.OPAQUE : ContentFormat.TEXT;
  return context.preferredFormat;
}

function encodeValue(context: ManagementContext, format: number, path: LwM2MPath, value: LwM2MValue): Buffer {
  try {
    return encode(format, path, value, context.tree.model);
  } catch (error) {
    if (error instanceof ContentFormatError) throw notAcceptable(`${path} cannot be given in ${formatName(format)}: ${error.reason}`);
    throw error;
  }
}

async function render(context: ManagementContext, accept: number | undefined, path: LwM2MPath): Promise<{ format: number; payload: Buffer; value: LwM2MValue }> {
  const value = await context.tree.read(path);
  const format = responseFormat(context, accept, path, value);
  return { format, payload: encodeValue(context, format, path, value), value };
}

async function read(context: ManagementContext, request: IncomingRequest, path: LwM2MPath): Promise<OutgoingResponse> {
  if (path.isRoot()) throw notAllowed('Read of "/" is not allowed; read an object, instance or resource');
  const { format, payload } = await render(context, request.accept, path);
  return { code: '2.05', contentFormat: format, payload };
}

async function observe(context: ManagementContext, request: IncomingRequest, paths: LwM2MPath[], isComposite: boolean): Promise<OutgoingResponse> {
  let format: number;
  let payload: Buffer;
  let value: unknown;
  if (isComposite) {
    ({ format, payload, value } = await renderComposite(context, request, paths));
  } else {
    if (paths[0]!.isRoot()) throw notAllowed('Observe of "/" is not allowed');
    ({ format, payload, value } = await render(context, request.accept, paths[0]!));
  }
  if (!context.observations.hasRoom(request)) return { code: '2.05', contentFormat: format, payload }; // RFC 7641 §4.1: served, not observed
  const observation = context.observations.add(request, paths, isComposite, format, payload, value);
  return { code: '2.05', contentFormat: format, payload, observe: observation.sequence };
}

/** What an observation sends: the same read, in the format of its first response. */
export async function renderObservation(context: ManagementContext, observation: Observation): Promise<{ payload: Buffer; value: unknown }> {
  if (observation.composite) {
    const values = await readComposite(context, observation.paths);
    return { payload: encodeComposite(observation.format, values, context.tree.model), value: values };
  }
  const path = observation.paths[0]!;
  const value = await context.tree.read(path);
  return { payload: encodeValue(context, observation.format, path, value), value };
}

function discover(context: ManagementContext, path: LwM2MPath): OutgoingResponse {
  const { tree, attributes } = context;
  if (path.isRoot()) throw notAllowed('Discover of "/" is only for a bootstrap server');
  if (path.resourceInstanceId !== undefined) throw notAllowed('Discover applies to objects, instances and resources');
  if (!tree.has(path)) throw notFound(`${path} does not exist`);
  const links: Link[] = [];
  const link = (at: LwM2MPath, extra: Record<string, LinkAttributeValue>, attrs: NotificationAttributes): void => {
    links.push({ uri: at.toString(), attributes: { ...extra, ...(attrs as Record<string, number>) } });
  };
  const resourceLinks = (objectId: number, instanceId: number): void => {
    for (const rid of tree.resourceIds(objectId, instanceId)) {
      const at = LwM2MPath.of(objectId, instanceId, rid);
      const resource = tree.resource(at)!;
      const dim: Record<string, number> = resource.definition?.multiple && isIdMap(resource.value) ? { dim: Object.keys(resource.value).length } : {};
      link(at, dim, attributes.own(at));
    }
  };
  const objectId = path.objectId!;
  if (path.instanceId === undefined) {
    const version = tree.objectDefinition(objectId)?.version;
    link(path, version && version !== '1.0' ? { ver: version } : {}, attributes.own(path));
    for (const iid of tree.instanceIds(objectId)) {
      link(LwM2MPath.of(objectId, iid), {}, attributes.own(LwM2MPath.of(objectId, iid)));
      resourceLinks(objectId, iid);
    }
  } else if (path.resourceId === undefined) {
    // the target shows the attributes in force there (inherited included), its children their own
    link(path, {}, attributes.effective(path));
    resourceLinks(objectId, path.instanceId);
  } else {
    const resource = tree.resource(path)!;
    const dim: Record<string, number> = resource.definition?.multiple && isIdMap(resource.value) ? { dim: Object.keys(resource.value).length } : {};
    link(path, dim, attributes.effective(path));
  }
  return { code: '2.05', contentFormat: ContentFormat.LINK, payload: encodeLinks(links) };
}

// --- composite ---

function requestPaths(request: IncomingRequest): LwM2MPath[] {
  if (request.contentFormat === undefined) throw badRequest('a composite request needs a Content-Format for its path list');
  const format = canonicalFormat(request.contentFormat);
  if (format !== ContentFormat.SENML_JSON && format !== ContentFormat.SENML_CBOR) {
    throw unsupportedFormat(`${formatName(request.contentFormat)} cannot carry a path list; use SenML JSON (110) or SenML CBOR (112)`);
  }
  const paths = decodePaths(format, request.payload);
  if (paths.length === 0) throw badRequest('the path list is empty');
  return paths;
}

async function readComposite(context: ManagementContext, paths: readonly LwM2MPath[]): Promise<CompositeValue> {
  const values: CompositeValue = {};
  for (const path of paths) {
    if (path.objectId !== undefined && PROTECTED_OBJECTS.has(path.objectId)) throw unauthorized(`object ${path.objectId} is not accessible to a management server`);
    if (path.isRoot()) {
      for (const oid of context.tree.objectIds()) {
        if (!PROTECTED_OBJECTS.has(oid)) values[`/${oid}`] = (await context.tree.read(LwM2MPath.of(oid))) as ObjectValue;
      }
      continue;
    }
    // a path that does not exist is left out of a Read-Composite response (LwM2M 1.1 §6.3.8)
    if (!context.tree.has(path)) continue;
    values[path.toString()] = await context.tree.read(path);
  }
  return values;
}

async function renderComposite(context: ManagementContext, request: IncomingRequest, paths: LwM2MPath[]): Promise<{ format: number; payload: Buffer; value: CompositeValue }> {
  const format = canonicalFormat(request.accept ?? request.contentFormat!);
  if (!COMPOSITE_FORMATS.includes(format) || !FORMATS[context.version].has(format)) throw notAcceptable(`${formatName(format)} cannot carry a composite value in LwM2M ${context.version}`);
  const value = await readComposite(context, paths);
  return { format, payload: encodeComposite(format, value, context.tree.model), value };
}

async function composite(context: ManagementContext, request: IncomingRequest): Promise<OutgoingResponse> {
  const paths = requestPaths(request);
  if (request.observe === 0) return observe(context, request, paths, true);
  if (request.observe === 1) context.observations.cancel(request.peer, request.token);
  const { format, payload } = await renderComposite(context, request, paths);
  return { code: '2.05', contentFormat: format, payload };
}

// --- Write, Write-Attributes, Create, Delete, Execute ---

function payloadFormat(context: ManagementContext, request: IncomingRequest): number {
  if (request.contentFormat === undefined) throw badRequest('a Write needs a Content-Format option');
  const format = canonicalFormat(request.contentFormat);
  if (!VALUE_FORMATS.includes(format)) throw unsupportedFormat(`${formatName(request.contentFormat)} (${request.contentFormat}) is not a format this client can read values from`);
  if (!FORMATS[context.version].has(format)) throw unsupportedFormat(`${formatName(format)} is not a format of LwM2M ${context.version}`);
  return format;
}

function decodeValue(context: ManagementContext, format: number, path: LwM2MPath, payload: Buffer): LwM2MValue {
  try {
    return decode(format, path, payload, context.tree.model);
  } catch (error) {
    if (error instanceof ContentFormatError) throw badRequest(`the payload is not valid ${formatName(format)} for ${path}: ${error.reason}`);
    throw error;
  }
}

async function write(context: ManagementContext, request: IncomingRequest, path: LwM2MPath, mode: 'replace' | 'update'): Promise<OutgoingResponse> {
  if (path.instanceId === undefined) throw notAllowed(`Write applies to an instance or a resource, not ${path.isRoot() ? '"/"' : `object ${path}`}`);
  const format = payloadFormat(context, request);
  const value = decodeValue(context, format, path, request.payload);
  await context.tree.write(path, value, mode);
  return { code: '2.04' };
}

async function writeComposite(context: ManagementContext, request: IncomingRequest): Promise<OutgoingResponse> {
  const format = payloadFormat(context, request);
  if (!COMPOSITE_FORMATS.includes(format)) throw unsupportedFormat(`${formatName(format)} cannot carry a Write-Composite`);
  let values: CompositeValue;
  try {
    values = decodeComposite(format, request.payload, context.tree.model);
  } catch (error) {
    if (error instanceof ContentFormatError) throw badRequest(`the payload is not valid ${formatName(format)}: ${error.reason}`);
    throw error;
  }
  const entries = Object.entries(values).map(([text, value]) => ({ path: LwM2MPath.parse(text), value }));
  // all or nothing: check every target before changing any
  for (const { path } of entries) {
    if (path.objectId !== undefined && PROTECTED_OBJECTS.has(path.objectId)) throw unauthorized(`object ${path.objectId} is not accessible to a management server`);
    const resource = context.tree.resource(path.resourceInstanceId === undefined ? path : path.parent());
    if (path.resourceId === undefined || !context.tree.has(LwM2MPath.of(path.objectId!, path.instanceId!))) throw notFound(`${path} does not exist`);
    if (resource?.definition && !resource.definition.operations.includes('W')) throw notAllowed(`${path} (${resource.definition.name}) is not writable`);
  }
  for (const { path, value } of entries) await context.tree.write(path, value, 'replace');
  context.onCompositeWrite?.(entries.map(({ path }) => path));
  return { code: '2.04' };
}

function writeAttributes(context: ManagementContext, request: IncomingRequest, path: LwM2MPath): OutgoingResponse {
  if (path.isRoot()) throw notAllowed('attributes cannot be written on "/"');
  if (!context.tree.has(path)) throw notFound(`${path} does not exist`);
  const change = parseAttributeQuery(request.query);
  const newer = [...Object.keys(change.set), ...change.unset].find((name) => ATTRIBUTES_SINCE_1_2.includes(name));
  if (newer && context.version !== '1.2') throw badRequest(`the attribute ${newer} needs LwM2M 1.2`);
  const resource = path.resourceId === undefined ? undefined : context.tree.resource(path.resourceInstanceId === undefined ? path : path.parent());
  checkAttributeLevel(path, change.set, resource?.definition?.type);
  context.attributes.write(path, change);
  context.observations.retime();
  return { code: '2.04' };
}

async function post(context: ManagementContext, request: IncomingRequest, path: LwM2MPath): Promise<OutgoingResponse> {
  if (path.isRoot()) throw notAllowed('POST on "/" is not an LwM2M operation');
  if (path.instanceId === undefined) return create(context, request, path.objectId!);
  if (path.resourceId === undefined) return write(context, request, path, 'update');
  if (path.resourceInstanceId !== undefined) throw notAllowed('a resource instance cannot be executed');
  const resource = context.tree.resource(path);
  if (!resource) throw notFound(`${path} does not exist`);
  if (!executable(resource) && resource.definition?.multiple && request.contentFormat !== undefined) return write(context, request, path, 'update');
  await context.tree.execute(path, parseExecuteArguments(request.payload));
  return { code: '2.04' };
}

/**
 * Execute arguments (LwM2M 1.1 §5.4.5): `0='text',1` — a digit, optionally `='…'`, comma separated.
 * Anything else is refused with 4.00 rather than passed on half-understood.
 */
export function parseExecuteArguments(payload: Buffer): string {
  const text = payload.toString('utf8');
  if (text === '') return text;
  if (!/^[0-9](='[!#-&(-~ ]*')?(,[0-9](='[!#-&(-~ ]*')?)*$/.test(text)) throw badRequest(`"${text.slice(0, 60)}" is not an Execute argument list (e.g. 0='on',1)`);
  return text;
}

async function create(context: ManagementContext, request: IncomingRequest, objectId: number): Promise<OutgoingResponse> {
  const { tree } = context;
  if (!tree.objectIds().includes(objectId)) throw notFound(`object ${objectId} is not supported by this client`);
  const format = payloadFormat(context, request);
  const objectPath = LwM2MPath.of(objectId);
  let instances: ObjectValue;
  try {
    instances = decode(format, objectPath, request.payload, tree.model) as ObjectValue;
  } catch (error) {
    // TLV and OMA JSON may give the new instance's resources without an instance id: the client picks it
    if (!(error instanceof ContentFormatError) || (format !== ContentFormat.TLV && format !== ContentFormat.OMA_JSON)) {
      throw badRequest(`the payload is not valid ${formatName(format)} for ${objectPath}: ${(error as Error).message}`);
    }
    const free = tree.freeInstanceId(objectId);
    const value = decodeValue(context, format, LwM2MPath.of(objectId, free), request.payload);
    instances = { [free]: value as ObjectValue[string] };
  }
  const ids = Object.keys(instances);
  if (ids.length !== 1) throw badRequest(`a Create makes exactly one instance, the payload holds ${ids.length}`);
  const instanceId = Number(ids[0]);
  const resources = instances[ids[0]!]!;
  if (!isIdMap(resources)) throw badRequest('the new instance holds no resources');
  if (tree.has(LwM2MPath.of(objectId, instanceId))) throw badRequest(`/${objectId}/${instanceId} already exists`);
  const created = tree.addInstance(objectId, instanceId, resources as Record<string, never>, 'server');
  const location: CoapOption[] = [String(objectId), String(created)].map((segment) => ({ number: OptionNumber.LOCATION_PATH, value: Buffer.from(segment) }));
  return { code: '2.01', options: location };
}

function remove(context: ManagementContext, path: LwM2MPath): OutgoingResponse {
  if (path.instanceId === undefined || path.resourceId !== undefined) throw notAllowed('Delete applies to an object instance');
  if (path.objectId === 3 || path.objectId === 1) throw notAllowed(`${path} is needed to stay registered and cannot be deleted`);
  if (!context.tree.removeInstance(path.objectId!, path.instanceId)) throw notFound(`${path} does not exist`);
  context.attributes.clear(path);
  return { code: '2.02' };
}
