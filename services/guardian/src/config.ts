import { z } from 'zod';
import { analysisConfigSchema } from './analysis/config.js';
import { guardDefaultsSchema } from './analysis/policy.js';
import { notifyConfigSchema } from './notify/config.js';

/**
 * The guardian's settings: its cadence and coordination, the statistics (`analysis`), the guard
 * defaults flags inherit (`guard`, shaped like the seeds' incident config), and the integrations
 * (`notify`, whose secrets come from env vars). Validated with zod; `main.ts` reads it from env vars
 * and an optional JSON/YAML file.
 */
export const guardianConfigSchema = z.strictObject({
  /** This instance's name in the consumer group, locks and verdicts (default: host, pid and a random part). */
  id: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1–128 characters of A-Za-z0-9._:-')
    .optional(),
  /** How often flags are evaluated (and schedules and incidents looked after). */
  tickMs: z.int().min(50).max(60_000).default(1000),
  /** Reading SDK cohort summaries from the store's metrics bus. */
  ingest: z
    .strictObject({
      /** The consumer group every guardian shares: each summary reaches one of them. */
      group: z.string().min(1).max(128).default('guardian'),
      /** Summaries read per call. */
      batch: z.int().min(1).max(10_000).default(1000),
      /** How long a read waits for new summaries. */
      blockMs: z.int().min(0).max(60_000).default(1000),
      /** Summaries another guardian left unacknowledged this long are taken over (it crashed). */
      claimIdleMs: z.int().min(100).default(30_000),
    })
    .default({ group: 'guardian', batch: 1000, blockMs: 1000, claimIdleMs: 30_000 }),
  /** How long a stored verdict is served by `/health` without being refreshed. */
  verdictTtlMs: z.int().min(1000).default(30_000),
  /** Locks (`schedules`, `incidents`, the outbox's) are held this long and renewed every tick. */
  lockTtlMs: z.int().min(1000).default(10_000),
  /** How often open incidents are checked for escalation and lifecycle notifications. */
  incidentSweepMs: z.int().min(50).default(5000),
  /** Most recent incidents each sweep looks at. */
  incidentSweepLimit: z.int().min(1).max(10_000).default(500),
  /** Escalations of one unacknowledged incident, each after another `escalationMinutes`. */
  maxEscalations: z.int().min(0).max(20).default(3),
  /** A flag without summaries for this long is forgotten by the analysis. */
  forgetAfterMs: z.int().min(10_000).default(900_000),
  analysis: analysisConfigSchema.default(analysisConfigSchema.parse({})),
  guard: guardDefaultsSchema.default(guardDefaultsSchema.parse({})),
  notify: notifyConfigSchema.default({ integrations: [] }),
  /** Notification retries: exponential backoff with full jitter, retried until delivered by default. */
  outbox: z
    .strictObject({
      baseMs: z.int().min(1).default(1000),
      maxMs: z.int().min(1).default(300_000),
      maxAttempts: z.int().min(1).optional(),
    })
    .default({ baseMs: 1000, maxMs: 300_000 }),
});
export type GuardianConfig = z.infer<typeof guardianConfigSchema>;
export type GuardianConfigInput = z.input<typeof guardianConfigSchema>;
