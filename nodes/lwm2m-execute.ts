/**
 * `lwm2m-execute`: Execute a resource (e.g. Reboot, /3/0/4) with optional arguments
 * (`0='on',1`) from the node or `msg.payload`.
 */
import type { Node, NodeDef, NodeMessage, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { failure, serverOf, settingOr } from './shared';

module.exports = (RED: Red) => {
  function ExecuteNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    serverNode.register(node);
    node.on('input', async (msg: NodeMessage, send, done) => {
      try {
        const endpoint = settingOr(config.endpoint, msg.endpoint, 'endpoint');
        const path = settingOr(config.path, msg.path, 'path');
        const args = config.args ? String(config.args) : typeof msg.payload === 'string' ? msg.payload : '';
        await serverNode.server.execute(endpoint, path, args);
        Object.assign(msg, { endpoint, path, topic: `${endpoint}${path}`, coapCode: '2.04' });
        node.status({});
        send(msg);
        done();
      } catch (error) {
        const problem = failure(msg, error);
        node.status({ fill: 'red', shape: 'ring', text: problem.statusText });
        done(problem);
      }
    });
    node.on('close', (_removed, done) => serverNode.deregister(node, done));
  }
  RED.nodes.registerType('lwm2m-execute', ExecuteNode as never);
};
