import { batchLength, CohortWindow, metricsBody, type ServedCohort } from '@vigil/core';
import { describe, VigilSdkError } from './errors.js';

export type { ServedCohort } from '@vigil/core';

export interface CohortMetricsOptions {
  /** The server in use (the one the client streams from), read at each send. */
  url: () => string;
  clientKey: string;
  /** The key's environment; when unknown, summaries leave it out and the server fills it in. */
  env?: string;
  sdk: string;
  flushIntervalMs: number;
  /** Cohorts kept per window; outcomes for more are dropped and counted. */
  maxCohorts: number;
  onError(error: VigilSdkError): void;
}

/** Counters exposed by `client.stats().metrics`. */
export interface MetricsStats {
  cohorts: number;
  outcomes: number;
  droppedOutcomes: number;
  sentSummaries: number;
  droppedSummaries: number;
}

/** One request body of summaries, and how many it holds. */
interface Batch {
  body: string;
  count: number;
}

/**
 * A keepalive request body may not exceed 64 KiB in total; stay under it. A page holds few cohorts,
 * so in practice one batch carries them all.
 */
const MAX_BATCH_BYTES = 60 * 1024;

/**
 * Aggregates outcomes (requests, errors, a latency sketch) per cohort over a window and sends the
 * summaries to `POST /v1/metrics?key=` with a keepalive fetch every `flushIntervalMs` and when the
 * page is hidden or left (`pagehide`): a keepalive request outlives the page. A page is
 * one user's session, so undelivered summaries are not retried: the next window carries fresh ones.
 */
export class CohortMetrics {
  private readonly window: CohortWindow;
  private readonly timer: ReturnType<typeof setInterval>;
  private failing = false;
  private closed = false;
  private readonly counters = { sentSummaries: 0, droppedSummaries: 0 };

  constructor(private readonly options: CohortMetricsOptions) {
    this.window = new CohortWindow({
      maxCohorts: options.maxCohorts,
      ...(options.env === undefined ? {} : { env: options.env }),
      now: () => Date.now(),
    });
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
  }

  /** Counts one outcome against each cohort. */
  record(cohorts: Iterable<ServedCohort>, error: boolean, latencyMs: number | undefined): void {
    if (this.closed) return;
    for (const c of cohorts) this.window.record(c, error, latencyMs);
  }

  stats(): MetricsStats {
    const { size: cohorts, outcomes, droppedOutcomes } = this.window;
    return { cohorts, outcomes, droppedOutcomes, ...this.counters };
  }

  /** Sends the current window with a keepalive fetch; resolves when done (never rejects). */
  async flush(): Promise<void> {
    for (const batch of this.takeBatches()) await this.post(batch);
  }

  /**
   * Sends the current window as the page is hidden or left. A keepalive fetch outlives the page as
   * `sendBeacon` does; `sendBeacon` itself is no use here: it always sends credentials, so a JSON body
   * (which needs a CORS preflight) is refused by a server answering `Access-Control-Allow-Origin: *`.
   */
  beacon(): void {
    for (const batch of this.takeBatches()) void this.post(batch);
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.beacon();
    this.closed = true;
    this.window.clear();
  }

  private endpoint(): string {
    return `${this.options.url()}/v1/metrics?key=${encodeURIComponent(this.options.clientKey)}`;
  }

  /** Closes the window: its summaries as request bodies, each under the keepalive limit. */
  private takeBatches(): Batch[] {
    // Empty once closed: the window was cleared and records no more.
    const summaries = this.window.roll();
    const batches: Batch[] = [];
    for (let i = 0; i < summaries.length; ) {
      const count = batchLength(this.options.sdk, summaries, MAX_BATCH_BYTES, i);
      batches.push({ body: metricsBody(this.options.sdk, summaries.slice(i, i + count)), count });
      i += count;
    }
    return batches;
  }

  private async post({ body, count }: Batch): Promise<void> {
    try {
      const response = await fetch(this.endpoint(), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        keepalive: true,
        credentials: 'omit',
      });
      if (response.ok) {
        this.counters.sentSummaries += count;
        this.failing = false;
        return;
      }
      this.counters.droppedSummaries += count;
      const text = await response.text().catch(() => '');
      this.report(`POST /v1/metrics answered ${response.status}: ${text.slice(0, 300)}`, response.status);
    } catch (error) {
      this.counters.droppedSummaries += count;
      this.report(`POST /v1/metrics failed: ${describe(error)}`);
    }
  }

  /** Reports the first failure of a run of them; later ones only count. */
  private report(message: string, status?: number): void {
    if (this.failing) return;
    this.failing = true;
    this.options.onError(
      new VigilSdkError('VIGIL_SDK_METRICS', message, status === undefined ? {} : { status }),
    );
  }
}
