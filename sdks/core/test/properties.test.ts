import {
  type ClauseValue,
  environmentIssues,
  type Flag,
  type FlagInput,
  OPERATORS,
  type Operator,
  type Segment,
  type SegmentInput,
  validateFlag,
  validateSegment,
  WEIGHT_TOTAL,
} from '@vigil/proto';
import fc from 'fast-check';
import murmurhash3js from 'murmurhash3js';
import { describe, expect, it } from 'vitest';
import { Bucketer, bucketOf, bucketOfHash, type EvaluationDetail, FlagSet } from '../src/index.js';

// ---------------------------------------------------------------------------------------------
// Arbitraries: environments of flags and segments that pass write-time validation.
// ---------------------------------------------------------------------------------------------

const key = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,11}$/);

/** Strings that contexts also use, so clauses match often enough to reach every serve. */
const SHARED = ['TH', 'SG', 'MY', 'pro', 'free', 'a@vigil.dev', 'user-1', 'ไทย', '日本語', '👩‍👩‍👧', ''];
const text = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SHARED) },
  fc.string({ maxLength: 6, unit: 'grapheme' }),
);
const finite = fc.oneof(
  fc.constantFrom(0, 1, 18, 21, -1, 0.5),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const version = fc
  .tuple(
    fc.nat(3),
    fc.nat(3),
    fc.nat(3),
    fc.constantFrom('', '-alpha', '-rc.1', '-beta.2', '+build.7'),
    fc.boolean(),
  )
  .map(([a, b, c, suffix, v]) => `${v ? 'v' : ''}${a}.${b}.${c}${suffix}`);
const LATEST = 4_102_444_800_000; // 2100-01-01
const date = fc.oneof(
  fc.integer({ min: 0, max: LATEST }),
  fc.date({ min: new Date(0), max: new Date(LATEST), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('2024-06-01', '2024-06-01T12:00:00+07:00'),
);
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const regex = fc.oneof(
  fc.constantFrom('^T', 'H$', '^(TH|SG|MY)$', '@vigil\\.dev$', '\\d+', 'ไทย', '^$', '.', '^[a-z]+-\\d$'),
  text.map(escapeRegex),
);

const ATTRIBUTES = [
  'key',
  'country',
  'age',
  'email',
  'plan',
  'app',
  'signup',
  'groups',
  'device.os',
  'device.os.version',
  'org.id',
  'ประเทศ',
  '国家',
  '__proto__',
  'constructor',
  'toString',
  'a.__proto__.b',
  'length',
];
const attribute = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ATTRIBUTES) },
  fc
    .array(
      fc.string({ minLength: 1, maxLength: 5, unit: 'grapheme' }).filter((s) => !s.includes('.')),
      {
        minLength: 1,
        maxLength: 3,
      },
    )
    .map((parts) => parts.join('.')),
);

const some = <T>(arb: fc.Arbitrary<T>, maxLength = 3) => fc.array(arb, { minLength: 1, maxLength });

/** Values that fit an operator, as validation requires. */
function valuesFor(op: Operator, segmentKeys: readonly string[]): fc.Arbitrary<ClauseValue[]> {
  switch (op) {
    case 'exists':
      return fc.constant([]);
    case 'in':
    case 'notIn':
      return some(fc.oneof(text, finite, fc.boolean()), 4);
    case 'contains':
    case 'startsWith':
    case 'endsWith':
      return some(text);
    case 'matches':
      return some(regex);
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      return some(finite);
    case 'before':
    case 'after':
      return some(date);
    case 'semverEq':
    case 'semverLt':
    case 'semverGt':
      return some(version);
    case 'inSegment':
      return some(fc.constantFrom(...segmentKeys), 2);
  }
}

/** A clause over any operator; `inSegment` only when there are segments to name. */
function clause(segmentKeys: readonly string[]) {
  const ops = OPERATORS.filter((op) => op !== 'inSegment' || segmentKeys.length > 0);
  return fc.constantFrom(...ops).chain((op) =>
    fc.record(
      {
        attribute: op === 'inSegment' ? fc.constantFrom('key', 'email') : attribute,
        op: fc.constant(op),
        values: valuesFor(op, segmentKeys),
        negate: fc.boolean(),
      },
      { requiredKeys: ['attribute', 'op', 'values'] },
    ),
  );
}

/** `n` non-negative integers summing to `total` (random cut points, often at the ends). */
function weightsSumming(n: number, total = WEIGHT_TOTAL): fc.Arbitrary<number[]> {
  const cut = fc.oneof(fc.integer({ min: 0, max: total }), fc.constantFrom(0, total));
  return fc.array(cut, { minLength: n - 1, maxLength: n - 1 }).map((cuts) => {
    const points = [0, ...cuts.sort((a, b) => a - b), total];
    return points.slice(1).map((p, i) => p - points[i]!);
  });
}

const bucketBy = fc.constantFrom('key', 'org.id', 'email', 'device.os.version');

function serve(variantKeys: readonly string[]): fc.Arbitrary<FlagInput['fallthrough']> {
  const rollout = fc.shuffledSubarray([...variantKeys], { minLength: 1 }).chain((chosen) =>
    fc.record(
      {
        weights: weightsSumming(chosen.length).map((ws) =>
          chosen.map((variant, i) => ({ variant, weight: ws[i]! })),
        ),
        exposure: fc.integer({ min: 0, max: WEIGHT_TOTAL }),
        bucketBy,
      },
      { requiredKeys: ['weights'] },
    ),
  );
  return fc.oneof(
    fc.constantFrom(...variantKeys).map((variant) => ({ variant })),
    rollout.map((r) => ({ rollout: r })),
  );
}

type Kind = 'boolean' | 'string' | 'number' | 'object';
const jsonKey = fc.string({ maxLength: 4 }).filter((k) => k !== '__proto__');
const VALUES: Record<Kind, fc.Arbitrary<FlagInput['variants'][number]['value']>> = {
  boolean: fc.boolean(),
  string: fc.string({ maxLength: 8, unit: 'grapheme' }),
  number: fc.double({ noNaN: true, noDefaultInfinity: true }),
  object: fc.oneof(
    fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
    fc.dictionary(jsonKey, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  ) as fc.Arbitrary<FlagInput['variants'][number]['value']>,
};

/** A flag without prerequisites: variants of one type, rules, a fallthrough. */
function flagBody(flagKey: string, segmentKeys: readonly string[]): fc.Arbitrary<FlagInput> {
  return fc
    .tuple(
      fc.constantFrom<Kind>('boolean', 'string', 'number', 'object'),
      fc.uniqueArray(key, { minLength: 1, maxLength: 5 }),
    )
    .chain(([kind, variantKeys]) =>
      fc.record(
        {
          key: fc.constant(flagKey),
          variants: fc.tuple(...variantKeys.map((k) => VALUES[kind].map((value) => ({ key: k, value })))),
          offVariant: fc.constantFrom(...variantKeys),
          enabled: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)),
          killed: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, fc.constant(true)),
          rules: fc.uniqueArray(
            fc.record({
              id: key,
              clauses: fc.array(clause(segmentKeys), { maxLength: 3 }),
              serve: serve(variantKeys),
            }),
            { selector: (r) => r.id, maxLength: 4 },
          ),
          fallthrough: serve(variantKeys),
          salt: fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }),
          version: fc.nat(),
        },
        {
          requiredKeys: [
            'key',
            'variants',
            'offVariant',
            'enabled',
            'killed',
            'rules',
            'fallthrough',
            'version',
          ],
        },
      ),
    );
}

const contextKey = fc.oneof(
  fc.constantFrom('user-1', 'user-2', 'alice', 'ไทย', '🎉'),
  fc.string({ maxLength: 8, unit: 'grapheme' }),
);

function segment(segmentKey: string): fc.Arbitrary<SegmentInput> {
  return fc.record({
    key: fc.constant(segmentKey),
    included: fc.array(contextKey, { maxLength: 3 }),
    excluded: fc.array(contextKey, { maxLength: 3 }),
    rules: fc.array(fc.array(clause([]), { maxLength: 2 }), { maxLength: 2 }),
    version: fc.nat(),
  });
}

/** Prerequisites on later flags only, so there is never a cycle. */
function prerequisites(later: readonly FlagInput[]): fc.Arbitrary<FlagInput['prerequisites']> {
  if (later.length === 0) return fc.constant([]);
  return fc
    .subarray([...later], { maxLength: Math.min(3, later.length) })
    .chain((chosen) =>
      chosen.length === 0
        ? fc.constant([])
        : fc.tuple(
            ...chosen.map((f) =>
              fc.constantFrom(...f.variants.map((v) => v.key)).map((variant) => ({ flag: f.key, variant })),
            ),
          ),
    );
}

interface Environment {
  flags: Flag[];
  segments: Segment[];
}

/** Flags and segments as written (validated one by one, as the server would) and then parsed. */
const environment: fc.Arbitrary<Environment> = fc
  .record({
    segmentKeys: fc.uniqueArray(key, { maxLength: 3 }),
    flagKeys: fc.uniqueArray(key, { minLength: 1, maxLength: 5 }),
  })
  .chain(({ segmentKeys, flagKeys }) =>
    fc.record({
      segments: fc.tuple(...segmentKeys.map(segment)) as fc.Arbitrary<SegmentInput[]>,
      bodies: fc.tuple(...flagKeys.map((k) => flagBody(k, segmentKeys))) as fc.Arbitrary<FlagInput[]>,
    }),
  )
  .chain(({ segments, bodies }) =>
    fc.tuple(...bodies.map((_, i) => prerequisites(bodies.slice(i + 1)))).map((prereqs) => ({
      segments,
      flags: bodies.map((body, i) => ({ ...body, prerequisites: prereqs[i]! })),
    })),
  )
  .map(({ segments, flags }) => {
    const parsedSegments = segments.map((s) => valid(validateSegment(s), s.key));
    const parsedFlags = flags.map((f) => valid(validateFlag(f), f.key));
    const byKey = new Map(parsedFlags.map((f) => [f.key, f]));
    const segmentKeys = new Set(parsedSegments.map((s) => s.key));
    for (const flag of parsedFlags) {
      const issues = environmentIssues(flag, byKey, segmentKeys);
      if (issues.length > 0) throw new Error(`generated flag ${flag.key} refused: ${JSON.stringify(issues)}`);
    }
    return { flags: parsedFlags, segments: parsedSegments };
  });

function valid<T>(result: { ok: true; value: T } | { ok: false; issues: unknown[] }, what: string): T {
  if (!result.ok) throw new Error(`generated ${what} refused: ${JSON.stringify(result.issues)}`);
  return result.value;
}

// Contexts: realistic ones with hostile values, prototype-ish keys, anything at all, non-objects.

const anything = fc.anything({
  maxDepth: 2,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
});
const attributeValue = fc.oneof(
  text,
  finite,
  fc.boolean(),
  version,
  date,
  fc.constantFrom(null, undefined, Number.NaN, Number.POSITIVE_INFINITY, -0, 2n ** 70n),
  fc.array(fc.oneof(text, finite, version), { maxLength: 3 }),
  anything,
);
const PROTOTYPE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'key',
  'length',
];

/** An object with own properties set as data, so `__proto__` becomes an own key, not the prototype. */
function own(
  entries: readonly (readonly [string, unknown])[],
  prototype: object | null = Object.prototype,
): object {
  const out = Object.create(prototype) as object;
  for (const [name, value] of entries) {
    Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const realistic = fc.record(
  {
    key: fc.oneof({ weight: 4, arbitrary: contextKey }, attributeValue),
    country: fc.oneof(fc.constantFrom('TH', 'SG', 'MY', 'FR'), attributeValue),
    age: fc.oneof(fc.integer({ min: 0, max: 99 }), attributeValue),
    email: fc.oneof(fc.constantFrom('a@vigil.dev', 'b@example.com'), attributeValue),
    plan: attributeValue,
    app: fc.oneof(version, attributeValue),
    signup: fc.oneof(date, attributeValue),
    groups: fc.array(fc.oneof(text, attributeValue), { maxLength: 3 }),
    device: fc.record(
      { os: fc.oneof(fc.record({ version }), attributeValue), id: attributeValue },
      { requiredKeys: [] },
    ),
    org: fc.record({ id: fc.oneof(finite, text, attributeValue) }, { requiredKeys: [] }),
    ประเทศ: text,
    国家: text,
  },
  { requiredKeys: [] },
);
const context: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: realistic },
  fc
    .tuple(
      realistic,
      fc.array(fc.tuple(fc.constantFrom(...PROTOTYPE_KEYS), attributeValue), { maxLength: 4 }),
      fc.boolean(),
    )
    .map(([base, extra, nullPrototype]) =>
      own([...Object.entries(base), ...extra], nullPrototype ? null : Object.prototype),
    ),
  realistic.map((base) => Object.create(own(Object.entries(base))) as object),
  fc.constant(
    JSON.parse(
      '{"__proto__": {"key": "user-1", "country": "TH"}, "constructor": {"prototype": 1}}',
    ) as unknown,
  ),
  anything,
  fc.constantFrom(undefined, null, 0, 'user-1', true, Symbol('ctx'), () => 'user-1', 10n),
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** The resolution reasons OpenFeature defines (the evaluator never reports the last three). */
const OPENFEATURE_REASONS = new Set([
  'STATIC',
  'DEFAULT',
  'TARGETING_MATCH',
  'SPLIT',
  'DISABLED',
  'PREREQUISITE_FAILED',
  'ERROR',
  'CACHED',
  'UNKNOWN',
  'STALE',
]);

const DEFAULTS = {
  boolean: false,
  string: '\u0000default',
  number: -12345.5,
  object: { default: true },
} as const;

function kindOf(flag: Flag): Kind {
  const value = flag.variants[0]!.value;
  return typeof value === 'object' ? 'object' : (typeof value as Kind);
}

function loadedSet(env: Environment): FlagSet {
  const set = new FlagSet();
  set.load({ revision: 1, flags: env.flags, segments: env.segments });
  return set;
}

/** Checks one flag's evaluation against the reasons' meaning and the API's agreement with `detail`. */
function checkEvaluation(set: FlagSet, flag: Flag, ctx: unknown): void {
  const d = set.detail(flag.key, ctx);
  const served = flag.variants.find((v) => v.key === d.variant);
  expect(served, `variant ${d.variant} of ${flag.key}`).toBeDefined();
  expect(d.value).toEqual(served!.value);
  expect(OPENFEATURE_REASONS.has(d.reason)).toBe(true);
  expect(d.flagVersion).toBe(flag.version);
  expect(d.errorCode).toBe(d.reason === 'ERROR' ? 'TARGETING_KEY_MISSING' : undefined);
  expect(d.detail).toBe(flag.killed ? 'KILLED' : undefined);
  const rule = d.ruleId === undefined ? undefined : flag.rules.find((r) => r.id === d.ruleId);
  if (d.ruleId !== undefined) expect(rule).toBeDefined();
  switch (d.reason) {
    case 'DISABLED':
      expect(flag.killed || !flag.enabled).toBe(true);
      expect(d.variant).toBe(flag.offVariant);
      break;
    case 'PREREQUISITE_FAILED':
      expect(flag.prerequisites.length).toBeGreaterThan(0);
      expect(d.variant).toBe(flag.offVariant);
      break;
    case 'ERROR':
      expect(d.variant).toBe(flag.offVariant);
      break;
    case 'STATIC':
      expect(flag.rules).toEqual([]);
      expect(flag.fallthrough).toEqual({ variant: d.variant });
      break;
    case 'DEFAULT':
      expect(flag.rules.length).toBeGreaterThan(0);
      expect(d.ruleId).toBeUndefined();
      expect(flag.fallthrough).toEqual({ variant: d.variant });
      break;
    case 'TARGETING_MATCH':
      expect(rule?.serve).toEqual({ variant: d.variant });
      break;
    case 'SPLIT': {
      const split = rule ? rule.serve : flag.fallthrough;
      expect('rollout' in split).toBe(true);
      if ('rollout' in split) {
        const possible = split.rollout.weights.filter((w) => w.weight > 0).map((w) => w.variant);
        expect([...possible, flag.offVariant]).toContain(d.variant);
      }
      break;
    }
  }
  if (!flag.killed && flag.enabled && d.reason !== 'PREREQUISITE_FAILED') {
    // a flag that is live and whose prerequisites pass reaches its rules
    expect(['STATIC', 'DEFAULT', 'TARGETING_MATCH', 'SPLIT', 'ERROR']).toContain(d.reason);
  }

  const kind = kindOf(flag);
  expect(set.variant(flag.key, ctx)).toBe(d.variant);
  expect(set.value(flag.key, ctx, DEFAULTS[kind])).toEqual(d.value);
  expect(set.isEnabled(flag.key, ctx, false)).toBe(kind === 'boolean' ? d.value : false);
  expect(set.isEnabled(flag.key, ctx, true)).toBe(kind === 'boolean' ? d.value : true);
  expect(set.detail(flag.key, ctx, DEFAULTS[kind])).toEqual(d);
  const other: Kind = kind === 'number' ? 'string' : 'number';
  expect(set.value(flag.key, ctx, DEFAULTS[other])).toBe(DEFAULTS[other]);
  const mismatch = set.detail(flag.key, ctx, DEFAULTS[other]);
  expect(mismatch).toMatchObject({ value: DEFAULTS[other], reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
  expect(mismatch.variant).toBeUndefined();
}

/** UTF-8 bytes as a "binary string" (one char per byte): murmurhash3js then hashes the UTF-8 bytes. */
function utf8Binary(text: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(text)) out += String.fromCharCode(byte);
  return out;
}

/** The bucketing contract computed independently: murmurhash3js over UTF-8, BigInt scaling. */
function oracle(salt: string, value: string): { hash: number; bucket: number } {
  const hash = murmurhash3js.x86.hash32(utf8Binary(`${salt}:${value}`), 0);
  return { hash, bucket: Number((BigInt(hash) * BigInt(WEIGHT_TOTAL)) >> 32n) };
}

const anyKey = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.uuid(),
  fc.constantFrom('user-1', 'ไทย', '用户', '🇹🇭👩🏽‍💻', ''),
);

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

describe('evaluation is total', () => {
  it('never throws, and serves one of the flag variants with a reason that fits, for any valid environment and context', () => {
    fc.assert(
      fc.property(environment, fc.array(context, { minLength: 1, maxLength: 6 }), (env, contexts) => {
        const set = loadedSet(env);
        for (const ctx of contexts) {
          for (const flag of env.flags) checkEvaluation(set, flag, ctx);
          const missing = set.detail('\u0000missing', ctx, 'fallback');
          expect(missing).toEqual({
            value: 'fallback',
            reason: 'ERROR',
            errorCode: 'FLAG_NOT_FOUND',
            detail: 'flag "\u0000missing" not found',
          });
          expect(set.variant('\u0000missing', ctx)).toBeUndefined();
          expect(set.isEnabled('\u0000missing', ctx, true)).toBe(true);
          const all = set.detailAll(ctx);
          expect(Object.keys(all).sort()).toEqual(env.flags.map((f) => f.key).sort());
        }
      }),
      { numRuns: 250 },
    );
  });

  it('the generated environments reach every reason and every operator', () => {
    // guards the property above against an arbitrary that silently stopped covering the evaluator
    const reasons = new Set<string>();
    const ops = new Set<string>();
    for (const [env, ctx] of fc.sample(fc.tuple(environment, context), { numRuns: 250, seed: 7 })) {
      const set = loadedSet(env);
      for (const flag of env.flags) {
        reasons.add(set.detail(flag.key, ctx).reason);
        for (const rule of flag.rules) for (const c of rule.clauses) ops.add(c.op);
      }
    }
    expect([...reasons].sort()).toEqual(
      ['DEFAULT', 'DISABLED', 'ERROR', 'PREREQUISITE_FAILED', 'SPLIT', 'STATIC', 'TARGETING_MATCH'].sort(),
    );
    expect([...ops].sort()).toEqual([...OPERATORS].sort());
  });
});

describe('evaluation is deterministic', () => {
  it('two separately loaded sets agree, whatever order flags are evaluated in and however they were loaded', () => {
    fc.assert(
      fc.property(environment, fc.array(context, { minLength: 1, maxLength: 4 }), (env, contexts) => {
        const a = loadedSet(structuredClone(env));
        const b = new FlagSet();
        b.load({ revision: 1, flags: [], segments: [] });
        const copy = structuredClone(env);
        b.applyPatch({
          revision: 2,
          flags: copy.flags,
          segments: copy.segments,
          deleted: { flags: [], segments: [] },
        });
        const keys = env.flags.map((f) => f.key);
        for (const ctx of contexts) {
          const forward = a.detailAll(ctx, keys);
          const backward = b.detailAll(ctx, [...keys].reverse());
          const again = a.detailAll(ctx, keys);
          for (const k of keys) {
            expect(backward[k]).toEqual(forward[k]);
            expect(again[k]).toEqual(forward[k]);
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('rollouts only ever add contexts', () => {
  const variants = (n: number) => [
    ...Array.from({ length: n }, (_, i) => ({ key: `v${i}`, value: `v${i}` })),
    { key: 'off', value: 'off' },
  ];

  /** A string flag whose fallthrough is the rollout; `off` is never in the weights. */
  function rolloutFlag(
    n: number,
    weights: number[],
    exposure: number | undefined,
    salt: string | null,
  ): Flag {
    const input: FlagInput = {
      key: 'rollout',
      variants: variants(n),
      offVariant: 'off',
      enabled: true,
      fallthrough: {
        rollout: {
          ...(exposure === undefined ? {} : { exposure }),
          weights: weights.map((weight, i) => ({ variant: `v${i}`, weight })),
        },
      },
      ...(salt === null ? {} : { salt }),
    };
    return valid(validateFlag(input), 'rollout flag');
  }

  const salt = fc.option(
    fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), fc.constantFrom('ไทย', '🎉')),
  );
  const keys = fc.uniqueArray(anyKey, { minLength: 1, maxLength: 40 });

  /** First weight `first`, the rest of WEIGHT_TOTAL spread over n - 1 variants. */
  const spread = (n: number, first: number) =>
    weightsSumming(n - 1, WEIGHT_TOTAL - first).map((rest) => [first, ...rest]);

  it('a context that got the first variant at weight w still gets it at any w′ ≥ w, other weights redrawn', () => {
    const scenario = fc
      .record({
        n: fc.integer({ min: 2, max: 6 }),
        w: fc.integer({ min: 0, max: WEIGHT_TOTAL }),
        raise: fc.nat(WEIGHT_TOTAL),
      })
      .chain(({ n, w, raise }) => {
        const w2 = Math.min(WEIGHT_TOTAL, w + raise);
        return fc.record({ n: fc.constant(n), before: spread(n, w), after: spread(n, w2), salt, keys });
      });
    let stayed = 0;
    fc.assert(
      fc.property(scenario, ({ n, before, after, salt, keys }) => {
        expect(after[0]!).toBeGreaterThanOrEqual(before[0]!);
        const a = loadedSet({ flags: [rolloutFlag(n, before, undefined, salt)], segments: [] });
        const b = loadedSet({ flags: [rolloutFlag(n, after, undefined, salt)], segments: [] });
        for (const k of keys) {
          if (a.variant('rollout', { key: k }) === 'v0') {
            stayed++;
            expect(b.variant('rollout', { key: k }), k).toBe('v0');
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(stayed).toBeGreaterThan(500);
  });

  it('a context that took part at exposure e keeps exactly its variant at any e′ ≥ e', () => {
    const scenario = fc
      .record({ n: fc.integer({ min: 1, max: 5 }), e: fc.nat(WEIGHT_TOTAL), raise: fc.nat(WEIGHT_TOTAL) })
      .chain(({ n, e, raise }) =>
        fc.record({
          n: fc.constant(n),
          weights: weightsSumming(n),
          e: fc.constant(e),
          e2: fc.constant(Math.min(WEIGHT_TOTAL, e + raise)),
          salt,
          keys,
        }),
      );
    let tookPart = 0;
    fc.assert(
      fc.property(scenario, ({ n, weights, e, e2, salt, keys }) => {
        const a = loadedSet({ flags: [rolloutFlag(n, weights, e, salt)], segments: [] });
        const b = loadedSet({ flags: [rolloutFlag(n, weights, e2, salt)], segments: [] });
        for (const k of keys) {
          const before = a.variant('rollout', { key: k });
          // the contract: taking part is decided by the salt:exposure bucket alone
          expect(before !== 'off', k).toBe(oracle(`${salt ?? 'rollout'}:exposure`, k).bucket < e);
          if (before !== 'off') {
            tookPart++;
            expect(b.variant('rollout', { key: k }), k).toBe(before);
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(tookPart).toBeGreaterThan(500);
  });

  it('raising exposure and the first weight together (a schedule step) keeps the first variant', () => {
    const scenario = fc
      .record({
        n: fc.integer({ min: 2, max: 4 }),
        w: fc.nat(WEIGHT_TOTAL),
        dw: fc.nat(WEIGHT_TOTAL),
        e: fc.nat(WEIGHT_TOTAL),
        de: fc.nat(WEIGHT_TOTAL),
      })
      .chain(({ n, w, dw, e, de }) =>
        fc.record({
          n: fc.constant(n),
          before: spread(n, w),
          after: spread(n, Math.min(WEIGHT_TOTAL, w + dw)),
          e: fc.constant(e),
          e2: fc.constant(Math.min(WEIGHT_TOTAL, e + de)),
          salt,
          keys,
        }),
      );
    fc.assert(
      fc.property(scenario, ({ n, before, after, e, e2, salt, keys }) => {
        const a = loadedSet({ flags: [rolloutFlag(n, before, e, salt)], segments: [] });
        const b = loadedSet({ flags: [rolloutFlag(n, after, e2, salt)], segments: [] });
        for (const k of keys)
          if (a.variant('rollout', { key: k }) === 'v0') expect(b.variant('rollout', { key: k })).toBe('v0');
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Uniformity (seeded, so the statistics below are reproducible)
// ---------------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, enough to make reproducible keys. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const N = 200_000;

function userKeys(): string[] {
  return Array.from({ length: N }, (_, i) => `user-${i}`);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Version 4 UUIDs from a seeded generator. */
function uuidKeys(seed: number): string[] {
  const random = prng(seed);
  const bytes = (n: number) => {
    let out = '';
    for (let i = 0; i < n; i++) out += HEX[Math.floor(random() * 256)]!;
    return out;
  };
  return Array.from(
    { length: N },
    () =>
      `${bytes(4)}-${bytes(2)}-4${bytes(2).slice(1)}-${'89ab'[Math.floor(random() * 4)]}${bytes(2).slice(1)}-${bytes(6)}`,
  );
}

/** Thai, CJK, emoji and accented Latin code points, 1–6 per key, deduplicated. */
function nonAsciiKeys(seed: number): string[] {
  const random = prng(seed);
  const RANGES: [number, number][] = [
    [0x0e01, 0x0e3a], // Thai
    [0x4e00, 0x9fff], // CJK
    [0x1f300, 0x1faff], // emoji (astral: surrogate pairs in JS)
    [0x00c0, 0x017f], // Latin-1 and Latin Extended-A
  ];
  const keys = new Set<string>();
  while (keys.size < N) {
    const length = 1 + Math.floor(random() * 6);
    let key = '';
    for (let i = 0; i < length; i++) {
      const [lo, hi] = RANGES[Math.floor(random() * RANGES.length)]!;
      key += String.fromCodePoint(lo + Math.floor(random() * (hi - lo + 1)));
    }
    keys.add(key);
  }
  return [...keys];
}

// The chi-square critical value for 99 degrees of freedom at α = 0.001: scipy.stats.chi2.ppf(0.999, 99).
const CHI_SQUARE_CRITICAL_99_DOF = 148.2304;
// Two-sided α = 0.001 for a normal approximation of the binomial: scipy.stats.norm.ppf(0.9995).
const Z_CRITICAL = 3.2905;

/** Pearson's chi-square of the buckets' hundredths (ranges of 1000) against a uniform spread. */
function chiSquare(buckets: Iterable<number>): { statistic: number; total: number } {
  const counts = new Array<number>(100).fill(0);
  let total = 0;
  for (const b of buckets) {
    counts[Math.floor(b / 1000)]!++;
    total++;
  }
  const expected = total / 100;
  return { statistic: counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0), total };
}

function* bucketsOf(salt: string, keys: readonly string[], via: 'Bucketer' | 'bucketOf'): Generator<number> {
  const bucketer = new Bucketer(salt);
  for (const k of keys) yield via === 'Bucketer' ? bucketer.bucket(k) : bucketOf(salt, k).bucket;
}

describe('buckets are uniform', () => {
  const sets: [string, () => string[], string, 'Bucketer' | 'bucketOf'][] = [
    ['user-<i>', userKeys, 'checkout.new-flow', 'bucketOf'],
    ['random UUIDs', () => uuidKeys(2024), 'pricing', 'Bucketer'],
    ['Thai, CJK, emoji and accented keys', () => nonAsciiKeys(7), 'ไทย-flag', 'Bucketer'],
  ];

  for (const [name, make, salt, via] of sets) {
    it(`${N} distinct ${name} fill 100 buckets evenly (chi-square, α = 0.001)`, () => {
      const keys = make();
      expect(new Set(keys).size).toBe(N);
      const { statistic, total } = chiSquare(bucketsOf(salt, keys, via));
      expect(total).toBe(N);
      console.info(
        `chi-square over ${name}: ${statistic.toFixed(2)} (critical ${CHI_SQUARE_CRITICAL_99_DOF})`,
      );
      expect(statistic).toBeLessThan(CHI_SQUARE_CRITICAL_99_DOF);
    });
  }

  it('a 20/80 rollout serves the first variant to 20% of contexts within binomial tolerance', () => {
    const flag = valid(
      validateFlag({
        key: 'split',
        variants: [
          { key: 'a', value: 'a' },
          { key: 'b', value: 'b' },
        ],
        offVariant: 'b',
        enabled: true,
        fallthrough: {
          rollout: {
            weights: [
              { variant: 'a', weight: 20_000 },
              { variant: 'b', weight: 80_000 },
            ],
          },
        },
      }),
      'split flag',
    );
    const set = loadedSet({ flags: [flag], segments: [] });
    const expected = N * 0.2;
    const tolerance = Z_CRITICAL * Math.sqrt(N * 0.2 * 0.8); // ≈ 589
    for (const keys of [userKeys(), nonAsciiKeys(11)]) {
      let first = 0;
      for (const k of keys) if (set.variant('split', { key: k }) === 'a') first++;
      console.info(
        `20/80 split: ${first} of ${N} in the 20% (expected ${expected} ± ${tolerance.toFixed(0)})`,
      );
      expect(Math.abs(first - expected)).toBeLessThan(tolerance);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Bucketing against an independent oracle
// ---------------------------------------------------------------------------------------------

describe('bucketing agrees with an independent oracle', () => {
  const salt = fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 12 }),
  );

  it('bucketOf and Bucketer equal murmurhash3js over UTF-8 bytes, scaled exactly', () => {
    fc.assert(
      fc.property(salt, anyKey, (s, value) => {
        const expected = oracle(s, value);
        expect(bucketOf(s, value)).toEqual(expected);
        const bucketer = new Bucketer(s);
        expect(bucketer.hash(value)).toBe(expected.hash);
        expect(bucketer.bucket(value)).toBe(expected.bucket);
      }),
      { numRuns: 3000 },
    );
  });

  it('bucketOfHash is floor(h * 100000 / 2^32) for every 32-bit h', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.nat({ max: 2 ** 32 - 1 }), fc.constantFrom(0, 1, 42949, 42950, 2 ** 31, 2 ** 32 - 1)),
        (h) => {
          expect(bucketOfHash(h)).toBe(Number((BigInt(h) * 100_000n) >> 32n));
        },
      ),
      { numRuns: 3000 },
    );
    expect(bucketOfHash(2 ** 32 - 1)).toBe(99_999);
  });

  it('a flag serves the variant whose weight range holds the oracle bucket, after the exposure check', () => {
    // 50 variants of 2000 each: the served index is floor(bucket / 2000)
    const flag = (salt: string | null, exposure: number) =>
      valid(
        validateFlag({
          key: 'fifty',
          variants: [
            ...Array.from({ length: 50 }, (_, i) => ({ key: `v${i}`, value: i })),
            { key: 'off', value: -1 },
          ],
          offVariant: 'off',
          enabled: true,
          fallthrough: {
            rollout: {
              exposure,
              bucketBy: 'org.id',
              weights: Array.from({ length: 50 }, (_, i) => ({ variant: `v${i}`, weight: 2000 })),
            },
          },
          ...(salt === null ? {} : { salt }),
        }),
        'fifty',
      );
    fc.assert(
      fc.property(
        fc.option(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 })),
        fc.nat(WEIGHT_TOTAL),
        fc.uniqueArray(anyKey, { maxLength: 20 }),
        (s, exposure, keys) => {
          const set = loadedSet({ flags: [flag(s, exposure)], segments: [] });
          const saltUsed = s ?? 'fifty';
          for (const k of keys) {
            const expected =
              oracle(`${saltUsed}:exposure`, k).bucket < exposure
                ? `v${Math.floor(oracle(saltUsed, k).bucket / 2000)}`
                : 'off';
            const d: EvaluationDetail = set.detail('fifty', { key: 'someone-else', org: { id: k } });
            expect(d.variant, k).toBe(expected);
            expect(d.reason).toBe('SPLIT');
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
