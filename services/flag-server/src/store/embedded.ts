import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry, CohortSummary, Flag, Incident, Segment, TokenInfo, Verdict } from '@vigil/proto';
import { VigilError } from '../errors.js';
import { DATABASE_FILE, EmbeddedDb } from './embedded-db.js';
import { EmbeddedState, type JournalRecord, type StoredIdempotency } from './embedded-state.js';
import { readLegacyDataDir, retireLegacyFiles } from './legacy-data-dir.js';
import { MetricsBus } from './metrics-bus.js';
import {
  auditEntry,
  auditRevision,
  checkExpectation,
  emptyChange,
  killedFlag,
  scheduledFlag,
  storedFlag,
} from './records.js';
import {
  type AuditQuery,
  type Change,
  type EnvSnapshot,
  type Episode,
  type Expectation,
  type IdempotencyClaim,
  type IdempotencyRecord,
  IdempotentReplay,
  type KillInput,
  type MetricsEntry,
  type OutboxItem,
  type ScheduleInput,
  type Store,
  type StoredToken,
  type WriteMeta,
} from './store.js';

export interface EmbeddedStoreOptions {
  /** Directory holding the database (`vigil.db`); created when missing. */
  dataDir: string;
  /** Changes kept per environment for `changesSince` (default 10,000). */
  changeLogLimit?: number;
  /** Audit entries kept per environment (default 10,000). */
  auditLimit?: number;
  /** Metrics summaries kept on the bus (default 100,000). */
  metricsLimit?: number;
  /** Called when a subscriber throws; the other subscribers still get the change. */
  onListenerError?: (error: unknown) => void;
  /** Told of what start-up did to the data directory that an operator should know (a migration). */
  onNotice?: (message: string, details: Record<string, unknown>) => void;
  /** How long idempotency records are kept (default 24 h). */
  idempotencyTtlMs?: number;
}

/** A write waiting for its group's commit. */
interface Pending {
  records: JournalRecord[];
  changes: Change[];
  settle: { resolve: () => void; reject: (error: unknown) => void }[];
}

/**
 * The store for a single process with nothing installed, on SQLite (see `EmbeddedDb`). Every write
 * checks and applies itself to the in-memory state at once (so the next write sees it, and version
 * checks, revisions and logs are atomic), then joins the writes of the same tick in one SQLite
 * transaction: one fsync for the group (group commit). A write resolves, and subscribers hear of its
 * change in revision order, only once that transaction committed; if it fails, every write in it is
 * refused with `VIGIL_STORE_UNAVAILABLE` and the memory is reloaded from the database.
 * Locks, the metrics bus and the guardian's verdicts live in memory only: all three are about live
 * processes (verdicts are recomputed every second and expire anyway).
 */
export class EmbeddedStore implements Store {
  readonly kind = 'embedded' as const;
  private state: EmbeddedState;
  private db: EmbeddedDb | undefined;
  private readonly bus: MetricsBus;
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();
  private readonly verdicts = new Map<string, { verdict: Verdict; expiresAt: number }>();
  private readonly onListenerError: (error: unknown) => void;
  private readonly onNotice: NonNullable<EmbeddedStoreOptions['onNotice']>;
  private readonly dataDir: string;
  private readonly limits: { changeLog: number; audit: number };
  private readonly idempotencyTtlMs: number;
  private pending: Pending | undefined;
  private committed = 0;
  private open = false;

  constructor(options: EmbeddedStoreOptions) {
    this.dataDir = options.dataDir;
    this.idempotencyTtlMs = options.idempotencyTtlMs ?? 86_400_000;
    this.limits = { changeLog: options.changeLogLimit ?? 10_000, audit: options.auditLimit ?? 10_000 };
    this.state = new EmbeddedState(this.limits);
    this.bus = new MetricsBus(options.metricsLimit ?? 100_000);
    this.onListenerError =
      options.onListenerError ?? ((error) => console.error('vigil store listener failed', error));
    this.onNotice =
      options.onNotice ?? ((message, details) => console.error(`vigil: ${message}`, JSON.stringify(details)));
  }

  /** Transactions committed since start, each one fsync: writes divided by this is the mean group size. */
  get commits(): number {
    return this.committed;
  }

  /** The database file. */
  get file(): string {
    return join(this.dataDir, DATABASE_FILE);
  }

  /**
   * Opens the database, taking it for this process (`VIGIL_DATA_DIR_LOCKED` at once when another
   * holds it), checks it (`VIGIL_DATA_DIR_DAMAGED`), imports a journal-store data directory on first
   * start, and loads the state.
   */
  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    const db = EmbeddedDb.open(this.file, this.dataDir, this.limits);
    try {
      if (!db.initialized) await this.initialize(db);
      this.state = new EmbeddedState(this.limits);
      this.state.load(db.load());
    } catch (error) {
      db.close();
      throw error;
    }
    this.db = db;
    this.open = true;
  }

  /** Creates the store in a new database, importing the journal store's files when the directory has them. */
  private async initialize(db: EmbeddedDb): Promise<void> {
    const legacy = await readLegacyDataDir(this.dataDir, this.limits);
    if (!legacy) {
      db.initialize(undefined, 'new');
      return;
    }
    if (legacy.droppedTail)
      this.onNotice(
        'left out the torn last line of the journal (a write cut off by a crash, never acknowledged)',
        {
          ...legacy.droppedTail,
        },
      );
    db.initialize(legacy.state, 'migrated from the journal store');
    const kept = await retireLegacyFiles(this.dataDir);
    this.onNotice(`migrated the journal store's data directory into ${this.file}`, {
      records: legacy.records,
      envs: Object.keys(legacy.state.envs).length,
      kept,
    });
  }

  async close(): Promise<void> {
    if (!this.db) return;
    this.flush();
    this.open = false;
    this.db.close();
    this.db = undefined;
    this.bus.wakeAll();
  }

  /** Copies the database, consistent at one instant, to `destination` (SQLite's online backup). */
  async backup(destination: string): Promise<void> {
    this.ensureOpen();
    // Writes of this tick are applied in memory already; commit them first so the copy has them.
    this.flush();
    await this.db!.backup(destination);
  }

  async ping(): Promise<void> {
    this.ensureOpen();
  }

  async listEnvs(): Promise<string[]> {
    this.ensureOpen();
    return [...this.state.envs.keys()].sort();
  }

  async snapshot(env: string): Promise<EnvSnapshot> {
    this.ensureOpen();
    const state = this.state.envs.get(env);
    return {
      env,
      revision: state?.revision ?? 0,
      flags: state ? [...state.flags.values()] : [],
      segments: state ? [...state.segments.values()] : [],
    };
  }

  async getFlag(env: string, key: string): Promise<Flag | undefined> {
    this.ensureOpen();
    return this.state.envs.get(env)?.flags.get(key);
  }

  putFlag(env: string, flag: Flag, expect: Expectation, meta: WriteMeta): Promise<Flag> {
    return this.write(async () => {
      this.checkClaim(meta.idempotency);
      const previous = this.state.envs.get(env)?.flags.get(flag.key);
      checkExpectation(env, flag.key, previous?.version, expect);
      const revision = this.revision(env) + 1;
      const at = new Date().toISOString();
      const stored = storedFlag(structuredClone(flag), previous, revision, at);
      const action = previous ? 'flag.update' : 'flag.create';
      await this.commit(
        { ...emptyChange(env, revision), flags: [stored] },
        meta,
        action,
        flag.key,
        at,
        previous,
        stored,
      );
      return stored;
    });
  }

  deleteFlag(env: string, key: string, expect: Expectation, meta: WriteMeta): Promise<void> {
    return this.write(async () => {
      this.checkClaim(meta.idempotency);
      const previous = this.state.envs.get(env)?.flags.get(key);
      checkExpectation(env, key, previous?.version, expect);
      if (!previous) throw new VigilError('VIGIL_NOT_FOUND', `flag ${key} not found in ${env}`);
      const revision = this.revision(env) + 1;
      const change = emptyChange(env, revision);
      change.deleted.flags.push(key);
      await this.commit(change, meta, 'flag.delete', key, new Date().toISOString(), previous, undefined);
    });
  }

  setKill(env: string, key: string, input: KillInput): Promise<Flag> {
    return this.write(async () => {
      this.checkClaim(input.idempotency);
      const previous = this.state.envs.get(env)?.flags.get(key);
      if (!previous) throw new VigilError('VIGIL_NOT_FOUND', `flag ${key} not found in ${env}`);
      if (previous.killed === input.killed) {
        const idem = this.claimRecord(input.idempotency, previous);
        if (idem) await this.persist({ op: 'idempotency', idem });
        return previous;
      }
      const revision = this.revision(env) + 1;
      const at = input.at ?? new Date().toISOString();
      const stored = killedFlag(previous, input.killed, revision, input.actor, at, input.reason);
      const action = input.killed ? 'flag.kill' : 'flag.revive';
      await this.commit(
        { ...emptyChange(env, revision), flags: [stored] },
        input,
        action,
        key,
        at,
        previous,
        stored,
      );
      return stored;
    });
  }

  putSchedule(env: string, key: string, input: ScheduleInput, expect: Expectation): Promise<Flag> {
    return this.write(async () => {
      this.checkClaim(input.idempotency);
      const previous = this.state.envs.get(env)?.flags.get(key);
      if (!previous) throw new VigilError('VIGIL_NOT_FOUND', `flag ${key} not found in ${env}`);
      checkExpectation(env, key, previous.version, expect);
      const revision = this.revision(env) + 1;
      const stored = scheduledFlag(
        previous,
        input.schedule && structuredClone(input.schedule),
        input.fallthrough && structuredClone(input.fallthrough),
        revision,
      );
      await this.commit(
        { ...emptyChange(env, revision), flags: [stored] },
        input,
        'flag.schedule',
        key,
        new Date().toISOString(),
        previous,
        stored,
      );
      return stored;
    });
  }

  putSegment(env: string, segment: Segment, meta: WriteMeta, expect?: Expectation): Promise<Segment> {
    return this.write(async () => {
      this.checkClaim(meta.idempotency);
      const previous = this.state.envs.get(env)?.segments.get(segment.key);
      checkExpectation(env, segment.key, previous?.version, expect, 'segment');
      const revision = this.revision(env) + 1;
      const at = new Date().toISOString();
      const stored: Segment = { ...structuredClone(segment), version: revision, updatedAt: at };
      const change = { ...emptyChange(env, revision), segments: [stored] };
      await this.commit(change, meta, 'segment.upsert', segment.key, at, previous, stored);
      return stored;
    });
  }

  deleteSegment(env: string, key: string, meta: WriteMeta): Promise<void> {
    return this.write(async () => {
      this.checkClaim(meta.idempotency);
      const previous = this.state.envs.get(env)?.segments.get(key);
      if (!previous) throw new VigilError('VIGIL_NOT_FOUND', `segment ${key} not found in ${env}`);
      const change = emptyChange(env, this.revision(env) + 1);
      change.deleted.segments.push(key);
      await this.commit(change, meta, 'segment.delete', key, new Date().toISOString(), previous, undefined);
    });
  }

  async changesSince(env: string, revision: number): Promise<Change[] | undefined> {
    this.ensureOpen();
    const state = this.state.envs.get(env);
    const current = state?.revision ?? 0;
    // A client ahead of the store holds state the store never had (e.g. a wiped data dir): resync it.
    if (revision > current) return undefined;
    if (revision === current) return [];
    const log = state?.log;
    const first = log?.at(0)?.revision;
    if (first === undefined || first > revision + 1) return undefined;
    return log!.slice(revision + 1 - first);
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async audit(env: string, query: AuditQuery): Promise<AuditEntry[]> {
    this.ensureOpen();
    const entries = this.state.envs.get(env)?.audit;
    if (!entries) return [];
    const before = query.before === undefined ? Number.POSITIVE_INFINITY : auditRevision(query.before);
    const out: AuditEntry[] = [];
    for (let i = entries.length - 1; i >= 0 && out.length < query.limit; i--) {
      const entry = entries.at(i)!;
      if ((entry.revision ?? 0) >= before) continue;
      if (query.target !== undefined && entry.target !== query.target) continue;
      out.push(entry);
    }
    return out;
  }

  async getIdempotency(id: string): Promise<IdempotencyRecord | undefined> {
    this.ensureOpen();
    const stored = this.state.idempotencyRecord(id);
    if (stored === undefined) return undefined;
    const { id: _id, expiresAt: _expiresAt, ...record } = stored;
    return record;
  }

  createToken(token: StoredToken, idempotency?: IdempotencyClaim): Promise<void> {
    return this.write(async () => {
      this.checkClaim(idempotency);
      const taken = [...this.state.tokens.values()].some(
        (t) => t.id === token.id || t.secretHash === token.secretHash,
      );
      if (taken)
        throw new VigilError('VIGIL_ALREADY_EXISTS', `token ${token.id} or its secret already exists`);
      const { secretHash: _secret, ...info } = token;
      const idem = this.claimRecord(idempotency, info);
      await this.persist({ op: 'token.put', token: structuredClone(token), ...(idem ? { idem } : {}) });
    });
  }

  async findToken(secretHash: string): Promise<StoredToken | undefined> {
    this.ensureOpen();
    for (const token of this.state.tokens.values()) if (token.secretHash === secretHash) return token;
    return undefined;
  }

  async listTokens(): Promise<TokenInfo[]> {
    this.ensureOpen();
    return [...this.state.tokens.values()]
      .map(({ secretHash: _secret, ...info }) => info)
      .sort((a, b) => compare(a.createdAt, b.createdAt) || compare(a.id, b.id));
  }

  deleteToken(id: string, idempotency?: IdempotencyClaim): Promise<boolean> {
    return this.write(async () => {
      this.checkClaim(idempotency);
      if (!this.state.tokens.has(id)) return false;
      const idem = this.claimRecord(idempotency, undefined);
      await this.persist({ op: 'token.delete', id, ...(idem ? { idem } : {}) });
      return true;
    });
  }

  async publishMetrics(summaries: CohortSummary[]): Promise<void> {
    this.ensureOpen();
    this.bus.publish(structuredClone(summaries));
  }

  async readMetrics(
    group: string,
    consumer: string,
    opts: { count: number; blockMs: number; claimIdleMs: number },
  ): Promise<MetricsEntry[]> {
    this.ensureOpen();
    return this.bus.read(group, consumer, opts);
  }

  async ackMetrics(group: string, ids: string[]): Promise<void> {
    this.ensureOpen();
    this.bus.ack(group, ids);
  }

  putIncident(incident: Incident): Promise<void> {
    return this.write(() => this.persist({ op: 'incident.put', incident: structuredClone(incident) }));
  }

  async getIncident(id: string): Promise<Incident | undefined> {
    this.ensureOpen();
    return this.state.incidents.get(id);
  }

  updateIncident(
    id: string,
    update: (incident: Incident) => Incident | undefined,
    idempotency?: IdempotencyClaim,
  ): Promise<Incident | undefined> {
    return this.write(async () => {
      this.checkClaim(idempotency);
      const current = this.state.incidents.get(id);
      if (!current) return undefined;
      const next = update(structuredClone(current));
      if (next === undefined) return current;
      const incident = structuredClone(next);
      const idem = this.claimRecord(idempotency, incident);
      await this.persist({ op: 'incident.put', incident, ...(idem ? { idem } : {}) });
      return this.state.incidents.get(id);
    });
  }

  async listIncidents(query: {
    env?: string;
    status?: Incident['status'];
    limit: number;
  }): Promise<Incident[]> {
    this.ensureOpen();
    return [...this.state.incidents.values()]
      .filter(
        (i) =>
          (query.env === undefined || i.env === query.env) &&
          (query.status === undefined || i.status === query.status),
      )
      .sort(newestIncidentFirst)
      .slice(0, query.limit);
  }

  claimEpisode(key: string, incidentId: string): Promise<boolean> {
    return this.write(async () => {
      if (this.state.episodes.has(key)) return false;
      await this.persist({ op: 'episode.claim', key, incidentId });
      return true;
    });
  }

  async getEpisode(key: string): Promise<Episode | undefined> {
    this.ensureOpen();
    const incidentId = this.state.episodes.get(key);
    if (incidentId === undefined) return undefined;
    const resolvedAt = this.state.resolvedEpisodes.get(key);
    return resolvedAt === undefined ? { incidentId } : { incidentId, resolvedAt };
  }

  resolveEpisode(key: string, at: string): Promise<void> {
    return this.write(async () => {
      if (!this.state.episodes.has(key) || this.state.resolvedEpisodes.has(key)) return;
      await this.persist({ op: 'episode.resolve', key, at });
    });
  }

  async putVerdict(verdict: Verdict, ttlMs: number): Promise<void> {
    this.ensureOpen();
    this.verdicts.set(`${verdict.env}\n${verdict.flag}`, {
      verdict: structuredClone(verdict),
      expiresAt: Date.now() + ttlMs,
    });
  }

  async getVerdict(env: string, flag: string): Promise<Verdict | undefined> {
    this.ensureOpen();
    const id = `${env}\n${flag}`;
    const held = this.verdicts.get(id);
    if (held === undefined) return undefined;
    if (held.expiresAt <= Date.now()) {
      this.verdicts.delete(id);
      return undefined;
    }
    return structuredClone(held.verdict);
  }

  enqueueOutbox(item: OutboxItem): Promise<void> {
    return this.write(async () => {
      // Enqueueing again (a retried step) keeps the item's progress.
      if (this.state.outbox.has(item.id)) return;
      await this.persist({ op: 'outbox.put', item: structuredClone(item) });
    });
  }

  async dueOutbox(now: number, limit: number): Promise<OutboxItem[]> {
    this.ensureOpen();
    return [...this.state.outbox.values()]
      .filter((item) => item.notBefore <= now)
      .sort((a, b) => a.notBefore - b.notBefore || compare(a.id, b.id))
      .slice(0, limit);
  }

  updateOutbox(item: OutboxItem): Promise<void> {
    return this.write(async () => {
      // A removed (delivered) item stays removed.
      if (!this.state.outbox.has(item.id)) return;
      await this.persist({ op: 'outbox.put', item: structuredClone(item) });
    });
  }

  removeOutbox(id: string): Promise<void> {
    return this.write(async () => {
      if (this.state.outbox.has(id)) await this.persist({ op: 'outbox.delete', id });
    });
  }

  async acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    this.ensureOpen();
    const now = Date.now();
    const held = this.locks.get(name);
    if (held && held.owner !== owner && held.expiresAt > now) return false;
    this.locks.set(name, { owner, expiresAt: now + ttlMs });
    return true;
  }

  async releaseLock(name: string, owner: string): Promise<void> {
    this.ensureOpen();
    if (this.locks.get(name)?.owner === owner) this.locks.delete(name);
  }

  /** Refuses a write whose claim id is recorded: a replay of the same request, or another request's key. */
  private checkClaim(claim: IdempotencyClaim | undefined): void {
    if (!claim) return;
    const held = this.state.idempotencyRecord(claim.id);
    if (!held) return;
    if (held.fingerprint !== claim.fingerprint)
      throw new VigilError(
        'VIGIL_IDEMPOTENCY_KEY_REUSED',
        'this Idempotency-Key was used for another request',
      );
    const { id: _id, expiresAt: _expiresAt, ...record } = held;
    throw new IdempotentReplay(record);
  }

  /** The record a claimed write commits with itself; `result` is what the write resolves with. */
  private claimRecord(claim: IdempotencyClaim | undefined, result: unknown): StoredIdempotency | undefined {
    if (!claim) return undefined;
    const record: StoredIdempotency = {
      id: claim.id,
      fingerprint: claim.fingerprint,
      status: claim.status,
      result: result === undefined ? undefined : structuredClone(result),
      expiresAt: Date.now() + this.idempotencyTtlMs,
    };
    if (record.result === undefined) delete record.result;
    if (claim.attachment !== undefined) record.attachment = claim.attachment;
    return record;
  }

  private revision(env: string): number {
    return this.state.envs.get(env)?.revision ?? 0;
  }

  /** Journals a flag/segment change with its audit entry, applies it and tells subscribers. */
  private async commit(
    change: Change,
    meta: WriteMeta,
    action: AuditEntry['action'],
    target: string,
    at: string,
    before: Flag | Segment | undefined,
    after: Flag | Segment | undefined,
  ): Promise<void> {
    const { env, revision } = change;
    const audit = auditEntry({
      env,
      revision,
      at,
      actor: meta.actor,
      action,
      target,
      reason: meta.reason,
      before,
      after,
    });
    const idem = this.claimRecord(meta.idempotency, after);
    await this.persist({ op: 'commit', change, audit, ...(idem ? { idem } : {}) }, change);
  }

  /**
   * Applies a record to the state now and adds it to this tick's group commit; resolves once the
   * group's transaction committed. Everything before the first `await` of a write runs before any
   * other write, which is what makes each write's checks and effects atomic.
   */
  private persist(record: JournalRecord, change?: Change): Promise<void> {
    this.state.apply(record);
    let pending = this.pending;
    if (!pending) {
      pending = { records: [], changes: [], settle: [] };
      this.pending = pending;
      // Writes arriving in the same tick (concurrent requests) share one transaction and one fsync.
      setImmediate(() => this.flush());
    }
    pending.records.push(record);
    if (change) pending.changes.push(change);
    return new Promise((resolve, reject) => pending.settle.push({ resolve, reject }));
  }

  /** Commits the pending group, then resolves its writes and tells subscribers, in revision order. */
  private flush(): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    try {
      this.db!.commit(pending.records);
      this.committed += 1;
    } catch (cause) {
      // Rolled back: the memory holds writes the database does not. Reload it from the database.
      this.reload();
      const error = new VigilError(
        'VIGIL_STORE_UNAVAILABLE',
        `could not commit to the embedded store's database ${this.file}`,
        undefined,
        { cause },
      );
      for (const { reject } of pending.settle) reject(error);
      return;
    }
    for (const change of pending.changes) {
      for (const listener of [...this.listeners]) {
        try {
          listener(change);
        } catch (error) {
          this.onListenerError(error);
        }
      }
    }
    for (const { resolve } of pending.settle) resolve();
  }

  /** Rebuilds the memory from the database; closes the store when even that fails. */
  private reload(): void {
    try {
      const state = new EmbeddedState(this.limits);
      state.load(this.db!.load());
      this.state = state;
    } catch (error) {
      this.open = false;
      this.onListenerError(error);
    }
  }

  /** Runs a write once the store is open; its own checks and `persist` make it atomic (see `persist`). */
  private write<T>(fn: () => Promise<T>): Promise<T> {
    try {
      this.ensureOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    return fn();
  }

  private ensureOpen(): void {
    if (!this.open) throw new VigilError('VIGIL_STORE_UNAVAILABLE', 'the embedded store is not open');
  }
}

function newestIncidentFirst(a: Incident, b: Incident): number {
  return Date.parse(b.detectedAt) - Date.parse(a.detectedAt) || compare(b.id, a.id);
}

/** Orders strings by code unit, as Redis orders members of equal score. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
