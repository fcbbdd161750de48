import { describe, expect, it } from 'vitest';
import {
  addOneSample,
  addTwoSample,
  epochShare,
  freshState,
  logSumExp,
  mixture,
  mixtureLogE,
  oneSample,
} from '../../src/analysis/index.js';

/** ln C(n, k). */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}

describe('numeric building blocks', () => {
  it('logSumExp adds in log space without overflow', () => {
    expect(logSumExp([0, 0], [Math.log(0.5), Math.log(0.5)])).toBeCloseTo(0, 12);
    expect(logSumExp([1000, 1000], [0, 0])).toBeCloseTo(1000 + Math.LN2, 9);
    expect(logSumExp([-1e6], [0])).toBe(-1e6);
    expect(logSumExp([Number.NEGATIVE_INFINITY], [0])).toBe(Number.NEGATIVE_INFINITY);
    // A component at +∞ (a zero threshold's proof) makes the mixture +∞, not ∞ − ∞ = NaN.
    expect(logSumExp([Number.POSITIVE_INFINITY, 0], [Math.log(0.5), Math.log(0.5)])).toBe(
      Number.POSITIVE_INFINITY,
    );
  });

  it('a mixture normalises its weights', () => {
    const m = mixture([2, 4], [1, 3]);
    expect(Math.exp(m.logWeights[0]!)).toBeCloseTo(0.25, 12);
    expect(Math.exp(m.logWeights[1]!)).toBeCloseTo(0.75, 12);
    expect(m.logRatios[1]).toBeCloseTo(Math.log(4), 12);
    expect(() => mixture([1], [1])).toThrow(RangeError);
    expect(() => mixture([2, 3], [1])).toThrow(RangeError);
  });

  it('a fresh test has e-value 1', () => {
    const m = mixture([1.5, 2, 3]);
    expect(mixtureLogE(m, freshState(m))).toBeCloseTo(0, 12);
  });

  it('the two-sample log likelihood ratio matches a hand computation', () => {
    // ψ = 2, equal cohorts: π0 = 1/2, q = 2/3; 3 events in A, 1 in B:
    // 3·ln(4/3) + ln(2/3) = 0.4575811092…
    const m = mixture([2]);
    const s = freshState(m);
    addTwoSample(s, m, 3, 100, 1, 100);
    expect(s[0]).toBeCloseTo(0.4575811092471783, 12);
    // A batch without events, or with an empty cohort, carries no evidence.
    addTwoSample(s, m, 0, 100, 0, 100);
    addTwoSample(s, m, 5, 0, 1, 100);
    expect(s[0]).toBeCloseTo(0.4575811092471783, 12);
  });

  it('the one-sample log likelihood ratio matches a hand computation', () => {
    // p0 = 1%, odds ratio 3: p = 1/34; 2 events in 100: 2·ln(p/p0) + 98·ln((1−p)/(1−p0)) = 0.2169618…
    const m = mixture([3]);
    const s = freshState(m);
    addOneSample(s, oneSample(m, 0.01), 2, 100);
    expect(s[0]).toBeCloseTo(0.21696184771824423, 12);
  });

  it('a zero threshold is breached by one event', () => {
    const m = mixture([2]);
    const s = freshState(m);
    addOneSample(s, oneSample(m, 0), 0, 100);
    expect(s[0]).toBe(0);
    addOneSample(s, oneSample(m, 0), 1, 100);
    expect(s[0]).toBe(Number.POSITIVE_INFINITY);
  });

  it('epoch shares follow 6/(π²·j²) and sum to at most 1', () => {
    expect(epochShare(1)).toBeCloseTo(0.6079271018540267, 14);
    expect(epochShare(2)).toBeCloseTo(0.6079271018540267 / 4, 14);
    let sum = 0;
    for (let j = 1; j <= 100_000; j++) sum += epochShare(j);
    expect(sum).toBeLessThan(1);
    expect(sum).toBeGreaterThan(0.9999);
    expect(() => epochShare(0)).toThrow(RangeError);
  });
});

describe('validity of the comparison test', () => {
  it('one batch’s likelihood ratio has mean 1 under the binomial null', () => {
    const m = mixture([3]);
    const total = 7;
    const nA = 30;
    const nB = 570;
    const pi = nA / (nA + nB);
    let mean = 0;
    for (let a = 0; a <= total; a++) {
      const s = freshState(m);
      addTwoSample(s, m, a, nA, total - a, nB);
      mean += Math.exp(logChoose(total, a) + a * Math.log(pi) + (total - a) * Math.log1p(-pi) + s[0]!);
    }
    expect(mean).toBeCloseTo(1, 12);
  });

  it('its mean is at most 1 under the exact (hypergeometric) null, whatever the shared base rate', () => {
    // Given `total` events among nA + nB requests with equal rates, the events are a uniform draw
    // without replacement: the A count is hypergeometric. Hoeffding bounds its convex moments.
    const m = mixture([1.5, 3, 9], [1, 1, 1]);
    for (const [nA, nB, total] of [
      [5, 15, 4],
      [10, 10, 12],
      [2, 40, 6],
      [25, 475, 30],
    ] as const) {
      const N = nA + nB;
      let mean = 0;
      for (let a = Math.max(0, total - nB); a <= Math.min(total, nA); a++) {
        const p = Math.exp(logChoose(nA, a) + logChoose(nB, total - a) - logChoose(N, total));
        const s = freshState(m);
        addTwoSample(s, m, a, nA, total - a, nB);
        mean += p * Math.exp(mixtureLogE(m, s));
      }
      expect(mean).toBeLessThanOrEqual(1 + 1e-12);
    }
  });

  it('under the null it rarely ever crosses 1/alpha, however often it is read (Ville)', () => {
    // 4000 seeded A/A sequences of 300 batches, read after every batch; alpha = 5%.
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 4294967296;
    };
    const poisson = (lambda: number) => {
      let k = 0;
      let p = rand();
      const l = Math.exp(-lambda);
      while (p > l) {
        k++;
        p *= rand();
      }
      return k;
    };
    const m = mixture([1.5, 2, 3, 4, 6, 9, 14], [1, 2, 3, 3, 3, 2, 1]);
    const boundary = Math.log(1 / 0.05);
    let crossed = 0;
    const runs = 4000;
    for (let r = 0; r < runs; r++) {
      const s = freshState(m);
      for (let t = 0; t < 300; t++) {
        addTwoSample(s, m, poisson(0.25), 50, poisson(4.75), 950);
        if (mixtureLogE(m, s) >= boundary) {
          crossed++;
          break;
        }
      }
    }
    expect(crossed / runs).toBeLessThan(0.05);
  });
});
