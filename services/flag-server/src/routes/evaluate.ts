import { contextSchema, keySchema } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Environments } from '../environments.js';
import { doc, errors, ref } from '../openapi.js';
import { parseRequest } from '../request.js';
import { envParams } from './common.js';

export const evaluateBodySchema = z.strictObject({
  context: contextSchema,
  /** Flags to evaluate; every flag when absent. */
  flags: z.array(keySchema).max(1000).optional(),
});

/**
 * `POST /api/v1/envs/:env/evaluate`: server-side evaluation for callers without an SDK, from the same
 * in-memory state the streams serve, with @vigil/core (so results match the SDKs exactly).
 */
export async function evaluateRoutes(app: FastifyInstance, options: { envs: Environments }): Promise<void> {
  app.post(
    '/envs/:env/evaluate',
    {
      config: { access: 'evaluate' },
      schema: {
        tags: ['evaluation'],
        summary: 'Evaluate flags for a context',
        params: doc(envParams),
        body: {
          type: 'object',
          required: ['context'],
          properties: { context: ref('Context'), flags: { type: 'array', items: { type: 'string' } } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              revision: { type: 'integer' },
              results: { type: 'object', additionalProperties: { type: 'object' } },
            },
          },
          ...errors(400, 401, 403, 503),
        },
      },
    },
    async (request) => {
      const { params, body } = parseRequest(request, { params: envParams, body: evaluateBodySchema });
      const state = await options.envs.get(params.env);
      const set = state.flagSet();
      const results: Record<string, unknown> = {};
      for (const key of body.flags ?? set.keys().sort()) {
        const detail = set.detail(key, body.context);
        results[key] = { ...detail, value: detail.value ?? null };
      }
      return { revision: state.revision, results };
    },
  );
}
