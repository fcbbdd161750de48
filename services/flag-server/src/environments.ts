import { refusedPatterns } from '@vigil/proto';
import type { FastifyBaseLogger } from 'fastify';
import { type AppliedChange, EnvState } from './env-state.js';
import type { ServerMetrics } from './metrics.js';
import type { Change, Store } from './store/store.js';

/** What happened to an environment held in memory. */
export type EnvEvent =
  | { kind: 'patch'; state: EnvState; applied: AppliedChange }
  /** The state was replaced by a snapshot (the change log no longer reached back); streams resync. */
  | { kind: 'reset'; state: EnvState };

interface Entry {
  state: EnvState;
  ready: Promise<EnvState>;
  loaded: boolean;
  /** Loading or catching up with the store: incoming changes wait in `queue`. */
  busy: boolean;
  /** The previous catch-up found nothing filling the gap before `queue[0]`: apply it as it is. */
  acceptGap: boolean;
  queue: { change: Change; at: number }[];
}

const MAX_RETRY_MS = 30_000;

/**
 * Every environment's state in memory, kept current from `store.subscribe`: loaded from a snapshot at
 * start (or on first use), then changed only by the store's changes, applied in revision order. A gap in
 * revisions is filled from `changesSince` (or a new snapshot); until the store answers, changes wait.
 * Reads (`/v1/flags`, streams, evaluation) never touch the store once an environment is loaded, so they
 * keep working while the store is down.
 */
export class Environments {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(event: EnvEvent) => void>();
  private unsubscribe?: () => void;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly options: { bufferSize: number; log: FastifyBaseLogger; metrics: ServerMetrics },
  ) {}

  /** Subscribes to the store and loads every known environment. */
  async start(): Promise<void> {
    this.unsubscribe = this.store.subscribe((change) => this.receive(change));
    const envs = await this.store.listEnvs();
    await Promise.all(envs.map((env) => this.get(env)));
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.listeners.clear();
  }

  /** An environment's state, loading it from the store on first use. */
  get(env: string): Promise<EnvState> {
    const existing = this.entries.get(env);
    if (existing) return existing.ready;
    const state = new EnvState(env, this.options.bufferSize);
    const entry: Entry = {
      state,
      ready: Promise.resolve(state),
      loaded: false,
      busy: true,
      acceptGap: false,
      queue: [],
    };
    entry.ready = this.store.snapshot(env).then(
      (snapshot) => {
        state.load(snapshot);
        this.reportRefusedPatterns(state);
        entry.loaded = true;
        entry.busy = false;
        this.drain(entry);
        return state;
      },
      (error: unknown) => {
        this.entries.delete(env);
        this.options.metrics.storeErrors.inc({ op: 'snapshot' });
        throw error;
      },
    );
    this.entries.set(env, entry);
    return entry.ready;
  }

  /**
   * Warns of every stored `matches` pattern the RE2 engine refuses (written before RE2 was the
   * engine): its clause never matches, which the operator should know and fix.
   */
  private reportRefusedPatterns(state: EnvState): void {
    const report = (kind: 'flag' | 'segment', key: string, issues: ReturnType<typeof refusedPatterns>) => {
      for (const issue of issues) {
        this.options.metrics.refusedPatterns.inc({ env: state.env });
        this.options.log.warn(
          { env: state.env, [kind]: key, clause: issue.field, reason: issue.message },
          `stored ${kind} has a matches pattern the RE2 engine refuses; the clause never matches until it is rewritten`,
        );
      }
    };
    for (const flag of state.flags.values()) report('flag', flag.key, refusedPatterns(flag));
    for (const segment of state.segments.values()) report('segment', segment.key, refusedPatterns(segment));
  }

  /** An environment's state if it is loaded, synchronously (the polling fast path). */
  peek(env: string): EnvState | undefined {
    const entry = this.entries.get(env);
    return entry?.loaded ? entry.state : undefined;
  }

  /** Environments loaded in memory. */
  loaded(): EnvState[] {
    return [...this.entries.values()].filter((e) => e.loaded).map((e) => e.state);
  }

  /** Calls `listener` for every change applied and every reset, in revision order per environment. */
  on(listener: (event: EnvEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private receive(change: Change): void {
    const entry = this.entries.get(change.env);
    // Not held: the snapshot read on first use will include it.
    if (!entry || this.closed) return;
    entry.queue.push({ change, at: performance.now() });
    this.drain(entry);
  }

  private drain(entry: Entry): void {
    const { state } = entry;
    while (!entry.busy && entry.queue.length > 0) {
      const { change, at } = entry.queue[0]!;
      if (change.revision <= state.revision) {
        entry.queue.shift();
        continue;
      }
      // A reset carries the whole state, so it bridges any gap.
      if (change.revision !== state.revision + 1 && !change.reset && !entry.acceptGap) {
        void this.catchUp(entry);
        return;
      }
      entry.queue.shift();
      entry.acceptGap = false;
      this.apply(state, change, at);
    }
    if (!entry.busy) entry.acceptGap = false;
  }

  /** Fills a gap before the next queued change from the store's change log, or a snapshot. */
  private async catchUp(entry: Entry): Promise<void> {
    const { state } = entry;
    const started = performance.now();
    entry.busy = true;
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const changes = await this.store.changesSince(state.env, state.revision);
        if (changes === undefined) {
          state.load(await this.store.snapshot(state.env));
          this.emit({ kind: 'reset', state }, started);
        } else {
          for (const change of changes) this.apply(state, change, started);
        }
        break;
      } catch (error) {
        this.options.metrics.storeErrors.inc({ op: 'changesSince' });
        this.options.log.warn(
          { err: error, env: state.env, attempt },
          'cannot catch up with the change log; retrying',
        );
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(MAX_RETRY_MS, 250 * 2 ** attempt)).unref(),
        );
      }
    }
    entry.busy = false;
    entry.acceptGap = true;
    this.drain(entry);
  }

  /** Applies one change newer than the state (a `reset` change replaces it) and tells the listeners. */
  private apply(state: EnvState, change: Change, receivedAt: number): void {
    if (change.revision <= state.revision) return;
    if (change.reset) {
      state.load({
        env: change.env,
        revision: change.revision,
        flags: change.flags,
        segments: change.segments,
      });
      this.emit({ kind: 'reset', state }, receivedAt);
      return;
    }
    const applied = state.apply(change);
    if (applied) this.emit({ kind: 'patch', state, applied }, receivedAt);
  }

  private emit(event: EnvEvent, receivedAt: number): void {
    if (event.kind === 'patch') this.options.metrics.changesApplied.inc({ env: event.state.env });
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.options.log.error({ err: error }, 'environment listener failed');
      }
    }
    this.options.metrics.broadcastSeconds.observe((performance.now() - receivedAt) / 1000);
  }
}
