import { LatencySketch } from '@vigil/core';
import { describe, expect, it } from 'vitest';
import { LogHistogram } from '../../src/analysis/index.js';

/** Deterministic latencies spread log-uniformly over `median · e^(±2·spread)`, in a shuffled order. */
function latencies(n: number, medianMs: number, spread: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = ((i * 7919) % n) / n;
    out.push(medianMs * Math.exp(spread * 2 * (2 * u - 1)));
  }
  return out;
}

describe('LogHistogram', () => {
  it('uses the DDSketch bins of the wire format', () => {
    const h = new LogHistogram(0.01);
    // γ = 1.01/0.99, ln γ = 0.0200006667…; ln(100)/ln γ = 230.25 → bin 231; ln(2000)/ln γ = 380.03 → 381.
    expect(h.gamma).toBeCloseTo(1.01 / 0.99, 15);
    expect(h.indexOf(1)).toBe(0);
    expect(h.indexOf(100)).toBe(231);
    expect(h.indexOf(2000)).toBe(381);
    expect(h.upperEdge(231)).toBeGreaterThanOrEqual(100);
    expect(h.upperEdge(230)).toBeLessThan(100);
  });

  it('answers quantiles exactly as @vigil/core’s LatencySketch does', () => {
    const sketch = new LatencySketch(0.01);
    for (const v of [0, 0, ...latencies(5000, 80, 1)]) sketch.add(v);
    const h = LogHistogram.fromSketch(sketch.toJSON());
    for (const q of [0, 0.0001, 0.1, 0.5, 0.9, 0.99, 0.999, 1])
      expect(h.quantile(q)).toBe(sketch.quantile(q));
    expect(h.count).toBe(5002);
    expect(h.zero).toBe(2);
  });

  it('counts the values above a bin edge', () => {
    const h = LogHistogram.fromSketch({
      alpha: 0.01,
      zero: 1,
      bins: [
        [100, 3],
        [200, 4],
        [300, 5],
      ],
      count: 13,
      sum: 1000,
      min: 0,
      max: 400,
    });
    expect(h.countAbove(99)).toBe(12);
    expect(h.countAbove(100)).toBe(9);
    expect(h.countAbove(250)).toBe(5);
    expect(h.countAbove(300)).toBe(0);
    expect(h.quantileIndex(0.99)).toBe(300);
    expect(h.quantileIndex(0)).toBe(Number.NEGATIVE_INFINITY);
  });

  it('merges and subtracts back to where it was', () => {
    const a = LogHistogram.fromSketch(sketchOf(latencies(1000, 50, 1)));
    const b = LogHistogram.fromSketch(sketchOf(latencies(700, 400, 0.5)));
    const before = a.toJSON();
    a.merge(b);
    expect(a.count).toBe(1700);
    a.subtract(b);
    const after = a.toJSON();
    expect(after.bins).toEqual(before.bins);
    expect(after.count).toBe(before.count);
    expect(after.sum).toBeCloseTo(before.sum, 6);
  });

  it('round-trips through the wire shape', () => {
    const json = sketchOf(latencies(2000, 120, 0.8));
    expect(LogHistogram.fromSketch(json).toJSON()).toEqual(json);
  });

  it('re-bins a sketch of another alpha within both alphas’ error', () => {
    const values = latencies(3000, 90, 0.7);
    const coarse = new LatencySketch(0.02);
    for (const v of values) coarse.add(v);
    const h = new LogHistogram(0.01);
    h.addSketch(coarse.toJSON());
    const sorted = [...values].sort((x, y) => x - y);
    for (const q of [0.5, 0.9, 0.99]) {
      const truth = sorted[Math.floor(q * (sorted.length - 1))]!;
      expect(Math.abs(h.quantile(q)! / truth - 1)).toBeLessThan(0.031);
    }
  });

  it('is empty after clear and answers nothing', () => {
    const h = LogHistogram.fromSketch(sketchOf([1, 2, 3]));
    h.clear();
    expect(h.count).toBe(0);
    expect(h.quantile(0.5)).toBeUndefined();
    expect(h.countAbove(-5000)).toBe(0);
  });
});

function sketchOf(values: number[]) {
  const s = new LatencySketch(0.01);
  for (const v of values) s.add(v);
  return s.toJSON();
}
