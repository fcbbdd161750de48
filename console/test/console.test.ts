import type { Flag, Incident } from '@vigil/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminApi } from '../../demo/src/api.js';
import { Progress } from '../../demo/src/progress.js';
import { runScenario } from '../../demo/src/scenario.js';
import { createClient, type VigilClient } from '../../sdks/node/src/index.js';
import {
  boolFlag,
  type ConsoleRig,
  expectAccessible,
  hasChromium,
  screenshot,
  signIn,
  startRig,
  startTraffic,
  until,
} from './helpers.js';

const ENV = 'production';

if (!hasChromium)
  console.warn('console browser tests skipped: no Chromium at /usr/bin/chromium (.ci/run installs it)');

describe.skipIf(!hasChromium)('the console in Chromium against a real flag server and guardian', () => {
  let rig: ConsoleRig;
  let sdk: VigilClient;
  let admin: string;

  beforeAll(async () => {
    rig = await startRig();
    admin = rig.server.admin;
    const { secret } = await rig.server.app.vigil.tokens.create(
      { name: 'app', scopes: ['sdk-server'], env: ENV },
      'test',
    );
    sdk = createClient({
      url: rig.url,
      sdkKey: secret,
      env: ENV,
      metrics: { flushIntervalMs: 250 },
      logger: { warn: () => {}, error: () => {} },
    });
    await sdk.waitForReady(5000);
  }, 120_000);

  afterAll(async () => {
    await sdk?.close();
    await rig?.close();
  });

  it('signs in with a token, keeps it out of storage and the URL, and refuses bad tokens and SDK keys', async () => {
    const { page, problems } = await rig.open();
    await page.goto(`${rig.url}/flags/${ENV}`);
    await page.getByTestId('sign-in').waitFor();
    await expectAccessible(page, 'sign-in');
    await screenshot(page, 'sign-in');

    await page.getByLabel('API token').fill('vgl_not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByTestId('sign-in-error').textContent()).toContain('not valid');

    const sdkKey = await rig.server.token(['sdk-client'], ENV, 'browser-key');
    await page.getByLabel('API token').fill(sdkKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect
      .poll(() => page.getByTestId('sign-in-error').textContent())
      .toContain('SDK keys cannot sign in');

    await page.getByLabel('API token').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').waitFor();
    expect(await page.getByTestId('who').textContent()).toContain('admin');
    // A deep link survives sign-in, and the token is nowhere the page can keep it.
    expect(new URL(page.url()).pathname).toBe(`/flags/${ENV}`);
    expect(page.url()).not.toContain(admin);
    const stored = await page.evaluate(
      () => JSON.stringify({ ...localStorage, ...sessionStorage }) + document.cookie,
    );
    expect(stored).not.toContain(admin);
    // The session cookie is HttpOnly: present for the browser, invisible to scripts.
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === 'vigil_session')).toMatchObject({
      httpOnly: true,
      sameSite: 'Strict',
    });
    // A reload keeps the session (the cookie) and fetches a new CSRF token.
    await page.reload();
    await page.getByTestId('who').waitFor();
    await expect.poll(() => page.getByTestId('empty').textContent()).toContain('No flags yet');
    await expectAccessible(page, 'empty flag list');
    expect(problems).toEqual([]);
  });

  it('hides or disables what a read token may not do, and says when the session expired', async () => {
    await rig.putFlag(ENV, boolFlag('read-only-flag', { description: 'seen by a reader' }));
    const reader = await rig.token(['read'], 'reader');
    const { page, context, problems } = await rig.open();
    await signIn(page, rig.url, reader, `/flags/${ENV}`);
    await page.locator('[data-testid="flag-row"][data-flag="read-only-flag"]').waitFor();
    expect(await page.getByTestId('new-flag').isDisabled()).toBe(true);
    expect(await page.getByRole('link', { name: 'Tokens' }).count()).toBe(0);
    await page.getByRole('link', { name: 'read-only-flag' }).click();
    await page.getByTestId('read-only').waitFor();
    expect(await page.getByTestId('kill').isDisabled()).toBe(true);
    expect(await page.getByTestId('kill').getAttribute('title')).toContain('ops');
    expect(await page.getByTestId('review').count()).toBe(0);
    // The evaluate panel is open to readers.
    await page.getByTestId('evaluate').click();
    await expect.poll(() => page.getByTestId('eval-variant').textContent()).toBe('on');
    await expectAccessible(page, 'flag page (read-only)');

    // Signed out elsewhere: the next request answers 401 and the console says the session expired.
    await context.clearCookies();
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByTestId('session-expired').waitFor();
    expect(problems).toEqual([]);
  });
  it('creates a flag through the editor, shows the server’s 400 on the field and the diff, and a connected Node SDK serves it', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, admin, `/flags/${ENV}`);
    await page.getByTestId('new-flag').click();
    await page.getByTestId('flag-key-input').fill('new-checkout');
    await page.getByLabel('Description').first().fill('The one-page checkout');
    await page.getByLabel('Tags').fill('checkout, web');
    await page.getByTestId('enabled').check();
    // A rule: country is DE → on; everyone else falls through to off.
    await page.getByTestId('add-rule').click();
    const rule = page.getByTestId('rule').first();
    await rule.getByLabel('Attribute').fill('country');
    await rule.getByTestId('clause-values').fill('DE\nAT');
    await page
      .locator('fieldset.serve', { hasText: 'When no rule matches' })
      .getByLabel('Variant', { exact: true })
      .selectOption('off');
    // A prerequisite on a flag that does not exist: only the server can know, and it names the field.
    await page.getByRole('button', { name: 'Add a prerequisite' }).click();
    await page.getByLabel('Flag', { exact: true }).fill('no-such-flag');
    await page.getByTestId('review').click();
    await page.getByTestId('diff').waitFor();
    await page.getByTestId('confirm-save').click();
    await page.getByTestId('server-issues').waitFor();
    expect(await page.getByTestId('server-issues').textContent()).toContain('prerequisites[0].flag');
    const onField = page
      .locator('.field', { has: page.getByLabel('Flag', { exact: true }) })
      .getByTestId('field-error');
    expect(await onField.textContent()).toMatch(/no-such-flag|unknown|not exist|no flag/i);
    await onField.scrollIntoViewIfNeeded();
    await screenshot(page, 'flag-editor-400', { keepScroll: true });
    await page.getByRole('button', { name: 'Remove prerequisite 1' }).click();

    // The form validates as the server does while typing (proto's schemas): a bad regex shows on its field.
    await rule.getByTestId('clause-op').selectOption('matches');
    await rule.getByTestId('clause-values').fill('(unclosed');
    await expect.poll(() => rule.getByTestId('field-error').count()).toBeGreaterThan(0);
    await rule.getByTestId('clause-op').selectOption('in');
    await rule.getByTestId('clause-values').fill('DE\nAT');
    await expect.poll(() => rule.getByTestId('field-error').count()).toBe(0);

    await page.getByTestId('review').click();
    const diffText = await page.getByTestId('diff').textContent();
    expect(diffText).toContain('rules[0]');
    expect(diffText).toContain('enabled');
    await screenshot(page, 'flag-editor-diff', { keepScroll: true });
    await expectAccessible(page, 'review dialog');
    await page.getByTestId('save-reason').fill('launch the one-page checkout for DACH');
    await page.getByTestId('confirm-save').click();
    await page.waitForURL(`${rig.url}/flags/${ENV}/new-checkout`);
    await expect.poll(() => page.getByTestId('serving-now').textContent()).toBe('1 rule, else off');

    await until('the Node SDK to serve the new flag', () =>
      sdk.isEnabled('new-checkout', { key: 'u1', country: 'DE' }),
    );
    expect(sdk.isEnabled('new-checkout', { key: 'u2', country: 'FR' })).toBe(false);
    const stored = (await rig.api<Flag>('GET', `/envs/${ENV}/flags/new-checkout`)).body;
    expect(stored.rules[0]!.clauses[0]).toEqual({ attribute: 'country', op: 'in', values: ['DE', 'AT'] });
    expect(stored.tags).toEqual(['checkout', 'web']);
    await screenshot(page, 'flag-editor');
    await expectAccessible(page, 'flag editor');
    expect(problems).toEqual([]);
  });

  it('kills from the console (reason required, confirmed): the SDK serves off, the list and the audit show it; revive says what comes back', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, admin, `/flags/${ENV}/new-checkout`);
    await page.getByTestId('kill').click();
    const confirm = page.getByTestId('confirm-kill');
    expect(await confirm.isDisabled()).toBe(true);
    await page.getByTestId('kill-reason').fill('checkout errors spiking in DE');
    await screenshot(page, 'kill-dialog', { keepScroll: true });
    await expectAccessible(page, 'kill dialog');
    const clicked = Date.now();
    await confirm.click();
    await until(
      'the SDK to serve off',
      () => !sdk.isEnabled('new-checkout', { key: 'u1', country: 'DE' }),
      5000,
    );
    const killToSdkMs = Date.now() - clicked;
    console.log(`kill click → Node SDK serving off: ${killToSdkMs} ms`);
    await page.getByTestId('killed-banner').waitFor();
    expect(await page.getByTestId('killed-banner').textContent()).toContain('checkout errors spiking in DE');

    await page.getByRole('link', { name: 'Audit' }).click();
    const entry = page.locator(
      '[data-testid="audit-entry"][data-action="flag.kill"][data-target="new-checkout"]',
    );
    await entry.waitFor();
    expect(await entry.textContent()).toContain('checkout errors spiking in DE');
    expect(await entry.getByTestId('audit-actor-name').textContent()).toBe('bootstrap-admin');
    await entry.locator('summary').click();
    expect(await entry.getByTestId('diff').textContent()).toContain('killed');
    await screenshot(page, 'audit');
    await expectAccessible(page, 'audit');

    await page.getByRole('link', { name: 'Flags' }).click();
    await page.locator('[data-testid="flag-row"][data-flag="new-checkout"][data-state="killed"]').waitFor();
    await page.getByRole('link', { name: 'new-checkout' }).click();
    await page.getByTestId('revive').click();
    expect(await page.getByTestId('revive-serves').textContent()).toBe('1 rule, else off');
    await page.getByTestId('kill-reason').fill('fixed in 4.2.1');
    await page.getByTestId('confirm-kill').click();
    await until(
      'the SDK to serve on again',
      () => sdk.isEnabled('new-checkout', { key: 'u1', country: 'DE' }),
      5000,
    );
    expect(problems).toEqual([]);
  });

  it('shows a change made elsewhere within a second, and on a lost update (412) says so and reloads', async () => {
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, admin, `/flags/${ENV}`);
    await page.locator('[data-testid="flag-row"][data-flag="new-checkout"]').waitFor();
    await page.getByTestId('live').filter({ hasText: 'Live' }).waitFor();
    // A kill over REST (another operator, the CLI): the open list shows it without a reload.
    const t0 = Date.now();
    await rig.api('POST', `/envs/${ENV}/flags/new-checkout/kill`, { reason: 'from the CLI' });
    await page
      .locator('[data-testid="flag-row"][data-flag="new-checkout"][data-state="killed"]')
      .waitFor({ timeout: 2000 });
    const liveMs = Date.now() - t0;
    console.log(`REST kill → open flag list shows it: ${liveMs} ms`);
    expect(liveMs).toBeLessThan(2000);
    await rig.api('POST', `/envs/${ENV}/flags/new-checkout/revive`, { reason: 'from the CLI' });

    await page.getByRole('link', { name: 'new-checkout' }).click();
    await page.getByLabel('Description').first().fill('my edit');
    // Someone else saves first.
    const current = await rig.api<Flag>('GET', `/envs/${ENV}/flags/new-checkout`);
    const { version: _v, createdAt: _c, updatedAt: _u, ...rest } = current.body;
    await rig.api('PUT', `/envs/${ENV}/flags/new-checkout`, { ...rest, description: 'their edit' });
    await page.getByTestId('stale').waitFor();
    await page.getByTestId('review').click();
    await page.getByTestId('confirm-save').click();
    await page.getByTestId('conflict').waitFor();
    await screenshot(page, 'conflict');
    await expectAccessible(page, 'conflict');
    await page.getByTestId('reload').click();
    await expect.poll(() => page.getByLabel('Description').first().inputValue()).toBe('their edit');
    expect(await page.getByTestId('conflict').count()).toBe(0);
    expect((await rig.api<Flag>('GET', `/envs/${ENV}/flags/new-checkout`)).body.description).toBe(
      'their edit',
    );
    expect(problems).toEqual([]);
  });
  it('starts a schedule from the console and watches it advance step by step, with pause and resume', async () => {
    await rig.putFlag(
      ENV,
      boolFlag('gradual', { fallthrough: { variant: 'off' }, guard: { enabled: true, minSamples: 20 } }),
    );
    const traffic = startTraffic(sdk, 'gradual', { perSecond: 1000 });
    try {
      const { page, problems } = await rig.open();
      await signIn(page, rig.url, admin, `/flags/${ENV}/gradual/rollout`);
      await page.getByTestId('steps').fill('10% for 2s, 50% for 2s, 100%');
      await page.getByTestId('start-schedule').click();
      await page.getByTestId('timeline').waitFor();
      // The guardian takes the first step once it sees the flag; the page follows live.
      await page
        .locator('[data-testid="step"]')
        .nth(0)
        .and(page.locator('[data-state="current"]'))
        .waitFor({ timeout: 15_000 });
      await page.getByTestId('pause').click();
      await expect.poll(() => page.getByTestId('schedule-status').textContent()).toBe('paused');
      expect(await page.getByTestId('countdown').textContent()).toMatch(/^paused, \d+ s left$/);
      await page.getByTestId('resume').click();
      await expect.poll(() => page.getByTestId('schedule-status').textContent()).toBe('running');
      await page
        .locator('[data-testid="step"]')
        .nth(1)
        .and(page.locator('[data-state="current"]'))
        .waitFor({ timeout: 20_000 });
      await page.getByTestId('samples').waitFor();
      await screenshot(page, 'rollout');
      await expectAccessible(page, 'rollout');
      await expect
        .poll(() => page.getByTestId('schedule-status').textContent(), { timeout: 20_000 })
        .toBe('completed');
      expect(await page.locator('[data-testid="step"][data-state="done"]').count()).toBe(3);
      const history = await page.getByTestId('schedule-history').textContent();
      expect(history).toContain('schedule');
      expect(history).toContain('pause from the console');
      expect(problems).toEqual([]);
    } finally {
      traffic.stop();
    }
  }, 90_000);

  it('runs the demo scenario: the kill, the incident and its timeline appear live; ack, resolve, postmortem', async () => {
    const DEMO = 'demo';
    const { page, problems } = await rig.open();
    await signIn(page, rig.url, admin, `/flags/${DEMO}`);
    await page.getByTestId('empty').waitFor();
    // A second operator watches the evidence while the scenario runs.
    const watcher = await rig.open();
    await signIn(watcher.page, rig.url, admin, `/flags/${DEMO}`);
    await page.getByRole('link', { name: 'Incidents' }).click();

    const scenario = runScenario({
      api: new AdminApi(rig.url, admin, DEMO),
      sdkUrl: rig.url,
      flag: 'checkout-v2',
      rate: 300,
      holdMs: 3000,
      faultAfterMs: 1500,
      faultRate: 0.3,
      timeoutMs: 90_000,
      progress: new Progress('console test: the demo scenario'),
    });
    // The flag appears in the watcher's list live; it opens the evidence page while traffic flows.
    await watcher.page
      .locator('[data-testid="flag-row"][data-flag="checkout-v2"]')
      .waitFor({ timeout: 15_000 });
    await watcher.page.goto(`${rig.url}/flags/${DEMO}/checkout-v2/evidence`);
    await watcher.page.getByTestId('evidence').waitFor();
    // Cohorts fill in while the rollout runs; the page keeps its own per-second series.
    await watcher.page.getByTestId('cohorts').waitFor({ timeout: 30_000 });
    // The evidence: p50/p95/p99 per cohort, each sequential test's statistic against its boundary
    // (a table and a chart per test), and the thresholds the guardian applied, with their numbers.
    await watcher.page.getByTestId('tests').waitFor({ timeout: 30_000 });
    const tests = watcher.page.getByTestId('tests');
    expect(await tests.locator('[data-test="error_rate_vs_control"]').count()).toBe(1);
    expect(await tests.locator('[data-test="latency_vs_control"]').count()).toBe(1);
    expect(await tests.getByTestId('statistic').first().textContent()).toMatch(/^−?\d+\.\d{2} [<≥]$/);
    await watcher.page.getByTestId('chart-test-error_rate_vs_control').locator('canvas').waitFor();
    await watcher.page.getByTestId('chart-latency').locator('canvas').waitFor();
    const legend = await watcher.page.getByTestId('chart-latency').locator('.u-legend').textContent();
    for (const label of ['on p50', 'on p95', 'on p99', 'off p50 (control)', 'off p99 (control)'])
      expect(legend).toContain(label);
    const cohorts = watcher.page.getByTestId('cohorts');
    expect(await cohorts.locator('thead').textContent()).toMatch(/p50.*p95.*p99/);
    await expect
      .poll(() => cohorts.locator('[data-cohort="on"] td').nth(4).textContent(), { timeout: 10_000 })
      .toMatch(/^\d+ ms$/);
    const thresholds = await watcher.page.getByTestId('thresholds').textContent();
    expect(thresholds).toContain('error rate ≤ 1.00%');
    expect(thresholds).toContain('success rate ≥ 99.00%');
    expect(thresholds).toContain('p99 ≤ 2000 ms');
    expect(thresholds).toMatch(/min samples \d+/);
    expect(thresholds).toMatch(/α 0\.\d+ per comparison/);
    expect(thresholds).not.toContain('default');

    const row = page.locator('[data-testid="incident-row"]');
    await row.first().waitFor({ timeout: 60_000 });
    const result = await scenario;
    expect(result.flag.killed).toBe(true);
    await screenshot(page, 'incidents');
    await expectAccessible(page, 'incidents');

    await expect
      .poll(() => watcher.page.getByTestId('verdict').textContent(), { timeout: 10_000 })
      .toMatch(/regression|insufficient data|healthy/);
    await watcher.page
      .locator('[data-testid="flag-states"]', { hasText: 'killed' })
      .waitFor({ timeout: 5000 });
    // The kill moved the flag to a new version, whose verdict has no treatment yet: the open incident
    // keeps the statistic that crossed its boundary, and the page shows it.
    const detection = watcher.page.getByTestId('detection-tests');
    await detection.waitFor({ timeout: 10_000 });
    const fired = detection.locator('[data-test="error_rate_vs_control"] td');
    expect(await fired.nth(1).textContent()).toMatch(/^\d+\.\d{2} ≥$/);
    expect(Number.parseFloat((await fired.nth(1).textContent())!)).toBeGreaterThanOrEqual(
      Number.parseFloat((await fired.nth(2).textContent())!),
    );
    expect(await watcher.page.getByTestId('detection-cohorts').locator('thead').textContent()).toMatch(
      /p50.*p95.*p99/,
    );
    // The banner's "killed N s ago" keeps counting while the page stays open.
    const { body: killedFlag } = await rig.api<{ killedAt: string }>(
      'GET',
      `/envs/${DEMO}/flags/checkout-v2`,
    );
    await until('3 s since the kill', () => Date.now() - Date.parse(killedFlag.killedAt) >= 3000);
    await expect
      .poll(
        async () =>
          Number(
            /Killed (\d+) s ago/.exec(
              (await watcher.page.getByTestId('killed-banner').textContent()) ?? '',
            )?.[1],
          ),
        { timeout: 3000 },
      )
      .toBeGreaterThanOrEqual(2);
    await screenshot(watcher.page, 'evidence');
    await watcher.page.getByTestId('chart-test-error_rate_vs_control').scrollIntoViewIfNeeded();
    await screenshot(watcher.page, 'evidence-tests', { keepScroll: true });
    await expectAccessible(watcher.page, 'evidence');
    expect(watcher.problems).toEqual([]);

    await row.first().getByRole('link').first().click();
    const timeline = page.getByTestId('incident-timeline');
    await timeline.locator('[data-kind="kill"]').first().waitFor();
    expect(await timeline.locator('[data-kind="detection"]').count()).toBeGreaterThan(0);
    await page.getByTestId('postmortem').waitFor();
    expect(await page.getByTestId('postmortem').textContent()).toContain('Timeline');
    const download = page.waitForEvent('download');
    await page.getByTestId('postmortem-download').click();
    expect((await download).suggestedFilename()).toBe(`postmortem-${result.incident.id}.md`);
    await screenshot(page, 'incident');
    await expectAccessible(page, 'incident');

    await page.getByTestId('incident-note').fill('on it');
    await page.getByTestId('ack').click();
    await expect.poll(() => page.getByTestId('incident-status').textContent()).toBe('acknowledged');
    await page.getByTestId('incident-note').fill('rolled back the payment client');
    await page.getByTestId('resolve').click();
    await expect.poll(() => page.getByTestId('incident-status').textContent()).toBe('resolved');
    await expect.poll(() => timeline.textContent()).toContain('rolled back the payment client');
    const stored = (await rig.api<Incident>('GET', `/incidents/${result.incident.id}`)).body;
    expect(stored.status).toBe('resolved');
    expect(stored.timeline.some((t) => t.kind === 'acknowledged' && t.message.includes('on it'))).toBe(true);
    expect(problems).toEqual([]);
  }, 150_000);
});
