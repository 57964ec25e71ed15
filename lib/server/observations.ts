/**
 * The observations a server has in force, by id and by registration, and the one place where an
 * observation ends: whatever ends it (a cancel, a new Register, an error notification, ...) goes
 * through `end`, which forgets it, stops its listener and tells `ended` exactly once.
 */
import type { ObservationEndReason, ObservationEndedEvent } from './events';

/** What the table needs of an observation. */
export interface TrackedObservation {
  readonly id: string;
  readonly endpoint: string;
  readonly registrationId: string;
  readonly paths: readonly string[];
  readonly composite: boolean;
  /** stops listening for its notifications (the device is told by a Reset on the next one) */
  cancel(): void;
}

export class ObservationTable<T extends TrackedObservation> {
  private readonly byId = new Map<string, T>();
  /** observation ids by registration id, so ending a registration does not scan every observation */
  private readonly byRegistration = new Map<string, Set<string>>();

  constructor(private readonly ended: (event: ObservationEndedEvent) => void) {}

  /**
   * Tracks a new observation. One that observes the same path(s) of the same registration ends as
   * `replaced`: devices keep one observation per path (Wakaama and Anjay move it to the new token),
   * so the old one would never hear anything again.
   */
  add(observation: T): void {
    for (const id of [...(this.byRegistration.get(observation.registrationId) ?? [])]) {
      const other = this.byId.get(id)!;
      if (other.composite === observation.composite && samePaths(other.paths, observation.paths)) this.end(other, 'replaced');
    }
    this.byId.set(observation.id, observation);
    const ofRegistration = this.byRegistration.get(observation.registrationId);
    if (ofRegistration) ofRegistration.add(observation.id);
    else this.byRegistration.set(observation.registrationId, new Set([observation.id]));
  }

  get(id: string): T | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<T> {
    return this.byId.values();
  }

  /** The observations of one registration. */
  ofRegistration(registrationId: string): T[] {
    return [...(this.byRegistration.get(registrationId) ?? [])].map((id) => this.byId.get(id)!);
  }

  /** Ends an observation in force; false when it had ended already. */
  end(observation: T, reason: ObservationEndReason, coapCode?: string): boolean {
    if (this.byId.get(observation.id) !== observation) return false;
    this.byId.delete(observation.id);
    const ofRegistration = this.byRegistration.get(observation.registrationId);
    ofRegistration?.delete(observation.id);
    if (ofRegistration?.size === 0) this.byRegistration.delete(observation.registrationId);
    observation.cancel();
    const event: ObservationEndedEvent = {
      id: observation.id,
      endpoint: observation.endpoint,
      registrationId: observation.registrationId,
      paths: [...observation.paths],
      composite: observation.composite,
      reason,
    };
    if (coapCode !== undefined) event.coapCode = coapCode;
    this.ended(event);
    return true;
  }

  /** Ends every observation of a registration (it ended, or was replaced by a new Register). */
  endRegistration(registrationId: string, reason: ObservationEndReason): void {
    for (const id of [...(this.byRegistration.get(registrationId) ?? [])]) this.end(this.byId.get(id)!, reason);
  }

  /** Ends every observation (the server closes). */
  endAll(reason: ObservationEndReason): void {
    for (const observation of [...this.byId.values()]) this.end(observation, reason);
  }
}

function samePaths(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((path) => set.has(path));
}
