import { type FieldIssue, metricsBatchSchema } from '@vigil/proto';
import type { FastifyInstance, LogLevel } from 'fastify';
import { principalOf } from '../auth.js';
import type { Environments } from '../environments.js';
import { VigilError } from '../errors.js';
import type { ServerMetrics } from '../metrics.js';
import { AUTH_ERRORS, errors, ref, reply, requestHeaders } from '../openapi.js';
import { etag, notModified, parseRequest } from '../request.js';
import type { Store } from '../store/store.js';

export interface SdkRouteOptions {
  store: Store;
  envs: Environments;
  metrics: ServerMetrics;
  /** Log level of the polling route (it may answer thousands of requests a second). */
  quietLogLevel: LogLevel;
  /** `POST /v1/metrics`'s own budget per rate-limit window and client IP. */
  metricsRateLimitMax: number;
}

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'etag',
} as const;

/**
 * The SDK endpoints over HTTP: `GET /v1/flags` (polling and bootstrap, answered from memory) and
 * `POST /v1/metrics` (cohort summaries for the guardian). Browsers may call both from any origin, with
 * the key as a bearer token or in `?key=` (which needs no preflight).
 */
export async function sdkRoutes(app: FastifyInstance, options: SdkRouteOptions): Promise<void> {
  const { store, envs, metrics } = options;

  app.addHook('onSend', async (_request, reply) => {
    reply.headers(CORS);
  });
  for (const url of ['/v1/flags', '/v1/metrics']) {
    app.options(url, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .code(204)
        .headers({
          'access-control-allow-methods': 'GET, POST, OPTIONS',
          'access-control-allow-headers': 'authorization, content-type, if-none-match',
          'access-control-max-age': '600',
        })
        .send(),
    );
  }

  // Polls share one quiet logger instead of a child per request: at tens of thousands of polls a
  // second, creating the per-request child costs more than answering a 304.
  const pollLog = app.log.child({ route: '/v1/flags' }, { level: options.quietLogLevel });
  app.get(
    '/v1/flags',
    {
      config: { access: 'sdk' },
      logLevel: options.quietLogLevel,
      childLoggerFactory: () => pollLog,
      schema: {
        tags: ['sdk'],
        summary: "The key's environment as a snapshot; ETag is the revision (304 on If-None-Match)",
        description:
          'The polling fallback and the bootstrap path, answered from memory (also while the store is down). ' +
          'Client keys (`sdk-client`) see only `clientSide` flags and the segments those flags reference. ' +
          'Any origin may call it (CORS `*`).',
        querystring: {
          type: 'object',
          properties: { key: { type: 'string', description: 'SDK key (browsers)' } },
        },
        headers: requestHeaders('if-none-match'),
        response: {
          200: reply(
            'The snapshot: the same `{ revision, flags, segments }` a stream snapshot carries (`Cache-Control: no-cache`)',
            {
              type: 'object',
              properties: {
                revision: { type: 'integer' },
                flags: { type: 'array', items: ref('Flag') },
                segments: { type: 'array', items: ref('Segment') },
              },
            },
            { etag: { type: 'string', description: 'The revision as an entity tag, e.g. `"42"`' } },
          ),
          304: reply('Not modified: `If-None-Match` names the current revision'),
          ...errors(...AUTH_ERRORS, [
            'VIGIL_STORE_UNAVAILABLE',
            'the environment is not in memory yet and the store cannot be reached.',
          ]),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const env = principal.env!;
      const state = envs.peek(env) ?? (await envs.get(env));
      reply.header('etag', etag(state.revision)).header('cache-control', 'no-cache');
      if (notModified(request, state.revision)) return reply.code(304).send();
      const { body } = state.snapshot(principal.clientOnly ? 'client' : 'server');
      return reply
        .type('application/json; charset=utf-8')
        .serializer((s: string) => s)
        .send(body);
    },
  );

  app.post(
    '/v1/metrics',
    {
      config: { access: 'sdk', rateLimit: { max: options.metricsRateLimitMax } },
      schema: {
        tags: ['sdk'],
        summary: 'Cohort summaries from an SDK, for the guardian',
        description:
          "At most 5000 summaries per request. A summary's `env`, when given, must be the key's environment " +
          '(it defaults to it); client keys may only report `clientSide` flags. Accepted summaries go to the ' +
          "store's metrics stream, which the guardians read.",
        body: ref('MetricsBatch'),
        response: {
          202: reply('Accepted: `{ "accepted": <number of summaries> }`', {
            type: 'object',
            properties: { accepted: { type: 'integer' } },
          }),
          ...errors(
            ['VIGIL_BAD_REQUEST', 'the batch is malformed; `details` names every bad field.'],
            'VIGIL_UNAUTHORIZED',
            [
              'VIGIL_FORBIDDEN',
              "not an SDK key, or summaries outside the key's reach (another environment, a server-side flag for a client key).",
            ],
            'VIGIL_STORE_UNAVAILABLE',
          ),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { body } = parseRequest(request, { body: metricsBatchSchema });
      const state = principal.clientOnly
        ? (envs.peek(principal.env!) ?? (await envs.get(principal.env!)))
        : undefined;
      const issues: FieldIssue[] = [];
      body.summaries.forEach((summary, i) => {
        if (summary.env !== undefined && summary.env !== principal.env) {
          issues.push({
            field: `summaries[${i}].env`,
            message: `must be the key's environment (${principal.env})`,
          });
        } else if (state && !state.clientVisible(summary.flag)) {
          issues.push({
            field: `summaries[${i}].flag`,
            message: 'client keys may only report clientSide flags',
          });
        }
      });
      if (issues.length > 0) {
        throw new VigilError(
          'VIGIL_FORBIDDEN',
          `summaries outside this key's reach: ${issues.map((i) => i.field).join(', ')}`,
          issues,
        );
      }
      // the key is bound to one environment, so a summary that leaves `env` out is about that one
      const summaries = body.summaries.map((summary) => ({ ...summary, env: principal.env! }));
      if (summaries.length > 0) await store.publishMetrics(summaries);
      metrics.metricsSummaries.inc(body.summaries.length);
      return reply.code(202).send({ accepted: body.summaries.length });
    },
  );
}
