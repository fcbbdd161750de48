import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type BucketVectors,
  type EvaluationVectors,
  oracleBucket,
  oracleHash,
  vectorFiles,
} from '../scripts/generate-vectors.js';
import { flagSchema, OPERATORS, segmentSchema, validateFlag, validateSegment } from '../src/index.js';

const read = (name: string) => readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8');
const evaluation = JSON.parse(read('evaluation.json')) as EvaluationVectors;
const buckets = JSON.parse(read('buckets.json')) as BucketVectors;
const cases = evaluation.suites.flatMap((s) => s.cases.map((c) => ({ suite: s, c })));

const REASONS = ['STATIC', 'DEFAULT', 'TARGETING_MATCH', 'SPLIT', 'DISABLED', 'PREREQUISITE_FAILED', 'ERROR'];
const ERROR_CODES = ['FLAG_NOT_FOUND', 'TYPE_MISMATCH', 'TARGETING_KEY_MISSING'];

describe('shared vectors', () => {
  it('are what the generator writes (edit the generator, not the JSON)', () => {
    const files = vectorFiles();
    expect(read('evaluation.json')).toBe(files['evaluation.json']);
    expect(read('buckets.json')).toBe(files['buckets.json']);
  });

  it('hold at least 150 evaluation cases and 60 bucket vectors', () => {
    expect(cases.length).toBeGreaterThanOrEqual(150);
    expect(buckets.vectors.length).toBeGreaterThanOrEqual(60);
  });

  it('name every case uniquely within its suite', () => {
    for (const suite of evaluation.suites) {
      expect(new Set(suite.cases.map((c) => c.name)).size, suite.name).toBe(suite.cases.length);
    }
  });
});

describe('vector flags and segments', () => {
  for (const suite of evaluation.suites) {
    it(`${suite.name}: every flag and segment is valid and written with its defaults`, () => {
      for (const flag of suite.flags) {
        expect(validateFlag(flag), flag.key).toEqual({ ok: true, value: flag });
        expect(flagSchema.parse(flag), flag.key).toEqual(flag);
      }
      for (const segment of suite.segments) {
        expect(validateSegment(segment), segment.key).toEqual({ ok: true, value: segment });
        expect(segmentSchema.parse(segment), segment.key).toEqual(segment);
      }
    });
  }

  it('cases are well formed: known reasons, error codes only on ERROR, variants of the flag', () => {
    for (const { suite, c } of cases) {
      const { expect: want } = c;
      expect(REASONS, c.name).toContain(want.reason);
      if (want.reason === 'ERROR') expect(ERROR_CODES, c.name).toContain(want.errorCode);
      else expect(want.errorCode, c.name).toBeUndefined();
      const flag = suite.flags.find((f) => f.key === c.flag);
      if (want.errorCode === 'FLAG_NOT_FOUND') {
        expect(flag, c.name).toBeUndefined();
        expect(want.variant, c.name).toBeUndefined();
        expect(want.value, c.name).toEqual(c.default);
      } else if (want.errorCode === 'TYPE_MISMATCH') {
        expect(want.variant, c.name).toBeUndefined();
        expect(want.value, c.name).toEqual(c.default);
      } else {
        const served = flag?.variants.find((v) => v.key === want.variant);
        expect(served, c.name).toBeDefined();
        expect(want.value, c.name).toEqual(served?.value);
      }
    }
  });

  it('cover every operator, negated and not', () => {
    const seen = new Set<string>();
    for (const suite of evaluation.suites) {
      for (const flag of suite.flags) {
        for (const clause of flag.rules.flatMap((r) => r.clauses))
          seen.add(`${clause.op}${clause.negate ? '!' : ''}`);
      }
    }
    for (const op of OPERATORS) {
      expect(seen, op).toContain(op);
      expect(seen, `${op} negated`).toContain(`${op}!`);
    }
  });

  it('cover every reason and error code', () => {
    const reasons = new Set(cases.map(({ c }) => c.expect.reason));
    const codes = new Set(cases.map(({ c }) => c.expect.errorCode).filter(Boolean));
    expect([...reasons].sort()).toEqual([...REASONS].sort());
    expect([...codes].sort()).toEqual([...ERROR_CODES].sort());
  });
});

describe('bucket vectors', () => {
  it.each(buckets.vectors.map((v) => [`${v.salt.slice(0, 30)} / ${v.value.slice(0, 30)}`, v] as const))(
    'agree with the oracle: %s',
    (_, v) => {
      expect(oracleHash(v.salt, v.value)).toBe(v.hash);
      expect(oracleBucket(v.salt, v.value)).toBe(v.bucket);
      expect(v.bucket).toBe(Math.floor((v.hash * 100_000) / 2 ** 32));
    },
  );

  it('include non-ASCII values and salts', () => {
    const nonAscii = (s: string) => [...s].some((ch) => ch.codePointAt(0)! > 0x7f);
    expect(buckets.vectors.filter((v) => nonAscii(v.value)).length).toBeGreaterThanOrEqual(20);
    expect(buckets.vectors.filter((v) => nonAscii(v.salt)).length).toBeGreaterThanOrEqual(4);
  });
});
