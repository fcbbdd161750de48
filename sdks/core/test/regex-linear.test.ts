import { type Flag, flagSchema, regexProblem } from '@vigil/proto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FlagSet } from '../src/index.js';

/**
 * `matches` must cost time linear in the attribute's length for any pattern the write-time check
 * accepts. re2js exposes no step counter, so the measure is time: the same pattern against an input
 * n and 8n long, each timed as the median of several interleaved runs, and the ratio bounded far
 * above 8 (a linear engine) but far below what a backtracking engine takes (it never returns on
 * `^(a|a)*$` against 4,000 characters; even a quadratic one gives 64). A ratio is robust to a
 * loaded machine in a way an absolute time is not.
 */

const SMALL = 500;
const FACTOR = 8;
const RATIO_BOUND = 40;
const RUNS = 5;

/** A flag serving `on` when attribute `s` matches `pattern`. */
function matchesFlag(pattern: string): Flag {
  return flagSchema.parse({
    key: 'f',
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: true,
    rules: [
      { id: 'r', clauses: [{ attribute: 's', op: 'matches', values: [pattern] }], serve: { variant: 'on' } },
    ],
    fallthrough: { variant: 'off' },
    version: 1,
  });
}

// Patterns from a small regex grammar, alternations under quantifiers and nested quantifiers
// included: the shapes that backtrack exponentially in a backtracking engine.
const { pattern: patternArb } = fc.letrec<{ pattern: string; atom: string }>((tie) => ({
  atom: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('a', 'b', 'aa', '.', '[ab]', '\\w', 'a?'),
    tie('pattern').map((p) => `(${p})`),
    fc.tuple(tie('pattern'), tie('pattern')).map(([x, y]) => `(${x}|${y})`),
    fc.tuple(tie('pattern'), tie('pattern'), tie('pattern')).map(([x, y, z]) => `(?:${x}|${y}|${z})`),
  ),
  pattern: fc
    .tuple(
      fc.array(
        fc.tuple(tie('atom'), fc.constantFrom('', '*', '+', '?', '{1,3}', '*?')).map(([a, q]) => a + q),
        { minLength: 1, maxLength: 3 },
      ),
    )
    .map(([parts]) => parts.join('')),
}));

const anchored = fc
  .tuple(fc.constantFrom('', '^'), patternArb, fc.constantFrom('', '$', 'b', '!$'))
  .map(([start, body, end]) => start + body + end)
  .filter((p) => regexProblem(p) === undefined);

/** Inputs made of a repeated chunk from the patterns' alphabet, then a character that may fail them. */
const inputShape = fc.record({
  chunk: fc.constantFrom('a', 'aa', 'ab', 'aab', 'ba'),
  tail: fc.constantFrom('', '!', 'b', 'c'),
});

function input(shape: { chunk: string; tail: string }, length: number): string {
  return shape.chunk.repeat(Math.ceil(length / shape.chunk.length)).slice(0, length) + shape.tail;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Median time of `iterations` evaluations against the small and the large input, runs interleaved. */
function timeBoth(set: FlagSet, small: string, large: string): { small: number; large: number } {
  const evaluate = (s: string, iterations: number): number => {
    const started = performance.now();
    for (let i = 0; i < iterations; i++) set.isEnabled('f', { s });
    return performance.now() - started;
  };
  evaluate(small, 3);
  evaluate(large, 3);
  // enough iterations that the small input takes about 2 ms, well above the timer's resolution
  let iterations = 1;
  while (evaluate(small, iterations) < 2 && iterations < 1 << 16) iterations *= 2;
  const smalls: number[] = [];
  const larges: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    smalls.push(evaluate(small, iterations));
    larges.push(evaluate(large, iterations));
  }
  return { small: median(smalls), large: median(larges) };
}

describe('matches runs in time linear in the attribute', () => {
  it('for the patterns that froze evaluation (alternations and quantifiers nested under a quantifier)', () => {
    for (const pattern of ['^(a|a)*$', '(a|aa)+b', '(a+)+$', '^(\\w+\\s?)*$', '(x+x+)+y']) {
      expect(regexProblem(pattern), pattern).toBeUndefined();
      const set = new FlagSet();
      set.load({ revision: 1, flags: [matchesFlag(pattern)], segments: [] });
      const hostile = `${'a'.repeat(10_000)}!`;
      expect(set.isEnabled('f', { s: hostile }), pattern).toBe(false);
      const { small, large } = timeBoth(set, `${'a'.repeat(SMALL)}!`, `${'a'.repeat(SMALL * FACTOR)}!`);
      expect(large / small, `${pattern}: ${small.toFixed(2)} ms vs ${large.toFixed(2)} ms`).toBeLessThan(
        RATIO_BOUND,
      );
    }
  });

  it('for any pattern the write-time check accepts', () => {
    fc.assert(
      fc.property(anchored, inputShape, (pattern, shape) => {
        const set = new FlagSet();
        set.load({ revision: 1, flags: [matchesFlag(pattern)], segments: [] });
        const { small, large } = timeBoth(set, input(shape, SMALL), input(shape, SMALL * FACTOR));
        // a ratio over the bound is re-measured once, so one burst of load elsewhere cannot fail it
        const ratio = large / small;
        if (ratio < RATIO_BOUND) return true;
        const again = timeBoth(set, input(shape, SMALL), input(shape, SMALL * FACTOR));
        return again.large / again.small < RATIO_BOUND;
      }),
      { numRuns: 40 },
    );
  });
});
