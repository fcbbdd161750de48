import {
  type Context,
  Emitter,
  type EvaluationDetail,
  type FlagPatch,
  FlagSet,
  type FlagSnapshot,
  kindOf,
  type Synchronizer,
  snapshotIssue,
  type Widen,
} from '@vigil/core';
import type { VariantValue } from '@vigil/proto';
import { defaultStorage, FlagCache } from './cache.js';
import { describe, VigilSdkError } from './errors.js';
import type { ClientEvents, EventName, FlagSource, Listener } from './events.js';
import { CohortMetrics, type MetricsStats, type ServedCohort } from './metrics.js';
import { RawFlags } from './raw-flags.js';
import { createPageSync, type StreamState, type SyncStats } from './sync.js';
import { SDK_NAME } from './version.js';

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The flag server, e.g. `https://flags.example.com` (no path). Give this or `urls`. */
  url?: string;
  /**
   * Several flag servers (replicas of one deployment), tried in order: after a failed connect the client
   * moves to the next and resumes from its revision. With `url` too, `url` comes first.
   */
  urls?: readonly string[];
  /** A client key (`sdk-client` scope): public, like an app id; it sees only `clientSide` flags. */
  clientKey: string;
  /** The current user; switch with `identify`. */
  context: Context;
  /** The key's environment, stamped on cohort metrics; optional, the server takes it from the key. */
  env?: string;
  /** Flags to start with, as `GET /v1/flags` returns them (e.g. rendered into the page by the server). */
  bootstrap?: FlagSnapshot;
  /** Where the last known flags are kept across reloads (default `localStorage`); `false` keeps none. */
  storage?: Storage | false;
  /** Cohort metrics for the guardian; `false` turns them off. */
  metrics?: { flushIntervalMs?: number; maxCohorts?: number } | false;
  /** Reconnect backoff (full jitter) and how many failed stream attempts start polling. */
  reconnect?: { baseMs?: number; capMs?: number; pollAfterFailures?: number };
  /** Polling period while the stream is unavailable (default 30 s). */
  pollIntervalMs?: number;
  /** How often the client pings the server (default 15 s). */
  heartbeatMs?: number;
  /** A stream silent this long is considered dead and reopened (default 30 s). */
  deadAfterMs?: number;
  /** Timeout of `GET /v1/flags` (default 10 s). */
  requestTimeoutMs?: number;
}

/** What `client.stats()` returns. */
export interface ClientStats {
  revision: number;
  flags: number;
  source: FlagSource | undefined;
  stream: StreamState;
  polling: boolean;
  /** The server in use: streamed from, polled and sent metrics. */
  server: string;
  sync: SyncStats;
  metrics: MetricsStats | undefined;
}

/** The last detail served per flag key; `undefined` entries are not cached. */
type Evaluations = Map<string, EvaluationDetail>;

/**
 * Vigil's browser client: one user's flags, evaluated synchronously in the page by the shared core,
 * kept current by the flag server's stream, cached in localStorage so a reload starts with the last
 * known flags. Nothing it does throws into the application: failures reach `on('error')`.
 */
export class VigilClient {
  private readonly flags = new FlagSet();
  private readonly raw = new RawFlags();
  private readonly emitter: Emitter<ClientEvents>;
  private readonly cache: FlagCache;
  private readonly sync: Synchronizer;
  private readonly metrics: CohortMetrics | undefined;
  private context: Context;
  /** Every flag's detail for the current context, recomputed on each update and `identify`. */
  private evaluations: Evaluations = new Map();
  /** Flags the application evaluated for the current user: outcomes count against their cohorts. */
  private readonly served = new Set<string>();
  private readonly waiters = new Set<{ resolve(ready: boolean): void; reject(error: unknown): void }>();
  private readonly unlisten: (() => void)[] = [];
  private refusal: VigilSdkError | undefined;
  private closed = false;
  /** Where the flags served came from; undefined until there are some. */
  source: FlagSource | undefined;
  /** The last error reported. */
  lastError: VigilSdkError | undefined;

  constructor(options: ClientOptions) {
    this.context = options.context ?? {};
    this.emitter = new Emitter<ClientEvents>((event, error) => {
      if (event !== 'error')
        this.report(
          new VigilSdkError('VIGIL_SDK_LISTENER', `a "${event}" listener threw: ${describe(error)}`),
        );
    });
    const servers = serverUrls(options);
    const storage = options.storage === false ? undefined : (options.storage ?? defaultStorage());
    // Keyed by the first server: replicas of one deployment hold the same flags.
    this.cache = new FlagCache(storage, servers[0]!, options.clientKey);

    // Start from the freshest of the bootstrap and the cache.
    let start: { snapshot: FlagSnapshot; source: FlagSource } | undefined;
    if (options.bootstrap !== undefined) {
      const issue = snapshotIssue(options.bootstrap);
      if (issue) this.lastError = new VigilSdkError('VIGIL_SDK_BOOTSTRAP', `${issue}; ignored`);
      else start = { snapshot: options.bootstrap, source: 'bootstrap' };
    }
    const cached = this.cache.read();
    if (cached && (!start || cached.revision > start.snapshot.revision))
      start = { snapshot: cached, source: 'cache' };
    if (start) this.receive(start.snapshot, undefined, start.source);

    const metrics = options.metrics === false ? undefined : (options.metrics ?? {});
    if (metrics) {
      this.metrics = new CohortMetrics({
        url: () => this.sync.server,
        clientKey: options.clientKey,
        ...(options.env === undefined ? {} : { env: options.env }),
        sdk: SDK_NAME,
        flushIntervalMs: metrics.flushIntervalMs ?? 10_000,
        maxCohorts: metrics.maxCohorts ?? 500,
        onError: (error) => this.report(error),
      });
    }

    this.sync = createPageSync(
      {
        urls: servers,
        clientKey: options.clientKey,
        // Cached flags came from this server and key: resume from their revision.
        resumable: start?.source === 'cache',
        pollIntervalMs: options.pollIntervalMs ?? 30_000,
        reconnect: {
          baseMs: options.reconnect?.baseMs ?? 1000,
          capMs: options.reconnect?.capMs ?? 60_000,
          pollAfterFailures: options.reconnect?.pollAfterFailures ?? 3,
        },
        heartbeatMs: options.heartbeatMs ?? 15_000,
        deadAfterMs: options.deadAfterMs ?? 30_000,
        requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
        sdk: SDK_NAME,
      },
      {
        revision: () => this.flags.revision,
        load: (snapshot, source) => this.receive(snapshot, undefined, source),
        apply: (patch) => this.receive(undefined, patch, 'stream'),
        inSync: (source) => {
          this.source = source;
        },
        refused: (error) => {
          this.refusal = error;
          this.report(error);
          for (const w of this.waiters) w.reject(error);
          this.waiters.clear();
        },
        error: (error) => this.report(error),
      },
    );
    this.listenToPage();
    this.sync.start();
    if (this.lastError) {
      const error = this.lastError;
      queueMicrotask(() => this.emitter.emit('error', error));
    }
  }

  /** Whether flags are there (from bootstrap, cache, stream or poll). */
  get ready(): boolean {
    return this.source !== undefined;
  }

  /** The revision of the environment held. */
  get revision(): number {
    return this.flags.revision;
  }

  /** The current user's context. */
  get user(): Context {
    return this.context;
  }

  /** Whether a boolean flag is on for the current user; `defaultValue` when unknown or not boolean. */
  isEnabled(flag: string, defaultValue = false): boolean {
    return this.evaluate(flag, defaultValue).value;
  }

  /** The variant served to the current user, or undefined for an unknown flag. */
  variant(flag: string): string | undefined {
    return this.evaluate(flag, undefined).variant;
  }

  /** The value served when its type matches `defaultValue`'s, else `defaultValue`. */
  value<T extends VariantValue>(flag: string, defaultValue: T): Widen<T> {
    return this.evaluate(flag, defaultValue as Widen<T>).value;
  }

  /** The full outcome for the current user (value, variant, reason, errorCode, flagVersion). */
  detail<T extends VariantValue>(flag: string, defaultValue?: T): EvaluationDetail<Widen<T>> {
    return { ...this.evaluate(flag, defaultValue as Widen<T> | undefined) };
  }

  /** Every flag's value for the current user (debugging, devtools). */
  allFlags(): Record<string, VariantValue> {
    const out: Record<string, VariantValue> = {};
    for (const [key, detail] of this.evaluations) out[key] = detail.value;
    return out;
  }

  /** Switches to another user: every flag is evaluated for them, and `change` names what differs. */
  identify(context: Context): void {
    if (this.closed) return;
    this.context = context ?? {};
    this.served.clear();
    this.reevaluate();
  }

  /** Counts one fetch (or any operation) against the cohorts the user was served. */
  recordFetch(latencyMs: number, ok: boolean): void {
    this.record(!ok, latencyMs);
  }

  /** Counts one error (without a latency) against the cohorts the user was served. */
  recordError(_error?: unknown): void {
    this.record(true, undefined);
  }

  /**
   * Runs `fn` (typically a `fetch`) and records its outcome: an error when it throws or resolves to a
   * `Response` that is not ok. What `fn` returns or throws is passed through unchanged.
   */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let ok = false;
    try {
      const result = await fn();
      ok = !(typeof Response !== 'undefined' && result instanceof Response && !result.ok);
      return result;
    } finally {
      this.record(!ok, performance.now() - started);
    }
  }

  /** Sends the cohort summaries gathered so far (otherwise sent every `flushIntervalMs` and on `pagehide`). */
  flush(): Promise<void> {
    return this.metrics?.flush() ?? Promise.resolve();
  }

  /**
   * Resolves true once flags are there, false on timeout or close; rejects with the error when the key
   * is refused (then no flags will ever come).
   */
  waitForReady(timeoutMs = 10_000): Promise<boolean> {
    if (this.refusal) return Promise.reject(this.refusal);
    if (this.ready) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      const waiter = {
        resolve: (ready: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(ready);
        },
        reject: (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
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

  stats(): ClientStats {
    // The browser never disables the stream, and reports no reconnect count.
    const { reconnects: _, ...sync } = this.sync.stats;
    return {
      revision: this.flags.revision,
      flags: this.evaluations.size,
      source: this.source,
      stream: this.sync.state as StreamState,
      polling: this.sync.polling,
      server: this.sync.server,
      sync,
      metrics: this.metrics?.stats(),
    };
  }

  /** Stops the stream and polling, sends the last cohort summaries, settles `waitForReady` with false. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sync.close();
    this.metrics?.close();
    for (const off of this.unlisten.splice(0)) off();
    for (const w of [...this.waiters]) w.resolve(false);
    this.emitter.clear();
  }

  // --- internals -----------------------------------------------------------------------------------

  /** The detail for the current user: from the evaluations computed at the last change. */
  private evaluate<T extends VariantValue>(flag: string, defaultValue: T | undefined): EvaluationDetail<T> {
    const held = this.evaluations.get(flag);
    if (held !== undefined) {
      // A default of another type than the flag's values gets the core's TYPE_MISMATCH answer below.
      if (defaultValue === undefined || kindOf(defaultValue) === kindOf(held.value)) {
        if (!this.closed) this.served.add(flag);
        return held as EvaluationDetail<T>;
      }
    }
    try {
      return this.flags.detail(flag, this.context, defaultValue);
    } catch {
      return { value: defaultValue as T, reason: 'ERROR', errorCode: 'GENERAL' };
    }
  }

  /** Takes a snapshot or patch in, saves it, re-evaluates for the user and announces what changed. */
  private receive(
    snapshot: FlagSnapshot | undefined,
    patch: FlagPatch | undefined,
    source: FlagSource,
  ): void {
    if (this.closed) return;
    try {
      if (snapshot) {
        this.flags.load(snapshot);
        this.raw.load(snapshot);
      } else if (patch) {
        if (patch.revision <= this.flags.revision) return;
        this.flags.applyPatch(patch);
        this.raw.apply(patch);
      }
    } catch (error) {
      this.report(new VigilSdkError('VIGIL_SDK_PROTOCOL', `flags could not be loaded: ${describe(error)}`));
      return;
    }
    if (source === 'stream' || source === 'poll') this.cache.write(this.raw.snapshot());
    const first = this.source === undefined;
    if (first) this.source = source;
    this.reevaluate();
    if (first) {
      for (const w of [...this.waiters]) w.resolve(true);
      // Listeners added right after createClient still hear a ready from bootstrap or cache.
      queueMicrotask(() => this.emitter.emit('ready', source));
    }
  }

  /** Evaluates every flag for the current user; emits `change` with the keys whose served value moved. */
  private reevaluate(): void {
    const before = this.evaluations;
    const after: Evaluations = new Map();
    const changed: string[] = [];
    for (const key of this.flags.keys()) {
      let detail: EvaluationDetail;
      try {
        detail = this.flags.detail(key, this.context);
      } catch {
        continue;
      }
      after.set(key, detail);
      const old = before.get(key);
      if (!old || old.variant !== detail.variant || !sameValue(old.value, detail.value)) changed.push(key);
    }
    for (const key of before.keys()) if (!after.has(key)) changed.push(key);
    this.evaluations = after;
    if (changed.length > 0) this.emitter.emit('change', changed);
  }

  private record(error: boolean, latencyMs: number | undefined): void {
    if (this.closed) return;
    if (!this.metrics) return;
    const cohorts: ServedCohort[] = [];
    for (const flag of this.served) {
      const d = this.evaluations.get(flag);
      if (d?.variant !== undefined && d.flagVersion !== undefined)
        cohorts.push({ flag, variant: d.variant, version: d.flagVersion });
    }
    this.metrics.record(cohorts, error, latencyMs);
  }

  private report(error: VigilSdkError): void {
    this.lastError = error;
    this.emitter.emit('error', error);
  }

  /** Sends metrics when the page is hidden or left; reconnects at once when the browser is back online. */
  private listenToPage(): void {
    if (typeof window === 'undefined' || typeof window.addEventListener !== 'function') return;
    const listen = (target: EventTarget, event: string, handler: () => void) => {
      target.addEventListener(event, handler);
      this.unlisten.push(() => target.removeEventListener(event, handler));
    };
    const beacon = () => this.metrics?.beacon();
    listen(window, 'pagehide', beacon);
    listen(document, 'visibilitychange', () => {
      if (document.visibilityState === 'hidden') beacon();
      else this.sync.nudge();
    });
    listen(window, 'online', () => this.sync.nudge());
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return (
    a === b || (typeof a === 'object' && typeof b === 'object' && JSON.stringify(a) === JSON.stringify(b))
  );
}

/** The servers options name, without trailing slashes: `url` first, then `urls`, each once; throws when there is none. */
function serverUrls(options: Pick<ClientOptions, 'url' | 'urls'>): string[] {
  const all = [...(options.url === undefined ? [] : [options.url]), ...(options.urls ?? [])];
  const servers = [...new Set(all.map((u) => String(u).replace(/\/+$/, '')))];
  if (servers.length === 0) throw new VigilSdkError('VIGIL_SDK_INVALID_OPTIONS', 'url or urls is required');
  return servers;
}

/**
 * Creates a browser client; it starts from the bootstrap or cached flags, then connects. Throws only
 * `VIGIL_SDK_INVALID_OPTIONS` when given no server; nothing after that throws.
 */
export function createClient(options: ClientOptions): VigilClient {
  return new VigilClient(options);
}

export type { ClientEvents, EventName, FlagSource, Listener, Widen };
