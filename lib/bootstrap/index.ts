export { LwM2MBootstrapServer, type LwM2MBootstrapServerOptions, type BootstrapDtlsOptions } from './server';
export { BootstrapFailure } from './sequence';
export { checkConfig } from './config';
export type {
  AccountTarget,
  BootstrapConfig,
  BootstrapFailedEvent,
  BootstrapFinishedEvent,
  BootstrapOperation,
  BootstrapOperationEvent,
  BootstrapRequestEvent,
  BootstrappedAccount,
  SecurityModeName,
  ServerAccount,
} from './types';
