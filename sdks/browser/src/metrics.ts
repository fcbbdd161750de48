import { LatencySketch } from '@vigil/core';
import type { ReportedSummary } from '@vigil/proto';
import { describe, VigilSdkError } from './errors.js';

/** One cohort the page was served: the flag, the variant and the flag's version. */
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

export interface CohortMetricsOptions {
  url: string;
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
  private cohorts = new Map<string, Cohort>();
  private windowStart = Date.now();
  private readonly timer: ReturnType<typeof setInterval>;
  private failing = false;
  private closed = false;
  private readonly counters = { outcomes: 0, droppedOutcomes: 0, sentSummaries: 0, droppedSummaries: 0 };

  constructor(private readonly options: CohortMetricsOptions) {
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs);
  }

  /** Counts one outcome against each cohort. */
  record(cohorts: Iterable<ServedCohort>, error: boolean, latencyMs: number | undefined): void {
    if (this.closed) return;
    for (const c of cohorts) {
      const id = `${c.flag}\n${c.variant}\n${c.version}`;
      let entry = this.cohorts.get(id);
      if (entry === undefined) {
        if (this.cohorts.size >= this.options.maxCohorts) {
          this.counters.droppedOutcomes += 1;
          continue;
        }
        entry = {
          flag: c.flag,
          variant: c.variant,
          version: c.version,
          requests: 0,
          errors: 0,
          latency: new LatencySketch(),
        };
        this.cohorts.set(id, entry);
      }
      entry.requests += 1;
      if (error) entry.errors += 1;
      // An error without a measured latency still counts as a request; it adds nothing to the sketch.
      if (latencyMs !== undefined) entry.latency.add(latencyMs);
      this.counters.outcomes += 1;
    }
  }

  stats(): MetricsStats {
    return { cohorts: this.cohorts.size, ...this.counters };
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
    this.cohorts.clear();
  }

  private endpoint(): string {
    return `${this.options.url}/v1/metrics?key=${encodeURIComponent(this.options.clientKey)}`;
  }

  /** Closes the window: its summaries as request bodies, each under the keepalive limit. */
  private takeBatches(): Batch[] {
    if (this.closed || this.cohorts.size === 0) {
      this.windowStart = Date.now();
      return [];
    }
    const now = Date.now();
    const windowStart = new Date(this.windowStart).toISOString();
    const windowEnd = new Date(Math.max(now, this.windowStart)).toISOString();
    const head = `{"sdk":${JSON.stringify(this.options.sdk)},"summaries":[`;
    const batches: Batch[] = [];
    let parts: string[] = [];
    let bytes = head.length + 2;
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
      const json = JSON.stringify(summary);
      if (parts.length > 0 && bytes + json.length + 1 > MAX_BATCH_BYTES) {
        batches.push({ body: `${head}${parts.join(',')}]}`, count: parts.length });
        parts = [];
        bytes = head.length + 2;
      }
      parts.push(json);
      bytes += json.length + 1;
    }
    if (parts.length > 0) batches.push({ body: `${head}${parts.join(',')}]}`, count: parts.length });
    this.cohorts = new Map();
    this.windowStart = now;
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
