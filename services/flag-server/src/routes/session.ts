import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorize, bearerToken, type Principal, type Tokens } from '../auth.js';
import {
  CSRF_HEADER,
  checkSameOrigin,
  SESSION_COOKIE,
  type Sessions,
  sessionPrincipal,
} from '../console-auth.js';
import type { Environments } from '../environments.js';
import { VigilError } from '../errors.js';
import { AUTH_ERRORS, doc, errors, reply } from '../openapi.js';
import { parseRequest } from '../request.js';
import type { Store } from '../store/store.js';

/** The environment the console shows when the store has none yet (the CLI's default too). */
const DEFAULT_ENV = 'production';

const signInSchema = z.strictObject({
  token: z
    .string()
    .min(1)
    .max(512)
    .describe('An API token (`admin`, `ops` or `read`); SDK keys cannot sign in'),
});

const sessionBody = {
  type: 'object',
  required: ['name', 'scope', 'scopes', 'expiresAt', 'csrfToken'],
  properties: {
    name: { type: 'string', description: "The token's name" },
    scope: { type: 'string', enum: ['admin', 'ops', 'read'], description: 'The strongest scope it holds' },
    scopes: { type: 'array', items: { type: 'string' } },
    env: { type: 'string', description: 'The environment the token is bound to, if any' },
    expiresAt: { type: 'string', format: 'date-time' },
    csrfToken: {
      type: 'string',
      description: `Send it as \`${CSRF_HEADER}\` with every write made with the session cookie`,
    },
  },
};

const cookieHeader = {
  'set-cookie': {
    type: 'string',
    description: `\`${SESSION_COOKIE}=…; Path=/; HttpOnly; SameSite=Strict; Max-Age=…\` (and \`Secure\` over TLS)`,
  },
};

export interface SessionRouteOptions {
  sessions: Sessions;
  tokens: Tokens;
  envs: Environments;
  store: Store;
}

const cookieOptions = (request: FastifyRequest) =>
  ({
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    secure: request.protocol === 'https',
  }) as const;

/** The caller of a console route that checks its token itself: bearer token, else session cookie. */
export async function consoleCaller(
  request: FastifyRequest,
  tokens: Tokens,
  sessions: Sessions,
): Promise<Principal> {
  const secret = bearerToken(request);
  const principal = secret
    ? await tokens.authenticate(secret)
    : (await sessionPrincipal(sessions, request))?.principal;
  if (!principal) {
    throw new VigilError(
      'VIGIL_UNAUTHORIZED',
      secret ? 'unknown token' : 'missing token (Authorization: Bearer <token>, or a console session)',
    );
  }
  request.principal = principal;
  return principal;
}

/**
 * The console's sign-in under `/api/v1/session` (a token exchanged for an HttpOnly session cookie) and
 * `/api/v1/envs`, the environments it can switch between.
 */
export async function sessionRoutes(app: FastifyInstance, options: SessionRouteOptions): Promise<void> {
  const { sessions, tokens, envs, store } = options;
  const tags = ['console'];

  app.post(
    '/session',
    {
      schema: {
        tags,
        summary: 'Sign in to the console: exchange a token for a session cookie',
        description:
          'Sets the `vigil_session` cookie (HttpOnly, SameSite=Strict, Secure over TLS) for `sessionTtlMs` (12 h ' +
          'by default). Every `/api/v1` route then accepts the cookie in place of `Authorization`, with the ' +
          `token's scopes; a write made with it must carry \`${CSRF_HEADER}: <csrfToken>\` and come from the ` +
          'same origin. Deleting the token ends its sessions.',
        security: [],
        body: doc(signInSchema),
        response: {
          200: reply('The session', sessionBody, cookieHeader),
          ...errors(
            'VIGIL_BAD_REQUEST',
            ['VIGIL_UNAUTHORIZED', 'no such token.'],
            ['VIGIL_FORBIDDEN', 'an SDK key (`sdk-server`, `sdk-client`): they cannot sign in.'],
            ['VIGIL_CSRF', 'sent from another origin.'],
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      checkSameOrigin(request);
      const { body } = parseRequest(request, { body: signInSchema });
      const { cookie, session } = await sessions.signIn(body.token);
      reply.setCookie(SESSION_COOKIE, cookie, {
        ...cookieOptions(request),
        maxAge: Math.floor((session.expiresAt - Date.now()) / 1000),
      });
      request.log.info({ tokenId: session.tokenId, actor: session.principal.name }, 'console sign-in');
      return reply.header('cache-control', 'no-store').send(sessions.body(session));
    },
  );

  app.get(
    '/session',
    {
      schema: {
        tags,
        summary: 'The current console session, with a fresh CSRF token',
        security: [],
        response: {
          200: reply('The session', sessionBody),
          ...errors('VIGIL_BAD_REQUEST', [
            'VIGIL_UNAUTHORIZED',
            'no session cookie, or the session expired or ended.',
          ]),
        },
      },
    },
    async (request, reply) => {
      const session = await sessionPrincipal(sessions, request);
      if (!session) throw new VigilError('VIGIL_UNAUTHORIZED', 'not signed in');
      return reply.header('cache-control', 'no-store').send(sessions.body(session));
    },
  );

  app.delete(
    '/session',
    {
      schema: {
        tags,
        summary: 'Sign out: end the session and clear its cookie',
        description: `Needs \`${CSRF_HEADER}\` while the session is valid; without a valid session it only clears the cookie.`,
        security: [],
        response: {
          204: reply('Signed out'),
          ...errors('VIGIL_BAD_REQUEST', [
            'VIGIL_CSRF',
            `no \`${CSRF_HEADER}\` for this session, or another origin.`,
          ]),
        },
      },
    },
    async (request, reply) => {
      let session: Awaited<ReturnType<typeof sessionPrincipal>>;
      try {
        session = await sessionPrincipal(sessions, request);
      } catch (error) {
        // An expired or ended session: there is nothing left to end but the cookie.
        if (!(error instanceof VigilError) || error.code !== 'VIGIL_UNAUTHORIZED') throw error;
      }
      if (session) {
        sessions.end(session);
        request.log.info({ tokenId: session.tokenId, actor: session.principal.name }, 'console sign-out');
      }
      reply.clearCookie(SESSION_COOKIE, cookieOptions(request));
      return reply.code(204).send();
    },
  );

  app.get(
    '/envs',
    {
      schema: {
        tags,
        summary: 'The environments the store knows',
        description: `A token bound to an environment sees only that one. With none written yet: \`["${DEFAULT_ENV}"]\`.`,
        'x-vigil-access': 'read',
        'x-vigil-bound-tokens': 'own-env',
        response: {
          200: reply('Environment names, sorted', {
            type: 'object',
            properties: { envs: { type: 'array', items: { type: 'string' } } },
          }),
          ...errors(...AUTH_ERRORS, 'VIGIL_STORE_UNAVAILABLE'),
        },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const principal = await consoleCaller(request, tokens, sessions);
      if (principal.env !== undefined) {
        authorize(principal, 'read', principal.env);
        return reply.send({ envs: [principal.env] });
      }
      authorize(principal, 'read', undefined);
      const names = new Set([...(await store.listEnvs()), ...envs.loaded().map((state) => state.env)]);
      if (names.size === 0) names.add(DEFAULT_ENV);
      return reply.send({ envs: [...names].sort() });
    },
  );
}
