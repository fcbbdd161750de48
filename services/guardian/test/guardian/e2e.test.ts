import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type VigilClient } from '@vigil/node';
import type { Flag, Incident } from '@vigil/proto';
import { bootstrapAdmin, buildServer, createLogger, EmbeddedStore, parseConfig } from '@vigil/server';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGuardian, type Guardian } from '../../src/guardian.js';
import { webhookReceiver } from '../notify/receivers.js';
import { ENV, rolloutFlag, SECRET } from './harness.js';

const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

/**
 * Issue 5, point 8: a flag server (embedded store), a guardian and an app using the Node SDK, in one
 * process and on the real clock. The app serves a scheduled variant that fails often; the guardian
 * kills it, the app's SDK serves `off`, and the incident and its notification exist exactly once.
 */
describe('end to end: server, guardian and a Node SDK app', () => {
  let dataDir: string;
  let store: EmbeddedStore;
  let app: FastifyInstance;
  let admin: string;
  let guardian: Guardian;
  let client: VigilClient;
  const hook = webhookReceiver(SECRET, Date.now);

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vigil-e2e-'));
    store = new EmbeddedStore({ dataDir });
    await store.start();
    const boot = await bootstrapAdmin(store);
    admin = boot.created ? boot.secret : '';
    app = await buildServer({
      config: parseConfig({ logLevel: 'silent', rateLimitMax: 0 }),
      store,
      logger: createLogger('silent'),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    await hook.receiver.start();
    guardian = createGuardian({
      store,
      registry: new Registry(),
      env: { VIGIL_WEBHOOK_SECRET: SECRET },
      config: {
        id: 'e2e',
        tickMs: 250,
        ingest: { blockMs: 100 },
        notify: { integrations: [{ name: 'webhook', type: 'webhook', url: `${hook.receiver.url}/hooks` }] },
        outbox: { baseMs: 100, maxMs: 1000 },
      },
    });
    await guardian.start();
  });

  afterAll(async () => {
    await client?.close();
    await guardian?.stop();
    await app?.close();
    await hook.receiver.close();
    await store?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('detects and kills a failing scheduled variant; the SDK serves off; one incident, notified once', async () => {
    await store.putFlag(ENV, rolloutFlag('checkout', 0), undefined, { actor: 'alice' });
    const { secret: sdkKey } = await app.vigil.tokens.create(
      { name: 'app', scopes: ['sdk-server'], env: ENV },
      'test',
    );
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    client = createClient({
      url: `http://127.0.0.1:${port}`,
      sdkKey,
      env: ENV,
      metrics: { flushIntervalMs: 250 },
      logger: { warn: () => {}, error: () => {} },
    });
    expect(await client.waitForReady(5000)).toBe(true);

    const scheduled = await app.inject({
      method: 'PUT',
      url: `/api/v1/envs/${ENV}/flags/checkout/schedule`,
      headers: { authorization: `Bearer ${admin}` },
      payload: {
        variant: 'on',
        steps: [
          { percent: 30, hold: '1m' },
          { percent: 100, hold: 0 },
        ],
      },
    });
    expect(scheduled.statusCode, scheduled.body).toBe(200);

    // The app: ~2000 requests a second; requests served `on` fail 25% of the time, the rest 1%.
    let served = { on: 0, off: 0 };
    let n = 0;
    let random = 42;
    const next = () => {
      random = (Math.imul(random, 1664525) + 1013904223) >>> 0;
      return random / 4294967296;
    };
    const traffic = setInterval(() => {
      for (let i = 0; i < 20; i++) {
        const scope = client.scope({ key: `user-${n++ % 5000}` });
        const on = scope.isEnabled('checkout');
        served = { ...served, [on ? 'on' : 'off']: served[on ? 'on' : 'off'] + 1 };
        scope.recordOutcome({ error: next() < (on ? 0.25 : 0.01), latencyMs: 20 + 10 * next() });
      }
    }, 10);

    try {
      const started = Date.now();
      await until(
        'the guardian to kill the flag',
        async () => (await store.getFlag(ENV, 'checkout'))!.killed,
      );
      const detectedIn = Date.now() - started;
      const killed = (await store.getFlag(ENV, 'checkout')) as Flag;
      expect(killed).toMatchObject({ killed: true, killedBy: 'guardian' });
      expect(served.on).toBeGreaterThan(0);
      expect(detectedIn).toBeLessThan(20_000);

      // The app's SDK hears of the kill over its stream and serves `off` to everyone.
      await until('the SDK to serve off', () =>
        Array.from({ length: 50 }, (_, i) => client.variant('checkout', { key: `user-${i}` })).every(
          (v) => v === 'off',
        ),
      );
      const detail = client.scope({ key: 'user-1' }).detail('checkout', true);
      expect(detail).toMatchObject({ value: false, variant: 'off', reason: 'DISABLED' });

      await until(
        'the schedule to be rolled back',
        async () => (await store.getFlag(ENV, 'checkout'))!.schedule?.status === 'rolled_back',
      );
      await until('the webhook to hear of the incident', () => hook.deliveries.size > 0);
    } finally {
      clearInterval(traffic);
    }
    // Some more time for any duplicate to show up.
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const incidents = await store.listIncidents({ limit: 10 });
    expect(incidents).toHaveLength(1);
    const incident = incidents[0] as Incident;
    expect(incident).toMatchObject({ flag: 'checkout', killed: true, status: 'open', controlVariant: 'off' });
    expect(incident.timeline.map((e) => e.kind)).toEqual(['change', 'detection', 'kill', 'notification']);
    expect(incident.timeline[0]!.message).toContain('step 1 of 2: 30% of contexts get on');
    const treated = incident.cohorts.find((c) => c.variant === 'on')!;
    expect(treated.errorRate).toBeGreaterThan(0.15);
    expect([...hook.deliveries.values()].map((d) => d.type)).toEqual(['incident.opened']);
    expect(hook.duplicates()).toBe(0);
    expect(hook.receiver.rejected).toEqual([]);

    const postmortem = await app.inject({
      method: 'GET',
      url: `/api/v1/incidents/${incident.id}/postmortem`,
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(postmortem.statusCode).toBe(200);
    expect(postmortem.body).toContain('# Postmortem: checkout (production)');
    expect(postmortem.body).toContain('## Timeline');
  });
});
