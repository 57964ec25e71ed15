/**
 * The admin routes the editor's endpoint and path fields complete from (resources/lwm2m-editor.js),
 * all under /lwm2m/ and guarded by the `lwm2m-server.read` permission.
 */
import { defaultModel, type ObjectDefinition, type ObjectModel, type Registration, type ResourceDefinition } from '../lib';
import type { Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';

/** One completion of a path field. */
export interface PathSuggestion {
  path: string;
  /** `Device / Battery Level — /3/0/9` */
  label: string;
  /** a resource's data type and operations, `Integer · R` (`E` for an executable one) */
  detail?: string;
  /** the device announced this object or instance in its registration */
  registered?: true;
}

/**
 * Security (/0) holds the device's keys and only a bootstrap server may touch it; resources without
 * operations (every one of /0, OSCORE's) are not reachable by a LwM2M server either.
 */
const accessible = (resource: ResourceDefinition) => resource.operations !== '';
const offered = (object: ObjectDefinition) => object.id !== 0 && [...object.resources.values()].some(accessible);

function resourceSuggestion(object: ObjectDefinition, instance: number, resource: ResourceDefinition, registered: boolean): PathSuggestion {
  const path = `/${object.id}/${instance}/${resource.id}`;
  // an executable resource has no data type: its operations say it all
  const detail = resource.type === 'none' ? resource.operations : `${resource.type} · ${resource.operations}`;
  return { path, label: `${object.name} / ${resource.name} — ${path}`, detail, ...(registered ? { registered: true as const } : {}) };
}

/** Every object and resource of the model (instance 0), for a device not known yet. */
export function modelPaths(model: ObjectModel): PathSuggestion[] {
  const paths: PathSuggestion[] = [];
  for (const object of model.objects().filter(offered)) {
    paths.push({ path: `/${object.id}`, label: `${object.name} — /${object.id}` });
    paths.push({ path: `/${object.id}/0`, label: `${object.name} / instance 0 — /${object.id}/0` });
    for (const resource of [...object.resources.values()].filter(accessible)) paths.push(resourceSuggestion(object, 0, resource, false));
  }
  return paths;
}

/**
 * The objects and instances a device registered, each instance with its resources from the model
 * (the version the device announced), then the rest of the model.
 */
export function devicePaths(model: ObjectModel, registration: Registration): PathSuggestion[] {
  const paths: PathSuggestion[] = [];
  const seen = new Set<string>();
  const add = (suggestion: PathSuggestion) => {
    if (seen.has(suggestion.path)) return;
    seen.add(suggestion.path);
    paths.push(suggestion);
  };
  for (const entry of registration.objects) {
    if (entry.objectId === 0) continue;
    const object = model.object(entry.objectId, entry.version);
    const name = object?.name ?? `Object ${entry.objectId}`;
    add({ path: `/${entry.objectId}`, label: `${name} — /${entry.objectId}`, registered: true });
    if (entry.instanceId === undefined) continue;
    add({ path: `/${entry.objectId}/${entry.instanceId}`, label: `${name} / instance ${entry.instanceId} — /${entry.objectId}/${entry.instanceId}`, registered: true });
    if (object) for (const resource of [...object.resources.values()].filter(accessible)) add(resourceSuggestion(object, entry.instanceId, resource, true));
  }
  for (const suggestion of modelPaths(model)) add(suggestion);
  return paths;
}

interface Request {
  params: Record<string, string>;
}
interface Response {
  json(body: unknown): void;
}

export function adminRoutes(RED: Red): void {
  const guard = RED.auth ? [RED.auth.needsPermission('lwm2m-server.read')] : [];
  const serverNode = (id: string) => (RED.nodes.getNode(id) as ServerConfigNode | null) ?? undefined;
  /**
   * The model of a deployed server node (bundled objects and its user models folder), once the
   * folder has loaded; a server node not deployed yet has the bundled model only.
   */
  const modelOf = async (node: ServerConfigNode | undefined): Promise<ObjectModel> => {
    if (!node?.server) return defaultModel();
    await node.ready.catch(() => undefined);
    return node.server.model;
  };

  RED.httpAdmin?.get('/lwm2m/servers/:id/endpoints', ...guard, (req: Request, res: Response) => {
    const node = serverNode(req.params.id!);
    res.json(node?.server ? node.server.registrations().map((registration) => registration.endpoint).sort() : []);
  });
  // the path completions when no server is chosen yet
  RED.httpAdmin?.get('/lwm2m/model', ...guard, (_req: Request, res: Response) => {
    res.json(modelPaths(defaultModel()));
  });
  RED.httpAdmin?.get('/lwm2m/servers/:id/paths', ...guard, async (req: Request, res: Response) => {
    res.json(modelPaths(await modelOf(serverNode(req.params.id!))));
  });
  RED.httpAdmin?.get('/lwm2m/servers/:id/devices/:endpoint/paths', ...guard, async (req: Request, res: Response) => {
    const node = serverNode(req.params.id!);
    const model = await modelOf(node);
    const registration = node?.server?.registration(req.params.endpoint!);
    res.json(registration ? devicePaths(model, registration) : modelPaths(model));
  });
}
