import type { TokenInfo } from '@vigil/proto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createTokenSchema, generateSecret, principalOf, type Tokens } from '../auth.js';
import { Idempotency, idempotent } from '../idempotency.js';
import { AUTH_ERRORS, doc, errors, ref, reply, requestHeaders } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';
import { WRITE_ERRORS } from './common.js';

const idParams = z.strictObject({ id: z.string().min(1).max(128).describe("The token's id (`tok_…`)") });

/**
 * Tokens under `/api/v1/tokens` (admin tokens not bound to an environment only). The secret is in the
 * creation response and nowhere else; the store keeps its SHA-256.
 */
export async function tokenRoutes(
  app: FastifyInstance,
  options: { tokens: Tokens; store: Pick<Store, 'getIdempotency'> },
): Promise<void> {
  const { tokens, store } = options;

  app.post(
    '/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Create a token; the secret is shown once, in this response',
        description:
          'An SDK key (`sdk-server` or `sdk-client`) holds exactly that one scope and needs `env`; other tokens ' +
          'may be bound to an environment with `env`.',
        headers: requestHeaders('idempotency-key'),
        body: doc(createTokenSchema),
        response: {
          201: reply('The token and its secret (`vgl_…`), which is never shown again', {
            type: 'object',
            properties: { token: ref('TokenInfo'), secret: { type: 'string' } },
          }),
          ...errors(
            [
              'VIGIL_BAD_REQUEST',
              'a bad name, scope or env: a duplicate scope, an SDK key with another scope or without env.',
            ],
            ...AUTH_ERRORS,
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const { body } = parseRequest(request, { body: createTokenSchema });
      const principal = principalOf(request);
      const idem = Idempotency.of(request);
      // A replay answers the same secret: the record holds it sealed under the Idempotency-Key.
      const replayed = (token: TokenInfo, sealed: string | undefined) =>
        reply.code(201).send({ token, secret: sealed === undefined ? undefined : idem!.open(sealed) });
      return idempotent(
        store,
        idem,
        (record) => replayed(record.result as TokenInfo, record.attachment),
        async () => {
          const secret = generateSecret();
          const claim = idem?.claim(201, idem.seal(secret));
          const created = await tokens.create(body, principal.name, secret, claim);
          request.log.info(
            { tokenId: created.token.id, scopes: body.scopes, env: body.env, actor: principal.name },
            'token created',
          );
          return reply.code(201).send(created);
        },
      );
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
          200: reply('Every token, oldest first', {
            type: 'object',
            properties: { tokens: { type: 'array', items: ref('TokenInfo') } },
          }),
          ...errors(...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
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
        description:
          'Streams using it on this server close at once. Other replicas keep accepting it until their token ' +
          'cache entry expires (`tokenCacheMs`, 5 s by default), then close its streams at their next heartbeat.',
        params: doc(idParams),
        headers: requestHeaders('idempotency-key'),
        response: {
          204: reply('Deleted'),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ...AUTH_ERRORS,
            ['VIGIL_NOT_FOUND', 'no token with this id.'],
            ['VIGIL_IN_USE', 'it is the last admin token not bound to an environment.'],
            ...WRITE_ERRORS,
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const { params } = parseRequest(request, { params: idParams });
      const idem = Idempotency.of(request);
      return idempotent(
        store,
        idem,
        () => reply.code(204).send(),
        async () => {
          await tokens.delete(params.id, idem?.claim(204));
          request.log.info({ tokenId: params.id, actor: principalOf(request).name }, 'token deleted');
          return reply.code(204).send();
        },
      );
    },
  );
}
