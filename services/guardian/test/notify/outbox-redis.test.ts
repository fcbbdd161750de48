import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RedisStore } from '@vigil/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidentEvent } from '../../src/notify/events.js';
import { iso, lifecycle, T0 } from './fixtures.js';
import { fail429, fail500, hang, reset } from './receivers.js';
import { drain, makeOutbox, startWorld, type World } from './world.js';

interface TestRedis {
  url: string;
  dispose(): Promise<void>;
}

// The flag server's helper starts a private redis-server (or wraps REDIS_URL). It lives outside this
// package's rootDir, so it is loaded by a path TypeScript does not follow.
const HELPER = '../../../flag-server/test/helpers/redis.js';
const helperAvailable =
  existsSync(fileURLToPath(new URL(HELPER.replace(/\.js$/, '.ts'), import.meta.url))) &&
  (process.env.REDIS_URL !== undefined ||
    existsSync(process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server'));

describe.skipIf(!helperAvailable)('notification outbox on the Redis store', () => {
  let redis: TestRedis;
  let world: World;
  const prefix = `vigil-notify-test-${process.pid}:`;

  beforeAll(async () => {
    const helper = (await import(/* @vite-ignore */ HELPER)) as { startTestRedis(): Promise<TestRedis> };
    redis = await helper.startTestRedis();
    world = await startWorld();
  });

  afterAll(async () => {
    await world?.close();
    await redis?.dispose();
  });

  it('survives a restart and delivers each event exactly once', async () => {
    const { pd, iio, slack, hook, clock } = world;
    pd.receiver.faults = [fail500, fail429(7), reset];
    iio.receiver.faults = [fail500, fail429(7), hang];
    slack.receiver.faults = [fail500, fail429(7), reset];
    hook.receiver.faults = [fail500, fail429(7), hang];

    let store = new RedisStore({ url: redis.url, prefix });
    await store.start();
    const a = makeOutbox(world, store);
    const { opened, acknowledged, resolved } = lifecycle();
    await a.outbox.enqueue(incidentEvent('opened', opened));
    await a.outbox.enqueue(incidentEvent('escalated', opened, { at: iso(T0 + 240_000) }));
    await a.outbox.enqueue(incidentEvent('acknowledged', acknowledged));
    await a.outbox.enqueue(incidentEvent('resolved', resolved));
    await a.outbox.enqueue(incidentEvent('resolved', resolved));
    expect(await a.outbox.deliverDue(clock.t)).toMatchObject({ retried: 4, delivered: 0, waiting: 12 });
    clock.t += 500;
    expect(await a.outbox.deliverDue(clock.t)).toMatchObject({ retried: 4 });
    const retryAfter = (await a.outbox.pending(100)).filter((item) => item.id.endsWith(':opened'));
    expect(retryAfter.map((item) => item.notBefore - clock.t)).toEqual([7000, 7000, 7000, 7000]);
    await a.outbox.stop();
    await store.close();

    store = new RedisStore({ url: redis.url, prefix });
    await store.start();
    try {
      const b = makeOutbox(world, store);
      expect(await b.outbox.pending(100)).toHaveLength(16);
      await drain(b.outbox, clock);
      expect(b.seen.delivered).toHaveLength(16);
      expect(b.seen.failed).toEqual([]);
    } finally {
      await store.close();
    }

    for (const receiver of world.receivers) {
      expect(receiver.rejected.map((r) => r.reason)).toEqual([]);
      expect(receiver.attempts).toHaveLength(7);
    }
    expect([...pd.alerts.values()].map((alert) => [alert.status, alert.actions.length])).toEqual([
      ['resolved', 4],
    ]);
    expect(pd.dropped).toEqual([]);
    expect(iio.incidents.size).toBe(1);
    expect(slack.messages.size).toBe(4);
    expect(hook.deliveries.size).toBe(4);
    expect(hook.duplicates()).toBe(1);
  });
});
