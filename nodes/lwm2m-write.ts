/**
 * `lwm2m-write`: Write (replace or partial update), Write-Composite, Write-Attributes, Create and
 * Delete on a registered device. Endpoint, path, operation and value come from the node, else from
 * the message (`msg.payload` is the value; `msg.attributes` the attributes).
 */
import type { AttributeChanges, CompositeValue } from '../lib';
import type { Node, NodeDef, Red } from './red';
import { FORMATS, actionNode, settingOr } from './shared';

const OPERATIONS = ['write', 'update', 'writeComposite', 'writeAttributes', 'create', 'delete'] as const;
type Operation = (typeof OPERATIONS)[number];
const SUCCESS: Record<Operation, string> = { write: '2.04', update: '2.04', writeComposite: '2.04', writeAttributes: '2.04', create: '2.01', delete: '2.02' };

module.exports = (RED: Red) => {
  function WriteNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode) => {
      const endpoint = settingOr(config.endpoint, msg.endpoint, 'endpoint');
      const operation = String(config.operation || msg.operation || 'write') as Operation;
      if (!OPERATIONS.includes(operation)) throw new Error(`operation must be one of ${OPERATIONS.join(', ')}, not ${operation}`);
      const server = serverNode.server;
      const format = FORMATS[String(config.format || 'auto')];
      const path = operation === 'writeComposite' ? '' : settingOr(config.path, msg.path, 'path');
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
