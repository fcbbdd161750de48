import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildServer } from './app.js';
import { bootstrapAdmin, hashSecret } from './auth.js';
import { type Config, loadConfig } from './config.js';
import { isVigilError, type VigilError } from './errors.js';
import { createLogger } from './logger.js';
import { EmbeddedStore } from './store/embedded.js';
import { RedisStore } from './store/redis.js';
import type { Store } from './store/store.js';

/** A flag server started by {@link startServer}. */
export interface RunningServer {
  config: Config;
  logger: Logger;
  store: Store;
  app: FastifyInstance;
  url: string;
  /** Closes the server, then anything registered with `onStop`, then the store. */
  stop(): Promise<void>;
  /** Runs `fn` when stopping, before the store closes (e.g. a guardian sharing the store). */
  onStop(fn: () => Promise<void>): void;
}

/** The store the configuration names. */
function createStore(config: Config, logger: Logger): Store {
  const onListenerError = (error: unknown) => logger.error({ err: error }, 'store listener failed');
  if (config.store === 'redis') return new RedisStore({ url: config.redisUrl!, onListenerError });
  return new EmbeddedStore({
    dataDir: resolve(config.dataDir),
    onListenerError,
    onNotice: (message, details) => logger.warn(details, message),
  });
}

/** Stops start-up with the error's code and message (exit 2: starting again cannot help until it is fixed). */
function refuseToStart(name: string, error: VigilError): never {
  process.stderr.write(`${name}: ${error.code}: ${error.message}\n`);
  process.exit(2);
}

/**
 * Starts the flag server from the environment's configuration, prints where it listens and (on first
 * start) the bootstrap admin token, and stops it cleanly on SIGINT/SIGTERM. A bad configuration exits
 * with code 2 and a message naming the field. `name` prefixes those messages.
 */
export async function startServer(name = 'vigil-server'): Promise<RunningServer> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!isVigilError(error, 'VIGIL_SERVER_CONFIG')) throw error;
    refuseToStart(name, error);
  }
  const logger = createLogger(config.logLevel) as Logger;
  const store = createStore(config, logger);
  try {
    await store.start();
  } catch (error) {
    if (!isVigilError(error, 'VIGIL_DATA_DIR_LOCKED') && !isVigilError(error, 'VIGIL_DATA_DIR_DAMAGED'))
      throw error;
    refuseToStart(name, error);
  }
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

  const stoppers: (() => Promise<void>)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const timer = setTimeout(() => process.exit(1), 10_000).unref();
      try {
        await app.close();
        for (const fn of stoppers) await fn();
        await store.close();
      } catch (error) {
        logger.error({ err: error }, 'unclean shutdown');
        process.exitCode = 1;
      }
      clearTimeout(timer);
    })();
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down');
      void stop();
    });
  }
  return { config, logger, store, app, url, stop, onStop: (fn) => stoppers.push(fn) };
}
