/**
 * `lwm2m-server` (config): one LwM2MServer shared by every node that uses it, following the core
 * MQTT node's pattern: users register and deregister; on close the socket is closed and only then
 * is done() called, so a redeploy binds the port again without EADDRINUSE.
 */
import * as os from 'node:os';
import { LwM2MServer, MAX_TRACE_SIZE, ObjectModel, RedisStore, StoreError, defaultModel, type DtlsOptions, type PskCredential, type RegistrationStore } from '../lib';
import type { Node, NodeDef, NodeStatus, Red } from './red';
import { pskTable, type PskCredentials } from './psk';
import { localDevicesStopped } from './local-devices';
import { formatOf } from './settings';
import { adminRoutes } from './admin';
import { ExplorerFeed } from './explorer-feed';
import { explorerRoutes } from './explorer-routes';
import { createStore, type StoreCredentials } from './store';
import { ecdsaSettings, type EcdsaCredentials } from './ecdsa-credentials';

export interface ServerUser extends Node {
  /** the user shows the server's state unless it has a status of its own to show */
  serverStatus?(status: NodeStatus): void;
}

export interface ServerConfigNode extends Node {
  server: LwM2MServer;
  /** resolves once the server listens (or rejects with why it could not) */
  ready: Promise<void>;
  /** why the server is not running, once it failed to start */
  failure?: Error;
  /** true once the server listens */
  listening?: boolean;
  /** the device explorer's live side (the editor's LwM2M sidebar) */
  explorer?: ExplorerFeed;
  /** this Node-RED's name among the instances sharing a Redis store: the Instance setting, else host-pid */
  instance: string;
  /** why the store could not be read when the server started (it then started without what was stored) */
  storeFailure?: StoreError;
  register(user: ServerUser): void;
  deregister(user: ServerUser, done: () => void): void;
}

/** Simulated devices of this runtime closing with us de-register first (answered, not timed out). */
async function devicesLeaving(server: LwM2MServer): Promise<void> {
  // a turn of the event loop: Node-RED has then told every node of the deploy to close
  await new Promise((resolve) => setImmediate(resolve));
  const ports = [server.address().port];
  const secure = server.secureAddress();
  if (secure) ports.push(secure.port);
  await localDevicesStopped(ports, DEVICES_LEAVING_LIMIT);
}

/** at most this long (ms) a closing server waits for its runtime's devices (theirs is 2 s) */
const DEVICES_LEAVING_LIMIT = 3000;

/** characters of a store's problem the status shows (the whole of it is in the log) */
const STATUS_REASON_LENGTH = 48;

/** The status of a server listening without what its store held: yellow, since devices can still register. */
function storeStatus(error: StoreError): NodeStatus {
  const reason = error.reason.length > STATUS_REASON_LENGTH ? `${error.reason.slice(0, STATUS_REASON_LENGTH - 1)}…` : error.reason;
  return { fill: 'yellow', shape: 'ring', text: `store: ${reason}` };
}

module.exports = (RED: Red) => {
  // the routes the editor completes endpoints and paths from
  adminRoutes(RED);
  // the device explorer of the editor's sidebar
  explorerRoutes(RED);

  function LwM2MServerNode(this: ServerConfigNode, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const users = new Map<string, ServerUser>();
    let state: NodeStatus = { fill: 'yellow', shape: 'ring', text: 'starting' };
    // a user shows the server's state only when something is wrong (or when it asks for it)
    const tell = (user: ServerUser, status: NodeStatus) => {
      if (user.serverStatus) user.serverStatus(status);
      else user.status(status.fill === 'green' ? {} : status);
    };
    const show = (status: NodeStatus) => {
      state = status;
      for (const user of users.values()) tell(user, status);
    };

    const port = config.port === '' || config.port === undefined ? 5683 : Number(config.port);
    const timeout = Number(config.requestTimeout) > 0 ? Number(config.requestTimeout) * 1000 : 10_000;
    const awakeTime = Number(config.awakeTime) > 0 ? Number(config.awakeTime) * 1000 : undefined;
    type Credentials = PskCredentials & StoreCredentials & EcdsaCredentials & { dtlsSessionSecret?: string };
    const credentials: Credentials = (node as unknown as { credentials?: Credentials }).credentials ?? {};
    let dtls: DtlsOptions | undefined;
    let preferredFormat: number | undefined;
    let badSettings: string | undefined;
    // CoAP messages the server's trace keeps; 0 (and an older node without the setting) keeps none
    const traceText = config.trace === undefined ? '' : String(config.trace).trim();
    const trace = traceText === '' ? 0 : Number(traceText);
    if (!Number.isSafeInteger(trace) || trace < 0 || trace > MAX_TRACE_SIZE) badSettings = `Trace: ${traceText} is not a number of messages from 0 to ${MAX_TRACE_SIZE}`;
    const psk = (): PskCredential[] => {
      const { table, folded } = pskTable(credentials);
      // keys typed in the editor (or kept in the rows by an older flow) move to the password credential
      if (credentials.pskChanges || folded.psk !== (credentials.psk ?? '[]') || folded.pskKeys !== (credentials.pskKeys ?? '{}')) {
        // the credentials are replaced as a whole: the others (Redis password, keys and certificates) stay among them
        const { pskChanges: _applied, ...others } = credentials;
        RED.nodes.addCredentials?.(node.id, { ...others, ...folded });
      }
      return table;
    };
    try {
      preferredFormat = formatOf(config.format);
      if (config.dtls) dtls = { port: config.dtlsPort === '' || config.dtlsPort === undefined ? 5684 : Number(config.dtlsPort), credentials: psk(), ...ecdsaSettings(credentials), ...sessionSecret(credentials.dtlsSessionSecret) };
      else {
        try {
          psk();
        } catch {
          // with DTLS off an unfinished table does not stop the server
        }
      }
    } catch (error) {
      badSettings ??= (error as Error).message;
    }
    const model = config.modelFolder ? ObjectModel.bundled() : defaultModel();
    node.instance = String(config.instance ?? '').trim() || `${os.hostname()}-${process.pid}`;
    let store: RegistrationStore | undefined;
    if (badSettings === undefined) {
      try {
        store = createStore(config, credentials, RED.settings.userDir, node.id, (message) => node.warn(message));
      } catch (error) {
        badSettings = (error as Error).message;
      }
    }
    node.server = new LwM2MServer({
      port,
      address: typeof config.address === 'string' && config.address !== '' ? config.address : undefined,
      requestTimeout: timeout,
      awakeTime,
      preferredFormat,
      model,
      store,
      logger: (_level, message) => node.warn(message),
      dtls,
      requireSecurity: Boolean(config.dtls && config.requireSecurity),
      requireSameAddress: Boolean(config.sameAddress),
      trace: badSettings === undefined ? trace : 0,
      // Node-REDs sharing a Redis share its devices: each is an instance of one server
      instance: store instanceof RedisStore ? node.instance : undefined,
    });
    node.server.on('error', (error: Error) => {
      // a store that cannot be read: the server starts without what it held, and says so
      if (error instanceof StoreError) {
        node.storeFailure = error;
        node.warn(error.message);
        if (node.listening) show(storeStatus(error));
        return;
      }
      // kept DTLS sessions that did not open (another secret): the devices handshake again, nothing else is lost
      if (error.name === 'SessionStoreError') return void node.warn(error.message);
      node.error(error.message);
    });
    // the store could not be read at start (Redis not up yet): the server tried again until it could
    node.server.on('storeLoaded', ({ registrations }) => {
      node.storeFailure = undefined;
      node.log(`store read: ${registrations} registration${registrations === 1 ? '' : 's'}`);
      if (node.listening) show(listeningStatus());
    });
    node.explorer = new ExplorerFeed(node.server, node.id, RED.comms);
    const listeningStatus = (): NodeStatus => {
      const bound = node.server.address().port;
      const secure = node.server.secureAddress();
      return { fill: 'green', shape: 'dot', text: secure ? `listening on ${bound}, DTLS ${secure.port}` : `listening on ${bound}` };
    };

    node.ready = (async () => {
      if (badSettings) throw Object.assign(new Error(badSettings), { code: 'bad settings' });
      if (config.modelFolder) {
        const { errors } = await model.addFolder(String(config.modelFolder));
        for (const error of errors) node.warn(error.message);
      }
      await node.server.listen();
      node.listening = true;
      if (node.storeFailure) show(storeStatus(node.storeFailure));
      else show(listeningStatus());
    })();
    node.ready.catch((error: Error) => {
      node.failure = error;
      if (badSettings) node.error(badSettings);
      else node.error(`LwM2M server cannot listen on port ${(error as { port?: number }).port ?? port}: ${error.message}`);
      // a bind can fail before the deploy has made every node of the flow: Status nodes made
      // after their user would miss a status shown now, so it waits for the flow to be started
      setImmediate(() => show({ fill: 'red', shape: 'ring', text: (error as NodeJS.ErrnoException).code ?? 'error' }));
    });

    node.register = (user) => {
      users.set(user.id, user);
      tell(user, state);
    };
    node.deregister = (user, done) => {
      users.delete(user.id);
      done();
    };
    node.on('close', (_removed, done) => {
      // the port must be free before done(): Node-RED starts the next deploy's server right after
      void node.ready
        .then(() => devicesLeaving(node.server), () => undefined)
        .then(() => {
          node.explorer?.close();
          return node.server.close();
        })
        .catch((error: Error) => node.warn(error.message))
        .then(() => done());
    });
  }
  // the rows (endpoint, identity) are shown in the editor; keys and the Redis password never leave the runtime
  RED.nodes.registerType('lwm2m-server', LwM2MServerNode as never, {
    credentials: {
      psk: { type: 'text' },
      pskKeys: { type: 'password' },
      pskChanges: { type: 'password' },
      redisPassword: { type: 'password' },
      // certificates and public keys are not secret: the editor shows them again; the server key is
      dtlsKey: { type: 'password' },
      dtlsCertificate: { type: 'text' },
      dtlsCa: { type: 'text' },
      rawPublicKeys: { type: 'text' },
      // seals the DTLS sessions kept in the store across restarts
      dtlsSessionSecret: { type: 'password' },
    },
  });
};

/** The secret that seals the DTLS sessions kept across restarts; empty: none are kept. */
function sessionSecret(secret: string | undefined): { sessionSecret?: string } {
  return typeof secret === 'string' && secret !== '' ? { sessionSecret: secret } : {};
}
