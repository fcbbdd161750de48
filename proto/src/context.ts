import { z } from 'zod';
import { jsonValueSchema } from './flag.js';

/**
 * The one limit on an evaluation context, in JSON characters: a request carrying one (REST
 * `evaluate`) refuses a bigger context with a 400 naming `context`. There is no separate limit on
 * `key` or on attributes: within this size every evaluator — the REST server, the Node and browser
 * SDKs, the core — accepts the same contexts and gives the same answer. In-process evaluation sends
 * nothing anywhere, so it has no size to check.
 */
export const MAX_CONTEXT_JSON_LENGTH = 64 * 1024;

/**
 * An evaluation context: `key` identifies the subject (OpenFeature's `targetingKey`), the rest are
 * attributes addressed by dot paths. Evaluation accepts any object; this schema is for API input.
 */
export const contextSchema = z
  .object({
    key: z
      .string()
      .describe("The subject, OpenFeature's targetingKey: any length within the context's size limit")
      .optional(),
  })
  .catchall(jsonValueSchema)
  .refine(
    (ctx) => JSON.stringify(ctx).length <= MAX_CONTEXT_JSON_LENGTH,
    `context larger than ${MAX_CONTEXT_JSON_LENGTH} characters of JSON (64 KiB)`,
  );
export type EvaluationContext = z.infer<typeof contextSchema>;
