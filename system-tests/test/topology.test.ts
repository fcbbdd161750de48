import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type VigilClient } from '@vigil/node';
import type { AuditEntry, Flag, FlagInput, Incident } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rest } from '../../services/flag-server/test/helpers/process.js';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { boolFlag } from '../../services/flag-server/test/helpers/server.js';
import { webhookReceiver } from '../../services/guardian/test/notify/receivers.js';
import { type Cluster, createSdkKey, startCluster, until } from './helpers/cluster.js';

const ENV = 'production';
const SECRET = 'whsec-topology-test-0123456789';

/** A boolean flag serving `on` to nobody yet: the schedule raises it; guarded with an explicit policy. */
const guarded = (key: string): FlagInput =>
  boolFlag(key, {
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', weight: 0 },
          { variant: 'off', weight: 100_000 },
        ],
      },
    },
    guard: { enabled: true, severity: 'sev2', autoKill: true, maxErrorRate: 0.05, minSamples: 200 },
  });

/**
 * Issue 6, point 2: docker-compose.yml's topology as processes — a private redis-server, two
 * flag-server replicas on it, one guardian process reading SDK metrics through its consumer group,
 * and an app using the Node SDK on replica B. A guarded flag written through replica A whose new
 * variant fails is killed by the guardian; the app's SDK on B serves `off`; one incident, notified once.
 */
describe('the docker-compose topology as processes', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  let dir: string;
  let app: VigilClient | undefined;
  const hook = webhookReceiver(SECRET, Date.now);

  beforeAll(async () => {
    redis = await startTestRedis();
    // Flag servers have no key prefix setting, so the topology needs a Redis of its own.
    if (!redis.controllable) return;
    await hook.receiver.start();
    dir = await mkdtemp(join(tmpdir(), 'vigil-topology-'));
    const config = join(dir, 'guardian.json');
    // A faster cadence than production's, so the scenario fits in seconds; everything else as shipped.
    await writeFile(
      config,
      JSON.stringify({
        tickMs: 250,
        ingest: { blockMs: 100 },
        notify: { integrations: [{ name: 'webhook', type: 'webhook', url: `${hook.receiver.url}/hooks` }] },
        outbox: { baseMs: 100, maxMs: 1000 },
      }),
    );
    cluster = await startCluster({
      redis,
      replicas: 2,
      guardianEnv: {
        VIGIL_GUARDIAN_CONFIG: config,
        VIGIL_GUARDIAN_ID: 'guardian-1',
        VIGIL_WEBHOOK_SECRET: SECRET,
      },
    });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await cluster?.close();
    await hook.receiver.close();
    await redis?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it('the guardian process kills a failing scheduled flag written through A; the SDK on B serves off; one incident', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    await cluster.explain(async () => {
      const [onA, onB] = cluster.rests as [Rest, Rest];
      const created = await onA<Flag>('PUT', `/api/v1/envs/${ENV}/flags/checkout`, guarded('checkout'));
      expect(created.status).toBe(201);
      const sdkKey = await createSdkKey(onA, ENV, 'checkout-app');
      app = createClient({
        url: cluster.servers[1]!.url,
        sdkKey,
        env: ENV,
        metrics: { flushIntervalMs: 250 },
        logger: { warn: () => {}, error: () => {} },
      });
      const client = app;
      expect(await client.waitForReady(10_000)).toBe(true);

      const scheduledAt = Date.now();
      const scheduled = await onA<Flag>('PUT', `/api/v1/envs/${ENV}/flags/checkout/schedule`, {
        variant: 'on',
        steps: [
          { percent: 30, hold: '1m' },
          { percent: 100, hold: 0 },
        ],
      });
      expect(scheduled.status).toBe(200);

      // The app: ~2000 requests a second through B's SDK; requests served `on` fail 25% of the time, the rest 1%.
      const served = { on: 0, off: 0 };
      let n = 0;
      let seed = 42;
      const next = () => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed / 4294967296;
      };
      const traffic = setInterval(() => {
        for (let i = 0; i < 20; i++) {
          const scope = client.scope({ key: `user-${n++ % 5000}` });
          const on = scope.isEnabled('checkout');
          served[on ? 'on' : 'off'] += 1;
          scope.recordOutcome({ error: next() < (on ? 0.25 : 0.01), latencyMs: 20 + 10 * next() });
        }
      }, 10);

      let stepAt = 0;
      let killedAt = 0;
      let offAt = 0;
      try {
        // The guardian starts the schedule's first step itself; B's SDK hears of it over its stream.
        await until(
          'the SDK on B to serve the first step',
          () => client.stats().revision > scheduled.body.version,
        );
        stepAt = Date.now();
        await until(
          'the guardian to kill the flag',
          async () => (await onA<Flag>('GET', `/api/v1/envs/${ENV}/flags/checkout`)).body.killed,
          40_000,
          100,
        );
        killedAt = Date.now();
        await until('the SDK on B to serve off to everyone', () =>
          Array.from({ length: 200 }, (_, i) => client.variant('checkout', { key: `user-${i}` })).every(
            (v) => v === 'off',
          ),
        );
        offAt = Date.now();
        await until(
          'the schedule to be rolled back',
          async () =>
            (await onB<Flag>('GET', `/api/v1/envs/${ENV}/flags/checkout`)).body.schedule?.status ===
            'rolled_back',
        );
        await until('the webhook to hear of the incident', () => hook.deliveries.size > 0);
      } finally {
        clearInterval(traffic);
      }
      expect(served.on).toBeGreaterThan(0);
      // Time for a duplicate kill, incident or notification to show up, were there to be one.
      await new Promise((resolve) => setTimeout(resolve, 1_500));

      const killed = (await onA<Flag>('GET', `/api/v1/envs/${ENV}/flags/checkout`)).body;
      expect(killed).toMatchObject({
        killed: true,
        killedBy: 'guardian',
        schedule: { status: 'rolled_back' },
      });
      expect(client.scope({ key: 'user-1' }).detail('checkout', true)).toMatchObject({
        value: false,
        variant: 'off',
        reason: 'DISABLED',
      });
      // B's SDK followed the stream the whole time, never polling.
      expect(client.stats()).toMatchObject({ state: 'streaming', polling: false, stale: false });
      const current = await onA<{ revision: number }>('GET', `/api/v1/envs/${ENV}/flags`);
      expect(client.revision).toBe(current.body.revision);

      // Exactly one incident, read through replica A, and exactly one kill in the audit, by the guardian.
      const incidents = await onA<{ incidents: Incident[] }>('GET', '/api/v1/incidents');
      expect(incidents.status).toBe(200);
      expect(incidents.body.incidents).toHaveLength(1);
      const incident = incidents.body.incidents[0]!;
      expect(incident).toMatchObject({
        env: ENV,
        flag: 'checkout',
        killed: true,
        status: 'open',
        controlVariant: 'off',
      });
      expect(incident.timeline.map((e) => e.kind)).toEqual(['change', 'detection', 'kill', 'notification']);
      expect(incident.cohorts.find((c) => c.variant === 'on')!.errorRate).toBeGreaterThan(0.15);
      const audit = await onA<{ entries: AuditEntry[] }>(
        'GET',
        `/api/v1/envs/${ENV}/audit?target=checkout&limit=100`,
      );
      const kills = audit.body.entries.filter((e) => e.action === 'flag.kill');
      expect(kills).toHaveLength(1);
      expect(kills[0]).toMatchObject({ actor: 'guardian', after: { killed: true, killedBy: 'guardian' } });
      // Notified once, signed, to the one integration.
      expect([...hook.deliveries.values()].map((d) => d.type)).toEqual(['incident.opened']);
      expect(hook.duplicates()).toBe(0);
      expect(hook.receiver.rejected).toEqual([]);

      // The guardian's verdict is served by either replica, and the guardian process counts its kill.
      for (const server of [onA, onB]) {
        const health = await server<{ gate: string; killed: boolean }>(
          'GET',
          `/api/v1/envs/${ENV}/flags/checkout/health`,
        );
        expect(health.body).toMatchObject({ gate: 'fail', killed: true });
      }
      const metrics = await (await fetch(`${cluster.guardian!.metricsUrl}/metrics`)).text();
      expect(metrics).toMatch(/^vigil_guardian_kills_total\{[^}]*\} 1$/m);

      console.info(
        `topology: first step reached B's SDK ${stepAt - scheduledAt} ms after the schedule; ` +
          `guardian kill ${killedAt - stepAt} ms after the step; SDK on B served off ${offAt - killedAt} ms ` +
          `after the kill was visible on A; served on ${served.on}, off ${served.off}`,
      );
    });
  }, 90_000);
});
