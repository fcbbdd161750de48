import { flagSchema, scheduleSchema, type TokenScope } from '@vigil/proto';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boolFlag, segment, startServer, type TestServer } from './helpers/server.js';

/** Who calls: a token (scopes, optional environment), no token, or a token that does not exist. */
interface Caller {
  name: string;
  scopes?: TokenScope[];
  env?: string;
  raw?: string;
}

const CALLERS: Caller[] = [
  { name: 'admin', scopes: ['admin'] },
  { name: 'ops', scopes: ['ops'] },
  { name: 'read', scopes: ['read'] },
  { name: 'read@production', scopes: ['read'], env: 'production' },
  { name: 'admin@staging', scopes: ['admin'], env: 'staging' },
  { name: 'sdk-server', scopes: ['sdk-server'], env: 'production' },
  { name: 'sdk-client', scopes: ['sdk-client'], env: 'production' },
  { name: 'no token' },
  { name: 'unknown token', raw: 'vgl_thisTokenDoesNotExist000000000000000000' },
  { name: 'not a bearer', raw: 'Basic dXNlcjpwYXNz' },
];

let counter = 0;
const fresh = (prefix: string) => `${prefix}-${++counter}`;

/**
 * Every route, with the callers allowed to use it. `request` builds a valid request (creating what
 * it needs first), so an allowed caller must get a 2xx.
 */
interface RouteCase {
  route: string;
  allowed: string[];
  request: (server: TestServer) => Promise<InjectOptions>;
}

const PEOPLE_READ = ['admin', 'ops', 'read', 'read@production'];
const PEOPLE_OPS = ['admin', 'ops'];
/** Incidents are not bound to an environment: only tokens that are not bound to one use them. */
const UNBOUND_READ = ['admin', 'ops', 'read'];
const SDK = ['sdk-server', 'sdk-client'];

/** A fresh flag, with a paused schedule when `withSchedule`; returns its key. */
async function scheduledFlag(server: TestServer, withSchedule: boolean): Promise<string> {
  const key = fresh('scheduled');
  await server.store.putFlag('production', flagSchema.parse(boolFlag(key)), undefined, { actor: 'test' });
  if (withSchedule) {
    await server.store.putSchedule(
      'production',
      key,
      {
        actor: 'test',
        schedule: scheduleSchema.parse({
          variant: 'on',
          steps: [{ percent: 10, hold: '5m' }],
          status: 'paused',
        }),
      },
      undefined,
    );
  }
  return key;
}

/** A fresh open incident; returns its id. */
async function openIncident(server: TestServer): Promise<string> {
  const id = fresh('inc');
  await server.store.putIncident({
    id,
    env: 'production',
    flag: 'shared',
    flagVersion: 1,
    severity: 'sev2',
    status: 'open',
    title: 'shared regressed',
    summary: 'error rate 5% vs 0.5%',
    killed: false,
    cohorts: [{ variant: 'on', requests: 100, errors: 5, errorRate: 0.05, p99LatencyMs: null }],
    detectedAt: '2030-03-01T12:00:00.000Z',
    timeline: [{ at: '2030-03-01T12:00:00.000Z', kind: 'detection', message: 'detected' }],
  });
  return id;
}

const ROUTES: RouteCase[] = [
  {
    route: 'GET /api/v1/envs/:env/flags',
    allowed: PEOPLE_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/envs/production/flags' }),
  },
  {
    route: 'POST /api/v1/envs/:env/flags',
    allowed: ['admin'],
    request: async () => ({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      payload: boolFlag(fresh('created')),
    }),
  },
  {
    route: 'GET /api/v1/envs/:env/flags/:key',
    allowed: PEOPLE_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/envs/production/flags/shared' }),
  },
  {
    route: 'PUT /api/v1/envs/:env/flags/:key',
    allowed: ['admin'],
    request: async () => ({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/shared',
      payload: boolFlag('shared', { clientSide: true }),
    }),
  },
  {
    route: 'DELETE /api/v1/envs/:env/flags/:key',
    allowed: ['admin'],
    request: async (s) => {
      const key = fresh('doomed');
      await s.app.inject({
        method: 'POST',
        url: '/api/v1/envs/production/flags',
        headers: { authorization: `Bearer ${s.admin}` },
        payload: boolFlag(key),
      });
      return { method: 'DELETE', url: `/api/v1/envs/production/flags/${key}` };
    },
  },
  {
    route: 'POST /api/v1/envs/:env/flags/:key/kill',
    allowed: ['admin', 'ops'],
    request: async () => ({
      method: 'POST',
      url: '/api/v1/envs/production/flags/killable/kill',
      payload: { reason: 'table test' },
    }),
  },
  {
    route: 'POST /api/v1/envs/:env/flags/:key/revive',
    allowed: ['admin', 'ops'],
    request: async () => ({
      method: 'POST',
      url: '/api/v1/envs/production/flags/killable/revive',
      payload: { reason: 'table test' },
    }),
  },
  {
    route: 'GET /api/v1/envs/:env/segments',
    allowed: PEOPLE_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/envs/production/segments' }),
  },
  {
    route: 'GET /api/v1/envs/:env/segments/:key',
    allowed: PEOPLE_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/envs/production/segments/beta' }),
  },
  {
    route: 'PUT /api/v1/envs/:env/segments/:key',
    allowed: ['admin'],
    request: async () => ({
      method: 'PUT',
      url: '/api/v1/envs/production/segments/beta',
      payload: segment('beta'),
    }),
  },
  {
    route: 'DELETE /api/v1/envs/:env/segments/:key',
    allowed: ['admin'],
    request: async (s) => {
      const key = fresh('seg');
      await s.app.inject({
        method: 'PUT',
        url: `/api/v1/envs/production/segments/${key}`,
        headers: { authorization: `Bearer ${s.admin}` },
        payload: segment(key),
      });
      return { method: 'DELETE', url: `/api/v1/envs/production/segments/${key}` };
    },
  },
  {
    route: 'POST /api/v1/envs/:env/evaluate',
    allowed: [...PEOPLE_READ, 'sdk-server'],
    request: async () => ({
      method: 'POST',
      url: '/api/v1/envs/production/evaluate',
      payload: { context: { key: 'user-1' } },
    }),
  },
  {
    route: 'GET /api/v1/envs/:env/audit',
    allowed: PEOPLE_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/envs/production/audit?limit=5' }),
  },
  {
    route: 'POST /api/v1/tokens',
    allowed: ['admin'],
    request: async () => ({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: fresh('ci'), scopes: ['read'] },
    }),
  },
  {
    route: 'GET /api/v1/tokens',
    allowed: ['admin'],
    request: async () => ({ method: 'GET', url: '/api/v1/tokens' }),
  },
  {
    route: 'DELETE /api/v1/tokens/:id',
    allowed: ['admin'],
    request: async (s) => {
      const { token } = await s.app.vigil.tokens.create({ name: fresh('victim'), scopes: ['read'] }, 'test');
      return { method: 'DELETE', url: `/api/v1/tokens/${token.id}` };
    },
  },
  {
    route: 'GET /api/v1/envs/:env/flags/:key/health',
    allowed: PEOPLE_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/envs/production/flags/shared/health?gate=0' }),
  },
  {
    route: 'POST /api/v1/envs/:env/flags/:key/health',
    allowed: PEOPLE_READ,
    request: async () => ({
      method: 'POST',
      url: '/api/v1/envs/production/flags/shared/health?gate=0',
      payload: { name: 'app', namespace: 'default', phase: 'Progressing' },
    }),
  },
  {
    route: 'PUT /api/v1/envs/:env/flags/:key/schedule',
    allowed: PEOPLE_OPS,
    request: async (s) => ({
      method: 'PUT',
      url: `/api/v1/envs/production/flags/${await scheduledFlag(s, false)}/schedule`,
      payload: {
        variant: 'on',
        steps: [
          { percent: 10, hold: '5m' },
          { percent: 100, hold: 0 },
        ],
      },
    }),
  },
  ...(['pause', 'resume', 'abort'] as const).map((action) => ({
    route: `POST /api/v1/envs/:env/flags/:key/schedule/${action}`,
    allowed: PEOPLE_OPS,
    request: async (s: TestServer) => ({
      method: 'POST' as const,
      url: `/api/v1/envs/production/flags/${await scheduledFlag(s, true)}/schedule/${action}`,
      payload: {},
    }),
  })),
  {
    route: 'GET /api/v1/incidents',
    allowed: UNBOUND_READ,
    request: async () => ({ method: 'GET', url: '/api/v1/incidents?env=production&status=open' }),
  },
  {
    route: 'GET /api/v1/incidents/:id',
    allowed: UNBOUND_READ,
    request: async (s) => ({ method: 'GET', url: `/api/v1/incidents/${await openIncident(s)}` }),
  },
  ...(['ack', 'resolve'] as const).map((action) => ({
    route: `POST /api/v1/incidents/:id/${action}`,
    allowed: PEOPLE_OPS,
    request: async (s: TestServer) => ({
      method: 'POST' as const,
      url: `/api/v1/incidents/${await openIncident(s)}/${action}`,
      payload: { note: 'checked' },
    }),
  })),
  {
    route: 'GET /api/v1/incidents/:id/postmortem',
    allowed: UNBOUND_READ,
    request: async (s) => ({ method: 'GET', url: `/api/v1/incidents/${await openIncident(s)}/postmortem` }),
  },
  { route: 'GET /v1/flags', allowed: SDK, request: async () => ({ method: 'GET', url: '/v1/flags' }) },
  {
    route: 'POST /v1/metrics',
    allowed: SDK,
    request: async () => ({
      method: 'POST',
      url: '/v1/metrics',
      payload: {
        sdk: 'test',
        summaries: [
          {
            env: 'production',
            flag: 'shared',
            variant: 'on',
            version: 1,
            windowStart: '2025-01-01T00:00:00.000Z',
            windowEnd: '2025-01-01T00:00:10.000Z',
            requests: 10,
            errors: 1,
            latency: { alpha: 0.01, zero: 0, bins: [[100, 10]], count: 10, sum: 120 },
          },
        ],
      },
    }),
  },
];

const PUBLIC = ['/healthz', '/readyz', '/metrics', '/openapi.json'];

describe('every route × every scope', () => {
  let server: TestServer;
  const secrets = new Map<string, string>();

  beforeAll(async () => {
    server = await startServer();
    for (const caller of CALLERS) {
      if (caller.scopes) secrets.set(caller.name, await server.token(caller.scopes, caller.env, caller.name));
    }
    const auth = { authorization: `Bearer ${server.admin}` };
    for (const payload of [boolFlag('shared', { clientSide: true }), boolFlag('killable')]) {
      const r = await server.app.inject({
        method: 'POST',
        url: '/api/v1/envs/production/flags',
        headers: auth,
        payload,
      });
      expect(r.statusCode).toBe(201);
    }
    await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/segments/beta',
      headers: auth,
      payload: segment('beta'),
    });
  });
  afterAll(async () => {
    await server.close();
  });

  const cases = ROUTES.flatMap((route) => CALLERS.map((caller) => ({ ...route, caller })));

  it.each(cases)('$route as $caller.name', async ({ request, allowed, caller }) => {
    const options = await request(server);
    const secret = caller.raw ?? secrets.get(caller.name);
    const headers: Record<string, string> = {};
    if (secret) headers.authorization = secret.startsWith('Basic') ? secret : `Bearer ${secret}`;
    const response = await server.app.inject({ ...options, headers });
    if (!secret || caller.raw) {
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toBe('VIGIL_UNAUTHORIZED');
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
    } else if (allowed.includes(caller.name)) {
      expect(response.statusCode, response.body).toBeGreaterThanOrEqual(200);
      expect(response.statusCode, response.body).toBeLessThan(300);
    } else {
      expect(response.statusCode, response.body).toBe(403);
      expect(response.json().error.code).toBe('VIGIL_FORBIDDEN');
    }
  });

  it.each(PUBLIC)('%s needs no token', async (url) => {
    const response = await server.app.inject({ method: 'GET', url });
    expect(response.statusCode).toBe(200);
  });

  it('an SDK key may pass as ?key= on /v1/flags, but never on the admin API', async () => {
    const key = secrets.get('sdk-server')!;
    expect((await server.app.inject({ url: `/v1/flags?key=${key}` })).statusCode).toBe(200);
    const admin = server.admin;
    expect((await server.app.inject({ url: `/api/v1/envs/production/flags?key=${admin}` })).statusCode).toBe(
      401,
    );
  });

  it('a token is checked before the body is read: 401 even for a malformed body', async () => {
    const response = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: { 'content-type': 'application/json' },
      payload: '{not json',
    });
    expect(response.statusCode).toBe(401);
  });
});
