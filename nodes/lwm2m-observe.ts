/**
 * `lwm2m-observe`: starts an Observe (or Observe-Composite for several paths) with optional
 * attributes, on one device or on every device of a pattern or list (one observation each;
 * nodes/shared.ts, Fleet), and emits every notification of the observations it started.
 * `msg.action = "cancel"` cancels them. With auto-observe it observes the configured paths on every
 * device that registers (and again when it registers anew) whose endpoint matches the filter:
 * telemetry without an inject. With "observe again" (on unless unticked) an observation started by
 * a message that ends because its device registered anew starts again on the new registration.
 */
import type { AttributeChanges, ClusterRegistrationEvent, NotifyEvent, Observation, ObservationEndedEvent, Registration, RequestOptions } from '../lib';
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

/** What observing again needs of an observation a message started. */
interface ObserveRequest {
  endpoint: string;
  paths: string[];
  attributes: AttributeChanges;
  format: number | undefined;
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
    // observe again after a re-registration: on for nodes saved before the option existed
    const reobserve = config.reobserve !== false;
    /** the observations messages started, by id: what to observe again */
    const requested = new Map<string, ObserveRequest>();
    /** by endpoint: what to observe again once the device's new registration is announced */
    const awaitingRegistration = new Map<string, ObserveRequest[]>();

    /** `again`: what to observe again should the device register anew (an observation a message started) */
    const start = async (endpoint: string, paths: string[], attributes: AttributeChanges, options: RequestOptions, again?: ObserveRequest): Promise<Observation> => {
      const observation =
        paths.length > 1 ? await server.observeComposite(endpoint, paths, attributes, options) : await server.observe(endpoint, paths[0]!, attributes, options);
      mine.set(observation.id, observation);
      if (again) requested.set(observation.id, again);
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
      const request = requested.get(event.id);
      requested.delete(event.id);
      showCount();
      if (tellEnds && !closing) node.send(observationEndedMessage(event));
      if (request && event.reason === 'reregistered' && !closing && !autoObserves(request)) {
        // the server announces the new registration once the device has its answer
        awaitingRegistration.set(request.endpoint, [...(awaitingRegistration.get(request.endpoint) ?? []), request]);
      }
    };
    server.on('notify', onNotify);
    server.on('observationEnded', onEnded);

    // auto-observe: every (re)registration of a matching device, by the node's literal settings
    const autoObserve = Boolean(config.autoObserve) && autoObserveSettings(settings, node);
    const matches = autoFilter(config.endpoint);
    const autoPaths = pathsOf(config.path);
    /** whether auto-observe starts this observation again by itself (observing it twice would only replace one) */
    const autoObserves = (request: ObserveRequest) =>
      autoObserve && matches(request.endpoint) && request.paths.length === autoPaths.length && request.paths.every((path) => autoPaths.includes(path));

    // observe again: the same path(s), attributes and format on the device's new registration
    const observeAgain = (registration: Registration) => {
      const waiting = awaitingRegistration.get(registration.endpoint);
      if (!waiting) return;
      awaitingRegistration.delete(registration.endpoint);
      for (const request of waiting) {
        const path = request.paths.length > 1 ? [...request.paths] : request.paths[0]!;
        const topic = `${request.endpoint}${request.paths.length > 1 ? '' : request.paths[0]}`;
        start(request.endpoint, request.paths, request.attributes, { format: request.format }, request)
          .then((observation) => {
            node.send({ topic, endpoint: request.endpoint, path, payload: observation.value, observation: observation.id, coapCode: '2.05' });
          })
          .catch((error: Error) => {
            if (closing) return;
            const where = Array.isArray(path) ? path.join(', ') : path;
            node.error(`observing ${where} of ${request.endpoint} again after it registered anew failed: ${error.message}`, { topic, endpoint: request.endpoint, path });
          });
      }
    };
    // a device that registered anew through another instance sharing the store is observed again from here too
    const observeAgainElsewhere = (event: ClusterRegistrationEvent) => {
      if (event.kind === 'register') observeAgain(event.registration);
    };
    if (reobserve) {
      server.on('register', observeAgain);
      server.on('clusterRegistration', observeAgainElsewhere);
    }
    const onRegister = (registration: Registration) => {
      if (!matches(registration.endpoint) || autoPaths.length === 0) return;
      start(registration.endpoint, autoPaths, configured, { format: formatOf(config.format) }).catch((error: Error) => {
        if (!closing) node.warn(`auto-observe of ${registration.endpoint} failed: ${error.message}`);
      });
    };
    if (autoObserve) {
      server.on('register', onRegister);
      // devices registered before this node was deployed; with several instances sharing a store,
      // those that talk to this one (the others' devices are auto-observed by their own instance)
      const ours = (registration: Registration) => registration.instance === undefined || registration.instance === serverNode.instance;
      void serverNode.ready.then(() => server.registrations().filter(ours).forEach(onRegister)).catch(() => undefined);
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
          requested.delete(observation.id);
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
          const observation = await start(endpoint, paths, attributes, { ...options, format }, reobserve ? { endpoint, paths, attributes, format } : undefined);
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
      server.off('register', observeAgain);
      server.off('clusterRegistration', observeAgainElsewhere);
      // the device is told in the background; close must not wait for a device that may be gone
      for (const id of mine.keys()) void server.cancelObservation(id).catch(() => undefined);
      mine.clear();
      requested.clear();
      awaitingRegistration.clear();
      serverNode.deregister(node, done);
    });
  }
  RED.nodes.registerType('lwm2m-observe', ObserveNode as never);
};
