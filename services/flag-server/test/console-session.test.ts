import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildServer } from '../src/app.js';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { boolFlag, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let base: string;

async function start(config: Parameters<typeof startServer>[0] = {}): Promise<void> {
  server = await startServer(config);
  base = (await server.listen()).replace(/^ws:/, 'http:');
  const created = await server.app.inject({
    method: 'POST',
    url: '/api/v1/envs/production/flags',
    headers: { authorization: `Bearer ${server.admin}` },
    payload: boolFlag('checkout-v2'),
  });
  expect(created.statusCode).toBe(201);
}

afterEach(async () => {
  await server.close();
});

interface Signed {
  cookie: string;
  setCookie: string;
  body: { name: string; scope: string; expiresAt: string; csrfToken: string };
}

/** Signs in with a token over real HTTP; returns the cookie to send back and the body. */
async function signIn(token: string): Promise<Signed> {
  const response = await fetch(`${base}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith('vigil_session='))!;
  expect(setCookie).toBeDefined();
  return {
    cookie: setCookie.split(';')[0]!,
    setCookie,
    body: (await response.json()) as Signed['body'],
  };
}

const kill = (headers: Record<string, string>) =>
  fetch(`${base}/api/v1/envs/production/flags/checkout-v2/kill`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ reason: 'console test' }),
  });

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { error: { code: string } }).error.code;
}

describe('console sessions', () => {
  beforeEach(async () => {
    await start();
  });

  it('sign-in sets an HttpOnly, SameSite=Strict cookie with an expiry, and answers the scope and a CSRF token', async () => {
    const before = Date.now();
    const { setCookie, body } = await signIn(server.admin);
    expect(setCookie).toMatch(/; HttpOnly/i);
    expect(setCookie).toMatch(/; SameSite=Strict/i);
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).not.toMatch(/; Secure/i);
    const maxAge = Number(/Max-Age=(\d+)/i.exec(setCookie)?.[1]);
    expect(maxAge).toBeGreaterThan(12 * 3600 - 5);
    expect(maxAge).toBeLessThanOrEqual(12 * 3600 + 1);
    expect(body.name).toBe('bootstrap-admin');
    expect(body.scope).toBe('admin');
    expect(body.csrfToken).toMatch(/\S{20,}/);
    expect(Date.parse(body.expiresAt) - before).toBeGreaterThan(12 * 3600_000 - 5000);
    // The secret is nowhere in the cookie.
    expect(setCookie).not.toContain(server.admin);
  });

  it('marks the cookie Secure when the request came over TLS through a trusted proxy', async () => {
    await server.close();
    await start({ config: { trustProxy: true } });
    const response = await fetch(`${base}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' },
      body: JSON.stringify({ token: server.admin }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()[0]).toMatch(/; Secure/i);
  });

  it('refuses a bad token (401) and SDK keys (403)', async () => {
    const bad = await fetch(`${base}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'vgl_nope' }),
    });
    expect(bad.status).toBe(401);
    expect(await errorCode(bad)).toBe('VIGIL_UNAUTHORIZED');
    expect(bad.headers.getSetCookie()).toEqual([]);
    for (const scope of ['sdk-server', 'sdk-client'] as const) {
      const key = await server.token([scope], 'production');
      const sdk = await fetch(`${base}/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: key }),
      });
      expect(sdk.status).toBe(403);
      expect(await errorCode(sdk)).toBe('VIGIL_FORBIDDEN');
    }
  });

  it('the cookie works on GET routes, and GET /session answers the session with a fresh CSRF token', async () => {
    const { cookie, body } = await signIn(server.admin);
    const flags = await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } });
    expect(flags.status).toBe(200);
    expect(JSON.stringify(await flags.json())).toContain('checkout-v2');
    const session = await fetch(`${base}/api/v1/session`, { headers: { cookie } });
    expect(session.status).toBe(200);
    const again = (await session.json()) as Signed['body'];
    expect(again).toMatchObject({ name: 'bootstrap-admin', scope: 'admin', expiresAt: body.expiresAt });
    expect(again.csrfToken).not.toBe(body.csrfToken);
    const envs = await fetch(`${base}/api/v1/envs`, { headers: { cookie } });
    expect(await envs.json()).toEqual({ envs: ['production'] });
  });

  it('a write with the cookie needs the CSRF header (403 VIGIL_CSRF without it, 200 with it)', async () => {
    const { cookie, body } = await signIn(server.admin);
    const without = await kill({ cookie });
    expect(without.status).toBe(403);
    expect(await errorCode(without)).toBe('VIGIL_CSRF');
    expect((await server.store.getFlag('production', 'checkout-v2'))?.killed).toBe(false);

    const wrong = await kill({ cookie, 'x-vigil-csrf': `${body.csrfToken.split('.')[0]}.forged` });
    expect(wrong.status).toBe(403);

    const withIt = await kill({ cookie, 'x-vigil-csrf': body.csrfToken, origin: base });
    expect(withIt.status).toBe(200);
    expect((await server.store.getFlag('production', 'checkout-v2'))?.killed).toBe(true);
  });

  it("a CSRF token is bound to its session: another session's is refused", async () => {
    const first = await signIn(server.admin);
    const second = await signIn(server.admin);
    const crossed = await kill({ cookie: first.cookie, 'x-vigil-csrf': second.body.csrfToken });
    expect(crossed.status).toBe(403);
    expect(await errorCode(crossed)).toBe('VIGIL_CSRF');
  });

  it('refuses a cookie write from another origin or site, even with the CSRF token', async () => {
    const { cookie, body } = await signIn(server.admin);
    const csrf = { cookie, 'x-vigil-csrf': body.csrfToken };
    const crossOrigin = await kill({ ...csrf, origin: 'https://evil.example' });
    expect(crossOrigin.status).toBe(403);
    expect(await errorCode(crossOrigin)).toBe('VIGIL_CSRF');
    const crossSite = await kill({ ...csrf, 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const opaque = await kill({ ...csrf, origin: 'null' });
    expect(opaque.status).toBe(403);
    const sibling = await kill({ ...csrf, origin: base.replace('127.0.0.1', 'localhost') });
    expect(sibling.status).toBe(403);
    const signInElsewhere = await fetch(`${base}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ token: server.admin }),
    });
    expect(signInElsewhere.status).toBe(403);
    expect((await server.store.getFlag('production', 'checkout-v2'))?.killed).toBe(false);
  });

  it('a proxy that ends TLS does not make the console look cross-origin (the host decides)', async () => {
    const { cookie, body } = await signIn(server.admin);
    const response = await kill({
      cookie,
      'x-vigil-csrf': body.csrfToken,
      origin: base.replace(/^http:/, 'https:'),
      'sec-fetch-site': 'same-origin',
    });
    expect(response.status).toBe(200);
  });

  it('bearer-token writes need no CSRF header (the CLI)', async () => {
    const response = await kill({ authorization: `Bearer ${server.admin}` });
    expect(response.status).toBe(200);
  });

  it("a read-scope session can read but not kill: the server enforces the token's scope", async () => {
    const reader = await server.token(['read'], undefined, 'viewer');
    const { cookie, body } = await signIn(reader);
    expect(body.scope).toBe('read');
    expect((await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } })).status).toBe(200);
    const response = await kill({ cookie, 'x-vigil-csrf': body.csrfToken });
    expect(response.status).toBe(403);
    expect(await errorCode(response)).toBe('VIGIL_FORBIDDEN');
  });

  it('sign-out ends the session on the server, not just in the browser', async () => {
    const { cookie, body } = await signIn(server.admin);
    const noCsrf = await fetch(`${base}/api/v1/session`, { method: 'DELETE', headers: { cookie } });
    expect(noCsrf.status).toBe(403);
    const out = await fetch(`${base}/api/v1/session`, {
      method: 'DELETE',
      headers: { cookie, 'x-vigil-csrf': body.csrfToken },
    });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie()[0]).toMatch(/^vigil_session=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/i);
    // The old cookie, replayed, no longer works.
    const after = await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } });
    expect(after.status).toBe(401);
    expect((await fetch(`${base}/api/v1/session`, { headers: { cookie } })).status).toBe(401);
  });

  it('deleting the token ends its sessions', async () => {
    const ops = await server.token(['ops'], undefined, 'on-call');
    const { cookie } = await signIn(ops);
    const tokens = (await (
      await fetch(`${base}/api/v1/tokens`, { headers: { authorization: `Bearer ${server.admin}` } })
    ).json()) as { tokens: { id: string; name: string }[] };
    const id = tokens.tokens.find((t) => t.name === 'on-call')!.id;
    const deleted = await fetch(`${base}/api/v1/tokens/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${server.admin}` },
    });
    expect(deleted.status).toBe(204);
    const after = await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } });
    expect(after.status).toBe(401);
  });

  it('a token created a moment ago signs in and its session works at once (not after the token cache expires)', async () => {
    // An admin's session reads the token list first, so the server holds a cached list without the new token.
    const admin = await signIn(server.admin);
    expect(
      (await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie: admin.cookie } })).status,
    ).toBe(200);
    const created = await fetch(`${base}/api/v1/tokens`, {
      method: 'POST',
      headers: {
        cookie: admin.cookie,
        'x-vigil-csrf': admin.body.csrfToken,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ name: 'colleague', scopes: ['ops'] }),
    });
    expect(created.status).toBe(201);
    const { secret } = (await created.json()) as { secret: string };
    const { cookie } = await signIn(secret);
    expect((await fetch(`${base}/api/v1/session`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } })).status).toBe(200);
  });

  it('a forged or tampered cookie is refused', async () => {
    const reader = await server.token(['read'], undefined, 'viewer');
    const { cookie } = await signIn(reader);
    const admin = await signIn(server.admin);
    // Swap in the admin session's token id, keeping the reader's signature.
    const [id, expiry, , signature] = cookie.slice('vigil_session='.length).split('.');
    const adminTokenId = admin.cookie.split('.')[2];
    const forged = `vigil_session=${id}.${expiry}.${adminTokenId}.${signature}`;
    expect(
      (await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie: forged } })).status,
    ).toBe(401);
    const later = `vigil_session=${id}.${Number(expiry) + 3600}.${cookie.split('.')[2]}.${signature}`;
    expect((await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie: later } })).status).toBe(
      401,
    );
  });
});

describe('console session expiry', () => {
  it('an expired session is refused with 401', async () => {
    await start({ config: { sessionTtlMs: 1000 } });
    const { cookie, body } = await signIn(server.admin);
    expect((await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, Date.parse(body.expiresAt) - Date.now() + 50));
    const response = await fetch(`${base}/api/v1/envs/production/flags`, { headers: { cookie } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe('VIGIL_UNAUTHORIZED');
  });

  it("replicas sharing sessionSecret accept each other's sessions; a replica with another secret does not", async () => {
    const secret = 'a-session-secret-shared-by-replicas-0123456789';
    await start({ config: { sessionSecret: secret } });
    const { cookie } = await signIn(server.admin);
    /** Another server on the same store, as a replica is. */
    const replica = async (config: { sessionSecret?: string; adminToken?: string }) => {
      const app = await buildServer({
        config: parseConfig({ logLevel: 'silent', rateLimitMax: 0, ...config }),
        store: server.store,
        logger: createLogger('silent'),
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address() as { port: number };
      return { app, url: `http://127.0.0.1:${address.port}` };
    };
    const same = await replica({ sessionSecret: secret });
    const other = await replica({ sessionSecret: 'another-secret-of-another-deployment-0123' });
    try {
      const flags = (url: string) => fetch(`${url}/api/v1/envs/production/flags`, { headers: { cookie } });
      expect((await flags(same.url)).status).toBe(200);
      expect((await flags(other.url)).status).toBe(401);
    } finally {
      await same.app.close();
      await other.app.close();
    }
  });

  it('replicas given the same VIGIL_ADMIN_TOKEN (and no session secret) share sessions too', async () => {
    const adminToken = 'vgl_shared_admin_token_0123456789';
    await start({ config: { adminToken } });
    const { cookie } = await signIn(server.admin);
    const apps = await Promise.all(
      [adminToken, 'vgl_another_admin_token_9876543210'].map(async (token) => {
        const app = await buildServer({
          config: parseConfig({ logLevel: 'silent', rateLimitMax: 0, adminToken: token }),
          store: server.store,
          logger: createLogger('silent'),
        });
        await app.listen({ port: 0, host: '127.0.0.1' });
        return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` };
      }),
    );
    try {
      const status = async (url: string) =>
        (await fetch(`${url}/api/v1/envs/production/flags`, { headers: { cookie } })).status;
      expect(await status(apps[0]!.url)).toBe(200);
      expect(await status(apps[1]!.url)).toBe(401);
    } finally {
      for (const { app } of apps) await app.close();
    }
  });
});
