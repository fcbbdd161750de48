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
