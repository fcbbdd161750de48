import type { AuditEntry, Flag, Incident } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { bearer, boolFlag, json, segment, startServer, type TestServer } from './helpers/server.js';

const base = '/api/v1/envs/production';

describe('Idempotency-Key on write routes', () => {
  let server: TestServer;
  afterEach(async () => {
    await server?.close();
  });

  const send = (
    method: 'POST' | 'PUT' | 'DELETE',
    url: string,
    key: string | undefined,
    payload?: unknown,
    headers: Record<string, string> = {},
    secret = server.admin,
  ) =>
    server.app.inject({
      method,
      url,
      headers: { ...bearer(secret), ...(key === undefined ? {} : { 'idempotency-key': key }), ...headers },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });

  const audit = async (target: string) =>
    (
      await server.app.inject({
        url: `${base}/audit?target=${target}&limit=100`,
        headers: bearer(server.admin),
      })
    ).json<{ entries: AuditEntry[] }>().entries;

  it('answers a repeat with the first response (status, body, ETag) and writes once', async () => {
    server = await startServer();
    const first = await send('POST', `${base}/flags`, 'create-1', boolFlag('checkout'));
    expect(first.statusCode).toBe(201);
    const again = await send('POST', `${base}/flags`, 'create-1', boolFlag('checkout'));
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(again.headers.location).toBe(first.headers.location);
    // Without the key the same request is a second create, refused.
    expect((await send('POST', `${base}/flags`, undefined, boolFlag('checkout'))).statusCode).toBe(409);
    expect(await audit('checkout')).toHaveLength(1);
  });

  it('replays a delete after the target is gone, where running it again would be a 404', async () => {
    server = await startServer();
    await send('PUT', `${base}/flags/old`, undefined, boolFlag('old'));
    expect((await send('DELETE', `${base}/flags/old`, 'del-1')).statusCode).toBe(204);
    expect((await send('DELETE', `${base}/flags/old`, 'del-1')).statusCode).toBe(204);
    expect((await send('DELETE', `${base}/flags/old`, 'del-2')).statusCode).toBe(404);
    expect((await audit('old')).map((e) => e.action)).toEqual(['flag.delete', 'flag.create']);
  });

  it('replays a conditional update instead of answering 412 for its own write', async () => {
    server = await startServer();
    const created = json<Flag>(await send('PUT', `${base}/flags/f`, undefined, boolFlag('f')));
    const ifMatch = { 'if-match': `"${created.version}"` };
    const update = boolFlag('f', { description: 'v2' });
    const first = await send('PUT', `${base}/flags/f`, 'upd-1', update, ifMatch);
    expect(first.statusCode).toBe(200);
    const again = await send('PUT', `${base}/flags/f`, 'upd-1', update, ifMatch);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
    expect((await send('PUT', `${base}/flags/f`, 'upd-2', update, ifMatch)).statusCode).toBe(412);
  });

  it('refuses a key reused for another body, target, route or If-Match with 422, writing nothing', async () => {
    server = await startServer();
    expect((await send('PUT', `${base}/flags/a`, 'k', boolFlag('a'))).statusCode).toBe(201);
    const cases = [
      send('PUT', `${base}/flags/a`, 'k', boolFlag('a', { description: 'other' })),
      send('PUT', `${base}/flags/b`, 'k', boolFlag('b')),
      send('POST', `${base}/flags/a/kill`, 'k', { reason: 'x' }),
      send('PUT', `${base}/flags/a`, 'k', boolFlag('a'), { 'if-match': '"1"' }),
      send('PUT', '/api/v1/envs/staging/flags/a', 'k', boolFlag('a')),
    ];
    for (const response of await Promise.all(cases)) {
      expect(response.statusCode).toBe(422);
      expect(response.json().error.code).toBe('VIGIL_IDEMPOTENCY_KEY_REUSED');
    }
    expect(await audit('a')).toHaveLength(1);
    expect(await audit('b')).toHaveLength(0);
    // The same body with its keys in another order is the same request.
    const reordered = Object.fromEntries(Object.entries(boolFlag('a')).reverse());
    expect((await send('PUT', `${base}/flags/a`, 'k', reordered)).statusCode).toBe(201);
  });

  it('keeps keys apart per token: another token with the same key writes on its own', async () => {
    server = await startServer();
    const other = await server.token(['admin'], undefined, 'other-admin');
    expect((await send('PUT', `${base}/segments/s`, 'same', segment('s'))).statusCode).toBe(201);
    const theirs = await send('PUT', `${base}/segments/s`, 'same', segment('s'), {}, other);
    expect(theirs.statusCode).toBe(200);
    expect((await audit('s')).map((e) => e.actor)).toEqual(['other-admin', 'bootstrap-admin']);
  });

  it('answers racing requests with one key from one write', async () => {
    server = await startServer();
    const responses = await Promise.all(
      Array.from({ length: 6 }, () => send('POST', `${base}/flags`, 'race', boolFlag('raced'))),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(Array(6).fill(201));
    for (const r of responses) expect(r.json()).toEqual(responses[0]!.json());
    expect(await audit('raced')).toHaveLength(1);
  });

  it('covers kill, revive, segments, schedules, incidents and tokens', async () => {
    server = await startServer();
    await send('PUT', `${base}/flags/k`, undefined, boolFlag('k'));
    const killed = await send('POST', `${base}/flags/k/kill`, 'kill', { reason: 'bad' });
    await send('POST', `${base}/flags/k/revive`, 'revive', { reason: 'fixed' });
    // A late repeat of the kill answers the kill; it does not kill the revived flag again.
    const late = await send('POST', `${base}/flags/k/kill`, 'kill', { reason: 'bad' });
    expect(late.json()).toEqual(killed.json());
    const flag = json<Flag>(
      await server.app.inject({ url: `${base}/flags/k`, headers: bearer(server.admin) }),
    );
    expect(flag.killed).toBe(false);

    const schedule = { variant: 'on', steps: [{ percent: 10, hold: '1h' }, { percent: 100 }] };
    const put = await send('PUT', `${base}/flags/k/schedule`, 'sched', schedule);
    expect(put.statusCode).toBe(200);
    const paused = await send('POST', `${base}/flags/k/schedule/pause`, 'pause', {});
    expect(paused.statusCode).toBe(200);
    await send('POST', `${base}/flags/k/schedule/resume`, 'resume', {});
    expect((await send('POST', `${base}/flags/k/schedule/pause`, 'pause', {})).json()).toEqual(paused.json());
    expect((await send('PUT', `${base}/flags/k/schedule`, 'sched', schedule)).json()).toEqual(put.json());
    expect((await audit('k')).filter((e) => e.action === 'flag.schedule')).toHaveLength(3);

    expect((await send('PUT', `${base}/segments/seg`, 'seg', segment('seg'))).statusCode).toBe(201);
    expect((await send('PUT', `${base}/segments/seg`, 'seg', segment('seg'))).statusCode).toBe(201);
    expect((await send('DELETE', `${base}/segments/seg`, 'seg-del')).statusCode).toBe(204);
    expect((await send('DELETE', `${base}/segments/seg`, 'seg-del')).statusCode).toBe(204);
    expect((await audit('seg')).map((e) => e.action)).toEqual(['segment.delete', 'segment.upsert']);

    const incident: Incident = {
      id: 'inc-1',
      env: 'production',
      flag: 'k',
      flagVersion: 1,
      severity: 'sev2',
      status: 'open',
      title: 'k regressed',
      summary: 'error rate 12%',
      killed: false,
      cohorts: [],
      detectedAt: '2025-01-01T00:00:00.000Z',
      timeline: [],
    };
    await server.store.putIncident(incident);
    const ack = await send('POST', '/api/v1/incidents/inc-1/ack', 'ack', { note: 'on it' });
    expect(ack.statusCode).toBe(200);
    const ackAgain = await send('POST', '/api/v1/incidents/inc-1/ack', 'ack', { note: 'on it' });
    expect(ackAgain.json()).toEqual(ack.json());
    expect(ack.json<Incident>().timeline.filter((t) => t.kind === 'acknowledged')).toHaveLength(1);

    const created = await send('POST', '/api/v1/tokens', 'tok', { name: 'ci', scopes: ['read'] });
    expect(created.statusCode).toBe(201);
    const replayed = await send('POST', '/api/v1/tokens', 'tok', { name: 'ci', scopes: ['read'] });
    expect(replayed.statusCode).toBe(201);
    // The replay answers the same secret (sealed in the record under the key), and it works.
    expect(replayed.json()).toEqual(created.json());
    const { secret, token } = created.json<{ secret: string; token: { id: string } }>();
    expect((await server.app.inject({ url: `${base}/flags`, headers: bearer(secret) })).statusCode).toBe(200);
    const list = await server.app.inject({ url: '/api/v1/tokens', headers: bearer(server.admin) });
    expect(list.json<{ tokens: { name: string }[] }>().tokens.filter((t) => t.name === 'ci')).toHaveLength(1);
    expect((await send('DELETE', `/api/v1/tokens/${token.id}`, 'tok-del')).statusCode).toBe(204);
    expect((await send('DELETE', `/api/v1/tokens/${token.id}`, 'tok-del')).statusCode).toBe(204);
    expect((await send('DELETE', `/api/v1/tokens/${token.id}`, 'tok-del-2')).statusCode).toBe(404);
  });

  it('refuses a malformed key with 400', async () => {
    server = await startServer();
    for (const key of ['', 'has space', 'x'.repeat(256), 'ключ']) {
      const response = await send('PUT', `${base}/flags/a`, key, boolFlag('a'));
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('VIGIL_BAD_REQUEST');
    }
    expect(await audit('a')).toHaveLength(0);
  });

  it('keeps its records across a restart of the embedded store', async () => {
    server = await startServer();
    const first = await send('POST', `${base}/flags`, 'durable', boolFlag('durable'));
    const id = await recordId(server, 'durable');
    const { EmbeddedStore } = await import('../src/store/embedded.js');
    await server.store.close();
    const reopened = new EmbeddedStore({ dataDir: server.dataDir });
    await reopened.start();
    try {
      const record = await reopened.getIdempotency(id);
      expect(record?.status).toBe(201);
      expect(record?.result).toEqual(first.json());
    } finally {
      await reopened.close();
    }
  });
});

/** The claim id the server derives for the bootstrap admin token and `key`. */
async function recordId(server: TestServer, key: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  const principal = (await server.app.vigil.tokens.authenticate(server.admin))!.id;
  return createHash('sha256').update(`vigil-idempotency\n${principal}\n${key}`).digest('base64url');
}
