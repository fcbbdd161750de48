export { type BuildOptions, buildServer } from './app.js';
export {
  ACCESS,
  type Access,
  bootstrapAdmin,
  generateSecret,
  hashSecret,
  type Principal,
  Tokens,
} from './auth.js';
export { type Config, type ConfigInput, configSchema, ENV_VARS, loadConfig, parseConfig } from './config.js';
export { ERRORS, type ErrorCode, isVigilError, VigilError } from './errors.js';
export {
  controlVariantOf,
  formatDuration,
  incidentLinks,
  severityLabel,
  splitCohorts,
} from './incidents/format.js';
export {
  escapeBlock,
  escapeCell,
  escapeInline,
  incidentDurations,
  type PostmortemOptions,
  renderPostmortem,
  type Span,
} from './incidents/postmortem.js';
export { createLogger, redactUrl } from './logger.js';
export { type RunningServer, startServer } from './run.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './store/embedded.js';
export { RedisStore, type RedisStoreOptions } from './store/redis.js';
export type * from './store/store.js';
