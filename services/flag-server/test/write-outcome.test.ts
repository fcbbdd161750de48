import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idempotencyRecordId } from '../src/idempotency.js';
import { RedisStore } from '../src/store/redis.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { bearer, boolFlag, segment, startServer, type TestServer } from './helpers/server.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ENV = 'production';
const base = `/api/v1/envs/${ENV}`;
/** RedisStore's default command timeout: the configuration the 503s are held to. */
const COMMAND_TIMEOUT_MS = 1_500;
/**
 * What a refusal may take beyond one command timeout: the ioredis timer fires on a busy event loop
 * (two shared cores, four writers, an fsync per write in Redis), plus the route's own work. Far below
 * a second timeout, which is what a request stacking two timed-out calls took (3.0 s).
 */
const MARGIN_MS = 500;
/** How long Redis stays frozen: past the token cache (1 s) plus two command timeouts, which a request once stacked. */
const FREEZE_MS = 6_000;

type Op = 'create' | 'put' | 'segment' | 'kill';

/**
 * The real Redis store with a hook after a write route's idempotency lookup: the test freezes Redis
 * there, so the write that follows is sent to a server that will run it only once thawed.
 */
class HookedStore extends RedisStore {
  afterLookup: ((id: string) => void) | undefined;

  override async getIdempotency(id: string) {
    const record = await super.getIdempotency(id);
    this.afterLookup?.(id);
    return record;
  }
}

/** One write of the burst: its key (unique per write, so audit entries tell writes apart) and outcome. */
interface Outcome {
  op: Op;
  target: string;
  key: string;
  request: { method: 'POST' | 'PUT'; url: string; payload: Record<string, unknown> };
  status: number;
  code?: string;
  ms: number;
  /** When it was sent (epoch ms). */
  sentAt: number;
}

/**
 * Issue 11, defect 2: Redis frozen (SIGSTOP) and then killed (SIGKILL, restarted from its AOF) during
 * a burst of writes. A 503 `VIGIL_STORE_UNAVAILABLE` write was not applied; a 503
 * `VIGIL_WRITE_OUTCOME_UNKNOWN` one, retried with its Idempotency-Key, is applied exactly once; every
 * 503 comes within the command timeout.
 */
describe('write outcomes when Redis freezes and dies mid-burst', () => {
  let redis: TestRedis;
  let store: HookedStore;
  let direct: RedisStore;
  let server: TestServer;

  beforeAll(async () => {
    redis = await startTestRedis();
    if (!redis.controllable) return;
    const prefix = `outcome-${randomBytes(4).toString('hex')}:`;
    store = new HookedStore({ url: redis.url, prefix, onListenerError: () => {} });
    await store.start();
    direct = new RedisStore({ url: redis.url, prefix, onListenerError: () => {} });
    await direct.start();
    // A short token cache: during the freeze requests must look their token up again, time out, and
    // go on with the cached principal, the path that once stacked two timeouts in one request.
    server = await startServer({ store, config: { tokenCacheMs: 1_000 } });
  }, 30_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    await direct?.close();
    await redis?.dispose();
  }, 30_000);

  it('refuses honestly, applies an unknown write exactly once on retry, and answers within the timeout', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const admin = bearer(server.admin);
    const inject = (request: Outcome['request'], key: string) =>
      server.app.inject({ ...request, headers: { ...admin, 'idempotency-key': key } });
    expect(
      (await inject({ method: 'PUT', url: `${base}/flags/probe`, payload: boolFlag('probe') }, 'seed'))
        .statusCode,
    ).toBe(201);

    const outcomes: Outcome[] = [];
    let running = true;
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        const op = (['create', 'put', 'segment'] as const)[n % 3]!;
        const target = `${op}-${w}-${n}`;
        const request: Outcome['request'] =
          op === 'create'
            ? { method: 'POST', url: `${base}/flags`, payload: boolFlag(target) }
            : op === 'put'
              ? { method: 'PUT', url: `${base}/flags/${target}`, payload: boolFlag(target) }
              : { method: 'PUT', url: `${base}/segments/${target}`, payload: segment(target) };
        const key = `burst-${target}`;
        const started = Date.now();
        const response = await inject(request, key);
        const outcome: Outcome = {
          op,
          target,
          key,
          request,
          status: response.statusCode,
          ms: Date.now() - started,
          sentAt: started,
        };
        if (response.statusCode >= 300) outcome.code = response.json().error?.code;
        outcomes.push(outcome);
        if (response.statusCode === 503) await sleep(20);
      }
    };
    const burst = Promise.all([0, 1, 2, 3].map(worker));

    let probe: Outcome | undefined;
    let frozenAt = Number.POSITIVE_INFINITY;
    try {
      await sleep(400);
      // Warm the token cache, then send a kill and freeze Redis right after its key was looked up:
      // the write is sent to a server that will run it only once thawed.
      await server.app.inject({ url: `${base}/flags/probe`, headers: admin });
      // Only the probe's own lookup freezes Redis: a burst write's lookup landing first would freeze it
      // before the probe's lookup, which then times out as a read ("not applied", rightly).
      const principal = (await server.app.vigil.tokens.authenticate(server.admin))!;
      const probeId = idempotencyRecordId(principal.id, 'probe-kill');
      store.afterLookup = (id) => {
        if (id !== probeId) return;
        store.afterLookup = undefined;
        redis.pause();
        frozenAt = Date.now();
      };
      const request: Outcome['request'] = {
        method: 'POST',
        url: `${base}/flags/probe/kill`,
        payload: { reason: 'probe kill' },
      };
      const started = Date.now();
      const killed = await inject(request, 'probe-kill');
      probe = {
        op: 'kill',
        target: 'probe',
        key: 'probe-kill',
        request,
        status: killed.statusCode,
        ms: 0,
        sentAt: started,
      };
      probe.ms = Date.now() - started;
      if (killed.statusCode >= 300) probe.code = killed.json().error?.code;
      outcomes.push(probe);
      // Frozen long enough for the token cache (1 s) to expire and requests to look their token up.
      await sleep(FREEZE_MS - probe.ms);
      redis.resume();
      await sleep(600);
      await redis.stop();
      await sleep(600);
      await redis.start();
      await sleep(1_000);
    } finally {
      redis.resume();
      running = false;
      await burst;
    }

    const refused = outcomes.filter((o) => o.code === 'VIGIL_STORE_UNAVAILABLE');
    const unknown = outcomes.filter((o) => o.code === 'VIGIL_WRITE_OUTCOME_UNKNOWN');
    const statuses = new Set(outcomes.map((o) => `${o.status} ${o.code ?? ''}`.trim()));
    const allowed = ['200', '201', '503 VIGIL_STORE_UNAVAILABLE', '503 VIGIL_WRITE_OUTCOME_UNKNOWN'];
    expect([...statuses].filter((s) => !allowed.includes(s))).toEqual([]);
    expect(refused.length).toBeGreaterThan(0);
    // The probe's write reached the frozen Redis: its outcome is unknown, not "not applied".
    expect(probe).toMatchObject({ status: 503, code: 'VIGIL_WRITE_OUTCOME_UNKNOWN' });
    // Every 503 within one command timeout (plus the margin) of the later of its sending and the
    // freeze: a request whose reads were answered before Redis froze waits one timeout for its write.
    const waited = (o: Outcome) => o.sentAt + o.ms - Math.max(o.sentAt, Math.min(frozenAt, o.sentAt + o.ms));
    const slowest = Math.max(...outcomes.filter((o) => o.status === 503).map(waited));
    console.info(
      `write outcome burst: ${outcomes.length} writes; ${outcomes.filter((o) => o.status < 300).length} acknowledged, ` +
        `${refused.length} refused as not applied, ${unknown.length} of unknown outcome; ` +
        `the probe kill ${probe!.status} ${probe!.code} after ${probe!.ms} ms; longest a 503 waited on Redis ${slowest} ms ` +
        `(command timeout ${COMMAND_TIMEOUT_MS} ms)`,
    );
    expect(
      outcomes
        .filter((o) => o.status === 503 && waited(o) > COMMAND_TIMEOUT_MS + MARGIN_MS)
        .map((o) => ({ ...o, waited: waited(o) })),
    ).toEqual([]);

    // Retry each unknown write with its key until the store answers: applied once, whichever way.
    const retried = new Map<string, { version: number }>();
    for (const o of unknown) {
      let response = await inject(o.request, o.key);
      for (let i = 0; response.statusCode === 503 && i < 100; i++) {
        await sleep(100);
        response = await inject(o.request, o.key);
      }
      expect(response.statusCode, `${o.target} retried`).toBeLessThan(300);
      retried.set(o.target, response.json());
    }

    const audit = await direct.audit(ENV, { limit: 100_000 });
    const changes = (await direct.changesSince(ENV, 0))!;
    const snapshot = await direct.snapshot(ENV);
    /** The audit entries and change-log revisions a write of the burst made (each write has its own target). */
    const traces = (o: Outcome) => {
      const entries = audit.filter(
        (e) => e.target === o.target && (o.op !== 'kill' || e.action === 'flag.kill'),
      );
      return { target: o.target, audit: entries.length, revisions: entries.map((e) => e.revision) };
    };
    const revisionOf = (target: string) =>
      changes.filter(
        (c) => c.flags.some((f) => f.key === target) || c.segments.some((s) => s.key === target),
      );

    // "Not applied" means not applied: no audit entry, no revision, nothing stored.
    for (const o of refused) {
      expect(traces(o)).toEqual({ target: o.target, audit: 0, revisions: [] });
      if (o.op !== 'kill') expect(revisionOf(o.target)).toEqual([]);
    }
    expect(snapshot.flags.find((f) => f.key === 'probe')?.killed).toBe(unknown.includes(probe!));
    // Unknown, then retried with its key: one audit entry and one revision, the one the retry answered.
    for (const o of unknown) {
      const version = retried.get(o.target)?.version;
      expect(traces(o)).toEqual({ target: o.target, audit: 1, revisions: [version] });
    }
    // And every acknowledged write once.
    for (const o of outcomes.filter((x) => x.status < 300)) {
      expect(traces(o)).toMatchObject({ target: o.target, audit: 1 });
    }
  }, 60_000);
});
