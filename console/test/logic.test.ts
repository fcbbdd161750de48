import type { FlagHealth, Schedule, SequentialTest } from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import { allows, consoleScope } from '../src/lib/api.js';
import { issuesAt, unclaimed } from '../src/lib/issues.js';
import { parseMarkdown } from '../src/lib/markdown.js';
import { matchRoute, pathOf, type Route } from '../src/lib/router.js';
import { formatSteps, parseSteps, scheduleProgress } from '../src/lib/schedule.js';
import { appendSample, emptySeries, lineOf } from '../src/lib/series.js';

describe('scopes', () => {
  it('admin includes ops includes read; the highest reported scope wins', () => {
    expect(allows('admin', 'ops')).toBe(true);
    expect(allows('ops', 'admin')).toBe(false);
    expect(allows('read', 'read')).toBe(true);
    expect(allows(undefined, 'read')).toBe(false);
    expect(consoleScope(['read', 'ops'])).toBe('ops');
    expect(consoleScope('admin')).toBe('admin');
    expect(consoleScope(['sdk-server'])).toBeUndefined();
  });
});

describe('routes', () => {
  it('round-trips every route through its path, keys with dots and dashes included', () => {
    const routes: Route[] = [
      { name: 'flags', env: 'production' },
      { name: 'new-flag', env: 'staging' },
      { name: 'flag', env: 'production', key: 'checkout.v2-beta', tab: 'edit' },
      { name: 'flag', env: 'production', key: 'checkout', tab: 'rollout' },
      { name: 'flag', env: 'production', key: 'checkout', tab: 'evidence' },
      { name: 'incidents' },
      { name: 'incident', id: 'inc_01' },
      { name: 'audit', env: 'production' },
      { name: 'segments', env: 'staging' },
      { name: 'tokens' },
      { name: 'home' },
    ];
    for (const r of routes) expect(matchRoute(pathOf(r))).toEqual(r);
    expect(matchRoute('/flags/production/checkout-v2?x=1')).toEqual({
      name: 'flag',
      env: 'production',
      key: 'checkout-v2',
      tab: 'edit',
    });
    expect(matchRoute('/nope/at/all').name).toBe('not-found');
  });
});

describe('field issues', () => {
  const issues = [
    { field: 'rules[0].clauses[1].values', message: 'bad regex' },
    { field: 'rules[0].clauses[1].values[2]', message: 'too long' },
    { field: 'rules[10].id', message: 'dup' },
    { field: 'offVariant', message: 'unknown' },
  ];
  it('finds issues about a field and inside it, not about a sibling with a longer index', () => {
    expect(issuesAt(issues, 'rules[0].clauses[1].values').map((i) => i.message)).toEqual([
      'bad regex',
      'too long',
    ]);
    expect(issuesAt(issues, 'rules[1]')).toEqual([]);
    expect(unclaimed(issues, new Set(['rules[0]', 'offVariant'])).map((i) => i.field)).toEqual([
      'rules[10].id',
    ]);
  });
});

describe('schedules', () => {
  it('parses steps as people type them and refuses what the server would', () => {
    expect(parseSteps('5% for 5m, 20% for 90s, 50% for 600, 100%')).toEqual({
      steps: [
        { percent: 5, hold: '5m' },
        { percent: 20, hold: '90s' },
        { percent: 50, hold: 600 },
        { percent: 100, hold: 0 },
      ],
      errors: [],
    });
    expect(parseSteps('20%, 5%').errors).toEqual(['step 2: 5% is lower than the step before']);
    expect(parseSteps('lots').errors).toHaveLength(1);
    expect(parseSteps('').errors).toEqual(['at least one step']);
    expect(
      formatSteps([
        { percent: 5, hold: '5m' },
        { percent: 100, hold: 0 },
      ]),
    ).toBe('5% for 5m, 100%');
  });

  it('counts the hold down while running and freezes it while paused', () => {
    const started = Date.parse('2026-01-01T00:00:00Z');
    const running: Schedule = {
      variant: 'on',
      steps: [
        { percent: 5, hold: '10m' },
        { percent: 100, hold: 0 },
      ],
      status: 'running',
      stepIndex: 0,
      stepStartedAt: new Date(started).toISOString(),
    };
    const p = scheduleProgress(running, started + 4 * 60_000);
    expect(p).toMatchObject({ stepIndex: 0, holdLeftMs: 6 * 60_000, ticking: true });
    expect(p.holdDone).toBeCloseTo(0.4);
    const paused = scheduleProgress(
      { ...running, status: 'paused', remainingHoldMs: 120_000 },
      started + 99 * 60_000,
    );
    expect(paused).toMatchObject({ holdLeftMs: 120_000, ticking: false });
    // A resume restarts the step clock with the hold that was left.
    expect(scheduleProgress({ ...running, remainingHoldMs: 120_000 }, started + 60_000).holdLeftMs).toBe(
      60_000,
    );
    expect(
      scheduleProgress({ ...running, stepIndex: -1, stepStartedAt: undefined }, started).holdLeftMs,
    ).toBeUndefined();
  });
});

describe('evidence series', () => {
  const figures = (variant: string, requests: number, errorRate: number, p99: number | null) => ({
    variant,
    requests,
    errors: Math.round(requests * errorRate),
    errorRate,
    p50LatencyMs: p99 === null ? null : p99 / 4,
    p95LatencyMs: p99 === null ? null : p99 / 2,
    p99LatencyMs: p99,
  });
  const test = (
    trigger: SequentialTest['trigger'],
    logEValue: number,
    logBoundary: number,
  ): SequentialTest => ({
    trigger,
    status: logEValue >= logBoundary ? 'fail' : 'pass',
    logEValue,
    logBoundary,
    crossed: logEValue >= logBoundary,
    consecutive: logEValue >= logBoundary ? 1 : 0,
    required: 1,
    observed: 0.02,
    control: 0.001,
    threshold: 1,
  });
  const health = (version: number, on: number, off: number, e = -1): FlagHealth => ({
    env: 'production',
    flag: 'f',
    version,
    status: 'healthy',
    gate: 'pass',
    healthy: true,
    killed: false,
    reason: '',
    severity: null,
    controlVariant: 'off',
    triggers: [],
    cohorts: [figures('on', on, 0.01, 120), figures('off', off, 0, 100)],
    variants: [
      {
        variant: 'on',
        status: 'healthy',
        triggers: [],
        reason: '',
        treatment: figures('on', on, 0.01, 120),
        control: figures('off', off, 0, 100),
        window: { treatment: figures('on', on, 0.02, 130), control: figures('off', off, 0.001, 90) },
        tests: [test('error_rate_vs_control', e, 5.8), test('latency_vs_control', -2, 5.8)],
      },
    ],
    thresholds: null,
    verdictVersion: version,
    schedule: null,
    updatedAt: null,
  });

  it('keeps one sample per poll per cohort, control last, and marks a new version without dropping the history', () => {
    let s = emptySeries(3);
    s = appendSample(s, health(3, 10, 5), 1_000_000);
    s = appendSample(s, health(3, 20, 9), 1_001_000);
    expect(s.t).toEqual([1000, 1001]);
    expect(s.variants).toEqual(['on', 'off']);
    expect(lineOf(s, 'requests', 'on')).toEqual([10, 20]);
    expect(lineOf(s, 'requests', 'off')).toEqual([5, 9]);
    expect(lineOf(s, 'errorRate', 'on')).toEqual([0.02, 0.02]);
    expect(lineOf(s, 'p99', 'off')).toEqual([90, 90]);
    const next = appendSample(s, health(4, 1, 1), 1_002_000);
    expect(next.version).toBe(4);
    expect(next.t).toEqual([1000, 1001, 1002]);
    expect(lineOf(next, 'requests', 'on')).toEqual([10, 20, 1]);
    expect(next.versions).toEqual([{ t: 1002, version: 4 }]);
  });

  it("keeps the window's p50, p95 and p99 per cohort, and each test's statistic against its boundary", () => {
    let s = emptySeries(3);
    s = appendSample(s, health(3, 10, 5, -1), 1_000_000);
    s = appendSample(s, health(3, 20, 9, 7.5), 1_001_000);
    expect(lineOf(s, 'p50', 'on')).toEqual([32.5, 32.5]);
    expect(lineOf(s, 'p95', 'off')).toEqual([45, 45]);
    expect(s.triggers).toEqual(['error_rate_vs_control', 'latency_vs_control']);
    expect(lineOf(s, 'test:error_rate_vs_control', 'on')).toEqual([-1, 7.5]);
    expect(lineOf(s, 'boundary:error_rate_vs_control', 'on')).toEqual([5.8, 5.8]);
    // The control has no tests of its own.
    expect(lineOf(s, 'test:error_rate_vs_control', 'off')).toEqual([]);
    // A version without tests yet (after a kill) pads the test lines with nulls, keeping the history.
    const killed = { ...health(4, 0, 30), variants: [] };
    s = appendSample(s, killed, 1_002_000);
    expect(lineOf(s, 'test:error_rate_vs_control', 'on')).toEqual([-1, 7.5, null]);
    expect(lineOf(s, 'requests', 'off')).toEqual([5, 9, 30]);
  });
});

describe('postmortem markdown', () => {
  it('reads headings, lists, tables, code and inline marks, dropping unsafe link targets', () => {
    const blocks = parseMarkdown(
      '# Incident\n\nThe **flag** `x` was [killed](https://vigil.example/x) and [bad](javascript:alert(1)).\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```\n',
    );
    expect(blocks.map((b) => b.kind)).toEqual(['heading', 'paragraph', 'list', 'table', 'code']);
    const para = blocks[1]!;
    expect(para.kind === 'paragraph' && para.content.map((c) => c.kind)).toEqual([
      'text',
      'strong',
      'text',
      'code',
      'text',
      'link',
      'text',
      'text',
      'text',
    ]);
    expect(JSON.stringify(blocks)).not.toContain('javascript:');
  });

  it('reads backslash escapes as the character and quotes as one block', () => {
    const [heading, quote] = parseMarkdown(
      '# Postmortem: \\`on\\` failed\n\n> Draft generated\n> by Vigil.\n',
    );
    expect(heading).toEqual({
      kind: 'heading',
      level: 1,
      content: [
        { kind: 'text', text: 'Postmortem: ' },
        { kind: 'text', text: '`' },
        { kind: 'text', text: 'on' },
        { kind: 'text', text: '`' },
        { kind: 'text', text: ' failed' },
      ],
    });
    expect(quote).toEqual({ kind: 'quote', content: [{ kind: 'text', text: 'Draft generated by Vigil.' }] });
  });
});
