import type { Flag, FlagInput } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatencySketch } from '../../sdks/core/src/index.js';
import { CohortAnalyzer } from '../../services/guardian/src/analysis/index.js';
import { storedVerdict } from '../../services/guardian/src/incidents/build.js';
import {
  boolFlag,
  type ConsoleRig,
  expectAccessible,
  hasChromium,
  screenshot,
  signIn,
  startRig,
} from './helpers.js';

const ENV = 'production';
const MANY = 600;

/** Flags of every state the list filters on. */
function sampleFlags(): FlagInput[] {
  const flags: FlagInput[] = [
    boolFlag('checkout-v2', {
      description: 'The one-page checkout',
      tags: ['checkout', 'web'],
      owner: 'payments',
      guard: { enabled: true, severity: 'sev2' },
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', weight: 20_000 },
            { variant: 'off', weight: 80_000 },
          ],
        },
      },
    }),
    boolFlag('dark-mode', { description: 'Dark theme for the storefront', tags: ['web'], clientSide: true }),
    boolFlag('legacy-search', { description: 'The old search backend', tags: ['search'], enabled: false }),
    boolFlag('new-pricing', { description: 'Pricing page v3', tags: ['growth'], guard: { enabled: true } }),
    {
      key: 'search-ranking',
      description: 'Ranking model served to search',
      tags: ['search'],
      variants: [
        { key: 'bm25', value: { model: 'bm25' } },
        { key: 'neural', value: { model: 'ranker-7', temperature: 0.2 } },
      ],
      offVariant: 'bm25',
      enabled: true,
      rules: [
        {
          id: 'beta',
          clauses: [{ attribute: 'plan', op: 'in', values: ['beta'] }],
          serve: { variant: 'neural' },
        },
        {
          id: 'modern-app',
          clauses: [{ attribute: 'app.version', op: 'semverGt', values: ['4.0.0'] }],
          serve: {
            rollout: {
              weights: [
                { variant: 'neural', weight: 50_000 },
                { variant: 'bm25', weight: 50_000 },
              ],
            },
          },
        },
      ],
      fallthrough: { variant: 'bm25' },
    },
  ];
  for (let i = 0; i < MANY; i++) {
    flags.push(
      boolFlag(`x-load-${String(i).padStart(4, '0')}`, {
        description: `Generated flag ${i}`,
        tags: [`team-${i % 7}`],
      }),
    );
  }
  return flags;
}

if (!hasChromium) console.warn('console page tests skipped: no Chromium at /usr/bin/chromium');

describe.skipIf(!hasChromium)('the console pages: list, tokens, themes, errors, accessibility', () => {
  let rig: ConsoleRig;

  beforeAll(async () => {
    rig = await startRig();
    const flags = sampleFlags();
    for (let i = 0; i < flags.length; i += 50)
      await Promise.all(flags.slice(i, i + 50).map((f) => rig.putFlag(ENV, f)));
    await rig.api('POST', `/envs/${ENV}/flags/legacy-search/kill`, { reason: 'search outage' });
    await rig.putFlag('staging', boolFlag('staging-only', { description: 'Only in staging' }));
  }, 120_000);

  afterAll(async () => {
    await rig?.close();
  });

  it('lists hundreds of flags windowed, filters by text, tag and state, and switches environment', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}`);
    await expect
      .poll(() => page.getByTestId('flag-count').textContent())
      .toBe(`${MANY + 5} of ${MANY + 5} flags`);
    // Only the rows in view (and a few around them) are in the DOM.
    const rendered = await page.getByTestId('flag-row').count();
    expect(rendered).toBeGreaterThan(5);
    expect(rendered).toBeLessThan(60);
    await expect
      .poll(() =>
        page.locator('[data-testid="flag-row"][data-flag="checkout-v2"]').getAttribute('data-state'),
      )
      .toBe('rolling-out');
    expect(await page.locator('[data-flag="checkout-v2"]').getByTestId('serving').textContent()).toContain(
      'on 20% · off 80%',
    );
    await screenshot(page, 'flags');
    await expectAccessible(page, 'flags list');

    // Scrolling to the end renders the last rows.
    await page.getByTestId('flag-list').evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    await page.locator('[data-testid="flag-row"][data-flag="x-load-0599"]').waitFor();

    await page.getByTestId('state-filter').selectOption('killed');
    await expect.poll(() => page.getByTestId('flag-count').textContent()).toBe(`1 of ${MANY + 5} flags`);
    expect(await page.getByTestId('flag-row').getAttribute('data-flag')).toBe('legacy-search');
    expect(new URL(page.url()).searchParams.get('state')).toBe('killed');
    await page.getByTestId('state-filter').selectOption('');
    await page.getByTestId('tag-filter').selectOption('search');
    await expect.poll(() => page.getByTestId('flag-count').textContent()).toBe(`2 of ${MANY + 5} flags`);
    await page.getByTestId('tag-filter').selectOption('');
    await page.getByTestId('flag-search').fill('ranking model');
    await expect.poll(() => page.getByTestId('flag-count').textContent()).toBe(`1 of ${MANY + 5} flags`);
    await page.getByTestId('flag-search').fill('no such thing anywhere');
    await page.getByTestId('empty').waitFor();
    await page.getByTestId('flag-search').fill('');

    await page.getByTestId('env-switch').selectOption('staging');
    await page.waitForURL(`${rig.url}/flags/staging`);
    await page.locator('[data-testid="flag-row"][data-flag="staging-only"]').waitFor();
    expect(problems).toEqual([]);
  });

  it('loads the flag list once on opening the page, not again when the live feed connects', async () => {
    const { page, problems } = await rig.open();
    const listLoads: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === `/api/v1/envs/${ENV}/flags`) listLoads.push(r.url());
    });
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}`);
    await page.getByTestId('live').filter({ hasText: 'Live' }).waitFor();
    await page.locator('[data-testid="flag-row"]').first().waitFor();
    await page.waitForTimeout(500);
    expect(listLoads).toHaveLength(1);
    expect(problems).toEqual([]);
  });

  it('shows a token bound to one environment only that environment, without incidents and tokens', async () => {
    const bound = await rig.server.token(['ops'], 'staging', 'staging-operator');
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, bound, '/');
    await page.waitForURL(`${rig.url}/flags/staging`);
    await page.locator('[data-testid="flag-row"][data-flag="staging-only"]').waitFor();
    expect(await page.getByTestId('env-switch').locator('option').allTextContents()).toEqual(['staging']);
    expect(await page.getByRole('link', { name: 'Incidents' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Tokens' }).count()).toBe(0);
    expect(problems).toEqual([]);
  });

  it('edits every part of a flag in the JSON editor and in the form (JSON variant values, rollouts, guard)', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}/search-ranking`);
    await page.getByTestId('json-mode').click();
    const json = page.getByTestId('json-editor');
    const flag = JSON.parse(await json.inputValue()) as FlagInput;
    expect(flag.rules?.map((r) => r.id)).toEqual(['beta', 'modern-app']);
    await json.fill(
      JSON.stringify(
        { ...flag, salt: 'ranking-2026', guard: { enabled: true, maxErrorRate: 0.02 } },
        null,
        2,
      ),
    );
    await page.getByRole('button', { name: 'Form', exact: true }).click();
    expect(await page.getByLabel('Salt').inputValue()).toBe('ranking-2026');
    expect(await page.getByLabel('Max error rate (%)').inputValue()).toBe('2');
    // The neural variant's JSON value and the second rule's 50/50 split are in the form too.
    expect(await page.getByLabel('Value of variant neural').inputValue()).toContain('"model":"ranker-7"');
    await page.getByLabel('Share of neural in percent').fill('70');
    expect(await page.getByTestId('weights-total').first().textContent()).toContain('must add up to 100%');
    await page.getByRole('button', { name: 'Make the last weight fill up to 100%' }).click();
    expect(await page.getByTestId('weights-total').first().textContent()).toBe('Total 100%');
    await page.getByTestId('review').click();
    const diff = await page.getByTestId('diff').textContent();
    expect(diff).toContain('salt');
    expect(diff).toContain('rules[1].serve.rollout.weights[0].weight');
    await page.getByTestId('confirm-save').click();
    await page.getByTestId('saved').waitFor();
    const stored = (await rig.api<FlagInput>('GET', `/envs/${ENV}/flags/search-ranking`)).body;
    expect(stored.salt).toBe('ranking-2026');
    expect(stored.guard).toMatchObject({ maxErrorRate: 0.02 });
    expect('rollout' in stored.rules![1]!.serve && stored.rules![1]!.serve.rollout.weights).toEqual([
      { variant: 'neural', weight: 70_000 },
      { variant: 'bm25', weight: 30_000 },
    ]);
    await screenshot(page, 'flag-form');
    expect(problems).toEqual([]);
  });

  it('creates a token (the secret shown once), lists it and deletes it', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, '/tokens');
    await page.getByTestId('token-name').fill('ci-deployer');
    await page.getByTestId('token-scope').selectOption('ops');
    await page.getByTestId('create-token').click();
    const secret = (await page.getByTestId('token-secret').textContent()) ?? '';
    expect(secret).toMatch(/^vgl_/);
    await expectAccessible(page, 'token created dialog');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await page.locator('[data-testid="token-row"][data-token="ci-deployer"]').waitFor();
    // Shown once: nowhere on the page any more, and the list never carries it.
    expect(await page.content()).not.toContain(secret);
    const me = await fetch(`${rig.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: secret }),
    });
    expect(((await me.json()) as { scope: string }).scope).toBe('ops');
    await screenshot(page, 'tokens');
    await expectAccessible(page, 'tokens');
    await page.getByRole('button', { name: 'Delete token ci-deployer' }).click();
    await page.getByTestId('confirm-delete-token').click();
    await expect
      .poll(() => page.locator('[data-testid="token-row"][data-token="ci-deployer"]').count())
      .toBe(0);
    expect(problems).toEqual([]);
  });

  it('passes axe in the dark theme too, and the toggle switches themes', async () => {
    const { page, problems } = await rig.open({ dark: true });
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}`);
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await page.locator('[data-testid="flag-row"]').first().waitFor();
    await expectAccessible(page, 'flags list (dark)');
    await screenshot(page, 'flags-dark');
    await page.goto(`${rig.url}/flags/${ENV}/checkout-v2`);
    await page.getByTestId('kill').waitFor();
    await expectAccessible(page, 'flag page (dark)');
    await page.goto(`${rig.url}/flags/${ENV}/checkout-v2/rollout`);
    await page.getByText('No schedule', { exact: true }).waitFor();
    await expectAccessible(page, 'rollout without a schedule (dark)');
    await page.goto(`${rig.url}/flags/${ENV}/checkout-v2/evidence`);
    await page.getByTestId('evidence').waitFor();
    await expectAccessible(page, 'evidence (dark)');
    await page.goto(`${rig.url}/audit/${ENV}`);
    await page.getByTestId('audit-entry').first().waitFor();
    await expectAccessible(page, 'audit (dark)');
    await page.goto(`${rig.url}/tokens`);
    await page.getByTestId('token-row').first().waitFor();
    await expectAccessible(page, 'tokens (dark)');
    await page.goto(`${rig.url}/incidents`);
    await page.getByTestId('empty').waitFor();
    await expectAccessible(page, 'incidents, empty (dark)');
    await page.getByTestId('theme-toggle').click();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('light');
    expect(problems).toEqual([]);
  });

  it('is keyboard-operable: skip link, visible focus, and the kill dialog opened and cancelled by keys', async () => {
    const { page } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}/dark-mode`);
    await page.getByTestId('kill').waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline).toBe('solid');
    await page.getByTestId('kill').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('kill-reason').waitFor();
    expect(await page.evaluate(() => document.activeElement?.tagName)).not.toBe('BODY');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByTestId('kill-reason').count()).toBe(0);
  });

  it('says when the server cannot be reached, and when a page does not exist', async () => {
    const { page } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}`);
    await page.locator('[data-testid="flag-row"]').first().waitFor();
    await page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByTestId('unreachable').waitFor();
    await screenshot(page, 'unreachable');
    await expectAccessible(page, 'unreachable');
    await page.unroute('**/api/v1/**');
    await page.goto(`${rig.url}/no/such/page`);
    await page.getByText('Page not found').waitFor();
  });

  it('creates a segment, shows which flags use it, and a rule targeting it serves its members', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, `/segments/${ENV}`);
    await page.getByTestId('empty').waitFor();
    await page.getByTestId('new-segment').click();
    await page.getByTestId('segment-key').fill('beta-testers');
    await page.getByTestId('segment-included').fill('alice\nbob');
    await page.getByTestId('save-segment').click();
    await page.locator('[data-testid="segment-row"][data-segment="beta-testers"]').waitFor();
    await rig.putFlag(
      ENV,
      boolFlag('beta-banner', {
        rules: [
          {
            id: 'beta',
            clauses: [{ attribute: 'key', op: 'inSegment', values: ['beta-testers'] }],
            serve: { variant: 'on' },
          },
        ],
        fallthrough: { variant: 'off' },
      }),
    );
    // The flag list changed elsewhere: the "used by" column follows live.
    await page.locator('[data-segment="beta-testers"]').getByRole('link', { name: 'beta-banner' }).waitFor();
    await screenshot(page, 'segments');
    await expectAccessible(page, 'segments');
    const evaluated = await rig.api<{ results: Record<string, { variant: string }> }>(
      'POST',
      `/envs/${ENV}/evaluate`,
      {
        context: { key: 'bob' },
        flags: ['beta-banner'],
      },
    );
    expect(evaluated.body.results['beta-banner']!.variant).toBe('on');
    // Deleting a segment a flag uses is refused by the server; the console shows why.
    await page.getByRole('button', { name: 'Edit segment beta-testers' }).click();
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByTestId('confirm-delete-segment').click();
    await expect
      .poll(() => page.getByRole('alert').last().textContent())
      .toMatch(/VIGIL_IN_USE|in use|used/i);
    expect(problems).toEqual([]);
  });

  it('deletes a flag after typing its key; a flag another requires is refused with the reason', async () => {
    await rig.putFlag(
      ENV,
      boolFlag('needs-pricing', { prerequisites: [{ flag: 'new-pricing', variant: 'on' }] }),
    );
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}/new-pricing`);
    await page.getByTestId('delete-flag').click();
    expect(await page.getByTestId('confirm-delete-flag').isDisabled()).toBe(true);
    await page.getByTestId('delete-confirm-key').fill('new-pricing');
    await page.getByTestId('confirm-delete-flag').click();
    await expect.poll(() => page.getByRole('alert').last().textContent()).toContain('VIGIL_IN_USE');
    await page.keyboard.press('Escape');
    await page.goto(`${rig.url}/flags/${ENV}/needs-pricing`);
    await page.getByTestId('delete-flag').click();
    await page.getByTestId('delete-confirm-key').fill('needs-pricing');
    await page.getByTestId('confirm-delete-flag').click();
    await page.waitForURL(`${rig.url}/flags/${ENV}`);
    expect((await rig.api('GET', `/envs/${ENV}/flags/needs-pricing`)).status).toBe(404);
    expect(problems).toEqual([]);
  });

  it("shows the guardian's evidence: each test's statistic against its boundary, p50/p95/p99, the thresholds applied (dark)", async () => {
    // A verdict the guardian's own analysis makes of 30 s of traffic with a 10% error rate in `on`.
    await rig.putFlag(
      ENV,
      boolFlag('evidence-flag', {
        guard: { enabled: true, severity: 'sev3', maxErrorRate: 0.02, minSamples: 300 },
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'on', weight: 20_000 },
              { variant: 'off', weight: 80_000 },
            ],
          },
        },
      }),
    );
    const { body: flag } = await rig.api<Flag>('GET', `/envs/${ENV}/flags/evidence-flag`);
    const analyzer = new CohortAnalyzer();
    const t0 = Date.now() - 30_000;
    const sketch = (count: number, medianMs: number) => {
      const s = new LatencySketch(0.01);
      for (let i = 0; i < count; i++) s.add(medianMs * Math.exp(2 * ((i + 0.5) / count) - 1));
      return s.toJSON();
    };
    let verdict: ReturnType<CohortAnalyzer['evaluate']> | undefined;
    for (let s = 0; s < 30; s++) {
      for (const [variant, requests, errors, median] of [
        ['on', 200, 20, 140],
        ['off', 800, 4, 80],
      ] as const) {
        analyzer.ingest({
          env: ENV,
          flag: flag.key,
          variant,
          version: flag.version,
          windowStart: new Date(t0 + s * 1000).toISOString(),
          windowEnd: new Date(t0 + (s + 1) * 1000).toISOString(),
          requests,
          errors,
          latency: sketch(requests, median),
        });
      }
      verdict = analyzer.evaluate(ENV, flag, t0 + (s + 1) * 1000);
    }
    expect(verdict!.status).toBe('regression');
    await rig.server.store.putVerdict(storedVerdict(verdict!, 'console-test'), 120_000);

    const { page, problems } = await rig.open({ dark: true });
    await signIn(page, rig.url, rig.server.admin, `/flags/${ENV}/evidence-flag/evidence`);
    const tests = page.getByTestId('tests');
    await tests.waitFor();
    const cmp = tests.locator('[data-test="error_rate_vs_control"]');
    expect(await cmp.getAttribute('data-crossed')).toBe('true');
    expect(await cmp.textContent()).toContain('fail');
    const stat = verdict!.variants[0]!.checks.find((c) => c.trigger === 'error_rate_vs_control')!;
    expect(await cmp.getByTestId('statistic').textContent()).toBe(`${stat.logEvidence.toFixed(2)} ≥`);
    expect(await cmp.locator('td').nth(3).textContent()).toBe(stat.logBoundary.toFixed(2));
    expect(await tests.locator('[data-test="p99_latency"]').getAttribute('data-crossed')).toBe('false');
    const thresholds = await page.getByTestId('thresholds').textContent();
    for (const text of ['error rate ≤ 2.00%', 'success rate ≥ 99.00%', 'p99 ≤ 2000 ms', 'min samples 300'])
      expect(thresholds).toContain(text);
    const on = page.getByTestId('cohorts').locator('[data-cohort="on"] td');
    const treatment = verdict!.variants[0]!.treatment;
    expect(await on.nth(4).textContent()).toBe(`${Math.round(treatment.p50LatencyMs!)} ms`);
    expect(await on.nth(5).textContent()).toBe(`${Math.round(treatment.p95LatencyMs!)} ms`);
    expect(await on.nth(6).textContent()).toBe(`${Math.round(treatment.p99LatencyMs!)} ms`);
    for (const trigger of [
      'error_rate',
      'success_rate',
      'p99_latency',
      'error_rate_vs_control',
      'latency_vs_control',
    ])
      await page.getByTestId(`chart-test-${trigger}`).locator('canvas').waitFor();
    await page.getByTestId('chart-latency').locator('canvas').waitFor();
    expect(
      await page
        .getByTestId('chart-test-error_rate_vs_control')
        .locator('[role="img"]')
        .getAttribute('aria-label'),
    ).toMatch(/on log e-value \d+\.\d{2}, boundary \d+\.\d{2}$/);
    await expectAccessible(page, 'evidence with tests (dark)');
    expect(problems).toEqual([]);
  });
});
