import { z } from 'zod';
import { environmentSchema } from './keys.js';

/** Every REST error: a stable `code` (`VIGIL_*`), a message for people, details for programs. */
export const errorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

export const TOKEN_SCOPES = ['admin', 'ops', 'read', 'sdk-server', 'sdk-client'] as const;
export const tokenScopeSchema = z.enum(TOKEN_SCOPES);
export type TokenScope = z.infer<typeof tokenScopeSchema>;

/** A token as listed: never the secret, which is shown once at creation and stored hashed. */
export const tokenInfoSchema = z.strictObject({
  id: z.string(),
  name: z.string().min(1).max(128),
  scopes: z.array(tokenScopeSchema).min(1),
  /** SDK keys are bound to one environment; other tokens may be limited to one. */
  env: environmentSchema.optional(),
  createdAt: z.iso.datetime(),
  createdBy: z.string().optional(),
  lastUsedAt: z.iso.datetime().optional(),
});
export type TokenInfo = z.infer<typeof tokenInfoSchema>;

export const AUDIT_ACTIONS = [
  'flag.create',
  'flag.update',
  'flag.delete',
  'flag.kill',
  'flag.revive',
  'flag.schedule',
  'segment.upsert',
  'segment.delete',
  'token.create',
  'token.delete',
] as const;

export const auditEntrySchema = z.strictObject({
  id: z.string(),
  env: z.string(),
  at: z.iso.datetime(),
  actor: z.string(),
  action: z.enum(AUDIT_ACTIONS),
  target: z.string(),
  revision: z.int().min(0).optional(),
  reason: z.string().optional(),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;
