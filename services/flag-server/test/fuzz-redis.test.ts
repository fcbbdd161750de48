import { randomBytes } from 'node:crypto';
import { type FlagInput, flagSchema, MAX_DURATION_MS } from '@vigil/proto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/store/redis.js';
import { FUZZ_TIMEOUT_MS, fuzzParams, mutate, mutationArb, storeState } from './helpers/fuzz.js';
import { startTestRedis, type TestRedis } from './helpers/redis.js';
import {
  checkExchange,
  type FuzzRequest,
  flagArb,
  keyArb,
  requestArb,
  scheduleBodyArb,
  seedWorld,
  startFuzzServer,
  type World,
} from './helpers/rest-fuzz.js';
import { bearer, boolFlag, type TestServer } from './helpers/server.js';

/**
 * The Redis store writes through Lua scripts (a different path from the embedded store's), so the
 * write routes are fuzzed against it too, with fewer runs.
 */
const WRITE_ROUTES = [
  'POST /api/v1/envs/:env/flags',
  'PUT /api/v1/envs/:env/flags/:key',
  'DELETE /api/v1/envs/:env/flags/:key',
  'POST /api/v1/envs/:env/flags/:key/kill',
  'POST /api/v1/envs/:env/flags/:key/revive',
  'PUT /api/v1/envs/:env/flags/:key/schedule',
  'POST /api/v1/envs/:env/flags/:key/schedule/pause',
  'POST /api/v1/envs/:env/flags/:key/schedule/resume',
  'POST /api/v1/envs/:env/flags/:key/schedule/abort',
  'PUT /api/v1/envs/:env/segments/:key',
  'DELETE /api/v1/envs/:env/segments/:key',
  'POST /api/v1/incidents/:id/ack',
  'POST /api/v1/tokens',
  'DELETE /api/v1/tokens/:id',
];

let redis: TestRedis;
let store: RedisStore;
let server: TestServer;
let world: World;

beforeAll(async () => {
  redis = await startTestRedis();
  store = new RedisStore({
    url: redis.url,
    prefix: `fuzz-${randomBytes(4).toString('hex')}:`,
    onListenerError: () => {},
  });
  await store.start();
  server = await startFuzzServer(store);
  world = await seedWorld(server);
});
afterAll(async () => {
  await server?.close();
  await store?.close();
  await redis?.dispose();
});

async function exchange(request: FuzzRequest) {
  const before = await storeState(server.store);
  const response = await server.app.inject(request.options);
  const after = await storeState(server.store);
  await checkExchange(server, request, response, before, after);
  expect((await server.app.inject({ url: '/readyz' })).statusCode).toBe(200);
  return response;
}

describe('REST write fuzzing (Redis store)', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it.each(WRITE_ROUTES)('%s: refused whole or written whole', async (route) => {
    await fc.assert(
      fc.asyncProperty(requestArb(route, world), async (request) => {
        await exchange(request);
      }),
      fuzzParams(25),
    );
  });

  it('a valid flag with one field mutated is refused whole or stored whole', async () => {
    const arb = fc.tuple(flagArb(keyArb), mutationArb).map(
      ([flag, mutation]): FuzzRequest => ({
        route: 'POST /api/v1/envs/:env/flags',
        auth: 'valid',
        params: { env: 'production' },
        options: {
          method: 'POST',
          url: '/api/v1/envs/production/flags',
          headers: { ...bearer(world.admin), 'content-type': 'application/json' },
          payload: mutate(flag, mutation),
        },
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async (request) => {
        await exchange(request);
      }),
      fuzzParams(150),
    );
  });

  it('a valid schedule is stored exactly as sent', async () => {
    // Its own flag: the runs above may have killed or deleted the seeded ones.
    await store.putFlag('production', flagSchema.parse(boolFlag('exact')), undefined, { actor: 'seed' });
    const arb = scheduleBodyArb.map(
      (body): FuzzRequest => ({
        route: 'PUT /api/v1/envs/:env/flags/:key/schedule',
        auth: 'valid',
        params: { env: 'production', key: 'exact' },
        options: {
          method: 'PUT',
          url: '/api/v1/envs/production/flags/exact/schedule',
          headers: { ...bearer(world.admin), 'content-type': 'application/json' },
          payload: JSON.stringify(body),
        },
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async (request) => {
        const response = await exchange(request);
        expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
      }),
      fuzzParams(60),
    );
  });

  it('an imported schedule keeps its numbers exactly (Lua JSON keeps 14 digits; bounds keep them within)', async () => {
    const schedule: NonNullable<FlagInput['schedule']> = {
      variant: 'on',
      steps: [{ percent: 12.345, hold: MAX_DURATION_MS / 1000 }],
      status: 'paused',
      stepIndex: 0,
      stepStartedAt: '2030-01-01T00:00:00.000Z',
      remainingHoldMs: MAX_DURATION_MS,
    };
    const response = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: bearer(world.admin),
      payload: boolFlag('imported-exact', { schedule }),
    });
    expect(response.statusCode, response.body.slice(0, 300)).toBe(201);
    expect((await store.getFlag('production', 'imported-exact'))?.schedule).toEqual(schedule);
    // Past the bounds Redis would have stored rounded numbers (and a stepIndex no schema accepts).
    for (const bad of [{ stepIndex: Number.MAX_SAFE_INTEGER }, { remainingHoldMs: 123_456_789_012_345 }]) {
      const refused = await server.app.inject({
        method: 'POST',
        url: '/api/v1/envs/production/flags',
        headers: bearer(world.admin),
        payload: boolFlag('imported-rounded', { schedule: { ...schedule, ...bad } }),
      });
      expect(refused.statusCode, refused.body.slice(0, 300)).toBe(400);
    }
  });
});
