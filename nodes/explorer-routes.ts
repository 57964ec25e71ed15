/**
 * The device explorer's admin routes (the editor's "LwM2M" sidebar), all under /lwm2m/: what a
 * device is and holds needs `lwm2m-server.read`; anything that changes a device (or starts an
 * observation on it) needs `lwm2m-server.write`. Errors answer with an HTTP status and
 * `{ message, code, coapCode? }`, so the sidebar can show them next to the item.
 */
import { LwM2MError, LwM2MPath, MAX_TRACE_SIZE, type AttributeChanges } from '../lib';
import type { Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { deviceTree, fromJsonValue, toJsonValue, ValueError } from './explorer-values';
import { errorInfo } from './shared';

interface Request {
  params: Record<string, string>;
  query?: Record<string, unknown>;
  body?: unknown;
}
interface Response {
  status(code: number): Response;
  json(body: unknown): void;
}

/** What a request to the explorer can be refused with before it reaches a device. */
class RouteError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The HTTP status of a failed operation: the device's own answer is a bad gateway, not the editor's fault. */
function statusOf(error: unknown): number {
  if (error instanceof RouteError) return error.status;
  if (error instanceof ValueError) return 400;
  if (error instanceof LwM2MError) {
    if (error.code === 'NOT_REGISTERED') return 404;
    if (error.code === 'TIMEOUT') return 504;
    if (error.coapCode) return 502;
    return error.code === 'INTERNAL' ? 500 : 400;
  }
  return 500;
}

const ATTRIBUTES = ['pmin', 'pmax', 'gt', 'lt', 'st'] as const;

/** the most trace entries one answer carries (the panel shows the latest) */
const TRACE_PAGE = 2000;

/** `{ pmin: 10, gt: null, ... }` from the sidebar: numbers set an attribute, null or '' removes it. */
function attributesOf(body: Record<string, unknown>): AttributeChanges {
  const given = body.attributes;
  if (given === null || typeof given !== 'object' || Array.isArray(given)) throw new ValueError('attributes must be an object such as { "pmin": 10, "pmax": 60 }');
  const changes: AttributeChanges = {};
  for (const [name, value] of Object.entries(given)) {
    if (!(ATTRIBUTES as readonly string[]).includes(name)) throw new ValueError(`unknown attribute "${name}" (one of ${ATTRIBUTES.join(', ')})`);
    if (value === null || value === '') changes[name as (typeof ATTRIBUTES)[number]] = null;
    else if (typeof value === 'number' && Number.isFinite(value)) changes[name as (typeof ATTRIBUTES)[number]] = value;
    else if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) changes[name as (typeof ATTRIBUTES)[number]] = Number(value);
    else throw new ValueError(`attribute ${name} must be a number, or null to remove it`);
  }
  if (Object.keys(changes).length === 0) throw new ValueError('no attribute given (pmin, pmax, gt, lt, st)');
  return changes;
}

export function explorerRoutes(RED: Red): void {
  const admin = RED.httpAdmin;
  if (!admin) return;
  const permission = (name: 'read' | 'write') => (RED.auth ? [RED.auth.needsPermission(`lwm2m-server.${name}`)] : []);

  const serverNode = (id: string): ServerConfigNode => {
    const node = RED.nodes.getNode(id) as ServerConfigNode | null;
    if (!node?.server || !node.explorer) throw new RouteError(404, 'NOT_FOUND', `no lwm2m-server node ${id} is deployed`);
    return node;
  };
  const registered = (node: ServerConfigNode, endpoint: string) => {
    const registration = node.server.registration(endpoint);
    if (!registration) throw new LwM2MError('NOT_REGISTERED', `${endpoint} is not registered with ${node.name || 'this server'}`);
    return registration;
  };
  /** the body's path, checked before anything is sent */
  const pathOf = (body: Record<string, unknown>): string => {
    if (typeof body.path !== 'string' || body.path === '') throw new ValueError('path is missing, e.g. "/3/0/9"');
    try {
      return LwM2MPath.parse(body.path).toString();
    } catch (error) {
      throw new ValueError(`invalid path "${body.path}": ${(error as Error).message}`);
    }
  };
  const answer = (res: Response, work: () => unknown) => {
    Promise.resolve()
      .then(work)
      .then(
        (body) => res.json(body),
        (error: unknown) => res.status(statusOf(error)).json(error instanceof RouteError ? { message: error.message, code: error.code } : errorInfo(error)),
      );
  };

  admin.get('/lwm2m/servers', ...permission('read'), (_req: Request, res: Response) => {
    const servers: unknown[] = [];
    RED.nodes.eachNode?.((config) => {
      if (config.type !== 'lwm2m-server') return;
      const node = RED.nodes.getNode(config.id) as ServerConfigNode | null;
      if (!node?.server) return;
      const secure = node.listening ? node.server.secureAddress() : undefined;
      servers.push({
        id: node.id,
        name: node.name || '',
        port: node.listening ? node.server.address().port : Number(config.port) || 5683,
        ...(secure ? { dtlsPort: secure.port } : {}),
        listening: Boolean(node.listening),
        ...(node.failure ? { error: node.failure.message } : {}),
        devices: node.server.registrations().length,
      });
    });
    res.json(servers);
  });

  admin.get('/lwm2m/servers/:id/devices', ...permission('read'), (req: Request, res: Response) => answer(res, () => serverNode(req.params.id!).explorer!.devices()));

  admin.get('/lwm2m/servers/:id/devices/:endpoint/tree', ...permission('read'), (req: Request, res: Response) =>
    answer(res, async () => {
      const node = serverNode(req.params.id!);
      await node.ready.catch(() => undefined);
      const tree = deviceTree(node.server.model, registered(node, req.params.endpoint!));
      return { ...tree, observing: node.explorer!.observing(tree.endpoint) };
    }),
  );

  // the trace panel: the kept entries (of one device, the latest `limit`), and switching the trace on or off
  admin.get('/lwm2m/servers/:id/trace', ...permission('read'), (req: Request, res: Response) =>
    answer(res, () => {
      const node = serverNode(req.params.id!);
      const endpoint = typeof req.query?.endpoint === 'string' && req.query.endpoint !== '' ? req.query.endpoint : undefined;
      const limit = req.query?.limit === undefined ? TRACE_PAGE : Number(req.query.limit);
      if (!Number.isSafeInteger(limit) || limit < 0) throw new ValueError('limit must be a whole number');
      const trace = node.server.trace;
      return { size: trace.size, entries: trace.entries({ ...(endpoint !== undefined ? { endpoint } : {}), limit: Math.min(limit, TRACE_PAGE) }) };
    }),
  );
  admin.post('/lwm2m/servers/:id/trace', ...permission('write'), (req: Request, res: Response) =>
    answer(res, () => {
      const node = serverNode(req.params.id!);
      const body = req.body !== null && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
      const size = Number(body.size);
      if (!Number.isSafeInteger(size) || size < 0 || size > MAX_TRACE_SIZE) throw new ValueError(`size must be a whole number of messages from 0 to ${MAX_TRACE_SIZE}`);
      node.server.setTrace({ size });
      node.explorer!.trace.follow();
      if (body.clear === true) node.server.trace.clear();
      return { size: node.server.trace.size };
    }),
  );

  type Operation = (node: ServerConfigNode, endpoint: string, body: Record<string, unknown>) => Promise<unknown>;
  const operation = (name: string, level: 'read' | 'write', run: Operation) => {
    admin.post(`/lwm2m/servers/:id/devices/:endpoint/${name}`, ...permission(level), (req: Request, res: Response) =>
      answer(res, () => {
        const node = serverNode(req.params.id!);
        const body = req.body !== null && typeof req.body === 'object' ? (req.body as Record<string, unknown>) : {};
        registered(node, req.params.endpoint!);
        return run(node, req.params.endpoint!, body);
      }),
    );
  };

  operation('read', 'read', async (node, endpoint, body) => {
    const path = pathOf(body);
    return { path, value: toJsonValue(await node.server.read(endpoint, path)) };
  });
  operation('discover', 'read', async (node, endpoint, body) => {
    const path = pathOf(body);
    const links = await node.server.discover(endpoint, path);
    return { path, links: links.map((link) => ({ path: link.uri, attributes: { ...link.attributes } })) };
  });
  operation('write', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    if (body.mode !== undefined && body.mode !== 'replace' && body.mode !== 'update') throw new ValueError('mode must be "replace" or "update"');
    await node.server.write(endpoint, path, fromJsonValue(body.value), { mode: (body.mode as 'replace' | 'update' | undefined) ?? 'replace' });
    return { path };
  });
  operation('execute', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    if (body.args !== undefined && typeof body.args !== 'string') throw new ValueError("args must be a string such as 0='fw',1");
    await node.server.execute(endpoint, path, (body.args as string | undefined) ?? '');
    return { path };
  });
  operation('write-attributes', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    await node.server.writeAttributes(endpoint, path, attributesOf(body));
    return { path };
  });
  operation('observe', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    return { path, value: toJsonValue(await node.explorer!.observe(endpoint, path)) };
  });
  operation('cancel', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    if (!(await node.explorer!.cancel(endpoint, path))) throw new RouteError(404, 'NOT_FOUND', `the explorer does not observe ${path} on ${endpoint}`);
    return { path };
  });
  operation('create', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    return { path: await node.server.create(endpoint, path, fromJsonValue(body.value ?? {})) };
  });
  operation('delete', 'write', async (node, endpoint, body) => {
    const path = pathOf(body);
    await node.server.delete(endpoint, path);
    return { path };
  });
}
