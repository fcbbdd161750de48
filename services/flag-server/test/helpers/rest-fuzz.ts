import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Flag,
  flagHealthSchema,
  flagIssues,
  flagSchema,
  KEY_PATTERN,
  MAX_DURATION_MS,
  scheduleSchema,
  scheduleStepSchema,
  segmentIssues,
  segmentSchema,
  validateFlag,
  validateSegment,
} from '@vigil/proto';
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { EmbeddedStore } from '../../src/store/embedded.js';
import { splitFlag } from '../../src/store/records.js';
import type { Store } from '../../src/store/store.js';
import {
  bodiesNearLimit,
  brokenBody,
  expectErrorBody,
  headerGarbage,
  hostileQuery,
  hostileSegment,
  mutate,
  mutationArb,
  type StoreState,
} from './fuzz.js';
import { boolFlag, startServer, type TestServer } from './server.js';

/** The body limit the fuzzed servers run with: small, so bodies around it are cheap to send. */
export const FUZZ_BODY_LIMIT = 64 * 1024;

/** A fuzzed server, and a way to wait until it has finished with requests whose connections are gone. */
export interface FuzzServer extends TestServer {
  /**
   * Resolves once no store call has run for a few turns of the event loop: a request the server read in
   * full is carried out even when its client cut the connection, and may write after the client moved on.
   */
  settle(): Promise<void>;
}

/** `store` behind a proxy that counts its calls still running. */
function countingStore(store: Store): { store: Store; running: () => number } {
  let running = 0;
  const done = () => {
    running--;
  };
  const proxy = new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (result instanceof Promise) {
          running++;
          result.then(done, done);
        }
        return result;
      };
    },
  });
  return { store: proxy, running: () => running };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A server for fuzzing with the body limit above, on `store` or else an embedded store kept in memory-backed
 * `/dev/shm` when there is one: the embedded store fsyncs every write, and thousands of runs write.
 */
export async function startFuzzServer(store?: Store): Promise<FuzzServer> {
  const config = { bodyLimit: FUZZ_BODY_LIMIT };
  const dataDir = store
    ? undefined
    : await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'vigil-fuzz-'));
  const backing = store ?? new EmbeddedStore({ dataDir: dataDir!, onListenerError: () => {} });
  if (!store) await backing.start();
  const counted = countingStore(backing);
  const server = await startServer({ store: counted.store, config });
  return {
    ...server,
    async settle() {
      let quiet = 0;
      while (quiet < 3) {
        await turn();
        quiet = counted.running() === 0 ? quiet + 1 : 0;
      }
    },
    async close() {
      await server.close();
      if (store) return;
      await backing.close();
      await rm(dataDir!, { recursive: true, force: true });
    },
  };
}

/** Tokens and records the fuzzer aims at, created before it starts. */
export interface World {
  admin: string;
  read: string;
  sdkServer: string;
  sdkClient: string;
  /** Ids of throwaway tokens a DELETE may hit. */
  victims: string[];
  incidents: string[];
}

/** Creates the flags, segment, schedule, incidents and tokens the fuzzer's valid requests refer to. */
export async function seedWorld(server: TestServer): Promise<World> {
  const { store } = server;
  const meta = { actor: 'seed' };
  await store.putSegment('production', segmentSchema.parse({ key: 'beta', included: ['user-1'] }), meta);
  for (const flag of [
    boolFlag('base'),
    boolFlag('killable'),
    boolFlag('sched'),
    boolFlag('shared', {
      clientSide: true,
      rules: [
        {
          id: 'beta',
          clauses: [{ attribute: 'key', op: 'inSegment', values: ['beta'] }],
          serve: { variant: 'on' },
        },
      ],
    }),
  ]) {
    await store.putFlag('production', flagSchema.parse(flag), undefined, meta);
  }
  await store.putSchedule(
    'production',
    'sched',
    {
      ...meta,
      schedule: scheduleSchema.parse({
        variant: 'on',
        steps: [{ percent: 10, hold: '5m' }],
        status: 'paused',
      }),
    },
    undefined,
  );
  const incidents = ['inc-open', 'inc-other'];
  for (const id of incidents) {
    await store.putIncident({
      id,
      env: 'production',
      flag: 'shared',
      flagVersion: 1,
      severity: 'sev2',
      status: 'open',
      title: 'shared regressed',
      summary: 'error rate 5% vs 0.5%',
      killed: false,
      cohorts: [{ variant: 'on', requests: 100, errors: 5, errorRate: 0.05, p99LatencyMs: null }],
      detectedAt: '2030-03-01T12:00:00.000Z',
      timeline: [{ at: '2030-03-01T12:00:00.000Z', kind: 'detection', message: 'detected' }],
    });
  }
  const victims: string[] = [];
  for (let i = 0; i < 3; i++) {
    const { token } = await server.app.vigil.tokens.create({ name: `victim-${i}`, scopes: ['read'] }, 'seed');
    victims.push(token.id);
  }
  return {
    admin: server.admin,
    read: await server.token(['read'], undefined, 'fuzz-read'),
    sdkServer: await server.token(['sdk-server'], 'production', 'fuzz-sdk-server'),
    sdkClient: await server.token(['sdk-client'], 'production', 'fuzz-sdk-client'),
    victims,
    incidents,
  };
}

// ---------------------------------------------------------------------------------------------------
// Valid bodies, the starting points of the mutations

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
/** Keys as the key pattern allows them, with the longest allowed one now and then. */
export const keyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,24}$/) },
  { weight: 1, arbitrary: fc.stringMatching(KEY_PATTERN) },
  { weight: 1, arbitrary: fc.constant('k'.repeat(128)) },
);
const safeJson = fc
  .jsonValue({ maxDepth: 2 })
  .filter((v) => !/"(__proto__|constructor|prototype)"/.test(JSON.stringify(v)));
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const isoDate = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());

const variantsArb = fc.oneof(
  fc.constant([
    { key: 'on', value: true as unknown },
    { key: 'off', value: false as unknown },
  ]),
  fc
    .tuple(
      fc.uniqueArray(name, { minLength: 2, maxLength: 4 }),
      fc.constantFrom<'string' | 'number' | 'json'>('string', 'number', 'json'),
    )
    .chain(([keys, kind]) => {
      const value: fc.Arbitrary<unknown> =
        kind === 'string'
          ? fc.string({ maxLength: 20 })
          : kind === 'number'
            ? finite
            : fc.dictionary(name, safeJson, { maxKeys: 3 });
      return fc
        .tuple(...keys.map(() => value))
        .map((values) => keys.map((key, i) => ({ key, value: values[i] })));
    }),
);

const list = <T>(arb: fc.Arbitrary<T>) => fc.array(arb, { minLength: 1, maxLength: 3 });
const clauseValues: Record<string, fc.Arbitrary<unknown[]>> = {
  in: list(fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean())),
  notIn: list(fc.oneof(fc.string({ maxLength: 20 }), fc.integer())),
  contains: list(fc.string({ maxLength: 10 })),
  startsWith: list(fc.string({ maxLength: 10 })),
  endsWith: list(fc.string({ maxLength: 10 })),
  matches: fc.constantFrom(['^a'], ['b$', '[0-9]+'], ['^(foo|bar)$']),
  lt: list(finite),
  lte: list(finite),
  gt: list(fc.integer()),
  gte: list(fc.integer()),
  before: list(fc.oneof(isoDate, fc.nat())),
  after: list(isoDate),
  semverEq: list(fc.constantFrom('1.0.0', '2.3.4-beta.1', 'v1.2.3', '10.20.30+build.1')),
  semverLt: list(fc.constantFrom('1.0.0', '2.0.0-rc.1')),
  semverGt: list(fc.constantFrom('0.9.0')),
  exists: fc.constant([]),
};

const attribute = fc.oneof(
  fc.constantFrom('key', 'country', 'device.os', 'plan'),
  fc.stringMatching(/^[a-z]{1,8}(\.[a-z]{1,8}){0,2}$/),
);

// Built once: constructing an arbitrary (stringMatching above all) costs far more than drawing from it.
const clauseArbs = Object.fromEntries(
  [true, false].map((segments) => {
    const ops = Object.keys(clauseValues).concat(segments ? ['inSegment'] : []);
    const arb = fc.constantFrom(...ops).chain((op) =>
      fc.record(
        {
          attribute,
          op: fc.constant(op),
          values: op === 'inSegment' ? fc.constant(['beta']) : clauseValues[op]!,
          negate: fc.boolean(),
        },
        { requiredKeys: ['attribute', 'op', 'values'] },
      ),
    );
    return [String(segments), arb];
  }),
) as Record<string, fc.Arbitrary<Record<string, unknown>>>;

/** A clause valid on its own; `inSegment` (when `segments`) names the seeded segment `beta`. */
export function clauseArb(segments: boolean): fc.Arbitrary<Record<string, unknown>> {
  return clauseArbs[String(segments)]!;
}

/** Weights for `n` variants summing to 100000. */
const weightsArb = (n: number) =>
  fc.array(fc.integer({ min: 0, max: 100_000 }), { minLength: n - 1, maxLength: n - 1 }).map((cuts) => {
    const points = [0, ...cuts.sort((a, b) => a - b), 100_000];
    return points.slice(1).map((p, i) => p - points[i]!);
  });

function serveArb(variants: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    fc.constantFrom(...variants).map((variant) => ({ variant })),
    fc.shuffledSubarray(variants, { minLength: 1 }).chain((chosen) =>
      fc
        .record(
          {
            weights: weightsArb(chosen.length).map((ws) =>
              chosen.map((variant, i) => ({ variant, weight: ws[i] })),
            ),
            bucketBy: fc.constantFrom('key', 'org.id'),
            exposure: fc.integer({ min: 0, max: 100_000 }),
          },
          { requiredKeys: ['weights'] },
        )
        .map((rollout) => ({ rollout })),
    ),
  );
}

const holdArb = fc.oneof(
  fc.integer({ min: 0, max: MAX_DURATION_MS / 1000 }),
  fc.constantFrom('5m', '90s', '1h', '0s', '250ms', '365d', '8760h'),
);

/** Percents rising step by step, at most three decimals each. */
const stepsArb = fc
  .array(fc.record({ percent: fc.integer({ min: 1, max: 100_000 }).map((p) => p / 1000), hold: holdArb }), {
    minLength: 1,
    maxLength: 4,
  })
  .map((steps) => {
    const percents = steps.map((s) => s.percent).sort((a, b) => a - b);
    return steps.map((s, i) => ({ percent: percents[i], hold: s.hold }));
  });

/** A schedule as an imported flag may carry it, part way through. */
function importedScheduleArb(variants: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      variant: fc.constantFrom(...variants),
      steps: stepsArb,
      status: fc.constantFrom('pending', 'running', 'paused', 'completed', 'rolled_back', 'aborted'),
      stepIndex: fc.oneof(fc.integer({ min: -1, max: 3 }), fc.maxSafeNat()),
      stepStartedAt: isoDate,
      remainingHoldMs: fc.oneof(fc.nat(), fc.maxSafeNat()),
      updatedAt: isoDate,
      reason: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: ['variant', 'steps'] },
  );
}

/** A valid flag (for the production environment, where `base` and segment `beta` exist). */
export function flagArb(key: fc.Arbitrary<string>): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(key, variantsArb).chain(([k, variants]) => {
    const keys = variants.map((v) => v.key);
    return fc.record(
      {
        key: fc.constant(k),
        variants: fc.constant(variants),
        offVariant: fc.constantFrom(...keys),
        enabled: fc.boolean(),
        fallthrough: serveArb(keys),
        rules: fc.uniqueArray(
          fc.record({
            id: name,
            clauses: fc.array(clauseArb(true), { maxLength: 3 }),
            serve: serveArb(keys),
          }),
          { selector: (r) => r.id, maxLength: 3 },
        ),
        description: fc.string({ maxLength: 40 }),
        tags: fc.array(fc.string({ minLength: 1, maxLength: 10 }), { maxLength: 3 }),
        owner: fc.string({ maxLength: 20 }),
        salt: fc.string({ minLength: 1, maxLength: 20 }),
        clientSide: fc.boolean(),
        prerequisites:
          k === 'base' ? fc.constant([]) : fc.constantFrom([], [{ flag: 'base', variant: 'on' }]),
        // A create may import a scheduled (or killed) flag; the store keeps what it brings.
        schedule: importedScheduleArb(keys),
        killed: fc.boolean(),
        guard: fc.record(
          {
            enabled: fc.boolean(),
            severity: fc.constantFrom('sev1', 'sev2', 'sev3'),
            maxErrorRate: fc.double({ min: 0, max: 1, noNaN: true }),
            minSamples: fc.integer({ min: 1, max: 10_000 }),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ['key', 'variants', 'offVariant', 'enabled', 'fallthrough'] },
    );
  });
}

/** A valid segment. */
export function segmentArb(key: fc.Arbitrary<string>): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      key,
      description: fc.string({ maxLength: 40 }),
      included: fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
      excluded: fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
      rules: fc.array(fc.array(clauseArb(false), { maxLength: 2 }), { maxLength: 2 }),
    },
    { requiredKeys: ['key'] },
  );
}

/** A valid schedule body for a boolean flag. */
export const scheduleBodyArb: fc.Arbitrary<Record<string, unknown>> = stepsArb.map((steps) => ({
  variant: 'on',
  steps,
}));

const summaryArb = fc.record({
  flag: fc.constantFrom('shared', 'base'),
  variant: fc.constantFrom('on', 'off'),
  version: fc.nat(),
  windowStart: fc.constant('2030-01-01T00:00:00.000Z'),
  windowEnd: fc.constant('2030-01-01T00:00:10.000Z'),
  requests: fc.constant(10),
  errors: fc.integer({ min: 0, max: 10 }),
  latency: fc.constant({ alpha: 0.01, zero: 0, bins: [[100, 10]], count: 10, sum: 120 }),
});

// ---------------------------------------------------------------------------------------------------
// The route table

type Writes = 'env' | 'tokens' | 'incidents';
type Params = Record<string, string>;

/** How the fuzzer calls one route. */
export interface RouteSpec {
  /** `people`: admin REST with a bearer token; `sdk`: an SDK key; `webhook`: the token may be in the body. */
  access: 'public' | 'people' | 'sdk' | 'webhook';
  /** A body the route accepts, which the mutations start from; `params` are the decoded path params. */
  body?: (params: Params, world: World) => fc.Arbitrary<unknown>;
  /** Query keys the route knows. */
  query?: string[];
  /** What an accepted request may change in the store. */
  writes?: Writes;
  /**
   * An accepted request opens an endless stream (server-sent events), which an injected request
   * would wait on for ever: only refused credentials are fuzzed (the stream has tests of its own).
   */
  stream?: true;
}

const reason = fc.record({
  reason: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== ''),
});
const optionalReason = fc.constantFrom({}, { reason: 'fuzz' });
const note = fc.constantFrom({}, { note: 'checked' });
const flagBody = (params: Params) =>
  flagArb(params.key !== undefined && KEY_PATTERN.test(params.key) ? fc.constant(params.key) : keyArb);

/**
 * Every route, by `METHOD /pattern`. A route missing here fails "the fuzzer knows every route", so a
 * new route is fuzzed as soon as it exists. HEAD routes are Fastify's, answered by the GET handler.
 */
export const ROUTES: Record<string, RouteSpec> = {
  'GET /openapi.json': { access: 'public' },
  'GET /healthz': { access: 'public' },
  'GET /readyz': { access: 'public' },
  'GET /metrics': { access: 'public' },
  'OPTIONS /v1/flags': { access: 'public' },
  'OPTIONS /v1/metrics': { access: 'public' },
  'GET /v1/stream': { access: 'public' },
  'GET /v1/flags': { access: 'sdk', query: ['key'] },
  'POST /v1/metrics': {
    access: 'sdk',
    body: () => fc.record({ sdk: fc.constant('fuzz'), summaries: fc.array(summaryArb, { maxLength: 2 }) }),
  },
  'GET /api/v1/envs/:env/flags': { access: 'people' },
  'POST /api/v1/envs/:env/flags': { access: 'people', body: flagBody, writes: 'env' },
  'GET /api/v1/envs/:env/flags/:key': { access: 'people' },
  'PUT /api/v1/envs/:env/flags/:key': { access: 'people', body: flagBody, writes: 'env' },
  'DELETE /api/v1/envs/:env/flags/:key': { access: 'people', writes: 'env' },
  'POST /api/v1/envs/:env/flags/:key/kill': { access: 'people', body: () => reason, writes: 'env' },
  'POST /api/v1/envs/:env/flags/:key/revive': { access: 'people', body: () => reason, writes: 'env' },
  'PUT /api/v1/envs/:env/flags/:key/schedule': {
    access: 'people',
    body: () => scheduleBodyArb,
    writes: 'env',
  },
  'POST /api/v1/envs/:env/flags/:key/schedule/pause': {
    access: 'people',
    body: () => optionalReason,
    writes: 'env',
  },
  'POST /api/v1/envs/:env/flags/:key/schedule/resume': {
    access: 'people',
    body: () => optionalReason,
    writes: 'env',
  },
  'POST /api/v1/envs/:env/flags/:key/schedule/abort': {
    access: 'people',
    body: () => optionalReason,
    writes: 'env',
  },
  'GET /api/v1/envs/:env/flags/:key/health': { access: 'people', query: ['gate', 'require'] },
  'POST /api/v1/envs/:env/flags/:key/health': {
    access: 'webhook',
    query: ['gate', 'require'],
    body: () =>
      fc.record(
        {
          name: fc.constant('app'),
          phase: fc.constantFrom('Progressing', 'Succeeded'),
          metadata: fc.record({ token: fc.string() }),
        },
        { requiredKeys: ['name'] },
      ),
  },
  'GET /api/v1/envs/:env/segments': { access: 'people' },
  'GET /api/v1/envs/:env/segments/:key': { access: 'people' },
  'PUT /api/v1/envs/:env/segments/:key': {
    access: 'people',
    body: (params) => segmentArb(KEY_PATTERN.test(params.key ?? '') ? fc.constant(params.key!) : keyArb),
    writes: 'env',
  },
  'DELETE /api/v1/envs/:env/segments/:key': { access: 'people', writes: 'env' },
  'POST /api/v1/envs/:env/evaluate': {
    access: 'people',
    body: () =>
      fc.record(
        {
          context: fc
            .tuple(fc.string({ maxLength: 20 }), fc.dictionary(name, safeJson, { maxKeys: 4 }))
            .map(([key, attributes]) => ({ ...attributes, key })),
          flags: fc.array(fc.oneof(fc.constantFrom('shared', 'base', 'constructor'), keyArb), {
            maxLength: 3,
          }),
        },
        { requiredKeys: ['context'] },
      ),
  },
  'GET /api/v1/envs/:env/audit': { access: 'people', query: ['limit', 'target', 'before'] },
  'GET /api/v1/incidents': { access: 'people', query: ['env', 'status', 'limit'] },
  'GET /api/v1/incidents/:id': { access: 'people' },
  'POST /api/v1/incidents/:id/ack': { access: 'people', body: () => note, writes: 'incidents' },
  'POST /api/v1/incidents/:id/resolve': { access: 'people', body: () => note, writes: 'incidents' },
  'GET /api/v1/incidents/:id/postmortem': { access: 'people' },
  'POST /api/v1/tokens': {
    access: 'people',
    body: () =>
      fc.record({
        name: fc.string({ minLength: 1, maxLength: 30 }),
        scopes: fc.constantFrom(['read'], ['ops'], ['admin']),
      }),
    writes: 'tokens',
  },
  'GET /api/v1/tokens': { access: 'people' },
  'DELETE /api/v1/tokens/:id': { access: 'people', writes: 'tokens' },
  // Reads the store (a copy of the database); writes nothing.
  'POST /api/v1/backup': { access: 'people' },
  // The console's session: the token is in the body, and the store is never written.
  'POST /api/v1/session': {
    access: 'public',
    body: (_params, world) =>
      fc.record({ token: fc.oneof(fc.constantFrom(world.admin, world.read, world.sdkServer), fc.string()) }),
  },
  'GET /api/v1/session': { access: 'public' },
  'DELETE /api/v1/session': { access: 'public' },
  'GET /api/v1/envs': { access: 'people' },
  'GET /api/v1/events': { access: 'people', query: ['env'], stream: true },
  'GET /': { access: 'public' },
  'GET /assets/:file': { access: 'public' },
};

/** The spec for a route of the app's route list (HEAD routes use their GET's). */
export function specOf(route: string): RouteSpec | undefined {
  return ROUTES[route.replace(/^HEAD /, 'GET ')];
}

// ---------------------------------------------------------------------------------------------------
// Requests

/** One generated request and what the checks need to know about it. */
export interface FuzzRequest {
  route: string;
  options: InjectOptions & { method: string; url: string; headers: Record<string, string> };
  /** `valid`: the route's own kind of token; `weak`: a real token without the scope; `garbage`: none or junk. */
  auth: 'valid' | 'weak' | 'garbage';
  /** Path params as the handler would decode them (undefined when the segment is hostile). */
  params: Record<string, string | undefined>;
}

/** A path segment as the router hands it to the handler, when it decodes. */
function decoded(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** The JSON a payload holds, read as Fastify's parser reads it (a byte order mark is skipped). */
function payloadJson(request: FuzzRequest): Record<string, unknown> {
  return JSON.parse(String(request.options.payload).replace(/^\uFEFF/, ''));
}

function paramArb(param: string, world: World): fc.Arbitrary<{ raw: string; value: string | undefined }> {
  const plain = (arb: fc.Arbitrary<string>) => arb.map((v) => ({ raw: v, value: v }));
  const hostile = hostileSegment.map((raw) => ({ raw, value: decoded(raw) }));
  const known =
    param === 'env'
      ? fc.constant('production')
      : param === 'key'
        ? fc.constantFrom('shared', 'killable', 'sched', 'base', 'beta', 'constructor')
        : fc.constantFrom(...world.incidents, ...world.victims);
  return fc.oneof(
    { weight: 6, arbitrary: plain(known) },
    { weight: 2, arbitrary: plain(keyArb) },
    { weight: 2, arbitrary: hostile },
  );
}

/** The body a request carries: nothing, a valid one, a valid one mutated, any JSON, or not JSON at all. */
function bodyArb(spec: RouteSpec, params: Params, world: World): fc.Arbitrary<string | Buffer | undefined> {
  const valid = spec.body?.(params, world) ?? fc.constant({});
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: valid.map((v) => JSON.stringify(v)) },
    { weight: 6, arbitrary: fc.tuple(valid, mutationArb).map(([v, m]) => mutate(v, m)) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: brokenBody },
    { weight: 1, arbitrary: bodiesNearLimit(FUZZ_BODY_LIMIT) },
  );
}

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constant('application/json; charset=utf-8') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'application/json; charset=latin1',
      'APPLICATION/JSON',
      ';;',
      'application/jsonx',
      'application/json, text/plain',
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: headerGarbage },
);

const versionTag = fc.oneof(
  fc.integer({ min: 0, max: 50 }).map((n) => `"${n}"`),
  fc.constantFrom('*', 'W/"3"', '"99999999999999999999"', '"1", "2"', '1'),
  headerGarbage,
);

function authArb(
  spec: RouteSpec,
  world: World,
): fc.Arbitrary<{ header?: string; auth: FuzzRequest['auth'] }> {
  const own = spec.access === 'sdk' ? [world.sdkServer, world.sdkClient] : [world.admin];
  const weak = spec.access === 'sdk' ? [world.admin] : [world.read, world.sdkServer];
  const valid = fc
    .tuple(fc.constantFrom(...own), fc.constantFrom('Bearer ', 'bearer ', 'Bearer   '))
    .map(([secret, scheme]) => ({ header: `${scheme}${secret}`, auth: 'valid' as const }));
  const garbage = fc
    .oneof(
      fc.constant(undefined),
      headerGarbage.map((g) => `Bearer ${g}`),
      headerGarbage,
      fc.constantFrom(
        'Basic dXNlcjpwYXNz',
        'Bearer',
        'Bearer vgl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        `Bearer ${'a'.repeat(20_000)}`,
        `Bearer ${world.admin}x`,
        `Bearer ${world.admin} ${world.admin}`,
        `Token ${world.admin}`,
      ),
    )
    .map((header) => ({ ...(header === undefined ? {} : { header }), auth: 'garbage' as const }));
  return fc.oneof(
    { weight: 6, arbitrary: valid },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...weak).map((s) => ({ header: `Bearer ${s}`, auth: 'weak' as const })),
    },
    { weight: 3, arbitrary: garbage },
  );
}

/** Hostile requests to one route (`METHOD /pattern`). */
export function requestArb(route: string, world: World): fc.Arbitrary<FuzzRequest> {
  const spec = specOf(route);
  if (!spec) throw new Error(`no fuzz spec for ${route}`);
  const [method, pattern] = route.split(' ') as [string, string];
  const names = [...pattern.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  return fc.tuple(...names.map((n) => paramArb(n, world))).chain((values) => {
    const params: Record<string, string | undefined> = {};
    names.forEach((n, i) => {
      params[n] = values[i]!.value;
    });
    let i = 0;
    const path = pattern.replace(/:\w+/g, () => values[i++]!.raw);
    const hasBody = method === 'POST' || method === 'PUT' || method === 'DELETE' || method === 'OPTIONS';
    return fc
      .record({
        query: hostileQuery(spec.query ?? []),
        auth: spec.stream ? authArb(spec, world).filter((a) => a.auth === 'garbage') : authArb(spec, world),
        body: hasBody ? bodyArb(spec, params as Params, world) : fc.constant(undefined),
        contentType,
        ifMatch: fc.option(versionTag, { freq: 3 }),
        ifNoneMatch: fc.option(versionTag, { freq: 3 }),
        reason: fc.option(fc.oneof(fc.string({ maxLength: 40 }), fc.constant('r'.repeat(2049))), { freq: 4 }),
      })
      .map(({ query, auth, body, contentType: type, ifMatch, ifNoneMatch, reason: why }) => {
        const headers: Record<string, string> = {};
        if (auth.header !== undefined) headers.authorization = auth.header;
        if (body !== undefined && type !== undefined) headers['content-type'] = type;
        if (ifMatch !== null) headers['if-match'] = ifMatch;
        if (ifNoneMatch !== null) headers['if-none-match'] = ifNoneMatch;
        if (why !== null) headers['x-vigil-reason'] = why;
        return {
          route,
          auth: auth.auth,
          params,
          options: {
            method,
            url: path + query,
            headers,
            ...(body === undefined ? {} : { payload: body }),
          },
        } as FuzzRequest;
      });
  });
}

// ---------------------------------------------------------------------------------------------------
// Checks

const FLAG_WRITES = new Set(['POST /api/v1/envs/:env/flags', 'PUT /api/v1/envs/:env/flags/:key']);

/** A value as it travels (JSON has no -0, no undefined). */
const asJson = (value: unknown): unknown =>
  value === undefined ? undefined : JSON.parse(JSON.stringify(value));

/** Deep equality, compared as JSON first: the states grow, and a structural diff is only needed on failure. */
function expectSame(actual: unknown, expected: unknown, message: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual, message).toEqual(expected);
}

/** A flag without the fields the store owns (version, timestamps, kill switch, schedule). */
function writerPart(flag: Flag): unknown {
  return splitFlag(flag).body;
}

/** Every flag and segment in the state is whole: it parses as stored and passes the write-time checks. */
function expectWhole(state: StoreState, env: string): void {
  for (const flag of state.envs[env]?.flags ?? []) {
    const parsed = flagSchema.safeParse(flag);
    expect(parsed.success, `stored flag is not a flag: ${JSON.stringify(flag).slice(0, 500)}`).toBe(true);
    expectSame(parsed.data, flag, 'a stored flag lacks defaults');
    expect(flagIssues(parsed.data!)).toEqual([]);
  }
  for (const segment of state.envs[env]?.segments ?? []) {
    const parsed = segmentSchema.safeParse(segment);
    expect(parsed.success, `stored segment is not a segment: ${JSON.stringify(segment).slice(0, 500)}`).toBe(
      true,
    );
    expectSame(parsed.data, segment, 'a stored segment lacks defaults');
    expect(segmentIssues(parsed.data!)).toEqual([]);
  }
}

/**
 * The properties every exchange must have: no 5xx; every error in the one error shape with a stable
 * code; junk credentials never get through; a refused (or read-only) request leaves the store exactly
 * as it was; an accepted write changes one thing, whole, and is what was asked for.
 */
export async function checkExchange(
  server: TestServer,
  request: FuzzRequest,
  response: LightMyRequestResponse,
  before: StoreState,
  after: StoreState,
): Promise<void> {
  const spec = specOf(request.route)!;
  const { statusCode: status } = response;
  // A gate (POST by default, or `?gate=`) answers 503 with the FlagHealth body unless it passes.
  const gated =
    request.route.endsWith('/health') &&
    (request.options.method === 'POST' || /[?&]gate=/.test(request.options.url));
  if (status === 503 && gated) {
    expect(flagHealthSchema.safeParse(response.json()).success, response.body).toBe(true);
  } else {
    expect(status, response.body.slice(0, 500)).toBeLessThan(500);
    if (status >= 400 && request.options.method !== 'HEAD') expectErrorBody(response);
  }
  if (spec.access !== 'public' && request.auth === 'garbage') expect(status).toBeGreaterThanOrEqual(400);

  const write = spec.writes !== undefined && request.auth === 'valid' && status >= 200 && status < 300;
  if (!write) {
    expectSame(after, before, `${request.route} answered ${status} but changed the store`);
    return;
  }

  if (spec.writes !== 'tokens') expectSame(after.tokens, before.tokens, 'tokens changed');
  if (spec.writes !== 'incidents') expectSame(after.incidents, before.incidents, 'incidents changed');
  if (spec.writes !== 'env') expectSame(after.envs, before.envs, 'environments changed');
  if (spec.writes === 'tokens') {
    const delta = request.options.method === 'POST' ? 1 : -1;
    expect(after.tokens.length).toBe(before.tokens.length + delta);
  }
  if (spec.writes !== 'env') return;

  // One request is at most one write: one environment, one revision, one audit entry.
  const envs = new Set([...Object.keys(before.envs), ...Object.keys(after.envs)]);
  const changed = [...envs].filter(
    (env) => JSON.stringify(before.envs[env]) !== JSON.stringify(after.envs[env]),
  );
  expect(changed.length).toBeLessThanOrEqual(1);
  for (const env of changed) {
    const was = before.envs[env] ?? { revision: 0, audit: [] };
    const now = after.envs[env]!;
    expect(now.revision).toBe(was.revision + 1);
    // Exactly one audit entry appended: a new newest entry, right after the previous newest.
    expect(now.audit[0]).not.toBe(was.audit[0]);
    expect(now.audit[1]).toBe(was.audit[0]);
    expectWhole(after, env);
  }

  const env = request.params.env!;
  if (FLAG_WRITES.has(request.route)) {
    const sent = response.json() as Flag;
    const stored = asJson(await server.store.getFlag(env, sent.key)) as Flag;
    expect(stored, 'the acknowledged flag is stored').toEqual(sent);
    const asked = validateFlag({ key: sent.key, ...payloadJson(request) });
    expect(asked.ok).toBe(true);
    if (asked.ok) expect(writerPart(stored)).toEqual(asJson(writerPart(asked.value)));
    // What was written can be read back, and so killed, by its key.
    const read = await server.app.inject({
      method: 'GET',
      url: `/api/v1/envs/${env}/flags/${sent.key}`,
      headers: { authorization: `Bearer ${server.admin}` },
    });
    expect(read.statusCode, read.body.slice(0, 300)).toBe(200);
    expect(read.json()).toEqual(sent);
  }
  if (request.route === 'PUT /api/v1/envs/:env/segments/:key') {
    const sent = response.json();
    const asked = validateSegment({ key: sent.key, ...payloadJson(request) });
    expect(asked.ok).toBe(true);
    const { version: _v, updatedAt: _u, ...rest } = sent;
    if (asked.ok) {
      const { version: _av, updatedAt: _au, ...wanted } = asked.value;
      expect(rest).toEqual(asJson(wanted));
    }
  }
  if (request.route === 'PUT /api/v1/envs/:env/flags/:key/schedule') {
    const stored = await server.store.getFlag(env, request.params.key!);
    const asked = payloadJson(request) as { variant: string; steps: unknown[] };
    // Stored as sent, as the schema reads it (a step without a hold holds 0).
    expect({ variant: stored?.schedule?.variant, steps: stored?.schedule?.steps }).toEqual({
      variant: asked.variant,
      steps: asked.steps.map((step) => scheduleStepSchema.parse(step)),
    });
  }
  if (request.route === 'DELETE /api/v1/envs/:env/flags/:key') {
    expect(await server.store.getFlag(env, request.params.key!)).toBeUndefined();
  }
}
