/**
 * `lwm2m-execute`: Execute a resource (e.g. Reboot, /3/0/4) with optional arguments
 * (`0='on',1`) from the node or `msg.payload`.
 */
import type { Node, NodeDef, Red } from './red';
import { actionNode, settingOr } from './shared';

module.exports = (RED: Red) => {
  function ExecuteNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    actionNode(RED, this, config, async (msg, serverNode) => {
      const endpoint = settingOr(config.endpoint, msg.endpoint, 'endpoint');
      const path = settingOr(config.path, msg.path, 'path');
      const args = config.args ? String(config.args) : typeof msg.payload === 'string' ? msg.payload : '';
      await serverNode.server.execute(endpoint, path, args);
      Object.assign(msg, { endpoint, path, topic: `${endpoint}${path}`, coapCode: '2.04' });
    });
  }
  RED.nodes.registerType('lwm2m-execute', ExecuteNode as never);
};
