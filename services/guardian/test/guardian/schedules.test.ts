import type { AuditEntry, Flag } from '@vigil/proto';
import { EmbeddedStore } from '@vigil/server';
import { afterEach, describe, expect, it } from 'vitest';
import type { Guardian } from '../../src/guardian.js';
import {
  asServed,
  Clock,
  ENV,
  onPercent,
  rolloutFlag,
  runSeconds,
  type Stack,
  startStack,
} from './harness.js';

const STEPS = [
  { percent: 5, hold: '30s' },
  { percent: 20, hold: '30s' },
  // The last step needs no hold: it defaults to 0.
  { percent: 100 },
];

async function scheduled(stack: Stack, key = 'checkout', steps: unknown = STEPS): Promise<Flag> {
  await stack.store.putFlag(ENV, rolloutFlag(key, 0), undefined, { actor: 'alice' });
  const put = await stack.request('PUT', `/api/v1/envs/${ENV}/flags/${key}/schedule`, {
    body: { variant: 'on', steps },
  });
  expect(put.statusCode, put.body).toBe(200);
  return put.json() as Flag;
}

/** The clock times (seconds since `from`) at which the served percentage changed, with the new value. */
async function trace(
  stack: Stack,
  guardian: Guardian,
  seconds: number,
  onRate = 0.005,
  key = 'checkout',
): Promise<[number, number][]> {
  const from = stack.clock.t;
  const changes: [number, number][] = [];
  let last = onPercent(await stack.flag(key));
  const second = asServed(stack, key, onRate, 0.005);
  await runSeconds(
    stack,
    guardian,
    seconds,
    async (s) => {
      await second(s);
    },
    async () => {
      const now = onPercent(await stack.flag(key));
      if (now !== last) changes.push([(stack.clock.t - from) / 1000, now]);
      last = now;
      return (await stack.flag(key)).schedule?.status === 'completed';
    },
  );
  return changes;
}

describe('guardian: progressive schedules', () => {
  let stack: Stack;
  afterEach(async () => {
    await stack?.close();
  });

  it('advances after each healthy hold, audits each step as the guardian, and completes at 100%', async () => {
    stack = await startStack();
    const flag = await scheduled(stack);
    expect(flag.schedule).toMatchObject({ status: 'pending', stepIndex: -1, variant: 'on' });
    const guardian = stack.guardian();
    const changes = await trace(stack, guardian, 200);
    // Step 1 at the first tick, step 2 once its 30 s hold passed, 100% 30 s later, then completed.
    expect(changes).toEqual([
      [1, 5],
      [31, 20],
      [61, 100],
    ]);
    const done = await stack.flag('checkout');
    expect(done.schedule).toMatchObject({ status: 'completed', stepIndex: 2 });
    expect(done.fallthrough).toEqual({
      rollout: {
        weights: [
          { variant: 'on', weight: 100_000 },
          { variant: 'off', weight: 0 },
        ],
      },
    });
    const audit = await stack.store.audit(ENV, { limit: 10, target: 'checkout' });
    const steps = audit.filter((e: AuditEntry) => e.action === 'flag.schedule' && e.actor === 'guardian');
    expect(steps.map((e) => e.reason)).toEqual([
      'completed at 100% after a healthy hold',
      'step 3 of 3: 100% of contexts get on',
      'step 2 of 3: 20% of contexts get on',
      'step 1 of 3: 5% of contexts get on',
    ]);
    expect(audit.at(-1)).toMatchObject({ action: 'flag.create', actor: 'alice' });
  });

  it('extends a hold until the step has enough samples', async () => {
    stack = await startStack();
    await scheduled(stack);
    const guardian = stack.guardian();
    await runSeconds(stack, guardian, 1, async () => {});
    expect((await stack.flag('checkout')).schedule).toMatchObject({ status: 'running', stepIndex: 0 });
    // The hold passes without traffic: no verdict, no advance.
    await runSeconds(stack, guardian, 60, async () => {});
    expect((await stack.flag('checkout')).schedule).toMatchObject({ stepIndex: 0 });
    // 5% of 1000/s reaches the 200 samples the default guard wants in 4 s.
    const changes = await trace(stack, guardian, 10);
    expect(changes).toEqual([[4, 20]]);
  });

  it('pauses with the hold left and resumes the same step with it; abort leaves the flag as it is', async () => {
    stack = await startStack();
    await scheduled(stack);
    const guardian = stack.guardian();
    const ops = await stack.token(['ops']);
    const served = asServed(stack, 'checkout', 0.005, 0.005);
    await runSeconds(stack, guardian, 11, served);
    const running = (await stack.flag('checkout')).schedule!;
    expect(running).toMatchObject({ status: 'running', stepIndex: 0 });
    const started = Date.parse(running.stepStartedAt!);
    expect(stack.clock.t - started).toBe(10_000);

    const pause = await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/pause`, {
      token: ops,
      body: { reason: 'holiday freeze' },
    });
    expect(pause.statusCode).toBe(200);
    expect((pause.json() as Flag).schedule).toMatchObject({
      status: 'paused',
      stepIndex: 0,
      remainingHoldMs: 20_000,
      reason: 'holiday freeze',
    });
    const again = await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/pause`, {
      token: ops,
    });
    expect(again.json()).toEqual(pause.json());

    // Paused for ten minutes of healthy traffic: the step stays.
    await runSeconds(stack, guardian, 600, served);
    expect(onPercent(await stack.flag('checkout'))).toBe(5);

    const resume = await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/resume`, {
      token: ops,
    });
    expect(resume.statusCode).toBe(200);
    expect((resume.json() as Flag).schedule).toMatchObject({
      status: 'running',
      stepIndex: 0,
      remainingHoldMs: 20_000,
      stepStartedAt: new Date(stack.clock.t).toISOString(),
    });
    // The next step comes 20 s after the resume, not 30.
    const changes = await trace(stack, guardian, 25);
    expect(changes).toEqual([[20, 20]]);

    const audit = await stack.store.audit(ENV, { limit: 3, target: 'checkout' });
    expect(audit.map((e) => [e.action, e.actor])).toEqual([
      ['flag.schedule', 'guardian'],
      ['flag.schedule', 'ops'],
      ['flag.schedule', 'ops'],
    ]);

    const abort = await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/abort`, {
      token: ops,
    });
    expect(abort.statusCode).toBe(200);
    const aborted = abort.json() as Flag;
    expect(aborted.schedule).toMatchObject({ status: 'aborted', stepIndex: 1 });
    expect(onPercent(aborted)).toBe(20);
    await runSeconds(stack, guardian, 120, served);
    expect((await stack.flag('checkout')).version).toBe(aborted.version);
    expect(
      (await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/abort`, { token: ops }))
        .statusCode,
    ).toBe(200);
    const refused = await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/resume`, {
      token: ops,
    });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ error: { code: 'VIGIL_INVALID_STATE' } });
  });

  it('kills the flag on a regression at a step and marks the schedule rolled back', async () => {
    stack = await startStack();
    await scheduled(stack);
    const guardian = stack.guardian();
    // Healthy at 5%; the variant starts failing at 20%.
    await trace(stack, guardian, 31);
    expect(onPercent(await stack.flag('checkout'))).toBe(20);
    const bad = asServed(stack, 'checkout', 0.08, 0.005);
    await runSeconds(
      stack,
      guardian,
      60,
      bad,
      async () => (await stack.flag('checkout')).schedule?.status === 'rolled_back',
    );
    const flag = await stack.flag('checkout');
    expect(flag).toMatchObject({ killed: true, killedBy: 'guardian' });
    expect(flag.schedule).toMatchObject({ status: 'rolled_back', stepIndex: 1 });
    expect(flag.schedule!.reason).toMatch(/^rolled back: flag killed by guardian: sev2 regression/);
    const [incident] = await stack.incidents();
    expect(incident!.timeline[0]).toMatchObject({
      kind: 'change',
      actor: 'guardian',
      message: expect.stringContaining('step 2 of 3: 20% of contexts get on'),
    });
    // Nothing advances any more.
    await runSeconds(stack, guardian, 60, bad);
    expect((await stack.flag('checkout')).version).toBe(flag.version);
  });

  it('resumes at the same step and remaining hold after a guardian restart and a store restart', async () => {
    const dataDir = `${(await import('node:os')).tmpdir()}/vigil-restart-${process.pid}-${Date.now()}`;
    const clock = new Clock();
    const first = new EmbeddedStore({ dataDir });
    await first.start();
    stack = await startStack({ store: first, clock });
    await scheduled(stack);
    const one = stack.guardian({ id: 'one' });
    await trace(stack, one, 41);
    const at = (await stack.flag('checkout')).schedule!;
    expect(at).toMatchObject({ stepIndex: 1, status: 'running' });
    expect(clock.t - Date.parse(at.stepStartedAt!)).toBe(10_000);
    await one.stop();
    await stack.close();
    await first.close();

    // The store comes back from its data directory; a new guardian takes over the lock once the old expires.
    const second = new EmbeddedStore({ dataDir });
    await second.start();
    stack = await startStack({ store: second, clock });
    expect((await stack.flag('checkout')).schedule).toEqual(at);
    const two = stack.guardian({ id: 'two' });
    const changes = await trace(stack, two, 40);
    // 20 s of the 30 s hold were left.
    expect(changes).toEqual([[20, 100]]);
    await stack.close();
    await second.close();
    await (await import('node:fs/promises')).rm(dataDir, { recursive: true, force: true });
  });

  it('validates schedules and keeps their progress through ordinary flag edits', async () => {
    stack = await startStack();
    await stack.store.putFlag(ENV, rolloutFlag('checkout', 0), undefined, { actor: 'alice' });
    const put = (body: unknown, token?: string) =>
      stack.request('PUT', `/api/v1/envs/${ENV}/flags/checkout/schedule`, {
        body,
        ...(token ? { token } : {}),
      });
    const bad = await put({
      variant: 'off',
      steps: [
        { percent: 20, hold: '1m' },
        { percent: 5, hold: '1m' },
        { percent: 0, hold: 'soon' },
      ],
    });
    expect(bad.statusCode).toBe(400);
    const fields = (bad.json() as { error: { details: { field: string }[] } }).error.details.map(
      (d) => d.field,
    );
    expect(fields).toEqual(expect.arrayContaining(['steps[2].hold']));
    const bad2 = await put({
      variant: 'off',
      steps: [
        { percent: 20, hold: '1m' },
        { percent: 5, hold: '1m' },
        { percent: 0, hold: 0 },
      ],
    });
    expect(bad2.statusCode).toBe(400);
    const fields2 = (bad2.json() as { error: { details: { field: string }[] } }).error.details.map(
      (d) => d.field,
    );
    expect([...new Set(fields2)]).toEqual(['variant', 'steps[1].percent', 'steps[2].percent']);
    expect((await put({ variant: 'nope', steps: [{ percent: 5, hold: 0 }] })).statusCode).toBe(400);
    expect(
      (await put({ variant: 'on', steps: [{ percent: 5, hold: 0 }] }, await stack.token(['read'])))
        .statusCode,
    ).toBe(403);
    expect((await stack.request('POST', `/api/v1/envs/${ENV}/flags/nope/schedule/pause`)).statusCode).toBe(
      404,
    );
    expect(
      (await stack.request('POST', `/api/v1/envs/${ENV}/flags/checkout/schedule/pause`)).statusCode,
    ).toBe(404);

    await scheduled(stack);
    const guardian = stack.guardian();
    await runSeconds(stack, guardian, 5, asServed(stack, 'checkout', 0.005, 0.005));
    const before = await stack.flag('checkout');
    expect(before.schedule).toMatchObject({ stepIndex: 0, status: 'running' });
    // An admin edit (GET, change, PUT) keeps the schedule as the store has it, whatever the body says.
    const { version: _v, killed: _k, schedule: _s, createdAt: _c, updatedAt: _u, ...body } = before;
    const edit = await stack.request('PUT', `/api/v1/envs/${ENV}/flags/checkout`, {
      body: {
        ...body,
        description: 'edited',
        schedule: { variant: 'on', steps: [{ percent: 100, hold: 0 }] },
      },
    });
    expect(edit.statusCode, edit.body).toBe(200);
    expect((edit.json() as Flag).schedule).toEqual(before.schedule);

    await stack.store.setKill(ENV, 'checkout', { killed: true, actor: 'oncall' });
    const killed = await put({ variant: 'on', steps: [{ percent: 5, hold: 0 }] });
    expect(killed.statusCode).toBe(409);
  });
});
