import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import { bearer, boolFlag, startServer, TestClient } from './helpers/server.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Redis outage', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => {
    await redis?.dispose();
  });

  it('serves SDKs from memory while Redis is down, refuses writes with 503, and catches up when it returns', async (ctx) => {
    if (!redis.controllable) ctx.skip();
    const store = new RedisStore({
      url: redis.url,
      prefix: `outage-${randomBytes(4).toString('hex')}:`,
      onListenerError: () => {},
    });
    await store.start();
    // A token cache of 0 ms: every request looks its token up, so serving during the outage proves the stale fallback.
    const server = await startServer({ store, config: { heartbeatMs: 200, tokenCacheMs: 0 } });
    const client = { current: undefined as TestClient | undefined };
    try {
      const admin = bearer(server.admin);
      const key = await server.token(['sdk-server'], 'production');
      const put = (description: string) =>
        server.app.inject({
          method: 'PUT',
          url: '/api/v1/envs/production/flags/a',
          headers: admin,
          payload: boolFlag('a', { description }),
        });
      expect((await put('before')).statusCode).toBe(201);

      const base = await server.listen();
      client.current = await TestClient.connect(`${base}/v1/stream`, { headers: bearer(key) });
      const stream = client.current;
      stream.send({ type: 'hello', sdk: 'node/test' });
      expect(await stream.nth('snapshot', 1)).toMatchObject({ revision: 1 });
      expect((await server.app.inject({ url: '/v1/flags', headers: bearer(key) })).statusCode).toBe(200);
      await sleep(1100); // the AOF is fsynced every second; let the first write reach the disk

      await redis.stop();
      const refused = await put('during');
      expect(refused.statusCode).toBe(503);
      expect(refused.json().error.code).toBe('VIGIL_STORE_UNAVAILABLE');
      expect((await server.app.inject({ url: '/readyz' })).statusCode).toBe(503);

      const polled = await server.app.inject({ url: '/v1/flags', headers: bearer(key) });
      expect(polled.statusCode).toBe(200);
      expect(polled.json()).toMatchObject({ revision: 1, flags: [{ key: 'a', description: 'before' }] });
      const pings = stream.ofType('ping').length;
      await sleep(700);
      expect(stream.closed).toBeUndefined();
      expect(stream.ofType('ping').length).toBeGreaterThan(pings);

      await redis.start();
      await expect
        .poll(async () => (await server.app.inject({ url: '/readyz' })).statusCode, { timeout: 10_000 })
        .toBe(200);
      let after = await put('after');
      for (let i = 0; i < 50 && after.statusCode === 503; i++) {
        await sleep(100);
        after = await put('after');
      }
      expect(after.statusCode).toBe(200);
      // Nothing of the refused write was kept: the next write is revision 2.
      expect(after.json().version).toBe(2);
      const patch = await stream.nth('patch', 1, 10_000);
      expect(patch).toMatchObject({ revision: 2, flags: [{ key: 'a', description: 'after' }] });
      const audit = await server.app.inject({ url: '/api/v1/envs/production/audit', headers: admin });
      expect(
        audit.json().entries.map((e: { after: { description: string } }) => e.after.description),
      ).toEqual(['after', 'before']);
    } finally {
      client.current?.close();
      await server.close();
      await store.close();
    }
  }, 40_000);
});
