/**
 * `lwm2m-read`: Read, Read-Composite or Discover on a registered device. Endpoint, path(s),
 * operation and format come from the node, else from the message; the result is `msg.payload`.
 */
import type { Node, NodeDef, Red } from './red';
import { FORMATS, actionNode, compositeWithResourceNames, pathsOf, settingOr, withResourceNames } from './shared';

const OPERATIONS = ['read', 'readComposite', 'discover'] as const;
type Operation = (typeof OPERATIONS)[number];

module.exports = (RED: Red) => {
  function ReadNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode) => {
      const endpoint = settingOr(config.endpoint, msg.endpoint, 'endpoint');
      const paths = pathsOf(config.path || msg.path);
      const operation = String(config.operation || msg.operation || 'read') as Operation;
      const format = FORMATS[String(config.format || 'auto')] ?? (typeof msg.format === 'number' ? msg.format : undefined);
      if (paths.length === 0) throw new Error('no path: set one on the node or in msg.path');
      if (!OPERATIONS.includes(operation)) throw new Error(`operation must be one of ${OPERATIONS.join(', ')}, not ${operation}`);
      const server = serverNode.server;
      if (operation === 'readComposite') msg.payload = await server.readComposite(endpoint, paths, { format });
      else if (operation === 'discover') msg.payload = await server.discover(endpoint, paths[0]!);
      else msg.payload = await server.read(endpoint, paths[0]!, { format });
      if (config.names && operation === 'read') msg.payload = withResourceNames(server.model, paths[0]!, msg.payload);
      if (config.names && operation === 'readComposite') msg.payload = compositeWithResourceNames(server.model, msg.payload);
      msg.endpoint = endpoint;
      msg.path = operation === 'readComposite' ? paths : paths[0];
      msg.topic = `${endpoint}${operation === 'readComposite' ? '' : paths[0]}`;
      msg.coapCode = '2.05';
    });
  }
  RED.nodes.registerType('lwm2m-read', ReadNode as never);
};
