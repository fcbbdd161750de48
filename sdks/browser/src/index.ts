export { bucketOf, type Context, type EvaluationDetail, FlagSet, type FlagSnapshot } from '@vigil/core';
export {
  type ClientEvents,
  type ClientOptions,
  type ClientStats,
  createClient,
  type EventName,
  type FlagSource,
  type Listener,
  VigilClient,
  type Widen,
} from './client.js';
export { isVigilSdkError, SDK_ERRORS, type SdkErrorCode, VigilSdkError } from './errors.js';
export { SDK_NAME } from './version.js';
