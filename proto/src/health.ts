import { z } from 'zod';
import { SCHEDULE_STATUSES, severitySchema } from './flag.js';
import { cohortFiguresSchema } from './incident.js';
import { environmentSchema, keySchema } from './keys.js';

/** `regression` outranks `insufficient_data`, which outranks `healthy`. */
export const VERDICT_STATUSES = ['healthy', 'regression', 'insufficient_data'] as const;
export const verdictStatusSchema = z.enum(VERDICT_STATUSES);
export type VerdictStatus = z.infer<typeof verdictStatusSchema>;

/** What can fire: three absolute thresholds on the treatment cohort, two comparisons against control. */
export const TRIGGERS = [
  'error_rate',
  'success_rate',
  'p99_latency',
  'error_rate_vs_control',
  'latency_vs_control',
] as const;
export const triggerSchema = z.enum(TRIGGERS);
export type Trigger = z.infer<typeof triggerSchema>;

/**
 * How a sequential test stands at one evaluation: `pass` (under its boundary, or not yet over it for
 * the evaluations in a row an absolute trigger needs), `fail` (it fired), `insufficient_data` (a
 * cohort lacks the minimum samples, so it cannot fire), `shared_breach` (over the boundary, but the
 * control cohort breaches the same absolute threshold, so it is not blamed on the flag).
 */
export const TEST_STATUSES = ['pass', 'fail', 'insufficient_data', 'shared_breach'] as const;

/**
 * One of the sequential tests the guardian ran on a treatment variant in the current epoch: an
 * always-valid test (a mixture of likelihood ratios, docs/guardian-method.md) whose e-value is over
 * its boundary `1 / level` with probability at most `level` under the null, however often it is read.
 * Both are given as natural logs; `crossed` is `logEValue ≥ logBoundary`.
 */
export const sequentialTestSchema = z.strictObject({
  trigger: triggerSchema,
  status: z.enum(TEST_STATUSES),
  /** ln of the test's e-value (its mixture likelihood ratio), capped to ±1e9 (a zero threshold's proof is +1e9). */
  logEValue: z.number(),
  /** ln(1 / level): the level is the test's alpha split over the treatment variants and the epochs. */
  logBoundary: z.number(),
  crossed: z.boolean(),
  /** Evaluations in a row the test has been over its boundary, and how many it needs to fire. */
  consecutive: z.int().min(0),
  required: z.int().min(1),
  /**
   * The treatment's figure the test is about over the epoch's data: an error rate, a success rate or a
   * p99 in ms; null without data.
   */
  observed: z.number().nullable(),
  /** For comparisons against control, control's same figure; null otherwise or without data. */
  control: z.number().nullable(),
  /**
   * Absolute triggers: the threshold applied (max error rate, min success rate, max p99 ms).
   * Comparisons: the ratio treatment/control must exceed (1 + margin).
   */
  threshold: z.number(),
});
export type SequentialTest = z.infer<typeof sequentialTestSchema>;

/**
 * The policy the guardian actually applied to a flag version: the flag's `guard` resolved over the
 * service's defaults, with the statistical levels of its tests.
 */
export const appliedThresholdsSchema = z.strictObject({
  /** Absolute thresholds on the treatment cohort. */
  maxErrorRate: z.number().min(0).max(1),
  minSuccessRate: z.number().min(0).max(1),
  maxP99LatencyMs: z.number().positive(),
  /** Requests a cohort needs since the version started before a test on it can fire. */
  minSamples: z.int().min(1),
  /** Evaluations in a row an absolute threshold's test must be over its boundary to fire. */
  consecutiveFailures: z.int().min(1),
  compareToControl: z.boolean(),
  /** Level of each comparison against control, per version and treatment variant (before the epoch split). */
  alpha: z.number().gt(0).lt(1),
  /** Level of each absolute-threshold test, likewise. */
  thresholdAlpha: z.number().gt(0).lt(1),
  /** The error comparison fires on treatment's rate above control's × (1 + errorMargin). */
  errorMargin: z.number().min(0),
  /** The latency comparison fires on treatment's tail beyond control's p99 × (1 + latencyMargin). */
  latencyMargin: z.number().min(0),
});
export type AppliedThresholds = z.infer<typeof appliedThresholdsSchema>;

/** The verdict on one treatment variant against the control cohort, with its figures. */
export const variantVerdictSchema = z.strictObject({
  variant: keySchema,
  status: verdictStatusSchema,
  triggers: z.array(triggerSchema),
  /** One line on what fired; empty when nothing did. */
  reason: z.string(),
  /** Totals since the version started. */
  treatment: cohortFiguresSchema,
  control: cohortFiguresSchema.nullable(),
  /** The guardian's sliding window (the last minute by default). */
  window: z.strictObject({ treatment: cohortFiguresSchema, control: cohortFiguresSchema.nullable() }),
  /**
   * The sequential tests run on this variant in the current epoch, one per trigger the policy enables
   * (empty when the guard is disabled, and in verdicts stored before the guardian reported them).
   */
  tests: z.array(sequentialTestSchema).default([]),
});
export type VariantVerdictFigures = z.infer<typeof variantVerdictSchema>;

/**
 * The guardian's latest verdict on one flag version, as it stores it (with an expiry) for the flag
 * server's health endpoint.
 */
export const verdictSchema = z.strictObject({
  env: environmentSchema,
  flag: keySchema,
  /** The flag version the verdict is about. */
  version: z.int().min(0),
  status: verdictStatusSchema,
  /** False when the flag's guard is disabled: figures only, nothing fires. */
  guarded: z.boolean(),
  severity: severitySchema,
  autoKill: z.boolean(),
  /** The control cohort's variant (the flag's `offVariant`). */
  controlVariant: keySchema,
  /** The sequential tests' epoch within the version (1-based). */
  epoch: z.int().min(1),
  triggers: z.array(triggerSchema),
  reason: z.string(),
  variants: z.array(variantVerdictSchema),
  /** The policy applied (null in verdicts stored before the guardian reported it). */
  thresholds: appliedThresholdsSchema.nullable().default(null),
  evaluatedAt: z.iso.datetime(),
  /** The guardian instance that decided. */
  guardian: z.string().max(256),
});
export type Verdict = z.infer<typeof verdictSchema>;

/** What a deployment gate should do: go on, stop (roll back), or ask again later. */
export const HEALTH_GATES = ['pass', 'fail', 'wait'] as const;

/**
 * Body of `GET /api/v1/envs/{env}/flags/{key}/health`: the guardian's verdict on the flag's current
 * version, shaped for Argo Rollouts' web metric (`successCondition: result == "pass"` on `{$.gate}`;
 * `wait` is inconclusive) and Flagger's webhook gate (as a gate the route answers 200 only on `pass`).
 */
export const flagHealthSchema = z.strictObject({
  env: environmentSchema,
  flag: keySchema,
  /** The flag's current version. */
  version: z.int().min(0),
  /** `insufficient_data` too when the guardian has no verdict on the current version yet. */
  status: verdictStatusSchema,
  /** `fail` on a regression or a killed flag, `pass` when healthy, `wait` otherwise. */
  gate: z.enum(HEALTH_GATES),
  healthy: z.boolean(),
  killed: z.boolean(),
  reason: z.string(),
  severity: severitySchema.nullable(),
  controlVariant: keySchema,
  triggers: z.array(triggerSchema),
  /** Totals since the version started: each treatment cohort, then the control. */
  cohorts: z.array(cohortFiguresSchema),
  variants: z.array(variantVerdictSchema),
  /** The policy the guardian applied to this version; null without a verdict on it. */
  thresholds: appliedThresholdsSchema.nullable().default(null),
  /** The version the latest stored verdict is about (null without one). */
  verdictVersion: z.int().min(0).nullable(),
  schedule: z
    .strictObject({
      status: z.enum(SCHEDULE_STATUSES),
      variant: keySchema,
      stepIndex: z.int().min(-1),
      steps: z.int().min(1),
      /** The percentage served at the current step; null before the first. */
      percent: z.number().min(0).max(100).nullable(),
    })
    .nullable(),
  /** When the verdict was made; null without one. */
  updatedAt: z.iso.datetime().nullable(),
});
export type FlagHealth = z.infer<typeof flagHealthSchema>;
