import { environmentSchema, type FlagInput, fieldPath, type SegmentInput } from '@vigil/proto';
import { z } from 'zod';
import { VigilSdkError } from './errors.js';

/** A pino-style logger (`logger.warn(obj, msg)`); pino itself fits. */
export interface Logger {
  debug?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Flags to start with, as `GET /v1/flags` returns them; hand-written flags may leave out defaulted fields. */
export interface BootstrapSnapshot {
  revision?: number;
  flags: readonly FlagInput[];
  segments?: readonly SegmentInput[];
}

const positiveMs = z.int().min(1);

const metricsOptionsSchema = z.strictObject({
  /**
   * How often cohort summaries are sent (default 1 s): the guardian can judge a rollout no faster than
   * its summaries arrive. A flush with nothing to send sends nothing.
   */
  flushIntervalMs: positiveMs.default(1000),
  /** Cohorts (flag, variant, version) held per window; outcomes for more are dropped and counted. */
  maxCohorts: z.int().min(1).max(100_000).default(1000),
  /** Undelivered summaries kept for the next flush while the server is unreachable. */
  maxPendingSummaries: z.int().min(0).default(10_000),
  /** Flushes a summary is tried in before it is dropped (and counted). */
  maxAttempts: z.int().min(1).max(100).default(6),
  /** Relative accuracy of the latency sketches. */
  sketchAlpha: z.number().gt(0).lt(1).default(0.01),
});

const serverUrlSchema = z
  .string()
  .regex(/^(https?|wss?):\/\/[^\s/]+/i, 'must be an http(s):// or ws(s):// URL')
  .refine((u) => URL.canParse(u), 'must be a valid URL');

/** `createClient`'s options, validated when the client is created. */
export const clientOptionsSchema = z.strictObject({
  /** The flag server, e.g. `https://flags.internal:4242` (ws:// and wss:// are accepted too). */
  url: serverUrlSchema.optional(),
  /**
   * Several flag servers (replicas of one deployment), tried in order: after a failed connect the
   * client moves to the next and resumes from its revision. With `url` too, `url` comes first.
   */
  urls: z.array(serverUrlSchema).min(1).optional(),
  /** A server SDK key (`sdk-server` scope). */
  sdkKey: z.string().min(1),
  /** The key's environment, stamped on cohort metrics; optional, the server takes it from the key. */
  env: environmentSchema.optional(),
  /** Flags to start with: a snapshot object (`GET /v1/flags`'s body) or the path of a JSON file holding one. */
  bootstrap: z
    .union([
      z.string().min(1),
      z.custom<BootstrapSnapshot>(
        (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
        'must be a snapshot object or the path of a JSON file',
      ),
    ])
    .optional(),
  /** Polling period when the stream is unavailable (or `stream: false`); default 30 s. */
  pollIntervalMs: positiveMs.default(30_000),
  /** Use the stream (default); false polls only. */
  stream: z.boolean().default(true),
  /** No network at all: serve the bootstrap flags only (tests, local development). */
  offline: z.boolean().default(false),
  /** Cohort metrics from request scopes; `false` turns them off. */
  metrics: z.union([z.literal(false), metricsOptionsSchema]).default(() => metricsOptionsSchema.parse({})),
  /** Reconnection: backoff base and cap, and stream failures in a row before polling starts. */
  reconnect: z
    .strictObject({
      baseMs: positiveMs.default(500),
      capMs: positiveMs.default(30_000),
      pollAfterFailures: z.int().min(1).default(3),
    })
    .default({ baseMs: 500, capMs: 30_000, pollAfterFailures: 3 }),
  /** Heartbeat period on the stream; a stream silent for three periods (~30 s) is dropped. */
  heartbeatMs: positiveMs.default(10_000),
  /** Timeout of HTTP requests and of the WebSocket handshake. */
  requestTimeoutMs: positiveMs.default(10_000),
  logger: z
    .custom<Logger>(
      (l) =>
        typeof l === 'object' &&
        l !== null &&
        typeof (l as Logger).warn === 'function' &&
        typeof (l as Logger).error === 'function',
      'must have warn and error methods',
    )
    .optional(),
});

export type ClientOptions = z.input<typeof clientOptionsSchema>;
export type ResolvedOptions = z.output<typeof clientOptionsSchema>;
export type MetricsOptions = z.output<typeof metricsOptionsSchema>;

/** Validates options; throws `VIGIL_SDK_INVALID_OPTIONS` naming every bad field. */
export function resolveOptions(input: ClientOptions): ResolvedOptions {
  const parsed = clientOptionsSchema.safeParse(input);
  if (parsed.success) {
    const options = parsed.data;
    if (options.url === undefined && options.urls === undefined) {
      throw invalid([{ field: 'url', message: 'url or urls is required' }]);
    }
    if (options.reconnect.capMs < options.reconnect.baseMs) {
      throw invalid([{ field: 'reconnect.capMs', message: 'must be at least reconnect.baseMs' }]);
    }
    return options;
  }
  throw invalid(
    parsed.error.issues.map((issue) => ({
      field: fieldPath(issue.path) || '(options)',
      message: issue.message,
    })),
  );
}

function invalid(issues: { field: string; message: string }[]): VigilSdkError {
  return new VigilSdkError(
    'VIGIL_SDK_INVALID_OPTIONS',
    issues.map((i) => `${i.field}: ${i.message}`).join('; '),
    {
      details: issues,
    },
  );
}

/** Logs `warn` and `error` to the console, the rest nowhere. */
export const consoleLogger: Logger = {
  warn: (obj, msg) => console.warn(msg ?? 'vigil', obj),
  error: (obj, msg) => console.error(msg ?? 'vigil', obj),
};

/** The base HTTP URL and the stream's WebSocket URL for a server URL. */
export function endpoints(url: string): { http: string; stream: string } {
  const base = url.replace(/\/+$/, '');
  const http = base.replace(/^ws(s?):/i, 'http$1:');
  return { http, stream: `${http.replace(/^http(s?):/i, 'ws$1:')}/v1/stream` };
}

/** The base HTTP URLs of the servers options name: `url` first, then `urls`, each once. */
export function serverUrls(options: Pick<ResolvedOptions, 'url' | 'urls'>): string[] {
  const all = [...(options.url === undefined ? [] : [options.url]), ...(options.urls ?? [])];
  return [...new Set(all.map((u) => endpoints(u).http))];
}
