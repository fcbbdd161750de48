import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type CohortSummary, cohortSummarySchema, type Flag, type Incident } from '@vigil/proto';
import type { MetricsEntry, Store } from '@vigil/server';
import { type Logger, pino } from 'pino';
import type { Registry } from 'prom-client';
import { CohortAnalyzer } from './analysis/analyzer.js';
import type { FlagVerdict } from './analysis/types.js';
import { type GuardianConfig, type GuardianConfigInput, guardianConfigSchema } from './config.js';
import { FlagCache } from './flag-cache.js';
import { GUARDIAN_ACTOR, killReason, storedVerdict } from './incidents/build.js';
import { IncidentDesk } from './incidents/desk.js';
import { GuardianMetrics } from './metrics.js';
import { resolveNotifyConfig } from './notify/config.js';
import { createNotifiers, type Notifier } from './notify/notifier.js';
import { type DeliveryReport, NotificationOutbox } from './notify/outbox.js';
import { isMoving, ScheduleRunner, type ScheduleTransition } from './schedules.js';

/** The lock of the coordinating guardian: it moves schedules, publishes verdicts and looks after incidents. */
export const COORDINATOR_LOCK = 'schedules';

export interface GuardianOptions {
  /** A started store; the caller closes it after the guardian. */
  store: Store;
  config?: GuardianConfigInput;
  logger?: Logger;
  /** Where the guardian's and the outbox's Prometheus metrics go. */
  registry?: Registry;
  /** Epoch ms; injectable so tests step through holds, escalations and backoffs without sleeping. */
  now?: () => number;
  /** Where integration secrets are read (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Notifiers to use instead of those `config.notify` describes. */
  notifiers?: readonly Notifier[];
  /** In [0, 1): the outbox's backoff jitter. */
  random?: () => number;
}

/** What one tick did. */
export interface TickReport {
  now: number;
  verdicts: FlagVerdict[];
  /** `env/flag` of the flags this tick killed. */
  killed: string[];
  opened: Incident[];
  /** Whether this guardian held the coordinator lock (schedules, verdicts, incident sweeps). */
  coordinator: boolean;
  schedules: ScheduleTransition[];
  /** The outbox pass a tick makes while the guardian is not started (tests); undefined otherwise. */
  deliveries?: DeliveryReport | undefined;
}

/** The guardian worker. */
export interface Guardian {
  readonly id: string;
  readonly config: GuardianConfig;
  readonly analyzer: CohortAnalyzer;
  readonly outbox: NotificationOutbox;
  /** Loads the flags, then ingests continuously, ticks every `tickMs` and delivers notifications. */
  start(): Promise<void>;
  /** Stops every loop, waits for the work in flight and gives up its locks. The store stays open. */
  stop(): Promise<void>;
  /**
   * One evaluation pass at `now`: every flag with summaries or a moving schedule is judged, regressions
   * are acted on; the coordinator also publishes verdicts, moves schedules and sweeps incidents. While
   * not started, it first reads every waiting summary and afterwards delivers due notifications.
   */
  tick(now?: number): Promise<TickReport>;
  /** Reads every waiting summary without blocking; returns how many were ingested. */
  ingest(): Promise<number>;
}

/** Creates a guardian over a store; nothing runs until `start()` (or `tick()`). */
export function createGuardian(options: GuardianOptions): Guardian {
  return new GuardianWorker(options);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

class GuardianWorker implements Guardian {
  readonly id: string;
  readonly config: GuardianConfig;
  readonly analyzer: CohortAnalyzer;
  readonly outbox: NotificationOutbox;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly metrics: GuardianMetrics;
  private readonly flags: FlagCache;
  private readonly desk: IncidentDesk;
  private readonly schedules: ScheduleRunner;
  private running = false;
  private started = false;
  private ingestLoop: Promise<void> | undefined;
  private tickLoop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private ticking: Promise<unknown> = Promise.resolve();
  private lastSweep = Number.NEGATIVE_INFINITY;
  private lastPrune = Number.NEGATIVE_INFINITY;

  constructor(options: GuardianOptions) {
    this.config = guardianConfigSchema.parse(options.config ?? {});
    this.id = this.config.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.store = options.store;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ guardian: this.id });
    this.now = options.now ?? Date.now;
    this.metrics = new GuardianMetrics(options.registry);
    this.analyzer = new CohortAnalyzer({ config: this.config.analysis, defaults: this.config.guard });
    this.flags = new FlagCache(this.store);
    const notifiers =
      options.notifiers ?? createNotifiers(resolveNotifyConfig(this.config.notify, options.env));
    this.outbox = new NotificationOutbox({
      store: this.store,
      notifiers,
      logger: this.log,
      now: this.now,
      ...(options.registry ? { registry: options.registry } : {}),
      ...(options.random ? { random: options.random } : {}),
      backoff: { baseMs: this.config.outbox.baseMs, maxMs: this.config.outbox.maxMs },
      ...(this.config.outbox.maxAttempts ? { maxAttempts: this.config.outbox.maxAttempts } : {}),
      lock: { owner: this.id, ttlMs: this.config.lockTtlMs },
      onDelivered: (delivery) => this.desk.delivered(delivery),
      onFailed: (failure) => this.desk.failed(failure),
    });
    this.desk = new IncidentDesk({
      store: this.store,
      outbox: this.outbox,
      guard: this.analyzer.defaults,
      metrics: this.metrics,
      logger: this.log,
      guardian: this.id,
      maxEscalations: this.config.maxEscalations,
      sweepLimit: this.config.incidentSweepLimit,
      takeOverAfterMs: this.config.lockTtlMs,
    });
    this.schedules = new ScheduleRunner({ store: this.store, metrics: this.metrics, logger: this.log });
  }

  async start(): Promise<void> {
    if (this.running) return;
    await this.flags.start();
    this.running = true;
    this.started = true;
    this.ingestLoop = this.runIngest();
    this.tickLoop = this.runTicks();
    this.outbox.start();
    this.log.info({ tickMs: this.config.tickMs }, 'guardian started');
  }

  async stop(): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    this.wake?.();
    await Promise.allSettled([this.ingestLoop, this.tickLoop, this.ticking]);
    await this.outbox.stop();
    this.flags.stop();
    // Another guardian takes over at once instead of after the lock's time-to-live.
    await this.store.releaseLock(COORDINATOR_LOCK, this.id).catch(() => undefined);
    if (wasRunning) this.log.info('guardian stopped');
  }

  async ingest(): Promise<number> {
    let total = 0;
    for (let i = 0; i < 1000; i++) {
      const entries = await this.read(0);
      total += await this.take(entries);
      if (entries.length < this.config.ingest.batch) break;
    }
    return total;
  }

  tick(now?: number): Promise<TickReport> {
    // Ticks never overlap: a slow store makes the next one wait rather than race it.
    const run = this.ticking.then(() => this.pass(now ?? this.now()));
    this.ticking = run.catch(() => undefined);
    return run;
  }

  private async pass(now: number): Promise<TickReport> {
    const timer = this.metrics.tickSeconds.startTimer();
    if (!this.started) {
      await this.flags.start();
      this.started = true;
    }
    if (!this.running) {
      await this.ingest().catch((error: unknown) =>
        this.log.warn({ err: error }, 'cannot read cohort summaries'),
      );
    }
    // Through a store outage the guardian keeps judging on what it holds; each step reports its own failure.
    await this.flags
      .refresh()
      .catch((error: unknown) => this.log.warn({ err: error }, 'cannot reload flags'));
    const report: TickReport = {
      now,
      verdicts: [],
      killed: [],
      opened: [],
      coordinator: false,
      schedules: [],
    };

    // The flags to judge: those with summaries, and those whose schedule waits on a verdict.
    const targets = new Map<string, [string, string]>();
    for (const [env, key] of this.analyzer.tracked()) targets.set(`${env}\n${key}`, [env, key]);
    for (const [env, flag] of this.flags.all()) {
      if (isMoving(flag.schedule)) targets.set(`${env}\n${flag.key}`, [env, flag.key]);
    }
    const verdicts = new Map<string, FlagVerdict>();
    for (const [id, [env, key]] of targets) {
      const flag = await this.flags.get(env, key).catch((error: unknown) => {
        this.log.warn({ err: error, env, flag: key }, 'cannot load the flag');
        return null;
      });
      if (flag === null) continue;
      if (flag === undefined) {
        this.analyzer.forget(env, key);
        continue;
      }
      const verdict = this.analyzer.evaluate(env, flag, now);
      verdicts.set(id, verdict);
      report.verdicts.push(verdict);
      this.metrics.verdicts.inc({ status: verdict.status });
      if (verdict.status === 'regression' && !flag.killed) await this.act(env, flag, verdict, report);
    }
    this.metrics.flags.set(verdicts.size);
    if (now - this.lastPrune >= 60_000) {
      this.lastPrune = now;
      this.analyzer.prune(now - this.config.forgetAfterMs);
    }
    report.opened.push(...(await this.desk.retry(now)));

    report.coordinator = await this.store
      .acquireLock(COORDINATOR_LOCK, this.id, this.config.lockTtlMs)
      .catch((error: unknown) => {
        this.log.warn({ err: error }, 'cannot take the coordinator lock');
        return false;
      });
    if (report.coordinator) {
      const ttl = this.config.verdictTtlMs;
      await Promise.all(
        report.verdicts.map((v) => this.store.putVerdict(storedVerdict(v, this.id), ttl)),
      ).catch((error: unknown) => this.log.warn({ err: error }, 'cannot publish verdicts'));
      try {
        const moved = await this.schedules.run(now, this.flags.all(), (env, key) =>
          verdicts.get(`${env}\n${key}`),
        );
        for (const [env, flag] of moved.written) this.flags.put(env, flag);
        report.schedules = moved.transitions;
      } catch (error) {
        this.log.warn({ err: error }, 'cannot move schedules');
      }
      if (now - this.lastSweep >= this.config.incidentSweepMs) {
        this.lastSweep = now;
        await this.desk
          .sweep(now)
          .catch((error: unknown) => this.log.warn({ err: error }, 'incident sweep failed'));
      }
    }
    if (!this.running) {
      report.deliveries = await this.outbox.deliverDue(now).catch((error: unknown) => {
        this.log.warn({ err: error }, 'cannot deliver notifications');
        return undefined;
      });
    }
    timer();
    return report;
  }

  /**
   * Opens the episode's incident and, for an auto-kill severity, kills the flag and records the kill
   * on it. The incident is written first: see `IncidentDesk` for why that order survives a crash.
   */
  private async act(env: string, flag: Flag, verdict: FlagVerdict, report: TickReport): Promise<void> {
    const opened = await this.desk.open(env, flag, verdict);
    if (!verdict.kill) {
      if (opened) report.opened.push(opened);
      return;
    }
    const at = new Date(verdict.evaluatedAt).toISOString();
    let killed: Flag;
    try {
      killed = await this.store.setKill(env, flag.key, {
        killed: true,
        actor: GUARDIAN_ACTOR,
        reason: killReason(verdict),
        at,
      });
    } catch (error) {
      // Tried again next tick: the verdict stays a regression until the version changes.
      this.log.error({ err: error, env, flag: flag.key }, 'could not kill a regressing flag');
      if (opened) report.opened.push(opened);
      return;
    }
    this.flags.put(env, killed);
    if (killed.killedAt === at && killed.killedBy === GUARDIAN_ACTOR) {
      this.metrics.kills.inc({ env });
      report.killed.push(`${env}/${flag.key}`);
      this.log.warn({ env, flag: flag.key, version: killed.version }, `flag killed: ${verdict.reason}`);
    }
    const settled = await this.desk.killed(env, flag, verdict, killed);
    if (opened) report.opened.push(settled ?? opened);
  }

  private async runIngest(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        await this.take(await this.read(this.config.ingest.blockMs));
        failures = 0;
      } catch (error) {
        failures++;
        this.log.warn({ err: error, failures }, 'cannot read cohort summaries; retrying');
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private async runTicks(): Promise<void> {
    while (this.running) {
      const started = Date.now();
      try {
        await this.tick();
      } catch (error) {
        this.log.error({ err: error }, 'guardian tick failed');
      }
      const wait = Math.max(0, this.config.tickMs - (Date.now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private read(blockMs: number): Promise<MetricsEntry[]> {
    const { group, batch, claimIdleMs } = this.config.ingest;
    return this.store.readMetrics(group, this.id, { count: batch, blockMs, claimIdleMs });
  }

  /** Ingests entries read from the bus and acknowledges them. */
  private async take(entries: MetricsEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    let ingested = 0;
    for (const { summary } of entries) {
      const parsed = cohortSummarySchema.safeParse(summary);
      if (!parsed.success) {
        this.metrics.summaries.inc({ outcome: 'invalid' });
        continue;
      }
      const taken = this.analyzer.ingest(parsed.data as CohortSummary);
      this.metrics.summaries.inc({ outcome: taken ? 'ingested' : 'ignored' });
      if (taken) ingested++;
    }
    try {
      await this.store.ackMetrics(
        this.config.ingest.group,
        entries.map((e) => e.id),
      );
    } catch (error) {
      // An unacknowledged entry is delivered again after claimIdleMs and counted twice; it takes the
      // store failing between the read and the ack.
      this.log.warn({ err: error }, 'cannot acknowledge cohort summaries');
    }
    return ingested;
  }
}
