/**
 * The device explorer's live side of one `lwm2m-server` node: registration events and the values of
 * the observations the explorer started, published to the editor over RED.comms (no polling), and
 * when each device was last heard from.
 */
import type { ClusterRegistrationEvent, LwM2MServer, NotifyEvent, Observation, ObservationEndedEvent, Registration, SendEvent } from '../lib';
import { registrationPayload } from './shared';
import { toJsonValue } from './explorer-values';
import { TraceFeed } from './explorer-trace';

/** The part of Node-RED's RED.comms the explorer uses. */
export interface Comms {
  publish(topic: string, data: unknown, retain?: boolean): void;
}

const REGISTRATION_EVENTS = ['register', 'update', 'deregister', 'expire', 'awake', 'sleep'] as const;

export class ExplorerFeed {
  /**
   * The observations whose values the explorer shows, by `endpoint path`: its own, or a flow's that
   * observed the path already (a device keeps one observation per path: a second would replace the
   * flow's, so the explorer watches that one instead and never cancels it).
   */
  private readonly observed = new Map<string, { observation: Observation; own: boolean }>();
  private readonly lastSeen = new Map<string, number>();
  private readonly detach: Array<() => void> = [];
  /** the trace panel's live entries */
  readonly trace: TraceFeed;

  constructor(
    private readonly server: LwM2MServer,
    private readonly serverId: string,
    private readonly comms: Comms | undefined,
  ) {
    this.trace = new TraceFeed(server, `lwm2m/trace/${serverId}`, comms);
    for (const event of REGISTRATION_EVENTS) {
      this.listen(event, (registration: Registration) => this.registrationEvent(event, registration));
    }
    // devices that registered, changed or left through another instance sharing the store
    this.listen('clusterRegistration', (event: ClusterRegistrationEvent) => this.registrationEvent(event.kind, event.registration));
    this.listen('notify', (event: NotifyEvent) => this.notified(event));
    this.listen('send', (event: SendEvent) => this.lastSeen.set(event.endpoint, Date.now()));
    this.listen('observationEnded', (event: ObservationEndedEvent) => {
      for (const [key, { observation }] of this.observed) {
        if (observation.id !== event.id) continue;
        this.observed.delete(key);
        this.publish('observe-end', { endpoint: event.endpoint, path: observation.paths[0], reason: event.reason, ...(event.coapCode ? { coapCode: event.coapCode } : {}) });
      }
    });
  }

  /** The device as the explorer lists it: the register-in payload and when it was last heard from. */
  device(registration: Registration): Record<string, unknown> {
    const seen = Math.max(registration.updatedAt, this.lastSeen.get(registration.endpoint) ?? 0);
    return { ...registrationPayload(registration), lastSeen: new Date(seen).toISOString() };
  }

  devices(): Array<Record<string, unknown>> {
    return this.server
      .registrations()
      .sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0))
      .map((registration) => this.device(registration));
  }

  /**
   * Shows a path's values as they change: observes it, or watches the observation a flow holds on
   * it already. Resolves with the current value.
   */
  async observe(endpoint: string, path: string): Promise<unknown> {
    const key = `${endpoint} ${path}`;
    const watched = this.observed.get(key);
    if (watched && this.server.observations(endpoint).some((observation) => observation.id === watched.observation.id)) return this.server.read(endpoint, path);
    const flows = this.server.observations(endpoint).find((observation) => !observation.composite && observation.paths[0] === path);
    if (flows) {
      this.observed.set(key, { observation: flows, own: false });
      return this.server.read(endpoint, path);
    }
    const observation = await this.server.observe(endpoint, path);
    this.observed.set(key, { observation, own: true });
    return observation.value;
  }

  /** Stops showing a path's values (cancelling the observation when the explorer started it); false when it showed none. */
  async cancel(endpoint: string, path: string): Promise<boolean> {
    const key = `${endpoint} ${path}`;
    const watched = this.observed.get(key);
    if (!watched) return false;
    this.observed.delete(key);
    if (watched.own) await this.server.cancelObservation(watched.observation);
    return true;
  }

  /** The paths whose values the explorer shows on a device. */
  observing(endpoint: string): string[] {
    return [...this.observed.values()].filter(({ observation }) => observation.endpoint === endpoint).map(({ observation }) => observation.paths[0]!);
  }

  close(): void {
    this.trace.close();
    for (const undo of this.detach.splice(0)) undo();
    this.observed.clear();
  }

  private listen<T>(event: string, handler: (arg: T) => void): void {
    const listener = handler as (...args: unknown[]) => void;
    this.server.on(event, listener);
    this.detach.push(() => this.server.off(event, listener));
  }

  private registrationEvent(event: (typeof REGISTRATION_EVENTS)[number], registration: Registration): void {
    const gone = event === 'deregister' || event === 'expire';
    if (gone) this.lastSeen.delete(registration.endpoint);
    else if (event !== 'sleep') this.lastSeen.set(registration.endpoint, Date.now());
    this.publish('devices', { event, endpoint: registration.endpoint, ...(gone ? {} : { device: this.device(registration) }) });
  }

  private notified(event: NotifyEvent): void {
    this.lastSeen.set(event.endpoint, Date.now());
    // every notification of the server passes here: nothing more while the explorer watches none
    if (this.observed.size === 0) return;
    const path = event.observation.paths[0]!;
    if (this.observed.get(`${event.endpoint} ${path}`)?.observation.id !== event.observation.id) return;
    this.publish('notify', { endpoint: event.endpoint, path, value: toJsonValue(event.value), observed: true });
  }

  private publish(kind: string, data: unknown): void {
    this.comms?.publish(`lwm2m/${kind}/${this.serverId}`, data, false);
  }
}
