import { fileURLToPath } from 'node:url';
import cookie from '@fastify/cookie';
import websocket from '@fastify/websocket';
import { CLOSE_CODES } from '@vigil/proto';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type LogLevel,
} from 'fastify';
import { setupAuth, Tokens } from './auth.js';
import type { Config } from './config.js';
import { Sessions, sessionPrincipal } from './console-auth.js';
import { Environments } from './environments.js';
import {
  handleClientError,
  handleFrameworkError,
  setupErrorHandling,
  toVigilError,
} from './error-handler.js';
import { LogBudget } from './log-budget.js';
import { createLogger } from './logger.js';
import { ServerMetrics } from './metrics.js';
import { setupOpenApi } from './openapi.js';
import { setupRateLimits } from './rate-limit.js';
import { setupJsonBodies } from './request.js';
import { auditRoutes } from './routes/audit.js';
import { backupRoutes } from './routes/backup.js';
import { ConsolePages, consoleRoutes } from './routes/console.js';
import { evaluateRoutes } from './routes/evaluate.js';
import { eventRoutes } from './routes/events.js';
import { flagRoutes } from './routes/flags.js';
import { healthRoutes } from './routes/health.js';
import { incidentRoutes } from './routes/incidents.js';
import { opsRoutes } from './routes/ops.js';
import { scheduleRoutes } from './routes/schedules.js';
import { sdkRoutes } from './routes/sdk.js';
import { segmentRoutes } from './routes/segments.js';
import { sessionRoutes } from './routes/session.js';
import { selectProtocol, streamErrorHandler, streamRoutes } from './routes/stream.js';
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

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The level for hot or noisy routes (polling, probes): `warn`, or the server's level if quieter. */
function quietLevel(level: string): LogLevel {
  return (LEVELS.indexOf(level) > LEVELS.indexOf('warn') ? level : 'warn') as LogLevel;
}

/** Largest message an SDK may send on a stream (hello, ping). */
const MAX_CLIENT_MESSAGE = 64 * 1024;
/** Lines a minute logged for stream frames refused (too large, not UTF-8); the rest are only counted. */
const REFUSED_FRAME_LOG_LINES = 10;

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

  // The console's page paths answer in place of the 404 (no catch-all route to shadow the router's errors).
  const consolePages = new ConsolePages(
    config.consoleDir ?? fileURLToPath(new URL('../../../console/dist', import.meta.url)),
  );
  setupErrorHandling(app, consolePages.fallback);
  setupJsonBodies(app);
  metrics.instrument(app);
  app.addHook('onError', async (_request, _reply, error) => {
    const { code } = toVigilError(error);
    if (code === 'VIGIL_STORE_UNAVAILABLE' || code === 'VIGIL_WRITE_OUTCOME_UNKNOWN')
      metrics.storeErrors.inc({ op: 'request' });
  });
  await setupOpenApi(app);
  await app.register(websocket, {
    options: { maxPayload: MAX_CLIENT_MESSAGE, handleProtocols: selectProtocol },
    errorHandler: streamErrorHandler(metrics, new LogBudget(REFUSED_FRAME_LOG_LINES, 60_000)),
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
  // Replicas given the same VIGIL_ADMIN_TOKEN (as in docker-compose.yml) share sessions without more
  // configuration; the key is derived from it one way, so a cookie never reveals it.
  const sessionSecret =
    config.sessionSecret ??
    (config.adminToken === undefined ? undefined : `admin-token:${config.adminToken}`);
  const sessions = new Sessions(tokens, {
    ...(sessionSecret === undefined ? {} : { secret: sessionSecret }),
    ttlMs: config.sessionTtlMs,
    cacheMs: config.tokenCacheMs,
  });
  if (!sessions.shared && config.store === 'redis') {
    app.log.warn(
      'neither VIGIL_SESSION_SECRET nor VIGIL_ADMIN_TOKEN is set: console sessions are accepted by this replica only, until it restarts',
    );
  }
  await app.register(cookie);
  const cookieAuth = async (request: FastifyRequest) =>
    (await sessionPrincipal(sessions, request))?.principal;
  // Before the access check, whose hook must run after the limiter's (guessing tokens is limited too).
  await setupRateLimits(app, config, tokens, cookieAuth);
  setupAuth(app, tokens, cookieAuth);

  const quiet = quietLevel(app.log.level);
  await app.register(opsRoutes, { store, metrics, quietLogLevel: quiet });
  await app.register(sdkRoutes, {
    store,
    envs,
    metrics,
    quietLogLevel: quiet,
    metricsRateLimitMax: config.metricsRateLimitMax,
  });
  await app.register(streamRoutes, { store, tokens, envs, hub, metrics });
  await app.register(
    async (api) => {
      await api.register(flagRoutes, { store, metrics });
      await api.register(scheduleRoutes, { store, metrics, now });
      await api.register(healthRoutes, { store, tokens });
      await api.register(incidentRoutes, { store, metrics, now });
      await api.register(segmentRoutes, { store, metrics });
      await api.register(evaluateRoutes, { envs });
      await api.register(auditRoutes, { store });
      await api.register(tokenRoutes, { tokens, store });
      await api.register(backupRoutes, { store });
    },
    { prefix: '/api/v1' },
  );
  await app.register(
    async (api) => {
      await api.register(sessionRoutes, { sessions, tokens, envs, store });
      await api.register(eventRoutes, {
        envs,
        tokens,
        sessions,
        store,
        pingMs: config.heartbeatMs,
        incidentPollMs: 500,
        maxBuffered: config.streamMaxBuffer,
      });
    },
    { prefix: '/api/v1' },
  );
  await app.register(consoleRoutes, { pages: consolePages, logLevel: quiet });

  app.addHook('onClose', async () => {
    hub.stop();
    sessions.close();
    envs.close();
  });

  await envs.start();
  hub.start();
  return app;
}
