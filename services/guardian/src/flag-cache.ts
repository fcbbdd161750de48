import type { Flag } from '@vigil/proto';
import type { Change, Store } from '@vigil/server';

interface EnvEntry {
  revision: number;
  flags: Map<string, Flag>;
  /** Set while the snapshot loads, with the changes that arrive meanwhile. */
  loading?: { promise: Promise<void>; queued: Change[] };
  /** A revision was skipped: reload the snapshot on next use. */
  stale: boolean;
}

/**
 * The flags the guardian judges, per environment: loaded from a store snapshot on first use and kept
 * current from `store.subscribe` (a gap in revisions reloads the snapshot), so evaluating every
 * flag every second reads nothing from the store.
 */
export class FlagCache {
  private readonly envs = new Map<string, EnvEntry>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly store: Pick<Store, 'snapshot' | 'subscribe' | 'listEnvs'>) {}

  /** Subscribes to changes and loads every environment the store knows. */
  async start(): Promise<void> {
    this.unsubscribe ??= this.store.subscribe((change) => this.receive(change));
    await Promise.all((await this.store.listEnvs()).map((env) => this.load(env)));
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** A flag as the store holds it now (as far as the change feed has told). */
  async get(env: string, key: string): Promise<Flag | undefined> {
    await this.load(env);
    return this.envs.get(env)?.flags.get(key);
  }

  /** Reloads the environments that missed a change (or failed to load). */
  async refresh(): Promise<void> {
    await Promise.all(
      [...this.envs].filter(([, entry]) => entry.stale && !entry.loading).map(([env]) => this.load(env)),
    );
  }

  /** Every loaded flag, by environment. */
  *all(): IterableIterator<[string, Flag]> {
    for (const [env, entry] of this.envs) for (const flag of entry.flags.values()) yield [env, flag];
  }

  /** Takes a flag this guardian just wrote, before the change feed brings it. */
  put(env: string, flag: Flag): void {
    const held = this.envs.get(env)?.flags;
    const current = held?.get(flag.key);
    if (held && (current === undefined || current.version < flag.version)) held.set(flag.key, flag);
  }

  /** Loads an environment (again, when stale) from a snapshot. */
  async load(env: string): Promise<void> {
    let entry = this.envs.get(env);
    if (entry?.loading) return entry.loading.promise;
    if (entry && !entry.stale) return;
    if (!entry) {
      entry = { revision: -1, flags: new Map(), stale: true };
      this.envs.set(env, entry);
    }
    const target = entry;
    const queued: Change[] = [];
    const promise = this.store.snapshot(env).then(
      (snapshot) => {
        target.loading = undefined;
        target.stale = false;
        target.revision = snapshot.revision;
        target.flags = new Map(snapshot.flags.map((f) => [f.key, f]));
        for (const change of queued) this.apply(target, change);
      },
      (error: unknown) => {
        target.loading = undefined;
        throw error;
      },
    );
    target.loading = { promise, queued };
    return promise;
  }

  private receive(change: Change): void {
    const entry = this.envs.get(change.env);
    if (!entry) {
      // A new environment: its snapshot includes this change. A failed load is retried by `refresh`.
      this.load(change.env).catch(() => undefined);
      return;
    }
    if (entry.loading) entry.loading.queued.push(change);
    else this.apply(entry, change);
  }

  private apply(entry: EnvEntry, change: Change): void {
    if (change.reset) {
      entry.revision = change.revision;
      entry.flags = new Map(change.flags.map((f) => [f.key, f]));
      entry.stale = false;
      return;
    }
    if (change.revision <= entry.revision) return;
    if (change.revision !== entry.revision + 1) {
      entry.stale = true;
      return;
    }
    entry.revision = change.revision;
    for (const flag of change.flags) entry.flags.set(flag.key, flag);
    for (const key of change.deleted.flags) entry.flags.delete(key);
  }
}
