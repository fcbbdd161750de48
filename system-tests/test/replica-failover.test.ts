import type { Context } from '@vigil/node';
import type { Flag } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { boolFlag } from '../../services/flag-server/test/helpers/server.js';
import { type Cluster, createSdkKey, startCluster, until } from './helpers/cluster.js';
import { type ClientReport, SdkFleet } from './helpers/sdk-fleet.js';

const ENV = 'production';
const FLEET = 500;
/** Every SDK must serve from the surviving replica this soon after the kill (issue 11, point 8). */
const FAILOVER_DEADLINE_MS = 5_000;
const CONTEXTS: Context[] = Array.from({ length: 4 }, (_, i) => ({ key: `user-${i}` }));

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

/**
 * Issue 11, point 8: SDKs given both replicas' URLs (no load balancer between them), all attached to
 * replica A. A is SIGKILLed and a flag is killed through B: every SDK moves to B on its own, resumes
 * there from the revision it held (a patch, not a second snapshot) and serves the killed flag as off.
 */
describe('SDKs given several replicas fail over when theirs dies', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  let fleet: SdkFleet | undefined;
  let a: string;
  let b: string;
  const explain = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof Error)
        error.message = `${error.message}\n\n${cluster?.outputs() ?? ''}\n--- sdk fleet ---\n${
          fleet?.output().slice(-4000) ?? ''
        }`;
      throw error;
    }
  };

  beforeAll(async () => {
    redis = await startTestRedis();
    // The replicas use the default key prefix, so they need a Redis of their own.
    if (!redis.controllable) return;
    cluster = await startCluster({ redis, replicas: 2 });
    await explain(async () => {
      [a, b] = cluster.servers.map((s) => s.url) as [string, string];
      const sdkKey = await createSdkKey(cluster.rests[0]!);
      for (const flag of [boolFlag('checkout'), boolFlag('killable')]) {
        const put = await cluster.rests[0]!('PUT', `/api/v1/envs/${ENV}/flags/${flag.key}`, flag);
        expect(put.status).toBe(201);
      }
      fleet = await SdkFleet.start({ urls: [a, b], sdkKey, readyTimeoutMs: 30_000 }, FLEET);
    });
  }, 90_000);

  afterAll(async () => {
    await fleet?.close();
    await cluster?.close();
    await redis?.dispose();
  }, 30_000);

  it('every SDK serves from replica B within 5 s of A being killed, with the kill made through B', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    await explain(async () => {
      const onB = cluster.rests[1]!;
      const before = await fleet!.report({ flags: ['killable'], contexts: CONTEXTS });
      // All attached to A, the first URL, from one snapshot each.
      expect(before.filter((c) => c.server !== a || c.state !== 'streaming')).toEqual([]);
      expect(before.every((c) => c.snapshots === 1 && c.patches === 0)).toBe(true);
      expect(before.every((c) => c.variants!.every(([v]) => v === 'on'))).toBe(true);
      const revisionBefore = before[0]!.revision;

      const killedAt = Date.now();
      cluster.servers[0]!.child.kill('SIGKILL');
      const kill = await onB<Flag>('POST', `/api/v1/envs/${ENV}/flags/killable/kill`, {
        reason: 'failover test',
      });
      expect(kill.status).toBe(200);
      const killRevision = kill.body.version;
      expect(killRevision).toBeGreaterThan(revisionBefore);

      let clients: ClientReport[] = [];
      const onBAt = new Map<number, number>();
      await until(
        `all ${FLEET} SDKs to stream from B at revision ${killRevision}`,
        async () => {
          clients = await fleet!.report();
          const now = Date.now();
          for (const c of clients)
            if (c.server === b && c.state === 'streaming' && c.revision >= killRevision && !onBAt.has(c.id))
              onBAt.set(c.id, now - killedAt);
          return onBAt.size === FLEET;
        },
        Math.max(0, FAILOVER_DEADLINE_MS - (Date.now() - killedAt)),
        100,
      ).catch((error: Error) => {
        const behind = clients.filter((c) => !onBAt.has(c.id));
        error.message += `; ${behind.length} not there, e.g. ${JSON.stringify(behind.slice(0, 3))}`;
        throw error;
      });
      const times = [...onBAt.values()];
      console.info(
        `failover of ${FLEET} SDKs from killed A to B (with a kill made through B): ` +
          `on B at the kill's revision p50 ${quantile(times, 0.5)} ms, p90 ${quantile(times, 0.9)} ms, ` +
          `max ${Math.max(...times)} ms after SIGKILL (sampled every 100 ms)`,
      );

      const after = await fleet!.report({ flags: ['killable', 'checkout'], contexts: CONTEXTS });
      // The killed flag is off for everyone, the other still on.
      expect(after.filter((c) => !c.variants!.every(([k, ch]) => k === 'off' && ch === 'on'))).toEqual([]);
      // They resumed on B from the revision held: a patch, never a second full snapshot.
      expect(after.filter((c) => c.snapshots !== 1 || c.patches < 1)).toEqual([]);
      expect(after.filter((c) => c.errors.some((e) => /UNAUTHORIZED|FORBIDDEN|PROTOCOL/.test(e)))).toEqual(
        [],
      );
    });
  }, 60_000);
});
