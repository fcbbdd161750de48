export { attributeGetter, bucketValue } from './attributes.js';
export { fullJitter } from './backoff.js';
export { Bucketer, bucketOf, bucketOfHash } from './bucketing.js';
export { type CompiledClause, clauseMatches, compileClause } from './clauses.js';
export {
  batchLength,
  CohortWindow,
  type CohortWindowOptions,
  MAX_BATCH_SUMMARIES,
  metricsBody,
  type ServedCohort,
} from './cohorts.js';
export { type CompiledFlag, Compiler, kindOf, type ValueKind, type VariantTable } from './compile.js';
export { Emitter } from './emitter.js';
export { type ChangedKeys, type FlagPatch, FlagSet, type FlagSnapshot } from './flag-set.js';
export { murmur3, murmur3Bytes, murmur3Continue, prefixState } from './murmur3.js';
export {
  fromOpenFeatureContext,
  type OpenFeatureResolution,
  openFeatureMetadata,
  openFeatureNotReady,
  openFeatureResolution,
} from './openfeature-context.js';
export { compareSemver, parseSemver, type SemVer } from './semver.js';
export { LatencySketch } from './sketch.js';
export {
  type Clock,
  createSynchronizer,
  emptySyncStats,
  type FlagsResponse,
  readFlagsResponse,
  type StreamClose,
  type StreamConnection,
  type StreamEvents,
  type StreamState,
  type SyncError,
  type SyncErrorCode,
  type Synchronizer,
  type SyncIo,
  type SyncNote,
  type SyncOptions,
  type SyncStats,
  type SyncTarget,
} from './sync.js';
export type { Context, EvaluationDetail, EvaluationErrorCode, Reason, Widen } from './types.js';
export { flagIssue, parseServerMessage, segmentIssue, snapshotIssue } from './wire.js';
