import {
  type Clause,
  type Flag,
  type FlagInput,
  flagSchema,
  type Segment,
  type SegmentInput,
  segmentSchema,
} from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import { bucketOf, type FlagPatch, FlagSet, type FlagSnapshot } from '../src/index.js';

/** A flag as the server streams it (defaults applied), from the fields a test cares about. */
function flag(input: Partial<FlagInput> & { key: string }): Flag {
  return flagSchema.parse({
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'on' },
    version: 1,
    ...input,
  });
}

function segment(input: Partial<SegmentInput> & { key: string }): Segment {
  return segmentSchema.parse({ version: 1, ...input });
}

function loaded(flags: Flag[], segments: Segment[] = [], revision = 1): FlagSet {
  const set = new FlagSet();
  set.load({ revision, flags, segments });
  return set;
}

function patch(revision: number, changes: Partial<Omit<FlagPatch, 'revision'>>): FlagPatch {
  return { revision, flags: [], segments: [], deleted: { flags: [], segments: [] }, ...changes };
}

const colours = {
  variants: [
    { key: 'red', value: 'red' },
    { key: 'green', value: 'green' },
    { key: 'blue', value: 'blue' },
  ],
  offVariant: 'red',
} satisfies Partial<FlagInput>;

/** A salt and key whose split bucket is known, so rollout tests need no magic numbers. */
function bucket(salt: string, key: string): number {
  return bucketOf(salt, key).bucket;
}

describe('evaluation order and reasons', () => {
  it('a flag with no rules serves its fallthrough as STATIC', () => {
    const set = loaded([flag({ key: 'f' })]);
    expect(set.detail('f', { key: 'u' })).toEqual({
      value: true,
      variant: 'on',
      reason: 'STATIC',
      flagVersion: 1,
    });
  });

  it('the first matching rule decides, with TARGETING_MATCH and its rule id', () => {
    const set = loaded([
      flag({
        key: 'f',
        ...colours,
        rules: [
          {
            id: 'asia',
            clauses: [{ attribute: 'country', op: 'in', values: ['TH', 'SG'] }],
            serve: { variant: 'green' },
          },
          {
            id: 'thai',
            clauses: [{ attribute: 'country', op: 'in', values: ['TH'] }],
            serve: { variant: 'blue' },
          },
        ],
        fallthrough: { variant: 'red' },
      }),
    ]);
    expect(set.detail('f', { key: 'u', country: 'TH' })).toMatchObject({
      variant: 'green',
      reason: 'TARGETING_MATCH',
      ruleId: 'asia',
    });
  });

  it('when rules exist and none matches, the fallthrough is served as DEFAULT without a rule id', () => {
    const set = loaded([
      flag({
        key: 'f',
        rules: [
          {
            id: 'r',
            clauses: [{ attribute: 'country', op: 'in', values: ['TH'] }],
            serve: { variant: 'off' },
          },
        ],
      }),
    ]);
    const detail = set.detail('f', { key: 'u', country: 'FR' });
    expect(detail).toMatchObject({ variant: 'on', reason: 'DEFAULT' });
    expect(detail.ruleId).toBeUndefined();
  });

  it('a rule with no clauses matches every context', () => {
    const set = loaded([flag({ key: 'f', rules: [{ id: 'all', clauses: [], serve: { variant: 'off' } }] })]);
    expect(set.detail('f', 42)).toMatchObject({ variant: 'off', reason: 'TARGETING_MATCH', ruleId: 'all' });
  });

  it('a rollout serve is reported as SPLIT, from a rule or from the fallthrough', () => {
    const rollout = { rollout: { weights: [{ variant: 'on', weight: 100_000 }] } };
    const set = loaded([
      flag({ key: 'ruled', rules: [{ id: 'r', clauses: [], serve: rollout }] }),
      flag({ key: 'plain', fallthrough: rollout }),
    ]);
    expect(set.detail('ruled', { key: 'u' })).toMatchObject({ variant: 'on', reason: 'SPLIT', ruleId: 'r' });
    const plain = set.detail('plain', { key: 'u' });
    expect(plain).toMatchObject({ variant: 'on', reason: 'SPLIT' });
    expect(plain.ruleId).toBeUndefined();
  });

  it('a disabled flag serves the off variant as DISABLED, ignoring its rules', () => {
    const set = loaded([
      flag({ key: 'f', enabled: false, rules: [{ id: 'r', clauses: [], serve: { variant: 'on' } }] }),
    ]);
    const detail = set.detail('f', { key: 'u' });
    expect(detail).toEqual({ value: false, variant: 'off', reason: 'DISABLED', flagVersion: 1 });
  });

  it('a killed flag serves the off variant as DISABLED with detail KILLED, even when enabled', () => {
    const set = loaded([flag({ key: 'f', killed: true, killedBy: 'guardian' })]);
    expect(set.detail('f', { key: 'u' })).toEqual({
      value: false,
      variant: 'off',
      reason: 'DISABLED',
      detail: 'KILLED',
      flagVersion: 1,
    });
    expect(set.isEnabled('f', { key: 'u' }, true)).toBe(false);
  });

  it('kill restores the previous serve on revive', () => {
    const live = flag({
      key: 'f',
      ...colours,
      rules: [
        {
          id: 'th',
          clauses: [{ attribute: 'country', op: 'in', values: ['TH'] }],
          serve: { variant: 'blue' },
        },
      ],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'red', weight: 30_000 },
            { variant: 'green', weight: 70_000 },
          ],
        },
      },
      version: 3,
    });
    const set = loaded([live], [], 3);
    const contexts = Array.from({ length: 200 }, (_, i) => ({
      key: `user-${i}`,
      country: i % 3 === 0 ? 'TH' : 'FR',
    }));
    const before = contexts.map((ctx) => set.detail('f', ctx));

    set.applyPatch(
      patch(4, { flags: [{ ...live, killed: true, killedAt: '2025-01-01T00:00:00Z', version: 4 }] }),
    );
    expect(contexts.every((ctx) => set.variant('f', ctx) === 'red')).toBe(true);

    set.applyPatch(patch(5, { flags: [{ ...live, killed: false, version: 5 }] }));
    const after = contexts.map((ctx) => set.detail('f', ctx));
    expect(after).toEqual(before.map((d) => ({ ...d, flagVersion: 5 })));
  });
});

describe('rollouts', () => {
  const split = (extra: { bucketBy?: string; exposure?: number } = {}): FlagInput['fallthrough'] => ({
    rollout: {
      ...extra,
      weights: [
        { variant: 'green', weight: 50_000 },
        { variant: 'blue', weight: 50_000 },
      ],
    },
  });

  it('the split follows the bucket of salt:key, first half to the first variant', () => {
    const set = loaded([flag({ key: 'f', ...colours, fallthrough: split() })]);
    for (let i = 0; i < 100; i++) {
      const key = `user-${i}`;
      expect(set.variant('f', { key })).toBe(bucket('f', key) < 50_000 ? 'green' : 'blue');
    }
  });

  it('an explicit salt replaces the key in the hash', () => {
    const set = loaded([flag({ key: 'f', ...colours, salt: 'shared-salt', fallthrough: split() })]);
    for (let i = 0; i < 100; i++) {
      const key = `user-${i}`;
      expect(set.variant('f', { key })).toBe(bucket('shared-salt', key) < 50_000 ? 'green' : 'blue');
    }
  });

  it('bucketBy hashes the named attribute, and a number is hashed as its decimal string', () => {
    const set = loaded([flag({ key: 'f', ...colours, fallthrough: split({ bucketBy: 'org.id' }) })]);
    for (let i = 0; i < 50; i++) {
      const expected = bucket('f', String(i * 7)) < 50_000 ? 'green' : 'blue';
      expect(set.variant('f', { key: 'same-user', org: { id: i * 7 } })).toBe(expected);
      expect(set.variant('f', { key: 'same-user', org: { id: String(i * 7) } })).toBe(expected);
    }
  });

  it('a context without the bucketing attribute gets the off variant with TARGETING_KEY_MISSING', () => {
    const set = loaded([flag({ key: 'f', ...colours, fallthrough: split({ bucketBy: 'org.id' }) })]);
    for (const ctx of [
      { key: 'u' },
      { key: 'u', org: {} },
      { key: 'u', org: { id: true } },
      { key: 'u', org: { id: NaN } },
    ]) {
      expect(set.detail('f', ctx)).toMatchObject({
        value: 'red',
        variant: 'red',
        reason: 'ERROR',
        errorCode: 'TARGETING_KEY_MISSING',
      });
    }
    expect(set.detail('f', null)).toMatchObject({ reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' });
  });

  it('exposure keeps out contexts whose salt:exposure bucket is at or above it, serving them the off variant', () => {
    const set = loaded([flag({ key: 'f', ...colours, fallthrough: split({ exposure: 25_000 }) })]);
    let outside = 0;
    for (let i = 0; i < 400; i++) {
      const key = `user-${i}`;
      const takesPart = bucket('f:exposure', key) < 25_000;
      const detail = set.detail('f', { key });
      if (takesPart) expect(detail.variant).toBe(bucket('f', key) < 50_000 ? 'green' : 'blue');
      else {
        outside++;
        expect(detail).toMatchObject({ variant: 'red', reason: 'SPLIT' });
      }
    }
    expect(outside).toBeGreaterThan(250);
  });

  it('exposure 0 keeps everyone out and exposure 100000 lets everyone in', () => {
    const set = loaded([
      flag({ key: 'none', ...colours, fallthrough: split({ exposure: 0 }) }),
      flag({ key: 'all', ...colours, fallthrough: split({ exposure: 100_000 }) }),
    ]);
    for (let i = 0; i < 100; i++) {
      expect(set.variant('none', { key: `user-${i}` })).toBe('red');
      expect(set.variant('all', { key: `user-${i}` })).not.toBe('red');
    }
  });

  it('a variant with weight 0 is never served', () => {
    const set = loaded([
      flag({
        key: 'f',
        ...colours,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'green', weight: 0 },
              { variant: 'blue', weight: 100_000 },
            ],
          },
        },
      }),
    ]);
    for (let i = 0; i < 200; i++) expect(set.variant('f', { key: `user-${i}` })).toBe('blue');
  });
});

describe('prerequisites', () => {
  const dependent = (variant = 'on') => flag({ key: 'child', prerequisites: [{ flag: 'parent', variant }] });

  it('a flag whose prerequisite serves the required variant evaluates normally', () => {
    const set = loaded([flag({ key: 'parent' }), dependent()]);
    expect(set.detail('child', { key: 'u' })).toMatchObject({ variant: 'on', reason: 'STATIC' });
  });

  it('a prerequisite serving another variant fails the flag to its off variant with PREREQUISITE_FAILED', () => {
    const set = loaded([flag({ key: 'parent', fallthrough: { variant: 'off' } }), dependent()]);
    expect(set.detail('child', { key: 'u' })).toEqual({
      value: false,
      variant: 'off',
      reason: 'PREREQUISITE_FAILED',
      flagVersion: 1,
    });
  });

  it('a missing, disabled or killed prerequisite fails, even when its off variant is the one required', () => {
    expect(loaded([dependent()]).detail('child', {}).reason).toBe('PREREQUISITE_FAILED');
    for (const parent of [flag({ key: 'parent', enabled: false }), flag({ key: 'parent', killed: true })]) {
      const detail = loaded([parent, dependent('off')]).detail('child', { key: 'u' });
      expect(detail).toMatchObject({ variant: 'off', reason: 'PREREQUISITE_FAILED' });
      expect(detail.detail).toBeUndefined();
    }
  });

  it("the prerequisite's targeting sees the same context", () => {
    const parent = flag({
      key: 'parent',
      fallthrough: { variant: 'off' },
      rules: [
        {
          id: 'beta',
          clauses: [{ attribute: 'plan', op: 'in', values: ['beta'] }],
          serve: { variant: 'on' },
        },
      ],
    });
    const set = loaded([parent, dependent()]);
    expect(set.variant('child', { key: 'u', plan: 'beta' })).toBe('on');
    expect(set.variant('child', { key: 'u', plan: 'free' })).toBe('off');
  });

  it("a prerequisite's rule id, reason and kill do not leak into the dependent's detail", () => {
    const parent = flag({
      key: 'parent',
      rules: [{ id: 'parent-rule', clauses: [], serve: { variant: 'on' } }],
    });
    const set = loaded([parent, dependent(), flag({ key: 'killed', killed: true })]);
    const detail = set.detail('child', { key: 'u' });
    expect(detail).toEqual({ value: true, variant: 'on', reason: 'STATIC', flagVersion: 1 });
    // a killed flag evaluated just before must not mark the next one KILLED
    set.detail('killed', { key: 'u' });
    expect(set.detail('child', { key: 'u' }).detail).toBeUndefined();
  });

  it('a chain of prerequisites is followed to its end', () => {
    const chain = Array.from({ length: 10 }, (_, i) =>
      flag({ key: `f${i}`, prerequisites: i < 9 ? [{ flag: `f${i + 1}`, variant: 'on' }] : [] }),
    );
    expect(loaded(chain).variant('f0', { key: 'u' })).toBe('on');
    chain[9] = flag({ key: 'f9', enabled: false });
    expect(loaded(chain).detail('f0', { key: 'u' }).reason).toBe('PREREQUISITE_FAILED');
  });

  it('a prerequisite cycle that slipped in evaluates to the off variant instead of recursing forever', () => {
    // Write-time validation refuses cycles; a set loaded from elsewhere may still hold one. Every
    // mix of required variants around 1- to 6-cycles must fail, whatever the cycle's length.
    for (let n = 1; n <= 6; n++) {
      for (let mask = 0; mask < 1 << n; mask++) {
        const keys = Array.from({ length: n }, (_, i) => `c${i}`);
        const flags = keys.map((key, i) =>
          flag({
            key,
            prerequisites: [{ flag: keys[(i + 1) % n]!, variant: (mask >> i) & 1 ? 'off' : 'on' }],
          }),
        );
        const set = loaded(flags);
        for (const key of keys) {
          expect(set.detail(key, { key: 'u' }), `${n}-cycle, mask ${mask}, ${key}`).toMatchObject({
            variant: 'off',
            reason: 'PREREQUISITE_FAILED',
          });
        }
      }
    }
  });

  it('a dense prerequisite cycle requiring off variants fails quickly', () => {
    // 21 flags each requiring the other 20 to be off: the depth guard alone would explore ~20^8 paths
    const keys = Array.from({ length: 21 }, (_, i) => `d${i}`);
    const flags = keys.map((key) =>
      flag({ key, prerequisites: keys.filter((k) => k !== key).map((k) => ({ flag: k, variant: 'off' })) }),
    );
    const set = loaded(flags);
    const started = performance.now();
    for (const key of keys) expect(set.variant(key, { key: 'u' })).toBe('off');
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('clauses', () => {
  const when = (clause: Clause) =>
    loaded([
      flag({
        key: 'f',
        fallthrough: { variant: 'off' },
        rules: [{ id: 'r', clauses: [clause], serve: { variant: 'on' } }],
      }),
    ]);

  it('a type mismatch makes a clause false, negated or not', () => {
    const lt = when({ attribute: 'age', op: 'lt', values: [30] });
    const notLt = when({ attribute: 'age', op: 'lt', values: [30], negate: true });
    expect(lt.isEnabled('f', { age: 20 })).toBe(true);
    expect(notLt.isEnabled('f', { age: 40 })).toBe(true);
    for (const age of ['20', null, undefined, true, { n: 20 }, Number.NaN]) {
      expect(lt.isEnabled('f', { age })).toBe(false);
      expect(notLt.isEnabled('f', { age })).toBe(false);
    }
  });

  it('a missing attribute makes a clause false, negated or not, except for exists', () => {
    expect(when({ attribute: 'country', op: 'notIn', values: ['TH'] }).isEnabled('f', {})).toBe(false);
    expect(when({ attribute: 'country', op: 'in', values: ['TH'], negate: true }).isEnabled('f', {})).toBe(
      false,
    );
    expect(when({ attribute: 'country', op: 'exists', values: [], negate: true }).isEnabled('f', {})).toBe(
      true,
    );
    expect(when({ attribute: 'country', op: 'exists', values: [] }).isEnabled('f', { country: null })).toBe(
      false,
    );
  });

  it('dot paths read nested attributes', () => {
    const set = when({ attribute: 'device.os.name', op: 'startsWith', values: ['iOS'] });
    expect(set.isEnabled('f', { device: { os: { name: 'iOS 18' } } })).toBe(true);
    expect(set.isEnabled('f', { device: { os: 'iOS 18' } })).toBe(false);
    expect(set.isEnabled('f', { device: null })).toBe(false);
  });

  it('paths through __proto__, constructor or prototype never reach Object.prototype', () => {
    for (const attribute of [
      '__proto__',
      'constructor',
      'constructor.name',
      '__proto__.polluted',
      'a.prototype',
    ]) {
      const set = when({ attribute, op: 'exists', values: [] });
      expect(set.isEnabled('f', { key: 'u', a: { prototype: 1 } }), attribute).toBe(false);
      expect(set.isEnabled('f', JSON.parse('{"__proto__": {"polluted": 1}}')), attribute).toBe(false);
    }
    expect(when({ attribute: 'toString', op: 'exists', values: [] }).isEnabled('f', {})).toBe(false);
  });

  it('an array attribute matches when any element matches', () => {
    const set = when({ attribute: 'groups', op: 'in', values: ['admin'] });
    expect(set.isEnabled('f', { groups: ['staff', 'admin'] })).toBe(true);
    expect(set.isEnabled('f', { groups: ['staff'] })).toBe(false);
    expect(set.isEnabled('f', { groups: [] })).toBe(false);
  });

  it('semver operators compare by precedence, not as strings', () => {
    const set = when({ attribute: 'app', op: 'semverLt', values: ['1.10.0'] });
    expect(set.isEnabled('f', { app: '1.9.0' })).toBe(true);
    expect(set.isEnabled('f', { app: '1.10.0-rc.1' })).toBe(true);
    expect(set.isEnabled('f', { app: '1.10.0' })).toBe(false);
    expect(set.isEnabled('f', { app: 'v1.2' })).toBe(false);
  });

  it('date operators accept ISO 8601 strings and epoch milliseconds on both sides', () => {
    const set = when({ attribute: 'signup', op: 'before', values: ['2024-06-01T00:00:00Z'] });
    expect(set.isEnabled('f', { signup: '2024-05-31T23:59:59Z' })).toBe(true);
    expect(set.isEnabled('f', { signup: Date.parse('2024-05-31T00:00:00Z') })).toBe(true);
    expect(set.isEnabled('f', { signup: '2024-06-01T00:00:00Z' })).toBe(false);
    expect(set.isEnabled('f', { signup: 'not a date' })).toBe(false);
  });

  it('matches runs the regex against string attributes', () => {
    const set = when({ attribute: 'email', op: 'matches', values: ['@example\\.(com|org)$'] });
    expect(set.isEnabled('f', { email: 'a@example.org' })).toBe(true);
    expect(set.isEnabled('f', { email: 'a@example.net' })).toBe(false);
  });

  it('an invalid regex that slipped past validation never matches instead of throwing', () => {
    const set = when({ attribute: 'email', op: 'matches', values: ['(unclosed'] });
    expect(set.detail('f', { email: '(unclosed' })).toMatchObject({ variant: 'off', reason: 'DEFAULT' });
  });

  it('a stored pattern RE2 refuses is left out, and a clause left with none is false even negated', () => {
    // `(a)\1` is a JavaScript backreference: RegExp would match "aa"
    const only = when({ attribute: 's', op: 'matches', values: ['(a)\\1'] });
    expect(only.isEnabled('f', { s: 'aa' })).toBe(false);
    const negated = when({ attribute: 's', op: 'matches', values: ['(a)\\1'], negate: true });
    expect(negated.isEnabled('f', { s: 'aa' })).toBe(false);
    expect(negated.isEnabled('f', { s: 'b' })).toBe(false);
    const mixed = when({ attribute: 's', op: 'matches', values: ['(a)\\1', '^b'] });
    expect(mixed.isEnabled('f', { s: 'aa' })).toBe(false);
    expect(mixed.isEnabled('f', { s: 'bb' })).toBe(true);
  });

  it('matches with RE2 semantics: linear time, code points', () => {
    const set = when({ attribute: 's', op: 'matches', values: ['^(a|a)*$'] });
    expect(set.isEnabled('f', { s: 'a'.repeat(100_000) })).toBe(true);
    expect(set.isEnabled('f', { s: `${'a'.repeat(100_000)}!` })).toBe(false);
    expect(when({ attribute: 's', op: 'matches', values: ['^.$'] }).isEnabled('f', { s: '😀' })).toBe(true);
  });
});

describe('segments', () => {
  const inBeta = flag({
    key: 'f',
    fallthrough: { variant: 'off' },
    rules: [
      {
        id: 'seg',
        clauses: [{ attribute: 'key', op: 'inSegment', values: ['beta'] }],
        serve: { variant: 'on' },
      },
    ],
  });
  const beta = segment({
    key: 'beta',
    included: ['alice'],
    excluded: ['mallory'],
    rules: [[{ attribute: 'email', op: 'endsWith', values: ['@vigil.dev'] }]],
  });

  it('a segment holds its included keys and the contexts its rules match, never its excluded keys', () => {
    const set = loaded([inBeta], [beta]);
    expect(set.isEnabled('f', { key: 'alice' })).toBe(true);
    expect(set.isEnabled('f', { key: 'bob', email: 'bob@vigil.dev' })).toBe(true);
    expect(set.isEnabled('f', { key: 'mallory', email: 'mallory@vigil.dev' })).toBe(false);
    expect(set.isEnabled('f', { key: 'carol', email: 'carol@example.com' })).toBe(false);
  });

  it('an unknown segment contains no one', () => {
    expect(loaded([inBeta]).isEnabled('f', { key: 'alice' })).toBe(false);
  });

  it('a segment change through a patch changes the evaluation of flags that use it', () => {
    const set = loaded([inBeta], [beta]);
    expect(set.isEnabled('f', { key: 'dave' })).toBe(false);
    const changed = set.applyPatch(patch(2, { segments: [{ ...beta, included: ['dave'], version: 2 }] }));
    expect(changed).toEqual({ flags: [], segments: ['beta'] });
    expect(set.isEnabled('f', { key: 'dave' })).toBe(true);
    expect(set.isEnabled('f', { key: 'alice' })).toBe(false);
  });
});

describe('load, patches and versions', () => {
  it('load reports changed keys: added, changed and removed flags and segments', () => {
    const set = loaded(
      [flag({ key: 'same' }), flag({ key: 'bumped' }), flag({ key: 'gone' })],
      [segment({ key: 's' })],
    );
    const changed = set.load({
      revision: 7,
      flags: [flag({ key: 'same' }), flag({ key: 'bumped', version: 2 }), flag({ key: 'new' })],
      segments: [segment({ key: 't' })],
    });
    expect(changed.flags.sort()).toEqual(['bumped', 'gone', 'new']);
    expect(changed.segments.sort()).toEqual(['s', 't']);
    expect(set.revision).toBe(7);
    expect(set.keys().sort()).toEqual(['bumped', 'new', 'same']);
    expect(set.has('gone')).toBe(false);
  });

  it('load of a fresh set reports every key', () => {
    const set = new FlagSet();
    expect(set.revision).toBe(0);
    const snapshot: FlagSnapshot = {
      revision: 3,
      flags: [flag({ key: 'a' })],
      segments: [segment({ key: 's' })],
    };
    expect(set.load(snapshot)).toEqual({ flags: ['a'], segments: ['s'] });
  });

  it('load replaces everything even with an older revision (a snapshot is the truth)', () => {
    const set = loaded([flag({ key: 'a', version: 9 })], [], 9);
    set.load({ revision: 2, flags: [flag({ key: 'b', version: 2 })], segments: [] });
    expect(set.revision).toBe(2);
    expect(set.keys()).toEqual(['b']);
  });

  it('a patch upserts newer flags, reports them and advances the revision', () => {
    const set = loaded([flag({ key: 'a' })]);
    const changed = set.applyPatch(
      patch(2, { flags: [flag({ key: 'a', enabled: false, version: 2 }), flag({ key: 'b', version: 2 })] }),
    );
    expect(changed).toEqual({ flags: ['a', 'b'], segments: [] });
    expect(set.revision).toBe(2);
    expect(set.versionOf('a')).toBe(2);
    expect(set.detail('a', { key: 'u' }).reason).toBe('DISABLED');
  });

  it('a stale patch is ignored', () => {
    const set = loaded([flag({ key: 'a', version: 5 })], [], 5);
    for (const revision of [4, 5]) {
      const changed = set.applyPatch(
        patch(revision, {
          flags: [flag({ key: 'a', enabled: false, version: revision })],
          deleted: { flags: ['a'], segments: [] },
        }),
      );
      expect(changed).toEqual({ flags: [], segments: [] });
    }
    expect(set.revision).toBe(5);
    expect(set.isEnabled('a', { key: 'u' })).toBe(true);
  });

  it('within a newer patch, a flag or segment not newer than the one held is ignored', () => {
    const set = loaded(
      [flag({ key: 'a', version: 5 })],
      [segment({ key: 's', version: 5, included: ['u'] })],
      5,
    );
    const changed = set.applyPatch(
      patch(6, {
        flags: [flag({ key: 'a', enabled: false, version: 5 })],
        segments: [segment({ key: 's', version: 4 })],
      }),
    );
    expect(changed).toEqual({ flags: [], segments: [] });
    expect(set.revision).toBe(6);
    expect(set.isEnabled('a', { key: 'u' })).toBe(true);
  });

  it('patch deletes flags and segments, reporting only keys it held', () => {
    const inS = flag({
      key: 'uses-s',
      fallthrough: { variant: 'off' },
      rules: [
        {
          id: 'r',
          clauses: [{ attribute: 'key', op: 'inSegment', values: ['s'] }],
          serve: { variant: 'on' },
        },
      ],
    });
    const set = loaded([flag({ key: 'a' }), inS], [segment({ key: 's', included: ['u'] })]);
    expect(set.isEnabled('uses-s', { key: 'u' })).toBe(true);
    const changed = set.applyPatch(
      patch(2, { deleted: { flags: ['a', 'never-held'], segments: ['s', 'nor-this'] } }),
    );
    expect(changed).toEqual({ flags: ['a'], segments: ['s'] });
    expect(set.has('a')).toBe(false);
    expect(set.detail('a', {}).errorCode).toBe('FLAG_NOT_FOUND');
    expect(set.isEnabled('uses-s', { key: 'u' })).toBe(false);
  });

  it('exposes the keys, versions and variant keys it holds', () => {
    const set = loaded([flag({ key: 'a', version: 4, ...colours })]);
    expect(set.keys()).toEqual(['a']);
    expect(set.versionOf('a')).toBe(4);
    expect(set.versionOf('b')).toBeUndefined();
    expect(set.variantsOf('a')).toEqual(['red', 'green', 'blue']);
    expect(set.variantsOf('b')).toBeUndefined();
  });
});

describe('the typed API', () => {
  const set = loaded([
    flag({ key: 'bool' }),
    flag({ key: 'text', ...colours, fallthrough: { variant: 'blue' } }),
    flag({
      key: 'limit',
      variants: [
        { key: 'low', value: 10 },
        { key: 'high', value: 100 },
      ],
      offVariant: 'low',
      fallthrough: { variant: 'high' },
    }),
    flag({
      key: 'config',
      variants: [{ key: 'v1', value: { retries: 3, hosts: ['a', 'b'] } }],
      offVariant: 'v1',
      fallthrough: { variant: 'v1' },
    }),
  ]);

  it('isEnabled returns the flag value for a boolean flag', () => {
    expect(set.isEnabled('bool', { key: 'u' })).toBe(true);
  });

  it('isEnabled returns the default for a non-boolean flag', () => {
    expect(set.isEnabled('text', { key: 'u' })).toBe(false);
    expect(set.isEnabled('limit', { key: 'u' }, true)).toBe(true);
  });

  it('isEnabled returns the default for an unknown flag', () => {
    expect(set.isEnabled('missing', { key: 'u' })).toBe(false);
    expect(set.isEnabled('missing', { key: 'u' }, true)).toBe(true);
  });

  it('value returns the served value when its type matches the default, else the default', () => {
    expect(set.value('text', { key: 'u' }, 'none')).toBe('blue');
    expect(set.value('limit', { key: 'u' }, 0)).toBe(100);
    expect(set.value('config', { key: 'u' }, {})).toEqual({ retries: 3, hosts: ['a', 'b'] });
    expect(set.value('config', { key: 'u' }, [] as string[])).toEqual({ retries: 3, hosts: ['a', 'b'] });
    expect(set.value('limit', { key: 'u' }, 'none')).toBe('none');
    expect(set.value('missing', { key: 'u' }, 7)).toBe(7);
  });

  it('variant returns the served key, or undefined for an unknown flag', () => {
    expect(set.variant('text', { key: 'u' })).toBe('blue');
    expect(set.variant('missing', { key: 'u' })).toBeUndefined();
  });

  it("detail reports FLAG_NOT_FOUND with the caller's default and no variant", () => {
    const detail = set.detail('missing', { key: 'u' }, 'fallback');
    expect(detail).toMatchObject({ value: 'fallback', reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(detail.variant).toBeUndefined();
  });

  it("detail reports TYPE_MISMATCH with the caller's default when the flag holds another type", () => {
    const detail = set.detail('limit', { key: 'u' }, false);
    expect(detail).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
    expect(detail.variant).toBeUndefined();
    expect(set.detail('limit', { key: 'u' }, 1)).toMatchObject({
      value: 100,
      variant: 'high',
      reason: 'STATIC',
    });
  });

  it('detailAll evaluates every flag, or only the keys asked for', () => {
    const all = set.detailAll({ key: 'u' });
    expect(Object.keys(all).sort()).toEqual(['bool', 'config', 'limit', 'text']);
    expect(all.text).toEqual(set.detail('text', { key: 'u' }));
    const some = set.detailAll({ key: 'u' }, ['bool', 'missing']);
    expect(Object.keys(some)).toEqual(['bool', 'missing']);
    expect(some.missing).toMatchObject({ reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
  });

  it('a non-object context is evaluated as an empty one', () => {
    for (const ctx of [undefined, null, 42, 'user-1', true, () => 1, Symbol('s')]) {
      expect(set.detail('bool', ctx)).toEqual({
        value: true,
        variant: 'on',
        reason: 'STATIC',
        flagVersion: 1,
      });
    }
  });
});

describe('hostile contexts and heavy prerequisite graphs', () => {
  it('a context that throws when read gets the off variant with ERROR/GENERAL instead of throwing', () => {
    const set = loaded([
      flag({
        key: 'f',
        rules: [
          {
            id: 'r',
            clauses: [{ attribute: 'country', op: 'in', values: ['TH'] }],
            serve: { variant: 'on' },
          },
        ],
      }),
    ]);
    const getter = Object.defineProperty({ key: 'u1' }, 'country', {
      get() {
        throw new Error('boom');
      },
    });
    const { proxy, revoke } = Proxy.revocable({ key: 'u1' }, {});
    revoke();
    for (const context of [getter, proxy]) {
      expect(set.detail('f', context)).toMatchObject({
        value: false,
        variant: 'off',
        reason: 'ERROR',
        errorCode: 'GENERAL',
      });
      expect(set.isEnabled('f', context, true)).toBe(false);
      expect(set.variant('f', context)).toBe('off');
    }
  });

  it('a diamond-shaped prerequisite graph evaluates each flag once, not once per path', () => {
    // 12 layers of 4 flags, each requiring all 4 below: 4^12 paths, 48 flags
    const flags: Flag[] = [];
    for (let layer = 0; layer < 12; layer++) {
      for (let i = 0; i < 4; i++) {
        const below =
          layer === 11 ? [] : [0, 1, 2, 3].map((j) => ({ flag: `l${layer + 1}-${j}`, variant: 'on' }));
        flags.push(flag({ key: `l${layer}-${i}`, prerequisites: below }));
      }
    }
    const set = loaded(flags);
    const started = performance.now();
    expect(set.detail('l0-0', { key: 'u1' })).toMatchObject({ value: true, reason: 'STATIC' });
    // exponential evaluation would take minutes; once per flag is well under a second even on a loaded machine
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
