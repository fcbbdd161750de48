import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The guardian's Prometheus metrics (the outbox registers the notification ones). */
export class GuardianMetrics {
  readonly summaries: Counter<'outcome'>;
  readonly verdicts: Counter<'status'>;
  readonly kills: Counter<'env'>;
  readonly incidents: Counter<'severity'>;
  readonly escalations: Counter<'severity'>;
  readonly scheduleAdvances: Counter<'outcome'>;
  readonly flags: Gauge;
  readonly tickSeconds: Histogram;

  constructor(registry: Registry | undefined) {
    const registers = registry ? [registry] : [];
    // A registry shared by several guardians in one process (tests) keeps the first instance's metrics.
    const reuse = <T>(name: string, make: () => T): T =>
      (registry?.getSingleMetric(name) as T | undefined) ?? make();
    this.summaries = reuse(
      'vigil_guardian_summaries_total',
      () =>
        new Counter({
          name: 'vigil_guardian_summaries_total',
          help: 'Cohort summaries read from the metrics bus, by outcome (ingested, ignored, invalid)',
          labelNames: ['outcome'],
          registers,
        }),
    );
    this.verdicts = reuse(
      'vigil_guardian_verdicts_total',
      () =>
        new Counter({
          name: 'vigil_guardian_verdicts_total',
          help: 'Flag evaluations, by verdict status',
          labelNames: ['status'],
          registers,
        }),
    );
    this.kills = reuse(
      'vigil_guardian_kills_total',
      () =>
        new Counter({
          name: 'vigil_guardian_kills_total',
          help: 'Flags the guardian killed on a regression',
          labelNames: ['env'],
          registers,
        }),
    );
    this.incidents = reuse(
      'vigil_guardian_incidents_opened_total',
      () =>
        new Counter({
          name: 'vigil_guardian_incidents_opened_total',
          help: 'Incidents opened, by severity',
          labelNames: ['severity'],
          registers,
        }),
    );
    this.escalations = reuse(
      'vigil_guardian_escalations_total',
      () =>
        new Counter({
          name: 'vigil_guardian_escalations_total',
          help: 'Incidents escalated for want of an acknowledgement, by severity',
          labelNames: ['severity'],
          registers,
        }),
    );
    this.scheduleAdvances = reuse(
      'vigil_guardian_schedule_transitions_total',
      () =>
        new Counter({
          name: 'vigil_guardian_schedule_transitions_total',
          help: 'Schedule transitions made by the guardian (advanced, completed, rolled_back)',
          labelNames: ['outcome'],
          registers,
        }),
    );
    this.flags = reuse(
      'vigil_guardian_flags',
      () => new Gauge({ name: 'vigil_guardian_flags', help: 'Flags evaluated in the last tick', registers }),
    );
    this.tickSeconds = reuse(
      'vigil_guardian_tick_seconds',
      () =>
        new Histogram({
          name: 'vigil_guardian_tick_seconds',
          help: 'Duration of one evaluation tick',
          buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          registers,
        }),
    );
    for (const status of ['healthy', 'regression', 'insufficient_data']) this.verdicts.inc({ status }, 0);
    for (const outcome of ['advanced', 'completed', 'rolled_back']) this.scheduleAdvances.inc({ outcome }, 0);
  }
}
