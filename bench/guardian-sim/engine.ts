import type { CohortSummary, Flag, Guard } from '@vigil/proto';
import { COMPARISON_TRIGGERS, type SimAnalysisModule } from './analysis.js';
import type { LatencyModel } from './latency.js';
import { binomial, type Rng, seedOf, sfc32 } from './random.js';
import { FRONTIER_ALPHAS, type Scenario, TRAFFIC } from './scenarios.js';

/** What one seeded run saw. Times are seconds since the regression (or the schedule) started. */
export interface RunResult {
  /** The first evaluation whose verdict said kill, under the configuration being measured; null if none. */
  killAt: number | null;
  /** Index of the schedule phase (flag version) it happened in. */
  killPhase: number | null;
  killTriggers: string[];
  /** For each of FRONTIER_ALPHAS: when a kill would have come with the comparisons at that alpha. */
  frontier: (number | null)[];
}

const ENV = 'production';
const FLAG = 'checkout-v2';
/** Simulated wall clock origin: 2025-01-01T00:00:00Z. */
const T0 = Date.UTC(2025, 0, 1);

/** The flag as the store would hold it at one schedule step (each step is a write, hence a version). */
function flagAt(version: number, exposure: number, guard: Guard | undefined): Flag {
  const flag: Flag = {
    key: FLAG,
    description: '',
    tags: [],
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    killed: false,
    rules: [],
    fallthrough: {
      rollout: { exposure: Math.round(exposure * 100_000), weights: [{ variant: 'on', weight: 100_000 }] },
    },
    prerequisites: [],
    clientSide: false,
    version,
  };
  if (guard) flag.guard = guard;
  return flag;
}

/** One SDK instance's view of one cohort during one window, accumulated into sketch bins. */
class CohortWindow {
  private readonly counts: Int32Array;
  private readonly midpoints: Float64Array;
  requests = 0;
  errors = 0;

  constructor(private readonly model: LatencyModel) {
    this.counts = new Int32Array(model.bins);
    this.midpoints = new Float64Array(model.bins);
    for (let k = 0; k < model.bins; k++) {
      this.midpoints[k] = (2 * model.gamma ** (model.lo + k)) / (model.gamma + 1);
    }
  }

  /** Serves `n` requests with error rate `errorRate`. */
  serve(n: number, errorRate: number, rng: Rng): void {
    this.requests += n;
    this.errors += binomial(n, errorRate, rng);
    const counts = this.counts;
    const table = this.model.table;
    // Two requests per 32-bit draw: the high and the low 16 bits each pick a bin.
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const r = rng();
      counts[table[r >>> 16]!]!++;
      counts[table[r & 0xffff]!]!++;
    }
    if (i < n) counts[table[rng() >>> 16]!]!++;
  }

  /** The window's summary, as an SDK's `CohortMetrics` would send it; resets the window. */
  take(variant: string, version: number, windowStart: string, windowEnd: string): CohortSummary {
    const bins: [number, number][] = [];
    let sum = 0;
    let min = 0;
    let max = 0;
    const counts = this.counts;
    // The sampling table reaches only the bins between its first and last slot.
    const table = this.model.table;
    for (let k = table[0]!, last = table[table.length - 1]!; k <= last; k++) {
      const c = counts[k]!;
      if (c === 0) continue;
      const mid = this.midpoints[k]!;
      if (bins.length === 0) min = mid;
      max = mid;
      sum += c * mid;
      bins.push([this.model.lo + k, c]);
      counts[k] = 0;
    }
    const summary: CohortSummary = {
      env: ENV,
      flag: FLAG,
      variant,
      version,
      windowStart,
      windowEnd,
      requests: this.requests,
      errors: this.errors,
      latency: { alpha: this.model.alpha, zero: 0, bins, count: this.requests, sum, min, max },
    };
    this.requests = 0;
    this.errors = 0;
    return summary;
  }
}

/** A stable number for a scenario id, to seed its runs. */
function scenarioNumber(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * One seeded run: SDK instances serve `TRAFFIC.requestsPerSecond`, each sending a summary per cohort
 * every window; the guardian ingests them and evaluates the flag once per window. A `detect` run stops
 * once every alpha of the frontier has killed; an `aa` run goes through the whole schedule.
 */
export function runOnce(
  mod: SimAnalysisModule,
  scenario: Scenario,
  run: number,
  config: Record<string, unknown>,
): RunResult {
  const rng = sfc32(seedOf(scenarioNumber(scenario.id), run));
  const analyzer = new mod.CohortAnalyzer({ config });
  const perInstance = TRAFFIC.requestsPerSecond / TRAFFIC.instances;
  const windows = Array.from({ length: TRAFFIC.instances }, () => ({
    treatment: new CohortWindow(scenario.treatment.latency),
    control: new CohortWindow(scenario.control.latency),
  }));
  const result: RunResult = {
    killAt: null,
    killPhase: null,
    killTriggers: [],
    frontier: FRONTIER_ALPHAS.map(() => null),
  };
  let second = 0;
  for (let phase = 0; phase < scenario.phases.length; phase++) {
    const { exposure, seconds } = scenario.phases[phase]!;
    const version = phase + 1;
    const flag = flagAt(version, exposure, scenario.guard);
    for (let s = 0; s < seconds; s++) {
      const start = T0 + second * TRAFFIC.windowMs;
      const end = start + TRAFFIC.windowMs;
      const windowStart = new Date(start).toISOString();
      const windowEnd = new Date(end).toISOString();
      for (const w of windows) {
        const treated = binomial(perInstance, exposure, rng);
        w.treatment.serve(treated, scenario.treatment.errorRate, rng);
        w.control.serve(perInstance - treated, scenario.control.errorRate, rng);
        if (w.treatment.requests > 0)
          analyzer.ingest(w.treatment.take('on', version, windowStart, windowEnd));
        if (w.control.requests > 0) analyzer.ingest(w.control.take('off', version, windowStart, windowEnd));
      }
      second += 1;
      const verdict = analyzer.evaluate(ENV, flag, end);

      let minComparisonP = 1;
      let absoluteFired = false;
      for (const v of verdict.variants) {
        for (const c of v.checks) {
          if (c.status === 'insufficient_data') continue;
          if (COMPARISON_TRIGGERS.has(c.trigger)) minComparisonP = Math.min(minComparisonP, c.pValue);
          else if (c.status === 'fail') absoluteFired = true;
        }
      }
      let pending = false;
      for (let k = 0; k < FRONTIER_ALPHAS.length; k++) {
        if (result.frontier[k] !== null) continue;
        if (absoluteFired || minComparisonP <= FRONTIER_ALPHAS[k]!) result.frontier[k] = second;
        else pending = true;
      }
      if (verdict.kill && result.killAt === null) {
        result.killAt = second;
        result.killPhase = phase;
        result.killTriggers = verdict.triggers;
      }
      if (scenario.kind === 'detect' && !pending && result.killAt !== null) return result;
    }
  }
  return result;
}
