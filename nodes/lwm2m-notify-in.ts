/**
 * `lwm2m-notify-in`: every notification the server receives, filtered by endpoint and path prefix;
 * with "observation ends", also a message when an observation under the filters ends, and why.
 */
import type { NotifyEvent, ObservationEndedEvent } from '../lib';
import type { Node, NodeDef, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { endpointFilter, notificationMessage, observationEndedMessage, serverOf } from './shared';

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
    const onEnded = (event: ObservationEndedEvent) => {
      if (matches(event.endpoint) && event.paths.some(underPrefix)) node.send(observationEndedMessage(event));
    };
    serverNode.server.on('notify', listener);
    // off by default: flows made before the option existed see no new messages
    if (config.observationEnds === true) serverNode.server.on('observationEnded', onEnded);
    serverNode.register(node);
    node.on('close', (_removed, done) => {
      serverNode.server.off('notify', listener);
      serverNode.server.off('observationEnded', onEnded);
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-notify-in', NotifyInNode as never);
};
