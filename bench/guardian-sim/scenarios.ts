import type { Guard } from '@vigil/proto';
import { LatencyModel } from './latency.js';

/** What one cohort's requests look like. */
export interface CohortModel {
  errorRate: number;
  latency: LatencyModel;
  /** For the printout. */
  describe: string;
}

/** A stretch of time at one exposure: one flag version. */
export interface Phase {
  /** Share of contexts served the treatment variant. */
  exposure: number;
  seconds: number;
}

export interface Scenario {
  id: string;
  /** Short label for tables. */
  tag: string;
  title: string;
  /** `detect`: a regression from t = 0, timed until killed. `aa`: identical cohorts, counted if ever killed. */
  kind: 'detect' | 'aa';
  phases: Phase[];
  treatment: CohortModel;
  control: CohortModel;
  /** The flag's guard (absent: the service defaults). */
  guard?: Guard;
  runs: number;
  /**
   * Whether the targets are reported for it (the others are shown for comparison). The issue
   * names no baseline error rate, so the targets are reported at each baseline simulated.
   */
  target?: boolean;
}

/** Total traffic and how it reaches the guardian. */
export const TRAFFIC = {
  requestsPerSecond: 1000,
  /** SDK instances sharing the traffic; each sends one summary per cohort per window. */
  instances: 2,
  /** SDK summary window and guardian evaluation cadence (ms). */
  windowMs: 1000,
  sketchAlpha: 0.01,
} as const;

/** Alphas the frontier table reads off the same runs (the comparisons' level). */
export const FRONTIER_ALPHAS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05] as const;

const base = new LatencyModel([{ weight: 1, medianMs: 80, sigma: 0.5 }], TRAFFIC.sketchAlpha);
const slower = new LatencyModel([{ weight: 1, medianMs: 120, sigma: 0.5 }], TRAFFIC.sketchAlpha);
const slowPath = new LatencyModel(
  [
    { weight: 0.97, medianMs: 80, sigma: 0.5 },
    { weight: 0.03, medianMs: 2500, sigma: 0.3 },
  ],
  TRAFFIC.sketchAlpha,
);
const latencyText = (m: LatencyModel, what: string) =>
  `${what} (p50 ${m.quantile(0.5).toFixed(0)} ms, p99 ${m.quantile(0.99).toFixed(0)} ms)`;

const cohort = (errorRate: number, latency: LatencyModel, what: string): CohortModel => ({
  errorRate,
  latency,
  describe: `errors ${(errorRate * 100).toFixed(2)}%, latency ${latencyText(latency, what)}`,
});

/** The progressive schedule of the A/A runs: 5% → 20% → 50% with holds 5/10/15 min, then 100%. */
export const SCHEDULE: Phase[] = [
  { exposure: 0.05, seconds: 300 },
  { exposure: 0.2, seconds: 600 },
  { exposure: 0.5, seconds: 900 },
  { exposure: 1, seconds: 60 },
];

/** Every scenario; `runs` are the defaults, `--runs` scales them. */
export function scenarios(): Scenario[] {
  const logNormal = 'log-normal, median 80 ms, σ 0.5';
  return [
    {
      id: 'error-5x',
      target: true,
      tag: 'A',
      title: 'error regression: 5× control error rate at 5% exposure',
      kind: 'detect',
      phases: [{ exposure: 0.05, seconds: 120 }],
      control: cohort(0.005, base, logNormal),
      treatment: cohort(0.025, base, logNormal),
      runs: 1000,
    },
    {
      id: 'error-5x-10pct',
      tag: 'A2',
      title: 'the same regression at 10% exposure (for comparison: twice the treatment traffic)',
      kind: 'detect',
      phases: [{ exposure: 0.1, seconds: 120 }],
      control: cohort(0.005, base, logNormal),
      treatment: cohort(0.025, base, logNormal),
      runs: 1000,
    },
    {
      id: 'error-5x-1pct',
      target: true,
      tag: 'A3',
      title:
        'the same 5× regression on a service whose baseline is 1% errors (5% exposure; guard max 3%, min 97%)',
      kind: 'detect',
      phases: [{ exposure: 0.05, seconds: 120 }],
      control: cohort(0.01, base, logNormal),
      treatment: cohort(0.05, base, logNormal),
      guard: { enabled: true, maxErrorRate: 0.03, minSuccessRate: 0.97 },
      runs: 1000,
    },
    {
      id: 'aa-0.5',
      target: true,
      tag: 'B1',
      title: 'A/A at 0.5% errors over the progressive schedule',
      kind: 'aa',
      phases: SCHEDULE,
      control: cohort(0.005, base, logNormal),
      treatment: cohort(0.005, base, logNormal),
      runs: 1000,
    },
    {
      id: 'aa-2',
      target: true,
      tag: 'B2',
      title: 'A/A at 2% errors over the progressive schedule (guard: max error rate 5%, min success 95%)',
      kind: 'aa',
      phases: SCHEDULE,
      control: cohort(0.02, base, logNormal),
      treatment: cohort(0.02, base, logNormal),
      guard: { enabled: true, maxErrorRate: 0.05, minSuccessRate: 0.95 },
      runs: 1000,
    },
    {
      id: 'aa-1',
      target: true,
      tag: 'B4',
      title:
        'A/A at 1% errors over the progressive schedule (guard: max error rate 3%, min success 97%, as A3)',
      kind: 'aa',
      phases: SCHEDULE,
      control: cohort(0.01, base, logNormal),
      treatment: cohort(0.01, base, logNormal),
      guard: { enabled: true, maxErrorRate: 0.03, minSuccessRate: 0.97 },
      runs: 1000,
    },
    {
      id: 'aa-2-default',
      tag: 'B3',
      title: 'A/A at 2% errors with the default guard (max error rate 1%: below this service’s baseline)',
      kind: 'aa',
      phases: SCHEDULE,
      control: cohort(0.02, base, logNormal),
      treatment: cohort(0.02, base, logNormal),
      runs: 100,
    },
    {
      id: 'latency-1.5x',
      tag: 'C1',
      title: 'latency regression: every request 1.5× slower at 5% exposure',
      kind: 'detect',
      phases: [{ exposure: 0.05, seconds: 180 }],
      control: cohort(0.005, base, logNormal),
      treatment: cohort(0.005, slower, 'log-normal, median 120 ms, σ 0.5'),
      runs: 500,
    },
    {
      id: 'latency-tail',
      tag: 'C2',
      title: 'latency regression: 3% of requests take a 2.5 s slow path, at 5% exposure',
      kind: 'detect',
      phases: [{ exposure: 0.05, seconds: 120 }],
      control: cohort(0.005, base, logNormal),
      treatment: cohort(0.005, slowPath, '97% as control, 3% log-normal median 2500 ms'),
      runs: 500,
    },
  ];
}
