import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlagInput, SegmentInput, TokenScope } from '@vigil/proto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { DestinationStream } from 'pino';
import { afterAll } from 'vitest';
import { WebSocket } from 'ws';
import { buildServer } from '../../src/app.js';
import { bootstrapAdmin } from '../../src/auth.js';
import { type ConfigInput, parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { EmbeddedStore } from '../../src/store/embedded.js';
import type { Store } from '../../src/store/store.js';
import { OpenApiConformance, type Violation } from './openapi-conformance.js';

/** A flag server on a real embedded store in a temp directory, with a bootstrap admin token. */
export interface TestServer {
  app: FastifyInstance;
  store: Store;
  dataDir: string;
  /** The bootstrap admin token's secret. */
  admin: string;
  /** Creates a token through the token service; returns its secret. */
  token(scopes: TokenScope[], env?: string, name?: string): Promise<string>;
  /** Starts listening on a free port; returns `ws://127.0.0.1:<port>`. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  config?: Partial<ConfigInput>;
  /** Where logs go (silent when absent). */
  logTo?: DestinationStream;
  /** Use this store (already started) instead of a fresh embedded one. */
  store?: Store;
}

/** Every response of every test server is checked against `/openapi.json`; what contradicts it lands here. */
export const openApiConformance = new OpenApiConformance();

// A test file whose servers answered anything the document does not allow fails, naming each response.
afterAll(() => {
  const found = openApiConformance.take();
  if (found.length === 0) return;
  // One line per operation, status and problem, with an example URL and how often it happened.
  const grouped = new Map<string, { first: Violation; count: number }>();
  for (const v of found) {
    const key = `${v.operation} ${v.status} ${v.problem.replace(/ — body .*/s, '')}`;
    const seen = grouped.get(key);
    if (seen) seen.count++;
    else grouped.set(key, { first: v, count: 1 });
  }
  const lines = [...grouped.values()]
    .slice(0, 30)
    .map(
      ({ first: v, count }) =>
        `${v.operation} (${v.url}${count > 1 ? `, ×${count}` : ''}) → ${v.status}: ${v.problem}`,
    );
  throw new Error(`${found.length} response(s) contradict /openapi.json:\n${lines.join('\n')}`);
});

/** A two-file stand-in for the console's build (the console's own tests serve the real one). */
const CONSOLE_FIXTURE = fileURLToPath(new URL('../fixtures/console', import.meta.url));

export async function startServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-server-'));
  const store = options.store ?? new EmbeddedStore({ dataDir, onListenerError: () => {} });
  if (!options.store) await store.start();
  const boot = await bootstrapAdmin(store);
  if (!boot.created) throw new Error('expected a fresh store');
  const config = parseConfig({
    logLevel: options.logTo ? 'debug' : 'silent',
    rateLimitMax: 0,
    // A fixed console build, so what `/` answers never depends on whether console/dist was built yet.
    consoleDir: CONSOLE_FIXTURE,
    ...options.config,
  });
  const logger = options.logTo ? createLogger('debug', options.logTo) : createLogger('silent');
  const app = await buildServer({ config, store, logger });
  openApiConformance.watch(app);
  let closed = false;
  return {
    app,
    store,
    dataDir,
    admin: boot.secret,
    async token(scopes, env, name = scopes.join('+')) {
      const { secret } = await app.vigil.tokens.create({ name, scopes, ...(env ? { env } : {}) }, 'test');
      return secret;
    },
    async listen() {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      if (typeof address !== 'object' || !address) throw new Error('not listening');
      return `ws://127.0.0.1:${address.port}`;
    },
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      if (!options.store) await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A boolean flag: on for everyone unless told otherwise. */
export function boolFlag(key: string, extra: Partial<FlagInput> = {}): FlagInput {
  return {
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'on' },
    ...extra,
  };
}

/** A boolean flag serving `on` to `percent`% of contexts and `off` (the control) to the rest. */
export function rolloutFlag(key: string, percent: number, extra: Partial<FlagInput> = {}): FlagInput {
  return boolFlag(key, {
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', weight: percent * 1000 },
          { variant: 'off', weight: 100_000 - percent * 1000 },
        ],
      },
    },
    ...extra,
  });
}

export function segment(key: string, extra: Partial<SegmentInput> = {}): SegmentInput {
  return { key, included: ['user-1'], ...extra };
}

export const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

/** The parsed JSON body of an injected response. */
export function json<T = Record<string, unknown>>(response: LightMyRequestResponse): T {
  return response.json() as T;
}

/** A `ws` client that records every message it gets, parsed, and how it closed. */
export class TestClient {
  readonly messages: Record<string, unknown>[] = [];
  closed?: { code: number; reason: string };
  private waiters: (() => void)[] = [];

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
      this.notify();
    });
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
    socket.on('error', () => {});
  }

  static async connect(
    url: string,
    options: { headers?: Record<string, string>; protocols?: string[]; autoPong?: boolean } = {},
  ): Promise<TestClient> {
    const socket = new WebSocket(url, options.protocols ?? [], {
      headers: options.headers ?? {},
      autoPong: options.autoPong ?? true,
    });
    const client = new TestClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return client;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Messages of one type, in arrival order. */
  ofType(type: string): Record<string, unknown>[] {
    return this.messages.filter((m) => m.type === type);
  }

  /** Waits until `predicate` holds (checked on every message and on close). */
  async until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out; messages so far: ${JSON.stringify(this.messages).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the n-th (1-based) message of a type and returns it. */
  async nth(type: string, n: number, timeoutMs?: number): Promise<Record<string, unknown>> {
    await this.until(() => this.ofType(type).length >= n, timeoutMs);
    return this.ofType(type)[n - 1]!;
  }

  async waitClosed(timeoutMs?: number): Promise<{ code: number; reason: string }> {
    await this.until(() => this.closed !== undefined, timeoutMs);
    return this.closed!;
  }

  close(): void {
    this.socket.terminate();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
