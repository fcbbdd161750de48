import { type AuditEntry, type Flag, validateFlag } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis.js';
import {
  adminSecret,
  type Rest,
  rest,
  retryWhileUnavailable,
  type ServerProcess,
  spawnServer,
} from './helpers/process.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { bearer, boolFlag, TestClient } from './helpers/server.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

interface Snapshot {
  revision: number;
  flags: Flag[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const byKey = (flags: Flag[]) => [...flags].sort((x, y) => (x.key < y.key ? -1 : 1));
const patches = (client: TestClient) => client.ofType('patch');
const first = (client: TestClient) =>
  client.messages.find((m) => m.type === 'snapshot' || m.type === 'patch')!;

/**
 * Two flag server processes on one private redis-server, one SDK stream on each. Replica B reaches
 * Redis through a TCP relay the test can cut, to take B alone off Redis.
 */
describe('Redis outage across replicas', () => {
  let redis: TestRedis;
  let relay: TcpProxy;
  let a: ServerProcess;
  let b: ServerProcess;
  let onA: Rest;
  let onB: Rest;
  /** A third client of the same Redis, as another replica or an operator's script would be. */
  let direct: RedisStore;
  let sdkKey: string;
  const clients: TestClient[] = [];
  const admin = adminSecret();

  const stream = async (server: ServerProcess, hello: Record<string, unknown> = {}) => {
    const client = await TestClient.connect(server.streamUrl, { headers: bearer(sdkKey) });
    clients.push(client);
    client.send({ type: 'hello', sdk: 'node/test', ...hello });
    await client.until(() => first(client) !== undefined);
    return client;
  };
  const poll = async (server: ServerProcess, etag?: string) => {
    const response = await fetch(`${server.url}/v1/flags`, {
      headers: { ...bearer(sdkKey), ...(etag ? { 'if-none-match': etag } : {}) },
      signal: AbortSignal.timeout(5_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as Snapshot };
  };
  const ready = async (server: ServerProcess) =>
    (await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(5_000) })).status;
  const audit = async (server: Rest) =>
    (await server<{ entries: AuditEntry[] }>('GET', '/api/v1/envs/production/audit?limit=1000')).body.entries;
  /** Every kind of write, on one replica; each must be refused as a whole. */
  const everyWrite = (server: Rest) => [
    server('PUT', '/api/v1/envs/production/flags/a', boolFlag('a', { description: 'during' })),
    server('POST', '/api/v1/envs/production/flags/a/kill', { reason: 'outage' }),
    server('DELETE', '/api/v1/envs/production/flags/b'),
    server('POST', '/api/v1/envs/production/flags', boolFlag('c')),
    server('PUT', '/api/v1/envs/production/segments/s', { key: 's', included: ['user-2'] }),
    server('POST', '/api/v1/tokens', { name: 'late', scopes: ['read'] }),
  ];

  beforeAll(async () => {
    redis = await startTestRedis();
    if (!redis.controllable) return;
    relay = await startTcpProxy(redis.port);
    const env = {
      VIGIL_STORE: 'redis',
      VIGIL_ADMIN_TOKEN: admin,
      VIGIL_HEARTBEAT: '200',
      // Every request looks its key up, so serving SDKs during the outage proves the stale fallback.
      VIGIL_TOKEN_CACHE: '0',
    };
    [a, b] = await Promise.all([
      spawnServer({ ...env, REDIS_URL: redis.url }),
      spawnServer({ ...env, REDIS_URL: `redis://127.0.0.1:${relay.port}` }),
    ]);
    onA = rest(a.url, admin);
    onB = rest(b.url, admin);
    direct = new RedisStore({ url: redis.url, onListenerError: () => {} });
    await direct.start();
    const created = await onA<{ secret: string }>('POST', '/api/v1/tokens', {
      name: 'sdk',
      scopes: ['sdk-server'],
      env: 'production',
    });
    expect(created.status).toBe(201);
    sdkKey = created.body.secret;
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await direct?.close();
    await relay?.close();
    await redis?.dispose();
  });

  it('with Redis down, both replicas serve SDKs from memory, refuse every write with 503 and keep nothing of it', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    expect(
      (await onA('PUT', '/api/v1/envs/production/flags/a', boolFlag('a', { description: 'before' }))).status,
    ).toBe(201);
    expect((await onB('PUT', '/api/v1/envs/production/flags/b', boolFlag('b'))).status).toBe(201);
    expect(
      (await onA('PUT', '/api/v1/envs/production/segments/s', { key: 's', included: ['user-1'] })).status,
    ).toBe(201);
    const before = 3;
    const flagA = (await onA<Flag>('GET', '/api/v1/envs/production/flags/a')).body;
    const auditBefore = await audit(onB);
    expect(auditBefore).toHaveLength(3);
    const sdkA = await stream(a);
    const sdkB = await stream(b);
    expect(first(sdkA)).toMatchObject({ type: 'snapshot', revision: before });
    expect(first(sdkB)).toMatchObject({ type: 'snapshot', revision: before });

    await redis.stop();
    const refused = await Promise.all([...everyWrite(onA), ...everyWrite(onB)]);
    for (const response of refused) {
      expect(response.status).toBe(503);
      expect((response.body as { error: { code: string } }).error.code).toBe('VIGIL_STORE_UNAVAILABLE');
    }
    for (const server of [a, b]) {
      expect(await ready(server)).toBe(503);
      const polled = await poll(server);
      expect(polled.status).toBe(200);
      expect(polled.body.revision).toBe(before);
      expect(polled.body.flags.find((f) => f.key === 'a')).toEqual(flagA);
      expect((await poll(server, `"${before}"`)).status).toBe(304);
      // Server-side evaluation is answered from memory too.
      const evaluated = await fetch(`${server.url}/api/v1/envs/production/evaluate`, {
        method: 'POST',
        headers: { ...bearer(sdkKey), 'content-type': 'application/json' },
        body: JSON.stringify({ context: { key: 'user-1' }, flags: ['a'] }),
      });
      expect(evaluated.status).toBe(200);
      expect(await evaluated.json()).toMatchObject({ results: { a: { value: true } } });
      // An SDK reconnecting now is served: a snapshot, or an empty patch at its revision.
      expect(first(await stream(server))).toMatchObject({ type: 'snapshot', revision: before });
      expect(first(await stream(server, { revision: before }))).toMatchObject({
        type: 'patch',
        revision: before,
        flags: [],
      });
    }
    // Open streams stay open and keep their heartbeats.
    const pings = [sdkA, sdkB].map((c) => c.ofType('ping').length);
    await sleep(500);
    for (const [i, client] of [sdkA, sdkB].entries()) {
      expect(client.closed).toBeUndefined();
      expect(client.ofType('ping').length).toBeGreaterThan(pings[i]!);
      expect(patches(client)).toEqual([]);
    }

    await redis.start();
    await expect.poll(() => ready(a), { timeout: 10_000 }).toBe(200);
    await expect.poll(() => ready(b), { timeout: 10_000 }).toBe(200);
    // Nothing of the refused writes reached Redis: not the flag, not the audit, not the change log.
    expect((await onA<Flag>('GET', '/api/v1/envs/production/flags/a')).body).toEqual(flagA);
    expect((await onB('GET', '/api/v1/envs/production/flags/b')).status).toBe(200);
    expect((await onB('GET', '/api/v1/envs/production/flags/c')).status).toBe(404);
    expect(
      (await onA<{ included: string[] }>('GET', '/api/v1/envs/production/segments/s')).body.included,
    ).toEqual(['user-1']);
    expect(await audit(onA)).toEqual(auditBefore);
    expect(await direct.changesSince('production', before)).toEqual([]);
    expect((await direct.snapshot('production')).revision).toBe(before);
    expect((await direct.listTokens()).map((t) => t.name).sort()).toEqual(['bootstrap-admin', 'sdk']);

    // The first write after recovery is the next revision, on every replica and stream.
    const after = await retryWhileUnavailable(() =>
      onA<Flag>('PUT', '/api/v1/envs/production/flags/a', boolFlag('a', { description: 'after' })),
    );
    expect(after.status).toBe(200);
    expect(after.body.version).toBe(before + 1);
    for (const client of [sdkA, sdkB]) {
      expect(await client.nth('patch', 1)).toMatchObject({
        revision: before + 1,
        flags: [{ key: 'a', description: 'after', version: before + 1 }],
      });
    }
    await expect.poll(async () => (await poll(b)).body.revision, { timeout: 5_000 }).toBe(before + 1);
    const [fromA, fromB] = await Promise.all([poll(a), poll(b)]);
    expect(byKey(fromA.body.flags)).toEqual(byKey(fromB.body.flags));
  }, 60_000);

  it('a replica cut off from Redis alone serves from memory, then catches up on what others wrote meanwhile', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const sdkA = await stream(a);
    const sdkB = await stream(b);
    const start = Number(first(sdkA).revision);
    expect(first(sdkB).revision).toBe(start);

    relay.cut();
    await expect.poll(() => ready(b), { timeout: 10_000 }).toBe(503);
    expect(await ready(a)).toBe(200);
    // B refuses writes; A takes them.
    const refused = await onB('POST', '/api/v1/envs/production/flags/a/kill', { reason: 'from B' });
    expect(refused.status).toBe(503);
    expect((await onA('POST', '/api/v1/envs/production/flags/a/kill', { reason: 'from A' })).status).toBe(
      200,
    );
    // A third writer straight into Redis (another replica, a script): a new flag and a deletion.
    const checked = validateFlag(boolFlag('direct'));
    if (!checked.ok) throw new Error('bad fixture');
    const written = await direct.putFlag('production', checked.value, { absent: true }, { actor: 'script' });
    expect(written.version).toBe(start + 2);
    await direct.deleteFlag('production', 'b', undefined, { actor: 'script' });
    const end = start + 3;

    await sdkA.until(() => patches(sdkA).length === 3);
    expect(patches(sdkA).map((p) => p.revision)).toEqual([start + 1, start + 2, end]);
    // B, cut off, still serves what it had.
    await sleep(300);
    expect(patches(sdkB)).toEqual([]);
    expect(sdkB.closed).toBeUndefined();
    const stale = await poll(b);
    expect(stale.status).toBe(200);
    expect(stale.body.revision).toBe(start);

    relay.restore();
    // Caught up from the change log: each missed change as its own patch, in order.
    await sdkB.until(() => patches(sdkB).length === 3, 15_000);
    expect(patches(sdkB)).toEqual(patches(sdkA));
    expect(patches(sdkB)).toMatchObject([
      { revision: start + 1, flags: [{ key: 'a', killed: true, killReason: 'from A' }] },
      { revision: start + 2, flags: [{ key: 'direct' }] },
      { revision: end, flags: [], deleted: { flags: ['b'] } },
    ]);
    await expect.poll(() => ready(b), { timeout: 10_000 }).toBe(200);
    const [fromA, fromB] = await Promise.all([poll(a), poll(b)]);
    expect(fromB.body.revision).toBe(end);
    expect(byKey(fromB.body.flags)).toEqual(byKey(fromA.body.flags));
    // And B takes writes again, reaching A's SDK.
    const revived = await retryWhileUnavailable(() =>
      onB<Flag>('POST', '/api/v1/envs/production/flags/a/revive', { reason: 'from B' }),
    );
    expect(revived.status).toBe(200);
    expect(await sdkA.nth('patch', 4)).toMatchObject({
      revision: end + 1,
      flags: [{ key: 'a', killed: false }],
    });
  }, 60_000);

  it('with Redis hung, a write times out as 503; once Redis answers, it is whole or absent everywhere alike', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    expect((await onA('PUT', '/api/v1/envs/production/flags/h', boolFlag('h'))).status).toBe(201);
    const sdkA = await stream(a);
    const sdkB = await stream(b);
    const start = Number(first(sdkA).revision);
    expect(first(sdkB).revision).toBe(start);
    const auditBefore = await audit(onA);

    redis.pause();
    let refused: Awaited<ReturnType<Rest>>;
    try {
      const sent = Date.now();
      refused = await onA('POST', '/api/v1/envs/production/flags/h/kill', { reason: 'hung' });
      // Bounded by two 1.5 s command timeouts (the key's lookup, then the write), not by Redis.
      expect(Date.now() - sent).toBeLessThan(8_000);
      const polled = await poll(b);
      expect(polled.status).toBe(200);
      expect(polled.body.revision).toBe(start);
    } finally {
      redis.resume();
    }
    expect(refused.status).toBe(503);
    expect((refused.body as { error: { code: string } }).error.code).toBe('VIGIL_STORE_UNAVAILABLE');

    // Redis may still run a command it received before it froze: the outcome is unknown to the
    // caller (as with any timeout), but never partial: flag, audit, change log and streams agree.
    await expect.poll(() => ready(a), { timeout: 10_000 }).toBe(200);
    await sleep(500);
    const stored = await direct.snapshot('production');
    const applied = stored.revision === start + 1;
    expect(stored.revision).toBe(applied ? start + 1 : start);
    expect(stored.flags.find((f) => f.key === 'h')?.killed).toBe(applied);
    expect((await audit(onA)).length).toBe(auditBefore.length + (applied ? 1 : 0));
    for (const client of [sdkA, sdkB]) {
      await client.until(() => patches(client).length === (applied ? 1 : 0));
      if (applied)
        expect(patches(client)[0]).toMatchObject({
          revision: start + 1,
          flags: [{ key: 'h', killed: true }],
        });
    }
    for (const server of [a, b]) expect((await poll(server)).body.revision).toBe(stored.revision);
  }, 60_000);
});
