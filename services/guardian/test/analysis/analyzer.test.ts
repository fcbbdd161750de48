import { describe, expect, it } from 'vitest';
import { type Check, CohortAnalyzer, type FlagVerdict, type Trigger } from '../../src/analysis/index.js';
import { binomialSource, drive, ENV, firstRegression, flagOf, steady, summaryOf, T0 } from './traffic.js';

const checkOf = (v: FlagVerdict, trigger: Trigger): Check => {
  const c = v.variants[0]?.checks.find((k) => k.trigger === trigger);
  if (c === undefined) throw new Error(`no ${trigger} check`);
  return c;
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

describe('CohortAnalyzer verdicts', () => {
  it('a 5× error rate at 5% exposure is a regression', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    const verdicts = drive(analyzer, flag, 0, 60, split(0.05, 0.025, 0.005));
    const first = firstRegression(verdicts);
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(15);
    const v = verdicts[first]!;
    expect(v.kill).toBe(true);
    expect(v.triggers).toContain('error_rate_vs_control');
    const vs = v.variants[0]!;
    expect(vs.variant).toBe('on');
    expect(vs.treatment.requests).toBe(50 * (first + 1));
    expect(vs.control?.requests).toBe(950 * (first + 1));
    const cmp = checkOf(v, 'error_rate_vs_control');
    expect(cmp.status).toBe('fail');
    expect(cmp.ratio!).toBeGreaterThan(3);
    expect(cmp.logEvidence).toBeGreaterThanOrEqual(cmp.logBoundary);
    expect(cmp.pValue).toBeLessThanOrEqual(analyzer.config.alpha);
    expect(v.reason).toMatch(/^variant on: error rate .* vs control .*/);
    // Before it fires, the same check passes with a p-value above alpha.
    const before = checkOf(verdicts[first - 1]!, 'error_rate_vs_control');
    expect(before.pValue).toBeGreaterThan(analyzer.config.alpha);
  });

  it('equal error rates stay healthy', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    const binomial = binomialSource(7);
    const verdicts = drive(analyzer, flag, 0, 20 * 60, () => [
      { variant: 'on', requests: 50, errors: binomial(50, 0.008) },
      { variant: 'off', requests: 950, errors: binomial(950, 0.008) },
    ]);
    expect(verdicts.filter((v) => v.status === 'regression')).toEqual([]);
    expect(verdicts.at(-1)!.status).toBe('healthy');
    // 20 minutes in: the tests restarted at 10 and 20 minutes.
    expect(verdicts.at(-1)!.epoch).toBe(3);
  });

  it('too few samples gives insufficient_data', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    // Half the treatment's requests fail, but it has only 100 of the 200 needed.
    const [v] = drive(analyzer, flag, 0, 1, () => [
      { variant: 'on', requests: 100, errors: 50 },
      { variant: 'off', requests: 2000, errors: 2 },
    ]);
    expect(v!.status).toBe('insufficient_data');
    expect(v!.kill).toBe(false);
    expect(v!.variants[0]!.checks.every((c) => c.status === 'insufficient_data')).toBe(true);
    // No traffic at all for the flag: nothing to judge.
    expect(analyzer.evaluate(ENV, flagOf({ key: 'other' }), T0).status).toBe('insufficient_data');
  });

  it('thresholds need consecutive failures', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf({ guard: { enabled: true, compareToControl: false, consecutiveFailures: 3 } });
    const verdicts = drive(analyzer, flag, 0, 3, () => [{ variant: 'on', requests: 500, errors: 50 }]);
    expect(verdicts.map((v) => checkOf(v, 'error_rate').consecutive)).toEqual([1, 2, 3]);
    expect(verdicts.map((v) => checkOf(v, 'error_rate').status)).toEqual(['pass', 'pass', 'fail']);
    expect(verdicts.map((v) => v.status)).toEqual(['healthy', 'healthy', 'regression']);
    expect(verdicts[2]!.triggers).toEqual(['error_rate', 'success_rate']);
    expect(checkOf(verdicts[2]!, 'error_rate').observed).toBeCloseTo(0.1, 12);
    expect(checkOf(verdicts[2]!, 'success_rate').observed).toBeCloseTo(0.9, 12);

    const once = new CohortAnalyzer();
    const eager = flagOf({ guard: { enabled: true, compareToControl: false, consecutiveFailures: 1 } });
    expect(drive(once, eager, 0, 1, () => [{ variant: 'on', requests: 500, errors: 50 }])[0]!.status).toBe(
      'regression',
    );
  });

  it('an error rate just under the threshold does not breach it', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf({ guard: { enabled: true, compareToControl: false } });
    const verdicts = drive(analyzer, flag, 0, 600, (s) => [
      { variant: 'on', requests: 1000, errors: steady(s, 1000, 0.009) },
    ]);
    expect(verdicts.every((v) => v.status === 'healthy')).toBe(true);
  });

  it('latency regression triggers on p99', () => {
    const analyzer = new CohortAnalyzer();
    const flag = flagOf();
    const verdicts = drive(analyzer, flag, 0, 60, split(0.05, 0.005, 0.005, 240, 80));
    const first = firstRegression(verdicts);
    expect(first).toBeGreaterThan(0);
    const v = verdicts[first]!;
    expect(v.triggers).toEqual(['latency_vs_control']);
    const check = checkOf(v, 'latency_vs_control');
    expect(check.ratio!).toBeGreaterThan(2.8);
    expect(check.ratio!).toBeLessThan(3.2);
    expect(check.threshold).toBeCloseTo(1.2, 12);
    expect(v.variants[0]!.treatment.p99LatencyMs!).toBeGreaterThan(600);

    // Over the absolute p99 threshold, with no control to compare against.
    const alone = new CohortAnalyzer();
    const slow = flagOf({ guard: { enabled: true, compareToControl: false } });
    const out = drive(alone, slow, 0, 10, () => [
      { variant: 'on', requests: 500, errors: 0, medianMs: 1500 },
    ]);
    const fired = out[firstRegression(out)]!;
    expect(fired.triggers).toEqual(['p99_latency']);
    expect(checkOf(fired, 'p99_latency').observed!).toBeGreaterThan(2000);
  });

  it('a slightly slower treatment within the latency margin stays healthy', () => {
    const analyzer = new CohortAnalyzer();
    const verdicts = drive(analyzer, flagOf(), 0, 600, split(0.5, 0.005, 0.005, 88, 80));
    expect(verdicts.filter((v) => v.status === 'regression')).toEqual([]);
  });

  it('the control cohort is the offVariant', () => {
    const variants = [
      { key: 'new', value: 'v2' },
      { key: 'legacy', value: 'v1' },
    ];
    const traffic = (s: number) => [
      { variant: 'new', requests: 500, errors: steady(s, 500, 0.005) },
      { variant: 'legacy', requests: 500, errors: steady(s, 500, 0.05) },
    ];
    const legacyControl = flagOf({ variants, offVariant: 'legacy', fallthrough: { variant: 'new' } });
    const a = drive(new CohortAnalyzer(), legacyControl, 0, 60, traffic);
    expect(a.at(-1)!.controlVariant).toBe('legacy');
    expect(a.at(-1)!.variants.map((v) => v.variant)).toEqual(['new']);
    expect(a.every((v) => v.status !== 'regression')).toBe(true);

    const newControl = flagOf({ variants, offVariant: 'new', fallthrough: { variant: 'legacy' } });
    const b = drive(new CohortAnalyzer(), newControl, 0, 60, traffic);
    const fired = b[firstRegression(b)]!;
    expect(fired.variants.map((v) => v.variant)).toEqual(['legacy']);
    expect(fired.variants[0]!.control!.variant).toBe('new');
    expect(fired.triggers).toContain('error_rate_vs_control');
  });

  it('a new version starts fresh', () => {
    const analyzer = new CohortAnalyzer();
    const v1 = flagOf({ version: 1 });
    const first = drive(analyzer, v1, 0, 30, split(0.05, 0.05, 0.005));
    expect(first.at(-1)!.status).toBe('regression');

    const v2 = flagOf({ version: 2 });
    const empty = analyzer.evaluate(ENV, v2, T0 + 31_000);
    expect(empty.status).toBe('insufficient_data');
    expect(empty.version).toBe(2);
    expect(empty.variants).toEqual([]);
    // A straggling summary of the old version is dropped.
    expect(analyzer.ingest(summaryOf(v1, 30, { variant: 'on', requests: 50, errors: 50 }))).toBe(false);

    const second = drive(analyzer, v2, 31, 30, split(0.05, 0.005, 0.005));
    const last = second.at(-1)!;
    expect(last.status).toBe('healthy');
    expect(last.variants[0]!.treatment.requests).toBe(50 * 30);
    expect(last.variants[0]!.treatment.errors).toBe(
      Math.floor(50 * 61 * 0.005) - Math.floor(50 * 31 * 0.005),
    );
  });

  it('a regression that starts late is still caught once the tests restart', () => {
    const analyzer = new CohortAnalyzer({ config: { epochMs: 60_000 } });
    const flag = flagOf();
    const calm = drive(analyzer, flag, 0, 600, split(0.05, 0.005, 0.005));
    expect(calm.every((v) => v.status !== 'regression')).toBe(true);
    const bad = drive(analyzer, flag, 600, 180, split(0.05, 0.025, 0.005));
    const first = firstRegression(bad);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(90);
    expect(bad[first]!.epoch).toBeGreaterThan(10);
  });

  it('a breach the control cohort shares is not blamed on the flag', () => {
    const shared = drive(new CohortAnalyzer(), flagOf(), 0, 120, split(0.5, 0.03, 0.03));
    const last = shared.at(-1)!;
    expect(last.status).toBe('healthy');
    expect(checkOf(last, 'error_rate').status).toBe('shared_breach');
    expect(checkOf(last, 'error_rate').consecutive).toBe(0);

    const strict = new CohortAnalyzer({ config: { exemptSharedBreaches: false } });
    const blamed = drive(strict, flagOf(), 0, 120, split(0.5, 0.03, 0.03));
    expect(blamed.at(-1)!.triggers).toEqual(['error_rate', 'success_rate']);
  });

  it('a disabled guard reports figures only', () => {
    const flag = flagOf({ guard: { enabled: false } });
    const [v] = drive(new CohortAnalyzer(), flag, 0, 1, split(0.5, 0.5, 0.001));
    expect(v!.guarded).toBe(false);
    expect(v!.status).toBe('healthy');
    expect(v!.kill).toBe(false);
    expect(v!.variants[0]!.checks).toEqual([]);
    expect(v!.variants[0]!.treatment.errorRate).toBeCloseTo(0.5, 12);
  });

  it('a notify-only severity reports the regression without asking for a kill', () => {
    const flag = flagOf({ guard: { enabled: true, severity: 'sev3' } });
    const verdicts = drive(new CohortAnalyzer(), flag, 0, 30, split(0.05, 0.05, 0.005));
    const v = verdicts.at(-1)!;
    expect(v.status).toBe('regression');
    expect(v.severity).toBe('sev3');
    expect(v.autoKill).toBe(false);
    expect(v.kill).toBe(false);
  });

  it('splits alpha across the treatment variants', () => {
    const flag = flagOf({
      variants: [
        { key: 'a', value: 'a' },
        { key: 'b', value: 'b' },
        { key: 'off', value: 'off' },
      ],
    });
    const analyzer = new CohortAnalyzer();
    const [v] = drive(analyzer, flag, 0, 1, () => [
      { variant: 'a', requests: 300, errors: 1 },
      { variant: 'b', requests: 300, errors: 1 },
      { variant: 'off', requests: 400, errors: 1 },
    ]);
    expect(v!.variants.map((x) => x.variant)).toEqual(['a', 'b']);
    const check = v!.variants[1]!.checks.find((c) => c.trigger === 'error_rate_vs_control')!;
    expect(check.logBoundary).toBeCloseTo(Math.log(2 / (analyzer.config.alpha * (6 / Math.PI ** 2))), 12);
  });

  it('the sliding window holds only the horizon', () => {
    const analyzer = new CohortAnalyzer({ config: { horizonMs: 60_000, bucketMs: 5000 } });
    const verdicts = drive(analyzer, flagOf(), 0, 300, split(0.05, 0.005, 0.005));
    const last = verdicts.at(-1)!.variants[0]!;
    expect(last.treatment.requests).toBe(300 * 50);
    expect(last.window.treatment.requests).toBe(60 * 50);
    expect(last.window.control!.requests).toBe(60 * 950);
    expect(last.window.treatment.p99LatencyMs!).toBeGreaterThan(150);
  });

  it('is deterministic: the same calls give the same verdicts', () => {
    const run = () => {
      const binomial = binomialSource(99);
      return drive(new CohortAnalyzer(), flagOf(), 0, 120, () => [
        { variant: 'on', requests: 50, errors: binomial(50, 0.02) },
        { variant: 'off', requests: 950, errors: binomial(950, 0.005) },
      ]);
    };
    expect(JSON.stringify(run())).toBe(JSON.stringify(run()));
  });

  it('forgets and prunes flags', () => {
    const analyzer = new CohortAnalyzer();
    drive(analyzer, flagOf(), 0, 2, split(0.5, 0, 0));
    drive(analyzer, flagOf({ key: 'other' }), 100, 2, split(0.5, 0, 0));
    expect([...analyzer.tracked()]).toEqual([
      [ENV, 'checkout-v2'],
      [ENV, 'other'],
    ]);
    expect(analyzer.prune(T0 + 50_000)).toBe(1);
    analyzer.forget(ENV, 'other');
    expect([...analyzer.tracked()]).toEqual([]);
  });
});
