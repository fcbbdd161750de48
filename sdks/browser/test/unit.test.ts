import * as proto from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import * as runtime from '../src/proto-runtime.js';
import { RawFlags } from '../src/raw-flags.js';

const flag = {
  key: 'f',
  version: 3,
  variants: [
    { key: 'on', value: true },
    { key: 'off', value: false },
  ],
  offVariant: 'off',
  enabled: true,
  killed: false,
  clientSide: true,
  rules: [{ id: 'r', clauses: [{ attribute: 'key', op: 'in', values: ['a'] }], serve: { variant: 'on' } }],
  fallthrough: { rollout: { weights: [{ variant: 'on', weight: 100_000 }] } },
  prerequisites: [],
};

describe('the zod-free proto runtime bundled for browsers', () => {
  it('holds the same values as @vigil/proto', () => {
    expect(runtime.WEIGHT_TOTAL).toBe(proto.WEIGHT_TOTAL);
    expect(runtime.MAX_PREREQUISITE_DEPTH).toBe(proto.MAX_PREREQUISITE_DEPTH);
    expect(runtime.MAX_REGEX_LENGTH).toBe(proto.MAX_REGEX_LENGTH);
    expect(runtime.CLOSE_CODES).toEqual(proto.CLOSE_CODES);
    expect(runtime.parseTime).toBe(proto.parseTime);
    expect(runtime.compileMatchPattern).toBe(proto.compileMatchPattern);
  });
});

describe('raw flags kept for the cache', () => {
  it('ignore anything not newer than what they hold', () => {
    const raw = new RawFlags();
    raw.load({ revision: 5, flags: [flag as never], segments: [] });
    raw.apply({
      revision: 5,
      flags: [{ ...flag, version: 9 } as never],
      segments: [],
      deleted: { flags: [], segments: [] },
    });
    expect(raw.flags.get('f')?.version).toBe(3);
    raw.apply({
      revision: 6,
      flags: [{ ...flag, version: 2 } as never],
      segments: [],
      deleted: { flags: [], segments: [] },
    });
    expect(raw.flags.get('f')?.version).toBe(3);
    raw.apply({ revision: 7, flags: [], segments: [], deleted: { flags: ['f'], segments: [] } });
    expect(raw.snapshot()).toEqual({ revision: 7, flags: [], segments: [] });
  });
});
