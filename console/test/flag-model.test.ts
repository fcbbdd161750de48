import { type FlagInput, OPERATORS } from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import {
  addRule,
  balanceWeights,
  describeServe,
  describeServing,
  duplicateRule,
  editable,
  filterFlags,
  flagStates,
  move,
  OPERATOR_LIST,
  parseClauseValues,
  parseVariantValue,
  renameVariant,
  toggleServeKind,
  valueKindOf,
  weightsTotal,
  withOperator,
} from '../src/lib/flag-model.js';

const flag = (extra: Partial<FlagInput> = {}): FlagInput => ({
  key: 'checkout',
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
  offVariant: 'off',
  enabled: true,
  fallthrough: { variant: 'on' },
  ...extra,
});

describe('operators', () => {
  it('offers exactly the operators the server knows', () => {
    expect([...OPERATOR_LIST].sort()).toEqual([...OPERATORS].sort());
  });
});

describe('clause values', () => {
  it('types values for the operator: numbers for comparisons, strings for text, none for exists', () => {
    expect(parseClauseValues('10\n 20 \n\n', 'gt')).toEqual({ values: [10, 20], errors: [] });
    expect(parseClauseValues('DE\nFR', 'in')).toEqual({ values: ['DE', 'FR'], errors: [] });
    expect(parseClauseValues('anything', 'exists')).toEqual({ values: [], errors: [] });
    expect(parseClauseValues('1\n2', 'in', 'number')).toEqual({ values: [1, 2], errors: [] });
    expect(parseClauseValues('true\nfalse', 'notIn', 'boolean')).toEqual({
      values: [true, false],
      errors: [],
    });
    expect(parseClauseValues('2026-01-01T00:00:00Z\n1700000000000', 'before').values).toEqual([
      '2026-01-01T00:00:00Z',
      1700000000000,
    ]);
  });

  it('names the line of a value that does not fit', () => {
    expect(parseClauseValues('10\nten', 'lt').errors).toEqual(['line 2: "ten" is not a number']);
    expect(parseClauseValues('yes', 'in', 'boolean').errors).toEqual(['line 1: "yes" is not true or false']);
    expect(parseClauseValues('not a date', 'after').errors).toHaveLength(1);
    expect(parseClauseValues('1.2.x', 'semverGt').errors).toHaveLength(1);
  });

  it('re-types values when the operator changes', () => {
    const c = { attribute: 'age', op: 'in' as const, values: ['18', '21'] };
    expect(withOperator(c, 'gte').values).toEqual([18, 21]);
    expect(withOperator(c, 'exists').values).toEqual([]);
    expect(withOperator({ ...c, values: [1, 2] }, 'startsWith').values).toEqual(['1', '2']);
  });

  it('infers the kind of stored values', () => {
    expect(valueKindOf([1, 2])).toBe('number');
    expect(valueKindOf([true])).toBe('boolean');
    expect(valueKindOf(['a', 1])).toBe('string');
    expect(valueKindOf([])).toBe('string');
  });
});

describe('rule editing', () => {
  it('adds a rule with a fresh id serving the first variant that is not off', () => {
    const f = flag({ rules: [{ id: 'rule-2', clauses: [], serve: { variant: 'off' } }] });
    const rules = addRule(f);
    expect(rules).toHaveLength(2);
    expect(rules[1]).toEqual({
      id: 'rule-3',
      clauses: [{ attribute: 'key', op: 'in', values: [] }],
      serve: { variant: 'on' },
    });
  });

  it('moves rules within bounds and duplicates with a new id', () => {
    expect(move(['a', 'b', 'c'], 0, 1)).toEqual(['b', 'a', 'c']);
    expect(move(['a', 'b', 'c'], 2, 5)).toEqual(['a', 'b', 'c']);
    expect(move(['a', 'b', 'c'], 2, -2)).toEqual(['c', 'a', 'b']);
    const rules = [
      {
        id: 'rule-1',
        clauses: [{ attribute: 'key', op: 'in' as const, values: ['x'] }],
        serve: { variant: 'on' },
      },
    ];
    const dup = duplicateRule(rules, 0);
    expect(dup.map((r) => r.id)).toEqual(['rule-1', 'rule-2']);
    dup[1]!.clauses[0]!.values.push('y');
    expect(rules[0]!.clauses[0]!.values).toEqual(['x']);
  });

  it('renames a variant everywhere it is referenced', () => {
    const f = flag({
      offVariant: 'off',
      rules: [{ id: 'r', clauses: [], serve: { variant: 'on' } }],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', weight: 20_000 },
            { variant: 'off', weight: 80_000 },
          ],
        },
      },
      schedule: { variant: 'on', steps: [{ percent: 100 }] },
    });
    const r = renameVariant(f, 'on', 'enabled');
    expect(r.variants.map((v) => v.key)).toEqual(['enabled', 'off']);
    expect(r.rules![0]!.serve).toEqual({ variant: 'enabled' });
    expect(r.fallthrough).toEqual({
      rollout: {
        weights: [
          { variant: 'enabled', weight: 20_000 },
          { variant: 'off', weight: 80_000 },
        ],
      },
    });
    expect(r.schedule!.variant).toBe('enabled');
    expect(renameVariant(f, 'off', 'control').offVariant).toBe('control');
  });
});

describe('serves and weights', () => {
  it('switches a serve between one variant and a 50/50 rollout and back', () => {
    const rollout = toggleServeKind({ variant: 'on' }, ['on', 'off'], 'off');
    expect(rollout).toEqual({
      rollout: {
        weights: [
          { variant: 'on', weight: 50_000 },
          { variant: 'off', weight: 50_000 },
        ],
      },
    });
    expect(toggleServeKind(rollout, ['on', 'off'], 'off')).toEqual({ variant: 'on' });
  });

  it('sums and balances weights to 100%', () => {
    const w = [
      { variant: 'a', weight: 20_000 },
      { variant: 'b', weight: 10_000 },
    ];
    expect(weightsTotal(w)).toEqual({ total: 30_000, complete: false });
    expect(balanceWeights(w)).toEqual([
      { variant: 'a', weight: 20_000 },
      { variant: 'b', weight: 80_000 },
    ]);
    expect(weightsTotal(balanceWeights(w)).complete).toBe(true);
  });

  it('describes what is served', () => {
    expect(
      describeServe({
        rollout: {
          weights: [
            { variant: 'on', weight: 12_500 },
            { variant: 'off', weight: 87_500 },
          ],
          exposure: 50_000,
        },
      }),
    ).toBe('on 12.5% · off 87.5% (exposure 50%)');
    expect(describeServing(flag())).toBe('on');
    expect(describeServing(flag({ killed: true }))).toBe('off (killed)');
    expect(describeServing(flag({ enabled: false }))).toBe('off (disabled)');
    expect(describeServing(flag({ rules: [{ id: 'a', clauses: [], serve: { variant: 'on' } }] }))).toBe(
      '1 rule, else on',
    );
  });
});

describe('states and the list filter', () => {
  const flags = [
    flag({ key: 'a', killed: true, tags: ['pay'] }),
    flag({ key: 'b', enabled: false }),
    flag({
      key: 'c',
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', weight: 5000 },
            { variant: 'off', weight: 95_000 },
          ],
        },
      },
    }),
    flag({ key: 'd', guard: { enabled: true }, description: 'New checkout flow' }),
    flag({ key: 'e', tags: ['pay'] }),
  ];

  it('orders a flag’s states by urgency, "on" only when none applies', () => {
    expect(flagStates(flags[0]!)).toEqual(['killed']);
    expect(flagStates(flags[2]!)).toEqual(['rolling-out']);
    expect(flagStates(flags[3]!, true)).toEqual(['unhealthy', 'guarded']);
    expect(flagStates(flags[4]!)).toEqual(['on']);
    expect(
      flagStates(flag({ schedule: { variant: 'on', steps: [{ percent: 5 }], status: 'running' } })),
    ).toEqual(['rolling-out']);
    expect(flagStates(flag({ guard: { enabled: false } }))).toEqual(['on']);
  });

  it('filters by words, tag and state', () => {
    const keys = (f: FlagInput[]) => f.map((x) => x.key);
    expect(keys(filterFlags(flags, { query: 'checkout flow', tag: '', state: '' }))).toEqual(['d']);
    expect(keys(filterFlags(flags, { query: '', tag: 'pay', state: '' }))).toEqual(['a', 'e']);
    expect(keys(filterFlags(flags, { query: '', tag: 'pay', state: 'on' }))).toEqual(['e']);
    expect(keys(filterFlags(flags, { query: '', tag: '', state: 'unhealthy' }, new Set(['e'])))).toEqual([
      'e',
    ]);
  });
});

describe('variant values and the editable part', () => {
  it('reads JSON values, bare words as strings, and refuses broken JSON', () => {
    expect(parseVariantValue('true')).toEqual({ value: true });
    expect(parseVariantValue('42')).toEqual({ value: 42 });
    expect(parseVariantValue('{"a":[1]}')).toEqual({ value: { a: [1] } });
    expect(parseVariantValue('blue')).toEqual({ value: 'blue' });
    expect(parseVariantValue('{"a":')).toEqual({ error: 'not valid JSON' });
    expect(parseVariantValue('null').error).toBeDefined();
  });

  it('strips the fields the server sets', () => {
    const e = editable(
      flag({ version: 7, killed: true, killedBy: 'x', updatedAt: '2026-01-01T00:00:00.000Z' }),
    );
    expect(e).not.toHaveProperty('version');
    expect(e).not.toHaveProperty('killed');
    expect(e).not.toHaveProperty('killedBy');
    expect(e).not.toHaveProperty('updatedAt');
  });
});
