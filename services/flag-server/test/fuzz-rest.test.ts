import { flagSchema, segmentSchema } from '@vigil/proto';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deepArrays,
  expectErrorBody,
  FUZZ_TIMEOUT_MS,
  fuzzParams,
  listRoutes,
  mutate,
  mutationArb,
  storeState,
} from './helpers/fuzz.js';
import {
  checkExchange,
  type FuzzRequest,
  flagArb,
  keyArb,
  ROUTES,
  requestArb,
  seedWorld,
  startFuzzServer,
  type World,
} from './helpers/rest-fuzz.js';
import { bearer, boolFlag, type TestServer } from './helpers/server.js';

/** Runs per route of the hostile-request property (about 45 routes). */
const RUNS_PER_ROUTE = 50;

let server: TestServer;
let world: World;

beforeAll(async () => {
  server = await startFuzzServer();
  world = await seedWorld(server);
});
afterAll(async () => {
  await server?.close();
});

/** Sends one fuzzed request and checks every property of the exchange, then that the server still answers. */
async function exchange(request: FuzzRequest): Promise<LightMyRequestResponse> {
  const before = await storeState(server.store);
  const response = await server.app.inject(request.options);
  const after = await storeState(server.store);
  await checkExchange(server, request, response, before, after);
  const health = await server.app.inject({ method: 'GET', url: '/healthz' });
  expect(health.statusCode).toBe(200);
  return response;
}

const routeNames = Object.keys(ROUTES);

describe('REST fuzzing (embedded store)', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('the fuzzer knows every route the server serves', async () => {
    const served = listRoutes(server.app);
    const documented = Object.entries(
      (await server.app.inject({ url: '/openapi.json' })).json().paths as Record<string, object>,
    ).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    // The route tree is the source; the OpenAPI document guards the parsing of it.
    expect(served).toEqual(expect.arrayContaining(documented));
    const unknown = served.filter((route) => !(route.replace(/^HEAD /, 'GET ') in ROUTES));
    expect(unknown, 'routes without a fuzz spec').toEqual([]);
    const gone = routeNames.filter((route) => !served.includes(route));
    expect(gone, 'fuzz specs for routes that no longer exist').toEqual([]);
  });

  it.each(
    routeNames.flatMap((route) => (route.startsWith('GET ') ? [route, `HEAD ${route.slice(4)}`] : [route])),
  )('%s: hostile requests get a 4xx in the error shape and write nothing', async (route) => {
    const runs = route.startsWith('HEAD ') ? Math.ceil(RUNS_PER_ROUTE / 4) : RUNS_PER_ROUTE;
    await fc.assert(
      fc.asyncProperty(requestArb(route, world), async (request) => {
        await exchange(request);
      }),
      fuzzParams(runs),
    );
  });

  it('a valid flag with one field mutated is refused whole or stored whole', async () => {
    const arb = fc
      .tuple(flagArb(keyArb), mutationArb, fc.constantFrom('POST', 'PUT'))
      .map(([flag, mutation, method]): FuzzRequest => {
        const key = String(flag.key);
        return {
          route: method === 'POST' ? 'POST /api/v1/envs/:env/flags' : 'PUT /api/v1/envs/:env/flags/:key',
          auth: 'valid',
          params: { env: 'production', key },
          options: {
            method,
            url: method === 'POST' ? '/api/v1/envs/production/flags' : `/api/v1/envs/production/flags/${key}`,
            headers: { authorization: `Bearer ${world.admin}`, 'content-type': 'application/json' },
            payload: mutate(flag, mutation),
          },
        };
      });
    await fc.assert(
      fc.asyncProperty(arb, async (request) => {
        await exchange(request);
      }),
      fuzzParams(500),
    );
  });

  it('a valid flag is accepted and stored as sent', async () => {
    // Its own environment: the hostile runs above may have replaced `base` or deleted `beta` in production.
    const meta = { actor: 'seed' };
    await server.store.putFlag('valid', flagSchema.parse(boolFlag('base')), undefined, meta);
    await server.store.putSegment('valid', segmentSchema.parse({ key: 'beta' }), meta);
    // Without an imported schedule: a later write of the same key would have to fit the schedule it keeps.
    const arb = flagArb(keyArb.filter((k) => k !== 'base')).map(
      ({ schedule: _schedule, ...flag }): FuzzRequest => ({
        route: 'PUT /api/v1/envs/:env/flags/:key',
        auth: 'valid',
        params: { env: 'valid', key: String(flag.key) },
        options: {
          method: 'PUT',
          url: `/api/v1/envs/valid/flags/${String(flag.key)}`,
          headers: { authorization: `Bearer ${world.admin}`, 'content-type': 'application/json' },
          payload: JSON.stringify(flag),
        },
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async (request) => {
        const response = await exchange(request);
        expect(response.statusCode, response.body.slice(0, 500)).toBeLessThan(300);
      }),
      fuzzParams(150),
    );
  });
});

/** Bugs the fuzzer found, pinned one by one. */
describe('hostile input the fuzzer found mishandled', () => {
  const admin = () => bearer(world.admin);
  const refused = (response: LightMyRequestResponse, status: number, code: string) => {
    expect(response.statusCode, response.body.slice(0, 300)).toBe(status);
    expect(expectErrorBody(response)).toBe(code);
  };

  it('a body nested thousands deep is a 400, not a stack overflow (500)', async () => {
    const deepVariant = JSON.stringify(boolFlag('deep-json')).replace(
      '"value":true',
      `"value":${deepArrays(20_000)}`,
    );
    const created = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: { ...admin(), 'content-type': 'application/json' },
      payload: deepVariant,
    });
    refused(created, 400, 'VIGIL_BAD_REQUEST');
    const evaluated = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/evaluate',
      headers: { ...admin(), 'content-type': 'application/json' },
      payload: `{"context":{"key":"u","x":${deepArrays(20_000)}}}`,
    });
    refused(evaluated, 400, 'VIGIL_BAD_REQUEST');
    // A JSON variant nested 60 deep is still a flag.
    const deepButFine = {
      ...boolFlag('nested-json'),
      variants: [
        { key: 'a', value: JSON.parse(`[${deepArrays(59)}]`) },
        { key: 'b', value: [] },
      ],
      offVariant: 'b',
      fallthrough: { variant: 'a' },
    };
    const ok = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: admin(),
      payload: deepButFine,
    });
    expect(ok.statusCode, ok.body.slice(0, 300)).toBe(201);
  });

  it('a URL that does not decode, or an overlong path parameter, is a 400 in the error shape', async () => {
    for (const url of [
      '/api/v1/envs/%E0%A4%A/flags',
      '/api/v1/incidents/%zz',
      `/api/v1/envs/production/flags/${'a'.repeat(3000)}`,
    ]) {
      refused(await server.app.inject({ url, headers: admin() }), 400, 'VIGIL_BAD_REQUEST');
    }
  });

  it('a flag with the longest key (128 characters) can be read, killed and deleted', async () => {
    const key = 'L'.repeat(128);
    const url = `/api/v1/envs/production/flags/${key}`;
    const created = await server.app.inject({ method: 'PUT', url, headers: admin(), payload: boolFlag(key) });
    expect(created.statusCode, created.body.slice(0, 300)).toBe(201);
    expect((await server.app.inject({ url, headers: admin() })).statusCode).toBe(200);
    const kill = {
      method: 'POST' as const,
      url: `${url}/kill`,
      headers: admin(),
      payload: { reason: 'fuzz' },
    };
    expect((await server.app.inject(kill)).json().killed).toBe(true);
    expect((await server.app.inject({ method: 'DELETE', url, headers: admin() })).statusCode).toBe(204);
  });

  it('a plain GET of the stream (no upgrade) is a 400 in the error shape, not an empty 404', async () => {
    refused(await server.app.inject({ url: '/v1/stream' }), 400, 'VIGIL_BAD_REQUEST');
  });

  it('a put that drops the variant its kept schedule rolls out is refused, and writes nothing', async () => {
    await server.store.putFlag('production', flagSchema.parse(boolFlag('orphan')), undefined, {
      actor: 'seed',
    });
    const scheduled = await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/orphan/schedule',
      headers: admin(),
      payload: { variant: 'on', steps: [{ percent: 10, hold: '5m' }] },
    });
    expect(scheduled.statusCode, scheduled.body.slice(0, 300)).toBe(200);
    const before = await storeState(server.store);
    const response = await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/orphan',
      headers: admin(),
      payload: {
        ...boolFlag('orphan'),
        variants: [
          { key: 'red', value: 'red' },
          { key: 'blue', value: 'blue' },
        ],
        offVariant: 'blue',
        fallthrough: { variant: 'red' },
      },
    });
    refused(response, 400, 'VIGIL_INVALID_CONFIG');
    expect(response.json().error.details).toEqual([
      { field: 'schedule.variant', message: 'unknown variant "on" (the schedule the flag keeps)' },
    ]);
    expect(await storeState(server.store)).toEqual(before);
  });

  it('schedule percents with three decimals are accepted, even where ×1000 is inexact in floating point', async () => {
    await server.store.putFlag('production', flagSchema.parse(boolFlag('decimals')), undefined, {
      actor: 'seed',
    });
    const response = await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/decimals/schedule',
      headers: admin(),
      payload: {
        variant: 'on',
        steps: [
          { percent: 32.044, hold: '5m' },
          { percent: 100, hold: 0 },
        ],
      },
    });
    expect(response.statusCode, response.body.slice(0, 300)).toBe(200);
    const tooPrecise = await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/decimals/schedule',
      headers: admin(),
      payload: { variant: 'on', steps: [{ percent: 32.0441, hold: '5m' }] },
    });
    refused(tooPrecise, 400, 'VIGIL_INVALID_CONFIG');
  });

  it('holds over a year and steps past the end of a schedule are refused', async () => {
    await server.store.putFlag('production', flagSchema.parse(boolFlag('holds')), undefined, {
      actor: 'seed',
    });
    for (const hold of ['999999999d', 9_007_199_254_740, '366d']) {
      const response = await server.app.inject({
        method: 'PUT',
        url: '/api/v1/envs/production/flags/holds/schedule',
        headers: admin(),
        payload: { variant: 'on', steps: [{ percent: 10, hold }] },
      });
      refused(response, 400, 'VIGIL_BAD_REQUEST');
    }
    const imported = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: admin(),
      payload: boolFlag('imported', {
        schedule: { variant: 'on', steps: [{ percent: 10, hold: 60 }], status: 'running', stepIndex: 3 },
      }),
    });
    refused(imported, 400, 'VIGIL_INVALID_CONFIG');
    expect(imported.json().error.details).toEqual([
      { field: 'schedule.stepIndex', message: 'no step 3 in the schedule' },
    ]);
  });
});
