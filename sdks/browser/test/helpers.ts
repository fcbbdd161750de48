import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CohortSummary, FlagInput, TokenScope } from '@vigil/proto';
import { bootstrapAdmin, buildServer, createLogger, EmbeddedStore, parseConfig } from '@vigil/server';
import { build } from 'tsup';

type FastifyInstance = Awaited<ReturnType<typeof buildServer>>;

/** Debian's Chromium (installed by `.ci/run`); the browser tests are skipped without it. */
export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

/**
 * A real flag server (`@vigil/server` on an embedded store in a temp directory) on 127.0.0.1. It can be
 * stopped and started again on the same port and data directory, as a restart would.
 */
export class TestServer {
  app: FastifyInstance | undefined;
  store: EmbeddedStore;
  admin = '';
  port = 0;

  private constructor(private readonly dataDir: string) {
    this.store = new EmbeddedStore({ dataDir });
  }

  static async start(): Promise<TestServer> {
    const server = new TestServer(await mkdtemp(join(tmpdir(), 'vigil-browser-sdk-')));
    await server.store.start();
    const boot = await bootstrapAdmin(server.store);
    if (!boot.created) throw new Error('expected a fresh store');
    server.admin = boot.secret;
    await server.listen(0);
    return server;
  }

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops the HTTP server; the store stays open. */
  async stop(): Promise<void> {
    const app = this.app;
    if (!app) return;
    // An upgrade arriving while the app closes is never answered (see sdks/node/test/helpers.ts).
    app.server.removeAllListeners('upgrade');
    app.server.on('upgrade', (_request: unknown, socket: { destroy(): void }) => socket.destroy());
    await app.close();
    this.app = undefined;
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    await this.listen(this.port);
  }

  async dispose(): Promise<void> {
    await this.stop();
    await this.store.close();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** Creates a token; returns its secret. */
  async token(scopes: TokenScope[], env?: string): Promise<string> {
    const { secret } = await this.app!.vigil.tokens.create(
      { name: scopes.join('+'), scopes, ...(env ? { env } : {}) },
      'test',
    );
    return secret;
  }

  /** Calls the admin REST API as the admin; throws unless 2xx. */
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

  async putFlag(env: string, flag: FlagInput): Promise<void> {
    await this.api('PUT', `/envs/${env}/flags/${flag.key}`, flag);
  }

  /** Every cohort summary published to the metrics bus so far, read as a guardian would. */
  async summaries(): Promise<CohortSummary[]> {
    const entries = await this.store.readMetrics(`test-${Math.random()}`, 'reader', {
      count: 10_000,
      blockMs: 0,
      claimIdleMs: 0,
    });
    return entries.map((e) => e.summary);
  }

  private async listen(port: number): Promise<void> {
    const config = parseConfig({ logLevel: 'silent', rateLimitMax: 0 });
    this.app = await buildServer({ config, store: this.store, logger: createLogger('silent') });
    await this.app.listen({ port, host: '127.0.0.1' });
    const address = this.app.server.address();
    if (typeof address !== 'object' || !address) throw new Error('not listening');
    this.port = address.port;
  }
}

/** A boolean flag, visible to browsers, on for everyone unless told otherwise. */
export function boolFlag(key: string, extra: Partial<FlagInput> = {}): FlagInput {
  return {
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    clientSide: true,
    fallthrough: { variant: 'on' },
    ...extra,
  };
}

/** Builds the IIFE bundle (as `pnpm build` does) into a temp directory; returns its text. */
export async function buildBundle(): Promise<string> {
  const outDir = await mkdtemp(join(tmpdir(), 'vigil-browser-bundle-'));
  try {
    const configs = (await import('../tsup.config.js')).default as unknown as Record<string, unknown>[];
    const iife = configs.find((c) => (c.format as string[]).includes('iife'))!;
    await build({ ...iife, outDir, sourcemap: false, silent: true, config: false });
    return await readFile(join(outDir, 'vigil.iife.js'), 'utf8');
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

/** Serves a blank page and the bundle on 127.0.0.1 (another origin than the flag server, as in production). */
export async function servePage(bundle: string): Promise<{ url: string; close(): Promise<void> }> {
  const page =
    '<!doctype html><html><head><meta charset="utf-8"><script src="/vigil.iife.js"></script></head><body></body></html>';
  const server: Server = createServer((request, response) => {
    if (request.url === '/vigil.iife.js') {
      response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(bundle);
    } else if (request.url === '/' || request.url?.startsWith('/?')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A proxy in front of the flag server that refuses every WebSocket upgrade (as a proxy without
 * WebSocket support does) and forwards plain HTTP, with CORS headers and all, so only polling works.
 */
export async function startNoWebSocketProxy(target: string): Promise<{
  url: string;
  upgradesRefused: () => number;
  close(): Promise<void>;
}> {
  let refused = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', async () => {
      try {
        const headers = new Headers();
        for (const [name, value] of Object.entries(request.headers))
          if (typeof value === 'string' && name !== 'host' && name !== 'connection') headers.set(name, value);
        const upstream = await fetch(`${target}${request.url}`, {
          method: request.method,
          headers,
          ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
        });
        const out: Record<string, string> = {};
        upstream.headers.forEach((value, name) => {
          if (name !== 'content-encoding' && name !== 'content-length' && name !== 'transfer-encoding')
            out[name] = value;
        });
        response.writeHead(upstream.status, out).end(Buffer.from(await upstream.arrayBuffer()));
      } catch {
        response.writeHead(502).end();
      }
    });
  });
  server.on('upgrade', (_request, socket) => {
    refused += 1;
    socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    upgradesRefused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
