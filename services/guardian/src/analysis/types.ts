import type {
  AppliedThresholds,
  CohortFigures,
  Severity,
  TEST_STATUSES,
  Trigger,
  VerdictStatus,
} from '@vigil/proto';

// The statuses and triggers are part of the stored verdict's contract, so they live in proto.
export { TRIGGERS, type Trigger, VERDICT_STATUSES, type VerdictStatus } from '@vigil/proto';

/**
 * `pass`: evaluated, not firing. `fail`: firing (for an absolute threshold, for `required` evaluations
 * in a row). `insufficient_data`: a cohort lacks the minimum samples. `shared_breach`: the threshold is
 * crossed but the control cohort crosses it too, so it is not blamed on the flag.
 */
export type CheckStatus = (typeof TEST_STATUSES)[number];

/** One trigger's evaluation with the figures behind it. */
export interface Check {
  trigger: Trigger;
  status: CheckStatus;
  /**
   * The treatment's point estimate the trigger is about, over the data its test has seen (the current
   * epoch): an error rate, a success rate or a p99 in ms; null without data.
   */
  observed: number | null;
  /** For comparisons, control's same figure; null otherwise or without data. */
  control: number | null;
  /**
   * For absolute triggers the policy's threshold (max error rate, min success rate, max p99 ms); for
   * comparisons the ratio treatment/control must exceed (1 + margin).
   */
  threshold: number;
  /** For comparisons, observed / control; null otherwise or when undefined. */
  ratio: number | null;
  /** Requests (latency values for latency triggers) behind `observed`, and behind `control`. */
  samples: number;
  controlSamples: number | null;
  /** Natural log of the test's e-value (its mixture likelihood ratio); it fires at `logBoundary`. */
  logEvidence: number;
  /** `ln(1 / level)`, the level being the alpha share of this epoch and variant. */
  logBoundary: number;
  /** The smallest alpha at which this check's test would be over its boundary now (≤ alpha ⇔ over). */
  pValue: number;
  /** Evaluations in a row the test has been over its boundary (absolute triggers count these). */
  consecutive: number;
  /** Evaluations in a row needed to fire. */
  required: number;
}

/** The verdict on one treatment variant against the control cohort. */
export interface VariantVerdict {
  variant: string;
  status: VerdictStatus;
  /** The triggers that fired. */
  triggers: Trigger[];
  /** One line on what fired, for audit reasons and incident titles; empty when nothing did. */
  reason: string;
  /** Totals since the version started. */
  treatment: CohortFigures;
  control: CohortFigures | null;
  /** The sliding window's figures (the last `horizonMs`). */
  window: { treatment: CohortFigures; control: CohortFigures | null };
  checks: Check[];
}

/** The guardian's verdict on one flag version at one instant. */
export interface FlagVerdict {
  env: string;
  flag: string;
  version: number;
  /** The `now` it was evaluated at (epoch ms). */
  evaluatedAt: number;
  /** The worst of the variants' statuses; `insufficient_data` when no treatment variant has traffic. */
  status: VerdictStatus;
  /** False when the flag's guard is disabled: figures only, nothing fires. */
  guarded: boolean;
  severity: Severity;
  autoKill: boolean;
  /** A regression under an auto-kill severity: the caller should flip the kill switch. */
  kill: boolean;
  /** The control cohort's variant (the flag's `offVariant`). */
  controlVariant: string;
  /** The current test epoch of this version (1-based). */
  epoch: number;
  /** The policy applied: the flag's guard over the service defaults, and the tests' levels. */
  thresholds: AppliedThresholds;
  triggers: Trigger[];
  reason: string;
  variants: VariantVerdict[];
}
