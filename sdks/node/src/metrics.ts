import { batchLength, CohortWindow, metricsBody, type ServedCohort } from '@vigil/core';
import { describe, VigilSdkError } from './errors.js';
import type { Logger, MetricsOptions } from './options.js';
import { SDK_NAME } from './version.js';

export type { ServedCohort } from '@vigil/core';

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
  /** The base HTTP URL of the server in use (the one the client streams from), read at each send. */
  httpUrl: () => string;
  sdkKey: string;
  /** The SDK key's environment; when unknown, summaries leave it out and the server fills it in. */
  env?: string;
  requestTimeoutMs: number;
  logger: Logger;
  onError(error: VigilSdkError): void;
}

/** Largest batch body sent at once (the server's default body limit is 1 MiB). */
const MAX_BATCH_BYTES = 512 * 1024;

/**
 * Aggregates request outcomes per cohort (flag, variant, version) over a window — requests, errors and
 * a latency sketch, in `@vigil/core`'s `CohortWindow` — and flushes the window's summaries to
 * `POST /v1/metrics` every `flushIntervalMs`. Memory is bounded twice: at most `maxCohorts` cohorts per window (further outcomes are dropped and
 * counted) and at most `maxPendingSummaries` undelivered summaries, each tried in `maxAttempts` flushes.
 */
export class CohortMetrics {
  private readonly window: CohortWindow;
  private pending: PendingSummary[] = [];
  private flushing?: Promise<void>;
  private failing = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly counters = {
    sentSummaries: 0,
    droppedSummaries: 0,
    failedFlushes: 0,
  };

  constructor(private readonly options: CohortMetricsOptions) {
    this.window = new CohortWindow({
      maxCohorts: options.maxCohorts,
      sketchAlpha: options.sketchAlpha,
      ...(options.env === undefined ? {} : { env: options.env }),
      now: () => Date.now(),
    });
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
    this.timer.unref();
  }

  /** Counts one request's outcome against a cohort. */
  record(cohort: ServedCohort, error: boolean, latencyMs: number): void {
    if (!this.closed) this.window.record(cohort, error, latencyMs);
  }

  stats(): MetricsStats {
    return {
      cohorts: this.window.size,
      pendingSummaries: this.pending.length,
      outcomes: this.window.outcomes,
      droppedOutcomes: this.window.droppedOutcomes,
      ...this.counters,
    };
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
    this.window.clear();
    this.pending = [];
  }

  private rollWindow(): void {
    for (const json of this.window.roll()) this.pending.push({ json, attempts: 0 });
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
    const jsons = this.pending.map((p) => p.json);
    return this.pending.slice(0, batchLength(SDK_NAME, jsons, MAX_BATCH_BYTES));
  }

  private async send(batch: PendingSummary[]): Promise<'sent' | 'refused' | 'failed'> {
    const body = metricsBody(
      SDK_NAME,
      batch.map((p) => p.json),
    );
    let status: number;
    let text = '';
    try {
      const response = await fetch(`${this.options.httpUrl()}/v1/metrics`, {
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
