/**
 * What the node tests share: the palette's twelve nodes with the core nodes the flows use, a base
 * flow (server node, register-in, read, a Catch and a Status node), and simulated devices that
 * register with the server node over loopback.
 */
import { LwM2MClient, type LwM2MClientOptions } from '../../lib';
import { FAST_TIMING } from './fake-server';
import { coreNode, helper } from './node-red';

export const PALETTE = ['lwm2m-server', 'lwm2m-register-in', 'lwm2m-observe', 'lwm2m-notify-in', 'lwm2m-send-in', 'lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-trace', 'lwm2m-firmware', 'lwm2m-bootstrap', 'lwm2m-device-sim'];

export const NODES = [
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ...PALETTE.map((type) => require(`../../nodes/${type}`)),
  ...['common/20-inject.js', 'common/21-debug.js', 'common/25-catch.js', 'common/25-status.js', 'function/10-function.js'].map(coreNode),
];

export interface TestNode {
  on(event: 'input', handler: (msg: Record<string, unknown>) => void): void;
  receive(msg: Record<string, unknown>): void;
  context(): { flow: { set(key: string, value: unknown): void } };
  ready?: Promise<void>;
}

export type Message = Record<string, unknown>;

export function node(id: string): TestNode {
  return helper.getNode(id) as TestNode;
}

/** The next message a helper node (by id, or the node itself) receives. */
export function nextMessage(target: string | TestNode): Promise<Message> {
  return new Promise((resolve) => (typeof target === 'string' ? node(target) : target).on('input', resolve));
}

/** The next message a helper node receives that passes `test`. */
export function messageWhere(id: string, test: (msg: Message) => boolean): Promise<Message> {
  return new Promise((resolve) => node(id).on('input', (msg) => test(msg) && resolve(msg)));
}

type Status = { text?: string; fill?: string; shape?: string; source: { id: string } };

/**
 * A status the node shows that passes `test`: one it has shown since the flow started (the base
 * flow's Status node logs every status, so nothing shown during the deploy is missed), else the next.
 */
export function statusOf(id: string, test: (status: { text?: string; fill?: string; shape?: string }) => boolean): Promise<{ text?: string; fill?: string; shape?: string }> {
  const log = (helper.getNode('statusLog') as { context(): { global: { get(key: string): Status[] | undefined } } }).context().global.get('statuses') ?? [];
  const seen = log.find((status) => status.source.id === id && test(status));
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) =>
    node('statuses').on('input', (msg) => {
      const status = msg.status as Status;
      if (status.source.id === id && test(status)) resolve(status);
    }),
  );
}

/**
 * The base flow: a server node `srv` on `port`, register-in `reg` (sim-*) → `out`, read `read`
 * → `readOut`, a Catch → `caught` and a Status node → `statuses`; `extra` nodes join the tab.
 * A node's id must differ from every property value in the flow (no id `discover` beside
 * `operation: 'discover'`): Node-RED takes such a value for a reference to that node.
 */
export function paletteFlow(port: number, extra: object[] = [], server: object = {}): object[] {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', port, address: '127.0.0.1', requestTimeout: 2, ...server },
    ...[
      { id: 'reg', type: 'lwm2m-register-in', server: 'srv', endpoint: 'sim-*', awake: false, sleep: false, wires: [['out']] },
      { id: 'read', type: 'lwm2m-read', server: 'srv', path: '/3303/0/5700', wires: [['readOut']] },
      { id: 'c1', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 's1', type: 'status', scope: null, wires: [['statuses', 'statusLog']] },
      { id: 'statusLog', type: 'function', func: "const log = global.get('statuses') || []; log.push(msg.status); global.set('statuses', log); return null;", outputs: 0, wires: [] },
      { id: 'out', type: 'helper' },
      { id: 'readOut', type: 'helper' },
      { id: 'caught', type: 'helper' },
      { id: 'statuses', type: 'helper' },
      ...extra,
    ].map((entry) => ({ z: 'f1', ...entry })),
  ];
}

/**
 * An imported flow carries each node's credentials beside it; the runtime takes them separately:
 * moves them out of the nodes into `{ id: credentials }` for helper.load.
 */
export function takeCredentials(flow: Array<Record<string, unknown>>): Record<string, unknown> {
  const credentials: Record<string, unknown> = {};
  for (const entry of flow) {
    if (entry.credentials === undefined) continue;
    credentials[String(entry.id)] = entry.credentials;
    delete entry.credentials;
  }
  return credentials;
}

/** Simulated devices for one test; `stopAll` in afterEach. */
export class Devices {
  private readonly running: LwM2MClient[] = [];

  async start(endpoint: string, port: number, options: Partial<LwM2MClientOptions> = {}): Promise<LwM2MClient> {
    const device = new LwM2MClient({ endpoint, server: `coap://127.0.0.1:${port}`, timing: FAST_TIMING, objects: { 3303: { 0: { 5700: 21.5 } } }, ...options });
    device.on('error', () => undefined);
    this.running.push(device);
    await device.start();
    return device;
  }

  /** Forget a device the test stopped itself. */
  forget(device: LwM2MClient): void {
    this.running.splice(this.running.indexOf(device), 1);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.running.splice(0).map((device) => device.stop()));
  }
}

/** Waits until `condition` holds (test/helpers/wait.ts), for the node tests that import it from here. */
export { until } from './wait';
