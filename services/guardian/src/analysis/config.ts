import { z } from 'zod';
import { type Mixture, mixture } from './sequential.js';

const mixtureSchema = z
  .strictObject({
    ratios: z.array(z.number().gt(1).finite()).min(1).max(32),
    weights: z.array(z.number().positive().finite()).min(1).max(32),
  })
  .refine((m) => m.ratios.length === m.weights.length, {
    message: 'needs one weight per ratio',
    path: ['weights'],
  });

/**
 * The statistics' settings (service-wide; a flag's `guard` sets the policy, not these).
 * docs/guardian-method.md explains each and how the defaults were chosen.
 */
export const analysisConfigSchema = z.strictObject({
  /**
   * Level of each comparison against control (error rate, latency), per flag version and treatment
   * variant: under A/A traffic the chance that it ever fires is at most this, however long it runs.
   */
  alpha: z.number().gt(0).lt(0.5).default(0.005),
  /** Level of each absolute-threshold test (error rate, success rate, p99 latency). */
  thresholdAlpha: z.number().gt(0).lt(0.5).default(0.01),
  /** Latency comparison: the treatment's tail must be more than this much slower than control's (0.2 = 20%). */
  latencyMargin: z.number().min(0).max(10).default(0.2),
  /** Error comparison: the treatment's error rate must exceed control's times 1 + this. */
  errorMargin: z.number().min(0).max(10).default(0),
  /** Sequential tests restart this often within a version, so a late regression is not drowned by history. */
  epochMs: z.int().min(1000).default(600_000),
  /** Width of the sliding-window buckets. */
  bucketMs: z.int().min(100).default(5000),
  /** How far back the sliding window reaches (for current figures). */
  horizonMs: z.int().min(1000).default(60_000),
  /** Latency values the control cohort needs before its p99 serves as the latency reference. */
  minLatencyReference: z.int().min(1).default(1000),
  /** Relative accuracy of the guardian's histograms; SDK sketches of another alpha are re-binned. */
  sketchAlpha: z.number().gt(0).lt(0.1).default(0.01),
  /**
   * An absolute threshold the control cohort breaches as well is not blamed on the flag (killing it
   * would not help); the comparison against control still guards that case.
   */
  exemptSharedBreaches: z.boolean().default(true),
  /** Prior over the treatment/control rate ratios the comparisons look for. */
  comparisonMixture: mixtureSchema.default({
    ratios: [1.5, 2, 3, 4, 6, 9, 14],
    weights: [1, 2, 3, 3, 3, 2, 1],
  }),
  /** Prior over the odds ratios (against the threshold) the absolute tests look for. */
  thresholdMixture: mixtureSchema.default({ ratios: [1.25, 1.5, 2, 3, 5, 8], weights: [1, 1, 1, 1, 1, 1] }),
});
export type AnalysisConfig = z.infer<typeof analysisConfigSchema>;
export type AnalysisConfigInput = z.input<typeof analysisConfigSchema>;

/** The defaults of every statistical setting. */
export const DEFAULT_ANALYSIS_CONFIG: AnalysisConfig = analysisConfigSchema.parse({});

/** A validated config with its mixtures built. */
export interface CompiledAnalysisConfig extends AnalysisConfig {
  readonly comparison: Mixture;
  readonly threshold: Mixture;
}

/** Validates a config (throws a ZodError naming the bad field) and builds its mixtures. */
export function compileAnalysisConfig(input: AnalysisConfigInput = {}): CompiledAnalysisConfig {
  const config = analysisConfigSchema.parse(input);
  return {
    ...config,
    comparison: mixture(config.comparisonMixture.ratios, config.comparisonMixture.weights),
    threshold: mixture(config.thresholdMixture.ratios, config.thresholdMixture.weights),
  };
}
