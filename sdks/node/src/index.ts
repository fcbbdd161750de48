export type { ChangedKeys, Context, EvaluationDetail, Reason } from '@vigil/core';
export { snapshotBodySchema } from './bootstrap.js';
export { type ClientStats, createClient, VigilClient } from './client.js';
export type { ClientEvents, EventName, FlagSource, Listener } from './emitter.js';
export { isVigilSdkError, SDK_ERRORS, type SdkErrorCode, VigilSdkError } from './errors.js';
export type { MetricsStats, ServedCohort } from './metrics.js';
export {
  toVigilContext,
  VigilProvider,
  type VigilProviderOptions,
  vigilFlagMetadata,
} from './openfeature.js';
export type { BootstrapSnapshot, ClientOptions, Logger } from './options.js';
export { type Outcome, Scope, type Widen } from './scope.js';
export type { StreamState, SyncStats } from './sync.js';
export { SDK_NAME, SDK_VERSION } from './version.js';
