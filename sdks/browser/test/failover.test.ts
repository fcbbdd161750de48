import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as VigilModule from '../src/index.js';
import type { ClientOptions, VigilClient } from '../src/index.js';
import {
  boolFlag,
  buildBundle,
  CHROMIUM,
  CHROMIUM_ARGS,
  hasChromium,
  servePage,
  TestServer,
} from './helpers.js';

declare global {
  interface Window {
    Vigil: typeof VigilModule;
    client: VigilClient;
  }
}

const ENV = 'production';

describe.skipIf(!hasChromium)('browser SDK given two servers in headless Chromium', () => {
  let server: TestServer;
  let replica: { url: string; stop(): Promise<void> };
  let site: Awaited<ReturnType<typeof servePage>>;
  let browser: Browser;
  let page: Page;
  let clientKey: string;

  beforeAll(async () => {
    const [bundle, started] = await Promise.all([buildBundle(), TestServer.start()]);
    server = started;
    replica = await server.replica();
    site = await servePage(bundle);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    clientKey = await server.token(['sdk-client'], ENV);
    await server.putFlag(ENV, boolFlag('new-checkout'));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await replica?.stop();
    await server?.dispose();
  });

  it('keeps serving from the second when the first stops, resuming there and following its changes', async () => {
    page = await browser.newPage();
    await page.goto(site.url);
    const options: ClientOptions = {
      urls: [server.url, replica.url],
      clientKey,
      context: { key: 'alice' },
      storage: false,
      metrics: false,
      reconnect: { baseMs: 50, capMs: 500 },
    };
    await page.evaluate((json: string) => {
      window.client = window.Vigil.createClient(JSON.parse(json) as ClientOptions);
    }, JSON.stringify(options));
    expect(await page.evaluate(() => window.client.waitForReady(5000))).toBe(true);
    const stats = () => page.evaluate(() => window.client.stats());
    expect(await stats()).toMatchObject({ server: server.url, stream: 'streaming' });
    expect(await page.evaluate(() => window.client.isEnabled('new-checkout'))).toBe(true);

    await server.stop();
    await page.waitForFunction(
      (url) => window.client.stats().server === url && window.client.stats().stream === 'streaming',
      replica.url,
      { timeout: 5000 },
    );
    // Resumed from the revision held: one snapshot (from the first server), then a patch. (A client key
    // behind the server's revision gets a snapshot by design, so the kill comes after the move.)
    expect((await stats()).sync).toMatchObject({ snapshots: 1, patches: 1 });
    // A kill made through the second server reaches the page.
    const killed = await fetch(`${replica.url}/api/v1/envs/${ENV}/flags/new-checkout/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'browser failover test' }),
    });
    expect(killed.status).toBe(200);
    await page.waitForFunction(() => !window.client.isEnabled('new-checkout'), undefined, { timeout: 5000 });
    const after = await stats();
    expect(after).toMatchObject({ server: replica.url, stream: 'streaming' });
    expect(after.sync).toMatchObject({ snapshots: 1, patches: 2 });
    expect(after.sync.failovers).toBeGreaterThanOrEqual(1);
    await page.close();
  }, 30_000);
});
