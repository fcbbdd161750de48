import * as proto from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import { fullJitter } from '../src/backoff.js';
import * as runtime from '../src/proto-runtime.js';
import { parseServerMessage, RawFlags, snapshotIssue } from '../src/wire.js';

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
  });
});

describe('server message checks', () => {
  it('accept what the server sends', () => {
    const snapshot = { type: 'snapshot', revision: 4, flags: [flag], segments: [] };
    expect(parseServerMessage(JSON.stringify(snapshot))).toEqual(snapshot);
    const patch = { ...snapshot, type: 'patch', deleted: { flags: ['g'], segments: [] } };
    expect(parseServerMessage(JSON.stringify(patch))).toEqual(patch);
    expect(parseServerMessage('{"type":"ping","at":5}')).toEqual({ type: 'ping', at: 5 });
    expect(parseServerMessage('{"type":"error","code":"X","message":"m"}').type).toBe('error');
    // Every message the server can send passes its own schema and these checks alike.
    expect(proto.serverMessageSchema.safeParse(snapshot).success).toBe(true);
  });

  it('name what is wrong with anything else', () => {
    expect(() => parseServerMessage('not json')).toThrow();
    expect(() => parseServerMessage('{"type":"nope"}')).toThrow(/unknown message type/);
    expect(() => parseServerMessage('{"type":"snapshot","revision":-1,"flags":[],"segments":[]}')).toThrow(
      /bad revision/,
    );
    const broken = { ...flag, rules: [{ id: 'r', clauses: 'x', serve: { variant: 'on' } }] };
    expect(snapshotIssue({ revision: 1, flags: [broken], segments: [] })).toMatch(/flag f: bad rule/);
    expect(snapshotIssue({ revision: 1, flags: [{ ...flag, variants: [] }], segments: [] })).toMatch(
      /no variants/,
    );
    expect(
      snapshotIssue({
        revision: 1,
        flags: [],
        segments: [{ key: 's', version: 1, included: [1], excluded: [], rules: [] }],
      }),
    ).toMatch(/segment s/);
    expect(() =>
      parseServerMessage(
        JSON.stringify({ type: 'patch', revision: 2, flags: [], segments: [], deleted: {} }),
      ),
    ).toThrow(/bad deleted/);
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

describe('full jitter backoff', () => {
  it('draws from [0, min(cap, base·2^attempt))', () => {
    expect(fullJitter(0, 100, 1000, () => 0.999)).toBe(99);
    expect(fullJitter(3, 100, 1000, () => 0.999)).toBe(799);
    expect(fullJitter(10, 100, 1000, () => 0.5)).toBe(500);
    expect(fullJitter(2, 100, 1000, () => 0)).toBe(0);
  });
});
