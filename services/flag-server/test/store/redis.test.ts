import { randomUUID } from 'node:crypto';
import type { Flag, Segment } from '@vigil/proto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis.js';
import type { Change } from '../../src/store/store.js';
import { startTestRedis, type TestRedis } from '../helpers/redis.js';
import {
  collect,
  makeFlag,
  makeSegment,
  rejectionCode,
  revisions,
  sleep,
  storeContract,
} from './contract.js';

const run = `vigil-test:${randomUUID().slice(0, 8)}`;
let server: TestRedis;
let stores = 0;

beforeAll(async () => {
  server = await startTestRedis();
});
afterAll(async () => {
  if (!server.controllable) await deleteKeys(server.url, `${run}:*`);
  await server.dispose();
});

/** A fresh key space for each test, on the shared server. */
function freshPrefix(): string {
  stores += 1;
  return `${run}:${stores}:`;
}

storeContract('redis', async (limits) => {
  const store = new RedisStore({
    url: server.url,
    prefix: freshPrefix(),
    ...limits,
    onListenerError: () => {},
  });
  await store.start();
  return store;
});

/** B waits 1.5 s between reconnect attempts, so writes made right after a restart happen while it is away. */
const slowReconnect: RedisStoreOptions = { redis: { retryStrategy: () => 1_500 } };

describe('redis store across processes and outages', () => {
  const open: RedisStore[] = [];
  const connect = async (prefix: string, options: RedisStoreOptions = {}) => {
    const store = new RedisStore({ url: server.url, prefix, ...options });
    await store.start();
    open.push(store);
    return store;
  };
  afterEach(async () => {
    if (server.controllable) {
      server.resume();
      await ensureUp(server);
    }
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  it("delivers a write made on one instance to another instance's subscribers, in order", async () => {
    const prefix = freshPrefix();
    const a = await connect(prefix);
    const b = await connect(prefix);
    const onB = collect(b);
    const onA = collect(a);
    await a.putFlag('production', makeFlag('checkout'), { absent: true }, { actor: 'alice' });
    await b.putSegment('production', makeSegment('beta'), { actor: 'bob' });
    await a.setKill('production', 'checkout', { killed: true, actor: 'guardian' });
    await onB.until((c) => c.length === 3);
    await onA.until((c) => c.length === 3);
    expect(revisions(onB.changes)).toEqual([1, 2, 3]);
    expect(onB.changes[2]!.flags[0]).toMatchObject({ key: 'checkout', killed: true, version: 3 });
    expect(onA.changes).toEqual(onB.changes);
  });

  it('fails to start with VIGIL_STORE_UNAVAILABLE when Redis cannot be reached', async () => {
    const store = new RedisStore({ url: 'redis://127.0.0.1:1', prefix: freshPrefix() });
    const started = Date.now();
    expect(await rejectionCode(store.start())).toBe('VIGIL_STORE_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(3_000);
    await store.close();
  });

  it.skipIf(process.env.REDIS_URL)(
    'rejects fast while Redis is down, writes nothing half, and catches subscribers up once it is back',
    async () => {
      const prefix = freshPrefix();
      const a = await connect(prefix);
      const b = await connect(prefix, slowReconnect);
      const onB = collect(b);
      await a.putFlag('production', makeFlag('checkout'), { absent: true }, { actor: 'alice' });
      await onB.until((c) => c.length === 1);

      await server.stop();
      for (const attempt of [
        () => a.putFlag('production', makeFlag('search'), { absent: true }, { actor: 'alice' }),
        () => a.setKill('production', 'checkout', { killed: true, actor: 'guardian' }),
        () => a.putSegment('production', makeSegment('beta'), { actor: 'alice' }),
        () => a.snapshot('production'),
        () => a.ping(),
      ]) {
        const started = Date.now();
        expect(await rejectionCode(attempt())).toBe('VIGIL_STORE_UNAVAILABLE');
        expect(Date.now() - started).toBeLessThan(2_000);
      }

      await server.start();
      await waitUntil(() =>
        a.ping().then(
          () => true,
          () => false,
        ),
      );
      const snapshot = await a.snapshot('production');
      expect(snapshot.revision).toBe(1);
      expect(snapshot.flags.map((f) => [f.key, f.killed])).toEqual([['checkout', false]]);
      expect(snapshot.segments).toEqual([]);
      expect(await a.audit('production', { limit: 10 })).toHaveLength(1);
      expect(await a.changesSince('production', 1)).toEqual([]);

      // A third process writes as soon as Redis is back, while B is still waiting to reconnect.
      const c = await connect(prefix);
      await c.putFlag('production', makeFlag('search'), { absent: true }, { actor: 'carol' });
      await c.setKill('production', 'checkout', { killed: true, actor: 'guardian' });
      await c.putSegment('production', makeSegment('beta'), { actor: 'carol' });
      await onB.until((ch) => ch.length === 4, 10_000);
      expect(revisions(onB.changes)).toEqual([1, 2, 3, 4]);
      expect(onB.changes[1]!.flags[0]!.key).toBe('search');
      expect(onB.changes[2]!.flags[0]).toMatchObject({ key: 'checkout', killed: true });
      expect(onB.changes[3]!.segments[0]!.key).toBe('beta');
    },
  );

  it.skipIf(process.env.REDIS_URL)(
    'fails within the command timeout when Redis hangs, and a timed-out write is all or nothing',
    async () => {
      const prefix = freshPrefix();
      const a = await connect(prefix, { commandTimeoutMs: 500 });
      const b = await connect(prefix);
      const onB = collect(b);
      await a.putFlag('production', makeFlag('checkout'), undefined, { actor: 'alice' });
      await onB.until((c) => c.length === 1);

      server.pause();
      try {
        const started = Date.now();
        const code = await rejectionCode(
          a.putFlag('production', makeFlag('search'), undefined, { actor: 'alice' }),
        );
        // Sent, then no reply: the write may or may not be applied.
        expect(code).toBe('VIGIL_WRITE_OUTCOME_UNKNOWN');
        expect(Date.now() - started).toBeLessThan(2_000);
        // While a command is overdue nothing more is sent, so this refusal is "not applied", and it
        // comes at once rather than after another timeout.
        const refusedAt = Date.now();
        expect(
          await rejectionCode(a.putFlag('production', makeFlag('never'), undefined, { actor: 'alice' })),
        ).toBe('VIGIL_STORE_UNAVAILABLE');
        expect(Date.now() - refusedAt).toBeLessThan(400);
      } finally {
        server.resume();
      }
      // The store sends again once Redis answers its probe.
      for (let i = 0; ; i++) {
        const ok = await a.ping().then(
          () => true,
          () => false,
        );
        if (ok) break;
        if (i > 100) throw new Error('store never answered again');
        await sleep(20);
      }

      // The frozen server may still run the write it had received: either all of it or none.
      const snapshot = await a.snapshot('production');
      const audit = await a.audit('production', { limit: 10 });
      const log = await a.changesSince('production', 0);
      expect([1, 2]).toContain(snapshot.revision);
      expect(audit).toHaveLength(snapshot.revision);
      expect(log).toHaveLength(snapshot.revision);
      expect(snapshot.flags.some((f) => f.key === 'search')).toBe(snapshot.revision === 2);
      expect(snapshot.flags.some((f) => f.key === 'never')).toBe(false);
      await a.putFlag('production', makeFlag('late'), undefined, { actor: 'alice' });
      await onB.until((c) => c.at(-1)?.revision === snapshot.revision + 1, 10_000);
      expect(revisions(onB.changes)).toEqual(Array.from({ length: snapshot.revision + 1 }, (_, i) => i + 1));
    },
  );

  it.skipIf(process.env.REDIS_URL)(
    'brings a subscriber that missed more than the logs hold up to date with a reset',
    async () => {
      const prefix = freshPrefix();
      const b = await connect(prefix, slowReconnect);
      const onB = collect(b);
      const writer = await connect(prefix, { changeLogLimit: 10, changeStreamLimit: 10 });
      for (const key of ['a', 'b', 'c'])
        await writer.putFlag('production', makeFlag(key), undefined, { actor: 'w' });
      await onB.until((c) => c.length === 3);

      await server.stop();
      await server.start();
      // A fresh connection writes past both logs before B's tailer gets back.
      const burst = await connect(prefix, { changeLogLimit: 10, changeStreamLimit: 10 });
      await burst.deleteFlag('production', 'a', undefined, { actor: 'w' });
      for (let i = 0; i < 250; i++) {
        await burst.putFlag('production', makeFlag('b', { description: `v${i}` }), undefined, { actor: 'w' });
      }
      const expected = await burst.snapshot('production');
      await onB.until((c) => c.at(-1)?.revision === expected.revision, 10_000);

      const replayed = replay(onB.changes);
      expect(sortByKey(replayed.flags)).toEqual(sortByKey(expected.flags));
      expect(replayed.revision).toBe(expected.revision);
      const order = revisions(onB.changes);
      expect(order).toEqual([...order].sort((x, y) => x - y));
    },
  );

  it.skipIf(process.env.REDIS_URL)(
    'catches a subscriber up from the environment logs when the change stream lost what it missed',
    async () => {
      const prefix = freshPrefix();
      const b = await connect(prefix, slowReconnect);
      const onB = collect(b);
      const writer = await connect(prefix);
      await writer.putFlag('production', makeFlag('a'), undefined, { actor: 'w' });
      await onB.until((c) => c.length === 1);

      await server.stop();
      await server.start();
      await waitUntil(() =>
        writer.ping().then(
          () => true,
          () => false,
        ),
      );
      await writer.putFlag('production', makeFlag('b'), undefined, { actor: 'w' });
      await writer.putFlag('staging', makeFlag('c'), undefined, { actor: 'w' });
      // Nothing after these entries would reveal the gap: only the reconnect catch-up can.
      await deleteKeys(server.url, `${prefix}changes`);

      await onB.until((c) => c.length === 3, 10_000);
      expect(onB.changes.map((c) => [c.env, c.revision, c.flags[0]?.key])).toEqual(
        expect.arrayContaining([
          ['production', 1, 'a'],
          ['production', 2, 'b'],
          ['staging', 1, 'c'],
        ]),
      );
      expect(onB.changes.some((c) => c.reset)).toBe(false);
    },
  );
});

/** Applies changes the way a stream server would, honouring resets. */
function replay(changes: Change[]): { revision: number; flags: Flag[]; segments: Segment[] } {
  const flags = new Map<string, Flag>();
  const segments = new Map<string, Segment>();
  let revision = 0;
  for (const change of changes) {
    if (change.reset) {
      flags.clear();
      segments.clear();
    }
    for (const f of change.flags) flags.set(f.key, f);
    for (const s of change.segments) segments.set(s.key, s);
    for (const key of change.deleted.flags) flags.delete(key);
    for (const key of change.deleted.segments) segments.delete(key);
    revision = change.revision;
  }
  return { revision, flags: [...flags.values()], segments: [...segments.values()] };
}

function sortByKey<T extends { key: string }>(items: T[]): T[] {
  return [...items].sort((x, y) => (x.key < y.key ? -1 : 1));
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(50);
  }
}

/** Restarts the private server if a failed test left it stopped. */
async function ensureUp(redis: TestRedis): Promise<void> {
  const probe = new Redis(redis.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  const up = await probe.connect().then(
    () => true,
    () => false,
  );
  probe.disconnect();
  if (!up) await redis.start();
}

async function deleteKeys(url: string, pattern: string): Promise<void> {
  const client = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}
