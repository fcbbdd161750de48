// Pure logic over the flag model for the editor and the lists: rule and clause editing, serves and
// weights, what a flag serves now, and its state. No React, no I/O: unit-tested in test/flag-model.test.ts.
import type { Clause, ClauseValue, FlagInput, Operator, Rule, Serve, VariantValue } from '@vigil/proto';

/** Weights are thousandths of a percent (proto's WEIGHT_TOTAL). */
export const WEIGHT_TOTAL = 100_000;

/** How the editor treats each operator's values. A Record over `Operator`, so a new operator fails to type-check here. */
export const OPERATOR_INFO: Record<
  Operator,
  { label: string; values: 'list' | 'text' | 'number' | 'date' | 'semver' | 'segment' | 'regex' | 'none' }
> = {
  in: { label: 'is one of', values: 'list' },
  notIn: { label: 'is not one of', values: 'list' },
  contains: { label: 'contains', values: 'text' },
  startsWith: { label: 'starts with', values: 'text' },
  endsWith: { label: 'ends with', values: 'text' },
  matches: { label: 'matches regex', values: 'regex' },
  lt: { label: '<', values: 'number' },
  lte: { label: '≤', values: 'number' },
  gt: { label: '>', values: 'number' },
  gte: { label: '≥', values: 'number' },
  before: { label: 'is before (date)', values: 'date' },
  after: { label: 'is after (date)', values: 'date' },
  semverEq: { label: 'semver =', values: 'semver' },
  semverLt: { label: 'semver <', values: 'semver' },
  semverGt: { label: 'semver >', values: 'semver' },
  inSegment: { label: 'is in segment', values: 'segment' },
  exists: { label: 'exists', values: 'none' },
};

export const OPERATOR_LIST = Object.keys(OPERATOR_INFO) as Operator[];

/** How the values of an `in`/`notIn` clause are typed. */
export type ValueKind = 'string' | 'number' | 'boolean';

/** The kind of a clause's values as stored: number or boolean when all are, else string. */
export function valueKindOf(values: readonly ClauseValue[]): ValueKind {
  if (values.length > 0 && values.every((v) => typeof v === 'number')) return 'number';
  if (values.length > 0 && values.every((v) => typeof v === 'boolean')) return 'boolean';
  return 'string';
}

/** The values as the editor shows them: one per line. */
export function formatClauseValues(values: readonly ClauseValue[]): string {
  return values.map((v) => String(v)).join('\n');
}

/**
 * The values typed in the editor (one per line; blank lines dropped) for operator `op`, typed as the
 * server expects: numbers for `lt`…`gte`, `kind` for `in`/`notIn`, strings otherwise (dates stay
 * ISO strings, or numbers when written as epoch ms). Errors name the line.
 */
export function parseClauseValues(
  text: string,
  op: Operator,
  kind: ValueKind = 'string',
): { values: ClauseValue[]; errors: string[] } {
  const info = OPERATOR_INFO[op];
  if (info.values === 'none') return { values: [], errors: [] };
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const values: ClauseValue[] = [];
  const errors: string[] = [];
  lines.forEach((line, i) => {
    const asNumber = () => {
      const n = Number(line);
      if (!Number.isFinite(n)) errors.push(`line ${i + 1}: "${line}" is not a number`);
      else values.push(n);
    };
    if (info.values === 'number') asNumber();
    else if (info.values === 'list' && kind === 'number') asNumber();
    else if (info.values === 'list' && kind === 'boolean') {
      if (line === 'true' || line === 'false') values.push(line === 'true');
      else errors.push(`line ${i + 1}: "${line}" is not true or false`);
    } else if (info.values === 'date') {
      if (/^\d+$/.test(line)) values.push(Number(line));
      else if (Number.isNaN(Date.parse(line))) errors.push(`line ${i + 1}: "${line}" is not a date`);
      else values.push(line);
    } else if (info.values === 'semver') {
      if (!/^v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(line))
        errors.push(`line ${i + 1}: "${line}" is not a semantic version`);
      values.push(line);
    } else values.push(line);
  });
  return { values, errors };
}

/** A clause with its values re-typed for a new operator (values that no longer fit are kept as text). */
export function withOperator(clause: Clause, op: Operator): Clause {
  const next: Clause = { ...clause, op };
  if (OPERATOR_INFO[op].values === 'none') next.values = [];
  else if (OPERATOR_INFO[op].values === 'number') {
    next.values = clause.values.map((v) =>
      typeof v === 'string' && Number.isFinite(Number(v)) ? Number(v) : v,
    );
  } else if (OPERATOR_INFO[op].values !== 'list') next.values = clause.values.map((v) => String(v));
  return next;
}

/** A rule id not used by any rule of `rules`: `rule-1`, `rule-2`, … */
export function freshRuleId(rules: readonly Rule[]): string {
  const used = new Set(rules.map((r) => r.id));
  for (let n = rules.length + 1; ; n++) if (!used.has(`rule-${n}`)) return `rule-${n}`;
}

/** Rules with a new one at the end: one `in` clause on `key`, serving the first variant that is not off. */
export function addRule(flag: FlagInput): Rule[] {
  const rules = flag.rules ?? [];
  const serveVariant = flag.variants.find((v) => v.key !== flag.offVariant)?.key ?? flag.offVariant;
  return [
    ...rules,
    {
      id: freshRuleId(rules),
      clauses: [{ attribute: 'key', op: 'in', values: [] }],
      serve: { variant: serveVariant },
    },
  ];
}

/** Moves an element `delta` places (clamped); the same array when it cannot move. */
export function move<T>(list: readonly T[], index: number, delta: number): T[] {
  const to = Math.max(0, Math.min(list.length - 1, index + delta));
  if (to === index || index < 0 || index >= list.length) return [...list];
  const next = [...list];
  const [item] = next.splice(index, 1);
  next.splice(to, 0, item as T);
  return next;
}

/** The list with element `index` replaced by `update(element)`. */
export function replaceAt<T>(list: readonly T[], index: number, update: (item: T) => T): T[] {
  return list.map((item, i) => (i === index ? update(item) : item));
}

export function removeAt<T>(list: readonly T[], index: number): T[] {
  return list.filter((_, i) => i !== index);
}

/** A copy of rule `index` inserted after it, with a fresh id. */
export function duplicateRule(rules: readonly Rule[], index: number): Rule[] {
  const rule = rules[index];
  if (!rule) return [...rules];
  const copy: Rule = structuredClone(rule);
  copy.id = freshRuleId(rules);
  const next = [...rules];
  next.splice(index + 1, 0, copy);
  return next;
}

/**
 * The flag with variant `from` renamed to `to` everywhere it is referenced: `offVariant`, every serve
 * (rules, fallthrough, rollout weights) and the schedule's variant.
 */
export function renameVariant(flag: FlagInput, from: string, to: string): FlagInput {
  const serve = (s: Serve): Serve =>
    'variant' in s
      ? s.variant === from
        ? { variant: to }
        : s
      : {
          rollout: {
            ...s.rollout,
            weights: s.rollout.weights.map((w) => (w.variant === from ? { ...w, variant: to } : w)),
          },
        };
  const next: FlagInput = {
    ...flag,
    variants: flag.variants.map((v) => (v.key === from ? { ...v, key: to } : v)),
    offVariant: flag.offVariant === from ? to : flag.offVariant,
    rules: (flag.rules ?? []).map((r) => ({ ...r, serve: serve(r.serve) })),
    fallthrough: serve(flag.fallthrough),
  };
  if (flag.schedule && flag.schedule.variant === from) next.schedule = { ...flag.schedule, variant: to };
  return next;
}

/** A weight as a percentage (thousandths of a percent → percent). */
export const weightToPercent = (weight: number) => weight / 1000;

/** A percentage as a weight, rounded to the nearest thousandth of a percent. */
export const percentToWeight = (percent: number) => Math.round(percent * 1000);

/** Sum of a rollout's weights and whether it is exactly 100%. */
export function weightsTotal(weights: readonly { weight: number }[]): { total: number; complete: boolean } {
  const total = weights.reduce((s, w) => s + w.weight, 0);
  return { total, complete: total === WEIGHT_TOTAL };
}

/** Weights with the last one adjusted so they sum to 100% (the others unchanged, none below 0). */
export function balanceWeights<W extends { weight: number }>(weights: readonly W[]): W[] {
  if (weights.length === 0) return [];
  const rest = weights.slice(0, -1).reduce((s, w) => s + w.weight, 0);
  const last = weights[weights.length - 1]!;
  return [...weights.slice(0, -1), { ...last, weight: Math.max(0, WEIGHT_TOTAL - rest) }];
}

/** A serve switched between a fixed variant and a rollout (a 50/50 split of the first two variants). */
export function toggleServeKind(serve: Serve, variants: readonly string[], offVariant: string): Serve {
  if ('rollout' in serve) {
    const top = [...serve.rollout.weights].sort((a, b) => b.weight - a.weight)[0];
    return { variant: top?.variant ?? variants[0] ?? offVariant };
  }
  const other = variants.find((v) => v !== serve.variant) ?? offVariant;
  const first = serve.variant;
  if (other === first) return { rollout: { weights: [{ variant: first, weight: WEIGHT_TOTAL }] } };
  return {
    rollout: {
      weights: [
        { variant: first, weight: WEIGHT_TOTAL / 2 },
        { variant: other, weight: WEIGHT_TOTAL / 2 },
      ],
    },
  };
}

/** A serve in words: `on`, or `on 20% · off 80%` (with exposure when it is below 100%). */
export function describeServe(serve: Serve): string {
  if ('variant' in serve) return serve.variant;
  const parts = serve.rollout.weights
    .filter((w) => w.weight > 0)
    .map((w) => `${w.variant} ${formatPercent(w.weight)}`);
  const text = parts.join(' · ') || 'nothing';
  return serve.rollout.exposure !== undefined && serve.rollout.exposure < WEIGHT_TOTAL
    ? `${text} (exposure ${formatPercent(serve.rollout.exposure)})`
    : text;
}

/** A weight as `20%` or `12.5%`. */
export function formatPercent(weight: number): string {
  return `${Number((weight / 1000).toFixed(3))}%`;
}

/** What the flag serves now, in words, for a list row. */
export function describeServing(flag: FlagInput): string {
  if (flag.killed) return `${flag.offVariant} (killed)`;
  if (!flag.enabled) return `${flag.offVariant} (disabled)`;
  const rules = flag.rules ?? [];
  const fall = describeServe(flag.fallthrough);
  if (rules.length === 0) return fall;
  return `${rules.length} rule${rules.length === 1 ? '' : 's'}, else ${fall}`;
}

/** The states the list filters on; a flag may be in several (`on` only when in none of the others). */
export const FLAG_STATES = ['killed', 'disabled', 'unhealthy', 'rolling-out', 'guarded', 'on'] as const;
export type FlagState = (typeof FLAG_STATES)[number];

/** Whether any serve of the flag splits traffic, or a schedule is still to run. */
export function isRollingOut(flag: FlagInput): boolean {
  const status = flag.schedule?.status;
  if (status === 'pending' || status === 'running' || status === 'paused') return true;
  const splits = (s: Serve) => 'rollout' in s && s.rollout.weights.filter((w) => w.weight > 0).length > 1;
  return splits(flag.fallthrough) || (flag.rules ?? []).some((r) => splits(r.serve));
}

/** Every state the flag is in, most urgent first; `unhealthy` comes from the guardian (an open incident). */
export function flagStates(flag: FlagInput, unhealthy = false): FlagState[] {
  const states: FlagState[] = [];
  if (flag.killed) states.push('killed');
  if (!flag.enabled) states.push('disabled');
  if (unhealthy) states.push('unhealthy');
  if (isRollingOut(flag)) states.push('rolling-out');
  if (flag.guard && flag.guard.enabled !== false) states.push('guarded');
  if (states.length === 0) states.push('on');
  return states;
}

/** A variant's value as the editor shows it: JSON text (strings quoted). */
export function formatVariantValue(value: VariantValue): string {
  return JSON.stringify(value);
}

/** A variant value typed in the editor: JSON (a bare word that is not JSON is taken as a string). */
export function parseVariantValue(text: string): { value?: VariantValue; error?: string } {
  const t = text.trim();
  if (t === '') return { error: 'a value is required' };
  try {
    const v = JSON.parse(t) as unknown;
    if (v === null) return { error: 'null is not a variant value' };
    return { value: v as VariantValue };
  } catch {
    if (/^[\s\S]*[{}[\]][\s\S]*$/.test(t)) return { error: 'not valid JSON' };
    return { value: t };
  }
}

/** Fields the server sets; the editor neither shows them as edits nor sends them back changed. */
export const SERVER_FIELDS = [
  'version',
  'createdAt',
  'updatedAt',
  'killed',
  'killedAt',
  'killedBy',
  'killReason',
] as const;

/** The part of a flag an edit may change: without the fields the server sets (the schedule stays, the server keeps it). */
export function editable(flag: FlagInput): FlagInput {
  const copy = structuredClone(flag) as Record<string, unknown>;
  for (const k of SERVER_FIELDS) delete copy[k];
  return copy as FlagInput;
}

/** A new boolean flag, on for no one until a rule or the fallthrough says otherwise. */
export function newBooleanFlag(key: string): FlagInput {
  return {
    key,
    description: '',
    tags: [],
    variants: [
      { key: 'on', value: true },
      { key: 'off', value: false },
    ],
    offVariant: 'off',
    enabled: false,
    rules: [],
    fallthrough: { variant: 'on' },
    prerequisites: [],
    clientSide: false,
  };
}

/** Tags typed as `a, b, c`. */
export function parseTags(text: string): string[] {
  return [
    ...new Set(
      text
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== ''),
    ),
  ];
}

/** The list's filter: free text over key, description, tags and owner; a tag; a state. */
export interface FlagFilter {
  query: string;
  tag: string;
  state: FlagState | '';
}

/** The flags that pass the filter, in their order; `unhealthy` holds the keys with an open incident. */
export function filterFlags<F extends FlagInput>(
  flags: readonly F[],
  filter: FlagFilter,
  unhealthy: ReadonlySet<string> = new Set(),
): F[] {
  const words = filter.query.toLowerCase().split(/\s+/).filter(Boolean);
  return flags.filter((flag) => {
    if (filter.tag && !(flag.tags ?? []).includes(filter.tag)) return false;
    if (filter.state && !flagStates(flag, unhealthy.has(flag.key)).includes(filter.state)) return false;
    if (words.length === 0) return true;
    const hay =
      `${flag.key} ${flag.description ?? ''} ${(flag.tags ?? []).join(' ')} ${flag.owner ?? ''}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}
