import { z } from 'zod';
import {
  type Clause,
  type Flag,
  flagSchema,
  MAX_PREREQUISITE_DEPTH,
  type Rule,
  ruleSchema,
  type Segment,
  type Serve,
  segmentSchema,
  serveSchema,
  variantSchema,
  WEIGHT_TOTAL,
} from './flag.js';
import { compileMatchPattern } from './regex.js';
import { parseTime } from './time.js';

/** One reason a piece of configuration was refused, with the dot/bracket path of the field. */
export interface FieldIssue {
  field: string;
  message: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

/** `rules[0].clauses[1].values` from a zod path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/** Turn zod's issues into field issues, one per bad field. */
export function zodIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): FieldIssue[] {
  return error.issues.flatMap((issue) =>
    // an unknown key is named as its own field, not as its parent object
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          field: fieldPath([...prefix, ...issue.path, key]),
          message: 'unknown field',
        }))
      : [{ field: fieldPath([...prefix, ...issue.path]), message: issue.message }],
  );
}

// semver.org's recommended pattern for a SemVer 2.0.0 version.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** True when `value` is a SemVer 2.0.0 version (an optional leading `v` is allowed). */
export function isSemver(value: string): boolean {
  return SEMVER.test(value.startsWith('v') ? value.slice(1) : value);
}

/**
 * Why a `matches` pattern is refused, or undefined when it is acceptable: it must compile with the
 * engine every evaluator matches with (RE2, linear time), so what is accepted here cannot backtrack.
 */
export function regexProblem(pattern: string): string | undefined {
  try {
    compileMatchPattern(pattern);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * The `matches` values of stored clauses that the engine refuses, with their field paths: flags and
 * segments written before RE2 became the engine may hold them. Such a clause never matches.
 */
export function refusedPatterns(item: Flag | Segment): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const check = (clause: Clause, at: string) => {
    if (clause.op !== 'matches') return;
    clause.values.forEach((value, v) => {
      const problem = typeof value === 'string' ? regexProblem(value) : undefined;
      if (problem) issues.push({ field: `${at}.values[${v}]`, message: problem });
    });
  };
  if ('variants' in item) {
    item.rules.forEach((rule, r) => {
      rule.clauses.forEach((clause, c) => {
        check(clause, `rules[${r}].clauses[${c}]`);
      });
    });
  } else {
    item.rules.forEach((rule, r) => {
      rule.forEach((clause, c) => {
        check(clause, `rules[${r}][${c}]`);
      });
    });
  }
  return issues;
}

/** Check one clause's values against its operator. */
export function clauseIssues(clause: Clause, at: string): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const each = (check: (v: unknown) => string | undefined) => {
    clause.values.forEach((value, i) => {
      const problem = check(value);
      if (problem) issues.push({ field: `${at}.values[${i}]`, message: problem });
    });
  };
  switch (clause.op) {
    case 'contains':
    case 'startsWith':
    case 'endsWith':
    case 'inSegment':
      each((v) => (typeof v === 'string' ? undefined : `${clause.op} takes strings`));
      break;
    case 'matches':
      each((v) => (typeof v === 'string' ? regexProblem(v) : 'matches takes regex strings'));
      break;
    case 'lt':
    case 'lte':
    case 'gt':
    case 'gte':
      each((v) =>
        typeof v === 'number' && Number.isFinite(v) ? undefined : `${clause.op} takes finite numbers`,
      );
      break;
    case 'before':
    case 'after':
      each((v) =>
        parseTime(v) !== undefined ? undefined : `${clause.op} takes ISO 8601 dates or epoch milliseconds`,
      );
      break;
    case 'semverEq':
    case 'semverLt':
    case 'semverGt':
      each((v) =>
        typeof v === 'string' && isSemver(v) ? undefined : `${clause.op} takes semantic versions`,
      );
      break;
    case 'exists':
      if (clause.values.length > 0) issues.push({ field: `${at}.values`, message: 'exists takes no values' });
      break;
    default:
      break;
  }
  if (clause.op !== 'exists' && clause.values.length === 0) {
    issues.push({ field: `${at}.values`, message: `${clause.op} needs at least one value` });
  }
  return issues;
}

function duplicates<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  at: (i: number) => string,
): FieldIssue[] {
  const seen = new Set<string>();
  const issues: FieldIssue[] = [];
  items.forEach((item, i) => {
    const key = keyOf(item);
    if (seen.has(key)) issues.push({ field: at(i), message: `duplicate key "${key}"` });
    seen.add(key);
  });
  return issues;
}

function kindOf(value: unknown): string {
  if (Array.isArray(value) || (typeof value === 'object' && value !== null)) return 'object';
  return typeof value;
}

function serveIssues(serve: Serve, variants: ReadonlySet<string>, at: string): FieldIssue[] {
  if ('variant' in serve) {
    return variants.has(serve.variant)
      ? []
      : [{ field: `${at}.variant`, message: `unknown variant "${serve.variant}"` }];
  }
  const issues: FieldIssue[] = [];
  const { weights } = serve.rollout;
  weights.forEach((w, i) => {
    if (!variants.has(w.variant)) {
      issues.push({
        field: `${at}.rollout.weights[${i}].variant`,
        message: `unknown variant "${w.variant}"`,
      });
    }
  });
  issues.push(
    ...duplicates(
      weights,
      (w) => w.variant,
      (i) => `${at}.rollout.weights[${i}].variant`,
    ),
  );
  const sum = weights.reduce((total, w) => total + w.weight, 0);
  if (sum !== WEIGHT_TOTAL) {
    issues.push({ field: `${at}.rollout.weights`, message: `weights sum to ${sum}, not ${WEIGHT_TOTAL}` });
  }
  return issues;
}

function ruleIssues(rule: Rule, r: number, variants: ReadonlySet<string> | undefined): FieldIssue[] {
  const issues = rule.clauses.flatMap((clause, c) => clauseIssues(clause, `rules[${r}].clauses[${c}]`));
  if (variants) issues.push(...serveIssues(rule.serve, variants, `rules[${r}].serve`));
  return issues;
}

/**
 * The checks `flagIssues` makes, on whichever parts of a flag that failed its schema are well
 * formed on their own, so one answer names every bad field. Variant references are checked only
 * when every variant is well formed (otherwise "unknown variant" would be noise).
 */
function partialFlagIssues(input: unknown): FieldIssue[] {
  if (typeof input !== 'object' || input === null) return [];
  const raw = input as Record<string, unknown>;
  const parsedVariants = z.array(variantSchema).min(1).safeParse(raw.variants);
  const variants = parsedVariants.success ? new Set(parsedVariants.data.map((v) => v.key)) : undefined;
  const issues: FieldIssue[] = [];
  if (Array.isArray(raw.rules)) {
    raw.rules.forEach((rule, r) => {
      const parsed = ruleSchema.safeParse(rule);
      if (parsed.success) issues.push(...ruleIssues(parsed.data, r, variants));
    });
  }
  const fallthrough = serveSchema.safeParse(raw.fallthrough);
  if (fallthrough.success && variants) issues.push(...serveIssues(fallthrough.data, variants, 'fallthrough'));
  if (variants && typeof raw.offVariant === 'string' && !variants.has(raw.offVariant)) {
    issues.push({ field: 'offVariant', message: `unknown variant "${raw.offVariant}"` });
  }
  return issues;
}

/** Checks inside one well-formed flag that its schema cannot express. */
export function flagIssues(flag: Flag): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const variants = new Set(flag.variants.map((v) => v.key));
  issues.push(
    ...duplicates(
      flag.variants,
      (v) => v.key,
      (i) => `variants[${i}].key`,
    ),
  );
  const kinds = new Set(flag.variants.map((v) => kindOf(v.value)));
  if (kinds.size > 1) {
    issues.push({ field: 'variants', message: `variant values mix types (${[...kinds].join(', ')})` });
  }
  if (!variants.has(flag.offVariant)) {
    issues.push({ field: 'offVariant', message: `unknown variant "${flag.offVariant}"` });
  }
  issues.push(
    ...duplicates(
      flag.rules,
      (r) => r.id,
      (i) => `rules[${i}].id`,
    ),
  );
  flag.rules.forEach((rule, r) => {
    issues.push(...ruleIssues(rule, r, variants));
  });
  issues.push(...serveIssues(flag.fallthrough, variants, 'fallthrough'));
  issues.push(
    ...duplicates(
      flag.prerequisites,
      (p) => p.flag,
      (i) => `prerequisites[${i}].flag`,
    ),
  );
  flag.prerequisites.forEach((p, i) => {
    if (p.flag === flag.key)
      issues.push({ field: `prerequisites[${i}].flag`, message: 'a flag cannot require itself' });
  });
  if (flag.schedule) {
    if (!variants.has(flag.schedule.variant)) {
      issues.push({ field: 'schedule.variant', message: `unknown variant "${flag.schedule.variant}"` });
    }
    if (flag.schedule.stepIndex >= flag.schedule.steps.length) {
      issues.push({
        field: 'schedule.stepIndex',
        message: `no step ${flag.schedule.stepIndex} in the schedule`,
      });
    }
    flag.schedule.steps.forEach((step, i) => {
      const previous = flag.schedule!.steps[i - 1];
      if (previous && step.percent < previous.percent) {
        issues.push({
          field: `schedule.steps[${i}].percent`,
          message: 'steps must not lower the percentage',
        });
      }
    });
  }
  return issues;
}

/** Checks inside one well-formed segment that its schema cannot express. */
export function segmentIssues(segment: Segment): FieldIssue[] {
  const issues: FieldIssue[] = [];
  segment.rules.forEach((rule, r) => {
    rule.forEach((clause, c) => {
      const at = `rules[${r}][${c}]`;
      if (clause.op === 'inSegment')
        issues.push({ field: `${at}.op`, message: 'segments cannot nest other segments' });
      else issues.push(...clauseIssues(clause, at));
    });
  });
  return issues;
}

/** Parse and check a flag as written by a client: every bad field is named. */
export function validateFlag(input: unknown): Validated<Flag> {
  const parsed = flagSchema.safeParse(input);
  if (!parsed.success)
    return { ok: false, issues: [...zodIssues(parsed.error), ...partialFlagIssues(input)] };
  const issues = flagIssues(parsed.data);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: parsed.data };
}

/** Parse and check a segment as written by a client: every bad field is named. */
export function validateSegment(input: unknown): Validated<Segment> {
  const parsed = segmentSchema.safeParse(input);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error) };
  const issues = segmentIssues(parsed.data);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: parsed.data };
}

/**
 * Checks that span flags: prerequisites name existing flags and variants, no prerequisite cycle,
 * `inSegment` names existing segments. `flags` is the environment as it would be after the write;
 * only issues involving `changed` (the flag being written) are reported.
 */
export function environmentIssues(
  changed: Flag,
  flags: ReadonlyMap<string, Flag>,
  segments: ReadonlySet<string>,
): FieldIssue[] {
  const issues: FieldIssue[] = [];
  changed.prerequisites.forEach((p, i) => {
    const required = flags.get(p.flag);
    if (!required) issues.push({ field: `prerequisites[${i}].flag`, message: `unknown flag "${p.flag}"` });
    else if (!required.variants.some((v) => v.key === p.variant)) {
      issues.push({
        field: `prerequisites[${i}].variant`,
        message: `flag "${p.flag}" has no variant "${p.variant}"`,
      });
    }
  });
  const cycle = prerequisiteCycle(changed.key, flags);
  if (cycle) issues.push({ field: 'prerequisites', message: `prerequisite cycle: ${cycle.join(' → ')}` });
  else {
    const chain = longestPrerequisiteChain(flags);
    if (chain.length - 1 > MAX_PREREQUISITE_DEPTH) {
      issues.push({
        field: 'prerequisites',
        message: `prerequisite chain of ${chain.length - 1} links exceeds ${MAX_PREREQUISITE_DEPTH}: ${chain.join(' → ')}`,
      });
    }
  }
  changed.rules.forEach((rule, r) => {
    rule.clauses.forEach((clause, c) => {
      if (clause.op !== 'inSegment') return;
      clause.values.forEach((value, v) => {
        if (!segments.has(String(value))) {
          issues.push({
            field: `rules[${r}].clauses[${c}].values[${v}]`,
            message: `unknown segment "${value}"`,
          });
        }
      });
    });
  });
  return issues;
}

/**
 * The longest prerequisite chain in an acyclic environment, as keys from the requiring flag down
 * (one key for an environment without prerequisites). Links to unknown flags end a chain.
 */
export function longestPrerequisiteChain(flags: ReadonlyMap<string, Flag>): string[] {
  const below = new Map<string, string[]>();
  const visiting = new Set<string>();
  const chainFrom = (key: string): string[] => {
    const known = below.get(key);
    if (known) return known;
    let longest: string[] = [];
    if (!visiting.has(key)) {
      visiting.add(key);
      for (const p of flags.get(key)?.prerequisites ?? []) {
        if (!flags.has(p.flag)) continue;
        const chain = chainFrom(p.flag);
        if (chain.length > longest.length) longest = chain;
      }
      visiting.delete(key);
    }
    const chain = [key, ...longest];
    below.set(key, chain);
    return chain;
  };
  let best: string[] = [];
  for (const key of flags.keys()) {
    const chain = chainFrom(key);
    if (chain.length > best.length) best = chain;
  }
  return best;
}

/** The first prerequisite cycle through `start`, as a list of keys ending where it began, if any. */
export function prerequisiteCycle(start: string, flags: ReadonlyMap<string, Flag>): string[] | undefined {
  const path: string[] = [];
  const done = new Set<string>();
  const visit = (key: string): string[] | undefined => {
    // path[0] is start: a key met again further along closes a cycle that does not pass through
    // start, which is not this write's to report and must not hide one that does
    const at = path.indexOf(key);
    if (at >= 0) return at === 0 ? [...path, key] : undefined;
    if (done.has(key)) return undefined;
    path.push(key);
    for (const p of flags.get(key)?.prerequisites ?? []) {
      const cycle = visit(p.flag);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(key);
    return undefined;
  };
  return visit(start);
}
