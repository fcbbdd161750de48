import type { ReportedSummary } from '@vigil/proto';
import { LatencySketch } from './sketch.js';

/** One cohort an SDK served: the flag, the variant and the flag's version. */
export interface ServedCohort {
  flag: string;
  variant: string;
  version: number;
}

interface Cohort extends ServedCohort {
  requests: number;
  errors: number;
  latency: LatencySketch;
}

export interface CohortWindowOptions {
  /** Cohorts kept per window; outcomes for more are dropped and counted. */
  maxCohorts: number;
  /** Relative accuracy of the latency sketches (the sketch's default when absent). */
  sketchAlpha?: number;
  /** The SDK key's environment; when unknown, summaries leave it out and the server fills it in. */
  env?: string;
  /** Wall-clock milliseconds, for the window's bounds. */
  now(): number;
}

/** Most summaries in one `POST /v1/metrics` body (`metricsBatchSchema`). */
export const MAX_BATCH_SUMMARIES = 5000;

/**
 * Request outcomes per cohort (flag, variant, version) over one window — requests, errors and a
 * latency sketch — closed into the `ReportedSummary` objects the guardian reads. Memory is bounded by
 * `maxCohorts`: outcomes for a cohort beyond it are dropped and counted. Pure: delivery is the SDK's.
 */
export class CohortWindow {
  /** Outcomes counted (one per cohort a request was served). */
  outcomes = 0;
  /** Outcomes not counted because the window already held `maxCohorts` cohorts. */
  droppedOutcomes = 0;
  private cohorts = new Map<string, Cohort>();
  private start: number;

  constructor(private readonly options: CohortWindowOptions) {
    this.start = options.now();
  }

  /** Cohorts aggregated in the current window. */
  get size(): number {
    return this.cohorts.size;
  }

  /** Counts one outcome against a cohort; without a latency it counts as a request and adds no sample. */
  record(cohort: ServedCohort, error: boolean, latencyMs: number | undefined): void {
    const id = `${cohort.flag}\n${cohort.variant}\n${cohort.version}`;
    let entry = this.cohorts.get(id);
    if (entry === undefined) {
      if (this.cohorts.size >= this.options.maxCohorts) {
        this.droppedOutcomes += 1;
        return;
      }
      entry = {
        flag: cohort.flag,
        variant: cohort.variant,
        version: cohort.version,
        requests: 0,
        errors: 0,
        latency: new LatencySketch(this.options.sketchAlpha),
      };
      this.cohorts.set(id, entry);
    }
    entry.requests += 1;
    if (error) entry.errors += 1;
    if (latencyMs !== undefined) entry.latency.add(latencyMs);
    this.outcomes += 1;
  }

  /** Closes the window: one summary per cohort, serialized (what is bounded is what is sent); the next starts now. */
  roll(): string[] {
    const now = this.options.now();
    const out: string[] = [];
    if (this.cohorts.size > 0) {
      const windowStart = new Date(this.start).toISOString();
      const windowEnd = new Date(Math.max(now, this.start)).toISOString();
      const env = this.options.env;
      for (const c of this.cohorts.values()) {
        const summary: ReportedSummary = {
          ...(env === undefined ? {} : { env }),
          flag: c.flag,
          variant: c.variant,
          version: c.version,
          windowStart,
          windowEnd,
          requests: c.requests,
          errors: c.errors,
          latency: c.latency.toJSON(),
        };
        out.push(JSON.stringify(summary));
      }
      this.cohorts = new Map();
    }
    this.start = now;
    return out;
  }

  /** Forgets the current window's cohorts. */
  clear(): void {
    this.cohorts.clear();
  }
}

/** The `POST /v1/metrics` body for serialized summaries. */
export function metricsBody(sdk: string, summaries: readonly string[]): string {
  return `${metricsHead(sdk)}${summaries.join(',')}]}`;
}

/**
 * How many `summaries` (serialized), from index `from` on, go in one `POST /v1/metrics` body of at
 * most `maxLength` characters and `MAX_BATCH_SUMMARIES` summaries; at least one, so an oversized
 * summary is still sent (and refused by the server) rather than held forever.
 */
export function batchLength(sdk: string, summaries: readonly string[], maxLength: number, from = 0): number {
  let length = metricsHead(sdk).length + 2;
  let count = 0;
  for (let i = from; i < summaries.length; i++) {
    const json = summaries[i]!;
    if (count >= MAX_BATCH_SUMMARIES || (count > 0 && length + json.length + 1 > maxLength)) break;
    count += 1;
    length += json.length + 1;
  }
  return count;
}

function metricsHead(sdk: string): string {
  return `{"sdk":${JSON.stringify(sdk)},"summaries":[`;
}
