/**
 * `lwm2m-send-in`: every Send (POST /dp) the server receives. `msg.payload` is `{ path: latest
 * value }`, `msg.records` every record with its time.
 */
import type { SendEvent } from '../lib';
import type { Node, NodeDef, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { endpointFilter, serverOf } from './shared';

module.exports = (RED: Red) => {
  function SendInNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    const matches = endpointFilter(config.endpoint as string | undefined);
    const listener = (event: SendEvent) => {
      if (!matches(event.endpoint)) return;
      node.send({
        topic: event.endpoint,
        endpoint: event.endpoint,
        path: Object.keys(event.values),
        payload: event.values,
        records: event.records.map((record) => ({ path: record.path.toString(), value: record.value, ...(record.time !== undefined ? { time: record.time } : {}) })),
      });
    };
    serverNode.server.on('send', listener);
    serverNode.register(node);
    node.on('close', (_removed, done) => {
      serverNode.server.off('send', listener);
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-send-in', SendInNode as never);
};
