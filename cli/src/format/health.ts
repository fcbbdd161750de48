import { type CohortFigures, type FlagHealth, formatCount, formatLatency, formatRate } from '@vigil/proto';
import { fields, table } from '../table.js';
import { when } from './common.js';

/** Cohort figures as a table; the control cohort is marked. */
export function cohortTable(cohorts: readonly CohortFigures[], control: string | undefined): string {
  return table(
    ['COHORT', 'REQUESTS', 'ERRORS', 'ERROR RATE', 'P99'],
    cohorts.map((c) => [
      c.variant === control ? `${c.variant} (control)` : c.variant,
      formatCount(c.requests),
      formatCount(c.errors),
      formatRate(c.errorRate),
      formatLatency(c.p99LatencyMs),
    ]),
  );
}

/** `vigil health`: the gate first (what a deployment would do), then why, then the figures. */
export function formatHealth(health: FlagHealth, now: number): string {
  const gate = `${health.gate.toUpperCase()} (${health.status}${health.severity ? `, ${health.severity}` : ''})`;
  const verdict =
    health.verdictVersion === null
      ? 'none yet'
      : `on version ${health.verdictVersion}${health.updatedAt ? `, ${when(health.updatedAt, now)}` : ''}`;
  const s = health.schedule;
  const schedule = !s
    ? undefined
    : s.stepIndex < 0 || s.percent === null
      ? `${s.variant} · ${s.status} (${s.steps} steps)`
      : `${s.variant} ${s.percent}% · step ${s.stepIndex + 1}/${s.steps} · ${s.status}`;
  const head = `${health.flag} · ${health.env} · version ${health.version}${health.killed ? ' · KILLED' : ''}`;
  const lines = [
    head,
    fields([
      ['gate', gate],
      ['reason', health.reason],
      ['triggers', health.triggers.join(', ')],
      ['verdict', verdict],
      ['schedule', schedule],
    ]),
  ];
  if (health.cohorts.length > 0) lines.push('', cohortTable(health.cohorts, health.controlVariant));
  return lines.join('\n');
}
