import { type Verdict, verdictSchema } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, boolFlag, startServer, type TestServer } from './helpers/server.js';

// The deployment tools' side, over real HTTP against a listening server: Flagger POSTs its webhook
// payload and reads only the status code (2xx = go on); Argo Rollouts' web metric GETs the URL, needs a
// 2xx, takes `{$.gate}` from the body and checks its success and failure conditions.

const figures = (variant: string, requests: number, errors: number) => ({
  variant,
  requests,
  errors,
  errorRate: errors / requests,
  p99LatencyMs: 120,
});

function verdict(flag: string, version: number, status: Verdict['status']): Verdict {
  const regression = status === 'regression';
  const treatment =
    status === 'insufficient_data' ? figures('on', 12, 0) : figures('on', 1000, regression ? 50 : 5);
  return verdictSchema.parse({
    env: 'production',
    flag,
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
        reason: '',
        treatment,
        control: figures('off', 9000, 45),
        window: { treatment, control: figures('off', 4500, 22) },
      },
    ],
    evaluatedAt: new Date().toISOString(),
    guardian: 'g1',
  });
}

/** Flagger's webhook payload (`CanaryWebhookPayload`): metadata values are strings. */
const flaggerPayload = (phase: string, token: string) => ({
  name: 'podinfo',
  namespace: 'test',
  phase,
  checksum: '85d557f47b',
  metadata: { token, env: 'production' },
});

/** The canary phases during which Flagger calls rollout / confirm-promotion / pre-rollout hooks. */
const PHASES = ['Initialized', 'Waiting', 'Progressing', 'WaitingPromotion', 'Promoting'];

type ArgoOutcome = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';

/** One Argo Rollouts web-metric measurement with `successCondition: result == "pass"`, `failureCondition: result == "fail"`. */
async function argoMeasure(url: string, token: string): Promise<ArgoOutcome> {
  const response = await fetch(url, { headers: bearer(token) });
  if (response.status < 200 || response.status >= 300) return 'Error';
  const result = ((await response.json()) as { gate?: unknown }).gate;
  if (result === 'fail') return 'Failed';
  if (result === 'pass') return 'Successful';
  return 'Inconclusive';
}

describe('the health route as a deployment gate, driven as Flagger and Argo Rollouts drive it', () => {
  let server: TestServer;
  let base: string;
  let reader: string;

  beforeAll(async () => {
    server = await startServer();
    base = `${(await server.listen()).replace('ws://', 'http://')}/api/v1/envs/production/flags`;
    reader = await server.token(['read'], 'production', 'flagger');
    // A flag's version is the environment's revision at its last write.
    const version = new Map<string, number>();
    for (const key of ['pass', 'fail', 'wait', 'no-guardian', 'stale', 'changed', 'killed']) {
      const res = await server.app.inject({
        method: 'POST',
        url: '/api/v1/envs/production/flags',
        headers: bearer(server.admin),
        payload: boolFlag(key),
      });
      expect(res.statusCode).toBe(201);
      version.set(key, (res.json() as { version: number }).version);
    }
    const put = (flag: string, status: Verdict['status'], ttlMs = 60_000) =>
      server.store.putVerdict(verdict(flag, version.get(flag)!, status), ttlMs);
    await put('pass', 'healthy');
    await put('fail', 'regression');
    await put('wait', 'insufficient_data');
    // A verdict the guardian stopped refreshing (it died): it expires and is no verdict at all.
    await put('stale', 'healthy', 1);
    // A healthy verdict, then an edit: the new version has none yet.
    await put('changed', 'healthy');
    await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/changed',
      headers: bearer(server.admin),
      payload: boolFlag('changed', { description: 'edited' }),
    });
    await put('killed', 'healthy');
    await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags/killed/kill',
      headers: bearer(server.admin),
      payload: { reason: 'manual' },
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
  });

  afterAll(async () => {
    await server?.close();
  });

  // flag → [what Flagger must see, what Argo must conclude]
  const CASES: [string, number, ArgoOutcome][] = [
    ['pass', 200, 'Successful'],
    ['fail', 503, 'Failed'],
    ['killed', 503, 'Failed'],
    ['wait', 503, 'Inconclusive'],
    ['no-guardian', 503, 'Inconclusive'],
    ['stale', 503, 'Inconclusive'],
    ['changed', 503, 'Inconclusive'],
    ['unknown', 404, 'Error'],
  ];

  const GATE: Record<ArgoOutcome, string> = {
    Successful: 'pass',
    Failed: 'fail',
    Inconclusive: 'wait',
    Error: '',
  };

  it.each(CASES)('Flagger webhook on %s: answers %i, 2xx only on a pass', async (flag, status, outcome) => {
    for (const query of ['', '?gate=1', '?gate=true&require=healthy']) {
      for (const phase of PHASES) {
        const response = await fetch(`${base}/${flag}/health${query}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(flaggerPayload(phase, reader)),
        });
        expect(response.status, `${flag}${query} in ${phase}`).toBe(status);
        const body = (await response.json()) as { gate?: string; error?: { code: string } };
        if (flag === 'unknown') expect(body.error?.code).toBe('VIGIL_NOT_FOUND');
        else expect(body.gate).toBe(GATE[outcome]);
      }
    }
  });

  it.each(CASES)('Argo Rollouts web metric on %s (Flagger %i): %s', async (flag, _status, outcome) => {
    expect(await argoMeasure(`${base}/${flag}/health`, reader)).toBe(outcome);
  });

  it('a Flagger webhook with the token as a header, and GET as a gate, fail closed too', async () => {
    for (const [flag, status] of CASES) {
      const post = await fetch(`${base}/${flag}/health`, {
        method: 'POST',
        headers: { ...bearer(reader), 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'podinfo', namespace: 'test', phase: 'Progressing' }),
      });
      expect(post.status, `POST ${flag}`).toBe(status);
      const get = await fetch(`${base}/${flag}/health?gate=1`, { headers: bearer(reader) });
      expect(get.status, `GET ${flag}?gate=1`).toBe(status);
    }
  });
});
