/**
 * The ops console in a real browser: what it costs to load and how live it is.
 *
 *   pnpm bench:console [--flags 5000] [--rounds 5] [--kills 10] [--no-build]
 *
 * Builds the console (`vite build`, unless --no-build), starts the flag server in its own process
 * (embedded store, the way `pnpm start` runs it) with `--flags` flags, and drives headless Chromium
 * (playwright-core, /usr/bin/chromium or CHROMIUM_PATH) signed in with the admin token. It measures:
 *
 * - initial JS + CSS: the scripts, module preloads and stylesheets index.html names, gzipped (-9, what
 *   the server sends), and what the browser received for them (encoded body bytes);
 * - flags page → list: from the navigation's start (`performance.timeOrigin`) to the first
 *   `[data-testid="flag-row"]` in the DOM, each round in a fresh browser context (nothing cached);
 * - REST kill → shown: from sending `POST …/kill` with a bearer token (as the CLI or the guardian
 *   would) until the open page shows that flag's row with `data-state="killed"`, through the
 *   server's change feed (`GET /api/v1/events`, server-sent events). Each kill is a different flag.
 *
 * Targets (issue 12): ≤ 200 KB gzip initial, ≤ 1 s for the list, ≤ 1 s for the kill; printed beside
 * the figures, never enforced.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import {
  benchDir,
  benchFlag,
  call,
  type FlagServer,
  fmt,
  loadLine,
  machineLine,
  met,
  quantile,
  startFlagServer,
} from './server.js';

const TARGET = { initialKb: 200, listMs: 1000, killMs: 1000 };
const ROW = '[data-testid="flag-row"]';

const { values: args } = parseArgs({
  options: {
    flags: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '5' },
    kills: { type: 'string', default: '10' },
    'no-build': { type: 'boolean', default: false },
  },
});
const FLAGS = Number(args.flags);
const ROUNDS = Number(args.rounds);
const KILLS = Number(args.kills);
const repoRoot = join(benchDir, '..');
const dist = join(repoRoot, 'console', 'dist');

/** Builds the console as `pnpm build` does. */
function build(): void {
  const started = performance.now();
  const result = spawnSync('pnpm', ['--silent', '--filter', '@vigil/console', 'build'], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`vite build failed (exit ${result.status})`);
  console.log(`built console/dist in ${fmt((performance.now() - started) / 1000, 1)} s`);
}

interface InitialAsset {
  path: string;
  raw: number;
  gzip: number;
}

/** The scripts, module preloads and stylesheets the built index.html loads before anything else. */
function initialAssets(): InitialAsset[] {
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  const paths = new Set<string>();
  for (const match of html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)) paths.add(match[1]!);
  for (const match of html.matchAll(/<link\b[^>]*>/g)) {
    const tag = match[0];
    if (!/\brel="(stylesheet|modulepreload)"/.test(tag)) continue;
    const href = /\bhref="([^"]+)"/.exec(tag)?.[1];
    if (href) paths.add(href);
  }
  return [...paths].map((path) => {
    const bytes = readFileSync(join(dist, path.replace(/^\//, '')));
    return { path, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
  });
}

/** Creates `count` flags over REST, a few requests at a time. */
async function loadManyFlags(server: FlagServer, count: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const flag = benchFlag(i);
      await call(server.url, server.admin, 'PUT', `/api/v1/envs/production/flags/${flag.key}`, flag);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** A fresh browser context (empty cache) signed in to the console with the admin token. */
async function signedIn(browser: Browser, server: FlagServer): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL: server.url });
  // The context's request client shares the browser's cookie jar: this is the console's own sign-in call.
  const response = await context.request.post('/api/v1/session', { data: { token: server.admin } });
  if (response.status() !== 200) throw new Error(`sign-in: ${response.status()} ${await response.text()}`);
  return context;
}

interface LoadRound {
  listMs: number;
  rows: number;
  /** Encoded (transferred) body bytes of the scripts and stylesheets fetched before the list showed. */
  transferred: number;
  problems: string[];
}

/** Opens the flags page in a fresh context; returns when the first row is in the DOM. */
async function openFlags(browser: Browser, server: FlagServer): Promise<{ page: Page; round: LoadRound }> {
  const context = await signedIn(browser, server);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    // Failed requests are reported below, with their URL.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(message.text());
    }
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} ${new URL(response.url()).pathname}`);
  });
  page.on('pageerror', (error) => problems.push(error.message));
  const sized: Promise<number>[] = [];
  page.on('requestfinished', (request) => {
    if (['script', 'stylesheet'].includes(request.resourceType())) {
      sized.push(request.sizes().then((s) => s.responseBodySize));
    }
  });
  await page.goto('/flags/production', { waitUntil: 'commit' });
  // Runs in the page (a function: the console's CSP refuses strings to evaluate). This package
  // compiles without the DOM's types, hence the cast.
  const shownAt = await page.waitForFunction(
    (selector) => {
      const { document } = globalThis as unknown as { document: { querySelector(s: string): unknown } };
      return document.querySelector(selector) ? performance.now() : false;
    },
    ROW,
    { polling: 'raf', timeout: 60_000 },
  );
  const listMs = (await shownAt.jsonValue()) as number;
  const rows = await page.locator(ROW).count();
  const transferred = (await Promise.all(sized)).reduce((a, b) => a + b, 0);
  return { page, round: { listMs, rows, transferred, problems } };
}

/** Kills `count` flags shown on the open page over REST, one at a time; the ms until each row shows it. */
async function killsShown(page: Page, server: FlagServer, count: number): Promise<number[]> {
  const keys = await page.$$eval(
    `${ROW}:not([data-state="killed"])`,
    (rows, n) => rows.slice(0, n).map((row) => row.getAttribute('data-flag') ?? ''),
    count,
  );
  if (keys.length === 0 || keys.some((key) => key === '')) {
    throw new Error(`the flags page shows no rows with data-flag to kill (found ${JSON.stringify(keys)})`);
  }
  const times: number[] = [];
  for (const key of keys) {
    const shown = page.waitForSelector(`${ROW}[data-flag="${key}"][data-state="killed"]`, {
      state: 'attached',
      timeout: 30_000,
    });
    const started = performance.now();
    await call(server.url, server.admin, 'POST', `/api/v1/envs/production/flags/${key}/kill`, {
      reason: 'bench:console',
    });
    await shown;
    times.push(performance.now() - started);
  }
  return times;
}

async function main(): Promise<void> {
  console.log(machineLine('bench:console'));
  if (!args['no-build']) build();
  const assets = initialAssets();
  const initialRaw = assets.reduce((a, b) => a + b.raw, 0);
  const initialGzip = assets.reduce((a, b) => a + b.gzip, 0);

  const server = await startFlagServer();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
  try {
    const loadStarted = performance.now();
    await loadManyFlags(server, FLAGS);
    console.log(
      `loaded ${fmt(FLAGS)} flags in ${fmt((performance.now() - loadStarted) / 1000, 1)} s; ` +
        `${ROUNDS} cold loads of the flags page, ${KILLS} kills\n`,
    );

    const rounds: LoadRound[] = [];
    let open: Page | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const { page, round } = await openFlags(browser, server);
      rounds.push(round);
      if (i < ROUNDS - 1) await page.context().close();
      else open = page;
    }
    const kills = await killsShown(open!, server, KILLS);
    await open!.context().close();

    const list = rounds.map((r) => r.listMs).sort((a, b) => a - b);
    const killSorted = [...kills].sort((a, b) => a - b);
    const transferred = Math.max(...rounds.map((r) => r.transferred));
    const problems = [...new Set(rounds.flatMap((r) => r.problems))];
    const kb = (bytes: number) => `${fmt(bytes / 1024, 1)} KB`;

    console.log('initial JS + CSS (what index.html loads):');
    for (const asset of assets) {
      console.log(
        `  ${asset.path.padEnd(40)} ${kb(asset.raw).padStart(10)} raw ${kb(asset.gzip).padStart(10)} gzip`,
      );
    }
    console.log(
      `  total ${kb(initialRaw)} raw, ${kb(initialGzip)} gzip; the browser received ${kb(transferred)} ` +
        `for scripts and stylesheets   target ≤ ${TARGET.initialKb} KB gzip: ` +
        `${met(initialGzip <= TARGET.initialKb * 1024)}`,
    );
    console.log(
      `flags page → first row, ${fmt(FLAGS)} flags: median ${fmt(quantile(list, 0.5))} ms, ` +
        `max ${fmt(list.at(-1)!)} ms (${rounds[0]!.rows} rows in the DOM)   target ≤ ${TARGET.listMs} ms: ` +
        `${met(list.at(-1)! <= TARGET.listMs)}`,
    );
    console.log(
      `REST kill → row shows killed: median ${fmt(quantile(killSorted, 0.5))} ms, ` +
        `p95 ${fmt(quantile(killSorted, 0.95))} ms, max ${fmt(killSorted.at(-1)!)} ms over ${kills.length} kills   ` +
        `target ≤ ${TARGET.killMs} ms: ${met(killSorted.at(-1)! <= TARGET.killMs)}`,
    );
    if (problems.length > 0) {
      console.log(`browser errors and failed requests (${problems.length}):`);
      for (const problem of problems.slice(0, 5)) console.log(`  ${problem.slice(0, 300)}`);
    }
    console.log(loadLine());
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
