import {
  type ChangedKeys,
  type Context,
  Emitter,
  type EvaluationDetail,
  emptySyncStats,
  type FlagPatch,
  FlagSet,
  type FlagSnapshot,
  type Synchronizer,
} from '@vigil/core';
import type { VariantValue } from '@vigil/proto';
import { readBootstrap } from './bootstrap.js';
import { describe, isVigilSdkError, VigilSdkError } from './errors.js';
import type { ClientEvents, EventName, FlagSource, Listener } from './events.js';
import { CohortMetrics, type MetricsStats, type ServedCohort } from './metrics.js';
import {
  type ClientOptions,
  consoleLogger,
  type Logger,
  type ResolvedOptions,
  resolveOptions,
  serverUrls,
} from './options.js';
import { Scope, type ScopeHost, type Widen } from './scope.js';
import { createNodeSync, type StreamState, type SyncStats } from './sync.js';

/** What `client.stats()` reports. */
export interface ClientStats extends SyncStats {
  /** The stream's state; `offline` when the client was made with `offline: true`. */
  state: StreamState | 'offline';
  /** Polling `GET /v1/flags` (the stream is unavailable or disabled). */
  polling: boolean;
  /** The server in use (base HTTP URL): the one streamed from, polled and sent metrics. */
  server: string;
  ready: boolean;
  /** Where the flags served now came from. */
  source: FlagSource | undefined;
  /** True from losing the server (after being in step with it) until in step again: flags are the last known. */
  stale: boolean;
  revision: number;
  flags: number;
  /** Cohort metrics, or undefined when they are off (`metrics: false`, offline). */
  metrics: MetricsStats | undefined;
}

interface ReadyWaiter {
  resolve(ready: boolean): void;
  reject(error: VigilSdkError): void;
  timer: NodeJS.Timeout;
}

/**
 * Vigil's Node client: holds an environment's flags in process, kept current by the flag server's
 * stream (or polling), and evaluates them synchronously. Evaluation never throws and never waits:
 * before flags arrive, and for unknown flags, the caller's default is returned.
 */
export class VigilClient {
  private readonly flags = new FlagSet();
  private readonly emitter: Emitter<ClientEvents>;
  private readonly logger: Logger;
  private readonly sync: Synchronizer | undefined;
  /** The servers named by the options (base HTTP URLs), in the order they are tried. */
  private readonly servers: readonly string[];
  private readonly metrics: CohortMetrics | undefined;
  private readonly host: ScopeHost;
  private readyFrom: FlagSource | undefined;
  private refusal: VigilSdkError | undefined;
  /** In step with the server (stream live, or the last poll succeeded). */
  private live = false;
  private isStale = false;
  private closed = false;
  private closing?: Promise<void>;
  private readonly waiters = new Set<ReadyWaiter>();

  constructor(options: ResolvedOptions) {
    this.logger = options.logger ?? consoleLogger;
    this.emitter = new Emitter<ClientEvents>((event, error) =>
      this.logger.error({ event, err: error }, `vigil: a '${event}' listener threw: ${describe(error)}`),
    );
    const servers = serverUrls(options);
    this.servers = servers;
    this.host = {
      evaluate: <T extends VariantValue>(flag: string, context: Context, defaultValue?: T) =>
        this.evaluate(flag, context, defaultValue),
      record: (cohorts: readonly ServedCohort[], error: boolean, latencyMs: number) =>
        this.record(cohorts, error, latencyMs),
      contextFailed: (error: unknown) =>
        this.logger.warn(
          { err: error },
          `vigil: a scope's context function threw (evaluating with {}): ${describe(error)}`,
        ),
    };

    if (options.bootstrap !== undefined) {
      try {
        this.flags.load(readBootstrap(options.bootstrap));
        this.readyFrom = 'bootstrap';
      } catch (error) {
        const e = isVigilSdkError(error) ? error : new VigilSdkError('VIGIL_SDK_BOOTSTRAP', describe(error));
        this.logger.warn({ code: e.code }, `vigil: ${e.message}`);
        // Listeners can only exist after createClient returns.
        setImmediate(() => this.emitter.emit('error', e));
      }
    }

    if (options.metrics && !options.offline) {
      this.metrics = new CohortMetrics({
        ...options.metrics,
        httpUrl: () => this.sync?.server ?? servers[0]!,
        sdkKey: options.sdkKey,
        ...(options.env === undefined ? {} : { env: options.env }),
        requestTimeoutMs: options.requestTimeoutMs,
        logger: this.logger,
        onError: (error) => this.emitter.emit('error', error),
      });
    }

    if (!options.offline) {
      this.sync = createNodeSync(
        {
          httpUrls: servers,
          sdkKey: options.sdkKey,
          stream: options.stream,
          pollIntervalMs: options.pollIntervalMs,
          reconnect: options.reconnect,
          heartbeatMs: options.heartbeatMs,
          requestTimeoutMs: options.requestTimeoutMs,
          logger: this.logger,
        },
        {
          revision: () => this.flags.revision,
          load: (snapshot, source) => this.load(snapshot, source),
          apply: (patch) => this.apply(patch),
          inSync: () => this.setLive(true),
          lost: () => this.setLive(false),
          refused: (error) => this.refused(error),
          error: (error) => this.emitter.emit('error', error),
        },
      );
      this.sync.start();
    }
  }

  // --- evaluation: synchronous, in-process, never throws -------------------------------------------

  /** Whether a boolean flag is on for the context; `defaultValue` when unknown or not boolean. */
  isEnabled(flag: string, context: unknown, defaultValue = false): boolean {
    try {
      return this.flags.isEnabled(flag, context, defaultValue);
    } catch {
      return defaultValue;
    }
  }

  /** The served variant's key, or undefined for an unknown flag. */
  variant(flag: string, context: unknown): string | undefined {
    try {
      return this.flags.variant(flag, context);
    } catch {
      return undefined;
    }
  }

  /** The served value when its type matches `defaultValue`'s, else `defaultValue`. */
  value<T extends VariantValue>(flag: string, context: unknown, defaultValue: T): Widen<T> {
    try {
      return this.flags.value(flag, context, defaultValue) as Widen<T>;
    } catch {
      return defaultValue as Widen<T>;
    }
  }

  /** The full outcome with its OpenFeature reason (and error code for unknown flags or a type mismatch). */
  detail<T extends VariantValue>(
    flag: string,
    context: unknown,
    defaultValue?: T,
  ): EvaluationDetail<Widen<T>> {
    return this.evaluate(flag, context, defaultValue as Widen<T> | undefined);
  }

  /**
   * A request scope: the same evaluation methods with `context` bound (a value, or a function called at
   * the first evaluation), remembering the cohorts served so `scope.recordOutcome` can count the request.
   */
  scope(context: Context | (() => Context)): Scope {
    return new Scope(this.host, context);
  }

  // --- lifecycle -----------------------------------------------------------------------------------

  /** True once flags are loaded (bootstrap, stream or poll). */
  get ready(): boolean {
    return this.readyFrom !== undefined;
  }

  /** The revision of the environment held. */
  get revision(): number {
    return this.flags.revision;
  }

  /**
   * Resolves true once flags are loaded (at once when a bootstrap was), false after `timeoutMs` or when
   * the client is closed first. Rejects only when the server refused the SDK key (`VIGIL_SDK_UNAUTHORIZED`
   * or `VIGIL_SDK_FORBIDDEN`).
   */
  waitForReady(timeoutMs = 10_000): Promise<boolean> {
    if (this.refusal) return Promise.reject(this.refusal);
    if (this.ready) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      const waiter: ReadyWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Listens to an event; returns a function that removes the listener. */
  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    return this.emitter.on(event, listener);
  }

  off<E extends EventName>(event: E, listener: Listener<E>): void {
    this.emitter.off(event, listener);
  }

  /** Counters and state, for health checks and dashboards. */
  stats(): ClientStats {
    const sync = this.sync;
    return {
      state: sync ? sync.state : 'offline',
      polling: sync?.polling ?? false,
      server: sync?.server ?? this.servers[0]!,
      ready: this.ready,
      source: this.readyFrom,
      stale: this.isStale,
      revision: this.flags.revision,
      flags: this.flags.keys().length,
      metrics: this.metrics?.stats(),
      ...(sync?.stats ?? emptySyncStats()),
    };
  }

  /** Sends the cohort summaries held now (they are also sent every `flushIntervalMs`). */
  flush(): Promise<void> {
    return this.metrics?.flush() ?? Promise.resolve();
  }

  /** Stops streaming and polling, sends the last cohort summaries, and resolves pending `waitForReady` with false. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.sync?.close();
    this.settleWaiters(false);
    await this.metrics?.close(this.refusal === undefined);
    this.emitter.clear();
  }

  // --- internals -----------------------------------------------------------------------------------

  private evaluate<T extends VariantValue>(
    flag: string,
    context: unknown,
    defaultValue?: T,
  ): EvaluationDetail<T> {
    try {
      return this.flags.detail(flag, context, defaultValue);
    } catch (error) {
      return { value: defaultValue as T, reason: 'ERROR', errorCode: 'GENERAL', detail: describe(error) };
    }
  }

  private record(cohorts: readonly ServedCohort[], error: boolean, latencyMs: number): void {
    const metrics = this.metrics;
    if (!metrics) return;
    for (const cohort of cohorts) metrics.record(cohort, error, latencyMs);
  }

  private load(snapshot: FlagSnapshot, source: 'stream' | 'poll'): void {
    this.changed(this.flags.load(snapshot), source);
  }

  private apply(patch: FlagPatch): void {
    this.changed(this.flags.applyPatch(patch), 'stream');
  }

  private changed(changed: ChangedKeys, source: FlagSource): void {
    const wasReady = this.ready;
    if (!wasReady) {
      this.readyFrom = source;
      this.settleWaiters(true);
      this.emitter.emit('ready', source);
      return;
    }
    this.readyFrom = source;
    if (changed.flags.length > 0 || changed.segments.length > 0)
      this.emitter.emit('change', changed.flags, changed);
  }

  /** Going from in step to not is what makes the flags held stale (a client never in step is just not ready). */
  private setLive(live: boolean): void {
    if (this.live === live) return;
    this.live = live;
    this.isStale = !live;
    if (!live) this.emitter.emit('stale');
  }

  private refused(error: VigilSdkError): void {
    this.refusal = error;
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.waiters.clear();
    void this.metrics?.close(false);
    this.emitter.emit('error', error);
  }

  private settleWaiters(ready: boolean): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(ready);
    }
    this.waiters.clear();
  }
}

/**
 * Creates a client and starts syncing. Throws `VIGIL_SDK_INVALID_OPTIONS` for unusable options; every
 * later problem is reported through `on('error')` and the logger, never thrown.
 */
export function createClient(options: ClientOptions): VigilClient {
  return new VigilClient(resolveOptions(options));
}
