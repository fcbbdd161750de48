import { randomBytes } from 'node:crypto';
import type { Flag } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapAdmin, Tokens } from '../src/auth.js';
import { RedisStore } from '../src/store/redis.js';
import { adminSecret, type Rest, rest, type ServerProcess, spawnServer } from './helpers/process.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { bearer, boolFlag, TestClient } from './helpers/server.js';

interface Snapshot {
  revision: number;
  flags: Flag[];
}
type Message = Record<string, unknown>;

const byKey = (flags: Flag[]) => [...flags].sort((x, y) => (x.key < y.key ? -1 : 1));
const patches = (client: TestClient) => client.ofType('patch');
const lastRevision = (client: TestClient) => Number(patches(client).at(-1)?.revision);
/** The answer to the hello (heartbeat pings may come before it). */
const first = (client: TestClient) =>
  client.messages.find((m) => m.type === 'snapshot' || m.type === 'patch')!;

/**
 * Two flag server processes on one private redis-server, as a deployment's replicas: a change written
 * through either reaches SDKs on both, in one revision order.
 */
describe('replicas on one Redis', () => {
  let redis: TestRedis;
  let a: ServerProcess;
  let b: ServerProcess;
  let onA: Rest;
  let onB: Rest;
  let sdkKey: string;
  const clients: TestClient[] = [];
  const admin = adminSecret();

  const stream = async (server: ServerProcess, hello: Message = {}): Promise<TestClient> => {
    const client = await TestClient.connect(server.streamUrl, { headers: bearer(sdkKey) });
    clients.push(client);
    client.send({ type: 'hello', sdk: 'node/test', ...hello });
    await client.until(() => first(client) !== undefined);
    return client;
  };

  beforeAll(async () => {
    redis = await startTestRedis();
    // The server processes use the default key prefix, so they need a Redis of their own.
    if (!redis.controllable) return;
    const env = {
      VIGIL_STORE: 'redis',
      REDIS_URL: redis.url,
      VIGIL_ADMIN_TOKEN: admin,
      VIGIL_HEARTBEAT: '500',
      VIGIL_TOKEN_CACHE: '0',
    };
    // Started together on an empty Redis, as a deployment's replicas are. A keeps only the last two
    // changes in memory, so resuming on it from older revisions reads Redis's change log.
    [a, b] = await Promise.all([spawnServer({ ...env, VIGIL_CHANGE_BUFFER: '2' }), spawnServer(env)]);
    onA = rest(a.url, admin);
    onB = rest(b.url, admin);
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
    await redis?.dispose();
  });

  it('replicas started together on an empty Redis share one bootstrap admin token', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    for (const server of [onA, onB]) {
      const listed = await server<{ tokens: { name: string }[] }>('GET', '/api/v1/tokens');
      expect(listed.status).toBe(200);
      expect(listed.body.tokens.filter((t) => t.name === 'bootstrap-admin')).toHaveLength(1);
    }
  });

  it('replicas bootstrapping VIGIL_ADMIN_TOKEN at the same instant all start; exactly one creates it', async () => {
    const prefix = `bootstrap-${randomBytes(4).toString('hex')}:`;
    const stores = [1, 2, 3].map(() => new RedisStore({ url: redis.url, prefix, onListenerError: () => {} }));
    await Promise.all(stores.map((s) => s.start()));
    try {
      const secret = adminSecret();
      const boots = await Promise.all(stores.map((s) => bootstrapAdmin(s, secret)));
      expect(boots.filter((boot) => boot.created)).toHaveLength(1);
      expect(boots.filter((boot) => !boot.created)).toEqual([
        { created: false, adminTokenUnknown: false },
        { created: false, adminTokenUnknown: false },
      ]);
      expect(await stores[0]!.listTokens()).toHaveLength(1);
      expect(await new Tokens(stores[2]!, 0).authenticate(secret)).toMatchObject({ scopes: ['admin'] });
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('a flag written and killed through replica A reaches an SDK streaming from replica B', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const client = await stream(b);
    expect(client.ofType('snapshot')[0]).toMatchObject({ revision: 0, flags: [] });

    const put = await onA<Flag>('PUT', '/api/v1/envs/production/flags/checkout', boolFlag('checkout'));
    expect(put.status).toBe(201);
    expect(await client.nth('patch', 1)).toMatchObject({
      revision: 1,
      flags: [{ key: 'checkout', version: 1, enabled: true, killed: false }],
    });

    const kill = await onA<Flag>('POST', '/api/v1/envs/production/flags/checkout/kill', {
      reason: 'errors up',
    });
    expect(kill.status).toBe(200);
    expect(await client.nth('patch', 2)).toMatchObject({
      revision: 2,
      flags: [{ key: 'checkout', version: 2, killed: true, killReason: 'errors up' }],
      deleted: { flags: [], segments: [] },
    });
  });

  it('SDKs on both replicas get every patch once, in revision order, whichever replica took each write', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const onBoth = [await stream(a), await stream(b)];
    const start = Number(first(onBoth[0]!).revision);
    expect(first(onBoth[1]!).revision).toBe(start);

    // One at a time, alternating replicas: each write is the next revision.
    const steps: [Rest, string, string, unknown][] = [
      [onB, 'POST', '/flags/checkout/revive', { reason: 'fixed' }],
      [onA, 'PUT', '/flags/search', boolFlag('search')],
      [onB, 'POST', '/flags/search/kill', { reason: 'slow' }],
      [onA, 'PUT', '/segments/beta', { key: 'beta', included: ['user-1'] }],
      [onB, 'PUT', '/flags/checkout', boolFlag('checkout', { description: 'v2' })],
      [onA, 'DELETE', '/flags/search', undefined],
    ];
    for (const [server, method, path, body] of steps) {
      const response = await server(method, `/api/v1/envs/production${path}`, body);
      expect(response.status, `${method} ${path}`).toBeLessThan(300);
    }
    // Then all at once on both replicas: Redis orders them.
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? onA : onB)<Flag>('PUT', `/api/v1/envs/production/flags/burst-${i}`, boolFlag(`burst-${i}`)),
      ),
    );
    expect(burst.map((r) => r.status)).toEqual(Array(20).fill(201));
    const end = start + steps.length + burst.length;
    expect(burst.map((r) => r.body.version).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 20 }, (_, i) => start + steps.length + 1 + i),
    );

    for (const client of onBoth) {
      await client.until(() => lastRevision(client) === end);
      const seen = patches(client);
      expect(seen.map((p) => p.revision)).toEqual(
        Array.from({ length: end - start }, (_, i) => start + 1 + i),
      );
      // Each patch carries exactly the records its write changed, stamped with its revision.
      for (const patch of seen) {
        for (const flag of patch.flags as Flag[]) expect(flag.version).toBe(patch.revision);
      }
      expect(seen.slice(0, steps.length)).toMatchObject([
        { flags: [{ key: 'checkout', killed: false }] },
        { flags: [{ key: 'search', killed: false }] },
        { flags: [{ key: 'search', killed: true, killReason: 'slow' }] },
        { flags: [], segments: [{ key: 'beta' }] },
        { flags: [{ key: 'checkout', description: 'v2' }] },
        { flags: [], deleted: { flags: ['search'], segments: [] } },
      ]);
    }
    // The very same patches, byte for byte, on both replicas.
    expect(patches(onBoth[0]!)).toEqual(patches(onBoth[1]!));
  });

  it('GET /v1/flags converges on both replicas to the same revision, ETag and flags', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const write = await onA<Flag>('PUT', '/api/v1/envs/production/flags/latest', boolFlag('latest'));
    expect(write.status).toBe(201);
    const poll = async (server: ServerProcess) => {
      const response = await fetch(`${server.url}/v1/flags`, { headers: bearer(sdkKey) });
      return { etag: response.headers.get('etag'), body: (await response.json()) as Snapshot };
    };
    await expect.poll(async () => (await poll(b)).body.revision, { timeout: 5_000 }).toBe(write.body.version);
    const [fromA, fromB] = await Promise.all([poll(a), poll(b)]);
    expect(fromA.body.revision).toBe(write.body.version);
    expect(fromA.etag).toBe(fromB.etag);
    expect(byKey(fromA.body.flags)).toEqual(byKey(fromB.body.flags));
    expect(fromA.body.flags.map((f) => f.key).sort()).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `burst-${i}`).sort(),
      'checkout',
      'latest',
    ]);
    // The same as the store's own view through the admin API.
    const admin = await onB<Snapshot>('GET', '/api/v1/envs/production/flags');
    expect(byKey(admin.body.flags)).toEqual(byKey(fromB.body.flags));
    // An ETag from one replica is good on the other.
    for (const server of [a, b]) {
      const again = await fetch(`${server.url}/v1/flags`, {
        headers: { ...bearer(sdkKey), 'if-none-match': fromB.etag! },
      });
      expect(again.status).toBe(304);
    }
  });

  it('an SDK resuming on replica A from a revision it reached on B gets a patch, also from beyond A’s memory', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const onB1 = await stream(b);
    const from = Number(first(onB1).revision);
    onB1.close();
    // Three writes on B: more than the two changes A keeps in memory.
    expect((await onB('PUT', '/api/v1/envs/production/flags/resume-x', boolFlag('resume-x'))).status).toBe(
      201,
    );
    expect(
      (await onB('POST', '/api/v1/envs/production/flags/resume-x/kill', { reason: 'test' })).status,
    ).toBe(200);
    expect((await onB('PUT', '/api/v1/envs/production/flags/resume-y', boolFlag('resume-y'))).status).toBe(
      201,
    );
    const now = from + 3;
    await expect
      .poll(
        async () => {
          const r = await fetch(`${a.url}/v1/flags`, { headers: bearer(sdkKey) });
          return ((await r.json()) as Snapshot).revision;
        },
        { timeout: 5_000 },
      )
      .toBe(now);

    const fromLog = await stream(a, { revision: from });
    expect(first(fromLog)).toMatchObject({
      type: 'patch',
      revision: now,
      deleted: { flags: [], segments: [] },
    });
    expect(byKey(first(fromLog)!.flags as Flag[])).toMatchObject([
      { key: 'resume-x', killed: true, version: from + 2 },
      { key: 'resume-y', killed: false, version: now },
    ]);

    const fromMemory = await stream(a, { revision: now - 1 });
    expect(first(fromMemory)).toMatchObject({
      type: 'patch',
      revision: now,
      flags: [{ key: 'resume-y', version: now }],
    });
    const current = await stream(a, { revision: now });
    expect(first(current)).toMatchObject({ type: 'patch', revision: now, flags: [], segments: [] });

    // And the resumed stream carries on with writes from B.
    expect(
      (await onB('POST', '/api/v1/envs/production/flags/resume-y/kill', { reason: 'test' })).status,
    ).toBe(200);
    expect(await fromLog.nth('patch', 2)).toMatchObject({
      revision: now + 1,
      flags: [{ key: 'resume-y', killed: true }],
    });
  });

  it('a key deleted through replica A closes its streams on replica B', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const created = await onA<{ secret: string; token: { id: string } }>('POST', '/api/v1/tokens', {
      name: 'doomed',
      scopes: ['sdk-server'],
      env: 'production',
    });
    const client = await TestClient.connect(b.streamUrl, { headers: bearer(created.body.secret) });
    clients.push(client);
    client.send({ type: 'hello', sdk: 'node/test' });
    await client.nth('snapshot', 1);
    expect((await onA('DELETE', `/api/v1/tokens/${created.body.token.id}`)).status).toBe(204);
    // B learns of it at its next heartbeat (500 ms here), when it re-checks the keys of open streams.
    expect((await client.waitClosed(5_000)).code).toBe(4401);
  });
});
