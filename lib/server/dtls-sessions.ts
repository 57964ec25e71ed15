/**
 * The DTLS sessions of a server across a restart of its process: taken from the store before the
 * DTLS socket is bound, saved (sealed under `dtls.sessionSecret`) shortly after they change and
 * when the server closes, so that a device's next record after a restart is accepted without a
 * handshake. The store only ever holds the sealed blob (connection-store.ts).
 */
import type { DtlsServer } from '../transport/dtls/server';
import { openDtlsState, sealDtlsState } from '../transport/dtls/connection-store';
import { SessionStoreError, sessionStoreKey } from '../transport/dtls/session-store';
import type { RegistrationStore } from './store';

/** A store that keeps DTLS sessions. */
export type DtlsStateStore = Required<Pick<RegistrationStore, 'saveDtlsState' | 'loadDtlsState' | 'flush'>>;

export function keepsDtlsState(store: RegistrationStore): store is RegistrationStore & DtlsStateStore {
  return typeof store.saveDtlsState === 'function' && typeof store.loadDtlsState === 'function';
}

export interface DtlsSessionKeeperOptions {
  /** the server's instance name when several share the store: its sessions are kept apart */
  owner?: string;
  /** ms after a session began, ended or moved before the sessions are saved (default 1000) */
  delay?: number;
  /**
   * ms after a record came in before the sessions are saved (default 30 s): the replay windows in
   * the store then lag at most this much behind, which is what a crash (not a clean close) loses
   */
  activityDelay?: number;
}

export class DtlsSessionKeeper {
  private readonly key: Buffer;
  private readonly delay: number;
  private readonly activityDelay: number;
  private readonly owner: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private due = Infinity;
  /** ms the last save took: saves are spaced by 20 times that, so sealing a large fleet never takes more than ~5% of the time */
  private cost = 0;
  private started = false;
  private readonly changed = (): void => this.schedule(this.delay);
  private readonly active = (): void => this.schedule(this.activityDelay);

  constructor(
    private readonly dtls: DtlsServer,
    private readonly store: DtlsStateStore,
    secret: string | Buffer,
    private readonly fail: (error: unknown) => void,
    options: DtlsSessionKeeperOptions = {},
  ) {
    this.key = sessionStoreKey(secret);
    this.delay = options.delay ?? 1000;
    this.activityDelay = options.activityDelay ?? 30_000;
    this.owner = options.owner;
  }

  /**
   * Before the DTLS socket is bound: imports what the store holds, then saves at once and waits for
   * the store, so the saved state has the restored connections' advanced write sequence numbers
   * before any record goes out with them. A state that does not open (another secret, changed) or
   * does not load is reported, and the server starts without it. Returns how many connections came back.
   */
  async restore(): Promise<number> {
    let restored = 0;
    try {
      const sealed = await this.store.loadDtlsState(this.owner);
      if (sealed) {
        const state = openDtlsState(sealed, this.key);
        restored = this.dtls.importConnections(state.connections);
        this.dtls.importSessions(state.sessions);
      }
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.fail(new SessionStoreError(`the DTLS sessions in the store were not restored (${reason}); was dtls.sessionSecret changed? Devices handshake again.`, { cause: error }));
    }
    this.started = true;
    this.save();
    await this.store.flush();
    for (const event of ['session', 'sessionEnded', 'sessionMoved']) this.dtls.on(event, this.changed);
    this.dtls.on('message', this.active);
    return restored;
  }

  /** Saves one last time and stops; true when the state was handed to the store (the DTLS server may then close without close_notify). */
  stop(): boolean {
    this.detach();
    if (!this.started) return false;
    this.started = false;
    return this.save();
  }

  private detach(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const event of ['session', 'sessionEnded', 'sessionMoved']) this.dtls.off(event, this.changed);
    this.dtls.off('message', this.active);
  }

  /** A save within `wait` ms (or later, by the cost of the last): an earlier one already due stays. */
  private schedule(wait: number): void {
    wait = Math.max(wait, 20 * this.cost);
    const due = Date.now() + wait;
    if (this.timer && this.due <= due) return;
    clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.save();
    }, wait);
    this.timer.unref();
  }

  private save(): boolean {
    const started = Date.now();
    try {
      this.store.saveDtlsState(sealDtlsState({ connections: this.dtls.exportConnections(), sessions: this.dtls.exportSessions() }, this.key), this.owner);
      this.cost = Date.now() - started;
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }
}
