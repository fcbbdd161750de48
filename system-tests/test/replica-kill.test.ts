import type { Context } from '@vigil/node';
import type { Flag } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rest } from '../../services/flag-server/test/helpers/process.js';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { boolFlag } from '../../services/flag-server/test/helpers/server.js';
import { type Cluster, createSdkKey, startCluster, until } from './helpers/cluster.js';
import { type LoadBalancer, startLoadBalancer } from './helpers/lb.js';
import { type ClientReport, SdkFleet } from './helpers/sdk-fleet.js';

const ENV = 'production';
const FLEET = 1_000;
/** The SDK's default reconnect backoff base (sdks/node/src/options.ts): the first retry waits U[0, 500 ms). */
const BACKOFF_BASE_MS = 500;
const WINDOW_MS = 100;
const CONTEXTS: Context[] = Array.from({ length: 8 }, (_, i) => ({
  key: `user-${i}`,
  plan: i % 2 ? 'pro' : 'free',
}));

const rollout = (key: string, percentOn: number) =>
  boolFlag(key, {
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', weight: percentOn * 1000 },
          { variant: 'off', weight: 100_000 - percentOn * 1000 },
        ],
      },
    },
  });

/** The most timestamps in any `windowMs`-long window. */
function peak(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= windowMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

/**
 * Issue 6, point 4: a flag-server replica SIGKILLed while 1,000 real Node SDK clients are connected
 * through a load balancer in front of both replicas. The clients of the dead replica reconnect to the
 * other one, spread by full-jitter backoff, and every client ends on the server's latest revision.
 */
describe('a replica killed under 1,000 connected SDKs', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  let lb: LoadBalancer;
  let fleet: SdkFleet | undefined;
  let onB: Rest;
  const outputs = () =>
    `${cluster?.outputs() ?? ''}\n--- sdk fleet ---\n${fleet?.output().slice(-4000) ?? ''}`;
  const explain = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof Error) error.message = `${error.message}\n\n${outputs()}`;
      throw error;
    }
  };
  /** The server's latest revision and its evaluation of `flags` for every context, from `server`. */
  const serverView = async (server: Rest, flags: string[]) => {
    const variants: (string | null)[][] = [];
    let revision = -1;
    for (const context of CONTEXTS) {
      const evaluated = await server<{ revision: number; results: Record<string, { variant?: string }> }>(
        'POST',
        `/api/v1/envs/${ENV}/evaluate`,
        { context, flags },
      );
      expect(evaluated.status).toBe(200);
      revision = evaluated.body.revision;
      variants.push(flags.map((flag) => evaluated.body.results[flag]?.variant ?? null));
    }
    return { revision, variants };
  };
  /** Waits until every client is streaming at `revision`; returns the last report. */
  const converged = async (revision: number, size: number, timeoutMs = 30_000) => {
    let clients: ClientReport[] = [];
    await until(
      `all ${size} clients to stream revision ${revision}`,
      async () => {
        clients = await fleet!.report();
        return (
          clients.length === size && clients.every((c) => c.revision === revision && c.state === 'streaming')
        );
      },
      timeoutMs,
      250,
    ).catch((error: Error) => {
      const behind = clients.filter((c) => c.revision !== revision || c.state !== 'streaming');
      error.message += `; ${behind.length} behind, e.g. ${JSON.stringify(behind.slice(0, 3))}`;
      throw error;
    });
    return clients;
  };

  beforeAll(async () => {
    redis = await startTestRedis();
    // The replicas use the default key prefix, so they need a Redis of their own.
    if (!redis.controllable) return;
    cluster = await startCluster({ redis, replicas: 2 });
    await explain(async () => {
      const ports = cluster.servers.map((s) => Number(new URL(s.url).port));
      lb = await startLoadBalancer(ports, { probeMs: 200 });
      onB = cluster.rests[1]!;
      const sdkKey = await createSdkKey(cluster.rests[0]!);
      for (const flag of [rollout('checkout', 50), boolFlag('killable'), rollout('search', 10)]) {
        expect((await cluster.rests[0]!('PUT', `/api/v1/envs/${ENV}/flags/${flag.key}`, flag)).status).toBe(
          201,
        );
      }
      fleet = await SdkFleet.start({ url: lb.url, sdkKey, readyTimeoutMs: 30_000 }, FLEET);
    });
  }, 90_000);

  afterAll(async () => {
    await fleet?.close();
    await lb?.close();
    await cluster?.close();
    await redis?.dispose();
  }, 30_000);

  it('the dead replica’s clients reconnect to the other with jittered backoff, and all reach the latest revision', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    await explain(async () => {
      const flags = ['checkout', 'killable', 'search', 'after-kill'];
      const before = await fleet!.report();
      const start = (await serverView(onB, flags)).revision;
      expect(before.filter((c) => c.revision !== start || c.state !== 'streaming')).toEqual([]);
      const onA = lb.active(0);
      const onBBefore = lb.active(1);
      // Least-connections put about half on each replica.
      expect(onA + onBBefore).toBe(FLEET);
      expect(Math.min(onA, onBBefore)).toBeGreaterThan(FLEET * 0.4);

      await fleet!.loopDelay();
      const killedAt = Date.now();
      cluster.servers[0]!.child.kill('SIGKILL');
      // Writes right after the kill, through the surviving replica, while A's clients reconnect.
      const killable = await onB<Flag>('GET', `/api/v1/envs/${ENV}/flags/killable`);
      const checkout = await onB<Flag>('GET', `/api/v1/envs/${ENV}/flags/checkout`);
      const writes = await Promise.all([
        onB('PUT', `/api/v1/envs/${ENV}/flags/after-kill`, boolFlag('after-kill')),
        onB('POST', `/api/v1/envs/${ENV}/flags/killable/kill`, { reason: 'replica test' }),
        onB('PUT', `/api/v1/envs/${ENV}/flags/checkout`, rollout('checkout', 20), {
          'if-match': checkout.headers.get('etag')!,
        }),
      ]);
      expect(writes.map((w) => w.status)).toEqual([201, 200, 200]);
      expect(killable.body.killed).toBe(false);
      const latest = Math.max(...writes.map((w) => (w.body as unknown as Flag).version));
      expect(latest).toBe(start + 3);

      const clients = await converged(latest, FLEET);
      const convergedMs = Date.now() - killedAt;
      const loop = await fleet!.loopDelay();
      const lost = clients.filter((c) => c.lostAt.some((t) => t >= killedAt));
      const noticedMs = lost.map((c) => c.lostAt.find((t) => t >= killedAt)! - killedAt);
      const reconnectMs = lost.map((c) => (c.syncedAt.find((t) => t >= killedAt) ?? Number.NaN) - killedAt);
      const reachedLatest = clients.map((c) => c.revisions.find(([, r]) => r >= latest)![0] - killedAt);
      // Connections the balancer accepted after the kill: A's clients reconnecting (it hands any sent to
      // dead A on to B, as an LB retrying another backend does).
      const attempts = lb.accepted.filter((a) => a.at >= killedAt).map((a) => a.at - killedAt);
      const busiest = peak(attempts, WINDOW_MS);
      const histogram = new Map<number, number>();
      for (const at of attempts) {
        const bucket = Math.floor(at / WINDOW_MS) * WINDOW_MS;
        histogram.set(bucket, (histogram.get(bucket) ?? 0) + 1);
      }
      // Figures first, so a failed assertion below still shows them.
      console.info(
        [
          `replica kill: ${onA} clients on A, ${onBBefore} on B`,
          `reconnect attempts seen by the balancer: ${attempts.length} (sent to dead A and handed to B: ${
            lb.accepted.filter((a) => a.at >= killedAt && a.refusedBy.length > 0).length
          }); busiest ${WINDOW_MS} ms window: ${busiest} (bound ${onA / 2})`,
          `attempts per ${WINDOW_MS} ms after the kill: ${[...histogram.entries()]
            .sort(([a], [b]) => a - b)
            .map(([t, n]) => `${t}:${n}`)
            .join(' ')}`,
          `loss noticed after the kill: p50 ${quantile(noticedMs, 0.5)} ms, max ${Math.max(...noticedMs)} ms; ` +
            `fleet event-loop delay meanwhile: p99 ${loop.p99.toFixed(0)} ms, max ${loop.max.toFixed(0)} ms`,
          `reconnect time (kill → streaming again, sampled every 20 ms): p50 ${quantile(reconnectMs, 0.5)} ms, ` +
            `p90 ${quantile(reconnectMs, 0.9)} ms, max ${Math.max(...reconnectMs)} ms`,
          `kill → client at latest revision: p50 ${quantile(reachedLatest, 0.5)} ms, max ${Math.max(
            ...reachedLatest,
          )} ms; test saw all ${FLEET} converged after ${convergedMs} ms`,
        ].join('\n'),
      );

      // Exactly A's clients lost their stream, once, and stream again, now all through B.
      expect(lost.length).toBe(onA);
      expect(clients.filter((c) => c.lostAt.length > 0).length).toBe(onA);
      expect(lb.active(0)).toBe(0);
      expect(lb.active(1)).toBe(FLEET);
      expect(reconnectMs.filter((ms) => !Number.isFinite(ms))).toEqual([]);
      // Bounded generously: the expected figure is under BACKOFF_BASE_MS plus a handshake.
      expect(Math.max(...reconnectMs)).toBeLessThan(15_000);

      // No thundering herd. The first retry after a lost stream waits U[0, BACKOFF_BASE_MS): about
      // onA × 100/500 = 100 arrivals per 100 ms window (binomial, sd ≈ 9). Clients without jitter would
      // all arrive within the few ms it takes to notice the loss: all onA in one window. The bound, half
      // of that, leaves room for a loaded machine bunching timers without letting a herd through.
      expect(attempts.length).toBeGreaterThanOrEqual(onA);
      expect(busiest).toBeLessThan(onA / 2);
      expect(quantile(attempts, 0.9) - quantile(attempts, 0.1)).toBeGreaterThan(BACKOFF_BASE_MS / 4);

      // None ends on a stale revision, and all evaluate as the server does.
      const view = await serverView(onB, flags);
      expect(view.revision).toBe(latest);
      const evaluated = await fleet!.report({ flags, contexts: CONTEXTS });
      const disagree = evaluated.filter((c) => JSON.stringify(c.variants) !== JSON.stringify(view.variants));
      expect(disagree.map((c) => c.id)).toEqual([]);
      expect(evaluated.filter((c) => c.polling || c.stale || c.state !== 'streaming')).toEqual([]);

      // They stay there: nothing flaps or regresses a second later.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const later = await fleet!.report();
      expect(later.filter((c) => c.revision !== latest || c.state !== 'streaming')).toEqual([]);
      expect(later.reduce((n, c) => n + c.connects, 0)).toBe(clients.reduce((n, c) => n + c.connects, 0));
    });
  }, 60_000);

  it('the replica restarted takes new clients, and writes through either replica reach all of them', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    await explain(async () => {
      const restartedAt = Date.now();
      const a = await cluster.restart(0);
      const onA = cluster.rests[0]!;
      await until('the balancer to see A up again', () => lb.isUp(0), 10_000);
      const restartMs = Date.now() - restartedAt;

      // A serves the same state it never saw being written.
      const flags = ['checkout', 'killable', 'search', 'after-kill', 'after-restart'];
      const [fromA, fromB] = await Promise.all([serverView(onA, flags), serverView(onB, flags)]);
      expect(fromA).toEqual(fromB);

      const written = await onA<Flag>(
        'PUT',
        `/api/v1/envs/${ENV}/flags/after-restart`,
        boolFlag('after-restart'),
      );
      expect(written.status).toBe(201);
      await converged(written.body.version, FLEET);

      // New clients go to the emptier replica: the restarted one.
      const extra = 50;
      const acceptedBefore = lb.accepted.length;
      await fleet!.add(extra);
      const newcomers = lb.accepted.slice(acceptedBefore);
      expect(newcomers.filter((c) => c.backend === 0)).toHaveLength(extra);
      expect(lb.active(0)).toBe(extra);

      const revived = await onB<Flag>('POST', `/api/v1/envs/${ENV}/flags/killable/revive`, {
        reason: 'done',
      });
      expect(revived.status).toBe(200);
      const clients = await converged(revived.body.version, FLEET + extra);
      const view = await serverView(onA, flags);
      expect(view).toEqual(await serverView(onB, flags));
      const evaluated = await fleet!.report({ flags, contexts: CONTEXTS });
      expect(evaluated.filter((c) => JSON.stringify(c.variants) !== JSON.stringify(view.variants))).toEqual(
        [],
      );
      expect(
        clients.filter((c) => c.polling || c.errors.some((e) => /UNAUTHORIZED|FORBIDDEN|PROTOCOL/.test(e))),
      ).toEqual([]);
      console.info(
        `replica restart: A listening and seen up by the balancer ${restartMs} ms after restart; ` +
          `${a.url} took ${extra} new clients`,
      );
    });
  }, 60_000);
});
