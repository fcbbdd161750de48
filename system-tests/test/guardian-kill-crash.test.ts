import type { Incident } from '@vigil/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { type NotifyReceivers, startNotifyReceivers } from './helpers/guardian-receivers.js';
import { type RedisRelay, startRedisRelay } from './helpers/guardian-redis-relay.js';
import {
  ENV,
  type GuardianProcess,
  type GuardianWorld,
  guardianConfig,
  rolloutFlag,
  startGuardianWorld,
  withGuardianOutput,
} from './helpers/guardian-world.js';

const INTEGRATIONS = ['webhook', 'pagerduty', 'incident-io', 'slack'] as const;

/** `promise`, or a failure naming `what` after `timeoutMs`. */
async function within<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A flag served to half the traffic whose `on` variant fails 30% of requests (control: 0.5%); its version. */
async function regressingFlag(w: GuardianWorld): Promise<number> {
  const created = await w.api<{ version: number }>(
    'POST',
    `/api/v1/envs/${ENV}/flags`,
    rolloutFlag('checkout', 50),
  );
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const client = await w.sdk();
  w.traffic(client, 'checkout', 600, (variant) => (variant === 'on' ? 0.3 : 0.005));
  return created.body.version;
}

/** What the detection entry says of the kill the verdict called for (`pending`, `done`, `skipped`). */
const killState = (incident: Incident) => incident.timeline.find((e) => e.kind === 'detection')?.data?.kill;

/** How the restarted guardian finished the work, from its logs, and how long it took. */
function report(window: string, second: GuardianProcess): void {
  const done = second
    .logs()
    .filter((l) => /^(flag killed|incident opened|notification delivered)/.test(l.msg));
  const last = done.at(-1)?.time ?? Date.now();
  console.info(
    `[guardian-kill-crash] ${window}: restarted guardian finished in ${last - second.spawnedAt} ms from spawn: ` +
      [...new Set(done.map((l) => l.msg.replace(/:.*$/, '')))].join('; '),
  );
}

/** One kill, one incident for the episode with the kill on its timeline, each integration told once. */
async function expectOneKillOneIncident(
  w: GuardianWorld,
  r: NotifyReceivers,
  version: number,
): Promise<Incident> {
  await w.until('the incident to be settled and notified everywhere', async () => {
    const [incident] = await w.incidents();
    return (
      incident !== undefined &&
      incident.timeline.filter((e) => e.kind === 'notification').length === INTEGRATIONS.length &&
      (await w.store.dueOutbox(Number.MAX_SAFE_INTEGER, 10)).length === 0
    );
  });
  // Two more outbox polls for a duplicate to show.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const incidents = await w.incidents();
  expect(incidents).toHaveLength(1);
  const incident = incidents[0]!;
  const flag = await w.flag('checkout');
  expect(flag).toMatchObject({ killed: true, killedBy: 'guardian' });
  expect(flag.killReason).toMatch(new RegExp(`^sev2 regression of version ${version}: `));
  expect(incident).toMatchObject({ flag: 'checkout', flagVersion: version, killed: true, status: 'open' });
  expect(incident.mitigatedAt).toBe(flag.killedAt);
  expect(killState(incident)).toBe('done');
  expect(incident.summary).toMatch(/The guardian killed the flag/);
  expect(incident.timeline.map((e) => e.kind)).toEqual([
    'change',
    'detection',
    'kill',
    ...INTEGRATIONS.map(() => 'notification'),
  ]);
  expect(incident.notified).toEqual(['opened']);
  expect((await w.store.getEpisode(`${ENV}:checkout:${version}`))?.incidentId).toBe(incident.id);
  const kills = (await w.audit('checkout')).filter((e) => e.action === 'flag.kill');
  expect(kills.map((e) => e.actor)).toEqual(['guardian']);
  for (const name of INTEGRATIONS) {
    const receiver = r.receivers[name];
    expect(
      receiver.rejected.map((x) => x.reason),
      name,
    ).toEqual([]);
    expect(receiver.attempts, name).toHaveLength(1);
  }
  expect([...r.hook.deliveries.values()].map((d) => [d.type, d.incident.id, d.incident.killed])).toEqual([
    ['incident.opened', incident.id, true],
  ]);
  expect([...r.pd.alerts.keys()]).toEqual([`vigil-${incident.id}`]);
  expect(r.iio.incidents.size).toBe(1);
  expect(r.slack.messages.size).toBe(1);
  return incident;
}

describe('guardian process killed while it kills a flag', () => {
  let redis: TestRedis;
  let world: GuardianWorld | undefined;
  let receivers: NotifyReceivers | undefined;
  let relay: RedisRelay | undefined;

  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterEach(async () => {
    await world?.close();
    await receivers?.close();
    await relay?.close();
    world = undefined;
    receivers = undefined;
    relay = undefined;
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  /**
   * Runs a first guardian whose Redis traffic freezes right after the command `matches` accepts,
   * SIGKILLs it there, checks the store as the crash left it, then starts a second guardian.
   */
  async function crashAt(
    matches: (prefix: string) => (args: string[], connection: number) => boolean,
    leftBehind: (w: GuardianWorld, version: number) => Promise<void>,
  ): Promise<{ w: GuardianWorld; r: NotifyReceivers; version: number; second: GuardianProcess }> {
    world = await startGuardianWorld(redis);
    receivers = await startNotifyReceivers();
    relay = await startRedisRelay(redis.port, matches(world.prefix));
    const [w, r, rl] = [world, receivers, relay];
    return withGuardianOutput(w, async () => {
      const config = await w.writeConfig(guardianConfig({ notify: r.notify }));
      const version = await regressingFlag(w);
      const first = w.spawnGuardian('g1', config, { env: r.env, redisUrl: rl.url });
      await first.running();
      await within('the first guardian to reach the crash point', rl.tripped, 30_000);
      await first.kill();
      await leftBehind(w, version);
      for (const name of INTEGRATIONS) expect(r.receivers[name].attempts, name).toEqual([]);
      const second = w.spawnGuardian('g2', config, { env: r.env });
      await second.running();
      return { w, r, version, second };
    });
  }

  it('killed after claiming the episode, before writing its incident, a restarted guardian kills the flag once and writes that episode’s incident', async () => {
    let claimed: string | undefined;
    const { w, r, version, second } = await crashAt(
      (prefix) => (args) =>
        args[0]?.toUpperCase() === 'SET' && args[1]?.startsWith(`${prefix}episode:`) === true,
      async (w, version) => {
        claimed = (await w.store.getEpisode(`${ENV}:checkout:${version}`))?.incidentId;
        expect(claimed).toBeDefined();
        expect(await w.incidents()).toEqual([]);
        expect((await w.flag('checkout')).killed).toBe(false);
      },
    );
    await withGuardianOutput(w, async () => {
      const incident = await expectOneKillOneIncident(w, r, version);
      expect(incident.id).toBe(claimed);
      report('after the claim', second);
    });
  }, 90_000);

  it('killed after writing the incident, before the kill, a restarted guardian kills the flag once and settles that incident', async () => {
    const incidentWriters = new Set<number>();
    let drafted: Incident | undefined;
    const { w, r, version, second } = await crashAt(
      // The incident is written in a MULTI: freeze once its EXEC went through.
      (prefix) => (args, connection) => {
        const command = args[0]?.toUpperCase();
        if (command === 'HSET' && args[1] === `${prefix}incidents`) incidentWriters.add(connection);
        return command === 'EXEC' && incidentWriters.has(connection);
      },
      async (w) => {
        [drafted] = await w.incidents();
        expect(drafted).toMatchObject({ killed: false });
        expect(killState(drafted!)).toBe('pending');
        expect(drafted!.notified).toBeUndefined();
        expect((await w.flag('checkout')).killed).toBe(false);
      },
    );
    await withGuardianOutput(w, async () => {
      const incident = await expectOneKillOneIncident(w, r, version);
      expect(incident.id).toBe(drafted!.id);
      expect(incident.detectedAt).toBe(drafted!.detectedAt);
      report('after the incident write', second);
    });
  }, 90_000);

  it('killed right after its kill switch write reached Redis, a restarted guardian records the kill on the incident and notifies it once', async () => {
    let drafted: Incident | undefined;
    const { w, r, version, second } = await crashAt(
      () => (args) => args.includes('flag.kill'),
      async (w) => {
        [drafted] = await w.incidents();
        expect(drafted).toMatchObject({ killed: false });
        expect(killState(drafted!)).toBe('pending');
        expect(await w.store.dueOutbox(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
        expect((await w.flag('checkout')).killed).toBe(true);
      },
    );
    await withGuardianOutput(w, async () => {
      const incident = await expectOneKillOneIncident(w, r, version);
      expect(incident.id).toBe(drafted!.id);
      report('after the kill', second);
    });
  }, 90_000);
});
