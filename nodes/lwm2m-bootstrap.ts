/**
 * `lwm2m-bootstrap`: an LwM2M bootstrap server (lib/bootstrap, LwM2MBootstrapServer). Devices that
 * know only it get their LwM2M server accounts from the node's table of configurations (endpoint
 * or `*` → the node's lwm2m-server node or a URI, NoSec or PSK, keys generated or given); a message
 * sets or removes one configuration at run time; every bootstrap event comes out as a message.
 *
 * A configuration pointing at the server node hands the generated (or given) key to that node's
 * LwM2MServer (its `server`, the object every node attached to it uses), so the device registers
 * there over DTLS right after. The node is a user of that server node, as the other nodes are.
 * Bootstrap PSKs (the devices' keys for this server) and the keys of the table live in the node's
 * credentials, never in the flow; events carry no keys.
 */
import { LwM2MBootstrapServer, type PskCredential } from '../lib';
import type { Node, NodeDef, NodeStatus, Red } from './red';
import type { ServerConfigNode, ServerUser } from './lwm2m-server';
import { pskTable, type PskCredentials } from './psk';
import { messageConfig, rowConfig, rowKeys, rowsOf, type ConfigRow, type RowKeys, type TargetServer } from './bootstrap-config';

const EVENTS = ['bootstrapRequest', 'operation', 'bootstrapFinished', 'bootstrapFailed'] as const;
/** ms between two status updates while a fleet bootstraps */
const STATUS_INTERVAL = 250;

function portOf(value: unknown, fallback: number): number {
  return value === '' || value === undefined || value === null ? fallback : Number(value);
}

/** The node as other code (tests, a future editor route) sees it: its bootstrap server, and when it listens. */
export interface BootstrapNode extends ServerUser {
  bootstrap: LwM2MBootstrapServer;
  /** resolves once the bootstrap server listens (or rejects with why it could not) */
  ready: Promise<void>;
}

module.exports = (RED: Red) => {
  function BootstrapNode(this: BootstrapNode, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const credentials: PskCredentials & RowKeys = (node as unknown as { credentials?: PskCredentials & RowKeys }).credentials ?? {};
    // the node shows its own state; a server node that does not start is reported when this one starts
    node.serverStatus = () => undefined;

    /** the server nodes this node uses (its own, and those messages name), each registered with once */
    const serverNodes = new Map<string, ServerConfigNode>();
    const serverNode = async (id: true | string): Promise<TargetServer> => {
      const wanted = id === true ? String(config.server ?? '') : id;
      if (!wanted) throw new Error('server: true needs a server node chosen in the bootstrap node');
      const found = RED.nodes.getNode(wanted) as (ServerConfigNode & { type?: string }) | null;
      if (!found || found.type !== 'lwm2m-server') throw new Error(`there is no lwm2m-server node ${wanted}`);
      if (!serverNodes.has(wanted)) {
        serverNodes.set(wanted, found);
        found.register(node);
      }
      const label = found.name ? `"${found.name}"` : wanted;
      await found.ready.catch((error: Error) => {
        throw new Error(`the server node ${label} is not running: ${error.message}`);
      });
      return { label, server: found.server, secure: () => found.server.secureAddress() !== undefined };
    };

    let problem: string | undefined;
    let rows: ConfigRow[] = [];
    let keys = new Map<string, Buffer>();
    let dtls: { port: number; credentials: PskCredential[] } | undefined;
    try {
      rows = rowsOf(config.configs);
      const fromRows = rowKeys(rows, credentials);
      keys = fromRows.keys;
      let table: PskCredential[] = [];
      let folded: PskCredentials = {};
      try {
        ({ table, folded } = pskTable(credentials, "the bootstrap node's Devices table"));
      } catch (error) {
        // with DTLS off an unfinished table does not stop the bootstrap server
        if (config.dtls) throw error;
      }
      if (config.dtls) dtls = { port: portOf(config.dtlsPort, 5784), credentials: table };
      // keys typed in the editor move to the stored ones; rows removed take their keys along
      const keep = { ...folded, ...fromRows.folded };
      if (credentials.pskChanges || credentials.configChanges || (keep.psk ?? '[]') !== (credentials.psk ?? '[]') || (keep.pskKeys ?? '{}') !== (credentials.pskKeys ?? '{}') || keep.configKeys !== (credentials.configKeys ?? '{}')) {
        RED.nodes.addCredentials?.(node.id, keep);
      }
    } catch (error) {
      problem = (error as Error).message;
    }

    const bootstrap = (node.bootstrap = new LwM2MBootstrapServer({
      port: portOf(config.port, 5783),
      address: typeof config.address === 'string' && config.address !== '' ? config.address : undefined,
      dtls,
      requireSecurity: Boolean(config.dtls && config.requireSecurity),
      logger: (_level, message) => node.warn(message),
    }));
    bootstrap.on('error', (error: Error) => node.error(error.message));

    // status: where it listens, then how many bootstraps finished and failed
    let listening = '';
    let finished = 0;
    let failed = 0;
    let shown = 0;
    let pending: NodeJS.Timeout | undefined;
    const show = () => {
      pending = undefined;
      shown = Date.now();
      const counts = finished + failed === 0 ? '' : `: ${finished} ok${failed ? `, ${failed} failed` : ''}`;
      const status: NodeStatus = { fill: failed ? 'yellow' : 'green', shape: 'dot', text: counts ? `${listening}${counts}` : `listening on ${listening}` };
      node.status(status);
    };
    const count = () => {
      if (pending) return;
      pending = setTimeout(show, Math.max(0, STATUS_INTERVAL - (Date.now() - shown)));
    };

    for (const event of EVENTS) {
      bootstrap.on(event, (detail: { endpoint: string }) => {
        if (event === 'bootstrapFinished') finished++;
        if (event === 'bootstrapFailed') failed++;
        if (event === 'bootstrapFinished' || event === 'bootstrapFailed') count();
        // a copy: the flow may change its message, not the server's event
        node.send(RED.util.cloneMessage({ topic: event, endpoint: detail.endpoint, payload: detail }));
      });
    }

    node.status({ fill: 'yellow', shape: 'ring', text: 'starting' });
    const ready = (node.ready = (async () => {
      if (problem) throw new Error(problem);
      // without a server node chosen, a row that points at it says so (rowConfig)
      const own = config.server && rows.some((row) => row.target === 'server') ? await serverNode(true) : undefined;
      for (const row of rows) bootstrap.setConfig(row.endpoint, rowConfig(row, keys.get(row.endpoint), own));
      const { port } = await bootstrap.listen();
      const secure = bootstrap.secureAddress();
      listening = secure ? `${port}, DTLS ${secure.port}` : String(port);
      show();
    })());
    ready.catch((error: Error & { code?: string }) => {
      const listen = error.code === 'EADDRINUSE' || error.code === 'EACCES';
      node.error(listen ? `the bootstrap server cannot listen: ${error.message}` : error.message);
      node.status({ fill: 'red', shape: 'ring', text: listen ? error.code! : 'bad settings' });
    });

    node.on('input', async (msg, _send, done) => {
      try {
        await ready.catch((error: Error) => {
          throw new Error(`the bootstrap server is not running: ${error.message}`);
        });
        const endpoint = msg.endpoint;
        if (typeof endpoint !== 'string' || endpoint.trim() === '') throw new Error('msg.endpoint must name the device whose configuration to set (or * for every device)');
        if (msg.payload === null) bootstrap.setConfig(endpoint.trim(), undefined);
        else bootstrap.setConfig(endpoint.trim(), await messageConfig(msg.payload, endpoint.trim(), serverNode));
        done();
      } catch (error) {
        done(error as Error);
      }
    });

    node.on('close', (_removed, done) => {
      clearTimeout(pending);
      // the ports must be free before done(): Node-RED starts the next deploy's node right after
      void ready
        .catch(() => undefined)
        .then(() => bootstrap.close())
        .catch((error: Error) => node.warn(error.message))
        .then(() => {
          for (const used of serverNodes.values()) used.deregister(node, () => undefined);
          done();
        });
    });
  }
  // bootstrap PSKs as the server node keeps its own (rows in text, keys as passwords); the table's keys by endpoint
  RED.nodes.registerType('lwm2m-bootstrap', BootstrapNode as never, {
    credentials: {
      psk: { type: 'text' },
      pskKeys: { type: 'password' },
      pskChanges: { type: 'password' },
      configKeys: { type: 'password' },
      configChanges: { type: 'password' },
    },
  });
};
