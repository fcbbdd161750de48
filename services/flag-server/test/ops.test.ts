import { Writable } from 'node:stream';
import { errorBodySchema } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { redactUrl } from '../src/logger.js';
import { bearer, boolFlag, startServer, TestClient, type TestServer } from './helpers/server.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('operations endpoints', () => {
  it('/healthz answers 200; /readyz follows the store', async () => {
    server = await startServer();
    expect((await server.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await server.app.inject({ url: '/readyz' })).json()).toEqual({
      status: 'ready',
      store: 'embedded',
    });
    await server.store.close();
    const down = await server.app.inject({ url: '/readyz' });
    expect(down.statusCode).toBe(503);
    expect(down.json().error.code).toBe('VIGIL_STORE_UNAVAILABLE');
    expect((await server.app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });

  it('/metrics exposes request, write, SDK, broadcast and store-error metrics', async () => {
    server = await startServer();
    const key = await server.token(['sdk-server'], 'production');
    // Changes are applied (and broadcast) for environments held in memory: polling loads one.
    await server.app.inject({ url: '/v1/flags', headers: bearer(key) });
    await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: bearer(server.admin),
      payload: boolFlag('a'),
    });
    await server.store.close();
    await server.app.inject({ url: '/readyz' });
    const response = await server.app.inject({ url: '/metrics' });
    expect(response.headers['content-type']).toContain('text/plain');
    const text = response.body;
    expect(text).toContain(
      'vigil_http_requests_total{method="POST",route="/api/v1/envs/:env/flags",status="201"} 1',
    );
    expect(text).toContain('vigil_http_request_duration_seconds_bucket');
    expect(text).toContain('vigil_writes_total{action="flag.create"} 1');
    expect(text).toContain('vigil_broadcast_duration_seconds_count 1');
    expect(text).toContain('vigil_store_errors_total{op="ping"} 1');
    expect(text).toContain('# TYPE vigil_sdk_connections gauge');
  });

  it('/openapi.json documents the REST surface', async () => {
    server = await startServer();
    const doc = (await server.app.inject({ url: '/openapi.json' })).json();
    expect(doc.openapi).toBe('3.0.3');
    for (const path of [
      '/api/v1/envs/{env}/flags',
      '/api/v1/envs/{env}/flags/{key}',
      '/api/v1/envs/{env}/flags/{key}/kill',
      '/api/v1/envs/{env}/flags/{key}/revive',
      '/api/v1/envs/{env}/segments/{key}',
      '/api/v1/envs/{env}/evaluate',
      '/api/v1/envs/{env}/audit',
      '/api/v1/tokens',
      '/api/v1/tokens/{id}',
      '/v1/flags',
      '/v1/metrics',
      '/healthz',
      '/readyz',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.components.schemas.Flag.properties.key).toBeDefined();
    expect(doc.paths['/api/v1/envs/{env}/flags'].post.requestBody.content['application/json'].schema).toEqual(
      {
        $ref: '#/components/schemas/Flag',
      },
    );
  });
});

describe('errors', () => {
  it('unknown routes are a 404 in the error shape', async () => {
    server = await startServer();
    const response = await server.app.inject({ url: '/nope?key=vgl_secret' });
    expect(response.statusCode).toBe(404);
    expect(errorBodySchema.parse(response.json()).error.code).toBe('VIGIL_NOT_FOUND');
    expect(response.body).not.toContain('vgl_secret');
  });

  it('an unexpected error is a 500 VIGIL_INTERNAL that leaks neither message nor stack', async () => {
    server = await startServer();
    server.app.get('/boom', async () => {
      throw new Error('database password is hunter2');
    });
    const response = await server.app.inject({ url: '/boom' });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: 'VIGIL_INTERNAL', message: 'internal error' } });
  });

  it('a body over the limit is a 413, an unsupported content type a 415', async () => {
    server = await startServer({ config: { bodyLimit: 2048 } });
    const big = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: bearer(server.admin),
      payload: boolFlag('a', { description: 'x'.repeat(4000) }),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe('VIGIL_PAYLOAD_TOO_LARGE');
    const xml = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: { ...bearer(server.admin), 'content-type': 'application/xml' },
      payload: '<flag/>',
    });
    expect(xml.statusCode).toBe(415);
    expect(xml.json().error.code).toBe('VIGIL_UNSUPPORTED_MEDIA_TYPE');
    expect((await server.store.snapshot('production')).revision).toBe(0);
  });

  it('rate-limits the admin API per client (429), not the polling endpoint', async () => {
    server = await startServer({ config: { rateLimitMax: 3, rateLimitWindowMs: 60_000 } });
    const key = await server.token(['sdk-server'], 'production');
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      statuses.push(
        (await server.app.inject({ url: '/api/v1/envs/production/flags', headers: bearer(server.admin) }))
          .statusCode,
      );
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await server.app.inject({
      url: '/api/v1/envs/production/flags',
      headers: bearer(server.admin),
    });
    expect(limited.json().error.code).toBe('VIGIL_RATE_LIMITED');
    for (let i = 0; i < 10; i++)
      expect((await server.app.inject({ url: '/v1/flags', headers: bearer(key) })).statusCode).toBe(200);
  });

  it('counts POST /v1/metrics apart from the admin API, with a budget of its own', async () => {
    const s = await startServer({ config: { rateLimitMax: 2, metricsRateLimitMax: 4 } });
    server = s;
    const key = await s.token(['sdk-server'], 'production');
    const report = async () =>
      (
        await s.app.inject({
          method: 'POST',
          url: '/v1/metrics',
          headers: bearer(key),
          payload: { summaries: [] },
        })
      ).statusCode;
    const admin = async () =>
      (await s.app.inject({ url: '/api/v1/envs/production/flags', headers: bearer(s.admin) })).statusCode;
    // SDK reports do not use up the admin API's budget, nor the other way round.
    expect([await report(), await report(), await report()]).toEqual([202, 202, 202]);
    expect([await admin(), await admin(), await admin()]).toEqual([200, 200, 429]);
    expect([await report(), await report()]).toEqual([202, 429]);
  });

  it('rate-limits token guessing too: the limiter runs before the token check', async () => {
    server = await startServer({ config: { rateLimitMax: 2 } });
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push(
        (await server.app.inject({ url: '/api/v1/tokens', headers: bearer(`vgl_guess${i}`) })).statusCode,
      );
    }
    expect(statuses).toEqual([401, 401, 429, 429]);
  });
});

describe('logs', () => {
  it('never contain tokens: not from headers, URLs, subprotocols nor token creation', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    server = await startServer({ logTo: sink });
    const sdk = await server.token(['sdk-client'], 'production');
    await server.app.inject({ url: '/api/v1/envs/production/flags', headers: bearer(server.admin) });
    await server.app.inject({ url: `/v1/flags?key=${sdk}`, headers: { 'if-none-match': '"0"' } });
    await server.app.inject({ url: `/api/v1/envs/production/flags?key=${sdk}&x=1` });
    const created = await server.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer(server.admin),
      payload: { name: 'ci', scopes: ['read'] },
    });
    const base = await server.listen();
    const client = await TestClient.connect(`${base}/v1/stream?key=${sdk}`, {
      protocols: ['vigil', `vigil.${sdk}`],
    });
    client.send({ type: 'hello', sdk: 'x' });
    await client.nth('snapshot', 1);
    client.close();

    const log = lines.join('');
    expect(log.length).toBeGreaterThan(0);
    expect(log).toContain('key=[REDACTED]');
    for (const secret of [server.admin, sdk, created.json().secret]) expect(log).not.toContain(secret);
  });

  it('redactUrl hides only the key parameter', () => {
    expect(redactUrl('/v1/stream?key=vgl_abc&x=1')).toBe('/v1/stream?key=[REDACTED]&x=1');
    expect(redactUrl('/v1/flags?monkey=1')).toBe('/v1/flags?monkey=1');
  });
});
