import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSecret, type Rest, rest, type ServerProcess, spawnServer } from './helpers/process.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { boolFlag } from './helpers/server.js';
import { Feed } from './helpers/sse.js';

/**
 * The console behind a load balancer: two flag server processes on one private redis-server, sharing
 * VIGIL_ADMIN_TOKEN as docker-compose.yml's replicas do. A browser's requests may reach either.
 */
describe('console sessions and live feeds across replicas on one Redis', () => {
  let redis: TestRedis;
  let a: ServerProcess;
  let b: ServerProcess;
  let onA: Rest;
  const admin = adminSecret();
  const feeds: Feed[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    // The server processes use the default key prefix, so they need a Redis of their own.
    if (!redis.controllable) return;
    const env = {
      VIGIL_STORE: 'redis',
      REDIS_URL: redis.url,
      VIGIL_ADMIN_TOKEN: admin,
      VIGIL_HEARTBEAT: '300',
      VIGIL_TOKEN_CACHE: '0',
    };
    [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]);
    onA = rest(a.url, admin);
    expect((await onA('POST', '/api/v1/envs/production/flags', boolFlag('checkout-v2'))).status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    for (const feed of feeds) feed.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.dispose();
  });

  const signIn = async (server: ServerProcess, token: string) => {
    const response = await fetch(`${server.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    expect(response.status).toBe(200);
    return {
      cookie: response.headers.getSetCookie()[0]!.split(';')[0]!,
      csrfToken: ((await response.json()) as { csrfToken: string }).csrfToken,
    };
  };

  it('a session signed in on one replica works on the other, CSRF token included', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const { cookie, csrfToken } = await signIn(a, admin);
    const read = await fetch(`${b.url}/api/v1/envs/production/flags`, { headers: { cookie } });
    expect(read.status).toBe(200);
    const kill = await fetch(`${b.url}/api/v1/envs/production/flags/checkout-v2/kill`, {
      method: 'POST',
      headers: { cookie, 'x-vigil-csrf': csrfToken, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'through replica b' }),
    });
    expect(kill.status).toBe(200);
    const revive = await onA('POST', '/api/v1/envs/production/flags/checkout-v2/revive', { reason: 'back' });
    expect(revive.status).toBe(200);
  });

  it('a kill made through one replica reaches a console feed on the other within 1 s', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const { cookie } = await signIn(a, admin);
    const { feed, response } = await Feed.open(`${b.url}/api/v1/events?env=production`, { cookie });
    feeds.push(feed);
    expect(response.status).toBe(200);
    await feed.until(() => feed.of('hello').length === 1);
    const killed = await onA('POST', '/api/v1/envs/production/flags/checkout-v2/kill', { reason: 'drill' });
    expect(killed.status).toBe(200);
    await feed.until(
      () => feed.of('change').some((e) => (e.data.flags as string[]).includes('checkout-v2')),
      1000,
    );
  });

  it('deleting the token on one replica ends its sessions and feeds on the other', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const created = await onA<{ token: { id: string }; secret: string }>('POST', '/api/v1/tokens', {
      name: 'on-call',
      scopes: ['ops'],
    });
    expect(created.status).toBe(201);
    const { cookie } = await signIn(a, created.body.secret);
    const { feed } = await Feed.open(`${b.url}/api/v1/events?env=production`, { cookie });
    feeds.push(feed);
    await feed.until(() => feed.of('hello').length === 1);
    expect((await onA('DELETE', `/api/v1/tokens/${created.body.token.id}`)).status).toBe(204);
    const read = await fetch(`${b.url}/api/v1/envs/production/flags`, { headers: { cookie } });
    expect(read.status).toBe(401);
    // Checked again at the feed's next ping.
    await feed.until(() => feed.ended, 3000);
  });
});
