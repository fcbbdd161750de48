import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as WebSdk from '@openfeature/web-sdk';
import { type Browser, chromium } from 'playwright-core';
import { build } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VigilWebProvider } from '../src/openfeature.js';
import { boolFlag, CHROMIUM, CHROMIUM_ARGS, hasChromium, servePage, TestServer } from './helpers.js';

declare global {
  interface Window {
    VigilOF: Pick<typeof WebSdk, 'OpenFeature' | 'ProviderEvents'> & {
      VigilWebProvider: typeof VigilWebProvider;
    };
    of: WebSdk.Client;
    readyEvents: number;
  }
}

const ENV = 'production';
const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * The web provider and the real `@openfeature/web-sdk` in one IIFE, as an application bundles them. The
 * entry sits under the package's node_modules so its imports resolve to the same `@openfeature/web-sdk`
 * the provider's own import does (one OpenFeature singleton).
 */
async function buildOpenFeatureBundle(): Promise<string> {
  const cache = join(here, '../node_modules/.cache');
  await mkdir(cache, { recursive: true });
  const dir = await mkdtemp(join(cache, 'vigil-of-test-'));
  try {
    const entry = join(dir, 'entry.ts');
    await writeFile(
      entry,
      [
        "import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';",
        `import { VigilWebProvider } from ${JSON.stringify(join(here, '../src/openfeature.ts'))};`,
        '(globalThis as Record<string, unknown>).VigilOF = { OpenFeature, ProviderEvents, VigilWebProvider };',
      ].join('\n'),
    );
    const configs = (await import('../tsup.config.js')).default as unknown as Record<string, unknown>[];
    const iife = configs.find((c) => (c.format as string[]).includes('iife'))!;
    await build({
      ...iife,
      entry: { of: entry },
      globalName: 'VigilOFBundle',
      noExternal: [/.*/],
      minify: false,
      outDir: dir,
      sourcemap: false,
      silent: true,
      config: false,
    });
    return await readFile(join(dir, 'of.iife.js'), 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!hasChromium)('the web provider in headless Chromium with @openfeature/web-sdk', () => {
  let server: TestServer;
  let site: Awaited<ReturnType<typeof servePage>>;
  let browser: Browser;
  let clientKey: string;

  beforeAll(async () => {
    const [bundle, started] = await Promise.all([buildOpenFeatureBundle(), TestServer.start()]);
    server = started;
    site = await servePage(bundle);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    clientKey = await server.token(['sdk-client'], ENV);
    await server.putFlag(ENV, boolFlag('new-checkout'));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await server?.dispose();
  });

  it('answers PROVIDER_NOT_READY while no flags came, then emits READY and serves real values', async () => {
    // The flag exists, but the server cannot be reached when the page starts.
    await server.stop();
    const page = await browser.newPage();
    await page.goto(site.url);
    const options = {
      url: server.url,
      clientKey,
      storage: false,
      metrics: false,
      reconnect: { baseMs: 50, capMs: 200, pollAfterFailures: 1000 },
    };
    const status = await page.evaluate(async (json: string) => {
      const { OpenFeature, ProviderEvents, VigilWebProvider } = window.VigilOF;
      const provider = new VigilWebProvider(JSON.parse(json), { readyTimeoutMs: 300 });
      await OpenFeature.setProviderAndWait('status-test', provider, { targetingKey: 'alice' }).catch(
        () => {},
      );
      window.of = OpenFeature.getClient('status-test');
      window.readyEvents = 0;
      window.of.addHandler(ProviderEvents.Ready, () => {
        window.readyEvents += 1;
      });
      return window.of.providerStatus;
    }, JSON.stringify(options));
    expect(status).toBe('ERROR');
    expect(await page.evaluate(() => window.of.getBooleanDetails('new-checkout', false))).toMatchObject({
      value: false,
      reason: 'ERROR',
      errorCode: 'PROVIDER_NOT_READY',
    });

    await server.resume();
    await page.waitForFunction(() => window.readyEvents > 0, undefined, { timeout: 10_000 });
    expect(await page.evaluate(() => window.of.providerStatus)).toBe('READY');
    expect(await page.evaluate(() => window.of.getBooleanDetails('new-checkout', false))).toMatchObject({
      value: true,
      variant: 'on',
    });
    await page.close();
  }, 30_000);
});
