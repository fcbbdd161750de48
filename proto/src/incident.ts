import { z } from 'zod';
import { severitySchema } from './flag.js';
import { environmentSchema, keySchema } from './keys.js';

export const INCIDENT_STATUSES = ['open', 'acknowledged', 'resolved'] as const;

/**
 * What the guardian measured for one cohort when it decided. Latency quantiles are read from the
 * cohort's latency sketch (≤ 2% relative error); null without latency values. `p50LatencyMs` and
 * `p95LatencyMs` are absent from figures stored before the guardian reported them.
 */
export const cohortFiguresSchema = z.strictObject({
  variant: keySchema,
  requests: z.int().min(0),
  errors: z.int().min(0),
  errorRate: z.number().min(0).max(1),
  p50LatencyMs: z.number().min(0).nullable().optional(),
  p95LatencyMs: z.number().min(0).nullable().optional(),
  p99LatencyMs: z.number().min(0).nullable(),
});
export type CohortFigures = z.infer<typeof cohortFiguresSchema>;

export const TIMELINE_KINDS = [
  'change',
  'detection',
  'kill',
  'notification',
  'notification_failed',
  'escalation',
  'acknowledged',
  'resolved',
  'note',
] as const;

export const timelineEntrySchema = z.strictObject({
  at: z.iso.datetime(),
  kind: z.enum(TIMELINE_KINDS),
  message: z.string(),
  actor: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});
export type TimelineEntry = z.infer<typeof timelineEntrySchema>;

export const incidentSchema = z.strictObject({
  id: z.string(),
  env: environmentSchema,
  flag: keySchema,
  /** The flag version whose regression opened the incident. */
  flagVersion: z.int().min(0),
  severity: severitySchema,
  status: z.enum(INCIDENT_STATUSES),
  title: z.string(),
  summary: z.string(),
  killed: z.boolean(),
  cohorts: z.array(cohortFiguresSchema),
  /** The control cohort's variant (the flag's `offVariant` when the guardian decided). */
  controlVariant: keySchema.optional(),
  /** When the bad change started being served, when the guardian saw it, when it was killed. */
  changedAt: z.iso.datetime().optional(),
  detectedAt: z.iso.datetime(),
  mitigatedAt: z.iso.datetime().optional(),
  acknowledgedAt: z.iso.datetime().optional(),
  acknowledgedBy: z.string().optional(),
  resolvedAt: z.iso.datetime().optional(),
  resolvedBy: z.string().optional(),
  timeline: z.array(timelineEntrySchema),
  /**
   * Lifecycle events already handed to the notification outbox (`opened`, `escalated-1`,
   * `acknowledged`, `resolved`), so each reaches the integrations once however often it is looked at.
   */
  notified: z.array(z.string().max(64)).max(100).optional(),
});
export type Incident = z.infer<typeof incidentSchema>;
