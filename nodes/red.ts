/**
 * The small part of Node-RED's runtime API the nodes use, typed here so the nodes compile without
 * Node-RED's own types (Node-RED is the user's, not a dependency).
 */
export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [key: string]: unknown;
}

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export type Send = (msg: NodeMessage | Array<NodeMessage | null> | null) => void;
export type Done = (error?: Error) => void;

export interface Node {
  id: string;
  name?: string;
  on(event: 'input', handler: (msg: NodeMessage, send: Send, done: Done) => void | Promise<void>): void;
  on(event: 'close', handler: (removed: boolean, done: () => void) => void): void;
  send(msg: NodeMessage | Array<NodeMessage | null> | null): void;
  status(status: NodeStatus | Record<string, never>): void;
  warn(message: unknown): void;
  error(message: unknown, msg?: NodeMessage): void;
  log(message: unknown): void;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  [key: string]: unknown;
}

export interface Red {
  nodes: {
    createNode(node: object, config: NodeDef): void;
    getNode(id: string): unknown;
    registerType(type: string, constructor: (this: Node, config: NodeDef) => void, options?: object): void;
    /** replaces a node's stored credentials (saved with the next deploy) */
    addCredentials?(id: string, credentials: Record<string, unknown>): unknown;
    /** every node of the deployed flows, as configured */
    eachNode?(callback: (config: NodeDef) => void): void;
  };
  /** a plugin's API (Node-RED gives it to plugins' runtime files) */
  plugins?: { registerPlugin(id: string, definition: Record<string, unknown>): void };
  settings: { userDir?: string; [key: string]: unknown };
  util: {
    /** a deep copy of a message (as Node-RED copies one sent to several wires) */
    cloneMessage<T extends NodeMessage>(msg: T): T;
    evaluateNodeProperty(value: string, type: string, node: Node, msg: NodeMessage, callback: (error: Error | null, result?: unknown) => void): void;
  };
  httpAdmin?: { get(path: string, ...handlers: unknown[]): void; post(path: string, ...handlers: unknown[]): void };
  /** messages to the editors connected (their RED.comms.subscribe) */
  comms?: { publish(topic: string, data: unknown, retain?: boolean): void };
  auth?: { needsPermission(permission: string): unknown };
  _(key: string, substitutions?: Record<string, unknown>): string;
}
