import { z } from 'zod';
import { environmentSchema, keySchema } from './keys.js';

/**
 * A mergeable latency sketch (DDSketch-style log buckets): a value v > 0 falls in bucket
 * `ceil(log(v) / log(gamma))` with `gamma = (1 + alpha) / (1 - alpha)`, so any quantile read from it is
 * within `alpha` relative error. Buckets are sparse `[index, count]` pairs; values ≤ 0 count in `zero`.
 */
export const latencySketchSchema = z.strictObject({
  alpha: z.number().gt(0).lt(1),
  zero: z.int().min(0),
  bins: z.array(z.tuple([z.int(), z.int().min(1)])).max(4096),
  count: z.int().min(0),
  sum: z.number().min(0),
  min: z.number().min(0).optional(),
  max: z.number().min(0).optional(),
});
export type LatencySketch = z.infer<typeof latencySketchSchema>;

const cohortSummaryFields = z.strictObject({
  env: environmentSchema,
  flag: keySchema,
  variant: keySchema,
  version: z.int().min(0),
  windowStart: z.iso.datetime(),
  windowEnd: z.iso.datetime(),
  requests: z.int().min(0),
  errors: z.int().min(0),
  latency: latencySketchSchema,
});

function consistent<
  T extends z.ZodType<{ errors: number; requests: number; windowStart: string; windowEnd: string }>,
>(schema: T) {
  return schema
    .refine((s) => s.errors <= s.requests, { message: 'errors exceed requests', path: ['errors'] })
    .refine((s) => Date.parse(s.windowEnd) >= Date.parse(s.windowStart), {
      message: 'window ends before it starts',
      path: ['windowEnd'],
    });
}

/** What one SDK saw of one cohort (flag, variant, version) during one window. */
export const cohortSummarySchema = consistent(cohortSummaryFields);
export type CohortSummary = z.infer<typeof cohortSummarySchema>;

/** A summary as an SDK reports it: `env` may be left out, the server takes it from the SDK key. */
export const reportedSummarySchema = consistent(
  cohortSummaryFields.extend({ env: environmentSchema.optional() }),
);
export type ReportedSummary = z.infer<typeof reportedSummarySchema>;

/** Body of `POST /v1/metrics`; a summary's `env`, when given, must be the SDK key's environment. */
export const metricsBatchSchema = z.strictObject({
  sdk: z.string().max(128).optional(),
  summaries: z.array(reportedSummarySchema).max(5000),
});
export type MetricsBatch = z.infer<typeof metricsBatchSchema>;
