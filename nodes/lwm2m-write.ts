/**
 * `lwm2m-write`: Write (replace or partial update), Write-Composite, Write-Attributes, Create and
 * Delete on a registered device, or on every device of a pattern or list (nodes/shared.ts,
 * Fleet). Endpoint, path, operation and format come from the node's typedInputs, else from the
 * message; the value from the value field (`msg.payload` unless set otherwise), the attributes
 * from `msg.attributes`.
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
      const operation = await settings.choice(msg, 'operation', OPERATIONS, 'write');
      const server = serverNode.server;
      const format = await settings.format(msg);
      const path = operation === 'writeComposite' ? '' : await settings.text(msg, 'path');
      const value = operation === 'delete' ? undefined : await settings.typed(msg, 'value', VALUE);
      if (value === undefined && operation !== 'delete' && !(operation === 'writeAttributes' && msg.attributes !== undefined)) {
        throw new Error(`no value to write: ${valueSource(config)} is undefined`);
      }
      if (operation === 'writeComposite' && (typeof value !== 'object' || value === null)) throw new Error(`Write-Composite needs ${valueSource(config)} = { "/path": value, ... }`);
      const attributes = (msg.attributes ?? value) as AttributeChanges;
      if (operation === 'writeAttributes' && (typeof attributes !== 'object' || attributes === null)) throw new Error('Write-Attributes needs msg.attributes = { pmin: 10, ... }');
      return {
        path: path || undefined,
        run: async (endpoint, out, options) => {
          if (operation === 'writeComposite') await server.writeComposite(endpoint, value as CompositeValue, { ...options, format });
          else if (operation === 'writeAttributes') await server.writeAttributes(endpoint, path, attributes, options);
          else if (operation === 'create') out.payload = await server.create(endpoint, path, value, { ...options, format });
          else if (operation === 'delete') await server.delete(endpoint, path, options);
          else await server.write(endpoint, path, value, { ...options, format, mode: operation === 'update' ? 'update' : 'replace' });
          out.endpoint = endpoint;
          if (path) out.path = path;
          out.topic = `${endpoint}${path}`;
          out.coapCode = SUCCESS[operation];
        },
      };
    });
  }
  RED.nodes.registerType('lwm2m-write', WriteNode as never);
};
