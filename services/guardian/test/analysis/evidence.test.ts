import { LatencySketch } from '@vigil/core';
import { type SequentialTest, type Verdict, verdictSchema } from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import { CohortAnalyzer, type FlagVerdict, type Trigger } from '../../src/analysis/index.js';
import { storedVerdict } from '../../src/incidents/build.js';
import { drive, flagOf, sketchOf, steady } from './traffic.js';

// The evidence a verdict carries for the health endpoint and the console: latency quantiles per
// cohort, each sequential test's statistic against its boundary, and the policy applied.

/** The verdict as the store keeps it, through JSON and the contract's parse, as a reader sees it. */
const stored = (v: FlagVerdict): Verdict =>
  verdictSchema.parse(JSON.parse(JSON.stringify(storedVerdict(v, 'g1'))));

const testOf = (v: Verdict, trigger: Trigger): SequentialTest => {
  const t = v.variants[0]?.tests.find((k) => k.trigger === trigger);
  if (t === undefined) throw new Error(`no ${trigger} test`);
  return t;
};

/** 1000 requests/s, `share` of them to `on`, with the given error rates and medians. */
const split =
  (share: number, onRate: number, offRate: number, onMedian = 80, offMedian = 80) =>
  (s: number) => {
    const on = Math.round(1000 * share);
    return [
      { variant: 'on', requests: on, errors: steady(s, on, onRate), medianMs: onMedian },
      { variant: 'off', requests: 1000 - on, errors: steady(s, 1000 - on, offRate), medianMs: offMedian },
    ];
  };

describe('verdict evidence', () => {
  it("reports each cohort's p50, p95 and p99 as the SDKs' merged sketches answer them", () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    const traffic = split(0.2, 0.005, 0.005, 240, 80);
    const seconds = 12;
    const verdicts = drive(analyzer, flag, 0, seconds, traffic);
    const v = stored(verdicts.at(-1)!);
    // What the SDKs sent, merged as one sketch per cohort.
    const sent = new Map<string, LatencySketch>();
    for (let s = 0; s < seconds; s++) {
      for (const c of traffic(s)) {
        const sketch = sent.get(c.variant) ?? new LatencySketch(0.01);
        sketch.merge(LatencySketch.fromJSON(sketchOf(c.requests, c.medianMs)));
        sent.set(c.variant, sketch);
      }
    }
    const on = sent.get('on')!;
    const off = sent.get('off')!;
    const variant = v.variants[0]!;
    expect(variant.treatment).toMatchObject({
      p50LatencyMs: on.quantile(0.5),
      p95LatencyMs: on.quantile(0.95),
      p99LatencyMs: on.quantile(0.99),
    });
    expect(variant.control).toMatchObject({
      p50LatencyMs: off.quantile(0.5),
      p95LatencyMs: off.quantile(0.95),
      p99LatencyMs: off.quantile(0.99),
    });
    // Log-uniform over median·e^(±1): the median is the median, and the quantiles are ordered.
    expect(variant.treatment.p50LatencyMs!).toBeGreaterThan(240 * 0.98);
    expect(variant.treatment.p50LatencyMs!).toBeLessThan(240 * 1.02);
    expect(variant.treatment.p50LatencyMs!).toBeLessThan(variant.treatment.p95LatencyMs!);
    expect(variant.treatment.p95LatencyMs!).toBeLessThan(variant.treatment.p99LatencyMs!);
    // The sliding window's figures carry them too.
    expect(variant.window.treatment.p95LatencyMs).toBe(on.quantile(0.95));
  });

  it('a comparison fires exactly when its statistic crosses its boundary (errors)', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    const verdicts = drive(analyzer, flag, 0, 40, split(0.05, 0.025, 0.005)).map(stored);
    const fired = verdicts.findIndex((v) => v.status === 'regression');
    expect(fired).toBeGreaterThan(1);
    let crossedBefore = 0;
    for (const v of verdicts) {
      const t = testOf(v, 'error_rate_vs_control');
      expect(t.crossed).toBe(t.logEValue >= t.logBoundary);
      if (t.status === 'insufficient_data') {
        if (t.crossed) crossedBefore += 1;
        continue;
      }
      expect(v.variants[0]!.triggers.includes('error_rate_vs_control')).toBe(t.crossed);
      expect(t.status).toBe(t.crossed ? 'fail' : 'pass');
    }
    // Over the boundary at the first regression and not in the verdict before it.
    expect(testOf(verdicts[fired]!, 'error_rate_vs_control').crossed).toBe(true);
    expect(testOf(verdicts[fired - 1]!, 'error_rate_vs_control').crossed).toBe(false);
    expect(crossedBefore).toBe(0);
    // The boundary is ln(1/level): alpha split over the one treatment variant, in epoch 1 (6/π²).
    const t = testOf(verdicts[fired]!, 'error_rate_vs_control');
    expect(t.logBoundary).toBeCloseTo(Math.log(Math.PI ** 2 / 6 / analyzer.config.alpha), 12);
    expect(t.observed!).toBeGreaterThan(t.control!);
    expect(t.threshold).toBe(1 + analyzer.config.errorMargin);
    // The statistic the verdict reports is the one its reason text quotes.
    expect(verdicts[fired]!.reason).toContain(`e^${t.logEValue.toFixed(1)} ≥ e^${t.logBoundary.toFixed(1)}`);
  });

  it('a comparison fires exactly when its statistic crosses its boundary (latency)', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    const verdicts = drive(analyzer, flag, 0, 60, split(0.05, 0.005, 0.005, 240, 80)).map(stored);
    const fired = verdicts.findIndex((v) => v.status === 'regression');
    expect(fired).toBeGreaterThan(0);
    for (const v of verdicts) {
      const t = testOf(v, 'latency_vs_control');
      if (t.status === 'insufficient_data') continue;
      expect(v.variants[0]!.triggers.includes('latency_vs_control')).toBe(t.crossed);
    }
    expect(testOf(verdicts[fired]!, 'latency_vs_control')).toMatchObject({
      status: 'fail',
      crossed: true,
      threshold: 1 + analyzer.config.latencyMargin,
    });
    // A healthy comparison on the same verdict is under its boundary.
    expect(testOf(verdicts[fired]!, 'error_rate_vs_control').crossed).toBe(false);
  });

  it('an absolute threshold fires once its statistic has been over the boundary the evaluations required', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf({ guard: { enabled: true, compareToControl: false, consecutiveFailures: 3 } });
    const verdicts = drive(analyzer, flag, 0, 3, () => [{ variant: 'on', requests: 500, errors: 50 }]).map(
      stored,
    );
    const tests = verdicts.map((v) => testOf(v, 'error_rate'));
    expect(tests.map((t) => [t.crossed, t.consecutive, t.required, t.status])).toEqual([
      [true, 1, 3, 'pass'],
      [true, 2, 3, 'pass'],
      [true, 3, 3, 'fail'],
    ]);
    expect(verdicts.map((v) => v.variants[0]!.triggers.includes('error_rate'))).toEqual([false, false, true]);
    expect(tests[2]!.threshold).toBe(0.01);
    // compareToControl: false runs no comparison.
    expect(verdicts[0]!.variants[0]!.tests.map((t) => t.trigger)).toEqual([
      'error_rate',
      'success_rate',
      'p99_latency',
    ]);
  });

  it('reports the policy applied: the guard over the service defaults, and the levels', () => {
    const analyzer = new CohortAnalyzer({
      config: { alpha: 0.001, latencyMargin: 0.5 },
      defaults: { minSamples: 500, triggers: { maxP99LatencyMs: 900 } },
    });
    const flag = flagOf({ guard: { enabled: true, maxErrorRate: 0.02, consecutiveFailures: 2 } });
    const [v] = drive(analyzer, flag, 0, 1, split(0.5, 0, 0)).map(stored);
    expect(v!.thresholds).toEqual({
      maxErrorRate: 0.02,
      minSuccessRate: 0.99,
      maxP99LatencyMs: 900,
      minSamples: 500,
      consecutiveFailures: 2,
      compareToControl: true,
      alpha: 0.001,
      thresholdAlpha: 0.01,
      errorMargin: 0,
      latencyMargin: 0.5,
    });
    // The tests show the same numbers.
    expect(testOf(v!, 'error_rate').threshold).toBe(0.02);
    expect(testOf(v!, 'p99_latency').threshold).toBe(900);
    expect(testOf(v!, 'latency_vs_control').threshold).toBe(1.5);
    // Without traffic there is no test, but the policy is still reported.
    const quiet = stored(analyzer.evaluate('production', flagOf({ key: 'quiet' }), Date.UTC(2025, 0, 1)));
    expect(quiet.variants).toEqual([]);
    expect(quiet.thresholds).toMatchObject({ maxErrorRate: 0.01, minSamples: 500 });
  });

  it("a zero threshold's infinite evidence survives JSON as a capped finite statistic", () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf({ guard: { enabled: true, maxErrorRate: 0, compareToControl: false } });
    const [raw] = drive(analyzer, flag, 0, 1, () => [{ variant: 'on', requests: 500, errors: 1 }]);
    expect(raw!.variants[0]!.checks.find((c) => c.trigger === 'error_rate')!.logEvidence).toBe(
      Number.POSITIVE_INFINITY,
    );
    const t = testOf(stored(raw!), 'error_rate');
    expect(t).toMatchObject({ logEValue: 1e9, crossed: true });
  });

  it('a zero error-rate threshold fires on the first errors', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf({ guard: { enabled: true, maxErrorRate: 0, compareToControl: false } });
    const verdicts = drive(analyzer, flag, 0, 3, () => [{ variant: 'on', requests: 500, errors: 1 }]);
    expect(verdicts.map((v) => v.status)).toEqual(['healthy', 'healthy', 'regression']);
    expect(verdicts[2]!.triggers).toEqual(['error_rate']);
  });

  it('a disabled guard reports figures and no tests', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf({ guard: { enabled: false } });
    const [v] = drive(analyzer, flag, 0, 1, split(0.5, 0.5, 0)).map(stored);
    expect(v!.guarded).toBe(false);
    expect(v!.variants[0]!.tests).toEqual([]);
    expect(v!.variants[0]!.treatment.p50LatencyMs).not.toBeNull();
  });
});
