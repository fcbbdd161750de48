import type { FastifyInstance, LogLevel } from 'fastify';
import { VigilError } from '../errors.js';
import type { ServerMetrics } from '../metrics.js';
import { errors } from '../openapi.js';
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
    { logLevel, schema: { ...ops, summary: 'Liveness: 200 while the process runs' } },
    async () => ({
      status: 'ok',
    }),
  );

  app.get(
    '/readyz',
    {
      logLevel,
      schema: { ...ops, summary: 'Readiness: 200 when the store answers, else 503', response: errors(503) },
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
    { logLevel, schema: { ...ops, summary: 'Prometheus metrics' } },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply
        .type(metrics.registry.contentType)
        .serializer((s: string) => s)
        .send(text);
    },
  );
}
