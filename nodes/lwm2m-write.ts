/**
 * `lwm2m-write`: Write (replace or partial update), Write-Composite, Write-Attributes, Create and
 * Delete on a registered device. Endpoint, path, operation and format come from the node's
 * typedInputs, else from the message; the value from the value field (`msg.payload` unless set
 * otherwise), the attributes from `msg.attributes`.
 */
import type { AttributeChanges, CompositeValue } from '../lib';
import type { Node, NodeDef, Red } from './red';
import { actionNode } from './shared';

const OPERATIONS = ['write', 'update', 'writeComposite', 'writeAttributes', 'create', 'delete'] as const;
type Operation = (typeof OPERATIONS)[number];
/** Nodes saved before the value field existed wrote `msg.payload`. */
const VALUE = { type: 'msg', value: 'payload' };
/** Where the value came from, for error messages: `msg.payload`, `flow.setpoint`, the value field. */
function valueSource(config: NodeDef): string {
  const type = String(config.valueType ?? VALUE.type);
  if (['msg', 'flow', 'global'].includes(type)) return `${type}.${String(config.valueType === undefined ? VALUE.value : config.value)}`;
  return 'the value field';
}
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
      const value = operation === 'delete' ? undefined : await settings.typed(msg, 'value', VALUE);
      if (value === undefined && operation !== 'delete' && !(operation === 'writeAttributes' && msg.attributes !== undefined)) {
        throw new Error(`no value to write: ${valueSource(config)} is undefined`);
      }
      if (operation === 'writeComposite') {
        if (typeof value !== 'object' || value === null) throw new Error(`Write-Composite needs ${valueSource(config)} = { "/path": value, ... }`);
        await server.writeComposite(endpoint, value as CompositeValue, { format });
      } else if (operation === 'writeAttributes') {
        const attributes = (msg.attributes ?? value) as AttributeChanges;
        if (typeof attributes !== 'object' || attributes === null) throw new Error('Write-Attributes needs msg.attributes = { pmin: 10, ... }');
        await server.writeAttributes(endpoint, path, attributes);
      } else if (operation === 'create') {
        msg.payload = await server.create(endpoint, path, value, { format });
      } else if (operation === 'delete') {
        await server.delete(endpoint, path);
      } else {
        await server.write(endpoint, path, value, { format, mode: operation === 'update' ? 'update' : 'replace' });
      }
      msg.endpoint = endpoint;
      if (path) msg.path = path;
      msg.topic = `${endpoint}${path}`;
      msg.coapCode = SUCCESS[operation];
    });
  }
  RED.nodes.registerType('lwm2m-write', WriteNode as never);
};
