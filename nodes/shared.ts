/**
 * What the LwM2M nodes share: the message shapes of registrations and errors, the endpoint filter,
 * and finding the server config node a node is attached to.
 */
import { LwM2MError, type NotifyEvent, type Registration, type ResourceLookup } from '../lib';
import type { Node, NodeDef, NodeMessage, Red, Send } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { Settings } from './settings';

/** The registration as `msg.payload`: plain data, JSON-friendly. */
export function registrationPayload(registration: Registration): Record<string, unknown> {
  return {
    endpoint: registration.endpoint,
    id: registration.id,
    lifetime: registration.lifetime,
    version: registration.version,
    binding: registration.binding,
    queueMode: registration.queueMode,
    address: registration.address,
    port: registration.port,
    rootPath: registration.rootPath || '/',
    objects: registration.objects.map((object) => ({ ...object })),
    contentFormats: [...registration.contentFormats],
    registeredAt: new Date(registration.registeredAt).toISOString(),
    updatedAt: new Date(registration.updatedAt).toISOString(),
    expiresAt: new Date(registration.expiresAt).toISOString(),
    awake: registration.awake,
    security: registration.identity === undefined ? 'none' : 'psk',
    ...(registration.identity !== undefined ? { identity: registration.identity } : {}),
    ...(registration.sms !== undefined ? { sms: registration.sms } : {}),
  };
}

/** `msg.error` of the message contract: `{ message, code, coapCode }`. */
export function errorInfo(error: unknown): { message: string; code: string; coapCode?: string } {
  if (error instanceof LwM2MError) return { message: error.message, code: error.code, ...(error.coapCode ? { coapCode: error.coapCode } : {}) };
  return { message: error instanceof Error ? error.message : String(error), code: 'BAD_REQUEST' };
}

/**
 * An Error for done(). Node-RED builds the Catch node's msg.error from it (message and code), so
 * the device's response code is put in msg.coapCode as well.
 */
export function failure(msg: NodeMessage, error: unknown): Error & { code: string; statusText: string } {
  const info = errorInfo(error);
  msg.error = info;
  if (info.coapCode) msg.coapCode = info.coapCode;
  return Object.assign(new Error(info.message), info, { statusText: info.code.toLowerCase().replace(/_/g, ' ') });
}

/** The server config node this node uses; without one the node shows why and does nothing. */
export function serverOf(red: Red, node: Node, config: NodeDef): unknown {
  const server = red.nodes.getNode(String(config.server));
  if (!server) node.status({ fill: 'red', shape: 'ring', text: 'no server' });
  return server ?? undefined;
}

/** Endpoint filter: empty or `*` matches all; `*` inside matches any run of characters. */
export function endpointFilter(pattern: string | undefined): (endpoint: string) => boolean {
  const text = (pattern ?? '').trim();
  if (text === '' || text === '*') return () => true;
  const expression = new RegExp(`^${text.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (endpoint) => expression.test(endpoint);
}

/**
 * Wires a node that acts on each message (read, write, execute): it finds its server, registers
 * as its user, runs `act` per message, and sends the message on success or hands the error to
 * done() (for Catch nodes) with a short status.
 */
export function actionNode(
  red: Red,
  node: Node,
  config: NodeDef,
  act: (msg: NodeMessage, serverNode: ServerConfigNode, settings: Settings) => Promise<void>,
): void {
  const serverNode = serverOf(red, node, config) as ServerConfigNode | undefined;
  if (!serverNode) return;
  const settings = new Settings(red, node, config);
  serverNode.register(node);
  onInput(node, serverNode, async (msg, send) => {
    await act(msg, serverNode, settings);
    node.status({});
    send(msg);
  });
  node.on('close', (_removed, done) => serverNode.deregister(node, done));
}

/**
 * Runs `handle` for each input message: a server that could not start is reported first, and an
 * error goes to done() (for Catch nodes) with a short status; nothing is sent for it.
 */
export function onInput(node: Node, serverNode: ServerConfigNode, handle: (msg: NodeMessage, send: Send) => Promise<void>): void {
  node.on('input', async (msg, send, done) => {
    try {
      if (serverNode.failure) throw new LwM2MError('SERVER_NOT_RUNNING', `the LwM2M server is not running: ${serverNode.failure.message}`);
      await handle(msg, send);
      done();
    } catch (error) {
      const problem = failure(msg, error);
      node.status({ fill: 'red', shape: 'ring', text: problem.statusText });
      done(problem);
    }
  });
}

/**
 * The "resource names" option: instance values keyed by the model's resource names instead of ids
 * (`{ "Sensor Value": 21.5 }` for `{ "5700": 21.5 }`); ids the model does not know stay ids.
 */
export function withResourceNames(model: ResourceLookup, path: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value)) return value;
  const ids = path.split('/').filter(Boolean).map(Number);
  const rename = (objectId: number, instance: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(instance).map(([rid, item]) => [model.resource(objectId, Number(rid))?.name ?? rid, item]));
  if (path.startsWith('/') && ids.length === 2) return rename(ids[0]!, value as Record<string, unknown>);
  if (path.startsWith('/') && ids.length === 1) {
    return Object.fromEntries(Object.entries(value as Record<string, Record<string, unknown>>).map(([iid, instance]) => [iid, rename(ids[0]!, instance)]));
  }
  return value;
}

/** `{ path: value }` of a composite, each value with resource names. */
export function compositeWithResourceNames(model: ResourceLookup, values: unknown): unknown {
  return Object.fromEntries(Object.entries(values as Record<string, unknown>).map(([path, value]) => [path, withResourceNames(model, path, value)]));
}

/** The message of a notification, as observe and notify-in send it. */
export function notificationMessage(event: NotifyEvent, model: ResourceLookup, names: boolean): NodeMessage {
  const { composite, paths } = event.observation;
  let payload = event.value as unknown;
  if (names) payload = composite ? compositeWithResourceNames(model, payload) : withResourceNames(model, paths[0]!, payload);
  return {
    topic: `${event.endpoint}${composite ? '' : paths[0]}`,
    endpoint: event.endpoint,
    path: composite ? [...paths] : paths[0],
    payload,
    observation: event.observation.id,
    sequence: event.sequence,
  };
}
