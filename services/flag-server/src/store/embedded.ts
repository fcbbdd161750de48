import { mkdir } from 'node:fs/promises';
import type { AuditEntry, CohortSummary, Flag, Incident, Segment, TokenInfo, Verdict } from '@vigil/proto';
import { VigilError } from '../errors.js';
import { lockDataDir } from './data-dir-lock.js';
import {
  EmbeddedState,
  type JournalRecord,
  type SavedState,
  type StoredIdempotency,
} from './embedded-state.js';
import { Journal } from './journal.js';
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
  /** Directory holding `snapshot.json` and `journal.jsonl`; created when missing. */
  dataDir: string;
  /** Changes kept per environment for `changesSince` (default 10,000). */
  changeLogLimit?: number;
  /** Audit entries kept per environment (default 10,000). */
  auditLimit?: number;
  /** Metrics summaries kept on the bus (default 100,000). */
  metricsLimit?: number;
  /** Journal records after which the state is compacted into the snapshot (default 1,000). */
  compactEvery?: number;
  /** Called when a subscriber throws; the other subscribers still get the change. */
  onListenerError?: (error: unknown) => void;
  /**
   * Called when start-up finds the data directory locked by another process and waits, in case that
   * process died (see `lockDataDir`); and when the lock is lost later, after which every call fails
   * with `VIGIL_STORE_UNAVAILABLE`.
   */
  onLockEvent?: (event: { kind: 'waiting' } | { kind: 'lost'; error: Error }) => void;
  /** How long the data directory's lock outlives a process that died without releasing it (default 10 s). */
  lockStaleMs?: number;
  /** How long idempotency records are kept (default 24 h). */
  idempotencyTtlMs?: number;
}

/**
 * The store for a single process with nothing installed. Every write is journaled and fsynced before
 * it resolves, then applied in memory and handed to subscribers synchronously, in revision order.
 * Writes run one at a time, which is what makes version check, revision and logs atomic.
 * Locks, the metrics bus and the guardian's verdicts live in memory only: all three are about live
 * processes (verdicts are recomputed every second and expire anyway).
 */
export class EmbeddedStore implements Store {
  readonly kind = 'embedded' as const;
  private readonly journal: Journal<SavedState, JournalRecord>;
  private readonly state: EmbeddedState;
  private readonly bus: MetricsBus;
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();
  private readonly verdicts = new Map<string, { verdict: Verdict; expiresAt: number }>();
  private readonly compactEvery: number;
  private readonly onListenerError: (error: unknown) => void;
  private readonly onLockEvent: NonNullable<EmbeddedStoreOptions['onLockEvent']>;
  private readonly dataDir: string;
  private readonly lockStaleMs: number | undefined;
  private readonly idempotencyTtlMs: number;
  private unlock: (() => Promise<void>) | undefined;
  private writes: Promise<unknown> = Promise.resolve();
  private open = false;

  constructor(options: EmbeddedStoreOptions) {
    this.dataDir = options.dataDir;
    this.lockStaleMs = options.lockStaleMs;
    this.idempotencyTtlMs = options.idempotencyTtlMs ?? 86_400_000;
    this.journal = new Journal(options.dataDir);
    this.state = new EmbeddedState({
      changeLog: options.changeLogLimit ?? 10_000,
      audit: options.auditLimit ?? 10_000,
    });
    this.bus = new MetricsBus(options.metricsLimit ?? 100_000);
    this.compactEvery = options.compactEvery ?? 1_000;
    this.onListenerError =
      options.onListenerError ?? ((error) => console.error('vigil store listener failed', error));
    this.onLockEvent =
      options.onLockEvent ??
      ((event) => {
        if (event.kind === 'waiting')
          console.error(`vigil: ${this.dataDir} is locked by another process; waiting in case it died`);
        else console.error(`vigil: lost the lock on ${this.dataDir}; refusing further writes`, event.error);
      });
  }

  async start(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    this.unlock = await lockDataDir(
      this.dataDir,
      (error) => {
        // Another process may be writing the journal now: stop acknowledging anything.
        this.open = false;
        this.onLockEvent({ kind: 'lost', error });
      },
      () => this.onLockEvent({ kind: 'waiting' }),
      this.lockStaleMs,
    );
    try {
      const { snapshot, records } = await this.journal.open();
      if (snapshot) this.state.load(snapshot);
      for (const record of records) this.state.apply(record);
      if (records.length > 0) await this.journal.compact(this.state.save());
    } catch (error) {
      await this.releaseDataDir();
      throw error;
    }
    this.open = true;
  }

  async close(): Promise<void> {
    const closing = this.writes.then(async () => {
      // Not open: never started, closed already, or its lock was lost (another process may own the files now).
      if (this.open) {
        this.open = false;
        if (this.journal.pending > 0) await this.journal.compact(this.state.save());
      }
      await this.journal.close();
      await this.releaseDataDir();
    });
    this.writes = closing.catch(() => undefined);
    await closing;
    this.bus.wakeAll();
  }

  private async releaseDataDir(): Promise<void> {
    const unlock = this.unlock;
    this.unlock = undefined;
    // Already gone when it was lost (compromised): nothing left to release.
    await unlock?.().catch(() => undefined);
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    const log = state?.log ?? [];
    const first = log[0]?.revision;
    if (first === undefined || first > revision + 1) return undefined;
    return log.slice(revision + 1 - first);
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async audit(env: string, query: AuditQuery): Promise<AuditEntry[]> {
    this.ensureOpen();
    const entries = this.state.envs.get(env)?.audit ?? [];
    const before = query.before === undefined ? Number.POSITIVE_INFINITY : auditRevision(query.before);
    const out: AuditEntry[] = [];
    for (let i = entries.length - 1; i >= 0 && out.length < query.limit; i--) {
      const entry = entries[i]!;
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(() => this.persist({ op: 'incident.put', incident: structuredClone(incident) }));
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
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
    return this.exclusive(async () => {
      // A removed (delivered) item stays removed.
      if (!this.state.outbox.has(item.id)) return;
      await this.persist({ op: 'outbox.put', item: structuredClone(item) });
    });
  }

  removeOutbox(id: string): Promise<void> {
    return this.exclusive(async () => {
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

  /** The record a claimed write journals with itself; `result` is what the write resolves with. */
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
    await this.persist({ op: 'commit', change, audit, ...(idem ? { idem } : {}) });
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /** Makes a record durable, then applies it; compacts when the journal has grown. */
  private async persist(record: JournalRecord): Promise<void> {
    try {
      await this.journal.append(record);
    } catch (error) {
      throw new VigilError(
        'VIGIL_STORE_UNAVAILABLE',
        'could not write the embedded store journal',
        undefined,
        {
          cause: error,
        },
      );
    }
    this.state.apply(record);
    if (this.journal.pending >= this.compactEvery) {
      // The record is already durable in the journal; a failed compaction is retried next time.
      await this.journal.compact(this.state.save()).catch(() => undefined);
    }
  }

  /** Runs writes one at a time so each sees the state the previous one left. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writes.then(() => {
      this.ensureOpen();
      return fn();
    });
    this.writes = run.catch(() => undefined);
    return run;
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
