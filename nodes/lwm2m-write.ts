/**
 * `lwm2m-write`: Write (replace or partial update), Write-Composite, Write-Attributes, Create and
 * Delete on a registered device. Endpoint, path, operation and format come from the node's
 * typedInputs, else from the message; the value is `msg.payload`, the attributes `msg.attributes`.
 */
import type { AttributeChanges, CompositeValue } from '../lib';
import type { Node, NodeDef, Red } from './red';
import { actionNode } from './shared';

const OPERATIONS = ['write', 'update', 'writeComposite', 'writeAttributes', 'create', 'delete'] as const;
type Operation = (typeof OPERATIONS)[number];
const SUCCESS: Record<Operation, string> = { write: '2.04', update: '2.04', writeComposite: '2.04', writeAttributes: '2.04', create: '2.01', delete: '2.02' };

module.exports = (RED: Red) => {
  function WriteNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode, settings) => {
      const endpoint = await settings.text(msg, 'endpoint');
      const operation = await settings.choice(msg, 'operation', OPERATIONS, 'write');
      const server = serverNode.server;
      const format = await settings.format(msg);
      const path = operation === 'writeComposite' ? '' : await settings.text(msg, 'path');
      if (operation === 'writeComposite') {
        if (typeof msg.payload !== 'object' || msg.payload === null) throw new Error('Write-Composite needs msg.payload = { "/path": value, ... }');
        await server.writeComposite(endpoint, msg.payload as CompositeValue, { format });
      } else if (operation === 'writeAttributes') {
        const attributes = (msg.attributes ?? msg.payload) as AttributeChanges;
        if (typeof attributes !== 'object' || attributes === null) throw new Error('Write-Attributes needs msg.attributes = { pmin: 10, ... }');
        await server.writeAttributes(endpoint, path, attributes);
      } else if (operation === 'create') {
        msg.payload = await server.create(endpoint, path, msg.payload, { format });
      } else if (operation === 'delete') {
        await server.delete(endpoint, path);
      } else {
        await server.write(endpoint, path, msg.payload, { format, mode: operation === 'update' ? 'update' : 'replace' });
      }
      msg.endpoint = endpoint;
      if (path) msg.path = path;
      msg.topic = `${endpoint}${path}`;
      msg.coapCode = SUCCESS[operation];
    });
  }
  RED.nodes.registerType('lwm2m-write', WriteNode as never);
};
