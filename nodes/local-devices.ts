/**
 * Simulated devices of this process that are stopping, by the UDP port of the server they leave.
 *
 * On a full deploy (and on Node-RED's shutdown) Node-RED tells every node to close at once, config
 * nodes last but without waiting for the others: an `lwm2m-server` would close its socket while
 * the device-sims of the same runtime still wait for the answer to their De-register, and each of
 * them would then wait for its timeout. So a device-sim announces its stop here, and a server node
 * that closes waits (bounded) for the stops aimed at its own ports first.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { coapTarget } from '../lib';

const stopping = new Map<number, Set<{ host: string; done: Promise<unknown> }>>();

/** A device-sim closing: `done` settles once its devices towards `uri` have stopped (De-register included). */
export function devicesStopping(uri: string, done: Promise<unknown>): void {
  let target: URL;
  try {
    target = new URL(uri);
  } catch {
    return; // a device-sim with a bad URI never had devices running
  }
  const { host, port } = coapTarget(target);
  const entry = { host, done };
  let entries = stopping.get(port);
  if (!entries) stopping.set(port, (entries = new Set()));
  entries.add(entry);
  const forget = () => {
    entries!.delete(entry);
    if (entries!.size === 0 && stopping.get(port) === entries) stopping.delete(port);
  };
  done.then(forget, forget);
}

/**
 * Resolves once the devices of this process stopping towards one of `ports` on this machine are
 * done, or after `limit` ms. Call it after every node of the deploy was told to close (a turn of
 * the event loop after the own close began), so that all of them have announced themselves.
 */
export async function localDevicesStopped(ports: number[], limit: number): Promise<void> {
  const waits = ports.flatMap((port) => [...(stopping.get(port) ?? [])].filter((entry) => isThisMachine(entry.host)).map((entry) => entry.done));
  if (waits.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(waits), new Promise((resolve) => (timer = setTimeout(resolve, limit)))]);
  clearTimeout(timer);
}

function isThisMachine(host: string): boolean {
  if (host === 'localhost' || host === '0.0.0.0' || host === '::' || host === '::1' || /^127\./.test(host)) return true;
  if (isIP(host) === 0) return false; // a name: most likely another machine; its De-register has its own short timeout
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((address) => address.address === host));
}
