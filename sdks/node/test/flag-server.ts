import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CohortSummary, FlagInput, TokenScope } from '@vigil/proto';
import { bootstrapAdmin, buildServer, createLogger, EmbeddedStore, parseConfig } from '@vigil/server';

// The flag-server harness of both SDKs' tests (the browser's import it from here). It imports nothing of
// the Node SDK, so the browser package type-checks it without the Node SDK's sources.

type FastifyInstance = Awaited<ReturnType<typeof buildServer>>;

/**
 * A real flag server (the `@vigil/server` app on an embedded store in a temp directory), listening on
 * 127.0.0.1. It can be stopped and started again on the same port and data directory, as a restart would.
 */
export class TestServer {
  app: FastifyInstance | undefined;
  store: EmbeddedStore;
  admin = '';
  port = 0;
  private readonly dataDir: string;
  private readonly config: Record<string, unknown>;

  private constructor(dataDir: string, config: Record<string, unknown>) {
    this.dataDir = dataDir;
    this.config = config;
    this.store = new EmbeddedStore({ dataDir });
  }

  /** Starts a server with a fresh store; `port` 0 picks a free one. */
  static async start(options: { port?: number; config?: Record<string, unknown> } = {}): Promise<TestServer> {
    const dataDir = await mkdtemp(join(tmpdir(), 'vigil-sdk-test-'));
    const server = new TestServer(dataDir, options.config ?? {});
    await server.store.start();
    const boot = await bootstrapAdmin(server.store);
    if (!boot.created) throw new Error('expected a fresh store');
    server.admin = boot.secret;
    await server.listen(options.port ?? 0);
    return server;
  }

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops the HTTP server (streams get 4503); the store stays open so tests can write while it is down. */
  async stop(): Promise<void> {
    const app = this.app;
    if (!app) return;
    await app.close();
    this.app = undefined;
  }

  /** Listens again on the same port, on the same (still open) store. */
  async resume(): Promise<void> {
    await this.listen(this.port);
  }

  /** Starts again on the same port, on a store reopened from the same data directory. */
  async restart(): Promise<void> {
    await this.stop();
    await this.store.close();
    this.store = new EmbeddedStore({ dataDir: this.dataDir });
    await this.store.start();
    await this.listen(this.port);
  }

  async dispose(): Promise<void> {
    await this.stop();
    await this.store.close();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /**
   * A second server on the same store, listening on a port of its own: another replica of this one, as
   * two flag-server processes on one Redis are (a write through either reaches streams on both).
   */
  async replica(): Promise<{ url: string; stop(): Promise<void> }> {
    const config = parseConfig({ logLevel: 'silent', rateLimitMax: 0, ...this.config });
    const app = await buildServer({ config, store: this.store, logger: createLogger('silent') });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (typeof address !== 'object' || !address) throw new Error('not listening');
    let stopped = false;
    return {
      url: `http://127.0.0.1:${address.port}`,
      async stop() {
        if (stopped) return;
        stopped = true;
        await app.close();
      },
    };
  }

  /** Creates a token through the token service; returns its secret. */
  async token(scopes: TokenScope[], env?: string): Promise<string> {
    const { secret } = await this.app!.vigil.tokens.create(
      { name: scopes.join('+'), scopes, ...(env ? { env } : {}) },
      'test',
    );
    return secret;
  }

  /** Calls the admin REST API with the admin token; throws unless the status is 2xx. */
  async api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.admin}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} → ${response.status}: ${text}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  /** Writes a flag (create or replace) in an environment. */
  async putFlag(env: string, flag: FlagInput): Promise<Record<string, unknown>> {
    return this.api('PUT', `/envs/${env}/flags/${flag.key}`, flag);
  }

  /** Every cohort summary published to the metrics bus so far (read as a guardian would). */
  async summaries(group = `test-${Math.random()}`): Promise<CohortSummary[]> {
    const entries = await this.store.readMetrics(group, 'reader', {
      count: 10_000,
      blockMs: 0,
      claimIdleMs: 0,
    });
    return entries.map((e) => e.summary);
  }

  private async listen(port: number): Promise<void> {
    const config = parseConfig({ logLevel: 'silent', rateLimitMax: 0, ...this.config });
    this.app = await buildServer({ config, store: this.store, logger: createLogger('silent') });
    await this.app.listen({ port, host: '127.0.0.1' });
    const address = this.app.server.address();
    if (typeof address !== 'object' || !address) throw new Error('not listening');
    this.port = address.port;
  }
}

/** A boolean flag on for everyone unless told otherwise. */
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

/** Headers not forwarded: hop-by-hop ones, and those `fetch` invalidates by decoding the body. */
const UNFORWARDED = new Set([
  'host',
  'connection',
  'content-encoding',
  'content-length',
  'transfer-encoding',
]);

/** The plain-HTTP half of a test proxy: forwards each request to `target()` (a base URL) and its answer back. */
export function forwardTo(
  target: () => string,
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', async () => {
      try {
        const headers = new Headers();
        for (const [name, value] of Object.entries(request.headers))
          if (typeof value === 'string' && !UNFORWARDED.has(name)) headers.set(name, value);
        const upstream = await fetch(`${target()}${request.url}`, {
          method: request.method,
          headers,
          ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
        });
        const out: Record<string, string> = {};
        upstream.headers.forEach((value, name) => {
          if (!UNFORWARDED.has(name)) out[name] = value;
        });
        response.writeHead(upstream.status, out).end(Buffer.from(await upstream.arrayBuffer()));
      } catch {
        response.writeHead(502).end();
      }
    });
  };
}
