import { z } from 'zod';
import { jsonValueSchema } from './flag.js';

/**
 * An evaluation context: `key` identifies the subject (OpenFeature's `targetingKey`), the rest are
 * attributes addressed by dot paths. Evaluation accepts any object; this schema is for API input.
 */
export const contextSchema = z
  .object({ key: z.string().max(1024).optional() })
  .catchall(jsonValueSchema)
  .refine((ctx) => JSON.stringify(ctx).length <= 64 * 1024, 'context larger than 64 KiB');
export type EvaluationContext = z.infer<typeof contextSchema>;
