import rateLimit from '@fastify/rate-limit';
import websocket from '@fastify/websocket';
import { CLOSE_CODES } from '@vigil/proto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type LogLevel } from 'fastify';
import { setupAuth, Tokens } from './auth.js';
import type { Config } from './config.js';
import { Environments } from './environments.js';
import {
  handleClientError,
  handleFrameworkError,
  setupErrorHandling,
  toVigilError,
} from './error-handler.js';
import { VigilError } from './errors.js';
import { createLogger } from './logger.js';
import { ServerMetrics } from './metrics.js';
import { setupOpenApi } from './openapi.js';
import { setupJsonBodies } from './request.js';
import { auditRoutes } from './routes/audit.js';
import { evaluateRoutes } from './routes/evaluate.js';
import { flagRoutes } from './routes/flags.js';
import { healthRoutes } from './routes/health.js';
import { incidentRoutes } from './routes/incidents.js';
import { opsRoutes } from './routes/ops.js';
import { scheduleRoutes } from './routes/schedules.js';
import { sdkRoutes } from './routes/sdk.js';
import { segmentRoutes } from './routes/segments.js';
import { selectProtocol, streamRoutes } from './routes/stream.js';
import { tokenRoutes } from './routes/tokens.js';
import type { Store } from './store/store.js';
import { StreamHub } from './stream-hub.js';

export interface BuildOptions {
  config: Config;
  /** A started store; the caller closes it after the server. */
  store: Store;
  /** A pino logger; by default one at `config.logLevel` with secrets redacted (see `createLogger`). */
  logger?: FastifyBaseLogger;
  /** Also export Node.js process metrics (off in tests, where many servers share a process). */
  processMetrics?: boolean;
  /** Epoch ms for schedule and incident timestamps (default `Date.now`); tests share one clock with the guardian. */
  now?: () => number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The server's parts, for main and tests. */
    vigil: { tokens: Tokens; envs: Environments; hub: StreamHub; metrics: ServerMetrics; store: Store };
  }
}

/** Only the admin API and metrics ingestion are rate limited; polling and streams are served from memory. */
const isRateLimited = (url: string) => url.startsWith('/api/') || url.startsWith('/v1/metrics');

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The level for hot or noisy routes (polling, probes): `warn`, or the server's level if quieter. */
function quietLevel(level: string): LogLevel {
  return (LEVELS.indexOf(level) > LEVELS.indexOf('warn') ? level : 'warn') as LogLevel;
}

/** Largest message an SDK may send on a stream (hello, ping). */
const MAX_CLIENT_MESSAGE = 64 * 1024;

/**
 * Builds the flag server: admin REST under `/api/v1`, SDK endpoints under `/v1`, ops endpoints,
 * OpenAPI at `/openapi.json`. Environments are loaded from the store before it returns.
 */
export async function buildServer(options: BuildOptions): Promise<FastifyInstance> {
  const { config, store } = options;
  const now = options.now ?? Date.now;
  const app = Fastify({
    loggerInstance: options.logger ?? createLogger(config.logLevel),
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    // Keys and secrets are never part of a request id.
    requestIdHeader: false,
    // Path parameters are bounded by their schemas, which name the bad field; the router's default (100)
    // was below the longest key (128), so such flags could be created but never read, killed or deleted.
    routerOptions: { maxParamLength: 2048 },
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
  });
  const metrics = new ServerMetrics({ defaultMetrics: options.processMetrics ?? false });
  const tokens = new Tokens(store, config.tokenCacheMs);
  const envs = new Environments(store, { bufferSize: config.changeBuffer, log: app.log, metrics });
  const hub = new StreamHub(envs, tokens, {
    heartbeatMs: config.heartbeatMs,
    maxBuffered: config.streamMaxBuffer,
    log: app.log,
    metrics,
  });
  app.decorate('vigil', { tokens, envs, hub, metrics, store });

  setupErrorHandling(app);
  setupJsonBodies(app);
  metrics.instrument(app);
  app.addHook('onError', async (_request, _reply, error) => {
    if (toVigilError(error).code === 'VIGIL_STORE_UNAVAILABLE') metrics.storeErrors.inc({ op: 'request' });
  });
  await setupOpenApi(app);
  if (config.rateLimitMax > 0) {
    await app.register(rateLimit, {
      global: true,
      max: config.rateLimitMax,
      timeWindow: config.rateLimitWindowMs,
      allowList: (request) => !isRateLimited(request.url),
      errorResponseBuilder: (_request, context) =>
        new VigilError('VIGIL_RATE_LIMITED', `rate limit exceeded; retry in ${context.after}`, {
          max: context.max,
          retryAfterMs: context.ttl,
        }),
    });
  }
  await app.register(websocket, {
    options: { maxPayload: MAX_CLIENT_MESSAGE, handleProtocols: selectProtocol },
    preClose: async () => {
      // Our preClose replaces the plugin's, which stopped routing upgrades: an SDK reconnecting during
      // shutdown would otherwise leave a half-open socket that keeps close() from ever resolving.
      app.server.removeAllListeners('upgrade');
      app.server.on('upgrade', (_request, socket) => socket.destroy());
      await hub.closeAll(CLOSE_CODES.shuttingDown, 'server shutting down');
      // Streams still authenticating are not in the hub yet.
      for (const client of app.websocketServer.clients) client.close(1001, 'server shutting down');
      await new Promise<void>((resolve) => app.websocketServer.close(() => resolve()));
    },
  });
  setupAuth(app, tokens);

  const quiet = quietLevel(app.log.level);
  await app.register(opsRoutes, { store, metrics, quietLogLevel: quiet });
  await app.register(sdkRoutes, {
    store,
    envs,
    metrics,
    quietLogLevel: quiet,
    metricsRateLimitMax: config.metricsRateLimitMax,
  });
  await app.register(streamRoutes, { store, tokens, envs, hub });
  await app.register(
    async (api) => {
      await api.register(flagRoutes, { store, metrics });
      await api.register(scheduleRoutes, { store, metrics, now });
      await api.register(healthRoutes, { store, tokens });
      await api.register(incidentRoutes, { store, metrics, now });
      await api.register(segmentRoutes, { store, metrics });
      await api.register(evaluateRoutes, { envs });
      await api.register(auditRoutes, { store });
      await api.register(tokenRoutes, { tokens });
    },
    { prefix: '/api/v1' },
  );

  app.addHook('onClose', async () => {
    hub.stop();
    envs.close();
  });

  await envs.start();
  hub.start();
  return app;
}
