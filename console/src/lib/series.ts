// The evidence page's client-side time series: one sample per poll of the health endpoint, per line.
import type { CohortFigures, FlagHealth, Trigger } from '@vigil/proto';

/** The per-cohort metrics: requests since the version started, and the guardian window's figures. */
export const COHORT_METRICS = ['requests', 'errorRate', 'p50', 'p95', 'p99'] as const;
export type CohortMetric = (typeof COHORT_METRICS)[number];

/**
 * A metric's key in `values`: a cohort metric (one line per cohort variant), or a sequential test's
 * ln e-value (`test:<trigger>`, one line per treatment variant) and its ln boundary
 * (`boundary:<trigger>`, likewise).
 */
export type SeriesKey = CohortMetric | `test:${Trigger}` | `boundary:${Trigger}`;

export interface CohortSeries {
  version: number;
  /** When the flag's version changed (a kill, an edit, a schedule step), as sample times and the new version. */
  versions: { t: number; version: number }[];
  /** Sample times, epoch seconds (uPlot's x). */
  t: number[];
  /** Cohort variants in chart order: treatments, then the control. */
  variants: string[];
  control: string | undefined;
  /** The sequential tests seen so far, in the order the guardian lists them. */
  triggers: Trigger[];
  /** Per metric, per variant, one value per sample (null where there was no figure). */
  values: Partial<Record<SeriesKey, Record<string, (number | null)[]>>>;
}

/** Most samples kept (an hour at one a second). */
export const MAX_SAMPLES = 3600;

export function emptySeries(version: number): CohortSeries {
  return { version, versions: [], t: [], variants: [], control: undefined, triggers: [], values: {} };
}

/** One line's values of a metric (an empty array when it has none). */
export function lineOf(series: CohortSeries, key: SeriesKey, variant: string): (number | null)[] {
  return series.values[key]?.[variant] ?? [];
}

function cohortValues(total: CohortFigures, window: CohortFigures | null | undefined) {
  const w = window ?? total;
  return {
    requests: total.requests,
    errorRate: w.errorRate,
    p50: w.p50LatencyMs ?? null,
    p95: w.p95LatencyMs ?? null,
    p99: w.p99LatencyMs,
  } satisfies Record<CohortMetric, number | null>;
}

/**
 * The series with one more sample from a health answer at `now` (epoch ms). The guardian judges each
 * flag version afresh (its totals and tests start over), but the page keeps what it saw before,
 * marking where the version changed, so the moment of a kill stays on the chart. A line that appears
 * late is padded with nulls.
 */
export function appendSample(series: CohortSeries, health: FlagHealth, now: number): CohortSeries {
  const base = series;
  const at = Math.floor(now / 1000);
  const versions =
    health.version !== series.version && series.t.length > 0
      ? [...series.versions, { t: at, version: health.version }]
      : series.versions;
  // This sample's values: metric → variant → value.
  const sample = new Map<SeriesKey, Map<string, number | null>>();
  const put = (key: SeriesKey, variant: string, value: number | null) => {
    let m = sample.get(key);
    if (m === undefined) {
      m = new Map();
      sample.set(key, m);
    }
    if (!m.has(variant)) m.set(variant, value);
  };
  const putCohort = (variant: string, total: CohortFigures, window: CohortFigures | null | undefined) => {
    const v = cohortValues(total, window);
    for (const key of COHORT_METRICS) put(key, variant, v[key]);
  };
  const triggers = [...base.triggers];
  for (const v of health.variants) {
    putCohort(v.variant, v.treatment, v.window.treatment);
    if (v.control) putCohort(v.control.variant, v.control, v.window.control);
    for (const test of v.tests ?? []) {
      if (!triggers.includes(test.trigger)) triggers.push(test.trigger);
      put(`test:${test.trigger}`, v.variant, test.logEValue);
      put(`boundary:${test.trigger}`, v.variant, test.logBoundary);
    }
  }
  for (const c of health.cohorts) putCohort(c.variant, c, c);

  const control = health.controlVariant;
  const variants = [...base.variants];
  for (const v of sample.get('requests')?.keys() ?? []) if (!variants.includes(v)) variants.push(v);
  // The control goes last, so treatments keep their colours as cohorts appear.
  variants.sort((a, b) => (a === control ? 1 : 0) - (b === control ? 1 : 0));

  const drop = Math.max(0, base.t.length + 1 - MAX_SAMPLES);
  const t = [...base.t.slice(drop), at];
  const values: CohortSeries['values'] = {};
  const keys = new Set<SeriesKey>([...(Object.keys(base.values) as SeriesKey[]), ...sample.keys()]);
  for (const key of keys) {
    const lines = new Set([...Object.keys(base.values[key] ?? {}), ...(sample.get(key)?.keys() ?? [])]);
    const out: Record<string, (number | null)[]> = {};
    for (const line of lines) {
      const old = base.values[key]?.[line] ?? new Array<number | null>(base.t.length).fill(null);
      out[line] = [...old.slice(drop), sample.get(key)?.get(line) ?? null];
    }
    values[key] = out;
  }
  return { version: health.version, versions, t, variants, control, triggers, values };
}
