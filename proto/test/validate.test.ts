import { describe, expect, it } from 'vitest';
import {
  durationMs,
  environmentIssues,
  type Flag,
  type FlagInput,
  flagSchema,
  longestPrerequisiteChain,
  MAX_PREREQUISITE_DEPTH,
  MAX_REGEX_LENGTH,
  prerequisiteCycle,
  refusedPatterns,
  regexProblem,
  segmentSchema,
  validateFlag,
  validateSegment,
} from '../src/index.js';

/** A flag that passes every check, to break one field at a time. */
const good = {
  key: 'checkout.new-flow',
  description: 'The redesigned checkout',
  tags: ['payments'],
  owner: 'payments-team',
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
  offVariant: 'off',
  enabled: true,
  rules: [
    {
      id: 'asia',
      clauses: [
        { attribute: 'country', op: 'in', values: ['TH', 'SG', 'MY'] },
        { attribute: 'email', op: 'matches', values: ['@vigil\\.dev$'] },
        { attribute: 'age', op: 'gte', values: [18] },
        { attribute: 'signup', op: 'before', values: ['2025-01-01T00:00:00Z', 1735689600000, '2024-06-30'] },
        { attribute: 'app.version', op: 'semverGt', values: ['1.2.3', 'v2.0.0-rc.1+build.5'] },
        { attribute: 'key', op: 'inSegment', values: ['beta'] },
        { attribute: 'plan', op: 'exists', values: [], negate: true },
      ],
      serve: { variant: 'on' },
    },
  ],
  fallthrough: {
    rollout: {
      bucketBy: 'org.id',
      exposure: 50_000,
      weights: [
        { variant: 'on', weight: 20_000 },
        { variant: 'off', weight: 80_000 },
      ],
    },
  },
  prerequisites: [{ flag: 'payments', variant: 'on' }],
  salt: 'checkout',
  clientSide: true,
  schedule: {
    variant: 'on',
    steps: [
      { percent: 5, hold: '30m' },
      { percent: 50, hold: 3600 },
      { percent: 100, hold: '1d' },
    ],
  },
  guard: { severity: 'sev2', maxErrorRate: 0.05 },
} satisfies FlagInput;

/** `good` with some fields replaced; `undefined` removes a field. */
function variant(changes: Record<string, unknown>): unknown {
  return { ...structuredClone(good), ...changes };
}

/** The sorted field paths a refused flag names (fails the test if the flag is accepted). */
function badFields(input: unknown): string[] {
  const result = validateFlag(input);
  if (result.ok) throw new Error('expected the flag to be refused');
  for (const issue of result.issues) expect(issue.message, issue.field).not.toBe('');
  return result.issues.map((i) => i.field).sort();
}

function messages(input: unknown): string[] {
  const result = validateFlag(input);
  return result.ok ? [] : result.issues.map((i) => `${i.field}: ${i.message}`);
}

const rule = (clauses: unknown[], serve: unknown = { variant: 'on' }, id = 'r') => ({ id, clauses, serve });
const clause = (op: string, values: unknown[], attribute = 'a') => ({ attribute, op, values });

describe('validateFlag', () => {
  it('accepts a good flag and applies the defaults', () => {
    const result = validateFlag(good);
    expect(result).toMatchObject({ ok: true, value: { killed: false, version: 0 } });
    const minimal = validateFlag({
      key: 'f',
      variants: [{ key: 'a', value: 'x' }],
      offVariant: 'a',
      enabled: false,
      fallthrough: { variant: 'a' },
    });
    expect(minimal).toEqual({
      ok: true,
      value: {
        key: 'f',
        description: '',
        tags: [],
        variants: [{ key: 'a', value: 'x' }],
        offVariant: 'a',
        enabled: false,
        killed: false,
        rules: [],
        fallthrough: { variant: 'a' },
        prerequisites: [],
        clientSide: false,
        version: 0,
      },
    });
  });

  it('names every bad field of a flag with many configuration mistakes at once', () => {
    const flag = variant({
      variants: [
        { key: 'on', value: true },
        { key: 'off', value: 'false' },
        { key: 'on', value: true },
      ],
      offVariant: 'dark',
      rules: [
        rule(
          [
            clause('lt', ['18']),
            clause('semverEq', ['1.2', 'v1.2.3']),
            clause('before', ['yesterday', '2024-02-30', '2024-01-01T10:00', '2024-01-01T10:00:00+07:00']),
            clause('matches', ['(unclosed', 'x'.repeat(MAX_REGEX_LENGTH + 1), '(a)\\1', '^ok$']),
            clause('exists', ['yes']),
            clause('in', []),
            clause('contains', [3, 'x']),
          ],
          { variant: 'purple' },
          'dup',
        ),
        rule(
          [],
          {
            rollout: {
              weights: [
                { variant: 'on', weight: 60_000 },
                { variant: 'gone', weight: 30_000 },
                { variant: 'on', weight: 5_000 },
              ],
            },
          },
          'dup',
        ),
      ],
      fallthrough: { variant: 'missing' },
      prerequisites: [
        { flag: 'payments', variant: 'on' },
        { flag: 'payments', variant: 'off' },
        { flag: 'checkout.new-flow', variant: 'on' },
      ],
      schedule: {
        variant: 'nope',
        steps: [
          { percent: 50, hold: '1h' },
          { percent: 20, hold: '1h' },
        ],
      },
    });
    expect(badFields(flag)).toEqual(
      [
        'variants[2].key',
        'variants',
        'offVariant',
        'rules[1].id',
        'rules[0].clauses[0].values[0]',
        'rules[0].clauses[1].values[0]',
        'rules[0].clauses[2].values[0]',
        'rules[0].clauses[2].values[1]',
        'rules[0].clauses[2].values[2]',
        'rules[0].clauses[3].values[0]',
        'rules[0].clauses[3].values[1]',
        'rules[0].clauses[3].values[2]',
        'rules[0].clauses[4].values',
        'rules[0].clauses[5].values',
        'rules[0].clauses[6].values[0]',
        'rules[0].serve.variant',
        'rules[1].serve.rollout.weights[1].variant',
        'rules[1].serve.rollout.weights[2].variant',
        'rules[1].serve.rollout.weights',
        'fallthrough.variant',
        'prerequisites[1].flag',
        'prerequisites[2].flag',
        'schedule.variant',
        'schedule.steps[1].percent',
      ].sort(),
    );
  });

  it('names every field the schema refuses at once: unknown operator, bad keys, unknown fields, wrong types', () => {
    const flag = variant({
      key: '-leading-dash',
      variants: [{ key: 'on', value: true }, { key: 'has space', value: false }, { key: 'x' }],
      offVariant: '',
      enabled: 'yes',
      rules: [
        rule(
          [clause('like', ['%x%']), { attribute: 'a..b', op: 'in', values: [null] }],
          { variant: 'on' },
          'ok',
        ),
        rule([], { rollout: { weights: [{ variant: 'on', weight: 100_001 }] } }, 'é'),
      ],
      fallthrough: { variant: 'on', rollout: { weights: [] } },
      prerequisites: [{ flag: 'payments' }],
      colour: 'red',
    });
    expect(badFields(flag)).toEqual(
      [
        'colour',
        'key',
        'variants[1].key',
        'variants[2].value',
        'offVariant',
        'enabled',
        'rules[0].clauses[0].op',
        'rules[0].clauses[1].attribute',
        'rules[0].clauses[1].values[0]',
        'rules[1].id',
        'rules[1].serve.rollout.weights[0].weight',
        'fallthrough',
        'prerequisites[0].variant',
      ].sort(),
    );
    expect(messages(flag)).toContain('colour: unknown field');
  });

  it('refuses weights that do not sum to 100000, saying what they sum to', () => {
    const serve = { rollout: { weights: [{ variant: 'on', weight: 99_999 }] } };
    expect(messages(variant({ fallthrough: serve }))).toEqual([
      'fallthrough.rollout.weights: weights sum to 99999, not 100000',
    ]);
    const over = {
      rollout: {
        weights: [
          { variant: 'on', weight: 60_000 },
          { variant: 'off', weight: 60_000 },
        ],
      },
    };
    expect(badFields(variant({ rules: [rule([], over)] }))).toEqual(['rules[0].serve.rollout.weights']);
  });

  it('refuses an unknown variant wherever one is named: serve, offVariant, rollout weights and schedule', () => {
    expect(badFields(variant({ offVariant: 'dark' }))).toEqual(['offVariant']);
    expect(badFields(variant({ fallthrough: { variant: 'dark' } }))).toEqual(['fallthrough.variant']);
    expect(badFields(variant({ rules: [rule([], { variant: 'dark' })] }))).toEqual([
      'rules[0].serve.variant',
    ]);
    const weights = { rollout: { weights: [{ variant: 'dark', weight: 100_000 }] } };
    expect(badFields(variant({ fallthrough: weights }))).toEqual(['fallthrough.rollout.weights[0].variant']);
    expect(badFields(variant({ schedule: { variant: 'dark', steps: [{ percent: 5, hold: 60 }] } }))).toEqual([
      'schedule.variant',
    ]);
  });

  it('refuses duplicates: variant keys, rule ids, rollout variants and prerequisite flags', () => {
    const twice = [
      { key: 'on', value: true },
      { key: 'on', value: false },
      { key: 'off', value: false },
    ];
    expect(badFields(variant({ variants: twice }))).toEqual(['variants[1].key']);
    expect(
      badFields(
        variant({ rules: [rule([], undefined, 'a'), rule([], undefined, 'b'), rule([], undefined, 'a')] }),
      ),
    ).toEqual(['rules[2].id']);
    const weights = {
      rollout: {
        weights: [
          { variant: 'on', weight: 50_000 },
          { variant: 'on', weight: 50_000 },
        ],
      },
    };
    expect(badFields(variant({ fallthrough: weights }))).toEqual(['fallthrough.rollout.weights[1].variant']);
    const prerequisites = [
      { flag: 'a', variant: 'on' },
      { flag: 'a', variant: 'on' },
    ];
    expect(badFields(variant({ prerequisites }))).toEqual(['prerequisites[1].flag']);
  });

  it('refuses variants whose values mix types; arrays and objects count as one JSON type', () => {
    const mixed = [
      { key: 'a', value: 1 },
      { key: 'b', value: '1' },
    ];
    expect(
      messages(
        variant({
          variants: mixed,
          offVariant: 'a',
          fallthrough: { variant: 'a' },
          schedule: undefined,
          rules: [],
        }),
      ),
    ).toEqual(['variants: variant values mix types (number, string)']);
    const json = [
      { key: 'a', value: [1, 2] },
      { key: 'b', value: { x: 1 } },
    ];
    expect(
      validateFlag(
        variant({
          variants: json,
          offVariant: 'a',
          fallthrough: { variant: 'a' },
          schedule: undefined,
          rules: [],
        }),
      ).ok,
    ).toBe(true);
  });

  it('refuses keys that do not match the key pattern', () => {
    for (const key of ['', '-x', '.x', '_x', 'a b', 'ä', 'a/b', 'x'.repeat(129)]) {
      expect(badFields(variant({ key })), key).toEqual(['key']);
    }
    for (const key of ['a', '0', 'A.b_c-d', 'x'.repeat(128)])
      expect(validateFlag(variant({ key })).ok, key).toBe(true);
  });

  it('checks clause values against their operator', () => {
    const cases: [string, unknown[], string[]][] = [
      ['lt', ['18', 18, true], ['values[0]', 'values[2]']],
      ['gte', [1.5, -0], []],
      ['semverEq', ['1.2', '01.2.3', '1.2.3', 'v1.2.3-alpha.1+sha.5'], ['values[0]', 'values[1]']],
      ['semverLt', [123], ['values[0]']],
      ['before', ['2024-13-01', 'hello 2', '2024-01-01', 1e12], ['values[0]', 'values[1]']],
      [
        'after',
        ['2024-01-01T10:00:00', '2024-01-01T10:00:00.5-05:30', '2024-01-01T25:00Z'],
        ['values[0]', 'values[2]'],
      ],
      ['contains', ['x', 1], ['values[1]']],
      ['startsWith', [false], ['values[0]']],
      ['endsWith', ['.com'], []],
      ['inSegment', [7], ['values[0]']],
      ['matches', [1, '^a+$'], ['values[0]']],
      ['in', [1, 'a', true], []],
      ['notIn', [], ['values']],
      ['exists', [], []],
      ['exists', ['x'], ['values']],
    ];
    for (const [op, values, fields] of cases) {
      const flag = variant({ rules: [rule([clause(op, values)])] });
      const found = validateFlag(flag);
      const named = found.ok ? [] : found.issues.map((i) => i.field);
      expect(named, `${op} ${JSON.stringify(values)}`).toEqual(fields.map((f) => `rules[0].clauses[0].${f}`));
    }
  });

  it('names the semantic problems of the well-formed parts too when the schema refuses others', () => {
    const result = validateFlag({
      ...good,
      description: 42,
      rules: [
        {
          id: 'bad-op',
          clauses: [{ attribute: 'country', op: 'near', values: ['TH'] }],
          serve: { variant: 'on' },
        },
        {
          id: 'bad-weights',
          clauses: [{ attribute: 'age', op: 'lt', values: ['eighteen'] }],
          serve: { rollout: { weights: [{ variant: 'on', weight: 10 }] } },
        },
      ],
      fallthrough: { variant: 'purple' },
    });
    expect(result.ok).toBe(false);
    const fields = result.ok ? [] : result.issues.map((i) => i.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'description',
        'rules[0].clauses[0].op',
        'rules[1].clauses[0].values[0]',
        'rules[1].serve.rollout.weights',
        'fallthrough.variant',
      ]),
    );
  });

  it('refuses an invalid operator, naming the op field', () => {
    expect(badFields(variant({ rules: [rule([clause('regex', ['x'])])] }))).toEqual([
      'rules[0].clauses[0].op',
    ]);
  });
});

describe('regexProblem', () => {
  it('accepts ordinary patterns', () => {
    for (const pattern of [
      '^a',
      '@example\\.com$',
      '^(TH|SG|MY)$',
      '\\d{3}-\\d{4}',
      'ไทย',
      'x'.repeat(MAX_REGEX_LENGTH),
    ]) {
      expect(regexProblem(pattern), pattern).toBeUndefined();
    }
  });

  it('accepts, in RE2 syntax, the patterns that backtrack catastrophically in a backtracking engine', () => {
    // matched in linear time by RE2, so they are safe to store (and were once refused or accepted
    // depending on a heuristic: `(a|a)*` passed safe-regex2 and froze evaluation)
    for (const pattern of [
      '(a+)+$',
      '(a*)*b',
      '^(\\w+\\s?)*$',
      '(x+x+)+y',
      '^(a|a)*$',
      '(a|aa)+b',
      '(?i)^admin',
    ]) {
      expect(regexProblem(pattern), pattern).toBeUndefined();
    }
  });

  it('refuses invalid and oversized patterns, and JavaScript syntax RE2 does not have', () => {
    expect(regexProblem('(unclosed')).toMatch(/^invalid regex \(RE2 syntax\)/);
    expect(regexProblem('[z-a]')).toMatch(/^invalid regex/);
    expect(regexProblem('x'.repeat(MAX_REGEX_LENGTH + 1))).toMatch(/longer than 256/);
    for (const pattern of ['(a)\\1', '^(?=a)', 'a(?!b)', '(?<=a)b', '(?<!a)b', 'a++', '\\u0041', '[^]']) {
      expect(regexProblem(pattern), pattern).toMatch(/^invalid regex \(RE2 syntax\)/);
    }
  });
});

describe('refusedPatterns', () => {
  it('names each stored matches value RE2 refuses, in flags and in segments', () => {
    const flag = flagSchema.parse({
      ...good,
      rules: [
        {
          id: 'r',
          clauses: [
            { attribute: 'email', op: 'matches', values: ['^ok$', '(a)\\1'] },
            { attribute: 'country', op: 'in', values: ['(a)\\1'] },
          ],
          serve: { variant: 'on' },
        },
      ],
    });
    expect(refusedPatterns(flag)).toEqual([
      {
        field: 'rules[0].clauses[0].values[1]',
        message: expect.stringMatching(/^invalid regex \(RE2 syntax\)/),
      },
    ]);
    expect(
      refusedPatterns(
        segmentSchema.parse({
          key: 's',
          included: [],
          excluded: [],
          rules: [[{ attribute: 'ua', op: 'matches', values: ['(?=x)'], negate: false }]],
        }),
      ).map((i) => i.field),
    ).toEqual(['rules[0][0].values[0]']);
  });
});

describe('validateSegment', () => {
  it('accepts a good segment and applies the defaults', () => {
    expect(validateSegment({ key: 'beta', rules: [[clause('endsWith', ['@vigil.dev'], 'email')]] })).toEqual({
      ok: true,
      value: {
        key: 'beta',
        description: '',
        included: [],
        excluded: [],
        rules: [[{ attribute: 'email', op: 'endsWith', values: ['@vigil.dev'] }]],
        version: 0,
      },
    });
  });

  it('names every bad field of a segment', () => {
    const result = validateSegment({
      key: 'beta',
      included: ['alice'],
      rules: [
        [clause('endsWith', ['@vigil.dev'], 'email'), clause('inSegment', ['other'])],
        [clause('gt', ['10']), clause('matches', ['(?=a)']), clause('exists', [1])],
      ],
    });
    expect(result.ok ? [] : result.issues.map((i) => i.field)).toEqual([
      'rules[0][1].op',
      'rules[1][0].values[0]',
      'rules[1][1].values[0]',
      'rules[1][2].values',
    ]);
    const schema = validateSegment({
      key: ' bad',
      included: 'alice',
      rules: [[clause('nope', [])]],
      extra: 1,
    });
    expect(schema.ok ? [] : schema.issues.map((i) => i.field).sort()).toEqual(
      ['extra', 'key', 'included', 'rules[0][0].op'].sort(),
    );
  });
});

describe('environmentIssues', () => {
  const base = (key: string, input: Record<string, unknown> = {}): Flag =>
    flagSchema.parse({
      key,
      variants: [
        { key: 'on', value: true },
        { key: 'off', value: false },
      ],
      offVariant: 'off',
      enabled: true,
      fallthrough: { variant: 'on' },
      ...input,
    });
  const requires = (key: string, ...flags: string[]) =>
    base(key, { prerequisites: flags.map((flag) => ({ flag, variant: 'on' })) });
  const env = (...flags: Flag[]) => new Map(flags.map((f) => [f.key, f]));
  const fields = (changed: Flag, flags: Map<string, Flag>, segments: string[] = []) =>
    environmentIssues(changed, flags, new Set(segments)).map((i) => i.field);

  it('accepts prerequisites and segments that exist', () => {
    const changed = base('child', {
      prerequisites: [{ flag: 'parent', variant: 'off' }],
      rules: [rule([clause('inSegment', ['beta', 'staff'], 'key')])],
    });
    expect(environmentIssues(changed, env(changed, base('parent')), new Set(['beta', 'staff']))).toEqual([]);
  });

  it('refuses a prerequisite on an unknown flag or an unknown variant of it', () => {
    const changed = base('child', {
      prerequisites: [
        { flag: 'ghost', variant: 'on' },
        { flag: 'parent', variant: 'purple' },
      ],
    });
    expect(environmentIssues(changed, env(changed, base('parent')), new Set())).toEqual([
      { field: 'prerequisites[0].flag', message: 'unknown flag "ghost"' },
      { field: 'prerequisites[1].variant', message: 'flag "parent" has no variant "purple"' },
    ]);
  });

  it('refuses an unknown segment, naming the value', () => {
    const changed = base('f', {
      rules: [rule([clause('in', ['x']), clause('inSegment', ['beta', 'gamma'], 'key')])],
    });
    expect(fields(changed, env(changed), ['beta'])).toEqual(['rules[0].clauses[1].values[1]']);
  });

  it('refuses prerequisite cycles: a flag on itself, 2-cycles and 3-cycles', () => {
    const self = requires('a', 'a');
    expect(environmentIssues(self, env(self), new Set())).toEqual([
      { field: 'prerequisites', message: 'prerequisite cycle: a → a' },
    ]);
    const a2 = requires('a', 'b');
    expect(environmentIssues(a2, env(a2, requires('b', 'a')), new Set())).toEqual([
      { field: 'prerequisites', message: 'prerequisite cycle: a → b → a' },
    ]);
    const a3 = requires('a', 'b');
    expect(environmentIssues(a3, env(a3, requires('b', 'c'), requires('c', 'a')), new Set())).toEqual([
      { field: 'prerequisites', message: 'prerequisite cycle: a → b → c → a' },
    ]);
  });

  it('accepts a diamond of prerequisites, which is not a cycle', () => {
    const top = requires('top', 'left', 'right');
    const flags = env(top, requires('left', 'bottom'), requires('right', 'bottom'), base('bottom'));
    expect(fields(top, flags)).toEqual([]);
    expect(prerequisiteCycle('top', flags)).toBeUndefined();
  });

  it('finds a cycle through the written flag even when another cycle is reachable first', () => {
    // b ⇄ c is an older cycle (not this write's); a → d → a is the one this write closes
    const a = requires('a', 'b', 'd');
    const flags = env(a, requires('b', 'c'), requires('c', 'b'), requires('d', 'a'));
    expect(prerequisiteCycle('a', flags)).toEqual(['a', 'd', 'a']);
    expect(prerequisiteCycle('b', flags)).toEqual(['b', 'c', 'b']);
  });

  it('refuses a prerequisite chain longer than MAX_PREREQUISITE_DEPTH links, accepting one of exactly that length', () => {
    const chain = (links: number) =>
      env(
        ...Array.from({ length: links + 1 }, (_, i) =>
          i < links ? requires(`f${i}`, `f${i + 1}`) : base(`f${i}`),
        ),
      );
    const ok = chain(MAX_PREREQUISITE_DEPTH);
    expect(fields(ok.get('f0')!, ok)).toEqual([]);
    const long = chain(MAX_PREREQUISITE_DEPTH + 1);
    const issues = environmentIssues(long.get('f0')!, long, new Set());
    expect(issues.map((i) => i.field)).toEqual(['prerequisites']);
    expect(issues[0]!.message).toContain(
      `chain of ${MAX_PREREQUISITE_DEPTH + 1} links exceeds ${MAX_PREREQUISITE_DEPTH}`,
    );
    expect(longestPrerequisiteChain(long)).toHaveLength(MAX_PREREQUISITE_DEPTH + 2);
  });

  it('does not blame the written flag for a cycle it only leads into', () => {
    const a = requires('a', 'b');
    const flags = env(a, requires('b', 'c'), requires('c', 'b'));
    expect(prerequisiteCycle('a', flags)).toBeUndefined();
    expect(fields(a, flags)).toEqual([]);
  });
});

describe('durationMs', () => {
  it('reads whole seconds and unit strings', () => {
    expect(durationMs(0)).toBe(0);
    expect(durationMs(90)).toBe(90_000);
    expect(durationMs('250ms')).toBe(250);
    expect(durationMs('90s')).toBe(90_000);
    expect(durationMs('5m')).toBe(300_000);
    expect(durationMs('1h')).toBe(3_600_000);
    expect(durationMs('2d')).toBe(172_800_000);
  });

  it('throws a RangeError on a string the duration schema would refuse', () => {
    for (const text of ['', '5', '1.5s', '5 m', '-1s', '1w', 'ms'])
      expect(() => durationMs(text), text).toThrow(RangeError);
  });
});
