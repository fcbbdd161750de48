import { environmentSchema, type FieldIssue, keySchema, zodIssues } from '@vigil/proto';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { principalOf } from '../auth.js';
import { VigilError } from '../errors.js';
import type { WriteMeta } from '../store/store.js';

export const envParams = z.strictObject({ env: environmentSchema });
export const keyParams = envParams.extend({ key: keySchema.describe("The flag's key") });

/** Body of kill, revive: why (recorded in the audit log). */
export const reasonBodySchema = z.strictObject({
  reason: z.string().trim().min(1, 'required').max(2048).describe('Why; recorded in the audit log'),
});

/** Optional `X-Vigil-Reason` header: why a configuration write was made (recorded in the audit log). */
const reasonHeaderSchema = z.string().max(2048).optional();

/** The errors every write route may answer for its `Idempotency-Key` and an unknown store outcome. */
export const WRITE_ERRORS = ['VIGIL_IDEMPOTENCY_KEY_REUSED', 'VIGIL_WRITE_OUTCOME_UNKNOWN'] as const;

/** Path parameters' issues, named `path.<param>`. */
export function paramIssues<T extends z.ZodType>(
  schema: T,
  request: FastifyRequest,
): { value?: z.output<T>; issues: FieldIssue[] } {
  const parsed = schema.safeParse(request.params ?? {});
  return parsed.success ? { value: parsed.data, issues: [] } : { issues: zodIssues(parsed.error, ['path']) };
}

/** Who wrote, and why (the `X-Vigil-Reason` header unless a reason is given). */
export function writeMeta(request: FastifyRequest, reason?: string): WriteMeta {
  const meta: WriteMeta = { actor: principalOf(request).name };
  const header = reasonHeaderSchema.safeParse(request.headers['x-vigil-reason']);
  if (!header.success)
    throw new VigilError(
      'VIGIL_BAD_REQUEST',
      'invalid X-Vigil-Reason header',
      zodIssues(header.error, ['header', 'x-vigil-reason']),
    );
  const why = reason ?? header.data;
  if (why) meta.reason = why;
  return meta;
}

/**
 * Puts the key from the URL into a configuration body: fills it when absent; a different key is an issue.
 * Returns the body to validate and the issue, if any.
 */
export function withUrlKey(body: unknown, key: string): { body: unknown; issues: FieldIssue[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { body, issues: [] };
  const given = (body as { key?: unknown }).key;
  if (given === undefined) return { body: { ...body, key }, issues: [] };
  if (given !== key)
    return { body, issues: [{ field: 'key', message: `must equal the key in the URL ("${key}")` }] };
  return { body, issues: [] };
}

/** A 400 for configuration refused at write time: `VIGIL_INVALID_CONFIG` when the body is at fault. */
export function invalid(pathIssues: FieldIssue[], bodyIssues: FieldIssue[], what: string): VigilError {
  const issues = [...pathIssues, ...bodyIssues];
  const fields = [...new Set(issues.map((i) => i.field))].join(', ');
  return new VigilError(
    bodyIssues.length > 0 ? 'VIGIL_INVALID_CONFIG' : 'VIGIL_BAD_REQUEST',
    `invalid ${what}: ${fields}`,
    issues,
  );
}
