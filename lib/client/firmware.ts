/**
 * Firmware Update (object 5) of a simulated device, following the state machine of LwM2M Core 1.1
 * (appendix E.6):
 *
 *   Idle ──Package written (push) or Package URI written (pull)──▶ Downloading
 *   Downloading ──the package arrived and passes the checks──▶ Downloaded
 *   Downloading ──fetch failed (4, 7), too large (2), not as expected (5), simulated (2–6)──▶ Idle
 *   Downloaded ──Update executed──▶ Updating ──installed (1)──▶ Idle, and the device reboots
 *                                   Updating ──install failed (8)──▶ Downloaded: the server may retry
 *   Downloading, Downloaded ──Cancel (10), or an empty Package / Package URI (0)──▶ Idle
 *   A URI that does not parse (7) or has a scheme not offered (9) leaves it Idle with that result;
 *   the Write itself succeeds, as errors are reported through Update Result only.
 *
 * State is resource 3 and Update Result resource 5; every change goes through the tree, so
 * observers of /5/0/3 and /5/0/5 see the machine move.
 */
import { createHash } from 'node:crypto';
import { LwM2MPath } from '../path';
import { FIRMWARE_PROTOCOLS, FirmwareResult, FirmwareState } from '../protocol';
import { ClientError, badRequest, notAllowed } from './errors';
import { DownloadFailure } from './firmware-download';
import type { InstanceSpec, ObjectTree, ResourceContent } from './tree';

// the state machine's numbers are shared with the server (lib/protocol.ts)
export { FirmwareState, FirmwareResult };

export type FirmwareProtocol = 'coap' | 'coaps' | 'http' | 'https';

export interface FirmwareOptions {
  /** how packages may arrive: `pull` (Package URI), `push` (Package written) or `both` (default); resource 9 */
  delivery?: 'pull' | 'push' | 'both';
  /** URI schemes accepted for Package URI (default all four); resource 8 lists them */
  protocols?: FirmwareProtocol[];
  /** what a downloaded package must be (size in bytes, SHA-256 in hex); a mismatch is Update Result 5 */
  expect?: { size?: number; sha256?: string };
  /** bytes the device can store (default 8 MiB); a larger package is Update Result 2 */
  flashSize?: number;
  /** simulate a failure: 2–6 end every download with it, 7 and 9 answer every Package URI, 8 every Update */
  fail?: 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
  /** the firmware version a successful update installs (shown in /3/0/3 and /5/0/7) unless `install` gives one */
  version?: string;
  /** fetches a Package URI itself instead of the built-in CoAP/HTTP download; a rejection is Update Result 4 */
  download?: (uri: string) => Promise<Buffer>;
  /** installs a package; resolve with the new version (or true), resolve false or throw to fail (Update Result 8) */
  install?: (pkg: Buffer) => Promise<string | boolean>;
  /** ms the Downloading state lasts at least, however fast the package came (default 200) */
  downloadTime?: number;
  /** ms a pull download may take before it counts as lost, Update Result 4 (default 300 000) */
  downloadTimeout?: number;
  /** ms the Updating state lasts (default 200) */
  updateTime?: number;
  /** ms the device is off the network after a successful update before it registers again (default 1000) */
  rebootTime?: number;
}

export const FIRMWARE_DEFAULTS = {
  flashSize: 8 * 1024 * 1024,
  downloadTime: 200,
  downloadTimeout: 300_000,
  updateTime: 200,
  rebootTime: 1000,
} as const;

/** What the machine needs from the client around it. */
export interface FirmwareHooks {
  /** the built-in pull download of a checked coap(s)/http(s) URI; rejects with a DownloadFailure */
  fetch(url: URL, signal: AbortSignal): Promise<Buffer>;
  /** State or Update Result changed */
  changed?(state: number, result: number): void;
  /** an update succeeded (State Idle, Update Result 1): the device runs `version` now and reboots */
  updated?(version: string | undefined): void;
}

/** the schemes this simulated device downloads by, with their ids in /5/0/8 */
const PROTOCOL_IDS: Record<FirmwareProtocol, number> = { coap: FIRMWARE_PROTOCOLS.coap!, coaps: FIRMWARE_PROTOCOLS.coaps!, http: FIRMWARE_PROTOCOLS.http!, https: FIRMWARE_PROTOCOLS.https! };
const DELIVERY_IDS = { pull: 0, push: 1, both: 2 } as const;
const DOWNLOAD_FAILURES = new Set<number>([2, 3, 4, 5, 6]);

/** Checks the options a user gave; throws a TypeError naming the first bad one. */
export function checkFirmwareOptions(options: FirmwareOptions): void {
  const { delivery, protocols, expect, fail } = options;
  if (delivery !== undefined && !(delivery in DELIVERY_IDS)) throw new TypeError(`firmware.delivery must be pull, push or both, not ${String(delivery)}`);
  if (protocols !== undefined && (!Array.isArray(protocols) || protocols.some((protocol) => !(protocol in PROTOCOL_IDS)))) {
    throw new TypeError(`firmware.protocols must list coap, coaps, http or https, not ${JSON.stringify(protocols)}`);
  }
  if (fail !== undefined && !(Number.isInteger(fail) && fail >= 2 && fail <= 9)) throw new TypeError(`firmware.fail must be an Update Result from 2 to 9, not ${String(fail)}`);
  if (expect?.size !== undefined && !(Number.isInteger(expect.size) && expect.size >= 0)) throw new TypeError(`firmware.expect.size must be a whole number of bytes, not ${String(expect.size)}`);
  if (expect?.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(expect.sha256)) throw new TypeError('firmware.expect.sha256 must be 64 hex digits');
  for (const key of ['flashSize', 'downloadTime', 'downloadTimeout', 'updateTime', 'rebootTime'] as const) {
    const value = options[key];
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) throw new TypeError(`firmware.${key} must be a number ≥ 0, not ${String(value)}`);
  }
}

/**
 * Wires object 5 instance 0 into a tree; returns a function that stops its download and timers and
 * resolves once the download has let go of its sockets.
 */
export function installFirmwareUpdate(tree: ObjectTree, options: FirmwareOptions, hooks: FirmwareHooks): () => Promise<void> {
  checkFirmwareOptions(options);
  const delivery = options.delivery ?? 'both';
  const pull = delivery !== 'push';
  const push = delivery !== 'pull';
  const protocols = options.protocols ?? ['coap', 'coaps', 'http', 'https'];
  const flashSize = options.flashSize ?? FIRMWARE_DEFAULTS.flashSize;
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  /** the download under way; aborting it drops its outcome */
  let job: AbortController | undefined;
  /** settles when the latest built-in fetch has ended (a cancelled one closes its socket first) */
  let fetching: Promise<unknown> = Promise.resolve();
  let pkg: Buffer | undefined;
  const at = (rid: number) => LwM2MPath.of(5, 0, rid);
  const state = (): number => tree.get(at(3)) as number;
  const result = (): number => tree.get(at(5)) as number;

  const move = (next: number, outcome?: number): void => {
    const before = [state(), result()];
    if (tree.resource(at(12))) tree.set(at(12), Math.floor(Date.now() / 1000)); // set before the State changes
    if (outcome !== undefined) tree.set(at(5), outcome);
    tree.set(at(3), next);
    if (before[0] !== state() || before[1] !== result()) hooks.changed?.(state(), result());
  };
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  const describePackage = (name: string, version: string): void => {
    tree.set(at(6), name);
    tree.set(at(7), version);
  };
  const dropJob = (): void => {
    job?.abort();
    job = undefined;
    pkg = undefined;
  };
  const reset = (): void => {
    if (state() === FirmwareState.UPDATING) throw badRequest('the update is being installed; it cannot be reset now');
    dropJob();
    describePackage('', '');
    move(FirmwareState.IDLE, FirmwareResult.INITIAL);
  };
  /** Update Result for a package that arrived, or undefined when it is fine */
  const check = (data: Buffer): number | undefined => {
    if (data.length > flashSize) return FirmwareResult.NOT_ENOUGH_FLASH;
    const { size, sha256 } = options.expect ?? {};
    if (size !== undefined && data.length !== size) return FirmwareResult.INTEGRITY_FAILURE;
    if (sha256 !== undefined && createHash('sha256').update(data).digest('hex') !== sha256.toLowerCase()) return FirmwareResult.INTEGRITY_FAILURE;
    return undefined;
  };

  const startDownload = (fetchPackage: (signal: AbortSignal) => Promise<Buffer>, name: string): void => {
    dropJob();
    const controller = new AbortController();
    job = controller;
    describePackage('', '');
    move(FirmwareState.DOWNLOADING, FirmwareResult.INITIAL);
    const started = Date.now();
    void (async () => {
      let data: Buffer | undefined;
      let failure: number | undefined;
      try {
        data = await fetchPackage(controller.signal);
        if (!Buffer.isBuffer(data)) throw new TypeError('the download gave no Buffer');
      } catch (error) {
        failure = error instanceof DownloadFailure ? error.result : FirmwareResult.CONNECTION_LOST;
      }
      // cancelled, reset, superseded or stopped meanwhile: nothing more to do (and no timer to leave behind)
      if (stopped || job !== controller) return;
      await sleep(Math.max(0, (options.downloadTime ?? FIRMWARE_DEFAULTS.downloadTime) - (Date.now() - started)));
      if (stopped || job !== controller) return;
      job = undefined;
      const simulated = options.fail !== undefined && DOWNLOAD_FAILURES.has(options.fail) ? options.fail : undefined;
      const outcome = simulated ?? failure ?? check(data!);
      if (outcome !== undefined) {
        move(FirmwareState.IDLE, outcome);
        return;
      }
      pkg = data;
      describePackage(name, options.version ?? '');
      move(FirmwareState.DOWNLOADED);
    })().catch(() => undefined);
  };

  const pullFrom = (uri: string): void => {
    let url: URL | undefined;
    try {
      url = new URL(uri);
    } catch {
      url = undefined;
    }
    // the Write succeeds either way; Update Result tells the server what is wrong with the URI
    if (options.fail === FirmwareResult.INVALID_URI || !url || url.hostname === '') return move(FirmwareState.IDLE, FirmwareResult.INVALID_URI);
    const scheme = url.protocol.slice(0, -1) as FirmwareProtocol;
    if (options.fail === FirmwareResult.UNSUPPORTED_PROTOCOL || !protocols.includes(scheme)) return move(FirmwareState.IDLE, FirmwareResult.UNSUPPORTED_PROTOCOL);
    const name = decodeSafely(url.pathname.split('/').filter((segment) => segment !== '').pop() ?? '');
    const target = url;
    startDownload((signal) => {
      if (options.download) return options.download(uri); // the user's: not waited for on stop, it may never settle
      const fetched = hooks.fetch(target, signal);
      fetching = fetched.catch(() => undefined);
      return fetched;
    }, name);
  };

  const spec: InstanceSpec = {
    0: {
      value: Buffer.alloc(0),
      write: (value: ResourceContent) => {
        const data = value as Buffer;
        if (data.length === 0) return reset();
        if (!push) throw notAllowed('this device takes firmware by Package URI only (delivery: pull); write /5/0/1');
        if (state() !== FirmwareState.IDLE) throw badRequest(`a package can be written only in state Idle, not ${state()}`);
        startDownload(async () => data, '');
      },
    },
    1: {
      value: '',
      write: (value: ResourceContent) => {
        const uri = value as string;
        if (uri === '') return reset();
        if (!pull) throw notAllowed('this device takes firmware as a written Package only (delivery: push); write /5/0/0');
        if (state() !== FirmwareState.IDLE) throw badRequest(`a Package URI can be written only in state Idle, not ${state()}`);
        pullFrom(uri);
      },
    },
    2: {
      execute: () => {
        if (state() !== FirmwareState.DOWNLOADED) throw new ClientError('4.05', `Update can be executed only in state Downloaded, not ${state()}`);
        move(FirmwareState.UPDATING, FirmwareResult.INITIAL);
        void (async () => {
          await sleep(options.updateTime ?? FIRMWARE_DEFAULTS.updateTime);
          let outcome: string | boolean = options.fail !== FirmwareResult.UPDATE_FAILED;
          if (outcome && options.install) {
            try {
              outcome = await options.install(pkg ?? Buffer.alloc(0));
            } catch {
              outcome = false;
            }
          }
          if (stopped || state() !== FirmwareState.UPDATING) return;
          if (outcome === false) return move(FirmwareState.DOWNLOADED, FirmwareResult.UPDATE_FAILED);
          const version = typeof outcome === 'string' ? outcome : options.version;
          pkg = undefined;
          if (version !== undefined) tree.set(at(7), version);
          move(FirmwareState.IDLE, FirmwareResult.SUCCESS);
          hooks.updated?.(version);
        })().catch(() => undefined);
      },
    },
    3: FirmwareState.IDLE,
    5: FirmwareResult.INITIAL,
    6: '',
    7: '',
    // a push-only device fetches nothing, so it names no protocol
    8: pull ? Object.fromEntries(protocols.map((protocol, index) => [index, PROTOCOL_IDS[protocol]])) : {},
    9: DELIVERY_IDS[delivery],
    10: {
      execute: () => {
        const now = state();
        if (now !== FirmwareState.DOWNLOADING && now !== FirmwareState.DOWNLOADED) throw new ClientError('4.05', `nothing to cancel in state ${now}`);
        dropJob();
        describePackage('', '');
        move(FirmwareState.IDLE, FirmwareResult.CANCELLED);
      },
    },
  };
  tree.addInstance(5, 0, spec);
  return () => {
    stopped = true;
    dropJob();
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    return fetching.then(() => undefined);
  };
}

function decodeSafely(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
