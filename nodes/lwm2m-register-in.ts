/**
 * `lwm2m-register-in`: a message per registration event (register, update, deregister, expire,
 * awake, sleep), each of which can be switched off, for the endpoints matching a filter. Any
 * input message is answered with the current registrations (event `list`). With "security and
 * error events" on, also the server's failed DTLS handshakes and bad datagrams (rate-limited).
 * Status: the number of registered devices.
 */
import type { ClusterRegistrationEvent, Registration } from '../lib';
import type { Node, NodeDef, NodeMessage, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { endpointFilter, onInput, registrationPayload, securityEventMessage, serverOf, type SecurityEventName } from './shared';

const EVENTS = ['register', 'update', 'deregister', 'expire', 'awake', 'sleep'] as const;
const SECURITY_EVENTS: readonly SecurityEventName[] = ['handshakeFailed', 'badDatagram', 'eventsSuppressed'];
const byName = new Intl.Collator('en', { numeric: true });

module.exports = (RED: Red) => {
  function RegisterInNode(this: Node & { serverStatus?: (status: object) => void }, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    const server = serverNode.server;
    const matches = endpointFilter(config.endpoint as string | undefined);
    const count = () => {
      const devices = server.registrations().filter((registration) => matches(registration.endpoint)).length;
      node.status({ fill: 'green', shape: 'dot', text: `${devices} device${devices === 1 ? '' : 's'}` });
    };
    // the server's state shows until the first device count
    node.serverStatus = (status) => (status as { fill?: string }).fill === 'green' ? count() : node.status(status);
    const listeners = new Map<string, (...args: unknown[]) => void>();
    for (const event of EVENTS) {
      const enabled = config[event] !== false;
      const listener = (registration: Registration, detail?: unknown) => {
        if (!matches(registration.endpoint)) return;
        if (event === 'register' || event === 'deregister' || event === 'expire') count();
        if (!enabled) return;
        const msg: Record<string, unknown> = { topic: registration.endpoint, endpoint: registration.endpoint, event, payload: registrationPayload(registration) };
        if (event === 'update' && Array.isArray(detail)) msg.changes = detail;
        if (event === 'register' && detail) msg.previous = registrationPayload(detail as Registration);
        node.send(msg);
      };
      listeners.set(event, listener as (...args: unknown[]) => void);
      server.on(event, listener);
    }
    // off by default: flows made before the option existed see no new messages
    if (config.securityEvents === true) {
      for (const event of SECURITY_EVENTS) {
        const listener = (detail: unknown) => node.send(securityEventMessage(server, event, detail as never));
        listeners.set(event, listener);
        server.on(event, listener);
      }
    }
    // the count includes devices that came or went through another instance sharing the store (their events are that instance's)
    const recount = (event: ClusterRegistrationEvent) => {
      if (event.kind !== 'update' && matches(event.registration.endpoint)) count();
    };
    listeners.set('clusterRegistration', recount as (...args: unknown[]) => void);
    server.on('clusterRegistration', recount);
    // any input: the registrations of the matching endpoints now, in one message
    onInput(node, serverNode, async (msg: NodeMessage, send) => {
      const matching = server.registrations().filter((registration) => matches(registration.endpoint));
      matching.sort((a, b) => byName.compare(a.endpoint, b.endpoint));
      msg.topic = 'registrations';
      msg.event = 'list';
      msg.payload = matching.map(registrationPayload);
      send(msg);
    });
    serverNode.register(node);
    node.on('close', (_removed, done) => {
      for (const [event, listener] of listeners) server.off(event, listener);
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-register-in', RegisterInNode as never);
};
