import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TokenInfo } from '@vigil/proto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bootstrapAdmin, hashSecret } from '../src/auth.js';
import { EmbeddedStore } from '../src/store/embedded.js';
import { bearer, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeEach(async () => {
  server = await startServer();
});
afterEach(async () => {
  await server.close();
});

/** Every file the store wrote to its data directory (its lock is a directory of its own). */
async function dataDirText(dir: string): Promise<string> {
  const files = (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isFile());
  const texts = await Promise.all(files.map((f) => readFile(join(dir, f.name), 'utf8')));
  return texts.join('\n');
}

describe('tokens', () => {
  it('shows the secret once, at creation; lists never include it; the store keeps only its SHA-256', async () => {
    const created = await server.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer(server.admin),
      payload: { name: 'ci', scopes: ['read'] },
    });
    expect(created.statusCode).toBe(201);
    const { token, secret } = created.json() as { token: TokenInfo; secret: string };
    expect(secret).toMatch(/^vgl_[A-Za-z0-9_-]{43}$/);
    expect(token).toMatchObject({ name: 'ci', scopes: ['read'], createdBy: 'bootstrap-admin' });
    expect(JSON.stringify(token)).not.toContain(secret);

    const list = await server.app.inject({
      method: 'GET',
      url: '/api/v1/tokens',
      headers: bearer(server.admin),
    });
    expect(list.body).not.toContain(secret);
    expect(list.body).not.toContain('secretHash');
    expect(list.json().tokens.map((t: TokenInfo) => t.name)).toEqual(['bootstrap-admin', 'ci']);

    const onDisk = await dataDirText(server.dataDir);
    expect(onDisk).not.toContain(secret);
    expect(onDisk).toContain(createHash('sha256').update(secret).digest('hex'));
    expect(await server.store.findToken(hashSecret(secret))).toMatchObject({ id: token.id });

    const use = await server.app.inject({
      method: 'GET',
      url: '/api/v1/envs/production/flags',
      headers: bearer(secret),
    });
    expect(use.statusCode).toBe(200);
  });

  it('a deleted token stops working at once', async () => {
    const secret = await server.token(['read'], undefined, 'temp');
    expect(
      (await server.app.inject({ url: '/api/v1/envs/production/flags', headers: bearer(secret) })).statusCode,
    ).toBe(200);
    const { id } = (await server.store.listTokens()).find((t) => t.name === 'temp')!;
    const deleted = await server.app.inject({
      method: 'DELETE',
      url: `/api/v1/tokens/${id}`,
      headers: bearer(server.admin),
    });
    expect(deleted.statusCode).toBe(204);
    expect(
      (await server.app.inject({ url: '/api/v1/envs/production/flags', headers: bearer(secret) })).statusCode,
    ).toBe(401);
    const again = await server.app.inject({
      method: 'DELETE',
      url: `/api/v1/tokens/${id}`,
      headers: bearer(server.admin),
    });
    expect(again.statusCode).toBe(404);
  });

  it('refuses to delete the last admin token', async () => {
    const [admin] = await server.store.listTokens();
    const response = await server.app.inject({
      method: 'DELETE',
      url: `/api/v1/tokens/${admin!.id}`,
      headers: bearer(server.admin),
    });
    expect(response.statusCode).toBe(409);
    expect(response.json().error.code).toBe('VIGIL_IN_USE');
    expect(await server.store.listTokens()).toHaveLength(1);
  });

  it('SDK keys are bound to their environment', async () => {
    const key = await server.token(['sdk-server'], 'staging');
    const own = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/staging/evaluate',
      headers: bearer(key),
      payload: { context: {} },
    });
    expect(own.statusCode).toBe(200);
    const other = await server.app.inject({
      method: 'POST',
      url: '/api/v1/envs/production/evaluate',
      headers: bearer(key),
      payload: { context: {} },
    });
    expect(other.statusCode).toBe(403);
  });

  it('a token bound to an environment cannot manage tokens', async () => {
    const scoped = await server.token(['admin'], 'staging');
    const response = await server.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer(scoped),
      payload: { name: 'escalate', scopes: ['admin'] },
    });
    expect(response.statusCode).toBe(403);
  });
});

describe('bootstrap', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const freshStore = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vigil-boot-'));
    dirs.push(dir);
    const store = new EmbeddedStore({ dataDir: dir });
    await store.start();
    return store;
  };

  it('creates one admin token on first start only', async () => {
    const store = await freshStore();
    const first = await bootstrapAdmin(store);
    expect(first.created).toBe(true);
    if (!first.created) return;
    expect(first.secret).toMatch(/^vgl_/);
    expect(first.fromEnv).toBe(false);
    expect(await store.findToken(hashSecret(first.secret))).toMatchObject({ scopes: ['admin'] });
    expect(await bootstrapAdmin(store)).toEqual({ created: false, adminTokenUnknown: false });
    expect(await store.listTokens()).toHaveLength(1);
    await store.close();
  });

  it('uses VIGIL_ADMIN_TOKEN when given, and says when a later one is unknown', async () => {
    const store = await freshStore();
    const boot = await bootstrapAdmin(store, 'my-own-admin-token-1234');
    expect(boot).toMatchObject({ created: true, secret: 'my-own-admin-token-1234', fromEnv: true });
    expect(await store.findToken(hashSecret('my-own-admin-token-1234'))).toBeDefined();
    expect(await bootstrapAdmin(store, 'my-own-admin-token-1234')).toEqual({
      created: false,
      adminTokenUnknown: false,
    });
    expect(await bootstrapAdmin(store, 'another-admin-token-5678')).toEqual({
      created: false,
      adminTokenUnknown: true,
    });
    await store.close();
  });
});
