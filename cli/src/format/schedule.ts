import {
  durationMs,
  type Flag,
  type FlagHealth,
  holdEndsAt,
  type Schedule,
  type ScheduleStep,
} from '@vigil/proto';
import type { ScheduleAction } from '../api.js';
import { fields } from '../table.js';
import { span, utc, when } from './common.js';

/** `5% for 5m`; a last step without a hold is just `100%`. */
export function describeStep(step: ScheduleStep): string {
  const hold = durationMs(step.hold);
  return hold === 0 ? `${step.percent}%` : `${step.percent}% for ${span(hold)}`;
}

/** One cell: `on 20% · step 2/4 · running`, `on · pending (4 steps)`, or `-` without a schedule. */
export function scheduleSummary(schedule: Schedule | undefined): string {
  if (!schedule) return '-';
  const step = schedule.steps[schedule.stepIndex];
  if (!step) return `${schedule.variant} · ${schedule.status} (${schedule.steps.length} steps)`;
  return `${schedule.variant} ${step.percent}% · step ${schedule.stepIndex + 1}/${schedule.steps.length} · ${schedule.status}`;
}

/** Where the current step's hold stands, in words. */
function holdState(schedule: Schedule, now: number): string | undefined {
  const step = schedule.steps[schedule.stepIndex];
  if (!step) return undefined;
  if (schedule.status === 'paused') {
    const left = schedule.remainingHoldMs;
    return left === undefined ? 'paused' : `paused with ${span(left)} of hold left`;
  }
  if (schedule.status !== 'running') return undefined;
  if (schedule.stepIndex === schedule.steps.length - 1 && durationMs(step.hold) === 0) return 'last step';
  const end = holdEndsAt(schedule);
  if (end === undefined) return undefined;
  return end > now
    ? `hold ends in ${span(end - now)} (${utc(new Date(end).toISOString())})`
    : 'hold passed; advances on the next healthy verdict with enough samples';
}

const STATUS_WORDS: Record<Schedule['status'], string> = {
  pending: 'pending: the guardian starts the first step shortly',
  running: 'running',
  paused: 'paused',
  completed: 'completed',
  rolled_back: 'rolled back (a regression killed the flag)',
  aborted: 'aborted (the flag keeps serving what it served then)',
};

/** `vigil schedule status`: every step with the one in force marked, and the guardian's gate. */
export function formatScheduleStatus(
  flag: Flag,
  health: FlagHealth | undefined,
  env: string,
  now: number,
): string {
  const schedule = flag.schedule;
  if (!schedule) return `${flag.key} in ${env} has no schedule.`;
  const labels = schedule.steps.map((step, i) => `${i + 1}. ${describeStep(step)}`);
  const width = Math.max(...labels.map((l) => l.length));
  const hold = holdState(schedule, now);
  const steps = labels
    .map((label, i) => {
      const mark =
        i < schedule.stepIndex || (schedule.status === 'completed' && i === schedule.stepIndex)
          ? 'done'
          : i === schedule.stepIndex
            ? `← now${hold ? `, ${hold}` : ''}`
            : '';
      return mark ? `${label.padEnd(width)}  ${mark}` : label;
    })
    .join('\n');
  const guardian = health
    ? `${health.gate} · ${health.status}${health.reason ? `: ${health.reason}` : ''}`
    : undefined;
  return [
    `${flag.key} · ${env} · version ${flag.version}${flag.killed ? ' · KILLED' : ''}`,
    fields([
      ['status', STATUS_WORDS[schedule.status]],
      ['variant', `${schedule.variant} (the rest get ${flag.offVariant})`],
      ['steps', steps],
      ['guardian', guardian],
      ['reason', schedule.reason],
      ['updated', when(schedule.updatedAt, now)],
    ]),
  ].join('\n');
}

const DONE: Record<ScheduleAction, string> = { pause: 'Paused', resume: 'Resumed', abort: 'Aborted' };

/** `vigil schedule pause|resume|abort`: what changed, or that it was already so. */
export function formatScheduleAction(
  action: ScheduleAction,
  before: Flag | undefined,
  after: Flag,
  env: string,
  now: number,
): string {
  const schedule = after.schedule;
  const of = `the schedule of ${after.key} in ${env}`;
  if (!schedule) return `${after.key} in ${env} has no schedule.`;
  if (before !== undefined && before.version === after.version)
    return `${of[0]!.toUpperCase()}${of.slice(1)} is already ${schedule.status}; nothing changed.`;
  const done = DONE[action];
  const step = schedule.steps[schedule.stepIndex];
  const at = step
    ? ` at step ${schedule.stepIndex + 1}/${schedule.steps.length} (${schedule.variant} ${step.percent}%)`
    : '';
  const hold = holdState(schedule, now);
  const tail =
    action === 'abort'
      ? `; ${after.key} keeps serving what it serves now.`
      : hold && hold !== 'paused'
        ? `; ${hold.replace(/^paused with /, '')}.`
        : '.';
  return `${done} ${of}${at}${tail}`;
}
