/**
 * Ready-made object instances for a simulated device: Security and Server (from the client's
 * settings), Device, Connectivity Monitoring, Location, an APN connection profile, a WiFi
 * interface, and any IPSO sensor or actuator. Each returns an InstanceSpec; pass your own values to
 * override any resource.
 */
import type { ObjectModel, ResourceDefinition } from '../model';
import { SECURITY_MODE } from '../protocol';
import { certificateResources, rawPublicKeyResources, type CertificateCredentials, type RawPublicKeyCredentials } from './ecdsa-keys';
import { randomWalk, type ValueGenerator } from './generators';
import type { InstanceSpec, ResourceContent } from './tree';

export interface DeviceInfo {
  manufacturer?: string;
  model?: string;
  serial?: string;
  firmwareVersion?: string;
  batteryLevel?: number | ValueGenerator;
  memoryFree?: number | ValueGenerator;
  utcOffset?: string;
  timezone?: string;
  /** binding and modes the device supports (resource 16) */
  supportedBindings?: string;
}

/** Device (3): identity, battery, memory, error codes, time; Reboot, Factory Reset and Reset Error Code are wired by the client. */
export function deviceInstance(info: DeviceInfo = {}, overrides: InstanceSpec = {}): InstanceSpec {
  let timeOffset = 0;
  return {
    0: info.manufacturer ?? 'node-red-lwm2m',
    1: info.model ?? 'Simulated Device',
    2: info.serial ?? 'SIM-0001',
    3: info.firmwareVersion ?? '1.0.0',
    6: { 0: 1, 1: 5 }, // internal battery, USB
    7: { 0: 3800, 1: 5000 }, // mV
    8: { 0: 120, 1: 900 }, // mA
    9: info.batteryLevel ?? randomWalk({ min: 20, max: 100, step: 1, start: 90, interval: 30_000 }),
    10: info.memoryFree ?? 512,
    11: { 0: 0 }, // no error
    13: {
      // Current Time: the clock, shifted by whatever the server writes
      read: () => Math.floor(Date.now() / 1000) + timeOffset,
      write: (value: ResourceContent) => {
        timeOffset = (value as number) - Math.floor(Date.now() / 1000);
      },
    },
    14: info.utcOffset ?? '+00:00',
    15: info.timezone ?? 'Etc/UTC',
    16: info.supportedBindings ?? 'UQ',
    17: 'simulator',
    18: '1.0',
    19: '1.0.0',
    20: 0, // normal
    21: 1024,
    ...overrides,
  };
}

/** Server (1) instance for the server the client registers with. */
export function serverInstance(settings: { shortServerId: number; lifetime: number; binding: string; defaultPmin?: number; defaultPmax?: number }, overrides: InstanceSpec = {}): InstanceSpec {
  return {
    0: settings.shortServerId,
    1: settings.lifetime,
    2: settings.defaultPmin ?? 0,
    3: settings.defaultPmax ?? 0,
    5: 86400,
    6: false,
    7: settings.binding,
    ...overrides,
  };
}

/** Security (0) instance of a server account, in the mode its credentials are for (none: NoSec). Never visible to the management server. */
export function securityInstance(serverUri: string, shortServerId: number, credentials?: SecurityCredentials): InstanceSpec {
  return { 0: serverUri, 1: false, ...securityResources(credentials), 10: shortServerId };
}

/**
 * Security (0) instance of the Bootstrap-Server account: Bootstrap-Server (1) true and no Short
 * Server ID (10). PSK (mode 0) for a coaps:// URI, NoSec (3) otherwise.
 */
export function bootstrapSecurityInstance(bootstrapUri: string, psk?: { identity: string | Buffer; key: Buffer }): InstanceSpec {
  return { 0: bootstrapUri, 1: true, ...securityResources(psk && { psk }) };
}

/** How a client authenticates to one server: one of a PSK, a certificate or a raw public key; none is NoSec. */
export interface SecurityCredentials {
  psk?: { identity: string | Buffer; key: Buffer };
  certificate?: CertificateCredentials;
  rawPublicKey?: RawPublicKeyCredentials;
}

/** Security Mode (2) and resources 3, 4, 5: the PSK identity and key, or our key material and the server's (DER). */
function securityResources(credentials: SecurityCredentials | undefined): InstanceSpec {
  const empty = Buffer.alloc(0);
  if (credentials?.psk) return { 2: SECURITY_MODE.psk, 3: Buffer.from(credentials.psk.identity), 4: empty, 5: Buffer.from(credentials.psk.key) };
  if (credentials?.certificate) return { 2: SECURITY_MODE.certificate, ...certificateResources(credentials.certificate) };
  if (credentials?.rawPublicKey) return { 2: SECURITY_MODE.rpk, ...rawPublicKeyResources(credentials.rawPublicKey) };
  return { 2: SECURITY_MODE.nosec, 3: empty, 4: empty, 5: empty };
}

/** Connectivity Monitoring (4): LTE-FDD with a drifting signal. */
export function connectivityInstance(options: { ipAddress?: string } = {}, overrides: InstanceSpec = {}): InstanceSpec {
  return {
    0: 6, // LTE-FDD
    1: { 0: 6, 1: 7 }, // LTE-FDD, NB-IoT
    2: randomWalk({ min: -110, max: -60, step: 2, start: -85, interval: 10_000 }),
    3: 80,
    4: { 0: options.ipAddress ?? '10.0.0.2' },
    5: { 0: '10.0.0.1' },
    6: 10,
    7: { 0: 'internet' },
    8: 123456,
    9: 1,
    10: 262,
    ...overrides,
  };
}

/** Location (6): a position that wanders a little around its start. */
export function locationInstance(options: { latitude?: number; longitude?: number; interval?: number } = {}, overrides: InstanceSpec = {}): InstanceSpec {
  const latitude = options.latitude ?? 52.52;
  const longitude = options.longitude ?? 13.405;
  const interval = options.interval ?? 10_000;
  return {
    0: randomWalk({ min: latitude - 0.01, max: latitude + 0.01, step: 0.0005, start: latitude, decimals: 6, interval }),
    1: randomWalk({ min: longitude - 0.01, max: longitude + 0.01, step: 0.0005, start: longitude, decimals: 6, interval }),
    2: 34,
    3: 10,
    5: { read: () => Math.floor(Date.now() / 1000) },
    6: 0,
    ...overrides,
  };
}

/** A traffic counter that grows with time, so successive reads differ like a live interface's. */
function counter(perSecond: number): { read: () => number } {
  const start = Date.now();
  return { read: () => Math.floor(((Date.now() - start) / 1000) * perSecond) };
}

export interface ApnOptions {
  /** Profile name (resource 0); default 'internet' */
  profileName?: string;
  /** APN (resource 1); default 'internet' */
  apn?: string;
  /** Authentication Type (resource 4): 0 PAP, 1 CHAP, 2 PAP or CHAP, 3 none (default) */
  authenticationType?: number;
  userName?: string;
  secret?: string;
  /** Enable status (resource 3); default true */
  enabled?: boolean;
  ipAddress?: string;
}

/**
 * APN Connection Profile (11): one enabled IPv4 profile with an accepted connection since start-up,
 * growing byte counters, and every setting a server typically rolls out (APN, credentials,
 * reconnect schedule, DNS) writable.
 */
export function apnInstance(options: ApnOptions = {}, overrides: InstanceSpec = {}): InstanceSpec {
  return {
    0: options.profileName ?? 'internet',
    1: options.apn ?? 'internet',
    2: false, // the APN is given, not chosen by the device
    3: options.enabled ?? true,
    4: options.authenticationType ?? 3,
    5: options.userName ?? '',
    6: options.secret ?? '',
    7: '10,60,600,3600',
    9: { 0: Math.floor(Date.now() / 1000) }, // connected at start-up ...
    10: { 0: 0 }, // ... and accepted
    13: counter(120),
    14: counter(480),
    15: { 0: options.ipAddress ?? '10.0.0.2' },
    17: { 0: '255.255.255.0' },
    18: { 0: '10.0.0.1' },
    19: { 0: '10.0.0.1' },
    23: counter(2),
    24: 1, // IPv4
    ...overrides,
  };
}

export interface WifiOptions {
  /** Interface name (resource 0); default 'wlan0' */
  interfaceName?: string;
  /** SSID (resource 5); default 'node-red-lwm2m' */
  ssid?: string;
  /** Channel (resource 9); default 6 */
  channel?: number;
  /** BSSID (resource 4): the interface's MAC address as 12 hex digits */
  bssid?: string;
}

/**
 * WLAN connectivity (12): an enabled 2.4 GHz WPA2-PSK station. Status (3) follows what the server
 * writes to Enable (1) and Radio Enabled (2): up while both are on, disabled otherwise.
 */
export function wifiInstance(options: WifiOptions = {}, overrides: InstanceSpec = {}): InstanceSpec {
  const state = { enabled: true, radio: 1 };
  return {
    0: options.interfaceName ?? 'wlan0',
    1: {
      value: true,
      write: (value: ResourceContent) => {
        state.enabled = value === true;
      },
    },
    2: {
      value: 1, // 2.4 GHz
      write: (value: ResourceContent) => {
        state.radio = Number(value);
      },
    },
    3: { read: () => (state.enabled && state.radio !== 0 ? 1 : 0) },
    4: options.bssid ?? '02005E000001', // a locally administered MAC address
    5: options.ssid ?? 'node-red-lwm2m',
    6: true, // the SSID is broadcast
    7: true, // beacons on
    8: 1, // client (station)
    9: options.channel ?? 6,
    10: true, // automatic channel
    11: { 0: 1, 1: 6, 2: 11 },
    13: 'DE ', // country and "all environments"
    14: 4, // 802.11n
    15: 1, // PSK
    16: 0, // AES (WPA2)
    29: true, // WMM supported ...
    30: true, // ... and on
    31: false, // any client MAC accepted
    33: counter(2_000),
    34: counter(8_000),
    35: counter(4),
    36: counter(10),
    37: 0,
    38: 0,
    ...overrides,
  };
}

/** Resource ids of the IPSO reusable resources the helpers below fill. */
const SENSOR_VALUE = 5700;
const SENSOR_UNITS = 5701;
const ON_OFF = 5850;
const DIMMER = 5851;

/** Typical ranges for a few sensors, so a random walk looks plausible. */
const SENSOR_DEFAULTS: Record<number, { min: number; max: number; start: number; units: string }> = {
  3303: { min: -10, max: 40, start: 21, units: 'Cel' },
  3304: { min: 0, max: 100, start: 45, units: '%RH' },
  3301: { min: 0, max: 2000, start: 300, units: 'lx' },
  3315: { min: 950, max: 1050, start: 1013, units: 'hPa' },
  3316: { min: 0, max: 5, start: 3.3, units: 'V' },
  3323: { min: 0, max: 200, start: 101, units: 'kPa' },
  3328: { min: 0, max: 3000, start: 100, units: 'W' },
};

/**
 * An instance of any IPSO object in the model: every mandatory resource gets a neutral value of its
 * type; a sensor's value (5700) gets a random walk in a plausible range, an actuator's on/off (5850)
 * starts off. Give overrides for anything else.
 */
export function ipsoInstance(model: ObjectModel, objectId: number, overrides: InstanceSpec = {}): InstanceSpec {
  const definition = model.object(objectId);
  if (!definition) throw new RangeError(`object ${objectId} is not in the model`);
  const spec: InstanceSpec = {};
  for (const resource of definition.resources.values()) {
    if (resource.mandatory && resource.type !== 'none') spec[resource.id] = neutralValue(resource);
  }
  if (definition.resources.has(SENSOR_VALUE)) {
    const typical = SENSOR_DEFAULTS[objectId];
    const range = definition.resources.get(SENSOR_VALUE)!.range;
    spec[SENSOR_VALUE] = randomWalk({
      min: typical?.min ?? range?.min ?? 0,
      max: typical?.max ?? range?.max ?? 100,
      start: typical?.start,
      step: typical ? (typical.max - typical.min) / 100 : undefined,
      interval: 5000,
    });
    if (definition.resources.has(SENSOR_UNITS)) spec[SENSOR_UNITS] = typical?.units ?? '';
  }
  if (definition.resources.has(ON_OFF)) spec[ON_OFF] = false;
  if (definition.resources.has(DIMMER) && spec[DIMMER] === undefined) spec[DIMMER] = 0;
  return { ...spec, ...overrides };
}

function neutralValue(resource: ResourceDefinition): InstanceSpec[number] {
  const single = (() => {
    switch (resource.type) {
      case 'String':
      case 'Corelnk':
        return '';
      case 'Boolean':
        return false;
      case 'Opaque':
        return Buffer.alloc(0);
      case 'Objlnk':
        return '65535:65535';
      default:
        return resource.range && resource.range.min > 0 ? resource.range.min : 0;
    }
  })();
  return resource.multiple ? { 0: single } : single;
}

