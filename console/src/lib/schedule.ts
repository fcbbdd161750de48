// Schedule arithmetic for the rollout page, as the guardian reads a schedule (proto's holdEndsAt).
import type { Schedule, ScheduleStep } from '@vigil/proto';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds in a hold: whole seconds, or `90s`, `5m`, `1h`…; undefined when it is neither. */
export function holdMs(hold: ScheduleStep['hold'] | undefined): number | undefined {
  if (hold === undefined) return 0;
  if (typeof hold === 'number') return hold * 1000;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(hold);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : undefined;
}

/** Where a schedule stands at `now`: the step, how much of its hold is left, and whether it is ticking. */
export interface ScheduleProgress {
  stepIndex: number;
  /** Hold left in ms (frozen while paused); undefined before the first step. */
  holdLeftMs: number | undefined;
  /** The hold is counting down (running with a step in force). */
  ticking: boolean;
  /** Share of the current step's hold that has passed, 0–1. */
  holdDone: number;
}

export function scheduleProgress(schedule: Schedule, now: number): ScheduleProgress {
  const step = schedule.steps[schedule.stepIndex];
  if (!step) return { stepIndex: schedule.stepIndex, holdLeftMs: undefined, ticking: false, holdDone: 0 };
  const whole = holdMs(step.hold) ?? 0;
  if (schedule.status === 'paused') {
    const left = schedule.remainingHoldMs ?? whole;
    return {
      stepIndex: schedule.stepIndex,
      holdLeftMs: left,
      ticking: false,
      holdDone: whole ? 1 - left / whole : 1,
    };
  }
  if (schedule.status !== 'running' || schedule.stepStartedAt === undefined) {
    return { stepIndex: schedule.stepIndex, holdLeftMs: undefined, ticking: false, holdDone: 1 };
  }
  const ends = Date.parse(schedule.stepStartedAt) + (schedule.remainingHoldMs ?? whole);
  const left = Math.max(0, ends - now);
  return {
    stepIndex: schedule.stepIndex,
    holdLeftMs: left,
    ticking: true,
    holdDone: whole ? Math.min(1, 1 - left / whole) : 1,
  };
}

/** Steps typed as `5% for 5m, 20% for 5m, 50% for 10m, 100%`: parsed, with an error per bad step. */
export function parseSteps(text: string): { steps: ScheduleStep[]; errors: string[] } {
  const steps: ScheduleStep[] = [];
  const errors: string[] = [];
  text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .forEach((part, i) => {
      const m = /^(\d+(?:\.\d{1,3})?)\s*%(?:\s*(?:for|hold)?\s*(\d+(?:ms|s|m|h|d)|\d+))?$/i.exec(part);
      if (!m) {
        errors.push(`step ${i + 1}: "${part}" is not like "20% for 5m"`);
        return;
      }
      const percent = Number(m[1]);
      if (percent <= 0 || percent > 100)
        errors.push(`step ${i + 1}: ${percent}% is not above 0 and at most 100`);
      const prev = steps[steps.length - 1];
      if (prev && percent < prev.percent)
        errors.push(`step ${i + 1}: ${percent}% is lower than the step before`);
      const hold = m[2] === undefined ? 0 : /^\d+$/.test(m[2]) ? Number(m[2]) : m[2];
      steps.push({ percent, hold });
    });
  if (steps.length === 0 && errors.length === 0) errors.push('at least one step');
  return { steps, errors };
}

/** Steps as the form shows them. */
export function formatSteps(steps: readonly ScheduleStep[]): string {
  return steps
    .map((s) =>
      s.hold && s.hold !== 0
        ? `${s.percent}% for ${typeof s.hold === 'number' ? `${s.hold}s` : s.hold}`
        : `${s.percent}%`,
    )
    .join(', ');
}
