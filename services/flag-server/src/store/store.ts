import type {
  AuditEntry,
  CohortSummary,
  Flag,
  Incident,
  Schedule,
  Segment,
  Serve,
  TokenInfo,
  Verdict,
} from '@vigil/proto';

/** Who made a write, and why; recorded in the audit log. */
export interface WriteMeta {
  /** Token name (or `guardian`, `bootstrap`). */
  actor: string;
  reason?: string;
  /** The request's `Idempotency-Key`, recorded in the same atomic step as the write (see idempotency.ts). */
  idempotency?: IdempotencyClaim;
}

/**
 * What a write under an `Idempotency-Key` asks the store to record with it, atomically: a later write
 * carrying the same `id` is not applied but answered from the record.
 */
export interface IdempotencyClaim {
  /** Hash of the caller's token and its key (the key itself is never stored). */
  id: string;
  /** Hash of what the request asked (method, route, target, body, conditions). */
  fingerprint: string;
  /** The HTTP status the write answers when it succeeds. */
  status: number;
  /** Opaque data the route needs to answer a replay (e.g. a new token's sealed secret). */
  attachment?: string;
}

/** A recorded write: what replays of its key answer. `result` is what the write resolved with. */
export interface IdempotencyRecord {
  fingerprint: string;
  status: number;
  /** The stored flag, segment, incident or token info; undefined for a delete. */
  result: unknown;
  attachment?: string;
}

/**
 * Thrown by a write whose idempotency key the store already holds with the same fingerprint (a retry
 * that raced the first attempt): nothing was written; answer `record`.
 */
export class IdempotentReplay extends Error {
  constructor(readonly record: IdempotencyRecord) {
    super('idempotency key already recorded');
    this.name = 'IdempotentReplay';
  }
}

/**
 * One committed write in an environment's change log: the flags/segments it upserted (their full
 * new state) and the keys it deleted. `revision` is the environment's counter after the write.
 */
export interface Change {
  env: string;
  revision: number;
  flags: Flag[];
  segments: Segment[];
  deleted: { flags: string[]; segments: string[] };
  /**
   * Set when the change log could not bridge a gap (e.g. a replica was cut off from Redis longer
   * than the log reaches): `flags` and `segments` are then the environment's whole state at
   * `revision`, and anything not in them is gone. Treat it like a snapshot.
   */
  reset?: true;
}

/** An environment's whole state at one revision. */
export interface EnvSnapshot {
  env: string;
  revision: number;
  flags: Flag[];
  segments: Segment[];
}

/** What a flag write expects to find: the version it read (`If-Match`), or that the key is new. */
export type Expectation = { version: number } | { absent: true } | undefined;

export interface KillInput extends WriteMeta {
  killed: boolean;
  /** ISO time of the kill; the store stamps now when absent. */
  at?: string;
}

/** A schedule write (audited as `flag.schedule`): the schedule's new state, and a step's new serve. */
export interface ScheduleInput extends WriteMeta {
  /** The schedule's new state; undefined removes it. */
  schedule: Schedule | undefined;
  /** The fallthrough a schedule step serves; when absent the flag keeps its own. */
  fallthrough?: Serve;
}

/** An episode (one flag version's regression) and the one incident it opened. */
export interface Episode {
  incidentId: string;
  /** When the incident was resolved, which ends the episode. */
  resolvedAt?: string;
}

export interface AuditQuery {
  limit: number;
  /** Only entries whose target is this key. */
  target?: string;
  /** Only entries older than this audit id (paging backwards). */
  before?: string;
}

/** A token record as stored: the listing info plus the secret's hash (never the secret). */
export interface StoredToken extends TokenInfo {
  secretHash: string;
}

/** A delivery waiting in the notification outbox. */
export interface OutboxItem {
  id: string;
  /** Integration name, e.g. `pagerduty`. */
  target: string;
  /** Idempotency/dedup key sent to the integration. */
  key: string;
  payload: unknown;
  attempts: number;
  /** Epoch ms before which it must not be retried. */
  notBefore: number;
  lastError?: string;
}

/** A metrics summary read from the bus, to be acknowledged once processed. */
export interface MetricsEntry {
  id: string;
  summary: CohortSummary;
}

/**
 * The one persistence contract of the flag server and the guardian. Two implementations (Redis and
 * embedded) pass the same contract suite. Every flag/segment write is atomic: version check,
 * revision increment, write, change-log append and audit append happen together or not at all.
 * Writes reject with a `StoreError` (`VIGIL_VERSION_CONFLICT`, `VIGIL_NOT_FOUND`,
 * `VIGIL_ALREADY_EXISTS`, `VIGIL_STORE_UNAVAILABLE` when the write was not applied,
 * `VIGIL_WRITE_OUTCOME_UNKNOWN` when it may have been).
 *
 * A write given an {@link IdempotencyClaim} (in `WriteMeta.idempotency`, or the `idempotency` argument)
 * records it in the same atomic step; one whose claim id is already recorded writes nothing and throws
 * {@link IdempotentReplay} (same fingerprint) or `VIGIL_IDEMPOTENCY_KEY_REUSED` (another fingerprint).
 * Records are kept for at least the store's idempotency TTL (24 h by default). Only successful writes
 * record their claim; a write that changes nothing (killing a killed flag) records it too.
 */
export interface Store {
  readonly kind: 'redis' | 'embedded';
  /** Connects (or loads the data directory) and starts delivering changes to subscribers. */
  start(): Promise<void>;
  close(): Promise<void>;
  /** Resolves when the backing store answers; rejects otherwise (`/readyz`). */
  ping(): Promise<void>;

  /** Environments that have ever been written. */
  listEnvs(): Promise<string[]>;
  snapshot(env: string): Promise<EnvSnapshot>;
  getFlag(env: string, key: string): Promise<Flag | undefined>;
  /**
   * Writes a flag; `flag.version` is set to the new revision. Creates when absent. The kill switch
   * fields and the schedule are the store's: an update keeps the stored ones (only `setKill` and
   * `putSchedule` change them), so an edit never revives a flag or rewinds a progressive rollout.
   */
  putFlag(env: string, flag: Flag, expect: Expectation, meta: WriteMeta): Promise<Flag>;
  deleteFlag(env: string, key: string, expect: Expectation, meta: WriteMeta): Promise<void>;
  /**
   * Sets or clears the kill switch without a version check (an on-call engineer's kill must never
   * lose to a concurrent edit). Idempotent: killing a killed flag changes nothing and writes no revision.
   */
  setKill(env: string, key: string, input: KillInput): Promise<Flag>;
  /**
   * Sets (or removes) a flag's schedule and, for a step, its fallthrough, keeping every other field;
   * a new flag version audited as `flag.schedule`. `VIGIL_NOT_FOUND` when the flag is absent,
   * `VIGIL_VERSION_CONFLICT` when `expect` no longer holds.
   */
  putSchedule(env: string, key: string, input: ScheduleInput, expect: Expectation): Promise<Flag>;
  /**
   * Writes a segment; `segment.version` is set to the new revision. `expect` (a REST `If-Match`) is
   * checked in the same atomic step as the write, as for flags, so concurrent writers cannot both pass it.
   */
  putSegment(env: string, segment: Segment, meta: WriteMeta, expect?: Expectation): Promise<Segment>;
  deleteSegment(env: string, key: string, meta: WriteMeta): Promise<void>;

  /** Changes after `revision`, in order; `undefined` when the trimmed log no longer reaches back that far. */
  changesSince(env: string, revision: number): Promise<Change[] | undefined>;
  /**
   * Every committed change of every environment, from this process or any other sharing the store,
   * in revision order per environment. Returns an unsubscribe function.
   */
  subscribe(listener: (change: Change) => void): () => void;
  audit(env: string, query: AuditQuery): Promise<AuditEntry[]>;

  /** The record of an idempotency claim id, while it is kept. */
  getIdempotency(id: string): Promise<IdempotencyRecord | undefined>;

  /** Records a token; the idempotency record's `result` is its `TokenInfo`. */
  createToken(token: StoredToken, idempotency?: IdempotencyClaim): Promise<void>;
  findToken(secretHash: string): Promise<StoredToken | undefined>;
  listTokens(): Promise<TokenInfo[]>;
  /** False when there is no such token (nothing is recorded then). */
  deleteToken(id: string, idempotency?: IdempotencyClaim): Promise<boolean>;

  /** Appends SDK cohort summaries to the metrics bus the guardians read. */
  publishMetrics(summaries: CohortSummary[]): Promise<void>;
  /**
   * Reads summaries for `consumer` in `group` (a guardian instance), including entries another
   * consumer left pending for longer than `claimIdleMs`. Waits up to `blockMs` when none are ready.
   */
  readMetrics(
    group: string,
    consumer: string,
    opts: { count: number; blockMs: number; claimIdleMs: number },
  ): Promise<MetricsEntry[]>;
  ackMetrics(group: string, ids: string[]): Promise<void>;

  putIncident(incident: Incident): Promise<void>;
  getIncident(id: string): Promise<Incident | undefined>;
  /**
   * Changes an incident atomically: `update` gets the stored incident and returns the new one, or
   * undefined to leave it as it is (it may be called more than once when writers race). Resolves with
   * the incident as stored afterwards, or undefined when there is no such incident.
   */
  updateIncident(
    id: string,
    update: (incident: Incident) => Incident | undefined,
    idempotency?: IdempotencyClaim,
  ): Promise<Incident | undefined>;
  listIncidents(query: { env?: string; status?: Incident['status']; limit: number }): Promise<Incident[]>;
  /**
   * Claims an episode key (e.g. `env:flag:version`) for one incident; true only for the first caller,
   * so several guardians seeing one regression open one incident.
   */
  claimEpisode(key: string, incidentId: string): Promise<boolean>;
  /** The episode's incident and whether it was resolved; undefined when never claimed. */
  getEpisode(key: string): Promise<Episode | undefined>;
  /** Marks a claimed episode resolved (idempotent: the first time is kept). It stays claimed. */
  resolveEpisode(key: string, at: string): Promise<void>;

  /**
   * Stores the guardian's latest verdict on a flag, replacing the previous one; it expires after
   * `ttlMs` so a stopped guardian's last word is not served for ever.
   */
  putVerdict(verdict: Verdict, ttlMs: number): Promise<void>;
  getVerdict(env: string, flag: string): Promise<Verdict | undefined>;

  enqueueOutbox(item: OutboxItem): Promise<void>;
  /** Items due at `now`, oldest first. */
  dueOutbox(now: number, limit: number): Promise<OutboxItem[]>;
  updateOutbox(item: OutboxItem): Promise<void>;
  removeOutbox(id: string): Promise<void>;

  /** Takes or renews a named lock for `owner` for `ttlMs`; false when another owner holds it. */
  acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLock(name: string, owner: string): Promise<void>;
}

/** A store that copies itself, consistent at one instant, while it serves (the embedded store). */
export interface BackupStore {
  /** Writes the copy to `destination`, a file path. */
  backup(destination: string): Promise<void>;
}

/** True for a store that can {@link BackupStore.backup} itself. */
export function canBackup<S extends object>(store: S): store is S & BackupStore {
  return typeof (store as Partial<BackupStore>).backup === 'function';
}
