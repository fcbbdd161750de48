import type { Incident } from '@vigil/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { hang, type RawRequest } from '../../services/guardian/test/notify/receivers.js';
import { type NotifyReceivers, startNotifyReceivers } from './helpers/guardian-receivers.js';
import {
  ENV,
  type GuardianWorld,
  guardianConfig,
  LOCK_TTL_MS,
  rolloutFlag,
  startGuardianWorld,
  withGuardianOutput,
} from './helpers/guardian-world.js';

type Integration = 'webhook' | 'pagerduty' | 'incident-io' | 'slack';
const INTEGRATIONS: Integration[] = ['webhook', 'pagerduty', 'incident-io', 'slack'];

/** The idempotency/dedup key each service sees on a request. */
const keySeen: Record<Integration, (request: RawRequest) => string | undefined> = {
  webhook: (r) => String(r.headers['x-vigil-delivery']),
  pagerduty: (r) => (JSON.parse(r.body) as { dedup_key?: string }).dedup_key,
  'incident-io': (r) => (JSON.parse(r.body) as { idempotency_key?: string }).idempotency_key,
  slack: (r) =>
    (JSON.parse(r.body) as { blocks: { type: string; block_id?: string }[] }).blocks.find(
      (b) => b.type === 'header',
    )?.block_id,
};

/** Everything still in the outbox: pending, waiting for a retry, or failed for good. */
const outbox = (w: GuardianWorld) => w.store.dueOutbox(Number.MAX_SAFE_INTEGER, 100);

const notifications = (incident: Incident) => incident.timeline.filter((e) => e.kind === 'notification');

/** A flag served to half the traffic whose `on` variant fails 30% of requests (control: 0.5%). */
async function regressingFlag(w: GuardianWorld): Promise<void> {
  const created = await w.api('POST', `/api/v1/envs/${ENV}/flags`, rolloutFlag('checkout', 50));
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const client = await w.sdk();
  w.traffic(client, 'checkout', 600, (variant) => (variant === 'on' ? 0.3 : 0.005));
}

/** The one incident, once the guardian killed the flag and opened it. */
async function openedIncident(w: GuardianWorld): Promise<Incident> {
  await w.until('the guardian to kill the flag and open the incident', async () => {
    const flag = await w.flag('checkout');
    return flag.killed && (await w.incidents()).some((i) => i.notified?.includes('opened'));
  });
  const incidents = await w.incidents();
  expect(incidents).toHaveLength(1);
  return incidents[0]!;
}

/**
 * Each integration heard of the incident once after de-duplication, with one key on every attempt,
 * every payload passed its receiver's checks, the timeline has one `notification` entry per
 * integration, and the outbox is empty.
 */
async function expectNotifiedOnce(w: GuardianWorld, r: NotifyReceivers, attempts: number): Promise<Incident> {
  const [incident, ...others] = await w.incidents();
  expect(others).toEqual([]);
  const id = incident!.id;
  for (const name of INTEGRATIONS) {
    const receiver = r.receivers[name];
    expect(
      receiver.rejected.map((x) => x.reason),
      name,
    ).toEqual([]);
    expect(receiver.attempts, name).toHaveLength(attempts);
    expect(new Set(receiver.attempts.map(keySeen[name])).size, `${name}: one key on every attempt`).toBe(1);
  }
  expect(r.receivers.webhook.attempts.map(keySeen.webhook)).toEqual(
    Array(attempts).fill(`webhook:${id}:opened`),
  );
  expect([...r.hook.deliveries.values()].map((d) => [d.type, d.incident.id])).toEqual([
    ['incident.opened', id],
  ]);
  expect(r.hook.duplicates()).toBe(attempts - 1);
  expect([...r.pd.alerts.values()].map((a) => [a.dedupKey, a.status])).toEqual([
    [`vigil-${id}`, 'triggered'],
  ]);
  expect(r.iio.creates()).toBe(attempts);
  expect([...r.iio.incidents.values()].map((i) => [i.idempotencyKey, i.severityId])).toEqual([
    [`vigil-${id}`, `${incident!.severity.toUpperCase()}-ID`],
  ]);
  expect(r.slack.messages.size).toBe(1);

  expect(incident!.timeline.map((e) => e.kind)).toEqual([
    'change',
    'detection',
    'kill',
    'notification',
    'notification',
    'notification',
    'notification',
  ]);
  const entries = notifications(incident!);
  expect(entries.map((e) => e.data?.deliveryId).sort()).toEqual(
    INTEGRATIONS.map((name) => `${name}:${id}:opened`).sort(),
  );
  for (const entry of entries) {
    const name = entry.data?.integration as Integration;
    expect(entry.data?.key, name).toBe(keySeen[name](r.receivers[name].attempts[0]!));
  }
  expect(entries.find((e) => e.data?.integration === 'incident-io')?.data?.ref).toBe(
    [...r.iio.incidents.keys()][0],
  );
  expect(incident!.notified).toEqual(['opened']);
  expect(await outbox(w)).toEqual([]);
  return incident!;
}

/** Waits until every integration is notified, then long enough for a duplicate to show (two outbox polls). */
async function settled(w: GuardianWorld, r: NotifyReceivers, attempts: number): Promise<void> {
  await w.until('every integration to be notified and the outbox to drain', async () => {
    const [incident] = await w.incidents();
    return (
      incident !== undefined &&
      notifications(incident).length === INTEGRATIONS.length &&
      (await outbox(w)).length === 0 &&
      INTEGRATIONS.every((name) => r.receivers[name].attempts.length >= attempts)
    );
  });
  await new Promise((resolve) => setTimeout(resolve, 2000));
}

describe('guardian process killed mid-notification', () => {
  let redis: TestRedis;
  let world: GuardianWorld | undefined;
  let receivers: NotifyReceivers | undefined;

  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterEach(async () => {
    await world?.close();
    await receivers?.close();
    world = undefined;
    receivers = undefined;
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  it('killed while every integration holds its first request open, a restarted guardian redelivers each with the same key, one incident at each service', async () => {
    world = await startGuardianWorld(redis);
    receivers = await startNotifyReceivers();
    const [w, r] = [world, receivers];
    await withGuardianOutput(w, async () => {
      // Each service accepts the first request, acts on it, and never answers.
      for (const name of INTEGRATIONS) r.receivers[name].faults = [hang];
      const config = await w.writeConfig(guardianConfig({ notify: r.notify }));
      await regressingFlag(w);
      const first = w.spawnGuardian('g1', config, { env: r.env });
      await first.running();
      const opened = await openedIncident(w);
      await w.until('every integration to hold a request', () =>
        INTEGRATIONS.every((name) => r.receivers[name].attempts.length === 1),
      );
      // In flight: nothing recorded as delivered or attempted yet.
      expect(notifications((await w.incidents())[0]!)).toEqual([]);
      const pending = await outbox(w);
      expect(pending.map((item) => [item.id, item.attempts]).sort()).toEqual(
        INTEGRATIONS.map((name) => [`${name}:${opened.id}:opened`, 0]).sort(),
      );

      await first.kill();
      const killedAt = Date.now();
      const lock = await w.lock('notify-outbox');
      expect(lock.owner).toBe('g1');
      expect(lock.ttlMs).toBeLessThanOrEqual(LOCK_TTL_MS);
      const second = w.spawnGuardian('g2', config, { env: r.env });
      await second.running();
      await w.until('every integration to get the request again', () =>
        INTEGRATIONS.every((name) => r.receivers[name].attempts.length === 2),
      );
      const redeliveredAfter = Date.now() - killedAt;
      await settled(w, r, 2);

      const incident = await expectNotifiedOnce(w, r, 2);
      // The attempt that died with g1 was never recorded: g2's is the first the outbox counts.
      expect(notifications(incident).map((e) => e.data?.attempts)).toEqual([1, 1, 1, 1]);
      expect(second.logs().filter((l) => l.msg === 'notification delivered')).toHaveLength(4);
      expect(first.logs().filter((l) => l.msg === 'notification delivered')).toHaveLength(0);
      expect((await w.flag('checkout')).killed).toBe(true);
      console.info(
        `[guardian-notify-crash] hung requests: outbox lock ttl left ${lock.ttlMs} ms at the kill; ` +
          `all four redelivered ${redeliveredAfter} ms after the kill; attempts per receiver: ` +
          INTEGRATIONS.map((name) => `${name} ${r.receivers[name].attempts.length}`).join(', '),
      );
    });
  }, 90_000);

  it('killed after the incident was opened and before any send attempt, a restarted guardian delivers each notification exactly once', async () => {
    world = await startGuardianWorld(redis);
    receivers = await startNotifyReceivers();
    const [w, r] = [world, receivers];
    await withGuardianOutput(w, async () => {
      // Another, stalled guardian holds the outbox lock: g1 enqueues but cannot send.
      await w.raw.set(`${w.prefix}lock:notify-outbox`, 'stalled-guardian', 'PX', 60_000);
      const config = await w.writeConfig(guardianConfig({ notify: r.notify }));
      await regressingFlag(w);
      const first = w.spawnGuardian('g1', config, { env: r.env });
      await first.running();
      const opened = await openedIncident(w);
      const pending = await outbox(w);
      expect(pending.map((item) => [item.id, item.attempts]).sort()).toEqual(
        INTEGRATIONS.map((name) => [`${name}:${opened.id}:opened`, 0]).sort(),
      );
      for (const name of INTEGRATIONS) expect(r.receivers[name].attempts, name).toEqual([]);

      await first.kill();
      await w.raw.del(`${w.prefix}lock:notify-outbox`);
      const second = w.spawnGuardian('g2', config, { env: r.env });
      await second.running();
      await settled(w, r, 1);

      const incident = await expectNotifiedOnce(w, r, 1);
      expect(notifications(incident).map((e) => e.data?.attempts)).toEqual([1, 1, 1, 1]);
      expect(incident.id).toBe(opened.id);
    });
  }, 90_000);

  it('killed while the services are unreachable, a restarted guardian carries on with the recorded attempts and delivers each once', async () => {
    world = await startGuardianWorld(redis);
    receivers = await startNotifyReceivers();
    const [w, r] = [world, receivers];
    await withGuardianOutput(w, async () => {
      for (const proxy of r.proxies) proxy.cut();
      const config = await w.writeConfig(guardianConfig({ notify: r.notify }));
      await regressingFlag(w);
      const first = w.spawnGuardian('g1', config, { env: r.env });
      await first.running();
      await openedIncident(w);
      await w.until('every delivery to have failed twice', async () => {
        const items = await outbox(w);
        return items.length === INTEGRATIONS.length && items.every((item) => item.attempts >= 2);
      });
      await first.kill();
      const recorded = new Map((await outbox(w)).map((item) => [item.target, item.attempts]));
      expect([...recorded.values()].every((n) => n >= 2)).toBe(true);
      for (const item of await outbox(w)) expect(item.lastError, item.id).toMatch(/^network error/);

      for (const proxy of r.proxies) proxy.restore();
      const second = w.spawnGuardian('g2', config, { env: r.env });
      await second.running();
      await settled(w, r, 1);

      const incident = await expectNotifiedOnce(w, r, 1);
      for (const entry of notifications(incident)) {
        const name = entry.data?.integration as string;
        // Read after the kill, so nothing was attempted since: g2's attempt is the next one.
        expect(entry.data?.attempts, name).toBe(recorded.get(name)! + 1);
      }
      console.info(
        `[guardian-notify-crash] unreachable services: attempts recorded before the kill ` +
          `${[...recorded].map(([name, n]) => `${name} ${n}`).join(', ')}; delivered on attempt ` +
          notifications(incident)
            .map((e) => `${e.data?.integration} ${e.data?.attempts}`)
            .join(', '),
      );
    });
  }, 90_000);
});
