import { keySchema } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { doc, errors, ref } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { envParams } from './common.js';

export const auditQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Only entries about this flag or segment key. */
  target: keySchema.optional(),
  /** An audit entry id: only older entries (paging backwards). */
  before: z
    .string()
    .regex(/^\d+-\d+$/, 'must be an audit entry id')
    .optional(),
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
        params: doc(envParams),
        querystring: doc(auditQuerySchema),
        response: {
          200: { type: 'object', properties: { entries: { type: 'array', items: ref('AuditEntry') } } },
          ...errors(400, 401, 403),
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
