import { type Flag, scheduleSchema } from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import type { FlagVerdict } from '../../src/analysis/types.js';
import { decideSchedule, stepServe } from '../../src/schedules.js';
import { rolloutFlag, T0 } from './harness.js';

const iso = (ms: number) => new Date(ms).toISOString();

function flagAt(step: number, extra: Partial<Flag> = {}, schedule: Record<string, unknown> = {}): Flag {
  return {
    ...rolloutFlag('checkout', 5),
    version: 7,
    schedule: scheduleSchema.parse({
      variant: 'on',
      steps: [
        { percent: 5, hold: '1m' },
        { percent: 50, hold: '2m' },
      ],
      status: 'running',
      stepIndex: step,
      stepStartedAt: iso(T0),
      ...schedule,
    }),
    ...extra,
  };
}

const verdict = (status: FlagVerdict['status'], version = 7) => ({ status, version }) as FlagVerdict;

describe('schedule decisions', () => {
  it('starts, holds until the hold ends, then needs a healthy verdict on the current version', () => {
    expect(decideSchedule(flagAt(-1, {}, { status: 'pending' }), undefined, T0)).toEqual({
      kind: 'advance',
      to: 0,
    });
    expect(decideSchedule(flagAt(0), verdict('healthy'), T0 + 59_999)).toMatchObject({
      kind: 'hold',
      reason: 'holding',
      until: T0 + 60_000,
    });
    expect(decideSchedule(flagAt(0), undefined, T0 + 60_000)).toEqual({ kind: 'hold', reason: 'no_verdict' });
    expect(decideSchedule(flagAt(0), verdict('healthy', 6), T0 + 60_000)).toEqual({
      kind: 'hold',
      reason: 'no_verdict',
    });
    expect(decideSchedule(flagAt(0), verdict('insufficient_data'), T0 + 60_000)).toEqual({
      kind: 'hold',
      reason: 'insufficient_data',
    });
    expect(decideSchedule(flagAt(0), verdict('regression'), T0 + 60_000)).toEqual({
      kind: 'hold',
      reason: 'regression',
    });
    expect(decideSchedule(flagAt(0), verdict('healthy'), T0 + 60_000)).toEqual({ kind: 'advance', to: 1 });
    expect(decideSchedule(flagAt(1), verdict('healthy'), T0 + 120_000)).toEqual({ kind: 'complete' });
  });

  it('counts a resumed step from the resume with the hold that was left', () => {
    const resumed = flagAt(0, {}, { stepStartedAt: iso(T0 + 600_000), remainingHoldMs: 15_000 });
    expect(decideSchedule(resumed, verdict('healthy'), T0 + 614_999)).toMatchObject({ kind: 'hold' });
    expect(decideSchedule(resumed, verdict('healthy'), T0 + 615_000)).toEqual({ kind: 'advance', to: 1 });
  });

  it('rolls back a killed flag whose schedule is still going or paused, and leaves finished ones alone', () => {
    const killed = { killed: true, killedBy: 'guardian', killReason: 'error rate' };
    expect(decideSchedule(flagAt(1, killed), verdict('healthy'), T0)).toEqual({
      kind: 'rollback',
      reason: 'flag killed by guardian: error rate',
    });
    expect(decideSchedule(flagAt(1, killed, { status: 'paused' }), undefined, T0).kind).toBe('rollback');
    for (const status of ['paused', 'completed', 'aborted', 'rolled_back']) {
      expect(decideSchedule(flagAt(1, {}, { status }), verdict('healthy'), T0 + 10 * 60_000)).toEqual({
        kind: 'none',
      });
    }
    expect(decideSchedule(flagAt(1, killed, { status: 'completed' }), undefined, T0)).toEqual({
      kind: 'none',
    });
    expect(decideSchedule(rolloutFlag('plain', 5), verdict('healthy'), T0)).toEqual({ kind: 'none' });
  });

  it('serves a step as a split with the scheduled variant first, keeping the bucketing attribute', () => {
    const flag = flagAt(0, {
      fallthrough: { rollout: { bucketBy: 'account.id', weights: [{ variant: 'off', weight: 100_000 }] } },
    });
    expect(stepServe(flag, flag.schedule!, 1)).toEqual({
      rollout: {
        bucketBy: 'account.id',
        weights: [
          { variant: 'on', weight: 50_000 },
          { variant: 'off', weight: 50_000 },
        ],
      },
    });
    const fine = { ...flag.schedule!, steps: [{ percent: 0.125, hold: 0 }] };
    expect(stepServe(flag, fine, 0)).toMatchObject({
      rollout: { weights: [{ weight: 125 }, { weight: 99_875 }] },
    });
  });
});
