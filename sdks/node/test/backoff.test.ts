import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fullJitter } from '../src/backoff.js';
import { SDK_NAME, SDK_VERSION } from '../src/index.js';

describe('full-jitter backoff', () => {
  it('is uniform in [0, base · 2^attempt) below the cap', () => {
    expect(fullJitter(0, 500, 30_000, () => 0)).toBe(0);
    expect(fullJitter(0, 500, 30_000, () => 0.999999)).toBe(499);
    expect(fullJitter(3, 500, 30_000, () => 0.5)).toBe(2000);
    expect(fullJitter(5, 500, 30_000, () => 0.999999)).toBe(15_999);
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

describe('SDK identity', () => {
  it('the version sent in hello is the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(SDK_VERSION).toBe(pkg.version);
    expect(SDK_NAME).toBe(`@vigil/node@${pkg.version}`);
  });
});
