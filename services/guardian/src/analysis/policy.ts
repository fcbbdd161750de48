import { type Guard, type Severity, severitySchema } from '@vigil/proto';
import { z } from 'zod';

const severityPolicySchema = z.strictObject({
  /** Kill the flag automatically on a regression of this severity. */
  autoRollback: z.boolean(),
  /** Escalate an incident not acknowledged within this many minutes. */
  escalationMinutes: z.number().positive(),
});
export type SeverityPolicy = z.infer<typeof severityPolicySchema>;

/**
 * The service's guard defaults, shaped like the seeds' incident config: what each severity does, and
 * the triggers every guarded flag gets unless its own `guard` says otherwise.
 */
export const guardDefaultsSchema = z.strictObject({
  /** Guard flags that have no `guard` of their own. */
  enabled: z.boolean().default(true),
  severity: severitySchema.default('sev2'),
  severities: z
    .strictObject({ sev1: severityPolicySchema, sev2: severityPolicySchema, sev3: severityPolicySchema })
    .default({
      sev1: { autoRollback: true, escalationMinutes: 5 },
      sev2: { autoRollback: true, escalationMinutes: 15 },
      sev3: { autoRollback: false, escalationMinutes: 60 },
    }),
  triggers: z
    .strictObject({
      maxErrorRate: z.number().min(0).max(1).default(0.01),
      maxP99LatencyMs: z.number().positive().default(2000),
      minSuccessRate: z.number().min(0).max(1).default(0.99),
      consecutiveFailures: z.int().min(1).default(3),
    })
    .default({ maxErrorRate: 0.01, maxP99LatencyMs: 2000, minSuccessRate: 0.99, consecutiveFailures: 3 }),
  compareToControl: z.boolean().default(true),
  /** Requests a cohort needs since its version started before any verdict on it. */
  minSamples: z.int().min(1).default(200),
});
export type GuardDefaults = z.infer<typeof guardDefaultsSchema>;
export type GuardDefaultsInput = z.input<typeof guardDefaultsSchema>;

/** The service defaults when the config says nothing. */
export const DEFAULT_GUARD_DEFAULTS: GuardDefaults = guardDefaultsSchema.parse({});

/** A flag's guard with every field decided: its own settings over the service defaults. */
export interface ResolvedGuard {
  enabled: boolean;
  severity: Severity;
  autoKill: boolean;
  maxErrorRate: number;
  maxP99LatencyMs: number;
  minSuccessRate: number;
  compareToControl: boolean;
  minSamples: number;
  consecutiveFailures: number;
}

/** A flag's effective guard policy: its `guard` fields, the service defaults for the rest. */
export function resolveGuard(
  guard: Guard | undefined,
  defaults: GuardDefaults = DEFAULT_GUARD_DEFAULTS,
): ResolvedGuard {
  const severity = guard?.severity ?? defaults.severity;
  return {
    enabled: guard?.enabled ?? defaults.enabled,
    severity,
    autoKill: guard?.autoKill ?? defaults.severities[severity].autoRollback,
    maxErrorRate: guard?.maxErrorRate ?? defaults.triggers.maxErrorRate,
    maxP99LatencyMs: guard?.maxP99LatencyMs ?? defaults.triggers.maxP99LatencyMs,
    minSuccessRate: guard?.minSuccessRate ?? defaults.triggers.minSuccessRate,
    compareToControl: guard?.compareToControl ?? defaults.compareToControl,
    minSamples: guard?.minSamples ?? defaults.minSamples,
    consecutiveFailures: guard?.consecutiveFailures ?? defaults.triggers.consecutiveFailures,
  };
}
