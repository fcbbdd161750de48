import type { Rollout, Serve } from '@vigil/proto';
import { useId } from 'react';
import type { FieldIssue } from '../lib/api.js';
import {
  balanceWeights,
  formatPercent,
  percentToWeight,
  removeAt,
  replaceAt,
  toggleServeKind,
  WEIGHT_TOTAL,
  weightsTotal,
  weightToPercent,
} from '../lib/flag-model.js';
import { fieldPath, issuesAt } from '../lib/issues.js';
import { Button, Field } from './ui.js';

/** Edits one serve: a fixed variant, or a rollout with weights, exposure and bucketBy. */
export function ServeEditor({
  serve,
  onChange,
  variants,
  offVariant,
  path,
  issues,
  disabled,
  label,
}: {
  serve: Serve;
  onChange: (serve: Serve) => void;
  variants: string[];
  offVariant: string;
  path: string;
  issues: readonly FieldIssue[];
  disabled: boolean;
  label: string;
}) {
  const name = useId();
  const isRollout = 'rollout' in serve;
  return (
    <fieldset className="serve" disabled={disabled}>
      <legend>{label}</legend>
      <div className="radio-row">
        <label>
          <input
            type="radio"
            name={name}
            checked={!isRollout}
            onChange={() => isRollout && onChange(toggleServeKind(serve, variants, offVariant))}
          />{' '}
          One variant
        </label>
        <label>
          <input
            type="radio"
            name={name}
            checked={isRollout}
            onChange={() => !isRollout && onChange(toggleServeKind(serve, variants, offVariant))}
          />{' '}
          Percentage rollout
        </label>
      </div>
      {'variant' in serve ? (
        <Field label="Variant" issues={issuesAt(issues, fieldPath(path, 'variant'))}>
          {(props) => (
            <select {...props} value={serve.variant} onChange={(e) => onChange({ variant: e.target.value })}>
              {[...new Set([...variants, serve.variant])].map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          )}
        </Field>
      ) : (
        <RolloutEditor
          rollout={serve.rollout}
          onChange={(rollout) => onChange({ rollout })}
          variants={variants}
          path={fieldPath(path, 'rollout')}
          issues={issues}
        />
      )}
    </fieldset>
  );
}

function RolloutEditor({
  rollout,
  onChange,
  variants,
  path,
  issues,
}: {
  rollout: Rollout;
  onChange: (rollout: Rollout) => void;
  variants: string[];
  path: string;
  issues: readonly FieldIssue[];
}) {
  const { total, complete } = weightsTotal(rollout.weights);
  const weightsPath = fieldPath(path, 'weights');
  const unused = variants.filter((v) => !rollout.weights.some((w) => w.variant === v));
  return (
    <div className="rollout">
      <table className="weights">
        <caption className="sr-only">Weights</caption>
        <thead>
          <tr>
            <th scope="col">Variant</th>
            <th scope="col">Share (%)</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rollout.weights.map((w, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are edited in place by position; a key from their content would remount the input being typed in
            <tr key={`${w.variant}-${i}`}>
              <td>
                <select
                  aria-label={`Variant of weight ${i + 1}`}
                  value={w.variant}
                  onChange={(e) =>
                    onChange({
                      ...rollout,
                      weights: replaceAt(rollout.weights, i, (x) => ({ ...x, variant: e.target.value })),
                    })
                  }
                >
                  {[...new Set([...variants, w.variant])].map((v) => (
                    <option key={v} value={v}>
                      {v}
                    </option>
                  ))}
                </select>
              </td>
              <td>
                <input
                  type="number"
                  aria-label={`Share of ${w.variant} in percent`}
                  min={0}
                  max={100}
                  step={0.001}
                  value={weightToPercent(w.weight)}
                  onChange={(e) =>
                    onChange({
                      ...rollout,
                      weights: replaceAt(rollout.weights, i, (x) => ({
                        ...x,
                        weight: percentToWeight(Number(e.target.value) || 0),
                      })),
                    })
                  }
                />
              </td>
              <td>
                <Button
                  variant="ghost"
                  aria-label={`Remove the weight of ${w.variant}`}
                  onClick={() => onChange({ ...rollout, weights: removeAt(rollout.weights, i) })}
                  disabled={rollout.weights.length <= 1}
                >
                  Remove
                </Button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className={complete ? 'hint' : 'field-error'} data-testid="weights-total">
        Total {formatPercent(total)}
        {complete ? '' : ` — the weights must add up to 100% (${formatPercent(WEIGHT_TOTAL - total)} left)`}
      </p>
      {issuesAt(issues, weightsPath).length > 0 && (
        <ul className="field-error">
          {issuesAt(issues, weightsPath).map((i) => (
            <li key={i.field + i.message}>
              {i.field !== weightsPath && <code>{i.field}</code>} {i.message}
            </li>
          ))}
        </ul>
      )}
      <div className="row">
        <Button
          onClick={() =>
            onChange({
              ...rollout,
              weights: [...rollout.weights, { variant: unused[0] ?? variants[0] ?? '', weight: 0 }],
            })
          }
        >
          Add a weight
        </Button>
        <Button
          onClick={() => onChange({ ...rollout, weights: balanceWeights(rollout.weights) })}
          disabled={complete}
        >
          Make the last weight fill up to 100%
        </Button>
      </div>
      <div className="grid-2">
        <Field
          label="Exposure (%)"
          hint="Share of contexts taking part at all; the rest get the off variant. Blank: everyone."
          issues={issuesAt(issues, fieldPath(path, 'exposure'))}
        >
          {(props) => (
            <input
              {...props}
              type="number"
              min={0}
              max={100}
              step={0.001}
              value={rollout.exposure === undefined ? '' : weightToPercent(rollout.exposure)}
              onChange={(e) => {
                const { exposure: _, ...rest } = rollout;
                onChange(
                  e.target.value === ''
                    ? rest
                    : { ...rest, exposure: percentToWeight(Number(e.target.value)) },
                );
              }}
            />
          )}
        </Field>
        <Field
          label="Bucket by"
          hint="Context attribute hashed for the split (a dot path); blank: the context key."
          issues={issuesAt(issues, fieldPath(path, 'bucketBy'))}
        >
          {(props) => (
            <input
              {...props}
              value={rollout.bucketBy ?? ''}
              placeholder="key"
              onChange={(e) => {
                const { bucketBy: _, ...rest } = rollout;
                onChange(e.target.value === '' ? rest : { ...rest, bucketBy: e.target.value });
              }}
            />
          )}
        </Field>
      </div>
    </div>
  );
}
