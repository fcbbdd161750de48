import { type Context, createClient, type VigilClient } from '@vigil/node';
import {
  type AuditEntry,
  type Flag,
  type FlagInput,
  type Segment,
  validateFlag,
  validateSegment,
} from '@vigil/proto';
import { type Change, RedisStore } from '@vigil/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rest, RestResponse } from '../../services/flag-server/test/helpers/process.js';
import { startTestRedis, type TestRedis } from '../../services/flag-server/test/helpers/redis.js';
import { boolFlag } from '../../services/flag-server/test/helpers/server.js';
import { type Cluster, createSdkKey, startCluster, until } from './helpers/cluster.js';

const ENV = 'production';
const base = `/api/v1/envs/${ENV}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FLAGS = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5'];
const SEGMENTS = ['beta', 'gamma'];
const CONTEXTS: Context[] = Array.from({ length: 12 }, (_, i) => ({
  key: `user-${i}`,
  country: ['TH', 'SG', 'DE'][i % 3]!,
}));
const WORKERS_PER_REPLICA = 4;
/** When, after the burst starts, Redis is SIGKILLed; how long it stays down; how long the burst goes on after. */
const STOP_AFTER_MS = 700;
const OUTAGE_MS = 1_500;
const AFTER_MS = 2_500;

type Op = 'update' | 'create' | 'kill' | 'revive' | 'segment' | 'read';

/** One request of the burst and what it got back. */
interface Outcome {
  replica: 'A' | 'B';
  worker: number;
  op: Op;
  key: string;
  sentAt: number;
  at: number;
  status: number;
  code?: string;
  /** The version its If-Match named. */
  expected?: number;
  /** The flag or segment a 2xx write or read answered with. */
  body?: Flag | Segment;
  error?: string;
}

/** A deterministic PRNG (LCG), one per worker, so a failing burst's request mix can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

/** A flag the burst writes: a targeting rule on a segment and a rollout whose weights vary with `n`. */
function burstFlag(key: string, n: number): FlagInput {
  const on = (n * 7919) % 100_001;
  return boolFlag(key, {
    description: `write ${n}`,
    rules: [
      {
        id: 'seg',
        clauses: [{ attribute: 'key', op: 'inSegment', values: [SEGMENTS[n % 2]!] }],
        serve: { variant: n % 3 ? 'on' : 'off' },
      },
    ],
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'on', weight: on },
          { variant: 'off', weight: 100_000 - on },
        ],
      },
    },
  });
}

/** The record a change log entry holds for `key` (flag or segment), if any. */
function recordIn(change: Change, key: string, kind: 'flag' | 'segment'): Flag | Segment | undefined {
  return kind === 'flag'
    ? change.flags.find((f) => f.key === key)
    : change.segments.find((s) => s.key === key);
}

/** What each SDK client answered while the burst ran. */
interface Samples {
  total: number;
  duringOutage: number;
  /** `isEnabled('stable')` answered anything but the flag's true (a client that lost its flags answers false). */
  wrong: number;
  notReady: number;
  /** The client's revision went backwards between two samples. */
  backwards: number;
  lastRevision: number;
}

/**
 * Issue 6, point 4: Redis SIGKILLed (and restarted from its fsynced AOF) in the middle of a burst of
 * concurrent writes through both replicas, with real Node SDK clients on both. Nothing acknowledged
 * is lost, nothing is half-written, revisions stay in order, refusals are coded 503s, and the SDKs
 * keep serving, then converge on what the server evaluates.
 */
describe('Redis killed during a burst of writes', () => {
  let redis: TestRedis;
  let cluster: Cluster;
  let direct: RedisStore;
  const clients: { name: string; client: VigilClient }[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    // The test kills and restarts Redis, which an external REDIS_URL does not allow.
    if (!redis.controllable) return;
    cluster = await startCluster({ redis, replicas: 2 });
    await cluster.explain(async () => {
      const [onA] = cluster.rests as [Rest, Rest];
      direct = new RedisStore({ url: redis.url, onListenerError: () => {} });
      await direct.start();
      const sdkKey = await createSdkKey(onA);
      for (const [i, key] of SEGMENTS.entries()) {
        const put = await onA('PUT', `${base}/segments/${key}`, {
          key,
          included: [`user-${i}`, `user-${i + 2}`],
        });
        expect(put.status).toBe(201);
      }
      for (const [i, flag] of [boolFlag('stable'), ...FLAGS.map((key, n) => burstFlag(key, n))].entries()) {
        expect((await cluster.rests[i % 2]!('PUT', `${base}/flags/${flag.key}`, flag)).status).toBe(201);
      }
      for (const [i, server] of [...cluster.servers, ...cluster.servers, ...cluster.servers].entries()) {
        const client = createClient({
          url: server.url,
          sdkKey,
          metrics: false,
          logger: { warn: () => {}, error: () => {} },
        });
        clients.push({ name: `sdk-${i}@${i % 2 ? 'B' : 'A'}`, client });
      }
      for (const { client } of clients) expect(await client.waitForReady(10_000)).toBe(true);
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map(({ client }) => client.close()));
    await direct?.close();
    await cluster?.close();
    await redis?.dispose();
  }, 30_000);

  it('keeps every acknowledged write, half-writes nothing, and SDKs serve throughout then converge', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    await cluster.explain(async () => {
      const [onA, onB] = cluster.rests as [Rest, Rest];
      const outcomes: Outcome[] = [];
      /** The newest version seen per flag or segment key, for If-Match. */
      const known = new Map<string, number>();
      const see = (key: string, version: number | undefined) => {
        if (version !== undefined && version > (known.get(key) ?? 0)) known.set(key, version);
      };
      for (const key of FLAGS) see(key, (await onA<Flag>('GET', `${base}/flags/${key}`)).body.version);
      for (const key of SEGMENTS)
        see(key, (await onA<Segment>('GET', `${base}/segments/${key}`)).body.version);

      let running = true;
      let outage: { stoppedAt: number; startedAt?: number } | undefined;

      const samples = new Map(
        clients.map(({ name, client }) => [
          name,
          { total: 0, duringOutage: 0, wrong: 0, notReady: 0, backwards: 0, lastRevision: client.revision },
        ]),
      ) as Map<string, Samples>;
      const sampler = setInterval(() => {
        const down = outage !== undefined && outage.startedAt === undefined;
        for (const { name, client } of clients) {
          const s = samples.get(name)!;
          s.total += 1;
          if (down) s.duringOutage += 1;
          if (!client.ready) s.notReady += 1;
          if (client.isEnabled('stable', CONTEXTS[s.total % CONTEXTS.length], false) !== true) s.wrong += 1;
          // Every flag evaluates (never throws) whatever state the client holds.
          for (const key of FLAGS) client.variant(key, CONTEXTS[0]);
          if (client.revision < s.lastRevision) s.backwards += 1;
          s.lastRevision = client.revision;
        }
      }, 20);

      const worker = async (replica: 'A' | 'B', server: Rest, index: number) => {
        const next = random(1000 * index + (replica === 'A' ? 1 : 2));
        let n = 0;
        while (running) {
          n += 1;
          const roll = next();
          const key = FLAGS[Math.floor(next() * FLAGS.length)]!;
          let op: Op;
          let request: () => Promise<RestResponse<Flag | Segment>>;
          let target = key;
          let expected: number | undefined;
          if (roll < 0.4) {
            op = 'update';
            expected = known.get(key) ?? 0;
            request = () =>
              server<Flag | Segment>('PUT', `${base}/flags/${key}`, burstFlag(key, n * 10 + index), {
                'if-match': `"${expected}"`,
              });
          } else if (roll < 0.55) {
            op = 'create';
            target = `new-${replica}${index}-${n}`;
            request = () => server<Flag | Segment>('POST', `${base}/flags`, burstFlag(target, n));
          } else if (roll < 0.75) {
            op = roll < 0.65 ? 'kill' : 'revive';
            request = () =>
              server<Flag | Segment>('POST', `${base}/flags/${key}/${op}`, {
                reason: `burst ${replica}${index}-${n}`,
              });
          } else if (roll < 0.9) {
            op = 'segment';
            target = SEGMENTS[n % 2]!;
            const included = CONTEXTS.filter(() => next() < 0.3).map((c) => c.key);
            expected = known.get(target) ?? 0;
            request = () =>
              server<Flag | Segment>(
                'PUT',
                `${base}/segments/${target}`,
                { key: target, included },
                { 'if-match': `"${expected}"` },
              );
          } else {
            op = 'read';
            request = () => server<Flag | Segment>('GET', `${base}/flags/${key}`);
          }
          const sentAt = Date.now();
          const outcome: Outcome = { replica, worker: index, op, key: target, sentAt, at: 0, status: 0 };
          if (expected !== undefined) outcome.expected = expected;
          try {
            const response = await request();
            outcome.status = response.status;
            if (response.status < 300) {
              outcome.body = response.body;
              see(target, response.body.version);
            } else {
              outcome.code = (response.body as unknown as { error?: { code?: string } })?.error?.code;
            }
          } catch (error) {
            outcome.error = error instanceof Error ? error.message : String(error);
          }
          outcome.at = Date.now();
          outcomes.push(outcome);
          // A lost update: read the record again, as a real client would, before trying again.
          if (outcome.status === 412) {
            const path = op === 'segment' ? `${base}/segments/${target}` : `${base}/flags/${target}`;
            const current = await server<Flag | Segment>('GET', path).catch(() => undefined);
            if (current?.status === 200) see(target, current.body.version);
          }
          // A refusal: back off a little rather than spin on a store that is down.
          if (outcome.status === 503 || outcome.status === 0) await sleep(25);
        }
      };

      const burst = Promise.all([
        ...Array.from({ length: WORKERS_PER_REPLICA }, (_, i) => worker('A', onA, i)),
        ...Array.from({ length: WORKERS_PER_REPLICA }, (_, i) => worker('B', onB, i)),
      ]);
      try {
        await sleep(STOP_AFTER_MS);
        outage = { stoppedAt: Date.now() };
        await redis.stop();
        await sleep(OUTAGE_MS);
        await redis.start();
        outage.startedAt = Date.now();
        await sleep(AFTER_MS);
      } finally {
        running = false;
        await burst;
        clearInterval(sampler);
      }
      const { stoppedAt, startedAt } = outage as { stoppedAt: number; startedAt: number };
      for (const server of cluster.servers) {
        await until(
          `${server.url} to be ready`,
          async () => (await fetch(`${server.url}/readyz`).catch(() => undefined))?.status === 200,
          10_000,
        );
      }

      // What the replicas answered: only these statuses, and every 503 with the documented code.
      const writes = outcomes.filter((o) => o.op !== 'read');
      const unexpected = outcomes.filter((o) => ![200, 201, 412, 503].includes(o.status));
      expect(unexpected).toEqual([]);
      const refused = writes.filter((o) => o.status === 503);
      const codes = ['VIGIL_STORE_UNAVAILABLE', 'VIGIL_WRITE_OUTCOME_UNKNOWN'];
      expect(refused.filter((o) => !codes.includes(o.code ?? ''))).toEqual([]);
      /** 503s that may have been applied: sent to Redis, no reply. The others were not applied. */
      const unknown = refused.filter((o) => o.code === 'VIGIL_WRITE_OUTCOME_UNKNOWN');
      const acked = writes.filter((o) => o.status < 300);
      // The burst spanned the outage: acknowledged before, refused during, acknowledged after.
      expect(acked.some((o) => o.at < stoppedAt)).toBe(true);
      expect(refused.some((o) => o.sentAt > stoppedAt && o.at < startedAt)).toBe(true);
      expect(acked.some((o) => o.sentAt > startedAt)).toBe(true);

      // The store as it stands, read straight from Redis.
      const snapshot = await direct.snapshot(ENV);
      const changes = (await direct.changesSince(ENV, 0))!;
      const audit = [...(await direct.audit(ENV, { limit: 1_000_000 }))].reverse();
      const byRevision = new Map(changes.map((c) => [c.revision, c]));
      const auditAt = new Map<number, AuditEntry>(audit.map((e) => [e.revision!, e]));

      // Revisions: one change-log entry and one audit entry per revision, 1..current, no gap.
      expect(changes.map((c) => c.revision)).toEqual(
        Array.from({ length: snapshot.revision }, (_, i) => i + 1),
      );
      expect(audit.map((e) => e.revision)).toEqual(changes.map((c) => c.revision));
      for (const change of changes) {
        const entry = auditAt.get(change.revision)!;
        const record = change.flags[0] ?? change.segments[0];
        const key = record?.key ?? change.deleted.flags[0] ?? change.deleted.segments[0];
        expect(entry.target, `audit target at revision ${change.revision}`).toBe(key);
        if (record) expect(entry.after, `audit after at revision ${change.revision}`).toEqual(record);
      }

      // Every acknowledged write is in the log at the version it answered, exactly as answered.
      for (const o of acked) {
        const kind = o.op === 'segment' ? 'segment' : 'flag';
        const change = byRevision.get(o.body!.version);
        expect(
          change && recordIn(change, o.key, kind),
          `${o.op} ${o.key} acked at ${o.body!.version}`,
        ).toEqual(o.body);
      }
      // ...and durable: what is stored now is that write, or a later change of the same record.
      let superseded = 0;
      for (const o of acked) {
        const stored =
          o.op === 'segment'
            ? snapshot.segments.find((s) => s.key === o.key)
            : snapshot.flags.find((f) => f.key === o.key);
        expect(stored, `${o.key} still stored`).toBeDefined();
        expect(stored!.version).toBeGreaterThanOrEqual(o.body!.version);
        if (stored!.version === o.body!.version) expect(stored).toEqual(o.body);
        else superseded += 1;
      }
      // If-Match held: of the writes that named one version of a record, at most one was acknowledged.
      const wins = new Map<string, number>();
      for (const o of acked.filter((a) => a.expected !== undefined)) {
        const claim = `${o.key}@${o.expected}`;
        wins.set(claim, (wins.get(claim) ?? 0) + 1);
      }
      expect([...wins].filter(([, count]) => count > 1)).toEqual([]);
      // Revisions follow real time: a write acknowledged before another was sent has the lower revision.
      const ordered = acked.filter((o) => o.op === 'update' || o.op === 'create' || o.op === 'segment');
      for (const earlier of ordered) {
        for (const later of ordered) {
          if (earlier.at < later.sentAt) expect(earlier.body!.version).toBeLessThan(later.body!.version);
        }
      }
      // A change nobody saw acknowledged can only be a write Redis ran as it died (its reply lost with
      // it): whole, like any other change, and answered 503 VIGIL_WRITE_OUTCOME_UNKNOWN, never
      // VIGIL_STORE_UNAVAILABLE, which says the write was not applied.
      const ackedRevisions = new Set(acked.map((o) => o.body!.version));
      const unacked = changes.filter((c) => c.revision > 0 && !ackedRevisions.has(c.revision));
      const seeded = SEGMENTS.length + 1 + FLAGS.length;
      const unexplained = unacked.filter(
        (c) => c.revision > seeded && !unknown.some((o) => o.key === (c.flags[0] ?? c.segments[0])?.key),
      );
      expect(unexplained).toEqual([]);

      // Nothing half-written: every stored record validates and is the change of its version.
      for (const flag of snapshot.flags) {
        const checked = validateFlag(flag);
        expect(checked.ok ? [] : checked.issues, `flag ${flag.key} validates`).toEqual([]);
        expect(byRevision.get(flag.version)?.flags.find((f) => f.key === flag.key)).toEqual(flag);
        expect(auditAt.get(flag.version)?.target).toBe(flag.key);
      }
      for (const segment of snapshot.segments) {
        const checked = validateSegment(segment);
        expect(checked.ok ? [] : checked.issues, `segment ${segment.key} validates`).toEqual([]);
        expect(byRevision.get(segment.version)?.segments.find((s) => s.key === segment.key)).toEqual(segment);
      }

      // The SDKs answered from their last known flags all along, never going back a revision...
      for (const [name, s] of samples) {
        expect({ name, wrong: s.wrong, notReady: s.notReady, backwards: s.backwards }).toEqual({
          name,
          wrong: 0,
          notReady: 0,
          backwards: 0,
        });
        expect(s.duringOutage, `${name} sampled during the outage`).toBeGreaterThan(10);
      }
      // ...and converge on the server's state: its revision and its evaluations.
      const convergeMs = await until(
        'every SDK client to reach the store revision',
        () => clients.every(({ client }) => client.revision === snapshot.revision),
        20_000,
      );
      const convergedAt = Date.now();
      const lastAck = Math.max(...acked.map((o) => o.at));
      const keys = snapshot.flags.map((f) => f.key).sort();
      for (const server of [onA, onB]) {
        for (const context of CONTEXTS) {
          const evaluated = await server<{ revision: number; results: Record<string, unknown> }>(
            'POST',
            `${base}/evaluate`,
            { context },
          );
          expect(evaluated.status).toBe(200);
          expect(evaluated.body.revision).toBe(snapshot.revision);
          for (const { name, client } of clients) {
            const local = Object.fromEntries(
              keys.map((key) => {
                const detail = client.detail(key, context);
                return [key, { ...detail, value: detail.value ?? null }];
              }),
            );
            expect(local, `${name} evaluates ${context.key} as the server does`).toEqual(
              evaluated.body.results,
            );
          }
        }
      }

      const count = (list: Outcome[], op?: Op) => list.filter((o) => op === undefined || o.op === op).length;
      const during = writes.filter((o) => o.sentAt >= stoppedAt && o.sentAt < startedAt);
      console.info(
        [
          `Redis outage burst: ${outcomes.length} requests (${writes.length} writes) from ${
            2 * WORKERS_PER_REPLICA
          } workers over ${STOP_AFTER_MS + OUTAGE_MS + AFTER_MS} ms; Redis down ${startedAt - stoppedAt} ms`,
          `writes acknowledged: ${acked.length} (update ${count(acked, 'update')}, create ${count(acked, 'create')}, ` +
            `kill ${count(acked, 'kill')}, revive ${count(acked, 'revive')}, segment ${count(acked, 'segment')}); ` +
            `412 lost updates: ${count(writes.filter((o) => o.status === 412))}; 503 refused: ${refused.length} ` +
            `(${during.filter((o) => o.status === 503).length} of ${during.length} sent while Redis was down; ` +
            `${refused.filter((o) => o.sentAt >= startedAt).length} after it was back)`,
          `store: revision ${snapshot.revision}; acknowledged writes superseded by a later change: ${superseded}; ` +
            `${unknown.length} answered outcome unknown; changes applied without an acknowledgement (Redis died with them in flight): ${
              unacked.filter((c) => c.revision > seeded).length
            }`,
          `SDK clients: ${[...samples.values()].reduce((n, s) => n + s.duringOutage, 0)} isEnabled samples during ` +
            `the outage, all served; all at the store revision ${convergedAt - lastAck} ms after the last ` +
            `acknowledged write (checks waited ${convergeMs} ms)`,
        ].join('\n'),
      );
    });
  }, 90_000);
});
