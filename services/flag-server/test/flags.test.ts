import type { AuditEntry, Flag } from '@vigil/proto';
import type { InjectOptions } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bearer, boolFlag, segment, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let auth: Record<string, string>;
const FLAGS = '/api/v1/envs/production/flags';

beforeEach(async () => {
  server = await startServer();
  auth = bearer(server.admin);
});
afterEach(async () => {
  await server.close();
});

const call = (options: InjectOptions) =>
  server.app.inject({
    ...options,
    headers: { ...auth, ...(options.headers as Record<string, string> | undefined) },
  });
const create = async (flag: object) => {
  const response = await call({ method: 'POST', url: FLAGS, payload: flag });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as Flag;
};
const evaluate = async (key: string, context: object) => {
  const response = await call({
    method: 'POST',
    url: '/api/v1/envs/production/evaluate',
    payload: { context, flags: [key] },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().results[key] as {
    value: unknown;
    variant?: string;
    reason: string;
    detail?: string;
  };
};
const audit = async (query = '') => {
  const response = await call({ method: 'GET', url: `/api/v1/envs/production/audit${query}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().entries as AuditEntry[];
};

describe('flags CRUD', () => {
  it('creates a flag: 201, Location, ETag is the version, defaults applied', async () => {
    const response = await call({ method: 'POST', url: FLAGS, payload: boolFlag('checkout') });
    expect(response.statusCode).toBe(201);
    const flag = response.json() as Flag;
    expect(response.headers.etag).toBe(`"${flag.version}"`);
    expect(response.headers.location).toBe(`${FLAGS}/checkout`);
    expect(flag).toMatchObject({
      key: 'checkout',
      version: 1,
      killed: false,
      clientSide: false,
      rules: [],
      tags: [],
    });

    const got = await call({ method: 'GET', url: `${FLAGS}/checkout` });
    expect(got.statusCode).toBe(200);
    expect(got.headers.etag).toBe('"1"');
    expect(got.json()).toEqual(flag);

    const list = await call({ method: 'GET', url: FLAGS });
    expect(list.json()).toMatchObject({ revision: 1, flags: [flag] });
  });

  it('refuses to create a key twice with 409 and writes nothing', async () => {
    await create(boolFlag('checkout'));
    const again = await call({
      method: 'POST',
      url: FLAGS,
      payload: boolFlag('checkout', { description: 'second' }),
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('VIGIL_ALREADY_EXISTS');
    expect((await server.store.getFlag('production', 'checkout'))?.description).toBe('');
  });

  it('PUT creates (201) then replaces (200), and the key comes from the URL when the body has none', async () => {
    const { key: _key, ...body } = boolFlag('search');
    const created = await call({ method: 'PUT', url: `${FLAGS}/search`, payload: body });
    expect(created.statusCode).toBe(201);
    const updated = await call({
      method: 'PUT',
      url: `${FLAGS}/search`,
      payload: { ...body, description: 'new search' },
    });
    expect(updated.statusCode).toBe(200);
    expect(updated.json()).toMatchObject({ key: 'search', description: 'new search', version: 2 });
    expect(updated.headers.etag).toBe('"2"');
  });

  it('GET of an unknown flag is a 404 with an error body', async () => {
    const response = await call({ method: 'GET', url: `${FLAGS}/nope` });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: { code: 'VIGIL_NOT_FOUND', message: expect.any(String) } });
  });

  it('GET answers 304 to If-None-Match with the current version', async () => {
    await create(boolFlag('checkout'));
    const response = await call({
      method: 'GET',
      url: `${FLAGS}/checkout`,
      headers: { 'if-none-match': '"1"' },
    });
    expect(response.statusCode).toBe(304);
    expect(response.body).toBe('');
  });

  it('deletes a flag (204), after which it is gone', async () => {
    await create(boolFlag('old'));
    const response = await call({ method: 'DELETE', url: `${FLAGS}/old` });
    expect(response.statusCode).toBe(204);
    expect((await call({ method: 'GET', url: `${FLAGS}/old` })).statusCode).toBe(404);
    expect((await call({ method: 'DELETE', url: `${FLAGS}/old` })).statusCode).toBe(404);
  });

  it('refuses to delete a flag other flags require, naming them (409)', async () => {
    await create(boolFlag('base'));
    await create(boolFlag('child', { prerequisites: [{ flag: 'base', variant: 'on' }] }));
    const response = await call({ method: 'DELETE', url: `${FLAGS}/base` });
    expect(response.statusCode).toBe(409);
    expect(response.json().error).toMatchObject({ code: 'VIGIL_IN_USE', details: { dependents: ['child'] } });
    expect(await server.store.getFlag('production', 'base')).toBeDefined();
  });
});

describe('ETag and If-Match', () => {
  it('a PUT with the current version succeeds; with a stale one it is a 412 and nothing is written', async () => {
    await create(boolFlag('checkout'));
    const first = await call({
      method: 'PUT',
      url: `${FLAGS}/checkout`,
      headers: { 'if-match': '"1"' },
      payload: boolFlag('checkout', { description: 'alice' }),
    });
    expect(first.statusCode).toBe(200);
    expect(first.headers.etag).toBe('"2"');

    const lost = await call({
      method: 'PUT',
      url: `${FLAGS}/checkout`,
      headers: { 'if-match': '"1"' },
      payload: boolFlag('checkout', { description: 'bob' }),
    });
    expect(lost.statusCode).toBe(412);
    expect(lost.json().error.code).toBe('VIGIL_VERSION_CONFLICT');
    expect((await server.store.getFlag('production', 'checkout'))?.description).toBe('alice');
  });

  it('If-Match: * requires the flag to exist', async () => {
    const response = await call({
      method: 'PUT',
      url: `${FLAGS}/ghost`,
      headers: { 'if-match': '*' },
      payload: boolFlag('ghost'),
    });
    expect(response.statusCode).toBe(412);
    expect(await server.store.getFlag('production', 'ghost')).toBeUndefined();
  });

  it('a DELETE with a stale If-Match is a 412', async () => {
    await create(boolFlag('checkout'));
    await call({
      method: 'PUT',
      url: `${FLAGS}/checkout`,
      payload: boolFlag('checkout', { description: 'changed' }),
    });
    const response = await call({
      method: 'DELETE',
      url: `${FLAGS}/checkout`,
      headers: { 'if-match': '"1"' },
    });
    expect(response.statusCode).toBe(412);
    expect(await server.store.getFlag('production', 'checkout')).toBeDefined();
  });

  it('a malformed If-Match is a 400 naming the header', async () => {
    await create(boolFlag('checkout'));
    const response = await call({
      method: 'PUT',
      url: `${FLAGS}/checkout`,
      headers: { 'if-match': 'yesterday' },
      payload: boolFlag('checkout'),
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.details).toEqual([expect.objectContaining({ field: 'header.if-match' })]);
  });
});

describe('kill switch', () => {
  const ctx = { key: 'user-7', plan: 'pro' };
  const targeted = boolFlag('checkout', {
    rules: [
      { id: 'pro', clauses: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'on' } },
    ],
    fallthrough: { variant: 'off' },
  });

  it('kill serves offVariant; revive restores exactly what was served before', async () => {
    await create(targeted);
    const before = await evaluate('checkout', ctx);
    expect(before).toMatchObject({ value: true, variant: 'on', reason: 'TARGETING_MATCH' });

    const killed = await call({
      method: 'POST',
      url: `${FLAGS}/checkout/kill`,
      payload: { reason: 'error spike' },
    });
    expect(killed.statusCode).toBe(200);
    expect(killed.json()).toMatchObject({
      killed: true,
      killReason: 'error spike',
      killedBy: 'bootstrap-admin',
      enabled: true,
    });
    expect(await evaluate('checkout', ctx)).toMatchObject({
      value: false,
      variant: 'off',
      reason: 'DISABLED',
      detail: 'KILLED',
    });

    const revived = await call({
      method: 'POST',
      url: `${FLAGS}/checkout/revive`,
      payload: { reason: 'fixed' },
    });
    expect(revived.statusCode).toBe(200);
    expect(revived.json()).toMatchObject({
      killed: false,
      rules: targeted.rules,
      fallthrough: targeted.fallthrough,
    });
    const after = await evaluate('checkout', ctx);
    expect({ ...after, flagVersion: undefined }).toEqual({ ...before, flagVersion: undefined });
  });

  it('is idempotent: a second kill writes no revision and no audit entry', async () => {
    await create(targeted);
    const first = await call({ method: 'POST', url: `${FLAGS}/checkout/kill`, payload: { reason: 'one' } });
    const second = await call({ method: 'POST', url: `${FLAGS}/checkout/kill`, payload: { reason: 'two' } });
    expect(second.statusCode).toBe(200);
    expect(second.json().version).toBe(first.json().version);
    expect(second.json().killReason).toBe('one');
    expect((await server.store.snapshot('production')).revision).toBe(2);
    expect((await audit()).filter((e) => e.action === 'flag.kill')).toHaveLength(1);
    const revive1 = await call({ method: 'POST', url: `${FLAGS}/checkout/revive`, payload: { reason: 'a' } });
    const revive2 = await call({ method: 'POST', url: `${FLAGS}/checkout/revive`, payload: { reason: 'b' } });
    expect(revive2.json().version).toBe(revive1.json().version);
  });

  it('is never refused for a version conflict (a stale If-Match is ignored)', async () => {
    await create(targeted);
    await call({ method: 'PUT', url: `${FLAGS}/checkout`, payload: { ...targeted, description: 'edited' } });
    const response = await call({
      method: 'POST',
      url: `${FLAGS}/checkout/kill`,
      headers: { 'if-match': '"1"' },
      payload: { reason: 'now' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().killed).toBe(true);
  });

  it('an edit (PUT) keeps a killed flag killed', async () => {
    await create(targeted);
    await call({ method: 'POST', url: `${FLAGS}/checkout/kill`, payload: { reason: 'bad' } });
    const put = await call({
      method: 'PUT',
      url: `${FLAGS}/checkout`,
      payload: { ...targeted, killed: false, description: 'tweak' },
    });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ killed: true, description: 'tweak' });
  });

  it('killing an unknown flag is a 404', async () => {
    const response = await call({ method: 'POST', url: `${FLAGS}/ghost/kill`, payload: { reason: 'x' } });
    expect(response.statusCode).toBe(404);
  });
});

describe('audit', () => {
  it('records who, before/after and why for every write, newest first', async () => {
    const ops = await server.token(['ops'], undefined, 'on-call');
    await create(boolFlag('checkout'));
    await call({
      method: 'PUT',
      url: `${FLAGS}/checkout`,
      headers: { 'x-vigil-reason': 'JIRA-42 widen rollout' },
      payload: boolFlag('checkout', { description: 'v2' }),
    });
    await server.app.inject({
      method: 'POST',
      url: `${FLAGS}/checkout/kill`,
      headers: bearer(ops),
      payload: { reason: 'p99 doubled' },
    });
    await call({ method: 'PUT', url: '/api/v1/envs/production/segments/beta', payload: segment('beta') });

    const entries = await audit();
    expect(entries.map((e) => e.action)).toEqual([
      'segment.upsert',
      'flag.kill',
      'flag.update',
      'flag.create',
    ]);
    const [, kill, update, createEntry] = entries;
    expect(createEntry).toMatchObject({
      actor: 'bootstrap-admin',
      target: 'checkout',
      after: { key: 'checkout', version: 1 },
    });
    expect(createEntry!.before).toBeUndefined();
    expect(update).toMatchObject({
      actor: 'bootstrap-admin',
      reason: 'JIRA-42 widen rollout',
      before: { description: '' },
      after: { description: 'v2' },
    });
    expect(kill).toMatchObject({
      actor: 'on-call',
      reason: 'p99 doubled',
      before: { killed: false },
      after: { killed: true },
    });

    expect((await audit('?target=beta')).map((e) => e.action)).toEqual(['segment.upsert']);
    expect(await audit('?limit=2')).toHaveLength(2);
    const older = await audit(`?before=${encodeURIComponent(update!.id)}`);
    expect(older.map((e) => e.action)).toEqual(['flag.create']);
  });
});

describe('bad input: a 400 naming every bad field, and nothing written', () => {
  /** Revision and audit length, to prove nothing was written. */
  const footprint = async () => ({
    revision: (await server.store.snapshot('production')).revision,
    audit: (await server.store.audit('production', { limit: 1000 })).length,
    tokens: (await server.store.listTokens()).length,
  });

  interface BadCase {
    name: string;
    request: InjectOptions;
    fields: string[];
    code?: string;
  }

  const weights = {
    rollout: {
      weights: [
        { variant: 'on', weight: 60_000 },
        { variant: 'off', weight: 30_000 },
      ],
    },
  };
  const summary = {
    env: 'production',
    flag: 'base',
    variant: 'on',
    version: 1,
    windowStart: '2025-01-01T00:00:10.000Z',
    windowEnd: '2025-01-01T00:00:00.000Z',
    requests: 1,
    errors: 2,
    latency: { alpha: 0.01, zero: 0, bins: [], count: 0, sum: 0 },
  };

  const CASES: BadCase[] = [
    {
      name: 'POST flag with several bad fields',
      request: {
        method: 'POST',
        url: FLAGS,
        payload: { ...boolFlag('bad key!'), enabled: 'yes', offVariant: 'maybe', fallthrough: weights },
      },
      fields: ['key', 'enabled'],
      code: 'VIGIL_INVALID_CONFIG',
    },
    {
      name: 'POST flag whose variants are fine but references are not',
      request: {
        method: 'POST',
        url: FLAGS,
        payload: { ...boolFlag('f'), offVariant: 'maybe', fallthrough: weights },
      },
      fields: ['offVariant', 'fallthrough.rollout.weights'],
      code: 'VIGIL_INVALID_CONFIG',
    },
    {
      name: 'POST flag with an unknown prerequisite and an unknown segment',
      request: {
        method: 'POST',
        url: FLAGS,
        payload: boolFlag('f', {
          prerequisites: [{ flag: 'missing', variant: 'on' }],
          rules: [
            {
              id: 'r',
              clauses: [{ attribute: 'key', op: 'inSegment', values: ['nosuch'] }],
              serve: { variant: 'on' },
            },
          ],
        }),
      },
      fields: ['prerequisites[0].flag', 'rules[0].clauses[0].values[0]'],
      code: 'VIGIL_INVALID_CONFIG',
    },
    {
      name: 'PUT flag closing a prerequisite cycle',
      request: {
        method: 'PUT',
        url: `${FLAGS}/base`,
        payload: boolFlag('base', { prerequisites: [{ flag: 'child', variant: 'on' }] }),
      },
      fields: ['prerequisites'],
      code: 'VIGIL_INVALID_CONFIG',
    },
    {
      name: 'POST flag with a regex RE2 refuses (a backreference)',
      request: {
        method: 'POST',
        url: FLAGS,
        payload: boolFlag('f', {
          rules: [
            {
              id: 'r',
              clauses: [{ attribute: 'email', op: 'matches', values: ['(a)\\1'] }],
              serve: { variant: 'on' },
            },
          ],
        }),
      },
      fields: ['rules[0].clauses[0].values[0]'],
    },
    {
      name: 'POST flag with a bad environment and a bad body',
      request: { method: 'POST', url: '/api/v1/envs/-prod/flags', payload: { key: 'x' } },
      fields: ['path.env', 'variants', 'offVariant', 'enabled', 'fallthrough'],
    },
    {
      name: 'POST flag that is not an object',
      request: { method: 'POST', url: FLAGS, payload: [1, 2] },
      fields: ['(root)'],
    },
    { name: 'POST flag with no body', request: { method: 'POST', url: FLAGS }, fields: ['(root)'] },
    {
      name: 'POST flag that is not JSON',
      request: {
        method: 'POST',
        url: FLAGS,
        headers: { 'content-type': 'application/json' },
        payload: '{"key": ',
      },
      fields: [],
      code: 'VIGIL_BAD_REQUEST',
    },
    {
      name: 'PUT flag whose body key differs from the URL',
      request: { method: 'PUT', url: `${FLAGS}/base`, payload: boolFlag('other') },
      fields: ['key'],
    },
    {
      name: 'PUT flag with a bad key in the URL',
      request: { method: 'PUT', url: `${FLAGS}/_x`, payload: boolFlag('_x') },
      fields: ['path.key', 'key'],
    },
    {
      name: 'PUT flag with an oversized reason header',
      request: {
        method: 'PUT',
        url: `${FLAGS}/base`,
        headers: { 'x-vigil-reason': 'x'.repeat(3000) },
        payload: boolFlag('base'),
      },
      fields: ['header.x-vigil-reason'],
    },
    {
      name: 'DELETE flag with a bad key',
      request: { method: 'DELETE', url: `${FLAGS}/-x` },
      fields: ['path.key'],
    },
    {
      name: 'kill without a reason',
      request: { method: 'POST', url: `${FLAGS}/base/kill`, payload: {} },
      fields: ['reason'],
    },
    {
      name: 'kill with a blank reason and an extra field',
      request: { method: 'POST', url: `${FLAGS}/base/kill`, payload: { reason: '  ', force: true } },
      fields: ['reason', 'force'],
    },
    {
      name: 'revive without a body',
      request: { method: 'POST', url: `${FLAGS}/base/revive` },
      fields: ['(root)'],
    },
    {
      name: 'PUT segment with bad fields',
      request: {
        method: 'PUT',
        url: '/api/v1/envs/production/segments/beta',
        payload: {
          included: 'user-1',
          rules: [
            [
              { attribute: 'key', op: 'inSegment', values: ['x'] },
              { attribute: 'age', op: 'gt', values: ['old'] },
            ],
          ],
        },
      },
      fields: ['included'],
    },
    {
      name: 'PUT segment with nested segments and a non-numeric gt',
      request: {
        method: 'PUT',
        url: '/api/v1/envs/production/segments/beta',
        payload: {
          rules: [
            [
              { attribute: 'key', op: 'inSegment', values: ['x'] },
              { attribute: 'age', op: 'gt', values: ['old'] },
            ],
          ],
        },
      },
      fields: ['rules[0][0].op', 'rules[0][1].values[0]'],
      code: 'VIGIL_INVALID_CONFIG',
    },
    {
      name: 'PUT segment whose key differs from the URL',
      request: { method: 'PUT', url: '/api/v1/envs/production/segments/beta', payload: segment('gamma') },
      fields: ['key'],
    },
    {
      name: 'DELETE segment with a bad key',
      request: { method: 'DELETE', url: '/api/v1/envs/production/segments/.x' },
      fields: ['path.key'],
    },
    {
      name: 'evaluate with a bad context and flags',
      request: {
        method: 'POST',
        url: '/api/v1/envs/production/evaluate',
        payload: { context: 'user-1', flags: ['ok', 'not ok'] },
      },
      fields: ['context', 'flags[1]'],
    },
    {
      name: 'audit with bad paging',
      request: { method: 'GET', url: '/api/v1/envs/production/audit?limit=0&before=yesterday' },
      fields: ['query.limit', 'query.before'],
    },
    {
      name: 'POST token with bad scopes and no name',
      request: { method: 'POST', url: '/api/v1/tokens', payload: { name: '', scopes: ['root'] } },
      fields: ['name', 'scopes[0]'],
    },
    {
      name: 'POST token: an SDK key without an environment, mixed with admin',
      request: {
        method: 'POST',
        url: '/api/v1/tokens',
        payload: { name: 'sdk', scopes: ['sdk-server', 'admin'] },
      },
      fields: ['scopes', 'env'],
    },
  ];

  it.each(CASES)('$name', async ({ request, fields, code }) => {
    await create(boolFlag('base'));
    await create(boolFlag('child', { prerequisites: [{ flag: 'base', variant: 'on' }] }));
    await call({ method: 'PUT', url: '/api/v1/envs/production/segments/beta', payload: segment('beta') });
    const before = await footprint();

    const response = await call(request);
    expect(response.statusCode, response.body).toBe(400);
    const { error } = response.json();
    expect(error.code).toMatch(code ?? /^VIGIL_(BAD_REQUEST|INVALID_CONFIG)$/);
    const named = (error.details ?? []).map((d: { field: string }) => d.field);
    for (const field of fields) expect(named, JSON.stringify(error)).toContain(field);
    expect(JSON.stringify(error)).not.toMatch(/at .*\.ts:\d+/);
    expect(await footprint()).toEqual(before);
  });

  it('metrics from an SDK: bad summaries are named and nothing is published', async () => {
    await create(boolFlag('base'));
    const sdk = await server.token(['sdk-server'], 'production');
    const response = await server.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: bearer(sdk),
      payload: { summaries: [summary, { ...summary, requests: -1, windowStart: summary.windowEnd }] },
    });
    expect(response.statusCode).toBe(400);
    const named = response.json().error.details.map((d: { field: string }) => d.field);
    expect(named).toEqual(
      expect.arrayContaining(['summaries[0].errors', 'summaries[0].windowEnd', 'summaries[1].requests']),
    );
    expect(await server.store.readMetrics('g', 'c', { count: 10, blockMs: 0, claimIdleMs: 1000 })).toEqual(
      [],
    );
  });
});
