import { describe, expect, it } from 'vitest';
import { fullJitter } from '../src/index.js';

describe('full-jitter backoff', () => {
  it('is uniform in [0, base · 2^attempt) below the cap', () => {
    expect(fullJitter(0, 500, 30_000, () => 0)).toBe(0);
    expect(fullJitter(0, 500, 30_000, () => 0.999999)).toBe(499);
    expect(fullJitter(3, 500, 30_000, () => 0.5)).toBe(2000);
    expect(fullJitter(5, 500, 30_000, () => 0.999999)).toBe(15_999);
  });

  it('draws from [0, min(cap, base·2^attempt))', () => {
    expect(fullJitter(0, 100, 1000, () => 0.999)).toBe(99);
    expect(fullJitter(3, 100, 1000, () => 0.999)).toBe(799);
    expect(fullJitter(10, 100, 1000, () => 0.5)).toBe(500);
    expect(fullJitter(2, 100, 1000, () => 0)).toBe(0);
  });

  it('never exceeds the cap, however many attempts', () => {
    for (const attempt of [6, 7, 20, 64, 10_000]) {
      expect(fullJitter(attempt, 500, 30_000, () => 0.999999)).toBeLessThan(30_000);
      expect(fullJitter(attempt, 500, 30_000, () => 0.5)).toBe(15_000);
    }
  });

  it('spreads a fleet of reconnects over the whole interval', () => {
    const delays = Array.from({ length: 2000 }, () => fullJitter(4, 500, 30_000));
    const buckets = [0, 0, 0, 0];
    for (const d of delays) buckets[Math.floor(d / 2000)]! += 1;
    // Each quarter of [0, 8000) gets about a quarter of the clients.
    for (const count of buckets) expect(count).toBeGreaterThan(400);
    expect(Math.max(...delays)).toBeLessThan(8000);
  });
});
