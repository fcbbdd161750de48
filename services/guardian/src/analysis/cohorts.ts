import type { CohortFigures, CohortSummary } from '@vigil/proto';
import { LogHistogram } from './histogram.js';

/** Requests, errors and latencies of one cohort over some span of time. */
export class Tally {
  requests = 0;
  errors = 0;
  readonly latency: LogHistogram;

  constructor(alpha: number) {
    this.latency = new LogHistogram(alpha);
  }

  addSummary(summary: CohortSummary): void {
    this.requests += summary.requests;
    this.errors += summary.errors;
    this.latency.addSketch(summary.latency);
  }

  merge(other: Tally): void {
    this.requests += other.requests;
    this.errors += other.errors;
    this.latency.merge(other.latency);
  }

  clear(): void {
    this.requests = 0;
    this.errors = 0;
    this.latency.clear();
  }

  /** Error rate, 0 without requests. */
  get errorRate(): number {
    return this.requests > 0 ? this.errors / this.requests : 0;
  }

  /** The figures an incident or a health check shows for this cohort. */
  figures(variant: string): CohortFigures {
    return {
      variant,
      requests: this.requests,
      errors: this.errors,
      errorRate: this.errorRate,
      p50LatencyMs: this.latency.quantile(0.5) ?? null,
      p95LatencyMs: this.latency.quantile(0.95) ?? null,
      p99LatencyMs: this.latency.quantile(0.99) ?? null,
    };
  }
}

/**
 * One cohort — a (flag, variant, version) — as the guardian holds it: fixed-width buckets making a
 * sliding window, totals since the version started, totals since the current test epoch began, and
 * what arrived since the last evaluation (`pending`: the next batch the sequential tests take).
 */
export class CohortSeries {
  /** Everything evaluated so far in this version. */
  readonly total: Tally;
  /** Everything evaluated so far in the current epoch (the data the running tests have seen). */
  readonly epoch: Tally;
  /** Ingested since the last evaluation. */
  readonly pending: Tally;
  /** The buckets still held, summed: kept up to date on add and evict rather than re-merged. */
  private readonly held: Tally;
  private readonly buckets = new Map<number, Tally>();

  constructor(
    private readonly alpha: number,
    private readonly bucketMs: number,
    private readonly horizonMs: number,
  ) {
    this.total = new Tally(alpha);
    this.epoch = new Tally(alpha);
    this.pending = new Tally(alpha);
    this.held = new Tally(alpha);
  }

  /** Adds a summary whose window started at `startMs`. */
  add(summary: CohortSummary, startMs: number): void {
    this.pending.addSummary(summary);
    this.held.addSummary(summary);
    const key = Math.floor(startMs / this.bucketMs) * this.bucketMs;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = new Tally(this.alpha);
      this.buckets.set(key, bucket);
      // Bound the window even for a flag nobody evaluates: drop what this summary's time left behind.
      this.evict(startMs - this.horizonMs);
    }
    bucket.addSummary(summary);
  }

  /** Moves the pending batch into the epoch and version totals. */
  fold(): void {
    if (this.pending.requests === 0 && this.pending.latency.count === 0) return;
    this.total.merge(this.pending);
    this.epoch.merge(this.pending);
    this.pending.clear();
  }

  /** Drops the buckets that ended at or before `since` from the window. */
  evict(since: number): void {
    for (const [key, bucket] of this.buckets) {
      if (key + this.bucketMs > since) continue;
      this.held.requests -= bucket.requests;
      this.held.errors -= bucket.errors;
      this.held.latency.subtract(bucket.latency);
      this.buckets.delete(key);
    }
  }

  /** The sliding window: every bucket not yet evicted (evaluated or not). Read it, do not keep it. */
  get window(): Tally {
    // Extremes cannot be subtracted: take them from the buckets held.
    const latency = this.held.latency;
    latency.min = Number.POSITIVE_INFINITY;
    latency.max = Number.NEGATIVE_INFINITY;
    for (const bucket of this.buckets.values()) {
      if (bucket.latency.count === 0) continue;
      if (bucket.latency.min < latency.min) latency.min = bucket.latency.min;
      if (bucket.latency.max > latency.max) latency.max = bucket.latency.max;
    }
    return this.held;
  }
}
