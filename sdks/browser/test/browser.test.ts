import { readFileSync } from 'node:fs';
import type { Flag, Segment, VariantValue } from '@vigil/proto';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
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
  startNoWebSocketProxy,
  TestServer,
} from './helpers.js';

declare global {
  interface Window {
    Vigil: typeof VigilModule;
    client: VigilClient;
    events: { change: string[][]; ready: string[]; error: { code: string; message: string }[] };
  }
}

const ENV = 'production';

if (!hasChromium) console.warn(`browser SDK tests skipped: no Chromium at ${CHROMIUM} (.ci/run installs it)`);

describe.skipIf(!hasChromium)('browser SDK in headless Chromium against a real flag server', () => {
  let server: TestServer;
  let site: Awaited<ReturnType<typeof servePage>>;
  let browser: Browser;
  let context: BrowserContext;
  let clientKey: string;

  beforeAll(async () => {
    const [bundle, started] = await Promise.all([buildBundle(), TestServer.start()]);
    server = started;
    site = await servePage(bundle);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    context = await browser.newContext();
    clientKey = await server.token(['sdk-client'], ENV);
    // On for alice only; a split serve would do as well, a list keeps the test readable.
    await server.putFlag(
      ENV,
      boolFlag('new-checkout', {
        rules: [
          {
            id: 'beta',
            clauses: [{ attribute: 'key', op: 'in', values: ['alice'] }],
            serve: { variant: 'on' },
          },
        ],
        fallthrough: { variant: 'off' },
      }),
    );
    await server.putFlag(ENV, boolFlag('server-only', { clientSide: false }));
    await server.putFlag(ENV, {
      key: 'theme',
      variants: [
        { key: 'light', value: 'light' },
        { key: 'dark', value: 'dark' },
      ],
      offVariant: 'light',
      enabled: true,
      clientSide: true,
      fallthrough: { variant: 'dark' },
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await site?.close();
    await server?.dispose();
  });

  /** A fresh page of the site with the bundle loaded. */
  async function open(): Promise<Page> {
    const page = await context.newPage();
    await page.goto(site.url);
    return page;
  }

  /** Creates `window.client` in the page, recording its events in `window.events`; returns its first state. */
  function boot(page: Page, options: Partial<Omit<ClientOptions, 'storage'>> & { storage?: false } = {}) {
    const full = { url: server.url, clientKey, context: { key: 'alice' }, ...options };
    // As JSON: playwright's serializable types recurse too deep through the options' types.
    return page.evaluate((json: string) => {
      window.events = { change: [], ready: [], error: [] };
      const client = window.Vigil.createClient(JSON.parse(json) as ClientOptions);
      client.on('change', (keys) => window.events.change.push(keys));
      client.on('ready', (source) => window.events.ready.push(source));
      client.on('error', (e) => window.events.error.push({ code: e.code, message: e.message }));
      window.client = client;
      return { ready: client.ready, source: client.source, checkout: client.isEnabled('new-checkout') };
    }, JSON.stringify(full));
  }

  const enabled = (page: Page, flag: string) => page.evaluate((f) => window.client.isEnabled(f), flag);

  it('evaluates a clientSide flag for a targeted user once the stream delivers', async () => {
    const page = await open();
    await page.evaluate(() => localStorage.clear());
    const first = await boot(page);
    expect(first).toEqual({ ready: false, checkout: false });
    expect(await page.evaluate(() => window.client.waitForReady(5000))).toBe(true);
    expect(await enabled(page, 'new-checkout')).toBe(true);
    expect(await page.evaluate(() => window.client.value('theme', 'light'))).toBe('dark');
    expect(await page.evaluate(() => window.client.detail('new-checkout', false))).toMatchObject({
      value: true,
      variant: 'on',
      reason: 'TARGETING_MATCH',
      ruleId: 'beta',
    });
    expect(await page.evaluate(() => [window.events.ready, window.client.stats().stream])).toEqual([
      ['stream'],
      'streaming',
    ]);
    await page.close();
  });

  it('does not see server-side flags', async () => {
    const page = await open();
    await boot(page, { storage: false });
    await page.evaluate(() => window.client.waitForReady(5000));
    expect(await page.evaluate(() => window.client.detail('server-only', true))).toMatchObject({
      value: true,
      reason: 'ERROR',
      errorCode: 'FLAG_NOT_FOUND',
    });
    const visible = Object.keys(await page.evaluate(() => window.client.allFlags()));
    expect(visible).toEqual(expect.arrayContaining(['new-checkout', 'theme']));
    expect(visible).not.toContain('server-only');
    await page.close();
  });

  it('flips a flag in the page without reload when it is killed over REST, and back on revive', async () => {
    const page = await open();
    await boot(page, { storage: false });
    await page.evaluate(() => window.client.waitForReady(5000));
    expect(await enabled(page, 'new-checkout')).toBe(true);
    await server.api('POST', `/envs/${ENV}/flags/new-checkout/kill`, { reason: 'browser test' });
    await page.waitForFunction(() => !window.client.isEnabled('new-checkout'), undefined, { timeout: 5000 });
    expect(await page.evaluate(() => window.client.detail('new-checkout'))).toMatchObject({
      variant: 'off',
      reason: 'DISABLED',
      detail: 'KILLED',
    });
    expect(await page.evaluate(() => window.events.change.at(-1))).toEqual(['new-checkout']);
    await server.api('POST', `/envs/${ENV}/flags/new-checkout/revive`, { reason: 'browser test' });
    await page.waitForFunction(() => window.client.isEnabled('new-checkout'), undefined, { timeout: 5000 });
    await page.close();
  });

  it('switches user with identify, re-evaluating and announcing what changed', async () => {
    const page = await open();
    await boot(page, { storage: false });
    await page.evaluate(() => window.client.waitForReady(5000));
    expect(await enabled(page, 'new-checkout')).toBe(true);
    const changes = await page.evaluate(() => {
      window.events.change = [];
      window.client.identify({ key: 'bob' });
      return window.events.change;
    });
    expect(changes).toEqual([['new-checkout']]);
    expect(await enabled(page, 'new-checkout')).toBe(false);
    expect(await page.evaluate(() => window.client.user)).toEqual({ key: 'bob' });
    await page.close();
  });

  it('starts from the localStorage cache after a reload while the server is down', async () => {
    const page = await open();
    await boot(page);
    await page.evaluate(() => window.client.waitForReady(5000));
    expect(await enabled(page, 'new-checkout')).toBe(true);
    await server.stop();
    try {
      await page.reload();
      const first = await boot(page, { reconnect: { baseMs: 50, capMs: 200 } });
      // Synchronously after createClient, before any connection: the last known flags serve.
      expect(first).toEqual({ ready: true, source: 'cache', checkout: true });
      await page.waitForFunction(() => window.events.error.some((e) => e.code === 'VIGIL_SDK_STREAM'));
      expect(await enabled(page, 'new-checkout')).toBe(true);
    } finally {
      await server.resume();
    }
    // It reconnects on its own when the server is back, resuming from the cached revision.
    await page.waitForFunction(() => window.client.stats().stream === 'streaming', undefined, {
      timeout: 5000,
    });
    expect(await enabled(page, 'new-checkout')).toBe(true);
    await page.close();
  });

  it('reports a refused key once and stops without retrying', async () => {
    const page = await open();
    await boot(page, { clientKey: 'vgl_not-a-key', storage: false, reconnect: { baseMs: 10, capMs: 20 } });
    const refused = await page.evaluate(() =>
      window.client.waitForReady(5000).then(
        () => 'ready',
        (e: { code: string }) => e.code,
      ),
    );
    expect(refused).toBe('VIGIL_SDK_UNAUTHORIZED');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await page.evaluate(() => ({
      errors: window.events.error,
      stats: window.client.stats(),
      fallback: window.client.isEnabled('new-checkout', true),
    }));
    expect(after.errors.map((e) => e.code)).toEqual(['VIGIL_SDK_UNAUTHORIZED']);
    expect(after.errors[0]!.message).toMatch(/unknown SDK key/);
    expect(after.stats.stream).toBe('refused');
    expect(after.stats.sync.connects).toBe(1);
    // The application still gets its defaults.
    expect(after.fallback).toBe(true);
    await page.close();
  });

  it('falls back to polling GET /v1/flags when the stream keeps failing, and follows changes', async () => {
    const proxy = await startNoWebSocketProxy(server.url);
    const page = await open();
    try {
      await boot(page, {
        url: proxy.url,
        storage: false,
        pollIntervalMs: 200,
        reconnect: { baseMs: 20, capMs: 100, pollAfterFailures: 2 },
      });
      expect(await page.evaluate(() => window.client.waitForReady(5000))).toBe(true);
      expect(await page.evaluate(() => window.client.stats().source)).toBe('poll');
      expect(await enabled(page, 'new-checkout')).toBe(true);
      await server.putFlag(ENV, boolFlag('banner'));
      await page.waitForFunction(() => window.client.isEnabled('banner'), undefined, { timeout: 5000 });
      const stats = await page.evaluate(() => window.client.stats());
      expect(stats.polling).toBe(true);
      // Unchanged polls are answered 304 from the ETag.
      await page.waitForFunction(() => window.client.stats().sync.pollsNotModified > 0, undefined, {
        timeout: 5000,
      });
      expect(proxy.upgradesRefused()).toBeGreaterThanOrEqual(2);
      // One error for the failing stream, not one per attempt.
      expect((await page.evaluate(() => window.events.error)).map((e) => e.code)).toEqual([
        'VIGIL_SDK_STREAM',
      ]);
    } finally {
      await page.close();
      await proxy.close();
    }
  });

  it('sends cohort metrics for the flags served, on flush and with a beacon on pagehide', async () => {
    const page = await open();
    await boot(page, { storage: false, env: ENV, metrics: { flushIntervalMs: 3_600_000 } });
    await page.evaluate(async () => {
      const client = window.client;
      await client.waitForReady(5000);
      client.isEnabled('new-checkout');
      client.value('theme', 'light');
      client.recordFetch(120, true);
      client.recordFetch(480, false);
      client.recordError(new Error('boom'));
      await client.track(() => Promise.resolve(new Response('', { status: 503 })));
      await client.flush();
    });
    const summaries = await server.summaries();
    const checkout = summaries.find((s) => s.flag === 'new-checkout');
    expect(checkout).toMatchObject({ env: ENV, variant: 'on', requests: 4, errors: 3 });
    expect(checkout!.latency.count).toBe(3);
    expect(summaries.find((s) => s.flag === 'theme')).toMatchObject({ variant: 'dark', requests: 4 });
    expect(await page.evaluate(() => window.events.error)).toEqual([]);

    // Leaving the page beacons what was gathered since.
    await page.evaluate(() => window.client.recordFetch(50, true));
    await page.goto('about:blank');
    await expect
      .poll(async () => (await server.summaries()).filter((s) => s.flag === 'new-checkout').length, {
        timeout: 5000,
      })
      .toBe(2);
    await page.close();
  });

  describe('shared vectors', () => {
    interface VectorCase {
      name: string;
      flag: string;
      context: unknown;
      default?: VariantValue;
      expect: Record<string, unknown>;
    }
    const evaluation = JSON.parse(
      readFileSync(new URL('../../../proto/vectors/evaluation.json', import.meta.url), 'utf8'),
    ) as { suites: { name: string; flags: Flag[]; segments: Segment[]; cases: VectorCase[] }[] };
    const buckets = JSON.parse(
      readFileSync(new URL('../../../proto/vectors/buckets.json', import.meta.url), 'utf8'),
    ) as { vectors: { salt: string; value: string; hash: number; bucket: number }[] };

    it('evaluate alike in the bundle, through the core and through the client', async () => {
      const page = await open();
      const result = await page.evaluate((json: string) => {
        const suites = JSON.parse(json) as typeof evaluation.suites;
        const failures: string[] = [];
        let checked = 0;
        const pick = (d: Record<string, unknown>, want: Record<string, unknown>) => ({
          value: d.value,
          variant: d.variant,
          reason: d.reason,
          errorCode: d.errorCode,
          ruleId: d.ruleId,
          // `detail` is a contract only where the vector states it (KILLED).
          ...(want.detail === undefined ? {} : { detail: d.detail }),
        });
        const norm = (want: Record<string, unknown>) => ({
          value: want.value,
          variant: want.variant,
          reason: want.reason,
          errorCode: want.errorCode,
          ruleId: want.ruleId,
          ...(want.detail === undefined ? {} : { detail: want.detail }),
        });
        for (const suite of suites) {
          const snapshot = { revision: 1, flags: suite.flags, segments: suite.segments };
          const set = new window.Vigil.FlagSet();
          set.load(snapshot);
          const client = window.Vigil.createClient({
            url: 'http://127.0.0.1:9',
            clientKey: 'vectors',
            context: {},
            bootstrap: snapshot,
            storage: false,
            metrics: false,
          });
          for (const c of suite.cases) {
            const want = JSON.stringify(norm(c.expect));
            const core = JSON.stringify(pick(set.detail(c.flag, c.context, c.default) as never, c.expect));
            client.identify(c.context as Record<string, unknown>);
            const viaClient = JSON.stringify(pick(client.detail(c.flag, c.default) as never, c.expect));
            if (core !== want) failures.push(`${suite.name}: ${c.name}: core ${core} ≠ ${want}`);
            if (viaClient !== want) failures.push(`${suite.name}: ${c.name}: client ${viaClient} ≠ ${want}`);
            if (
              c.default !== undefined &&
              JSON.stringify(client.value(c.flag, c.default)) !== JSON.stringify(c.expect.value)
            )
              failures.push(`${suite.name}: ${c.name}: client.value`);
            checked += 1;
          }
          client.close();
        }
        return { checked, failures };
      }, JSON.stringify(evaluation.suites));
      expect(result.failures).toEqual([]);
      expect(result.checked).toBe(evaluation.suites.reduce((n, s) => n + s.cases.length, 0));
      expect(result.checked).toBeGreaterThanOrEqual(150);
      await page.close();
    });

    it('bucket alike in the bundle (UTF-8 MurmurHash3, Thai, CJK and emoji keys)', async () => {
      const page = await open();
      const failures = await page.evaluate(
        (vectors) =>
          vectors
            .filter((v) => {
              const got = window.Vigil.bucketOf(v.salt, v.value);
              return got.hash !== v.hash || got.bucket !== v.bucket;
            })
            .map((v) => `${v.salt}:${v.value}`),
        buckets.vectors,
      );
      expect(failures).toEqual([]);
      expect(buckets.vectors.length).toBeGreaterThan(50);
      await page.close();
    });
  });
});
