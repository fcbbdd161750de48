import type { Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vigilExpress } from '../src/express.js';
import { vigilFastify } from '../src/fastify.js';
import { createClient, type VigilClient } from '../src/index.js';
import { boolFlag, memoryLogger, TestServer, until } from './helpers.js';

const ENV = 'production';

let server: TestServer;
let client: VigilClient;

beforeEach(async () => {
  server = await TestServer.start();
  const key = await server.token(['sdk-server'], ENV);
  // On for users in the beta list, off for everyone else: two cohorts.
  await server.putFlag(
    ENV,
    boolFlag('new-checkout', {
      rules: [
        {
          id: 'beta',
          clauses: [{ attribute: 'key', op: 'in', values: ['beta-user'] }],
          serve: { variant: 'on' },
        },
      ],
      fallthrough: { variant: 'off' },
    }),
  );
  client = createClient({
    url: server.url,
    sdkKey: key,
    env: ENV,
    logger: memoryLogger(),
    metrics: { flushIntervalMs: 3_600_000 },
  });
  await client.waitForReady(5000);
});

afterEach(async () => {
  await client.close();
  await server.dispose();
});

/** The summaries the server received, as `variant → [requests, errors]` for `new-checkout`. */
async function cohorts(): Promise<Record<string, [number, number]>> {
  await client.flush();
  const out: Record<string, [number, number]> = {};
  for (const s of await server.summaries()) {
    if (s.flag !== 'new-checkout') continue;
    const [requests, errors] = out[s.variant] ?? [0, 0];
    out[s.variant] = [requests + s.requests, errors + s.errors];
  }
  return out;
}

describe('Fastify plugin', () => {
  async function app() {
    const app = Fastify();
    await app.register(
      vigilFastify(client, { context: (request) => ({ key: String(request.headers['x-user']) }) }),
    );
    app.get('/checkout', async (request, reply) => {
      const on = request.flags.isEnabled('new-checkout');
      // The new checkout is broken: 5xx for its cohort.
      if (on) return reply.code(503).send({ error: 'down' });
      return { checkout: 'old' };
    });
    app.get('/throws', async (request) => {
      request.flags.isEnabled('new-checkout');
      throw new Error('bug');
    });
    app.get('/not-found', async (request, reply) => {
      request.flags.isEnabled('new-checkout');
      return reply.code(404).send({ error: 'no such thing' });
    });
    app.get('/client-error', async (request) => {
      request.flags.isEnabled('new-checkout');
      throw Object.assign(new Error('bad input'), { statusCode: 400 });
    });
    app.get('/no-flags', async () => ({ ok: true }));
    return app;
  }

  it('gives each request request.flags and records 5xx responses as errors of the cohort served', async () => {
    const a = await app();
    for (let i = 0; i < 3; i++) {
      expect((await a.inject({ url: '/checkout', headers: { 'x-user': 'beta-user' } })).statusCode).toBe(503);
      expect((await a.inject({ url: '/checkout', headers: { 'x-user': `user-${i}` } })).statusCode).toBe(200);
    }
    expect(await cohorts()).toEqual({ on: [3, 3], off: [3, 0] });
    await a.close();
  });

  it('counts a thrown error as an error, a 4xx (answered or thrown) not, and a request without flags nowhere', async () => {
    const a = await app();
    expect((await a.inject({ url: '/throws', headers: { 'x-user': 'u1' } })).statusCode).toBe(500);
    expect((await a.inject({ url: '/not-found', headers: { 'x-user': 'u1' } })).statusCode).toBe(404);
    expect((await a.inject({ url: '/client-error', headers: { 'x-user': 'u1' } })).statusCode).toBe(400);
    expect((await a.inject({ url: '/no-flags' })).statusCode).toBe(200);
    expect(await cohorts()).toEqual({ off: [3, 1] });
    await a.close();
  });

  it('measures latency from the start of the request', async () => {
    const a = Fastify();
    await a.register(vigilFastify(client));
    a.get('/slow', async (request) => {
      request.flags.variant('new-checkout');
      await new Promise((resolve) => setTimeout(resolve, 40));
      return 'done';
    });
    await a.inject({ url: '/slow' });
    await client.flush();
    const [summary] = await server.summaries();
    expect(summary!.latency.min).toBeGreaterThanOrEqual(35);
    await a.close();
  });

  it('works in an encapsulated context too (the plugin is not encapsulated)', async () => {
    const a = Fastify();
    await a.register(vigilFastify(client));
    await a.register(
      async (child) => {
        child.get('/inner', async (request) => ({ on: request.flags.isEnabled('new-checkout') }));
      },
      { prefix: '/api' },
    );
    expect((await a.inject({ url: '/api/inner' })).json()).toEqual({ on: false });
    await a.close();
  });
});

describe('Express middleware', () => {
  async function listen(): Promise<{ url: string; close(): Promise<void> }> {
    const app = express();
    app.set('env', 'test'); // Express's default error handler stays quiet
    app.use(vigilExpress(client, { context: (req) => ({ key: req.get('x-user') ?? 'anonymous' }) }));
    app.get('/checkout', (req, res) => {
      if (req.flags.isEnabled('new-checkout')) res.status(500).json({ error: 'down' });
      else res.json({ checkout: 'old' });
    });
    app.get('/throws', (req) => {
      req.flags.isEnabled('new-checkout');
      throw new Error('bug');
    });
    app.get('/hangs', (req, res) => {
      req.flags.isEnabled('new-checkout');
      // Never answers: the client gives up and closes the connection.
      void res;
    });
    const httpServer: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const address = httpServer.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    return {
      url: `http://127.0.0.1:${port}`,
      close: () =>
        new Promise<void>((resolve) => {
          httpServer.closeAllConnections();
          httpServer.close(() => resolve());
        }),
    };
  }

  it('gives each request req.flags and records 5xx responses as errors of the cohort served', async () => {
    const http = await listen();
    for (let i = 0; i < 2; i++) {
      expect((await fetch(`${http.url}/checkout`, { headers: { 'x-user': 'beta-user' } })).status).toBe(500);
      expect((await fetch(`${http.url}/checkout`, { headers: { 'x-user': `user-${i}` } })).status).toBe(200);
    }
    expect(await cohorts()).toEqual({ on: [2, 2], off: [2, 0] });
    await http.close();
  });

  it('a thrown error (answered 500 by Express) and a response never completed both count as errors', async () => {
    const http = await listen();
    expect((await fetch(`${http.url}/throws`, { headers: { 'x-user': 'u1' } })).status).toBe(500);
    await fetch(`${http.url}/hangs`, { signal: AbortSignal.timeout(100) }).catch(() => undefined);
    // The server sees the connection close, and the middleware records then.
    await until(() => client.stats().metrics?.outcomes === 2, 'the aborted request recorded');
    expect(await cohorts()).toEqual({ off: [2, 2] });
    await http.close();
  });
});
