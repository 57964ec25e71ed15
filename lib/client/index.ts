export { LwM2MClient, type LwM2MClientOptions, type SendOptions, type BootstrapReason } from './client';
export { BootstrapError } from './bootstrap';
export type { AccountSummary, SecurityName } from './accounts';
export type { CertificateCredentials, RawPublicKeyCredentials } from './ecdsa-keys';
export { ObjectTree, type InstanceSpec, type ResourceOptions, type ResourceHandlers, type ResourceContent } from './tree';
export { ClientError } from './errors';
export { constant, randomWalk, sine, callback, type ValueGenerator, type GeneratorContext } from './generators';
export {
  deviceInstance,
  connectivityInstance,
  locationInstance,
  apnInstance,
  wifiInstance,
  ipsoInstance,
  type DeviceInfo,
  type ApnOptions,
  type WifiOptions,
} from './objects';
export { FirmwareState, FirmwareResult, FIRMWARE_DEFAULTS, type FirmwareOptions, type FirmwareProtocol } from './firmware';
export { AttributeError, type NotificationAttributes } from './attributes';
export { RegistrationError } from './registration';
export type { LwM2MVersion } from './management';
