/**
 * The device explorer's live side of one `lwm2m-server` node: registration events and the values of
 * the observations the explorer started, published to the editor over RED.comms (no polling), and
 * when each device was last heard from.
 */
import type { LwM2MServer, NotifyEvent, Observation, Registration, SendEvent } from '../lib';
import { registrationPayload } from './shared';
import { toJsonValue } from './explorer-values';

/** The part of Node-RED's RED.comms the explorer uses. */
export interface Comms {
  publish(topic: string, data: unknown, retain?: boolean): void;
}

const REGISTRATION_EVENTS = ['register', 'update', 'deregister', 'expire', 'awake', 'sleep'] as const;

export class ExplorerFeed {
  /** the explorer's own observations, by `endpoint path` */
  private readonly observed = new Map<string, Observation>();
  private readonly lastSeen = new Map<string, number>();
  private readonly detach: Array<() => void> = [];

  constructor(
    private readonly server: LwM2MServer,
    private readonly serverId: string,
    private readonly comms: Comms | undefined,
  ) {
    for (const event of REGISTRATION_EVENTS) {
      this.listen(event, (registration: Registration) => this.registrationEvent(event, registration));
    }
    this.listen('notify', (event: NotifyEvent) => this.notified(event));
    this.listen('send', (event: SendEvent) => this.lastSeen.set(event.endpoint, Date.now()));
    this.listen('observationEnded', (event: { observation?: Observation; id?: string; reason?: string; coapCode?: string }) => {
      const id = event.observation?.id ?? event.id;
      for (const [key, observation] of this.observed) {
        if (observation.id !== id) continue;
        this.observed.delete(key);
        this.publish('observe-end', { endpoint: observation.endpoint, path: observation.paths[0], reason: event.reason ?? (event.coapCode ? `the device answered ${event.coapCode}` : 'ended') });
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

  /** Observes a path for the explorer (once: observing it again returns the running observation's latest start). */
  async observe(endpoint: string, path: string): Promise<Observation> {
    const key = `${endpoint} ${path}`;
    const running = this.observed.get(key);
    if (running) await this.server.cancelObservation(running).catch(() => undefined);
    this.observed.delete(key);
    const observation = await this.server.observe(endpoint, path);
    this.observed.set(key, observation);
    return observation;
  }

  /** Cancels the explorer's observation of a path; false when there was none. */
  async cancel(endpoint: string, path: string): Promise<boolean> {
    const key = `${endpoint} ${path}`;
    const observation = this.observed.get(key);
    if (!observation) return false;
    this.observed.delete(key);
    await this.server.cancelObservation(observation);
    return true;
  }

  /** The paths the explorer observes on a device. */
  observing(endpoint: string): string[] {
    return [...this.observed.values()].filter((observation) => observation.endpoint === endpoint).map((observation) => observation.paths[0]!);
  }

  close(): void {
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
    // a new registration (or none) ends every observation of the device (LwM2M 1.1 §6.3.1)
    if (event === 'register' || gone) this.forget(registration.endpoint, event === 'register' ? 'the device registered again' : event === 'expire' ? 'the registration expired' : 'the device deregistered');
    this.publish('devices', { event, endpoint: registration.endpoint, ...(gone ? {} : { device: this.device(registration) }) });
  }

  private notified(event: NotifyEvent): void {
    this.lastSeen.set(event.endpoint, Date.now());
    const path = event.observation.paths[0]!;
    if (this.observed.get(`${event.endpoint} ${path}`)?.id !== event.observation.id) return;
    this.publish('notify', { endpoint: event.endpoint, path, value: toJsonValue(event.value), observed: true });
  }

  private forget(endpoint: string, reason: string): void {
    for (const [key, observation] of this.observed) {
      if (observation.endpoint !== endpoint) continue;
      this.observed.delete(key);
      this.publish('observe-end', { endpoint, path: observation.paths[0], reason });
    }
  }

  private publish(kind: string, data: unknown): void {
    this.comms?.publish(`lwm2m/${kind}/${this.serverId}`, data, false);
  }
}
