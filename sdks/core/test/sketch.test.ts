import { latencySketchSchema } from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import { LatencySketch } from '../src/index.js';

/** A seeded PRNG (mulberry32) so a failure reproduces. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Log-normal latencies around `medianMs`, like a service's: a long right tail. */
function latencies(n: number, seed: number, medianMs = 40, sigma = 1): number[] {
  const next = random(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = 1 - next();
    const v = next();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    out.push(medianMs * Math.exp(sigma * normal));
  }
  return out;
}

/** The exact value at rank `q·(n−1)` (the rank the sketch answers for). */
function exactQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}

function sketchOf(values: readonly number[], alpha?: number, maxBins?: number): LatencySketch {
  const sketch = new LatencySketch(alpha, maxBins);
  for (const v of values) sketch.add(v);
  return sketch;
}

const relativeError = (got: number, want: number) => Math.abs(got - want) / want;

describe('LatencySketch accuracy', () => {
  const cases = [
    { name: 'log-normal latencies', values: latencies(50_000, 1) },
    {
      name: 'uniform 0.1–5000 ms',
      values: Array.from({ length: 20_000 }, random(2)).map((u) => 0.1 + u * 4999.9),
    },
    {
      name: 'bimodal (cache hits and misses)',
      values: [...latencies(9_000, 3, 2, 0.3), ...latencies(1_000, 4, 800, 0.5)],
    },
    { name: 'a few samples', values: latencies(7, 5) },
  ];
  for (const { name, values } of cases) {
    it(`answers p50, p90 and p99 within 2% of the exact quantile: ${name}`, () => {
      const sketch = sketchOf(values);
      const sorted = [...values].sort((a, b) => a - b);
      for (const q of [0.5, 0.9, 0.99]) {
        const got = sketch.quantile(q)!;
        expect(relativeError(got, exactQuantile(sorted, q)), `q=${q}`).toBeLessThanOrEqual(0.02);
      }
    });
  }

  it('keeps its promise of alpha relative error for other alphas', () => {
    const values = latencies(20_000, 6, 100, 2);
    const sorted = [...values].sort((a, b) => a - b);
    for (const alpha of [0.005, 0.02, 0.05]) {
      const sketch = sketchOf(values, alpha);
      for (const q of [0.1, 0.5, 0.75, 0.95, 0.999]) {
        expect(
          relativeError(sketch.quantile(q)!, exactQuantile(sorted, q)),
          `alpha=${alpha} q=${q}`,
        ).toBeLessThanOrEqual(alpha * (1 + 1e-9));
      }
    }
  });

  it('answers the extremes exactly and counts zero and negative latencies as 0', () => {
    const sketch = sketchOf([0, -3, 12.5, 40, 1000]);
    expect(sketch.quantile(0)).toBe(0);
    expect(sketch.quantile(1)).toBe(1000);
    expect(sketch.quantile(0.25)).toBe(0);
    expect(sketch.count).toBe(5);
    expect(sketch.sum).toBe(1052.5);
    expect(sketch.toJSON()).toMatchObject({ zero: 2, min: 0, max: 1000 });
  });

  it('ignores NaN and infinities rather than corrupting its sums', () => {
    const sketch = sketchOf([Number.NaN, Number.POSITIVE_INFINITY, 5, Number.NEGATIVE_INFINITY]);
    expect(sketch.count).toBe(1);
    expect(sketch.sum).toBe(5);
  });

  it('is empty until a value is added', () => {
    const sketch = new LatencySketch();
    expect(sketch.quantile(0.5)).toBeUndefined();
    expect(sketch.min).toBeUndefined();
    expect(sketch.toJSON()).toEqual({ alpha: 0.01, zero: 0, bins: [], count: 0, sum: 0 });
  });

  it('refuses an alpha outside (0, 1)', () => {
    expect(() => new LatencySketch(0)).toThrow(RangeError);
    expect(() => new LatencySketch(1)).toThrow(RangeError);
  });
});

describe('LatencySketch bounded bins', () => {
  it('collapses the lowest bins past maxBins and keeps the high quantiles accurate', () => {
    // 1 µs to 100 s spans ~900 bins at alpha 0.01; cap at 200.
    const next = random(7);
    const values = Array.from({ length: 30_000 }, () => 10 ** (next() * 8 - 3));
    const sketch = sketchOf(values, 0.01, 200);
    const json = sketch.toJSON();
    expect(json.bins.length).toBe(200);
    expect(json.bins.reduce((n, [, c]) => n + c, 0) + json.zero).toBe(values.length);
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of [0.9, 0.99, 0.999]) {
      expect(relativeError(sketch.quantile(q)!, exactQuantile(sorted, q)), `q=${q}`).toBeLessThanOrEqual(
        0.02,
      );
    }
    // The collapsed low end is where precision went.
    expect(relativeError(sketch.quantile(0.01)!, exactQuantile(sorted, 0.01))).toBeGreaterThan(0.02);
  });
});

describe('LatencySketch merge', () => {
  it('merging two sketches equals the sketch of the union', () => {
    const a = latencies(10_000, 8);
    const b = [...latencies(5_000, 9, 300, 1.5), 0, 0];
    const merged = sketchOf(a);
    merged.merge(sketchOf(b));
    const union = sketchOf([...a, ...b]);
    const { sum: mergedSum, ...mergedRest } = merged.toJSON();
    const { sum: unionSum, ...unionRest } = union.toJSON();
    expect(mergedRest).toEqual(unionRest);
    expect(mergedSum).toBeCloseTo(unionSum, 6);
    expect(merged.quantile(0.99)).toBe(union.quantile(0.99));
  });

  it('merging equals the union even when both sides collapsed', () => {
    const next = random(10);
    const wide = () => Array.from({ length: 5_000 }, () => 10 ** (next() * 9 - 4));
    const a = wide();
    const b = wide();
    const merged = sketchOf(a, 0.01, 150);
    merged.merge(sketchOf(b, 0.01, 150));
    const { sum: _m, ...mergedRest } = merged.toJSON();
    const { sum: _u, ...unionRest } = sketchOf([...a, ...b], 0.01, 150).toJSON();
    expect(mergedRest).toEqual(unionRest);
  });

  it('merging an empty sketch changes nothing, and merging into one takes the other whole', () => {
    const full = sketchOf([3, 4, 5]);
    const before = full.toJSON();
    full.merge(new LatencySketch());
    expect(full.toJSON()).toEqual(before);
    const empty = new LatencySketch();
    empty.merge(full);
    expect(empty.toJSON()).toEqual(before);
  });

  it('refuses to merge sketches of different alphas', () => {
    expect(() => new LatencySketch(0.01).merge(new LatencySketch(0.02))).toThrow(/alpha/);
  });
});

describe('LatencySketch JSON', () => {
  it('round-trips through its wire shape, which validates against latencySketchSchema', () => {
    const sketch = sketchOf([...latencies(2_000, 11), 0]);
    const json = JSON.parse(JSON.stringify(sketch)) as unknown;
    const parsed = latencySketchSchema.parse(json);
    const back = LatencySketch.fromJSON(parsed);
    expect(back.toJSON()).toEqual(sketch.toJSON());
    for (const q of [0.5, 0.9, 0.99]) expect(back.quantile(q)).toBe(sketch.quantile(q));
    expect(parsed.bins.map(([i]) => i)).toEqual([...parsed.bins.map(([i]) => i)].sort((x, y) => x - y));
  });

  it('an empty sketch validates too', () => {
    expect(latencySketchSchema.safeParse(new LatencySketch().toJSON()).success).toBe(true);
  });

  it('a sketch read back keeps accepting values and merges', () => {
    const back = LatencySketch.fromJSON(sketchOf([10, 20]).toJSON());
    back.add(30);
    back.merge(sketchOf([40]));
    expect(back.count).toBe(4);
    expect(back.max).toBe(40);
    expect(back.min).toBe(10);
  });
});
