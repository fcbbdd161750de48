import * as proto from '@vigil/proto';
import { describe, expect, it } from 'vitest';
import { parseServerMessage, snapshotIssue } from '../src/index.js';

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
