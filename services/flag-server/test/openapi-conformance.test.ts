import type { Incident } from '@vigil/proto';
import { Ajv } from 'ajv';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenApiConformance, toJsonSchema } from './helpers/openapi-conformance.js';
import {
  bearer,
  boolFlag,
  openApiConformance,
  rolloutFlag,
  startServer,
  type TestServer,
} from './helpers/server.js';

// Every test server checks each response against /openapi.json (helpers/server.ts fails a test file
// whose servers contradicted it). This file makes sure that check has teeth and reaches every
// operation: it sends one ordinary request to each, and proves a doctored document is caught.

const json = <T = Record<string, unknown>>(body: string) => JSON.parse(body) as T;

describe('OpenAPI 3.0.3 schemas as JSON Schema', () => {
  const ajv = new Ajv({ strict: false });
  const accepts = (schema: unknown, value: unknown) => ajv.validate(toJsonSchema(schema) as object, value);

  it('nullable adds null to the type only: an enum must list null to allow it', () => {
    expect(accepts({ type: 'string', enum: ['sev1'], nullable: true }, null)).toBe(false);
    expect(accepts({ type: 'string', enum: ['sev1', null], nullable: true }, null)).toBe(true);
    expect(accepts({ type: 'integer', minimum: 0, nullable: true }, null)).toBe(true);
    expect(accepts({ type: 'integer', minimum: 0 }, null)).toBe(false);
  });

  it('boolean exclusive bounds and property names that look like keywords', () => {
    expect(accepts({ type: 'number', minimum: 0, exclusiveMinimum: true }, 0)).toBe(false);
    expect(accepts({ type: 'number', minimum: 0, exclusiveMinimum: true }, 0.1)).toBe(true);
    const schema = { type: 'object', properties: { nullable: { type: 'string' } }, required: ['nullable'] };
    expect(accepts(schema, { nullable: 'x' })).toBe(true);
    expect(accepts(schema, { nullable: 1 })).toBe(false);
  });
});

describe('every operation answers as /openapi.json documents', () => {
  let server: TestServer;
  let sdkKey: string;
  let document: { paths: Record<string, Record<string, unknown>>; components: Record<string, unknown> };

  const call = async (options: InjectOptions & { url: string }, token: string | null = server.admin) =>
    server.app.inject({ ...options, headers: { ...(token ? bearer(token) : {}), ...options.headers } });

  beforeAll(async () => {
    server = await startServer();
    sdkKey = await server.token(['sdk-server'], 'production');
    document = json((await call({ url: '/openapi.json' }, null)).body);
    const incident: Incident = {
      id: 'inc_1',
      env: 'production',
      flag: 'checkout',
      flagVersion: 1,
      severity: 'sev2',
      status: 'open',
      title: 'checkout regressed',
      summary: 'error rate 5% vs 0.5%',
      killed: false,
      cohorts: [{ variant: 'on', requests: 100, errors: 5, errorRate: 0.05, p99LatencyMs: 120 }],
      controlVariant: 'off',
      detectedAt: '2030-03-01T12:00:00.000Z',
      timeline: [{ at: '2030-03-01T12:00:00.000Z', kind: 'detection', message: 'detected' }],
    };
    await server.store.putIncident(incident);
  });

  afterAll(async () => {
    await server?.close();
  });

  it('a key-less PUT body is what the document allows, and the server takes it', async () => {
    const { key: _flagKey, ...flag } = boolFlag('keyless');
    const put = await call({ method: 'PUT', url: '/api/v1/envs/production/flags/keyless', payload: flag });
    expect(put.statusCode, put.body).toBe(201);
    const segment = { included: ['user-1'] };
    const seg = await call({
      method: 'PUT',
      url: '/api/v1/envs/production/segments/keyless',
      payload: segment,
    });
    expect(seg.statusCode, seg.body).toBe(201);
    const ajv = new Ajv({ strict: false });
    const components = document.components.schemas as Record<string, unknown>;
    const definitions = Object.fromEntries(Object.entries(components).map(([n, s]) => [n, toJsonSchema(s)]));
    ajv.addSchema({ $id: 'vigil-openapi', definitions });
    const bodyOf = (path: string) =>
      (document.paths[path]!.put as { requestBody: { content: { 'application/json': { schema: unknown } } } })
        .requestBody.content['application/json'].schema;
    expect(
      ajv.validate(toJsonSchema(bodyOf('/api/v1/envs/{env}/flags/{key}')) as object, flag),
      ajv.errorsText(),
    ).toBe(true);
    expect(
      ajv.validate(toJsonSchema(bodyOf('/api/v1/envs/{env}/segments/{key}')) as object, segment),
      ajv.errorsText(),
    ).toBe(true);
    // POST still needs the key: there is no path to take it from.
    expect(
      ajv.validate(
        toJsonSchema(
          (
            document.paths['/api/v1/envs/{env}/flags']!.post as {
              requestBody: { content: { 'application/json': { schema: unknown } } };
            }
          ).requestBody.content['application/json'].schema,
        ) as object,
        flag,
      ),
    ).toBe(false);
  });

  it('an ordinary request to each operation gets a documented status and body', async () => {
    const flags = '/api/v1/envs/production/flags';
    const answered: [string, number][] = [];
    const send = async (options: InjectOptions & { url: string }, token: string | null = server.admin) => {
      const response = await call(options, token);
      answered.push([`${options.method ?? 'GET'} ${options.url}`, response.statusCode]);
      return response;
    };
    await send({ url: '/healthz' }, null);
    await send({ url: '/readyz' }, null);
    await send({ url: '/metrics' }, null);

    await send({ method: 'POST', url: flags, payload: rolloutFlag('checkout', 10) });
    await send({ method: 'POST', url: flags, payload: boolFlag('doomed') });
    const got = await send({ url: `${flags}/checkout` });
    await send({ url: `${flags}/checkout`, headers: { 'if-none-match': String(got.headers.etag) } });
    await send({ url: flags });
    await send({
      method: 'PUT',
      url: `${flags}/checkout`,
      payload: rolloutFlag('checkout', 10, { description: 'x' }),
    });
    await send({ method: 'POST', url: `${flags}/doomed/kill`, payload: { reason: 'test' } });
    await send({ method: 'POST', url: `${flags}/doomed/revive`, payload: { reason: 'test' } });
    await send({ method: 'DELETE', url: `${flags}/doomed` });
    await send({
      method: 'PUT',
      url: `${flags}/checkout/schedule`,
      payload: { variant: 'on', steps: [{ percent: 20, hold: 60_000 }, { percent: 100 }] },
    });
    for (const action of ['pause', 'resume', 'abort'])
      await send({ method: 'POST', url: `${flags}/checkout/schedule/${action}`, payload: {} });
    await send({ url: `${flags}/checkout/health` });
    await send({ url: `${flags}/checkout/health?gate=1` });
    await send({
      method: 'POST',
      url: `${flags}/checkout/health`,
      payload: { name: 'podinfo', namespace: 'test', phase: 'Progressing', metadata: {} },
    });
    await send({
      method: 'POST',
      url: `${flags}/checkout/health?gate=0`,
      payload: { name: 'podinfo', metadata: {} },
    });

    const segments = '/api/v1/envs/production/segments';
    await send({ method: 'PUT', url: `${segments}/beta`, payload: { key: 'beta', included: ['u1'] } });
    await send({ method: 'PUT', url: `${segments}/beta`, payload: { included: ['u1', 'u2'] } });
    const segment = await send({ url: `${segments}/beta` });
    await send({ url: `${segments}/beta`, headers: { 'if-none-match': String(segment.headers.etag) } });
    await send({ url: segments });
    await send({ method: 'DELETE', url: `${segments}/beta` });

    await send({
      method: 'POST',
      url: '/api/v1/envs/production/evaluate',
      payload: { context: { key: 'u1' } },
    });
    await send({ url: '/api/v1/envs/production/audit?limit=5' });

    await send({ url: '/api/v1/incidents' });
    await send({ url: '/api/v1/incidents/inc_1' });
    await send({ url: '/api/v1/incidents/inc_1/postmortem' });
    await send({ method: 'POST', url: '/api/v1/incidents/inc_1/ack', payload: { note: 'looking' } });
    await send({ method: 'POST', url: '/api/v1/incidents/inc_1/resolve', payload: {} });

    const created = await send({
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'ci', scopes: ['read'] },
    });
    await send({ url: '/api/v1/tokens' });
    await send({
      method: 'DELETE',
      url: `/api/v1/tokens/${json<{ token: { id: string } }>(created.body).token.id}`,
    });
    await send({ url: '/api/v1/envs' });
    await send({ method: 'POST', url: '/api/v1/backup' });

    const flagsForSdk = await send({ url: '/v1/flags' }, sdkKey);
    await send({ url: '/v1/flags', headers: { 'if-none-match': String(flagsForSdk.headers.etag) } }, sdkKey);
    await send(
      { method: 'POST', url: '/v1/metrics', payload: { sdk: 'conformance', summaries: [] } },
      sdkKey,
    );

    const signIn = await send(
      { method: 'POST', url: '/api/v1/session', payload: { token: server.admin } },
      null,
    );
    const cookie = String(signIn.headers['set-cookie'] ?? '').split(';')[0]!;
    const session = await send({ url: '/api/v1/session', headers: { cookie } }, null);
    const csrf = json<{ csrfToken?: string }>(session.body).csrfToken ?? '';
    await send({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, 'x-vigil-csrf': csrf } }, null);

    // Each request did what it was meant to (a 2xx, or the 304/503 asked for).
    const unexpected = answered.filter(([, status]) => status >= 400 && status !== 503);
    expect(unexpected).toEqual([]);

    // Every operation of the document was checked with a success, but the two that never go through
    // Fastify's reply: the WebSocket upgrade and the server-sent event stream (headers hijacked).
    const succeeded = new Set(
      [...openApiConformance.seen].filter((s) => /\s[23]\d\d$/.test(s)).map((s) => s.replace(/\s\d+$/, '')),
    );
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const missed = operations.filter((op) => !succeeded.has(op));
    expect(missed.sort()).toEqual(['GET /api/v1/events', 'GET /v1/stream']);
    // And nothing so far contradicted the document (the helper's afterAll would fail the file too).
    expect(openApiConformance.violations).toEqual([]);
  });

  it('a response the document does not allow is caught: a body off-schema, an undocumented status', async () => {
    const doctored = structuredClone(document) as typeof document;
    const components = doctored.components.schemas as Record<string, { properties: Record<string, unknown> }>;
    // A severity that may not be null (as the document said before), and a health route without its 404.
    components.FlagHealth!.properties.severity = {
      type: 'string',
      enum: ['sev1', 'sev2', 'sev3'],
      nullable: true,
    };
    const health = doctored.paths['/api/v1/envs/{env}/flags/{key}/health']!.get as {
      responses: Record<string, unknown>;
    };
    delete health.responses['404'];
    const strict = new OpenApiConformance(doctored);
    const other = await startServer();
    try {
      strict.watch(other.app);
      await other.app.inject({
        method: 'POST',
        url: '/api/v1/envs/production/flags',
        headers: bearer(other.admin),
        payload: boolFlag('checkout'),
      });
      await other.app.inject({
        url: '/api/v1/envs/production/flags/checkout/health',
        headers: bearer(other.admin),
      });
      await other.app.inject({
        url: '/api/v1/envs/production/flags/nope/health',
        headers: bearer(other.admin),
      });
      const problems = strict.take().map((v) => `${v.status} ${v.problem.slice(0, 60)}`);
      expect(problems).toEqual([
        expect.stringMatching(/^200 the body does not match the documented schema: \/severity/),
        expect.stringMatching(/^404 status 404 is not documented/),
      ]);
    } finally {
      await other.close();
    }
  });
});
