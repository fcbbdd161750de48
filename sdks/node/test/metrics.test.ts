import { LatencySketch } from '@vigil/core';
import { cohortSummarySchema } from '@vigil/proto';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { createClient, type VigilClient, type VigilSdkError } from '../src/index.js';
import { boolFlag, memoryLogger, next, TestServer, until } from './helpers.js';

const ENV = 'production';

let server: TestServer;
let key: string;
const clients: VigilClient[] = [];

function client(options: Partial<Parameters<typeof createClient>[0]> = {}): VigilClient {
  const c = createClient({
    url: server.url,
    sdkKey: key,
    env: ENV,
    logger: memoryLogger(),
    reconnect: { baseMs: 20, capMs: 100 },
    // Flushed by the tests themselves.
    metrics: { flushIntervalMs: 3_600_000 },
    ...options,
  });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  server = await TestServer.start();
  key = await server.token(['sdk-server'], ENV);
  await server.putFlag(ENV, boolFlag('checkout'));
  await server.putFlag(ENV, {
    key: 'theme',
    variants: [
      { key: 'light', value: 'light' },
      { key: 'dark', value: 'dark' },
    ],
    offVariant: 'light',
    enabled: true,
    fallthrough: { variant: 'dark' },
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server.dispose();
});

describe('request scopes', () => {
  it('evaluate with the bound context and remember each (flag, variant, version) served, once', async () => {
    const c = client();
    await c.waitForReady(5000);
    const scope = c.scope({ key: 'u1' });
    expect(scope.isEnabled('checkout')).toBe(true);
    expect(scope.isEnabled('checkout')).toBe(true);
    expect(scope.value('theme', 'light')).toBe('dark');
    // Values are typed by their default, widened: a string, not the literal 'light'.
    expectTypeOf(scope.value('theme', 'light')).toEqualTypeOf<string>();
    expectTypeOf(c.value('theme', {}, 3)).toEqualTypeOf<number>();
    expectTypeOf(c.detail('checkout', {}, false).value).toEqualTypeOf<boolean>();
    expect(scope.variant('theme')).toBe('dark');
    // Unknown flags and type mismatches serve the default and no cohort.
    expect(scope.isEnabled('nope', true)).toBe(true);
    expect(scope.value('checkout', 'x')).toBe('x');
    expect(scope.cohorts()).toEqual([
      { flag: 'checkout', variant: 'on', version: c.detail('checkout', {}).flagVersion },
      { flag: 'theme', variant: 'dark', version: c.detail('theme', {}).flagVersion },
    ]);
  });

  it('resolve a context function at the first evaluation, and survive one that throws', async () => {
    const logger = memoryLogger();
    const c = client({ logger });
    await c.waitForReady(5000);
    let calls = 0;
    const scope = c.scope(() => {
      calls += 1;
      return { key: 'u2' };
    });
    expect(calls).toBe(0);
    scope.isEnabled('checkout');
    scope.variant('theme');
    expect(calls).toBe(1);
    expect(scope.context).toEqual({ key: 'u2' });
    const broken = c.scope(() => {
      throw new Error('no user');
    });
    expect(broken.isEnabled('checkout')).toBe(true);
    expect(logger.lines.some((l) => l.msg.includes('no user'))).toBe(true);
  });

  it('record outcomes per cohort and a flush delivers them to the server as valid summaries', async () => {
    const c = client();
    await c.waitForReady(5000);
    const latencies = [12, 20, 35, 400];
    latencies.forEach((latencyMs, i) => {
      const scope = c.scope({ key: `u${i}` });
      scope.isEnabled('checkout');
      if (i % 2 === 0) scope.variant('theme');
      expect(scope.recordOutcome({ error: i === 3, latencyMs })).toBe(true);
      // Only the first outcome of a scope counts.
      expect(scope.recordOutcome({ error: true, latencyMs: 1 })).toBe(false);
    });
    // A scope that evaluated nothing records nothing.
    c.scope({ key: 'idle' }).recordOutcome({ error: true });

    expect(c.stats().metrics).toMatchObject({ cohorts: 2, outcomes: 6 });
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ cohorts: 0, sentSummaries: 2, pendingSummaries: 0 });

    const summaries = await server.summaries();
    expect(summaries).toHaveLength(2);
    for (const s of summaries) expect(cohortSummarySchema.safeParse(s).success).toBe(true);
    const checkout = summaries.find((s) => s.flag === 'checkout')!;
    expect(checkout).toMatchObject({
      env: ENV,
      variant: 'on',
      version: c.detail('checkout', {}).flagVersion,
      requests: 4,
      errors: 1,
    });
    const sketch = LatencySketch.fromJSON(checkout.latency);
    expect(sketch.count).toBe(4);
    expect(sketch.max).toBe(400);
    expect(Math.abs(sketch.quantile(0.5)! - 20) / 20).toBeLessThanOrEqual(0.02);
    const theme = summaries.find((s) => s.flag === 'theme')!;
    expect(theme).toMatchObject({ variant: 'dark', requests: 2, errors: 0 });
    expect(Date.parse(theme.windowEnd)).toBeGreaterThanOrEqual(Date.parse(theme.windowStart));
  });

  it('a kill mid-window opens a new cohort: the summaries tell the versions apart', async () => {
    const c = client();
    await c.waitForReady(5000);
    const before = c.scope({ key: 'a' });
    before.isEnabled('checkout');
    before.recordOutcome({ error: true, latencyMs: 5 });
    const changed = next<[string[]]>((l) => c.on('change', l));
    await server.api('POST', `/envs/${ENV}/flags/checkout/kill`, { reason: 'errors' });
    await changed;
    const after = c.scope({ key: 'a' });
    after.isEnabled('checkout');
    after.recordOutcome({ error: false, latencyMs: 5 });
    await c.flush();
    const summaries = (await server.summaries()).filter((s) => s.flag === 'checkout');
    expect(summaries.map((s) => [s.variant, s.errors])).toEqual([
      ['on', 1],
      ['off', 0],
    ]);
    expect(summaries[1]!.version).toBeGreaterThan(summaries[0]!.version);
  });

  it('measure latency from the scope creation when none is given', async () => {
    const c = client();
    await c.waitForReady(5000);
    const scope = c.scope({ key: 'u' });
    scope.isEnabled('checkout');
    await new Promise((resolve) => setTimeout(resolve, 30));
    scope.recordOutcome({ error: false });
    await c.flush();
    const [summary] = await server.summaries();
    expect(summary!.latency.min).toBeGreaterThanOrEqual(25);
  });
});

describe('memory bounds', () => {
  it('past maxCohorts, outcomes of new cohorts are dropped and counted, known cohorts still count', async () => {
    const c = client({ metrics: { flushIntervalMs: 3_600_000, maxCohorts: 1 } });
    await c.waitForReady(5000);
    for (let i = 0; i < 3; i++) {
      const scope = c.scope({ key: `u${i}` });
      scope.isEnabled('checkout');
      scope.variant('theme');
      scope.recordOutcome({ error: false, latencyMs: 1 });
    }
    expect(c.stats().metrics).toMatchObject({ cohorts: 1, outcomes: 3, droppedOutcomes: 3 });
    await c.flush();
    const summaries = await server.summaries();
    expect(summaries.map((s) => [s.flag, s.requests])).toEqual([['checkout', 3]]);
  });

  it('keeps undelivered summaries for the next flush and delivers them when the server is back', async () => {
    const c = client();
    await c.waitForReady(5000);
    const errors: VigilSdkError[] = [];
    c.on('error', (e) => errors.push(e));
    await server.stop();
    const scope = c.scope({ key: 'u' });
    scope.isEnabled('checkout');
    scope.recordOutcome({ error: true, latencyMs: 7 });
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ pendingSummaries: 1, failedFlushes: 1, sentSummaries: 0 });
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ pendingSummaries: 1, failedFlushes: 2 });
    // One error for the run of failures, not one per flush.
    expect(errors.filter((e) => e.code === 'VIGIL_SDK_METRICS')).toHaveLength(1);

    await server.restart();
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ pendingSummaries: 0, sentSummaries: 1, droppedSummaries: 0 });
    const summaries = await server.summaries();
    expect(summaries).toMatchObject([{ flag: 'checkout', requests: 1, errors: 1 }]);
  });

  it('drops summaries after maxAttempts flushes, and past maxPendingSummaries, counting them', async () => {
    const c = client({ metrics: { flushIntervalMs: 3_600_000, maxAttempts: 2, maxPendingSummaries: 2 } });
    await c.waitForReady(5000);
    await server.stop();
    const serve = (flags: string[]) => {
      const scope = c.scope({ key: 'u' });
      for (const f of flags) scope.variant(f);
      scope.recordOutcome({ error: false, latencyMs: 1 });
    };
    serve(['checkout', 'theme']);
    await c.flush(); // 2 pending, attempt 1
    serve(['checkout']);
    await c.flush(); // 3 > 2: the oldest dropped; then attempt 2 drops the one tried twice
    expect(c.stats().metrics).toMatchObject({ droppedSummaries: 2, pendingSummaries: 1 });
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ droppedSummaries: 3, pendingSummaries: 0 });
  });

  it('summaries the server refuses (4xx) are dropped at once, not retried', async () => {
    // A key of another environment: the server refuses summaries naming this one.
    const stagingKey = await server.token(['sdk-server'], 'staging');
    const c = client({ sdkKey: stagingKey, bootstrap: { flags: [{ ...boolFlag('checkout'), version: 1 }] } });
    const errors: VigilSdkError[] = [];
    c.on('error', (e) => errors.push(e));
    const scope = c.scope({ key: 'u' });
    scope.isEnabled('checkout');
    scope.recordOutcome({ error: false, latencyMs: 1 });
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ droppedSummaries: 1, pendingSummaries: 0 });
    expect(errors.find((e) => e.code === 'VIGIL_SDK_METRICS')).toMatchObject({ status: 403 });
  });

  it("without env, summaries leave it out and the server files them under the key's environment", async () => {
    const c = client({ env: undefined });
    await c.waitForReady(5000);
    const scope = c.scope({ key: 'u' });
    scope.isEnabled('checkout');
    scope.recordOutcome({ error: true, latencyMs: 4 });
    await c.flush();
    expect(c.stats().metrics).toMatchObject({ sentSummaries: 1, droppedSummaries: 0 });
    const [summary] = await server.summaries();
    expect(summary).toMatchObject({ env: ENV, flag: 'checkout', variant: 'on', requests: 1, errors: 1 });
  });

  it('the periodic flush runs on its own', async () => {
    const c = client({ metrics: { flushIntervalMs: 50 } });
    await c.waitForReady(5000);
    const scope = c.scope({ key: 'u' });
    scope.isEnabled('checkout');
    scope.recordOutcome({ error: false, latencyMs: 3 });
    await until(() => c.stats().metrics?.sentSummaries === 1, 'a timed flush');
  });

  it('close sends what is held', async () => {
    const c = client();
    await c.waitForReady(5000);
    const scope = c.scope({ key: 'u' });
    scope.isEnabled('checkout');
    scope.recordOutcome({ error: false, latencyMs: 3 });
    await c.close();
    expect(await server.summaries()).toHaveLength(1);
  });
});
