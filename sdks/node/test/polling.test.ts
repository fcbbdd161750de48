import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, type VigilClient, type VigilSdkError } from '../src/index.js';
import { boolFlag, memoryLogger, next, TestServer, UpgradeBlockingProxy, until } from './helpers.js';

const ENV = 'production';

let server: TestServer;
let key: string;
const clients: VigilClient[] = [];
const proxies: UpgradeBlockingProxy[] = [];

function client(options: Partial<Parameters<typeof createClient>[0]> = {}): VigilClient {
  const c = createClient({
    url: server.url,
    sdkKey: key,
    env: ENV,
    logger: memoryLogger(),
    reconnect: { baseMs: 20, capMs: 100, pollAfterFailures: 3 },
    pollIntervalMs: 50,
    ...options,
  });
  clients.push(c);
  return c;
}

async function proxy(): Promise<UpgradeBlockingProxy> {
  const p = await UpgradeBlockingProxy.start(server);
  proxies.push(p);
  return p;
}

beforeEach(async () => {
  server = await TestServer.start();
  key = await server.token(['sdk-server'], ENV);
  await server.putFlag(ENV, boolFlag('checkout'));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await server.dispose();
});

describe('polling fallback', () => {
  it('polls GET /v1/flags when the upgrade is answered with an HTTP status, and gets ready from it', async () => {
    const p = await proxy();
    const c = client({ url: p.url });
    const errors: VigilSdkError[] = [];
    c.on('error', (e) => errors.push(e));
    await expect(c.waitForReady(5000)).resolves.toBe(true);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
    const stats = c.stats();
    expect(stats.source).toBe('poll');
    expect(stats.polling).toBe(true);
    expect(p.upgradesRefused).toBeGreaterThanOrEqual(1);
    expect(errors[0]).toMatchObject({ code: 'VIGIL_SDK_STREAM', status: 502 });
  });

  it('sees changes through polling, with If-None-Match answered 304 while nothing changes', async () => {
    const p = await proxy();
    const c = client({ url: p.url });
    await c.waitForReady(5000);
    await until(() => c.stats().pollsNotModified >= 2, 'two 304s');
    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.api('POST', `/envs/${ENV}/flags/checkout/kill`, { reason: 'test' });
    expect((await changed)[0]).toEqual(['checkout']);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(false);
  });

  it('goes back to streaming when upgrades work again, and stops polling', async () => {
    const p = await proxy();
    const c = client({ url: p.url });
    await c.waitForReady(5000);
    expect(c.stats().polling).toBe(true);
    p.allowUpgrades = true;
    await until(() => c.stats().state === 'streaming', 'the stream back');
    expect(c.stats().polling).toBe(false);
    const polls = p.flagRequests;
    // Changes now come over the stream, at once.
    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.putFlag(ENV, boolFlag('streamed'));
    expect((await changed)[0]).toEqual(['streamed']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(p.flagRequests).toBe(polls);
  });

  it('starts polling after pollAfterFailures stream failures in a row, then streams when it can', async () => {
    const p = await proxy();
    p.allowUpgrades = true;
    const c = client({ url: p.url, reconnect: { baseMs: 10, capMs: 40, pollAfterFailures: 2 } });
    await c.waitForReady(5000);
    expect(c.stats()).toMatchObject({ state: 'streaming', polling: false });
    // The server goes away: stream attempts fail at the TCP level (no HTTP status), polls too.
    await server.stop();
    await until(() => c.stats().polling, 'polling after two failures');
    expect(c.stats().streamFailures).toBeGreaterThanOrEqual(2);
    expect(c.stats().stale).toBe(true);
    expect(c.isEnabled('checkout', { key: 'u1' })).toBe(true);
    await server.restart();
    await until(() => c.stats().state === 'streaming' && !c.stats().polling, 'streaming again');
    expect(c.stats().stale).toBe(false);
  });

  it('stream: false only polls', async () => {
    const c = client({ stream: false });
    await expect(c.waitForReady(5000)).resolves.toBe(true);
    expect(c.stats()).toMatchObject({ connects: 0, polling: true, source: 'poll' });
  });

  it('a refused key while polling stops with VIGIL_SDK_UNAUTHORIZED (HTTP 401)', async () => {
    const c = client({ stream: false, sdkKey: 'vgl_nope' });
    await expect(c.waitForReady(5000)).rejects.toMatchObject({ code: 'VIGIL_SDK_UNAUTHORIZED', status: 401 });
    const polls = c.stats().polls;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(c.stats()).toMatchObject({ polls, polling: false, state: 'refused' });
  });

  it('an HTTP 401 on the upgrade is a refusal too (a gateway checking keys)', async () => {
    const p = await proxy();
    p.upgradeStatus = 401;
    const c = client({ url: p.url });
    await expect(c.waitForReady(5000)).rejects.toMatchObject({ code: 'VIGIL_SDK_UNAUTHORIZED', status: 401 });
    expect(c.stats().polls).toBe(0);
  });
});
