/**
 * `lwm2m-firmware`: firmware update of one device or a fleet through the Firmware Update object
 * (5), by the server's `updateFirmwareFleet`: the package is `msg.payload` (a Buffer, pushed by Block1
 * or served by the server for the device to pull) or a package URI; the devices a name, a list, or
 * a pattern matched against the current registrations, `concurrency` at a time. Output 1 tells the
 * steps (download progress thinned out), output 2 each device's outcome and, for a list or a
 * pattern, a summary at the end. `msg.action = "cancel"` cancels the node's running updates.
 */
import { firmwareSourceProblem, type FirmwareOutcome, type FirmwareProgress, type FirmwareSource } from '../lib';
import type { Node, NodeDef, NodeMessage, Red, Send } from './red';
import type { ServerConfigNode } from './lwm2m-server';
import { Fleet, fleetSettings, messageBase, onInput, serverOf } from './shared';
import { Settings } from './settings';

const DELIVERIES = ['auto', 'push', 'pull'] as const;
type Delivery = (typeof DELIVERIES)[number];
/** a download progress message every this fraction of the package, or after this many ms of slow progress */
const PROGRESS_STEP = 0.1;
const PROGRESS_INTERVAL = 1000;
/** ms a closing node waits for its updates to stop (a cancel on the device takes up to 5 s) */
const CLOSE_WAIT = 6000;

/** What one input message asks for. */
interface Campaign {
  endpoints: string[];
  /** a list or a pattern: the outcomes end with a summary */
  several: boolean;
  /** the endpoint setting as given, for the summary's topic */
  label: string;
  source: FirmwareSource;
  delivery: Delivery;
  concurrency: number;
}

/** The package: the node's URI, else msg.payload as a Buffer, else msg.url. */
async function sourceOf(msg: NodeMessage, settings: Settings, config: NodeDef): Promise<FirmwareSource> {
  let uri: unknown;
  if (settings.isLiteral('url')) uri = config.url;
  else uri = await settings.value(msg, 'url');
  let source: FirmwareSource | undefined;
  if (uri === undefined || uri === null || uri === '') {
    if (Buffer.isBuffer(msg.payload)) source = { package: msg.payload };
    else uri = msg.url;
  }
  if (!source && (uri === undefined || uri === null || uri === '')) {
    const what = msg.payload === undefined ? 'there is none' : `it is ${Array.isArray(msg.payload) ? 'an array' : typeof msg.payload}`;
    throw new Error(`no firmware: msg.payload must be the package as a Buffer (e.g. from a file-in node reading a single Buffer; ${what}), or msg.url a package URI`);
  }
  if (!source) {
    if (typeof uri !== 'string') throw new Error(`the package URI must be text, not ${typeof uri}`);
    source = { uri };
  }
  // the library's own checks (an empty package, a URI no device downloads from), as an error at once
  const problem = firmwareSourceProblem(source);
  if (problem) throw new Error(problem);
  return source;
}

async function campaignOf(msg: NodeMessage, settings: Settings, config: NodeDef, fleet: Fleet): Promise<Campaign> {
  const source = await sourceOf(msg, settings, config);
  const version = await settings.value(msg, 'version');
  if (version !== undefined && version !== null && version !== '') {
    if (typeof version === 'object') throw new Error('version must be text such as 2.1.0, not an object');
    source.version = String(version);
  }
  // "auto" on the node leaves the choice to msg.delivery, then to the device
  let delivery = await settings.choice(msg, 'delivery', DELIVERIES, 'auto');
  if (delivery === 'auto' && settings.isLiteral('delivery') && msg.delivery !== undefined && msg.delivery !== '') {
    if (!DELIVERIES.includes(msg.delivery as Delivery)) throw new Error(`msg.delivery must be one of ${DELIVERIES.join(', ')}, not ${JSON.stringify(msg.delivery)}`);
    delivery = msg.delivery as Delivery;
  }
  if (delivery === 'push' && source.uri !== undefined) throw new Error('a package URI can only be pulled: push needs the package itself in msg.payload (a Buffer)');
  // the same targets, order and parallel setting as the fleet jobs of read, write and execute
  const target = await settings.target(msg);
  const { concurrency } = await fleetSettings(msg, settings);
  const targets =
    target.kind === 'one' ? { endpoints: [target.endpoint], several: false, label: target.endpoint } : { endpoints: fleet.endpoints(target.entries), several: true, label: target.label };
  return { ...targets, source, delivery, concurrency };
}

/** Thins out download progress: phase, state and result changes always, progress every 10 % (or each second). */
class ProgressFilter {
  private readonly last = new Map<string, { phase: string; state?: number; result?: number; step: number; progress?: number; at: number }>();

  wanted(progress: FirmwareProgress, now = Date.now()): boolean {
    const last = this.last.get(progress.endpoint);
    const step = progress.progress === undefined ? -1 : Math.floor(progress.progress / PROGRESS_STEP + 1e-9);
    const changed =
      !last ||
      last.phase !== progress.phase ||
      last.state !== progress.state ||
      last.result !== progress.result ||
      (progress.progress !== undefined && progress.progress !== last.progress && (step > last.step || now - last.at >= PROGRESS_INTERVAL));
    if (!changed) return false;
    // a state change without a figure keeps the download's place
    const keep = progress.progress === undefined && last?.phase === progress.phase;
    this.last.set(progress.endpoint, { phase: progress.phase, state: progress.state, result: progress.result, step: keep ? last.step : step, progress: keep ? last.progress : progress.progress, at: now });
    return true;
  }
}

/** What the node's status shows: the % of a single update, or `n/m updated, k failed` for several. */
class Board {
  private readonly devices = new Map<string, { phase: string; progress?: number; outcome?: FirmwareOutcome }>();
  private text = '';

  constructor(private readonly node: Node) {}

  /** A run starts: when none is running the board starts afresh. */
  add(endpoints: string[], fresh: boolean): void {
    if (fresh) this.devices.clear();
    for (const endpoint of endpoints) this.devices.set(endpoint, { phase: 'queued' });
    this.show();
  }

  progress(progress: FirmwareProgress): void {
    const device = this.devices.get(progress.endpoint);
    if (!device || device.outcome) return;
    device.phase = progress.phase;
    if (progress.progress !== undefined) device.progress = progress.progress;
    this.show();
  }

  outcome(outcome: FirmwareOutcome): void {
    const device = this.devices.get(outcome.endpoint);
    if (device) device.outcome = outcome;
    this.show();
  }

  cancelling(): void {
    this.node.status({ fill: 'yellow', shape: 'ring', text: 'cancelling' });
    this.text = 'cancelling';
  }

  /** A pattern that matched no registered device, as the fleet jobs of read, write and execute show it. */
  nothingMatched(): void {
    this.text = 'no matching devices';
    this.node.status({ fill: 'yellow', shape: 'ring', text: this.text });
  }

  private show(): void {
    const all = [...this.devices.values()];
    if (all.length === 0) return;
    const failed = all.filter((device) => device.outcome && !device.outcome.success).length;
    const updated = all.filter((device) => device.outcome?.success).length;
    const finished = updated + failed === all.length;
    let text: string;
    if (all.length === 1) {
      const [device] = all as [(typeof all)[number]];
      if (device.outcome) text = device.outcome.success ? `updated${device.outcome.version ? ` to ${device.outcome.version}` : ''}` : `failed: ${(device.outcome.failure ?? 'error').toLowerCase().replace(/_/g, ' ')}`;
      else if (device.phase === 'downloading' || device.phase === 'downloaded') text = `${Math.floor((device.phase === 'downloaded' ? 1 : (device.progress ?? 0)) * 100)} %`;
      else text = device.phase;
    } else {
      text = `${updated}/${all.length} updated, ${failed} failed`;
    }
    if (text === this.text) return; // the status goes to every open editor: only when it changes
    this.text = text;
    if (!finished) this.node.status({ fill: failed > 0 ? 'red' : 'blue', shape: 'ring', text });
    else this.node.status({ fill: failed > 0 ? 'red' : 'green', shape: 'dot', text });
  }
}

module.exports = (RED: Red) => {
  function FirmwareNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const serverNode = serverOf(RED, node, config) as ServerConfigNode | undefined;
    if (!serverNode) return;
    const settings = new Settings(RED, node, config);
    // for its targets only: the updates run as the server's campaign, with their own progress
    const fleet = new Fleet(RED, node, serverNode.server);
    const board = new Board(node);
    /** the running campaigns, each cancelled by its own controller */
    const running = new Map<AbortController, Promise<void>>();
    let closed = false;
    serverNode.register(node);

    const run = async (campaign: Campaign, msg: NodeMessage, send: Send, controller: AbortController): Promise<void> => {
      const server = serverNode.server;
      const filter = new ProgressFilter();
      const started = Date.now();
      const base = msg._msgid === undefined ? {} : { _msgid: msg._msgid };
      // results keep the input message's other properties (correlation ids, http-in's req/res), never its package
      const carried = messageBase(RED, msg, ['payload']);
      const onProgress = (progress: FirmwareProgress) => {
        board.progress(progress);
        if (closed || !filter.wanted(progress)) return;
        const payload: Record<string, unknown> = { endpoint: progress.endpoint, phase: progress.phase };
        for (const key of ['delivery', 'state', 'result', 'progress', 'message'] as const) if (progress[key] !== undefined) payload[key] = progress[key];
        send([{ ...base, topic: progress.endpoint, endpoint: progress.endpoint, event: 'progress', payload }, null]);
      };
      const finish = (outcome: FirmwareOutcome) => {
        board.outcome(outcome);
        if (!closed) send([null, { ...carried, topic: outcome.endpoint, endpoint: outcome.endpoint, event: 'result', payload: outcome }]);
      };
      // the server's campaign: one published package for every device that pulls, each outcome told as it ends
      const outcomes = await server.updateFirmwareFleet(campaign.endpoints, campaign.source, {
        delivery: campaign.delivery,
        concurrency: campaign.concurrency,
        signal: controller.signal,
        onProgress,
        onOutcome: finish,
      });
      if (campaign.several && !closed) {
        const failures = Object.fromEntries(outcomes.filter((outcome) => !outcome.success).map((outcome) => [outcome.endpoint, outcome.failure ?? 'UPDATE_FAILED']));
        const payload = { total: outcomes.length, succeeded: outcomes.filter((outcome) => outcome.success).length, failed: Object.keys(failures).length, failures, outcomes, duration: Date.now() - started };
        send([null, { ...carried, topic: campaign.label, endpoint: campaign.label, event: 'summary', payload }]);
      }
    };

    onInput(node, serverNode, async (msg, send) => {
      const action = msg.action === undefined || msg.action === '' ? 'update' : msg.action;
      if (action === 'cancel') {
        if (running.size > 0) board.cancelling();
        for (const controller of running.keys()) controller.abort();
        return;
      }
      if (action !== 'update') throw new Error(`msg.action must be update (or none) or cancel, not ${JSON.stringify(action)}`);
      const campaign = await campaignOf(msg, settings, config, fleet);
      const controller = new AbortController();
      board.add(campaign.endpoints, running.size === 0);
      if (campaign.endpoints.length === 0 && running.size === 0) board.nothingMatched();
      const done = run(campaign, msg, send, controller);
      running.set(controller, done);
      try {
        await done;
      } finally {
        running.delete(controller);
      }
    });

    node.on('close', (_removed, done) => {
      closed = true;
      fleet.close();
      for (const controller of running.keys()) controller.abort();
      const stopped = Promise.all(running.values()).then(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT)));
      void Promise.race([stopped, waited])
        .catch(() => undefined)
        .then(() => {
          clearTimeout(timer);
          serverNode.deregister(node, done);
        });
    });
  }
  RED.nodes.registerType('lwm2m-firmware', FirmwareNode as never);
};
