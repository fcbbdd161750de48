import { describe, expect, it } from 'vitest';
import {
  analysisConfigSchema,
  compileAnalysisConfig,
  DEFAULT_ANALYSIS_CONFIG,
  DEFAULT_GUARD_DEFAULTS,
  guardDefaultsSchema,
  resolveGuard,
} from '../../src/analysis/index.js';

describe('guard policy', () => {
  it('service defaults follow the seeds’ incident config', () => {
    expect(DEFAULT_GUARD_DEFAULTS.triggers).toEqual({
      maxErrorRate: 0.01,
      maxP99LatencyMs: 2000,
      minSuccessRate: 0.99,
      consecutiveFailures: 3,
    });
    expect(DEFAULT_GUARD_DEFAULTS.severities.sev1.autoRollback).toBe(true);
    expect(DEFAULT_GUARD_DEFAULTS.severities.sev3.autoRollback).toBe(false);
    expect(resolveGuard(undefined)).toEqual({
      enabled: true,
      severity: 'sev2',
      autoKill: true,
      maxErrorRate: 0.01,
      maxP99LatencyMs: 2000,
      minSuccessRate: 0.99,
      compareToControl: true,
      minSamples: 200,
      consecutiveFailures: 3,
    });
  });

  it('a flag’s guard overrides the defaults field by field', () => {
    const g = resolveGuard({ enabled: true, maxErrorRate: 0.05, minSamples: 1000, severity: 'sev3' });
    expect(g.maxErrorRate).toBe(0.05);
    expect(g.minSamples).toBe(1000);
    expect(g.maxP99LatencyMs).toBe(2000);
    // autoKill follows the severity unless the flag says otherwise.
    expect(g.autoKill).toBe(false);
    expect(resolveGuard({ enabled: true, severity: 'sev3', autoKill: true }).autoKill).toBe(true);
  });

  it('service defaults are validated and completed', () => {
    const d = guardDefaultsSchema.parse({ severity: 'sev1', triggers: { maxErrorRate: 0.02 } });
    expect(d.triggers.maxErrorRate).toBe(0.02);
    expect(d.triggers.consecutiveFailures).toBe(3);
    expect(resolveGuard(undefined, d).severity).toBe('sev1');
    expect(() => guardDefaultsSchema.parse({ triggers: { maxErrorRate: 2 } })).toThrow();
  });
});

describe('analysis config', () => {
  it('has documented defaults', () => {
    expect(DEFAULT_ANALYSIS_CONFIG.alpha).toBe(0.005);
    expect(DEFAULT_ANALYSIS_CONFIG.thresholdAlpha).toBe(0.01);
    expect(DEFAULT_ANALYSIS_CONFIG.latencyMargin).toBe(0.2);
    expect(DEFAULT_ANALYSIS_CONFIG.epochMs).toBe(600_000);
  });

  it('refuses a bad setting, naming it', () => {
    const r = analysisConfigSchema.safeParse({
      alpha: 0,
      comparisonMixture: { ratios: [0.5], weights: [1] },
    });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toContain('alpha');
    expect(paths).toContain('comparisonMixture.ratios.0');
    expect(() => compileAnalysisConfig({ comparisonMixture: { ratios: [2, 3], weights: [1] } })).toThrow(
      /weight/,
    );
  });
});
