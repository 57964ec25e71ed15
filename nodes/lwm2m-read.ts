/**
 * `lwm2m-read`: Read, Read-Composite or Discover on a registered device. Endpoint, path(s),
 * operation and format come from the node, else from the message; the result is `msg.payload`.
 */
import type { Node, NodeDef, NodeMessage, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { FORMATS, failure, serverOf, settingOr } from './shared';

const OPERATIONS = ['read', 'readComposite', 'discover'] as const;
type Operation = (typeof OPERATIONS)[number];

function pathsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return value.split(',').map((path) => path.trim()).filter(Boolean);
  return [];
}

module.exports = (RED: Red) => {
  function ReadNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    serverNode.register(node);
    node.on('input', async (msg: NodeMessage, send, done) => {
      try {
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
        msg.endpoint = endpoint;
        msg.path = operation === 'readComposite' ? paths : paths[0];
        msg.topic = `${endpoint}${operation === 'readComposite' ? '' : paths[0]}`;
        msg.coapCode = '2.05';
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
  RED.nodes.registerType('lwm2m-read', ReadNode as never);
};
