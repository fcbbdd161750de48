import type { AuditEntry, Flag, FlagHealth } from '@vigil/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV, rolloutFlag, run, type Stack, split, startStack } from './harness.js';

describe('guardian: regressions', () => {
  let stack: Stack;
  afterEach(async () => {
    await stack?.close();
  });

  it('kills an auto-kill regression as the guardian, with the figures, and opens one incident', async () => {
    stack = await startStack();
    const created = await stack.store.putFlag(ENV, rolloutFlag('checkout', 10), undefined, {
      actor: 'alice',
      reason: 'raise to 10%',
    });
    const guardian = stack.guardian();
    const killedAfter = await run(
      stack,
      guardian,
      'checkout',
      60,
      split(10, 0.05, 0.005),
      async () => (await stack.flag('checkout')).killed,
    );
    expect(killedAfter).toBeLessThan(30);
    const flag = await stack.flag('checkout');
    expect(flag).toMatchObject({ killed: true, killedBy: 'guardian' });
    expect(flag.killReason).toMatch(/^sev2 regression of version 1: variant on: error rate/);

    const [kill] = await stack.store.audit(ENV, { limit: 1 });
    expect(kill).toMatchObject<Partial<AuditEntry>>({
      action: 'flag.kill',
      actor: 'guardian',
      target: 'checkout',
    });
    expect(kill!.reason).toBe(flag.killReason);

    // More seconds of the same traffic (the SDKs still report the old version for a while) open nothing more.
    await run(stack, guardian, 'checkout', 5, split(10, 0.05, 0.005));
    const incidents = await stack.incidents();
    expect(incidents).toHaveLength(1);
    const incident = incidents[0]!;
    expect(incident).toMatchObject({
      env: ENV,
      flag: 'checkout',
      flagVersion: created.version,
      severity: 'sev2',
      status: 'open',
      killed: true,
      controlVariant: 'off',
      changedAt: created.updatedAt,
      mitigatedAt: flag.killedAt,
    });
    expect(incident.detectedAt).toBe(flag.killedAt);
    expect(incident.title).toMatch(
      /^checkout \(production\): `on` error rate 5\.\d+% vs 0\.\d+% in control$/,
    );
    expect(incident.cohorts.map((c) => c.variant)).toEqual(['on', 'off']);
    expect(incident.cohorts[0]!.errorRate).toBeCloseTo(0.05, 2);
    expect(incident.timeline.map((e) => e.kind).slice(0, 3)).toEqual(['change', 'detection', 'kill']);
    expect(incident.timeline[0]).toMatchObject({
      actor: 'alice',
      message: expect.stringContaining('raise to 10%'),
    });
    expect(incident.timeline[1]!.data).toMatchObject({ controlVariant: 'off', version: created.version });
    // The detection keeps the statistic that crossed its boundary: the evidence outlives the verdict.
    const checks = incident.timeline[1]!.data!.checks as {
      trigger: string;
      logEValue: number;
      logBoundary: number;
    }[];
    expect(checks.length).toBeGreaterThan(0);
    for (const c of checks) expect(c.logEValue).toBeGreaterThanOrEqual(c.logBoundary);
    expect(incident.cohorts[0]!.p50LatencyMs!).toBeLessThanOrEqual(incident.cohorts[0]!.p99LatencyMs!);

    // The opened event reached the webhook once, and the delivery is on the timeline.
    await guardian.tick();
    const delivered = [...stack.hook.deliveries.values()];
    expect(delivered.map((d) => d.type)).toEqual(['incident.opened']);
    expect(stack.hook.duplicates()).toBe(0);
    const stored = (await stack.store.getIncident(incident.id))!;
    expect(stored.timeline.filter((e) => e.kind === 'notification')).toHaveLength(1);
    expect(stored.notified).toEqual(['opened']);

    // The verdict the health endpoint serves now is about the killed version, which fails the gate.
    const health = await stack.request('GET', `/api/v1/envs/${ENV}/flags/checkout/health?gate=1`);
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({ killed: true, gate: 'fail', version: flag.version });
  });

  it('opens the incident without killing under a notify-only severity, and only once', async () => {
    stack = await startStack();
    await stack.store.putFlag(ENV, rolloutFlag('search', 10, { guard: { severity: 'sev3' } }), undefined, {
      actor: 'alice',
    });
    const guardian = stack.guardian();
    await run(
      stack,
      guardian,
      'search',
      60,
      split(10, 0.05, 0.005),
      async () => (await stack.incidents()).length > 0,
    );
    await run(stack, guardian, 'search', 10, split(10, 0.05, 0.005));
    const flag: Flag = await stack.flag('search');
    expect(flag.killed).toBe(false);
    expect(flag.version).toBe(1);
    const incidents = await stack.incidents();
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ severity: 'sev3', killed: false, status: 'open' });
    expect(incidents[0]!.mitigatedAt).toBeUndefined();
    expect(incidents[0]!.timeline.map((e) => e.kind)).toContain('note');
    const health = await stack.request('GET', `/api/v1/envs/${ENV}/flags/search/health?gate=1`);
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({
      status: 'regression',
      gate: 'fail',
      killed: false,
      severity: 'sev3',
    });
    // The evidence passes through: quantiles per cohort, the tests against their boundaries, the policy.
    const body = health.json() as FlagHealth;
    const on = body.variants[0]!;
    for (const c of [on.treatment, on.control!, ...body.cohorts]) {
      expect(c.p50LatencyMs!).toBeGreaterThan(0);
      expect(c.p50LatencyMs!).toBeLessThanOrEqual(c.p95LatencyMs!);
      expect(c.p95LatencyMs!).toBeLessThanOrEqual(c.p99LatencyMs!);
    }
    const cmp = on.tests.find((t) => t.trigger === 'error_rate_vs_control')!;
    expect(cmp).toMatchObject({ status: 'fail', crossed: true });
    expect(cmp.logEValue).toBeGreaterThanOrEqual(cmp.logBoundary);
    expect(on.tests.find((t) => t.trigger === 'latency_vs_control')).toMatchObject({ crossed: false });
    expect(body.thresholds).toMatchObject({
      maxErrorRate: 0.01,
      minSuccessRate: 0.99,
      maxP99LatencyMs: 2000,
    });
    expect(body.thresholds!.alpha).toBeGreaterThan(0);
  });

  it('stays healthy and publishes a passing verdict under equal error rates', async () => {
    stack = await startStack();
    await stack.store.putFlag(ENV, rolloutFlag('calm', 20), undefined, { actor: 'alice' });
    const guardian = stack.guardian();
    await run(stack, guardian, 'calm', 60, split(20, 0.005, 0.005));
    expect((await stack.flag('calm')).killed).toBe(false);
    expect(await stack.incidents()).toEqual([]);
    const health = await stack.request('GET', `/api/v1/envs/${ENV}/flags/calm/health?gate=1`);
    expect(health.statusCode).toBe(200);
    const body = health.json();
    expect(body).toMatchObject({ status: 'healthy', gate: 'pass', healthy: true, verdictVersion: 1 });
    expect(body.cohorts.map((c: { variant: string }) => c.variant)).toEqual(['on', 'off']);
    expect(body.cohorts[0].requests).toBe(200 * 60);
  });
});
