import { LatencySketch } from '@vigil/core';
import type { ReportedSummary } from '@vigil/proto';
import { describe, VigilSdkError } from './errors.js';
import type { Logger, MetricsOptions } from './options.js';
import { SDK_NAME } from './version.js';

/** One cohort a scope was served: the flag, the variant and the flag's version. */
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

/** A summary waiting for delivery, already serialized (what is bounded is what is sent). */
interface PendingSummary {
  json: string;
  attempts: number;
}

/** Counters exposed by `client.stats().metrics`. */
export interface MetricsStats {
  /** Cohorts aggregated in the current window. */
  cohorts: number;
  /** Outcomes counted (one per cohort a scope was served). */
  outcomes: number;
  /** Outcomes not counted because the window already held `maxCohorts` cohorts. */
  droppedOutcomes: number;
  /** Summaries accepted by the server. */
  sentSummaries: number;
  /** Summaries given up on: refused by the server, past `maxAttempts`, or past `maxPendingSummaries`. */
  droppedSummaries: number;
  /** Summaries waiting for the next flush. */
  pendingSummaries: number;
  /** Flushes in which the server could not be reached or answered 429/5xx. */
  failedFlushes: number;
}

export interface CohortMetricsOptions extends MetricsOptions {
  httpUrl: string;
  sdkKey: string;
  /** The SDK key's environment; when unknown, summaries leave it out and the server fills it in. */
  env?: string;
  requestTimeoutMs: number;
  logger: Logger;
  onError(error: VigilSdkError): void;
}

/** Largest batch body sent at once (the server's default body limit is 1 MiB). */
const MAX_BATCH_BYTES = 512 * 1024;
/** Most summaries in one batch (`metricsBatchSchema`). */
const MAX_BATCH_SUMMARIES = 5000;

/**
 * Aggregates request outcomes per cohort (flag, variant, version) over a window — requests, errors and
 * a latency sketch — and flushes the window's summaries to `POST /v1/metrics` every `flushIntervalMs`.
 * Memory is bounded twice: at most `maxCohorts` cohorts per window (further outcomes are dropped and
 * counted) and at most `maxPendingSummaries` undelivered summaries, each tried in `maxAttempts` flushes.
 */
export class CohortMetrics {
  private cohorts = new Map<string, Cohort>();
  private windowStart = Date.now();
  private pending: PendingSummary[] = [];
  private flushing?: Promise<void>;
  private failing = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly counters = {
    outcomes: 0,
    droppedOutcomes: 0,
    sentSummaries: 0,
    droppedSummaries: 0,
    failedFlushes: 0,
  };

  constructor(private readonly options: CohortMetricsOptions) {
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  /** Counts one request's outcome against a cohort. */
  record(cohort: ServedCohort, error: boolean, latencyMs: number): void {
    if (this.closed) return;
    const id = `${cohort.flag}\n${cohort.variant}\n${cohort.version}`;
    let entry = this.cohorts.get(id);
    if (entry === undefined) {
      if (this.cohorts.size >= this.options.maxCohorts) {
        this.counters.droppedOutcomes += 1;
        return;
      }
      entry = { ...cohort, requests: 0, errors: 0, latency: new LatencySketch(this.options.sketchAlpha) };
      this.cohorts.set(id, entry);
    }
    entry.requests += 1;
    if (error) entry.errors += 1;
    entry.latency.add(latencyMs);
    this.counters.outcomes += 1;
  }

  stats(): MetricsStats {
    return { cohorts: this.cohorts.size, pendingSummaries: this.pending.length, ...this.counters };
  }

  /** Closes the current window and sends every pending summary; resolves when done (never rejects). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = this.flushNow()
      .catch((error: unknown) => {
        // Runs from a timer: a rejection here would be unhandled.
        this.report(
          new VigilSdkError('VIGIL_SDK_METRICS', `flush failed: ${describe(error)}`, { cause: error }),
        );
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  /** Stops the timer; with `flush`, sends what is held first. */
  async close(flush: boolean): Promise<void> {
    clearInterval(this.timer);
    if (flush && !this.closed) await this.flush();
    this.closed = true;
    this.cohorts.clear();
    this.pending = [];
  }

  private rollWindow(): void {
    const now = Date.now();
    if (this.cohorts.size > 0) {
      const windowStart = new Date(this.windowStart).toISOString();
      const windowEnd = new Date(Math.max(now, this.windowStart)).toISOString();
      for (const c of this.cohorts.values()) {
        const summary: ReportedSummary = {
          ...(this.options.env === undefined ? {} : { env: this.options.env }),
          flag: c.flag,
          variant: c.variant,
          version: c.version,
          windowStart,
          windowEnd,
          requests: c.requests,
          errors: c.errors,
          latency: c.latency.toJSON(),
        };
        this.pending.push({ json: JSON.stringify(summary), attempts: 0 });
      }
      this.cohorts = new Map();
    }
    this.windowStart = now;
    // Over the bound the oldest go first: the guardian cares most about what is happening now.
    const excess = this.pending.length - this.options.maxPendingSummaries;
    if (excess > 0) {
      this.pending.splice(0, excess);
      this.counters.droppedSummaries += excess;
    }
  }

  private async flushNow(): Promise<void> {
    if (this.closed) return;
    this.rollWindow();
    while (this.pending.length > 0) {
      const batch = this.nextBatch();
      const outcome = await this.send(batch);
      if (outcome === 'sent') {
        this.pending.splice(0, batch.length);
        this.counters.sentSummaries += batch.length;
        this.failing = false;
      } else if (outcome === 'refused') {
        // The server will refuse these again: retrying would only hold memory.
        this.pending.splice(0, batch.length);
        this.counters.droppedSummaries += batch.length;
      } else {
        this.counters.failedFlushes += 1;
        let dropped = 0;
        this.pending = this.pending.filter((p) => {
          p.attempts += 1;
          if (p.attempts < this.options.maxAttempts) return true;
          dropped += 1;
          return false;
        });
        this.counters.droppedSummaries += dropped;
        return;
      }
    }
  }

  /** The oldest pending summaries that fit in one request. */
  private nextBatch(): PendingSummary[] {
    const batch: PendingSummary[] = [];
    let bytes = 64;
    for (const p of this.pending) {
      if (
        batch.length >= MAX_BATCH_SUMMARIES ||
        (batch.length > 0 && bytes + p.json.length + 1 > MAX_BATCH_BYTES)
      )
        break;
      batch.push(p);
      bytes += p.json.length + 1;
    }
    return batch;
  }

  private async send(batch: PendingSummary[]): Promise<'sent' | 'refused' | 'failed'> {
    const body = `{"sdk":${JSON.stringify(SDK_NAME)},"summaries":[${batch.map((p) => p.json).join(',')}]}`;
    let status: number;
    let text = '';
    try {
      const response = await fetch(`${this.options.httpUrl}/v1/metrics`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.options.sdkKey}`,
          'content-type': 'application/json',
          'user-agent': SDK_NAME,
        },
        body,
        signal: AbortSignal.timeout(this.options.requestTimeoutMs),
      });
      status = response.status;
      text = await response.text().catch(() => '');
    } catch (error) {
      this.report(
        new VigilSdkError('VIGIL_SDK_METRICS', `POST /v1/metrics failed: ${describe(error)}`, {
          cause: error,
        }),
      );
      return 'failed';
    }
    if (status >= 200 && status < 300) return 'sent';
    const error = new VigilSdkError(
      'VIGIL_SDK_METRICS',
      `POST /v1/metrics answered ${status}: ${text.slice(0, 300)}`,
      {
        status,
      },
    );
    if (status === 429 || status >= 500) {
      this.report(error);
      return 'failed';
    }
    this.options.onError(error);
    this.options.logger.warn({ status }, `vigil: dropped ${batch.length} cohort summaries: ${error.message}`);
    return 'refused';
  }

  /** Reports the first failure of a run of them; later ones only count. */
  private report(error: VigilSdkError): void {
    if (this.failing) return;
    this.failing = true;
    this.options.onError(error);
    this.options.logger.warn({ status: error.status }, `vigil: ${error.message}; will retry`);
  }
}
