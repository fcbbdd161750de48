import { describe, expect, it } from 'vitest';
import { CliError, serverRefused } from '../src/errors.js';
import { span, weightPercent } from '../src/format/common.js';
import { formatError } from '../src/format/errors.js';
import { describeServe, formatKillSwitch } from '../src/format/flags.js';
import { scheduleSummary } from '../src/format/schedule.js';
import { clip, table } from '../src/table.js';
import { boolFlag } from './harness.js';

const NOW = Date.parse('2030-03-01T12:10:00.000Z');

describe('human output', () => {
  it('tables pad columns to the widest cell, two spaces apart, without trailing spaces', () => {
    expect(
      table(
        ['KEY', 'STATE', 'NOTE'],
        [
          ['checkout-v2', 'KILLED', ''],
          ['a', 'on', 'x'],
        ],
      ),
    ).toBe(['KEY          STATE   NOTE', 'checkout-v2  KILLED', 'a            on      x'].join('\n'));
  });

  it('cuts a long cell with an ellipsis so one value cannot wrap a table', () => {
    expect(clip('x'.repeat(60), 10)).toBe(`${'x'.repeat(9)}…`);
  });

  it('never cuts the last column, where messages go', () => {
    const long = `Acknowledged by alice: ${'looking at the checkout pods '.repeat(3)}`;
    const rendered = table(['AT', 'WHAT'], [['x'.repeat(60), long]]);
    expect(rendered.split('\n')[1]).toBe(`${'x'.repeat(47)}…  ${long}`.trimEnd());
  });

  it('writes weights in thousandths of a percent as percentages', () => {
    expect(weightPercent(20_000)).toBe('20%');
    expect(weightPercent(12_345)).toBe('12.345%');
    expect(
      describeServe({
        rollout: {
          exposure: 50_000,
          bucketBy: 'org.id',
          weights: [
            { variant: 'on', weight: 25_000 },
            { variant: 'off', weight: 75_000 },
            { variant: 'b', weight: 0 },
          ],
        },
      }),
    ).toBe('50% exposed: on 25% / off 75% by org.id');
  });

  it('writes durations with their two largest units', () => {
    expect(span(253_000)).toBe('4m 13s');
    expect(span(3_723_000)).toBe('1h 2m');
    expect(span(90_061_000)).toBe('1d 1h');
    expect(span(400)).toBe('0s');
  });

  it('summarises a schedule before its first step and at a step', () => {
    const steps = [
      { percent: 5, hold: '5m' },
      { percent: 100, hold: 0 },
    ];
    expect(scheduleSummary(undefined)).toBe('-');
    expect(scheduleSummary({ variant: 'on', steps, status: 'pending', stepIndex: -1 })).toBe(
      'on · pending (2 steps)',
    );
    expect(scheduleSummary({ variant: 'on', steps, status: 'paused', stepIndex: 0 })).toBe(
      'on 5% · step 1/2 · paused',
    );
  });

  it('a revive of a disabled flag warns that it still serves the offVariant', () => {
    const before = {
      ...boolFlag('f', 20, { enabled: false }),
      killed: true,
      killedBy: 'alice',
      killedAt: '2030-03-01T12:00:00.000Z',
      version: 4,
    };
    const after = { ...before, killed: false, version: 5 };
    expect(formatKillSwitch(false, before, after, 'staging', NOW)).toBe(
      [
        'Revived f in staging: serving on 20% / off 80% again (version 4 → 5).',
        'Note: the flag is disabled (enabled: false), so it still serves "off" to everyone.',
      ].join('\n'),
    );
  });

  it('a kill outside production shows the revive command with its --env', () => {
    const before = { ...boolFlag('f', 20), version: 4 };
    const after = { ...before, killed: true, killedBy: 'bob', killReason: 'errors', version: 5 };
    expect(formatKillSwitch(true, before, after, 'staging', NOW)).toContain(
      'undo  vigil revive f --env staging --reason "<why>"',
    );
  });

  it('errors show the code, the HTTP status, each bad field and the hint', () => {
    const error = serverRefused(400, 'VIGIL_BAD_REQUEST', 'invalid request', [
      { field: 'body.reason', message: 'required' },
    ]);
    expect(formatError(error)).toBe(
      'vigil: VIGIL_BAD_REQUEST (HTTP 400): invalid request\n  - body.reason: required\n',
    );
    expect(formatError(new CliError('VIGIL_CLI_TIMEOUT', 3, 'no answer', { hint: 'retry' }))).toBe(
      'vigil: VIGIL_CLI_TIMEOUT: no answer\n  hint: retry\n',
    );
  });
});
