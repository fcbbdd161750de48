#!/usr/bin/env node
import { createServer, type Server } from 'node:http';
import { RedisStore } from '@vigil/server';
import { pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createGuardian } from './guardian.js';
import { NotifyConfigError } from './notify/config.js';
import { type GuardianSettings, GuardianSettingsError, loadGuardianSettings } from './settings.js';

/** Serves `GET /metrics` (Prometheus) and `GET /healthz` for the guardian process. */
function metricsServer(registry: Registry, settings: GuardianSettings): Promise<Server | undefined> {
  if (settings.metricsPort === 0) return Promise.resolve(undefined);
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    } else if (request.method === 'GET' && request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.metricsPort, settings.metricsHost, () => resolve(server));
  });
}

async function main(): Promise<void> {
  let settings: GuardianSettings;
  try {
    settings = loadGuardianSettings();
  } catch (error) {
    if (!(error instanceof GuardianSettingsError)) throw error;
    process.stderr.write(`vigil-guardian: ${error.message}\n`);
    process.exit(2);
  }
  const logger = pino({
    level: settings.logLevel,
    redact: {
      paths: ['redisUrl', '*.apiKey', '*.routingKey', '*.secret', '*.webhookUrl'],
      censor: '[REDACTED]',
    },
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'vigil_guardian_' });
  const store = new RedisStore({
    url: settings.redisUrl,
    prefix: settings.redisPrefix,
    onListenerError: (error) => logger.error({ err: error }, 'store listener failed'),
  });
  let guardian: ReturnType<typeof createGuardian>;
  try {
    guardian = createGuardian({ store, config: settings.config, logger, registry });
  } catch (error) {
    if (!(error instanceof NotifyConfigError)) throw error;
    process.stderr.write(`vigil-guardian: ${error.message}\n`);
    process.exit(2);
  }
  await store.start();
  await guardian.start();
  const server = await metricsServer(registry, settings);
  logger.info(
    { guardian: guardian.id, metrics: server ? `${settings.metricsHost}:${settings.metricsPort}` : 'off' },
    'vigil guardian running',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => process.exit(1), 10_000).unref();
    try {
      await guardian.stop();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await store.close();
    } catch (error) {
      logger.error({ err: error }, 'unclean shutdown');
      process.exitCode = 1;
    }
    clearTimeout(timer);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `vigil-guardian: failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
