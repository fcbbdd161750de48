import { describe, expect, it } from 'vitest';
import { diff, jsonEqual, lineDiff, stableJson } from '../src/lib/diff.js';

describe('diff', () => {
  it('names each changed field by the path the server uses in its 400 details', () => {
    const before = {
      key: 'f',
      enabled: false,
      rules: [{ id: 'a', clauses: [{ attribute: 'country', op: 'in', values: ['DE'] }] }],
    };
    const after = {
      key: 'f',
      enabled: true,
      rules: [{ id: 'a', clauses: [{ attribute: 'country', op: 'in', values: ['DE', 'FR'] }] }],
    };
    expect(diff(before, after)).toEqual([
      { path: 'enabled', kind: 'changed', before: false, after: true },
      { path: 'rules[0].clauses[0].values', kind: 'changed', before: ['DE'], after: ['DE', 'FR'] },
    ]);
  });

  it('reports an inserted rule as one addition, not as every later rule changed', () => {
    const r = (id: string) => ({ id, clauses: [], serve: { variant: 'on' } });
    const changes = diff({ rules: [r('a'), r('b')] }, { rules: [r('new'), r('a'), r('b')] });
    expect(changes).toEqual([{ path: 'rules[0]', kind: 'added', after: r('new') }]);
  });

  it('reports a reorder of rules (first match wins, so order is meaning)', () => {
    const r = (id: string) => ({ id, clauses: [], serve: { variant: 'on' } });
    expect(diff({ rules: [r('a'), r('b')] }, { rules: [r('b'), r('a')] })).toEqual([
      { path: 'rules', kind: 'changed', before: ['a', 'b'], after: ['b', 'a'] },
    ]);
  });

  it('reports removed rules and variants by identity', () => {
    const changes = diff(
      {
        variants: [
          { key: 'on', value: true },
          { key: 'off', value: false },
        ],
      },
      { variants: [{ key: 'off', value: false }] },
    );
    expect(changes).toEqual([{ path: 'variants[0]', kind: 'removed', before: { key: 'on', value: true } }]);
  });

  it('treats undefined properties as absent and ignores key order', () => {
    expect(diff({ a: 1, b: undefined }, { a: 1 })).toEqual([]);
    expect(jsonEqual({ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 })).toBe(true);
    expect(diff({ owner: 'x' }, {})).toEqual([{ path: 'owner', kind: 'removed', before: 'x' }]);
    expect(diff({}, { salt: 's' })).toEqual([{ path: 'salt', kind: 'added', after: 's' }]);
  });

  it('diffs a changed JSON variant value down to the changed key', () => {
    expect(
      diff(
        { variants: [{ key: 'v', value: { color: 'red', n: 1 } }] },
        { variants: [{ key: 'v', value: { color: 'blue', n: 1 } }] },
      ),
    ).toEqual([{ path: 'variants[0].value.color', kind: 'changed', before: 'red', after: 'blue' }]);
  });

  it('quotes keys that are not identifiers', () => {
    expect(diff({ m: { 'a-b': 1 } }, { m: { 'a-b': 2 } })[0]!.path).toBe('m["a-b"]');
  });
});

describe('lineDiff', () => {
  it('keeps common lines and marks removed and added ones', () => {
    expect(lineDiff('a\nb\nc', 'a\nB\nc\nd')).toEqual([
      { kind: 'same', text: 'a' },
      { kind: 'removed', text: 'b' },
      { kind: 'added', text: 'B' },
      { kind: 'same', text: 'c' },
      { kind: 'added', text: 'd' },
    ]);
  });

  it('diffs stable JSON by content, not key order', () => {
    expect(
      lineDiff(stableJson({ b: 1, a: 2 }), stableJson({ a: 2, b: 1 })).every((l) => l.kind === 'same'),
    ).toBe(true);
  });
});
