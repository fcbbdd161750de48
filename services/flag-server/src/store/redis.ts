import type { AuditEntry, CohortSummary, Flag, Incident, Segment, TokenInfo, Verdict } from '@vigil/proto';
import { Redis, type RedisOptions } from 'ioredis';
import { type ErrorCode, VigilError } from '../errors.js';
import { auditRevision, ownedFields, splitFlag } from './records.js';
import {
  decodeAudit,
  decodeChange,
  decodeRecord,
  entryRevision,
  fieldsOf,
  type StreamEntry,
} from './redis-codec.js';
import { type RedisKeys, redisKeys } from './redis-keys.js';
import { defineScripts, type VigilScripts } from './redis-scripts.js';
import { ChangeTailer } from './redis-tailer.js';
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

export interface RedisStoreOptions {
  /** `redis://` URL; default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Extra ioredis options (TLS, Sentinel, password...). */
  redis?: RedisOptions;
  /** Prefix of every key (default `vigil:`), so several deployments or tests can share a server. */
  prefix?: string;
  /** Changes kept per environment for `changesSince` (default 10,000; trimmed approximately). */
  changeLogLimit?: number;
  /** Audit entries kept per environment (default 100,000; trimmed approximately). */
  auditLimit?: number;
  /** Entries kept in the global change stream replicas tail (default 10,000). */
  changeStreamLimit?: number;
  /** Summaries kept on the metrics stream (default 100,000). */
  metricsLimit?: number;
  /**
   * A command not answered within this many ms fails (default 1,500): a read or a refused write with
   * VIGIL_STORE_UNAVAILABLE, a write that was sent with VIGIL_WRITE_OUTCOME_UNKNOWN. Once a command has
   * timed out, every call fails at once with VIGIL_STORE_UNAVAILABLE (nothing is sent) until Redis
   * answers a probe again, so a request making several calls still fails within one timeout.
   */
  commandTimeoutMs?: number;
  /** How long idempotency records are kept (default 24 h). */
  idempotencyTtlMs?: number;
  /** Called when a subscriber throws; the other subscribers still get the change. */
  onListenerError?: (error: unknown) => void;
}

/** Reply errors that mean "not now" rather than "wrong request". */
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|OOM)\b/;

/** ioredis's refusal of a command it did not write to the socket. */
const NOT_SENT = /^Stream isn't writeable/;

/**
 * The production store. Each flag/segment write and kill is one Lua script (see redis-scripts.ts),
 * so nothing is ever half-written. Changes reach subscribers through a tailer of the global change
 * stream — also this process's own, so every replica sees one order.
 *
 * Commands fail fast when Redis is away: no offline queue, no retries, a command timeout, and no
 * resending of unanswered commands after a reconnect (a resent write could apply twice). A call is
 * not sent at all while the connection is not ready or a command is overdue (see `commandTimeoutMs`):
 * that is what lets a write's refusal say "not applied" (VIGIL_STORE_UNAVAILABLE); a write that was
 * sent and got no reply says "outcome unknown" (VIGIL_WRITE_OUTCOME_UNKNOWN).
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  private readonly redis: Redis & VigilScripts;
  private readonly keys: RedisKeys;
  private readonly tailer: ChangeTailer;
  private readonly listeners = new Set<(change: Change) => void>();
  /** One connection per metrics consumer: a blocking read holds its connection. */
  private readonly readers = new Map<string, Redis>();
  private readonly groups = new Set<string>();
  private readonly limits: { changeLog: number; audit: number; changeStream: number; metrics: number };
  private readonly onListenerError: (error: unknown) => void;
  private readonly idempotencyTtlMs: number;
  /** Set once a command timed out, until Redis answers the probe (or a new connection is ready). */
  private overdue = false;
  private closing = false;

  constructor(options: RedisStoreOptions = {}) {
    const base: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: options.commandTimeoutMs ?? 1_500,
      connectTimeout: 2_000,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
      ...options.redis,
    };
    this.redis = defineScripts(new Redis(options.url ?? 'redis://127.0.0.1:6379', base));
    // Swallowed here because every command reports its own failure; without a listener ioredis logs.
    this.redis.on('error', () => {});
    // A new connection has no unanswered commands.
    this.redis.on('ready', () => {
      this.overdue = false;
    });
    this.idempotencyTtlMs = options.idempotencyTtlMs ?? 86_400_000;
    this.keys = redisKeys(options.prefix ?? 'vigil:');
    this.limits = {
      changeLog: options.changeLogLimit ?? 10_000,
      audit: options.auditLimit ?? 100_000,
      changeStream: options.changeStreamLimit ?? 10_000,
      metrics: options.metricsLimit ?? 100_000,
    };
    this.onListenerError =
      options.onListenerError ?? ((error) => console.error('vigil store listener failed', error));
    this.tailer = new ChangeTailer(this.blockingConnection(), this.keys, this, (change) => this.emit(change));
  }

  async start(): Promise<void> {
    await this.redis.connect().catch((error: unknown) => Promise.reject(toStoreError(error, 'read')));
    await this.tailer.start().catch((error: unknown) => Promise.reject(toStoreError(error, 'read')));
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.tailer.stop();
    for (const reader of this.readers.values()) reader.disconnect();
    this.readers.clear();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  async ping(): Promise<void> {
    await this.call(() => this.redis.ping());
  }

  async listEnvs(): Promise<string[]> {
    return (await this.call(() => this.redis.smembers(this.keys.envs))).sort();
  }

  async snapshot(env: string): Promise<EnvSnapshot> {
    const k = this.keys.env(env);
    const [rev, flags, segments] = await this.transaction<
      [string | null, Record<string, string>, Record<string, string>]
    >((m) => m.get(k.rev).hgetall(k.flags).hgetall(k.segments));
    return {
      env,
      revision: Number(rev ?? 0),
      flags: Object.values(flags).map((raw) => decodeRecord<Flag>(raw)),
      segments: Object.values(segments).map((raw) => decodeRecord<Segment>(raw)),
    };
  }

  async getFlag(env: string, key: string): Promise<Flag | undefined> {
    const raw = await this.call(() => this.redis.hget(this.keys.env(env).flags, key));
    return raw === null ? undefined : decodeRecord<Flag>(raw);
  }

  async putFlag(env: string, flag: Flag, expect: Expectation, meta: WriteMeta): Promise<Flag> {
    const body = JSON.stringify(splitFlag(flag).body);
    const stored = await this.write('flag.put', env, flag.key, meta, {
      expect,
      body,
      init: JSON.stringify(ownedFields(flag)),
    });
    return decodeRecord<Flag>(stored);
  }

  async deleteFlag(env: string, key: string, expect: Expectation, meta: WriteMeta): Promise<void> {
    await this.write('flag.delete', env, key, meta, { expect });
  }

  async setKill(env: string, key: string, input: KillInput): Promise<Flag> {
    const stored = await this.write('flag.kill', env, key, input, {
      body: input.killed ? '1' : '0',
      at: input.at,
    });
    return decodeRecord<Flag>(stored);
  }

  async putSchedule(env: string, key: string, input: ScheduleInput, expect: Expectation): Promise<Flag> {
    let body = '';
    let guard = expect;
    if (input.fallthrough !== undefined) {
      // The script never parses bodies (see redis-scripts.ts): build the new one here, and make the
      // write conditional on the version it was built from.
      const current = await this.getFlag(env, key);
      if (!current) throw new VigilError('VIGIL_NOT_FOUND', `flag ${key} not found in ${env}`);
      body = JSON.stringify(splitFlag({ ...current, fallthrough: input.fallthrough }).body);
      guard = expect ?? { version: current.version };
    }
    const stored = await this.write('flag.schedule', env, key, input, {
      expect: guard,
      body,
      init: input.schedule === undefined ? '' : JSON.stringify(input.schedule),
    });
    return decodeRecord<Flag>(stored);
  }

  async putSegment(env: string, segment: Segment, meta: WriteMeta, expect?: Expectation): Promise<Segment> {
    const { version: _version, updatedAt: _updatedAt, ...body } = segment;
    return decodeRecord<Segment>(
      await this.write('segment.put', env, segment.key, meta, { expect, body: JSON.stringify(body) }),
    );
  }

  async deleteSegment(env: string, key: string, meta: WriteMeta): Promise<void> {
    await this.write('segment.delete', env, key, meta, {});
  }

  async changesSince(env: string, revision: number): Promise<Change[] | undefined> {
    const k = this.keys.env(env);
    const [rev, first, entries] = await this.transaction<[string | null, StreamEntry[], StreamEntry[]]>((m) =>
      m.get(k.rev).xrange(k.log, '-', '+', 'COUNT', 1).xrange(k.log, `(${revision}-1`, '+'),
    );
    const current = Number(rev ?? 0);
    // A client ahead of the store holds state the store never had (e.g. Redis lost data): resync it.
    if (revision > current) return undefined;
    if (revision === current) return [];
    const oldest = first[0] ? entryRevision(first[0][0]) : undefined;
    if (oldest === undefined || oldest > revision + 1) return undefined;
    return entries.map(([id, fields]) => {
      const f = fieldsOf(fields);
      return decodeChange(env, entryRevision(id), f.k, f.v);
    });
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async audit(env: string, query: AuditQuery): Promise<AuditEntry[]> {
    const key = this.keys.env(env).audit;
    let end = query.before === undefined ? '+' : `(${auditRevision(query.before)}-1`;
    // Filtering by target discards entries, so read in larger pages then.
    const page = query.target === undefined ? query.limit : Math.max(query.limit * 4, 200);
    const out: AuditEntry[] = [];
    while (out.length < query.limit) {
      const entries = (await this.call(() =>
        this.redis.xrevrange(key, end, '-', 'COUNT', page),
      )) as StreamEntry[];
      for (const entry of entries) {
        const decoded = decodeAudit(env, entry);
        if (query.target !== undefined && decoded.target !== query.target) continue;
        out.push(decoded);
        if (out.length === query.limit) break;
      }
      const last = entries[entries.length - 1];
      if (!last || entries.length < page) break;
      end = `(${last[0]}`;
    }
    return out;
  }

  async getIdempotency(id: string): Promise<IdempotencyRecord | undefined> {
    const raw = await this.call(() => this.redis.hgetall(this.keys.idempotency(id)));
    if (raw.f === undefined) return undefined;
    const result =
      raw.k === 'record' ? decodeRecord(raw.r ?? '') : raw.k === 'json' ? JSON.parse(raw.r ?? '') : undefined;
    const record: IdempotencyRecord = { fingerprint: raw.f, status: Number(raw.s), result };
    if (raw.a) record.attachment = raw.a;
    return record;
  }

  async createToken(token: StoredToken, idempotency?: IdempotencyClaim): Promise<void> {
    const { tokens, tokenSecrets } = this.keys;
    const { secretHash: _secret, ...info } = token;
    const created = await this.call(
      () =>
        this.redis.vigilTokenCreate(
          tokens,
          tokenSecrets,
          this.idempotencyKey(idempotency),
          token.id,
          token.secretHash,
          JSON.stringify(token),
          ...this.claimArgs(idempotency),
          JSON.stringify(info),
        ),
      'write',
    );
    await this.settleClaim(created, idempotency);
    if (created !== 1)
      throw new VigilError('VIGIL_ALREADY_EXISTS', `token ${token.id} or its secret already exists`);
  }

  async findToken(secretHash: string): Promise<StoredToken | undefined> {
    const { tokens, tokenSecrets } = this.keys;
    const raw = await this.call(() => this.redis.vigilTokenFind(tokens, tokenSecrets, secretHash));
    return raw === null ? undefined : (JSON.parse(raw) as StoredToken);
  }

  async listTokens(): Promise<TokenInfo[]> {
    const all = await this.call(() => this.redis.hvals(this.keys.tokens));
    return all
      .map((raw) => {
        const { secretHash: _secret, ...info } = JSON.parse(raw) as StoredToken;
        return info;
      })
      .sort((a, b) => compare(a.createdAt, b.createdAt) || compare(a.id, b.id));
  }

  async deleteToken(id: string, idempotency?: IdempotencyClaim): Promise<boolean> {
    const { tokens, tokenSecrets } = this.keys;
    const deleted = await this.call(
      () =>
        this.redis.vigilTokenDelete(
          tokens,
          tokenSecrets,
          this.idempotencyKey(idempotency),
          id,
          ...this.claimArgs(idempotency),
        ),
      'write',
    );
    await this.settleClaim(deleted, idempotency);
    return deleted === 1;
  }

  async publishMetrics(summaries: CohortSummary[]): Promise<void> {
    if (summaries.length === 0) return;
    await this.transaction((m) => {
      for (const summary of summaries) {
        m.xadd(this.keys.metrics, 'MAXLEN', '~', this.limits.metrics, '*', 's', JSON.stringify(summary));
      }
      return m;
    });
  }

  async readMetrics(
    group: string,
    consumer: string,
    opts: { count: number; blockMs: number; claimIdleMs: number },
  ): Promise<MetricsEntry[]> {
    try {
      return await this.readMetricsOnce(group, consumer, opts);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOGROUP'))) throw toStoreError(error);
      // The group vanished (Redis lost its data); make it again once.
      this.groups.delete(group);
      return await this.readMetricsOnce(group, consumer, opts).catch((e) => Promise.reject(toStoreError(e)));
    }
  }

  async ackMetrics(group: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.call(() => this.redis.xack(this.keys.metrics, group, ...ids));
  }

  async putIncident(incident: Incident): Promise<void> {
    await this.transaction((m) =>
      m
        .hset(this.keys.incidents, incident.id, JSON.stringify(incident))
        .zadd(this.keys.incidentTimes, Date.parse(incident.detectedAt), incident.id),
    );
  }

  async getIncident(id: string): Promise<Incident | undefined> {
    const raw = await this.call(() => this.redis.hget(this.keys.incidents, id));
    return raw === null ? undefined : (JSON.parse(raw) as Incident);
  }

  async updateIncident(
    id: string,
    update: (incident: Incident) => Incident | undefined,
    idempotency?: IdempotencyClaim,
  ): Promise<Incident | undefined> {
    const { incidents, incidentTimes } = this.keys;
    // Optimistic: read, change, compare-and-set; a concurrent writer makes us read again.
    for (let attempt = 0; attempt < 50; attempt++) {
      const raw = await this.call(() => this.redis.hget(incidents, id));
      if (raw === null) return undefined;
      const current = JSON.parse(raw) as Incident;
      const next = update(JSON.parse(raw) as Incident);
      if (next === undefined) return current;
      const json = JSON.stringify(next);
      const written = await this.call(
        () =>
          this.redis.vigilIncidentCas(
            incidents,
            incidentTimes,
            this.idempotencyKey(idempotency),
            id,
            raw,
            json,
            Date.parse(next.detectedAt),
            ...this.claimArgs(idempotency),
          ),
        'write',
      );
      await this.settleClaim(written, idempotency);
      if (written === 1) return JSON.parse(json) as Incident;
    }
    throw new VigilError('VIGIL_STORE_UNAVAILABLE', `incident ${id} kept changing; update abandoned`);
  }

  async listIncidents(query: {
    env?: string;
    status?: Incident['status'];
    limit: number;
  }): Promise<Incident[]> {
    const page = 200;
    const out: Incident[] = [];
    for (let start = 0; out.length < query.limit; start += page) {
      const ids = await this.call(() =>
        this.redis.zrevrange(this.keys.incidentTimes, start, start + page - 1),
      );
      if (ids.length === 0) break;
      const raws = await this.call(() => this.redis.hmget(this.keys.incidents, ...ids));
      for (const raw of raws) {
        if (raw === null) continue;
        const incident = JSON.parse(raw) as Incident;
        if (query.env !== undefined && incident.env !== query.env) continue;
        if (query.status !== undefined && incident.status !== query.status) continue;
        out.push(incident);
        if (out.length === query.limit) break;
      }
      if (ids.length < page) break;
    }
    return out;
  }

  async claimEpisode(key: string, incidentId: string): Promise<boolean> {
    return (await this.call(() => this.redis.set(this.keys.episode(key), incidentId, 'NX'))) === 'OK';
  }

  async getEpisode(key: string): Promise<Episode | undefined> {
    const [incidentId, resolvedAt] = await this.call(() =>
      this.redis.mget(this.keys.episode(key), this.keys.episodeResolved(key)),
    );
    if (incidentId === null || incidentId === undefined) return undefined;
    return resolvedAt === null || resolvedAt === undefined ? { incidentId } : { incidentId, resolvedAt };
  }

  async resolveEpisode(key: string, at: string): Promise<void> {
    const claimed = await this.call(() => this.redis.exists(this.keys.episode(key)));
    if (claimed === 1) await this.call(() => this.redis.set(this.keys.episodeResolved(key), at, 'NX'));
  }

  async putVerdict(verdict: Verdict, ttlMs: number): Promise<void> {
    const key = this.keys.verdict(verdict.env, verdict.flag);
    await this.call(() => this.redis.set(key, JSON.stringify(verdict), 'PX', Math.max(1, Math.round(ttlMs))));
  }

  async getVerdict(env: string, flag: string): Promise<Verdict | undefined> {
    const raw = await this.call(() => this.redis.get(this.keys.verdict(env, flag)));
    return raw === null ? undefined : (JSON.parse(raw) as Verdict);
  }

  async enqueueOutbox(item: OutboxItem): Promise<void> {
    await this.putOutbox(item, 'new');
  }

  async dueOutbox(now: number, limit: number): Promise<OutboxItem[]> {
    const ids = await this.call(() =>
      this.redis.zrangebyscore(this.keys.outboxDue, '-inf', now, 'LIMIT', 0, limit),
    );
    if (ids.length === 0) return [];
    const raws = await this.call(() => this.redis.hmget(this.keys.outbox, ...ids));
    return raws.filter((raw): raw is string => raw !== null).map((raw) => JSON.parse(raw) as OutboxItem);
  }

  async updateOutbox(item: OutboxItem): Promise<void> {
    await this.putOutbox(item, 'update');
  }

  async removeOutbox(id: string): Promise<void> {
    await this.transaction((m) => m.hdel(this.keys.outbox, id).zrem(this.keys.outboxDue, id));
  }

  async acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.call(() => this.redis.vigilLockAcquire(this.keys.lock(name), owner, ttlMs))) === 1;
  }

  async releaseLock(name: string, owner: string): Promise<void> {
    await this.call(() => this.redis.vigilLockRelease(this.keys.lock(name), owner));
  }

  /** Runs the write script and turns its refusal into the matching VigilError. */
  private async write(
    op: 'flag.put' | 'flag.delete' | 'flag.kill' | 'flag.schedule' | 'segment.put' | 'segment.delete',
    env: string,
    key: string,
    meta: WriteMeta,
    args: { expect?: Expectation; body?: string; init?: string; at?: string | undefined },
  ): Promise<string> {
    const k = this.keys.env(env);
    const expect =
      args.expect === undefined ? '' : 'absent' in args.expect ? 'absent' : String(args.expect.version);
    const claim = meta.idempotency;
    const [status, value, current] = await this.call(
      () =>
        this.redis.vigilWrite(
          k.rev,
          k.flags,
          k.segments,
          k.log,
          k.audit,
          this.keys.envs,
          this.keys.changes,
          this.idempotencyKey(claim),
          op,
          env,
          key,
          args.at ?? new Date().toISOString(),
          meta.actor,
          meta.reason ?? '',
          expect,
          args.body ?? '',
          args.init ?? '',
          this.limits.changeLog,
          this.limits.audit,
          this.limits.changeStream,
          ...this.claimArgs(claim),
        ),
      'write',
    );
    if (status === 'ok') return value;
    if (status === 'replay') await this.settleClaim(2, claim);
    if (value === 'VIGIL_IDEMPOTENCY_KEY_REUSED') await this.settleClaim(3, claim);
    const what = op.startsWith('flag') ? 'flag' : 'segment';
    const details = value === 'VIGIL_VERSION_CONFLICT' ? { current, expected: expect } : undefined;
    throw new VigilError(value as ErrorCode, refusal(value, what, key, env), details);
  }

  private async readMetricsOnce(
    group: string,
    consumer: string,
    opts: { count: number; blockMs: number; claimIdleMs: number },
  ): Promise<MetricsEntry[]> {
    const stream = this.keys.metrics;
    if (!this.groups.has(group)) {
      // From 0: a guardian that starts after SDKs reported still sees what the stream holds.
      await this.redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM').catch((error: Error) => {
        if (!error.message.startsWith('BUSYGROUP')) throw error;
      });
      this.groups.add(group);
    }
    const [, claimed] = (await this.redis.xautoclaim(
      stream,
      group,
      consumer,
      opts.claimIdleMs,
      '0-0',
      'COUNT',
      opts.count,
    )) as [string, (StreamEntry | null)[]];
    const out = toMetrics(claimed);
    const wanted = opts.count - out.length;
    if (wanted <= 0) return out;
    // BLOCK 0 would wait forever, and blocking at all holds the connection: use the consumer's own.
    const block = out.length === 0 && opts.blockMs > 0;
    const conn = block ? await this.reader(consumer) : this.redis;
    const args: (string | number)[] = ['GROUP', group, consumer, 'COUNT', wanted];
    if (block) args.push('BLOCK', opts.blockMs);
    args.push('STREAMS', stream, '>');
    const reply = (await conn.call('XREADGROUP', ...args)) as [string, (StreamEntry | null)[]][] | null;
    return [...out, ...toMetrics(reply?.[0]?.[1] ?? [])];
  }

  private async reader(consumer: string): Promise<Redis> {
    let conn = this.readers.get(consumer);
    if (!conn) {
      conn = this.blockingConnection();
      this.readers.set(consumer, conn);
      await conn.connect();
    }
    return conn;
  }

  /** A connection for blocking reads: no command timeout, but a guard against a silently dead socket. */
  private blockingConnection(): Redis & VigilScripts {
    const conn = defineScripts(this.redis.duplicate({ commandTimeout: undefined, blockingTimeout: 1_000 }));
    conn.on('error', () => {});
    return conn;
  }

  private async putOutbox(item: OutboxItem, mode: 'new' | 'update'): Promise<void> {
    const { outbox, outboxDue } = this.keys;
    await this.call(() =>
      this.redis.vigilOutboxPut(outbox, outboxDue, item.id, JSON.stringify(item), item.notBefore, mode),
    );
  }

  private emit(change: Change): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /** Runs commands in MULTI/EXEC and returns their results, failing if any failed. */
  private async transaction<T extends unknown[]>(
    build: (multi: ReturnType<Redis['multi']>) => ReturnType<Redis['multi']>,
  ): Promise<T> {
    const results = await this.call(() => build(this.redis.multi()).exec());
    if (!results) throw new VigilError('VIGIL_STORE_UNAVAILABLE', 'redis transaction aborted');
    return results.map(([error, value]) => {
      if (error) throw toStoreError(error);
      return value;
    }) as T;
  }

  /** The key of a claim's record; scripts need a key name even when there is no claim. */
  private idempotencyKey(claim: IdempotencyClaim | undefined): string {
    return this.keys.idempotency(claim?.id ?? '-');
  }

  /** A claim as script arguments: fingerprint ('' for none), status, attachment, TTL. */
  private claimArgs(claim: IdempotencyClaim | undefined): (string | number)[] {
    if (!claim) return ['', 0, '', this.idempotencyTtlMs];
    return [claim.fingerprint, claim.status, claim.attachment ?? '', this.idempotencyTtlMs];
  }

  /** Throws for a script's idempotency answer: 2 the claim was recorded already (a replay), 3 by another request. */
  private async settleClaim(answer: number, claim: IdempotencyClaim | undefined): Promise<void> {
    if (!claim || (answer !== 2 && answer !== 3)) return;
    const record = answer === 2 ? await this.getIdempotency(claim.id) : undefined;
    if (record?.fingerprint === claim.fingerprint) throw new IdempotentReplay(record);
    throw new VigilError('VIGIL_IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for another request');
  }

  /**
   * Runs one call against the main connection. Nothing is sent while the connection is not ready or a
   * command is overdue, so such a refusal means "not applied"; a write that fails after it was sent
   * may have been applied (`mode: 'write'`).
   */
  private async call<T>(fn: () => Promise<T>, mode: 'read' | 'write' = 'read'): Promise<T> {
    if (this.redis.status !== 'ready') {
      throw new VigilError('VIGIL_STORE_UNAVAILABLE', `redis: not connected (${this.redis.status})`);
    }
    if (this.overdue) {
      throw new VigilError('VIGIL_STORE_UNAVAILABLE', 'redis: not answering (a command timed out)');
    }
    try {
      return await fn();
    } catch (error) {
      if (error instanceof Error && error.message === 'Command timed out') this.markOverdue();
      throw toStoreError(error, mode);
    }
  }

  /** Stops sending until a PING is answered: Redis answers in order, so every earlier command was too. */
  private markOverdue(): void {
    if (this.overdue) return;
    this.overdue = true;
    void (async () => {
      while (this.overdue && !this.closing) {
        try {
          await this.redis.ping();
          this.overdue = false;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    })();
  }
}

/**
 * Maps a Redis/ioredis failure to a VigilError. Redis refusing a command (a reply error) ran nothing:
 * `VIGIL_STORE_UNAVAILABLE` for "not now" replies, else `VIGIL_INTERNAL`. Without a reply, a read is
 * unavailable, and so is a write that could not be sent; a write that was sent has an unknown outcome.
 */
function toStoreError(error: unknown, mode: 'read' | 'write' = 'read'): VigilError {
  if (error instanceof VigilError || error instanceof IdempotentReplay) return error as VigilError;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Error && error.name === 'ReplyError') {
    const code = TRANSIENT_REPLY.test(message) ? 'VIGIL_STORE_UNAVAILABLE' : 'VIGIL_INTERNAL';
    return new VigilError(code, `redis: ${message}`, undefined, { cause: error });
  }
  if (mode === 'write' && !NOT_SENT.test(message)) {
    return new VigilError(
      'VIGIL_WRITE_OUTCOME_UNKNOWN',
      `redis: ${message}; the write may or may not have been applied`,
      undefined,
      { cause: error },
    );
  }
  return new VigilError('VIGIL_STORE_UNAVAILABLE', `redis: ${message}`, undefined, { cause: error });
}

function refusal(code: string, what: string, key: string, env: string): string {
  if (code === 'VIGIL_ALREADY_EXISTS') return `${what} ${key} already exists in ${env}`;
  if (code === 'VIGIL_VERSION_CONFLICT') return `${what} ${key} in ${env} changed since it was read`;
  return `${what} ${key} not found in ${env}`;
}

function toMetrics(entries: (StreamEntry | null)[]): MetricsEntry[] {
  const out: MetricsEntry[] = [];
  for (const entry of entries) {
    // Entries trimmed while pending come back empty from older Redis versions.
    const raw = entry ? fieldsOf(entry[1]).s : undefined;
    if (entry && raw !== undefined) out.push({ id: entry[0], summary: JSON.parse(raw) as CohortSummary });
  }
  return out;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
