import type { FastifyInstance, LogLevel } from 'fastify';
import { VigilError } from '../errors.js';
import type { ServerMetrics } from '../metrics.js';
import { errors, reply } from '../openapi.js';
import type { Store } from '../store/store.js';

/** `/healthz` (the process answers), `/readyz` (the store answers) and `/metrics` (Prometheus). */
export async function opsRoutes(
  app: FastifyInstance,
  options: { store: Store; metrics: ServerMetrics; quietLogLevel: LogLevel },
): Promise<void> {
  const { store, metrics, quietLogLevel: logLevel } = options;
  const ops = { tags: ['operations'], security: [] };

  app.get(
    '/healthz',
    {
      logLevel,
      schema: {
        ...ops,
        summary: 'Liveness: 200 while the process runs',
        response: { 200: reply('`{ "status": "ok" }`', { type: 'object' }) },
      },
    },
    async () => ({
      status: 'ok',
    }),
  );

  app.get(
    '/readyz',
    {
      logLevel,
      schema: {
        ...ops,
        summary: 'Readiness: 200 when the store answers, else 503',
        description:
          'While it answers 503 the server still serves SDKs (polling, streams, evaluation) from memory; only writes ' +
          'and admin reads need the store.',
        response: {
          200: reply('`{ "status": "ready", "store": "redis" | "embedded" }`', { type: 'object' }),
          ...errors(['VIGIL_STORE_UNAVAILABLE', 'the store did not answer a ping.']),
        },
      },
    },
    async () => {
      try {
        await store.ping();
      } catch (error) {
        metrics.storeErrors.inc({ op: 'ping' });
        throw new VigilError('VIGIL_STORE_UNAVAILABLE', `store (${store.kind}) unreachable`, undefined, {
          cause: error,
        });
      }
      return { status: 'ready', store: store.kind };
    },
  );

  app.get(
    '/metrics',
    {
      logLevel,
      schema: {
        ...ops,
        summary: 'Prometheus metrics',
        description: 'The names are listed in [operations.md](operations.md#metrics-and-alerts).',
        response: {
          200: {
            description: 'The Prometheus text exposition format',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply
        .type(metrics.registry.contentType)
        .serializer((s: string) => s)
        .send(text);
    },
  );
}
