/**
 * `lwm2m-execute`: Execute a resource (e.g. Reboot, /3/0/4) with optional arguments
 * (`0='on',1`), on one device or on every device of a pattern or list (nodes/shared.ts, Fleet). Endpoint, path and arguments come from the node's typedInputs, else from the
 * message (`msg.payload` holds the arguments).
 */
import type { Node, NodeDef, NodeMessage, Red } from './red';
import { actionNode } from './shared';
import type { Settings } from './settings';

/**
 * The arguments: the node's setting, else `msg.payload` when it is text (an inject's timestamp is
 * not an argument list); a looked-up setting must be text.
 */
async function argumentsOf(msg: NodeMessage, settings: Settings): Promise<string> {
  if (settings.isLiteral('args')) {
    const literal = await settings.value({}, 'args');
    if (literal) return String(literal);
    return typeof msg.payload === 'string' ? msg.payload : '';
  }
  const args = await settings.value(msg, 'args');
  if (args === undefined || args === null) return '';
  if (typeof args !== 'string') throw new Error(`execute arguments must be text such as 0='on',1, not ${typeof args}`);
  return args;
}

module.exports = (RED: Red) => {
  function ExecuteNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode, settings) => {
      const path = await settings.text(msg, 'path');
      const args = await argumentsOf(msg, settings);
      return {
        path,
        run: async (endpoint, out, options) => {
          await serverNode.server.execute(endpoint, path, args, options);
          Object.assign(out, { endpoint, path, topic: `${endpoint}${path}`, coapCode: '2.04' });
        },
      };
    });
  }
  RED.nodes.registerType('lwm2m-execute', ExecuteNode as never);
};
