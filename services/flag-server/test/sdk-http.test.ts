import type { Flag, Segment } from '@vigil/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bearer, boolFlag, segment, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let admin: Record<string, string>;
let serverKey: string;
let clientKey: string;

beforeEach(async () => {
  server = await startServer();
  admin = bearer(server.admin);
  serverKey = await server.token(['sdk-server'], 'production');
  clientKey = await server.token(['sdk-client'], 'production');
});
afterEach(async () => {
  await server.close();
});

const put = async (url: string, payload: object) => {
  const response = await server.app.inject({
    method: 'PUT',
    url: `/api/v1/envs/production/${url}`,
    headers: admin,
    payload,
  });
  expect(response.statusCode, response.body).toBeLessThan(300);
};
const inSegment = (seg: string) => [
  {
    id: 'seg',
    clauses: [{ attribute: 'key', op: 'inSegment' as const, values: [seg] }],
    serve: { variant: 'on' },
  },
];

describe('GET /v1/flags', () => {
  it('returns the snapshot with ETag = revision, and 304 while nothing changed', async () => {
    await put('flags/a', boolFlag('a'));
    const first = await server.app.inject({ url: '/v1/flags', headers: bearer(serverKey) });
    expect(first.statusCode).toBe(200);
    expect(first.headers.etag).toBe('"1"');
    expect(first.json()).toMatchObject({ revision: 1, flags: [{ key: 'a', version: 1 }], segments: [] });

    const same = await server.app.inject({
      url: '/v1/flags',
      headers: { ...bearer(serverKey), 'if-none-match': '"1"' },
    });
    expect(same.statusCode).toBe(304);
    expect(same.body).toBe('');

    await put('flags/b', boolFlag('b'));
    const changed = await server.app.inject({
      url: '/v1/flags',
      headers: { ...bearer(serverKey), 'if-none-match': '"1"' },
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).toBe('"2"');
    expect(changed.json().flags.map((f: Flag) => f.key)).toEqual(['a', 'b']);
  });

  it('an environment never written is an empty snapshot at revision 0', async () => {
    const key = await server.token(['sdk-server'], 'fresh-env');
    const response = await server.app.inject({ url: '/v1/flags', headers: bearer(key) });
    expect(response.json()).toEqual({ revision: 0, flags: [], segments: [] });
  });

  it('client keys see only clientSide flags and the segments they reference', async () => {
    await put('segments/beta-users', segment('beta-users', { included: ['secret-user'] }));
    await put('segments/internal', segment('internal', { included: ['employee'] }));
    await put('flags/banner', boolFlag('banner', { clientSide: true, rules: inSegment('beta-users') }));
    await put('flags/billing', boolFlag('billing', { rules: inSegment('internal') }));

    const client = await server.app.inject({ url: '/v1/flags', headers: bearer(clientKey) });
    expect(client.json().flags.map((f: Flag) => f.key)).toEqual(['banner']);
    expect(client.json().segments.map((s: Segment) => s.key)).toEqual(['beta-users']);
    expect(client.body).not.toContain('billing');
    expect(client.body).not.toContain('employee');

    const full = await server.app.inject({ url: '/v1/flags', headers: bearer(serverKey) });
    expect(full.json().flags.map((f: Flag) => f.key)).toEqual(['banner', 'billing']);
    expect(full.json().segments.map((s: Segment) => s.key)).toEqual(['beta-users', 'internal']);
  });

  it('browsers may pass the key as ?key= and call from any origin', async () => {
    const response = await server.app.inject({
      url: `/v1/flags?key=${clientKey}`,
      headers: { origin: 'https://shop.example' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['access-control-allow-origin']).toBe('*');
    expect(response.headers['access-control-expose-headers']).toBe('etag');
    const preflight = await server.app.inject({
      method: 'OPTIONS',
      url: '/v1/flags',
      headers: { origin: 'https://shop.example', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-headers']).toContain('authorization');
  });
});

describe('POST /v1/metrics', () => {
  const summary = (flag: string, env = 'production') => ({
    env,
    flag,
    variant: 'on',
    version: 1,
    windowStart: '2025-01-01T00:00:00.000Z',
    windowEnd: '2025-01-01T00:00:10.000Z',
    requests: 100,
    errors: 3,
    latency: { alpha: 0.01, zero: 0, bins: [[120, 100]], count: 100, sum: 2500 },
  });

  it('publishes valid summaries to the metrics bus (202)', async () => {
    await put('flags/a', boolFlag('a'));
    const response = await server.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: bearer(serverKey),
      payload: { sdk: 'node/1.0', summaries: [summary('a')] },
    });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ accepted: 1 });
    const read = await server.store.readMetrics('guardians', 'g1', {
      count: 10,
      blockMs: 0,
      claimIdleMs: 60_000,
    });
    expect(read.map((e) => e.summary)).toEqual([summary('a')]);
  });

  it('refuses summaries for another environment, naming them (403), and publishes none', async () => {
    const response = await server.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: bearer(serverKey),
      payload: { summaries: [summary('a'), summary('a', 'staging')] },
    });
    expect(response.statusCode).toBe(403);
    expect(response.json().error.details).toEqual([expect.objectContaining({ field: 'summaries[1].env' })]);
    expect(
      await server.store.readMetrics('guardians', 'g1', { count: 10, blockMs: 0, claimIdleMs: 60_000 }),
    ).toEqual([]);
  });

  it('client keys may only report clientSide flags', async () => {
    await put('flags/banner', boolFlag('banner', { clientSide: true }));
    await put('flags/billing', boolFlag('billing'));
    const ok = await server.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: bearer(clientKey),
      payload: { summaries: [summary('banner')] },
    });
    expect(ok.statusCode).toBe(202);
    const refused = await server.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: bearer(clientKey),
      payload: { summaries: [summary('billing')] },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.details).toEqual([expect.objectContaining({ field: 'summaries[0].flag' })]);
  });
});

describe('POST /api/v1/envs/:env/evaluate', () => {
  it('evaluates every flag, or the ones asked for, with reasons', async () => {
    await put('flags/a', boolFlag('a'));
    await put('flags/b', boolFlag('b', { enabled: false }));
    const all = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/evaluate',
      headers: bearer(serverKey),
      payload: { context: { key: 'user-1' } },
    });
    expect(all.json()).toMatchObject({
      revision: 2,
      results: {
        a: { value: true, variant: 'on', reason: 'STATIC' },
        b: { value: false, variant: 'off', reason: 'DISABLED' },
      },
    });
    const some = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/evaluate',
      headers: bearer(serverKey),
      payload: { context: { key: 'user-1' }, flags: ['a', 'ghost'] },
    });
    expect(Object.keys(some.json().results)).toEqual(['a', 'ghost']);
    expect(some.json().results.ghost).toMatchObject({
      value: null,
      reason: 'ERROR',
      errorCode: 'FLAG_NOT_FOUND',
    });
  });
});
