import { z } from 'zod';
import { attributePathSchema, keySchema } from './keys.js';

export { MAX_REGEX_LENGTH } from './regex.js';

/** Weights are thousandths of a percent: 100000 is everyone. */
export const WEIGHT_TOTAL = 100_000;

/** Longest prerequisite chain (in links) an environment may hold; evaluation fails deeper ones. */
export const MAX_PREREQUISITE_DEPTH = 16;

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export const jsonValueSchema: z.ZodType<Json> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValueSchema),
    z.record(z.string(), jsonValueSchema),
  ]),
);
export type JsonValue = Json;

export const variantValueSchema = z.union([
  z.boolean(),
  z.string(),
  z.number(),
  z.array(jsonValueSchema),
  z.record(z.string(), jsonValueSchema),
]);
export type VariantValue = z.infer<typeof variantValueSchema>;

export const variantSchema = z.strictObject({
  key: keySchema,
  value: variantValueSchema,
  description: z.string().max(1024).optional(),
});
export type Variant = z.infer<typeof variantSchema>;

export const weightSchema = z.int().min(0).max(WEIGHT_TOTAL);

export const rolloutSchema = z.strictObject({
  /** Context attribute hashed for the split; the context `key` when absent. */
  bucketBy: attributePathSchema.optional(),
  /** Share of contexts taking part at all, in thousandths of a percent; the rest get `offVariant`. */
  exposure: weightSchema.optional(),
  weights: z
    .array(z.strictObject({ variant: keySchema, weight: weightSchema }))
    .min(1)
    .max(64),
});
export type Rollout = z.infer<typeof rolloutSchema>;

export const serveSchema = z.union([
  z.strictObject({ variant: keySchema }),
  z.strictObject({ rollout: rolloutSchema }),
]);
export type Serve = z.infer<typeof serveSchema>;

export const OPERATORS = [
  'in',
  'notIn',
  'contains',
  'startsWith',
  'endsWith',
  'matches',
  'lt',
  'lte',
  'gt',
  'gte',
  'before',
  'after',
  'semverEq',
  'semverLt',
  'semverGt',
  'inSegment',
  'exists',
] as const;
export const operatorSchema = z.enum(OPERATORS);
export type Operator = z.infer<typeof operatorSchema>;

export const clauseValueSchema = z.union([z.string().max(4096), z.number(), z.boolean()]);
export type ClauseValue = z.infer<typeof clauseValueSchema>;

export const clauseSchema = z.strictObject({
  attribute: attributePathSchema,
  op: operatorSchema,
  values: z.array(clauseValueSchema).max(10_000),
  negate: z.boolean().optional(),
});
export type Clause = z.infer<typeof clauseSchema>;

export const ruleSchema = z.strictObject({
  id: keySchema,
  description: z.string().max(1024).optional(),
  clauses: z.array(clauseSchema).max(100),
  serve: serveSchema,
});
export type Rule = z.infer<typeof ruleSchema>;

export const prerequisiteSchema = z.strictObject({ flag: keySchema, variant: keySchema });
export type Prerequisite = z.infer<typeof prerequisiteSchema>;

/**
 * Longest duration a schedule step may hold (a year). Bounded so a hold in milliseconds stays an exact
 * integer everywhere it goes: a JS safe integer, and within the 14 digits Redis's Lua JSON keeps.
 */
export const MAX_DURATION_MS = 365 * 86_400_000;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds in `90s`, `5m`, ...; undefined when the text is not such a duration. */
function textMs(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  return match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : undefined;
}

/** A duration of at most {@link MAX_DURATION_MS}: whole seconds, or a string such as `90s`, `5m`, `1h`. */
export const durationSchema = z.union([
  z
    .int()
    .min(0)
    .max(MAX_DURATION_MS / 1000),
  z
    .string()
    .regex(/^\d{1,9}(ms|s|m|h|d)$/, 'must be a number followed by ms, s, m, h or d')
    .refine((text) => (textMs(text) ?? 0) <= MAX_DURATION_MS, 'must be at most 365d'),
]);
export type Duration = z.infer<typeof durationSchema>;

/** Milliseconds in a duration written as {@link durationSchema} accepts it. */
export function durationMs(duration: Duration): number {
  if (typeof duration === 'number') return duration * 1000;
  const ms = textMs(duration);
  if (ms === undefined) throw new RangeError(`not a duration: ${duration}`);
  return ms;
}

export const SCHEDULE_STATUSES = [
  'pending',
  'running',
  'paused',
  'completed',
  'rolled_back',
  'aborted',
] as const;

export const scheduleStepSchema = z.strictObject({
  /** Percentage of contexts (0–100, up to three decimals) served the scheduled variant at this step. */
  percent: z.number().min(0).max(100),
  /** How long the step must stay healthy before the next one (the last step's usually is 0, the default). */
  hold: durationSchema.default(0),
});
export type ScheduleStep = z.infer<typeof scheduleStepSchema>;

/** Most steps a schedule may have. */
export const MAX_SCHEDULE_STEPS = 50;

/** A progressive rollout: the guardian raises `variant`'s share step by step while the flag is healthy. */
export const scheduleSchema = z.strictObject({
  variant: keySchema,
  steps: z.array(scheduleStepSchema).min(1).max(MAX_SCHEDULE_STEPS),
  status: z.enum(SCHEDULE_STATUSES).default('pending'),
  /** Index of the step in force; -1 before the first. */
  stepIndex: z
    .int()
    .min(-1)
    .max(MAX_SCHEDULE_STEPS - 1)
    .default(-1),
  stepStartedAt: z.iso.datetime().optional(),
  /** Hold left when paused, in ms, so resume continues the same hold. */
  remainingHoldMs: z.int().min(0).max(MAX_DURATION_MS).optional(),
  updatedAt: z.iso.datetime().optional(),
  reason: z.string().max(2048).optional(),
});
export type Schedule = z.infer<typeof scheduleSchema>;

/**
 * When the hold of a schedule's current step ends (epoch ms): `stepStartedAt` plus the hold left at the
 * last resume (`remainingHoldMs`) or else the step's whole hold. Undefined before the first step.
 */
export function holdEndsAt(schedule: Schedule): number | undefined {
  const step = schedule.steps[schedule.stepIndex];
  if (step === undefined || schedule.stepStartedAt === undefined) return undefined;
  return Date.parse(schedule.stepStartedAt) + (schedule.remainingHoldMs ?? durationMs(step.hold));
}

export const SEVERITIES = ['sev1', 'sev2', 'sev3'] as const;
export const severitySchema = z.enum(SEVERITIES);
export type Severity = z.infer<typeof severitySchema>;

/** The guardian's policy for one flag; absent fields take the service's defaults. */
export const guardSchema = z.strictObject({
  enabled: z.boolean().default(true),
  severity: severitySchema.optional(),
  /** Kill automatically on a regression; defaults to the severity's `autoRollback`. */
  autoKill: z.boolean().optional(),
  maxErrorRate: z.number().min(0).max(1).optional(),
  maxP99LatencyMs: z.number().positive().optional(),
  minSuccessRate: z.number().min(0).max(1).optional(),
  /** Compare each served variant against the control cohort (`offVariant`). */
  compareToControl: z.boolean().optional(),
  minSamples: z.int().min(1).optional(),
  consecutiveFailures: z.int().min(1).optional(),
});
export type Guard = z.infer<typeof guardSchema>;

const timestamp = z.iso.datetime();

export const flagSchema = z.strictObject({
  key: keySchema,
  description: z.string().max(4096).default(''),
  tags: z.array(z.string().min(1).max(64)).max(50).default([]),
  owner: z.string().max(256).optional(),
  variants: z.array(variantSchema).min(1).max(64),
  offVariant: keySchema,
  enabled: z.boolean(),
  killed: z.boolean().default(false),
  killedAt: timestamp.optional(),
  killedBy: z.string().max(256).optional(),
  killReason: z.string().max(2048).optional(),
  rules: z.array(ruleSchema).max(500).default([]),
  fallthrough: serveSchema,
  prerequisites: z.array(prerequisiteSchema).max(20).default([]),
  /** Hash salt; the flag key when absent. */
  salt: z.string().min(1).max(256).optional(),
  clientSide: z.boolean().default(false),
  /** The environment revision of the flag's last change; set by the server. */
  version: z.int().min(0).default(0),
  schedule: scheduleSchema.optional(),
  guard: guardSchema.optional(),
  createdAt: timestamp.optional(),
  updatedAt: timestamp.optional(),
});
/** A flag as stored and streamed (defaults applied). */
export type Flag = z.infer<typeof flagSchema>;
/** A flag as a client may write it (defaults optional). */
export type FlagInput = z.input<typeof flagSchema>;

export const segmentSchema = z.strictObject({
  key: keySchema,
  description: z.string().max(4096).default(''),
  /** Context keys always in the segment (unless excluded). */
  included: z.array(z.string().max(1024)).max(100_000).default([]),
  /** Context keys never in the segment. */
  excluded: z.array(z.string().max(1024)).max(100_000).default([]),
  /** A context is in the segment when every clause of any one rule matches. */
  rules: z.array(z.array(clauseSchema).max(100)).max(100).default([]),
  version: z.int().min(0).default(0),
  updatedAt: timestamp.optional(),
});
export type Segment = z.infer<typeof segmentSchema>;
export type SegmentInput = z.input<typeof segmentSchema>;
