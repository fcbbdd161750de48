// The evidence page's client-side time series: one sample per poll of the health endpoint, per cohort.
import type { FlagHealth } from '@vigil/proto';

export type SeriesKey = 'requests' | 'errorRate' | 'p99';

export interface CohortSeries {
  version: number;
  /** When the flag's version changed (a kill, an edit, a schedule step), as sample times and the new version. */
  versions: { t: number; version: number }[];
  /** Sample times, epoch seconds (uPlot's x). */
  t: number[];
  /** Cohort variants in chart order: treatments, then the control. */
  variants: string[];
  control: string | undefined;
  /** Per metric, per variant, one value per sample (null where the cohort had no figure). */
  values: Record<SeriesKey, Record<string, (number | null)[]>>;
}

/** Most samples kept (an hour at one a second). */
export const MAX_SAMPLES = 3600;

export function emptySeries(version: number): CohortSeries {
  return {
    version,
    versions: [],
    t: [],
    variants: [],
    control: undefined,
    values: { requests: {}, errorRate: {}, p99: {} },
  };
}

/**
 * The series with one more sample from a health answer at `now` (epoch ms). The guardian judges each
 * flag version afresh (its totals start over), but the page keeps what it saw before, marking where
 * the version changed, so the moment of a kill stays on the chart. A cohort that appears late is
 * padded with nulls.
 */
export function appendSample(series: CohortSeries, health: FlagHealth, now: number): CohortSeries {
  const base = series;
  const at = Math.floor(now / 1000);
  const versions =
    health.version !== series.version && series.t.length > 0
      ? [...series.versions, { t: at, version: health.version }]
      : series.versions;
  const figures = new Map<
    string,
    { requests: number | null; errorRate: number | null; p99: number | null }
  >();
  for (const v of health.variants) {
    figures.set(v.variant, {
      requests: v.treatment.requests,
      errorRate: v.window.treatment.errorRate,
      p99: v.window.treatment.p99LatencyMs,
    });
    if (v.control && !figures.has(v.control.variant)) {
      figures.set(v.control.variant, {
        requests: v.control.requests,
        errorRate: v.window.control?.errorRate ?? null,
        p99: v.window.control?.p99LatencyMs ?? null,
      });
    }
  }
  for (const c of health.cohorts) {
    if (!figures.has(c.variant))
      figures.set(c.variant, { requests: c.requests, errorRate: c.errorRate, p99: c.p99LatencyMs });
  }
  const control = health.controlVariant;
  const variants = [...base.variants];
  for (const v of figures.keys()) if (!variants.includes(v)) variants.push(v);
  // The control goes last, so treatments keep their colours as cohorts appear.
  variants.sort((a, b) => (a === control ? 1 : 0) - (b === control ? 1 : 0));
  const drop = Math.max(0, base.t.length + 1 - MAX_SAMPLES);
  const t = [...base.t.slice(drop), at];
  const values = { requests: {}, errorRate: {}, p99: {} } as CohortSeries['values'];
  for (const key of ['requests', 'errorRate', 'p99'] as const) {
    for (const v of variants) {
      const old = base.values[key][v] ?? new Array<number | null>(base.t.length).fill(null);
      values[key][v] = [...old.slice(drop), figures.get(v)?.[key] ?? null];
    }
  }
  return { version: health.version, versions, t, variants, control, values };
}
