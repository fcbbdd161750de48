import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RedisStore } from '@vigil/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Guardian } from '../../src/guardian.js';
import { ENV, errorsIn, rolloutFlag, type Stack, startStack, summary } from './harness.js';

interface TestRedis {
  url: string;
  controllable: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
  dispose(): Promise<void>;
}

// The flag server's helper starts a private redis-server (or wraps REDIS_URL). It lives outside this
// package's rootDir, so it is loaded by a path TypeScript does not follow.
const HELPER = '../../../flag-server/test/helpers/redis.js';
const available =
  existsSync(fileURLToPath(new URL(HELPER.replace(/\.js$/, '.ts'), import.meta.url))) &&
  (process.env.REDIS_URL !== undefined ||
    existsSync(process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server'));

const ingested = async (g: Guardian) => g.analyzer.tracked().next().done === false;

describe.skipIf(!available)('two guardians on one Redis', () => {
  let redis: TestRedis;
  let store: RedisStore;
  let stack: Stack;

  beforeAll(async () => {
    const helper = (await import(/* @vite-ignore */ HELPER)) as { startTestRedis(): Promise<TestRedis> };
    redis = await helper.startTestRedis();
    store = new RedisStore({ url: redis.url, prefix: `vigil-guardian-test-${process.pid}:` });
    await store.start();
    stack = await startStack({ store });
  });

  afterAll(async () => {
    await stack?.close();
    await store?.close();
    await redis?.dispose();
  });

  it('share the consumer group, take over a crashed one’s summaries, and kill once with one incident', async () => {
    const flag = await store.putFlag(ENV, rolloutFlag('checkout', 10), undefined, { actor: 'alice' });
    // Small batches, so two guardians reading at once split each second's summaries between them.
    const config = { ingest: { batch: 2, blockMs: 0, claimIdleMs: 200 }, incidentSweepMs: 50 };
    const guardians = [stack.guardian({ ...config, id: 'g1' }), stack.guardian({ ...config, id: 'g2' })];

    // A guardian that read summaries and died before acknowledging them.
    const first = Array.from({ length: 10 }, (_, i) =>
      summary(flag, stack.clock.t, i % 2 ? 'on' : 'off', i % 2 ? 10 : 90, 0),
    );
    await store.publishMetrics(first);
    const lost = await store.readMetrics('guardian', 'crashed', {
      count: 100,
      blockMs: 0,
      claimIdleMs: 60_000,
    });
    expect(lost).toHaveLength(10);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const reports = [];
    for (let s = 0; s < 60 && !(await stack.flag('checkout')).killed; s++) {
      stack.clock.advance(1000);
      // Ten SDK instances, each reporting its tenth of 1000 requests/s: 5% errors on `on`, 0.5% on `off`.
      const batch = Array.from({ length: 10 }, (_, i) => [
        summary(flag, stack.clock.t, 'on', 10, errorsIn(s * 10 + i, 10, 0.05)),
        summary(flag, stack.clock.t, 'off', 90, errorsIn(s * 10 + i, 90, 0.005)),
      ]).flat();
      await store.publishMetrics(batch);
      reports.push(...(await Promise.all(guardians.map((g) => g.tick()))));
    }
    const killed = await stack.flag('checkout');
    expect(killed).toMatchObject({ killed: true, killedBy: 'guardian' });
    expect(await ingested(guardians[0]!)).toBe(true);
    expect(await ingested(guardians[1]!)).toBe(true);
    // Neither guardian got everything: the group shared the load (and the crashed one's ten came back).
    const pending = await store.readMetrics('guardian', 'probe', {
      count: 1000,
      blockMs: 0,
      claimIdleMs: 200,
    });
    expect(pending).toEqual([]);

    // Both keep seeing the regression for a while: still one kill, one incident, one notification each.
    for (let s = 0; s < 5; s++) {
      stack.clock.advance(1000);
      reports.push(...(await Promise.all(guardians.map((g) => g.tick()))));
    }
    expect(reports.flatMap((r) => r.killed)).toEqual([`${ENV}/checkout`]);
    expect(reports.flatMap((r) => r.opened)).toHaveLength(1);
    const incidents = await store.listIncidents({ limit: 10 });
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ flag: 'checkout', killed: true, flagVersion: flag.version });
    const kills = (await store.audit(ENV, { limit: 20, target: 'checkout' })).filter(
      (e) => e.action === 'flag.kill',
    );
    expect(kills).toHaveLength(1);
    // One coordinator at a time.
    for (let s = 0; s < reports.length; s += 2) {
      expect(Number(reports[s]!.coordinator) + Number(reports[s + 1]!.coordinator)).toBeLessThanOrEqual(1);
    }
    for (let i = 0; i < 10 && stack.hook.deliveries.size === 0; i++) {
      stack.clock.advance(1000);
      await Promise.all(guardians.map((g) => g.tick()));
    }
    expect([...stack.hook.deliveries.values()].map((d) => d.type)).toEqual(['incident.opened']);
    expect(stack.hook.duplicates()).toBe(0);
    const verdict = await store.getVerdict(ENV, 'checkout');
    expect(verdict?.guardian).toMatch(/^g[12]$/);
    await Promise.all(guardians.map((g) => g.stop()));
  });

  it('keeps ticking through a Redis outage and judges again once Redis is back', async () => {
    if (!redis.controllable) return;
    const guardian = stack.guardian({ id: 'g3', ingest: { blockMs: 0 } });
    await store.putFlag(ENV, rolloutFlag('search', 10), undefined, { actor: 'alice' });
    const flag = await stack.flag('search');
    await store.publishMetrics([
      summary(flag, stack.clock.t, 'on', 100, 0),
      summary(flag, stack.clock.t, 'off', 900, 4),
    ]);
    await guardian.tick();
    await redis.stop();
    try {
      stack.clock.advance(1000);
      const report = await guardian.tick();
      expect(report.coordinator).toBe(false);
    } finally {
      await redis.start();
    }
    const deadline = Date.now() + 15_000;
    let report = await guardian.tick();
    while (!report.coordinator && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      report = await guardian.tick();
    }
    expect(report.coordinator).toBe(true);
    expect(report.verdicts.map((v) => v.flag)).toContain('search');
  });
});
