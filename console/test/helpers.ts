import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlagInput, TokenScope } from '@vigil/proto';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { expect } from 'vitest';
import type { VigilClient } from '../../sdks/node/src/index.js';
import { startServer, type TestServer } from '../../services/flag-server/test/helpers/server.js';
import { createGuardian, type Guardian } from '../../services/guardian/src/guardian.js';

// Shared set-up of the console's browser tests: the console built as `vite build` builds it, served by
// a real flag server (embedded store) with a real guardian in the same process, and Debian's Chromium
// driven by playwright-core, as the browser SDK's tests do.

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

const here = dirname(fileURLToPath(import.meta.url));
export const CONSOLE_ROOT = join(here, '..');
/** Where the tests keep the screenshots docs/console.md shows. */
export const SCREENSHOTS = join(here, '..', '..', 'docs', 'console');

/** Builds the console into a temp directory (as `pnpm --filter @vigil/console build` does); returns it. */
export async function buildConsole(): Promise<{ dir: string; close(): Promise<void> }> {
  const outDir = await mkdtemp(join(tmpdir(), 'vigil-console-build-'));
  await build({
    configFile: join(CONSOLE_ROOT, 'vite.config.ts'),
    root: CONSOLE_ROOT,
    logLevel: 'error',
    build: { outDir, emptyOutDir: true },
  });
  return { dir: outDir, close: () => rm(outDir, { recursive: true, force: true }) };
}

/** A flag server serving the built console, a guardian beside it, and a browser. */
export interface ConsoleRig {
  server: TestServer;
  guardian: Guardian;
  /** `http://127.0.0.1:<port>` */
  url: string;
  browser: Browser;
  token(scopes: TokenScope[], name?: string): Promise<string>;
  /** A fresh browser context (its own cookies) and a page in it, with CSP violations and page errors recorded. */
  open(options?: { dark?: boolean }): Promise<{ context: BrowserContext; page: Page; problems: string[] }>;
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  putFlag(env: string, flag: FlagInput): Promise<void>;
  close(): Promise<void>;
}

export async function startRig(): Promise<ConsoleRig> {
  const built = await buildConsole();
  const server = await startServer({ config: { consoleDir: built.dir } });
  const url = (await server.listen()).replace(/^ws:/, 'http:');
  const guardian = createGuardian({
    store: server.store,
    registry: server.app.vigil.metrics.registry,
    config: {
      id: 'console-test',
      tickMs: 250,
      ingest: { blockMs: 100 },
      outbox: { baseMs: 100, maxMs: 1000 },
    },
  });
  await guardian.start();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const contexts: BrowserContext[] = [];
  const api = async <T>(method: string, path: string, body?: unknown) => {
    const response = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${server.admin}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  return {
    server,
    guardian,
    url,
    browser,
    token: (scopes, name) => server.token(scopes, undefined, name),
    async open(options = {}) {
      const context = await browser.newContext({
        viewport: { width: 1280, height: 860 },
        colorScheme: options.dark ? 'dark' : 'light',
      });
      contexts.push(context);
      const page = await context.newPage();
      // Fail a step in seconds with what was awaited, well before the test's own timeout.
      page.setDefaultTimeout(8000);
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text()))
          problems.push(m.text());
      });
      return { context, page, problems };
    },
    api,
    async putFlag(env, flag) {
      const r = await api('PUT', `/envs/${env}/flags/${flag.key}`, flag);
      if (r.status !== 200 && r.status !== 201)
        throw new Error(`putFlag ${flag.key}: ${r.status} ${JSON.stringify(r.body)}`);
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close();
      await guardian.stop();
      await server.close();
      await built.close();
    },
  };
}

/** Signs in through the form; waits for the signed-in shell. */
export async function signIn(page: Page, url: string, token: string, path = '/'): Promise<void> {
  await page.goto(`${url}${path}`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('who').waitFor();
}

let axeSource: string | undefined;

/**
 * Runs axe-core in the page (WCAG 2 A/AA rules) and fails on any serious or critical violation.
 * The script is evaluated over the DevTools protocol, so the page's CSP stays as strict as in production.
 */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  axeSource ??= await readFile(join(CONSOLE_ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: {
          run(
            ctx: unknown,
            opts: unknown,
          ): Promise<{
            violations: { id: string; impact: string; help: string; nodes: { target: unknown }[] }[];
          }>;
        };
      }
    ).axe;
    const result = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map(
        (v) =>
          `${v.impact} ${v.id}: ${v.help} — ${v.nodes
            .slice(0, 3)
            .map((n) => JSON.stringify(n.target))
            .join(', ')}`,
      );
  });
  expect(violations, `axe on ${what}`).toEqual([]);
}

/** Saves a screenshot for docs/console.md (docs/console/<name>.png). */
export async function screenshot(
  page: Page,
  name: string,
  options: { keepScroll?: boolean } = {},
): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  if (!options.keepScroll) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

/** Polls `check` until it holds (every 50 ms), failing after `timeoutMs` with `what`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A boolean flag: on for everyone unless told otherwise. */
export function boolFlag(key: string, extra: Partial<FlagInput> = {}): FlagInput {
  return {
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'on' },
    ...extra,
  };
}

/**
 * Simulated requests through a Node SDK client's scopes: `perSecond` users a second, each request's
 * outcome recorded against the cohorts it was served (errors with `errorRate(on)`), as an app does.
 */
export function startTraffic(
  client: VigilClient,
  flag: string,
  options: { perSecond?: number; errorRate?: (on: boolean) => number } = {},
): { stop(): void; served: { on: number; off: number } } {
  const perTick = Math.max(1, Math.round((options.perSecond ?? 1000) / 100));
  const errorRate = options.errorRate ?? ((on: boolean) => (on ? 0.002 : 0.002));
  const served = { on: 0, off: 0 };
  let n = 0;
  let random = 7;
  const next = () => {
    random = (Math.imul(random, 1664525) + 1013904223) >>> 0;
    return random / 4294967296;
  };
  const timer = setInterval(() => {
    for (let i = 0; i < perTick; i++) {
      const scope = client.scope({ key: `user-${n++ % 5000}` });
      const on = scope.isEnabled(flag);
      served[on ? 'on' : 'off']++;
      scope.recordOutcome({ error: next() < errorRate(on), latencyMs: 20 + 10 * next() });
    }
  }, 10);
  return { stop: () => clearInterval(timer), served };
}
