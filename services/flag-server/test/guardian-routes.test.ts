import { flagHealthSchema, type Incident, type Verdict, verdictSchema } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { bearer, boolFlag, json, startServer, type TestServer } from './helpers/server.js';

const figures = (variant: string, requests: number, errors: number) => ({
  variant,
  requests,
  errors,
  errorRate: errors / requests,
  p99LatencyMs: 120,
});

function verdict(version: number, status: Verdict['status']): Verdict {
  const regression = status === 'regression';
  return verdictSchema.parse({
    env: 'production',
    flag: 'checkout',
    version,
    status,
    guarded: true,
    severity: 'sev2',
    autoKill: true,
    controlVariant: 'off',
    epoch: 1,
    triggers: regression ? ['error_rate_vs_control'] : [],
    reason: regression ? 'variant on: error rate 5.00% vs control 0.50% (10.0×)' : '',
    variants: [
      {
        variant: 'on',
        status,
        triggers: regression ? ['error_rate_vs_control'] : [],
        reason: regression ? 'error rate 5.00% vs control 0.50% (10.0×)' : '',
        treatment: figures('on', 1000, regression ? 50 : 5),
        control: figures('off', 9000, 45),
        window: { treatment: figures('on', 500, 25), control: figures('off', 4500, 22) },
      },
    ],
    evaluatedAt: '2030-03-01T12:00:00.000Z',
    guardian: 'g1',
  });
}

describe('guardian routes of the flag server', () => {
  let server: TestServer;
  afterEach(async () => {
    await server?.close();
  });

  const health = (query = '', token = server.admin) =>
    server.app.inject({
      method: 'GET',
      url: `/api/v1/envs/production/flags/checkout/health${query}`,
      headers: bearer(token),
    });

  it('serves the verdict on the current version in a gate-friendly shape', async () => {
    server = await startServer();
    await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: bearer(server.admin),
      payload: boolFlag('checkout'),
    });

    // No verdict yet: wait, which a gate refuses (it fails closed) and the plain GET reports with 200.
    expect((await health()).statusCode).toBe(200);
    let res = await health('?gate=1');
    expect(res.statusCode).toBe(503);
    expect(flagHealthSchema.parse(json(res))).toMatchObject({
      status: 'insufficient_data',
      gate: 'wait',
      healthy: false,
      verdictVersion: null,
      updatedAt: null,
      reason: 'no verdict from the guardian yet',
      schedule: null,
    });
    expect((await health('?gate=1&require=healthy')).statusCode).toBe(503);

    await server.store.putVerdict(verdict(1, 'healthy'), 10_000);
    res = await health('?gate=1&require=healthy');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const healthy = flagHealthSchema.parse(json(res));
    expect(healthy).toMatchObject({
      env: 'production',
      flag: 'checkout',
      version: 1,
      status: 'healthy',
      gate: 'pass',
      healthy: true,
      killed: false,
      severity: 'sev2',
      controlVariant: 'off',
      verdictVersion: 1,
      updatedAt: '2030-03-01T12:00:00.000Z',
    });
    expect(healthy.cohorts.map((c) => c.variant)).toEqual(['on', 'off']);

    await server.store.putVerdict(verdict(1, 'regression'), 10_000);
    res = await health();
    expect(res.statusCode).toBe(200);
    expect(json(res)).toMatchObject({
      status: 'regression',
      gate: 'fail',
      triggers: ['error_rate_vs_control'],
    });
    res = await health('?gate=1');
    expect(res.statusCode).toBe(503);
    expect(json(res)).toMatchObject({ status: 'regression', gate: 'fail' });

    await server.store.putVerdict(verdict(1, 'insufficient_data'), 10_000);
    expect((await health('?gate=true')).statusCode).toBe(503);
    expect((await health('?gate=1&require=healthy')).statusCode).toBe(503);
    expect((await health('?gate=0')).statusCode).toBe(200);

    // The flag changed since the verdict: its new version has none yet.
    await server.store.putVerdict(verdict(1, 'healthy'), 10_000);
    await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/checkout',
      headers: bearer(server.admin),
      payload: boolFlag('checkout', { description: 'edited' }),
    });
    expect(json(await health())).toMatchObject({
      version: 2,
      status: 'insufficient_data',
      gate: 'wait',
      verdictVersion: 1,
      reason: 'no verdict on version 2 yet (the last was on version 1)',
    });

    // A killed flag fails the gate whatever the verdict says.
    await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags/checkout/kill',
      headers: bearer(server.admin),
      payload: { reason: 'manual' },
    });
    res = await health('?gate=1');
    expect(res.statusCode).toBe(503);
    expect(json(res)).toMatchObject({
      killed: true,
      gate: 'fail',
      reason: 'killed by bootstrap-admin: manual',
    });

    expect((await health('?gate=maybe')).statusCode).toBe(400);
    const missing = await server.app.inject({
      method: 'GET',
      url: '/api/v1/envs/production/flags/nope/health',
      headers: bearer(server.admin),
    });
    expect(missing.statusCode).toBe(404);
  });

  it('answers Flagger webhooks by POST with the token in the metadata, checking scope and environment', async () => {
    server = await startServer();
    await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: bearer(server.admin),
      payload: boolFlag('checkout'),
    });
    await server.store.putVerdict(verdict(1, 'regression'), 10_000);
    const reader = await server.token(['read'], 'production');
    const staging = await server.token(['read'], 'staging');
    const sdk = await server.token(['sdk-server'], 'production');
    const flagger = (token: string | undefined, query = '?gate=1') =>
      server.app.inject({
        method: 'POST',
        url: `/api/v1/envs/production/flags/checkout/health${query}`,
        payload: {
          name: 'podinfo',
          namespace: 'test',
          phase: 'Progressing',
          metadata: token ? { token } : {},
        },
      });
    const res = await flagger(reader);
    expect(res.statusCode).toBe(503);
    expect(json(res)).toMatchObject({ gate: 'fail' });
    // POST is a gate by default (Flagger reads only the status code); `gate=0` gives the figures.
    expect((await flagger(reader, '')).statusCode).toBe(503);
    expect((await flagger(reader, '?gate=0')).statusCode).toBe(200);
    expect((await flagger(undefined)).statusCode).toBe(401);
    expect((await flagger('vgl_nope')).statusCode).toBe(401);
    expect((await flagger(staging)).statusCode).toBe(403);
    expect((await flagger(sdk)).statusCode).toBe(403);
    // A bearer token works for POST too, and env-bound read tokens for GET.
    const bearerPost = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags/checkout/health?gate=0',
      headers: bearer(reader),
    });
    expect(bearerPost.statusCode).toBe(200);
    expect((await health('', reader)).statusCode).toBe(200);
    expect((await health('', staging)).statusCode).toBe(403);
  });

  it('guards the incident routes by scope and validates their input', async () => {
    server = await startServer();
    const incident: Incident = {
      id: 'inc_1',
      env: 'production',
      flag: 'checkout',
      flagVersion: 3,
      severity: 'sev1',
      status: 'open',
      title: 'checkout regressed',
      summary: 'error rate 5% vs 0.5%',
      killed: true,
      cohorts: [figures('on', 1000, 50), figures('off', 9000, 45)],
      controlVariant: 'off',
      detectedAt: '2030-03-01T12:00:00.000Z',
      timeline: [{ at: '2030-03-01T12:00:00.000Z', kind: 'detection', message: 'detected' }],
    };
    await server.store.putIncident(incident);
    await server.store.claimEpisode('production:checkout:3', 'inc_1');
    const reader = await server.token(['read']);
    const ops = await server.token(['ops']);
    const bound = await server.token(['ops'], 'production');
    const call = (method: 'GET' | 'POST', url: string, token: string, payload?: unknown) =>
      server.app.inject({
        method,
        url,
        headers: bearer(token),
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });
    expect((await call('GET', '/api/v1/incidents', reader)).statusCode).toBe(200);
    expect((await call('POST', '/api/v1/incidents/inc_1/ack', reader)).statusCode).toBe(403);
    // Incidents are not bound to an environment: env-bound tokens cannot use them.
    expect((await call('GET', '/api/v1/incidents', bound)).statusCode).toBe(403);
    expect((await call('GET', '/api/v1/incidents?status=closed&limit=0', reader)).json()).toMatchObject({
      error: { code: 'VIGIL_BAD_REQUEST', details: [{ field: 'query.status' }, { field: 'query.limit' }] },
    });
    expect((await call('POST', '/api/v1/incidents/inc_1/ack', ops, { note: 'x', extra: 1 })).statusCode).toBe(
      400,
    );

    // A JSON body that is not an object is refused, not read as "no note" (null was taken for none).
    for (const body of ['null', '[]', '"done"']) {
      const refused = await server.app.inject({
        method: 'POST',
        url: '/api/v1/incidents/inc_1/ack',
        headers: { ...bearer(ops), 'content-type': 'application/json' },
        payload: body,
      });
      expect(refused.statusCode, `${body}: ${refused.body}`).toBe(400);
    }
    expect((await server.store.getIncident('inc_1'))?.status).toBe('open');

    // Resolving an open incident skips the ack and ends the episode.
    const resolved = await call('POST', '/api/v1/incidents/inc_1/resolve', ops, {});
    expect(resolved.statusCode).toBe(200);
    expect(resolved.json()).toMatchObject({ status: 'resolved', resolvedBy: 'ops' });
    expect((resolved.json() as Incident).acknowledgedAt).toBeUndefined();
    expect(await server.store.getEpisode('production:checkout:3')).toMatchObject({ incidentId: 'inc_1' });
    expect((await server.store.getEpisode('production:checkout:3'))?.resolvedAt).toBeDefined();
    const ack = await call('POST', '/api/v1/incidents/inc_1/ack', ops);
    expect(ack.json()).toEqual(resolved.json());
  });
});
