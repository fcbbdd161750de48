import type { Clause, FlagInput, Operator, Rule, Severity, VariantValue } from '@vigil/proto';

type Guard = NonNullable<FlagInput['guard']>;

import { useEffect, useState } from 'react';
import type { FieldIssue } from '../lib/api.js';
import {
  addRule,
  duplicateRule,
  formatClauseValues,
  formatVariantValue,
  move,
  OPERATOR_INFO,
  OPERATOR_LIST,
  parseClauseValues,
  parseTags,
  parseVariantValue,
  removeAt,
  renameVariant,
  replaceAt,
  type ValueKind,
  valueKindOf,
  withOperator,
} from '../lib/flag-model.js';
import { fieldPath, issuesAt } from '../lib/issues.js';
import { ServeEditor } from './serve-editor.js';
import { Button, Field } from './ui.js';

interface FormProps {
  draft: FlagInput;
  onChange: (next: FlagInput) => void;
  issues: readonly FieldIssue[];
  isNew: boolean;
  readOnly: boolean;
  segments: string[];
  flagKeys: string[];
}

/** The flag's form: every part of the model but the kill switch and schedule (their own controls). */
export function FlagForm({ draft, onChange, issues, isNew, readOnly, segments, flagKeys }: FormProps) {
  const variants = draft.variants.map((v) => v.key);
  const set = <K extends keyof FlagInput>(k: K, v: FlagInput[K]) => onChange({ ...draft, [k]: v });
  const rules = draft.rules ?? [];
  const prerequisites = draft.prerequisites ?? [];
  return (
    <div className="flag-form">
      <datalist id="segment-keys">
        {segments.map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
      <datalist id="flag-keys">
        {flagKeys.map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
      <fieldset className="card" disabled={readOnly}>
        <legend>Basics</legend>
        <div className="grid-2">
          {isNew && (
            <Field
              label="Key"
              hint="Letters, digits, . _ - (starting with a letter or digit); it cannot change later."
              issues={issuesAt(issues, 'key')}
            >
              {(props) => (
                <input
                  {...props}
                  value={draft.key}
                  required
                  data-testid="flag-key-input"
                  onChange={(e) => onChange({ ...draft, key: e.target.value })}
                />
              )}
            </Field>
          )}
          <Field label="Owner" issues={issuesAt(issues, 'owner')}>
            {(props) => (
              <input
                {...props}
                value={draft.owner ?? ''}
                onChange={(e) => {
                  const { owner: _, ...rest } = draft;
                  onChange(e.target.value === '' ? rest : { ...rest, owner: e.target.value });
                }}
              />
            )}
          </Field>
          <Field label="Tags" hint="Comma-separated." issues={issuesAt(issues, 'tags')}>
            {(props) => (
              <TagsInput {...props} tags={draft.tags ?? []} onChange={(tags) => set('tags', tags)} />
            )}
          </Field>
          <Field
            label="Salt"
            hint="Hash salt for the splits; blank: the flag key. Changing it reshuffles who gets what."
            issues={issuesAt(issues, 'salt')}
          >
            {(props) => (
              <input
                {...props}
                value={draft.salt ?? ''}
                placeholder={draft.key}
                onChange={(e) => {
                  const { salt: _, ...rest } = draft;
                  onChange(e.target.value === '' ? rest : { ...rest, salt: e.target.value });
                }}
              />
            )}
          </Field>
        </div>
        <Field label="Description" issues={issuesAt(issues, 'description')}>
          {(props) => (
            <textarea
              {...props}
              rows={2}
              value={draft.description ?? ''}
              onChange={(e) => set('description', e.target.value)}
            />
          )}
        </Field>
        <div className="row">
          <label className="check">
            <input
              type="checkbox"
              checked={draft.enabled}
              onChange={(e) => set('enabled', e.target.checked)}
              data-testid="enabled"
            />{' '}
            Enabled <span className="muted">(when off, everyone gets the off variant)</span>
          </label>
          <label className="check">
            <input
              type="checkbox"
              checked={draft.clientSide ?? false}
              onChange={(e) => set('clientSide', e.target.checked)}
            />{' '}
            Visible to browser SDKs (clientSide)
          </label>
        </div>
      </fieldset>

      <fieldset className="card" disabled={readOnly}>
        <legend>Variants</legend>
        <table className="variants">
          <caption className="sr-only">Variants and their values</caption>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Value (JSON: true, "text", 42, {'{…}'}, […])</th>
              <th scope="col">Description</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {draft.variants.map((v, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: rows are edited in place by position; a key from their content would remount the input being typed in
              <tr key={i}>
                <td>
                  <CommitInput
                    label={`Key of variant ${i + 1}`}
                    value={v.key}
                    issues={issuesAt(issues, fieldPath('variants', i, 'key'))}
                    onCommit={(key) => onChange(renameVariant(draft, v.key, key))}
                  />
                </td>
                <td>
                  <VariantValueInput
                    label={`Value of variant ${v.key}`}
                    value={v.value as VariantValue}
                    issues={issuesAt(issues, fieldPath('variants', i, 'value'))}
                    onChange={(value) =>
                      set(
                        'variants',
                        replaceAt(draft.variants, i, (x) => ({ ...x, value })),
                      )
                    }
                  />
                </td>
                <td>
                  <input
                    aria-label={`Description of variant ${v.key}`}
                    value={v.description ?? ''}
                    onChange={(e) =>
                      set(
                        'variants',
                        replaceAt(draft.variants, i, (x) => {
                          const { description: _, ...rest } = x;
                          return e.target.value === '' ? rest : { ...rest, description: e.target.value };
                        }),
                      )
                    }
                  />
                </td>
                <td>
                  <Button
                    variant="ghost"
                    aria-label={`Remove variant ${v.key}`}
                    disabled={draft.variants.length <= 1}
                    onClick={() => set('variants', removeAt(draft.variants, i))}
                  >
                    Remove
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <IssueList
          issues={issuesAt(issues, 'variants').filter((i) => !/^variants\[\d+\]\.(key|value)/.test(i.field))}
        />
        <div className="row">
          <Button
            onClick={() =>
              set('variants', [
                ...draft.variants,
                { key: freshKey(variants, 'variant'), value: `variant-${variants.length + 1}` },
              ])
            }
          >
            Add a variant
          </Button>
          <Field
            label="Off variant"
            hint="Served when the flag is disabled or killed; the guardian's control."
            issues={issuesAt(issues, 'offVariant')}
            className="field-inline"
          >
            {(props) => (
              <select {...props} value={draft.offVariant} onChange={(e) => set('offVariant', e.target.value)}>
                {[...new Set([...variants, draft.offVariant])].map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
      </fieldset>

      <fieldset className="card" disabled={readOnly}>
        <legend>Prerequisites</legend>
        <p className="hint">
          Every listed flag must serve the listed variant, or this flag serves its off variant.
        </p>
        {prerequisites.length === 0 && <p className="muted">None.</p>}
        {prerequisites.map((p, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: rows are edited in place by position; a key from their content would remount the input being typed in
          <div className="row" key={i}>
            <Field
              label="Flag"
              issues={issuesAt(issues, fieldPath('prerequisites', i, 'flag'))}
              className="field-inline"
            >
              {(props) => (
                <input
                  {...props}
                  list="flag-keys"
                  value={p.flag}
                  onChange={(e) =>
                    set(
                      'prerequisites',
                      replaceAt(prerequisites, i, (x) => ({ ...x, flag: e.target.value })),
                    )
                  }
                />
              )}
            </Field>
            <Field
              label="serves variant"
              issues={issuesAt(issues, fieldPath('prerequisites', i, 'variant'))}
              className="field-inline"
            >
              {(props) => (
                <input
                  {...props}
                  value={p.variant}
                  onChange={(e) =>
                    set(
                      'prerequisites',
                      replaceAt(prerequisites, i, (x) => ({ ...x, variant: e.target.value })),
                    )
                  }
                />
              )}
            </Field>
            <Button variant="ghost" onClick={() => set('prerequisites', removeAt(prerequisites, i))}>
              Remove prerequisite {i + 1}
            </Button>
          </div>
        ))}
        <IssueList
          issues={issuesAt(issues, 'prerequisites').filter((i) => !/^prerequisites\[\d+\]\./.test(i.field))}
        />
        <Button onClick={() => set('prerequisites', [...prerequisites, { flag: '', variant: 'on' }])}>
          Add a prerequisite
        </Button>
      </fieldset>

      <fieldset className="card" disabled={readOnly}>
        <legend>Targeting rules</legend>
        <p className="hint">In order: the first rule whose clauses all match decides what a context gets.</p>
        {rules.length === 0 && <p className="muted">No rules: everyone gets the default serve.</p>}
        <ol className="rules">
          {rules.map((rule, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are edited in place by position; a key from their content would remount the input being typed in
            <li key={i} className="rule" data-testid="rule">
              <RuleEditor
                rule={rule}
                index={i}
                count={rules.length}
                variants={variants}
                offVariant={draft.offVariant}
                issues={issues}
                onChange={(r) =>
                  set(
                    'rules',
                    replaceAt(rules, i, () => r),
                  )
                }
                onMove={(delta) => set('rules', move(rules, i, delta))}
                onDuplicate={() => set('rules', duplicateRule(rules, i))}
                onRemove={() => set('rules', removeAt(rules, i))}
              />
            </li>
          ))}
        </ol>
        <IssueList issues={issuesAt(issues, 'rules').filter((i) => !/^rules\[\d+\]/.test(i.field))} />
        <Button onClick={() => set('rules', addRule(draft))} data-testid="add-rule">
          Add a rule
        </Button>
      </fieldset>

      <fieldset className="card" disabled={readOnly}>
        <legend>Default serve</legend>
        <ServeEditor
          label="When no rule matches (fallthrough)"
          serve={draft.fallthrough}
          onChange={(s) => set('fallthrough', s)}
          variants={variants}
          offVariant={draft.offVariant}
          path="fallthrough"
          issues={issues}
          disabled={readOnly}
        />
      </fieldset>

      <GuardEditor
        guard={draft.guard}
        onChange={(g) => {
          const { guard: _, ...rest } = draft;
          onChange(g === undefined ? rest : { ...rest, guard: g });
        }}
        issues={issues}
        readOnly={readOnly}
      />
    </div>
  );
}

function RuleEditor({
  rule,
  index,
  count,
  variants,
  offVariant,
  issues,
  onChange,
  onMove,
  onDuplicate,
  onRemove,
}: {
  rule: Rule;
  index: number;
  count: number;
  variants: string[];
  offVariant: string;
  issues: readonly FieldIssue[];
  onChange: (rule: Rule) => void;
  onMove: (delta: number) => void;
  onDuplicate: () => void;
  onRemove: () => void;
}) {
  const path = fieldPath('rules', index);
  return (
    <div className="card card-inner">
      <div className="rule-head">
        <h3>Rule {index + 1}</h3>
        <div className="row">
          <Button
            variant="ghost"
            onClick={() => onMove(-1)}
            disabled={index === 0}
            aria-label={`Move rule ${index + 1} up`}
          >
            ↑ Up
          </Button>
          <Button
            variant="ghost"
            onClick={() => onMove(1)}
            disabled={index === count - 1}
            aria-label={`Move rule ${index + 1} down`}
          >
            ↓ Down
          </Button>
          <Button variant="ghost" onClick={onDuplicate} aria-label={`Duplicate rule ${index + 1}`}>
            Duplicate
          </Button>
          <Button variant="ghost" onClick={onRemove} aria-label={`Delete rule ${index + 1}`}>
            Delete
          </Button>
        </div>
      </div>
      <div className="grid-2">
        <Field label="Rule id" issues={issuesAt(issues, fieldPath(path, 'id'))}>
          {(props) => (
            <input {...props} value={rule.id} onChange={(e) => onChange({ ...rule, id: e.target.value })} />
          )}
        </Field>
        <Field label="Description" issues={issuesAt(issues, fieldPath(path, 'description'))}>
          {(props) => (
            <input
              {...props}
              value={rule.description ?? ''}
              onChange={(e) => {
                const { description: _, ...rest } = rule;
                onChange(e.target.value === '' ? rest : { ...rest, description: e.target.value });
              }}
            />
          )}
        </Field>
      </div>
      <p className="muted">When all of these match:</p>
      {rule.clauses.length === 0 && <p className="muted">No clauses: the rule matches every context.</p>}
      {rule.clauses.map((clause, j) => (
        <ClauseEditor
          // biome-ignore lint/suspicious/noArrayIndexKey: rows are edited in place by position; a key from their content would remount the input being typed in
          key={j}
          clause={clause}
          path={fieldPath(path, 'clauses', j)}
          label={`Rule ${index + 1}, clause ${j + 1}`}
          issues={issues}
          onChange={(c) => onChange({ ...rule, clauses: replaceAt(rule.clauses, j, () => c) })}
          onRemove={() => onChange({ ...rule, clauses: removeAt(rule.clauses, j) })}
        />
      ))}
      <Button
        onClick={() =>
          onChange({ ...rule, clauses: [...rule.clauses, { attribute: 'key', op: 'in', values: [] }] })
        }
      >
        Add a clause
      </Button>
      <ServeEditor
        label="Then serve"
        serve={rule.serve}
        onChange={(serve) => onChange({ ...rule, serve })}
        variants={variants}
        offVariant={offVariant}
        path={fieldPath(path, 'serve')}
        issues={issues}
        disabled={false}
      />
    </div>
  );
}

/** One clause: attribute, operator (every one the server knows), values typed for the operator, negate. */
export function ClauseEditor({
  clause,
  path,
  label,
  issues,
  onChange,
  onRemove,
}: {
  clause: Clause;
  path: string;
  label: string;
  issues: readonly FieldIssue[];
  onChange: (clause: Clause) => void;
  onRemove: () => void;
}) {
  const info = OPERATOR_INFO[clause.op];
  const [kind, setKind] = useState<ValueKind>(valueKindOf(clause.values));
  const [text, setText] = useState(formatClauseValues(clause.values));
  const [errors, setErrors] = useState<string[]>([]);
  // Values replaced from outside (the JSON editor, a reload) show as they are.
  // biome-ignore lint/correctness/useExhaustiveDependencies: only an outside change of the values should reset the text
  useEffect(() => {
    const parsed = parseClauseValues(text, clause.op, kind);
    if (JSON.stringify(parsed.values) !== JSON.stringify(clause.values)) {
      setText(formatClauseValues(clause.values));
      setKind(valueKindOf(clause.values));
      setErrors([]);
    }
  }, [clause.values]);
  const update = (nextText: string, nextKind: ValueKind, op: Operator) => {
    setText(nextText);
    setKind(nextKind);
    const parsed = parseClauseValues(nextText, op, nextKind);
    setErrors(parsed.errors);
    onChange({ ...clause, op, values: parsed.values });
  };
  return (
    <fieldset className="clause" data-testid="clause">
      <legend className="sr-only">{label}</legend>
      <Field
        label="Attribute"
        issues={issuesAt(issues, fieldPath(path, 'attribute'))}
        className="field-inline"
      >
        {(props) => (
          <input
            {...props}
            value={clause.attribute}
            placeholder="country, plan, device.os"
            onChange={(e) => onChange({ ...clause, attribute: e.target.value })}
          />
        )}
      </Field>
      <label className="check">
        <input
          type="checkbox"
          checked={clause.negate ?? false}
          onChange={(e) => {
            const { negate: _, ...rest } = clause;
            onChange(e.target.checked ? { ...rest, negate: true } : rest);
          }}
        />{' '}
        not
      </label>
      <Field label="Operator" issues={issuesAt(issues, fieldPath(path, 'op'))} className="field-inline">
        {(props) => (
          <select
            {...props}
            value={clause.op}
            data-testid="clause-op"
            onChange={(e) => {
              const op = e.target.value as Operator;
              const next = withOperator(clause, op);
              setText(formatClauseValues(next.values));
              setErrors([]);
              onChange(next);
            }}
          >
            {OPERATOR_LIST.map((op) => (
              <option key={op} value={op}>
                {OPERATOR_INFO[op].label} ({op})
              </option>
            ))}
          </select>
        )}
      </Field>
      {info.values === 'list' && (
        <label className="field-inline">
          <span>Values are</span>
          <select value={kind} onChange={(e) => update(text, e.target.value as ValueKind, clause.op)}>
            <option value="string">text</option>
            <option value="number">numbers</option>
            <option value="boolean">true/false</option>
          </select>
        </label>
      )}
      {info.values !== 'none' && (
        <Field
          label={info.values === 'segment' ? 'Segments (one per line)' : 'Values (one per line)'}
          hint={valueHint(info.values)}
          issues={[
            ...issuesAt(issues, fieldPath(path, 'values')),
            ...errors.map((message) => ({ field: fieldPath(path, 'values'), message })),
          ]}
          className="field-grow"
        >
          {(props) =>
            info.values === 'segment' ? (
              <SegmentValues {...props} text={text} onText={(t) => update(t, kind, clause.op)} />
            ) : (
              <textarea
                {...props}
                rows={Math.min(6, Math.max(2, clause.values.length + 1))}
                value={text}
                data-testid="clause-values"
                onChange={(e) => update(e.target.value, kind, clause.op)}
              />
            )
          }
        </Field>
      )}
      <Button variant="ghost" onClick={onRemove} aria-label={`Remove ${label.toLowerCase()}`}>
        Remove
      </Button>
    </fieldset>
  );
}

function valueHint(kind: (typeof OPERATOR_INFO)[Operator]['values']): string | undefined {
  switch (kind) {
    case 'number':
      return 'Numbers.';
    case 'date':
      return 'ISO dates (2026-01-31T00:00:00Z) or epoch milliseconds.';
    case 'semver':
      return 'Semantic versions, e.g. 2.4.0.';
    case 'regex':
      return 'RE2 regular expressions (no backreferences), at most 256 characters.';
    default:
      return undefined;
  }
}

function SegmentValues({
  text,
  onText,
  ...props
}: {
  text: string;
  onText: (t: string) => void;
  id: string;
}) {
  return (
    <textarea
      {...props}
      rows={2}
      value={text}
      onChange={(e) => onText(e.target.value)}
      placeholder="beta-testers"
    />
  );
}

/** The guard policy; blank fields take the guardian's defaults. */
function GuardEditor({
  guard,
  onChange,
  issues,
  readOnly,
}: {
  guard: Guard | undefined;
  onChange: (guard: Guard | undefined) => void;
  issues: readonly FieldIssue[];
  readOnly: boolean;
}) {
  const g = guard ?? { enabled: true };
  const num = (k: 'maxP99LatencyMs' | 'minSamples' | 'consecutiveFailures', label: string, hint: string) => (
    <Field label={label} hint={hint} issues={issuesAt(issues, fieldPath('guard', k))}>
      {(props) => (
        <input
          {...props}
          type="number"
          min={k === 'maxP99LatencyMs' ? 0 : 1}
          value={g[k] ?? ''}
          onChange={(e) => {
            const { [k]: _, ...rest } = g;
            onChange(e.target.value === '' ? rest : { ...rest, [k]: Number(e.target.value) });
          }}
        />
      )}
    </Field>
  );
  const rate = (k: 'maxErrorRate' | 'minSuccessRate', label: string) => (
    <Field
      label={label}
      hint="Percent; blank: the service default."
      issues={issuesAt(issues, fieldPath('guard', k))}
    >
      {(props) => (
        <input
          {...props}
          type="number"
          min={0}
          max={100}
          step={0.01}
          value={g[k] === undefined ? '' : Number((g[k]! * 100).toFixed(4))}
          onChange={(e) => {
            const { [k]: _, ...rest } = g;
            onChange(e.target.value === '' ? rest : { ...rest, [k]: Number(e.target.value) / 100 });
          }}
        />
      )}
    </Field>
  );
  const tri = (k: 'autoKill' | 'compareToControl', label: string) => (
    <Field label={label} issues={issuesAt(issues, fieldPath('guard', k))}>
      {(props) => (
        <select
          {...props}
          value={g[k] === undefined ? '' : String(g[k])}
          onChange={(e) => {
            const { [k]: _, ...rest } = g;
            onChange(e.target.value === '' ? rest : { ...rest, [k]: e.target.value === 'true' });
          }}
        >
          <option value="">service default</option>
          <option value="true">yes</option>
          <option value="false">no</option>
        </select>
      )}
    </Field>
  );
  return (
    <fieldset className="card" disabled={readOnly}>
      <legend>Guardian policy</legend>
      <label className="check">
        <input
          type="checkbox"
          checked={guard !== undefined && guard.enabled !== false}
          onChange={(e) =>
            onChange(
              e.target.checked ? { ...g, enabled: true } : guard ? { ...g, enabled: false } : undefined,
            )
          }
        />{' '}
        Guarded: the guardian compares each served variant against the off variant and acts on a regression
      </label>
      {guard !== undefined && (
        <div className="grid-3">
          <Field label="Severity floor" issues={issuesAt(issues, 'guard.severity')}>
            {(props) => (
              <select
                {...props}
                value={g.severity ?? ''}
                onChange={(e) => {
                  const { severity: _, ...rest } = g;
                  onChange(e.target.value === '' ? rest : { ...rest, severity: e.target.value as Severity });
                }}
              >
                <option value="">from the measured impact</option>
                <option value="sev1">sev1</option>
                <option value="sev2">sev2</option>
                <option value="sev3">sev3</option>
              </select>
            )}
          </Field>
          {tri('autoKill', 'Kill automatically')}
          {tri('compareToControl', 'Compare to control')}
          {rate('maxErrorRate', 'Max error rate (%)')}
          {rate('minSuccessRate', 'Min success rate (%)')}
          {num('maxP99LatencyMs', 'Max p99 latency (ms)', 'Blank: the service default.')}
          {num('minSamples', 'Minimum samples', 'Requests per cohort before a verdict.')}
          {num('consecutiveFailures', 'Consecutive failures', 'Failing evaluations before acting.')}
        </div>
      )}
    </fieldset>
  );
}

function IssueList({ issues }: { issues: readonly FieldIssue[] }) {
  if (issues.length === 0) return null;
  return (
    <ul className="field-error" data-testid="field-error">
      {issues.map((i) => (
        <li key={i.field + i.message}>
          <code>{i.field}</code> {i.message}
        </li>
      ))}
    </ul>
  );
}

function TagsInput({
  tags,
  onChange,
  ...props
}: {
  tags: string[];
  onChange: (tags: string[]) => void;
  id: string;
}) {
  const [text, setText] = useState(tags.join(', '));
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset only when the tags change from outside
  useEffect(() => {
    if (parseTags(text).join(',') !== tags.join(',')) setText(tags.join(', '));
  }, [tags]);
  return (
    <input
      {...props}
      value={text}
      onChange={(e) => {
        setText(e.target.value);
        onChange(parseTags(e.target.value));
      }}
    />
  );
}

/** An input that commits on blur or Enter (renaming a variant renames its references once). */
function CommitInput({
  label,
  value,
  issues,
  onCommit,
}: {
  label: string;
  value: string;
  issues: readonly FieldIssue[];
  onCommit: (v: string) => void;
}) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  const commit = () => {
    if (text !== value && text.trim() !== '') onCommit(text.trim());
    else setText(value);
  };
  return (
    <>
      <input
        aria-label={label}
        aria-invalid={issues.length > 0 || undefined}
        value={text}
        onChange={(e) => setText(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === 'Enter') {
            e.preventDefault();
            commit();
          }
        }}
      />
      <IssueList issues={issues} />
    </>
  );
}

function VariantValueInput({
  label,
  value,
  issues,
  onChange,
}: {
  label: string;
  value: VariantValue;
  issues: readonly FieldIssue[];
  onChange: (v: VariantValue) => void;
}) {
  const [text, setText] = useState(formatVariantValue(value));
  const [error, setError] = useState<string | undefined>();
  // biome-ignore lint/correctness/useExhaustiveDependencies: reset only when the value changes from outside
  useEffect(() => {
    const parsed = parseVariantValue(text);
    if (JSON.stringify(parsed.value) !== JSON.stringify(value)) {
      setText(formatVariantValue(value));
      setError(undefined);
    }
  }, [value]);
  const multiline = typeof value === 'object';
  const props = {
    'aria-label': label,
    'aria-invalid': issues.length > 0 || error !== undefined || undefined,
    value: text,
    spellCheck: false,
    className: 'mono',
    onChange: (e: { target: { value: string } }) => {
      setText(e.target.value);
      const parsed = parseVariantValue(e.target.value);
      setError(parsed.error);
      if (parsed.value !== undefined) onChange(parsed.value);
    },
  };
  return (
    <>
      {multiline ? <textarea rows={3} {...props} /> : <input {...props} />}
      {error && <p className="field-error">{error}</p>}
      <IssueList issues={issues} />
    </>
  );
}

function freshKey(used: string[], base: string): string {
  for (let n = used.length + 1; ; n++) if (!used.includes(`${base}-${n}`)) return `${base}-${n}`;
}
