/**
 * The guardian's cohort analysis: pure, deterministic statistics over SDK cohort summaries, with the
 * clock passed in. `CohortAnalyzer` is the entry point; the rest is exported for tests, tools and the
 * simulation in bench/guardian-sim.ts. The method is described in docs/guardian-method.md.
 */
export { type AnalyzerOptions, CohortAnalyzer, describeCheck } from './analyzer.js';
export { CohortSeries, Tally } from './cohorts.js';
export {
  type AnalysisConfig,
  type AnalysisConfigInput,
  analysisConfigSchema,
  type CompiledAnalysisConfig,
  compileAnalysisConfig,
  DEFAULT_ANALYSIS_CONFIG,
} from './config.js';
export { LogHistogram } from './histogram.js';
export {
  DEFAULT_GUARD_DEFAULTS,
  type GuardDefaults,
  type GuardDefaultsInput,
  guardDefaultsSchema,
  type ResolvedGuard,
  resolveGuard,
  type SeverityPolicy,
} from './policy.js';
export {
  addOneSample,
  addTwoSample,
  epochShare,
  freshState,
  logSumExp,
  type Mixture,
  mixture,
  mixtureLogE,
  type OneSample,
  oneSample,
} from './sequential.js';
export {
  type Check,
  type CheckStatus,
  type FlagVerdict,
  TRIGGERS,
  type Trigger,
  type VariantVerdict,
  VERDICT_STATUSES,
  type VerdictStatus,
} from './types.js';
