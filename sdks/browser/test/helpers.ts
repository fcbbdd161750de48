import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlagInput } from '@vigil/proto';
import { build } from 'tsup';
// One flag-server harness for both SDKs' tests; it lives with the Node SDK's tests, where `@vigil/server`
// (a dev dependency of both) resolves as well.
import { forwardTo, boolFlag as nodeBoolFlag } from '../../node/test/flag-server.js';

export { TestServer } from '../../node/test/flag-server.js';

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

/** A boolean flag, visible to browsers, on for everyone unless told otherwise. */
export function boolFlag(key: string, extra: Partial<FlagInput> = {}): FlagInput {
  return nodeBoolFlag(key, { clientSide: true, ...extra });
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
  const server = createServer(forwardTo(() => target));
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
