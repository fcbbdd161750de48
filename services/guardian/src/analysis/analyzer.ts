import type { AppliedThresholds, CohortSummary, Flag } from '@vigil/proto';
import { CohortSeries, type Tally } from './cohorts.js';
import { type AnalysisConfigInput, type CompiledAnalysisConfig, compileAnalysisConfig } from './config.js';
import {
  DEFAULT_GUARD_DEFAULTS,
  type GuardDefaults,
  type GuardDefaultsInput,
  guardDefaultsSchema,
  type ResolvedGuard,
  resolveGuard,
} from './policy.js';
import {
  addOneSample,
  addTwoSample,
  epochShare,
  freshState,
  type Mixture,
  mixtureLogE,
  type OneSample,
  oneSample,
} from './sequential.js';
import type { Check, CheckStatus, FlagVerdict, Trigger, VariantVerdict, VerdictStatus } from './types.js';

/** The share of requests above the p99: what an absolute p99 threshold bounds. */
const P99_TAIL = 0.01;

/** A running sequential test and how many evaluations in a row it has been over its boundary. */
interface TestState {
  readonly llr: number[];
  consecutive: number;
}

/** The tests of one treatment variant in the current epoch. */
interface VariantTests {
  /** The absolute tests' nulls, from the guard in force when the tests started. */
  readonly maxErrors: OneSample;
  readonly minSuccess: OneSample;
  readonly maxTail: OneSample;
  readonly error_rate: TestState;
  readonly success_rate: TestState;
  readonly p99_latency: TestState;
  readonly error_rate_vs_control: TestState;
  readonly latency_vs_control: TestState;
}

interface VersionState {
  /** When the first summary of this version began (epoch ms): epochs count from here. */
  readonly startedAt: number;
  epoch: number;
  readonly cohorts: Map<string, CohortSeries>;
  readonly tests: Map<string, VariantTests>;
}

interface FlagState {
  /** The newest version evaluated: summaries of older versions are dropped. */
  evaluatedVersion: number;
  /** The latest window end seen, for `prune`. */
  lastSeen: number;
  readonly versions: Map<number, VersionState>;
}

export interface AnalyzerOptions {
  /** Statistical settings (`analysisConfigSchema`). */
  config?: AnalysisConfigInput;
  /** The service's guard defaults (`guardDefaultsSchema`). */
  defaults?: GuardDefaultsInput;
}

/**
 * The guardian's cohort analysis: SDK cohort summaries go in (`ingest`), a verdict per flag comes out
 * (`evaluate`) — `healthy`, `regression` or `insufficient_data`, with the figures and the triggers.
 * Pure and deterministic: no I/O, no timers, the clock is the `now` passed in; the same calls give the
 * same verdicts. Each (flag, version) is analysed on its own: a new version starts fresh.
 *
 * Every call to `evaluate` is one look of the sequential tests: the summaries ingested since the last
 * evaluation of the flag form one batch. Evaluate each flag on a steady cadence (e.g. every second);
 * the tests stay valid however often they are looked at.
 */
export class CohortAnalyzer {
  readonly config: CompiledAnalysisConfig;
  readonly defaults: GuardDefaults;
  private readonly flags = new Map<string, FlagState>();
  private last?: { env: string; flag: string; id: string; state: FlagState };

  constructor(options: AnalyzerOptions = {}) {
    this.config = compileAnalysisConfig(options.config);
    this.defaults = options.defaults ? guardDefaultsSchema.parse(options.defaults) : DEFAULT_GUARD_DEFAULTS;
  }

  /**
   * Takes one SDK cohort summary (validated with `cohortSummarySchema`). Returns false when it is
   * ignored: its version is older than the flag's last evaluated one, or its window is not a date.
   */
  ingest(summary: CohortSummary): boolean {
    const start = Date.parse(summary.windowStart);
    const end = Date.parse(summary.windowEnd);
    if (!Number.isFinite(start) || !Number.isFinite(end)) return false;
    const state = this.flagState(summary.env, summary.flag);
    if (summary.version < state.evaluatedVersion) return false;
    let version = state.versions.get(summary.version);
    if (version === undefined) {
      version = { startedAt: start, epoch: 1, cohorts: new Map(), tests: new Map() };
      state.versions.set(summary.version, version);
    }
    let series = version.cohorts.get(summary.variant);
    if (series === undefined) {
      series = new CohortSeries(this.config.sketchAlpha, this.config.bucketMs, this.config.horizonMs);
      version.cohorts.set(summary.variant, series);
    }
    series.add(summary, start);
    if (end > state.lastSeen) state.lastSeen = end;
    return true;
  }

  /**
   * The verdict on `flag` (as the store holds it now) at `now` (epoch ms): each served variant other
   * than `offVariant` against the control cohort `offVariant`, under the flag's guard policy.
   * Takes the batch ingested since the last evaluation into the tests; older versions are forgotten.
   */
  evaluate(env: string, flag: Flag, now: number): FlagVerdict {
    const cfg = this.config;
    const guard = resolveGuard(flag.guard, this.defaults);
    const state = this.flagState(env, flag.key);
    if (flag.version > state.evaluatedVersion) state.evaluatedVersion = flag.version;
    for (const v of state.versions.keys()) if (v < flag.version) state.versions.delete(v);

    const controlVariant = flag.offVariant;
    const version = state.versions.get(flag.version);
    if (version === undefined) {
      return verdictOf(env, flag, now, guard, this.thresholdsOf(guard), 'insufficient_data', 1, []);
    }

    const epoch = Math.max(1, Math.floor((now - version.startedAt) / cfg.epochMs) + 1);
    if (epoch > version.epoch) {
      version.epoch = epoch;
      version.tests.clear();
      for (const series of version.cohorts.values()) series.epoch.clear();
    }
    const since = now - cfg.horizonMs;
    for (const series of version.cohorts.values()) series.evict(since);

    const control = version.cohorts.get(controlVariant);
    const treatments = flag.variants
      .map((v) => v.key)
      .filter((key) => key !== controlVariant && version.cohorts.has(key));
    // Bonferroni over the variants that could be served against control.
    const variantCount = Math.max(1, flag.variants.length - 1);

    if (guard.enabled) {
      const reference = this.latencyReference(control);
      for (const key of treatments) {
        let tests = version.tests.get(key);
        if (tests === undefined) {
          tests = this.freshTests(guard);
          version.tests.set(key, tests);
        }
        this.addBatch(tests, version.cohorts.get(key)!.pending, control?.pending, guard, reference);
      }
    }
    for (const series of version.cohorts.values()) series.fold();

    const share = epochShare(epoch);
    const controlWindow = control?.window;
    const variants = treatments.map((key) =>
      this.variantVerdict(
        key,
        version.cohorts.get(key)!,
        version.tests.get(key),
        control,
        controlVariant,
        controlWindow,
        guard,
        Math.log(variantCount / share),
      ),
    );

    let status: VerdictStatus = variants.length === 0 ? 'insufficient_data' : 'healthy';
    for (const v of variants) status = worse(status, v.status);
    return verdictOf(env, flag, now, guard, this.thresholdsOf(guard), status, epoch, variants);
  }

  /** The policy a verdict reports: the resolved guard and the statistical levels its tests use. */
  private thresholdsOf(guard: ResolvedGuard): AppliedThresholds {
    const cfg = this.config;
    return {
      maxErrorRate: guard.maxErrorRate,
      minSuccessRate: guard.minSuccessRate,
      maxP99LatencyMs: guard.maxP99LatencyMs,
      minSamples: guard.minSamples,
      consecutiveFailures: guard.consecutiveFailures,
      compareToControl: guard.compareToControl,
      alpha: cfg.alpha,
      thresholdAlpha: cfg.thresholdAlpha,
      errorMargin: cfg.errorMargin,
      latencyMargin: cfg.latencyMargin,
    };
  }

  /** Forgets everything about a flag (e.g. once it is deleted). */
  forget(env: string, flag: string): void {
    this.flags.delete(flagId(env, flag));
  }

  /** Forgets the flags whose latest summary window ended before `before` (epoch ms); returns how many. */
  prune(before: number): number {
    let n = 0;
    for (const [id, state] of this.flags) {
      if (state.lastSeen < before) {
        this.flags.delete(id);
        n += 1;
      }
    }
    return n;
  }

  /** The flags held, as `[env, flag]` pairs. */
  *tracked(): IterableIterator<[string, string]> {
    for (const id of this.flags.keys()) {
      const cut = id.indexOf('\n');
      yield [id.slice(0, cut), id.slice(cut + 1)];
    }
  }

  private flagState(env: string, flag: string): FlagState {
    // Summaries come in runs of the same flag: skip building the key for a repeat.
    const last = this.last;
    if (
      last !== undefined &&
      last.env === env &&
      last.flag === flag &&
      this.flags.get(last.id) === last.state
    ) {
      return last.state;
    }
    const id = flagId(env, flag);
    let state = this.flags.get(id);
    if (state === undefined) {
      state = { evaluatedVersion: -1, lastSeen: Number.NEGATIVE_INFINITY, versions: new Map() };
      this.flags.set(id, state);
    }
    this.last = { env, flag, id, state };
    return state;
  }

  private freshTests(guard: ResolvedGuard): VariantTests {
    const thr = this.config.threshold;
    const cmp = this.config.comparison;
    return {
      maxErrors: oneSample(thr, guard.maxErrorRate),
      minSuccess: oneSample(thr, 1 - guard.minSuccessRate),
      maxTail: oneSample(thr, P99_TAIL),
      error_rate: fresh(thr),
      success_rate: fresh(thr),
      p99_latency: fresh(thr),
      error_rate_vs_control: fresh(cmp),
      latency_vs_control: fresh(cmp),
    };
  }

  /** The bin of control's p99 so far, if control has enough latencies for it to mean something. */
  private latencyReference(control: CohortSeries | undefined): number | undefined {
    const latency = control?.total.latency;
    if (latency === undefined || latency.count < this.config.minLatencyReference) return undefined;
    const index = latency.quantileIndex(1 - P99_TAIL);
    return index === undefined || index === Number.NEGATIVE_INFINITY ? undefined : index;
  }

  /** Feeds one batch (what arrived since the last evaluation) to a variant's tests. */
  private addBatch(
    tests: VariantTests,
    batch: Tally,
    controlBatch: Tally | undefined,
    guard: ResolvedGuard,
    reference: number | undefined,
  ): void {
    const cfg = this.config;
    addOneSample(tests.error_rate.llr, tests.maxErrors, batch.errors, batch.requests);
    addOneSample(tests.success_rate.llr, tests.minSuccess, batch.errors, batch.requests);
    const latency = batch.latency;
    if (latency.count > 0) {
      // Values in bins above the one holding the threshold are certainly over it: a conservative count.
      const over = latency.countAbove(latency.indexOf(guard.maxP99LatencyMs));
      addOneSample(tests.p99_latency.llr, tests.maxTail, over, latency.count);
    }
    if (!guard.compareToControl || controlBatch === undefined) return;
    const cmp = cfg.comparison;
    addTwoSample(
      tests.error_rate_vs_control.llr,
      cmp,
      batch.errors,
      batch.requests,
      controlBatch.errors,
      controlBatch.requests,
      cfg.errorMargin,
    );
    if (reference !== undefined) {
      // Treatment values more than (1 + margin) × control's p99 against control values above its p99;
      // the reference comes from data before this batch, so the batch cannot move it.
      const shift = Math.round(Math.log1p(cfg.latencyMargin) / latency.logGamma);
      addTwoSample(
        tests.latency_vs_control.llr,
        cmp,
        latency.countAbove(reference + shift),
        latency.count,
        controlBatch.latency.countAbove(reference),
        controlBatch.latency.count,
      );
    }
  }

  private variantVerdict(
    variant: string,
    treatment: CohortSeries,
    tests: VariantTests | undefined,
    control: CohortSeries | undefined,
    controlVariant: string,
    controlWindow: Tally | undefined,
    guard: ResolvedGuard,
    logSplit: number,
  ): VariantVerdict {
    const cfg = this.config;
    const min = guard.minSamples;
    const t = treatment.epoch;
    const c = control?.epoch;
    const enoughTreatment = treatment.total.requests >= min;
    const enoughLatency = treatment.total.latency.count >= min;
    const enoughControl = control !== undefined && control.total.requests >= min;
    const enoughReference =
      control !== undefined && control.total.latency.count >= Math.max(min, cfg.minLatencyReference);
    const controlJudged = cfg.exemptSharedBreaches && c !== undefined && c.requests >= min;
    const tP99 = t.latency.quantile(1 - P99_TAIL) ?? null;
    const cP99 = c?.latency.quantile(1 - P99_TAIL) ?? null;

    const checks: Check[] = [];
    if (guard.enabled && tests !== undefined) {
      const logAbs = logSplit + Math.log(1 / cfg.thresholdAlpha);
      const logCmp = logSplit + Math.log(1 / cfg.alpha);
      const abs = (
        trigger: Trigger,
        observed: number | null,
        threshold: number,
        samples: number,
        enough: boolean,
        shared: boolean,
      ) =>
        check(
          tests[trigger],
          trigger,
          cfg.threshold,
          logAbs,
          logSplit,
          guard.consecutiveFailures,
          enough,
          shared,
          {
            observed,
            control: null,
            threshold,
            ratio: null,
            samples,
            controlSamples: null,
          },
        );
      checks.push(
        abs(
          'error_rate',
          t.requests > 0 ? t.errorRate : null,
          guard.maxErrorRate,
          t.requests,
          enoughTreatment,
          controlJudged && c.errorRate > guard.maxErrorRate,
        ),
        abs(
          'success_rate',
          t.requests > 0 ? 1 - t.errorRate : null,
          guard.minSuccessRate,
          t.requests,
          enoughTreatment,
          controlJudged && 1 - c.errorRate < guard.minSuccessRate,
        ),
        abs(
          'p99_latency',
          tP99,
          guard.maxP99LatencyMs,
          t.latency.count,
          enoughLatency,
          controlJudged && c.latency.count >= min && cP99 !== null && cP99 > guard.maxP99LatencyMs,
        ),
      );
      if (guard.compareToControl) {
        const tRate = t.requests > 0 ? t.errorRate : null;
        const cRate = c !== undefined && c.requests > 0 ? c.errorRate : null;
        checks.push(
          check(
            tests.error_rate_vs_control,
            'error_rate_vs_control',
            cfg.comparison,
            logCmp,
            logSplit,
            1,
            enoughTreatment && enoughControl,
            false,
            {
              observed: tRate,
              control: cRate,
              threshold: 1 + cfg.errorMargin,
              ratio: ratioOf(tRate, cRate),
              samples: t.requests,
              controlSamples: c?.requests ?? null,
            },
          ),
          check(
            tests.latency_vs_control,
            'latency_vs_control',
            cfg.comparison,
            logCmp,
            logSplit,
            1,
            enoughLatency && enoughReference,
            false,
            {
              observed: tP99,
              control: cP99,
              threshold: 1 + cfg.latencyMargin,
              ratio: ratioOf(tP99, cP99),
              samples: t.latency.count,
              controlSamples: c?.latency.count ?? null,
            },
          ),
        );
      }
    }

    const triggers = checks.filter((k) => k.status === 'fail').map((k) => k.trigger);
    const status: VerdictStatus =
      triggers.length > 0 ? 'regression' : enoughTreatment ? 'healthy' : 'insufficient_data';
    return {
      variant,
      status,
      triggers,
      reason: checks
        .filter((k) => k.status === 'fail')
        .map(describeCheck)
        .join(', '),
      treatment: treatment.total.figures(variant),
      control: control?.total.figures(controlVariant) ?? null,
      window: {
        treatment: treatment.window.figures(variant),
        control: controlWindow?.figures(controlVariant) ?? null,
      },
      checks,
    };
  }
}

function verdictOf(
  env: string,
  flag: Flag,
  now: number,
  guard: ResolvedGuard,
  thresholds: AppliedThresholds,
  status: VerdictStatus,
  epoch: number,
  variants: VariantVerdict[],
): FlagVerdict {
  const triggers: Trigger[] = [];
  const reasons: string[] = [];
  for (const v of variants) {
    for (const t of v.triggers) if (!triggers.includes(t)) triggers.push(t);
    if (v.reason !== '') reasons.push(`variant ${v.variant}: ${v.reason}`);
  }
  return {
    env,
    flag: flag.key,
    version: flag.version,
    evaluatedAt: now,
    status,
    guarded: guard.enabled,
    severity: guard.severity,
    autoKill: guard.autoKill,
    kill: status === 'regression' && guard.enabled && guard.autoKill,
    controlVariant: flag.offVariant,
    epoch,
    thresholds,
    triggers,
    reason: reasons.join('; '),
    variants,
  };
}

function flagId(env: string, flag: string): string {
  return `${env}\n${flag}`;
}

function fresh(m: Mixture): TestState {
  return { llr: freshState(m), consecutive: 0 };
}

const RANK: Record<VerdictStatus, number> = { healthy: 0, insufficient_data: 1, regression: 2 };

function worse(a: VerdictStatus, b: VerdictStatus): VerdictStatus {
  return RANK[b] > RANK[a] ? b : a;
}

function ratioOf(a: number | null, b: number | null): number | null {
  return a === null || b === null || b <= 0 ? null : a / b;
}

type Figures = Pick<Check, 'observed' | 'control' | 'threshold' | 'ratio' | 'samples' | 'controlSamples'>;

/** Reads a test at this evaluation, advancing its run of evaluations over the boundary. */
function check(
  test: TestState,
  trigger: Trigger,
  m: Mixture,
  logBoundary: number,
  logSplit: number,
  required: number,
  enough: boolean,
  shared: boolean,
  figures: Figures,
): Check {
  const logEvidence = mixtureLogE(m, test.llr);
  const over = logEvidence >= logBoundary;
  test.consecutive = enough && over && !shared ? test.consecutive + 1 : 0;
  let status: CheckStatus;
  if (!enough) status = 'insufficient_data';
  else if (over && shared) status = 'shared_breach';
  else if (test.consecutive >= required) status = 'fail';
  else status = 'pass';
  return {
    trigger,
    status,
    ...figures,
    logEvidence,
    logBoundary,
    pValue: Math.min(1, Math.exp(logSplit - logEvidence)),
    consecutive: test.consecutive,
    required,
  };
}

const percent = (x: number) => `${(x * 100).toFixed(2)}%`;
const ms = (x: number) => `${Math.round(x)} ms`;

/** One line on a firing check. */
export function describeCheck(k: Check): string {
  const evidence = `e-value e^${k.logEvidence.toFixed(1)} ≥ e^${k.logBoundary.toFixed(1)}`;
  const obs = k.observed ?? Number.NaN;
  const ctl = k.control ?? Number.NaN;
  switch (k.trigger) {
    case 'error_rate':
      return `error rate ${percent(obs)} over ${percent(k.threshold)} (${evidence}, ${k.consecutive} in a row)`;
    case 'success_rate':
      return `success rate ${percent(obs)} under ${percent(k.threshold)} (${evidence}, ${k.consecutive} in a row)`;
    case 'p99_latency':
      return `p99 ${ms(obs)} over ${ms(k.threshold)} (${evidence}, ${k.consecutive} in a row)`;
    case 'error_rate_vs_control':
      return `error rate ${percent(obs)} vs control ${percent(ctl)}${k.ratio === null ? '' : ` (${k.ratio.toFixed(1)}×)`} (${evidence})`;
    case 'latency_vs_control':
      return `p99 ${ms(obs)} vs control ${ms(ctl)}, margin ${percent(k.threshold - 1)} (${evidence})`;
  }
}
