import type { Segment } from '@vigil/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bearer, boolFlag, segment, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let admin: Record<string, string>;
const SEGMENTS = '/api/v1/envs/production/segments';

beforeEach(async () => {
  server = await startServer();
  admin = bearer(server.admin);
});
afterEach(async () => {
  await server.close();
});

describe('segments', () => {
  it('PUT creates (201) then replaces (200); GET and list return it with ETag = version', async () => {
    const created = await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: admin,
      payload: { included: ['u1'] },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      key: 'beta',
      included: ['u1'],
      excluded: [],
      rules: [],
      version: 1,
    });
    const replaced = await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: admin,
      payload: segment('beta', { included: ['u2'] }),
    });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.headers.etag).toBe('"2"');

    const got = await server.app.inject({ url: `${SEGMENTS}/beta`, headers: admin });
    expect(got.headers.etag).toBe('"2"');
    expect((got.json() as Segment).included).toEqual(['u2']);
    expect(
      (await server.app.inject({ url: `${SEGMENTS}/beta`, headers: { ...admin, 'if-none-match': '"2"' } }))
        .statusCode,
    ).toBe(304);
    const list = await server.app.inject({ url: SEGMENTS, headers: admin });
    expect(list.json()).toMatchObject({ revision: 2, segments: [{ key: 'beta' }] });
  });

  it('If-Match with a stale version is a 412 and nothing is written', async () => {
    await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: admin,
      payload: segment('beta'),
    });
    await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: admin,
      payload: segment('beta', { included: ['u2'] }),
    });
    const stale = await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: { ...admin, 'if-match': '"1"' },
      payload: segment('beta', { included: ['u3'] }),
    });
    expect(stale.statusCode).toBe(412);
    expect((await server.store.snapshot('production')).revision).toBe(2);
  });

  it('of concurrent PUTs with the same If-Match exactly one wins; the others get 412', async () => {
    const created = await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: admin,
      payload: segment('beta'),
    });
    const racing = await Promise.all(
      [1, 2, 3, 4].map((n) =>
        server.app.inject({
          method: 'PUT',
          url: `${SEGMENTS}/beta`,
          headers: { ...admin, 'if-match': created.headers.etag as string },
          payload: segment('beta', { included: [`u${n}`] }),
        }),
      ),
    );
    expect(racing.map((r) => r.statusCode).sort()).toEqual([200, 412, 412, 412]);
    expect((await server.store.snapshot('production')).revision).toBe(2);
  });

  it('refuses to delete a segment a flag rule uses (409), then deletes it once unused', async () => {
    await server.app.inject({
      method: 'PUT',
      url: `${SEGMENTS}/beta`,
      headers: admin,
      payload: segment('beta'),
    });
    const rules = [
      {
        id: 'r',
        clauses: [{ attribute: 'key', op: 'inSegment' as const, values: ['beta'] }],
        serve: { variant: 'on' },
      },
    ];
    await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/f',
      headers: admin,
      payload: boolFlag('f', { rules }),
    });
    const refused = await server.app.inject({ method: 'DELETE', url: `${SEGMENTS}/beta`, headers: admin });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error).toMatchObject({ code: 'VIGIL_IN_USE', details: { dependents: ['f'] } });

    await server.app.inject({
      method: 'PUT',
      url: '/api/v1/envs/production/flags/f',
      headers: admin,
      payload: boolFlag('f'),
    });
    expect(
      (await server.app.inject({ method: 'DELETE', url: `${SEGMENTS}/beta`, headers: admin })).statusCode,
    ).toBe(204);
    expect((await server.app.inject({ url: `${SEGMENTS}/beta`, headers: admin })).statusCode).toBe(404);
    expect(
      (await server.app.inject({ method: 'DELETE', url: `${SEGMENTS}/beta`, headers: admin })).statusCode,
    ).toBe(404);
  });
});
