/**
 * `lwm2m-read`: Read, Read-Composite or Discover on a registered device. Endpoint, path(s),
 * operation and format come from the node's typedInputs, else from the message; the result is
 * `msg.payload`.
 */
import type { Node, NodeDef, Red } from './red';
import { actionNode, compositeWithResourceNames, withResourceNames } from './shared';

const OPERATIONS = ['read', 'readComposite', 'discover'] as const;

module.exports = (RED: Red) => {
  function ReadNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode, settings) => {
      const endpoint = await settings.text(msg, 'endpoint');
      const paths = await settings.paths(msg);
      const operation = await settings.choice(msg, 'operation', OPERATIONS, 'read');
      const format = await settings.format(msg);
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
