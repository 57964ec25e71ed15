/**
 * Firmware update of one device or a fleet, driven by the server through the Firmware Update
 * object (5) as its state machine says: pick push (a Block1 Write of the Package) or pull (the
 * Package URI, served by this server under /fw/… or given by the caller), follow State (/5/0/3) and
 * Update Result (/5/0/5) by observation (or by reading, for a device that does not observe), execute
 * Update once Downloaded, follow the device through its reboot (a new Register or an Update), and
 * check the firmware version (/3/0/3) when one is given. Every step is told to `onProgress`; the end
 * is one outcome per device, never a throw, so a campaign goes on past a device that fails.
 */
import { ContentFormat } from '../content';
import { FIRMWARE_PROTOCOLS, FIRMWARE_RESULT_NAMES, FirmwareResult, FirmwareState } from '../protocol';
import { LwM2MError } from './errors';
import type { PublishedPackage } from './packages';
import type { LwM2MServer, NotifyEvent, Observation, Registration } from './server';

export type FirmwareDelivery = 'push' | 'pull';

/** What to install: the package itself, or a URI the device downloads it from. */
export interface FirmwareSource {
  package?: Buffer;
  uri?: string;
  /** for messages */
  name?: string;
  /** the firmware version (/3/0/3) the device must report afterwards */
  version?: string;
}

export interface FirmwareUpdateOptions {
  /** push, pull, or (default) what the device takes: push for a package, unless it only pulls */
  delivery?: 'auto' | FirmwareDelivery;
  /** Block1 size of a push (16..1024, default 1024; the device may ask for less) */
  blockSize?: number;
  /** ms the download may take (default 30 min) */
  downloadTimeout?: number;
  /** ms from Execute Update to the result, reboot included (default 15 min) */
  updateTimeout?: number;
  /** ms between reads of State and Update Result when the device does not observe them (default 5 s) */
  pollInterval?: number;
  /** aborting cancels the update: Cancel (/5/0/10) where the device has it, else an empty package or URI */
  signal?: AbortSignal;
  onProgress?: (progress: FirmwareProgress) => void;
}

export interface FirmwareFleetOptions extends FirmwareUpdateOptions {
  /** devices updated at once (default 5) */
  concurrency?: number;
  /** told of each device's outcome as it ends, before the whole campaign does */
  onOutcome?: (outcome: FirmwareOutcome) => void;
}

export type FirmwarePhase = 'checking' | 'downloading' | 'downloaded' | 'updating' | 'verifying' | 'succeeded' | 'failed';

export interface FirmwareProgress {
  endpoint: string;
  phase: FirmwarePhase;
  delivery?: FirmwareDelivery;
  /** State (/5/0/3), when known */
  state?: number;
  /** Update Result (/5/0/5), when known */
  result?: number;
  /** 0..1 of the download, where the server can tell (push, and pull from this server) */
  progress?: number;
  message?: string;
}

export type FirmwareFailure =
  | 'BAD_REQUEST'
  | 'NOT_REGISTERED'
  | 'NO_FIRMWARE_OBJECT'
  | 'UNSUPPORTED_DELIVERY'
  | 'BUSY'
  | 'REQUEST_FAILED'
  | 'DOWNLOAD_FAILED'
  | 'UPDATE_FAILED'
  | 'VERSION_MISMATCH'
  | 'TIMEOUT'
  | 'CANCELLED';

export interface FirmwareOutcome {
  endpoint: string;
  success: boolean;
  delivery?: FirmwareDelivery;
  /** why it failed */
  failure?: FirmwareFailure;
  /** the device's Update Result (/5/0/5), when it gave one */
  result?: number;
  resultName?: string;
  /** the device's response code, when a request failed */
  coapCode?: string;
  message: string;
  /** the firmware version the device reports afterwards, when read */
  version?: string;
}

const MINUTE = 60_000;

/** A job's end before success: the outcome's fields. */
class JobFailure extends Error {
  constructor(
    readonly failure: FirmwareFailure,
    message: string,
    readonly detail: { result?: number; coapCode?: string } = {},
  ) {
    super(message);
  }
}

/**
 * The firmware jobs of one server: which devices are being updated (a second update is refused),
 * and one set of server listeners that hands each event to the job of its device, however many run.
 */
export class FirmwareJobs {
  private readonly running = new Map<string, FirmwareJob>();
  // (EventEmitter listeners take any arguments; each of these knows the one its event carries)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly listeners: Array<[string, (...args: any[]) => void]> = [
    ['notify', (event: NotifyEvent) => this.running.get(event.endpoint)?.notified(event)],
    ['register', (registration: Registration) => this.running.get(registration.endpoint)?.registered()],
    ['update', (registration: Registration) => this.running.get(registration.endpoint)?.updated()],
    ['deregister', (registration: Registration) => this.running.get(registration.endpoint)?.left('deregister')],
    ['expire', (registration: Registration) => this.running.get(registration.endpoint)?.left('expire')],
  ];

  constructor(private readonly server: LwM2MServer) {}

  /** Updates one device; resolves with its outcome (success or the reason it failed), never rejects. */
  async update(endpoint: string, source: FirmwareSource, options: FirmwareUpdateOptions = {}, shared?: PublishedPackage): Promise<FirmwareOutcome> {
    const problem = firmwareSourceProblem(source);
    if (problem) return failed(endpoint, new JobFailure('BAD_REQUEST', problem), undefined);
    if (this.running.has(endpoint)) return failed(endpoint, new JobFailure('BUSY', `${endpoint} is being updated already`), undefined);
    const job = new FirmwareJob(this.server, endpoint, source, options, shared);
    if (this.running.size === 0) for (const [event, listener] of this.listeners) this.server.on(event, listener);
    this.running.set(endpoint, job);
    try {
      return await job.run();
    } finally {
      this.running.delete(endpoint);
      if (this.running.size === 0) for (const [event, listener] of this.listeners) this.server.off(event, listener);
    }
  }

  /** Updates many devices, `concurrency` at a time; one outcome per device, in the order given. */
  async fleet(endpoints: readonly string[], source: FirmwareSource, options: FirmwareFleetOptions = {}): Promise<FirmwareOutcome[]> {
    const unique = [...new Set(endpoints)];
    const problem = firmwareSourceProblem(source);
    if (problem) return unique.map((endpoint) => failed(endpoint, new JobFailure('BAD_REQUEST', problem), undefined));
    // one buffer served to every device that pulls: never a copy per device
    const shared = source.package ? this.server.publish(source.package) : undefined;
    const outcomes = new Array<FirmwareOutcome>(unique.length);
    let next = 0;
    const worker = async () => {
      while (next < unique.length) {
        const index = next++;
        const endpoint = unique[index]!;
        // a cancelled campaign still tells every device's outcome, the ones it never started too
        outcomes[index] = options.signal?.aborted
          ? failed(endpoint, new JobFailure('CANCELLED', `the update of ${endpoint} was cancelled before it started`), undefined)
          : await this.update(endpoint, source, options, shared);
        try {
          options.onOutcome?.(outcomes[index]!);
        } catch {
          // the listener's error is its own; the campaign goes on
        }
      }
    };
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 5));
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, unique.length) }, worker));
    } finally {
      shared?.release();
    }
    return outcomes;
  }
}

/** What is wrong with a firmware source (no package or URI, both, an empty package, a URI no device downloads from), or undefined. */
export function firmwareSourceProblem(source: FirmwareSource): string | undefined {
  if (!source || (source.package === undefined && source.uri === undefined)) return 'a firmware update needs a package (Buffer) or a URI';
  if (source.package !== undefined && source.uri !== undefined) return 'give a package or a URI, not both';
  if (source.package !== undefined && !Buffer.isBuffer(source.package)) return `the firmware package must be a Buffer, not ${typeof source.package}`;
  if (source.package !== undefined && source.package.length === 0) return 'the firmware package is empty (0 bytes)';
  if (source.uri !== undefined) {
    try {
      const scheme = new URL(source.uri).protocol.replace(/:$/, '');
      if (!(scheme in FIRMWARE_PROTOCOLS)) return `the package URI's scheme ${scheme} is none a device downloads from (${Object.keys(FIRMWARE_PROTOCOLS).join(', ')})`;
    } catch {
      return `the package URI ${JSON.stringify(source.uri)} is not a URI`;
    }
  }
  return undefined;
}

function failed(endpoint: string, error: JobFailure, delivery: FirmwareDelivery | undefined): FirmwareOutcome {
  const { result, coapCode } = error.detail;
  return {
    endpoint,
    success: false,
    ...(delivery ? { delivery } : {}),
    failure: error.failure,
    ...(result !== undefined ? { result, resultName: FIRMWARE_RESULT_NAMES[result] ?? `result ${result}` } : {}),
    ...(coapCode ? { coapCode } : {}),
    message: error.message,
  };
}

const STATE_PATH = '/5/0/3';
const RESULT_PATH = '/5/0/5';

/** One device's update, from the first check to the last cleanup. */
class FirmwareJob {
  private state: number | undefined;
  private result: number | undefined;
  private phase: FirmwarePhase = 'checking';
  private delivery: FirmwareDelivery | undefined;
  /** set when the device registers again while updating: it rebooted */
  private rebooted = false;
  /** Registers and Updates of the device seen so far */
  private registrations = 0;
  /** why the job must stop now (the device left, the caller cancelled) */
  private stop: JobFailure | undefined;
  private wake: (() => void) | undefined;
  private readonly observations: Observation[] = [];
  private readonly cleanups: Array<() => void> = [];
  private poller: NodeJS.Timeout | undefined;
  private published: PublishedPackage | undefined;

  constructor(
    private readonly server: LwM2MServer,
    private readonly endpoint: string,
    private readonly source: FirmwareSource,
    private readonly options: FirmwareUpdateOptions,
    private readonly shared: PublishedPackage | undefined,
  ) {}

  async run(): Promise<FirmwareOutcome> {
    try {
      this.watchSignal();
      const outcome = await this.steps();
      this.tell('succeeded', { message: outcome.message });
      return outcome;
    } catch (error) {
      const failure = error instanceof JobFailure ? error : asFailure(error, `${this.phase}`);
      if (failure.failure === 'CANCELLED') await this.cancelOnDevice();
      this.tell('failed', { message: failure.message, result: failure.detail.result });
      return failed(this.endpoint, failure, this.delivery);
    } finally {
      await this.cleanup();
    }
  }

  private async steps(): Promise<FirmwareOutcome> {
    const registration = this.registration();
    if (!registration.objects.some((object) => object.objectId === 5)) {
      throw new JobFailure('NO_FIRMWARE_OBJECT', `${this.endpoint} has no Firmware Update object (/5)`);
    }
    this.tell('checking', { message: 'reading the delivery methods and protocols the device supports' });
    const method = await this.optional<number>('/5/0/9');
    const protocols = await this.optional<Record<string, number>>('/5/0/8');
    this.delivery = this.chooseDelivery(registration, method, protocols === undefined ? undefined : Object.values(protocols));
    await this.follow();
    if (this.state === FirmwareState.DOWNLOADING || this.state === FirmwareState.UPDATING) {
      throw new JobFailure('BUSY', `${this.endpoint} is ${this.state === FirmwareState.DOWNLOADING ? 'downloading' : 'installing'} firmware already (state ${this.state})`);
    }
    if (this.state === FirmwareState.DOWNLOADED) {
      // a package left from an earlier attempt: an empty write resets the state machine to Idle
      await this.reset();
      await this.until(() => this.state === FirmwareState.IDLE, this.downloadTimeout, 'the reset to Idle');
    }

    // download
    this.phase = 'downloading';
    this.tell('downloading', { progress: 0 });
    if (this.delivery === 'push') await this.push();
    else await this.pull(registration);
    await this.until(() => this.state === FirmwareState.DOWNLOADED || this.downloadFailed(), this.downloadTimeout, 'the download');
    if (this.downloadFailed()) throw this.resultFailure('DOWNLOAD_FAILED', 'the download failed');
    this.phase = 'downloaded';
    this.tell('downloaded', { progress: 1 });

    // update
    this.phase = 'updating';
    this.result = undefined; // the result that matters is the one after Execute
    await this.request('Execute Update', () => this.server.execute(this.endpoint, '/5/0/2', '', this.requestOptions(this.updateTimeout)));
    this.tell('updating');
    await this.until(() => this.updateSettled(), this.updateTimeout, 'the update');
    if (this.result !== FirmwareResult.SUCCESS && !(this.rebooted && this.result === FirmwareResult.INITIAL && this.source.version !== undefined)) {
      throw this.resultFailure('UPDATE_FAILED', this.rebooted && this.result === FirmwareResult.INITIAL ? 'the device came back without an update result' : 'the update failed');
    }

    // verify
    let version: string | undefined;
    if (this.source.version !== undefined) {
      this.phase = 'verifying';
      this.tell('verifying', { message: `reading the firmware version (/3/0/3), expecting ${this.source.version}` });
      version = await this.readVersion();
      if (version !== this.source.version) {
        throw new JobFailure('VERSION_MISMATCH', `${this.endpoint} reports firmware ${version} after the update, not ${this.source.version}`, { result: this.result });
      }
    }
    this.phase = 'succeeded';
    return {
      endpoint: this.endpoint,
      success: true,
      delivery: this.delivery,
      result: FirmwareResult.SUCCESS,
      resultName: FIRMWARE_RESULT_NAMES[FirmwareResult.SUCCESS]!,
      message: `${this.endpoint} updated${version ? ` to ${version}` : ''} (${this.delivery})`,
      ...(version !== undefined ? { version } : {}),
    };
  }

  /**
   * The firmware version the device reports. A device may reboot right after it reported success,
   * and not answer until it is back: then wait for its Register (or Update) and ask again.
   */
  private async readVersion(): Promise<string> {
    const deadline = Date.now() + this.updateTimeout;
    for (;;) {
      const seen = this.registrations;
      try {
        return String(await this.request('Read /3/0/3', () => this.server.read(this.endpoint, '/3/0/3', this.requestOptions(this.updateTimeout))));
      } catch (error) {
        if (!(error instanceof JobFailure) || error.failure !== 'TIMEOUT' || Date.now() >= deadline) throw error;
        await this.until(() => this.registrations !== seen, deadline - Date.now(), 'the device coming back after its reboot');
      }
    }
  }

  // --- the choice of delivery ---

  private chooseDelivery(registration: Registration, method: number | undefined, protocols: number[] | undefined): FirmwareDelivery {
    const pulls = method === undefined || method === 0 || method === 2;
    const pushes = method === undefined || method === 1 || method === 2;
    const wanted = this.options.delivery ?? 'auto';
    const speaks = (scheme: string) => protocols === undefined || protocols.includes(FIRMWARE_PROTOCOLS[scheme]!);
    const unsupported = (why: string) => new JobFailure('UNSUPPORTED_DELIVERY', `${this.endpoint} cannot take this update: ${why}`);
    if (this.source.uri !== undefined) {
      if (wanted === 'push') throw unsupported('a URI can only be pulled');
      if (!pulls) throw unsupported('it takes pushed packages only (/5/0/9 = 1), and a URI must be pulled');
      const scheme = new URL(this.source.uri).protocol.replace(/:$/, '');
      if (!speaks(scheme)) throw unsupported(`it does not download by ${scheme} (/5/0/8 lists ${protocols!.join(', ')})`);
      return 'pull';
    }
    // a package this server serves: over the transport the device registered on
    const scheme = registration.identity === undefined ? 'coap' : 'coaps';
    const canPull = pulls && speaks(scheme);
    if (wanted === 'push') {
      if (!pushes) throw unsupported('it does not take pushed packages (/5/0/9 = 0)');
      return 'push';
    }
    if (wanted === 'pull') {
      if (!canPull) throw unsupported(pulls ? `it does not download by ${scheme} (/5/0/8 lists ${protocols!.join(', ')})` : 'it takes pushed packages only (/5/0/9 = 1)');
      return 'pull';
    }
    if (pushes) return 'push';
    if (canPull) return 'pull';
    throw unsupported(`it pulls only, and not by ${scheme} (/5/0/8 lists ${protocols?.join(', ')})`);
  }

  // --- download ---

  private async push(): Promise<void> {
    const pkg = this.source.package!;
    const options = {
      ...this.requestOptions(this.downloadTimeout),
      format: ContentFormat.OPAQUE,
      blockSize: this.options.blockSize ?? 1024,
      onProgress: (sent: number, total: number) => this.tell('downloading', { progress: sent / total }),
    };
    await this.request('Write /5/0/0 (Package)', () => this.server.write(this.endpoint, '/5/0/0', pkg, options));
  }

  private async pull(registration: Registration): Promise<void> {
    let uri = this.source.uri;
    if (uri === undefined) {
      this.published = this.shared ?? this.server.publish(this.source.package!);
      if (registration.identity !== undefined) this.published.allow(registration.identity, registration.authentication);
      uri = this.server.packageUri(this.endpoint, this.published);
      // a package of its own: every block is this device's; a fleet's: the blocks fetched from the
      // device's address and port (its own socket, as devices download from the server they use)
      const from = this.shared === undefined ? undefined : { address: registration.address, port: registration.port };
      this.cleanups.push(this.published.onProgress((_peer, served, total) => this.tell('downloading', { progress: served / total }), from));
    }
    await this.request('Write /5/0/1 (Package URI)', () => this.server.write(this.endpoint, '/5/0/1', uri, { ...this.requestOptions(this.downloadTimeout), format: ContentFormat.TEXT }));
  }

  private downloadFailed(): boolean {
    return this.state === FirmwareState.IDLE && this.result !== undefined && this.result !== FirmwareResult.INITIAL && this.result !== FirmwareResult.SUCCESS;
  }

  /** After Execute: success, a failure result, or a reboot from which the device came back. */
  private updateSettled(): boolean {
    if (this.result === undefined) return false;
    if (this.result !== FirmwareResult.INITIAL) return true;
    return this.rebooted && this.state !== FirmwareState.UPDATING;
  }

  private resultFailure(failure: FirmwareFailure, what: string): JobFailure {
    const result = this.result;
    const name = result === undefined ? 'no result' : (FIRMWARE_RESULT_NAMES[result] ?? `result ${result}`);
    return new JobFailure(failure, `${what} on ${this.endpoint}: ${name}${result === undefined ? '' : ` (Update Result ${result})`}`, { result });
  }

  // --- following State and Update Result ---

  /** Observes State and Update Result (reads them every pollInterval where the device does not observe). */
  private async follow(): Promise<void> {
    for (const observation of this.observations.splice(0)) void this.server.cancelObservation(observation).catch(() => undefined);
    let observed = true;
    for (const path of [STATE_PATH, RESULT_PATH]) {
      try {
        const observation = await this.server.observe(this.endpoint, path, undefined, this.requestOptions(this.downloadTimeout));
        this.observations.push(observation);
        this.take(path, observation.value);
      } catch (error) {
        if (error instanceof LwM2MError && (error.code === 'NOT_REGISTERED' || error.code === 'SERVER_NOT_RUNNING')) throw asFailure(error, 'following the update');
        observed = false;
      }
    }
    if (!observed) {
      await this.poll();
      if (!this.poller) {
        this.poller = setInterval(() => void this.poll(), this.options.pollInterval ?? 5000);
      }
    }
  }

  private async poll(): Promise<void> {
    for (const path of [STATE_PATH, RESULT_PATH]) {
      try {
        this.take(path, await this.server.read(this.endpoint, path, this.requestOptions(this.downloadTimeout)));
      } catch {
        // the next poll tries again; a device that is gone is told by the registration events
      }
    }
  }

  private take(path: string, value: unknown): void {
    if (typeof value !== 'number') return;
    if (path === STATE_PATH) this.state = value;
    else this.result = value;
    if (this.phase === 'downloading' || this.phase === 'updating') this.tell(this.phase);
    this.wake?.();
  }

  // --- events of this device, handed over by FirmwareJobs ---

  /** A notification of the server: State or Update Result, when it is of this job's observations. */
  notified(event: NotifyEvent): void {
    if (!this.observations.some((observation) => observation.id === event.observation.id)) return;
    this.take(event.observation.paths[0]!, event.value);
  }

  /** A new Register of the device: after Execute Update, it rebooted; its old observations are gone. */
  registered(): void {
    this.registrations++;
    if (this.phase === 'updating') this.rebooted = true;
    this.wake?.();
    void this.follow().catch((error: unknown) => this.halt(error instanceof JobFailure ? error : asFailure(error, 'following the update')));
  }

  /** An Update of the device: some come back from their reboot with an Update of the old registration. */
  updated(): void {
    this.registrations++;
    this.wake?.();
    if (this.phase === 'updating') void this.poll();
  }

  /** The registration ended: the update with it, unless the device de-registers to reboot into the new firmware. */
  left(how: 'deregister' | 'expire'): void {
    if (how === 'deregister' && this.phase === 'updating') return;
    this.halt(new JobFailure('NOT_REGISTERED', how === 'expire' ? `the registration of ${this.endpoint} expired during ${this.phase}` : `${this.endpoint} left (its registration ended) during ${this.phase}`));
  }

  /** The caller's cancellation. */
  private watchSignal(): void {
    const signal = this.options.signal;
    if (!signal) return;
    const onAbort = () => this.halt(new JobFailure('CANCELLED', `the update of ${this.endpoint} was cancelled during ${this.phase}`));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.cleanups.push(() => signal.removeEventListener('abort', onAbort));
  }

  private halt(failure: JobFailure): void {
    this.stop ??= failure;
    this.wake?.();
  }

  /** Waits until `done()` holds, the job is halted, or `timeout` ms pass. */
  private async until(done: () => boolean, timeout: number, what: string): Promise<void> {
    const deadline = Date.now() + timeout;
    while (!done()) {
      if (this.stop) throw this.stop;
      const left = deadline - Date.now();
      if (left <= 0) throw new JobFailure('TIMEOUT', `${what} on ${this.endpoint} did not finish within ${Math.round(timeout / 1000)} s (state ${this.state ?? '?'}, result ${this.result ?? '?'})`, { result: this.result });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    if (this.stop) throw this.stop;
  }

  // --- requests ---

  private registration(): Registration {
    const registration = this.server.registration(this.endpoint);
    if (!registration) throw new JobFailure('NOT_REGISTERED', `${this.endpoint} is not registered`);
    return registration;
  }

  /** A request that may wait for a sleeping queue-mode device as long as the phase may take. */
  private requestOptions(phaseTimeout: number): { ttl: number; timeout?: number } {
    return this.delivery === 'push' && this.phase === 'downloading' ? { ttl: phaseTimeout, timeout: phaseTimeout } : { ttl: phaseTimeout };
  }

  private async request<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.stop) throw this.stop;
    try {
      return await run();
    } catch (error) {
      if (this.stop) throw this.stop;
      throw asFailure(error, what);
    }
  }

  /** A resource the device may lack (older object versions): undefined instead of a failure. */
  private async optional<T>(path: string): Promise<T | undefined> {
    if (this.stop) throw this.stop;
    try {
      return (await this.server.read(this.endpoint, path, this.requestOptions(this.downloadTimeout))) as T;
    } catch (error) {
      if (error instanceof LwM2MError && ['NOT_FOUND', 'METHOD_NOT_ALLOWED', 'NOT_ACCEPTABLE', 'BAD_REQUEST', 'UNAUTHORIZED'].includes(error.code)) return undefined;
      throw asFailure(error, `Read ${path}`);
    }
  }

  private async reset(): Promise<void> {
    if (this.delivery === 'pull') await this.request('Write /5/0/1 (empty: reset)', () => this.server.write(this.endpoint, '/5/0/1', '', { ...this.requestOptions(this.downloadTimeout), format: ContentFormat.TEXT }));
    else await this.request('Write /5/0/0 (empty: reset)', () => this.server.write(this.endpoint, '/5/0/0', Buffer.alloc(0), { ...this.requestOptions(this.downloadTimeout), format: ContentFormat.OPAQUE }));
  }

  /** Cancel on the device: its Cancel resource (/5/0/10) where it has one, else an empty package or URI. */
  private async cancelOnDevice(): Promise<void> {
    if (this.phase !== 'downloading' && this.phase !== 'downloaded') return; // nothing started, or the install cannot be stopped
    if (!this.server.registration(this.endpoint)) return;
    const options = { timeout: 5000, ttl: 5000 };
    try {
      await this.server.execute(this.endpoint, '/5/0/10', '', options);
    } catch {
      const empty = this.delivery === 'pull' ? this.server.write(this.endpoint, '/5/0/1', '', { ...options, format: ContentFormat.TEXT }) : this.server.write(this.endpoint, '/5/0/0', Buffer.alloc(0), { ...options, format: ContentFormat.OPAQUE });
      await empty.catch(() => undefined);
    }
  }

  private async cleanup(): Promise<void> {
    clearInterval(this.poller);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    if (this.published && this.published !== this.shared) this.published.release();
    await Promise.all(this.observations.splice(0).map((observation) => this.server.cancelObservation(observation, { timeout: 5000, ttl: 5000 }).catch(() => undefined)));
  }

  private get downloadTimeout(): number {
    return this.options.downloadTimeout ?? 30 * MINUTE;
  }

  private get updateTimeout(): number {
    return this.options.updateTimeout ?? 15 * MINUTE;
  }

  private tell(phase: FirmwarePhase, extra: Partial<FirmwareProgress> = {}): void {
    if (!this.options.onProgress) return;
    const progress: FirmwareProgress = { endpoint: this.endpoint, phase, ...(this.delivery ? { delivery: this.delivery } : {}) };
    if (this.state !== undefined) progress.state = this.state;
    if (this.result !== undefined) progress.result = this.result;
    try {
      this.options.onProgress({ ...progress, ...extra });
    } catch {
      // a listener's error is its own; the update goes on
    }
  }
}

/** A request that failed, as the job's failure. */
function asFailure(error: unknown, what: string): JobFailure {
  if (error instanceof JobFailure) return error;
  if (error instanceof LwM2MError) {
    if (error.code === 'NOT_REGISTERED') return new JobFailure('NOT_REGISTERED', error.message);
    if (error.code === 'TIMEOUT') return new JobFailure('TIMEOUT', `${what}: ${error.message}`);
    return new JobFailure('REQUEST_FAILED', `${what}: ${error.message}`, { coapCode: error.coapCode });
  }
  return new JobFailure('REQUEST_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`);
}
