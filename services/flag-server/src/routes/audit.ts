import { keySchema } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AUTH_ERRORS, doc, errors, ref, reply } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { envParams } from './common.js';

export const auditQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('Most entries returned'),
  /** Only entries about this flag or segment key. */
  target: keySchema.optional().describe('Only entries about this flag or segment key'),
  /** An audit entry id: only older entries (paging backwards). */
  before: z
    .string()
    .regex(/^\d+-\d+$/, 'must be an audit entry id')
    .optional()
    .describe("An entry's `id`: only older entries (to page backwards)"),
});

/** `GET /api/v1/envs/:env/audit`: every write, newest first, with who, when, before/after and why. */
export async function auditRoutes(app: FastifyInstance, options: { store: Store }): Promise<void> {
  app.get(
    '/envs/:env/audit',
    {
      config: { access: 'read' },
      schema: {
        tags: ['audit'],
        summary: "An environment's audit log, newest first",
        description:
          'One entry per write: who (the token name, or `guardian`), when, the action, the target, the revision it ' +
          'made, the reason, and the flag or segment before and after. Kept per environment up to a bound ' +
          '(Redis: about 100,000 entries; embedded: 10,000).',
        params: doc(envParams),
        querystring: doc(auditQuerySchema),
        response: {
          200: reply('The entries, newest first', {
            type: 'object',
            properties: { entries: { type: 'array', items: ref('AuditEntry') } },
          }),
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request) => {
      const { params, query } = parseRequest(request, { params: envParams, query: auditQuerySchema });
      const entries = await options.store.audit(params.env, {
        limit: query.limit,
        ...(query.target === undefined ? {} : { target: query.target }),
        ...(query.before === undefined ? {} : { before: query.before }),
      });
      return { entries };
    },
  );
}
