import {
  type Clause,
  type ClauseValue,
  compileMatchPattern,
  type MatchPattern,
  type Operator,
  parseTime,
} from '@vigil/proto';
import { type AttributeGetter, attributeGetter, topLevelName } from './attributes.js';
import { compareSemver, parseSemver, type SemVer } from './semver.js';
import type { Context } from './types.js';

/** Looks up a compiled segment by key at evaluation time (segments change independently of flags). */
export interface SegmentLookup {
  segmentContains(segmentKey: string, ctx: Context, keyValue: unknown): boolean;
}

/**
 * Tests one attribute value (never an array) against the clause's values. Returns MISMATCH when the
 * value's type does not fit the operator, so the clause is false whatever `negate` says.
 */
type Test = (value: unknown) => boolean | typeof MISMATCH;
const MISMATCH = 2 as const;

/**
 * Compiles `matches` patterns once, with RE2 (linear time: no pattern can stall evaluation). A
 * pattern RE2 refuses was refused at write time; one stored before that is left out, and a clause
 * left with no pattern is false.
 */
function compileRegexes(values: readonly ClauseValue[]): MatchPattern[] {
  const out: MatchPattern[] = [];
  for (const v of values) {
    if (typeof v !== 'string') continue;
    try {
      out.push(compileMatchPattern(v));
    } catch {
      // never matches (see above)
    }
  }
  return out;
}

function stringTest(values: readonly ClauseValue[], test: (attr: string, value: string) => boolean): Test {
  const strings = values.filter((v): v is string => typeof v === 'string');
  return (value) => {
    if (typeof value !== 'string') return MISMATCH;
    for (let i = 0; i < strings.length; i++) if (test(value, strings[i]!)) return true;
    return false;
  };
}

function numberTest(values: readonly ClauseValue[], test: (attr: number, value: number) => boolean): Test {
  const numbers = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return (value) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) return MISMATCH;
    for (let i = 0; i < numbers.length; i++) if (test(value, numbers[i]!)) return true;
    return false;
  };
}

function timeTest(values: readonly ClauseValue[], test: (attr: number, value: number) => boolean): Test {
  const times = values.map(parseTime).filter((t): t is number => t !== undefined);
  return (value) => {
    const t = parseTime(value);
    if (t === undefined) return MISMATCH;
    for (let i = 0; i < times.length; i++) if (test(t, times[i]!)) return true;
    return false;
  };
}

function semverTest(values: readonly ClauseValue[], test: (order: number) => boolean): Test {
  const versions = values
    .map((v) => (typeof v === 'string' ? parseSemver(v) : undefined))
    .filter((v): v is SemVer => v !== undefined);
  return (value) => {
    const version = typeof value === 'string' ? parseSemver(value) : undefined;
    if (!version) return MISMATCH;
    for (let i = 0; i < versions.length; i++) if (test(compareSemver(version, versions[i]!))) return true;
    return false;
  };
}

function isScalar(value: unknown): boolean {
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean';
}

function valueTest(
  op: Exclude<Operator, 'in' | 'notIn' | 'exists' | 'inSegment'>,
  values: readonly ClauseValue[],
): Test {
  switch (op) {
    case 'contains':
      return stringTest(values, (a, v) => a.includes(v));
    case 'startsWith':
      return stringTest(values, (a, v) => a.startsWith(v));
    case 'endsWith':
      return stringTest(values, (a, v) => a.endsWith(v));
    case 'matches': {
      const regexes = compileRegexes(values);
      // no usable pattern: the clause is false, negated or not (as for a type mismatch)
      if (regexes.length === 0) return () => MISMATCH;
      return (value) => {
        if (typeof value !== 'string') return MISMATCH;
        for (let i = 0; i < regexes.length; i++) if (regexes[i]!.test(value)) return true;
        return false;
      };
    }
    case 'lt':
      return numberTest(values, (a, v) => a < v);
    case 'lte':
      return numberTest(values, (a, v) => a <= v);
    case 'gt':
      return numberTest(values, (a, v) => a > v);
    case 'gte':
      return numberTest(values, (a, v) => a >= v);
    case 'before':
      return timeTest(values, (a, v) => a < v);
    case 'after':
      return timeTest(values, (a, v) => a > v);
    case 'semverEq':
      return semverTest(values, (order) => order === 0);
    case 'semverLt':
      return semverTest(values, (order) => order < 0);
    case 'semverGt':
      return semverTest(values, (order) => order > 0);
    default:
      return () => MISMATCH;
  }
}

/**
 * Runs `test` on an attribute value, or on each element of an array (any element matching is a
 * match). Absent values and type mismatches make the clause false before `negate`.
 */
function testValue(value: unknown, test: Test, negate: boolean): boolean {
  if (value === undefined || value === null) return false;
  if (!Array.isArray(value)) {
    const r = test(value);
    return r === MISMATCH ? false : r !== negate;
  }
  let fitted = false;
  for (let i = 0; i < value.length; i++) {
    const r = test(value[i]);
    if (r === true) return !negate;
    if (r === false) fitted = true;
  }
  return fitted ? negate : false;
}

// Clause kinds. `in`/`notIn` get their own kind because they are the most common clause and can be
// answered with one Set lookup inline; everything else goes through its operator's `test`.
const MEMBERSHIP = 0;
const TEST = 1;
const EXISTS = 2;
const SEGMENT = 3;

/**
 * A clause compiled once into plain data, read by `clauseMatches`. One shape for every operator, so
 * the hot loop makes no megamorphic calls for the common kinds.
 */
export interface CompiledClause {
  readonly kind: number;
  /** The attribute when it is a top-level property (read directly); otherwise undefined. */
  readonly name: string | undefined;
  readonly get: AttributeGetter;
  readonly negate: boolean;
  readonly set: ReadonlySet<unknown> | undefined;
  readonly list: readonly unknown[];
  readonly test: Test;
  readonly segments: readonly string[];
}

const NONE: readonly never[] = Object.freeze([]);
// Up to this many values a scan with === beats hashing the attribute for a Set lookup.
const SCAN_LIMIT = 8;
const noTest: Test = () => MISMATCH;
const noGetter: AttributeGetter = () => undefined;

/** Compiles a clause once; matching it never throws, whatever the context holds. */
export function compileClause(clause: Clause): CompiledClause {
  const op = clause.op;
  const membership = op === 'in' || op === 'notIn';
  const name = topLevelName(clause.attribute);
  return {
    kind: membership ? MEMBERSHIP : op === 'exists' ? EXISTS : op === 'inSegment' ? SEGMENT : TEST,
    name,
    get: name === undefined ? attributeGetter(clause.attribute) : noGetter,
    // `notIn` is `in` negated, arrays included
    negate: (clause.negate === true) !== (op === 'notIn'),
    set: membership && clause.values.length > SCAN_LIMIT ? new Set<unknown>(clause.values) : undefined,
    list: membership ? clause.values : NONE,
    test: membership || op === 'exists' || op === 'inSegment' ? noTest : valueTest(op, clause.values),
    segments: op === 'inSegment' ? clause.values.filter((v): v is string => typeof v === 'string') : NONE,
  };
}

function isMember(clause: CompiledClause, value: unknown): boolean {
  if (clause.set !== undefined) return clause.set.has(value);
  const list = clause.list;
  for (let i = 0; i < list.length; i++) if (list[i] === value) return true;
  return false;
}

/** Whether one compiled clause matches the context. */
export function clauseMatches(clause: CompiledClause, ctx: Context, segments: SegmentLookup): boolean {
  const value = clause.name !== undefined ? ctx[clause.name] : clause.get(ctx);
  switch (clause.kind) {
    case MEMBERSHIP: {
      if (isScalar(value)) return isMember(clause, value) !== clause.negate;
      if (!Array.isArray(value)) return false;
      let fitted = false;
      for (let i = 0; i < value.length; i++) {
        if (!isScalar(value[i])) continue;
        if (isMember(clause, value[i])) return !clause.negate;
        fitted = true;
      }
      return fitted ? clause.negate : false;
    }
    case EXISTS:
      return (value !== undefined && value !== null && typeof value !== 'function') !== clause.negate;
    case SEGMENT: {
      if (value === undefined || value === null) return false;
      const keys = clause.segments;
      for (let i = 0; i < keys.length; i++) {
        if (segments.segmentContains(keys[i]!, ctx, value)) return !clause.negate;
      }
      return clause.negate;
    }
    default:
      return testValue(value, clause.test, clause.negate);
  }
}

/** True when every clause matches (an empty list matches everything). */
export function allMatch(clauses: readonly CompiledClause[], ctx: Context, segments: SegmentLookup): boolean {
  for (let i = 0; i < clauses.length; i++) if (!clauseMatches(clauses[i]!, ctx, segments)) return false;
  return true;
}
