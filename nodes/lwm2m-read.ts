/**
 * `lwm2m-read`: Read, Read-Composite or Discover on a registered device, or on every device of a
 * pattern or list (nodes/shared.ts, Fleet). Endpoint, path(s), operation and format come from the
 * node's typedInputs, else from the message; the result is `msg.payload`.
 */
import type { Node, NodeDef, Red } from './red';
import { actionNode, compositeWithResourceNames, withResourceNames } from './shared';

const OPERATIONS = ['read', 'readComposite', 'discover'] as const;

module.exports = (RED: Red) => {
  function ReadNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode, settings) => {
      const paths = await settings.paths(msg);
      const operation = await settings.choice(msg, 'operation', OPERATIONS, 'read');
      const format = await settings.format(msg);
      const server = serverNode.server;
      const path = operation === 'readComposite' ? paths : paths[0]!;
      return {
        path,
        run: async (endpoint, out, options) => {
          if (operation === 'readComposite') out.payload = await server.readComposite(endpoint, paths, { ...options, format });
          else if (operation === 'discover') out.payload = await server.discover(endpoint, paths[0]!, options);
          else out.payload = await server.read(endpoint, paths[0]!, { ...options, format });
          if (config.names && operation === 'read') out.payload = withResourceNames(server.model, paths[0]!, out.payload);
          if (config.names && operation === 'readComposite') out.payload = compositeWithResourceNames(server.model, out.payload);
          out.endpoint = endpoint;
          out.path = operation === 'readComposite' ? [...paths] : paths[0];
          out.topic = `${endpoint}${operation === 'readComposite' ? '' : paths[0]}`;
          out.coapCode = '2.05';
        },
      };
    });
  }
  RED.nodes.registerType('lwm2m-read', ReadNode as never);
};
