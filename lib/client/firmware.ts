/**
 * Firmware Update (object 5) as the LwM2M specification's state machine (Core 1.1 appendix E.6):
 *
 *   Idle ──write Package / Package URI──▶ Downloading ──done──▶ Downloaded ──execute Update──▶ Updating
 *     ▲            │ bad URI (7), unsupported protocol (9),          │ write ""                 │ success (1)
 *     │            ▼ download failure (4, 5, 6)                      ▼                          ▼
 *     └──────── Idle ◀───────────────────────────────────────── Idle ◀─────────────────────── Idle
 *   and Updating ──failure (8)──▶ Downloaded, so the server may try again.
 *
 * State is resource 3 and Update Result resource 5; every change goes through the tree, so
 * observers of /5/0/3 and /5/0/5 see the machine move.
 */
import { LwM2MPath } from '../path';
import { ClientError, badRequest } from './errors';
import type { InstanceSpec, ObjectTree, ResourceContent } from './tree';

export const FirmwareState = { IDLE: 0, DOWNLOADING: 1, DOWNLOADED: 2, UPDATING: 3 } as const;
export const FirmwareResult = {
  INITIAL: 0,
  SUCCESS: 1,
  NOT_ENOUGH_FLASH: 2,
  OUT_OF_RAM: 3,
  CONNECTION_LOST: 4,
  INTEGRITY_FAILURE: 5,
  UNSUPPORTED_PACKAGE: 6,
  INVALID_URI: 7,
  UPDATE_FAILED: 8,
  UNSUPPORTED_PROTOCOL: 9,
  CANCELLED: 10,
} as const;

export interface FirmwareOptions {
  /** fetches a package named by a Package URI; default: a simulated download that succeeds with an empty package */
  download?: (uri: string) => Promise<Buffer>;
  /** installs a package; resolve with the new firmware version (or true), resolve false or throw to fail (result 8) */
  install?: (pkg: Buffer) => Promise<string | boolean>;
  /** ms a simulated download takes */
  downloadTime?: number;
  /** ms an update takes */
  updateTime?: number;
  /** URI schemes accepted for Package URI (resource 8 lists them) */
  protocols?: Array<'coap' | 'coaps' | 'http' | 'https'>;
}

const PROTOCOL_IDS = { coap: 0, coaps: 1, http: 2, https: 3 } as const;

/** Wires object 5 instance 0 into a tree; returns a function that cancels its timers. */
export function installFirmwareUpdate(tree: ObjectTree, options: FirmwareOptions = {}, onUpdated?: (version: string | undefined) => void): () => void {
  const protocols = options.protocols ?? ['coap', 'coaps', 'http', 'https'];
  const timers = new Set<NodeJS.Timeout>();
  let pkg: Buffer | undefined;
  const at = (rid: number) => LwM2MPath.of(5, 0, rid);
  const state = (): number => tree.get(at(3)) as number;
  const move = (next: number, result?: number): void => {
    if (result !== undefined) tree.set(at(5), result);
    tree.set(at(3), next);
    if (tree.resource(at(12))) tree.set(at(12), Math.floor(Date.now() / 1000));
  };
  const later = (ms: number, step: () => void | Promise<void>): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      void Promise.resolve()
        .then(step)
        .catch(() => undefined);
    }, ms);
    timers.add(timer);
  };
  const reset = (): void => {
    pkg = undefined;
    move(FirmwareState.IDLE, FirmwareResult.INITIAL);
  };
  const startDownload = (fetch: () => Promise<Buffer>): void => {
    move(FirmwareState.DOWNLOADING, FirmwareResult.INITIAL);
    later(options.downloadTime ?? 200, async () => {
      try {
        pkg = await fetch();
        if (state() === FirmwareState.DOWNLOADING) move(FirmwareState.DOWNLOADED);
      } catch {
        if (state() === FirmwareState.DOWNLOADING) move(FirmwareState.IDLE, FirmwareResult.CONNECTION_LOST);
      }
    });
  };

  const spec: InstanceSpec = {
    0: {
      value: Buffer.alloc(0),
      write: (value: ResourceContent) => {
        const data = value as Buffer;
        if (data.length === 0) return reset();
        if (state() !== FirmwareState.IDLE) throw badRequest(`a package can be written only in state Idle, not ${state()}`);
        startDownload(async () => data);
      },
    },
    1: {
      value: '',
      write: (value: ResourceContent) => {
        const uri = value as string;
        if (uri === '') return reset();
        if (state() !== FirmwareState.IDLE) throw badRequest(`a Package URI can be written only in state Idle, not ${state()}`);
        let scheme: string;
        try {
          scheme = new URL(uri).protocol.replace(/:$/, '');
        } catch {
          // resource 5 tells the server why; the Write itself succeeded (spec: the result reports it)
          later(0, () => move(FirmwareState.IDLE, FirmwareResult.INVALID_URI));
          return;
        }
        if (!protocols.includes(scheme as keyof typeof PROTOCOL_IDS)) {
          later(0, () => move(FirmwareState.IDLE, FirmwareResult.UNSUPPORTED_PROTOCOL));
          return;
        }
        startDownload(() => (options.download ? options.download(uri) : Promise.resolve(Buffer.alloc(0))));
      },
    },
    2: {
      execute: () => {
        if (state() !== FirmwareState.DOWNLOADED) throw new ClientError('4.05', `Update can be executed only in state Downloaded, not ${state()}`);
        move(FirmwareState.UPDATING);
        later(options.updateTime ?? 200, async () => {
          let outcome: string | boolean = true;
          try {
            outcome = options.install ? await options.install(pkg ?? Buffer.alloc(0)) : true;
          } catch {
            outcome = false;
          }
          if (outcome === false) {
            move(FirmwareState.DOWNLOADED, FirmwareResult.UPDATE_FAILED);
            return;
          }
          pkg = undefined;
          move(FirmwareState.IDLE, FirmwareResult.SUCCESS);
          onUpdated?.(typeof outcome === 'string' ? outcome : undefined);
        });
      },
    },
    3: FirmwareState.IDLE,
    5: FirmwareResult.INITIAL,
    6: '',
    7: '',
    8: Object.fromEntries(protocols.map((protocol, index) => [index, PROTOCOL_IDS[protocol]])),
    9: 2, // both push (Package) and pull (Package URI)
    10: {
      execute: () => {
        const now = state();
        if (now !== FirmwareState.DOWNLOADING && now !== FirmwareState.DOWNLOADED) throw new ClientError('4.05', `nothing to cancel in state ${now}`);
        pkg = undefined;
        move(FirmwareState.IDLE, FirmwareResult.CANCELLED);
      },
    },
  };
  tree.addInstance(5, 0, spec);
  return () => {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };
}
