import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CohortSummary, FlagInput, TokenScope } from '@vigil/proto';
import { bootstrapAdmin, buildServer, createLogger, EmbeddedStore, parseConfig } from '@vigil/server';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../src/index.js';

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
    const dataDir = await mkdtemp(join(tmpdir(), 'vigil-node-sdk-'));
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
    // Works around a flag-server bug: its own preClose replaces @fastify/websocket's, which stopped
    // routing upgrades, so an upgrade arriving while the app closes is never answered and the half-open
    // socket keeps `app.close()` from resolving. SDKs reconnect at once after 4503, so restarts hit it.
    app.server.removeAllListeners('upgrade');
    app.server.on('upgrade', (_request, socket) => socket.destroy());
    await app.close();
    this.app = undefined;
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

/** A logger that keeps what it is told, for assertions, and prints nothing. */
export function memoryLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (_obj: object, msg?: string) => {
    lines.push({ level, msg: msg ?? '' });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Waits until `predicate` holds, polling every 10 ms; fails with `what` after `timeoutMs`. */
export async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves with the arguments of the next emission of a client event. */
export function next<A extends unknown[]>(on: (listener: (...args: A) => void) => () => void): Promise<A> {
  return new Promise((resolve) => {
    const off = on((...args) => {
      off();
      resolve(args);
    });
  });
}

/** A free TCP port on 127.0.0.1 (nothing listens on it when this resolves). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * An HTTP proxy in front of a flag server that answers WebSocket upgrades with an HTTP status (as a
 * proxy without WebSocket support does) until `allowUpgrades` is set, and forwards everything else.
 */
export class UpgradeBlockingProxy {
  allowUpgrades = false;
  upgradeStatus = 502;
  upgradesRefused = 0;
  flagRequests = 0;
  private readonly spliced = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    private readonly target: { port: number },
  ) {}

  static async start(target: { port: number }): Promise<UpgradeBlockingProxy> {
    const server = createServer();
    const proxy = new UpgradeBlockingProxy(server, target);
    server.on('request', (req, res) => {
      if (req.url?.startsWith('/v1/flags')) proxy.flagRequests += 1;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(req.headers)) {
          if (typeof value === 'string' && name !== 'host' && name !== 'connection') headers.set(name, value);
        }
        fetch(`http://127.0.0.1:${proxy.target.port}${req.url}`, {
          method: req.method,
          headers,
          ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
        })
          .then(async (upstream) => {
            const body = Buffer.from(await upstream.arrayBuffer());
            const out: Record<string, string> = {};
            upstream.headers.forEach((value, name) => {
              if (name !== 'content-encoding' && name !== 'transfer-encoding' && name !== 'connection')
                out[name] = value;
            });
            res.writeHead(upstream.status, out).end(body);
          })
          .catch(() => res.writeHead(502).end());
      });
    });
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      if (!proxy.allowUpgrades) {
        proxy.upgradesRefused += 1;
        socket.end(
          `HTTP/1.1 ${proxy.upgradeStatus} Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
        );
        return;
      }
      // Replay the upgrade request to the server and splice the two sockets together.
      const upstream = connect(proxy.target.port, '127.0.0.1', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length > 0) upstream.write(head);
        socket.pipe(upstream).pipe(socket);
      });
      const client = socket as Socket;
      proxy.spliced.add(upstream).add(client);
      upstream.on('close', () => {
        proxy.spliced.delete(upstream);
        client.destroy();
      });
      client.on('close', () => {
        proxy.spliced.delete(client);
        upstream.destroy();
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  /** Cuts every spliced WebSocket connection (as a proxy restart would). */
  cutStreams(): void {
    for (const socket of this.spliced) socket.destroy();
  }

  async close(): Promise<void> {
    this.cutStreams();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
