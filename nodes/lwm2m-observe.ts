/**
 * `lwm2m-observe`: starts an Observe (or Observe-Composite for several paths) with optional
 * attributes, on one device or on every device of a pattern or list (one observation each;
 * nodes/shared.ts, Fleet), and emits every notification of the observations it started.
 * `msg.action = "cancel"` cancels them. With auto-observe it observes the configured paths on every
 * device that registers (and again when it registers anew) whose endpoint matches the filter:
 * telemetry without an inject.
 */
import type { AttributeChanges, NotifyEvent, Observation, ObservationEndedEvent, Registration, RequestOptions } from '../lib';
import type { Node, NodeDef, NodeMessage, NodeStatus, Red } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { Fleet, endpointFilter, entriesMatcher, notificationMessage, observationEndedMessage, onInput, runTarget, serverOf, type FleetSummary } from './shared';
import { Settings, formatOf, messageText, pathsOf, targetOf, type Target } from './settings';

const ATTRIBUTES = ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax'] as const;

/** Auto-observe runs without a message, so its endpoint filter, paths and format must be literals. */
function autoObserveSettings(settings: Settings, node: Node): boolean {
  const lookedUp = ['endpoint', 'path', 'format'].filter((name) => !settings.isLiteral(name));
  if (lookedUp.length === 0) return true;
  node.warn(`auto-observe is off: its ${lookedUp.join(', ')} must be set on the node, not taken from msg, flow, global, env or JSONata`);
  return false;
}

/** The auto-observe filter: a pattern (`sim-*`, empty for all) or a comma-separated list of them. */
function autoFilter(filter: unknown): (endpoint: string) => boolean {
  const text = String(filter ?? '').trim();
  if (!text.includes(',')) return endpointFilter(text);
  return entriesMatcher(text.split(',').map((entry) => entry.trim()).filter(Boolean));
}

/** With auto-observe the endpoint setting is a filter, so a message names its device(s) itself. */
function messageTarget(msg: NodeMessage): Target {
  if (Array.isArray(msg.endpoint)) return targetOf(msg.endpoint, 'msg.endpoint');
  return targetOf(messageText(msg, 'endpoint'), 'msg.endpoint');
}

module.exports = (RED: Red) => {
  function ObserveNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    const server = serverNode.server;
    const mine = new Map<string, Observation>();
    const configured: AttributeChanges = {};
    for (const name of ATTRIBUTES) {
      const value = config[name];
      if (value !== undefined && value !== '' && Number.isFinite(Number(value))) configured[name] = Number(value);
    }
    const settings = new Settings(RED, node, config);
    const fleet = new Fleet(RED, node, server);
    /** set on close: an auto-observe still under way then fails as the deploy ends it, which is no news */
    let closing = false;
    const showCount = () => node.status(mine.size > 0 ? { fill: 'green', shape: 'dot', text: `observing ${mine.size}` } : {});

    const start = async (endpoint: string, paths: string[], attributes: AttributeChanges, options: RequestOptions): Promise<Observation> => {
      const observation =
        paths.length > 1 ? await server.observeComposite(endpoint, paths, attributes, options) : await server.observe(endpoint, paths[0]!, attributes, options);
      mine.set(observation.id, observation);
      showCount();
      return observation;
    };

    // notifications leave by the first output; when it goes nowhere (the flow reads them from
    // notify-in) no message is built per notification
    const wires = config.wires as unknown;
    const first = Array.isArray(wires) ? (wires[0] as unknown) : undefined;
    const wired = !Array.isArray(first) || first.length > 0;
    const onNotify = (event: NotifyEvent) => {
      if (!wired || !mine.has(event.observation.id)) return;
      node.send(notificationMessage(event, server.model, Boolean(config.names)));
    };
    // however one of its observations ends (cancelled, replaced, the device re-registered, left,
    // expired, or ended it with an error code), the server says so; with "observation ends" the flow hears it too
    const tellEnds = config.observationEnds === true;
    const onEnded = (event: ObservationEndedEvent) => {
      if (!mine.delete(event.id)) return;
      showCount();
      if (tellEnds && !closing) node.send(observationEndedMessage(event));
    };
    server.on('notify', onNotify);
    server.on('observationEnded', onEnded);

    // auto-observe: every (re)registration of a matching device, by the node's literal settings
    const autoObserve = Boolean(config.autoObserve) && autoObserveSettings(settings, node);
    const matches = autoFilter(config.endpoint);
    const autoPaths = pathsOf(config.path);
    const onRegister = (registration: Registration) => {
      if (!matches(registration.endpoint) || autoPaths.length === 0) return;
      start(registration.endpoint, autoPaths, configured, { format: formatOf(config.format) }).catch((error: Error) => {
        if (!closing) node.warn(`auto-observe of ${registration.endpoint} failed: ${error.message}`);
      });
    };
    if (autoObserve) {
      server.on('register', onRegister);
      // devices registered before this node was deployed
      void serverNode.ready.then(() => server.registrations().forEach(onRegister)).catch(() => undefined);
    }

    // after a fleet job: how many it observes, and what did not start
    const fleetStatus = (summary: FleetSummary): NodeStatus | undefined => {
      if (summary.ok + summary.failed + summary.skipped === 0) return undefined;
      const problems = [...(summary.failed ? [`${summary.failed} failed`] : []), ...(summary.skipped ? [`${summary.skipped} skipped`] : [])];
      const text = [`observing ${mine.size}`, ...problems].join(', ');
      return problems.length > 0 ? { fill: 'yellow', shape: 'ring', text } : { fill: 'green', shape: 'dot', text };
    };

    onInput(node, serverNode, async (msg: NodeMessage, send) => {
      const target = config.autoObserve ? messageTarget(msg) : await settings.target(msg);
      if (msg.action === 'cancel') {
        const matches = target.kind === 'one' ? (endpoint: string) => endpoint === target.endpoint : entriesMatcher(target.entries);
        const wanted = pathsOf(msg.path);
        const cancelled: string[] = [];
        for (const observation of [...mine.values()]) {
          if (!matches(observation.endpoint) || (wanted.length > 0 && !wanted.some((path) => observation.paths.includes(path)))) continue;
          cancelled.push(observation.id);
          // the server's observationEnded (reason cancelled) takes it out of `mine`
          await server.cancelObservation(observation.id).catch(() => undefined);
          mine.delete(observation.id);
        }
        showCount();
        msg.payload = cancelled;
        send(msg);
        return;
      }
      const paths = await settings.paths(msg);
      const attributes = { ...configured, ...((msg.attributes as AttributeChanges | undefined) ?? {}) };
      const format = await settings.format(msg);
      const path = paths.length > 1 ? paths : paths[0]!;
      const job = {
        path,
        run: async (endpoint: string, out: NodeMessage, options: RequestOptions) => {
          const observation = await start(endpoint, paths, attributes, { ...options, format });
          out.payload = observation.value;
          Object.assign(out, { endpoint, path: Array.isArray(path) ? [...path] : path, observation: observation.id, coapCode: '2.05' });
        },
      };
      if ((await runTarget(fleet, target, job, msg, send, settings, fleetStatus)) === 'one') send(msg);
    });

    serverNode.register(node);
    node.on('close', (_removed, done) => {
      closing = true;
      fleet.close();
      server.off('notify', onNotify);
      server.off('observationEnded', onEnded);
      server.off('register', onRegister);
      // the device is told in the background; close must not wait for a device that may be gone
      for (const id of mine.keys()) void server.cancelObservation(id).catch(() => undefined);
      mine.clear();
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-observe', ObserveNode as never);
};
