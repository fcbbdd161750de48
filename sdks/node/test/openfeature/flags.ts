import type { FlagMetadata } from '@openfeature/server-sdk';
import type { Clause, FlagInput, Rule, VariantValue } from '@vigil/proto';

/** One flag of the spec's test-flags.json (flagd-style, targeting written in CEL). */
export interface TestFlag {
  variants: Record<string, VariantValue>;
  defaultVariant?: string | null;
  disabled?: boolean;
  contextEvaluator?: string;
  flagMetadata?: FlagMetadata | null;
}

/** test-flags.json as Vigil flags, the metadata Vigil flags cannot carry, and the flags with no Vigil form. */
export interface TranslatedFlags {
  flags: FlagInput[];
  metadata: Record<string, FlagMetadata>;
  skipped: { key: string; reason: string }[];
}

/**
 * Translates test-flags.json into Vigil flags:
 * - `variants` → ordered `variants`; `defaultVariant` → `fallthrough` (and `offVariant`);
 * - `disabled: true` → `enabled: false`;
 * - `contextEvaluator` (`COND ? 'variant' : ''`) → a rule serving the variant when every clause of
 *   COND matches (`''` means "no variant": the fallthrough decides, reason DEFAULT);
 * - `flagMetadata` → returned separately: Vigil flags have no free-form metadata, so the harness hands it
 *   to the provider's `flagMetadata` option.
 * A flag without a default variant (flagd then returns the caller's default) has no Vigil form: Vigil
 * always serves a configured variant. Such flags are listed in `skipped`; the suites run do not use them.
 */
export function translateTestFlags(source: Record<string, TestFlag>): TranslatedFlags {
  const out: TranslatedFlags = { flags: [], metadata: {}, skipped: [] };
  for (const [key, flag] of Object.entries(source)) {
    const fallback = flag.defaultVariant;
    if (fallback === undefined || fallback === null) {
      out.skipped.push({ key, reason: 'no default variant (Vigil always serves a configured variant)' });
      continue;
    }
    const rules: Rule[] = [];
    if (flag.contextEvaluator !== undefined) {
      const target = parseCel(flag.contextEvaluator);
      rules.push({ id: 'cel', clauses: target.clauses, serve: { variant: target.then } });
      // A non-empty else branch is a decision of the targeting too: a catch-all rule (TARGETING_MATCH).
      if (target.else !== '') rules.push({ id: 'cel-else', clauses: [], serve: { variant: target.else } });
    }
    out.flags.push({
      key,
      variants: Object.entries(flag.variants).map(([variant, value]) => ({ key: variant, value })),
      offVariant: fallback,
      enabled: flag.disabled !== true,
      rules,
      fallthrough: { variant: fallback },
      version: 1,
    });
    if (flag.flagMetadata) out.metadata[key] = flag.flagMetadata;
  }
  return out;
}

/** A CEL targeting expression `COND ? 'then' : 'else'` with COND a conjunction, as Vigil clauses. */
export interface CelTarget {
  clauses: Clause[];
  then: string;
  else: string;
}

type Literal = string | number | boolean;
type Token =
  | { kind: 'ident'; name: string }
  | { kind: 'literal'; value: Literal }
  | { kind: 'op'; op: string };

const COMPARISONS: Record<string, Clause['op']> = { '<': 'lt', '<=': 'lte', '>': 'gt', '>=': 'gte' };

/**
 * Parses the CEL subset the spec's flags use: a ternary whose condition joins with `&&` terms of the form
 * `attr`, `!attr`, `attr == lit`, `attr != lit`, `attr < num` (`<=`, `>`, `>=`), in parentheses or not.
 * `targetingKey` is Vigil's `key`; dotted names are dot paths. Anything else throws, so a new construct in
 * the spec's flags fails loudly instead of being mistranslated.
 */
export function parseCel(expression: string): CelTarget {
  const tokens = tokenize(expression);
  let at = 0;
  const peek = (): Token | undefined => tokens[at];
  const fail = (what: string): never => {
    throw new Error(`unsupported CEL in ${JSON.stringify(expression)}: ${what} at token ${at}`);
  };
  const isOp = (op: string): boolean => {
    const t = peek();
    return t?.kind === 'op' && t.op === op;
  };
  const expect = (op: string): void => {
    if (!isOp(op)) fail(`expected '${op}'`);
    at++;
  };
  const ident = (): string => {
    const t = peek();
    if (t?.kind !== 'ident') return fail('expected an attribute');
    at++;
    return t.name === 'targetingKey' ? 'key' : t.name;
  };
  const literal = (): Literal => {
    const t = peek();
    if (t?.kind !== 'literal') return fail('expected a literal');
    at++;
    return t.value;
  };

  const conjunction = (): Clause[] => {
    const clauses = term();
    while (isOp('&&')) {
      at++;
      clauses.push(...term());
    }
    return clauses;
  };
  const term = (): Clause[] => {
    if (isOp('(')) {
      at++;
      const inner = conjunction();
      expect(')');
      return inner;
    }
    if (isOp('!')) {
      at++;
      return [{ attribute: ident(), op: 'in', values: [false] }];
    }
    const attribute = ident();
    const t = peek();
    if (t?.kind !== 'op' || !['==', '!=', '<', '<=', '>', '>='].includes(t.op)) {
      return [{ attribute, op: 'in', values: [true] }];
    }
    at++;
    const value = literal();
    if (t.op === '==') return [{ attribute, op: 'in', values: [value] }];
    if (t.op === '!=') return [{ attribute, op: 'notIn', values: [value] }];
    if (typeof value !== 'number') return fail(`'${t.op}' needs a number`);
    return [{ attribute, op: COMPARISONS[t.op]!, values: [value] }];
  };
  const variant = (): string => {
    const value = literal();
    return typeof value === 'string' ? value : fail('a branch must be a variant name');
  };

  const clauses = conjunction();
  expect('?');
  const then = variant();
  expect(':');
  const otherwise = variant();
  if (at !== tokens.length) fail('trailing input');
  return { clauses, then, else: otherwise };
}

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  const pattern =
    /\s*(?:(&&|==|!=|<=|>=|[<>!?:()])|'([^'\\]*)'|"([^"\\]*)"|(-?\d+(?:\.\d+)?)|([A-Za-z_][\w.]*))/y;
  let at = 0;
  while (at < expression.length) {
    if (/^\s*$/.test(expression.slice(at))) break;
    pattern.lastIndex = at;
    const m = pattern.exec(expression);
    if (!m) throw new Error(`unsupported CEL in ${JSON.stringify(expression)} at character ${at}`);
    at = pattern.lastIndex;
    const [, op, single, double, number, name] = m;
    if (op !== undefined) tokens.push({ kind: 'op', op });
    else if (single !== undefined || double !== undefined)
      tokens.push({ kind: 'literal', value: (single ?? double)! });
    else if (number !== undefined) tokens.push({ kind: 'literal', value: Number(number) });
    else if (name === 'true' || name === 'false') tokens.push({ kind: 'literal', value: name === 'true' });
    else tokens.push({ kind: 'ident', name: name! });
  }
  return tokens;
}
