import { readFile } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest, LogLevel } from 'fastify';

/** No inline script or style, nothing from elsewhere, never framed. */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Paths of the APIs (and the build's assets): an unknown one is a JSON 404, never the console's page. */
const API_PREFIXES = ['api/', 'v1/', 'ofrep/', 'assets/'];

export interface ConsoleRouteOptions {
  /** The page, and where the build is (`vite build`'s output: index.html and assets/). */
  pages: ConsolePages;
  logLevel: LogLevel;
}

/**
 * Shown at `/` when the console has not been built; like the console, it runs no script (and names
 * no path on the server: anyone may read it).
 */
const NOT_BUILT = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Vigil console not built</title></head>
<body>
<h1>The Vigil console is not built</h1>
<p>The flag server serves the console's build (<code>console/dist</code>, or the directory
<code>VIGIL_CONSOLE_DIR</code> names), which holds no <code>index.html</code>. Build it from the
repository's root, then reload this page:</p>
<pre>pnpm --filter @vigil/console build</pre>
<p>(<code>pnpm start</code> and <code>pnpm build</code> build it too.) The REST API under
<code>/api/v1</code> works meanwhile.</p>
</body>
</html>
`;

const gzip = promisify(gzipCallback);

/** Assets sent gzipped (text); others (images, fonts already compressed) go as they are. */
const COMPRESSIBLE: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** Most gzipped assets kept in memory (a build has a handful; this bounds junk names that exist). */
const MAX_GZIPPED = 256;

/**
 * Assets gzipped once, on first request, and kept: hashed names never change content, and a console
 * build is a few hundred KB, so compressing per request would only burn CPU.
 */
class GzipCache {
  private readonly entries = new Map<string, Promise<Buffer | undefined>>();

  constructor(private readonly root: string) {}

  /** The gzipped bytes of `assets/<path>`, or undefined when there is no such file inside the build. */
  get(path: string): Promise<Buffer | undefined> {
    let entry = this.entries.get(path);
    if (!entry) {
      const file = resolve(this.root, path);
      if (!file.startsWith(this.root + sep)) return Promise.resolve(undefined);
      entry = readFile(file).then(
        (bytes) => gzip(bytes, { level: 9 }),
        () => undefined,
      );
      // Misses are not kept: a build may add the file later.
      void entry.then((gz) => {
        if (gz === undefined) this.entries.delete(path);
      });
      if (this.entries.size >= MAX_GZIPPED) this.entries.clear();
      this.entries.set(path, entry);
    }
    return entry;
  }
}

const acceptsGzip = (request: FastifyRequest) =>
  /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));

const acceptsHtml = (request: FastifyRequest) => (request.headers.accept ?? '').includes('text/html');

/** Files at the build's root a browser asks for by name (favicon, robots.txt), and their types. */
const ROOT_FILE_TYPES: Record<string, string> = {
  '.ico': 'image/x-icon',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** Headers on everything the console serves. */
function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

/**
 * The console's page, `index.html`, never cached: at `/`, and for every other page path a browser
 * asks for (the app routes itself, so a reload of `/flags/production/checkout-v2` works). It answers
 * through the server's not-found handler, not a catch-all route, so the router's own refusals (an
 * overlong path parameter) stay what they were; unknown API paths and requests that do not accept
 * HTML keep getting the JSON 404.
 */
export class ConsolePages {
  private readonly index: string;

  constructor(readonly dir: string) {
    this.index = join(dir, 'index.html');
  }

  /** Sends the page, or the page saying how to build the console when there is no build. */
  async page(reply: FastifyReply): Promise<FastifyReply> {
    secure(reply).header('cache-control', 'no-cache');
    let html: Buffer;
    try {
      html = await readFile(this.index);
    } catch {
      // 404, not 5xx: the server itself is healthy; only the page is missing (the body says how to build it).
      return reply.code(404).type('text/html; charset=utf-8').send(NOT_BUILT);
    }
    return reply.type('text/html; charset=utf-8').send(html);
  }

  /** For the not-found handler: the page for a browser's GET of a path outside the APIs. */
  readonly fallback = async (
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
    const path = request.url.split('?')[0]!.slice(1);
    if (API_PREFIXES.some((prefix) => path.startsWith(prefix))) return undefined;
    const rootType = /^[\w-][\w.-]*$/.test(path) ? ROOT_FILE_TYPES[extname(path)] : undefined;
    if (rootType !== undefined) {
      const bytes = await readFile(join(this.dir, path)).catch(() => undefined);
      if (bytes) return secure(reply).header('cache-control', 'no-cache').type(rootType).send(bytes);
    }
    return acceptsHtml(request) ? this.page(reply) : undefined;
  };
}

/**
 * The ops console's files: `/` (see {@link ConsolePages}) and hashed assets under `/assets/`, cached
 * for a year, with a strict Content-Security-Policy.
 */
export async function consoleRoutes(app: FastifyInstance, options: ConsoleRouteOptions): Promise<void> {
  const { pages, logLevel } = options;
  const { dir } = pages;
  const gzipped = new GzipCache(resolve(dir, 'assets'));
  await app.register(fastifyStatic, { root: dir, serve: false, index: false, dotfiles: 'deny' });
  app.addHook('onSend', async (_request, reply) => {
    secure(reply);
  });
  const schema = { hide: true };

  app.get('/', { logLevel, schema }, async (_request, reply) => pages.page(reply));

  // Vite writes its output flat into assets/.
  app.get('/assets/:file', { logLevel, schema }, async (request, reply) => {
    const path = (request.params as { file: string }).file;
    const type = COMPRESSIBLE[extname(path)];
    const gz = type !== undefined && acceptsGzip(request) ? await gzipped.get(path) : undefined;
    // Hashed names change with their content, so they may be cached for ever.
    if (gz) {
      return reply
        .header('cache-control', 'public, max-age=31536000, immutable')
        .header('content-encoding', 'gzip')
        .header('vary', 'accept-encoding')
        .type(type!)
        .send(gz);
    }
    if (type !== undefined) reply.header('vary', 'accept-encoding');
    return reply.sendFile(`assets/${path}`, { cacheControl: true, maxAge: '365d', immutable: true });
  });
}
