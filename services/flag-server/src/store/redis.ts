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
import type {
  AuditQuery,
  Change,
  EnvSnapshot,
  Episode,
  Expectation,
  KillInput,
  MetricsEntry,
  OutboxItem,
  ScheduleInput,
  Store,
  StoredToken,
  WriteMeta,
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
  /** A command not answered within this many ms fails with VIGIL_STORE_UNAVAILABLE (default 1,500). */
  commandTimeoutMs?: number;
  /** Called when a subscriber throws; the other subscribers still get the change. */
  onListenerError?: (error: unknown) => void;
}

/** Reply errors that mean "not now" rather than "wrong request". */
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|OOM)\b/;

/**
 * The production store. Each flag/segment write and kill is one Lua script (see redis-scripts.ts),
 * so nothing is ever half-written. Changes reach subscribers through a tailer of the global change
 * stream — also this process's own, so every replica sees one order.
 *
 * Commands fail fast when Redis is away: no offline queue, no retries, a command timeout, and no
 * resending of unanswered commands after a reconnect (a resent write could apply twice).
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
    await this.call(() => this.redis.connect());
    await this.call(() => this.tailer.start());
  }

  async close(): Promise<void> {
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

  async createToken(token: StoredToken): Promise<void> {
    const { tokens, tokenSecrets } = this.keys;
    const created = await this.call(() =>
      this.redis.vigilTokenCreate(tokens, tokenSecrets, token.id, token.secretHash, JSON.stringify(token)),
    );
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

  async deleteToken(id: string): Promise<boolean> {
    const { tokens, tokenSecrets } = this.keys;
    return (await this.call(() => this.redis.vigilTokenDelete(tokens, tokenSecrets, id))) === 1;
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
      const written = await this.call(() =>
        this.redis.vigilIncidentCas(incidents, incidentTimes, id, raw, json, Date.parse(next.detectedAt)),
      );
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
    const [status, value, current] = await this.call(() =>
      this.redis.vigilWrite(
        k.rev,
        k.flags,
        k.segments,
        k.log,
        k.audit,
        this.keys.envs,
        this.keys.changes,
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
      ),
    );
    if (status === 'ok') return value;
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

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toStoreError(error);
    }
  }
}

/** Maps a Redis/ioredis failure to a VigilError: unavailable unless Redis refused the command itself. */
function toStoreError(error: unknown): VigilError {
  if (error instanceof VigilError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const refused = error instanceof Error && error.name === 'ReplyError' && !TRANSIENT_REPLY.test(message);
  const code = refused ? 'VIGIL_INTERNAL' : 'VIGIL_STORE_UNAVAILABLE';
  return new VigilError(code, `redis: ${message}`, undefined, { cause: error });
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
