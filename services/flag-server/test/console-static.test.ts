import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../src/routes/console.js';
import { startServer, type TestServer } from './helpers/server.js';

const INDEX =
  '<!doctype html><html><head><script type="module" src="/assets/index-AbC123.js"></script></head><body><div id="root"></div></body></html>';
const SCRIPT = 'console.log("vigil console");';
const SECRET = 'not-for-the-browser';

let server: TestServer;
let base: string;
let dir: string;
let root: string;

beforeAll(async () => {
  // A console build as `vite build` lays it out.
  root = await mkdtemp(join(tmpdir(), 'vigil-console-'));
  await writeFile(join(root, 'secret.txt'), SECRET);
  await writeFile(join(root, 'secret.js'), SECRET);
  dir = join(root, 'dist');
  await mkdir(dir);
  await mkdir(join(dir, 'assets'));
  await writeFile(join(dir, 'index.html'), INDEX);
  await writeFile(join(dir, 'assets', 'index-AbC123.js'), SCRIPT);
  await writeFile(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  server = await startServer({ config: { consoleDir: dir } });
  base = (await server.listen()).replace(/^ws:/, 'http:');
});

afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

const page = (path: string) => fetch(`${base}${path}`, { headers: { accept: 'text/html,*/*;q=0.8' } });

describe('the console at /', () => {
  it('serves index.html at / with a strict CSP, nosniff, no referrer, and no caching', async () => {
    const response = await page('/');
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(INDEX);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(response.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).not.toContain('unsafe-inline');
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('cache-control')).toBe('no-cache');
  });

  it('serves hashed assets cached for a year, immutable', async () => {
    const response = await fetch(`${base}/assets/index-AbC123.js`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(SCRIPT);
    expect(response.headers.get('content-type')).toMatch(/javascript/);
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(response.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    // fetch asks for gzip and decodes it.
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(response.headers.get('vary')).toMatch(/accept-encoding/i);
    const plain = await fetch(`${base}/assets/index-AbC123.js`, {
      headers: { 'accept-encoding': 'identity' },
    });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(await plain.text()).toBe(SCRIPT);
    expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('a missing asset is a 404 that is not cached for ever', async () => {
    const response = await page('/assets/index-gone.js');
    expect(response.status).toBe(404);
    expect(response.headers.get('cache-control') ?? '').not.toContain('immutable');
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('VIGIL_NOT_FOUND');
  });

  it('serves nothing from outside the build', async () => {
    for (const path of [
      '/assets/..%2f..%2fsecret.txt',
      '/assets/..%2f..%2fsecret.js',
      '/assets/..%2f%2e%2e%2fsecret.js',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/assets/..%5c..%5csecret.txt',
      '/%2e%2e/secret.txt',
    ]) {
      const response = await page(path);
      expect(await response.text(), path).not.toContain(SECRET);
    }
  });

  it('answers index.html for page paths a browser reloads (SPA fallback), keys with dots included', async () => {
    for (const path of ['/flags/checkout-v2', '/flags/web.checkout.v2', '/incidents/inc_1/postmortem']) {
      const response = await page(path);
      expect(response.status, path).toBe(200);
      expect(await response.text()).toBe(INDEX);
      expect(response.headers.get('cache-control')).toBe('no-cache');
    }
    const favicon = await page('/favicon.svg');
    expect(favicon.status).toBe(200);
    expect(await favicon.text()).toContain('<svg');
  });

  it('unknown API paths, and non-HTML requests, stay JSON 404s', async () => {
    for (const path of ['/api/v1/nope', '/api/v1/envs/production/nope', '/v1/nope', '/ofrep/v1/nope']) {
      const response = await page(path);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type'), path).toMatch(/^application\/json/);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('VIGIL_NOT_FOUND');
    }
    const json = await fetch(`${base}/flags/checkout-v2`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(404);
    const post = await fetch(`${base}/flags/checkout-v2`, {
      method: 'POST',
      headers: { accept: 'text/html' },
    });
    expect(post.status).toBe(404);
    expect(post.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it('leaves the API and probes as they were', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/api/v1/envs/production/flags`)).status).toBe(401);
    const openapi = await fetch(`${base}/openapi.json`);
    expect(openapi.status).toBe(200);
  });
});

describe('the console before it is built', () => {
  it('answers a page, without script, saying how to build it', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'vigil-console-empty-'));
    const bare = await startServer({ config: { consoleDir: empty } });
    try {
      const url = (await bare.listen()).replace(/^ws:/, 'http:');
      const response = await fetch(`${url}/`, { headers: { accept: 'text/html' } });
      expect(response.status).toBe(404);
      const text = await response.text();
      expect(text).toContain('pnpm --filter @vigil/console build');
      expect(text).not.toContain('<script');
      expect(response.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    } finally {
      await bare.close();
      await rm(empty, { recursive: true, force: true });
    }
  });
});
