/**
 * The load generator of bench/server: a child process that plays many LwM2M devices with bare UDP
 * sockets and pre-built CoAP datagrams (serializeMessage once, then only the Message ID, the name
 * or the registration id is patched), so that the server in the parent process is the bottleneck.
 * The parent steers it over IPC with one command at a time and gets one result back:
 *
 * - `echo`: the baseline, datagrams of the same size to a bare echo socket in the parent;
 * - `devices`: one socket per device, connected to `serverPort`, each registers `dev-<n>`; the
 *   devices then answer GET /3/0/0 (reads) and GET with Observe on /3303/0/5700 (observations)
 *   from that port (a connected socket hears no other). A second `devices` command closes the
 *   sockets of the first and starts afresh against its own `serverPort` (the next server);
 * - `register`, `deregister`, `update`, `notify`: the rate tests, a fixed number of requests
 *   outstanding in total (`window`), spread round-robin over the sockets; `mixed`: updates and
 *   notifications taking turns (for the soak);
 * - `mass`: registrations to `serverPort` from distinct source addresses and ports (127.0.0.2, .3, …
 *   ports 12000–31999), each socket closed once its registration is acknowledged: the registration
 *   storm. `first` numbers the names and picks the address and port slots, so that storms in steps
 *   add up.
 *
 * Counts only: never prints, never decides anything.
 */
import { createSocket, type Socket } from 'node:dgram';
import { OptionNumber, encodeUint, parseMessage, serializeMessage, uintOption, type CoapMessage } from '../lib/transport/message';

export type Command =
  | { cmd: 'echo'; port: number; seconds: number; window: number; sockets: number; size: number }
  | { cmd: 'devices'; serverPort: number; devices: number; window: number; lifetime: number }
  | { cmd: 'register'; seconds: number; window: number }
  | { cmd: 'deregister'; window: number }
  | { cmd: 'update'; seconds: number; window: number }
  | { cmd: 'notify'; seconds: number; window: number }
  | { cmd: 'mixed'; seconds: number; window: number }
  | { cmd: 'mass'; serverPort: number; count: number; window: number; lifetime: number; first?: number }
  | { cmd: 'stop' };

export interface RunResult {
  /** successful answers received before the deadline (or in all, for runs without one) */
  ok: number;
  /** other answers (error codes, Resets) */
  other: number;
  /** successful answers in all, those that came while a timed run drained after its deadline included */
  answered?: number;
  /** requests given up after a second without any answer (or still unanswered when a timed run ended) */
  lost: number;
  elapsedMs: number;
  /** CPU of this process during the run, % of one core */
  cpu: number;
  /** what the run left behind: registered devices, observed devices, … */
  detail?: Record<string, number>;
}

const SERVER = '127.0.0.1';
const CODE = { CREATED: 0x41, DELETED: 0x42, CHANGED: 0x44, CONTENT: 0x45, EMPTY: 0x00 } as const;
const TYPE = { CON: 0, NON: 1, ACK: 2, RST: 3 } as const;
const LINKS = Buffer.from('</>;rt="oma.lwm2m";ct=0,</1/0>,</3/0>,</3303/0>');
const READ_PAYLOAD = Buffer.from('bench-device');

interface Device {
  socket: Socket;
  name: string;
  nextMessageId: number;
  /** `rd/<id>` the server gave */
  id?: string;
  update?: Buffer;
  /** the observation the server started on /3303/0/5700 */
  observeToken?: Buffer;
  sequence: number;
}

const devices: Device[] = [];
/** sockets for the registration-rate test, separate from the devices so their address index stays theirs */
const rateSockets: Device[] = [];
/** registration ids created by the registration-rate test, for the de-registration test */
const rateIds: string[] = [];
/** where answers to our requests go during a run */
let onAnswer: ((device: Device, datagram: Buffer) => void) | undefined;

function takeMessageId(device: Device): number {
  device.nextMessageId = (device.nextMessageId + 1) & 0xffff;
  return device.nextMessageId;
}

function header(type: number, tokenLength: number, code: number, messageId: number): number[] {
  return [0x40 | (type << 4) | tokenLength, code, messageId >> 8, messageId & 0xff];
}

/** 2.05 Content in text/plain, piggybacked (ACK) or as a notification (CON, with Observe). */
function content(type: number, messageId: number, token: Buffer, observe: number | undefined, payload: Buffer): Buffer {
  const options: number[] = [];
  if (observe !== undefined) {
    const value = encodeUint(observe);
    options.push(0x60 | value.length, ...value, 0x60); // Observe (6), then Content-Format (12) = 0: delta 6, empty
  } else {
    options.push(0xc0); // Content-Format (12) = 0
  }
  return Buffer.concat([Buffer.from(header(type, token.length, CODE.CONTENT, messageId)), token, Buffer.from(options), Buffer.from([0xff]), payload]);
}

function registerMessage(name: string, lifetime: number): CoapMessage {
  return {
    type: 'CON',
    code: '0.02',
    messageId: 0,
    token: Buffer.from('regtoken'),
    options: [
      { number: OptionNumber.URI_PATH, value: Buffer.from('rd') },
      { number: OptionNumber.URI_QUERY, value: Buffer.from(`ep=${name}`) },
      { number: OptionNumber.URI_QUERY, value: Buffer.from(`lt=${lifetime}`) },
      { number: OptionNumber.URI_QUERY, value: Buffer.from('lwm2m=1.1') },
      { number: OptionNumber.URI_QUERY, value: Buffer.from('b=U') },
      uintOption(OptionNumber.CONTENT_FORMAT, 40),
    ],
    payload: LINKS,
  };
}

/** A datagram template and a function that writes a fresh Message ID and a fixed-width text (name, id) into a copy. */
function template(message: CoapMessage, placeholder: string): (messageId: number, text: string) => Buffer {
  const base = serializeMessage(message);
  const at = base.indexOf(placeholder);
  if (at < 0) throw new Error(`placeholder ${placeholder} not in the template`);
  return (messageId, text) => {
    if (text.length !== placeholder.length) throw new Error(`${text} does not have the width of ${placeholder}`);
    const datagram = Buffer.from(base);
    datagram.writeUInt16BE(messageId, 2);
    datagram.write(text, at, 'latin1');
    return datagram;
  };
}

function locationId(datagram: Buffer): string | undefined {
  try {
    const location = parseMessage(datagram).options.filter((option) => option.number === OptionNumber.LOCATION_PATH);
    return location.length === 2 ? location[1]!.value.toString('utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** A device answers the server's requests: reads of /3/0/0, Observe of /3303/0/5700 (and its cancel). */
function answerRequest(device: Device, datagram: Buffer): void {
  let request: CoapMessage;
  try {
    request = parseMessage(datagram);
  } catch {
    return;
  }
  const reply = (response: Buffer) => device.socket.send(response);
  const type = request.type === 'CON' ? TYPE.ACK : TYPE.NON;
  const messageId = request.type === 'CON' ? request.messageId : takeMessageId(device);
  if (request.code !== '0.01') {
    reply(Buffer.concat([Buffer.from(header(type, request.token.length, 0x85, messageId)), request.token])); // 4.05
    return;
  }
  const path = request.options.filter((option) => option.number === OptionNumber.URI_PATH).map((option) => option.value.toString()).join('/');
  const observe = request.options.find((option) => option.number === OptionNumber.OBSERVE);
  if (path === '3303/0/5700' && observe && observe.value.length === 0) {
    device.observeToken = Buffer.from(request.token);
    device.sequence = 1;
    reply(content(type, messageId, request.token, device.sequence, Buffer.from('20.5')));
    return;
  }
  if (path === '3303/0/5700') {
    if (observe) device.observeToken = undefined; // Observe=1: cancel
    reply(content(type, messageId, request.token, undefined, Buffer.from('20.5')));
    return;
  }
  reply(content(type, messageId, request.token, undefined, READ_PAYLOAD));
}

async function openDevice(name: string, port: number, address: string): Promise<Device> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => socket.connect(port, address, resolve));
  const device: Device = { socket, name, nextMessageId: Math.floor(Math.random() * 0x10000), sequence: 0 };
  socket.on('message', (datagram) => {
    const type = (datagram[0]! >> 4) & 3;
    const code = datagram[1]!;
    if (code !== 0 && code >> 5 === 0 && (type === TYPE.CON || type === TYPE.NON)) answerRequest(device, datagram);
    else onAnswer?.(device, datagram);
  });
  socket.on('error', () => undefined);
  return device;
}

/**
 * Keeps `window` requests outstanding in total: each answer sends the next request (from the next
 * socket, round-robin). Runs for `seconds`, or until `next` has nothing more to send.
 */
function drive(options: {
  window: number;
  seconds?: number;
  /** sends one request; false when there is nothing left */
  next: () => boolean;
  /** classifies an answer: true success, false failure, undefined not an answer to count */
  judge: (device: Device, datagram: Buffer) => boolean | undefined;
}): Promise<RunResult> {
  return new Promise((resolve) => {
    const cpuStart = process.cpuUsage();
    const began = performance.now();
    let inflight = 0;
    let ok = 0;
    let other = 0;
    let lost = 0;
    let exhausted = false;
    let stopped = false;
    let okAtStop = -1;
    let heardAt = began;
    const pump = (): void => {
      while (!stopped && !exhausted && inflight < options.window) {
        if (!options.next()) {
          exhausted = true;
          break;
        }
        inflight++;
      }
      if ((exhausted || stopped) && inflight === 0) finish();
    };
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      lost += inflight; // still unanswered when the run ended
      inflight = 0;
      clearInterval(watchdog);
      clearTimeout(deadline);
      onAnswer = undefined;
      const elapsedMs = options.seconds !== undefined ? options.seconds * 1000 : performance.now() - began;
      const used = process.cpuUsage(cpuStart);
      const cpu = ((used.user + used.system) / 1000 / (performance.now() - began)) * 100;
      resolve({ ok: okAtStop >= 0 ? okAtStop : ok, answered: ok, other, lost, elapsedMs, cpu });
    };
    onAnswer = (device, datagram) => {
      const verdict = options.judge(device, datagram);
      if (verdict === undefined) return;
      heardAt = performance.now();
      if (verdict) ok++;
      else other++;
      if (inflight > 0) inflight--;
      pump();
    };
    // an answer lost (a full receive buffer, a server pause): after a second of silence the window is refilled
    const watchdog = setInterval(() => {
      if (inflight > 0 && performance.now() - heardAt > 1000) {
        lost += inflight;
        inflight = 0;
        heardAt = performance.now();
        if (stopped) finish();
        else pump();
      }
    }, 250);
    const deadline = options.seconds !== undefined
      ? setTimeout(() => {
          stopped = true;
          okAtStop = ok;
          // what is still outstanding drains (up to a second) so that the next run starts clean
          if (inflight === 0) finish();
          else setTimeout(finish, 1000);
        }, options.seconds * 1000)
      : undefined;
    pump();
  });
}

function roundRobin<T>(items: readonly T[]): () => T {
  let next = 0;
  return () => items[next++ % items.length]!;
}

async function echo(command: Extract<Command, { cmd: 'echo' }>): Promise<RunResult> {
  const sockets = await Promise.all(
    Array.from({ length: command.sockets }, async (_, n) => {
      const device = await openDevice(`echo-${n}`, command.port, '127.0.0.1');
      return device;
    }),
  );
  const datagram = Buffer.alloc(command.size, 0x42);
  const socket = roundRobin(sockets);
  const result = await drive({
    window: command.window,
    seconds: command.seconds,
    next: () => {
      socket().socket.send(datagram);
      return true;
    },
    judge: () => true,
  });
  await Promise.all(sockets.map((device) => new Promise<void>((resolve) => device.socket.close(() => resolve()))));
  return result;
}

async function registerDevices(command: Extract<Command, { cmd: 'devices' }>): Promise<RunResult> {
  await closeAll();
  rateIds.length = 0;
  for (let n = 0; n < command.devices; n++) devices.push(await openDevice(`dev-${n}`, command.serverPort, SERVER));
  for (let n = 0; n < command.devices; n++) rateSockets.push(await openDevice(`rate-${n}`, command.serverPort, SERVER));
  let index = 0;
  const waiting = new Set(devices);
  const result = await drive({
    window: command.window,
    next: () => {
      const device = devices[index++];
      if (!device) return false;
      const message = registerMessage(device.name, command.lifetime);
      message.messageId = takeMessageId(device);
      device.socket.send(serializeMessage(message));
      return true;
    },
    judge: (device, datagram) => {
      if (datagram[1] !== CODE.CREATED) return false;
      const id = locationId(datagram);
      if (!id || !waiting.delete(device)) return false;
      device.id = id;
      device.update = serializeMessage({ type: 'CON', code: '0.02', messageId: 0, token: Buffer.from('upd8tokn'), options: [{ number: OptionNumber.URI_PATH, value: Buffer.from('rd') }, { number: OptionNumber.URI_PATH, value: Buffer.from(id) }], payload: Buffer.alloc(0) });
      return true;
    },
  });
  result.detail = { registered: devices.filter((device) => device.id !== undefined).length };
  return result;
}

async function registerRate(command: Extract<Command, { cmd: 'register' }>): Promise<RunResult> {
  const make = template(registerMessage('rate-00000000', 86400), 'rate-00000000');
  const socket = roundRobin(rateSockets);
  let count = 0;
  return drive({
    window: command.window,
    seconds: command.seconds,
    next: () => {
      const device = socket();
      device.socket.send(make(takeMessageId(device), `rate-${String(count++).padStart(8, '0')}`));
      return true;
    },
    judge: (_device, datagram) => {
      if (datagram[1] !== CODE.CREATED) return false;
      const id = locationId(datagram);
      if (id) rateIds.push(id);
      return true;
    },
  });
}

async function deregisterRate(command: Extract<Command, { cmd: 'deregister' }>): Promise<RunResult> {
  const width = rateIds[0]?.length ?? 8;
  const placeholder = 'x'.repeat(width);
  const make = template({ type: 'CON', code: '0.04', messageId: 0, token: Buffer.from('deletetk'), options: [{ number: OptionNumber.URI_PATH, value: Buffer.from('rd') }, { number: OptionNumber.URI_PATH, value: Buffer.from(placeholder) }], payload: Buffer.alloc(0) }, placeholder);
  const socket = roundRobin(rateSockets);
  const ids = rateIds.splice(0);
  let index = 0;
  const result = await drive({
    window: command.window,
    next: () => {
      const id = ids[index++];
      if (id === undefined) return false;
      const device = socket();
      device.socket.send(make(takeMessageId(device), id));
      return true;
    },
    judge: (_device, datagram) => datagram[1] === CODE.DELETED,
  });
  result.detail = { requested: ids.length };
  return result;
}

function updateDatagram(device: Device): Buffer {
  const datagram = Buffer.from(device.update!);
  datagram.writeUInt16BE(takeMessageId(device), 2);
  return datagram;
}

let notifiedValue = 0;
function notificationDatagram(device: Device): Buffer {
  device.sequence = (device.sequence + 1) & 0xffffff;
  notifiedValue = (notifiedValue + 1) % 1000;
  return content(TYPE.CON, takeMessageId(device), device.observeToken!, device.sequence, Buffer.from(String(20 + notifiedValue / 100)));
}

const updated = (datagram: Buffer): boolean => datagram[1] === CODE.CHANGED;

/** The server acknowledges each Confirmable notification with an empty ACK; a Reset means it does not know the observation. */
function acknowledged(datagram: Buffer): boolean | undefined {
  const type = (datagram[0]! >> 4) & 3;
  return type === TYPE.ACK && datagram[1] === CODE.EMPTY ? true : type === TYPE.RST ? false : undefined;
}

async function updateRate(command: Extract<Command, { cmd: 'update' }>): Promise<RunResult> {
  const device = roundRobin(devices.filter((candidate) => candidate.update !== undefined));
  return drive({
    window: command.window,
    seconds: command.seconds,
    next: () => {
      const next = device();
      next.socket.send(updateDatagram(next));
      return true;
    },
    judge: (_device, datagram) => updated(datagram),
  });
}

async function notifyRate(command: Extract<Command, { cmd: 'notify' }>): Promise<RunResult> {
  const observed = devices.filter((candidate) => candidate.observeToken !== undefined);
  const device = roundRobin(observed);
  const result = await drive({
    window: command.window,
    seconds: command.seconds,
    next: () => {
      const next = device();
      next.socket.send(notificationDatagram(next));
      return true;
    },
    judge: (_device, datagram) => acknowledged(datagram),
  });
  result.detail = { observed: observed.length };
  return result;
}

/** Updates and Confirmable notifications taking turns. */
async function mixedRate(command: Extract<Command, { cmd: 'mixed' }>): Promise<RunResult> {
  const device = roundRobin(devices.filter((candidate) => candidate.update !== undefined && candidate.observeToken !== undefined));
  let turn = 0;
  let updates = 0;
  let notifications = 0;
  const result = await drive({
    window: command.window,
    seconds: command.seconds,
    next: () => {
      const next = device();
      next.socket.send(turn++ % 2 === 0 ? updateDatagram(next) : notificationDatagram(next));
      return true;
    },
    judge: (_device, datagram) => {
      if (updated(datagram)) {
        updates++;
        return true;
      }
      const verdict = acknowledged(datagram);
      if (verdict) notifications++;
      return verdict;
    },
  });
  result.detail = { updates, notifications };
  return result;
}

/**
 * Registrations from distinct addresses and ports; each socket closes once answered. A registration
 * unanswered after a second is sent again (the same Message ID), up to 4 times, then given up.
 */
function mass(command: Extract<Command, { cmd: 'mass' }>): Promise<RunResult> {
  const FIRST_PORT = 12_000;
  const PORTS = 20_000; // 12000–31999: below the ephemeral range, so nothing else picks them by chance
  const make = template(registerMessage('mass-000000', command.lifetime), 'mass-000000');
  return new Promise((resolve) => {
    const cpuStart = process.cpuUsage();
    const began = performance.now();
    const first = command.first ?? 0;
    let slot = first; // address × port counter
    let issued = 0;
    let retransmissions = 0;
    let open = 0;
    let registered = 0;
    let refused = 0;
    let gaveUp = 0;
    let portsInUse = 0;
    const finish = () => {
      const used = process.cpuUsage(cpuStart);
      const elapsedMs = performance.now() - began;
      resolve({ ok: registered, other: refused, lost: gaveUp, elapsedMs, cpu: ((used.user + used.system) / 1000 / elapsedMs) * 100, detail: { addresses: Math.floor((slot - 1) / PORTS) + 1, portsInUse, retransmissions } });
    };
    const launch = (): void => {
      while (open < command.window && issued < command.count) {
        const n = first + issued++;
        open++;
        const address = `127.0.0.${2 + Math.floor(slot / PORTS)}`;
        const port = FIRST_PORT + (slot % PORTS);
        slot++;
        const socket = createSocket('udp4');
        let timer: NodeJS.Timeout | undefined;
        let tries = 0;
        /** registered, refused (an answer other than 2.01), given up (no answer), or the port was taken */
        const done = (outcome: 'registered' | 'refused' | 'gave up' | 'port taken') => {
          clearInterval(timer);
          socket.close();
          open--;
          if (outcome === 'registered') registered++;
          else if (outcome === 'refused') refused++;
          else if (outcome === 'gave up') gaveUp++;
          else issued--; // try the next port
          if (issued >= command.count && open === 0) finish();
          else launch();
        };
        socket.once('error', () => {
          portsInUse++;
          done('port taken');
        });
        socket.bind(port, address, () => {
          socket.removeAllListeners('error');
          socket.on('error', () => undefined);
          const datagram = make(n & 0xffff, `mass-${String(n).padStart(6, '0')}`);
          socket.on('message', (answer) => done(answer[1] === CODE.CREATED ? 'registered' : 'refused'));
          const send = () => {
            if (tries >= 5) return done('gave up');
            if (tries++ > 0) retransmissions++;
            socket.send(datagram, command.serverPort, SERVER);
          };
          send();
          timer = setInterval(send, 1000); // same Message ID: the server answers a repeat from its deduplication cache
        });
      }
    };
    launch();
  });
}

/** Closes the sockets of the devices and of the registration-rate test. */
async function closeAll(): Promise<void> {
  const all = [...devices, ...rateSockets];
  devices.length = 0;
  rateSockets.length = 0;
  await Promise.all(all.map((device) => new Promise<void>((resolve) => device.socket.close(() => resolve()))));
}

async function run(command: Command): Promise<RunResult | undefined> {
  switch (command.cmd) {
    case 'echo':
      return echo(command);
    case 'devices':
      return registerDevices(command);
    case 'register':
      return registerRate(command);
    case 'deregister':
      return deregisterRate(command);
    case 'update':
      return updateRate(command);
    case 'notify':
      return notifyRate(command);
    case 'mixed':
      return mixedRate(command);
    case 'mass':
      return mass(command);
    case 'stop':
      await closeAll();
      process.exit(0);
  }
}

process.on('message', (command: Command) => {
  run(command).then(
    (result) => process.send!({ type: 'done', cmd: command.cmd, result }),
    (error: unknown) => process.send!({ type: 'failed', cmd: command.cmd, error: String((error as Error)?.stack ?? error) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
