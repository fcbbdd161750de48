import type { AuditEntry, Flag, Incident, Segment } from '@vigil/proto';
import type { Change, IdempotencyRecord, OutboxItem, StoredToken } from './store.js';

/** An idempotency record as kept: by claim id, until `expiresAt` (epoch ms). */
export interface StoredIdempotency extends IdempotencyRecord {
  id: string;
  expiresAt: number;
}

/**
 * One durable mutation: the embedded store commits it to SQLite (`EmbeddedDb`) and applies it here; the
 * journal store before it appended these as lines, which the migration replays. A write made under an
 * idempotency key carries its record (`idem`), committed in the same transaction: both or neither.
 */
export type JournalRecord =
  | { op: 'commit'; change: Change; audit: AuditEntry; idem?: StoredIdempotency }
  | { op: 'token.put'; token: StoredToken; idem?: StoredIdempotency }
  | { op: 'token.delete'; id: string; idem?: StoredIdempotency }
  | { op: 'incident.put'; incident: Incident; idem?: StoredIdempotency }
  /** A write under a key that changed nothing (killing a killed flag): only its record. */
  | { op: 'idempotency'; idem: StoredIdempotency }
  | { op: 'episode.claim'; key: string; incidentId: string }
  | { op: 'episode.resolve'; key: string; at: string }
  | { op: 'outbox.put'; item: OutboxItem }
  | { op: 'outbox.delete'; id: string };

/** An environment's state in memory: its counter, current records and bounded logs (oldest first). */
export interface EnvState {
  revision: number;
  flags: Map<string, Flag>;
  segments: Map<string, Segment>;
  log: BoundedLog<Change>;
  audit: BoundedLog<AuditEntry>;
}

/** The state as written to the snapshot file. */
export interface SavedState {
  envs: Record<
    string,
    { revision: number; flags: Flag[]; segments: Segment[]; log: Change[]; audit: AuditEntry[] }
  >;
  tokens: StoredToken[];
  incidents: Incident[];
  episodes: Record<string, string>;
  /** Absent in snapshots written before episodes could be resolved. */
  resolvedEpisodes?: Record<string, string>;
  outbox: OutboxItem[];
  /** Absent in snapshots written before writes took idempotency keys. */
  idempotency?: StoredIdempotency[];
}

/**
 * Everything the embedded store persists, in memory. `apply` is the only mutator and is used both
 * for live writes and for the migration's replay of an old journal, so the two cannot disagree.
 * Stored objects are frozen: readers get them without copying and cannot corrupt the state.
 */
export class EmbeddedState {
  readonly envs = new Map<string, EnvState>();
  readonly tokens = new Map<string, StoredToken>();
  readonly incidents = new Map<string, Incident>();
  readonly episodes = new Map<string, string>();
  /** Episode key → when its incident was resolved. */
  readonly resolvedEpisodes = new Map<string, string>();
  readonly outbox = new Map<string, OutboxItem>();
  /** Idempotency records by claim id, in the order they were written (so oldest expire first). */
  readonly idempotency = new Map<string, StoredIdempotency>();

  constructor(private readonly limits: { changeLog: number; audit: number }) {}

  /** Applies one mutation. */
  apply(record: JournalRecord): void {
    deepFreeze(record);
    if ('idem' in record && record.idem !== undefined) this.remember(record.idem);
    switch (record.op) {
      case 'commit':
        this.commit(record.change, record.audit);
        return;
      case 'token.put':
        this.tokens.set(record.token.id, record.token);
        return;
      case 'token.delete':
        this.tokens.delete(record.id);
        return;
      case 'incident.put':
        this.incidents.set(record.incident.id, record.incident);
        return;
      case 'episode.claim':
        this.episodes.set(record.key, record.incidentId);
        return;
      case 'episode.resolve':
        this.resolvedEpisodes.set(record.key, record.at);
        return;
      case 'outbox.put':
        this.outbox.set(record.item.id, record.item);
        return;
      case 'outbox.delete':
        this.outbox.delete(record.id);
        return;
      case 'idempotency':
        return;
    }
  }

  /** The live record of a claim id, if any (an expired one is gone). */
  idempotencyRecord(id: string, now = Date.now()): StoredIdempotency | undefined {
    const record = this.idempotency.get(id);
    return record !== undefined && record.expiresAt > now ? record : undefined;
  }

  private remember(record: StoredIdempotency): void {
    const now = Date.now();
    // Records share one TTL, so the oldest come first: drop expired ones from the front.
    for (const [id, held] of this.idempotency) {
      if (held.expiresAt > now) break;
      this.idempotency.delete(id);
    }
    this.idempotency.delete(record.id);
    this.idempotency.set(record.id, record);
  }

  /** Loads a snapshot written by `save`. */
  load(saved: SavedState): void {
    for (const [name, env] of Object.entries(saved.envs)) {
      this.envs.set(name, {
        revision: env.revision,
        flags: new Map(env.flags.map((f) => [f.key, deepFreeze(f)])),
        segments: new Map(env.segments.map((s) => [s.key, deepFreeze(s)])),
        log: new BoundedLog(this.limits.changeLog, env.log.map(deepFreeze)),
        audit: new BoundedLog(this.limits.audit, env.audit.map(deepFreeze)),
      });
    }
    for (const token of saved.tokens) this.tokens.set(token.id, deepFreeze(token));
    for (const incident of saved.incidents) this.incidents.set(incident.id, deepFreeze(incident));
    for (const [key, id] of Object.entries(saved.episodes)) this.episodes.set(key, id);
    for (const [key, at] of Object.entries(saved.resolvedEpisodes ?? {})) this.resolvedEpisodes.set(key, at);
    for (const item of saved.outbox) this.outbox.set(item.id, deepFreeze(item));
    const now = Date.now();
    for (const record of saved.idempotency ?? []) {
      if (record.expiresAt > now) this.idempotency.set(record.id, deepFreeze(record));
    }
  }

  /** The whole state in its snapshot form. */
  save(): SavedState {
    const envs: SavedState['envs'] = {};
    for (const [name, env] of this.envs) {
      envs[name] = {
        revision: env.revision,
        flags: [...env.flags.values()],
        segments: [...env.segments.values()],
        log: env.log.slice(),
        audit: env.audit.slice(),
      };
    }
    return {
      envs,
      tokens: [...this.tokens.values()],
      incidents: [...this.incidents.values()],
      episodes: Object.fromEntries(this.episodes),
      resolvedEpisodes: Object.fromEntries(this.resolvedEpisodes),
      outbox: [...this.outbox.values()],
      idempotency: [...this.idempotency.values()].filter((r) => r.expiresAt > Date.now()),
    };
  }

  private commit(change: Change, audit: AuditEntry): void {
    let env = this.envs.get(change.env);
    if (!env) {
      env = {
        revision: 0,
        flags: new Map(),
        segments: new Map(),
        log: new BoundedLog(this.limits.changeLog),
        audit: new BoundedLog(this.limits.audit),
      };
      this.envs.set(change.env, env);
    }
    env.revision = change.revision;
    for (const flag of change.flags) env.flags.set(flag.key, flag);
    for (const segment of change.segments) env.segments.set(segment.key, segment);
    for (const key of change.deleted.flags) env.flags.delete(key);
    for (const key of change.deleted.segments) env.segments.delete(key);
    env.log.push(change);
    env.audit.push(audit);
  }
}

/**
 * The newest `limit` items of a list, oldest first. Dropping the oldest only moves a start index,
 * and the array is cut once that much is dropped: a push costs O(1), not a shift of the whole list.
 */
export class BoundedLog<T> {
  private items: T[] = [];
  private start = 0;

  constructor(
    private readonly limit: number,
    initial: T[] = [],
  ) {
    for (const item of initial) this.push(item);
  }

  get length(): number {
    return this.items.length - this.start;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.length <= this.limit) return;
    this.start += 1;
    if (this.start >= Math.max(64, this.limit)) {
      this.items = this.items.slice(this.start);
      this.start = 0;
    }
  }

  /** The item at `index` (0 is the oldest kept). */
  at(index: number): T | undefined {
    return index < 0 || index >= this.length ? undefined : this.items[this.start + index];
  }

  /** The items from `from` on, oldest first, as a new array. */
  slice(from = 0): T[] {
    return this.items.slice(this.start + from);
  }
}

/** Freezes a JSON value and everything in it. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
