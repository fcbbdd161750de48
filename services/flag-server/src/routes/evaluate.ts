import { contextSchema, KEY_PATTERN, keySchema, MAX_CONTEXT_JSON_LENGTH } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Environments } from '../environments.js';
import { AUTH_ERRORS, doc, errors, ref, reply } from '../openapi.js';
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
        description:
          'Evaluated from the same in-memory state the streams serve, with the evaluator the SDKs use, so the ' +
          "results match theirs. The context's one limit is its size, at most " +
          `${MAX_CONTEXT_JSON_LENGTH.toLocaleString('en-US')} characters as JSON (64 KiB; no limit on \`key\` ` +
          'or on attributes), besides those on every request body (`bodyLimit`, nesting depth): within them, any ' +
          'context an SDK evaluates is evaluated here, with the same answer. An unknown flag key gives ' +
          '`reason: ERROR`, `errorCode: FLAG_NOT_FOUND`, `value: null`.',
        params: doc(envParams),
        body: {
          type: 'object',
          required: ['context'],
          additionalProperties: false,
          properties: {
            context: ref('Context'),
            flags: {
              type: 'array',
              maxItems: 1000,
              items: { type: 'string', pattern: KEY_PATTERN.source },
              description: 'Flags to evaluate; every flag of the environment when absent',
            },
          },
        },
        response: {
          200: reply(
            "The environment's revision and, per flag key, the evaluation: `value` (null for the caller's " +
              'default), `variant`, `reason`, and when they apply `errorCode`, `detail`, `ruleId`, `flagVersion`',
            {
              type: 'object',
              properties: {
                revision: { type: 'integer' },
                results: { type: 'object', additionalProperties: { type: 'object' } },
              },
            },
          ),
          ...errors('VIGIL_BAD_REQUEST', ...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
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
