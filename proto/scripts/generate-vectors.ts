/**
 * Writes Vigil's shared test vectors: `proto/vectors/evaluation.json` (flags, segments, context →
 * value, variant, reason) and `proto/vectors/buckets.json` (salt, value → hash, bucket). Every SDK,
 * in any language, runs them. Run from the workspace root after changing a case:
 *
 *   pnpm tsx --conditions=@vigil/source proto/scripts/generate-vectors.ts
 *
 * Every case below is written by hand with the outcome DESIGN.md's semantics give; nothing here calls
 * @vigil/core, so the vectors check the evaluator instead of repeating it. Rollout outcomes come from
 * an independent MurmurHash3 (murmurhash3js fed UTF-8 bytes) and exact integer bucket arithmetic.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Clause,
  type Flag,
  type FlagInput,
  flagSchema,
  type Rollout,
  type Segment,
  type SegmentInput,
  segmentSchema,
  type VariantValue,
  validateFlag,
  validateSegment,
  WEIGHT_TOTAL,
} from '../src/index.js';

// ---------------------------------------------------------------------------------------------
// The bucketing oracle

// murmurhash3js is a devDependency of @vigil/core, the package whose bucketing these vectors check.
const requireFromCore = createRequire(new URL('../../sdks/core/package.json', import.meta.url));
const murmurhash3js = requireFromCore('murmurhash3js') as {
  x86: { hash32(key: string, seed?: number): number };
};

/** The UTF-8 bytes of `text` as a string of char codes 0–255: murmurhash3js hashes each char's low byte. */
function utf8Binary(text: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(text)) out += String.fromCharCode(byte);
  return out;
}

/** MurmurHash3_x86_32(utf8(salt + ":" + value), seed 0), unsigned: the bucketing hash. */
export function oracleHash(salt: string, value: string): number {
  return murmurhash3js.x86.hash32(utf8Binary(`${salt}:${value}`), 0) >>> 0;
}

/** floor(h * 100000 / 2^32), in integers. */
export function oracleBucket(salt: string, value: string): number {
  return Number((BigInt(oracleHash(salt, value)) * BigInt(WEIGHT_TOTAL)) >> 32n);
}

// ---------------------------------------------------------------------------------------------
// File formats

export type Reason =
  | 'STATIC'
  | 'DEFAULT'
  | 'TARGETING_MATCH'
  | 'SPLIT'
  | 'DISABLED'
  | 'PREREQUISITE_FAILED'
  | 'ERROR';

export interface Expectation {
  value: unknown;
  variant?: string;
  reason: Reason;
  errorCode?: 'FLAG_NOT_FOUND' | 'TYPE_MISMATCH' | 'TARGETING_KEY_MISSING';
  detail?: string;
  ruleId?: string;
}

export interface VectorCase {
  name: string;
  flag: string;
  context: unknown;
  default?: VariantValue;
  expect: Expectation;
}

export interface VectorSuite {
  name: string;
  flags: Flag[];
  segments: Segment[];
  cases: VectorCase[];
}

export interface EvaluationVectors {
  description: string;
  suites: VectorSuite[];
}

export interface BucketVector {
  salt: string;
  value: string;
  hash: number;
  bucket: number;
}

export interface BucketVectors {
  description: string;
  vectors: BucketVector[];
}

// ---------------------------------------------------------------------------------------------
// Building blocks

const RULE = 'rule-1';
const ON = { value: true, variant: 'on' } as const;
const OFF = { value: false, variant: 'off' } as const;

/** A boolean flag: variants on/off, off when disabled, fallthrough off unless given. */
function boolFlag(key: string, fields: Partial<FlagInput> = {}): FlagInput {
  return {
    key,
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    fallthrough: { variant: 'off' },
    ...fields,
  };
}

/** A boolean flag with one rule, `rule-1`, serving on when its clauses match. */
function ruleFlag(key: string, clauses: Clause[], fields: Partial<FlagInput> = {}): FlagInput {
  return boolFlag(key, { rules: [{ id: RULE, clauses, serve: { variant: 'on' } }], ...fields });
}

const matched = (ruleId = RULE): Expectation => ({ ...ON, reason: 'TARGETING_MATCH', ruleId });
const unmatched = (): Expectation => ({ ...OFF, reason: 'DEFAULT' });

class Suite {
  readonly flags: Flag[] = [];
  readonly segments: Segment[] = [];
  readonly cases: VectorCase[] = [];

  constructor(readonly name: string) {}

  /** Adds a flag as the server would store it (defaults applied), refusing anything invalid. */
  flag(input: FlagInput): Flag {
    const checked = validateFlag(input);
    if (!checked.ok)
      throw new Error(`${this.name}: flag ${input.key} is invalid: ${JSON.stringify(checked.issues)}`);
    if (this.flags.some((f) => f.key === input.key))
      throw new Error(`${this.name}: duplicate flag ${input.key}`);
    this.flags.push(flagSchema.parse(input));
    return checked.value;
  }

  segment(input: SegmentInput): void {
    const checked = validateSegment(input);
    if (!checked.ok)
      throw new Error(`${this.name}: segment ${input.key} is invalid: ${JSON.stringify(checked.issues)}`);
    this.segments.push(segmentSchema.parse(input));
  }

  add(name: string, flag: string, context: unknown, expect: Expectation, defaultValue?: VariantValue): void {
    if (this.cases.some((c) => c.name === name))
      throw new Error(`${this.name}: duplicate case name "${name}"`);
    this.cases.push({
      name,
      flag,
      context,
      ...(defaultValue === undefined ? {} : { default: defaultValue }),
      expect,
    });
  }

  /**
   * One clause on a boolean flag and on its negated twin: each row gives whether the clause matches
   * and whether the negated clause matches (they differ from plain XOR on missing values and type
   * mismatches, which are false either way).
   */
  clause(
    key: string,
    clause: Clause,
  ): (name: string, context: unknown, plain: boolean, negated: boolean) => void {
    this.flag(ruleFlag(key, [clause]));
    this.flag(ruleFlag(`${key}-negated`, [{ ...clause, negate: true }]));
    return (name, context, plain, negated) => {
      this.add(`${key}: ${name}`, key, context, plain ? matched() : unmatched());
      this.add(`${key} negated: ${name}`, `${key}-negated`, context, negated ? matched() : unmatched());
    };
  }

  /**
   * A rollout case: `value` is the bucketing value the semantics pick from the context (written by
   * hand); the variant comes from the oracle's buckets and the serve's weights.
   */
  split(name: string, flagKey: string, context: unknown, value: string, ruleId?: string): Expectation {
    const flag = this.flags.find((f) => f.key === flagKey);
    if (!flag) throw new Error(`${this.name}: no flag ${flagKey}`);
    const serve = ruleId ? flag.rules.find((r) => r.id === ruleId)?.serve : flag.fallthrough;
    if (!serve || !('rollout' in serve)) throw new Error(`${this.name}: ${flagKey} has no rollout there`);
    const outcome = splitOutcome(flag, serve.rollout, value);
    const served = flag.variants.find((v) => v.key === outcome.variant)!;
    const expect: Expectation = { value: served.value, variant: served.key, reason: 'SPLIT' };
    if (ruleId) expect.ruleId = ruleId;
    const where =
      outcome.exposureBucket === undefined
        ? `bucket ${outcome.bucket}`
        : outcome.bucket === undefined
          ? `exposure bucket ${outcome.exposureBucket}, outside`
          : `exposure bucket ${outcome.exposureBucket}, bucket ${outcome.bucket}`;
    this.add(`${name}: ${JSON.stringify(value)} [${where}] → ${served.key}`, flagKey, context, expect);
    return expect;
  }

  /**
   * A rollout case at a bucket written by hand (found once by search): the oracle must agree on the
   * bucket and the weights must give `variant`, so the case documents itself.
   */
  atBucket(flagKey: string, key: string, bucket: number, variant: string, exposureBucket?: number): void {
    const flag = this.flags.find((f) => f.key === flagKey)!;
    const salt = flag.salt ?? flag.key;
    if (oracleBucket(salt, key) !== bucket)
      throw new Error(`${key}: bucket is ${oracleBucket(salt, key)}, not ${bucket}`);
    if (exposureBucket !== undefined && oracleBucket(`${salt}:exposure`, key) !== exposureBucket) {
      throw new Error(
        `${key}: exposure bucket is ${oracleBucket(`${salt}:exposure`, key)}, not ${exposureBucket}`,
      );
    }
    const expect = this.split(flagKey, flagKey, { key }, key);
    if (expect.variant !== variant)
      throw new Error(`${flagKey} ${key}: weights give ${expect.variant}, not ${variant}`);
  }

  toJSON(): VectorSuite {
    return { name: this.name, flags: this.flags, segments: this.segments, cases: this.cases };
  }
}

interface SplitOutcome {
  variant: string;
  exposureBucket?: number;
  bucket?: number;
}

/** The exposure check, then the first variant whose running weight exceeds the bucket. */
function splitOutcome(flag: Flag, rollout: Rollout, value: string): SplitOutcome {
  const salt = flag.salt ?? flag.key;
  const outcome: Partial<SplitOutcome> = {};
  if (rollout.exposure !== undefined && rollout.exposure < WEIGHT_TOTAL) {
    outcome.exposureBucket = oracleBucket(`${salt}:exposure`, value);
    if (outcome.exposureBucket >= rollout.exposure) return { ...outcome, variant: flag.offVariant };
  }
  const bucket = oracleBucket(salt, value);
  let sum = 0;
  for (const w of rollout.weights) {
    sum += w.weight;
    if (bucket < sum) return { ...outcome, bucket, variant: w.variant };
  }
  throw new Error(`${flag.key}: weights do not cover bucket ${bucket}`);
}

// ---------------------------------------------------------------------------------------------
// Operators

function membershipSuites(): Suite[] {
  const s = new Suite('operator in / notIn');
  // a top-level attribute (the evaluator's fast path) and a dot path (its general path)
  const inCountry = s.clause('in-country', { attribute: 'country', op: 'in', values: ['TH', 'SG', 'MY'] });
  inCountry('listed value', { key: 'u1', country: 'TH' }, true, false);
  inCountry('another listed value', { key: 'u1', country: 'MY' }, true, false);
  inCountry('unlisted value', { key: 'u1', country: 'US' }, false, true);
  inCountry('comparison is case-sensitive', { key: 'u1', country: 'th' }, false, true);
  inCountry('missing attribute', { key: 'u1' }, false, false);
  inCountry('null attribute', { key: 'u1', country: null }, false, false);
  inCountry('object attribute is a type mismatch', { key: 'u1', country: { code: 'TH' } }, false, false);
  inCountry('number attribute is a scalar that is not listed', { key: 'u1', country: 66 }, false, true);
  inCountry('array with a listed element', { key: 'u1', country: ['US', 'SG'] }, true, false);
  inCountry('array with no listed element', { key: 'u1', country: ['US', 'FR'] }, false, true);
  inCountry(
    'array skips elements of the wrong type',
    { key: 'u1', country: [null, { code: 'TH' }, ['TH'], 'MY'] },
    true,
    false,
  );
  inCountry(
    'array of only wrong types',
    { key: 'u1', country: [null, { code: 'TH' }, ['TH']] },
    false,
    false,
  );
  inCountry('empty array', { key: 'u1', country: [] }, false, false);

  const inSeats = s.clause('in-seats', { attribute: 'account.seats', op: 'in', values: [5, 10] });
  inSeats('listed number', { key: 'u1', account: { seats: 10 } }, true, false);
  inSeats('unlisted number', { key: 'u1', account: { seats: 7 } }, false, true);
  inSeats('numeric string is not coerced', { key: 'u1', account: { seats: '10' } }, false, true);
  inSeats('boolean is a scalar that is not listed', { key: 'u1', account: { seats: true } }, false, true);
  inSeats('array of numbers with a listed one', { key: 'u1', account: { seats: [1, 5] } }, true, false);
  inSeats('path through a string is missing', { key: 'u1', account: 'enterprise' }, false, false);
  inSeats('path through null is missing', { key: 'u1', account: null }, false, false);

  const inBeta = s.clause('in-beta', { attribute: 'beta', op: 'in', values: [true] });
  inBeta('listed boolean', { key: 'u1', beta: true }, true, false);
  inBeta('other boolean', { key: 'u1', beta: false }, false, true);
  inBeta('string "true" is not coerced', { key: 'u1', beta: 'true' }, false, true);
  inBeta('number 1 is not coerced', { key: 'u1', beta: 1 }, false, true);

  // a long list (an evaluator may switch from scanning to hashing): equality stays strict
  const inMany = s.clause('in-many', {
    attribute: 'region',
    op: 'in',
    values: ['TH', 'SG', 'MY', 'ID', 'VN', 'PH', 'KH', 'LA', 'MM', 'BN', 'TL', 5, '7', true],
  });
  inMany('listed late in a long list', { key: 'u1', region: 'TL' }, true, false);
  inMany('listed number in a long list', { key: 'u1', region: 5 }, true, false);
  inMany('listed boolean in a long list', { key: 'u1', region: true }, true, false);
  inMany('numeric string "5" is not 5', { key: 'u1', region: '5' }, false, true);
  inMany('number 7 is not the string "7"', { key: 'u1', region: 7 }, false, true);
  inMany('string "true" is not true', { key: 'u1', region: 'true' }, false, true);
  inMany('unlisted value', { key: 'u1', region: 'JP' }, false, true);
  inMany('array with a listed element', { key: 'u1', region: ['JP', 'BN'] }, true, false);
  inMany('array of only wrong types', { key: 'u1', region: [{}, null] }, false, false);

  const inCode = s.clause('in-code', { attribute: 'code', op: 'in', values: ['5'] });
  inCode('listed string', { key: 'u1', code: '5' }, true, false);
  inCode('number 5 is not the string "5"', { key: 'u1', code: 5 }, false, true);

  const notIn = s.clause('notin-country', { attribute: 'country', op: 'notIn', values: ['TH', 'SG'] });
  notIn('unlisted value', { key: 'u1', country: 'US' }, true, false);
  notIn('listed value', { key: 'u1', country: 'TH' }, false, true);
  notIn('missing attribute', { key: 'u1' }, false, false);
  notIn('null attribute', { key: 'u1', country: null }, false, false);
  notIn('object attribute is a type mismatch', { key: 'u1', country: { code: 'US' } }, false, false);
  notIn('number is a scalar that is not listed', { key: 'u1', country: 1 }, true, false);
  // notIn is `in` negated, arrays included: it matches when no element is listed
  notIn('array with a listed element does not match', { key: 'u1', country: ['TH', 'US'] }, false, true);
  notIn('array of only listed elements', { key: 'u1', country: ['TH', 'SG'] }, false, true);
  notIn('array of only unlisted elements', { key: 'u1', country: ['US', 'JP'] }, true, false);
  notIn('empty array', { key: 'u1', country: [] }, false, false);

  const notInPath = s.clause('notin-geo', { attribute: 'geo.country', op: 'notIn', values: ['TH'] });
  notInPath('unlisted value at a dot path', { key: 'u1', geo: { country: 'US' } }, true, false);
  notInPath('listed value at a dot path', { key: 'u1', geo: { country: 'TH' } }, false, true);
  notInPath('missing leaf', { key: 'u1', geo: {} }, false, false);
  return [s];
}

function stringSuites(): Suite[] {
  const s = new Suite('operators contains / startsWith / endsWith');
  const contains = s.clause('contains-email', {
    attribute: 'email',
    op: 'contains',
    values: ['@example.com', '+test'],
  });
  contains('contains the first value', { key: 'u1', email: 'ann@example.com' }, true, false);
  contains('contains the second value', { key: 'u1', email: 'ann+test@other.org' }, true, false);
  contains('case-sensitive', { key: 'u1', email: 'ann@EXAMPLE.com' }, false, true);
  contains('contains neither', { key: 'u1', email: 'bob@other.org' }, false, true);
  contains('empty string', { key: 'u1', email: '' }, false, true);
  contains('number is a type mismatch', { key: 'u1', email: 42 }, false, false);
  contains('boolean is a type mismatch', { key: 'u1', email: true }, false, false);
  contains('missing attribute', { key: 'u1' }, false, false);
  contains('null attribute', { key: 'u1', email: null }, false, false);
  contains(
    'array with a matching element',
    { key: 'u1', email: ['x@other.org', 'y@example.com'] },
    true,
    false,
  );
  contains('array with no matching element', { key: 'u1', email: ['x@other.org'] }, false, true);
  contains('array of only numbers', { key: 'u1', email: [1, 2] }, false, false);

  const containsThai = s.clause('contains-name', {
    attribute: 'name',
    op: 'contains',
    values: ['ใช้', '用户'],
  });
  containsThai('Thai substring', { key: 'u1', name: 'ผู้ใช้-๑๒๓' }, true, false);
  containsThai('CJK substring', { key: 'u1', name: '新用户' }, true, false);
  containsThai('neither', { key: 'u1', name: 'ユーザー' }, false, true);

  const starts = s.clause('startswith-path', {
    attribute: 'path',
    op: 'startsWith',
    values: ['/admin', '/internal/'],
  });
  starts('prefix', { key: 'u1', path: '/admin/users' }, true, false);
  starts('whole value equals a prefix', { key: 'u1', path: '/admin' }, true, false);
  starts('case-sensitive', { key: 'u1', path: '/Admin' }, false, true);
  starts('only contains the value', { key: 'u1', path: '/x/admin' }, false, true);
  starts('number is a type mismatch', { key: 'u1', path: 404 }, false, false);
  starts('missing attribute', { key: 'u1' }, false, false);
  starts('array with a matching element', { key: 'u1', path: ['/public', '/internal/metrics'] }, true, false);
  starts('array of only booleans', { key: 'u1', path: [true] }, false, false);

  const ends = s.clause('endswith-email', {
    attribute: 'email',
    op: 'endsWith',
    values: ['.th', '@vigil.dev'],
  });
  ends('suffix', { key: 'u1', email: 'somchai@example.co.th' }, true, false);
  ends('second suffix', { key: 'u1', email: 'ops@vigil.dev' }, true, false);
  ends('case-sensitive', { key: 'u1', email: 'somchai@example.co.TH' }, false, true);
  ends('suffix in the middle only', { key: 'u1', email: 'x@vigil.dev.example.com' }, false, true);
  ends('object is a type mismatch', { key: 'u1', email: { domain: 'vigil.dev' } }, false, false);
  ends('null attribute', { key: 'u1', email: null }, false, false);
  ends('array with a matching element', { key: 'u1', email: ['a@b.com', 'c@d.th'] }, true, false);
  return [s];
}

function matchesSuite(): Suite {
  const s = new Suite('operator matches');
  const matches = s.clause('matches-email', {
    attribute: 'email',
    op: 'matches',
    values: ['^[a-z]+@example\\.com$', 'admin'],
  });
  matches('matches the anchored pattern', { key: 'u1', email: 'ann@example.com' }, true, false);
  matches('no flags: case-sensitive', { key: 'u1', email: 'Ann@example.com' }, false, true);
  matches('unanchored test finds a substring', { key: 'u1', email: 'sysadmin@other.org' }, true, false);
  matches('no flags: ADMIN is not admin', { key: 'u1', email: 'ADMIN@other.org' }, false, true);
  matches('number is a type mismatch', { key: 'u1', email: 42 }, false, false);
  matches('missing attribute', { key: 'u1' }, false, false);
  matches('null attribute', { key: 'u1', email: null }, false, false);
  matches(
    'array with a matching element',
    { key: 'u1', email: ['x@other.org', 'ann@example.com'] },
    true,
    false,
  );
  matches('array with no matching element', { key: 'u1', email: ['x@other.org'] }, false, true);
  matches('array of only booleans', { key: 'u1', email: [false] }, false, false);

  const version = s.clause('matches-build', {
    attribute: 'build',
    op: 'matches',
    values: ['^\\d{4}\\.\\d+$'],
  });
  version('digits and a dot', { key: 'u1', build: '2024.12' }, true, false);
  version('trailing text fails the end anchor', { key: 'u1', build: '2024.12-rc' }, false, true);
  version('a number is not its decimal string', { key: 'u1', build: 2024.12 }, false, false);

  // RE2 semantics, which every evaluator shares: linear time whatever the pattern, code points
  const repeated = s.clause('matches-alternation-under-quantifier', {
    attribute: 's',
    op: 'matches',
    values: ['^(a|aa)+$'],
  });
  repeated('alternation under a quantifier, long input', { key: 'u1', s: 'a'.repeat(200) }, true, false);
  repeated(
    'alternation under a quantifier, long input failing at its end',
    { key: 'u1', s: `${'a'.repeat(200)}b` },
    false,
    true,
  );
  const codePoint = s.clause('matches-code-point', { attribute: 's', op: 'matches', values: ['^.$'] });
  codePoint('. is one code point, even outside the BMP', { key: 'u1', s: '😀' }, true, false);
  codePoint('. is not two code points', { key: 'u1', s: 'ไท' }, false, true);
  return s;
}

function numericSuite(): Suite {
  const s = new Suite('operators lt / lte / gt / gte');
  const lt = s.clause('lt-age', { attribute: 'age', op: 'lt', values: [18] });
  lt('below', { key: 'u1', age: 17 }, true, false);
  lt('fraction below', { key: 'u1', age: 17.5 }, true, false);
  lt('negative', { key: 'u1', age: -1 }, true, false);
  lt('equal', { key: 'u1', age: 18 }, false, true);
  lt('above', { key: 'u1', age: 19 }, false, true);
  lt('numeric string is a type mismatch', { key: 'u1', age: '17' }, false, false);
  lt('boolean is a type mismatch', { key: 'u1', age: true }, false, false);
  lt('missing attribute', { key: 'u1' }, false, false);
  lt('null attribute', { key: 'u1', age: null }, false, false);
  lt('array with a matching element', { key: 'u1', age: [30, 12] }, true, false);
  lt('array with no matching element', { key: 'u1', age: [30, 40] }, false, true);
  lt('array of only numeric strings', { key: 'u1', age: ['12'] }, false, false);

  const lte = s.clause('lte-age', { attribute: 'age', op: 'lte', values: [18] });
  lte('equal', { key: 'u1', age: 18 }, true, false);
  lte('just above', { key: 'u1', age: 18.001 }, false, true);
  lte('string is a type mismatch', { key: 'u1', age: 'young' }, false, false);

  const gt = s.clause('gt-score', { attribute: 'stats.score', op: 'gt', values: [100, 50] });
  gt('above the lower value only', { key: 'u1', stats: { score: 75 } }, true, false);
  gt('above both', { key: 'u1', stats: { score: 101 } }, true, false);
  gt('equal to the lower value', { key: 'u1', stats: { score: 50 } }, false, true);
  gt('numeric string is a type mismatch', { key: 'u1', stats: { score: '75' } }, false, false);
  gt('missing leaf', { key: 'u1', stats: {} }, false, false);

  const gte = s.clause('gte-score', { attribute: 'score', op: 'gte', values: [50] });
  gte('equal', { key: 'u1', score: 50 }, true, false);
  gte('just below', { key: 'u1', score: 49.99 }, false, true);
  gte('very large', { key: 'u1', score: 1e308 }, true, false);
  gte('object is a type mismatch', { key: 'u1', score: { value: 60 } }, false, false);
  gte('array mixing types', { key: 'u1', score: ['60', 60] }, true, false);
  return s;
}

function dateSuite(): Suite {
  const s = new Suite('operators before / after');
  const before = s.clause('before-signup', {
    attribute: 'signupDate',
    op: 'before',
    values: ['2024-01-01T00:00:00Z'],
  });
  before('ISO instant before', { key: 'u1', signupDate: '2023-12-31T23:59:59Z' }, true, false);
  before('the same instant is not before', { key: 'u1', signupDate: '2024-01-01T00:00:00Z' }, false, true);
  before(
    'offset is respected (23:59:59Z)',
    { key: 'u1', signupDate: '2024-01-01T06:59:59+07:00' },
    true,
    false,
  );
  before(
    'offset is respected (00:00:00Z)',
    { key: 'u1', signupDate: '2024-01-01T07:00:00+07:00' },
    false,
    true,
  );
  before('epoch milliseconds before', { key: 'u1', signupDate: 1704067199999 }, true, false);
  before('epoch milliseconds equal', { key: 'u1', signupDate: 1704067200000 }, false, true);
  before('unparseable string is a type mismatch', { key: 'u1', signupDate: 'not a date' }, false, false);
  before('numeric string is not a date', { key: 'u1', signupDate: '1704067199999' }, false, false);
  before(
    'a date-time without a zone is a type mismatch',
    { key: 'u1', signupDate: '2023-06-01T00:00:00' },
    false,
    false,
  );
  before('an impossible day is a type mismatch', { key: 'u1', signupDate: '2023-02-30' }, false, false);
  before('non-ISO date text is a type mismatch', { key: 'u1', signupDate: 'March 7, 2023' }, false, false);
  before('a date alone is UTC midnight', { key: 'u1', signupDate: '2023-12-31' }, true, false);
  before('boolean is a type mismatch', { key: 'u1', signupDate: true }, false, false);
  before('missing attribute', { key: 'u1' }, false, false);
  before(
    'array with a matching element',
    { key: 'u1', signupDate: ['2025-06-01T00:00:00Z', '2020-01-01T00:00:00Z'] },
    true,
    false,
  );
  before('array with no matching element', { key: 'u1', signupDate: ['2025-06-01T00:00:00Z'] }, false, true);

  const after = s.clause('after-seen', { attribute: 'lastSeen', op: 'after', values: [1704067200000] });
  after(
    'ISO instant one millisecond after an epoch value',
    { key: 'u1', lastSeen: '2024-01-01T00:00:00.001Z' },
    true,
    false,
  );
  after('epoch milliseconds after', { key: 'u1', lastSeen: 1704067200001 }, true, false);
  after('equal', { key: 'u1', lastSeen: 1704067200000 }, false, true);
  after('earlier', { key: 'u1', lastSeen: '2023-06-01T00:00:00Z' }, false, true);
  after('unparseable string', { key: 'u1', lastSeen: 'soon' }, false, false);
  after('null attribute', { key: 'u1', lastSeen: null }, false, false);
  after('empty array', { key: 'u1', lastSeen: [] }, false, false);
  return s;
}

function semverSuite(): Suite {
  const s = new Suite('operators semverEq / semverLt / semverGt');
  const eq = s.clause('semvereq-app', {
    attribute: 'appVersion',
    op: 'semverEq',
    values: ['2.0.0', 'v3.1.0'],
  });
  eq('equal', { key: 'u1', appVersion: '2.0.0' }, true, false);
  eq('leading v on the attribute', { key: 'u1', appVersion: 'v2.0.0' }, true, false);
  eq('leading v on the value', { key: 'u1', appVersion: '3.1.0' }, true, false);
  eq('build metadata is ignored', { key: 'u1', appVersion: '2.0.0+build.7' }, true, false);
  eq('a prerelease is not the release', { key: 'u1', appVersion: '2.0.0-rc.1' }, false, true);
  eq('different version', { key: 'u1', appVersion: '2.0.1' }, false, true);
  eq('two parts is not a version', { key: 'u1', appVersion: '2.0' }, false, false);
  eq('leading zero is not a version', { key: 'u1', appVersion: '02.0.0' }, false, false);
  eq('capital V is not a version', { key: 'u1', appVersion: 'V2.0.0' }, false, false);
  eq('number is a type mismatch', { key: 'u1', appVersion: 2 }, false, false);
  eq('missing attribute', { key: 'u1' }, false, false);
  eq('array with an equal element', { key: 'u1', appVersion: ['1.0.0', '2.0.0'] }, true, false);
  eq('array of only invalid versions', { key: 'u1', appVersion: ['x', '1.0'] }, false, false);

  const lt = s.clause('semverlt-app', { attribute: 'app.version', op: 'semverLt', values: ['2.0.0'] });
  lt('lower patch', { key: 'u1', app: { version: '1.9.9' } }, true, false);
  lt('prerelease of the same version is lower', { key: 'u1', app: { version: '2.0.0-rc.1' } }, true, false);
  lt('equal', { key: 'u1', app: { version: '2.0.0' } }, false, true);
  lt('higher patch', { key: 'u1', app: { version: '2.0.1' } }, false, true);
  lt('numeric, not lexical: 10.0.0', { key: 'u1', app: { version: '10.0.0' } }, false, true);
  lt('word is not a version', { key: 'u1', app: { version: 'latest' } }, false, false);

  // SemVer 2.0.0 §11: alpha < alpha.1 < alpha.beta < beta < beta.2 < beta.11 < rc.1 < release
  const pre = s.clause('semverlt-pre', { attribute: 'v', op: 'semverLt', values: ['1.0.0-beta.11'] });
  pre('beta.2 < beta.11 (numeric identifiers)', { key: 'u1', v: '1.0.0-beta.2' }, true, false);
  pre('beta < beta.11 (fewer identifiers)', { key: 'u1', v: '1.0.0-beta' }, true, false);
  pre('alpha.beta < beta.11', { key: 'u1', v: '1.0.0-alpha.beta' }, true, false);
  pre('equal prerelease', { key: 'u1', v: '1.0.0-beta.11' }, false, true);
  pre('rc.1 > beta.11', { key: 'u1', v: '1.0.0-rc.1' }, false, true);
  pre('beta.a > beta.11 (alphanumeric after numeric)', { key: 'u1', v: '1.0.0-beta.a' }, false, true);
  pre('release > its prereleases', { key: 'u1', v: '1.0.0' }, false, true);

  const gtPre = s.clause('semvergt-pre', { attribute: 'v', op: 'semverGt', values: ['1.0.0-alpha.beta'] });
  gtPre('numeric identifier is lower than alphanumeric', { key: 'u1', v: '1.0.0-alpha.1' }, false, true);
  gtPre(
    'more identifiers after an equal prefix is higher',
    { key: 'u1', v: '1.0.0-alpha.beta.1' },
    true,
    false,
  );
  gtPre('beta > alpha.beta', { key: 'u1', v: '1.0.0-beta' }, true, false);
  gtPre('alpha < alpha.beta', { key: 'u1', v: '1.0.0-alpha' }, false, true);

  const gt = s.clause('semvergt-app', { attribute: 'appVersion', op: 'semverGt', values: ['1.2.3'] });
  gt('higher patch', { key: 'u1', appVersion: '1.2.4' }, true, false);
  gt('numeric minor 10 > 2', { key: 'u1', appVersion: '1.10.0' }, true, false);
  gt('equal', { key: 'u1', appVersion: '1.2.3' }, false, true);
  gt('build metadata does not raise precedence', { key: 'u1', appVersion: '1.2.3+build.9' }, false, true);
  gt('prerelease is lower', { key: 'u1', appVersion: '1.2.3-alpha' }, false, true);
  gt('invalid version', { key: 'u1', appVersion: '1.2' }, false, false);
  gt('null attribute', { key: 'u1', appVersion: null }, false, false);
  gt('array with a higher element', { key: 'u1', appVersion: ['1.0.0', '1.3.0'] }, true, false);
  return s;
}

function existsSuite(): Suite {
  const s = new Suite('operator exists and dot paths');
  // exists is the one operator where a missing or null attribute is an answer, so negate flips it
  const exists = s.clause('exists-email', { attribute: 'email', op: 'exists', values: [] });
  exists('string', { key: 'u1', email: 'ann@example.com' }, true, false);
  exists('empty string is present', { key: 'u1', email: '' }, true, false);
  exists('false is present', { key: 'u1', email: false }, true, false);
  exists('zero is present', { key: 'u1', email: 0 }, true, false);
  exists('empty array is present', { key: 'u1', email: [] }, true, false);
  exists('empty object is present', { key: 'u1', email: {} }, true, false);
  exists('null is absent', { key: 'u1', email: null }, false, true);
  exists('missing is absent', { key: 'u1' }, false, true);

  const nested = s.clause('exists-profile-email', { attribute: 'profile.email', op: 'exists', values: [] });
  nested('nested value', { key: 'u1', profile: { email: 'x@y.z' } }, true, false);
  nested('parent is a string', { key: 'u1', profile: 'x@y.z' }, false, true);
  nested('parent is null', { key: 'u1', profile: null }, false, true);
  nested('a literal dotted name is not a path', { key: 'u1', 'profile.email': 'x@y.z' }, false, true);

  const inherited = s.clause('exists-tostring', { attribute: 'toString', op: 'exists', values: [] });
  inherited('inherited properties are not attributes', { key: 'u1' }, false, true);

  const deep = s.clause('in-device-os', { attribute: 'device.os.name', op: 'in', values: ['ios'] });
  deep('three levels deep', { key: 'u1', device: { os: { name: 'ios', version: '17.4' } } }, true, false);
  deep('other value three levels deep', { key: 'u1', device: { os: { name: 'android' } } }, false, true);
  deep('a literal dotted name is not looked up', { key: 'u1', 'device.os.name': 'ios' }, false, false);
  deep('path through a string', { key: 'u1', device: { os: 'ios' } }, false, false);
  deep('path through null', { key: 'u1', device: null }, false, false);
  deep('array at the leaf', { key: 'u1', device: { os: { name: ['android', 'ios'] } } }, true, false);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Rules, switches, segments, prerequisites

function rulesSuite(): Suite {
  const s = new Suite('rules, fallthrough and switches');
  const tier = s.flag({
    key: 'tier',
    variants: [
      { key: 'basic', value: 'basic' },
      { key: 'gold', value: 'gold' },
      { key: 'platinum', value: 'platinum' },
    ],
    offVariant: 'basic',
    enabled: true,
    rules: [
      {
        id: 'staff-in-thailand',
        clauses: [
          { attribute: 'email', op: 'endsWith', values: ['@vigil.dev'] },
          { attribute: 'country', op: 'in', values: ['TH'] },
        ],
        serve: { variant: 'platinum' },
      },
      {
        id: 'pro-plan',
        clauses: [{ attribute: 'plan', op: 'in', values: ['pro'] }],
        serve: { variant: 'gold' },
      },
    ],
    fallthrough: { variant: 'basic' },
  }).key;
  const basic = (reason: Reason): Expectation => ({ value: 'basic', variant: 'basic', reason });
  s.add(
    'all clauses of the first rule match',
    tier,
    { key: 'u1', email: 'a@vigil.dev', country: 'TH' },
    {
      value: 'platinum',
      variant: 'platinum',
      reason: 'TARGETING_MATCH',
      ruleId: 'staff-in-thailand',
    },
  );
  s.add(
    'one clause of a rule failing fails the rule',
    tier,
    { key: 'u1', email: 'a@vigil.dev', country: 'US' },
    basic('DEFAULT'),
  );
  s.add(
    'second rule',
    tier,
    { key: 'u1', plan: 'pro' },
    {
      value: 'gold',
      variant: 'gold',
      reason: 'TARGETING_MATCH',
      ruleId: 'pro-plan',
    },
  );
  s.add(
    'first matching rule wins',
    tier,
    { key: 'u1', plan: 'pro', email: 'a@vigil.dev', country: 'TH' },
    {
      value: 'platinum',
      variant: 'platinum',
      reason: 'TARGETING_MATCH',
      ruleId: 'staff-in-thailand',
    },
  );
  s.add('no rule matches: DEFAULT', tier, { key: 'u1', plan: 'free' }, basic('DEFAULT'));
  s.add('empty context: DEFAULT', tier, {}, basic('DEFAULT'));

  const everyone = s.flag(
    boolFlag('empty-rule', { rules: [{ id: 'everyone', clauses: [], serve: { variant: 'on' } }] }),
  );
  s.add('a rule with no clauses matches any context', everyone.key, {}, matched('everyone'));
  s.add('a rule with no clauses matches a keyed context', everyone.key, { key: 'u1' }, matched('everyone'));

  const offByRule = s.flag(
    boolFlag('rule-serves-off', {
      rules: [
        {
          id: 'blocked',
          clauses: [{ attribute: 'blocked', op: 'in', values: [true] }],
          serve: { variant: 'off' },
        },
      ],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add(
    'a rule serving the off variant is still a match',
    offByRule.key,
    { key: 'u1', blocked: true },
    {
      ...OFF,
      reason: 'TARGETING_MATCH',
      ruleId: 'blocked',
    },
  );
  s.add('fallthrough after rules: DEFAULT', offByRule.key, { key: 'u1' }, { ...ON, reason: 'DEFAULT' });

  s.flag(boolFlag('static-on', { fallthrough: { variant: 'on' } }));
  s.add('no rules and a fixed fallthrough: STATIC', 'static-on', { key: 'u1' }, { ...ON, reason: 'STATIC' });
  s.add('STATIC needs no key', 'static-on', {}, { ...ON, reason: 'STATIC' });
  s.flag(boolFlag('static-off'));
  s.add('STATIC serving the off variant', 'static-off', { key: 'u1' }, { ...OFF, reason: 'STATIC' });

  const disabled = (extra: Partial<Expectation> = {}): Expectation => ({
    ...OFF,
    reason: 'DISABLED',
    ...extra,
  });
  const killed = (): Expectation => disabled({ detail: 'KILLED' });
  s.flag(
    ruleFlag('killed', [], {
      killed: true,
      killedAt: '2025-03-01T10:00:00Z',
      killedBy: 'guardian',
      killReason: 'error rate 4.2%',
    }),
  );
  s.add('killed: off variant, DISABLED, detail KILLED', 'killed', { key: 'u1' }, killed());
  s.add('killed wins over a matching rule with no key', 'killed', {}, killed());
  s.flag(ruleFlag('killed-and-disabled', [], { killed: true, enabled: false }));
  s.add('killed and disabled: KILLED', 'killed-and-disabled', { key: 'u1' }, killed());
  s.flag(ruleFlag('disabled', [], { enabled: false, fallthrough: { variant: 'on' } }));
  s.add('disabled: off variant, DISABLED, no detail', 'disabled', { key: 'u1' }, disabled());
  s.flag(
    boolFlag('disabled-rollout', {
      enabled: false,
      fallthrough: { rollout: { weights: [{ variant: 'on', weight: 100_000 }] } },
    }),
  );
  s.add('disabled beats a missing bucketing key', 'disabled-rollout', {}, disabled());
  s.flag(
    boolFlag('killed-rollout', {
      killed: true,
      fallthrough: { rollout: { weights: [{ variant: 'on', weight: 100_000 }] } },
    }),
  );
  s.add('killed beats a missing bucketing key', 'killed-rollout', {}, killed());

  s.flag({
    key: 'killed-string',
    variants: [
      { key: 'new', value: 'new-checkout' },
      { key: 'old', value: 'old-checkout' },
    ],
    offVariant: 'old',
    enabled: true,
    killed: true,
    fallthrough: { variant: 'new' },
  });
  s.add(
    'killed string flag serves its off variant',
    'killed-string',
    { key: 'u1' },
    {
      value: 'old-checkout',
      variant: 'old',
      reason: 'DISABLED',
      detail: 'KILLED',
    },
  );
  return s;
}

function segmentSuite(): Suite {
  const s = new Suite('segments');
  s.segment({
    key: 'beta',
    included: ['alice', 'ผู้ใช้-๑๒๓', 'grace'],
    excluded: ['bob', 'grace'],
    rules: [
      [{ attribute: 'country', op: 'in', values: ['TH'] }],
      [
        { attribute: 'plan', op: 'in', values: ['pro'] },
        { attribute: 'seats', op: 'gte', values: [10] },
      ],
    ],
  });
  s.segment({ key: 'staff', rules: [[{ attribute: 'email', op: 'endsWith', values: ['@vigil.dev'] }]] });
  s.segment({ key: 'everyone-but-mallory', excluded: ['mallory'], rules: [[]] });
  s.segment({ key: 'accounts', included: ['acct-1'] });
  s.segment({ key: 'nobody' });

  const beta = s.clause('in-beta', { attribute: 'key', op: 'inSegment', values: ['beta'] });
  beta('included key', { key: 'alice', country: 'US' }, true, false);
  beta('included Thai key', { key: 'ผู้ใช้-๑๒๓' }, true, false);
  beta('a key both included and excluded is included', { key: 'grace' }, true, false);
  beta('excluded key beats a matching rule', { key: 'bob', country: 'TH' }, false, true);
  beta('first segment rule', { key: 'carol', country: 'TH' }, true, false);
  beta('second segment rule, all clauses', { key: 'dave', plan: 'pro', seats: 12 }, true, false);
  beta('second segment rule, one clause fails', { key: 'dave', plan: 'pro', seats: 5 }, false, true);
  beta('segment rule with an array attribute', { key: 'erin', country: ['US', 'TH'] }, true, false);
  beta('neither listed nor matching', { key: 'eve', country: 'US' }, false, true);
  beta('missing key: false even when a segment rule would match', { country: 'TH' }, false, false);
  beta('null key: false even when a segment rule would match', { key: null, country: 'TH' }, false, false);

  const either = s.clause('in-beta-or-staff', {
    attribute: 'key',
    op: 'inSegment',
    values: ['beta', 'staff'],
  });
  either('in the second segment', { key: 'frank', email: 'frank@vigil.dev' }, true, false);
  either('in the first segment', { key: 'alice' }, true, false);
  either('in neither', { key: 'frank', email: 'frank@example.com' }, false, true);

  const ghost = s.clause('in-ghost', { attribute: 'key', op: 'inSegment', values: ['ghost'] });
  ghost('unknown segment: not in', { key: 'alice' }, false, true);

  const account = s.clause('in-accounts', { attribute: 'account.id', op: 'inSegment', values: ['accounts'] });
  account('the clause attribute is the key looked up', { key: 'u1', account: { id: 'acct-1' } }, true, false);
  account('the context key is not used', { key: 'acct-1' }, false, false);
  account('other account', { key: 'u1', account: { id: 'acct-2' } }, false, true);

  const all = s.clause('in-everyone', {
    attribute: 'key',
    op: 'inSegment',
    values: ['everyone-but-mallory'],
  });
  all('a rule with no clauses matches every keyed context', { key: 'zed' }, true, false);
  all('exclusion still applies', { key: 'mallory' }, false, true);

  const nobody = s.clause('in-nobody', { attribute: 'key', op: 'inSegment', values: ['nobody'] });
  nobody('an empty segment holds no one', { key: 'alice' }, false, true);
  return s;
}

function prerequisiteSuite(): Suite {
  const s = new Suite('prerequisites');
  const failed = (): Expectation => ({ ...OFF, reason: 'PREREQUISITE_FAILED' });
  const passed = (): Expectation => ({ ...ON, reason: 'STATIC' });

  s.flag(ruleFlag('gate', [{ attribute: 'country', op: 'in', values: ['TH'] }]));
  s.flag(
    boolFlag('needs-gate', {
      prerequisites: [{ flag: 'gate', variant: 'on' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add('required flag serves the required variant', 'needs-gate', { key: 'u1', country: 'TH' }, passed());
  s.add('required flag serves another variant', 'needs-gate', { key: 'u1', country: 'US' }, failed());
  s.add('required flag evaluated for the same (empty) context', 'needs-gate', {}, failed());
  s.flag(
    boolFlag('needs-gate-off', {
      prerequisites: [{ flag: 'gate', variant: 'off' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add(
    'requiring the off variant passes when it is served',
    'needs-gate-off',
    { key: 'u1', country: 'US' },
    passed(),
  );
  s.add(
    'requiring the off variant fails when on is served',
    'needs-gate-off',
    { key: 'u1', country: 'TH' },
    failed(),
  );

  s.flag(ruleFlag('gate-killed', [], { killed: true }));
  s.flag(
    boolFlag('needs-killed-off', {
      prerequisites: [{ flag: 'gate-killed', variant: 'off' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add(
    'a killed required flag fails even when its off variant is required',
    'needs-killed-off',
    { key: 'u1' },
    failed(),
  );
  s.flag(ruleFlag('gate-disabled', [], { enabled: false }));
  s.flag(
    boolFlag('needs-disabled-off', {
      prerequisites: [{ flag: 'gate-disabled', variant: 'off' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add(
    'a disabled required flag fails even when its off variant is required',
    'needs-disabled-off',
    { key: 'u1' },
    failed(),
  );
  s.flag(
    boolFlag('needs-ghost', {
      prerequisites: [{ flag: 'ghost', variant: 'on' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add('a missing required flag fails', 'needs-ghost', { key: 'u1' }, failed());

  // chain-a needs chain-b needs chain-c
  s.flag(
    boolFlag('chain-c', {
      rules: [
        { id: 'pro', clauses: [{ attribute: 'plan', op: 'in', values: ['pro'] }], serve: { variant: 'on' } },
      ],
    }),
  );
  s.flag(
    boolFlag('chain-b', {
      prerequisites: [{ flag: 'chain-c', variant: 'on' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.flag(
    ruleFlag('chain-a', [{ attribute: 'country', op: 'in', values: ['TH'] }], {
      prerequisites: [{ flag: 'chain-b', variant: 'on' }],
    }),
  );
  s.add(
    'chain passes, then the flag’s own rule matches',
    'chain-a',
    { key: 'u1', plan: 'pro', country: 'TH' },
    matched(),
  );
  s.add(
    'chain passes, no rule matches: no ruleId from the chain',
    'chain-a',
    { key: 'u1', plan: 'pro', country: 'US' },
    unmatched(),
  );
  s.add('end of the chain fails', 'chain-a', { key: 'u1', plan: 'free', country: 'TH' }, failed());
  s.add(
    'middle of the chain fails on its own prerequisite',
    'chain-b',
    { key: 'u1', plan: 'free' },
    failed(),
  );
  s.flag(
    boolFlag('needs-chain-b-off', {
      prerequisites: [{ flag: 'chain-b', variant: 'off' }],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add(
    'a required flag that failed its own prerequisite serves off, which is what is required',
    'needs-chain-b-off',
    { key: 'u1', plan: 'free' },
    passed(),
  );

  s.flag(
    boolFlag('needs-both', {
      prerequisites: [
        { flag: 'gate', variant: 'on' },
        { flag: 'chain-c', variant: 'on' },
      ],
      fallthrough: { variant: 'on' },
    }),
  );
  s.add('every prerequisite passes', 'needs-both', { key: 'u1', country: 'TH', plan: 'pro' }, passed());
  s.add(
    'first of two prerequisites fails',
    'needs-both',
    { key: 'u1', country: 'US', plan: 'pro' },
    failed(),
  );
  s.add(
    'second of two prerequisites fails',
    'needs-both',
    { key: 'u1', country: 'TH', plan: 'free' },
    failed(),
  );

  s.flag({
    key: 'theme',
    variants: [
      { key: 'light', value: 'light' },
      { key: 'dark', value: 'dark' },
    ],
    offVariant: 'light',
    enabled: true,
    rules: [
      {
        id: 'night-owls',
        clauses: [{ attribute: 'nightOwl', op: 'in', values: [true] }],
        serve: { variant: 'dark' },
      },
    ],
    fallthrough: { variant: 'light' },
  });
  s.flag({
    key: 'dark-banner',
    variants: [
      { key: 'shown', value: 'banner-dark' },
      { key: 'hidden', value: '' },
    ],
    offVariant: 'hidden',
    enabled: true,
    prerequisites: [{ flag: 'theme', variant: 'dark' }],
    fallthrough: { variant: 'shown' },
  });
  s.add(
    'string prerequisite passes',
    'dark-banner',
    { key: 'u1', nightOwl: true },
    {
      value: 'banner-dark',
      variant: 'shown',
      reason: 'STATIC',
    },
  );
  s.add(
    'string prerequisite fails',
    'dark-banner',
    { key: 'u1' },
    {
      value: '',
      variant: 'hidden',
      reason: 'PREREQUISITE_FAILED',
    },
  );

  const coin = s.flag(
    boolFlag('coin', {
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', weight: 50_000 },
            { variant: 'off', weight: 50_000 },
          ],
        },
      },
    }),
  );
  s.flag(
    boolFlag('needs-coin', {
      prerequisites: [{ flag: 'coin', variant: 'on' }],
      fallthrough: { variant: 'on' },
    }),
  );
  for (const key of ['user-1', 'user-2', 'user-3', 'user-4', 'user-5', 'user-6']) {
    const outcome = splitOutcome(coin, (coin.fallthrough as { rollout: Rollout }).rollout, key);
    s.add(
      `rollout prerequisite for ${key} [coin bucket ${outcome.bucket} → ${outcome.variant}]`,
      'needs-coin',
      { key },
      outcome.variant === 'on' ? passed() : failed(),
    );
  }
  s.add(
    'required rollout missing its key serves off: PREREQUISITE_FAILED, not ERROR',
    'needs-coin',
    {},
    failed(),
  );

  s.flag(boolFlag('killed-dependent', { killed: true, prerequisites: [{ flag: 'gate', variant: 'on' }] }));
  s.add(
    'killed comes before prerequisites',
    'killed-dependent',
    { key: 'u1', country: 'TH' },
    {
      ...OFF,
      reason: 'DISABLED',
      detail: 'KILLED',
    },
  );
  s.flag(
    boolFlag('disabled-dependent', { enabled: false, prerequisites: [{ flag: 'ghost', variant: 'on' }] }),
  );
  s.add(
    'disabled comes before prerequisites',
    'disabled-dependent',
    { key: 'u1' },
    { ...OFF, reason: 'DISABLED' },
  );
  return s;
}

// ---------------------------------------------------------------------------------------------
// Rollouts

const THREE_WAY = {
  rollout: {
    weights: [
      { variant: 'control', weight: 33_334 },
      { variant: 'a', weight: 33_333 },
      { variant: 'b', weight: 33_333 },
    ],
  },
};

function abFlag(key: string, fields: Partial<FlagInput> = {}): FlagInput {
  return {
    key,
    variants: [
      { key: 'control', value: 'control' },
      { key: 'a', value: 'layout-a' },
      { key: 'b', value: 'layout-b' },
    ],
    offVariant: 'control',
    enabled: true,
    fallthrough: THREE_WAY,
    ...fields,
  };
}

function rolloutSuite(): Suite {
  const s = new Suite('rollouts');
  s.flag(abFlag('three-way'));
  for (let i = 1; i <= 10; i++)
    s.split(`three-way split, no rules`, 'three-way', { key: `user-${i}` }, `user-${i}`);
  s.split('three-way split, key "42"', 'three-way', { key: '42' }, '42');
  s.split('three-way split, number key 42 hashes as "42"', 'three-way', { key: 42 }, '42');
  s.split('empty string key is a key', 'three-way', { key: '' }, '');

  s.flag(abFlag('three-way-salted', { salt: 'shared-salt' }));
  s.flag(abFlag('three-way-same-salt', { salt: 'shared-salt' }));
  for (const key of ['user-1', 'user-2', 'user-3', 'user-4']) {
    const a = s.split('salt replaces the key', 'three-way-salted', { key }, key);
    const b = s.split('flags sharing a salt split alike', 'three-way-same-salt', { key }, key);
    if (a.variant !== b.variant) throw new Error('shared salt');
  }

  s.flag(
    abFlag('targeted-split', {
      rules: [
        {
          id: 'thailand',
          clauses: [{ attribute: 'country', op: 'in', values: ['TH'] }],
          serve: {
            rollout: {
              weights: [
                { variant: 'a', weight: 50_000 },
                { variant: 'b', weight: 50_000 },
              ],
            },
          },
        },
      ],
      fallthrough: { variant: 'control' },
    }),
  );
  for (const key of ['user-1', 'user-2', 'user-3', 'user-4', 'user-5', 'user-6']) {
    s.split(
      `rule rollout: SPLIT with the rule id`,
      'targeted-split',
      { key, country: 'TH' },
      key,
      'thailand',
    );
  }
  s.add(
    'rule rollout not matched: fixed fallthrough, DEFAULT',
    'targeted-split',
    { key: 'user-1', country: 'US' },
    {
      value: 'control',
      variant: 'control',
      reason: 'DEFAULT',
    },
  );
  s.flag(
    abFlag('rules-then-split', {
      rules: [
        { id: 'staff', clauses: [{ attribute: 'staff', op: 'in', values: [true] }], serve: { variant: 'b' } },
      ],
    }),
  );
  s.split(
    'fallthrough rollout after unmatched rules: SPLIT, no rule id',
    'rules-then-split',
    { key: 'user-7' },
    'user-7',
  );
  s.add(
    'rule before the fallthrough rollout',
    'rules-then-split',
    { key: 'user-7', staff: true },
    {
      value: 'layout-b',
      variant: 'b',
      reason: 'TARGETING_MATCH',
      ruleId: 'staff',
    },
  );

  s.flag({
    key: 'price',
    variants: [
      { key: 'low', value: 9.99 },
      { key: 'mid', value: 14.5 },
      { key: 'high', value: 20 },
    ],
    offVariant: 'mid',
    enabled: true,
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'low', weight: 10_000 },
          { variant: 'mid', weight: 80_000 },
          { variant: 'high', weight: 10_000 },
        ],
      },
    },
  });
  for (let i = 1; i <= 12; i++) s.split('number flag rollout', 'price', { key: `user-${i}` }, `user-${i}`);

  s.flag({
    key: 'layout-config',
    variants: [
      { key: 'compact', value: { columns: 3, dense: true, labels: ['a', 'b'] } },
      { key: 'roomy', value: { columns: 2, dense: false, labels: [] } },
    ],
    offVariant: 'roomy',
    enabled: true,
    fallthrough: {
      rollout: {
        weights: [
          { variant: 'compact', weight: 50_000 },
          { variant: 'roomy', weight: 50_000 },
        ],
      },
    },
  });
  for (const key of ['user-1', 'user-2', 'user-3', 'user-4'])
    s.split('object flag rollout', 'layout-config', { key }, key);

  // bucketing attributes
  s.flag(abFlag('by-org', { fallthrough: { rollout: { ...THREE_WAY.rollout, bucketBy: 'org.id' } } }));
  const org = s.split('bucketBy a dot path', 'by-org', { key: 'u1', org: { id: 'org-17' } }, 'org-17');
  const sameOrg = s.split('same org, another user', 'by-org', { key: 'u2', org: { id: 'org-17' } }, 'org-17');
  if (org.variant !== sameOrg.variant) throw new Error('bucketBy');
  s.split('bucketBy a dot path, another org', 'by-org', { key: 'u1', org: { id: 'org-18' } }, 'org-18');
  s.flag(
    abFlag('by-account-number', {
      fallthrough: { rollout: { ...THREE_WAY.rollout, bucketBy: 'accountNumber' } },
    }),
  );
  s.split('bucketBy a number', 'by-account-number', { key: 'u1', accountNumber: 42 }, '42');
  s.split(
    'bucketBy the same number as a string',
    'by-account-number',
    { key: 'u2', accountNumber: '42' },
    '42',
  );
  s.split('bucketBy a negative number', 'by-account-number', { key: 'u1', accountNumber: -7 }, '-7');
  s.split('bucketBy a fraction', 'by-account-number', { key: 'u1', accountNumber: 4.5 }, '4.5');

  // zero weights are never served
  s.flag(
    abFlag('zero-weight', {
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'a', weight: 0 },
            { variant: 'b', weight: 100_000 },
            { variant: 'control', weight: 0 },
          ],
        },
      },
    }),
  );
  for (const key of ['user-1', 'user-2', 'user-3', 'user-4', 'user-5']) {
    const e = s.split('zero weights are never served', 'zero-weight', { key }, key);
    if (e.variant !== 'b') throw new Error('zero weight');
  }
  return s;
}

/** Rollouts at hand-picked buckets (found once by search): the edges of each weight range. */
function boundarySuite(): Suite {
  const s = new Suite('rollout bucket boundaries');
  const salt = 'checkout-redesign';
  s.flag(
    boolFlag('boundary-20', {
      salt,
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'on', weight: 20_000 },
            { variant: 'off', weight: 80_000 },
          ],
        },
      },
    }),
  );
  s.atBucket('boundary-20', 'user-41040', 0, 'on');
  s.atBucket('boundary-20', 'user-214460', 19_999, 'on');
  s.atBucket('boundary-20', 'user-25594', 20_000, 'off');
  s.atBucket('boundary-20', 'user-69998', 99_999, 'off');

  s.flag(
    abFlag('boundary-zero-weights', {
      salt,
      variants: [
        { key: 'control', value: 'control' },
        { key: 'a', value: 'layout-a' },
        { key: 'b', value: 'layout-b' },
        { key: 'c', value: 'layout-c' },
        { key: 'd', value: 'layout-d' },
      ],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'a', weight: 0 },
            { variant: 'b', weight: 20_000 },
            { variant: 'c', weight: 0 },
            { variant: 'd', weight: 30_000 },
            { variant: 'control', weight: 50_000 },
          ],
        },
      },
    }),
  );
  s.atBucket('boundary-zero-weights', 'user-41040', 0, 'b');
  s.atBucket('boundary-zero-weights', 'user-214460', 19_999, 'b');
  s.atBucket('boundary-zero-weights', 'user-25594', 20_000, 'd');
  s.atBucket('boundary-zero-weights', 'user-65031', 49_999, 'd');
  s.atBucket('boundary-zero-weights', 'user-82378', 50_000, 'control');
  s.atBucket('boundary-zero-weights', 'user-69998', 99_999, 'control');

  // exposure 20%: the exposure hash (salt "checkout-redesign:exposure") decides who takes part
  s.flag(
    abFlag('boundary-exposure', {
      salt,
      fallthrough: {
        rollout: {
          exposure: 20_000,
          weights: [
            { variant: 'a', weight: 50_000 },
            { variant: 'b', weight: 50_000 },
          ],
        },
      },
    }),
  );
  s.atBucket('boundary-exposure', 'user-57176', 14_673, 'a', 0);
  s.atBucket('boundary-exposure', 'user-42766', 38_309, 'a', 19_999);
  s.atBucket('boundary-exposure', 'user-204867', 51_677, 'b', 19_999);
  s.atBucket('boundary-exposure', 'user-54109', 75_380, 'control', 20_000);
  s.atBucket('boundary-exposure', 'user-119092', 71_845, 'control', 99_999);
  return s;
}

function exposureSuite(): Suite {
  const s = new Suite('exposure');
  const keys = Array.from({ length: 20 }, (_, i) => `user-${i + 1}`);
  s.flag(
    boolFlag('half-exposed', {
      fallthrough: { rollout: { exposure: 50_000, weights: [{ variant: 'on', weight: 100_000 }] } },
    }),
  );
  const seen = new Set<unknown>();
  for (const key of keys)
    seen.add(s.split('50% exposure, everyone exposed is on', 'half-exposed', { key }, key).value);
  if (seen.size !== 2) throw new Error('exposure cases should land both in and out');

  s.flag(
    abFlag('exposed-split', {
      rules: [
        {
          id: 'beta-testers',
          clauses: [{ attribute: 'beta', op: 'in', values: [true] }],
          serve: {
            rollout: {
              exposure: 30_000,
              weights: [
                { variant: 'a', weight: 50_000 },
                { variant: 'b', weight: 50_000 },
              ],
            },
          },
        },
      ],
      fallthrough: { variant: 'control' },
    }),
  );
  for (const key of keys)
    s.split('rule rollout with 30% exposure', 'exposed-split', { key, beta: true }, key, 'beta-testers');

  s.flag(abFlag('no-exposure', { fallthrough: { rollout: { ...THREE_WAY.rollout, exposure: 0 } } }));
  for (const key of ['user-1', 'user-2', 'user-3']) {
    s.add(
      `exposure 0 serves the off variant to ${key}, still SPLIT`,
      'no-exposure',
      { key },
      {
        value: 'control',
        variant: 'control',
        reason: 'SPLIT',
      },
    );
  }
  s.flag(abFlag('full-exposure', { fallthrough: { rollout: { ...THREE_WAY.rollout, exposure: 100_000 } } }));
  for (const key of ['user-1', 'user-2', 'user-3']) {
    const full = s.split('exposure 100000 is the same as none', 'full-exposure', { key }, key);
    const none = splitOutcome(
      s.flags.find((f) => f.key === 'full-exposure')!,
      { weights: THREE_WAY.rollout.weights },
      key,
    );
    if (full.variant !== none.variant) throw new Error('full exposure');
  }
  return s;
}

function missingKeySuite(): Suite {
  const s = new Suite('missing bucketing attribute');
  const missing = (ruleId?: string): Expectation => ({
    value: 'control',
    variant: 'control',
    reason: 'ERROR',
    errorCode: 'TARGETING_KEY_MISSING',
    ...(ruleId ? { ruleId } : {}),
  });
  s.flag(abFlag('split'));
  s.add('no key', 'split', {}, missing());
  s.add('null key', 'split', { key: null }, missing());
  s.add('object key', 'split', { key: { id: 'u1' } }, missing());
  s.add('array key', 'split', { key: ['u1'] }, missing());
  s.add('boolean key', 'split', { key: true }, missing());
  s.add('other attributes do not stand in for the key', 'split', { userId: 'u1', email: 'a@b.c' }, missing());
  s.split('number key is a key', 'split', { key: 7 }, '7');

  s.flag(abFlag('split-by-org', { fallthrough: { rollout: { ...THREE_WAY.rollout, bucketBy: 'org.id' } } }));
  s.add('bucketBy attribute missing although the key is present', 'split-by-org', { key: 'u1' }, missing());
  s.add('bucketBy path through a string', 'split-by-org', { key: 'u1', org: 'acme' }, missing());
  s.add('bucketBy boolean', 'split-by-org', { key: 'u1', org: { id: false } }, missing());

  s.flag(
    abFlag('rule-split', {
      rules: [{ id: 'everyone', clauses: [], serve: THREE_WAY }],
      fallthrough: { variant: 'control' },
    }),
  );
  s.add(
    'missing key in a rule rollout keeps the rule id',
    'rule-split',
    { country: 'TH' },
    missing('everyone'),
  );

  s.flag(abFlag('exposed', { fallthrough: { rollout: { ...THREE_WAY.rollout, exposure: 50_000 } } }));
  s.add('missing key is an error before exposure is checked', 'exposed', {}, missing());

  s.flag(abFlag('fixed', { fallthrough: { variant: 'a' } }));
  s.add('a fixed serve needs no key', 'fixed', {}, { value: 'layout-a', variant: 'a', reason: 'STATIC' });
  return s;
}

function unicodeSuite(): Suite {
  const s = new Suite('non-ASCII keys and salts');
  const keys: [string, string][] = [
    ['Thai', 'ผู้ใช้-๑๒๓'],
    ['Thai name', 'สมชาย'],
    ['Chinese', '用户-一二三'],
    ['Japanese', 'ユーザー'],
    ['Korean', '사용자'],
    ['Arabic', 'مستخدم'],
    ['Cyrillic', 'пользователь'],
    ['Latin-1 range', 'José'],
    ['emoji', '😀'],
    ['emoji ZWJ sequence', '👩‍💻'],
    ['family ZWJ sequence', '👨‍👩‍👧‍👦'],
    ['flag', '🇹🇭'],
    ['skin tone modifier', '👍🏽'],
    ['precomposed é (NFC)', 'caf\u00e9'],
    ['e + combining acute (NFD), not normalized', 'cafe\u0301'],
    ['mixed scripts', 'user-ผู้ใช้-用户-👩‍💻'],
  ];
  s.flag(
    abFlag('unicode-split', {
      variants: [
        { key: 'control', value: 'control' },
        { key: 'a', value: 'layout-a' },
        { key: 'b', value: 'layout-b' },
        { key: 'c', value: 'layout-c' },
      ],
      fallthrough: {
        rollout: {
          weights: [
            { variant: 'control', weight: 25_000 },
            { variant: 'a', weight: 25_000 },
            { variant: 'b', weight: 25_000 },
            { variant: 'c', weight: 25_000 },
          ],
        },
      },
    }),
  );
  // A hash of UTF-16 code units or of each char's low byte must fail some of these.
  let caught = 0;
  const lowByteBucket = (salt: string, value: string) =>
    Number((BigInt(murmurhash3js.x86.hash32(`${salt}:${value}`, 0) >>> 0) * 100_000n) >> 32n);
  for (const [what, key] of keys) {
    s.split(`${what} key`, 'unicode-split', { key }, key);
    if (
      Math.floor(lowByteBucket('unicode-split', key) / 25_000) !==
      Math.floor(oracleBucket('unicode-split', key) / 25_000)
    ) {
      caught++;
    }
  }
  if (caught < keys.length / 2) throw new Error(`only ${caught} non-ASCII cases would catch a low-byte hash`);

  s.flag(abFlag('thai-salt', { salt: 'ฟีเจอร์-ใหม่' }));
  for (const key of ['user-1', 'user-2', 'ผู้ใช้-๑๒๓', '用户-一二三'])
    s.split('Thai salt', 'thai-salt', { key }, key);
  s.flag(abFlag('emoji-salt', { salt: '🚀-launch' }));
  for (const key of ['user-1', '🇹🇭', 'ユーザー']) s.split('emoji salt', 'emoji-salt', { key }, key);

  s.flag(
    boolFlag('thai-rule', {
      rules: [
        {
          id: 'somchai',
          clauses: [{ attribute: 'name', op: 'in', values: ['สมชาย'] }],
          serve: { variant: 'on' },
        },
      ],
    }),
  );
  s.add(
    'Thai attribute value in a rule',
    'thai-rule',
    { key: '用户-一二三', name: 'สมชาย' },
    matched('somchai'),
  );
  s.add('Thai attribute value not listed', 'thai-rule', { key: '用户-一二三', name: 'สมหญิง' }, unmatched());
  return s;
}

// ---------------------------------------------------------------------------------------------
// Types, unknown flags, contexts

function typesSuite(): Suite {
  const s = new Suite('value types, unknown flags and contexts');
  s.flag(boolFlag('bool-on', { fallthrough: { variant: 'on' } }));
  s.flag({
    key: 'greeting',
    variants: [
      { key: 'hello', value: 'Hello' },
      { key: 'sawasdee', value: 'สวัสดีครับ' },
    ],
    offVariant: 'hello',
    enabled: true,
    rules: [
      {
        id: 'thai',
        clauses: [{ attribute: 'locale', op: 'startsWith', values: ['th'] }],
        serve: { variant: 'sawasdee' },
      },
    ],
    fallthrough: { variant: 'hello' },
  });
  s.flag({
    key: 'max-items',
    variants: [
      { key: 'few', value: 10 },
      { key: 'many', value: 100 },
      { key: 'none', value: 0 },
    ],
    offVariant: 'none',
    enabled: true,
    fallthrough: { variant: 'many' },
  });
  s.flag({
    key: 'limits',
    variants: [
      { key: 'default', value: { rps: 100, burst: { size: 20, window: '1s' } } },
      { key: 'strict', value: { rps: 10, burst: null } },
    ],
    offVariant: 'strict',
    enabled: true,
    fallthrough: { variant: 'default' },
  });
  s.flag({
    key: 'regions',
    variants: [
      { key: 'asia', value: ['TH', 'SG', 'MY'] },
      { key: 'none', value: [] },
    ],
    offVariant: 'none',
    enabled: true,
    fallthrough: { variant: 'asia' },
  });

  const ctx = { key: 'u1' };
  s.add(
    'string flag, rule match',
    'greeting',
    { key: 'u1', locale: 'th-TH' },
    {
      value: 'สวัสดีครับ',
      variant: 'sawasdee',
      reason: 'TARGETING_MATCH',
      ruleId: 'thai',
    },
  );
  s.add(
    'string flag with a string default',
    'greeting',
    { key: 'u1', locale: 'en-GB' },
    { value: 'Hello', variant: 'hello', reason: 'DEFAULT' },
    'fallback',
  );
  s.add(
    'number flag with a number default',
    'max-items',
    ctx,
    { value: 100, variant: 'many', reason: 'STATIC' },
    0,
  );
  s.add(
    'object flag with an object default',
    'limits',
    ctx,
    {
      value: { rps: 100, burst: { size: 20, window: '1s' } },
      variant: 'default',
      reason: 'STATIC',
    },
    {},
  );
  s.add(
    'object flag with an array default: arrays are objects',
    'limits',
    ctx,
    {
      value: { rps: 100, burst: { size: 20, window: '1s' } },
      variant: 'default',
      reason: 'STATIC',
    },
    [],
  );
  s.add(
    'array flag with an object default',
    'regions',
    ctx,
    { value: ['TH', 'SG', 'MY'], variant: 'asia', reason: 'STATIC' },
    {
      fallback: true,
    },
  );
  s.add('boolean flag with a boolean default', 'bool-on', ctx, { ...ON, reason: 'STATIC' }, false);

  const mismatch = (value: VariantValue): Expectation => ({
    value,
    reason: 'ERROR',
    errorCode: 'TYPE_MISMATCH',
  });
  s.add('boolean flag, string default', 'bool-on', ctx, mismatch('no'), 'no');
  s.add('boolean flag, number default', 'bool-on', ctx, mismatch(0), 0);
  s.add('boolean flag, object default', 'bool-on', ctx, mismatch({ on: false }), { on: false });
  s.add('string flag, boolean default', 'greeting', ctx, mismatch(false), false);
  s.add('string flag, number default', 'greeting', ctx, mismatch(1), 1);
  s.add('number flag, string default', 'max-items', ctx, mismatch('10'), '10');
  s.add('number flag, boolean default', 'max-items', ctx, mismatch(true), true);
  s.add('object flag, string default', 'limits', ctx, mismatch('{}'), '{}');
  s.add('array flag, boolean default', 'regions', ctx, mismatch(false), false);
  s.flag(boolFlag('killed-bool', { killed: true }));
  s.add('type is checked before the kill switch', 'killed-bool', ctx, mismatch('off'), 'off');

  const notFound = (value: VariantValue): Expectation => ({
    value,
    reason: 'ERROR',
    errorCode: 'FLAG_NOT_FOUND',
  });
  s.add('unknown flag, boolean default', 'no-such-flag', ctx, notFound(true), true);
  s.add('unknown flag, string default', 'no-such-flag', ctx, notFound('fallback'), 'fallback');
  s.add('unknown flag, number default', 'no-such-flag', ctx, notFound(-1), -1);
  s.add('unknown flag, object default', 'no-such-flag', ctx, notFound({ rps: 1 }), { rps: 1 });
  s.add('unknown flag, array default', 'no-such-flag', ctx, notFound(['x']), ['x']);
  s.add('flag keys are case-sensitive', 'Bool-On', ctx, notFound(false), false);

  s.flag(ruleFlag('has-key', [{ attribute: 'key', op: 'exists', values: [] }]));
  s.flag(ruleFlag('lacks-key', [{ attribute: 'key', op: 'exists', values: [], negate: true }]));
  s.flag(
    boolFlag('keyed-split', { fallthrough: { rollout: { weights: [{ variant: 'on', weight: 100_000 }] } } }),
  );
  const keyMissing: Expectation = { ...OFF, reason: 'ERROR', errorCode: 'TARGETING_KEY_MISSING' };
  const nonObjects: [string, unknown][] = [
    ['null', null],
    ['string', 'alice'],
    ['number', 42],
    ['boolean', true],
  ];
  for (const [what, context] of nonObjects) {
    s.add(`${what} context is {}: no key`, 'has-key', context, unmatched());
    s.add(`${what} context is {}: negated exists matches`, 'lacks-key', context, matched());
    s.add(`${what} context is {}: rollout has no key`, 'keyed-split', context, keyMissing);
  }
  s.add('array context has no key', 'has-key', ['alice'], unmatched());
  s.add('keyed context for contrast', 'keyed-split', { key: 'alice' }, { ...ON, reason: 'SPLIT' });
  return s;
}

// ---------------------------------------------------------------------------------------------
// Bucket vectors

const BOUNDARY: [salt: string, value: string, note: string][] = [
  ['checkout-redesign', 'user-41040', 'bucket 0'],
  ['checkout-redesign', 'user-214460', 'bucket 19999'],
  ['checkout-redesign', 'user-25594', 'bucket 20000'],
  ['checkout-redesign', 'user-65031', 'bucket 49999'],
  ['checkout-redesign', 'user-82378', 'bucket 50000'],
  ['checkout-redesign', 'user-69998', 'bucket 99999'],
  ['checkout-redesign', 'user-32983', 'h * 100000 / 2^32 is just below an integer'],
  ['checkout-redesign', 'user-37983', 'h * 100000 / 2^32 is just below an integer'],
  ['checkout-redesign', 'user-35659', 'h * 100000 / 2^32 is just above an integer'],
  ['checkout-redesign', 'user-1501', 'bucket changes if h passes through a float32'],
  ['checkout-redesign:exposure', 'user-57176', 'exposure bucket 0'],
  ['checkout-redesign:exposure', 'user-42766', 'exposure bucket 19999'],
  ['checkout-redesign:exposure', 'user-54109', 'exposure bucket 20000'],
  ['checkout-redesign:exposure', 'user-119092', 'exposure bucket 99999'],
  ['boundary', 'user-143', 'bucket 0, tiny hash'],
  ['boundary', 'user-50553', 'bucket 99999, hash near 2^32'],
  ['boundary', 'user-52049', 'h * 100000 / 2^32 is just below an integer'],
  ['boundary', 'user-161383', 'h * 100000 / 2^32 is just below an integer'],
  ['boundary', 'user-15603', 'h * 100000 / 2^32 is just above an integer'],
  ['boundary', 'user-196', 'bucket changes if h passes through a float32'],
];

const BUCKET_VALUES: [salt: string, value: string][] = [
  // ASCII, every tail length (salt + ":" + value is 1..4 bytes past a block)
  ['new-onboarding', 'a'],
  ['new-onboarding', 'ab'],
  ['new-onboarding', 'abc'],
  ['new-onboarding', 'abcd'],
  ['new-onboarding', 'user-1'],
  ['new-onboarding', 'user-2'],
  ['new-onboarding', 'alice'],
  ['new-onboarding', '42'],
  ['new-onboarding', '-7'],
  ['new-onboarding', '4.5'],
  ['new-onboarding', ''],
  ['new-onboarding', ' '],
  ['new-onboarding', 'tab\tand\nnewline'],
  ['new-onboarding', 'ann@example.com'],
  ['new-onboarding', '550e8400-e29b-41d4-a716-446655440000'],
  // the separator is not escaped: these two hash the same bytes
  ['x', 'y:z'],
  ['x:y', 'z'],
  // Thai (3-byte UTF-8, combining vowel and tone marks)
  ['new-onboarding', 'ผู้ใช้-๑๒๓'],
  ['new-onboarding', 'สมชาย'],
  ['new-onboarding', 'สวัสดีครับ'],
  // CJK, Japanese, Korean
  ['new-onboarding', '用户-一二三'],
  ['new-onboarding', '中文'],
  ['new-onboarding', 'ユーザー'],
  ['new-onboarding', 'ｶﾀｶﾅ'],
  ['new-onboarding', '사용자'],
  // other scripts
  ['new-onboarding', 'مستخدم'],
  ['new-onboarding', 'משתמש'],
  ['new-onboarding', 'उपयोगकर्ता'],
  ['new-onboarding', 'пользователь'],
  // Latin-1 range (2-byte UTF-8, where a Latin-1 encoding would differ)
  ['new-onboarding', 'José'],
  ['new-onboarding', 'ñ'],
  ['new-onboarding', 'Å'],
  // combining marks: NFC and NFD hash differently (no normalization)
  ['new-onboarding', 'caf\u00e9'],
  ['new-onboarding', 'cafe\u0301'],
  ['new-onboarding', '\u00c5ngstr\u00f6m'],
  ['new-onboarding', 'A\u030angstro\u0308m'],
  // emoji: 4-byte UTF-8 (surrogate pairs in UTF-16), ZWJ sequences, flags, modifiers
  ['new-onboarding', '😀'],
  ['new-onboarding', '👩‍💻'],
  ['new-onboarding', '👨‍👩‍👧‍👦'],
  ['new-onboarding', '🇹🇭'],
  ['new-onboarding', '🇯🇵🇨🇳🇰🇷'],
  ['new-onboarding', '👍🏽'],
  ['new-onboarding', '🏳️‍🌈'],
  ['new-onboarding', '\u{10FFFF}'],
  ['new-onboarding', '\uFFFD'],
  ['new-onboarding', 'user-ผู้ใช้-用户-👩‍💻'],
  // long values
  ['new-onboarding', 'x'.repeat(1000)],
  ['new-onboarding', 'ก'.repeat(300)],
  ['new-onboarding', '🇹🇭'.repeat(64)],
  ['new-onboarding', 'user-'.repeat(200) + 'end'],
  // non-ASCII and unusual salts
  ['ฟีเจอร์-ใหม่', 'user-1'],
  ['ฟีเจอร์-ใหม่', 'ผู้ใช้-๑๒๓'],
  ['新功能', 'user-1'],
  ['新功能', '用户-一二三'],
  ['🚀-launch', 'user-1'],
  ['🚀-launch', '🇹🇭'],
  ['café', 'user-1'],
  ['salt with spaces', 'user-1'],
  ['a', 'b'],
  ['S'.repeat(256), 'user-1'],
  ['checkout-redesign', 'user-1'],
  ['checkout-redesign:exposure', 'user-1'],
];

export function buildBucketVectors(): BucketVectors {
  const vectors = [...BOUNDARY.map(([salt, value]) => [salt, value] as const), ...BUCKET_VALUES].map(
    ([salt, value]) => ({
      salt,
      value,
      hash: oracleHash(salt, value),
      bucket: oracleBucket(salt, value),
    }),
  );
  return {
    description:
      'Vigil bucketing vectors. hash = MurmurHash3_x86_32 of the UTF-8 bytes of salt + ":" + value, seed 0, ' +
      'unsigned; bucket = floor(hash * 100000 / 2^32) in [0, 100000). No Unicode normalization. ' +
      'Generated by proto/scripts/generate-vectors.ts; do not edit by hand.',
    vectors,
  };
}

// ---------------------------------------------------------------------------------------------

export function buildEvaluationVectors(): EvaluationVectors {
  const suites = [
    ...membershipSuites(),
    ...stringSuites(),
    matchesSuite(),
    numericSuite(),
    dateSuite(),
    semverSuite(),
    existsSuite(),
    rulesSuite(),
    segmentSuite(),
    prerequisiteSuite(),
    rolloutSuite(),
    boundarySuite(),
    exposureSuite(),
    missingKeySuite(),
    unicodeSuite(),
    typesSuite(),
  ];
  return {
    description:
      "Vigil evaluation vectors: for each suite, load its flags and segments, then evaluate each case's flag " +
      "for its context (and default, when given). Compare value (deep), variant (absent when the caller's " +
      'default is returned), reason and errorCode (absent unless ERROR) exactly; ruleId must equal the one ' +
      'given, and be absent when none is given; detail must equal the one given, and be absent when none is ' +
      'given unless the reason is ERROR (error details are free text). Flags and segments are written with ' +
      'schema defaults applied; salt (the flag key), bucketBy (key), exposure (100000) and negate (false) ' +
      'may be absent and take those meanings. A context that is not a JSON object is evaluated as {}. ' +
      'Generated by proto/scripts/generate-vectors.ts; do not edit by hand.',
    suites: suites.map((s) => s.toJSON()),
  };
}

/** The files as written: two-space JSON with a final newline. */
export function vectorFiles(): { 'evaluation.json': string; 'buckets.json': string } {
  return {
    'evaluation.json': `${JSON.stringify(buildEvaluationVectors(), null, 2)}\n`,
    'buckets.json': `${JSON.stringify(buildBucketVectors(), null, 2)}\n`,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const dir = new URL('../vectors/', import.meta.url);
  const files = vectorFiles();
  for (const [name, text] of Object.entries(files)) writeFileSync(new URL(name, dir), text);
  const { suites } = buildEvaluationVectors();
  const cases = suites.reduce((n, s) => n + s.cases.length, 0);
  console.log(
    `wrote ${cases} evaluation cases in ${suites.length} suites and ${buildBucketVectors().vectors.length} bucket vectors`,
  );
}
