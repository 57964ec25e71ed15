/**
 * `lwm2m-trace`: one message per CoAP message the server sends or receives (its trace entry),
 * optionally only a device's. While deployed it switches the server's trace on by itself, even when
 * the server node keeps no trace buffer: streaming to the flow needs none, and listening is what
 * turns the tap on (the server's `trace` event).
 */
import type { TraceEntry } from '../lib';
import type { Node, NodeDef, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { endpointFilter, serverOf } from './shared';

module.exports = (RED: Red) => {
  function TraceNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    const pattern = String(config.endpoint ?? '').trim();
    const matches = endpointFilter(pattern);
    const everything = pattern === '' || pattern === '*';
    const listener = (entry: TraceEntry) => {
      // with a filter, a message from a peer the server cannot name (yet) is not the device's
      if (!everything && (entry.endpoint === undefined || !matches(entry.endpoint))) return;
      // the server's buffer keeps the same entry: the flow gets a copy it may change
      const payload = serverNode.server.trace.size > 0 ? structuredClone(entry) : entry;
      node.send({ topic: entry.endpoint ?? `${entry.peer.address}:${entry.peer.port}`, ...(entry.endpoint !== undefined ? { endpoint: entry.endpoint } : {}), payload });
    };
    serverNode.server.on('trace', listener);
    serverNode.register(node);
    node.on('close', (_removed, done) => {
      serverNode.server.off('trace', listener);
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-trace', TraceNode as never);
};
