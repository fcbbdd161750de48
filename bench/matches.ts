/**
 * The `matches` operator's cost, native RegExp (the evaluator's engine before RE2) against re2js (its
 * engine now), in the same run: ordinary patterns over 10,000 distinct strings, then a pattern that
 * backtracks catastrophically (`^(a|a)*$`) on inputs only a few characters apart, where native
 * RegExp doubles its time with every character and re2js stays linear. Run by `eval.ts`, or alone:
 *
 *   pnpm bench:eval --matches
 */
import { FlagSet } from '@vigil/core';
import { compileMatchPattern, flagSchema } from '@vigil/proto';
import { measure } from 'mitata';

const STRINGS = 10_000;
const MIN_CPU_NS = 200e6;
/** Lengths for the backtracking pattern: native RegExp doubles its time with each added character. */
const HOSTILE_LENGTHS = [16, 20, 24];

let sink = 0;

const fmt = (n: number, digits = 1): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

interface Case {
  name: string;
  pattern: string;
  inputs: string[];
}

function emails(): string[] {
  const domains = ['example.com', 'example.org', 'vigil.dev', 'other.net'];
  return Array.from({ length: STRINGS }, (_, i) => `user${i}@${domains[i % domains.length]}`);
}

function builds(): string[] {
  return Array.from({ length: STRINGS }, (_, i) =>
    i % 3 === 0 ? `2024.${i}-rc` : `20${10 + (i % 90)}.${i}`,
  );
}

const CASES: Case[] = [
  { name: 'email domain', pattern: '@example\\.(com|org)$', inputs: emails() },
  { name: 'build number', pattern: '^\\d{4}\\.\\d+$', inputs: builds() },
  { name: 'case-insensitive', pattern: '(?i)^USER1', inputs: emails() },
];

/** Median ns per test over one pass of `inputs`. */
async function nsPerTest(test: (s: string) => boolean, inputs: readonly string[]): Promise<number> {
  const pass = () => {
    for (let i = 0; i < inputs.length; i++) if (test(inputs[i]!)) sink++;
  };
  const stats = await measure(pass, { min_cpu_time: MIN_CPU_NS });
  return stats.p50 / inputs.length;
}

/** ns per `isEnabled` of a flag whose one rule is the `matches` clause (the evaluator's whole path). */
async function nsPerEvaluation(pattern: string, inputs: readonly string[]): Promise<number> {
  const set = new FlagSet();
  set.load({
    revision: 1,
    segments: [],
    flags: [
      flagSchema.parse({
        key: 'f',
        version: 1,
        variants: [
          { key: 'on', value: true },
          { key: 'off', value: false },
        ],
        offVariant: 'off',
        enabled: true,
        rules: [
          {
            id: 'r',
            clauses: [{ attribute: 's', op: 'matches', values: [pattern] }],
            serve: { variant: 'on' },
          },
        ],
        fallthrough: { variant: 'off' },
      }),
    ],
  });
  const contexts = inputs.map((s) => ({ key: 'u', s }));
  const pass = () => {
    for (let i = 0; i < contexts.length; i++) if (set.isEnabled('f', contexts[i]!)) sink++;
  };
  const stats = await measure(pass, { min_cpu_time: MIN_CPU_NS });
  return stats.p50 / contexts.length;
}

/** Prints native RegExp against re2js for each case, and the evaluator's ns per evaluation with re2js. */
export async function matchesBenchmark(): Promise<void> {
  console.log(
    `\nmatches: native RegExp (the old engine) vs re2js (RE2, linear time), ns per test, median pass over ` +
      `${fmt(STRINGS, 0)} strings; isEnabled = the evaluator's whole path with re2js`,
  );
  console.log(
    `  ${'case'.padEnd(18)} ${'pattern'.padEnd(24)} ${'RegExp'.padStart(9)} ${'re2js'.padStart(9)} ${'re2js/RegExp'.padStart(13)} ${'isEnabled'.padStart(10)}`,
  );
  for (const c of CASES) {
    const native = new RegExp(c.pattern.replace('(?i)', ''), c.pattern.startsWith('(?i)') ? 'i' : '');
    const re2 = compileMatchPattern(c.pattern);
    for (const s of c.inputs.slice(0, 100)) {
      if (native.test(s) !== re2.test(s)) throw new Error(`${c.pattern} disagrees on ${s}`);
    }
    const a = await nsPerTest((s) => native.test(s), c.inputs);
    const b = await nsPerTest((s) => re2.test(s), c.inputs);
    const e = await nsPerEvaluation(c.pattern, c.inputs);
    console.log(
      `  ${c.name.padEnd(18)} ${c.pattern.padEnd(24)} ${fmt(a).padStart(9)} ${fmt(b).padStart(9)} ${`${fmt(b / a)}x`.padStart(13)} ${fmt(e).padStart(10)}`,
    );
  }

  const hostile = '^(a|a)*$';
  console.log(
    `\n  ${hostile} against "a" x n + "!" (no match), µs per test, one test per sample for RegExp (it cannot be repeated for long):`,
  );
  console.log(
    `  ${'n'.padStart(6)} ${'RegExp µs'.padStart(14)} ${'re2js µs'.padStart(10)} ${'RegExp/re2js'.padStart(14)}`,
  );
  const native = new RegExp(hostile);
  const re2 = compileMatchPattern(hostile);
  for (const n of HOSTILE_LENGTHS) {
    const input = `${'a'.repeat(n)}!`;
    const started = performance.now();
    if (native.test(input)) sink++;
    const nativeUs = (performance.now() - started) * 1000;
    const re2Us = (await nsPerTest((s) => re2.test(s), [input])) / 1000;
    console.log(
      `  ${String(n).padStart(6)} ${fmt(nativeUs, 0).padStart(14)} ${fmt(re2Us, 2).padStart(10)} ${`${fmt(nativeUs / re2Us, 0)}x`.padStart(14)}`,
    );
  }
  const long = `${'a'.repeat(10_000)}!`;
  const longUs = (await nsPerTest((s) => re2.test(s), [long])) / 1000;
  console.log(
    `  ${'10,000'.padStart(6)} ${'(never returns)'.padStart(14)} ${fmt(longUs, 1).padStart(10)}  (sink ${sink})`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await matchesBenchmark();
