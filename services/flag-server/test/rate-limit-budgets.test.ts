import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { budgetOf } from '../src/rate-limit.js';
import { bearer, boolFlag, startServer, type TestServer, type TestServerOptions } from './helpers/server.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const FLAG_URL = '/api/v1/envs/production/flags/checkout';

/** A server with a flag, a service's SDK key and an operator's ops token. */
async function world(options: TestServerOptions) {
  const s = await startServer(options);
  server = s;
  const created = await s.app.inject({
    method: 'PUT',
    url: FLAG_URL,
    headers: bearer(s.admin),
    payload: boolFlag('checkout'),
  });
  expect(created.statusCode).toBe(201);
  const service = await s.token(['sdk-server'], 'production', 'checkout-service');
  const operator = await s.token(['ops'], undefined, 'on-call');
  return { s, service, operator };
}

const summary = {
  flag: 'checkout',
  variant: 'on',
  version: 1,
  windowStart: '2025-01-01T00:00:00.000Z',
  windowEnd: '2025-01-01T00:00:10.000Z',
  requests: 1,
  errors: 0,
  latency: { alpha: 0.01, zero: 0, bins: [[120, 1]], count: 1, sum: 20 },
};

/** The SDK and evaluation routes, each as a request a service (or anyone) sends with `secret`. */
const sdkRoutes = (secret: string) => ({
  evaluate: {
    method: 'POST' as const,
    url: '/api/v1/envs/production/evaluate',
    headers: bearer(secret),
    payload: { context: { key: 'user-1' } },
  },
  poll: { method: 'GET' as const, url: '/v1/flags', headers: bearer(secret) },
  metrics: {
    method: 'POST' as const,
    url: '/v1/metrics',
    headers: bearer(secret),
    payload: { summaries: [summary] },
  },
});

/** Sends `request` until it answers 429; returns the statuses seen (bounded, so a missing limit fails). */
async function floodUntilLimited(
  s: TestServer,
  request: InjectOptions,
  bound = 200,
): Promise<{ statuses: number[]; limited: LightMyRequestResponse }> {
  const statuses: number[] = [];
  for (let i = 0; i < bound; i++) {
    const response = await s.app.inject(request);
    statuses.push(response.statusCode);
    if (response.statusCode === 429) return { statuses, limited: response };
  }
  throw new Error(`no 429 after ${bound} requests: ${[...new Set(statuses)].join(', ')}`);
}

const kill = (s: TestServer, secret: string, action: 'kill' | 'revive' = 'kill') =>
  s.app.inject({
    method: 'POST',
    url: `${FLAG_URL}/${action}`,
    headers: bearer(secret),
    payload: { reason: 'error rate' },
  });

describe('rate-limit budgets', () => {
  it('every SDK and evaluation route hits its own 429; kill and revive still answer at once, and the admin API too', async () => {
    const { s, service, operator } = await world({
      config: {
        rateLimitMax: 5,
        evaluateRateLimitMax: 7,
        sdkRateLimitMax: 9,
        metricsRateLimitMax: 11,
        killRateLimitMax: 4,
      },
    });
    const routes = sdkRoutes(service);
    const budgets: Record<keyof typeof routes, { ok: number; budget: string }> = {
      evaluate: { ok: 7, budget: 'evaluate' },
      poll: { ok: 9, budget: 'sdk' },
      metrics: { ok: 11, budget: 'metrics' },
    };
    for (const [name, request] of Object.entries(routes) as [keyof typeof routes, InjectOptions][]) {
      const { statuses, limited } = await floodUntilLimited(s, request);
      // Each route had its whole budget, so none was spent by another one.
      expect(statuses.length, name).toBe(budgets[name].ok + 1);
      expect(
        statuses.slice(0, -1).every((status) => status < 300),
        name,
      ).toBe(true);
      expect(limited.json().error).toMatchObject({
        code: 'VIGIL_RATE_LIMITED',
        details: { budget: budgets[name].budget, max: budgets[name].ok },
      });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    }
    // Requests with bad tokens from the same IP, on every route, are limited per IP in each budget...
    const guesses = [
      ...Object.values(sdkRoutes('vgl_guess')),
      { method: 'POST', url: `${FLAG_URL}/kill`, headers: bearer('vgl_guess'), payload: { reason: 'x' } },
    ];
    for (const request of guesses) {
      const { statuses } = await floodUntilLimited(s, request as InjectOptions);
      expect(statuses.slice(0, -1).every((status) => status === 401)).toBe(true);
    }

    // ...and none of it delays the operator: kill and revive answer 200 at once.
    const killed = await kill(s, operator);
    expect(killed.statusCode, killed.body).toBe(200);
    expect(killed.json()).toMatchObject({ killed: true });
    const revived = await kill(s, operator, 'revive');
    expect(revived.statusCode, revived.body).toBe(200);
    expect(revived.json()).toMatchObject({ killed: false });
    // The admin API still answers (its budget is the operator's own).
    const read = await s.app.inject({ url: FLAG_URL, headers: bearer(operator) });
    expect(read.statusCode).toBe(200);
  });

  it('an admin API budget spent does not delay a kill by the same token', async () => {
    const { s, operator } = await world({ config: { rateLimitMax: 3 } });
    const { statuses } = await floodUntilLimited(s, { url: FLAG_URL, headers: bearer(operator) });
    expect(statuses).toEqual([200, 200, 200, 429]);
    for (let i = 0; i < 5; i++) {
      expect((await kill(s, operator, i % 2 === 0 ? 'kill' : 'revive')).statusCode).toBe(200);
    }
  });

  it('kill and revive keep a per-token ceiling of their own (killRateLimitMax)', async () => {
    const { s, operator } = await world({ config: { rateLimitMax: 100, killRateLimitMax: 4 } });
    const statuses = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await kill(s, operator, i % 2 ? 'revive' : 'kill')).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    // Another operator's kills are not affected; the admin API neither.
    const other = await s.token(['ops'], undefined, 'second-on-call');
    expect((await kill(s, other)).statusCode).toBe(200);
    expect((await s.app.inject({ url: FLAG_URL, headers: bearer(operator) })).statusCode).toBe(200);
  });

  it('a console session counts in its token’s budget: bad-token floods from its IP do not delay its kill', async () => {
    const { s, operator } = await world({ config: { rateLimitMax: 3, killRateLimitMax: 3 } });
    const signedIn = await s.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { token: operator },
    });
    expect(signedIn.statusCode, signedIn.body).toBe(200);
    const cookie = String(signedIn.headers['set-cookie']).split(';')[0]!;
    const csrf = signedIn.json().csrfToken as string;
    const guess = {
      method: 'POST',
      url: `${FLAG_URL}/kill`,
      headers: bearer('vgl_guess'),
      payload: { reason: 'x' },
    };
    expect((await floodUntilLimited(s, guess as InjectOptions)).statuses).toEqual([401, 401, 401, 429]);
    const killed = await s.app.inject({
      method: 'POST',
      url: `${FLAG_URL}/kill`,
      headers: { cookie, 'x-vigil-csrf': csrf },
      payload: { reason: 'from the console' },
    });
    expect(killed.statusCode, killed.body).toBe(200);
    const read = await s.app.inject({ url: FLAG_URL, headers: { cookie } });
    expect(read.statusCode).toBe(200);
  });

  it('the admin API counts per token when authenticated, per client IP otherwise', async () => {
    const { s, operator } = await world({ config: { rateLimitMax: 3 } });
    const admin = await s.token(['admin'], undefined, 'second-admin');
    const get = async (headers: Record<string, string>) =>
      (await s.app.inject({ url: FLAG_URL, headers })).statusCode;
    expect([await get(bearer(admin)), await get(bearer(admin)), await get(bearer(admin))]).toEqual([
      200, 200, 200,
    ]);
    expect(await get(bearer(admin))).toBe(429);
    // Same IP, another token: a budget of its own.
    expect(await get(bearer(operator))).toBe(200);
    // Guessing tokens is limited per IP (each guess a different token), and spends no token's budget.
    const guesses = [];
    for (let i = 0; i < 5; i++) guesses.push(await get(bearer(`vgl_guess${i}`)));
    expect(guesses).toEqual([401, 401, 401, 429, 429]);
    // The operator had spent one request of three before the guesses.
    expect([await get(bearer(operator)), await get(bearer(operator)), await get(bearer(operator))]).toEqual([
      200, 200, 429,
    ]);
  });

  it('SDK budgets count per key and client IP: one service cannot spend another’s', async () => {
    const { s, service } = await world({
      config: { rateLimitMax: 600, sdkRateLimitMax: 3, evaluateRateLimitMax: 3 },
    });
    const other = await s.token(['sdk-server'], 'production', 'billing-service');
    for (const name of ['poll', 'evaluate'] as const) {
      const { statuses } = await floodUntilLimited(s, sdkRoutes(service)[name]);
      expect(statuses).toHaveLength(4);
      expect((await s.app.inject(sdkRoutes(other)[name])).statusCode).toBe(200);
    }
    // Polling from another IP with the same key has its own budget (many instances share a key).
    const elsewhere = await s.app.inject({ ...sdkRoutes(service).poll, remoteAddress: '10.0.0.2' });
    expect(elsewhere.statusCode).toBe(200);
  });

  it('with the default limits, a burst of 2,000 evaluations succeeds and a kill from the same IP answers 200', async () => {
    const defaults = loadConfig({});
    const { s, service, operator } = await world({ config: { rateLimitMax: defaults.rateLimitMax } });
    const request = sdkRoutes(service).evaluate;
    const statuses = new Map<number, number>();
    for (let batch = 0; batch < 20; batch++) {
      const responses = await Promise.all(Array.from({ length: 100 }, () => s.app.inject(request)));
      for (const r of responses) statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 200: 2000 });
    expect((await kill(s, operator)).statusCode).toBe(200);
    expect((await kill(s, operator, 'revive')).statusCode).toBe(200);
  });
});

describe('budgetOf', () => {
  it('gives kill/revive, evaluation, SDK (with OFREP) and metrics routes their own budgets', () => {
    expect(budgetOf('POST', '/api/v1/envs/:env/flags/:key/kill')).toBe('kill');
    expect(budgetOf('POST', '/api/v1/envs/:env/flags/:key/revive')).toBe('kill');
    expect(budgetOf('POST', '/api/v1/envs/:env/evaluate')).toBe('evaluate');
    expect(budgetOf('GET', '/v1/flags')).toBe('sdk');
    expect(budgetOf('POST', '/ofrep/v1/evaluate/flags/:key')).toBe('sdk');
    expect(budgetOf('POST', '/ofrep/v1/evaluate/flags')).toBe('sdk');
    expect(budgetOf('POST', '/v1/metrics')).toBe('metrics');
    expect(budgetOf('PUT', '/api/v1/envs/:env/flags/:key')).toBe('admin');
    expect(budgetOf('GET', '/api/v1/tokens')).toBe('admin');
    expect(budgetOf('GET', '/v1/stream')).toBeUndefined();
    expect(budgetOf('GET', '/healthz')).toBeUndefined();
  });
});

describe('rate-limit configuration', () => {
  it('has defaults sized for services and reads each budget from its env var', () => {
    expect(loadConfig({})).toMatchObject({
      rateLimitMax: 600,
      metricsRateLimitMax: 6000,
      evaluateRateLimitMax: 60_000,
      sdkRateLimitMax: 60_000,
      killRateLimitMax: 6000,
    });
    expect(
      loadConfig({
        VIGIL_EVALUATE_RATE_LIMIT_MAX: '100000',
        VIGIL_SDK_RATE_LIMIT_MAX: '20000',
        VIGIL_KILL_RATE_LIMIT_MAX: '50',
      }),
    ).toMatchObject({ evaluateRateLimitMax: 100_000, sdkRateLimitMax: 20_000, killRateLimitMax: 50 });
    expect(() => loadConfig({ VIGIL_KILL_RATE_LIMIT_MAX: '0' })).toThrow(/VIGIL_KILL_RATE_LIMIT_MAX/);
  });
});
