import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createTokenSchema, principalOf, type Tokens } from '../auth.js';
import { doc, errors, ref } from '../openapi.js';
import { parseRequest } from '../request.js';

const idParams = z.strictObject({ id: z.string().min(1).max(128) });

/**
 * Tokens under `/api/v1/tokens` (admin tokens not bound to an environment only). The secret is in the
 * creation response and nowhere else; the store keeps its SHA-256.
 */
export async function tokenRoutes(app: FastifyInstance, options: { tokens: Tokens }): Promise<void> {
  const { tokens } = options;

  app.post(
    '/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Create a token; the secret is shown once, in this response',
        body: doc(createTokenSchema),
        response: {
          201: { type: 'object', properties: { token: ref('TokenInfo'), secret: { type: 'string' } } },
          ...errors(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const { body } = parseRequest(request, { body: createTokenSchema });
      const principal = principalOf(request);
      const created = await tokens.create(body, principal.name);
      request.log.info(
        { tokenId: created.token.id, scopes: body.scopes, env: body.env, actor: principal.name },
        'token created',
      );
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'List tokens (never their secrets)',
        response: {
          200: { type: 'object', properties: { tokens: { type: 'array', items: ref('TokenInfo') } } },
          ...errors(401, 403),
        },
      },
    },
    async () => ({ tokens: await tokens.list() }),
  );

  app.delete(
    '/tokens/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Delete a token; streams using it close (4401)',
        params: doc(idParams),
        response: { 204: { type: 'null', description: 'Deleted' }, ...errors(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: idParams });
      await tokens.delete(params.id);
      request.log.info({ tokenId: params.id, actor: principalOf(request).name }, 'token deleted');
      return reply.code(204).send();
    },
  );
}
