/**
 * `lwm2m-notify-in`: every notification the server receives, filtered by endpoint and path prefix.
 */
import type { NotifyEvent } from '../lib';
import type { Node, NodeDef, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { endpointFilter, serverOf, withResourceNames } from './shared';

module.exports = (RED: Red) => {
  function NotifyInNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    const matches = endpointFilter(config.endpoint as string | undefined);
    const prefix = String(config.path ?? '').trim().replace(/\/+$/, '');
    const underPrefix = (path: string) => prefix === '' || path === prefix || path.startsWith(prefix + '/');
    const listener = (event: NotifyEvent) => {
      if (!matches(event.endpoint)) return;
      const paths = event.observation.paths;
      if (!paths.some(underPrefix)) return;
      const path = event.observation.composite ? [...paths] : paths[0]!;
      node.send({
        topic: `${event.endpoint}${event.observation.composite ? '' : paths[0]}`,
        endpoint: event.endpoint,
        path,
        payload: config.names
          ? event.observation.composite
            ? Object.fromEntries(Object.entries(event.value as Record<string, unknown>).map(([path, value]) => [path, withResourceNames(serverNode.server.model, path, value)]))
            : withResourceNames(serverNode.server.model, paths[0]!, event.value)
          : event.value,
        observation: event.observation.id,
        sequence: event.sequence,
      });
    };
    serverNode.server.on('notify', listener);
    serverNode.register(node);
    node.on('close', (_removed, done) => {
      serverNode.server.off('notify', listener);
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-notify-in', NotifyInNode as never);
};
