import { LatencySketch } from '@vigil/core';
import {
  type CohortSummary,
  type Flag,
  type FlagInput,
  flagSchema,
  type LatencySketch as SketchJson,
} from '@vigil/proto';
import type { CohortAnalyzer, FlagVerdict } from '../../src/analysis/index.js';

/** Test traffic for the analyzer: flags, SDK-shaped summaries, and a driver that evaluates each second. */

export const ENV = 'production';
export const T0 = Date.UTC(2025, 0, 1);

/** A two-variant flag (`on` served, `off` the control) at `version`, with optional overrides. */
export function flagOf(overrides: Partial<FlagInput> = {}): Flag {
  return flagSchema.parse({
    key: 'checkout-v2',
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { rollout: { exposure: 5000, weights: [{ variant: 'on', weight: 100_000 }] } },
    version: 1,
    ...overrides,
  });
}

const sketches = new Map<string, SketchJson>();

/** `count` latencies spread log-uniformly over `median · e^(±1)` (p99 ≈ 2.66 × median), as a sketch. */
export function sketchOf(count: number, medianMs: number): SketchJson {
  const id = `${count}:${medianMs}`;
  let json = sketches.get(id);
  if (json === undefined) {
    const s = new LatencySketch(0.01);
    for (let i = 0; i < count; i++) s.add(medianMs * Math.exp(2 * ((i + 0.5) / count) - 1));
    json = s.toJSON();
    sketches.set(id, json);
  }
  return json;
}

/** What one cohort sent for one second. */
export interface CohortSecond {
  variant: string;
  requests: number;
  errors: number;
  /** Median latency of the second's requests (default 80 ms). */
  medianMs?: number;
}

export function summaryOf(flag: Flag, second: number, c: CohortSecond): CohortSummary {
  return {
    env: ENV,
    flag: flag.key,
    variant: c.variant,
    version: flag.version,
    windowStart: new Date(T0 + second * 1000).toISOString(),
    windowEnd: new Date(T0 + (second + 1) * 1000).toISOString(),
    requests: c.requests,
    errors: c.errors,
    latency: sketchOf(c.requests, c.medianMs ?? 80),
  };
}

/** Errors in second `s` for a steady rate: the long-run count is exact, never more than one off. */
export function steady(s: number, requests: number, rate: number): number {
  return Math.floor((s + 1) * requests * rate + 1e-9) - Math.floor(s * requests * rate + 1e-9);
}

/** A seeded Binomial(n, p) source (sum of Bernoulli draws from an LCG): noisy yet repeatable. */
export function binomialSource(seed: number): (n: number, p: number) => number {
  let state = seed >>> 0;
  return (n, p) => {
    let k = 0;
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      if (state / 4294967296 < p) k++;
    }
    return k;
  };
}

/**
 * Sends seconds `from … from+seconds−1` of traffic (`traffic(s)` gives each cohort's second) and
 * evaluates the flag at the end of each second; returns the verdicts in order.
 */
export function drive(
  analyzer: CohortAnalyzer,
  flag: Flag,
  from: number,
  seconds: number,
  traffic: (s: number) => CohortSecond[],
): FlagVerdict[] {
  const out: FlagVerdict[] = [];
  for (let s = from; s < from + seconds; s++) {
    for (const c of traffic(s)) analyzer.ingest(summaryOf(flag, s, c));
    out.push(analyzer.evaluate(ENV, flag, T0 + (s + 1) * 1000));
  }
  return out;
}

/** Index (second) of the first verdict that says regression, or -1. */
export function firstRegression(verdicts: FlagVerdict[]): number {
  return verdicts.findIndex((v) => v.status === 'regression');
}
