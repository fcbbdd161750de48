import { readFileSync } from 'node:fs';
import { bucketOf, type EvaluationDetail, FlagSet } from '@vigil/core';
import type { Flag, Segment, VariantValue } from '@vigil/proto';
import { describe, expect, it } from 'vitest';

// The shared vectors every SDK runs; proto/scripts/generate-vectors.ts writes them and explains the format.
interface VectorCase {
  name: string;
  flag: string;
  context: unknown;
  default?: VariantValue;
  expect: Pick<EvaluationDetail, 'value' | 'variant' | 'reason' | 'errorCode' | 'detail' | 'ruleId'>;
}
interface Suite {
  name: string;
  flags: Flag[];
  segments: Segment[];
  cases: VectorCase[];
}

const vectors = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../proto/vectors/${name}`, import.meta.url), 'utf8'));
const { suites } = vectors('evaluation.json') as { suites: Suite[] };
const buckets = (
  vectors('buckets.json') as { vectors: { salt: string; value: string; hash: number; bucket: number }[] }
).vectors;

describe('evaluation vectors', () => {
  for (const suite of suites) {
    describe(suite.name, () => {
      const set = new FlagSet();
      set.load({ revision: 1, flags: suite.flags, segments: suite.segments });

      it.each(suite.cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
        const got =
          c.default === undefined ? set.detail(c.flag, c.context) : set.detail(c.flag, c.context, c.default);
        const want = c.expect;
        expect({
          value: got.value,
          variant: got.variant,
          reason: got.reason,
          errorCode: got.errorCode,
          ruleId: got.ruleId,
          // error details are free text; any other detail is part of the contract
          detail: want.detail === undefined && got.reason === 'ERROR' ? undefined : got.detail,
        }).toEqual({
          value: want.value,
          variant: want.variant,
          reason: want.reason,
          errorCode: want.errorCode,
          ruleId: want.ruleId,
          detail: want.detail,
        });
      });

      // the allocation-free entry points take other code paths than detail(); they must agree with it
      it('isEnabled, variant and value agree with detail', () => {
        for (const c of suite.cases) {
          const { errorCode, value, variant } = c.expect;
          if (errorCode === 'FLAG_NOT_FOUND' || errorCode === 'TYPE_MISMATCH') continue;
          expect(set.variant(c.flag, c.context), c.name).toBe(variant);
          if (typeof value === 'boolean')
            expect(set.isEnabled(c.flag, c.context, !value), c.name).toBe(value);
          if (c.default !== undefined) expect(set.value(c.flag, c.context, c.default), c.name).toEqual(value);
        }
      });
    });
  }
});

describe('bucket vectors', () => {
  it.each(
    buckets.map(
      (v) => [`${JSON.stringify(v.salt).slice(0, 40)} ${JSON.stringify(v.value).slice(0, 40)}`, v] as const,
    ),
  )('%s', (_, v) => {
    expect(bucketOf(v.salt, v.value)).toEqual({ hash: v.hash, bucket: v.bucket });
  });
});
