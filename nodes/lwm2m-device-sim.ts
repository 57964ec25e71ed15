/**
 * `lwm2m-device-sim`: one simulated LwM2M device, or a fleet (`count` devices named from a pattern
 * such as `sim-{n}`), registering with any LwM2M server by URI. Input messages set values, trigger
 * a Send, an Update, a De-register or a new Register; output messages tell what the server did to
 * a device (writes, executes, creates, deletes), so a flow can play device logic.
 */
import {
  FIRMWARE_RESULT_NAMES,
  LwM2MClient,
  ObjectModel,
  apnInstance,
  connectivityInstance,
  defaultModel,
  ipsoInstance,
  locationInstance,
  wifiInstance,
  type FirmwareOptions,
  type InstanceSpec,
  type LwM2MVersion,
  type LwM2MClientOptions,
} from '../lib';
import type { Node, NodeDef, NodeMessage, Red } from './red';
import { pathsOf } from './settings';
import { pskKey } from './psk';
import { devicesStopping } from './local-devices';

/** The objects the editor offers, and what each adds. */
const OBJECTS: Record<string, (model: ObjectModel) => Record<number, InstanceSpec>> = {
  connectivity: () => ({ 4: connectivityInstance() }),
  location: () => ({ 6: locationInstance() }),
  apn: () => ({ 11: apnInstance() }),
  wifi: () => ({ 12: wifiInstance() }),
  temperature: (model) => ({ 3303: ipsoInstance(model, 3303) }),
  humidity: (model) => ({ 3304: ipsoInstance(model, 3304) }),
  light: (model) => ({ 3311: ipsoInstance(model, 3311) }),
  switch: (model) => ({ 3342: ipsoInstance(model, 3342) }),
};
const MAX_DEVICES = 10_000;
/** ms a device waits for the answer to its De-register on close: a deploy should not wait long for a remote server */
const DEREGISTER_TIMEOUT = 2000;

const FIRMWARE_STATES = ['idle', 'downloading', 'downloaded', 'updating'];

/**
 * The firmware update object's options from the editor: the version a successful update installs,
 * a failure to simulate (an Update Result 2-9) and how long the download (at least) and the
 * installation take, in seconds. Empty fields keep the client's defaults.
 */
export function firmwareOptions(config: NodeDef): FirmwareOptions {
  const options: FirmwareOptions = {};
  const version = String(config.fwVersion ?? '').trim();
  if (version !== '') options.version = version;
  const fail = String(config.fwFail ?? '').trim();
  if (fail !== '') {
    const result = Number(fail);
    if (!(Number.isInteger(result) && result >= 2 && result <= 9)) throw new Error(`the firmware failure to simulate must be an Update Result from 2 to 9, not ${fail}`);
    options.fail = result as NonNullable<FirmwareOptions['fail']>;
  }
  for (const [field, option] of [['fwDownloadTime', 'downloadTime'], ['fwUpdateTime', 'updateTime']] as const) {
    const text = String(config[field] ?? '').trim();
    if (text === '') continue;
    const seconds = Number(text);
    if (!(Number.isFinite(seconds) && seconds >= 0)) throw new Error(`the firmware ${option === 'downloadTime' ? 'download' : 'update'} time must be a number of seconds, not ${text}`);
    options[option] = Math.round(seconds * 1000);
  }
  return options;
}

export function deviceNames(pattern: string, count: number): string[] {
  if (count === 1 && !pattern.includes('{n}')) return [pattern];
  const template = pattern.includes('{n}') ? pattern : `${pattern}-{n}`;
  return Array.from({ length: count }, (_, index) => template.replace(/\{n\}/g, String(index + 1)));
}

interface SimCredentials {
  identity?: string;
  key?: string;
  bsIdentity?: string;
  bsKey?: string;
  /** the device's P-256 private key (PEM) */
  deviceKey?: string;
  /** its certificate (PEM) */
  deviceCertificate?: string;
  /** the server's certificate or a CA of it (certificate mode), or its public key (raw public key mode), PEM */
  serverCertificate?: string;
}

/** A device's certificate or raw public key credentials; LwM2MClient checks them and says what is wrong. */
function ecdsaSecurity(security: 'certificate' | 'rpk', credentials: SimCredentials): Pick<LwM2MClientOptions, 'certificate' | 'rawPublicKey'> {
  const key = credentials.deviceKey?.trim() ?? '';
  const server = credentials.serverCertificate?.trim() ?? '';
  if (key === '') throw new Error('the device key (PEM) is empty: a certificate or raw public key needs it');
  if (server === '') throw new Error(`the server's ${security === 'rpk' ? 'public key' : 'certificate'} (PEM) is empty: the device could not tell the real server`);
  if (security === 'rpk') return { rawPublicKey: { key, server } };
  const certificate = credentials.deviceCertificate?.trim() ?? '';
  if (certificate === '') throw new Error('the device certificate (PEM) is empty');
  return { certificate: { certificate, key, server } };
}

module.exports = (RED: Red) => {
  function DeviceSimNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const count = Math.max(1, Math.min(MAX_DEVICES, Math.floor(Number(config.count) || 1)));
    const names = deviceNames(String(config.endpoint || 'sim-{n}'), count);
    const chosen = (Array.isArray(config.objects) ? config.objects : String(config.objects ?? 'temperature').split(',')).map(String).filter((name) => name in OBJECTS || name === 'firmware');
    const model = defaultModel();
    const devices = new Map<string, LwM2MClient>();
    /** by name: a device that reboots (after a firmware update) registers again without leaving first */
    const registered = new Set<string>();
    /** while closing, device errors (an unanswered De-register) are gathered into one warning */
    let leaving: Array<{ endpoint: string; error: Error }> | undefined;
    const showStatus = () =>
      node.status({ fill: registered.size === count ? 'green' : 'yellow', shape: registered.size === count ? 'dot' : 'ring', text: `${registered.size}/${count} registered` });

    const credentials = (node as unknown as { credentials?: SimCredentials }).credentials ?? {};
    // over coaps:// the devices use a PSK, or (Security Modes 2 and 1) a certificate or raw public key
    const security = config.security === 'certificate' || config.security === 'rpk' ? config.security : 'psk';
    // the devices know an LwM2M server, or only a bootstrap server that gives them one
    const viaBootstrap = config.connect === 'bootstrap';
    const serverUri = String(config.serverUri || 'coap://127.0.0.1:5683');
    const bootstrapUri = String(config.bootstrapUri || 'coap://127.0.0.1:5783');
    let key: Buffer | undefined;
    let bootstrapKey: Buffer | undefined;
    try {
      if (!viaBootstrap && /^coaps:/i.test(serverUri) && security === 'psk') key = pskKey(credentials.key, `this device-sim (${names[0]})`);
      if (!viaBootstrap && /^coaps:/i.test(serverUri) && security !== 'psk' && count > 1) {
        throw new Error(`a ${security === 'rpk' ? 'raw public key' : 'certificate'} is one device's: set Count to 1 (a fleet needs a device-sim node each, or PSKs)`);
      }
      if (viaBootstrap && /^coaps:/i.test(bootstrapUri)) bootstrapKey = pskKey(credentials.bsKey, `this device-sim's bootstrap server (${names[0]})`);
    } catch (error) {
      node.error((error as Error).message);
      node.status({ fill: 'red', shape: 'ring', text: security === 'psk' ? 'bad PSK key' : 'bad settings' });
      return;
    }
    let firmware: FirmwareOptions | false = false;
    if (chosen.includes('firmware') || config.firmware === true) {
      try {
        firmware = firmwareOptions(config);
      } catch (error) {
        node.error((error as Error).message);
        node.status({ fill: 'red', shape: 'ring', text: 'bad settings' });
        return;
      }
    }
    // a fleet shares one key; each device has its own identity: the pattern's ({n} is its number), else its endpoint name
    const identityOf = (pattern: string | undefined, endpoint: string, index: number) => (pattern ? pattern.replace(/\{n\}/g, String(index + 1)) : endpoint);

    for (const [index, endpoint] of names.entries()) {
      const objects: Record<number, Record<number, InstanceSpec>> = {};
      for (const name of chosen) {
        const build = OBJECTS[name];
        if (build) for (const [oid, instance] of Object.entries(build(model))) objects[Number(oid)] = { 0: instance };
      }
      let device: LwM2MClient;
      try {
        device = new LwM2MClient({
          endpoint,
          ...(viaBootstrap
            ? { bootstrap: bootstrapUri, ...(bootstrapKey ? { bootstrapPsk: { identity: identityOf(credentials.bsIdentity, endpoint, index), key: bootstrapKey } } : {}) }
            : { server: serverUri, ...(key ? { psk: { identity: identityOf(credentials.identity, endpoint, index), key } } : security !== 'psk' && /^coaps:/i.test(serverUri) ? ecdsaSecurity(security, credentials) : {}) }),
          ...(config.connectionId ? { dtls: { connectionId: true } } : {}),
          lifetime: Number(config.lifetime) || 300,
          version: (String(config.version || '1.1') as LwM2MVersion),
          binding: config.binding === 'UQ' ? 'UQ' : 'U',
          objects,
          firmware,
          deregisterTimeout: DEREGISTER_TIMEOUT,
        });
      } catch (error) {
        node.error((error as Error).message);
        node.status({ fill: 'red', shape: 'ring', text: 'bad settings' });
        return;
      }
      devices.set(endpoint, device);
      device.on('registered', () => {
        registered.add(endpoint);
        showStatus();
      });
      const lost = () => {
        registered.delete(endpoint);
        showStatus();
      };
      device.on('deregistered', lost);
      device.on('reregistering', lost);
      device.on('reboot', lost);
      device.on('error', (error: Error) => (leaving ? leaving.push({ endpoint, error }) : node.warn(`${endpoint}: ${error.message}`)));
      // every move of the firmware update's state machine, so a flow can watch the device's side
      device.on('firmware', ({ state, result }: { state: number; result: number }) => {
        node.send({
          topic: `${endpoint}/5/0`,
          endpoint,
          event: 'firmware',
          path: '/5/0',
          payload: { state, stateName: FIRMWARE_STATES[state] ?? `state ${state}`, result, resultName: FIRMWARE_RESULT_NAMES[result] ?? `result ${result}` },
        });
      });
      // bootstrapping (why), bootstrapped (the accounts it got, never keys), bootstrapFailed (why; it tries again)
      let bootstrapWarned = false;
      for (const event of ['bootstrapping', 'bootstrapped', 'bootstrapFailed'] as const) {
        device.on(event, (detail: { reason?: string; servers?: unknown[] }) => {
          if (event === 'bootstrapped') bootstrapWarned = false;
          // one warning per device until it bootstraps again, not one per retry
          if (event === 'bootstrapFailed' && !bootstrapWarned && !leaving) {
            bootstrapWarned = true;
            node.warn(`${endpoint}: bootstrap failed: ${detail.reason}`);
          }
          node.send(RED.util.cloneMessage({ topic: endpoint, endpoint, event, payload: detail }));
        });
      }
      for (const event of ['write', 'execute', 'create', 'delete'] as const) {
        device.on(event, (detail: { path: string; value?: unknown; args?: string }) => {
          // the Security object holds keys: what a (bootstrap) server does to it never reaches the flow
          if (/^\/0(\/|$)/.test(detail.path)) return;
          node.send({ topic: `${endpoint}${detail.path}`, endpoint, event, path: detail.path, payload: event === 'execute' ? detail.args : detail.value });
        });
      }
      device.start().catch(() => undefined); // it keeps retrying until the server answers; stop() ends that
    }
    showStatus();

    const targets = (msg: NodeMessage): LwM2MClient[] => {
      if (msg.endpoint === undefined) return [...devices.values()];
      const device = devices.get(String(msg.endpoint));
      if (!device) throw new Error(`this node simulates no device ${String(msg.endpoint)}`);
      return [device];
    };

    node.on('input', async (msg, _send, done) => {
      try {
        const action = String(msg.action ?? 'set');
        for (const device of targets(msg)) {
          if (action === 'set') {
            const path = pathsOf(msg.path)[0];
            if (!path) throw new Error('set needs msg.path (e.g. /3303/0/5700) and msg.payload');
            device.set(path, msg.payload);
          } else if (action === 'send') {
            const paths = pathsOf(msg.path);
            await device.send(paths.length > 0 ? paths : chosen.includes('temperature') ? ['/3303/0/5700'] : ['/3/0/9']);
          } else if (action === 'update') await device.update();
          else if (action === 'deregister') await device.deregister();
          else if (action === 'register') await device.register();
          else throw new Error(`action must be set, send, update, deregister or register, not ${action}`);
        }
        done();
      } catch (error) {
        done(error as Error);
      }
    });

    node.on('close', (_removed, done) => {
      leaving = [];
      const stopped = Promise.all([...devices.values()].map((device) => device.stop().catch((error: Error) => leaving!.push({ endpoint: device.endpointName, error }))));
      // a server node of this runtime closing at the same time waits for these De-registers (bootstrapped devices: at the server they were given)
      const uris = viaBootstrap ? [...devices.values()].map((device) => device.serverUri).filter((uri): uri is string => uri !== undefined) : [serverUri];
      for (const uri of new Set(uris)) devicesStopping(uri, stopped);
      void stopped.then(() => {
        const [first] = leaving!;
        if (first) node.warn(`${first.endpoint}${leaving!.length > 1 ? ` and ${leaving!.length - 1} more` : ''}: ${first.error.message}`);
        done();
      });
    });
  }
  RED.nodes.registerType('lwm2m-device-sim', DeviceSimNode as never, {
    credentials: {
      identity: { type: 'text' },
      key: { type: 'password' },
      bsIdentity: { type: 'text' },
      bsKey: { type: 'password' },
      // Security Modes 2 and 1: the device's private key is secret; certificates and public keys are not
      deviceKey: { type: 'password' },
      deviceCertificate: { type: 'text' },
      serverCertificate: { type: 'text' },
    },
  });
};
