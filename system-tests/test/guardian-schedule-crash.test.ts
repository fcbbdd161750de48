import type { AuditEntry, Flag, Schedule } from '@vigil/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import {
  ENV,
  type GuardianProcess,
  type GuardianWorld,
  guardianConfig,
  LOCK_TTL_MS,
  rolloutFlag,
  startGuardianWorld,
  withGuardianOutput,
} from './helpers/guardian-world.js';

const HOLD_MS = 8000;
const STEP_REASONS = [
  'step 1 of 3: 5% of contexts get on',
  'step 2 of 3: 20% of contexts get on',
  'step 3 of 3: 100% of contexts get on',
  'completed at 100% after a healthy hold',
];

const sleepUntil = (at: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** The guardian's schedule writes, oldest first. */
const scheduleWrites = (audit: AuditEntry[]) =>
  audit.filter((e) => e.action === 'flag.schedule' && e.actor === 'guardian');

/** The schedule a write left on the flag. */
const scheduleAfter = (entry: AuditEntry) => (entry.after as Flag).schedule as Schedule;

/** The schedule messages a guardian process logged (`schedule <reason>`), without the prefix. */
const stepsLoggedBy = (guardian: GuardianProcess) =>
  guardian
    .logs()
    .filter((l) => l.msg.startsWith('schedule '))
    .map((l) => l.msg.slice('schedule '.length));

/** A flag under a three-step schedule with healthy SDK traffic (600 requests/s, no errors). */
async function scheduledFlag(world: GuardianWorld, holdMs: number): Promise<void> {
  const created = await world.api('POST', `/api/v1/envs/${ENV}/flags`, rolloutFlag('checkout', 0));
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const client = await world.sdk();
  world.traffic(client, 'checkout', 600, () => 0);
  const hold = `${holdMs / 1000}s`;
  const put = await world.api('PUT', `/api/v1/envs/${ENV}/flags/checkout/schedule`, {
    variant: 'on',
    steps: [
      { percent: 5, hold },
      { percent: 20, hold },
      { percent: 100, hold: 0 },
    ],
  });
  expect(put.status, JSON.stringify(put.body)).toBe(200);
}

/** Each step's write exactly once, in order, on increasing versions, and the flag completed at 100%. */
async function expectEachStepOnce(world: GuardianWorld): Promise<AuditEntry[]> {
  const writes = scheduleWrites(await world.audit('checkout'));
  expect(writes.map((e) => e.reason)).toEqual(STEP_REASONS);
  const revisions = writes.map((e) => e.revision ?? -1);
  expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
  expect(new Set(revisions).size).toBe(revisions.length);
  const done = await world.flag('checkout');
  expect(done.schedule).toMatchObject({ status: 'completed', stepIndex: 2 });
  expect(done.version).toBe(revisions.at(-1));
  return writes;
}

describe('guardian process killed mid-schedule', () => {
  let redis: TestRedis;
  let world: GuardianWorld | undefined;

  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterEach(async () => {
    await world?.close();
    world = undefined;
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  it('a SIGKILLed guardian restarted mid-hold resumes the same step with the hold left and applies each step once', async () => {
    world = await startGuardianWorld(redis);
    const w = world;
    await withGuardianOutput(w, async () => {
      await scheduledFlag(w, HOLD_MS);
      const config = await w.writeConfig(guardianConfig());
      const first = w.spawnGuardian('g1', config);
      await first.running();
      await w.until(
        'the first guardian to reach step 2',
        async () => (await w.flag('checkout')).schedule?.stepIndex === 1,
        40_000,
      );
      const atStep = (await w.flag('checkout')).schedule!;
      const stepStarted = Date.parse(atStep.stepStartedAt!);
      const holdEnds = stepStarted + HOLD_MS;

      // Killed 2.5 s into the 8 s hold; its lock stays behind until its time to live runs out.
      await sleepUntil(stepStarted + 2500);
      expect((await w.flag('checkout')).schedule).toEqual(atStep);
      await first.kill();
      const killedAt = Date.now();
      const lock = await w.lock('schedules');
      expect(lock.owner).toBe('g1');
      expect(lock.ttlMs).toBeGreaterThan(0);
      expect(lock.ttlMs).toBeLessThanOrEqual(LOCK_TTL_MS);
      const lockFreeAt = killedAt + lock.ttlMs;

      const second = w.spawnGuardian('g2', config);
      await second.running();
      const runningAt = Date.now();
      await w.until(
        'the restarted guardian to complete the schedule',
        async () => (await w.flag('checkout')).schedule?.status === 'completed',
        40_000,
      );

      const writes = await expectEachStepOnce(w);
      // Steps 1 and 2 by the first process, step 3 and the completion by the restarted one.
      expect(stepsLoggedBy(first)).toEqual(STEP_REASONS.slice(0, 2));
      expect(stepsLoggedBy(second)).toEqual(STEP_REASONS.slice(2));
      // Step 2 was never written again: the restarted guardian kept its start time.
      expect(scheduleAfter(writes[1]!).stepStartedAt).toBe(atStep.stepStartedAt);

      const advancedAt = Date.parse(scheduleAfter(writes[2]!).stepStartedAt!);
      // Not before the hold ended (not skipped), and sooner than a hold restarted by the takeover
      // could end: the takeover came at the earliest when the dead guardian's lock expired.
      expect(advancedAt).toBeGreaterThanOrEqual(holdEnds);
      expect(advancedAt).toBeGreaterThanOrEqual(lockFreeAt);
      expect(advancedAt).toBeLessThan(lockFreeAt + HOLD_MS);
      console.info(
        `[guardian-schedule-crash] killed ${killedAt - stepStarted} ms into a ${HOLD_MS} ms hold; ` +
          `lock ttl left ${lock.ttlMs} ms; restarted guardian running ${runningAt - killedAt} ms after the kill; ` +
          `advanced ${advancedAt - holdEnds} ms after the hold's end ` +
          `(a restarted hold would end ≥ ${lockFreeAt + HOLD_MS - holdEnds} ms after it)`,
      );
    });
  }, 90_000);

  it('with two guardians, killing the lock holder mid-hold hands the schedule to the other once the lock expires, with no step applied twice', async () => {
    world = await startGuardianWorld(redis);
    const w = world;
    const hold = 6000;
    await withGuardianOutput(w, async () => {
      await scheduledFlag(w, hold);
      const config = await w.writeConfig(guardianConfig());
      const guardians = [w.spawnGuardian('ga', config), w.spawnGuardian('gb', config)];
      await Promise.all(guardians.map((g) => g.running()));
      await w.until(
        'a guardian to start the schedule',
        async () => (await w.flag('checkout')).schedule?.stepIndex === 0,
        40_000,
      );
      const atStep = (await w.flag('checkout')).schedule!;
      const holdEnds = Date.parse(atStep.stepStartedAt!) + hold;

      // Killed 1 s before the hold ends, so its lock outlives the hold: the other must wait for it.
      await sleepUntil(holdEnds - 1000);
      const { owner } = await w.lock('schedules');
      const holder = guardians.find((g) => g.id === owner);
      const standby = guardians.find((g) => g.id !== owner)!;
      expect(holder, `lock owner ${owner}`).toBeDefined();
      expect((await w.flag('checkout')).schedule).toEqual(atStep);
      expect(stepsLoggedBy(standby)).toEqual([]);
      await holder!.kill();
      const killedAt = Date.now();
      const lock = await w.lock('schedules');
      expect(lock.owner).toBe(holder!.id);
      const lockFreeAt = killedAt + lock.ttlMs;

      await w.until(
        'the standby guardian to complete the schedule',
        async () => (await w.flag('checkout')).schedule?.status === 'completed',
        40_000,
      );
      const writes = await expectEachStepOnce(w);
      expect(stepsLoggedBy(holder!)).toEqual(STEP_REASONS.slice(0, 1));
      expect(stepsLoggedBy(standby)).toEqual(STEP_REASONS.slice(1));
      expect((await w.lock('schedules')).owner).toBe(standby.id);

      const advancedAt = Date.parse(scheduleAfter(writes[1]!).stepStartedAt!);
      expect(advancedAt).toBeGreaterThanOrEqual(holdEnds);
      expect(advancedAt).toBeGreaterThanOrEqual(lockFreeAt);
      expect(advancedAt).toBeLessThan(lockFreeAt + hold);
      console.info(
        `[guardian-schedule-crash] lock holder ${holder!.id} killed ${holdEnds - killedAt} ms before the hold's end ` +
          `with ${lock.ttlMs} ms of lock left; ${standby.id} advanced ${advancedAt - lockFreeAt} ms after the lock ` +
          `expired (${advancedAt - holdEnds} ms after the hold's end)`,
      );
    });
  }, 90_000);
});
