/**
 * `lwm2m-notify-in`: every notification the server receives, filtered by endpoint and path prefix.
 */
import type { NotifyEvent } from '../lib';
import type { Node, NodeDef, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { endpointFilter, notificationMessage, serverOf } from './shared';

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
      node.send(notificationMessage(event, serverNode.server.model, Boolean(config.names)));
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
