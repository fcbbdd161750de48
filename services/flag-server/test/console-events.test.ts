import type { Incident } from '@vigil/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { boolFlag, startServer, type TestServer } from './helpers/server.js';
import { Feed } from './helpers/sse.js';

let server: TestServer;
let base: string;

beforeEach(async () => {
  server = await startServer({ config: { heartbeatMs: 200 } });
  base = (await server.listen()).replace(/^ws:/, 'http:');
  for (const key of ['checkout-v2', 'search-v3']) {
    const created = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags',
      headers: { authorization: `Bearer ${server.admin}` },
      payload: boolFlag(key),
    });
    expect(created.statusCode).toBe(201);
  }
});
afterEach(async () => {
  await server.close();
});

async function signIn(token: string): Promise<{ cookie: string; csrfToken: string }> {
  const response = await fetch(`${base}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  expect(response.status).toBe(200);
  const cookie = response.headers.getSetCookie()[0]!.split(';')[0]!;
  return { cookie, csrfToken: ((await response.json()) as { csrfToken: string }).csrfToken };
}

const feeds: Feed[] = [];
afterEach(() => {
  for (const feed of feeds.splice(0)) feed.close();
});

async function open(headers: Record<string, string>, env = 'production'): Promise<Feed> {
  const { feed, response } = await Feed.open(`${base}/api/v1/events?env=${env}`, headers);
  expect(response.status).toBe(200);
  expect(response.contentType).toMatch(/^text\/event-stream/);
  feeds.push(feed);
  await feed.until(() => feed.of('hello').length === 1);
  return feed;
}

describe('console events (SSE)', () => {
  it('delivers a REST kill to an open session feed within 1 s', async () => {
    const { cookie } = await signIn(server.admin);
    const feed = await open({ cookie });
    const hello = feed.of('hello')[0]!.data;
    expect(hello).toMatchObject({ env: 'production', revision: 2 });

    const kill = await fetch(`${base}/api/v1/envs/production/flags/checkout-v2/kill`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.admin}` },
      body: JSON.stringify({ reason: 'guardian drill' }),
    });
    expect(kill.status).toBe(200);
    await feed.until(() => feed.of('change').length >= 1, 1000);
    const change = feed.of('change')[0]!;
    expect(change.data).toEqual({
      env: 'production',
      revision: 3,
      flags: ['checkout-v2'],
      deleted: [],
      segments: [],
      deletedSegments: [],
    });
  });

  it('reports deletes, and only the environment the feed follows', async () => {
    const feed = await open({ authorization: `Bearer ${server.admin}` });
    const other = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/staging/flags',
      headers: { authorization: `Bearer ${server.admin}` },
      payload: boolFlag('staging-only'),
    });
    expect(other.statusCode).toBe(201);
    const deleted = await server.app.inject({
      method: 'DELETE',
      url: '/api/v1/envs/production/flags/search-v3',
      headers: { authorization: `Bearer ${server.admin}` },
    });
    expect(deleted.statusCode).toBe(204);
    await feed.until(() => feed.of('change').length >= 1);
    expect(feed.of('change').map((e) => e.data)).toEqual([
      expect.objectContaining({ env: 'production', flags: [], deleted: ['search-v3'] }),
    ]);
  });

  it('sends incident events when an incident is opened and acknowledged', async () => {
    const feed = await open({ authorization: `Bearer ${server.admin}` });
    // Let the first poll learn what exists (nothing).
    await new Promise((resolve) => setTimeout(resolve, 700));
    const incident: Incident = {
      id: 'inc_console_1',
      env: 'production',
      flag: 'checkout-v2',
      flagVersion: 1,
      severity: 'sev2',
      status: 'open',
      title: 'checkout-v2 raised errors',
      summary: 'errors',
      killed: true,
      cohorts: [],
      detectedAt: new Date().toISOString(),
      timeline: [],
    };
    await server.store.putIncident(incident);
    await feed.until(() => feed.of('incident').length >= 1, 3000);
    expect(feed.of('incident')[0]!.data).toMatchObject({ id: 'inc_console_1', status: 'open' });
    const ack = await fetch(`${base}/api/v1/incidents/inc_console_1/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.admin}` },
      body: '{}',
    });
    expect(ack.status).toBe(200);
    await feed.until(() => feed.of('incident').length >= 2, 3000);
    expect(feed.of('incident')[1]!.data).toMatchObject({ id: 'inc_console_1', status: 'acknowledged' });
  });

  it('pings, and refuses callers the REST API would refuse', async () => {
    const feed = await open({ authorization: `Bearer ${server.admin}` });
    await feed.until(() => feed.pings >= 2);

    const none = await fetch(`${base}/api/v1/events?env=production`);
    expect(none.status).toBe(401);
    const sdk = await server.token(['sdk-server'], 'production');
    const sdkFeed = await fetch(`${base}/api/v1/events?env=production`, {
      headers: { authorization: `Bearer ${sdk}` },
    });
    expect(sdkFeed.status).toBe(403);
    const bound = await server.token(['read'], 'staging');
    const elsewhere = await fetch(`${base}/api/v1/events?env=production`, {
      headers: { authorization: `Bearer ${bound}` },
    });
    expect(elsewhere.status).toBe(403);
    const bad = await fetch(`${base}/api/v1/events?env=no%20such`, {
      headers: { authorization: `Bearer ${server.admin}` },
    });
    expect(bad.status).toBe(400);
  });

  it('ends the feed when the session signs out or its token is deleted', async () => {
    const ops = await server.token(['ops'], undefined, 'on-call');
    const session = await signIn(ops);
    const byCookie = await open({ cookie: session.cookie });
    const byBearer = await open({ authorization: `Bearer ${ops}` });
    const signOut = await fetch(`${base}/api/v1/session`, {
      method: 'DELETE',
      headers: { cookie: session.cookie, 'x-vigil-csrf': session.csrfToken },
    });
    expect(signOut.status).toBe(204);
    // Checked again at the next ping.
    await byCookie.until(() => byCookie.ended, 3000);
    expect(byBearer.ended).toBe(false);

    const list = (await (
      await fetch(`${base}/api/v1/tokens`, { headers: { authorization: `Bearer ${server.admin}` } })
    ).json()) as { tokens: { id: string; name: string }[] };
    const id = list.tokens.find((t) => t.name === 'on-call')!.id;
    const deleted = await fetch(`${base}/api/v1/tokens/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${server.admin}` },
    });
    expect(deleted.status).toBe(204);
    await byBearer.until(() => byBearer.ended, 3000);
  });

  it('a HEAD answers the headers and ends; a closed feed is forgotten', async () => {
    const head = await fetch(`${base}/api/v1/events?env=production`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${server.admin}` },
    });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const feed = await open({ authorization: `Bearer ${server.admin}` });
    feed.close();
    const other = await open({ authorization: `Bearer ${server.admin}` });
    const kill = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/flags/search-v3/kill',
      headers: { authorization: `Bearer ${server.admin}` },
      payload: { reason: 'after a feed left' },
    });
    expect(kill.statusCode).toBe(200);
    await other.until(() => other.of('change').length === 1);
  });

  it('closing the server ends open feeds (it does not hang)', async () => {
    const feed = await open({ authorization: `Bearer ${server.admin}` });
    await server.close();
    await feed.until(() => feed.ended, 3000);
  });
});
