import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type VigilClient, type VigilSdkError } from '../src/index.js';
import { boolFlag, freePort, memoryLogger, next, TestServer, until } from './helpers.js';

const ENV = 'production';
let dir: string;
const clients: VigilClient[] = [];
const servers: TestServer[] = [];

function client(options: Parameters<typeof createClient>[0]): VigilClient {
  const c = createClient({ logger: memoryLogger(), reconnect: { baseMs: 20, capMs: 100 }, ...options });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-bootstrap-'));
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.dispose()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bootstrap', () => {
  it('starts with flags from a file (GET /v1/flags saved earlier) while the server is down, then syncs when it is up', async () => {
    // Save a snapshot from a real server, as `curl -H "Authorization: Bearer $KEY" $URL/v1/flags > flags.json` would.
    const server = await TestServer.start();
    servers.push(server);
    const key = await server.token(['sdk-server'], ENV);
    await server.putFlag(ENV, boolFlag('checkout'));
    await server.putFlag(ENV, boolFlag('search', { fallthrough: { variant: 'off' } }));
    const response = await fetch(`${server.url}/v1/flags`, { headers: { authorization: `Bearer ${key}` } });
    const file = join(dir, 'flags.json');
    await writeFile(file, await response.text());
    await server.stop();

    const c = client({ url: server.url, sdkKey: key, env: ENV, bootstrap: file });
    // Flags are there synchronously, before any network round trip.
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
    expect(c.isEnabled('search', { key: 'u1' }, true)).toBe(false);
    await expect(c.waitForReady(10)).resolves.toBe(true);
    expect(c.stats()).toMatchObject({ ready: true, source: 'bootstrap', revision: 2 });
    await until(() => c.stats().streamFailures >= 2, 'failed attempts against the stopped server');
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);

    // The server comes back with a change: the client takes the server's state.
    await server.store.setKill(ENV, 'checkout', { killed: true, actor: 'test' });
    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.restart();
    expect((await changed)[0]).toEqual(['checkout']);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(false);
    // The change may come from a poll (polling starts after a few failures); the stream follows.
    await until(() => c.stats().state === 'streaming', 'the stream');
    expect(c.stats().polling).toBe(false);
  });

  it('starts with flags from an object; hand-written flags may leave out defaulted fields', async () => {
    const c = client({
      url: `http://127.0.0.1:${await freePort()}`,
      sdkKey: 'k',
      offline: true,
      bootstrap: { flags: [{ ...boolFlag('beta'), version: 3 }] },
    });
    expect(c.detail('beta', { key: 'u' })).toMatchObject({ value: true, variant: 'on', flagVersion: 3 });
    expect(c.stats()).toMatchObject({ state: 'offline', ready: true, connects: 0 });
  });

  it('a missing or invalid bootstrap is reported as VIGIL_SDK_BOOTSTRAP and the client carries on', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ revision: 1, flags: [{ key: 'x', variants: [] }] }));
    for (const bootstrap of [join(dir, 'missing.json'), bad]) {
      const logger = memoryLogger();
      const c = client({ url: 'http://127.0.0.1:1', sdkKey: 'k', offline: true, bootstrap, logger });
      const [error] = await next<[VigilSdkError]>((l) => c.on('error', l));
      expect(error.code).toBe('VIGIL_SDK_BOOTSTRAP');
      expect(error.message).toContain(bootstrap === bad ? 'flags[0]' : 'missing.json');
      expect(c.ready).toBe(false);
      expect(c.isEnabled('x', {}, true)).toBe(true);
      expect(logger.lines.some((l) => l.level === 'warn')).toBe(true);
    }
  });
});

describe('options', () => {
  it('createClient refuses unusable options, naming every bad field', () => {
    expect(() => createClient({ url: 'flags.internal', sdkKey: '', pollIntervalMs: 0 })).toThrow(
      expect.objectContaining({
        code: 'VIGIL_SDK_INVALID_OPTIONS',
        message: expect.stringMatching(/url.*sdkKey.*pollIntervalMs/s),
      }),
    );
    expect(() => createClient({ url: 'http://x', sdkKey: 'k', env: 'no spaces allowed' })).toThrow(/env/);
    expect(() =>
      createClient({ url: 'http://x', sdkKey: 'k', reconnect: { baseMs: 500, capMs: 100 } }),
    ).toThrow(/reconnect\.capMs/);
  });

  it('accepts ws:// and http:// URLs with or without a trailing slash', async () => {
    const server = await TestServer.start();
    servers.push(server);
    const key = await server.token(['sdk-server'], ENV);
    for (const url of [`${server.url}/`, server.url.replace('http:', 'ws:')]) {
      const c = client({ url, sdkKey: key });
      await expect(c.waitForReady(5000)).resolves.toBe(true);
    }
  });
});
