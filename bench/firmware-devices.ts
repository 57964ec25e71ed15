/**
 * The devices of bench/firmware: a child process, so that the server's CPU and memory in the
 * parent are its own (a hundred devices that pulled 1 MB each hold 100 MB of packages here, not
 * there). The parent sends one command at a time over IPC and gets one answer:
 *
 * - `devices`: starts `count` LwM2MClients named `<prefix>-<n>` with the Firmware Update object,
 *   answers once all registered;
 * - `echo`: the baseline, `loops` lock-step loops (send a datagram, wait for its echo, send the
 *   next), as block-wise transfer goes, each on its own socket, for `seconds`;
 * - `stop`: stops every device (De-register).
 *
 * Counts only: never prints, never decides anything.
 */
import { createSocket, type Socket } from 'node:dgram';
import { LwM2MClient, type FirmwareOptions } from '../lib';

export type Command =
  | { cmd: 'devices'; server: string; prefix: string; count: number; firmware: FirmwareOptions }
  | { cmd: 'echo'; port: number; loops: number; size: number; seconds: number }
  | { cmd: 'stop' };

export type Answer =
  | { type: 'ready' }
  | { type: 'devices'; count: number }
  | { type: 'echo'; rounds: number; elapsedMs: number; lost: number }
  | { type: 'stopped' }
  | { type: 'failed'; error: string };

const answer = (message: Answer) => process.send!(message);
const devices: LwM2MClient[] = [];

async function startDevices(command: Extract<Command, { cmd: 'devices' }>): Promise<number> {
  const batch: Array<Promise<void>> = [];
  for (let n = 1; n <= command.count; n++) {
    const device = new LwM2MClient({ endpoint: `${command.prefix}-${n}`, server: command.server, lifetime: 3600, firmware: command.firmware });
    device.on('error', () => undefined); // a device's trouble shows in its outcome
    devices.push(device);
    batch.push(device.start());
    // a few at a time: a hundred Registers at once would measure the server's registration burst
    if (batch.length === 20) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  return devices.length;
}

/** `loops` sockets, each sending a datagram of `size` and the next once its echo is back. */
async function echo(command: Extract<Command, { cmd: 'echo' }>): Promise<Answer> {
  const sockets: Socket[] = [];
  const payload = Buffer.alloc(command.size, 0x5a);
  let rounds = 0;
  let lost = 0;
  const began = performance.now();
  const deadline = began + command.seconds * 1000;
  await Promise.all(
    Array.from({ length: command.loops }, async () => {
      const socket = createSocket('udp4');
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      while (performance.now() < deadline) {
        const back = await new Promise<boolean>((resolve) => {
          // a datagram the kernel dropped: given up after a second, as a CoAP retransmission would
          const timer = setTimeout(() => resolve(false), 1000);
          socket.once('message', () => {
            clearTimeout(timer);
            resolve(true);
          });
          socket.send(payload, command.port, '127.0.0.1');
        });
        if (back) rounds++;
        else lost++;
      }
    }),
  );
  const elapsedMs = performance.now() - began;
  for (const socket of sockets) socket.close();
  return { type: 'echo', rounds, elapsedMs, lost };
}

process.on('message', (command: Command) => {
  void (async () => {
    try {
      if (command.cmd === 'devices') answer({ type: 'devices', count: await startDevices(command) });
      else if (command.cmd === 'echo') answer(await echo(command));
      else if (command.cmd === 'stop') {
        await Promise.all(devices.splice(0).map((device) => device.stop().catch(() => undefined)));
        answer({ type: 'stopped' });
      }
    } catch (error) {
      answer({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
    }
  })();
});
process.on('disconnect', () => {
  void Promise.all(devices.splice(0).map((device) => device.stop({ deregister: false }).catch(() => undefined))).then(() => process.exit(0));
});
answer({ type: 'ready' });
