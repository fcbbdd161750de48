#!/usr/bin/env node
import { resolve } from 'node:path';
import { buildServer } from './app.js';
import { bootstrapAdmin, hashSecret } from './auth.js';
import { type Config, loadConfig } from './config.js';
import { isVigilError } from './errors.js';
import { createLogger } from './logger.js';
import { EmbeddedStore } from './store/embedded.js';
import { RedisStore } from './store/redis.js';
import type { Store } from './store/store.js';

/** The store the configuration names. */
function createStore(config: Config, onListenerError: (error: unknown) => void): Store {
  if (config.store === 'redis') return new RedisStore({ url: config.redisUrl!, onListenerError });
  return new EmbeddedStore({ dataDir: resolve(config.dataDir), onListenerError });
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!isVigilError(error, 'VIGIL_SERVER_CONFIG')) throw error;
    process.stderr.write(`vigil-server: ${error.message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const store = createStore(config, (error) => logger.error({ err: error }, 'store listener failed'));
  await store.start();
  const boot = await bootstrapAdmin(store, config.adminToken);
  const app = await buildServer({ config, store, logger, processMetrics: true });
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  // Printed, not logged: the one place a secret is shown, once, to whoever started the server.
  process.stdout.write(`\nVigil flag server listening on ${url} (store: ${store.kind})\n`);
  if (boot.created && !boot.fromEnv) {
    process.stdout.write(`Bootstrap admin token (shown once, store it now):\n\n    ${boot.secret}\n\n`);
  } else if (boot.created) {
    process.stdout.write('Bootstrap admin token created from VIGIL_ADMIN_TOKEN.\n\n');
  } else if (boot.adminTokenUnknown) {
    logger.warn(
      { adminTokenHash: hashSecret(config.adminToken!).slice(0, 12) },
      'VIGIL_ADMIN_TOKEN is set but no such token exists; it is only used on first start',
    );
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => process.exit(1), 10_000).unref();
    try {
      await app.close();
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
    `vigil-server: failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
