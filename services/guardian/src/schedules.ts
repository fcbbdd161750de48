import { type Flag, holdEndsAt, type Schedule, type Serve, WEIGHT_TOTAL } from '@vigil/proto';
import { isVigilError, type Store } from '@vigil/server';
import type { Logger } from 'pino';
import type { FlagVerdict } from './analysis/types.js';
import { GUARDIAN_ACTOR } from './incidents/build.js';
import type { GuardianMetrics } from './metrics.js';

/** What the guardian does with a schedule at one tick. */
export type ScheduleDecision =
  | { kind: 'none' }
  /** Hold the current step: its hold has not passed, or the verdict is not (yet) healthy. */
  | { kind: 'hold'; reason: 'holding' | 'insufficient_data' | 'regression' | 'no_verdict'; until?: number }
  | { kind: 'advance'; to: number }
  | { kind: 'complete' }
  | { kind: 'rollback'; reason: string };

/** Schedules the guardian moves; paused ones wait for a resume, the rest are finished. */
export function isMoving(schedule: Schedule | undefined): schedule is Schedule {
  return schedule !== undefined && (schedule.status === 'pending' || schedule.status === 'running');
}

/**
 * The next move of a flag's schedule at `now`, given the guardian's verdict on the flag's current
 * version. A step's hold must have passed and the verdict be healthy (which takes enough samples of
 * the scheduled variant: without them the hold is extended); a killed flag rolls the schedule back.
 */
export function decideSchedule(flag: Flag, verdict: FlagVerdict | undefined, now: number): ScheduleDecision {
  const schedule = flag.schedule;
  if (!schedule) return { kind: 'none' };
  if (flag.killed && ['pending', 'running', 'paused'].includes(schedule.status)) {
    const why = flag.killReason ? `: ${flag.killReason}` : '';
    return { kind: 'rollback', reason: `flag killed by ${flag.killedBy ?? 'unknown'}${why}` };
  }
  if (!isMoving(schedule)) return { kind: 'none' };
  if (schedule.stepIndex < 0) return { kind: 'advance', to: 0 };
  const until = holdEndsAt(schedule) ?? now;
  if (now < until) return { kind: 'hold', reason: 'holding', until };
  if (verdict === undefined || verdict.version !== flag.version)
    return { kind: 'hold', reason: 'no_verdict' };
  if (verdict.status !== 'healthy') return { kind: 'hold', reason: verdict.status };
  if (schedule.stepIndex >= schedule.steps.length - 1) return { kind: 'complete' };
  return { kind: 'advance', to: schedule.stepIndex + 1 };
}

/**
 * The fallthrough of step `index`: the step's share of contexts get the scheduled variant, the rest
 * the offVariant. The scheduled variant comes first, so raising its weight only ever adds contexts.
 */
export function stepServe(flag: Flag, schedule: Schedule, index: number): Serve {
  const step = schedule.steps[index];
  if (step === undefined) throw new RangeError(`schedule has no step ${index}`);
  const weight = Math.min(WEIGHT_TOTAL, Math.max(0, Math.round(step.percent * 1000)));
  const bucketBy = 'rollout' in flag.fallthrough ? flag.fallthrough.rollout.bucketBy : undefined;
  return {
    rollout: {
      ...(bucketBy === undefined ? {} : { bucketBy }),
      weights: [
        { variant: schedule.variant, weight },
        { variant: flag.offVariant, weight: WEIGHT_TOTAL - weight },
      ],
    },
  };
}

/** One schedule write the guardian made. */
export interface ScheduleTransition {
  env: string;
  flag: string;
  outcome: 'advanced' | 'completed' | 'rolled_back';
  stepIndex: number;
  version: number;
}

export interface ScheduleRunnerOptions {
  store: Pick<Store, 'putSchedule'>;
  metrics: GuardianMetrics;
  logger: Pick<Logger, 'info' | 'warn'>;
}

/**
 * Moves schedules through their steps. Run by the one guardian holding the `schedules` lock; all of
 * its state is on the flag (status, step, when the step started, the hold left after a resume), so
 * another guardian — or this one after a restart — carries on at the same step and remaining hold.
 * Every write is conditional on the version decided from: a concurrent pause or edit wins, and the
 * schedule is decided again on the next tick.
 */
export class ScheduleRunner {
  constructor(private readonly options: ScheduleRunnerOptions) {}

  async run(
    now: number,
    flags: Iterable<[string, Flag]>,
    verdictOf: (env: string, flag: string) => FlagVerdict | undefined,
  ): Promise<{ transitions: ScheduleTransition[]; written: [string, Flag][] }> {
    const transitions: ScheduleTransition[] = [];
    const written: [string, Flag][] = [];
    for (const [env, flag] of [...flags]) {
      const decision = decideSchedule(flag, verdictOf(env, flag.key), now);
      const result = await this.apply(env, flag, decision, now);
      if (!result) continue;
      written.push([env, result.flag]);
      transitions.push({
        env,
        flag: flag.key,
        outcome: result.outcome,
        stepIndex: result.flag.schedule?.stepIndex ?? -1,
        version: result.flag.version,
      });
    }
    return { transitions, written };
  }

  private async apply(
    env: string,
    flag: Flag,
    decision: ScheduleDecision,
    now: number,
  ): Promise<{ flag: Flag; outcome: ScheduleTransition['outcome'] } | undefined> {
    const schedule = flag.schedule;
    if (!schedule || decision.kind === 'none' || decision.kind === 'hold') return undefined;
    const at = new Date(now).toISOString();
    const { stepStartedAt: _s, remainingHoldMs: _r, reason: _why, ...base } = schedule;
    let next: Schedule;
    let fallthrough: Serve | undefined;
    let reason: string;
    let outcome: ScheduleTransition['outcome'];
    if (decision.kind === 'advance') {
      const step = schedule.steps[decision.to]!;
      reason = `step ${decision.to + 1} of ${schedule.steps.length}: ${step.percent}% of contexts get ${schedule.variant}`;
      next = { ...base, status: 'running', stepIndex: decision.to, stepStartedAt: at, updatedAt: at, reason };
      fallthrough = stepServe(flag, schedule, decision.to);
      outcome = 'advanced';
    } else if (decision.kind === 'complete') {
      const percent = schedule.steps[schedule.stepIndex]?.percent ?? 0;
      reason = `completed at ${percent}% after a healthy hold`;
      next = { ...schedule, status: 'completed', updatedAt: at, reason };
      outcome = 'completed';
    } else {
      reason = `rolled back: ${decision.reason}`.slice(0, 2048);
      next = { ...schedule, status: 'rolled_back', updatedAt: at, reason };
      outcome = 'rolled_back';
    }
    try {
      const stored = await this.options.store.putSchedule(
        env,
        flag.key,
        { schedule: next, actor: GUARDIAN_ACTOR, reason, ...(fallthrough ? { fallthrough } : {}) },
        { version: flag.version },
      );
      this.options.metrics.scheduleAdvances.inc({ outcome });
      this.options.logger.info(
        { env, flag: flag.key, version: stored.version, outcome },
        `schedule ${reason}`,
      );
      return { flag: stored, outcome };
    } catch (error) {
      // Changed since it was read (a pause, an edit, a kill): decided again on the next tick.
      if (isVigilError(error, 'VIGIL_VERSION_CONFLICT') || isVigilError(error, 'VIGIL_NOT_FOUND'))
        return undefined;
      throw error;
    }
  }
}
